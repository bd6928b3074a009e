/* request.c -- the request pipeline every service shares: GET /, POST /create, 404, 405 and CORS.
 *
 * POST /create?count=N, in order: size limit (413), content type (415), JSON
 * (400), the spec's fields and safe keys (400), store through the database
 * breaker (503 when the database is unreachable or its circuit open),
 * DELAY_MS (a slow service), error injection (502), jump counting (last hop),
 * the call to CHAIN_SVC through its breaker (degraded answer from its
 * fallback), and the outcome recorded on the stored document, again through
 * the database breaker.
 */
#include "runtime.h"

#include <cJSON.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chain.h"
#include "http.h"
#include "log.h"
#include "observe.h"
#include "validate.h"

/* One hop to the next service: the breaker's arg. http must stay first, the
 * action reads the arg as a chain_call. */
typedef struct hop_call {
    chain_call http;
    svc_runtime *rt;
    int count;
} hop_call;

/* One POST /create being answered. */
typedef struct create_req {
    svc_runtime *rt;
    struct mg_connection *conn;
    int count;             /* N + 1 */
    cJSON *body;
    char doc_id[25];       /* the stored document, "" before it is stored */
} create_req;

/* Seconds on the monotonic clock. */
static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A uniform number in [0, 1) from a per-thread xorshift generator. */
static double random_unit(void)
{
    static _Thread_local uint64_t state;
    if (!state) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        state = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)(uintptr_t)&ts ^ (uint64_t)ts.tv_sec;
        state |= 1;
    }
    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    return (double)((state * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
}

/* Logs a finished request and counts it for /metrics. */
static void request_done(struct mg_connection *conn, const char *route, int status, double t0)
{
    const struct mg_request_info *ri = mg_get_request_info(conn);
    char path[600];
    snprintf(path, sizeof path, "%.400s%s%.150s", ri->local_uri ? ri->local_uri : "",
             ri->query_string ? "?" : "", ri->query_string ? ri->query_string : "");
    double seconds = now_s() - t0;
    log_request(ri->request_method, path, status, seconds * 1000.0);
    obs_record_request(route, status, seconds);
}

/* Reads ?count=N into *n (0 when absent). Returns 0, or -1 when it is not a
 * non-negative integer or is given more than once (?count=1&count=-1 has no
 * single meaning: a proxy may read the last where civetweb reads the first). */
static int request_count(const struct mg_request_info *ri, int *n)
{
    *n = 0;
    if (!ri->query_string)
        return 0;
    char buf[32];
    size_t qlen = strlen(ri->query_string);
    int len = mg_get_var(ri->query_string, qlen, "count", buf, sizeof buf);
    if (len == -1)
        return 0;
    char second[32];
    if (mg_get_var2(ri->query_string, qlen, "count", second, sizeof second, 1) != -1)
        return -1;
    char *end = NULL;
    errno = 0;
    long v = strtol(buf, &end, 10);
    if (len < 0 || errno || end == buf || *end || v < 0 || v >= INT_MAX)
        return -1;
    *n = (int)v;
    return 0;
}

/* Builds the answer's common fields. */
static cJSON *answer_new(const create_req *r, const char *status)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddStringToObject(o, "service", r->rt->cfg.id);
    cJSON_AddNumberToObject(o, "count", r->count);
    cJSON_AddStringToObject(o, "status", status);
    if (r->doc_id[0])
        cJSON_AddStringToObject(o, "document", r->doc_id);
    return o;
}

/* One write through the database breaker, its arg: the insert of a received
 * document (outcome NULL) or the outcome update of the stored one. */
typedef struct store_call {
    svc_runtime *rt;
    const char *json;      /* insert: the document */
    int count;             /* insert: the jump count */
    char *doc_id;          /* 25 bytes; filled by the insert, read by the update */
    const char *outcome;   /* update: the outcome; NULL for the insert */
    const char *reason;    /* update: its reason, or NULL */
    int status;            /* update: the HTTP status answered */
    char err[512];
} store_call;

