/* run.c -- runs one experiment: the open-loop load, the readers of every /events.stream, the /health poll, the method's timeline, the rollbacks, the probes and the verdict.
 *
 * The phases of a run, as a table (phase, what ends it, next):
 *
 *   discover   every /health answered            -> method     (a service silent: exit 2, nothing run)
 *   method     the last step is done             -> load end
 *              an action failed / SIGINT, SIGTERM, SIGHUP -> rollbacks (aborted)
 *   load end   the load's last answer came back   -> rollbacks  (the load thread says so)
 *              SIGINT, SIGTERM, SIGHUP            -> rollbacks (aborted)
 *   rollbacks  every rollback tried, in order, then -> stop the threads, judge, write
 *              the options of every tuned breaker put back
 *
 * Threads: one load thread drives every request of the load through one
 * libcurl multi handle (a request is sent at its due time whether or not
 * the earlier ones have answered: open loop); one reader per service follows
 * its /events.stream; one poller reads every /health four times a second
 * (the bands between events). They add to the run's records under r->lock
 * and finish when r->stop is set. Only the main thread acts, and it alone
 * sees the signals (the others block them): the handler sets chaos_signal,
 * the main thread's sleeps are short, and it then goes to the rollbacks.
 *
 * A change of a service's faults comes back on its stream as a "chaos"
 * event; one made from outside (curl, the dashboard: not within one of the
 * runner's own actions on that service, act_own()) is kept as an action
 * with phase "outside" (note_outside()) and joins the actions at the end
 * (merge_outside()), so the journal and the picture show it.
 */
#include "run.h"

#include "dynbuf.h"
#include "monotime.h"

#include "act.h"
#include "measure.h"
#include "net.h"
#include "output.h"
#include "stored.h"
#include "traces.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define POLL_INTERVAL_S 0.25
/* a probe of /health or / gives up after this; it then counts as this slow */
#define SSE_STALL_S 3L
#define SSE_MAX_LINE (1u << 20)
/* a load tally line this often */
#define TALLY_S 2.0
/* an expectation not met is said missed this long after its window closed
 * (a state seen just before the end may still be on its way to the records) */
#define DECIDE_GRACE_S 0.3

/* x rounded to 3 decimals, as the journal keeps times. */
static double round3(double x)
{
    return round(x * 1000) / 1000;
}

/* Room for one more of an array's n items (each `size` bytes): the array
 * itself when it has room, else a copy with its capacity *cap doubled
 * (first: `first`). NULL when out of memory, the array left as it was. */
static void *grow(void *items, int n, int *cap, size_t size, int first)
{
    if (n < *cap)
        return items;
    int want = *cap ? *cap * 2 : first;
    void *bigger = realloc(items, (size_t)want * size);
    if (bigger)
        *cap = want;
    return bigger;
}

/* The band of breaker name, made when new. Call with the lock held. NULL when out of memory. */
static chaos_band *band_of(chaos_run *r, const char *name)
{
    for (int i = 0; i < r->nbands; i++)
        if (strcmp(r->bands[i].name, name) == 0)
            return &r->bands[i];
    chaos_band *bands = grow(r->bands, r->nbands, &r->capbands, sizeof *r->bands, 8);
    if (!bands)
        return NULL;
    r->bands = bands;
    chaos_band *b = &r->bands[r->nbands];
    memset(b, 0, sizeof *b);
    if (!(b->name = strdup(name)))
        return NULL;
    r->nbands++;
    return b;
}

/* Records that breaker name is in state at time t (<0: now), when it differs
 * from the band's last state. Takes the lock. */
static void note_state(chaos_run *r, const char *name, const char *state, double t)
{
    if (t < 0)
        t = chaos_now(r);
    pthread_mutex_lock(&r->lock);
    chaos_band *b = band_of(r, name);
    if (b && (b->n == 0 || strcmp(b->pts[b->n - 1].state, state) != 0)) {
        chaos_point *pts = grow(b->pts, b->n, &b->cap, sizeof *b->pts, 8);
        if (pts) {
            b->pts = pts;
            b->pts[b->n].t = t;
            snprintf(b->pts[b->n].state, sizeof b->pts[b->n].state, "%s", state);
            b->n++;
        }
    }
    pthread_mutex_unlock(&r->lock);
}

/* Notes the state of every breaker a /health answer lists; with refs, also
 * learns the ref -> name map (a name ending in "->mongodb" is "<svc>/db"). */
static void note_health(chaos_run *r, int svc, const cJSON *h, bool refs)
{
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(h, "breakers");
    const cJSON *b;
    cJSON_ArrayForEach(b, list) {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(b, "name");
        const cJSON *state = cJSON_GetObjectItemCaseSensitive(b, "state");
        if (!cJSON_IsString(name) || !cJSON_IsString(state))
            continue;
        if (refs && r->nrefs < CHAOS_MAX_REFS) {
            size_t n = strlen(name->valuestring);
            bool db = n >= 9 && strcmp(name->valuestring + n - 9, "->mongodb") == 0;
            char ref[32];
            snprintf(ref, sizeof ref, "%s%s", chaos_services[svc].name, db ? "/db" : "");
            if (!chaos_ref_name(r, ref)) {
                r->refs[r->nrefs] = strdup(ref);
                r->ref_names[r->nrefs] = strdup(name->valuestring);
                if (r->refs[r->nrefs] && r->ref_names[r->nrefs])
                    r->nrefs++;
            }
        }
        note_state(r, name->valuestring, state->valuestring, refs ? 0.0 : -1.0);
    }
}

int chaos_discover(chaos_run *r, char *err, size_t errlen)
{
    for (int i = 0; i < CHAOS_NSVC; i++) {
        char url[300];
        snprintf(url, sizeof url, "%s/health", r->urls[i]);
        net_answer a;
        long st = net_request("GET", url, NULL, NULL, 5000, &a);
        cJSON *h = st ? cJSON_Parse(a.body) : NULL;
        if (st == 0)
            snprintf(err, errlen, "%s does not answer at %s (%s); start the stack (make run) or give --%s",
                     chaos_services[i].name, r->urls[i], a.error, chaos_services[i].name);
        else if (!cJSON_IsObject(h))
            snprintf(err, errlen, "%s: /health answered %ld without JSON", chaos_services[i].name, st);
        else
            note_health(r, i, h, true);
        if (i == 0 && cJSON_IsObject(h))
            chaos_traces_note(r, h);    /* the dashboard's trace view is on the first service */
        /* make run's supervisor says where its pid files are (kill, restart) */
        const cJSON *sup = cJSON_IsObject(h) ? cJSON_GetObjectItemCaseSensitive(h, "supervisor") : NULL;
        const char *run_dir = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(sup, "run_dir"));
        if (!r->run_dir[0] && run_dir)
            snprintf(r->run_dir, sizeof r->run_dir, "%s", run_dir);
        bool ok = cJSON_IsObject(h);
        cJSON_Delete(h);
        net_answer_free(&a);
        if (!ok)
            return -1;
    }
    return 0;
}

