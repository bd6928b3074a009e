/* cb_retry.h -- a retry policy around a breaker: full-jitter back-off, a retry
 * budget shared by every call, a per-call deadline.
 *
 * Composition, in this one order: the retry is outside, the breaker inside.
 * cb_retry_fire() makes attempts, and each attempt is exactly one cb_fire()
 * (cb_fire_key() when the call names a key) on the breaker it is given, so
 * the breaker counts every attempt as one call and opens on them as usual.
 *
 *   attempt 1 -- cb_fire() --> outcome
 *     CB_OK                     done; the budget gains budget_token_ratio
 *     CB_EOPEN, CB_ESEMLOCKED,  the breaker refused: returned at once, never
 *     CB_ESHUTDOWN, CB_EINVAL   retried, the budget untouched (see below)
 *     CB_ETIMEDOUT, CB_EFAILED  the action ran and did not succeed: ask
 *                               o.retryable(); false: done (returned as is);
 *                               true: the budget loses one token, and then
 *       no attempt left                      -> "retry-exhausted", return it
 *       budget at or below half its maximum  -> "budget-exhausted", return it
 *       back-off would end at/after deadline -> "deadline", return it
 *       else "retry", sleep the back-off, attempt n+1
 *
 * A rejection by an open breaker (CB_EOPEN) is never retried, whatever
 * o.retryable says: the breaker is open because the downstream is failing,
 * and a retry in the back-off would only be rejected again. cb_retry_fire()
 * returns CB_EOPEN at once, with the breaker's fallback value in res (the
 * breaker ran its fallback for the rejection, as it does for any cb_fire());
 * the caller's own fallback, if it keeps one outside the breaker, runs on
 * that return. The same holds for a half-open breaker whose trials are taken,
 * and for capacity (CB_ESEMLOCKED: the bulkhead shed the call; retrying would
 * add load where the breaker chose to refuse it).
 *
 * The back-off before retry n (n = 1 before the second attempt) is "full
 * jitter" (AWS Architecture Blog, "Exponential Backoff and Jitter"): a
 * uniformly random duration in [0, min(cap_ms, base_ms * 2^(n-1))], drawn in
 * nanoseconds from the policy's seeded generator.
 *
 * The budget is gRPC's retry throttle (gRPC proposal A6), one per policy and
 * shared by every call through it. In milli-tokens, so that the arithmetic is
 * exact: tokens start at max = budget_max_tokens * 1000;
 *   a successful attempt:         tokens = min(max, tokens + ratio)
 *                                 (ratio = budget_token_ratio * 1000, rounded)
 *   a retryable failed attempt:   tokens = max(0, tokens - 1000)
 *   a retry is allowed only while tokens > max / 2 (after that failure's cost).
 * Non-retryable failures and refusals leave it unchanged. So retries stop
 * when retryable failures outrun successes by more than max/2 tokens' worth,
 * and resume after (tokens - max/2) / ratio successes; in a steady state they
 * are allowed while failures are below ratio / (1 + ratio) of attempts (9%
 * with the defaults). Why this one and not Finagle's ratio-plus-floor window:
 * its state is one integer, updated lock-free, with no clock and no window to
 * rotate, so a test states it in a table; and it throttles by the outcomes,
 * which is what a retry storm is made of. budget_max_tokens = 0 turns it off.
 *
 * The deadline of a call (cb_retry_call: absolute on the policy's clock, or
 * relative in ms, the earlier of both) bounds the retries: no attempt starts
 * at or after it, and no back-off is slept that would end at or after it.
 * It does not shorten an attempt: each attempt has the breaker's timeout_ms;
 * an action that must also end by the call's deadline carries it in its arg
 * (as the services' chain_call.deadline_ns does).
 *
 * Time and sleep: the policy reads time only through o.clock and sleeps only
 * through o.sleep, so a test with a cb_manual_clock passes
 * cb_retry_sleep_manual, which advances the clock instead of sleeping.
 *
 * Thread safety: every function taking a cb_retry * may be called from any
 * number of threads at once, except cb_retry_destroy(), which must be the
 * last. The budget and the counts are atomics; the random generator takes a
 * small mutex, only when a retry is scheduled. One policy may serve several
 * breakers (the budget is then shared by all of them). Listeners run on the
 * calling thread with no lock held.
 *
 * Retry only what is safe to repeat: an action that is not idempotent (a
 * POST that may have been applied before its answer was lost) needs an
 * idempotency key, or a predicate that refuses to retry timeouts.
 */
#ifndef CB_RETRY_H
#define CB_RETRY_H

#include "cb.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cb_retry cb_retry;

/* ---- what is retryable -------------------------------------------------- */

/* Decides whether an attempt that ran and did not succeed may be retried.
 * Called only for rc CB_ETIMEDOUT (the action passed the breaker's deadline)
 * and CB_EFAILED (action_rc is the action's non-zero return); never for
 * CB_OK or the breaker's refusals. arg is the caller's arg to
 * cb_retry_fire(), user is cb_retry_options.user. */
