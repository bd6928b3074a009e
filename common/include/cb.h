/* cb.h -- a circuit breaker for C: opossum's semantics, thread-safe, exact in tests.
 *
 * A breaker wraps one action (any function that may fail or hang). Every call
 * goes through cb_fire(), which decides from the breaker's state whether the
 * action runs, measures it against a deadline, counts the outcome in a rolling
 * window of buckets, and opens the circuit when the window's error percentage
 * passes a threshold. While open, calls fail fast (and run the fallback, if
 * one is set); after reset_timeout_ms the circuit lets trial calls through
 * (half-open) and closes again when they succeed.
 *
 * Every public name starts with cb_ / CB_. Every fallible function returns an
 * int: CB_OK (0) or a negative CB_E* code that cb_strerror() and cb_err_name()
 * turn into words. Nothing here calls abort() or exit() on bad input.
 *
 * Thread safety: every function taking a cb_breaker * may be called from any
 * number of threads at once, except cb_destroy(), which must be the last call
 * on a breaker. Listeners and callbacks run on the thread that caused them
 * (or on the ticker thread for timer-driven events) and must not call
 * cb_destroy() on the same breaker.
 *
 * Time: all durations are in milliseconds unless the name says otherwise. The
 * breaker reads time only through its clock (cb_options.clock), so tests can
 * drive it exactly with a cb_manual_clock and never sleep.
 */
#ifndef CB_H
#define CB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- error codes -------------------------------------------------------- */

#define CB_OK          0
#define CB_EOPEN      -1  /* rejected: the circuit is open (or half-open and its trials are taken) */
#define CB_ETIMEDOUT  -2  /* the action did not finish before its deadline */
#define CB_EFAILED    -3  /* the action returned an error (see cb_result.action_rc) */
#define CB_ESEMLOCKED -4  /* rejected: capacity (concurrent calls) reached */
#define CB_ESHUTDOWN  -5  /* the breaker was shut down */
#define CB_EINVAL     -6  /* an argument or option is invalid */
#define CB_ENOMEM     -7  /* out of memory */
#define CB_EPARSE     -8  /* an exported state could not be parsed */
#define CB_ENOTFOUND  -9  /* no such listener / cache entry */
#define CB_ETHREAD   -10  /* a thread could not be started */
#define CB_ELIMIT    -11  /* rejected: the concurrency limit is reached (cb_limit.h) */

/* Returns a sentence describing err ("circuit is open"). Never NULL; an
 * unknown code yields "unknown error". This function can't fail. */
const char *cb_strerror(int err);
/* Returns the code's name ("CB_EOPEN"). Never NULL. This function can't fail. */
const char *cb_err_name(int err);

/* ---- states ------------------------------------------------------------- */

typedef enum cb_state {
    CB_CLOSED = 0,       /* calls pass, outcomes counted */
    CB_OPEN,             /* calls rejected until the reset timer fires */
    CB_HALF_OPEN,        /* a limited number of trial calls pass */
    CB_FORCED_OPEN,      /* held open by cb_force(); no timer, every call rejected */
    CB_FORCED_CLOSED,    /* held closed by cb_force(); failures never open it */
    CB_DISABLED,         /* enabled=false: the action just runs (no fallback, capacity,
                            deadline or cache); stats still count */
    CB_SHUTDOWN          /* cb_shutdown() was called: every call refused */
} cb_state;

/* "closed", "open", "half-open", "forced-open", "forced-closed", "disabled",
 * "shutdown". Never NULL. */
const char *cb_state_name(cb_state s);

/* ---- clock -------------------------------------------------------------- */

/* A monotonic clock in nanoseconds. ctx is cb_clock.ctx. */
typedef struct cb_clock {
    int64_t (*now_ns)(void *ctx);
    void *ctx;
} cb_clock;

/* The system's monotonic clock (CLOCK_MONOTONIC). The default. Where the CPU
 * has an invariant TSC it is read through the TSC, calibrated against
 * CLOCK_MONOTONIC once per process (~10 ms on first use), because
 * clock_gettime costs ~30 ns under a hypervisor; CB_NO_TSC=1 in the
 * environment forces clock_gettime. */
cb_clock cb_clock_system(void);

