/* request.c -- the request pipeline every service shares: GET /, POST /create, 404, 405 and CORS.
 *
 * POST /create?count=N, in order: size limit (413), content type (415), the
 * body's shape limits (413: keys, elements, string length), JSON with
 * nothing after it and no NUL (400), the spec's fields and safe keys (400),
 * the runtime faults drawn (chaos.h: a reset drops the connection here,
 * before anything is stored), 503 at once when the write is bound to fail
 * (the database fault, or the database circuit open), the latency and hang
 * faults, the error fault (502), jump counting (last hop), the call to
 * CHAIN_SVC through its breaker (degraded answer from its fallback), with
 * retries around the breaker when RETRY_ATTEMPTS > 1 (hop_retry.h), and
 * then the request's one write: its document with its outcome, through
 * the database breaker, grouped with concurrent requests' (store.h). The
 * answer goes out after that write is committed; when it fails, the answer
 * is the database's 503 instead; the lose_answer fault resets the
 * connection in its place.
 *
 * Every request runs in its trace context (trace.h): its trace id goes on
 * the answer, the document, the log lines and the call to the next hop; its
 * deadline (X-Deadline-Ms) bounds every wait, and what is left of it, less
 * DEADLINE_MARGIN_MS, is what the next hop is given.
 */
#include "request.h"
#include "runtime.h"

#include <cJSON.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "chain.h"
#include "chaos.h"
#include "dbwatch.h"
#include "hop_hedge.h"
#include "hop_retry.h"
#include "http.h"
#include "idem.h"
#include "log.h"
#include "monotime.h"
#include "observe.h"
#include "otel.h"
#include "request_parse.h"
#include "shed.h"
#include "trace.h"
#include "validate.h"
#include "wire.h"

/* One hop to the next service: the breaker's arg. http must stay first, the
 * action reads the arg as a chain_call. */
typedef struct hop_call {
    chain_call http;
    svc_runtime *rt;
    int count;
    int attempts;          /* with retries on: the attempts made; 0 = retries off */
    cb_retry_stop stop;    /* with retries on: why no further attempt was made */
} hop_call;

/* Where a request meets a runtime fault (fault_hooks[] below). */
typedef enum fault_stage {
    ON_KEY,       /* before the idempotency key is taken */
    ON_ARRIVAL,   /* nothing is stored, nothing called */
    ON_WRITE,     /* the request's one write fails */
    ON_WORK,      /* before the work: the call to the next hop, then the write */
    ON_ANSWER,    /* after the work and its write, instead of the answer */
} fault_stage;

/* One POST /create being answered. */
typedef struct create_req {
    svc_runtime *rt;
    struct mg_connection *conn;
    int count;             /* N + 1 */
    cJSON *body;
    char doc_id[25];       /* the document's id, made when the body is taken */
    int64_t received_ms;   /* when the body was taken (ms since the epoch) */
    bool called_next;      /* the next hop was called (and may have stored its document) */
    char key[IDEM_KEY_MAX + 1];       /* the idempotency key; "" when keys are off */
    char body_hash[IDEM_HASH_HEX + 1]; /* the digest of the body as received */
    bool key_held;         /* key is held in idem's table until the request ends */
    bool latency_cut;      /* the latency fault's wait was cut by the caller's deadline */
    chaos_draw chaos;      /* the runtime faults drawn for this request */
    bool db_fault;         /* the database fault: the writes fail as if it were down */
    bool no_deadlines;     /* the no_deadlines fault: no deadline honoured or passed on */
    bool no_keys;          /* the no_idempotency fault: no key honoured or passed on */
} create_req;

/* Logs a finished request and counts it for /metrics. */
static void request_done(struct mg_connection *conn, const char *route, int status, double t0)
{
    const struct mg_request_info *ri = mg_get_request_info(conn);
    double seconds = (double)mono_ns() / 1e9 - t0;
    log_request(ri->request_method, ri->local_uri, ri->query_string, status, seconds * 1000.0);
    obs_record_request(route, status, seconds);
}

/* A count given more than once (?count=1&count=-1) has no single meaning:
 * a proxy may read the last where civetweb reads the first, so it is refused. */
int request_parse_count(const char *query, size_t len, int *n)
{
    *n = 0;
    if (!query)
        return 0;
    char buf[32];
    int got = mg_get_var(query, len, "count", buf, sizeof buf);
    if (got == -1)
        return 0;
    char second[32];
    if (mg_get_var2(query, len, "count", second, sizeof second, 1) != -1)
        return -1;
    char *end = NULL;
    errno = 0;
    long v = strtol(buf, &end, 10);
    if (got < 0 || errno || end == buf || *end || v < 0 || v >= INT_MAX)
        return -1;
    *n = (int)v;
    return 0;
}

int request_parse_body(const char *text, size_t len, const svc_spec *spec,
                       const validate_limits *limits, cJSON **body, validate_refusal *why,
                       char *err, size_t errlen)
{
    *body = NULL;
    if (validate_text(text, len, limits, why, err, errlen))
        return -1;
    why->status = 400;
    why->limit = NULL;
    const char *end = NULL;
    cJSON *b = cJSON_ParseWithLengthOpts(text, len, &end, false);
    if (!b) {
        snprintf(err, errlen, "the body is not valid JSON (at byte %zu)",
                 end ? (size_t)(end - text) : (size_t)0);
        return -1;
    }
    /* cJSON stops after the first value: "{...}xyz" and two documents back
     * to back would parse as the first alone. */
    size_t used = (size_t)(end - text);
    while (used < len && (text[used] == ' ' || text[used] == '\t' || text[used] == '\n' ||
                          text[used] == '\r'))
        used++;
    if (used < len) {
        cJSON_Delete(b);
        snprintf(err, errlen, "the body is not valid JSON: data after its JSON value (at byte %zu)",
                 used);
        return -1;
    }
    if (validate_body(b, spec, limits, why, err, errlen)) {
        cJSON_Delete(b);
        return -1;
    }
    *body = b;
    return 0;
}

/* Answers a refused body: why->status with the message err and, when a
 * shape limit was passed, "limit" (its variable) and "value" beside it.
 * Returns the status sent. */