/* Sleeps until r->stop or secs pass. Returns true when stopped. */
static bool nap(chaos_run *r, double secs)
{
    double end = chaos_mono() + secs;
    while (!atomic_load(&r->stop)) {
        double left = end - chaos_mono();
        if (left <= 0)
            return false;
        struct timespec ts = { 0, (long)((left < 0.05 ? left : 0.05) * 1e9) };
        nanosleep(&ts, NULL);
    }
    return true;
}

/* ---- the load ---------------------------------------------------------------------- */

/* One request in flight. */
typedef struct xfer {
    int n;
    double start;
    char trace[33];
    net_transfer t;
} xfer;

/* Reads a chain answer into the request record: hops, whole, degraded, documents. */
static void read_answer(chaos_request *q, const net_answer *a)
{
    cJSON *root = q->status ? cJSON_Parse(a->body) : NULL;
    const cJSON *hop = root;
    const cJSON *last = NULL;
    int hops = 0;
    bool degraded = false;
    for (; cJSON_IsObject(hop) && hops < CHAOS_MAX_HOPS; hop = cJSON_GetObjectItemCaseSensitive(hop, "next")) {
        hops++;
        last = hop;
        const char *svc = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(hop, "service"));
        const char *status = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(hop, "status"));
        const char *doc = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(hop, "document"));
        if (!degraded && status && strcmp(status, "degraded") == 0) {
            const char *why = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(hop, "reason"));
            snprintf(q->degraded, sizeof q->degraded, "%s:%s", svc ? svc : "?", why ? why : "unknown");
            degraded = true;
        }
        int i = chaos_service_index(svc);
        if (i >= 0 && doc && status && strlen(doc) == 24) {
            chaos_doc *d = &q->docs[q->ndocs++];
            d->svc = i;
            memcpy(d->id, doc, 25);
            snprintf(d->outcome, sizeof d->outcome, "%s", status);
        }
    }
    const char *last_status = last ? cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(last, "status")) : NULL;
    q->whole = q->status == 200 && last_status && strcmp(last_status, "last") == 0 && !degraded;
    cJSON_Delete(root);
}

/* Adds request n of the load to the multi handle. Returns 0, or -1 (then it is recorded as failed). */
static int load_send(chaos_run *r, CURLM *m, int n)
{
    char body[400], url[300];
    snprintf(body, sizeof body,
             "{\"id\":\"chaos-%d\",\"items\":[],\"payment\":{\"amount\":1,\"id\":\"chaos-%d\","
             "\"shipment\":{\"id\":\"chaos-%d\",\"directions\":\"lab\"}}}", n, n, n);
    snprintf(url, sizeof url, "%s/create", r->urls[0]);
    xfer *x = calloc(1, sizeof *x);
    CURL *h = x ? curl_easy_init() : NULL;
    if (!h || net_setup(h, &x->t, "POST", url, body, NULL, (long)r->exp->timeout_ms)) {
        if (h)
            curl_slist_free_all(x->t.headers);
        curl_easy_cleanup(h);
        free(x);
        return -1;
    }
    /* the request's own trace id, so that every hop's documents can be found
     * by it, even those of a request that got no answer */
    char traceparent[100];
    snprintf(traceparent, sizeof traceparent, "traceparent: 00-%016llx%016llx-%016llx-01", r->trace_base,
             (unsigned long long)n + 1, r->trace_base ^ ((unsigned long long)n + 1));
    struct curl_slist *hl = curl_slist_append(x->t.headers, traceparent);
    if (hl) {
        x->t.headers = hl;
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    }
    snprintf(x->trace, sizeof x->trace, "%016llx%016llx", r->trace_base, (unsigned long long)n + 1);
    x->n = n;
    x->start = chaos_now(r);
    curl_easy_setopt(h, CURLOPT_PRIVATE, x);
    if (curl_multi_add_handle(m, h) != CURLM_OK) {
        curl_slist_free_all(x->t.headers);
        curl_easy_cleanup(h);
        free(x);
        return -1;
    }
    return 0;
}

/* Appends a finished request to the records. */
static void load_record(chaos_run *r, chaos_request *q)
{
    pthread_mutex_lock(&r->lock);
    chaos_request *reqs = grow(r->reqs, r->nreqs, &r->capreqs, sizeof *r->reqs, 256);
    if (reqs) {
        r->reqs = reqs;
        r->reqs[r->nreqs++] = *q;
    }
    pthread_mutex_unlock(&r->lock);
}

/* Takes every finished transfer off m and records it. */
static void load_reap(chaos_run *r, CURLM *m)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(m, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        CURL *h = msg->easy_handle;
        CURLcode rc = msg->data.result;
        xfer *x = NULL;
        curl_easy_getinfo(h, CURLINFO_PRIVATE, (char **)&x);
        net_transfer_done(h, &x->t, rc);
        chaos_request q = { .n = x->n, .t = round3(x->start), .duplicates = -1 };
        q.ms = round((chaos_now(r) - x->start) * 10000) / 10;
        q.status = (int)x->t.answer.status;
        memcpy(q.trace, x->trace, sizeof x->trace);
        read_answer(&q, &x->t.answer);
        load_record(r, &q);
        curl_multi_remove_handle(m, h);
        curl_easy_cleanup(h);
        net_answer_free(&x->t.answer);
        free(x);
    }
}

/* Sends every request of the load that is due by now (chaos_due), noting
 * how late each went out; *n is the next request's number. */
