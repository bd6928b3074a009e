/* log.c -- a service's log lines, human-readable or as JSON lines: what each line says (logwriter.c writes them). */
#include "log.h"

#include "breaker_json.h"
#include "logwriter.h"
#include "monotime.h"
#include "strbuf.h"
#include "trace.h"

#include <cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *log_service = "service";  /* human lines: "payment" or "payment/<replica>" */
static const char *log_service_id = "service"; /* JSON lines' "service" */
static const char *log_replica;                /* JSON lines' "replica"; NULL = none */
static char log_label[160];
static bool log_json;
static int log_level = LOG_TRANSITIONS;

void log_flush(void)
{
    logwriter_flush();
}

void log_set_level(int level)
{
    log_level = level;
}

uint32_t log_breaker_mask(int level, bool snapshots)
{
    uint32_t transitions = CB_EV_MASK(CB_EV_OPEN) | CB_EV_MASK(CB_EV_HALF_OPEN) |
                           CB_EV_MASK(CB_EV_CLOSE) | CB_EV_MASK(CB_EV_SHUTDOWN) |
                           CB_EV_MASK(CB_EV_HEALTH_CHECK_FAILED);
    uint32_t wrong = CB_EV_MASK(CB_EV_FAILURE) | CB_EV_MASK(CB_EV_TIMEOUT) |
                     CB_EV_MASK(CB_EV_REJECT) | CB_EV_MASK(CB_EV_SEMAPHORE_LOCKED);
    uint32_t mask = level >= LOG_EVENTS ? CB_EV_ALL & ~CB_EV_MASK(CB_EV_SNAPSHOT)
                  : level >= LOG_REQUESTS ? transitions | wrong : transitions;
    return snapshots ? mask | CB_EV_MASK(CB_EV_SNAPSHOT) : mask;
}

void log_init(const char *service, bool json)
{
    log_service = service;
    log_service_id = service;
    log_json = json;
    /* `make run` sets LOG_PREFIX to "[order] " and so on, so that the
     * services write straight to the terminal: a prefixing process on a
     * pipe cost a sixth of GET /'s throughput. */
    logwriter_init(getenv("LOG_PREFIX"));
}

void log_set_replica(const char *replica)
{
    log_replica = replica;
    snprintf(log_label, sizeof log_label, "%s/%s", log_service_id, replica);
    log_service = log_label;
}

/* Writes the current UTC time as 2026-01-02T03:04:05.678Z into buf. */
static void log_time(char *buf, size_t len)
{
    static _Thread_local time_t cached_at = -1;
    static _Thread_local char cached[24];
    int64_t now = wall_ms();
    time_t sec = (time_t)(now / 1000);
    if (sec != cached_at) { /* the date and time to the second, once a second */
        struct tm tm;
        gmtime_r(&sec, &tm);
        strftime(cached, sizeof cached, "%Y-%m-%dT%H:%M:%S", &tm);
        cached_at = sec;
    }
    strbuf b;
    sb_init(&b, buf, len);
    sb_str(&b, cached, sizeof cached);
    sb_lit(&b, ".");
    sb_uint(&b, (unsigned long long)(now % 1000), 3);
    sb_lit(&b, "Z");
}
/* " trace=<id>" for a line written while a request is served, else "". */
static const char *trace_words(char *buf, size_t len)
{
    const trace_ctx *t = trace_current();
    if (!t)
        return "";
    snprintf(buf, len, " trace=%s", t->id);
    return buf;
}

/* Starts a JSON line with time, service and kind. NULL when out of memory. */
static cJSON *log_json_start(const char *kind)
{
    char now[40];
    log_time(now, sizeof now);
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddStringToObject(o, "time", now);
    cJSON_AddStringToObject(o, "service", log_service_id);
    if (log_replica)
        cJSON_AddStringToObject(o, "replica", log_replica);
    cJSON_AddStringToObject(o, "kind", kind);
    const trace_ctx *t = trace_current();
    if (t)
        cJSON_AddStringToObject(o, "trace", t->id);
    return o;
}

/* Writes o as one line and frees it. */
static void log_json_emit(cJSON *o)
{
    if (!o)
        return;
    char *s = cJSON_PrintUnformatted(o);
    if (s)
        logwriter_line(s);
    free(s);
    cJSON_Delete(o);
}

