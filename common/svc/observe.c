/* observe.c -- a service's self-report: /health, /breaker and its admin routes,
 * the request counters behind /metrics, and the breaker listener that feeds
 * the latency histogram and the recent-events ring.
 *
 * /metrics lives in observe_metrics.c, /hystrix.stream and /events.stream in
 * observe_stream.c, the dashboard's files in observe_assets.c.
 */
#include "observe.h"
#include "authlimit.h"
#include "breaker_json.h"
#include "observe_priv.h"
#include "chaos.h"
#include "http.h"
#include "log.h"
#include "monotime.h"

#include <cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
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
static int send_error(struct mg_connection *conn, int status, const char *message)
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
static int send_preflight_for(struct mg_connection *conn, const char *methods, const char *origin)
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

/* Answers a CORS preflight for the read-only routes: every origin. */
static int send_preflight(struct mg_connection *conn, const char *methods)
{
    return send_preflight_for(conn, methods, "*");
}

/* ---- the breaker listener ------------------------------------------------ */

/* Whether an event kind belongs in the recent-events feed: state changes and
 * everything that went wrong; fires, successes and snapshots would drown them. */
static bool event_is_feed_worthy(cb_event_kind k)
{
    switch (k) {
    case CB_EV_FAILURE: case CB_EV_TIMEOUT: case CB_EV_REJECT: case CB_EV_OPEN:
    case CB_EV_HALF_OPEN: case CB_EV_CLOSE: case CB_EV_FALLBACK:
    case CB_EV_SEMAPHORE_LOCKED: case CB_EV_HEALTH_CHECK_FAILED: case CB_EV_SHUTDOWN:
        return true;
    default:
        return false;
    }
}

static void ring_push(const obs_breaker *ob, const cb_event *ev)
{
    obs_event e = {
        .breaker = ob->index,
        .wall_ms = wall_ms(),
        .kind = ev->kind,
        .state = ev->state,
        .latency_ms = -1,
        .error_percentage = ev->stats ? ev->stats->error_percentage : -1,
        .error = ev->error,
    };
    if (ev->kind == CB_EV_FAILURE || ev->kind == CB_EV_TIMEOUT)
        e.latency_ms = ev->latency_ms;
    pthread_mutex_lock(&obs_g.ring_lock);
    e.seq = obs_g.next_seq++;
    obs_g.ring[e.seq % OBS_EVENT_RING] = e;
    pthread_mutex_unlock(&obs_g.ring_lock);
}

/* cb_listener_fn: latency of every completed call into the breaker's
 * histogram, and the feed-worthy events into the ring. ctx is the obs_breaker. */
