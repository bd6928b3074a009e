/* log.h -- a service's log lines: human-readable or JSON lines, one line per event. */
#ifndef SVC_LOG_H
#define SVC_LOG_H

#include <stdbool.h>
#include <stdint.h>
#include "cb.h"
#include "cb_retry.h"

/* Sets the service ID every line carries and the format. Call once, before
 * any other log_ function. This function can't fail. */
void log_init(const char *service, bool json);

/* How much is logged (LOG_LEVEL): state changes and messages; also one line
 * per request and the breaker events where something went wrong; also every
 * breaker event. */
enum { LOG_TRANSITIONS = 0, LOG_REQUESTS = 1, LOG_EVENTS = 2 };

/* Sets the level; LOG_TRANSITIONS until called. */
void log_set_level(int level);

/* The breaker events a level logs (for cb_on()), snapshots added when
 * snapshots is true. */
uint32_t log_breaker_mask(int level, bool snapshots);

/* Returns once every line logged before the call is written to stdout.
 * Thread-safe; at once when the writer thread is not running. */
void log_flush(void);

/* Writes one informational line (kind "info", or "error" when is_error).
 * Thread-safe; each line is written whole. */
void log_message(bool is_error, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Writes one line for a finished request: method, path (uri, then "?" and
 * the query when query is not NULL; cut at 400 and 150 bytes), status and
 * latency; nothing below LOG_REQUESTS. Thread-safe. Every line written
 * while a request is served carries its trace id. */
void log_request(const char *method, const char *uri, const char *query, int status,
                 double latency_ms);

/* A cb_listener_fn: writes one line per breaker event with the time, service,
 * breaker name, event, state, what it protects (ctx: its label, a string
 * that outlives the breaker, "payment -> shipment", or NULL), latency,
 * error percentage and window counts. Thread-safe. */
void log_breaker_event(cb_breaker *b, const cb_event *ev, void *ctx);

/* The retry events a level logs (for cb_retry_on()): none at
 * LOG_TRANSITIONS; retry, retry-exhausted, budget-exhausted and deadline
 * from LOG_REQUESTS on (each is a call that went wrong). */
uint32_t log_retry_mask(int level);

/* A cb_retry_listener_fn: writes one line per retry event with the time,
 * service, the breaker the call went through, the event, the attempt, the
 * back-off (retry), the last attempt's code and the budget's tokens. ctx is
 * unused. Thread-safe. */
void log_retry_event(cb_retry *r, const cb_retry_event *ev, void *ctx);

/* Adds the replica's id to every line from now on: "service/replica" in
 * human lines, a "replica" key in JSON lines. replica must outlive the log.
 * Call once, right after log_init(). This function can't fail. */
void log_set_replica(const char *replica);

/* Writes one line for a shared-breaker event (cb_quorum.h): the breaker,
 * the event's name ("shared-opened", ...), the shared state ("shared-open",
 * "shared-closed", "local-only"), the quorum figures, and the peer, the open
 * period and the backend's return code where they apply (NULL / 0 = omit).
 * Thread-safe. */
void log_shared_event(const char *breaker, const char *event, const char *state, int live,
                      int open_votes, int needed, const char *peer, int64_t open_ms, int rc);

#endif