/* Writes the outcome on the stored document through the database breaker; a
 * failure (the database went away since the insert, or its circuit opened) is
 * logged, and the document keeps "pending". */
static void record_outcome(create_req *r, const char *outcome, const char *reason, int status)
{
    store_call sc = { .rt = r->rt, .doc_id = r->doc_id, .outcome = outcome, .reason = reason,
                      .status = status };
    cb_result res = { 0 };
    int rc = cb_fire(r->rt->db_breaker, &sc, &res);
    if (rc != CB_OK)
        log_message(true, "could not record outcome \"%s\" on document %s (%s); it stays \"pending\"",
                    outcome, r->doc_id, rc == CB_EOPEN ? "database circuit open" : cb_strerror(rc));
}

/* Records the outcome and sends answer (freed) with status 200. */
static int answer_send(create_req *r, cJSON *answer, const char *outcome, const char *reason)
{
    record_outcome(r, outcome, reason, 200);
    if (!answer)
        return http_send_error(r->conn, 500, r->rt->cfg.id, true, "out of memory");
    int status = http_send_json(r->conn, 200, answer, false);
    cJSON_Delete(answer);
    return status;
}

/* The degraded answer's reason for a cb_fire() outcome. */
static const char *degraded_reason(int reason, int action_rc, char *buf, size_t len)
{
    switch (reason) {
    case CB_EOPEN:      return "open";
    case CB_ESEMLOCKED: return "capacity";
    case CB_ETIMEDOUT:  return "timeout";
    case CB_ESHUTDOWN:  return "shutdown";
    default:            return chain_reason(action_rc, buf, len);
    }
}

int request_fallback(void *arg, int reason, int action_rc, void **result, void *user)
{
    hop_call *hop = arg;
    svc_runtime *rt = user;
    char buf[32];
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return -1;
    cJSON_AddStringToObject(o, "service", rt->cfg.id);
    cJSON_AddNumberToObject(o, "count", hop->count);
    cJSON_AddStringToObject(o, "status", "degraded");
    cJSON_AddStringToObject(o, "reason", degraded_reason(reason, action_rc, buf, sizeof buf));
    cJSON_AddStringToObject(o, "breaker", cb_state_name(cb_get_state(rt->breaker)));
    cJSON_AddStringToObject(o, "message", "the next service did not answer; this is the fallback");
    *result = o;
    return 0;
}

/* Turns a degraded answer (from the fallback, or built here when there is
 * none) into the response, with the breaker's state after the call. */
static int answer_degraded(create_req *r, hop_call *hop, int rc, cb_result *res)
{
    cJSON *o = res->fallback ? res->value : NULL;
    if (!o && request_fallback(hop, rc, res->action_rc, (void **)&o, r->rt))
        return answer_send(r, NULL, "degraded", NULL);
    cJSON_ReplaceItemInObject(o, "breaker",
                              cJSON_CreateString(cb_state_name(cb_get_state(r->rt->breaker))));
    if (r->doc_id[0])
        cJSON_AddStringToObject(o, "document", r->doc_id);
    const cJSON *why = cJSON_GetObjectItemCaseSensitive(o, "reason");
    char reason[32];
    snprintf(reason, sizeof reason, "%s", cJSON_IsString(why) ? why->valuestring : "unknown");
    return answer_send(r, o, "degraded", reason);
}