static void on_breaker_event(cb_breaker *b, const cb_event *ev, void *ctx)
{
    (void)b;
    obs_breaker *ob = ctx;
    if (ev->kind == CB_EV_SUCCESS || ev->kind == CB_EV_FAILURE || ev->kind == CB_EV_TIMEOUT)
        obs_histogram_observe(&ob->latency, ev->latency_ms / 1000.0);
    if (event_is_feed_worthy(ev->kind))
        ring_push(ob, ev);
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

size_t obs_events_since(uint64_t after, obs_event *out, size_t max)
{
    size_t n = 0;
    pthread_mutex_lock(&obs_g.ring_lock);
    uint64_t oldest = obs_g.next_seq > OBS_EVENT_RING ? obs_g.next_seq - OBS_EVENT_RING : 1;
    uint64_t s = after + 1 > oldest ? after + 1 : oldest;
    for (; s < obs_g.next_seq && n < max; s++)
        out[n++] = obs_g.ring[s % OBS_EVENT_RING];
    pthread_mutex_unlock(&obs_g.ring_lock);
    return n;
}

void obs_set_shared(cJSON *(*fn)(void *ctx), void *ctx)
{
    obs_g.shared_json = fn;
    obs_g.shared_ctx = ctx;
}

void obs_set_roster(cJSON *(*fn)(void *ctx), void *ctx)
{
    obs_g.roster_json = fn;
    obs_g.roster_ctx = ctx;
}

void obs_shared_event(const char *name, const char *state, const char *detail)
{
    if (!obs_g.initialised)
        return;
    obs_event e = { .breaker = 0, .wall_ms = wall_ms(), .latency_ms = -1,
                    .error_percentage = -1 };
    snprintf(e.shared_name, sizeof e.shared_name, "%s", name);
    snprintf(e.shared_state, sizeof e.shared_state, "%s", state);
    snprintf(e.detail, sizeof e.detail, "%s", detail ? detail : "");
    pthread_mutex_lock(&obs_g.ring_lock);
    e.seq = obs_g.next_seq++;
    obs_g.ring[e.seq % OBS_EVENT_RING] = e;
    pthread_mutex_unlock(&obs_g.ring_lock);
}

uint64_t obs_events_newest_seq(void)
{
    pthread_mutex_lock(&obs_g.ring_lock);
    uint64_t newest = obs_g.next_seq - 1;
    pthread_mutex_unlock(&obs_g.ring_lock);
    return newest;
}

/* ---- /health ------------------------------------------------------------- */

/* One breaker's part of /health: name, state and rolling stats; NULL when
 * its stats cannot be read. */
static cJSON *breaker_health(cb_breaker *cb)
{
    cb_stats st;
    if (cb_get_stats(cb, &st) != CB_OK)
        return NULL;
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "name", cb_name(cb));
    cJSON_AddStringToObject(b, "state", cb_state_name(st.state));
    cJSON_AddNumberToObject(b, "errorPercentage", st.error_percentage);
    cJSON_AddNumberToObject(b, "latencyMeanMs", st.latency_mean_ms);
    cJSON *p = cJSON_AddObjectToObject(b, "percentilesMs");
    for (int i = 0; i < CB_PERCENTILES; i++) {
        char key[16];
        snprintf(key, sizeof key, "%g", cb_percentile_points[i] * 100);
        cJSON_AddNumberToObject(p, key, st.percentiles_ms[i]);
    }
    cJSON_AddNumberToObject(b, "inFlight", st.in_flight);
    cJSON_AddNumberToObject(b, "resetTimeoutMs", (double)st.current_reset_timeout_ms);
    breaker_counts_json(b, "window", &st.window);
    breaker_counts_json(b, "total", &st.total);
    return b;
}

/* /health's "breaker" (the first breaker, null without one) and "breakers"
 * (every breaker of the service). */
static void add_breakers(cJSON *root)
{
    cJSON *first = obs_g.nbreakers ? breaker_health(obs_g.breakers[0].cb) : NULL;
    if (first)
        cJSON_AddItemToObject(root, "breaker", first);
    else
        cJSON_AddNullToObject(root, "breaker");
    cJSON *all = cJSON_AddArrayToObject(root, "breakers");
    for (int i = 0; i < obs_g.nbreakers; i++) {
        cJSON *b = breaker_health(obs_g.breakers[i].cb);
        if (b)
            cJSON_AddItemToArray(all, b);
    }
}

/* The largest supervisor status file /health reads (make run's is under 2 KiB). */
#define OBS_RUN_STATUS_MAX 65536

/* /health's "supervisor": make run's status file (RUN_STATUS_FILE) parsed, as
 * it is now: each process's pid, restarts and last exit. The file is small
 * and replaced atomically by run.sh, so one read without waiting; a file that
 * cannot be read or parsed gives {"error": "..."} instead. NULL when the
 * service runs without a supervisor. */
static cJSON *supervisor_status(void)
{
    if (!obs_g.run_status_file)
        return NULL;
    const char *problem = NULL;
    char *text = malloc(OBS_RUN_STATUS_MAX + 1);
    FILE *f = text ? fopen(obs_g.run_status_file, "rb") : NULL;
    size_t len = f ? fread(text, 1, OBS_RUN_STATUS_MAX + 1, f) : 0;
    if (!text)
        problem = "out of memory";
    else if (!f)
        problem = "cannot open RUN_STATUS_FILE";
    else if (ferror(f))
        problem = "cannot read RUN_STATUS_FILE";
    else if (len > OBS_RUN_STATUS_MAX)
        problem = "RUN_STATUS_FILE is larger than 64 KiB";
    if (f)
        fclose(f);
    cJSON *status = NULL;
    if (!problem) {
        text[len] = '\0';
        if (!(status = cJSON_Parse(text)) || !cJSON_IsObject(status)) {
            cJSON_Delete(status);
            status = NULL;
            problem = "RUN_STATUS_FILE is not a JSON object";
        }
    }
    free(text);
    if (problem) {
        status = cJSON_CreateObject();
        cJSON_AddStringToObject(status, "error", problem);
        cJSON_AddStringToObject(status, "file", obs_g.run_status_file);
    }
    return status;
}