static void load_due(chaos_run *r, CURLM *m, int *n, int total)
{
    const chaos_experiment *e = r->exp;
    while (*n < total && chaos_due(e, *n) <= chaos_now(r)) {
        double due = chaos_due(e, *n), late = chaos_now(r) - due;
        if (late > r->max_late_s) {
            r->max_late_s = late;
            r->max_late_at = due;
        }
        r->late_sends += late > CHAOS_LATE_S;
        if (load_send(r, m, *n)) {
            chaos_request q = { .n = *n, .t = round3(chaos_now(r)), .duplicates = -1 };
            load_record(r, &q);
        }
        (*n)++;
    }
}

/* The load thread: chaos_load_total() requests, each at its due time
 * (chaos_due: the rate, or a linear ramp from rate to ramp_to), whether or
 * not the earlier ones have answered. At most CHAOS_MAX_INFLIGHT are on the
 * wire at once; the rest wait in libcurl's queue, their latency counted
 * from when they were due, and each gives up after the load's timeout_ms. */
static void *load_main(void *arg)
{
    chaos_run *r = arg;
    const chaos_experiment *e = r->exp;
    CURLM *m = curl_multi_init();
    if (!m) {
        atomic_store(&r->load_done, true);
        return NULL;
    }
    curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, (long)CHAOS_MAX_INFLIGHT);
    curl_multi_setopt(m, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)CHAOS_MAX_INFLIGHT);
    int n = 0, running = 0, total = chaos_load_total(e);
    for (;;) {
        bool stopping = atomic_load(&r->stop);
        if (!stopping)
            load_due(r, m, &n, total);
        curl_multi_perform(m, &running);
        load_reap(r, m);
        bool sending = !stopping && n < total;
        if (!sending && running == 0)
            break;
        int wait_ms = 50;
        if (sending) {
            double due = chaos_due(e, n) - chaos_now(r);
            wait_ms = due <= 0 ? 0 : due < 0.05 ? (int)(due * 1000) + 1 : 50;
        }
        curl_multi_poll(m, NULL, 0, wait_ms, NULL);
    }
    curl_multi_cleanup(m);
    atomic_store(&r->load_done, true);
    return NULL;
}

/* ---- the readers of /events.stream ------------------------------------------------- */

typedef struct reader {
    chaos_run *r;
    int svc;
    dynbuf line;            /* the line being read, at most SSE_MAX_LINE bytes */
    bool breaker_event;     /* the frame's "event:" is breaker */
} reader;

/* True when a fault change of service svc at wall time ms falls within one
 * of the runner's own actions on it. Call with the lock held. */
static bool own_change(const chaos_run *r, int svc, double ms)
{
    for (int i = 0; i < r->nown; i++)
        if ((r->own[i].svc == svc || r->own[i].svc < 0) && ms >= r->own[i].lo_ms - 50 &&
            ms <= r->own[i].hi_ms + 50)
            return true;
    return false;
}

/* Keeps a "chaos" event of service svc (its faults changed, the words in
 * "detail"), seen at t, as an action from outside, unless the runner made
 * the change itself; says it. Takes the lock. */
static void note_outside(chaos_run *r, int svc, const cJSON *ev, double t)
{
    const char *detail = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ev, "detail"));
    double ms = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(ev, "time"));
    char what[300];     /* a fault that ended by itself is no one's change */
    bool by_itself = detail && (strncmp(detail, "expired ", 8) == 0 || strncmp(detail, "used up ", 8) == 0);
    snprintf(what, sizeof what, "%s%s: %s", chaos_services[svc].name, by_itself ? "" : " (from outside)",
             detail ? detail : "faults changed");
    pthread_mutex_lock(&r->lock);
    bool own = own_change(r, svc, ms);
    cJSON *rec = own ? NULL : cJSON_CreateObject();
    if (rec) {
        cJSON_AddNumberToObject(rec, "t", round3(t));
        cJSON_AddStringToObject(rec, "phase", "outside");
        cJSON_AddStringToObject(rec, "action", "chaos");
        cJSON_AddStringToObject(rec, "service", chaos_services[svc].name);
        cJSON_AddNullToObject(rec, "breaker");
        cJSON_AddStringToObject(rec, "what", what);
        cJSON_AddNullToObject(rec, "why");
        cJSON_AddBoolToObject(rec, "ok", true);
        cJSON_AddItemToArray(r->outside, rec);
    }
    pthread_mutex_unlock(&r->lock);
    if (rec)
        chaos_say(r, "%s", what);
}

/* Says a breaker's change of state as it arrives: "payment -> shipment: open"
 * (the event's label, else one made from its service and name), with the
 * run time the service gave it when it arrived 0.1 s or more later (the
 * /health poll may have shown the state first). */
static void say_transition(chaos_run *r, int svc, const cJSON *ev, const char *breaker, const char *state)
{
    char label[128];
    const char *given = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ev, "label"));
    if (given)
        snprintf(label, sizeof label, "%s", given);
    else
        chaos_label(svc, breaker, label, sizeof label);
    bool forced = strcmp(chaos_plain(state), state) != 0;
    const cJSON *time = cJSON_GetObjectItemCaseSensitive(ev, "time");
    double at = (time->valuedouble - r->wall0_ms - 50) / 1000, now = chaos_now(r);
    char when[40] = "";
    if (now - at >= 0.1 && at >= 0)
        snprintf(when, sizeof when, " (at %.1f s)", at);
    chaos_say(r, "%s: %s%s%s", label, chaos_plain(state), forced ? " (forced)" : "", when);
}

/* Handles one breaker event (the JSON of a "data:" line). */
static void reader_event(reader *rd, const char *json)
{
    chaos_run *r = rd->r;
    cJSON *ev = cJSON_Parse(json);
    const cJSON *time = cJSON_GetObjectItemCaseSensitive(ev, "time");
    const cJSON *seq = cJSON_GetObjectItemCaseSensitive(ev, "seq");
    if (!cJSON_IsObject(ev) || !cJSON_IsNumber(time) || time->valuedouble < r->wall0_ms) {
        cJSON_Delete(ev);           /* the feed's history, from before this run */
        return;
    }
    double t = chaos_now(r);
    unsigned long long s = cJSON_IsNumber(seq) ? (unsigned long long)seq->valuedouble : 0;
    pthread_mutex_lock(&r->lock);
    /* a reconnect replays the last events: keep each once (a restarted
     * service counts again from 1, with later times) */
    bool seen = s && s <= r->last_seq[rd->svc] && time->valuedouble <= r->last_time[rd->svc];
    if (!seen) {
        r->last_seq[rd->svc] = s;
        r->last_time[rd->svc] = time->valuedouble;
        cJSON_AddNumberToObject(ev, "t", round3(t));
        cJSON_AddItemToArray(r->events, cJSON_Duplicate(ev, true));
    }
    pthread_mutex_unlock(&r->lock);
    const char *kind = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ev, "event"));
    const char *breaker = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ev, "breaker"));
    const char *state = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ev, "state"));
    if (!seen && kind && breaker && state &&
        (strcmp(kind, "open") == 0 || strcmp(kind, "halfOpen") == 0 || strcmp(kind, "close") == 0)) {
        note_state(r, breaker, state, t);
        say_transition(r, rd->svc, ev, breaker, state);
    }
    if (!seen && kind && strcmp(kind, "chaos") == 0)
        note_outside(r, rd->svc, ev, t);
    cJSON_Delete(ev);
}