/* Calls the next service through the breaker and answers. */
static int create_chain(create_req *r)
{
    const svc_spec *spec = r->rt->spec;
    const cJSON *pass = spec->pass_on ? cJSON_GetObjectItemCaseSensitive(r->body, spec->pass_on) : NULL;
    char *payload = cJSON_PrintUnformatted(pass ? pass : r->body);
    const char *base = r->rt->cfg.chain_svc;
    size_t url_len = strlen(base) + 32;
    char *url = malloc(url_len);
    if (!payload || !url) {
        free(payload);
        free(url);
        return http_send_error(r->conn, 500, r->rt->cfg.id, true, "out of memory");
    }
    snprintf(url, url_len, "%s%ccount=%d", base, strchr(base, '?') ? '&' : '?', r->count);
    hop_call hop = { .http = { .url = url, .body = payload }, .rt = r->rt, .count = r->count };
    cb_result res = { 0 };
    int rc = cb_fire(r->rt->breaker, &hop, &res);
    int status;
    if (rc == CB_OK) {
        cJSON *answer = answer_new(r, "ok");
        cJSON *next = hop.http.response ? cJSON_Parse(hop.http.response) : NULL;
        if (!next)
            next = cJSON_CreateString(hop.http.response ? hop.http.response : "");
        if (answer)
            cJSON_AddItemToObject(answer, "next", next);
        else
            cJSON_Delete(next);
        status = answer_send(r, answer, "ok", NULL);
    } else {
        status = answer_degraded(r, &hop, rc, &res);
    }
    free(hop.http.response);
    free(payload);
    free(url);
    return status;
}

/* Answers 502 for an injected error, as the demo: "<ID> @mm:ss -> unavailable". */
static int create_injected(create_req *r)
{
    record_outcome(r, "injected", NULL, 502);
    time_t t = time(NULL);
    struct tm tm;
    localtime_r(&t, &tm);
    cJSON *o = cJSON_CreateObject();
    char msg[160];
    snprintf(msg, sizeof msg, "%s @%d:%d -> unavailable (injected error)", r->rt->cfg.id,
             tm.tm_min, tm.tm_sec);
    cJSON_AddStringToObject(o, "error", msg);
    cJSON_AddStringToObject(o, "service", r->rt->cfg.id);
    if (r->doc_id[0])
        cJSON_AddStringToObject(o, "document", r->doc_id);
    int status = http_send_json(r->conn, 502, o, false);
    cJSON_Delete(o);
    return status;
}

int request_store_action(const cb_call *call, void **result)
{
    store_call *sc = call->arg;
    *result = NULL;
    if (sc->outcome)
        return store_record_outcome(sc->rt->db, sc->doc_id, sc->outcome, sc->reason, sc->status);
    return store_insert(sc->rt->db, sc->json, sc->rt->cfg.id, sc->count, sc->doc_id, sc->err,
                        sizeof sc->err);
}

bool request_store_error_filter(int action_rc, void *arg, void *user)
{
    (void)arg;
    (void)user;
    return action_rc != STORE_EUNAVAILABLE;
}

/* Stores the body through the database breaker. Returns 0, or the error
 * status already sent: 503 when the database is unreachable or its circuit
 * open (nothing is written then), 400 when it refused the document. */
static int create_store(create_req *r)
{
    svc_runtime *rt = r->rt;
    char *json = cJSON_PrintUnformatted(r->body);
    if (!json)
        return http_send_error(r->conn, 500, rt->cfg.id, true, "out of memory");
    store_call sc = { .rt = rt, .json = json, .count = r->count, .doc_id = r->doc_id };
    cb_result res = { 0 };
    int rc = cb_fire(rt->db_breaker, &sc, &res);
    free(json);
    if (rc == CB_OK)
        return 0;
    r->doc_id[0] = '\0';
    const char *db = store_db_name(rt->db);
    if (rc == CB_EOPEN) {
        cb_stats st;
        cb_get_stats(rt->db_breaker, &st);
        return http_send_error(r->conn, 503, rt->cfg.id, false,
                               "database \"%s\" is unavailable: its circuit is open after repeated "
                               "failures and is tried again every %lld ms",
                               db, (long long)st.current_reset_timeout_ms);
    }
    if (rc != CB_EFAILED)
        return http_send_error(r->conn, 503, rt->cfg.id, false, "database \"%s\" is unavailable: %s",
                               db, cb_strerror(rc));
    if (res.action_rc == STORE_EUNAVAILABLE)
        return http_send_error(r->conn, 503, rt->cfg.id, false,
                               "database \"%s\" is unavailable: %s; try again shortly", db, sc.err);
    if (res.action_rc == STORE_ENOMEM)
        return http_send_error(r->conn, 500, rt->cfg.id, true, "out of memory");
    return http_send_error(r->conn, 400, rt->cfg.id, false,
                           "the database refused the document: %s", sc.err);
}

