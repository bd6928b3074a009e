/* chain.h -- POSTing to the next service: libcurl over a bounded pool of keep-alive handles. */
#ifndef SVC_CHAIN_H
#define SVC_CHAIN_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include "cb.h"
#include "otel.h"

/* One downstream call: what to send and what came back. */
typedef struct chain_call {
    const char *url;       /* CHAIN_SVC?count=N */
    const char *body;      /* JSON, sent as application/json */
    const char *headers;   /* more header lines, each ending in '\n'; NULL = none */
    int64_t deadline_ns;   /* CLOCK_MONOTONIC; the call ends by then; 0 = none */
    _Atomic int *cancel;   /* NULL, or a flag polled during the transfer: once it
                              is non-zero the transfer is aborted (CHAIN_ECANCELLED);
                              a hedged call's copies have one each (hop_hedge.h) */
    long status;           /* the HTTP status, 0 when none arrived */
    int curl_rc;           /* CURLcode of the transfer */
    char *response;        /* the response body, NUL-terminated; free() it */
    size_t response_len;
    int64_t next_db_ns;    /* the db-chain of the answer's Server-Timing; 0 = none */
    /* tracing: each attempt is a client span, child of span (the breaker
     * call's; NULL = not sampled), and sends a traceparent naming it */
    otel_span *span;
    char trace_id[33];     /* the request's W3C trace id; "" = none (no traceparent) */
    bool sampled;
    int attempt;           /* attempts made so far on this chain_call */
    int copy;              /* a hedged call's copy, from 1; 0 = not hedged */
    char traceparent[80];  /* this attempt's header line */
} chain_call;

/* Action codes other than HTTP statuses (which are >= 100). */
#define CHAIN_ETIMEDOUT -1 /* no answer before the deadline */
#define CHAIN_ECONNECT  -2 /* nobody listening, or the connection broke */
#define CHAIN_ETRANSFER -3 /* any other transport failure */
#define CHAIN_ECANCELLED -4 /* aborted: another copy of a hedged call won */

/* Initialises libcurl and the pool of at most connections (>= 1) handles,
 * so at most that many connections to the next hop. Call once, before any
 * thread starts. Returns 0 or -1. */
int chain_global_init(int connections);
/* Releases what chain_global_init() took. Call after every worker thread ended. */
void chain_global_cleanup(void);

/* The pool now: its size (CHAIN_CONNECTIONS), the handles out on calls
 * (each a connection to the next hop held by a worker thread) and the calls
 * waiting for one. Thread-safe; can't fail. */
void chain_pool_counts(int *size, int *in_use, int *waiting);

/* POSTs c->body to c->url, waiting at most timeout_ms (>= 1). Fills status,
 * curl_rc and response. Returns 0 on a 2xx answer; the HTTP status for any
 * other answer; CHAIN_ETIMEDOUT, CHAIN_ECONNECT or CHAIN_ETRANSFER when no
 * answer came. Takes a handle from the pool (its kept-alive connection is
 * reused), waiting for one within timeout_ms when all are busy. */
int chain_post(chain_call *c, long timeout_ms);

/* The breaker's action (a cb_action_fn): call->arg is a chain_call *. Gives
 * chain_post() what is left until call->deadline_ns (the system monotonic
 * clock, the breaker's default), or until the chain_call's own deadline_ns
 * when that comes first. Sets *result to the chain_call. Frees and clears
 * what an earlier attempt on the same chain_call left (response, status),
 * so a retry may run it again: the chain_call must start zeroed. */
int chain_action(const cb_call *call, void **result);

/* A short word for an action code: "failure(502)", "timeout", "connect". The
 * buffer must hold 32 bytes; returns buf. */
const char *chain_reason(int action_rc, char *buf, size_t len);

#endif