typedef bool (*cb_retry_retryable_fn)(int rc, int action_rc, void *arg, void *user);

/* The default predicate. Retryable:
 *   rc == CB_ETIMEDOUT                        the attempt timed out;
 *   rc == CB_EFAILED and action_rc is
 *     502, 503 or 504                         an HTTP status (bad gateway,
 *                                             unavailable, gateway timeout);
 *     -ECONNREFUSED, -ECONNRESET, -ETIMEDOUT  a negated errno: connection
 *                                             refused or reset, a timeout.
 * Everything else is not: every 4xx, 500, 501, any other code. An action
 * whose codes differ wraps it; the services' chain action (common/svc/core/
 * chain.h) returns the HTTP status for a non-2xx answer, which this reads as
 * is, but CHAIN_ECONNECT (-2) and CHAIN_ETIMEDOUT (-1) for transport
 * failures, so a service would pass:
 *
 *   static bool chain_retryable(int rc, int action_rc, void *arg, void *user)
 *   {
 *       if (rc == CB_EFAILED && (action_rc == CHAIN_ECONNECT || action_rc == CHAIN_ETIMEDOUT))
 *           return true;
 *       return cb_retry_default_retryable(rc, action_rc, arg, user);
 *   }
 *
 * This function can't fail. */
bool cb_retry_default_retryable(int rc, int action_rc, void *arg, void *user);

/* ---- sleeping ----------------------------------------------------------- */

/* Sleeps ns nanoseconds (> 0). ctx is cb_retry_options.sleep_ctx. */
typedef void (*cb_retry_sleep_fn)(int64_t ns, void *ctx);

/* The default: nanosleep(), resumed after a signal until ns have passed. */
void cb_retry_sleep_system(int64_t ns, void *ctx);
/* For tests: ctx is a cb_manual_clock *; advances it by ns instead of
 * sleeping (pass the same clock as cb_retry_options.clock). */
void cb_retry_sleep_manual(int64_t ns, void *ctx);

/* ---- options ------------------------------------------------------------ */

typedef struct cb_retry_options {
    const char *name;                /* "retry"; copied */
    int max_attempts;                /* 3; attempts per call, the first included;
                                        1 = never retry; 1..100 */
    int64_t base_ms;                 /* 100; back-off before retry n is random in
                                        [0, min(cap_ms, base_ms * 2^(n-1))]; >= 0 */
    int64_t cap_ms;                  /* 1000; the back-off's ceiling; >= 0 */
    cb_retry_retryable_fn retryable; /* cb_retry_default_retryable */
    int budget_max_tokens;           /* 10; the shared budget's size; 0 = no budget
                                        (every call may use all its attempts); 0..1000 */
    double budget_token_ratio;       /* 0.1; tokens a successful attempt adds back,
                                        kept to 3 decimals; 0.001..1000 (ignored
                                        without a budget) */
    cb_free_fn discard;              /* NULL; called with the value of an attempt that
                                        is retried (the breaker's fallback value, if
                                        its fallback ran), which is otherwise dropped */
    void *user;                      /* passed to retryable and discard */
    cb_clock clock;                  /* cb_clock_system() */
    cb_retry_sleep_fn sleep;         /* cb_retry_sleep_system */
    void *sleep_ctx;                 /* NULL; passed to sleep */
    uint64_t seed;                   /* 0 = from the clock; the back-off's random source */
} cb_retry_options;

/* Fills o with the defaults documented above. This function can't fail. */
void cb_retry_options_init(cb_retry_options *o);

/* ---- lifecycle ---------------------------------------------------------- */

/* Creates a policy from o (copied). Returns CB_OK and sets *out, CB_EINVAL
 * for invalid options (max_attempts outside 1..100, a negative base_ms or
 * cap_ms, budget_max_tokens outside 0..1000, a budget whose token ratio is
 * outside 0.001..1000, no retryable, clock or sleep function), or CB_ENOMEM;
 * on error *out is left untouched and nothing leaks. */
int cb_retry_create(const cb_retry_options *o, cb_retry **out);

/* Frees r. Calls through it must have returned. NULL is a no-op. */
void cb_retry_destroy(cb_retry *r);

/* The options r runs with (its own copy). */
const cb_retry_options *cb_retry_get_options(const cb_retry *r);

/* ---- firing ------------------------------------------------------------- */

/* Why cb_retry_fire() made no further attempt. */
typedef enum cb_retry_stop {
    CB_RETRY_DONE = 0,     /* success, or a failure the predicate does not retry */
    CB_RETRY_REFUSED,      /* the breaker refused the attempt (CB_EOPEN, ...) */
    CB_RETRY_ATTEMPTS,     /* retryable, but max_attempts were made */
    CB_RETRY_BUDGET,       /* retryable, but the shared budget was exhausted */
    CB_RETRY_DEADLINE      /* retryable, but the deadline came first (or had
                              passed before the first attempt) */
} cb_retry_stop;