void log_message(bool is_error, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (log_json) {
        cJSON *o = log_json_start(is_error ? "error" : "info");
        if (o)
            cJSON_AddStringToObject(o, "message", msg);
        log_json_emit(o);
        return;
    }
    char now[40], line[1300], tw[TRACE_ID_MAX + 8];
    log_time(now, sizeof now);
    snprintf(line, sizeof line, "%s %s %s %s%s", now, log_service, is_error ? "ERROR" : "info", msg,
             trace_words(tw, sizeof tw));
    logwriter_line(line);
}

void log_request(const char *method, const char *uri, const char *query, int status,
                 double latency_ms)
{
    if (log_level < LOG_REQUESTS)
        return;
    uri = uri ? uri : "";
    if (log_json) {
        char path[600];
        snprintf(path, sizeof path, "%.400s%s%.150s", uri, query ? "?" : "", query ? query : "");
        cJSON *o = log_json_start("request");
        if (o) {
            cJSON_AddStringToObject(o, "method", method);
            cJSON_AddStringToObject(o, "path", path);
            cJSON_AddNumberToObject(o, "status", status);
            cJSON_AddNumberToObject(o, "latency_ms", latency_ms);
        }
        log_json_emit(o);
        return;
    }
    /* "<time> <service> request <method> <path> <status> <ms>ms[ trace=<id>]" */
    char now[40], line[1300];
    log_time(now, sizeof now);
    strbuf b;
    sb_init(&b, line, sizeof line);
    sb_str(&b, now, sizeof now);
    sb_lit(&b, " ");
    sb_str(&b, log_service, 100);
    sb_lit(&b, " request ");
    sb_str(&b, method ? method : "", 20);
    sb_lit(&b, " ");
    sb_str(&b, uri, 400);
    if (query) {
        sb_lit(&b, "?");
        sb_str(&b, query, 150);
    }
    sb_lit(&b, " ");
    sb_uint(&b, status < 0 ? 0u : (unsigned)status, 1);
    sb_lit(&b, " ");
    sb_tenths(&b, latency_ms);
    sb_lit(&b, "ms");
    const trace_ctx *t = trace_current();
    if (t) {
        sb_lit(&b, " trace=");
        sb_str(&b, t->id, sizeof t->id);
    }
    logwriter_line(line);
}

/* Writes a breaker event as a JSON line. */
static void log_breaker_json(cb_breaker *b, const char *label, const cb_event *ev, const cb_stats *st)
{
    cJSON *o = log_json_start("breaker");
    if (!o)
        return;
    cJSON_AddStringToObject(o, "breaker", cb_name(b));
    if (label)
        cJSON_AddStringToObject(o, "label", label);
    cJSON_AddStringToObject(o, "event", cb_event_name(ev->kind));
    cJSON_AddStringToObject(o, "state", cb_state_name(ev->state));
    cJSON_AddNumberToObject(o, "latency_ms", ev->latency_ms);
    if (ev->error)
        cJSON_AddStringToObject(o, "error", cb_err_name(ev->error));
    if (ev->action_rc)
        cJSON_AddNumberToObject(o, "action_rc", ev->action_rc);
    cJSON_AddNumberToObject(o, "error_percentage", st->error_percentage);
    breaker_counts_json(o, "counts", &st->window);
    log_json_emit(o);
}

/* Writes a breaker event as a human line. */
static void log_breaker_human(cb_breaker *b, const char *label, const cb_event *ev, const cb_stats *st)
{
    char now[40], line[1200], extra[64] = "", tw[TRACE_ID_MAX + 8], what[112] = "";
    if (label)
        snprintf(what, sizeof what, " (%s)", label);
    log_time(now, sizeof now);
    if (ev->error)
        snprintf(extra, sizeof extra, " error=%s", cb_err_name(ev->error));
    if (ev->action_rc)
        snprintf(extra + strlen(extra), sizeof extra - strlen(extra), " rc=%d", ev->action_rc);
    const cb_counts *c = &st->window;
    snprintf(line, sizeof line,
             "%s %s breaker %s event=%s state=%s%s latency=%.1fms err=%.1f%%%s "
             "fires=%llu successes=%llu failures=%llu timeouts=%llu rejects=%llu fallbacks=%llu%s",
             now, log_service, cb_name(b), cb_event_name(ev->kind), cb_state_name(ev->state), what,
             ev->latency_ms, st->error_percentage, extra, (unsigned long long)c->fires,
             (unsigned long long)c->successes, (unsigned long long)c->failures,
             (unsigned long long)c->timeouts, (unsigned long long)c->rejects,
             (unsigned long long)c->fallbacks, trace_words(tw, sizeof tw));
    logwriter_line(line);
}