static int send_refusal(struct mg_connection *conn, const char *service,
                        const validate_refusal *why, const char *err)
{
    if (!why->limit)
        return http_send_error(conn, why->status, service, false, "%s", err);
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return http_send_error(conn, 500, service, true, "out of memory");
    cJSON_AddStringToObject(o, "error", err);
    cJSON_AddNumberToObject(o, "status", why->status);
    cJSON_AddStringToObject(o, "service", service);
    cJSON_AddStringToObject(o, "limit", why->limit);
    cJSON_AddNumberToObject(o, "value", why->value);
    http_add_trace(o);
    int status = http_send_json(conn, why->status, o, false);
    cJSON_Delete(o);
    return status;
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
    http_add_trace(o);
    return o;
}

/* The one write of a request through the database breaker: its arg. */
typedef struct store_call {
    svc_runtime *rt;
    store_doc doc;
    bool fault;            /* the database fault: fail as an unreachable database */
    otel_span *span;       /* the breaker call's span; NULL = not sampled */
    char err[512];
} store_call;

/* Writes r's document, with its outcome (reason and status: NULL / 0 to
 * omit) and, with its idempotency key, the answer about to be sent (JSON
 * text), through the database breaker: the request's one write. Returns
 * the breaker's result (CB_OK: stored, committed), *res and sc filled. */
static int write_doc(create_req *r, const char *outcome, const char *reason, int status,
                     const char *answer, store_call *sc, cb_result *res)
{
    char *json = cJSON_PrintUnformatted(r->body);
    if (!json) {
        snprintf(sc->err, sizeof sc->err, "out of memory");
        res->action_rc = STORE_ENOMEM;
        return CB_EFAILED;
    }
    const trace_ctx *t = trace_current();
    *sc = (store_call){ .rt = r->rt, .fault = r->db_fault,
                        .doc = { .id_hex = r->doc_id, .json = json, .service = r->rt->cfg.id,
                                 .count = r->count, .received_ms = r->received_ms,
                                 .outcome = outcome, .reason = reason, .status = status,
                                 .trace = t ? t->id : NULL, .key = r->key[0] ? r->key : NULL,
                                 .body_hash = r->key[0] ? r->body_hash : NULL,
                                 .answer = r->key[0] ? answer : NULL } };
    sc->span = otel_breaker_begin(r->rt->db_breaker, r->rt->db_label);
    int rc = cb_fire(r->rt->db_breaker, sc, res);
    otel_breaker_end(sc->span, r->rt->db_breaker, rc, res);
    otel_span *request = otel_request_span();   /* the outcome stored, or why none was */
    otel_str(request, "app.outcome", rc == CB_OK ? outcome : "not stored");
    otel_str(request, "app.degraded.reason", rc == CB_OK ? reason : NULL);
    free(json);
    if (r->key_held) {
        /* stored: a request with this key now meets the unique index and
         * gets the stored answer; not stored: it may run. Let go before the
         * answer leaves, so a client that sends again at once is not told
         * the key is in progress. */
        idem_end(r->key);
        r->key_held = false;
    }
    return rc;
}

/* {"error": msg, "status": status, "service": ...}, for a caller to add to;
 * NULL when out of memory. */
static cJSON *error_object(const create_req *r, int status, const char *msg)
{
    cJSON *o = cJSON_CreateObject();
    if (o) {
        cJSON_AddStringToObject(o, "error", msg);
        cJSON_AddNumberToObject(o, "status", status);
        cJSON_AddStringToObject(o, "service", r->rt->cfg.id);
    }
    return o;
}

/* Sends o (from error_object(), freed; NULL: out of memory, 500) with
 * status and the trace id. Returns the status sent. */
static int send_error_object(create_req *r, int status, cJSON *o)
{
    if (!o)
        return http_send_error(r->conn, 500, r->rt->cfg.id, true, "out of memory");
    http_add_trace(o);
    int sent = http_send_json(r->conn, status, o, false);
    cJSON_Delete(o);
    return sent;
}

/* Answers 503 for a document whose insert left but whose answer was lost:
 * it may be stored, with the outcome it was sent with. The answer says so
 * in "stored", "document" and "outcome", so a client can tell it from a 503
 * that stored nothing. */
static int answer_stored_unknown(create_req *r, const char *outcome, const char *why)
{
    char msg[600];
    snprintf(msg, sizeof msg, "database \"%s\" %s; document %s may be stored (with outcome "
             "\"%s\"); try again", store_db_name(r->rt->db), why, r->doc_id, outcome);
    cJSON *o = error_object(r, 503, msg);
    if (o) {
        cJSON_AddStringToObject(o, "document", r->doc_id);
        cJSON_AddStringToObject(o, "stored", "unknown");
        cJSON_AddStringToObject(o, "outcome", outcome);
    }
    return send_error_object(r, 503, o);
}

/* Answers the failed write of r (write_doc()'s rc, res and sc): 503 when
 * the database is unreachable, failing or its circuit open (nothing of
 * this hop was stored; when the next hop was called, its own document may
 * be: "stored": "no" says so), 503 with "stored": "unknown" when the
 * answer of the insert was lost, 400 when the database refused the
 * document. Returns the status sent. */
