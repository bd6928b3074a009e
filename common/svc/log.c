/* log.c -- writes a service's log lines to stdout, human-readable or as JSON lines.
 *
 * Every line is formatted into a buffer first and written with one call
 * under a mutex, so lines from worker threads never interleave.
 */
#include "log.h"

#include <cJSON.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *log_service = "service";
static bool log_json;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

void log_init(const char *service, bool json)
{
    log_service = service;
    log_json = json;
}

/* Writes the current UTC time as 2026-01-02T03:04:05.678Z into buf. */
static void log_time(char *buf, size_t len)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, len - n, ".%03ldZ", ts.tv_nsec / 1000000);
}

/* Writes line and a newline to stdout as one unit. */
static void log_write(const char *line)
{
    pthread_mutex_lock(&log_lock);
    fputs(line, stdout);
    fputc('\n', stdout);
    fflush(stdout);
    pthread_mutex_unlock(&log_lock);
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
    cJSON_AddStringToObject(o, "service", log_service);
    cJSON_AddStringToObject(o, "kind", kind);
    return o;
}

/* Writes o as one line and frees it. */
static void log_json_emit(cJSON *o)
{
    if (!o)
        return;
    char *s = cJSON_PrintUnformatted(o);
    if (s)
        log_write(s);
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
    char now[40], line[1200];
    log_time(now, sizeof now);
    snprintf(line, sizeof line, "%s %s %s %s", now, log_service, is_error ? "ERROR" : "info", msg);
    log_write(line);
}

void log_request(const char *method, const char *path, int status, double latency_ms)
{
    if (log_json) {
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
    char now[40], line[1200];
    log_time(now, sizeof now);
    snprintf(line, sizeof line, "%s %s request %s %.400s %d %.1fms", now, log_service, method,
             path, status, latency_ms);
    log_write(line);
}

/* Adds the window's counts to o. */
static void log_json_counts(cJSON *o, const cb_counts *c)
{
    cJSON *k = cJSON_AddObjectToObject(o, "counts");
    if (!k)
        return;
    cJSON_AddNumberToObject(k, "fires", (double)c->fires);
    cJSON_AddNumberToObject(k, "successes", (double)c->successes);
    cJSON_AddNumberToObject(k, "failures", (double)c->failures);
    cJSON_AddNumberToObject(k, "timeouts", (double)c->timeouts);
    cJSON_AddNumberToObject(k, "rejects", (double)c->rejects);
    cJSON_AddNumberToObject(k, "fallbacks", (double)c->fallbacks);
}

/* Writes a breaker event as a JSON line. */
static void log_breaker_json(cb_breaker *b, const cb_event *ev, const cb_stats *st)
{
    cJSON *o = log_json_start("breaker");
    if (!o)
        return;
    cJSON_AddStringToObject(o, "breaker", cb_name(b));
    cJSON_AddStringToObject(o, "event", cb_event_name(ev->kind));
    cJSON_AddStringToObject(o, "state", cb_state_name(ev->state));
    cJSON_AddNumberToObject(o, "latency_ms", ev->latency_ms);
    if (ev->error)
        cJSON_AddStringToObject(o, "error", cb_err_name(ev->error));
    if (ev->action_rc)
        cJSON_AddNumberToObject(o, "action_rc", ev->action_rc);
    cJSON_AddNumberToObject(o, "error_percentage", st->error_percentage);
    log_json_counts(o, &st->window);
    log_json_emit(o);
}

/* Writes a breaker event as a human line. */
static void log_breaker_human(cb_breaker *b, const cb_event *ev, const cb_stats *st)
{
    char now[40], line[1024], extra[64] = "";
    log_time(now, sizeof now);
    if (ev->error)
        snprintf(extra, sizeof extra, " error=%s", cb_err_name(ev->error));
    if (ev->action_rc)
        snprintf(extra + strlen(extra), sizeof extra - strlen(extra), " rc=%d", ev->action_rc);
    const cb_counts *c = &st->window;
    snprintf(line, sizeof line,
             "%s %s breaker %s event=%s state=%s latency=%.1fms err=%.1f%%%s "
             "fires=%llu successes=%llu failures=%llu timeouts=%llu rejects=%llu fallbacks=%llu",
             now, log_service, cb_name(b), cb_event_name(ev->kind), cb_state_name(ev->state),
             ev->latency_ms, st->error_percentage, extra, (unsigned long long)c->fires,
             (unsigned long long)c->successes, (unsigned long long)c->failures,
             (unsigned long long)c->timeouts, (unsigned long long)c->rejects,
             (unsigned long long)c->fallbacks);
    log_write(line);
}

void log_breaker_event(cb_breaker *b, const cb_event *ev, void *ctx)
{
    (void)ctx;
    cb_stats own;
    const cb_stats *st = ev->stats;
    if (!st) {
        memset(&own, 0, sizeof own);
        cb_get_stats(b, &own);
        st = &own;
    }
    if (log_json)
        log_breaker_json(b, ev, st);
    else
        log_breaker_human(b, ev, st);
}
