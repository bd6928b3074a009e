/* cb_internal.h -- the breaker's private structures, shared by the files of common/src.
 *
 * Layout of the hot data. A call in the closed state touches: the state (one
 * atomic load), the "next thing due" time (one atomic load before the action,
 * one after it: a call that ran past it catches up first), the clock twice,
 * and the calling thread's own stripe of counters. Counters are cumulative and
 * never reset: the rolling window is the difference between the counters now
 * and a copy taken at the start of the oldest bucket in the window (see
 * stats.c), so a rotation never races with an increment and no count is lost.
 * A thread owns a stripe exclusively (it claimed one of CB__EXCL_STRIPES slots
 * process-wide) and updates it with plain atomic load+store; threads beyond
 * that share CB__SHARED_STRIPES stripes under a per-stripe mutex.
 *
 * Names: everything declared here is internal to libcb and spelled cb__ /
 * CB__ (as libuv's uv__), so a cb_ / CB_ name is always the public API of
 * common/include. `nm build/rel/libcb.a` shows only those two kinds.
 */
#ifndef CB_INTERNAL_H
#define CB_INTERNAL_H

#include "cb.h"
#include <pthread.h>
#include <stdatomic.h>

#define CB__EXCL_STRIPES   8
#define CB__SHARED_STRIPES 4
#define CB__BASE_STRIPE    (CB__EXCL_STRIPES + CB__SHARED_STRIPES) /* imported counts */
#define CB__STRIPES        (CB__BASE_STRIPE + 1)
#define CB__SAMPLES        256  /* latency samples kept per stripe per bucket */

#define CB__LIKELY(x)   __builtin_expect(!!(x), 1)
#define CB__UNLIKELY(x) __builtin_expect(!!(x), 0)

/* Raw counters; the public cb_counts are derived from them (stats.c). */
enum {
    C_STARTED,          /* admitted calls that ran (or were sent to run) the action */
    C_SUCCESSES,        /* action succeeded, or its error was filtered */
    C_FAILED,           /* action returned an error that counts */
    C_TIMEOUTS,         /* action passed its deadline */
    C_REJECTS,          /* refused: open, forced open, or half-open trials taken */
    C_SEMAPHORE,        /* refused: capacity reached */
    C_FALLBACKS,
    C_FALLBACK_FAILURES,
    C_CACHE_HITS, C_CACHE_MISSES, C_COALESCE_HITS, C_COALESCE_MISSES,
    C_SLOW,
    C_NCOUNTERS
};

typedef struct cb__stripe {
    _Alignas(64) _Atomic uint64_t c[C_NCOUNTERS];
    bool shared;                    /* true: take lock around updates */
    pthread_mutex_t lock;
    _Atomic int64_t *sample_epoch;  /* per bucket slot: the epoch its samples belong to */
    _Atomic uint32_t *sample_n;     /* per bucket slot: samples written (may exceed CB__SAMPLES) */
    _Atomic uint32_t *samples;      /* nbuckets * CB__SAMPLES latencies in microseconds */
} cb__stripe;

typedef struct cb__window {
    int nbuckets;
    int64_t interval_ns;
    int64_t origin_ns;
    _Atomic int64_t epoch;          /* bucket number now being filled */
    _Atomic int64_t next_rotate_ns;
    pthread_mutex_t lock;           /* guards start_cum */
    uint64_t (*start_cum)[C_NCOUNTERS]; /* slot e % n: cumulative counts at start of epoch e */
    cb__stripe *stripes;            /* CB__STRIPES, 64-byte aligned */
} cb__window;

typedef struct cb__listener {
    int id;
    uint32_t mask;
    cb_listener_fn fn;
    void *ctx;
} cb__listener;

typedef struct cb__listener_set {
    _Atomic int refs;
    int n;
    cb__listener items[];
} cb__listener_set;

typedef struct cb__cache cb__cache;
typedef struct cb__coalescer cb__coalescer;
typedef struct cb__pool cb__pool;