/* A clock that moves only when told: for tests and simulations. */
typedef struct cb_manual_clock cb_manual_clock;
/* Creates a manual clock reading start_ns. Returns NULL when out of memory. */
cb_manual_clock *cb_manual_clock_new(int64_t start_ns);
/* A cb_clock reading mc. mc must outlive every breaker using it. */
cb_clock cb_manual_clock_get(cb_manual_clock *mc);
/* Moves mc forward by ms milliseconds (thread-safe). */
void cb_manual_clock_advance_ms(cb_manual_clock *mc, int64_t ms);
/* Moves mc forward by ns nanoseconds (thread-safe). */
void cb_manual_clock_advance_ns(cb_manual_clock *mc, int64_t ns);
void cb_manual_clock_free(cb_manual_clock *mc);

/* ---- the action and its callbacks ---------------------------------------- */

/* What the action is given. */
typedef struct cb_call {
    void *arg;                 /* the caller's argument to cb_fire() */
    int64_t deadline_ns;       /* on the breaker's clock; INT64_MAX when timeout_ms is 0
                                  (or the breaker is disabled). Reaching it is a timeout. */
    int64_t timeout_ms;        /* the whole budget (cb_options.timeout_ms), 0 = none */
    const volatile int *cancelled; /* becomes non-zero when the breaker shuts down and,
                                      in CB_TIMEOUT_POOL mode, once the deadline passed:
                                      poll it (__atomic_load_n) and give up. In TRUST mode
                                      compare the clock with deadline_ns yourself. */
    void *user;                /* cb_options.user */
    bool trial;                /* the call is a half-open trial */
} cb_call;

/* The protected action. Returns 0 on success and stores its result (may be
 * NULL) in *result; any non-zero return is a failure and is reported to the
 * error filter, the fallback and listeners as action_rc. */
typedef int (*cb_action_fn)(const cb_call *call, void **result);

/* The fallback, run when the action failed, timed out or was rejected.
 * reason is CB_EFAILED, CB_ETIMEDOUT, CB_EOPEN or CB_ESEMLOCKED; action_rc is
 * the action's return when reason is CB_EFAILED, else 0. Returns 0 and sets
 * *result when it produced a value; non-zero when it failed too. */
typedef int (*cb_fallback_fn)(void *arg, int reason, int action_rc,
                              void **result, void *user);

/* Returns true when action_rc must NOT count as a failure (opossum's
 * errorFilter): the call then counts as a success, no fallback runs, and
 * cb_fire() still returns CB_EFAILED with the action's rc. */
typedef bool (*cb_error_filter_fn)(int action_rc, void *arg, void *user);

/* Health check, run every health_check_interval_ms from the first call or
 * tick after creation: by the ticker, or lazily at the next cb_fire() or
 * cb_tick() once due. Returns 0 when healthy; non-zero emits
 * CB_EV_HEALTH_CHECK_FAILED and opens the circuit (unless it is open
 * already, forced, disabled or shut down). */
typedef int (*cb_health_check_fn)(void *user);

/* Called when an action run on the worker pool (timeout_mode CB_TIMEOUT_POOL)
 * finishes after cb_fire() already returned CB_ETIMEDOUT. It receives the
 * caller's arg and the action's rc and result, and owns both: it is the only
 * place they can be freed. Runs on the worker thread. */
typedef void (*cb_late_fn)(void *arg, int action_rc, void *result, void *user);

/* Result ownership for the cache and coalescing: dup gives each caller its own
 * copy of a shared result, free releases the breaker's copy. When unset, the
 * same pointer is handed to every caller and the breaker never frees it. */
typedef void *(*cb_dup_fn)(const void *value, void *user);
typedef void (*cb_free_fn)(void *value, void *user);

/* ---- timeouts ----------------------------------------------------------- */

typedef enum cb_timeout_mode {
    /* Default. The action runs on the caller's thread and is trusted to honour
     * call->deadline_ns (libcurl does, through CURLOPT_TIMEOUT_MS). If it
     * returns late, the call counts as a timeout and its result is handed to
     * on_late (or dropped; the breaker never frees it). */
    CB_TIMEOUT_TRUST = 0,
    /* The action runs on a small worker pool; cb_fire() returns CB_ETIMEDOUT
     * at the deadline even when the action ignores it. The late result goes to
     * on_late. arg must stay valid until on_late runs (or the action returns
     * in time). */
    CB_TIMEOUT_POOL
} cb_timeout_mode;

/* ---- options ------------------------------------------------------------ */

