/* journal.c -- journal.json: every action, probe, breaker event and request of a run, with times in seconds from the start of the load. */
#include "output.h"
#include "traces.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Makes dir and its parents (mkdir -p). Returns 0, or -1 with errno set. */
static int mkdir_p(const char *dir)
{
    char path[1024];
    if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(path, 0755) && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(path, 0755) && errno != EEXIST ? -1 : 0;
}

/* A string, or JSON null for NULL or "". */
static cJSON *str_or_null(const char *s)
{
    return s && *s ? cJSON_CreateString(s) : cJSON_CreateNull();
}

/* The probe's verdict as a JSON value: true, false, or null when skipped or not asked. */
static cJSON *stored_verdict(const chaos_stored *st)
{
    if (!st->asked || st->result < 0)
        return cJSON_CreateNull();
    return cJSON_CreateBool(st->result == 1);
}

/* The stored probe's record. */
static cJSON *stored_json(const chaos_stored *st)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "asked", st->asked);
    cJSON_AddStringToObject(o, "result", !st->asked ? "not asked" : st->result < 0 ? "skipped"
                                         : st->result ? "passed" : "failed");
    if (!st->asked)
        return o;
    cJSON_AddStringToObject(o, "database", st->url);
    cJSON_AddStringToObject(o, "db", st->db);
    cJSON_AddNumberToObject(o, "answers", st->answers);
    cJSON_AddNumberToObject(o, "documents", st->documents);
    cJSON_AddNumberToObject(o, "found", st->found);
    cJSON_AddNumberToObject(o, "missing", st->missing);
    cJSON_AddNumberToObject(o, "wrong", st->wrong);
    cJSON_AddNumberToObject(o, "no_document", st->no_document);
    cJSON *ex = cJSON_AddArrayToObject(o, "examples");
    for (int i = 0; i < st->nexamples; i++)
        cJSON_AddItemToArray(ex, cJSON_CreateString(st->examples[i]));
    cJSON_AddItemToObject(o, "reason", str_or_null(st->reason));
    return o;
}

/* One request's record. */
static cJSON *request_json(const chaos_request *q)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "n", q->n);
    cJSON_AddNumberToObject(o, "t", q->t);
    cJSON_AddNumberToObject(o, "ms", q->ms);
    cJSON_AddNumberToObject(o, "status", q->status);
    cJSON_AddBoolToObject(o, "whole", q->whole);
    cJSON_AddItemToObject(o, "degraded", str_or_null(q->degraded));
    cJSON_AddItemToObject(o, "trace", str_or_null(q->trace));
    if (q->duplicates >= 0)
        cJSON_AddNumberToObject(o, "duplicates", q->duplicates);
    const char *doc = NULL;
    for (int k = 0; k < q->ndocs && !doc; k++)
        if (q->docs[k].svc == 0)
            doc = q->docs[k].id;
    cJSON_AddItemToObject(o, "document", str_or_null(doc));
    return o;
}

/* One expectation's record: its step and how it was judged. */
static cJSON *expectation_json(const chaos_expectation *x)
{
    const chaos_step *s = x->step;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "at", s->at);
    cJSON_AddStringToObject(o, "expect", s->expect);
    cJSON_AddItemToObject(o, "breaker", str_or_null(s->breaker));
    cJSON_AddNumberToObject(o, "within", s->within);
    if (s->measure) {
        cJSON_AddStringToObject(o, "measure", s->measure->name);
        if (s->measure_svc >= 0)
            cJSON_AddStringToObject(o, "service", chaos_services[s->measure_svc].name);
        cJSON_AddItemToObject(o, "value", x->unmeasured[0] ? cJSON_CreateNull()
                                                           : cJSON_CreateNumber(round(x->value * 1000) / 1000));
        cJSON_AddItemToObject(o, "unmeasured", str_or_null(x->unmeasured));
    }
    if (s->why)
        cJSON_AddStringToObject(o, "why", s->why);
    cJSON_AddItemToObject(o, "met_at", x->met ? cJSON_CreateNumber(x->met_at) : cJSON_CreateNull());
    cJSON_AddBoolToObject(o, "met", x->met);
    /* met, missed, or undecided (the run stopped before its window closed) */
    cJSON_AddStringToObject(o, "result", x->met ? "met" : x->undecided ? "undecided" : "missed");
    cJSON_AddItemToObject(o, "reason", str_or_null(x->met || x->undecided ? NULL : x->missed));
    cJSON_AddStringToObject(o, "name", x->name);
    return o;
}