void log_breaker_event(cb_breaker *b, const cb_event *ev, void *ctx)
{
    const char *label = ctx;
    cb_stats own;
    const cb_stats *st = ev->stats;
    if (!st) {
        memset(&own, 0, sizeof own);
        cb_get_stats(b, &own);
        st = &own;
    }
    if (log_json)
        log_breaker_json(b, label, ev, st);
    else
        log_breaker_human(b, label, ev, st);
}

uint32_t log_retry_mask(int level)
{
    return level >= LOG_REQUESTS ? CB_REV_ALL : 0;
}

void log_retry_event(cb_retry *r, const cb_retry_event *ev, void *ctx)
{
    (void)r;
    (void)ctx;
    const char *breaker = ev->breaker ? cb_name(ev->breaker) : "";
    const char *event = cb_retry_event_name(ev->kind);
    if (log_json) {
        cJSON *o = log_json_start("retry");
        if (!o)
            return;
        cJSON_AddStringToObject(o, "breaker", breaker);
        cJSON_AddStringToObject(o, "event", event);
        cJSON_AddNumberToObject(o, "attempt", ev->attempt);
        if (ev->kind == CB_REV_RETRY)
            cJSON_AddNumberToObject(o, "delay_ms", (double)ev->delay_ns / 1e6);
        cJSON_AddStringToObject(o, "error", cb_err_name(ev->rc));
        if (ev->action_rc)
            cJSON_AddNumberToObject(o, "rc", ev->action_rc);
        cJSON_AddNumberToObject(o, "budget_tokens", ev->budget_tokens);
        log_json_emit(o);
        return;
    }
    char now[40], line[700], delay[48] = "", rc[24] = "", tw[96];
    log_time(now, sizeof now);
    if (ev->kind == CB_REV_RETRY)
        snprintf(delay, sizeof delay, " delay=%.1fms", (double)ev->delay_ns / 1e6);
    if (ev->action_rc)
        snprintf(rc, sizeof rc, " rc=%d", ev->action_rc);
    snprintf(line, sizeof line, "%s %s retry %.200s event=%s attempt=%d%s error=%s%s tokens=%.3f%s",
             now, log_service, breaker, event, ev->attempt, delay, cb_err_name(ev->rc), rc,
             ev->budget_tokens, trace_words(tw, sizeof tw));
    logwriter_line(line);
}

void log_shared_event(const char *breaker, const char *event, const char *state, int live,
                      int open_votes, int needed, const char *peer, int64_t open_ms, int rc)
{
    if (log_json) {
        cJSON *o = log_json_start("breaker");
        if (!o)
            return;
        cJSON_AddStringToObject(o, "breaker", breaker);
        cJSON_AddStringToObject(o, "event", event);
        cJSON_AddStringToObject(o, "state", state);
        cJSON_AddNumberToObject(o, "live", live);
        cJSON_AddNumberToObject(o, "open_votes", open_votes);
        cJSON_AddNumberToObject(o, "needed", needed);
        if (peer)
            cJSON_AddStringToObject(o, "peer", peer);
        if (open_ms)
            cJSON_AddNumberToObject(o, "open_ms", (double)open_ms);
        if (rc)
            cJSON_AddNumberToObject(o, "rc", rc);
        log_json_emit(o);
        return;
    }
    char now[40], line[600], extra[160] = "";
    log_time(now, sizeof now);
    if (peer)
        snprintf(extra, sizeof extra, " peer=%.63s", peer);
    if (open_ms)
        snprintf(extra + strlen(extra), sizeof extra - strlen(extra), " open=%lldms",
                 (long long)open_ms);
    if (rc)
        snprintf(extra + strlen(extra), sizeof extra - strlen(extra), " rc=%d", rc);
    snprintf(line, sizeof line, "%s %s breaker %.200s event=%s state=%s live=%d open_votes=%d needed=%d%s",
             now, log_service, breaker, event, state, live, open_votes, needed, extra);
    logwriter_line(line);
}
