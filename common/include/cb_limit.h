/* cb_limit.h -- an adaptive concurrency limit (TCP Vegas, as in Netflix's
 * concurrency-limits): admission control that sheds the excess at once.
 *
 * A call site asks cb_limit_acquire() before it starts work. While fewer
 * calls than the limit are in flight the call is admitted (CB_OK) and
 * carries a token; at or over the limit it is refused at once with
 * CB_ELIMIT, and the caller answers "busy, try again" without doing any of
 * the work. When an admitted call ends, cb_limit_release() gives the token
 * back with its outcome:
 *
 *   CB_LIMIT_SUCCESS   a latency sample: rtt = now - the token's start, on
 *                      the limiter's clock; the limit may move (below)
 *   CB_LIMIT_DROPPED   the call timed out or was dropped (overload seen
 *                      downstream): the limit shrinks multiplicatively
 *   CB_LIMIT_IGNORED   the call says nothing about load (a bad request,
 *                      answered before the work): only in_flight falls
 *
 * The arithmetic on a success sample, in this order (integers; limit,
 * alpha, beta and queue are counts of calls, times in nanoseconds):
 *
 *   1. the no-load estimate:  if no estimate, or rtt_window_ms > 0 and
 *      now >= window_start + rtt_window_ms: no_load = rtt, window_start =
 *      now (a new window: the estimate may rise again after the service
 *      got slower for good); else no_load = min(no_load, rtt)
 *   2. application-limited:   if in_flight * 2 < limit (in_flight counting
 *      this call), the limit is not reached for, so the sample says nothing
 *      about it: no change
 *   3. the queue estimate:    queue = ceil(limit * (rtt - no_load) / rtt),
 *      the calls waiting rather than being served, if the no-load latency
 *      is the service time (Little's law)
 *   4. the step:              queue < alpha  -> limit + 1
 *                             queue > beta   -> limit - 1
 *                             otherwise      -> unchanged
 *   5. clamp to [min_limit, max_limit].
 *
 * On a dropped sample: limit = min(limit - 1, floor(limit * backoff_ratio)),
 * then the clamp (the estimate is untouched). Why Vegas and not Gradient2:
 * its state is three integers and its step is a table, so a test states the
 * limit after each sample by hand; it reacts to the queue it measures, not
 * to a smoothed ratio, so a flood is seen within a few samples; and alpha
 * and beta say in requests how much queueing is tolerated.
 *
 * Time: the limiter reads time only through o.clock, so a test with a
 * cb_manual_clock states every rtt exactly.
 *
 * Thread safety: every function taking a cb_limit * may be called from any
 * number of threads at once, except cb_limit_destroy(), which must be the
 * last. The state sits behind one small mutex, held for a few comparisons;
 * the counts are read under it. Listeners run on the calling thread with no
 * lock held, after the change they report.
 */
#ifndef CB_LIMIT_H
#define CB_LIMIT_H

#include "cb.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cb_limit cb_limit;

/* ---- options ------------------------------------------------------------ */

typedef struct cb_limit_options {
    const char *name;        /* "limit"; copied */
    int initial_limit;       /* 20 calls; the limit before any sample; clamped
                                into [min_limit, max_limit] */
    int min_limit;           /* 1 call; the limit never falls below; 1..max_limit */
    int max_limit;           /* 200 calls; the limit never grows above; 1..100000 */
    int alpha;               /* 3 calls; queue below it: limit + 1; 0..beta */
    int beta;                /* 6 calls; queue above it: limit - 1; alpha..100000 */
    double backoff_ratio;    /* 0.9; a dropped call: limit * ratio (at least 1
                                less), floored; 0.5..1 */
    int64_t rtt_window_ms;   /* 10000 ms; the no-load estimate restarts from the
                                first sample after this long; 0 = never (the
                                minimum since the start or the last reset) */
    cb_clock clock;          /* cb_clock_system() */
} cb_limit_options;

/* Fills o with the defaults documented above. This function can't fail. */
void cb_limit_options_init(cb_limit_options *o);

/* ---- lifecycle ---------------------------------------------------------- */

/* Creates a limiter from o (copied). Returns CB_OK and sets *out, CB_EINVAL
 * for invalid options (a bound outside its range above, alpha > beta, a
 * backoff_ratio outside 0.5..1 or NaN, a negative rtt_window_ms, no clock),
 * or CB_ENOMEM; on error *out is left untouched and nothing leaks. */
int cb_limit_create(const cb_limit_options *o, cb_limit **out);

/* Frees l. Every token must have been released. NULL is a no-op. */
void cb_limit_destroy(cb_limit *l);

/* Replaces l's numeric options (initial_limit, min_limit, max_limit, alpha,
 * beta, backoff_ratio, rtt_window_ms; name and clock are kept) and resets it:
 * the limit starts again from the new initial_limit and the no-load estimate
 * is forgotten. Calls in flight stay counted and release as usual. Returns
 * CB_OK, or CB_EINVAL (o invalid as for cb_limit_create(): l unchanged). */
