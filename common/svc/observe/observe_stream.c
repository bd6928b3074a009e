/* observe_stream.c -- Server-Sent Events: /hystrix.stream and /events.stream.
 *
 * /hystrix.stream sends one HystrixCommand JSON object ("data: {...}\n\n") per
 * interval, the format the Hystrix dashboard, Turbine and opossum-hystrix
 * use. /events.stream sends the same objects plus named events for the live
 * dashboard: "event: breaker" (one per entry of the recent-events ring,
 * after, on connect, each breaker's last state changes older than the last
 * EVENTS_ON_CONNECT events, marked "kept"), whose "event" is a breaker's, a
 * shared breaker's or "chaos" (the faults changed, in words in "detail",
 * with "breaker": "") and "event: service" (name, uptime, its breakers and
 * their states).
 *
 * Each client holds one civetweb worker thread for as long as it stays, so
 * the number of open streams is capped (obs_g.stream_cap; 503 past it), a
 * client that went away is noticed at the next write (a comment line is
 * written at least every HEARTBEAT_MS), and obs_shutdown() wakes every stream
 * through a condition variable so that it returns at once.
 */
#include "observe.h"
#include "observe_priv.h"
#include "monotime.h"

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TICK_MS 250
#define HEARTBEAT_MS 500
#define EVENTS_ON_CONNECT 20

/* ---- the HystrixCommand object ----------------------------------------- */

static void add_num(cJSON *o, const char *key, double v)
{
    cJSON_AddNumberToObject(o, key, v);
}

/* latencyExecute / latencyTotal: {"0": ms, "25": ms, ... "100": ms}. */
static void add_percentiles(cJSON *o, const char *key, const cb_stats *st)
{
    static const char *const names[CB_PERCENTILES] = {
        "0", "25", "50", "75", "90", "95", "99", "99.5", "100",
    };
    cJSON *p = cJSON_AddObjectToObject(o, key);
    for (int i = 0; i < CB_PERCENTILES; i++)
        add_num(p, names[i], st->percentiles_ms[i] < 0 ? 0 : (double)(int64_t)st->percentiles_ms[i]);
}

static void add_rolling_counts(cJSON *o, const cb_stats *st)
{
    const cb_counts *w = &st->window;
    uint64_t fallback_ok = w->fallbacks > w->fallback_failures ? w->fallbacks - w->fallback_failures : 0;
    add_num(o, "errorCount", (double)w->failures);
    add_num(o, "requestCount", (double)w->fires);
    add_num(o, "rollingCountBadRequests", 0);
    add_num(o, "rollingCountCollapsedRequests", (double)w->coalesce_hits);
    add_num(o, "rollingCountEmit", 0);
    add_num(o, "rollingCountExceptionsThrown", 0);
    add_num(o, "rollingCountFailure", (double)w->failures);
    add_num(o, "rollingCountFallbackEmit", 0);
    add_num(o, "rollingCountFallbackFailure", (double)w->fallback_failures);
    add_num(o, "rollingCountFallbackMissing", 0);
    add_num(o, "rollingCountFallbackRejection", 0);
    add_num(o, "rollingCountFallbackSuccess", (double)fallback_ok);
    add_num(o, "rollingCountResponsesFromCache", (double)w->cache_hits);
    add_num(o, "rollingCountSemaphoreRejected", (double)w->semaphore_rejections);
    add_num(o, "rollingCountShortCircuited", (double)w->rejects);
    add_num(o, "rollingCountSuccess", (double)w->successes);
    add_num(o, "rollingCountThreadPoolRejected", 0);
    add_num(o, "rollingCountTimeout", (double)w->timeouts);
    add_num(o, "currentConcurrentExecutionCount", st->in_flight);
    add_num(o, "rollingMaxConcurrentExecutionCount", st->in_flight);
}

