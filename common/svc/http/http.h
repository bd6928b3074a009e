/* http.h -- civetweb helpers: JSON responses with CORS, bounded body reads, content types. */
#ifndef SVC_HTTP_H
#define SVC_HTTP_H

#include <cJSON.h>
#include <civetweb.h>
#include <stdbool.h>
#include <stddef.h>

/* Sends one whole response in a single write (head and body together, so
 * that a kept-alive connection never waits on the client's delayed ACK):
 * status, Date, Content-Type type, Content-Length len, CORS, Cache-Control
 * cache (NULL = "no-store") and Connection. The body is left out for HEAD.
 * close drops the connection after the response; so does a client that asked
 * for it. Returns status, or -1 when type is too long for the head. */
int http_send_raw(struct mg_connection *conn, int status, const char *type,
                  const char *cache, const char *body, size_t len, bool close);

/* As http_send_raw(), with the CORS answer chosen by the caller: origin
 * NULL sends no Access-Control-Allow-Origin at all (the browser then keeps
 * the answer from another origin's page), "*" allows every origin, and any
 * other value allows that origin alone, with Vary: Origin. */
int http_send_cors(struct mg_connection *conn, int status, const char *type, const char *cache,
                   const char *body, size_t len, bool close, const char *origin);

/* Sends status with body serialised as JSON, Content-Length and
 * Access-Control-Allow-Origin: *. body is not freed. close drops the
 * connection after the response. Returns status. */
int http_send_json(struct mg_connection *conn, int status, const cJSON *body, bool close);

/* As http_send_json(), with origin as in http_send_cors(). */
int http_send_json_cors(struct mg_connection *conn, int status, const cJSON *body, bool close,
                        const char *origin);

/* Adds "trace" (the calling thread's request's trace id, trace.h) to o, when
 * it has one. */
void http_add_trace(cJSON *o);

/* Sends status with {"error": <message>, "status": status, "service": service,
 * "trace": ...} ("trace" as http_add_trace() adds it). Returns status. */
int http_send_error(struct mg_connection *conn, int status, const char *service, bool close,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* As http_send_error(), with origin as in http_send_cors(). */
int http_send_error_cors(struct mg_connection *conn, int status, const char *service, bool close,
                         const char *origin, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/* Sends text/plain text with status and CORS. Returns status. */
int http_send_text(struct mg_connection *conn, int status, const char *text);

/* Answers a CORS preflight (OPTIONS) for the methods in allow: 204. Returns 204. */
int http_send_preflight(struct mg_connection *conn, const char *allow);

/* Reads the request body, at most limit bytes and for at most timeout_ms
 * in all (a client sending a byte a second is cut off), into a malloc'd
 * NUL-terminated buffer. Returns 0 and sets *out and *len; 413 when the body
 * is larger than limit; 408 when it did not arrive in time, or was cut as
 * too slow while the service is under pressure (wire.h); 400 when the
 * connection broke; 500 when out of memory. */
int http_read_body(struct mg_connection *conn, size_t limit, int timeout_ms, char **out, size_t *len);

/* Reads and drops what is left of the request body, up to max bytes and for
 * at most timeout_ms, so that an early error answer reaches a client still
 * sending. Returns true when the whole body was consumed (the connection can
 * be kept). */
bool http_discard_body(struct mg_connection *conn, size_t max, int timeout_ms);

/* Checks that the request's framing is unambiguous, before anything reads
 * its body (RFC 9112 sections 5.1 and 6.3), on what civetweb 1.15 hands
 * over: at most one Content-Length, made of digits only; at most one
 * Transfer-Encoding, exactly "chunked", never beside a Content-Length nor
 * in HTTP/1.0; no whitespace between a header's name and its colon
 * (civetweb drops it silently: found from the NUL bytes it leaves in its
 * buffer); every header line ended by CRLF; fewer header lines than
 * civetweb keeps (MG_MAX_HEADERS; it ignores the rest without a word); a
 * POST, PUT or PATCH states its length (a Content-Length hidden after a line
 * civetweb stopped at must not turn the body into a second request).
 * Returns 0 when the request may be served, else the status to answer: 400,
 * 411 (no length), 431 (too many header lines), with a sentence naming the
 * problem in why. This function can't fail. */
int http_check_framing(const struct mg_request_info *ri, char *why, size_t len);

/* Checks what RFC 9110 and 9112 ask of a head beyond its framing, on what
 * civetweb hands over: an HTTP/1.1 request has exactly one Host header
 * (HTTP/1.0 at most one); X-Deadline-Ms at most once (a proxy may read the
 * other one); an Expect header is "100-continue" and nothing else (417),
 * and with it a Content-Length over body_limit is refused at once (413)
 * instead of after the client's wait. Sets *expect_continue when the client
 * waits for 100 Continue before sending its body (HTTP/1.1, a body
 * announced). Returns 0, or the status with a sentence in why. This
 * function can't fail. */
int http_check_head(const struct mg_request_info *ri, long long body_limit, bool *expect_continue,
                    char *why, size_t len);

/* Tells this thread's answers what begin_request decided about the request:
 * expect_continue sends "100 Continue" before the first body read
 * (http_read_body(); http_discard_body() then reads nothing and reports the
 * connection to be closed); close_after closes the connection after the
 * answer. Call once per request, before its handler. */
void http_request_begin(bool expect_continue, bool close_after);

/* The next answer this thread sends (http_send_cors() and all built on it)
 * carries "Retry-After: seconds" (429, 503). */
void http_retry_after(int seconds);

/* The next answer this thread sends carries "Idempotent-Replayed: true": it
 * is the stored answer of an earlier request with the same Idempotency-Key. */
void http_replayed(void);

/* Returns true when content_type names JSON: application/json or
 * application/(anything)+json, with any parameters. */
bool http_is_json(const char *content_type);

#endif
