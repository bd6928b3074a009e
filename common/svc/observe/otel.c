/* otel.c -- spans and their OTLP/HTTP JSON exporter (see otel.h). */
#include "otel.h"

#include <cJSON.h>
#include <curl/curl.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dynbuf.h"
#include "log.h"
#include "strbuf.h"
#include "timedwait.h"
#include "trace.h"

#define OTEL_MAX_ATTRS 14
#define OTEL_MAX_EVENTS 12
#define OTEL_VALUE_MAX 120

typedef struct otel_attr {
    const char *key;                  /* a literal */
    enum { A_STR, A_INT, A_BOOL } type;
    int64_t i;
    char s[OTEL_VALUE_MAX];
} otel_attr;

typedef struct otel_event {
    const char *name;                 /* a literal */
    int64_t time_ns;
    const char *state;                /* the breaker's state after it */
    double latency_ms;                /* < 0: none */
    const char *error;                /* CB_E* name, or NULL */
} otel_event;

struct otel_span {
    char trace[33], id[17], parent[17];
    char name[64];
    otel_kind kind;
    int64_t start_ns, end_ns;         /* CLOCK_REALTIME */
    int status;                       /* 0 unset, 2 error */
    char message[OTEL_VALUE_MAX];
    int nattrs;
    otel_attr attrs[OTEL_MAX_ATTRS];
    atomic_int nevents;               /* copies of a hedged call add from their threads */
    _Atomic(const char *) verdict;    /* a breaker call's last success/failure/timeout/reject event */
    otel_event events[OTEL_MAX_EVENTS];
    otel_span *next;                  /* in the queue */
};

/* ---- the exporter's state ------------------------------------------------ */

static struct {
    bool on;
    otel_config c;
    uint64_t threshold;               /* the ratio as a bound on a trace id's low 64 bits */
    pthread_mutex_t lock;
    pthread_cond_t wake;
    otel_span *head, *tail;
    int queued;
    bool stopping;
    pthread_t thread;
    atomic_uint_fast64_t started, exported, dropped, failed;
} ex = { .lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER };

static _Thread_local otel_span *request_span;
static _Thread_local otel_span *listening;

bool otel_on(void)
{
    return ex.on;
}

void otel_get_stats(otel_stats *s)
{
    s->on = ex.on;
    s->started = atomic_load(&ex.started);
    s->exported = atomic_load(&ex.exported);
    s->dropped = atomic_load(&ex.dropped);
    s->failed_exports = atomic_load(&ex.failed);
    pthread_mutex_lock(&ex.lock);
    s->queued = ex.queued;
    pthread_mutex_unlock(&ex.lock);
}

#define SAMPLER_NAME(value, name) [value] = name,
static const char *const sampler_names[] = { OTEL_SAMPLERS(SAMPLER_NAME) };
#undef SAMPLER_NAME

cJSON *otel_report(void)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    otel_stats st;
    otel_get_stats(&st);
    cJSON_AddBoolToObject(o, "on", st.on);
    if (ex.c.query_url)
        cJSON_AddStringToObject(o, "query_url", ex.c.query_url);
    if (!st.on)
        return o;
    cJSON_AddStringToObject(o, "endpoint", ex.c.url);
    cJSON_AddStringToObject(o, "service", ex.c.service);
    if ((unsigned)ex.c.sampler < sizeof sampler_names / sizeof sampler_names[0])
        cJSON_AddStringToObject(o, "sampler", sampler_names[ex.c.sampler]);
    cJSON_AddNumberToObject(o, "ratio", ex.c.ratio);
    cJSON_AddNumberToObject(o, "started", (double)st.started);
    cJSON_AddNumberToObject(o, "exported", (double)st.exported);
    cJSON_AddNumberToObject(o, "dropped", (double)st.dropped);
    cJSON_AddNumberToObject(o, "failed_exports", (double)st.failed_exports);
    cJSON_AddNumberToObject(o, "queued", st.queued);
    return o;
}

static int64_t wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- spans ----------------------------------------------------------------- */

/* Copies src into dst[size], cut to fit, NUL-terminated: what snprintf's
 * "%s" does, without its cost on a request's path. */