static void add_properties(cJSON *o, cb_breaker *cb, const cb_options *op, const cb_stats *st)
{
    cb_tuning t; /* the live thresholds (POST /breaker/options changes them) */
    if (cb_get_tuning(cb, &t) != CB_OK)
        t = (cb_tuning){ .volume_threshold = op->volume_threshold,
                         .error_threshold_percentage = op->error_threshold_percentage };
    add_num(o, "propertyValue_circuitBreakerRequestVolumeThreshold", t.volume_threshold);
    add_num(o, "propertyValue_circuitBreakerSleepWindowInMilliseconds",
            (double)st->current_reset_timeout_ms);
    add_num(o, "propertyValue_circuitBreakerErrorThresholdPercentage", t.error_threshold_percentage);
    cJSON_AddBoolToObject(o, "propertyValue_circuitBreakerForceOpen", st->state == CB_FORCED_OPEN);
    cJSON_AddBoolToObject(o, "propertyValue_circuitBreakerForceClosed", st->state == CB_FORCED_CLOSED);
    cJSON_AddBoolToObject(o, "propertyValue_circuitBreakerEnabled", st->state != CB_DISABLED);
    cJSON_AddStringToObject(o, "propertyValue_executionIsolationStrategy",
                            op->timeout_mode == CB_TIMEOUT_POOL ? "THREAD" : "SEMAPHORE");
    add_num(o, "propertyValue_executionIsolationThreadTimeoutInMilliseconds", (double)op->timeout_ms);
    add_num(o, "propertyValue_executionTimeoutInMilliseconds", (double)op->timeout_ms);
    cJSON_AddBoolToObject(o, "propertyValue_executionIsolationThreadInterruptOnTimeout", true);
    cJSON_AddNullToObject(o, "propertyValue_executionIsolationThreadPoolKeyOverride");
    add_num(o, "propertyValue_executionIsolationSemaphoreMaxConcurrentRequests", op->capacity);
    add_num(o, "propertyValue_fallbackIsolationSemaphoreMaxConcurrentRequests", op->capacity);
    add_num(o, "propertyValue_metricsRollingStatisticalWindowInMilliseconds",
            (double)op->rolling_count_timeout_ms);
    cJSON_AddBoolToObject(o, "propertyValue_requestCacheEnabled", op->cache);
    cJSON_AddBoolToObject(o, "propertyValue_requestLogEnabled", true);
}

char *obs_hystrix_json(int i)
{
    cb_stats st;
    if (i < 0 || i >= obs_g.nbreakers)
        return NULL;
    cb_breaker *cb = obs_g.breakers[i].cb;
    if (cb_get_stats(cb, &st) != CB_OK)
        return NULL;
    const cb_options *op = cb_get_options(cb);
    bool open = st.state == CB_OPEN || st.state == CB_FORCED_OPEN || st.state == CB_HALF_OPEN;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", "HystrixCommand");
    cJSON_AddStringToObject(o, "name", cb_name(cb));
    cJSON_AddStringToObject(o, "group", obs_g.service);
    add_num(o, "currentTime", (double)wall_ms());
    cJSON_AddBoolToObject(o, "isCircuitBreakerOpen", open);
    cJSON_AddStringToObject(o, "state", cb_state_name(st.state));
    add_num(o, "errorPercentage", (double)(int64_t)(st.error_percentage + 0.5));
    add_rolling_counts(o, &st);
    double mean = st.latency_mean_ms < 0 ? 0 : (double)(int64_t)(st.latency_mean_ms + 0.5);
    add_num(o, "latencyExecute_mean", mean);
    add_percentiles(o, "latencyExecute", &st);
    add_num(o, "latencyTotal_mean", mean);
    add_percentiles(o, "latencyTotal", &st);
    add_properties(o, cb, op, &st);
    add_num(o, "reportingHosts", 1);
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}

/* ---- named events for the dashboard ------------------------------------- */

static char *service_json(void)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "service", obs_g.service);
    if (obs_g.replica)
        cJSON_AddStringToObject(o, "replica", obs_g.replica);
    cJSON_AddNumberToObject(o, "uptime_s", obs_uptime_s());
    cJSON_AddNumberToObject(o, "currentTime", (double)wall_ms());
    cJSON *shared = obs_g.shared_report ? obs_g.shared_report(obs_g.shared_ctx) : NULL;
    if (shared)
        cJSON_AddItemToObject(o, "shared", shared);
    if (obs_g.nbreakers) {
        cb_breaker *first = obs_g.breakers[0].cb;
        cJSON_AddStringToObject(o, "breaker", cb_name(first));
        cJSON_AddStringToObject(o, "state", cb_state_name(cb_get_state(first)));
    } else {
        cJSON_AddNullToObject(o, "breaker");
    }
    cJSON *all = cJSON_AddArrayToObject(o, "breakers");
    for (int i = 0; i < obs_g.nbreakers; i++) {
        cJSON *b = cJSON_CreateObject();
        cJSON_AddStringToObject(b, "name", cb_name(obs_g.breakers[i].cb));
        cJSON_AddStringToObject(b, "label", obs_g.breakers[i].label);
        cJSON_AddStringToObject(b, "state", cb_state_name(cb_get_state(obs_g.breakers[i].cb)));
        cJSON_AddItemToArray(all, b);
    }
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}