struct cb_breaker {
    /* read on every call */
    _Atomic int state;              /* cb_state */
    _Atomic int64_t next_due_ns;    /* earliest of rotation, half-open, health check */
    _Atomic uint32_t listen_mask;   /* kinds some listener wants */
    cb_options o;                   /* own copy; o.name points at name */
    int64_t timeout_ns;
    int64_t slow_ns;
    cb__window win;
    int cancel_all;                 /* raised (atomically) at shutdown; TRUST mode's cancelled */

    /* capacity */
    _Atomic int sem_used;

    /* opening thresholds (cb_set_tuning), read on every failure without b->lock */
    _Atomic int volume_threshold;
    _Atomic int error_threshold;

    /* state machine, guarded by lock */
    pthread_mutex_t lock;
    uint64_t generation;            /* bumped on every transition */
    int64_t open_until_ns;          /* OPEN: when it may go half-open */
    int64_t current_reset_ns;       /* the open period last used */
    int backoff_step;               /* consecutive opens since the last close */
    cb_tuning tune;                 /* cb_set_tuning(): reset timeout, back-off, cap */
    int ho_admitted, ho_successes;  /* half-open trials of this generation */
    int trials_in_flight;           /* trials running, of any generation */
    uint64_t rng;
    cb_state core;                  /* CB_CLOSED, CB_OPEN or CB_HALF_OPEN */
    cb_force_mode force;            /* cb_force() */
    bool disabled;                  /* cb_enable(false) */
    bool warm_up;                   /* allow_warm_up: no opening before warm_until_ns */
    int64_t warm_until_ns;

    /* ticks */
    pthread_mutex_t tick_lock;
    int64_t next_health_ns;
    int64_t last_snapshot_epoch;

    /* listeners */
    pthread_mutex_t listeners_lock;
    cb__listener_set *listeners;
    int next_listener_id;

    _Atomic int shut;
    char *name;
    cb__cache *cache;
    cb__coalescer *coalescer;
    cb__pool *pool;

    /* ticker thread */
    bool ticker_running;
    pthread_t ticker;
    int (*ticker_tick)(cb_breaker *); /* what the ticker calls: cb_tick */
    pthread_mutex_t ticker_mx;
    pthread_cond_t ticker_cv;
    bool ticker_stop;
};

/* ---- clock.c ---- */
static inline int64_t cb__now(const cb_breaker *b) { return b->o.clock.now_ns(b->o.clock.ctx); }

/* ---- options.c ---- */
int cb__options_validate(const cb_options *o);
/* Returns CB_OK when t is a sound tuning (the ranges in cb.h), else CB_EINVAL. */
int cb__tuning_validate(const cb_tuning *t);

/* ---- stats.c ---- */
int cb__window_init(cb__window *w, int nbuckets, int64_t window_ms, int64_t now_ns);
void cb__window_free(cb__window *w);
int cb__thread_stripe(void);
/* Adds n to counter k on the calling thread's stripe. */
void cb__count(cb_breaker *b, int k, uint64_t n);
/* Counts one completed call: counter k, its latency sample, and slow when slow. */
void cb__count_completion(cb_breaker *b, int k, int64_t latency_ns, bool slow);
/* Moves the window to the bucket of now_ns; returns true when an epoch boundary was passed. */
bool cb__window_rotate(cb__window *w, int64_t now_ns);
void cb__window_sum_now(cb__window *w, uint64_t out[C_NCOUNTERS]);
/* Window counts (raw) = now - start of the window as it stands at now_ns
 * (0: as last rotated). */
void cb__window_raw(cb__window *w, int64_t now_ns, uint64_t win[C_NCOUNTERS],
                    uint64_t total[C_NCOUNTERS]);
void cb__raw_to_counts(const uint64_t raw[C_NCOUNTERS], cb_counts *c);
void cb__counts_to_raw(const cb_counts *c, uint64_t raw[C_NCOUNTERS]);
void cb__window_latency(cb__window *w, int64_t now_ns, bool enabled, double *mean,
                        double pct[CB_PERCENTILES]);