/* Handles one line of the stream (without its newline). */
static void reader_line(reader *rd, char *line)
{
    size_t n = strlen(line);
    if (n && line[n - 1] == '\r')
        line[--n] = '\0';
    if (n == 0)
        rd->breaker_event = false;
    else if (strncmp(line, "event: ", 7) == 0)
        rd->breaker_event = strcmp(line + 7, "breaker") == 0;
    else if (strncmp(line, "data: ", 6) == 0 && rd->breaker_event)
        reader_event(rd, line + 6);
}

/* libcurl write callback of a stream: splits into lines. Returns 0 (stop) when the run stops. */
static size_t reader_data(char *data, size_t size, size_t n, void *arg)
{
    reader *rd = arg;
    size_t len = size * n;
    if (atomic_load(&rd->r->stop))
        return 0;
    size_t from = 0;
    for (size_t i = 0; i < len; i++) {
        if (data[i] != '\n')
            continue;
        if (dynbuf_add(&rd->line, data + from, i - from))
            return 0;
        char empty[1] = "";
        reader_line(rd, rd->line.buf ? rd->line.buf : empty);
        dynbuf_free(&rd->line);
        from = i + 1;
    }
    return dynbuf_add(&rd->line, data + from, len - from) ? 0 : len;
}

/* libcurl progress callback of a stream: ends the transfer when the run stops. */
static int reader_progress(void *arg, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
    (void)a, (void)b, (void)c, (void)d;
    reader *rd = arg;
    return atomic_load(&rd->r->stop) ? 1 : 0;
}

/* A reader thread: follows one service's /events.stream, reconnecting until the run stops. */
static void *reader_main(void *arg)
{
    reader *rd = arg;
    chaos_run *r = rd->r;
    char url[300];
    snprintf(url, sizeof url, "%s/events.stream", r->urls[rd->svc]);
    while (!atomic_load(&r->stop)) {
        CURL *h = curl_easy_init();
        if (h) {
            dynbuf_free(&rd->line);
            rd->breaker_event = false;
            curl_easy_setopt(h, CURLOPT_URL, url);
            curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
            curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, SSE_STALL_S);
            /* a stream that says nothing for 3 s (it beats twice a second) is dead */
            curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
            curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, SSE_STALL_S);
            curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, reader_data);
            curl_easy_setopt(h, CURLOPT_WRITEDATA, rd);
            curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
            curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, reader_progress);
            curl_easy_setopt(h, CURLOPT_XFERINFODATA, rd);
            curl_easy_perform(h);
            curl_easy_cleanup(h);
        }
        nap(r, 0.2);
    }
    dynbuf_free(&rd->line);
    return NULL;
}

/* Records service svc's count of arrivals (its /health's requests.arrived) at time t. */
static void note_arrivals(chaos_run *r, int svc, const cJSON *h, double t)
{
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(h, "requests"), "arrived");
    if (!cJSON_IsNumber(n))
        return;
    pthread_mutex_lock(&r->lock);
    chaos_sample *s = grow(r->samples, r->nsamples, &r->capsamples, sizeof *r->samples, 256);
    if (s) {
        r->samples = s;
        r->samples[r->nsamples++] = (chaos_sample){ .t = t, .svc = svc, .arrived = n->valuedouble };
    }
    pthread_mutex_unlock(&r->lock);
}

/* Records a timed probe of service svc's route, sent at t and answered
 * (status, 0 for none) ms later; from a /health answer h (NULL for GET /),
 * the bulkhead's counts in its "workers". Takes the lock. */
static void note_timing(chaos_run *r, int svc, chaos_route route, double t, double ms, long status, const cJSON *h)
{
    const cJSON *w = cJSON_GetObjectItemCaseSensitive(h, "workers");
    const cJSON *busy = cJSON_GetObjectItemCaseSensitive(w, "busy");
    const cJSON *in_use = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(w, "chain"), "in_use");
    pthread_mutex_lock(&r->lock);
    chaos_timing *p = grow(r->timings, r->ntimings, &r->captimings, sizeof *r->timings, 256);
    if (p) {
        r->timings = p;
        r->timings[r->ntimings++] = (chaos_timing){
            .t = round3(t), .svc = svc, .route = route, .ms = round(ms * 10) / 10, .status = (int)status,
            .busy = cJSON_IsNumber(busy) ? busy->valuedouble : NAN,
            .in_use = cJSON_IsNumber(in_use) ? in_use->valuedouble : NAN,
        };
    }
    pthread_mutex_unlock(&r->lock);
}

/* Times one GET / of service svc (a route that needs a worker thread like
 * any other, but no next hop) and records it. */
static void probe_root(chaos_run *r, int svc)
{
    char url[300];
    snprintf(url, sizeof url, "%s/", r->urls[svc]);
    net_answer a;
    double asked = chaos_now(r);
    long st = net_request("GET", url, NULL, NULL, CHAOS_PROBE_TIMEOUT_MS, &a);
    note_timing(r, svc, CHAOS_ROUTE_ROOT, asked, (chaos_now(r) - asked) * 1000, st, NULL);
    net_answer_free(&a);
}

/* The poller: every breaker's state, each service's arrivals and the
 * bulkhead's counts, from /health four times a second, each /health timed;
 * every other round a timed GET / of each service too. An arrivals count
 * is dated halfway through its request. */