/* A read-only route's method check: answers a preflight or a 405 and
 * returns its status, or 0 for GET and HEAD. */
static int answer_unless_get(struct mg_connection *conn)
{
    const char *method = mg_get_request_info(conn)->request_method;
    if (strcmp(method, "OPTIONS") == 0)
        return send_preflight(conn, "GET, HEAD, OPTIONS");
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return send_error(conn, 405, "use GET");
    return 0;
}

/* GET /health: 200 {"status":"ok",...} when the database is known to
 * answer, else 503; from the last known state, never waiting on the database. */
static int handle_health(struct mg_connection *conn, void *cbdata)
{
    (void)cbdata;
    int sent = answer_unless_get(conn);
    if (sent)
        return sent;
    bool reachable = obs_g.db_ping ? obs_g.db_ping(obs_g.db_ctx) == 0 : true;
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "status", reachable ? "ok" : "unavailable");
    cJSON_AddStringToObject(root, "service", obs_g.service);
    if (obs_g.replica)
        cJSON_AddStringToObject(root, "replica", obs_g.replica);
    if (obs_g.roster_json)
        cJSON_AddBoolToObject(root, "roster", true); /* GET /replicas answers */
    cJSON_AddNumberToObject(root, "uptime_s", obs_uptime_s());
    cJSON *db = cJSON_AddObjectToObject(root, "database");
    cJSON_AddStringToObject(db, "name", obs_g.db_name ? obs_g.db_name : "");
    cJSON_AddBoolToObject(db, "reachable", reachable);
    if (obs_g.db_detail)
        obs_g.db_detail(obs_g.db_ctx, db);
    add_breakers(root);
    cJSON *shared = obs_g.shared_json ? obs_g.shared_json(obs_g.shared_ctx) : NULL;
    if (shared)
        cJSON_AddItemToObject(root, "shared", shared);
    cJSON *chaos = chaos_to_json();
    if (chaos)
        cJSON_AddItemToObject(root, "chaos", chaos);
    cJSON *supervisor = supervisor_status();
    if (supervisor)
        cJSON_AddItemToObject(root, "supervisor", supervisor);
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    int status = obs_send_json(conn, reachable ? 200 : 503, text);
    free(text);
    return status;
}

/* GET /replicas: the service's live replicas, as the database knows them. */
static int handle_replicas(struct mg_connection *conn, void *cbdata)
{
    (void)cbdata;
    int sent = answer_unless_get(conn);
    if (sent)
        return sent;
    if (!obs_g.roster_json)
        return send_error(conn, 404, "no replica roster: it is kept in the database when the service "
                                     "runs with CB_SHARED=on");
    cJSON *root = obs_g.roster_json(obs_g.roster_ctx);
    char *text = root ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (!text)
        return send_error(conn, 500, "out of memory");
    int status = obs_send_json(conn, 200, text);
    free(text);
    return status;
}

/* ---- /breaker and its admin routes -------------------------------------- */

/* Compares a and b in time that depends only on their lengths' maximum, not
 * on where they differ. Returns true when equal. */
static bool equal_constant_time(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    size_t n = la > lb ? la : lb;
    unsigned diff = (unsigned)(la ^ lb);
    for (size_t i = 0; i < n; i++) {
        unsigned char ca = i < la ? (unsigned char)a[i] : 0;
        unsigned char cb = i < lb ? (unsigned char)b[i] : 0;
        diff |= (unsigned)(ca ^ cb);
    }
    return diff == 0;
}

/* The token the request carries (Authorization: Bearer, or X-Admin-Token), or NULL. */
static const char *request_token(struct mg_connection *conn)
{
    const char *auth = mg_get_header(conn, "Authorization");
    if (auth && strncasecmp(auth, "Bearer ", 7) == 0) {
        auth += 7;
        while (*auth == ' ')
            auth++;
        return auth;
    }
    return mg_get_header(conn, "X-Admin-Token");
}

/* The breaker a /breaker request names with ?name= (the first without one),
 * or NULL after answering 400 or 404 (the status sent goes to *status). */
