/* cb_hedge.h -- hedged calls through a breaker: a second copy of a call sent
 * after a delay, the first success taken, the others cancelled, a budget so
 * that hedges stay a fraction of the calls ("The Tail at Scale", gRPC's
 * hedging policy, Polly's hedging strategy).
 *
 * Composition, in this one order: a retry policy (cb_retry.h) may sit
 * outside, the hedge inside it, the breaker inside the hedge. Each copy is
 * exactly one cb_fire_key() on the breaker it is given, with the call's key,
 * so the breaker counts every copy as one call. Copies must be safe to
 * repeat: the services' chain calls carry one Idempotency-Key on every copy.
 *
 *   t = 0            copy 1 starts (on a thread of its own)
 *   t = delay        copy 1 has not finished: the budget is asked for a
 *                    token; granted: copy 2 starts ("hedge"); refused:
 *                    "budget-refused", no further copy for this call
 *   t = 2 * delay    neither finished and max_copies > 2: copy 3, and so on
 *   a copy succeeds  the first success wins ("win" when it is not copy 1);
 *                    every copy still running gets its cancel flag set
 *                    ("cancelled"), and cb_hedge_fire() returns the winner's
 *                    result once every copy has returned
 *   a copy fails     no new copy is started for it (a failure is the retry
 *                    policy's business); when every started copy has
 *                    failed, the call returns at once with the last failure
 *                    to finish
 *
 * A call returns only after every copy it started has returned, so the
 * args stay the caller's (no copy outlives the call). An action therefore
 * polls its cancel flag (cb_hedge_call.cancel[i], which the caller puts in
 * args[i]) and returns promptly once it is set; libcurl's multi interface
 * polled every few ms does, and so do the services (common/svc/core/chain.c).
 *
 * The delay: with delay_percentile = 0, delay_ms. Otherwise the policy keeps
 * the latencies of the last `window` winning copies (each from its own
 * start, on o.clock) and the delay is their nearest-rank percentile
 * (sorted ascending x[0..n-1]: x[ceil(p/100 * n) - 1]), never below
 * delay_ms (the floor); until window_min samples are kept, it is delay_ms.
 *
 * The budget is a token bucket of milli-tokens, one per policy, shared by
 * every call through it: tokens start at max = budget_max_tokens * 1000;
 *   every call (on entry):   tokens = min(max, tokens + ratio)
 *                            (ratio = budget_ratio * 1000, rounded)
 *   every hedge sent:        tokens = tokens - 1000, only while tokens >= 1000
 * so over n calls at most n * budget_ratio + budget_max_tokens hedges are
 * sent: in a steady state hedges are at most budget_ratio of the calls
 * (10% with the defaults), with a burst of budget_max_tokens.
 * budget_max_tokens = 0 turns the budget off.
 *
 * Threads: a call makes at most max_copies threads, one per copy, each
 * joined before it returns (so at most calls-in-flight * max_copies threads
 * at once). With max_copies = 1 nothing is hedged and the copy runs on the
 * calling thread. If a thread cannot be started, the first copy runs on the
 * calling thread and a hedge is not sent (counted as "thread_failures").
 *
 * Time: the policy reads time only through o.clock. It waits for the next
 * copy's start on the real monotonic clock for the time left on o.clock, then
 * reads o.clock again; with a cb_manual_clock a copy starts at the first
 * check after the clock has passed its start (tests advance the clock, and
 * the call notices within the delay in real time).
 *
 * Thread safety: every function taking a cb_hedge * may be called from any
 * number of threads at once, except cb_hedge_destroy(), which must be the
 * last. The budget and counts are atomics; the latency window takes a small
 * mutex; listeners run with no lock held, on the thread that caused the
 * event (the caller's for "hedge" and "budget-refused", the winning copy's
 * for "win").
 */
#ifndef CB_HEDGE_H
#define CB_HEDGE_H

#include <stdatomic.h>
#include "cb.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cb_hedge cb_hedge;

/* Copies a call may make at most (max_copies' upper bound). */
#define CB_HEDGE_MAX_COPIES 8

/* ---- options ------------------------------------------------------------ */

/* Called with the result of every copy that is not returned (a loser's value,
 * the fallback's value of a failed copy), arg being that copy's arg. */
typedef void (*cb_hedge_discard_fn)(const cb_result *res, void *arg, void *user);

typedef struct cb_hedge_options {
    const char *name;            /* "hedge"; copied */
    int max_copies;              /* 2; copies per call, the first included;
                                    1 = never hedge; 1..CB_HEDGE_MAX_COPIES */
    int64_t delay_ms;            /* 50; the delay before each further copy, or
                                    the floor under the percentile; 0..600000 */
    double delay_percentile;     /* 0 = the fixed delay_ms; else 1..99.9: the
                                    delay is this percentile of the window */
    int window;                  /* 100; winning latencies kept; 1..10000 */
    int window_min;              /* 20; samples needed before the percentile
                                    is used; 1..window */
    int budget_max_tokens;       /* 10; the bucket's size; 0 = no budget; 0..1000 */
    double budget_ratio;         /* 0.1; tokens a call adds, kept to 3 decimals;
                                    0.001..100 (ignored without a budget) */
    cb_hedge_discard_fn discard; /* NULL */
    void *user;                  /* passed to discard */
    cb_clock clock;              /* cb_clock_system() */
} cb_hedge_options;