/* Answers 413, after draining a body of reasonable size so that a client
 * still sending it reads the answer instead of a reset. */
static int create_too_large(create_req *r)
{
    const svc_config *cfg = &r->rt->cfg;
    bool kept = http_discard_body(r->conn, 16 * (size_t)cfg->max_body_bytes, cfg->body_timeout_ms);
    return http_send_error(r->conn, 413, cfg->id, !kept, "the body is larger than %d bytes",
                           cfg->max_body_bytes);
}

/* Reads, parses and checks the body into r->body. Returns 0 or the error
 * status already sent. */
static int create_parse(create_req *r)
{
    const struct mg_request_info *ri = mg_get_request_info(r->conn);
    const svc_config *cfg = &r->rt->cfg;
    const char *id = cfg->id;
    if (ri->content_length > cfg->max_body_bytes)
        return create_too_large(r);
    const char *type = mg_get_header(r->conn, "Content-Type");
    if (!http_is_json(type))
        return http_send_error(r->conn, 415, id, false,
                               "Content-Type must be application/json, got \"%.100s\"",
                               type ? type : "(none)");
    int n;
    if (request_count(ri, &n))
        return http_send_error(r->conn, 400, id, false,
                               "query parameter \"count\" must be one non-negative integer");
    r->count = n + 1;
    char *text = NULL;
    size_t len = 0;
    int rc = http_read_body(r->conn, (size_t)cfg->max_body_bytes, cfg->body_timeout_ms, &text, &len);
    if (rc == 413)
        return create_too_large(r);
    if (rc == 408)
        return http_send_error(r->conn, 408, id, true, "the body did not arrive within %d ms",
                               cfg->body_timeout_ms);
    if (rc)
        return http_send_error(r->conn, rc, id, true, "the body could not be read");
    char err[600];
    if (validate_depth(text, len, err, sizeof err)) {
        free(text);
        return http_send_error(r->conn, 400, id, false, "%s", err);
    }
    const char *end = NULL;
    r->body = cJSON_ParseWithLengthOpts(text, len, &end, false);
    size_t at = end ? (size_t)(end - text) : 0;
    free(text);
    if (!r->body)
        return http_send_error(r->conn, 400, id, false, "the body is not valid JSON (at byte %zu)", at);
    if (validate_body(r->body, r->rt->spec, err, sizeof err))
        return http_send_error(r->conn, 400, id, false, "%s", err);
    return 0;
}

/* POST /create, from the body to the answer. Returns the status sent. */
static int create(create_req *r)
{
    int status = create_parse(r);
    if (!status)
        status = create_store(r);
    if (status)
        return status;
    const svc_config *cfg = &r->rt->cfg;
    if (cfg->delay_ms > 0) {
        struct timespec d = { cfg->delay_ms / 1000, (long)(cfg->delay_ms % 1000) * 1000000 };
        while (nanosleep(&d, &d) && errno == EINTR)
            ;
    }
    if (cfg->inject_err && random_unit() < cfg->err_rate)
        return create_injected(r);
    if (r->count >= cfg->jumps || !r->rt->breaker) {
        cJSON *answer = answer_new(r, "last");
        if (answer)
            cJSON_AddStringToObject(answer, "message", "this is the last hop");
        return answer_send(r, answer, "last", NULL);
    }
    return create_chain(r);
}

/* Counts a request in; when the service is shutting down, answers 503 and
 * returns false. Every request_enter() is paired with request_leave(). */
static bool request_enter(svc_runtime *rt, struct mg_connection *conn, int *status)
{
    atomic_fetch_add(&rt->in_flight, 1);
    if (!atomic_load(&rt->draining))
        return true;
    *status = http_send_error(conn, 503, rt->cfg.id, true, "%s is shutting down; try again",
                              rt->cfg.id);
    return false;
}