typedef struct cb_options {
    const char *name;                 /* "breaker"; copied */
    cb_action_fn action;              /* required */
    void *user;                       /* passed to every callback */

    /* opossum's options, with its defaults */
    int64_t timeout_ms;               /* 10000; 0 = no timeout */
    int64_t reset_timeout_ms;         /* 30000; open -> half-open after this */
    int error_threshold_percentage;   /* 50; opens when the error % exceeds it (0..100) */
    int64_t rolling_count_timeout_ms; /* 10000; the window's length */
    int rolling_count_buckets;        /* 10; must divide the window exactly */
    int volume_threshold;             /* 0; fires in the window before it may open */
    int capacity;                     /* 0 = unlimited concurrent calls */
    bool allow_warm_up;               /* false; stays closed during the first window */
    bool enabled;                     /* true; false = CB_DISABLED */
    bool rolling_percentiles_enabled; /* true; latency percentiles over the window */

    /* half-open trials (beyond opossum) */
    int half_open_max_calls;          /* 1; trial calls admitted while half-open */
    int half_open_success_threshold;  /* 1; successes among them that close it */

    /* exponential back-off of the open period (beyond opossum) */
    double reset_backoff_multiplier;  /* 1.0 = none; each consecutive re-open multiplies */
    int64_t reset_timeout_max_ms;     /* 0 = no cap */
    double reset_jitter;              /* 0.0; fraction (0..1) of random +- spread */

    /* slow calls (beyond opossum) */
    int64_t slow_call_duration_ms;    /* 0 = off; a call at least this slow is slow */
    int slow_call_rate_threshold;     /* 100; opens when slow % in the window exceeds it */

    /* timeouts */
    cb_timeout_mode timeout_mode;     /* CB_TIMEOUT_TRUST */
    int pool_threads;                 /* 4; workers for CB_TIMEOUT_POOL */
    cb_late_fn on_late;               /* NULL */

    /* callbacks */
    cb_fallback_fn fallback;          /* NULL */
    cb_error_filter_fn error_filter;  /* NULL: every error counts */
    cb_health_check_fn health_check;  /* NULL */
    int64_t health_check_interval_ms; /* 5000 (opossum's default) */

    /* result cache, keyed by the key given to cb_fire_key() */
    bool cache;                       /* false */
    int64_t cache_ttl_ms;             /* 0 = entries never expire */
    size_t cache_size;                /* 1024 entries; least recently used evicted */
    /* request coalescing: concurrent calls with one key share one action */
    bool coalesce;                    /* false */
    int64_t coalesce_ttl_ms;          /* 0 = share only while in flight */
    bool coalesce_reset_on_error;     /* true: a failed shared call is not reused */
    cb_dup_fn dup;                    /* NULL */
    cb_free_fn free_value;            /* NULL */

    /* time */
    cb_clock clock;                   /* cb_clock_system() */
    bool ticker;                      /* false; true starts a thread that moves open ->
                                         half-open on time, runs health checks and emits
                                         snapshots with no traffic. Without it this happens
                                         lazily at the next cb_fire() or cb_tick(). */
    int64_t ticker_interval_ms;       /* 0 = bucket interval */
    uint64_t seed;                    /* 0 = from the clock; jitter's random source */
} cb_options;

/* Fills o with the defaults documented above. This function can't fail. */
void cb_options_init(cb_options *o);

/* ---- lifecycle ---------------------------------------------------------- */

typedef struct cb_breaker cb_breaker;

/* Creates a breaker from o (copied; o may be freed afterwards). Returns CB_OK
 * and sets *out, or CB_EINVAL for invalid options (no action, zero buckets, a
 * window not divisible into buckets, a negative threshold or timeout, a
 * percentage over 100, half_open_success_threshold > half_open_max_calls),
 * CB_ENOMEM, or CB_ETHREAD; on error *out is left untouched and nothing leaks. */
int cb_create(const cb_options *o, cb_breaker **out);

/* Creates a breaker from o and a state exported by cb_export_json(), so that a
 * restarted process resumes where it stood: state, open timer (its remaining
 * time), back-off step and the window's counts. Returns as cb_create(), or
 * CB_EPARSE when json is not an export or holds a value out of range (a
 * count negative or above 2^53, a back-off step outside 0..1000, an open
 * period or reset timeout negative or longer than ten years). */
int cb_create_from_json(const cb_options *o, const char *json, cb_breaker **out);

/* Shuts the breaker down: every later cb_fire() returns CB_ESHUTDOWN, the
 * ticker and pool stop, cancelled flags of calls in flight are raised, every
 * listener receives CB_EV_SHUTDOWN. Idempotent. Returns CB_OK. */
