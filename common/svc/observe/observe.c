/* observe.c -- a service's self-report: the public face (observe.h) and what
 * its routes share: the state (obs_g), the route table and the request
 * counters behind /metrics, and the answers every route sends.
 *
 * Each concern has a file of its own: /health and /replicas in
 * observe_health.c, /breaker, its admin routes and /chaos in
 * observe_admin.c, the breaker listener and the recent-events ring in
 * observe_events.c, /metrics in observe_metrics.c, /hystrix.stream and
 * /events.stream in observe_stream.c, the dashboard's files in
 * observe_assets.c.
 */
#include "observe.h"
#include "observe_priv.h"
#include "http.h"
#include "monotime.h"

#include <cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

obs_global obs_g;

const double obs_latency_bounds_s[OBS_LAT_BUCKETS] = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
};

double obs_uptime_s(void)
{
    return (double)(mono_ns() - obs_g.start_ns) / 1e9;
}

void obs_histogram_observe(obs_histogram *h, double seconds)
{
    int i = 0;
    if (seconds < 0)
        seconds = 0;
    while (i < OBS_LAT_BUCKETS && seconds > obs_latency_bounds_s[i])
        i++;
    atomic_fetch_add_explicit(&h->bucket[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_us, (uint_fast64_t)(seconds * 1e6 + 0.5),
                              memory_order_relaxed);
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
}

/* ---- responses ----------------------------------------------------------- */

void obs_add_date_header(struct mg_connection *conn)
{
    char date[64];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    mg_response_header_add(conn, "Date", date, -1);
}

int obs_send(struct mg_connection *conn, int status, const char *content_type,
             const char *body, size_t len)
{
    http_send_raw(conn, status, content_type, "no-cache", body, len, false);
    return status;
}

int obs_send_json(struct mg_connection *conn, int status, const char *body)
{
    if (!body) {
        static const char oom[] = "{\"error\":\"out of memory\"}";
        return obs_send(conn, 500, "application/json", oom, sizeof oom - 1);
    }
    return obs_send(conn, status, "application/json", body, strlen(body));
}

/* Sends {"error": message, "status": status, "service": ...}. */
int obs_send_error(struct mg_connection *conn, int status, const char *message)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "error", message);
    cJSON_AddNumberToObject(o, "status", status);
    cJSON_AddStringToObject(o, "service", obs_g.service ? obs_g.service : "");
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    obs_send_json(conn, status, text);
    free(text);
    return status;
}

/* Answers a CORS preflight: 204 with the methods and headers we accept,
 * for origin ("*" or one origin). */
int obs_send_preflight(struct mg_connection *conn, const char *methods, const char *origin)
{
    mg_response_header_start(conn, 204);
    obs_add_date_header(conn);
    mg_response_header_add(conn, "Access-Control-Allow-Origin", origin, -1);
    if (strcmp(origin, "*"))
        mg_response_header_add(conn, "Vary", "Origin", -1);
    mg_response_header_add(conn, "Access-Control-Allow-Methods", methods, -1);
    mg_response_header_add(conn, "Access-Control-Allow-Headers",
                           "Authorization, X-Admin-Token, Content-Type", -1);
    mg_response_header_add(conn, "Access-Control-Max-Age", "600", -1);
    mg_response_header_add(conn, "Content-Length", "0", -1);
    mg_response_header_send(conn);
    return 204;
}

/* A read-only route's method check: answers a preflight or a 405 and
 * returns its status, or 0 for GET and HEAD. */
int obs_answer_unless_get(struct mg_connection *conn)
{
    const char *method = mg_get_request_info(conn)->request_method;
    if (strcmp(method, "OPTIONS") == 0)
        return obs_send_preflight(conn, "GET, HEAD, OPTIONS", "*");
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return obs_send_error(conn, 405, "use GET");
    return 0;
}

const char *obs_breaker_label(const cb_breaker *cb)
{
    for (int i = 0; i < obs_g.nbreakers; i++)
        if (obs_g.breakers[i].cb == cb)
            return obs_g.breakers[i].label;
    return cb ? cb_name(cb) : "";
}

obs_breaker *obs_breaker_named(const char *name)
{
    if (obs_g.nbreakers == 0)
        return NULL;
    if (!name || !*name)
        return &obs_g.breakers[0];
    for (int i = 0; i < obs_g.nbreakers; i++)
        if (strcmp(cb_name(obs_g.breakers[i].cb), name) == 0)
            return &obs_g.breakers[i];
    return NULL;
}