static int answer_write_failed(create_req *r, const char *outcome, int rc, const cb_result *res,
                               const store_call *sc)
{
    svc_runtime *rt = r->rt;
    const char *db = store_db_name(rt->db);
    char why[400];
    if (rc == CB_EOPEN) {
        cb_stats st;
        cb_get_stats(rt->db_breaker, &st);
        snprintf(why, sizeof why, "its circuit is open after repeated failures and is tried "
                 "again every %lld ms", (long long)st.current_reset_timeout_ms);
    } else if (rc != CB_EFAILED) {
        snprintf(why, sizeof why, "%s", cb_strerror(rc));
    } else if (res->action_rc == STORE_EUNKNOWN) {
        snprintf(why, sizeof why, "did not answer the insert (%.200s)", sc->err);
        return answer_stored_unknown(r, outcome, why);
    } else if (res->action_rc == STORE_ENOMEM) {
        return http_send_error(r->conn, 500, rt->cfg.id, true, "out of memory");
    } else if (res->action_rc == STORE_EREJECTED) {
        return http_send_error(r->conn, 400, rt->cfg.id, false,
                               "the database refused the document: %s", sc->err);
    } else {
        snprintf(why, sizeof why, "%.300s", sc->err);
    }
    if (!r->called_next)
        return http_send_error(r->conn, 503, rt->cfg.id, false,
                               "database \"%s\" is unavailable: %s; nothing was stored; try "
                               "again shortly", db, why);
    char msg[600];
    snprintf(msg, sizeof msg, "database \"%s\" is unavailable: %s; this hop's document was not "
             "stored, but the next hop was called first and may have stored its own",
             db, why);
    cJSON *o = error_object(r, 503, msg);
    if (o)
        cJSON_AddStringToObject(o, "stored", "no");
    return send_error_object(r, 503, o);
}

static int meet_faults(create_req *r, fault_stage stage);

/* The request's key is stored already (the write failed as
 * STORE_EDUPLICATE): answers what that request answered, marked as a
 * replay, and stores nothing; 422 when it came with another body; when it
 * is older than IDEMPOTENCY_TTL_S, frees the key and returns 0 (the caller
 * writes again). Returns the status sent, or 0. */
static int answer_replay(create_req *r)
{
    svc_runtime *rt = r->rt;
    store_keyed prior;
    char err[300] = "";
    int rc = store_find_key(rt->db, r->key, &prior, err, sizeof err);
    if (rc == STORE_ENOTFOUND)
        return http_send_error(r->conn, 409, rt->cfg.id, false,
                               "Idempotency-Key %s was taken by another request just now; try "
                               "again", r->key);
    if (rc != STORE_OK)
        return http_send_error(r->conn, 503, rt->cfg.id, false,
                               "database \"%s\" is unavailable: %s; this request's key is stored "
                               "already but its answer cannot be read", store_db_name(rt->db), err);
    int status;
    if (strcmp(prior.body_hash, r->body_hash)) {
        status = http_send_error(r->conn, 422, rt->cfg.id, false,
                                 "Idempotency-Key %s was used with another body (document %s)",
                                 r->key, prior.id_hex);
    } else if (prior.received_ms < wall_ms() - (int64_t)rt->cfg.idempotency_ttl_s * 1000) {
        status = store_expire_key(rt->db, r->key, prior.id_hex, err, sizeof err) == STORE_OK ? 0
            : http_send_error(r->conn, 503, rt->cfg.id, false, "database \"%s\" is unavailable: "
                              "%s; the expired key could not be freed", store_db_name(rt->db), err);
    } else if (!prior.answer || prior.status < 100) {
        status = http_send_error(r->conn, 409, rt->cfg.id, false,
                                 "Idempotency-Key %s was used by document %s, whose answer was "
                                 "not kept", r->key, prior.id_hex);
    } else if (!(status = meet_faults(r, ON_ANSWER))) {   /* lose_answer loses replays too */
        http_replayed();
        status = http_send_raw(r->conn, prior.status, "application/json", NULL, prior.answer,
                               strlen(prior.answer), false);
        obs_count_replay();
    }
    free(prior.answer);
    return status;
}

/* Writes r's document with its outcome and answer (JSON text, or NULL);
 * returns 0 when it is stored, or the status already answered: the write's
 * failure (answer_write_failed()), or the replay of the answer stored with
 * the same idempotency key (answer_replay()). */
static int write_or_answer(create_req *r, const char *outcome, const char *reason, int status,
                           const char *answer)
{
    for (int tries = 0;; tries++) {
        store_call sc;
        cb_result res = { 0 };
        int rc = write_doc(r, outcome, reason, status, answer, &sc, &res);
        if (rc == CB_OK)
            return 0;
        if (rc != CB_EFAILED || res.action_rc != STORE_EDUPLICATE || tries > 0)
            return answer_write_failed(r, outcome, rc, &res, &sc);
        int replayed = answer_replay(r);
        if (replayed)
            return replayed;
    }
}

/* Writes r's document for an answer that goes out whatever the write did
 * (504: the caller has given up): a failure is logged. */
static void write_or_log(create_req *r, const char *outcome, const char *reason, int status,
                         const char *answer)
{
    store_call sc;
    cb_result res = { 0 };
    int rc = write_doc(r, outcome, reason, status, answer, &sc, &res);
    if (rc != CB_OK)
        log_message(true, "could not store document %s with outcome \"%s\" (%s)", r->doc_id,
                    outcome, rc == CB_EOPEN ? "database circuit open"
                         : rc == CB_EFAILED ? sc.err : cb_strerror(rc));
}

/* Sends status with the JSON text answer (not freed). */
static int send_text_json(create_req *r, int status, const char *answer)
{
    return http_send_raw(r->conn, status, "application/json", NULL, answer, strlen(answer), false);
}

/* error_object() with the document's id and the trace id, as JSON text
 * (malloc'd), or NULL when out of memory. */
static char *error_text(create_req *r, int status, const char *msg)
{
    cJSON *o = error_object(r, status, msg);
    if (!o)
        return NULL;
    cJSON_AddStringToObject(o, "document", r->doc_id);
    http_add_trace(o);
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}

/* Stores the document with its outcome, then sends answer (freed) with
 * status 200: a 2xx is sent only once the document is committed. When it
 * cannot be stored, the answer is the write's failure instead (or, for a
 * key stored already, the stored answer); when the lose_answer fault takes
 * it, the connection is reset instead. */