/* One "breaker" event as JSON, malloc'd; kept marks a state change sent
 * from the breaker's kept transitions rather than from the ring. */
static char *event_json(const obs_event *e, bool kept)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "seq", (double)e->seq);
    if (kept)
        cJSON_AddBoolToObject(o, "kept", true);
    cJSON_AddStringToObject(o, "service", obs_g.service);
    bool known = e->breaker >= 0 && e->breaker < obs_g.nbreakers;
    cJSON_AddStringToObject(o, "breaker", known ? cb_name(obs_g.breakers[e->breaker].cb) : "");
    cJSON_AddStringToObject(o, "label", known ? obs_g.breakers[e->breaker].label : "");
    if (obs_g.replica)
        cJSON_AddStringToObject(o, "replica", obs_g.replica);
    if (e->chaos) {
        cJSON_AddStringToObject(o, "event", "chaos");
        cJSON_AddStringToObject(o, "state", "");
        cJSON_AddStringToObject(o, "detail", e->detail);
    } else if (e->shared_name[0]) {
        cJSON_AddStringToObject(o, "event", e->shared_name);
        cJSON_AddStringToObject(o, "state", e->shared_state);
        cJSON_AddBoolToObject(o, "shared", true);
        cJSON_AddStringToObject(o, "detail", e->detail);
    } else {
        cJSON_AddStringToObject(o, "event", cb_event_name(e->kind));
        cJSON_AddStringToObject(o, "state", cb_state_name(e->state));
    }
    cJSON_AddNumberToObject(o, "time", (double)e->wall_ms);
    if (e->trace[0])
        cJSON_AddStringToObject(o, "trace", e->trace);
    if (e->latency_ms >= 0)
        cJSON_AddNumberToObject(o, "latencyMs", e->latency_ms);
    if (e->error_percentage >= 0)
        cJSON_AddNumberToObject(o, "errorPercentage", e->error_percentage);
    if (e->error != 0)
        cJSON_AddStringToObject(o, "error", cb_err_name(e->error));
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}

/* ---- the stream loop ----------------------------------------------------- */

typedef struct stream {
    struct mg_connection *conn;
    bool with_events;
    uint64_t last_seq;
    int64_t last_write_ns;
    bool broken;
} stream;

/* Writes an SSE frame: "event: name\n" (when name) "data: json\n\n". A write
 * failure marks the stream broken. */
static void stream_send(stream *s, const char *name, const char *json)
{
    if (s->broken || !json)
        return;
    int rc = name ? mg_printf(s->conn, "event: %s\ndata: %s\n\n", name, json)
                  : mg_printf(s->conn, "data: %s\n\n", json);
    if (rc <= 0)
        s->broken = true;
    s->last_write_ns = mono_ns();
}

static void stream_send_owned(stream *s, const char *name, char *json)
{
    stream_send(s, name, json);
    free(json);
}

static void stream_send_new_events(stream *s)
{
    obs_event batch[32];
    size_t n;
    do {
        n = obs_events_since(s->last_seq, batch, sizeof batch / sizeof batch[0]);
        for (size_t i = 0; i < n && !s->broken; i++) {
            stream_send_owned(s, "breaker", event_json(&batch[i], false));
            s->last_seq = batch[i].seq;
        }
    } while (n == sizeof batch / sizeof batch[0] && !s->broken);
}

/* Sends each breaker's kept state changes older than the replay that
 * follows (seq <= s->last_seq), oldest first, marked "kept": true, so that
 * a page opened after a flood of rejects still sees the breaker open. */