/* Per-bucket raw counts, oldest first: out[nbuckets][C_NCOUNTERS]. */
void cb__window_buckets(cb__window *w, uint64_t (*out)[C_NCOUNTERS]);
/* Sets the imported totals and window buckets (oldest first, may be NULL). */
void cb__window_import(cb__window *w, const uint64_t total[C_NCOUNTERS],
                       uint64_t (*buckets)[C_NCOUNTERS], int nbuckets);
int cb__in_flight(cb__window *w);

/* ---- events.c ---- */
void cb__emit_slow(cb_breaker *b, const cb_event *ev);
static inline bool cb__wants(cb_breaker *b, cb_event_kind k) {
    return (atomic_load_explicit(&b->listen_mask, memory_order_relaxed) & CB_EV_MASK(k)) != 0;
}
/* Emits kind with the given figures when some listener wants it. */
void cb__emit(cb_breaker *b, cb_event_kind k, double latency_ms, int error, int action_rc);
/* Emits kind with the window's stats st attached (read by the caller). */
void cb__emit_stats(cb_breaker *b, cb_event_kind k, const cb_stats *st);
void cb__listeners_free(cb_breaker *b);

/* ---- breaker.c (state machine) ---- */
/* Allocates a breaker from validated options without starting threads. */
int cb__breaker_new(const cb_options *o, cb_breaker **out);
/* Starts the pool and ticker threads the options ask for. */
int cb__breaker_start(cb_breaker *b);
/* The visible state (b->lock held). */
cb_state cb__visible_state(const cb_breaker *b);
/* Sets the state machine from an import (lock taken inside). */
void cb__breaker_restore(cb_breaker *b, cb_state core, cb_force_mode force, bool disabled,
                         bool warm_up, int64_t open_remaining_ns, int backoff_step,
                         int64_t current_reset_ns);
void cb__tick_due(cb_breaker *b, int64_t now, bool wait);
void cb__lower_next_due(cb_breaker *b, int64_t t);
void cb__recompute_next_due(cb_breaker *b);

/* ---- cache.c ---- */
int cb__cache_new(const cb_options *o, cb__cache **out);
void cb__cache_free(cb__cache *c);
/* Returns true and sets *value (dup'ed) when key is cached and fresh at now. */
bool cb__cache_get(cb__cache *c, const char *key, int64_t now, void **value);
void cb__cache_put(cb__cache *c, const char *key, void *value, int64_t now);
void cb__cache_flush(cb__cache *c);

typedef struct cb__shared_call cb__shared_call;
int cb__coalescer_new(const cb_options *o, cb__coalescer **out);
void cb__coalescer_free(cb__coalescer *c);
/* Returns a call to share: *leader true when the caller must run it and
 * publish with cb__coalesce_publish(); false when it must wait for it. NULL on ENOMEM. */
cb__shared_call *cb__coalesce_join(cb__coalescer *c, const char *key, int64_t now, bool *leader);
void cb__coalesce_publish(cb__coalescer *c, cb__shared_call *sc, int rc, const cb_result *res,
                          int64_t now);
/* Waits for sc's result and copies it; releases the caller's reference. */
int cb__coalesce_wait(cb__coalescer *c, cb__shared_call *sc, cb_result *res);
void cb__coalesce_release(cb__coalescer *c, cb__shared_call *sc);
void cb__coalescer_flush(cb__coalescer *c);

/* ---- pool.c ---- */
int cb__pool_new(cb_breaker *b, int threads, cb__pool **out);
/* Runs the action on the pool; returns CB_OK with *rc and *result when it finished
 * before the deadline, CB_ETIMEDOUT otherwise (the late result goes to on_late). */
int cb__pool_run(cb__pool *p, cb_call *call, int *rc, void **result);
void cb__pool_stop(cb__pool *p);
void cb__pool_free(cb__pool *p);

/* ---- ticker.c ---- */
int cb__ticker_start(cb_breaker *b, int (*tick)(cb_breaker *));
void cb__ticker_stop(cb_breaker *b);
void cb__ticker_join(cb_breaker *b);
void cb__ticker_wake(cb_breaker *b);

#endif