static obs_breaker *requested_breaker(struct mg_connection *conn, int *status)
{
    const char *qs = mg_get_request_info(conn)->query_string;
    char name[256] = "";
    if (qs && mg_get_var(qs, strlen(qs), "name", name, sizeof name) < -1) {
        *status = send_error(conn, 400, "the name parameter is too long");
        return NULL;
    }
    obs_breaker *ob = obs_breaker_named(name);
    if (!ob)
        *status = send_error(conn, 404, obs_g.nbreakers
                                 ? "no breaker of that name; GET /health lists them"
                                 : "this service has no breaker");
    return ob;
}

/* Sends the breaker's export with status. */
static int send_export(struct mg_connection *conn, cb_breaker *cb, int status)
{
    char *text = cb_export_json(cb);
    int rc = obs_send_json(conn, status, text);
    free(text);
    return rc;
}

/* The origin an admin answer may name in Access-Control-Allow-Origin: the
 * request's Origin when it is exactly one of ADMIN_ALLOWED_ORIGIN's (a
 * comma-separated list), else NULL (no CORS header: another origin's page cannot read the
 * answer, and its preflight fails, so it cannot send the token at all). */
static const char *admin_origin(struct mg_connection *conn)
{
    const char *origin = mg_get_header(conn, "Origin");
    if (!obs_g.admin_origin || !origin || !*origin)
        return NULL;
    size_t len = strlen(origin);
    for (const char *p = obs_g.admin_origin;;) {
        size_t n = strcspn(p, ",");
        if (n == len && !strncmp(p, origin, n))
            return origin;   /* exactly one of the allowed, as the request sent it */
        if (!p[n])
            return NULL;
        p += n + 1;
    }
}

/* Sends an admin answer: JSON text (freed), never cached, CORS as admin_origin(). */
static int send_admin(struct mg_connection *conn, int status, char *text)
{
    if (!text) {
        static const char oom[] = "{\"error\":\"out of memory\"}";
        return http_send_cors(conn, 500, "application/json", "no-store", oom, sizeof oom - 1, false,
                              admin_origin(conn));
    }
    http_send_cors(conn, status, "application/json", "no-store", text, strlen(text), false,
                   admin_origin(conn));
    free(text);
    return status;
}

/* Sends an admin error: {"error", "status", "service"}, CORS as admin_origin(). */
static int send_admin_error(struct mg_connection *conn, int status, const char *message)
{
    return http_send_error_cors(conn, status, obs_g.service ? obs_g.service : "", false,
                                admin_origin(conn), "%s", message);
}

/* The gate of every admin route: 404 when ADMIN_TOKEN is not set; for
 * OPTIONS, the preflight for ADMIN_ALLOWED_ORIGIN or 403 for any other
 * origin; 429 with Retry-After when the client's address has used up its
 * tries (authlimit.c); 401 without the right token, logged with the
 * address. Returns 0 when the request may go on, else the status sent. */
static int admin_gate(struct mg_connection *conn, const char *methods)
{
    if (!obs_g.admin_token)
        return send_admin_error(conn, 404, "admin routes are off: ADMIN_TOKEN is not set");
    const char *method = mg_get_request_info(conn)->request_method;
    if (strcmp(method, "OPTIONS") == 0) {
        const char *origin = admin_origin(conn);
        if (!origin)
            return send_admin_error(conn, 403, "cross-origin calls to the admin routes are refused "
                                    "(ADMIN_ALLOWED_ORIGIN names the one origin allowed)");
        return send_preflight_for(conn, methods, origin);
    }
    /* Every try takes one from the address's bucket before the comparison;
     * a right token gives it back (authlimit.c). The token tried is never logged. */
    const struct mg_request_info *ri = mg_get_request_info(conn);
    bool first_refusal = false;
    int wait_s = authlimit_take(ri->remote_addr, mono_ns(), &first_refusal);
    if (wait_s) {
        if (first_refusal)
            log_message(false, "admin: %s gets 429 after repeated wrong tokens; its further refusals "
                        "are counted in /metrics (admin_auth_limited_total)", ri->remote_addr);
        http_retry_after(wait_s);
        return send_admin_error(conn, 429, "too many wrong admin tokens from this address; "
                                "try again after Retry-After seconds");
    }
    const char *token = request_token(conn);
    if (!token || !equal_constant_time(token, obs_g.admin_token)) {
        authlimit_count_failure();
        log_message(false, "admin: %s token from %s on %s %.100s refused (401)",
                    token ? "a wrong" : "no", ri->remote_addr, method, ri->local_uri);
        return send_admin_error(conn, 401, "missing or wrong admin token");
    }
    authlimit_refund(ri->remote_addr);
    return 0;
}