static void stream_send_transitions(stream *s)
{
    obs_event kept[OBS_MAX_BREAKERS * OBS_TRANSITIONS];
    size_t n = obs_transitions_upto(s->last_seq, kept, sizeof kept / sizeof kept[0]);
    for (size_t i = 0; i < n && !s->broken; i++)
        stream_send_owned(s, "breaker", event_json(&kept[i], true));
}

static void stream_heartbeat(stream *s)
{
    if (mg_write(s->conn, ":\n\n", 3) <= 0)
        s->broken = true;
    s->last_write_ns = mono_ns();
}

/* Sleeps until deadline_ns (monotonic) or until obs_shutdown(). */
static void stream_wait(int64_t deadline_ns)
{
    struct timespec ts = { .tv_sec = deadline_ns / 1000000000, .tv_nsec = deadline_ns % 1000000000 };
    pthread_mutex_lock(&obs_g.stream_lock);
    if (!atomic_load(&obs_g.shutting_down))
        pthread_cond_timedwait(&obs_g.stream_wake, &obs_g.stream_lock, &ts);
    pthread_mutex_unlock(&obs_g.stream_lock);
}

static void stream_run(stream *s)
{
    const int64_t interval_ns = (int64_t)obs_g.interval_ms * 1000000;
    int64_t next_data = mono_ns();
    if (s->with_events) {
        uint64_t newest = obs_events_newest_seq();
        s->last_seq = newest > EVENTS_ON_CONNECT ? newest - EVENTS_ON_CONNECT : 0;
        stream_send_transitions(s);
    }
    while (!s->broken && !atomic_load(&obs_g.shutting_down)) {
        int64_t now = mono_ns();
        if (now >= next_data) {
            if (s->with_events)
                stream_send_owned(s, "service", service_json());
            for (int i = 0; i < obs_g.nbreakers && !s->broken; i++)
                stream_send_owned(s, NULL, obs_hystrix_json(i));
            next_data = now + interval_ns;
        }
        if (s->with_events)
            stream_send_new_events(s);
        if (!s->broken && mono_ns() - s->last_write_ns >= (int64_t)HEARTBEAT_MS * 1000000)
            stream_heartbeat(s);
        int64_t wake = mono_ns() + (int64_t)TICK_MS * 1000000;
        stream_wait(wake < next_data ? wake : next_data);
    }
}

/* Sends the SSE response head. Returns 0, or -1 when the client is gone. */
static int stream_start(struct mg_connection *conn)
{
    mg_disable_connection_keep_alive(conn);
    mg_response_header_start(conn, 200);
    obs_add_date_header(conn);
    mg_response_header_add(conn, "Content-Type", "text/event-stream; charset=utf-8", -1);
    mg_response_header_add(conn, "Cache-Control", "no-cache", -1);
    mg_response_header_add(conn, "Connection", "close", -1);
    mg_response_header_add(conn, "X-Accel-Buffering", "no", -1);
    mg_response_header_add(conn, "Access-Control-Allow-Origin", "*", -1);
    if (mg_response_header_send(conn) != 0)
        return -1;
    return mg_printf(conn, "retry: 3000\n\n") > 0 ? 0 : -1;
}

int obs_handle_hystrix_stream(struct mg_connection *conn, void *cbdata)
{
    const char *method = mg_get_request_info(conn)->request_method;
    if (strcmp(method, "GET") != 0) {
        static const char msg[] = "{\"error\":\"use GET\"}";
        return obs_send(conn, 405, "application/json", msg, sizeof msg - 1);
    }
    if (atomic_load(&obs_g.shutting_down)) {
        static const char msg[] = "{\"error\":\"shutting down\"}";
        return obs_send(conn, 503, "application/json", msg, sizeof msg - 1);
    }
    if (atomic_fetch_add(&obs_g.streams_open, 1) >= obs_g.stream_cap) {
        atomic_fetch_sub(&obs_g.streams_open, 1);
        static const char msg[] = "{\"error\":\"too many open streams\"}";
        return obs_send(conn, 503, "application/json", msg, sizeof msg - 1);
    }
    atomic_fetch_add(&obs_g.streams_served, 1);
    stream s = { .conn = conn, .with_events = cbdata != NULL, .last_write_ns = mono_ns() };
    if (stream_start(conn) == 0)
        stream_run(&s);
    atomic_fetch_sub(&obs_g.streams_open, 1);
    return 200;
}