static void *poll_main(void *arg)
{
    chaos_run *r = arg;
    for (int round = 0; !nap(r, POLL_INTERVAL_S); round++) {
        for (int i = 0; i < CHAOS_NSVC && !atomic_load(&r->stop); i++) {
            char url[300];
            snprintf(url, sizeof url, "%s/health", r->urls[i]);
            net_answer a;
            double asked = chaos_now(r);
            long st = net_request("GET", url, NULL, NULL, CHAOS_PROBE_TIMEOUT_MS, &a);
            double answered = chaos_now(r);
            cJSON *h = st ? cJSON_Parse(a.body) : NULL;
            note_timing(r, i, CHAOS_ROUTE_HEALTH, asked, (answered - asked) * 1000, st, h);
            if (cJSON_IsObject(h)) {
                note_health(r, i, h, false);
                note_arrivals(r, i, h, (asked + answered) / 2);
            }
            cJSON_Delete(h);
            net_answer_free(&a);
            if (round % 2 == 0 && !atomic_load(&r->stop))
                probe_root(r, i);
        }
    }
    return NULL;
}

/* ---- probes and judgement ---------------------------------------------------------- */

/* qsort order of doubles, smallest first. */
static int by_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The state of band b at time t: its last point at or before t (its first when none). */
static const char *state_at(const chaos_band *b, double t)
{
    for (int k = b->n - 1; k >= 0; k--)
        if (b->pts[k].t <= t)
            return b->pts[k].state;
    return b->n ? b->pts[0].state : NULL;
}

/* The hypothesis over the first ("before") or last ("after") window. Returns p->ok. */
static bool hypothesis(chaos_run *r, chaos_probe *p, const char *when)
{
    const chaos_experiment *e = r->exp;
    bool before = strcmp(when, "before") == 0;
    p->when = when;
    p->lo = before ? 0.0 : e->seconds - e->window_s;
    p->hi = before ? e->window_s : e->seconds;
    double *lat = malloc(((size_t)r->nreqs + 1) * sizeof *lat);
    int n = 0, whole = 0;
    for (int i = 0; lat && i < r->nreqs; i++)
        if (r->reqs[i].t >= p->lo && r->reqs[i].t < p->hi) {
            lat[n++] = r->reqs[i].ms;
            whole += r->reqs[i].whole;
        }
    qsort(lat, (size_t)n, sizeof *lat, by_double);
    p->requests = n;
    p->ok_ratio = n ? round3((double)whole / n) : 0.0;
    p->p99_ms = n ? lat[(int)(n * 0.99) < n - 1 ? (int)(n * 0.99) : n - 1] : -1;
    free(lat);
    p->states = cJSON_CreateObject();
    char bad[600] = "";
    for (int i = 0; i < r->nbands; i++) {
        const chaos_band *b = &r->bands[i];
        const char *s = before ? state_at(b, p->hi) : (b->n ? b->pts[b->n - 1].state : NULL);
        if (!s)
            continue;
        cJSON_AddStringToObject(p->states, b->name, s);
        if (strcmp(chaos_plain(s), e->breakers) != 0) {
            size_t k = strlen(bad);
            snprintf(bad + k, sizeof bad - k, "%s%s: %s", k ? ", " : "", b->name, s);
        }
    }
    p->ok = n > 0 && p->ok_ratio >= e->ok_ratio && p->p99_ms <= e->p99_ms && !bad[0];
    if (r->aborted[0] && r->ended_at < p->hi) {
        /* the run stopped before this window ended: nothing to judge it by */
        p->ok = false;
        p->undecided = true;
        chaos_say(r, "hypothesis %s (%.1f-%.1f s): not decided: the run stopped at %.1f s, before this window "
                  "ended", when, p->lo, p->hi, r->ended_at);
        return false;
    }
    char p99[32], breakers[640];
    if (n)
        snprintf(p99, sizeof p99, "%.0f ms", p->p99_ms);
    else
        snprintf(p99, sizeof p99, "- (no requests)");
    if (bad[0])
        snprintf(breakers, sizeof breakers, "{%s}", bad);
    else
        snprintf(breakers, sizeof breakers, "all %s", e->breakers);
    chaos_say(r, "hypothesis %s (%.1f-%.1f s): %s: whole answers %.0f%% of %d (>= %.0f%%), p99 %s (<= %g ms), "
              "breakers %s", when, p->lo, p->hi, p->ok ? "held" : "NOT held", p->ok_ratio * 100, n,
              e->ok_ratio * 100, p99, e->p99_ms, breakers);
    return p->ok;
}

/* Judges a measure's expectation: met when the measure, taken over
 * [at, at + within], compares with the bound as written. */
static void judge_measure(chaos_run *r, chaos_expectation *x)
{
    const chaos_step *s = x->step;
    x->name = s->measure->name;
    x->met = false;
    if (s->measure->measure(r, s->measure_svc, s->at, s->at + s->within, &x->value, x->unmeasured,
                            sizeof x->unmeasured))
        return;
    x->met = chaos_op_holds(s->op, x->value, s->bound);
    x->met_at = s->at + s->within;
}

/* The band of breaker name, or NULL. Call with the lock held (or after the threads are done). */
static const chaos_band *band_named(const chaos_run *r, const char *name)
{
    for (int k = 0; k < r->nbands; k++)
        if (strcmp(r->bands[k].name, name) == 0)
            return &r->bands[k];
    return NULL;
}

/* Judges a state expectation from the bands recorded so far: met when the
 * breaker was seen in the state between at and at + within (or was in it at
 * at); when not, x->missed says what the breaker did in the window. Call
 * with the lock held (or after the threads are done). Returns x->met. */
static bool judge_state(const chaos_run *r, chaos_expectation *x)
{
    const chaos_step *s = x->step;
    const char *name = chaos_ref_name(r, s->breaker);
    x->name = name ? name : s->breaker;
    x->met = false;
    double lo = s->at, hi = s->at + s->within;
    const chaos_band *b = band_named(r, x->name);
    char label[128];
    chaos_ref_label(s->breaker, label, sizeof label);
    if (!b || b->n == 0) {
        snprintf(x->missed, sizeof x->missed, "%s was never seen (no /health or event named it)", label);
        return false;
    }
    for (int k = 0; k < b->n && !x->met; k++)
        if (b->pts[k].t >= lo && b->pts[k].t <= hi && strcmp(chaos_plain(b->pts[k].state), s->expect) == 0) {
            x->met = true;
            x->met_at = b->pts[k].t;
        }
    if (!x->met && strcmp(chaos_plain(state_at(b, lo)), s->expect) == 0) {
        x->met = true;
        x->met_at = lo;
    }
    if (x->met) {
        x->missed[0] = '\0';
        return true;
    }
    /* what it did instead: its last state in the window, and whether it moved */
    const chaos_point *last = &b->pts[0];
    bool moved = false;
    for (int k = 0; k < b->n && b->pts[k].t <= hi; k++) {
        last = &b->pts[k];
        moved = moved || b->pts[k].t > lo;
    }
    if (moved)
        snprintf(x->missed, sizeof x->missed, "%s was never %s from %.1f s to %.1f s; last state %s since %.1f s",
                 label, s->expect, lo, hi, chaos_plain(last->state), last->t);
    else
        snprintf(x->missed, sizeof x->missed, "%s stayed %s; last state %s since %.1f s", label,
                 chaos_plain(last->state), chaos_plain(last->state), last->t);
    return false;
}