/* One call's deadline and key (in), and what happened (out). */
typedef struct cb_retry_call {
    int64_t deadline_ns;   /* in: absolute, on the policy's clock; 0 = none */
    int64_t timeout_ms;    /* in: from the call's start; 0 = none. With both,
                              the earlier one holds. Negative: refused (CB_EINVAL) */
    const char *key;       /* in: passed to cb_fire_key() for the cache and
                              coalescing; NULL = cb_fire() */
    int attempts;          /* out: cb_fire() calls made */
    cb_retry_stop stop;    /* out: why no further attempt was made */
} cb_retry_call;

/* Calls b with arg, retrying as the policy says (see the top of this file).
 * Returns the last attempt's cb_fire() result, with res filled by that
 * attempt (its value, action_rc, fallback flag, latency): CB_OK, CB_EFAILED,
 * CB_ETIMEDOUT, CB_EOPEN, CB_ESEMLOCKED or CB_ESHUTDOWN. Returns
 * CB_ETIMEDOUT without calling b when the deadline had passed before the
 * first attempt, and CB_EINVAL (no attempt) for a NULL r or b or a negative
 * timeout_ms. res and call may be NULL. The call sleeps between attempts on
 * the calling thread. */
int cb_retry_fire(cb_retry *r, cb_breaker *b, void *arg, cb_result *res, cb_retry_call *call);

/* ---- statistics --------------------------------------------------------- */

typedef struct cb_retry_stats {
    uint64_t calls;              /* cb_retry_fire() calls (valid ones) */
    uint64_t attempts;           /* cb_fire() calls made through the policy */
    uint64_t retries;            /* attempts after a call's first: attempts =
                                    calls - deadline_before_first + retries */
    uint64_t retries_exhausted;  /* calls stopped by CB_RETRY_ATTEMPTS */
    uint64_t budget_exhausted;   /* calls stopped by CB_RETRY_BUDGET */
    uint64_t deadline_exceeded;  /* calls stopped by CB_RETRY_DEADLINE */
    uint64_t deadline_before_first; /* among them, calls that made no attempt */
    uint64_t refused;            /* calls stopped by a breaker refusal */
    double budget_tokens;        /* tokens now (0 without a budget) */
    int budget_max_tokens;       /* as configured */
} cb_retry_stats;

/* Fills st with r's counts. Returns CB_OK, or CB_EINVAL for NULL. Counts are
 * read one by one: the identity between them holds when no call is running. */
int cb_retry_get_stats(cb_retry *r, cb_retry_stats *st);

/* ---- events ------------------------------------------------------------- */

typedef enum cb_retry_event_kind {
    CB_REV_RETRY = 0,          /* a retry is scheduled: attempt, delay_ns */
    CB_REV_RETRY_EXHAUSTED,    /* stopped: max_attempts made */
    CB_REV_BUDGET_EXHAUSTED,   /* stopped: the budget refused a retry */
    CB_REV_DEADLINE,           /* stopped: the deadline came first */
    CB_REV_COUNT
} cb_retry_event_kind;

#define CB_REV_MASK(k) (1u << (k))
#define CB_REV_ALL ((1u << CB_REV_COUNT) - 1u)

/* "retry", "retry-exhausted", "budget-exhausted", "deadline"; "unknown"
 * outside the enum. Never NULL. */
const char *cb_retry_event_name(cb_retry_event_kind k);

typedef struct cb_retry_event {
    cb_retry_event_kind kind;
    int64_t time_ns;       /* on the policy's clock */
    int attempt;           /* retry: the attempt about to start (2, 3, ...);
                              else the attempts made */
    int64_t delay_ns;      /* retry: the back-off before it; else 0 */
    int rc;                /* the last attempt's cb_fire() result (CB_ETIMEDOUT
                              for a deadline passed before the first) */
    int action_rc;         /* its action's return when rc is CB_EFAILED, else 0 */
    double budget_tokens;  /* the budget after the last attempt */
    cb_breaker *breaker;   /* the breaker of the call */
    void *arg;             /* the call's arg */
} cb_retry_event;

typedef void (*cb_retry_listener_fn)(cb_retry *r, const cb_retry_event *ev, void *ctx);

/* Registers fn for the kinds in mask (CB_REV_ALL for all). Returns a listener
 * id (> 0), or CB_EINVAL (NULL policy or function, empty mask) / CB_ENOMEM.
 * Listeners run synchronously, in registration order, with no lock held. */
int cb_retry_on(cb_retry *r, uint32_t mask, cb_retry_listener_fn fn, void *ctx);
/* Removes the listener id. Returns CB_OK, CB_ENOTFOUND, CB_EINVAL or CB_ENOMEM. */
int cb_retry_off(cb_retry *r, int id);

#ifdef __cplusplus
}
#endif
#endif /* CB_RETRY_H */