int cb_shutdown(cb_breaker *b);

/* Shuts down (if not yet) and frees b and everything it holds. Calls in
 * flight must have returned. NULL is a no-op. */
void cb_destroy(cb_breaker *b);

/* ---- firing ------------------------------------------------------------- */

typedef struct cb_result {
    void *value;        /* the action's, the fallback's or the cache's result */
    int action_rc;      /* the action's return when it ran and failed, else 0 */
    bool fallback;      /* value came from the fallback */
    bool cached;        /* value came from the cache */
    bool coalesced;     /* value came from another caller's in-flight call */
    double latency_ms;  /* the action's latency, when it ran */
} cb_result;

/* Fires the breaker with arg. Returns CB_OK when the action succeeded (or a
 * cached/coalesced success was reused); otherwise the reason it did not:
 * CB_EOPEN, CB_ESEMLOCKED, CB_ETIMEDOUT, CB_EFAILED or CB_ESHUTDOWN. When the
 * action did not succeed and a fallback produced a value, res->fallback is
 * true and res->value holds it. res may be NULL. Never returns later than the
 * deadline in CB_TIMEOUT_POOL mode. */
int cb_fire(cb_breaker *b, void *arg, cb_result *res);

/* As cb_fire(), with a key for the cache and coalescing (NULL: neither). */
int cb_fire_key(cb_breaker *b, const char *key, void *arg, cb_result *res);

/* ---- control ------------------------------------------------------------ */

/* Opens the circuit by hand, as opossum's open(): starts the reset timer. */
int cb_open(cb_breaker *b);
/* Closes the circuit by hand, as opossum's close(): resets back-off. */
int cb_close(cb_breaker *b);

typedef enum cb_force_mode { CB_FORCE_NONE = 0, CB_FORCE_OPEN, CB_FORCE_CLOSED } cb_force_mode;
/* Holds the circuit open or closed until cb_force(b, CB_FORCE_NONE), which
 * returns it to closed. */
int cb_force(cb_breaker *b, cb_force_mode mode);

/* The options a running breaker can change (cb_get_tuning, cb_set_tuning);
 * each means what the cb_options field of the same name means. */
typedef struct cb_tuning {
    int64_t reset_timeout_ms;         /* >= 0; open -> half-open after this */
    double reset_backoff_multiplier;  /* >= 1.0, finite; 1.0 = no back-off */
    int64_t reset_timeout_max_ms;     /* >= 0; 0 = no cap on the backed-off period */
    int volume_threshold;             /* >= 0; fires in the window before it may open */
    int error_threshold_percentage;   /* 0..100; opens when the error % exceeds it */
} cb_tuning;

/* Fills t with the tuning b runs with now (at creation, its options').
 * Returns CB_OK or CB_EINVAL (NULL b or t). */
int cb_get_tuning(cb_breaker *b, cb_tuning *t);
/* Changes b's tuning while it runs, atomically as a whole (get, change the
 * fields, set). The thresholds count from the next outcome; the reset timeout,
 * back-off and cap from the next opening (an open period under way keeps its
 * end; the back-off step, opens since the last close, is kept). Returns CB_OK,
 * CB_EINVAL (NULL, or a field out of the range above: b unchanged) or
 * CB_ESHUTDOWN. Thread-safe. */
int cb_set_tuning(cb_breaker *b, const cb_tuning *t);

/* Enables or disables the breaker. Disabled (CB_DISABLED), cb_fire() runs
 * the action on the caller's thread with no fallback, no capacity limit, no
 * deadline (call->deadline_ns is INT64_MAX) and no cache; the call is still
 * counted (fire, success or failure, latency) but never moves the state. */
int cb_enable(cb_breaker *b, bool enabled);

/* Runs what is due at the clock's current time: open -> half-open, health
 * checks, bucket rotation and snapshot events. The ticker calls it; tests with
 * a manual clock call it after advancing. Returns CB_OK (CB_EINVAL for NULL;
 * after shutdown it does nothing). */
int cb_tick(cb_breaker *b);

/* Empties the result cache (opossum's clearCache) and forgets the keys being
 * coalesced (callers waiting on them still get their result). Returns CB_OK
 * (CB_EINVAL for NULL). */
int cb_cache_clear(cb_breaker *b);

/* ---- introspection ------------------------------------------------------ */

