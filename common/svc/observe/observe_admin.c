/* observe_admin.c -- GET /breaker, the admin routes POST /breaker/open, /breaker/close, /breaker/options, /retry and /shed, and /chaos.
 *
 * Every admin route passes admin_gate(): the token (ADMIN_TOKEN), compared
 * in constant time, a per-address limit on wrong tokens (authlimit.c), and
 * CORS for ADMIN_ALLOWED_ORIGIN alone. GET /breaker and GET /chaos are open
 * to all, like /health; GET /breaker also shows the retry settings of the
 * call to the next hop, which POST /retry changes, and each breaker's live
 * options, which POST /breaker/options changes (tuning_fields[]).
 */
#include "observe.h"
#include "observe_priv.h"
#include "authlimit.h"
#include "chaos.h"
#include "http.h"
#include "log.h"
#include "monotime.h"

#include <cJSON.h>
#include <math.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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
        *status = obs_send_error(conn, 400, "the name parameter is too long");
        return NULL;
    }
    obs_breaker *ob = obs_breaker_named(name);
    if (!ob)
        *status = obs_send_error(conn, 404, obs_g.nbreakers
                                 ? "no breaker of that name; GET /health lists them"
                                 : "this service has no breaker");
    return ob;
}

/* The breaker's export with its label; for the next hop's breaker (the
 * first) of a service with a retry policy, with "retry" beside it (its
 * settings and counts); every breaker's with its live "options". A new
 * string, or NULL when out of memory. */
static char *export_text(obs_breaker *ob)
{
    char *text = cb_export_json(ob->cb);
    cJSON *o = text ? cJSON_Parse(text) : NULL;
    free(text);
    text = NULL;
    bool with_retry = ob->index == 0 && obs_g.retry_report;
    if (o && cJSON_AddStringToObject(o, "label", ob->label) && obs_tuning_json(o, ob->cb)) {
        cJSON *retry = with_retry ? obs_g.retry_report() : NULL;
        if (!with_retry || (retry && cJSON_AddItemToObject(o, "retry", retry)))
            text = cJSON_PrintUnformatted(o);
    }
    cJSON_Delete(o);
    return text;
}

/* Sends the breaker's export (export_text) with status. */
static int send_export(struct mg_connection *conn, obs_breaker *ob, int status)
{
    char *text = export_text(ob);
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
        return obs_send_preflight(conn, methods, origin);
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
    return send_admin(conn, 200, export_text(ob));
}

/* ---- POST /breaker/options ------------------------------------------------ */

/* How a tuning field is stored in cb_tuning. */
typedef enum { TUNE_I64, TUNE_INT, TUNE_DOUBLE } tune_kind;

/* One field of POST /breaker/options: its JSON name, where it lives in
 * cb_tuning, and the range a body may give it. */
typedef struct tuning_field {
    const char *name;
    size_t offset;
    tune_kind kind;
    double min, max;          /* inclusive */
    const char *range;        /* the range in words, for the 400 */
} tuning_field;

#define DAY_MS 86400000.0
static const tuning_field tuning_fields[] = {
    { "reset_timeout_ms", offsetof(cb_tuning, reset_timeout_ms), TUNE_I64, 1, DAY_MS,
      "an integer from 1 to 86400000 (ms), as CB_RESET_TIMEOUT_MS" },
    { "backoff", offsetof(cb_tuning, reset_backoff_multiplier), TUNE_DOUBLE, 1, 100,
      "a number from 1 (no back-off) to 100" },
    { "backoff_max_ms", offsetof(cb_tuning, reset_timeout_max_ms), TUNE_I64, 0, DAY_MS,
      "an integer from 0 (no cap) to 86400000 (ms)" },
    { "volume_threshold", offsetof(cb_tuning, volume_threshold), TUNE_INT, 0, 1000000,
      "an integer from 0 to 1000000 (calls in the window)" },
    { "error_threshold", offsetof(cb_tuning, error_threshold_percentage), TUNE_INT, 0, 100,
      "an integer from 0 to 100 (%)" },
};
#define N_TUNING_FIELDS (sizeof tuning_fields / sizeof tuning_fields[0])