static int answer_send(create_req *r, cJSON *answer, const char *outcome, const char *reason)
{
    char *text = answer ? cJSON_PrintUnformatted(answer) : NULL;
    cJSON_Delete(answer);
    int failed = write_or_answer(r, outcome, reason, 200, text);
    if (!failed)
        failed = meet_faults(r, ON_ANSWER);
    if (failed) {
        free(text);
        return failed;
    }
    if (!text)
        return http_send_error(r->conn, 500, r->rt->cfg.id, true, "out of memory");
    int status = send_text_json(r, 200, text);
    free(text);
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

/* Adds "retry": {"attempts", "stop"} to an answer when the call went
 * through the retry policy; "stop" says why no further attempt was made:
 * "done" (success, or a failure that is not retried), "refused" (by the
 * breaker), "retry-exhausted", "budget-exhausted" or "deadline". */
static void hop_retry_put(cJSON *answer, const hop_call *hop)
{
    static const char *const stops[] = {
        [CB_RETRY_DONE] = "done", [CB_RETRY_REFUSED] = "refused",
        [CB_RETRY_ATTEMPTS] = "retry-exhausted", [CB_RETRY_BUDGET] = "budget-exhausted",
        [CB_RETRY_DEADLINE] = "deadline",
    };
    if (!answer || !hop->attempts)
        return;
    cJSON *x = cJSON_AddObjectToObject(answer, "retry");
    cJSON_AddNumberToObject(x, "attempts", hop->attempts);
    cJSON_AddStringToObject(x, "stop", (unsigned)hop->stop < sizeof stops / sizeof stops[0]
                                           ? stops[hop->stop] : "unknown");
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
    http_add_trace(o);
    hop_retry_put(o, hop);
    const cJSON *why = cJSON_GetObjectItemCaseSensitive(o, "reason");
    char reason[32];
    snprintf(reason, sizeof reason, "%s", cJSON_IsString(why) ? why->valuestring : "unknown");
    return answer_send(r, o, "degraded", reason);
}

/* Answers degraded without calling the next hop: our caller's deadline
 * leaves no time for the call. */
static int answer_spent(create_req *r, hop_call *hop)
{
    cJSON *o = NULL;
    if (request_fallback(hop, CB_ETIMEDOUT, 0, (void **)&o, r->rt))
        return answer_send(r, NULL, "degraded", NULL);
    cJSON_ReplaceItemInObject(o, "reason", cJSON_CreateString("deadline"));
    cJSON_ReplaceItemInObject(o, "message", cJSON_CreateString(
        "the caller's deadline left no time to call the next service; this is the fallback"));
    if (r->doc_id[0])
        cJSON_AddStringToObject(o, "document", r->doc_id);
    http_add_trace(o);
    return answer_send(r, o, "degraded", "deadline");
}


/* Calls the next hop through the hedging policy (hop_hedge.h): one hop_call
 * per copy, each with its own cancel flag and answer, all with hop's URL,
 * body and headers (the same Idempotency-Key). The returned copy's answer
 * is moved into hop; the others' are freed. Returns the cb_fire() result. */
static int hop_fire_hedged(hop_call *hop, cb_result *res)
{
    hop_call copies[CB_HEDGE_MAX_COPIES];
    _Atomic int cancel[CB_HEDGE_MAX_COPIES];
    void *args[CB_HEDGE_MAX_COPIES];
    for (int i = 0; i < CB_HEDGE_MAX_COPIES; i++) {
        copies[i] = *hop;
        copies[i].http.cancel = &cancel[i];
        copies[i].http.copy = i + 1;
        atomic_init(&cancel[i], 0);
        args[i] = &copies[i];
    }
    int winner;
    int rc = hop_hedge_fire(hop->rt->breaker, args, cancel, CB_HEDGE_MAX_COPIES, res, &winner);
    for (int i = 0; i < CB_HEDGE_MAX_COPIES; i++)
        if (i != winner)
            free(copies[i].http.response);
    *hop = copies[winner];
    hop->http.cancel = NULL;
    if (rc == CB_OK && !res->fallback)
        res->value = &hop->http;   /* not the copy's, which is gone */
    return rc;
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
    const svc_config *cfg = &r->rt->cfg;
    int64_t budget = -1;    /* what the next hop is told it has; -1 = nothing said */
    int64_t left = trace_left_ms();
    if (cfg->deadlines && !r->no_deadlines) {
        budget = cfg->cb_timeout_ms > 0 ? cfg->cb_timeout_ms : -1;
        if (left != INT64_MAX) {
            /* Our caller waits left ms; keep a margin to answer it in. */
            int64_t ours = left - cfg->deadline_margin_ms;
            if (ours <= 0) {
                free(payload);
                free(url);
                return answer_spent(r, &hop);
            }
            budget = budget < 0 || ours < budget ? ours : budget;
            hop.http.deadline_ns = mono_ns() + ours * 1000000;
        }
    }
    char headers[512];
    hop.http.headers = trace_next_headers(headers, sizeof headers, budget);
    if (r->key[0]) {
        /* the same key on every attempt of this call, another at every hop */
        char next_key[IDEM_KEY_MAX + 1];
        idem_derive(r->key, r->rt->cfg.id, next_key);
        size_t used = strlen(headers);
        snprintf(headers + used, sizeof headers - used, "Idempotency-Key: %s\n", next_key);
    }
    cb_result res = { 0 };
    const trace_ctx *t = trace_current();
    if (t && t->w3c) {
        memcpy(hop.http.trace_id, t->id, sizeof hop.http.trace_id);
        hop.http.sampled = t->sampled;
    }
    hop.http.span = otel_breaker_begin(r->rt->breaker, r->rt->breaker_label);
    int64_t called = mono_ns();
    r->called_next = true;
    hop_retry_settings retry_settings;
    cb_retry *retry = hop_retry_current(&retry_settings);
    int rc;
    if (retry && retry_settings.attempts > 1) {
        /* The retry outside, the breaker inside; no attempt or back-off
         * past the hop's deadline (mono_ns(), the policy's clock too). */
        cb_retry_call call = { .deadline_ns = hop.http.deadline_ns };
        rc = cb_retry_fire(retry, r->rt->breaker, &hop, &res, &call);
        hop.attempts = call.attempts;
        hop.stop = call.stop;
    } else if (hop_hedge_on()) {
        rc = hop_fire_hedged(&hop, &res);
    } else {
        rc = cb_fire(r->rt->breaker, &hop, &res);
    }
    trace_time_next(mono_ns() - called, rc == CB_OK ? hop.http.next_db_ns : 0);
    otel_breaker_end(hop.http.span, r->rt->breaker, rc, &res);
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
        hop_retry_put(answer, &hop);
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
    time_t t = time(NULL);
    struct tm tm;
    localtime_r(&t, &tm);
    char msg[160];
    snprintf(msg, sizeof msg, "%s @%d:%d -> unavailable (injected error)", r->rt->cfg.id,
             tm.tm_min, tm.tm_sec);
    char *text = error_text(r, 502, msg);
    if (!text)
        return http_send_error(r->conn, 500, r->rt->cfg.id, true, "out of memory");
    int status = write_or_answer(r, "injected", NULL, 502, text);
    if (!status)
        status = meet_faults(r, ON_ANSWER);
    if (!status)
        status = send_text_json(r, 502, text);
    free(text);
    return status;
}

/* The span of a request's write: OpenTelemetry's database attributes (the
 * current names and the older ones, which viewers still read). */
static otel_span *store_span_begin(const store_call *sc)
{
    const char *coll = sc->rt->spec->collection;
    char name[96];
    snprintf(name, sizeof name, "insert %s", coll);
    otel_span *s = otel_child(sc->span, name, OTEL_CLIENT);
    if (s) {
        otel_str(s, "db.system.name", "mongodb");
        otel_str(s, "db.system", "mongodb");
        otel_str(s, "db.operation.name", "insert");
        otel_str(s, "db.operation", "insert");
        otel_str(s, "db.collection.name", coll);
        otel_str(s, "db.mongodb.collection", coll);
        otel_str(s, "db.namespace", store_db_name(sc->rt->db));
        otel_str(s, "app.document", sc->doc.id_hex);
    }
    return s;
}

int request_store_action(const cb_call *call, void **result)
{
    store_call *sc = call->arg;
    *result = NULL;
    otel_span *span = store_span_begin(sc);
    if (sc->fault) {
        snprintf(sc->err, sizeof sc->err, "unreachable (the database fault is on: DELETE /chaos)");
        otel_str(span, "error.type", "fault");
        otel_fail(span, sc->err);
        return STORE_EUNAVAILABLE;
    }
    int64_t t0 = mono_ns();
    int rc = store_insert(sc->rt->db, &sc->doc, sc->err, sizeof sc->err);
    trace_time_db(mono_ns() - t0);
    if (rc == STORE_OK) {
        otel_end(span);
    } else {
        otel_str(span, "error.type", rc == STORE_EUNAVAILABLE ? "unavailable" : "refused");
        otel_fail(span, sc->err);
    }
    if (rc == STORE_OK)
        dbwatch_write_ok();
    return rc;
}

bool request_store_error_filter(int action_rc, void *arg, void *user)
{
    (void)arg;
    (void)user;
    return action_rc != STORE_EUNAVAILABLE && action_rc != STORE_EUNKNOWN;
}

/* Before any work: answers 503 at once, with nothing stored and the next
 * hop not called, when the request's write is bound to fail: the database
 * fault drawn for it (its write fails through the breaker, as the
 * database's would) or the database circuit open. Returns 0 to go on, or
 * the status sent. */
static int database_refuses(create_req *r)
{
    if (r->db_fault)
        return write_or_answer(r, "ok", NULL, 200, NULL);   /* fails: the fault is on */
    cb_breaker *db = r->rt->db_breaker;
    cb_tick(db);   /* an open circuit whose time is up turns half-open: the write is its trial */
    cb_state state = cb_get_state(db);
    if (state != CB_OPEN && state != CB_FORCED_OPEN)
        return 0;
    cb_result res = { .action_rc = STORE_EUNAVAILABLE };
    store_call sc = { .rt = r->rt };
    return answer_write_failed(r, "ok", CB_EOPEN, &res, &sc);
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
    if (request_parse_count(ri->query_string,
                            ri->query_string ? strlen(ri->query_string) : 0, &n))
        return http_send_error(r->conn, 400, id, false,
                               "query parameter \"count\" must be one non-negative integer");
    r->count = n + 1;
    char *text = NULL;
    size_t len = 0;
    int rc = http_read_body(r->conn, (size_t)cfg->max_body_bytes, cfg->body_timeout_ms, &text, &len);
    if (rc == 413)
        return create_too_large(r);
    if (rc == 408)
        return http_send_error(r->conn, 408, id, true, "the body did not arrive within %d ms "
                               "(BODY_TIMEOUT_MS), or came slower than %d ms while the service "
                               "was full (SLOW_CLIENT_MS)", cfg->body_timeout_ms,
                               cfg->slow_client_ms);
    if (rc)
        return http_send_error(r->conn, rc, id, true, "the body could not be read");
    char err[600];
    validate_refusal why;
    rc = request_parse_body(text, len, r->rt->spec, &cfg->body_limits, &r->body, &why, err,
                            sizeof err);
    if (!rc && cfg->idempotency_keys)
        idem_digest(text, len, r->body_hash);
    free(text);
    if (rc)
        return send_refusal(r->conn, id, &why, err);
    return 0;
}

/* Answers 504 (outcome, reason, the message msg) to a caller that has
 * given up, after writing the document: a failed write is only logged. */
static int answer_given_up(create_req *r, const char *outcome, const char *reason, const char *msg)
{
    char *text = error_text(r, 504, msg);
    write_or_log(r, outcome, reason, 504, text);
    int status = text ? send_text_json(r, 504, text)
                      : http_send_error(r->conn, 504, r->rt->cfg.id, false, "%s", msg);
    free(text);
    return status;
}

/* Answers 504 because the caller's deadline passed while we worked; the
 * document records it. */
static int create_late(create_req *r, const char *what)
{
    char msg[200];
    snprintf(msg, sizeof msg, "the caller's deadline (X-Deadline-Ms) passed %s", what);
    return answer_given_up(r, "deadline", what, msg);
}

/* Waits ms, or until the caller's deadline when that comes first. Returns
 * true when the deadline cut the wait short. */
static bool wait_within_deadline(int ms)
{
    int64_t left = trace_left_ms();
    bool cut = left != INT64_MAX && left < ms;
    int64_t wait = cut ? (left > 0 ? left : 0) : ms;
    struct timespec d = { (time_t)(wait / 1000), (long)(wait % 1000) * 1000000 };
    while (nanosleep(&d, &d) && errno == EINTR)
        ;
    return cut;
}

/* ---- what each runtime fault does to POST /create --------------------------
 *
 * A hook gets the request and what the fault drew for it (chaos_draw's
 * amount) and returns 0 to go on, or the status it answered with. */

/* no_deadlines: drop the caller's deadline and pass none on. */
static int fault_no_deadlines(create_req *r, int amount)
{
    (void)amount;
    trace_drop_deadline();
    r->no_deadlines = true;
    return 0;
}

/* no_idempotency: take no key and pass none on, as with IDEMPOTENCY_KEYS=0. */
static int fault_no_idempotency(create_req *r, int amount)
{
    (void)amount;
    r->no_keys = true;
    return 0;
}

/* reset: drop the connection; when its socket cannot be found, go on. */
static int fault_reset(create_req *r, int amount)
{
    (void)amount;
    return chaos_reset(r->conn) == 0 ? 444 : 0;   /* 444: nothing was sent */
}

/* lose_answer: the work is done and stored; drop the connection instead of
 * the answer (a caller that retries meets a completed write). When its
 * socket cannot be found, the answer goes out. */
static int fault_lose_answer(create_req *r, int amount)
{
    (void)amount;
    return chaos_reset(r->conn) == 0 ? 444 : 0;   /* 444: nothing was sent */
}

/* database: the writes fail as if the database were unreachable. */
static int fault_database(create_req *r, int amount)
{
    (void)amount;
    r->db_fault = true;
    return 0;
}

/* latency: wait ms, within the caller's deadline. It waits before the
 * idempotency key is taken (as a slow network or queue would), so that a
 * hedged copy with the same key, sent while this one waits, is not refused
 * as "in progress"; a wait cut by the deadline is answered at ON_WORK. */
static int fault_latency(create_req *r, int ms)
{
    r->latency_cut = wait_within_deadline(ms);
    return 0;
}

/* hang: hold until the caller gives up, max_ms or the caller's deadline. */
static int fault_hang(create_req *r, int max_ms)
{
    int64_t left = trace_left_ms();
    int max = max_ms;
    if (left != INT64_MAX && left < max)
        max = left > 0 ? (int)left : 0;
    int held = chaos_hang(r->conn, max, &r->rt->draining);
    char msg[200];
    snprintf(msg, sizeof msg, "held for %d ms by the hang fault (DELETE /chaos clears it)", held);
    return answer_given_up(r, "hang", NULL, msg);
}

/* error: answer 502. */
static int fault_error(create_req *r, int amount)
{
    (void)amount;
    return create_injected(r);
}


/* The faults in the order a request meets them (chaos.h has what each is). */
static const struct fault_hook {
    chaos_kind kind;
    fault_stage stage;
    int (*act)(create_req *r, int amount);
} fault_hooks[] = {
    { CHAOS_NO_IDEMPOTENCY, ON_KEY,   fault_no_idempotency },
    { CHAOS_NO_DEADLINES, ON_ARRIVAL, fault_no_deadlines },
    { CHAOS_RESET,        ON_ARRIVAL, fault_reset },
    { CHAOS_DATABASE,     ON_WRITE,   fault_database },
    { CHAOS_LATENCY,      ON_KEY,     fault_latency },
    { CHAOS_HANG,         ON_WORK,    fault_hang },
    { CHAOS_ERROR,        ON_WORK,    fault_error },
    { CHAOS_LOSE_ANSWER,  ON_ANSWER,  fault_lose_answer },
};
_Static_assert(sizeof fault_hooks / sizeof fault_hooks[0] == CHAOS_KINDS,
               "every runtime fault has its hook");

/* Runs the hooks of stage for the faults drawn for r, in order, until one
 * answers. Returns 0, or the status it answered with. */
static int meet_faults(create_req *r, fault_stage stage)
{
    for (size_t i = 0; i < sizeof fault_hooks / sizeof fault_hooks[0]; i++) {
        const struct fault_hook *h = &fault_hooks[i];
        if (h->stage != stage || !r->chaos.hit[h->kind])
            continue;
        int status = h->act(r, r->chaos.amount[h->kind]);
        if (status)
            return status;
    }
    return 0;
}

/* With IDEMPOTENCY_KEYS: takes the request's Idempotency-Key (400 when
 * malformed), or makes one when its call to the next hop may be retried
 * (RETRY_ATTEMPTS > 1) or hedged (HEDGE_MAX_COPIES > 1), and holds it while the request runs: 409 when a
 * request with the same key and body is running here, 422 when one with
 * another body is. A request with no key, made or given, runs as without
 * keys. Returns 0 or the status sent. */
static int take_key(create_req *r)
{
    const svc_config *cfg = &r->rt->cfg;
    if (!cfg->idempotency_keys || r->no_keys)
        return 0;
    char err[200];
    int got = idem_read(r->conn, r->key, err, sizeof err);
    if (got < 0)
        return http_send_error(r->conn, 400, cfg->id, false, "%s", err);
    if (!got) {
        /* A key of its own only where a retry can repeat the call to the
         * next hop: elsewhere nobody would ever send it again, and a
         * document without a key costs the database less. */
        hop_retry_settings retry;
        bool retried = hop_retry_current(&retry) && retry.attempts > 1;
        if (!r->rt->breaker || r->count >= cfg->jumps || (!retried && !hop_hedge_on()))
            return 0;
        idem_new(r->key);
    }
    int held = idem_begin(r->key, r->body_hash);
    if (held == 409)
        return http_send_error(r->conn, 409, cfg->id, false,
                               "a request with Idempotency-Key %s is in progress; try again when "
                               "it has answered", r->key);
    if (held == 422)
        return http_send_error(r->conn, 422, cfg->id, false,
                               "a request with Idempotency-Key %s and another body is in progress",
                               r->key);
    if (held)
        return http_send_error(r->conn, 503, cfg->id, false,
                               "too many requests with idempotency keys in progress; try again");
    r->key_held = true;
    return 0;
}

/* POST /create, from the body to the answer. Returns the status sent.
 * The request writes once, at the end, its document with its outcome: the
 * next hop (when there is one) is called first, so the outcome is known,
 * and a 2xx goes out only after that write is committed. The runtime
 * faults act where fault_hooks puts them: on arrival (nothing stored), on
 * the write (it fails), before the work (their outcome is stored). */
static int create(create_req *r)
{
    int status = create_parse(r);
    if (status)
        return status;
    chaos_draw_request(&r->chaos);
    meet_faults(r, ON_KEY);
    status = take_key(r);
    if (status)
        return status;
    r->received_ms = wall_ms();
    store_new_id(r->doc_id);
    status = meet_faults(r, ON_ARRIVAL);
    if (!status)
        status = meet_faults(r, ON_WRITE);
    if (!status)
        status = database_refuses(r);
    if (!status && r->latency_cut)
        status = create_late(r, "during the latency fault");
    if (!status)
        status = meet_faults(r, ON_WORK);
    if (status)
        return status;
    if (r->count >= r->rt->cfg.jumps || !r->rt->breaker) {
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
    obs_count_arrival();
    if (trace_left_ms() <= 0)
        return http_send_error(conn, 504, rt->cfg.id, false,
                               "the caller's deadline (X-Deadline-Ms) has already passed");
    create_req r = { .rt = rt, .conn = conn };
    int status = create(&r);
    if (r.key_held)
        idem_end(r.key);
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

/* Starts the request's server span (when it is sampled): "<method> <route>"
 * and OpenTelemetry's HTTP server attributes. */
static void request_span_begin(struct mg_connection *conn, const svc_runtime *rt, const char *route)
{
    if (!otel_on())
        return;
    const struct mg_request_info *ri = mg_get_request_info(conn);
    char name[64];
    snprintf(name, sizeof name, "%.16s %s", ri->request_method, route);
    otel_span *s = otel_request_begin(name);
    if (!s)
        return;
    otel_str(s, "http.request.method", ri->request_method);
    otel_str(s, "http.route", route);
    otel_str(s, "url.path", ri->local_uri);
    otel_str(s, "client.address", ri->remote_addr);
    otel_int(s, "server.port", rt->cfg.port);
    otel_str(s, "service.name", rt->cfg.id);
}

/* Handler for /create (and anything under it). */
static int handle_create(struct mg_connection *conn, void *cbdata)
{
    double t0 = (double)mono_ns() / 1e9;
    svc_runtime *rt = cbdata;
    const char *route = "/create";
    int status;
    bool bad_deadline = trace_begin(conn, rt->cfg.deadlines) != 0;
    request_span_begin(conn, rt, route);
    if (request_enter(rt, conn, &status))
        status = bad_deadline
            ? http_send_error(conn, 400, rt->cfg.id, false,
                              "X-Deadline-Ms must be whole milliseconds in 0..86400000")
            : serve_create(rt, conn, &route);
    otel_request_end(status);   /* the answer has left */
    request_leave(rt);
    request_done(conn, route, status, t0);
    trace_end();
    return status;
}

/* Handler for / and, through civetweb's prefix matching, every unknown path. */
static int handle_root(struct mg_connection *conn, void *cbdata)
{
    double t0 = (double)mono_ns() / 1e9;
    svc_runtime *rt = cbdata;
    const char *route = "/";
    int status;
    trace_begin(conn, false);
    request_span_begin(conn, rt, route);
    if (request_enter(rt, conn, &status))
        status = serve_root(rt, conn, &route);
    otel_request_end(status);
    request_leave(rt);
    request_done(conn, route, status, t0);
    trace_end();
    return status;
}

/* The status and sentence for a head whose raw bytes are at fault (wire.h),
 * or 0 when they are not. */
static int request_wire_fault(const wire_head *h, char *why, size_t len)
{
    static const struct { unsigned flag; const char *text; } faults[] = {
        { WIRE_FOLD, "request framing refused: a folded header line (obs-fold, RFC 9112 5.2)" },
        { WIRE_BARE_LF, "request framing refused: a line ended by a bare LF (CRLF is required)" },
        { WIRE_BARE_CR, "request framing refused: a CR not followed by LF" },
        { WIRE_CTL, "request framing refused: a control character (NUL, ...) in the head" },
        { WIRE_SPACES, "request framing refused: whitespace where the request line has one SP" },
    };
    if (h->flags & WIRE_LONG_PATH) {
        snprintf(why, len, "request target refused: the path is longer than %d bytes", WIRE_PATH_MAX);
        return 414;
    }
    for (size_t i = 0; i < sizeof faults / sizeof faults[0]; i++)
        if (h->flags & faults[i].flag) {
            snprintf(why, len, "%s", faults[i].text);
            return 400;
        }
    if (h->flags & WIRE_PATH) {
        snprintf(why, len, "request target refused: the path is not in its one canonical spelling "
                 "(%s); a proxy's prefix rule would not see it as this service does", h->why);
        return 400;
    }
    return h->flags ? 400 : 0;
}

/* Serves a target that is not in origin form (wire.h keeps it raw; civetweb
 * was handed '/' for its first byte). Returns 0 when the request goes on to
 * its route (an absolute-form target naming this service, whose path now
 * stands in ri->local_uri), -1 when the answer was sent here (OPTIONS *),
 * else the status to refuse it with, the reason in why. */
static int request_target_form(struct mg_connection *conn, const wire_head *h, char *why, size_t len)
{
    const struct mg_request_info *ri = mg_get_request_info(conn);
    if (h->form == WIRE_ASTERISK) {
        if (strcmp(ri->request_method, "OPTIONS")) {
            snprintf(why, len, "request target refused: \"*\" is for OPTIONS only");
            return 400;
        }
        http_send_preflight(conn, "GET, HEAD, POST, PUT, DELETE, OPTIONS");
        return -1;
    }
    if (h->form != WIRE_ABSOLUTE) {
        snprintf(why, len, "request target refused: \"%.60s\" is neither a path nor an http:// URI",
                 h->target);
        return 400;
    }
    char reason[160];
    if (wire_authority_check(h->target, reason, sizeof reason)) {
        snprintf(why, len, "request target refused: %s", reason);
        return 400;
    }
    /* civetweb routed "/ttp:/host:port/path", cleaned; its copy is private to
     * this request and at least as long as the path it ends with. */
    char *routed = (char *)ri->local_uri;
    size_t need = strlen(h->path);
    if (!routed || strlen(routed) < need) {
        snprintf(why, len, "request target refused: its path cannot be routed");
        return 400;
    }
    memcpy(routed, h->path, need + 1);
    return 0;
}

/* Is this request one the reserved workers are kept for? */
static bool request_is_health_check(const struct mg_request_info *ri)
{
    return ri->local_uri && (!strcmp(ri->request_method, "GET") || !strcmp(ri->request_method, "HEAD")) &&
           (!strcmp(ri->local_uri, "/health") || !strcmp(ri->local_uri, "/metrics"));
}

/* Is this request one the load shedder guards (POST /create, shed.h)? */
static bool request_is_create(const struct mg_request_info *ri)
{
    return ri->local_uri && !strcmp(ri->request_method, "POST") && !strcmp(ri->local_uri, "/create");
}

/* Refuses a well-formed request before its handler, 503 with Retry-After
 * (reason: "busy" or "shed", its route on /metrics). It is traced as its
 * handler would have traced it: the answer names its trace, and a refused
 * POST /create is a server span of its own with app.refused = reason, so
 * that a trace of the overload lessons shows what was turned away. */
static int request_refuse(struct mg_connection *conn, svc_runtime *rt, const char *reason,
                          const char *why, double t0)
{
    trace_begin(conn, false);
    if (request_is_create(mg_get_request_info(conn))) {
        request_span_begin(conn, rt, "/create");
        otel_str(otel_request_span(), "app.refused", reason);
    }
    http_retry_after(1);
    http_send_error(conn, 503, rt->cfg.id, true, "%s", why);
    otel_request_end(503);
    request_done(conn, reason, 503, t0);
    trace_end();
    return 503;
}

/* Set by request_admit_in_place() for this thread's next request_begin(). */
static __thread bool request_in_place;

void request_admit_in_place(void)
{
    request_in_place = true;
}

/* Set while this thread's request is counted in rt->busy. */
static _Thread_local svc_runtime *request_counted;

int request_begin(struct mg_connection *conn)
{
    const struct mg_request_info *ri = mg_get_request_info(conn);
    svc_runtime *rt = mg_get_user_data(mg_get_context(conn));
    double t0 = (double)mono_ns() / 1e9;
    char why[400];
    wire_head head;   /* 4 KB: on the worker's stack, not in every thread's TLS */
    bool expect_continue = false;
    int seen = wire_next_head(&head);
    int status = 0;
    if (seen < 0) {
        snprintf(why, sizeof why, "request framing refused: its bytes were not seen by the head check");
        status = 400;
    } else if (seen > 0) {
        status = request_wire_fault(&head, why, sizeof why);
    }
    if (!status) {
        char framing[200];
        status = http_check_framing(ri, framing, sizeof framing);
        if (status)
            snprintf(why, sizeof why, "request framing refused: %s", framing);
    }
    if (!status) {
        char head_why[200];
        status = http_check_head(ri, rt->cfg.max_body_bytes, &expect_continue, head_why, sizeof head_why);
        if (status)
            snprintf(why, sizeof why, "request refused: %s", head_why);
    }
    bool last = seen > 0 && head.last;
    if (!status && seen > 0 && head.form != WIRE_ORIGIN) {
        status = request_target_form(conn, &head, why, sizeof why);
        if (status < 0) {
            mg_disable_keep_alive(conn);
            request_done(conn, "*", 204, t0);
            return 204;
        }
    }
    if (status) {
        http_request_begin(false, true);
        http_send_error(conn, status, rt->cfg.id, true, "%s", why);
        request_done(conn, "rejected", status, t0);
        return status;
    }
    if (last)
        mg_disable_keep_alive(conn);
    http_request_begin(expect_continue, last);
    int busy = atomic_fetch_add(&rt->busy, 1) + 1;
    request_counted = rt;
    bool in_place = request_in_place;
    request_in_place = false;
    if (busy > rt->cfg.threads - rt->cfg.reserved_workers && !request_is_health_check(ri) &&
        !in_place) {
        snprintf(why, sizeof why, "%s is busy: all but the %d workers kept for /health and /metrics "
                 "are serving; try again", rt->cfg.id, rt->cfg.reserved_workers);
        return request_refuse(conn, rt, "busy", why, t0);
    }
    if (request_is_create(ri) && !shed_admit()) {
        snprintf(why, sizeof why, "%s is over its concurrency limit (load shedding); try again",
                 rt->cfg.id);
        return request_refuse(conn, rt, "shed", why, t0);
    }
    return 0;
}

void request_end(const struct mg_connection *conn, int status)
{
    (void)conn;
    shed_end(status);
    if (request_counted) {
        atomic_fetch_sub(&request_counted->busy, 1);
        request_counted = NULL;
    }
}

int request_http_error(struct mg_connection *conn, int status, const char *msg)
{
    svc_runtime *rt = mg_get_user_data(mg_get_context(conn));
    http_send_error(conn, status, rt->cfg.id, true, "%s", msg && *msg ? msg : "bad request");
    return 0;
}

/* Lets every request through civetweb's authorization step: the admin
 * routes check their token themselves. Without a handler, civetweb looks
 * for a .htpasswd file (one stat() per request). */
static int authorize_all(struct mg_connection *conn, void *cbdata)
{
    (void)conn;
    (void)cbdata;
    return 1;
}

void request_register(struct mg_context *ctx, svc_runtime *rt)
{
    mg_set_auth_handler(ctx, "/", authorize_all, NULL);
    mg_set_request_handler(ctx, "/create", handle_create, rt);
    mg_set_request_handler(ctx, "/", handle_root, rt);
}
