/* traces.c -- the traces worth opening after a run: which requests, their links, their lines.
 *
 * Every request of the load carries a trace id of its own (run.c's
 * traceparent, sampled), so each one's story is a trace: its spans on every
 * hop, when the services send them to a collector (Jaeger), and its log
 * lines in any case. Of a run's hundreds, a few tell the lesson best; the
 * table of picks below names them, each a rule over the requests (the first
 * or the last that fits, or the one with the largest value). A new pick is
 * a row.
 *
 * When the first service's /health says tracing is on and names a
 * query_url (TRACES_QUERY_URL), each pick gets two links: the dashboard's
 * trace view on the first service (<url>/dashboard#trace=<id>) and Jaeger's
 * API (<query_url>/api/traces/<id>).
 */
#include "traces.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* Whether request q fits a pick; a pick's value of q (the largest wins). */
typedef bool pick_fits_fn(const chaos_request *q);
typedef double pick_value_fn(const chaos_request *q);

static bool is_degraded(const chaos_request *q)
{
    return q->degraded[0] != '\0';
}

/* Degraded because a breaker was open: "<service>:open", the call never made. */
static bool is_refused(const chaos_request *q)
{
    const char *colon = strchr(q->degraded, ':');
    return colon && strcmp(colon + 1, "open") == 0;
}

/* No 2xx answer: an error status, or none (refused, cut, timed out). */
static bool is_error(const chaos_request *q)
{
    return q->status < 200 || q->status > 299;
}

/* Stored more than once (counted when an expectation measures duplicates). */
static bool is_duplicated(const chaos_request *q)
{
    return q->duplicates > 0;
}

static double latency(const chaos_request *q)
{
    return q->ms;
}

/* The picks, in the order they are said; indexed by CHAOS_PICK_* (common.h).
 * Each is the first request (by n) that fits, the last one (last), or the
 * one with the largest value (the first of equals). */
static const struct pick {
    const char *name;           /* its key in the journal */
    const char *what;           /* what it is, in words */
    pick_fits_fn *fits;         /* the requests it picks from; NULL: all */
    bool last;                  /* the last that fits rather than the first */
    pick_value_fn *largest;     /* or: the largest of this */
} picks[CHAOS_NPICKS] = {
    [CHAOS_PICK_FIRST_DEGRADED] = { "first_degraded", "the first answer with a degraded hop", is_degraded, false,
                                    NULL },
    [CHAOS_PICK_FIRST_REFUSED] = { "first_refused", "the first answer degraded by an open circuit, no call made",
                                   is_refused, false, NULL },
    [CHAOS_PICK_LAST_DEGRADED] = { "last_degraded", "the last answer with a degraded hop", is_degraded, true,
                                   NULL },
    [CHAOS_PICK_FIRST_ERROR] = { "first_error", "the first request without a 2xx answer", is_error, false, NULL },
    [CHAOS_PICK_FIRST_DUPLICATED] = { "first_duplicated", "the first request whose documents were stored twice",
                                      is_duplicated, false, NULL },
    [CHAOS_PICK_SLOWEST] = { "slowest", "the slowest request", NULL, false, latency },
};

void chaos_traces_note(chaos_run *r, const cJSON *h)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(h, "tracing");
    const char *url = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(t, "query_url"));
    r->traces_url[0] = '\0';
    if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(t, "on")) || !url || !*url)
        return;
    snprintf(r->traces_url, sizeof r->traces_url, "%s", url);
    size_t n = strlen(r->traces_url);
    while (n > 0 && r->traces_url[n - 1] == '/')
        r->traces_url[--n] = '\0';
}