/* One hypothesis probe's record. */
static cJSON *probe_json(const chaos_probe *p)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "when", p->when);
    cJSON *w = cJSON_AddArrayToObject(o, "window");
    cJSON_AddItemToArray(w, cJSON_CreateNumber(p->lo));
    cJSON_AddItemToArray(w, cJSON_CreateNumber(p->hi));
    cJSON_AddNumberToObject(o, "requests", p->requests);
    cJSON_AddNumberToObject(o, "ok_ratio", p->ok_ratio);
    cJSON_AddItemToObject(o, "p99_ms", p->p99_ms >= 0 ? cJSON_CreateNumber(p->p99_ms) : cJSON_CreateNull());
    cJSON_AddItemToObject(o, "states", p->states ? cJSON_Duplicate(p->states, true) : cJSON_CreateObject());
    cJSON_AddBoolToObject(o, "ok", p->ok);
    /* held, not held, or undecided (the run stopped before its window ended) */
    cJSON_AddStringToObject(o, "result", p->undecided ? "undecided" : p->ok ? "held" : "not held");
    return o;
}

/* The poll's timed probes, each service's: "timings": {"order": {"health":
 * [[t, ms, status, busy, in_use], ...], "root": [[t, ms, status], ...]}}
 * (busy and in_use null when /health did not give them). */
static void add_timings(cJSON *j, const chaos_run *r)
{
    static const char *const routes[] = { [CHAOS_ROUTE_HEALTH] = "health", [CHAOS_ROUTE_ROOT] = "root" };
    cJSON *all = cJSON_AddObjectToObject(j, "timings");
    for (int svc = 0; svc < CHAOS_NSVC; svc++) {
        cJSON *mine = cJSON_AddObjectToObject(all, chaos_services[svc].name);
        for (int k = 0; k < 2; k++) {
            cJSON *list = cJSON_AddArrayToObject(mine, routes[k]);
            for (int i = 0; i < r->ntimings; i++) {
                const chaos_timing *p = &r->timings[i];
                if (p->svc != svc || (int)p->route != k)
                    continue;
                cJSON *pt = cJSON_CreateArray();
                cJSON_AddItemToArray(pt, cJSON_CreateNumber(p->t));
                cJSON_AddItemToArray(pt, cJSON_CreateNumber(p->ms));
                cJSON_AddItemToArray(pt, cJSON_CreateNumber(p->status));
                if (k == CHAOS_ROUTE_HEALTH) {
                    cJSON_AddItemToArray(pt, isnan(p->busy) ? cJSON_CreateNull() : cJSON_CreateNumber(p->busy));
                    cJSON_AddItemToArray(pt, isnan(p->in_use) ? cJSON_CreateNull() : cJSON_CreateNumber(p->in_use));
                }
                cJSON_AddItemToArray(list, pt);
            }
        }
    }
}