int cb_limit_set_options(cb_limit *l, const cb_limit_options *o);

/* Copies the options l runs with into *o. Returns CB_OK or CB_EINVAL (NULL). */
int cb_limit_get_options(cb_limit *l, cb_limit_options *o);

/* ---- admission ---------------------------------------------------------- */

/* An admitted call's receipt: filled by cb_limit_acquire(), given back to
 * cb_limit_release(). The caller owns it (on its stack, or thread-local). */
typedef struct cb_limit_token {
    int64_t start_ns;        /* when it was admitted, on the limiter's clock */
    bool held;               /* true from an admission to its release */
} cb_limit_token;

/* Admits a call when in_flight < limit: in_flight + 1, t filled, CB_OK.
 * Otherwise refuses it at once with CB_ELIMIT (t->held false) and emits
 * CB_LEV_SHED. CB_EINVAL for NULL l or t. */
int cb_limit_acquire(cb_limit *l, cb_limit_token *t);

typedef enum cb_limit_outcome {
    CB_LIMIT_SUCCESS = 0,    /* a latency sample (see the top of this file) */
    CB_LIMIT_DROPPED,        /* timed out or dropped: the limit shrinks */
    CB_LIMIT_IGNORED         /* no sample: only in_flight falls */
} cb_limit_outcome;

/* Gives back t (in_flight - 1) with the call's outcome, which may move the
 * limit (CB_LEV_LIMIT is emitted when it does). Returns CB_OK, or CB_EINVAL
 * for NULL, a token not held, or an outcome outside the enum. t->held is
 * false afterwards. */
int cb_limit_release(cb_limit *l, cb_limit_token *t, cb_limit_outcome outcome);

/* ---- statistics --------------------------------------------------------- */

typedef struct cb_limit_stats {
    int limit;               /* the limit now */
    int in_flight;           /* admitted calls not yet released */
    uint64_t admitted;       /* cb_limit_acquire() calls admitted */
    uint64_t shed;           /* cb_limit_acquire() calls refused (CB_ELIMIT) */
    uint64_t samples;        /* releases with CB_LIMIT_SUCCESS */
    uint64_t dropped;        /* releases with CB_LIMIT_DROPPED */
    int64_t no_load_ns;      /* the no-load latency estimate; 0 = none yet */
    int64_t last_rtt_ns;     /* the last success sample's latency; 0 = none */
} cb_limit_stats;

/* Fills st with a consistent snapshot of l. Returns CB_OK or CB_EINVAL. */
int cb_limit_get_stats(cb_limit *l, cb_limit_stats *st);

/* ---- events ------------------------------------------------------------- */

typedef enum cb_limit_event_kind {
    CB_LEV_LIMIT = 0,        /* the limit changed: old_limit -> limit */
    CB_LEV_SHED,             /* a call was refused */
    CB_LEV_COUNT
} cb_limit_event_kind;

#define CB_LEV_MASK(k) (1u << (k))
#define CB_LEV_ALL ((1u << CB_LEV_COUNT) - 1u)

/* "limit", "shed"; "unknown" outside the enum. Never NULL. */
const char *cb_limit_event_name(cb_limit_event_kind k);

typedef struct cb_limit_event {
    cb_limit_event_kind kind;
    int64_t time_ns;         /* on the limiter's clock */
    int old_limit;           /* limit: before the change; shed: the limit */
    int limit;               /* the limit now */
    int in_flight;           /* calls in flight (after the release / at the refusal) */
    int queue;               /* limit on a success sample: the queue estimate; else 0 */
    int64_t rtt_ns;          /* limit on a success sample: its latency; else 0 */
    int64_t no_load_ns;      /* the no-load estimate now */
    cb_limit_outcome outcome;/* limit: the release's outcome; shed: CB_LIMIT_IGNORED */
} cb_limit_event;

typedef void (*cb_limit_listener_fn)(cb_limit *l, const cb_limit_event *ev, void *ctx);

/* The most listeners a limiter holds at once. */
#define CB_LIMIT_MAX_LISTENERS 8

/* Registers fn for the kinds in mask (CB_LEV_ALL for all). Returns a
 * listener id (> 0), CB_EINVAL (NULL limiter or function, empty mask) or
 * CB_ENOMEM (CB_LIMIT_MAX_LISTENERS already). Listeners run synchronously,
 * in registration order, with no lock held. */
int cb_limit_on(cb_limit *l, uint32_t mask, cb_limit_listener_fn fn, void *ctx);
/* Removes the listener id. Returns CB_OK, CB_ENOTFOUND or CB_EINVAL. */
int cb_limit_off(cb_limit *l, int id);

#ifdef __cplusplus
}
#endif
#endif /* CB_LIMIT_H */