void chaos_traces_pick(chaos_run *r)
{
    for (int p = 0; p < CHAOS_NPICKS; p++) {
        const struct pick *k = &picks[p];
        int best = -1;
        for (int i = 0; i < r->nreqs; i++) {
            const chaos_request *q = &r->reqs[k->last ? r->nreqs - 1 - i : i];
            if (!q->trace[0] || (k->fits && !k->fits(q)))
                continue;
            if (!k->largest) {
                best = (int)(q - r->reqs);
                break;
            }
            if (best < 0 || k->largest(q) > k->largest(&r->reqs[best]))
                best = (int)(q - r->reqs);
        }
        r->picks[p] = best;
    }
}

/* The links to request q's trace into dash and jaeger ("" when the stack does not trace). */
static void links(const chaos_run *r, const chaos_request *q, char *dash, size_t dlen, char *jaeger, size_t jlen)
{
    dash[0] = jaeger[0] = '\0';
    if (!r->traces_url[0])
        return;
    snprintf(dash, dlen, "%s/dashboard#trace=%s", r->urls[0], q->trace);
    snprintf(jaeger, jlen, "%s/api/traces/%s", r->traces_url, q->trace);
}

/* A string, or JSON null for "". */
static cJSON *str_or_null(const char *s)
{
    return *s ? cJSON_CreateString(s) : cJSON_CreateNull();
}

cJSON *chaos_traces_json(const chaos_run *r)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddItemToObject(o, "query_url", str_or_null(r->traces_url));
    cJSON *all = cJSON_AddObjectToObject(o, "picks");
    for (int p = 0; p < CHAOS_NPICKS && all; p++) {
        if (r->picks[p] < 0) {
            cJSON_AddNullToObject(all, picks[p].name);
            continue;
        }
        const chaos_request *q = &r->reqs[r->picks[p]];
        char dash[400], jaeger[400];
        links(r, q, dash, sizeof dash, jaeger, sizeof jaeger);
        cJSON *x = cJSON_AddObjectToObject(all, picks[p].name);
        cJSON_AddStringToObject(x, "what", picks[p].what);
        cJSON_AddNumberToObject(x, "n", q->n);
        cJSON_AddNumberToObject(x, "t", q->t);
        cJSON_AddNumberToObject(x, "ms", q->ms);
        cJSON_AddNumberToObject(x, "status", q->status);
        cJSON_AddItemToObject(x, "degraded", str_or_null(q->degraded));
        cJSON_AddStringToObject(x, "trace", q->trace);
        cJSON_AddItemToObject(x, "dashboard", str_or_null(dash));
        cJSON_AddItemToObject(x, "jaeger", str_or_null(jaeger));
    }
    return o;
}

void chaos_traces_say(const chaos_run *r)
{
    bool any = false;
    for (int p = 0; p < CHAOS_NPICKS; p++)
        any = any || r->picks[p] >= 0;
    if (!any)
        return;
    if (!r->traces_url[0])
        chaos_say(r, "traces worth opening (tracing is off: start the stack with make run TRACES=on to draw "
                  "them; the id finds the request's log lines too):");
    for (int p = 0; p < CHAOS_NPICKS; p++) {
        if (r->picks[p] < 0)
            continue;
        const chaos_request *q = &r->reqs[r->picks[p]];
        char answer[120], dash[400], jaeger[400];
        if (q->status)
            snprintf(answer, sizeof answer, "%d in %.0f ms", q->status, q->ms);
        else
            snprintf(answer, sizeof answer, "no answer after %.0f ms", q->ms);
        size_t k = strlen(answer);
        if (q->degraded[0])
            snprintf(answer + k, sizeof answer - k, ", %s", q->degraded);
        links(r, q, dash, sizeof dash, jaeger, sizeof jaeger);
        if (dash[0]) {
            chaos_say(r, "open this trace: %s (request %d sent at %.1f s: %s): %s", picks[p].what, q->n, q->t,
                      answer, dash);
            chaos_say(r, "    its spans in Jaeger: %s", jaeger);
        } else {
            chaos_say(r, "  %s (request %d sent at %.1f s: %s): trace %s", picks[p].what, q->n, q->t, answer,
                      q->trace);
        }
    }
}