/* The value of field f in t, as a double. Can't fail. */
static double tuning_get(const cb_tuning *t, const tuning_field *f)
{
    const char *p = (const char *)t + f->offset;
    switch (f->kind) {
    case TUNE_I64: return (double)*(const int64_t *)p;
    case TUNE_INT: return (double)*(const int *)p;
    default: return *(const double *)p;
    }
}

/* Stores v (already checked against f's range) in field f of t. */
static void tuning_put(cb_tuning *t, const tuning_field *f, double v)
{
    char *p = (char *)t + f->offset;
    switch (f->kind) {
    case TUNE_I64: *(int64_t *)p = (int64_t)v; break;
    case TUNE_INT: *(int *)p = (int)v; break;
    default: *(double *)p = v; break;
    }
}

/* The row of tuning_fields[] named name, or NULL. */
static const tuning_field *tuning_field_named(const char *name)
{
    for (size_t i = 0; i < N_TUNING_FIELDS; i++)
        if (strcmp(tuning_fields[i].name, name) == 0)
            return &tuning_fields[i];
    return NULL;
}

cJSON *obs_tuning_json(cJSON *parent, cb_breaker *cb)
{
    cb_tuning t;
    if (cb_get_tuning(cb, &t) != CB_OK)
        return NULL;
    cJSON *o = cJSON_AddObjectToObject(parent, "options");
    for (size_t i = 0; o && i < N_TUNING_FIELDS; i++)
        cJSON_AddNumberToObject(o, tuning_fields[i].name, tuning_get(&t, &tuning_fields[i]));
    return o;
}

/* Applies the fields of body (a JSON object, any subset of tuning_fields[])
 * to t. Returns 0, or 400 with err naming the field that is unknown, not a
 * number, not whole where it must be, or out of its range (t then partly
 * changed: the caller discards it). */
static int tuning_parse(const cJSON *body, cb_tuning *t, char *err, size_t errlen)
{
    if (!cJSON_IsObject(body)) {
        snprintf(err, errlen, "the body must be a JSON object of breaker options");
        return 400;
    }
    const cJSON *item;
    cJSON_ArrayForEach(item, body) {
        const tuning_field *f = tuning_field_named(item->string);
        if (!f) {
            snprintf(err, errlen, "unknown option \"%.60s\"; the options are reset_timeout_ms, "
                     "backoff, backoff_max_ms, volume_threshold, error_threshold", item->string);
            return 400;
        }
        double v = cJSON_IsNumber(item) ? item->valuedouble : NAN;
        if (!(v >= f->min && v <= f->max) || (f->kind != TUNE_DOUBLE && v != floor(v))) {
            snprintf(err, errlen, "%s must be %s", f->name, f->range);
            return 400;
        }
        tuning_put(t, f, v);
    }
    return 0;
}

/* Writes "field old -> new" for each field that differs between a and b,
 * comma-separated, into out ("nothing changed" when none). */
static void tuning_changes(const cb_tuning *a, const cb_tuning *b, char *out, size_t n)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < N_TUNING_FIELDS && used < n; i++) {
        double x = tuning_get(a, &tuning_fields[i]), y = tuning_get(b, &tuning_fields[i]);
        if (x != y)
            used += (size_t)snprintf(out + used, n - used, "%s%s %g -> %g", used ? ", " : "",
                                     tuning_fields[i].name, x, y);
    }
    if (!out[0])
        snprintf(out, n, "nothing changed");
}

/* The largest POST /breaker/options body, and how long it may take to arrive. */
#define OPTIONS_MAX_BODY 4096
#define OPTIONS_BODY_TIMEOUT_MS 10000

/* One change at a time: get, change, set is not interleaved with another. */
static pthread_mutex_t tuning_lock = PTHREAD_MUTEX_INITIALIZER;

/* Changes ob's live options to body's fields under tuning_lock and logs the
 * change. Returns 0, or the status to send with err. */