/* The whole journal as a new cJSON tree. */
static cJSON *journal(const chaos_run *r)
{
    const chaos_experiment *e = r->exp;
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "title", e->title);
    cJSON_AddItemToObject(j, "lesson", str_or_null(e->lesson));
    cJSON *urls = cJSON_AddObjectToObject(j, "urls");
    for (int i = 0; i < CHAOS_NSVC; i++)
        cJSON_AddStringToObject(urls, chaos_services[i].name, r->urls[i]);
    cJSON *v = cJSON_AddObjectToObject(j, "verdict");
    cJSON_AddBoolToObject(v, "passed", r->passed);
    cJSON_AddBoolToObject(v, "hypothesis_before", r->probes[0].ok);
    cJSON_AddBoolToObject(v, "hypothesis_after", r->probes[1].ok);
    cJSON_AddItemToObject(v, "aborted", str_or_null(r->aborted));
    cJSON_AddItemToObject(v, "stored", stored_verdict(&r->stored));
    cJSON *load = cJSON_AddObjectToObject(j, "load");
    cJSON_AddNumberToObject(load, "rate", e->rate);
    cJSON_AddNumberToObject(load, "ramp_to", e->ramp_to);
    cJSON_AddItemToObject(load, "capacity", e->capacity > 0 ? cJSON_CreateNumber(e->capacity) : cJSON_CreateNull());
    cJSON_AddNumberToObject(load, "timeout_ms", e->timeout_ms);
    cJSON_AddNumberToObject(load, "goodput_ms", e->goodput_ms);
    cJSON_AddNumberToObject(load, "seconds", e->seconds);
    cJSON_AddNumberToObject(load, "requests", r->nreqs);
    cJSON_AddNumberToObject(load, "max_late_s", round(r->max_late_s * 1000) / 1000);
    cJSON_AddNumberToObject(load, "max_late_at", round(r->max_late_at * 1000) / 1000);
    cJSON_AddNumberToObject(load, "late_sends", r->late_sends);
    cJSON *br = cJSON_AddObjectToObject(j, "breakers");
    for (int i = 0; i < r->nrefs; i++)
        cJSON_AddStringToObject(br, r->refs[i], r->ref_names[i]);
    cJSON *states = cJSON_AddObjectToObject(j, "states");
    for (int i = 0; i < r->nbands; i++) {
        cJSON *band = cJSON_AddArrayToObject(states, r->bands[i].name);
        for (int k = 0; k < r->bands[i].n; k++) {
            cJSON *pt = cJSON_CreateArray();
            cJSON_AddItemToArray(pt, cJSON_CreateNumber(r->bands[i].pts[k].t));
            cJSON_AddItemToArray(pt, cJSON_CreateString(r->bands[i].pts[k].state));
            cJSON_AddItemToArray(band, pt);
        }
    }
    cJSON_AddItemToObject(j, "actions", cJSON_Duplicate(r->actions, true));
    cJSON *ex = cJSON_AddArrayToObject(j, "expectations");
    for (int i = 0; i < r->nexpects; i++)
        cJSON_AddItemToArray(ex, expectation_json(&r->expects[i]));
    cJSON *pr = cJSON_AddArrayToObject(j, "probes");
    for (int i = 0; i < 2; i++)
        cJSON_AddItemToArray(pr, probe_json(&r->probes[i]));
    cJSON_AddItemToObject(j, "stored", stored_json(&r->stored));
    if (r->stored.counted || r->stored.count_error[0]) {
        cJSON *d = cJSON_AddObjectToObject(j, "duplicates");
        cJSON_AddBoolToObject(d, "counted", r->stored.counted);
        cJSON_AddNumberToObject(d, "documents", r->stored.duplicates);
        cJSON_AddItemToObject(d, "reason", str_or_null(r->stored.count_error));
    }
    if (r->namplification) {
        /* per second of the load: calls at the last service per request at the first */
        cJSON *a = cJSON_AddArrayToObject(j, "amplification");
        for (int i = 0; i < r->namplification; i++)
            cJSON_AddItemToArray(a, isnan(r->amplification[i]) ? cJSON_CreateNull()
                                     : cJSON_CreateNumber(round(r->amplification[i] * 100) / 100));
    }
    /* per second of the load, by when each request was sent: requests sent,
     * 2xx answers within goodput_ms, 503 answers, the p99 of their latency */
    cJSON *ps = cJSON_AddArrayToObject(j, "per_second");
    for (int i = 0; i < r->nper_second; i++) {
        const chaos_second *sec = &r->per_second[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "t", i);
        cJSON_AddNumberToObject(o, "rate", round(chaos_rate_at(e, i + 0.5) * 100) / 100);
        cJSON_AddNumberToObject(o, "offered", sec->offered);
        cJSON_AddNumberToObject(o, "goodput", sec->goodput);
        cJSON_AddNumberToObject(o, "shed", sec->shed);
        cJSON_AddItemToObject(o, "p99_ms", isnan(sec->p99_ms) ? cJSON_CreateNull() : cJSON_CreateNumber(sec->p99_ms));
        cJSON_AddItemToArray(ps, o);
    }
    cJSON *arr = cJSON_AddObjectToObject(j, "arrivals");
    for (int svc = 0; svc < CHAOS_NSVC; svc++) {
        /* each service's count of arrivals, [t, count] as the poll read it */
        cJSON *list = cJSON_AddArrayToObject(arr, chaos_services[svc].name);
        for (int i = 0; i < r->nsamples; i++)
            if (r->samples[i].svc == svc) {
                cJSON *pt = cJSON_CreateArray();
                cJSON_AddItemToArray(pt, cJSON_CreateNumber(round(r->samples[i].t * 1000) / 1000));
                cJSON_AddItemToArray(pt, cJSON_CreateNumber(r->samples[i].arrived));
                cJSON_AddItemToArray(list, pt);
            }
    }
    add_timings(j, r);
    /* the requests whose traces tell the run best, with links to them */
    cJSON_AddItemToObject(j, "traces", chaos_traces_json(r));
    cJSON_AddItemToObject(j, "events", cJSON_Duplicate(r->events, true));
    cJSON *reqs = cJSON_AddArrayToObject(j, "requests");
    for (int i = 0; i < r->nreqs; i++)
        cJSON_AddItemToArray(reqs, request_json(&r->reqs[i]));
    return j;
}

int chaos_journal_write(const chaos_run *r, char *err, size_t errlen)
{
    char path[1100];
    if (mkdir_p(r->out)) {
        snprintf(err, errlen, "%s: cannot make the folder (%s)", r->out, strerror(errno));
        return -1;
    }
    snprintf(path, sizeof path, "%s/journal.json", r->out);
    cJSON *j = journal(r);
    char *text = j ? cJSON_Print(j) : NULL;
    cJSON_Delete(j);
    FILE *f = text ? fopen(path, "w") : NULL;
    int rc = f && fputs(text, f) >= 0 && fputc('\n', f) != EOF ? 0 : -1;
    if (f && fclose(f))
        rc = -1;
    if (rc)
        snprintf(err, errlen, "%s: cannot be written (%s)", path, text ? strerror(errno) : "out of memory");
    free(text);
    return rc;
}