/* Judges every expectation (the threads are done): a state from the bands,
 * a measure over its span. One the run stopped before deciding is undecided:
 * the run was aborted before its window closed, and it was not met. */
static void judge_expectations(chaos_run *r)
{
    for (int i = 0; i < r->nexpects; i++) {
        chaos_expectation *x = &r->expects[i];
        const chaos_step *s = x->step;
        if (s->measure)
            judge_measure(r, x);
        else
            judge_state(r, x);
        x->undecided = r->aborted[0] && !x->met && s->at + s->within > r->ended_at;
    }
}

/* An expectation's words with its window in run time: "payment -> shipment
 * open (3.0-12.0 s)", "amplification <= 1.3 (4.0-24.0 s)". */
static void expectation_words(const chaos_step *s, char *buf, size_t len)
{
    char label[128] = "";
    if (!s->measure)
        chaos_ref_label(s->breaker, label, sizeof label);
    snprintf(buf, len, "%s%s%s (%.1f-%.1f s)", label, label[0] ? " " : "", s->expect, s->at, s->at + s->within);
}

/* Says how an expectation was judged, after prefix: met (when, and how far
 * into its window), MISSED (why), or not decided. */
static void say_result(chaos_run *r, const chaos_expectation *x, const char *prefix)
{
    const chaos_step *s = x->step;
    char words[200];
    expectation_words(s, words, sizeof words);
    if (x->undecided)
        chaos_say(r, "%s%s: not decided: the run stopped at %.1f s, before its window closed", prefix, words,
                  r->ended_at);
    else if (s->measure && x->unmeasured[0])
        chaos_say(r, "%s%s: MISSED: not measured: %s", prefix, words, x->unmeasured);
    else if (s->measure)
        chaos_say(r, "%s%s: %s: %s%s%s was %.2f", prefix, words, x->met ? "met" : "MISSED",
                  s->measure_svc >= 0 ? chaos_services[s->measure_svc].name : "", s->measure_svc >= 0 ? "." : "",
                  x->name, x->value);
    else if (x->met && x->met_at <= s->at)
        chaos_say(r, "%s%s: met: already %s when its window opened", prefix, words, s->expect);
    else if (x->met)
        chaos_say(r, "%s%s: met: %s at %.1f s, %.1f s into its window", prefix, words, s->expect, x->met_at,
                  x->met_at - s->at);
    else
        chaos_say(r, "%s%s: MISSED: %s", prefix, words, x->missed);
}

/* Says each state expectation's result as soon as it is decided: met once
 * the breaker is seen in the state, missed once its window has closed. The
 * measures are decided after the load. Main thread. */
static void decide_live(chaos_run *r)
{
    double now = chaos_now(r);
    for (int i = 0; i < r->nexpects; i++) {
        chaos_expectation *x = &r->expects[i];
        if (x->told || x->step->measure)
            continue;
        pthread_mutex_lock(&r->lock);
        bool met = judge_state(r, x);
        pthread_mutex_unlock(&r->lock);
        if (met || now > x->step->at + x->step->within + DECIDE_GRACE_S) {
            say_result(r, x, "");
            x->told = true;
        }
    }
}

/* Says, every TALLY_S while the load runs, how its answers went so far:
 * whole, degraded (a 200 with a degraded hop or a hop short), error (any
 * other status, or none), and the p99 of those answered since the last tally. */
static void tally(chaos_run *r)
{
    double now = chaos_now(r);
    if (now < r->next_tally || atomic_load(&r->load_done))
        return;
    r->next_tally = now + TALLY_S;
    int whole = 0, degraded = 0, errors = 0, n = 0, total;
    pthread_mutex_lock(&r->lock);
    total = r->nreqs;
    double *lat = malloc(((size_t)(total - r->tally_from) + 1) * sizeof *lat);
    for (int i = 0; i < total; i++) {
        const chaos_request *q = &r->reqs[i];
        whole += q->whole;
        degraded += q->status == 200 && !q->whole;
        errors += q->status != 200;
        if (lat && i >= r->tally_from)
            lat[n++] = q->ms;
    }
    r->tally_from = total;
    pthread_mutex_unlock(&r->lock);
    char p99[64] = "no answer";
    if (n) {
        qsort(lat, (size_t)n, sizeof *lat, by_double);
        snprintf(p99, sizeof p99, "%.0f ms", lat[(int)(n * 0.99) < n - 1 ? (int)(n * 0.99) : n - 1]);
    }
    free(lat);
    chaos_say(r, "load: %d answers so far: %d whole, %d degraded, %d errors; p99 of the last %g s: %s", total,
              whole, degraded, errors, TALLY_S, p99);
}

/* What the main thread does while it waits: the tally, the expectations decided. */
static void narrate(chaos_run *r)
{
    tally(r);
    decide_live(r);
}

/* Sorts the requests by n (they are recorded as they answer). */
static int by_n(const void *a, const void *b)
{
    return ((const chaos_request *)a)->n - ((const chaos_request *)b)->n;
}

/* Waits until chaos_now() reaches t or a signal comes. Returns false on a signal. */
static bool wait_until(chaos_run *r, double t)
{
    while (!chaos_signal) {
        narrate(r);
        double left = t - chaos_now(r);
        if (left <= 0)
            return true;
        struct timespec ts = { 0, (long)((left < 0.05 ? left : 0.05) * 1e9) };
        nanosleep(&ts, NULL);
    }
    return false;
}