/* Fills o with the defaults documented above. This function can't fail. */
void cb_hedge_options_init(cb_hedge_options *o);

/* ---- lifecycle ---------------------------------------------------------- */

/* Creates a policy from o (copied). Returns CB_OK and sets *out, CB_EINVAL
 * for invalid options (any field outside its range above, no clock), or
 * CB_ENOMEM; on error *out is left untouched and nothing leaks. */
int cb_hedge_create(const cb_hedge_options *o, cb_hedge **out);

/* Frees h. Calls through it must have returned. NULL is a no-op. */
void cb_hedge_destroy(cb_hedge *h);

/* The options h runs with (its own copy). */
const cb_hedge_options *cb_hedge_get_options(const cb_hedge *h);

/* The delay the next call would wait before its second copy, in ns: delay_ms,
 * or the window's percentile (see the top of this file). */
int64_t cb_hedge_delay_ns(cb_hedge *h);

/* ---- firing ------------------------------------------------------------- */

/* One call's copies (in) and what happened (out). */
typedef struct cb_hedge_call {
    void **args;           /* in: args[i] is copy i's arg to cb_fire_key();
                              ncopies entries, each a distinct object */
    _Atomic int *cancel;   /* in: cancel[i] is copy i's flag, set to 0 by the
                              call and to 1 when copy i must stop; ncopies
                              entries (the action finds it through args[i]) */
    int ncopies;           /* in: entries of args and cancel; the call makes
                              at most min(ncopies, max_copies) copies; >= 1 */
    const char *key;       /* in: passed to cb_fire_key(); NULL = cb_fire() */
    int copies;            /* out: copies started */
    int winner;            /* out: the index of the copy whose result is
                              returned (the winner, or the last failure) */
    int cancelled;         /* out: copies whose cancel flag was set while they ran */
    bool budget_refused;   /* out: a hedge was due and the budget refused it */
} cb_hedge_call;

/* Calls b through the policy (see the top of this file). Returns the
 * returned copy's cb_fire() result, with res filled by that copy: CB_OK, or
 * the last failure's CB_EFAILED, CB_ETIMEDOUT, CB_EOPEN, CB_ESEMLOCKED or
 * CB_ESHUTDOWN. CB_EINVAL (no copy) for a NULL h, b or call, no args or
 * cancel, ncopies < 1. res may be NULL. */
int cb_hedge_fire(cb_hedge *h, cb_breaker *b, cb_result *res, cb_hedge_call *call);

/* ---- statistics --------------------------------------------------------- */

typedef struct cb_hedge_stats {
    uint64_t calls;            /* cb_hedge_fire() calls (valid ones) */
    uint64_t copies;           /* cb_fire() calls made: calls + hedges */
    uint64_t hedges;           /* copies after a call's first */
    uint64_t hedge_wins;       /* calls won by a copy other than the first */
    uint64_t cancelled;        /* copies cancelled because another won */
    uint64_t budget_refused;   /* hedges due that the budget refused */
    uint64_t failed;           /* calls whose every copy failed */
    uint64_t thread_failures;  /* copies not started for want of a thread */
    double budget_tokens;      /* tokens now (0 without a budget) */
    double delay_ms;           /* cb_hedge_delay_ns() in ms */
} cb_hedge_stats;

/* Fills st with h's counts. Returns CB_OK, or CB_EINVAL for NULL. Counts are
 * read one by one: copies = calls + hedges holds when no call is running. */
int cb_hedge_get_stats(cb_hedge *h, cb_hedge_stats *st);

/* ---- events ------------------------------------------------------------- */

typedef enum cb_hedge_event_kind {
    CB_HEV_HEDGE = 0,          /* a hedge copy started: copy, delay_ns */
    CB_HEV_WIN,                /* a copy other than the first won: copy */
    CB_HEV_BUDGET_REFUSED,     /* a hedge was due, the budget refused it */
    CB_HEV_COUNT
} cb_hedge_event_kind;

#define CB_HEV_MASK(k) (1u << (k))
#define CB_HEV_ALL ((1u << CB_HEV_COUNT) - 1u)

/* "hedge", "win", "budget-refused"; "unknown" outside the enum. Never NULL. */
const char *cb_hedge_event_name(cb_hedge_event_kind k);

typedef struct cb_hedge_event {
    cb_hedge_event_kind kind;
    int64_t time_ns;       /* on the policy's clock */
    int copy;              /* the copy's number, 1-based (hedge: 2, 3, ...) */
    int64_t delay_ns;      /* the delay the call waits between copies */
    double budget_tokens;  /* the budget after the event */
    cb_breaker *breaker;   /* the breaker of the call */
} cb_hedge_event;

typedef void (*cb_hedge_listener_fn)(cb_hedge *h, const cb_hedge_event *ev, void *ctx);

/* Registers fn for the kinds in mask (CB_HEV_ALL for all). Returns a listener
 * id (> 0), or CB_EINVAL (NULL policy or function, empty mask, or already
 * CB_HEDGE_MAX_LISTENERS listeners). Listeners run in registration order. */
#define CB_HEDGE_MAX_LISTENERS 8
int cb_hedge_on(cb_hedge *h, uint32_t mask, cb_hedge_listener_fn fn, void *ctx);
/* Removes the listener id. Returns CB_OK, CB_ENOTFOUND or CB_EINVAL. */
int cb_hedge_off(cb_hedge *h, int id);

#ifdef __cplusplus
}
#endif
#endif /* CB_HEDGE_H */