/* Counts a request out. */
static void request_leave(svc_runtime *rt)
{
    atomic_fetch_sub(&rt->in_flight, 1);
}

/* Routes a request under /create; sets *route for /metrics. Returns the status sent. */
static int serve_create(svc_runtime *rt, struct mg_connection *conn, const char **route)
{
    const struct mg_request_info *ri = mg_get_request_info(conn);
    if (strcmp(ri->local_uri, "/create")) {
        *route = "other";
        return http_send_error(conn, 404, rt->cfg.id, false, "no route %.200s; try POST /create",
                               ri->local_uri);
    }
    if (!strcmp(ri->request_method, "OPTIONS"))
        return http_send_preflight(conn, "POST, OPTIONS");
    if (strcmp(ri->request_method, "POST"))
        return http_send_error(conn, 405, rt->cfg.id, false,
                               "method %.20s is not allowed on /create; use POST", ri->request_method);
    create_req r = { .rt = rt, .conn = conn };
    int status = create(&r);
    cJSON_Delete(r.body);
    return status;
}

/* Routes a request for / or any unknown path; sets *route. Returns the status sent. */
static int serve_root(svc_runtime *rt, struct mg_connection *conn, const char **route)
{
    const struct mg_request_info *ri = mg_get_request_info(conn);
    if (strcmp(ri->local_uri, "/")) {
        *route = "other";
        return http_send_error(conn, 404, rt->cfg.id, false,
                               "no route %.200s; try GET / or POST /create", ri->local_uri);
    }
    if (!strcmp(ri->request_method, "OPTIONS"))
        return http_send_preflight(conn, "GET, OPTIONS");
    if (strcmp(ri->request_method, "GET") && strcmp(ri->request_method, "HEAD"))
        return http_send_error(conn, 405, rt->cfg.id, false,
                               "method %.20s is not allowed on /; use GET", ri->request_method);
    char hello[200];
    snprintf(hello, sizeof hello, "hello from %s\n", rt->cfg.id);
    return http_send_text(conn, 200, hello);
}

/* Handler for /create (and anything under it). */
static int handle_create(struct mg_connection *conn, void *cbdata)
{
    double t0 = now_s();
    svc_runtime *rt = cbdata;
    const char *route = "/create";
    int status;
    if (request_enter(rt, conn, &status))
        status = serve_create(rt, conn, &route);
    request_leave(rt);
    request_done(conn, route, status, t0);
    return status;
}

/* Handler for / and, through civetweb's prefix matching, every unknown path. */
static int handle_root(struct mg_connection *conn, void *cbdata)
{
    double t0 = now_s();
    svc_runtime *rt = cbdata;
    const char *route = "/";
    int status;
    if (request_enter(rt, conn, &status))
        status = serve_root(rt, conn, &route);
    request_leave(rt);
    request_done(conn, route, status, t0);
    return status;
}

int request_begin(struct mg_connection *conn)
{
    const struct mg_request_info *ri = mg_get_request_info(conn);
    char why[200];
    int status = http_check_framing(ri, why, sizeof why);
    if (!status)
        return 0;
    double t0 = now_s();
    svc_runtime *rt = mg_get_user_data(mg_get_context(conn));
    http_send_error(conn, status, rt->cfg.id, true, "request framing refused: %s", why);
    request_done(conn, "rejected", status, t0);
    return status;
}

int request_http_error(struct mg_connection *conn, int status, const char *msg)
{
    svc_runtime *rt = mg_get_user_data(mg_get_context(conn));
    http_send_error(conn, status, rt->cfg.id, true, "%s", msg && *msg ? msg : "bad request");
    return 0;
}

void request_register(struct mg_context *ctx, svc_runtime *rt)
{
    mg_set_request_handler(ctx, "/create", handle_create, rt);
    mg_set_request_handler(ctx, "/", handle_root, rt);
}