/* POST /breaker/open or /breaker/close: forces the state by hand. Cross-origin
 * calls only from ADMIN_ALLOWED_ORIGIN (see admin_origin()). */
static int handle_admin(struct mg_connection *conn, const char *action)
{
    int gate = admin_gate(conn, "POST, OPTIONS");
    if (gate)
        return gate;
    const char *method = mg_get_request_info(conn)->request_method;
    if (strcmp(method, "POST") != 0)
        return send_admin_error(conn, 405, "use POST");
    const char *qs = mg_get_request_info(conn)->query_string;
    char name[256] = "";
    if (qs && mg_get_var(qs, strlen(qs), "name", name, sizeof name) < -1)
        return send_admin_error(conn, 400, "the name parameter is too long");
    obs_breaker *ob = obs_breaker_named(name);
    if (!ob)
        return send_admin_error(conn, 404, name[0] ? "no breaker of that name; GET /health lists them"
                                                   : "this service has no breaker");
    int rc;
    if (strcmp(action, "open") == 0) {
        rc = cb_force(ob->cb, CB_FORCE_OPEN);
    } else {
        rc = cb_force(ob->cb, CB_FORCE_NONE);
        if (rc == CB_OK)
            rc = cb_close(ob->cb);
    }
    if (rc != CB_OK)
        return send_admin_error(conn, 409, cb_strerror(rc));
    return send_admin(conn, 200, cb_export_json(ob->cb));
}

/* GET /breaker, POST /breaker/open, POST /breaker/close. */
static int handle_breaker(struct mg_connection *conn, void *cbdata)
{
    (void)cbdata;
    const struct mg_request_info *ri = mg_get_request_info(conn);
    const char *uri = ri->local_uri ? ri->local_uri : "";
    if (strcmp(uri, "/breaker/open") == 0)
        return handle_admin(conn, "open");
    if (strcmp(uri, "/breaker/close") == 0)
        return handle_admin(conn, "close");
    if (strcmp(uri, "/breaker") != 0 && strcmp(uri, "/breaker/") != 0)
        return send_error(conn, 404, "no such route");
    int sent = answer_unless_get(conn);
    if (sent)
        return sent;
    int status;
    obs_breaker *ob = requested_breaker(conn, &status);
    return ob ? send_export(conn, ob->cb, 200) : status;
}

/* GET /chaos (open to all, like GET /breaker); PUT and DELETE behind the
 * admin token. */
static int handle_chaos(struct mg_connection *conn, void *cbdata)
{
    (void)cbdata;
    const struct mg_request_info *ri = mg_get_request_info(conn);
    if (strcmp(ri->local_uri ? ri->local_uri : "", "/chaos") != 0)
        return send_error(conn, 404, "no such route; try /chaos");
    const char *method = ri->request_method;
    if (strcmp(method, "GET") && strcmp(method, "HEAD")) {
        int gate = admin_gate(conn, "GET, PUT, DELETE, OPTIONS");
        if (gate)
            return gate;
    }
    return chaos_serve(conn, obs_g.service, strcmp(method, "GET") && strcmp(method, "HEAD")
                                                ? admin_origin(conn) : "*");
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
    obs_g.shared_json = src->shared_json;
    obs_g.shared_ctx = src->shared_ctx;
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
        int id = cb_on(ob->cb, CB_EV_ALL, on_breaker_event, ob);
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
    { "/health", "/health", handle_health, NULL },
    { "/replicas", "/replicas", handle_replicas, NULL },
    { "/metrics", "/metrics", obs_handle_metrics, NULL },
    { "/hystrix.stream", "/hystrix.stream", obs_handle_hystrix_stream, NULL },
    { "/events.stream", "/events.stream", obs_handle_hystrix_stream, (void *)1 },
    { "/breaker", "/breaker", handle_breaker, NULL },
    { "/dashboard", "/dashboard", obs_handle_dashboard, NULL },
    { "/chaos", "/chaos", handle_chaos, NULL },
};

/* The route label of a request to h: the admin routes are told apart. */
static const char *route_label(const obs_handler *h, struct mg_connection *conn)
{
    const char *uri = mg_get_request_info(conn)->local_uri;
    if (h->fn == handle_breaker && uri &&
        (strcmp(uri, "/breaker/open") == 0 || strcmp(uri, "/breaker/close") == 0))
        return uri;
    if (h->fn == handle_chaos) {
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
