/* request.h -- the service's own routes (GET /, POST /create) and its civetweb and breaker callbacks, in request.c. */
#ifndef SVC_REQUEST_H
#define SVC_REQUEST_H

#include <civetweb.h>
#include <stdbool.h>
#include "cb.h"

typedef struct svc_runtime svc_runtime; /* runtime.h */

/* Registers GET /, POST /create and the catch-all 404 on ctx. Call after
 * obs_register(), so that its routes are in place first. rt must outlive ctx. */
void request_register(struct mg_context *ctx, svc_runtime *rt);

/* The calling thread's next request_begin() admits its request even at
 * the reserve's limit: a slow body was cut to make room for it (svc.c). */
void request_admit_in_place(void);

/* civetweb's begin_request callback, before any route's handler and before
 * any body is read. Refused with a JSON error, the connection closed after
 * it, and nothing else run: a head whose raw bytes (wire.h) hold a fold, a
 * bare LF or CR, a control byte, extra whitespace or a path not in its
 * canonical spelling (400; 414 for a path over WIRE_PATH_MAX); ambiguous
 * framing (http_check_framing()); a missing or repeated Host, a repeated
 * X-Deadline-Ms, an unknown expectation (417) or a body too large behind
 * Expect: 100-continue (413) (http_check_head()); a target in absolute form
 * naming another authority, "*" with any method but OPTIONS, or any other
 * form (400). OPTIONS * is answered here (200, Allow). An absolute-form
 * target naming this service is routed as its path. Any request but GET or
 * HEAD /health and /metrics gets 503 while all but RESERVED_WORKERS workers
 * are busy; a POST /create over the concurrency limit (SHED=on, shed.h)
 * gets 503 with Retry-After: 1, its body unread. Returns the status sent,
 * or 0 to let civetweb route the request. */
int request_begin(struct mg_connection *conn);

/* civetweb's end_request callback: counts out a request request_begin()
 * counted in (the workers' reserve) and gives back its concurrency-limit
 * token with its status (shed_end()). */
void request_end(const struct mg_connection *conn, int status);

/* civetweb's http_error callback: the errors civetweb finds itself (a
 * request line or header it cannot parse, a head larger than
 * MAX_HEADER_BYTES, a Transfer-Encoding it does not know, a head cut off by
 * HEADER_TIMEOUT_MS) are answered like ours, a JSON error, and the
 * connection is closed. Returns 0 (handled). */
int request_http_error(struct mg_connection *conn, int status, const char *msg);

/* The breaker's fallback (a cb_fallback_fn): builds the degraded answer, a
 * cJSON object {"service","count","status":"degraded","reason","breaker"},
 * into *result. user is the svc_runtime. Returns 0, or -1 when out of memory. */
int request_fallback(void *arg, int reason, int action_rc, void **result, void *user);

/* The database breaker's action (a cb_action_fn): stores a received
 * document, or records the outcome on the stored one; call->arg is a
 * store_call (request.c). Returns 0, or the STORE_E* code. */
int request_store_action(const cb_call *call, void **result);

/* The database breaker's error filter: only an unreachable database counts
 * as a failure; a refused document is the request's fault, not the database's. */
bool request_store_error_filter(int action_rc, void *arg, void *user);

#endif