static int tuning_apply(obs_breaker *ob, const char *text, size_t len, char *err, size_t errlen)
{
    cJSON *body = cJSON_ParseWithLength(text, len);
    if (!body) {
        snprintf(err, errlen, "the body is not valid JSON");
        return 400;
    }
    pthread_mutex_lock(&tuning_lock);
    cb_tuning before, after;
    int status = cb_get_tuning(ob->cb, &before) == CB_OK ? 0 : 409;
    after = before;
    if (!status)
        status = tuning_parse(body, &after, err, errlen);
    if (!status && cb_set_tuning(ob->cb, &after) != CB_OK) {
        snprintf(err, errlen, "the breaker refused these options (it is shutting down)");
        status = 409;
    }
    pthread_mutex_unlock(&tuning_lock);
    cJSON_Delete(body);
    if (!status) {
        char words[400];
        tuning_changes(&before, &after, words, sizeof words);
        log_message(false, "breaker %s: options %s (POST /breaker/options)", cb_name(ob->cb), words);
    }
    return status;
}

/* POST /breaker/options?name=<breaker> (admin token, CORS as /breaker/open):
 * changes the breaker's live options to the JSON body's fields (any of
 * tuning_fields[]; unknown fields refused) and answers {"name", "options"}
 * as they are now. GET /breaker and /health show them. */
static int handle_options(struct mg_connection *conn)
{
    int gate = admin_gate(conn, "POST, OPTIONS");
    if (gate)
        return gate;
    if (strcmp(mg_get_request_info(conn)->request_method, "POST") != 0)
        return send_admin_error(conn, 405, "use POST; GET /breaker shows the options");
    const char *qs = mg_get_request_info(conn)->query_string;
    char name[256] = "";
    if (qs && mg_get_var(qs, strlen(qs), "name", name, sizeof name) < -1)
        return send_admin_error(conn, 400, "the name parameter is too long");
    obs_breaker *ob = obs_breaker_named(name);
    if (!ob)
        return send_admin_error(conn, 404, name[0] ? "no breaker of that name; GET /health lists them"
                                                   : "this service has no breaker");
    if (!http_is_json(mg_get_header(conn, "Content-Type")))
        return send_admin_error(conn, 415, "Content-Type must be application/json");
    char *text = NULL;
    size_t len = 0;
    int rc = http_read_body(conn, OPTIONS_MAX_BODY, OPTIONS_BODY_TIMEOUT_MS, &text, &len);
    if (rc == 413)
        return send_admin_error(conn, 413, "the body is larger than 4096 bytes");
    if (rc)
        return send_admin_error(conn, rc, "the body could not be read in time");
    char err[300];
    rc = tuning_apply(ob, text, len, err, sizeof err);
    free(text);
    if (rc)
        return send_admin_error(conn, rc, err);
    cJSON *o = cJSON_CreateObject();
    char *answer = NULL;
    if (o && cJSON_AddStringToObject(o, "name", cb_name(ob->cb)) && obs_tuning_json(o, ob->cb))
        answer = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return send_admin(conn, 200, answer);
}

/* GET /breaker, POST /breaker/open, POST /breaker/close, POST /breaker/options. */
int obs_handle_breaker(struct mg_connection *conn, void *cbdata)
{
    (void)cbdata;
    const struct mg_request_info *ri = mg_get_request_info(conn);
    const char *uri = ri->local_uri ? ri->local_uri : "";
    if (strcmp(uri, "/breaker/open") == 0)
        return handle_admin(conn, "open");
    if (strcmp(uri, "/breaker/close") == 0)
        return handle_admin(conn, "close");
    if (strcmp(uri, "/breaker/options") == 0)
        return handle_options(conn);
    if (strcmp(uri, "/breaker") != 0 && strcmp(uri, "/breaker/") != 0)
        return obs_send_error(conn, 404, "no such route");
    int sent = obs_answer_unless_get(conn);
    if (sent)
        return sent;
    int status;
    obs_breaker *ob = requested_breaker(conn, &status);
    return ob ? send_export(conn, ob, 200) : status;
}

/* The largest POST /retry, /hedge or /shed body, and how long it may take to arrive. */
#define RETRY_MAX_BODY 4096
#define RETRY_BODY_TIMEOUT_MS 10000

/* A policy that an admin route replaces (the retry and the hedging of the
 * call to the next hop, the shedding of POST /create): its route, what to
 * say when it is missing, and its two functions. */
typedef struct policy_route {
    const char *uri;
    const char *shown;   /* where its settings are shown */
    const char *missing; /* the 404 when the service has none */
    int (*set)(const char *body, size_t len, char *err, size_t errlen);
    cJSON *(*report)(void);
} policy_route;