/* Sets r->aborted for the signal that came. */
static void note_signal(chaos_run *r)
{
    static const struct { int sig; const char *words; } names[] = {
        { SIGINT, "Ctrl-C" }, { SIGTERM, "SIGTERM" }, { SIGHUP, "SIGHUP: the terminal closed" },
    };
    const char *words = "a signal";
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i].sig == chaos_signal)
            words = names[i].words;
    snprintf(r->aborted, sizeof r->aborted, "interrupted (%s)", words);
    r->ended_at = chaos_now(r);
    chaos_say(r, "%s", r->aborted);
}

/* Carries out step s (chaos_act) with its span noted as the runner's own on
 * its service (every service for a shell command), so that the fault
 * changes it makes are not taken for changes from outside. Returns what
 * chaos_act() returns. */
static bool act_own(chaos_run *r, const chaos_step *s, const char *phase)
{
    int svc = s->command ? -1 : chaos_service_index(s->service);
    bool noted = false;
    pthread_mutex_lock(&r->lock);
    if (svc >= 0 || s->command) {
        chaos_own *own = grow(r->own, r->nown, &r->capown, sizeof *r->own, 8);
        if (own) {
            r->own = own;
            r->own[r->nown++] = (chaos_own){ .svc = svc, .lo_ms = (double)wall_ms(), .hi_ms = INFINITY };
            noted = true;
        }
    }
    int k = r->nown - 1;
    pthread_mutex_unlock(&r->lock);
    bool ok = chaos_act(r, s, phase);
    if (noted) {
        pthread_mutex_lock(&r->lock);
        r->own[k].hi_ms = (double)wall_ms();
        pthread_mutex_unlock(&r->lock);
    }
    return ok;
}

/* Moves the changes from outside into r->actions, each at its time among
 * the method's actions (the threads are done). Can't fail. */
static void merge_outside(chaos_run *r)
{
    cJSON *rec;
    while ((rec = cJSON_DetachItemFromArray(r->outside, 0))) {
        double t = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(rec, "t"));
        cJSON *after = r->actions->child;
        for (; after; after = after->next) {
            const char *phase = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(after, "phase"));
            if (!phase || strcmp(phase, "rollback") == 0 ||
                cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(after, "t")) > t)
                break;
        }
        int at = 0;
        for (cJSON *a = r->actions->child; a && a != after; a = a->next)
            at++;
        if (after)
            cJSON_InsertItemInArray(r->actions, at, rec);
        else
            cJSON_AddItemToArray(r->actions, rec);
    }
}

/* The run's worker threads, and which of them started. */
typedef struct workers {
    pthread_t load, poller, readers[CHAOS_NSVC];
    reader rd[CHAOS_NSVC];
    bool load_on, poller_on, reader_on[CHAOS_NSVC];
} workers;

/* Stops the threads that started (sets r->stop) and waits for them. Can't fail. */
static void stop_workers(chaos_run *r, workers *w)
{
    atomic_store(&r->stop, true);
    if (w->load_on)
        pthread_join(w->load, NULL);
    if (w->poller_on)
        pthread_join(w->poller, NULL);
    for (int i = 0; i < CHAOS_NSVC; i++)
        if (w->reader_on[i])
            pthread_join(w->readers[i], NULL);
}

/* Starts the worker threads with SIGINT, SIGTERM and SIGHUP blocked, so that only the
 * main thread sees them. Returns 0, or -1 when one could not start (then
 * those that did are stopped again). */
static int start_workers(chaos_run *r, workers *w)
{
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    bool ok = true;
    for (int i = 0; i < CHAOS_NSVC; i++) {
        w->rd[i] = (reader){ .r = r, .svc = i };
        dynbuf_init(&w->rd[i].line, SSE_MAX_LINE);
        ok = ok && (w->reader_on[i] = pthread_create(&w->readers[i], NULL, reader_main, &w->rd[i]) == 0);
    }
    ok = ok && (w->poller_on = pthread_create(&w->poller, NULL, poll_main, r) == 0);
    ok = ok && (w->load_on = pthread_create(&w->load, NULL, load_main, r) == 0);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (!ok)
        stop_workers(r, w);
    return ok ? 0 : -1;
}

/* Says the lesson (its title and text), what the run does and, when the
 * experiment names them, the settings the stack needs. Before the load starts. */
static void say_start(chaos_run *r)
{
    const chaos_experiment *e = r->exp;
    chaos_say(r, "%s", e->title);
    if (e->lesson)
        chaos_say_wrapped(r, 2, e->lesson);
    if (e->ramp_to != e->rate)
        chaos_say(r, "load: a ramp from %g to %g requests a second over %g s (%d requests, open loop); times "
                  "below are seconds since the load started", e->rate, e->ramp_to, e->seconds, chaos_load_total(e));
    else
        chaos_say(r, "load: %g requests a second for %g s; times below are seconds since the load started",
                  e->rate, e->seconds);
    if (e->capacity > 0)
        chaos_say(r, "capacity: %g requests a second (the rates \"<k>x\" are multiples of it): the load goes from "
                  "%.2fx to %.2fx", e->capacity, e->rate / e->capacity, e->ramp_to / e->capacity);
    if (!e->requires)
        return;
    char need[400] = "";
    const cJSON *k;
    cJSON_ArrayForEach(k, e->requires) {
        size_t n = strlen(need);
        snprintf(need + n, sizeof need - n, " %s=%s", k->string, k->valuestring);
    }
    chaos_say(r, "the running stack has what this experiment requires:%s", need);
}

/* Announces an expectation as its window opens: "from 3.0 s to 12.0 s:
 * expect payment -> shipment open", and its why. */
static void announce(chaos_run *r, const chaos_step *s)
{
    char label[128] = "";
    if (!s->measure)
        chaos_ref_label(s->breaker, label, sizeof label);
    chaos_say(r, "from %.1f s to %.1f s: expect %s%s%s%s", s->at, s->at + s->within, label, label[0] ? " " : "",
              s->expect, s->measure ? " (measured after the load)" : "");
    if (s->why)
        chaos_say(r, "    why: %s", s->why);
}

/* The method: each step at its time, an action carried out, an expectation
 * noted for judging. Stops early (r->aborted says why) when an action fails
 * or a signal comes. */