static void copy_cut(char *dst, size_t size, const char *src)
{
    size_t n = strnlen(src, size - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static otel_span *span_new(const char *trace, const char *parent, const char *name, otel_kind kind)
{
    otel_span *s = malloc(sizeof *s);
    if (!s) {
        atomic_fetch_add(&ex.dropped, 1);
        return NULL;
    }
    memcpy(s->trace, trace, 33);
    trace_new_span_id(s->id);
    copy_cut(s->parent, sizeof s->parent, parent ? parent : "");
    copy_cut(s->name, sizeof s->name, name);
    s->kind = kind;
    s->start_ns = wall_ns();
    s->end_ns = 0;
    s->status = 0;
    s->message[0] = '\0';
    s->nattrs = 0;
    atomic_init(&s->nevents, 0);
    atomic_init(&s->verdict, NULL);
    s->next = NULL;
    atomic_fetch_add(&ex.started, 1);
    return s;
}

/* Decides whether the request of t is sampled (OpenTelemetry's samplers). */
static bool sample(const trace_ctx *t)
{
    int s = ex.c.sampler;
    if (t->parent[0] && s >= OTEL_PARENT_ALWAYS_ON)
        return t->sampled;    /* parent-based: the caller decided */
    if (s == OTEL_ALWAYS_ON || s == OTEL_PARENT_ALWAYS_ON)
        return true;
    if (s == OTEL_ALWAYS_OFF || s == OTEL_PARENT_ALWAYS_OFF)
        return false;
    /* TraceIdRatioBased: the trace id's last 16 hex digits below ratio * 2^64,
     * so every hop that sees this id decides alike */
    uint64_t low = strtoull(t->id + 16, NULL, 16);
    return ex.c.ratio >= 1.0 || low < ex.threshold;
}

otel_span *otel_request_begin(const char *name)
{
    request_span = NULL;
    const trace_ctx *t = trace_current();
    if (!ex.on || !t || !t->w3c)
        return NULL;
    bool yes = sample(t);
    trace_set_sampled(yes);
    if (!yes)
        return NULL;
    request_span = span_new(t->id, t->parent, name, OTEL_SERVER);
    return request_span;
}

otel_span *otel_request_span(void)
{
    return request_span;
}

void otel_request_end(int status)
{
    otel_span *s = request_span;
    request_span = NULL;
    if (!s)
        return;
    otel_int(s, "http.response.status_code", status);
    if (status >= 500)
        otel_fail(s, "server error");
    else
        otel_end(s);
}

otel_span *otel_child(otel_span *parent, const char *name, otel_kind kind)
{
    return parent ? span_new(parent->trace, parent->id, name, kind) : NULL;
}

const char *otel_span_id(const otel_span *s)
{
    return s ? s->id : "";
}

static otel_attr *attr_slot(otel_span *s, const char *key)
{
    for (int i = 0; i < s->nattrs; i++)
        if (!strcmp(s->attrs[i].key, key))
            return &s->attrs[i];
    if (s->nattrs == OTEL_MAX_ATTRS)
        return NULL;
    otel_attr *a = &s->attrs[s->nattrs++];
    a->key = key;
    return a;
}

void otel_str(otel_span *s, const char *key, const char *value)
{
    otel_attr *a = s && value ? attr_slot(s, key) : NULL;
    if (a) {
        a->type = A_STR;
        copy_cut(a->s, sizeof a->s, value);
    }
}

void otel_int(otel_span *s, const char *key, int64_t value)
{
    otel_attr *a = s ? attr_slot(s, key) : NULL;
    if (a) {
        a->type = A_INT;
        a->i = value;
    }
}

void otel_bool(otel_span *s, const char *key, bool value)
{
    otel_attr *a = s ? attr_slot(s, key) : NULL;
    if (a) {
        a->type = A_BOOL;
        a->i = value;
    }
}

/* Queues an ended span for the exporter, or drops it when the queue is full. */
static void enqueue(otel_span *s)
{
    pthread_mutex_lock(&ex.lock);
    if (ex.queued >= ex.c.queue_size || ex.stopping) {
        pthread_mutex_unlock(&ex.lock);
        atomic_fetch_add(&ex.dropped, 1);
        free(s);
        return;
    }
    if (ex.tail)
        ex.tail->next = s;
    else
        ex.head = s;
    ex.tail = s;
    if (++ex.queued == ex.c.batch_size)
        pthread_cond_signal(&ex.wake);
    pthread_mutex_unlock(&ex.lock);
}

void otel_end(otel_span *s)
{
    if (!s)
        return;
    s->end_ns = wall_ns();
    if (s->end_ns < s->start_ns)
        s->end_ns = s->start_ns;
    enqueue(s);
}

void otel_fail(otel_span *s, const char *message)
{
    if (!s)
        return;
    s->status = 2;
    copy_cut(s->message, sizeof s->message, message ? message : "");
    otel_end(s);
}

/* ---- breaker calls ----------------------------------------------------------- */

otel_span *otel_breaker_begin(cb_breaker *b, const char *label)
{
    otel_span *parent = request_span;
    if (!parent)
        return NULL;
    char name[64];
    snprintf(name, sizeof name, "breaker %s", label);
    otel_span *s = otel_child(parent, name, OTEL_INTERNAL);
    otel_str(s, "breaker.name", cb_name(b));
    otel_str(s, "breaker.label", label);
    otel_str(s, "breaker.state.before", cb_state_name(cb_get_state(b)));
    listening = s;
    return s;
}

void otel_breaker_listen(otel_span *s)
{
    listening = s;
}

void otel_breaker_end(otel_span *s, cb_breaker *b, int rc, const cb_result *res)
{
    listening = NULL;
    if (!s)
        return;
    /* the breaker's own verdict when its event came on this span: an error
     * its filter does not count (a document the database refused) is a
     * success to the breaker, though the call returned CB_EFAILED */
    const char *outcome = atomic_load(&s->verdict);
    if (!outcome)
        outcome = rc == CB_OK ? "success" : rc == CB_ETIMEDOUT ? "timeout"
                : rc == CB_EOPEN || rc == CB_ESEMLOCKED ? "reject" : "failure";
    if (res && res->fallback) {
        otel_str(s, "breaker.cause", outcome);   /* what the fallback answered for */
        outcome = "fallback";
    }
    otel_str(s, "breaker.outcome", outcome);
    otel_str(s, "breaker.state.after", cb_state_name(cb_get_state(b)));
    if (rc == CB_OK || !strcmp(outcome, "success"))
        otel_end(s);
    else
        otel_fail(s, outcome);
}

/* The span event's name for a breaker event: opossum's event names. */
static const char *event_name(cb_event_kind k)
{
    switch (k) {
    case CB_EV_SUCCESS: return "success";
    case CB_EV_FAILURE: return "failure";
    case CB_EV_TIMEOUT: return "timeout";
    case CB_EV_REJECT: return "reject";
    case CB_EV_OPEN: return "open";
    case CB_EV_HALF_OPEN: return "halfOpen";
    case CB_EV_CLOSE: return "close";
    case CB_EV_FALLBACK: return "fallback";
    case CB_EV_SEMAPHORE_LOCKED: return "semaphoreLocked";
    default: return NULL;
    }
}

void otel_breaker_event(cb_breaker *b, const cb_event *ev, void *ctx)
{
    (void)b;
    (void)ctx;
    otel_span *s = listening;
    const char *name = s ? event_name(ev->kind) : NULL;
    if (!name)
        return;
    if (ev->kind == CB_EV_SUCCESS || ev->kind == CB_EV_TIMEOUT || ev->kind == CB_EV_REJECT)
        atomic_store(&s->verdict, name);
    else if (ev->kind == CB_EV_FAILURE && ev->error != CB_ETIMEDOUT)   /* not a timeout's echo */
        atomic_store(&s->verdict, name);
    int i = atomic_fetch_add(&s->nevents, 1);
    if (i >= OTEL_MAX_EVENTS)
        return;
    otel_event *e = &s->events[i];
    e->name = name;
    e->time_ns = wall_ns();
    e->state = cb_state_name(ev->state);
    e->latency_ms = ev->kind == CB_EV_SUCCESS || ev->kind == CB_EV_FAILURE ||
                    ev->kind == CB_EV_TIMEOUT ? ev->latency_ms : -1;
    e->error = ev->error ? cb_err_name(ev->error) : NULL;
}

/* ---- OTLP JSON ----------------------------------------------------------------- */

/* A span's JSON at most: every attribute and event at its longest, each
 * character of a value escaped as \u00XX (6 bytes), with room to spare. A
 * span that would not fit (it cannot) is dropped, never sent cut. */
#define SPAN_JSON_MAX (OTEL_MAX_ATTRS * (128 + 6 * OTEL_VALUE_MAX) + OTEL_MAX_EVENTS * 512 + \
                       6 * (64 + OTEL_VALUE_MAX) + 1024)

/* Appends s as a JSON string: runs of plain characters in one copy. */
static void json_str(strbuf *b, const char *s)
{
    sb_lit(b, "\"");
    const char *run = s;
    for (const unsigned char *p = (const unsigned char *)s;; p++) {
        if (*p && *p != '"' && *p != '\\' && *p >= 0x20)
            continue;
        sb_mem(b, run, (size_t)((const char *)p - run));
        if (!*p)
            break;
        if (*p == '"' || *p == '\\') {
            char esc[2] = { '\\', (char)*p };
            sb_mem(b, esc, 2);
        } else {
            static const char hex[] = "0123456789abcdef";
            char esc[6] = { '\\', 'u', '0', '0', hex[*p >> 4], hex[*p & 15] };
            sb_mem(b, esc, 6);
        }
        run = (const char *)p + 1;
    }
    sb_lit(b, "\"");
}

/* Appends v in decimal, its sign too. */
static void json_int(strbuf *b, int64_t v)
{
    if (v < 0) {
        sb_lit(b, "-");
        sb_uint(b, (unsigned long long)0 - (unsigned long long)v, 1);
    } else {
        sb_uint(b, (unsigned long long)v, 1);
    }
}

/* Appends v as "%.3f" does; 0 for NaN and the infinities, which JSON cannot say. */
static void json_thousandths(strbuf *b, double v)
{
    if (isfinite(v))
        sb_decimals(b, v, 3);
    else
        sb_lit(b, "0");
}

/* {"key":"<key>","value":{"stringValue":"<value>"}}; key is a literal of ours. */
static void json_kv_str(strbuf *b, const char *key, const char *value)
{
    sb_lit(b, "{\"key\":\"");
    sb_str(b, key, 64);
    sb_lit(b, "\",\"value\":{\"stringValue\":");
    json_str(b, value);
    sb_lit(b, "}}");
}

/* Appends one span's JSON: no printf, so that encoding costs little next
 * to recording (with printf it was most of the exporter's time). */
static void encode_span(strbuf *b, const otel_span *s)
{
    sb_lit(b, "{\"traceId\":\"");
    sb_str(b, s->trace, 32);
    sb_lit(b, "\",\"spanId\":\"");
    sb_str(b, s->id, 16);
    sb_lit(b, "\"");
    if (s->parent[0]) {
        sb_lit(b, ",\"parentSpanId\":\"");
        sb_str(b, s->parent, 16);
        sb_lit(b, "\"");
    }
    sb_lit(b, ",\"name\":");
    json_str(b, s->name);
    sb_lit(b, ",\"kind\":");
    sb_uint(b, (unsigned)s->kind, 1);
    sb_lit(b, ",\"startTimeUnixNano\":\"");
    json_int(b, s->start_ns);
    sb_lit(b, "\",\"endTimeUnixNano\":\"");
    json_int(b, s->end_ns);
    sb_lit(b, "\",\"attributes\":[");
    for (int i = 0; i < s->nattrs; i++) {
        const otel_attr *a = &s->attrs[i];
        if (i)
            sb_lit(b, ",");
        if (a->type == A_STR) {
            json_kv_str(b, a->key, a->s);
            continue;
        }
        sb_lit(b, "{\"key\":\"");
        sb_str(b, a->key, 64);
        if (a->type == A_INT) {
            sb_lit(b, "\",\"value\":{\"intValue\":\"");
            json_int(b, a->i);
            sb_lit(b, "\"}}");
        } else if (a->i) {
            sb_lit(b, "\",\"value\":{\"boolValue\":true}}");
        } else {
            sb_lit(b, "\",\"value\":{\"boolValue\":false}}");
        }
    }
    sb_lit(b, "],\"events\":[");
    int n = atomic_load(&s->nevents);
    if (n > OTEL_MAX_EVENTS)
        n = OTEL_MAX_EVENTS;
    for (int i = 0; i < n; i++) {
        const otel_event *e = &s->events[i];
        sb_str(b, i ? ",{\"timeUnixNano\":\"" : "{\"timeUnixNano\":\"", 32);
        json_int(b, e->time_ns);
        sb_lit(b, "\",\"name\":\"");
        sb_str(b, e->name, 32);
        sb_lit(b, "\",\"attributes\":[");
        json_kv_str(b, "breaker.state", e->state);
        if (e->latency_ms >= 0) {
            sb_lit(b, ",{\"key\":\"breaker.latency_ms\",\"value\":{\"doubleValue\":");
            json_thousandths(b, e->latency_ms);
            sb_lit(b, "}}");
        }
        if (e->error) {
            sb_lit(b, ",");
            json_kv_str(b, "error.type", e->error);
        }
        sb_lit(b, "]}");
    }
    sb_lit(b, "]");
    if (s->status) {
        sb_lit(b, ",\"status\":{\"code\":2,\"message\":");
        json_str(b, s->message);
        sb_lit(b, "}");
    }
    sb_lit(b, "}");
}

/* The body of one POST in d (emptied first): every span of the list from
 * head, each encoded in span (SPAN_JSON_MAX bytes). Returns the spans
 * encoded; a span that did not fit is left out and counted in *lost. On
 * -1 (d's cap or memory) nothing is to be sent. */
static int encode_batch(dynbuf *d, char *span, const otel_span *head, int *lost)
{
    char head_buf[512];
    strbuf b;
    sb_init(&b, head_buf, sizeof head_buf);
    sb_lit(&b, "{\"resourceSpans\":[{\"resource\":{\"attributes\":[");
    json_kv_str(&b, "service.name", ex.c.service);
    if (ex.c.instance) {
        sb_lit(&b, ",");
        json_kv_str(&b, "service.instance.id", ex.c.instance);
    }
    sb_lit(&b, "]},\"scopeSpans\":[{\"scope\":{\"name\":\"resilience-suite\"},\"spans\":[");
    dynbuf_clear(d);
    int rc = sb_full(&b) ? -1 : dynbuf_add(d, head_buf, sb_len(&b));
    int n = 0;
    *lost = 0;
    for (const otel_span *s = head; s && !rc; s = s->next) {
        sb_init(&b, span, SPAN_JSON_MAX);
        if (n)
            sb_lit(&b, ",");
        encode_span(&b, s);
        if (sb_full(&b)) {
            ++*lost;
            continue;
        }
        rc = dynbuf_add(d, span, sb_len(&b));
        n++;
    }
    if (!rc)
        rc = dynbuf_add(d, "]}]}]}", 6);
    return rc ? -1 : n;
}

static size_t discard(char *p, size_t size, size_t n, void *user)
{
    (void)p;
    (void)user;
    return size * n;
}

static void free_spans(otel_span *head)
{
    while (head) {
        otel_span *next = head->next;
        free(head);
        head = next;
    }
}

/* POSTs the spans from head (n of them) and frees them; d and span are the
 * exporter's buffers, kept from one batch to the next. */
static void export_batch(CURL *k, dynbuf *d, char *span, otel_span *head, int n)
{
    int lost = 0;
    int sent = encode_batch(d, span, head, &lost);
    free_spans(head);
    long status = 0;
    CURLcode rc = CURLE_OUT_OF_MEMORY;
    if (sent > 0) {
        curl_easy_setopt(k, CURLOPT_POSTFIELDS, dynbuf_text(d));
        curl_easy_setopt(k, CURLOPT_POSTFIELDSIZE, (long)dynbuf_len(d));
        rc = curl_easy_perform(k);
        curl_easy_getinfo(k, CURLINFO_RESPONSE_CODE, &status);
    }
    if (lost)
        atomic_fetch_add(&ex.dropped, (uint64_t)lost);
    if (sent == 0)
        return;
    if (sent > 0 && rc == CURLE_OK && status >= 200 && status < 300) {
        atomic_fetch_add(&ex.exported, (uint64_t)sent);
    } else {
        atomic_fetch_add(&ex.failed, 1);
        atomic_fetch_add(&ex.dropped, (uint64_t)(sent > 0 ? sent : n - lost));
        if (atomic_load(&ex.failed) == 1)   /* said once: a collector that is gone stays gone */
            log_message(true, "spans could not be sent to %s (%s); they are dropped and counted "
                        "(otel_spans_dropped_total)", ex.c.url,
                        sent < 0 ? "the batch is too big to encode (OTEL_BSP_MAX_EXPORT_BATCH_SIZE)"
                        : rc != CURLE_OK ? curl_easy_strerror(rc) : "refused by the collector");
    }
    /* a batch far above the usual keeps no more than 4 MB held between sends */
    if (d->alloc > ((size_t)4 << 20))
        dynbuf_free(d);
}

/* Takes up to batch_size spans off the queue; *n gets how many. */
static otel_span *take_batch(int *n)
{
    otel_span *head = ex.head, *last = NULL;
    int i = 0;
    for (otel_span *s = head; s && i < ex.c.batch_size; s = s->next, i++)
        last = s;
    if (!last) {
        *n = 0;
        return NULL;
    }
    ex.head = last->next;
    if (!ex.head)
        ex.tail = NULL;
    last->next = NULL;
    ex.queued -= i;
    *n = i;
    return head;
}

static void *exporter(void *arg)
{
    (void)arg;
    CURL *k = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    dynbuf body;                      /* a batch's JSON, its memory kept between batches */
    dynbuf_init(&body, (size_t)64 << 20);
    char *span = malloc(SPAN_JSON_MAX);
    if (k && !span) {
        curl_easy_cleanup(k);
        k = NULL;
    }
    if (k) {
        curl_easy_setopt(k, CURLOPT_URL, ex.c.url);
        curl_easy_setopt(k, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(k, CURLOPT_TIMEOUT_MS, (long)ex.c.timeout_ms);
        curl_easy_setopt(k, CURLOPT_CONNECTTIMEOUT_MS, (long)ex.c.timeout_ms);
        curl_easy_setopt(k, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(k, CURLOPT_WRITEFUNCTION, discard);
    }
    pthread_mutex_lock(&ex.lock);
    for (;;) {
        if (!ex.stopping && ex.queued < ex.c.batch_size)
            cond_wait_ms(&ex.wake, &ex.lock, ex.c.delay_ms);
        int n;
        otel_span *batch = take_batch(&n);
        if (!batch && ex.stopping)
            break;
        if (!batch)
            continue;
        pthread_mutex_unlock(&ex.lock);
        if (k) {
            export_batch(k, &body, span, batch, n);
        } else {
            atomic_fetch_add(&ex.dropped, (uint64_t)n);
            free_spans(batch);
        }
        pthread_mutex_lock(&ex.lock);
    }
    pthread_mutex_unlock(&ex.lock);
    curl_easy_cleanup(k);
    curl_slist_free_all(h);
    dynbuf_free(&body);
    free(span);
    return NULL;
}

int otel_start(const otel_config *c)
{
    ex.c = *c;
    if (!c->url || !*c->url)
        return 0;
    if (ex.c.queue_size < 1)
        ex.c.queue_size = 2048;
    if (ex.c.batch_size < 1 || ex.c.batch_size > ex.c.queue_size)
        ex.c.batch_size = ex.c.queue_size < 512 ? ex.c.queue_size : 512;
    if (ex.c.delay_ms < 1)
        ex.c.delay_ms = 1000;
    if (ex.c.timeout_ms < 1)
        ex.c.timeout_ms = 10000;
    double r = c->ratio < 0 ? 0 : c->ratio > 1 ? 1 : c->ratio;
    ex.threshold = r >= 1.0 ? UINT64_MAX : (uint64_t)(r * 18446744073709551616.0);
    ex.on = true;
    if (pthread_create(&ex.thread, NULL, exporter, NULL)) {
        ex.on = false;
        return -1;
    }
    return 0;
}

void otel_stop(void)
{
    if (!ex.on)
        return;
    pthread_mutex_lock(&ex.lock);
    ex.stopping = true;
    pthread_cond_signal(&ex.wake);
    pthread_mutex_unlock(&ex.lock);
    pthread_join(ex.thread, NULL);
    ex.on = false;
}