void obs_set_shared(cJSON *(*fn)(void *ctx), void *ctx)
{
    obs_g.shared_report = fn;
    obs_g.shared_ctx = ctx;
}

void obs_set_roster(cJSON *(*fn)(void *ctx), void *ctx)
{
    obs_g.replicas_report = fn;
    obs_g.roster_ctx = ctx;
}

/* ---- the interface -------------------------------------------------------- */

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

int obs_init(const obs_source *src)
{
    if (!src || obs_g.initialised)
        return -1;
    memset(&obs_g, 0, sizeof obs_g);
    obs_g.service = strdup(src->service ? src->service : "service");
    obs_g.db_name = dup_or_null(src->db_name);
    obs_g.admin_token = (src->admin_token && *src->admin_token) ? strdup(src->admin_token) : NULL;
    obs_g.admin_origin = dup_or_null(src->admin_origin);
    obs_g.run_status_file = dup_or_null(src->run_status_file);
    obs_g.replica = dup_or_null(src->replica);
    obs_g.shared_report = src->shared_report;
    obs_g.shared_ctx = src->shared_ctx;
    obs_g.retry_report = src->retry_report;
    obs_g.retry_stats = src->retry_stats;
    obs_g.retry_set = src->retry_set;
    obs_g.workers_report = src->workers_report;
    obs_g.workers_ctx = src->workers_ctx;
    obs_g.shed_report = src->shed_report;
    obs_g.shed_stats = src->shed_stats;
    obs_g.shed_set = src->shed_set;
    obs_g.hedge_report = src->hedge_report;
    obs_g.hedge_stats = src->hedge_stats;
    obs_g.hedge_set = src->hedge_set;
    if (!obs_g.service || (src->replica && !obs_g.replica) || (src->db_name && !obs_g.db_name) ||
        (src->admin_origin && !obs_g.admin_origin) ||
        (src->run_status_file && !obs_g.run_status_file) ||
        (src->admin_token && *src->admin_token && !obs_g.admin_token)) {
        obs_free();
        return -1;
    }
    for (int i = 0; i < OBS_MAX_BREAKERS && src->breakers[i]; i++) {
        obs_breaker *ob = &obs_g.breakers[obs_g.nbreakers];
        ob->cb = src->breakers[i];
        ob->index = obs_g.nbreakers++;
        snprintf(ob->label, sizeof ob->label, "%s", src->labels[i] ? src->labels[i] : cb_name(ob->cb));
    }
    obs_g.db_ping = src->db_ping;
    obs_g.db_detail = src->db_detail;
    obs_g.db_ctx = src->db_ctx;
    obs_g.interval_ms = src->hystrix_interval_ms > 0 ? src->hystrix_interval_ms : 1000;
    obs_g.start_ns = mono_ns();
    obs_g.next_seq = 1;
    obs_g.stream_cap = 32;
    pthread_mutex_init(&obs_g.ring_lock, NULL);
    pthread_mutex_init(&obs_g.route_lock, NULL);
    pthread_mutex_init(&obs_g.stream_lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&obs_g.stream_wake, &ca);
    pthread_condattr_destroy(&ca);
    for (int i = 0; i < obs_g.nbreakers; i++) {
        obs_breaker *ob = &obs_g.breakers[i];
        int id = cb_on(ob->cb, CB_EV_ALL, obs_on_breaker_event, ob);
        ob->listener_id = id > 0 ? id : 0;
    }
    obs_g.initialised = true;
    return 0;
}

/* The stream cap: at most half the worker threads (so that ordinary requests
 * are always served), and never more than 32. */
static int stream_cap_for(struct mg_context *ctx)
{
    const char *threads = mg_get_option(ctx, "num_threads");
    int n = threads ? atoi(threads) : 0;
    int cap = n > 1 ? n / 2 : 1;
    return cap > 32 ? 32 : cap;
}

/* One route of ours: the URI registered, the route label /metrics counts it
 * under, the handler and its cbdata. */
typedef struct obs_handler {
    const char *uri;
    const char *route;
    mg_request_handler fn;
    void *cbdata;
} obs_handler;

static const obs_handler obs_handlers[] = {
    { "/health", "/health", obs_handle_health, NULL },
    { "/replicas", "/replicas", obs_handle_replicas, NULL },
    { "/metrics", "/metrics", obs_handle_metrics, NULL },
    { "/hystrix.stream", "/hystrix.stream", obs_handle_hystrix_stream, NULL },
    { "/events.stream", "/events.stream", obs_handle_hystrix_stream, (void *)1 },
    { "/breaker", "/breaker", obs_handle_breaker, NULL },
    { "/dashboard", "/dashboard", obs_handle_dashboard, NULL },
    { "/chaos", "/chaos", obs_handle_chaos, NULL },
    { "/retry", "/retry", obs_handle_retry, NULL },
    { "/shed", "/shed", obs_handle_shed, NULL },
    { "/hedge", "/hedge", obs_handle_hedge, NULL },
};