static void run_method(chaos_run *r)
{
    const chaos_experiment *e = r->exp;
    for (int i = 0; i < e->nmethod && !r->aborted[0]; i++) {
        const chaos_step *s = &e->method[i];
        if (s->at > chaos_now(r) && !wait_until(r, s->at)) {
            note_signal(r);
            break;
        }
        if (s->expect) {
            r->expects[r->nexpects++] = (chaos_expectation){ .step = s };
            announce(r, s);
        } else if (!act_own(r, s, "method")) {
            snprintf(r->aborted, sizeof r->aborted, "action %s at %g s failed", s->action, s->at);
            r->ended_at = chaos_now(r);
        }
    }
}

/* Waits for the whole load: every request sent and answered (or timed out),
 * unless the run was aborted or a signal comes. */
static void wait_load(chaos_run *r)
{
    while (!r->aborted[0] && !atomic_load(&r->load_done)) {
        if (chaos_signal) {
            note_signal(r);
            break;
        }
        narrate(r);
        struct timespec ts = { 0, 50 * 1000000L };
        nanosleep(&ts, NULL);
    }
}

/* Judges the run from its records (the threads are done): the expectations,
 * the hypothesis before and after, the stored probe, the late-sends note.
 * Sets r->passed. */
static void judge(chaos_run *r)
{
    const chaos_experiment *e = r->exp;
    qsort(r->reqs, (size_t)r->nreqs, sizeof *r->reqs, by_n);
    bool dups = false, amp = false;
    for (int i = 0; i < r->nexpects; i++) {
        const chaos_measure *m = r->expects[i].step->measure;
        dups = dups || (m && strcmp(m->name, "duplicates") == 0);
        amp = amp || (m && strcmp(m->name, "amplification") == 0);
    }
    if (dups)
        chaos_duplicates_count(r);
    if (amp && (r->amplification = malloc(((size_t)e->seconds + 1) * sizeof *r->amplification))) {
        r->namplification = (int)e->seconds;
        chaos_amplification_series(r, r->amplification, r->namplification);
    }
    int secs = (int)ceil(e->seconds);
    if ((r->per_second = calloc((size_t)secs + 1, sizeof *r->per_second)) &&
        chaos_per_second(r, r->per_second, secs) == 0)
        r->nper_second = secs;
    judge_expectations(r);
    chaos_traces_pick(r);
    bool before = hypothesis(r, &r->probes[0], "before");
    bool after = hypothesis(r, &r->probes[1], "after");
    r->stored.asked = e->stored;
    if (e->stored)
        chaos_stored_check(r);
    if (r->max_late_s > CHAOS_LATE_S)
        chaos_say(r, "note: %d requests went out more than %.1f s late, the worst by %.1f s (due at %.1f s): "
                  "this machine did not run the runner on time, and the latencies around then include "
                  "that stall", r->late_sends, CHAOS_LATE_S, r->max_late_s, r->max_late_at);
    bool met = true;
    for (int i = 0; i < r->nexpects; i++) {
        say_result(r, &r->expects[i], "expectation ");
        met = met && r->expects[i].met;
    }
    r->passed = before && after && met && !r->aborted[0] && (!r->stored.asked || r->stored.result != 0);
}

/* Writes the journal and the picture and says the verdict. Returns 0 when
 * the run passed, 1 when it did not, 2 when the output could not be written. */
static int write_verdict(chaos_run *r)
{
    char err[600];
    if (chaos_journal_write(r, err, sizeof err) || chaos_svg_write(r, err, sizeof err)) {
        chaos_say(r, "verdict: %s; but %s", r->passed ? "PASSED" : "FAILED", err);
        fprintf(stderr, "chaos: %s\n", err);
        return 2;
    }
    chaos_traces_say(r);
    char note[700] = "";
    if (r->aborted[0])
        snprintf(note, sizeof note, " (%s)", r->aborted);
    if (r->stored.asked && r->stored.result < 0) {
        size_t k = strlen(note);
        snprintf(note + k, sizeof note - k, " (the stored probe was SKIPPED)");
    }
    chaos_say(r, "verdict: %s%s; journal and picture in %s", r->passed ? "PASSED" : "FAILED", note, r->out);
    return r->passed ? 0 : 1;
}

/* 64 random bits for the run's trace ids (never 0). */
static unsigned long long run_trace_base(void)
{
    unsigned long long v = 0;
    FILE *f = fopen("/dev/urandom", "rb");
    if (!f || fread(&v, sizeof v, 1, f) != 1)
        v = (unsigned long long)wall_ms() * 2654435761ULL ^ (unsigned long long)getpid();
    if (f)
        fclose(f);
    return v ? v : 1;
}

int chaos_run_experiment(chaos_run *r)
{
    const chaos_experiment *e = r->exp;
    r->actions = cJSON_CreateArray();
    r->events = cJSON_CreateArray();
    r->outside = cJSON_CreateArray();
    r->expects = calloc((size_t)e->nmethod + 1, sizeof *r->expects);
    say_start(r);
    r->t0 = chaos_mono();
    r->next_tally = TALLY_S;
    r->wall0_ms = (double)wall_ms() - 50;
    r->trace_base = run_trace_base();
    workers w = { 0 };
    if (!r->actions || !r->events || !r->outside || !r->expects || start_workers(r, &w)) {
        fprintf(stderr, "chaos: cannot start the run's threads (out of memory)\n");
        return 2;
    }
    run_method(r);
    wait_load(r);
    /* the rollbacks run whatever happened */
    for (int i = 0; i < e->nrollbacks; i++)
        act_own(r, &e->rollbacks[i], "rollback");
    chaos_tune_restore(r);
    stop_workers(r, &w);
    merge_outside(r);
    /* the threads are done: what follows reads the records without the lock */
    judge(r);
    return write_verdict(r);
}

void chaos_run_free(chaos_run *r)
{
    free(r->reqs);
    cJSON_Delete(r->events);
    cJSON_Delete(r->actions);
    cJSON_Delete(r->tuned);
    cJSON_Delete(r->outside);
    free(r->own);
    for (int i = 0; i < r->nbands; i++) {
        free(r->bands[i].name);
        free(r->bands[i].pts);
    }
    free(r->bands);
    free(r->samples);
    free(r->timings);
    free(r->amplification);
    free(r->per_second);
    for (int i = 0; i < r->nrefs; i++) {
        free(r->refs[i]);
        free(r->ref_names[i]);
    }
    free(r->expects);
    for (int i = 0; i < 2; i++)
        cJSON_Delete(r->probes[i].states);
    pthread_mutex_destroy(&r->lock);
}