cb_state cb_get_state(cb_breaker *b);
const char *cb_name(const cb_breaker *b);
/* The options the breaker was created with (its own copy); the tuning it
 * runs with now is cb_get_tuning()'s. */
const cb_options *cb_get_options(const cb_breaker *b);

typedef struct cb_counts {
    uint64_t fires, successes, failures, timeouts, rejects, fallbacks,
             fallback_failures, semaphore_rejections, cache_hits, cache_misses,
             coalesce_hits, coalesce_misses, slow_calls;
} cb_counts;

#define CB_PERCENTILES 9
/* The percentiles reported, as opossum: 0, .25, .5, .75, .9, .95, .99, .995, 1. */
extern const double cb_percentile_points[CB_PERCENTILES];

typedef struct cb_stats {
    cb_state state;
    cb_counts window;                 /* over the rolling window */
    cb_counts total;                  /* since creation (or import) */
    double error_percentage;          /* failures * 100 / the calls decided in the window
                                       * (ended, rejected, cache or coalesce hits): 0..100;
                                       * failures / fires when none is in flight */
    double slow_percentage;           /* slow_calls / completed calls * 100 */
    double latency_mean_ms;           /* -1 when percentiles are disabled */
    double percentiles_ms[CB_PERCENTILES]; /* -1 each when disabled */
    int64_t open_until_ns;            /* when an open circuit goes half-open, else 0 */
    int64_t current_reset_timeout_ms; /* after back-off */
    int in_flight;                    /* calls running now */
} cb_stats;

/* Fills st with a snapshot of b's state and statistics at the clock's time
 * (the identities between counts hold when no call is in flight). Returns
 * CB_OK or CB_EINVAL. */
int cb_get_stats(cb_breaker *b, cb_stats *st);

/* The breaker's state as a JSON object ("format":"cb-state-1": name, state,
 * core state, force mode, enabled, warm-up, shutdown, the open timer's
 * remaining time, back-off step and period, the window's shape, total and
 * window counts, the window's buckets), malloc'd; the caller frees it with
 * free(). NULL for NULL or when out of memory. */
char *cb_export_json(cb_breaker *b);

/* ---- events ------------------------------------------------------------- */

typedef enum cb_event_kind {
    CB_EV_FIRE = 0, CB_EV_SUCCESS, CB_EV_FAILURE, CB_EV_TIMEOUT, CB_EV_REJECT,
    CB_EV_OPEN, CB_EV_HALF_OPEN, CB_EV_CLOSE, CB_EV_FALLBACK,
    CB_EV_SEMAPHORE_LOCKED, CB_EV_HEALTH_CHECK_FAILED, CB_EV_SHUTDOWN,
    CB_EV_CACHE_HIT, CB_EV_CACHE_MISS, CB_EV_COALESCE_HIT, CB_EV_COALESCE_MISS,
    CB_EV_SNAPSHOT,
    CB_EV_COUNT
} cb_event_kind;

#define CB_EV_MASK(k) (1u << (k))
#define CB_EV_ALL ((1u << CB_EV_COUNT) - 1u)

/* opossum's event names: "fire", "success", ..., "halfOpen", "semaphoreLocked",
 * "healthCheckFailed", "coalesceCacheHit", "snapshot". Never NULL. */
const char *cb_event_name(cb_event_kind k);

typedef struct cb_event {
    cb_event_kind kind;
    cb_state state;          /* the state after the event */
    int64_t time_ns;         /* on the breaker's clock */
    double latency_ms;       /* success, failure, timeout: the call's latency */
    int error;               /* CB_E* reason, where there is one */
    int action_rc;           /* failure: the action's return */
    const cb_stats *stats;   /* snapshot (and open/close): the window's stats */
} cb_event;

typedef void (*cb_listener_fn)(cb_breaker *b, const cb_event *ev, void *ctx);

/* Registers fn for the kinds in mask (CB_EV_ALL for all). Returns a listener
 * id (> 0), or CB_EINVAL / CB_ENOMEM. Listeners run synchronously, in
 * registration order, without the breaker's lock held. */
int cb_on(cb_breaker *b, uint32_t mask, cb_listener_fn fn, void *ctx);
/* Removes the listener id. Returns CB_OK, CB_ENOTFOUND, CB_EINVAL (NULL
 * breaker) or CB_ENOMEM. */
int cb_off(cb_breaker *b, int id);

#ifdef __cplusplus
}
#endif
#endif /* CB_H */