/* The route label of a request to h: the admin routes are told apart. */
static const char *route_label(const obs_handler *h, struct mg_connection *conn)
{
    const char *uri = mg_get_request_info(conn)->local_uri;
    if (h->fn == obs_handle_breaker && uri &&
        (strcmp(uri, "/breaker/open") == 0 || strcmp(uri, "/breaker/close") == 0 ||
         strcmp(uri, "/breaker/options") == 0))
        return uri;
    if (h->fn == obs_handle_chaos) {
        const char *m = mg_get_request_info(conn)->request_method;
        return !strcmp(m, "PUT") ? "/chaos PUT" : !strcmp(m, "DELETE") ? "/chaos DELETE" : "/chaos";
    }
    return h->route;
}

/* Runs the handler in cbdata and counts the request like the service's own. */
static int observed(struct mg_connection *conn, void *cbdata)
{
    const obs_handler *h = cbdata;
    int64_t start = mono_ns();
    int status = h->fn(conn, h->cbdata);
    obs_record_request(route_label(h, conn), status, (double)(mono_ns() - start) / 1e9);
    return status;
}

void obs_register(struct mg_context *ctx)
{
    if (!ctx || !obs_g.initialised)
        return;
    obs_g.stream_cap = stream_cap_for(ctx);
    for (size_t i = 0; i < sizeof obs_handlers / sizeof obs_handlers[0]; i++)
        mg_set_request_handler(ctx, obs_handlers[i].uri, observed, (void *)&obs_handlers[i]);
}

/* Finds or adds the (route, status) slot. NULL when the table is full. */
static obs_route *route_slot(const char *route, int status)
{
    int n = atomic_load_explicit(&obs_g.nroutes, memory_order_acquire);
    for (int i = 0; i < n; i++)
        if (obs_g.routes[i].status == status && strcmp(obs_g.routes[i].route, route) == 0)
            return &obs_g.routes[i];
    obs_route *slot = NULL;
    pthread_mutex_lock(&obs_g.route_lock);
    n = atomic_load_explicit(&obs_g.nroutes, memory_order_relaxed);
    for (int i = 0; i < n && !slot; i++)
        if (obs_g.routes[i].status == status && strcmp(obs_g.routes[i].route, route) == 0)
            slot = &obs_g.routes[i];
    if (!slot && n < OBS_ROUTES) {
        slot = &obs_g.routes[n];
        snprintf(slot->route, sizeof slot->route, "%s", route);
        slot->status = status;
        atomic_store_explicit(&obs_g.nroutes, n + 1, memory_order_release);
    }
    pthread_mutex_unlock(&obs_g.route_lock);
    return slot;
}

void obs_record_request(const char *route, int status, double seconds)
{
    if (!obs_g.initialised)
        return;
    obs_route *slot = route_slot(route ? route : "other", status);
    if (!slot)
        slot = route_slot("other", 0);
    if (!slot)
        return;
    atomic_fetch_add_explicit(&slot->count, 1, memory_order_relaxed);
    obs_histogram_observe(&slot->latency, seconds);
}

void obs_shutdown(void)
{
    if (!obs_g.initialised)
        return;
    pthread_mutex_lock(&obs_g.stream_lock);
    atomic_store(&obs_g.shutting_down, true);
    pthread_cond_broadcast(&obs_g.stream_wake);
    pthread_mutex_unlock(&obs_g.stream_lock);
}

void obs_free(void)
{
    for (int i = 0; i < obs_g.nbreakers; i++)
        if (obs_g.breakers[i].listener_id > 0)
            cb_off(obs_g.breakers[i].cb, obs_g.breakers[i].listener_id);
    if (obs_g.initialised) {
        pthread_mutex_destroy(&obs_g.ring_lock);
        pthread_mutex_destroy(&obs_g.route_lock);
        pthread_mutex_destroy(&obs_g.stream_lock);
        pthread_cond_destroy(&obs_g.stream_wake);
    }
    free(obs_g.service);
    free(obs_g.db_name);
    free(obs_g.admin_token);
    free(obs_g.admin_origin);
    free(obs_g.run_status_file);
    free(obs_g.replica);
    memset(&obs_g, 0, sizeof obs_g);
}
