/* observe_admin.c -- GET /breaker, the admin routes POST /breaker/open, /breaker/close and /retry, and /chaos.
 *
 * Every admin route passes admin_gate(): the token (ADMIN_TOKEN), compared
 * in constant time, a per-address limit on wrong tokens (authlimit.c), and
 * CORS for ADMIN_ALLOWED_ORIGIN alone. GET /breaker and GET /chaos are open
 * to all, like /health; GET /breaker also shows the retry settings of the
 * call to the next hop, which POST /retry changes.
 */
#include "observe.h"
#include "observe_priv.h"
#include "authlimit.h"
#include "chaos.h"
#include "http.h"
#include "log.h"
#include "monotime.h"

#include <cJSON.h>
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
 * settings and counts). A new string, or NULL when out of memory. */
static char *export_text(obs_breaker *ob)
{
    char *text = cb_export_json(ob->cb);
    cJSON *o = text ? cJSON_Parse(text) : NULL;
    free(text);
    text = NULL;
    bool with_retry = ob->index == 0 && obs_g.retry_report;
    if (o && cJSON_AddStringToObject(o, "label", ob->label)) {
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

/* GET /breaker, POST /breaker/open, POST /breaker/close. */
int obs_handle_breaker(struct mg_connection *conn, void *cbdata)
{
    (void)cbdata;
    const struct mg_request_info *ri = mg_get_request_info(conn);
    const char *uri = ri->local_uri ? ri->local_uri : "";
    if (strcmp(uri, "/breaker/open") == 0)
        return handle_admin(conn, "open");
    if (strcmp(uri, "/breaker/close") == 0)
        return handle_admin(conn, "close");
    if (strcmp(uri, "/breaker") != 0 && strcmp(uri, "/breaker/") != 0)
        return obs_send_error(conn, 404, "no such route");
    int sent = obs_answer_unless_get(conn);
    if (sent)
        return sent;
    int status;
    obs_breaker *ob = requested_breaker(conn, &status);
    return ob ? send_export(conn, ob, 200) : status;
}

/* The largest POST /retry body, and how long it may take to arrive. */
#define RETRY_MAX_BODY 4096
#define RETRY_BODY_TIMEOUT_MS 10000

/* POST /retry (admin token, CORS as /breaker/open): replaces the retry
 * settings of the call to the next hop with the JSON body's fields (any of
 * attempts, base_ms, cap_ms, budget_tokens, budget_ratio) and answers the
 * settings in force. GET /breaker shows them. */
int obs_handle_retry(struct mg_connection *conn, void *cbdata)
{
    (void)cbdata;
    const struct mg_request_info *ri = mg_get_request_info(conn);
    if (strcmp(ri->local_uri ? ri->local_uri : "", "/retry") != 0)
        return obs_send_error(conn, 404, "no such route; try POST /retry");
    int gate = admin_gate(conn, "POST, OPTIONS");
    if (gate)
        return gate;
    if (strcmp(ri->request_method, "POST") != 0)
        return send_admin_error(conn, 405, "use POST; GET /breaker shows the retry settings");
    if (!obs_g.retry_set || !obs_g.retry_report)
        return send_admin_error(conn, 404, "this service has no next hop, so nothing to retry");
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
    rc = obs_g.retry_set(text, len, err, sizeof err);
    free(text);
    if (rc)
        return send_admin_error(conn, rc, err);
    cJSON *retry = obs_g.retry_report();
    char *answer = retry ? cJSON_PrintUnformatted(retry) : NULL;
    cJSON_Delete(retry);
    return send_admin(conn, 200, answer);
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
