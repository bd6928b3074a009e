/* trace.h -- what a request carries across hops: its trace id and its deadline.
 *
 * The trace id comes from the caller's W3C `traceparent` header, else its
 * `X-Request-Id` (1..64 of A-Z a-z 0-9 - _ . :), else is made here (32 random
 * hex digits, as W3C Trace Context). It is passed to the next hop, returned
 * in the answer's headers and JSON, stored on the document and written on
 * every log line the request causes.
 *
 * The deadline comes from the caller's `X-Deadline-Ms` header: the
 * milliseconds the caller will wait for the answer (gRPC's timeout, relative
 * so that hosts need not share a clock). A hop never works past it and passes
 * the next hop what is left of its own call, less a margin to answer in.
 *
 * It also times the request for the answer's W3C `Server-Timing` header: the
 * hop's own database writes (`db`), the call to the next hop (`next`), the
 * writes of this hop and every hop after it (`db-chain`: ours plus the
 * `db-chain` the next hop's answer reported) and the whole handling so far
 * (`total`), in milliseconds. A client of the first hop reads from one answer
 * how much of its wait was the chain's database writes.
 *
 * The context is the calling thread's: trace_begin() at the start of a
 * request's handler, trace_end() at its end.
 */
#ifndef SVC_TRACE_H
#define SVC_TRACE_H

#include <civetweb.h>
#include <stdbool.h>
#include <stdint.h>

#define TRACE_ID_MAX 64

typedef struct trace_ctx {
    char id[TRACE_ID_MAX + 1];
    bool w3c;              /* id is 32 lowercase hex digits (a W3C trace-id) */
    int64_t deadline_ns;   /* CLOCK_MONOTONIC; 0 = none */
    bool deadline_given;   /* the caller sent X-Deadline-Ms */
    int64_t start_ns;      /* CLOCK_MONOTONIC at trace_begin() */
    int64_t db_ns;         /* this hop's database writes so far */
    int64_t next_ns;       /* the call to the next hop; 0 = none made */
    int64_t next_db_ns;    /* the next hop's reported db-chain; 0 = none reported */
    char parent[17];       /* the caller's span id from its traceparent; "" = none */
    bool sampled;          /* the caller's sampled flag (true when it sent none), then
                              the sampler's decision (otel.h) */
} trace_ctx;

/* Reads a trace id from a traceparent header value into id (33 bytes).
 * Returns true when it is a valid version-00 traceparent with a non-zero
 * trace-id. */
bool trace_parse_traceparent(const char *value, char id[33]);
/* The same, also giving its parent-id (17 bytes) and its sampled flag. */
bool trace_parse_parent(const char *value, char id[33], char parent[17], bool *sampled);

/* Returns true when value is usable as an X-Request-Id. */
bool trace_valid_request_id(const char *value);

/* Reads X-Deadline-Ms: 0..86400000 (decimal digits only). Returns true and
 * sets *ms, or false when value is not such a number. */
bool trace_parse_deadline(const char *value, int64_t *ms);

/* Starts the calling thread's request context from conn's headers. Returns
 * 0, or -1 when X-Deadline-Ms is present but malformed (the context is
 * still set, without a deadline). */
int trace_begin(struct mg_connection *conn, bool deadlines);

/* Forgets the current request's deadline (the no_deadlines fault). */
void trace_drop_deadline(void);

/* Ends it. */
void trace_end(void);

/* The calling thread's context, or NULL outside a request. */
const trace_ctx *trace_current(void);

/* Milliseconds left before the current request's deadline (may be <= 0);
 * INT64_MAX when it has none. */
int64_t trace_left_ms(void);

/* Adds ns to the current request's database time (no-op outside a request). */
void trace_time_db(int64_t ns);

/* Records the call to the next hop: its ns and the db-chain the next hop
 * reported (0 when it reported none). */
void trace_time_next(int64_t ns, int64_t next_db_ns);

/* Writes the current request's Server-Timing value into buf, e.g.
 * `db;dur=2.104, db-chain;dur=6.512, next;dur=5.917, total;dur=8.433`
 * (next only when a call was made). Returns its length, 0 when the request
 * made no database write and no call (nothing worth a header), or when buf
 * is too small. */
size_t trace_server_timing(char *buf, size_t len);

/* Reads the `db-chain` duration from a Server-Timing value into *ns.
 * Returns false when value has none, or one that is not a non-negative
 * decimal number of milliseconds under a day. */
bool trace_parse_db_chain(const char *value, size_t len, int64_t *ns);

/* Writes the headers for a call to the next hop into buf (CRLF-free lines
 * separated by '\n'): X-Request-Id and X-Deadline-Ms when budget_ms >= 0.
 * Returns buf. The traceparent is trace_next_parent()'s, one per attempt. */
char *trace_next_headers(char *buf, size_t len, int64_t budget_ms);

/* Writes the traceparent header line for one call to the next hop into buf
 * (at least 72 bytes), without its line end: trace_id (32 lowercase hex
 * digits), span (the caller's client span id, 16 hex digits; a random one
 * when NULL or "") and the sampled flag. "" when trace_id is NULL or "".
 * Returns buf. */
char *trace_parent_line(char *buf, size_t len, const char *trace_id, const char *span, bool sampled);

/* Sets the current request's sampled flag (the sampler's decision). */
void trace_set_sampled(bool sampled);

/* 16 random lowercase hex digits (a span id) into out (17 bytes). */
void trace_new_span_id(char out[17]);

#endif