/* POST <uri> (admin token, CORS as /breaker/open): replaces the settings of
 * pr's policy with the JSON body's fields and answers the settings in force. */
static int handle_policy(struct mg_connection *conn, const policy_route *pr)
{
    const struct mg_request_info *ri = mg_get_request_info(conn);
    if (strcmp(ri->local_uri ? ri->local_uri : "", pr->uri) != 0) {
        char words[64];
        snprintf(words, sizeof words, "no such route; try POST %s", pr->uri);
        return obs_send_error(conn, 404, words);
    }
    int gate = admin_gate(conn, "POST, OPTIONS");
    if (gate)
        return gate;
    if (strcmp(ri->request_method, "POST") != 0)
        return send_admin_error(conn, 405, pr->shown);
    if (!pr->set || !pr->report)
        return send_admin_error(conn, 404, pr->missing);
    if (!http_is_json(mg_get_header(conn, "Content-Type")))
        return send_admin_error(conn, 415, "Content-Type must be application/json");
    char *text = NULL;
    size_t len = 0;
    int rc = http_read_body(conn, RETRY_MAX_BODY, RETRY_BODY_TIMEOUT_MS, &text, &len);
    if (rc == 413)
        return send_admin_error(conn, 413, "the body is larger than 4096 bytes");
    if (rc)
        return send_admin_error(conn, rc, "the body could not be read in time");
    char err[300];
    rc = pr->set(text, len, err, sizeof err);
    free(text);
    if (rc)
        return send_admin_error(conn, rc, err);
    cJSON *now = pr->report();
    char *answer = now ? cJSON_PrintUnformatted(now) : NULL;
    cJSON_Delete(now);
    return send_admin(conn, 200, answer);
}

/* POST /retry: the retry settings of the call to the next hop (any of
 * attempts, base_ms, cap_ms, budget_tokens, budget_ratio). GET /breaker
 * shows them. */
int obs_handle_retry(struct mg_connection *conn, void *cbdata)
{
    (void)cbdata;
    policy_route pr = { "/retry", "use POST; GET /breaker shows the retry settings",
                        "this service has no next hop, so nothing to retry", obs_g.retry_set,
                        obs_g.retry_report };
    return handle_policy(conn, &pr);
}

/* POST /hedge: the hedging settings of the call to the next hop (any of
 * max_copies, delay_ms, percentile, budget_ratio). GET /health shows them. */
int obs_handle_hedge(struct mg_connection *conn, void *cbdata)
{
    (void)cbdata;
    policy_route pr = { "/hedge", "use POST; GET /health shows the hedging settings",
                        "this service has no next hop, so nothing to hedge", obs_g.hedge_set,
                        obs_g.hedge_report };
    return handle_policy(conn, &pr);
}

/* POST /shed: switches load shedding of POST /create on or off and sets its
 * limits (any of enabled, initial_limit, min_limit, max_limit); answers the
 * settings in force with the limiter's counts. /health shows them too. */
int obs_handle_shed(struct mg_connection *conn, void *cbdata)
{
    (void)cbdata;
    policy_route pr = { "/shed", "use POST; /health shows the shedding settings",
                        "this service has no load shedding", obs_g.shed_set, obs_g.shed_report };
    return handle_policy(conn, &pr);
}

/* GET /chaos (open to all, like GET /breaker); PUT and DELETE behind the
 * admin token. */
int obs_handle_chaos(struct mg_connection *conn, void *cbdata)
{
    (void)cbdata;
    const struct mg_request_info *ri = mg_get_request_info(conn);
    if (strcmp(ri->local_uri ? ri->local_uri : "", "/chaos") != 0)
        return obs_send_error(conn, 404, "no such route; try /chaos");
    const char *method = ri->request_method;
    if (strcmp(method, "GET") && strcmp(method, "HEAD")) {
        int gate = admin_gate(conn, "GET, PUT, DELETE, OPTIONS");
        if (gate)
            return gate;
    }
    return chaos_serve(conn, obs_g.service, strcmp(method, "GET") && strcmp(method, "HEAD")
                                                ? admin_origin(conn) : "*");
}
