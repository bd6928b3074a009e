/* breaker.c -- the breaker's state machine and cb_fire(): admission, timing,
 * outcome, transitions.
 *
 * The visible state is one atomic int, derived from the core state (closed,
 * open, half-open) and the overrides (shutdown > disabled > forced). Every
 * transition of the core state is one call to set_state(), under b->lock: it
 * bumps b->generation, publishes the visible state and returns the event that
 * announce() delivers once b->lock is released (listeners never run under
 * it). A half-open trial remembers the generation that admitted it, so a call
 * admitted in another period can never close or re-open the circuit (the race
 * behind opossum issue 385). Timers are lazy: b->next_due_ns is the earliest
 * moment anything is due (bucket rotation, open -> half-open, health check);
 * the first call or tick that sees it passed does the work under tick_lock.
 *
 *   from              event                                        to
 *   closed            a call fails or is slow, past warm-up, and
 *                     the window has fires >= volume and error %
 *                     > threshold (or slow % > its threshold)      open
 *   open              the open period passed (next call or tick)   half-open
 *   half-open         success_threshold trials of this period
 *                     succeed                                      closed
 *   half-open         a trial of this period fails, times out or
 *                     is refused for capacity                      open, next back-off period
 *   closed/half-open  the health check fails; cb_open()            open
 *   open/half-open    cb_close(); cb_force(b, CB_FORCE_NONE)       closed, back-off reset
 *
 * While forced, disabled or shut down, no failure or health check opens the
 * circuit and listeners hear no transition; the core state still moves under
 * cb_open(), cb_close(), the end of an open period (not once shut down) and a
 * trial admitted before the override, and shows once the override is lifted.
 * The overrides are not transitions of the core: cb_force() and cb_enable()
 * set them, and cb_force() emits open / close when what callers see changes.
 */
#include "cb_internal.h"

#include <stdlib.h>
#include <string.h>

enum admit_kind { ADMIT_NORMAL, ADMIT_TRIAL };

/* Kept out of line so that the paths every call takes stay small. */
#define CB_COLD __attribute__((noinline, cold))

static _Thread_local bool in_tick;

/* ---- state and transitions --------------------------------------------- */

static cb_state visible_state(const cb_breaker *b)
{
    if (atomic_load_explicit(&b->shut, memory_order_relaxed))
        return CB_SHUTDOWN;
    if (b->disabled)
        return CB_DISABLED;
    if (b->force == CB_FORCE_OPEN)
        return CB_FORCED_OPEN;
    if (b->force == CB_FORCE_CLOSED)
        return CB_FORCED_CLOSED;
    return b->core;
}

/* The visible state (b->lock held). */
cb_state cb__visible_state(const cb_breaker *b)
{
    return visible_state(b);
}

static void publish_state(cb_breaker *b)
{
    atomic_store_explicit(&b->state, (int)visible_state(b), memory_order_release);
}

/* Lowers next_due_ns to t if t is earlier. */
void cb__lower_next_due(cb_breaker *b, int64_t t)
{
    int64_t cur = atomic_load_explicit(&b->next_due_ns, memory_order_relaxed);
    while (t < cur && !atomic_compare_exchange_weak_explicit(&b->next_due_ns, &cur, t,
                                                             memory_order_release,
                                                             memory_order_relaxed)) {
    }
}

/* Sets next_due_ns to the earliest pending deadline (b->lock held). */
void cb__recompute_next_due(cb_breaker *b)
{
    int64_t t = atomic_load_explicit(&b->win.next_rotate_ns, memory_order_acquire);
    if (b->o.health_check && b->next_health_ns < t)
        t = b->next_health_ns;
    if (b->core == CB_OPEN && b->open_until_ns < t)
        t = b->open_until_ns;
    atomic_store_explicit(&b->next_due_ns, t, memory_order_release);
}

static double next_random(cb_breaker *b)
{
    uint64_t x = b->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    b->rng = x;
    return (double)(x >> 11) / 9007199254740992.0;
}

/* The open period for the current back-off step: reset * mult^step, capped,
 * then spread by +-jitter. */
static int64_t open_period_ns(cb_breaker *b)
{
    double p = (double)b->tune.reset_timeout_ms * 1e6;
    double cap = (double)b->tune.reset_timeout_max_ms * 1e6;
    for (int i = 0; i < b->backoff_step && p < 9e18; i++)
        p *= b->tune.reset_backoff_multiplier;
    if (b->tune.reset_timeout_max_ms > 0 && p > cap)
        p = cap;
    if (b->o.reset_jitter > 0)
        p *= 1.0 + b->o.reset_jitter * (2.0 * next_random(b) - 1.0);
    return p > 9e18 ? INT64_MAX / 2 : (int64_t)p;
}

static bool overridden(const cb_breaker *b)
{
    return b->disabled || b->force != CB_FORCE_NONE ||
           atomic_load_explicit(&b->shut, memory_order_relaxed);
}

/* set_state()'s answer when listeners must hear nothing. */
#define NO_EVENT CB_EV_COUNT
/* set_state()'s open_ns for an opening that takes the next back-off period. */
#define NEXT_PERIOD (-1)

/* Moves the core state to `to` (CB_CLOSED, CB_OPEN or CB_HALF_OPEN; b->lock
 * held): the one place a transition happens (see the table above). It starts
 * a new generation (trials of the old one no longer count), resets the
 * half-open trial counts, sets the open timer and the back-off for `to` and
 * publishes the visible state. Opening starts at now and lasts open_ns, or,
 * with NEXT_PERIOD, reset_timeout_ms backed off by the opens since the last
 * close (and counts one more); the other moves read neither. Closing resets
 * the back-off. Returns the event the caller hands to announce() once it has
 * released b->lock: CB_EV_OPEN, CB_EV_HALF_OPEN or CB_EV_CLOSE, or NO_EVENT
 * when `to` is the state already or an override (forced, disabled, shut
 * down) hides the move. This function can't fail. */
static cb_event_kind set_state(cb_breaker *b, cb_state to, int64_t now, int64_t open_ns)
{
    if (b->core == to)
        return NO_EVENT;
    cb_event_kind ev;
    switch (to) {
    case CB_OPEN:
        if (open_ns == NEXT_PERIOD) {
            open_ns = open_period_ns(b);
            if (b->backoff_step < 1000)
                b->backoff_step++;
        }
        b->current_reset_ns = open_ns;
        b->open_until_ns = now + open_ns;
        ev = CB_EV_OPEN;
        break;
    case CB_HALF_OPEN:
        b->open_until_ns = 0;
        ev = CB_EV_HALF_OPEN;
        break;
    default: /* CB_CLOSED */
        b->backoff_step = 0;
        b->open_until_ns = 0;
        ev = CB_EV_CLOSE;
        break;
    }
    b->core = to;
    b->generation++;
    b->ho_admitted = b->ho_successes = 0;
    publish_state(b);
    if (to == CB_OPEN) {
        cb__lower_next_due(b, b->open_until_ns);
        cb__ticker_wake(b);
    }
    return overridden(b) ? NO_EVENT : ev;
}

/* Emits kind with the window's stats attached, when some listener wants it. */
static void emit_with_stats(cb_breaker *b, cb_event_kind k)
{
    if (!cb__wants(b, k))
        return;
    cb_stats st;
    cb_get_stats(b, &st);
    cb__emit_stats(b, k, &st);
}

/* Tells the listeners of a transition set_state() made (b->lock released);
 * open and close carry the window's stats. NO_EVENT is a no-op. */
static void announce(cb_breaker *b, cb_event_kind ev)
{
    if (ev == CB_EV_HALF_OPEN)
        cb__emit(b, ev, 0, 0, 0);
    else if (ev != NO_EVENT)
        emit_with_stats(b, ev);
}

/* ---- creation ------------------------------------------------------------ */

static void breaker_free_parts(cb_breaker *b)
{
    cb__cache_free(b->cache);
    cb__coalescer_free(b->coalescer);
    cb__window_free(&b->win);
    free(b->name);
    free(b);
}

/* Allocates a breaker from validated options; no thread is started. */
int cb__breaker_new(const cb_options *o, cb_breaker **out)
{
    int rc = cb__options_validate(o);
    if (rc != CB_OK)
        return rc;
    cb_breaker *b = calloc(1, sizeof *b);
    if (!b)
        return CB_ENOMEM;
    b->o = *o;
    b->name = strdup(o->name ? o->name : "breaker");
    int64_t now = o->clock.now_ns(o->clock.ctx);
    if (!b->name || cb__window_init(&b->win, o->rolling_count_buckets,
                                    o->rolling_count_timeout_ms, now) != CB_OK) {
        free(b->name);
        free(b);
        return CB_ENOMEM;
    }
    b->o.name = b->name;
    if ((o->cache && cb__cache_new(o, &b->cache) != CB_OK) ||
        (o->coalesce && cb__coalescer_new(o, &b->coalescer) != CB_OK)) {
        breaker_free_parts(b);
        return CB_ENOMEM;
    }
    b->timeout_ns = o->timeout_ms * 1000000LL;
    b->slow_ns = o->slow_call_duration_ms * 1000000LL;
    b->core = CB_CLOSED;
    b->disabled = !o->enabled;
    b->warm_up = o->allow_warm_up;
    b->warm_until_ns = now + o->rolling_count_timeout_ms * 1000000LL;
    b->current_reset_ns = o->reset_timeout_ms * 1000000LL;
    b->tune = (cb_tuning){ o->reset_timeout_ms, o->reset_backoff_multiplier,
                           o->reset_timeout_max_ms, o->volume_threshold,
                           o->error_threshold_percentage };
    atomic_init(&b->volume_threshold, o->volume_threshold);
    atomic_init(&b->error_threshold, o->error_threshold_percentage);
    b->rng = o->seed ? o->seed : (uint64_t)now ^ (uint64_t)(uintptr_t)b;
    if (!b->rng)
        b->rng = 0x9E3779B97F4A7C15ull;
    b->next_health_ns = now;
    pthread_mutex_init(&b->lock, NULL);
    pthread_mutex_init(&b->tick_lock, NULL);
    pthread_mutex_init(&b->listeners_lock, NULL);
    publish_state(b);
    cb__recompute_next_due(b);
    *out = b;
    return CB_OK;
}

/* Starts the worker pool and the ticker when the options ask for them.
 * Returns CB_OK or CB_ETHREAD/CB_ENOMEM (the caller then destroys b). */
int cb__breaker_start(cb_breaker *b)
{
    if (b->o.timeout_mode == CB_TIMEOUT_POOL) {
        int rc = cb__pool_new(b, b->o.pool_threads, &b->pool);
        if (rc != CB_OK)
            return rc;
    }
    if (b->o.ticker)
        return cb__ticker_start(b, cb_tick);
    return CB_OK;
}

/* Creates a breaker from o. See cb.h for the contract. */
int cb_create(const cb_options *o, cb_breaker **out)
{
    if (!out)
        return CB_EINVAL;
    cb_breaker *b;
    int rc = cb__breaker_new(o, &b);
    if (rc != CB_OK)
        return rc;
    rc = cb__breaker_start(b);
    if (rc != CB_OK) {
        cb_destroy(b);
        return rc;
    }
    *out = b;
    return CB_OK;
}

/* Sets the state machine from an imported state. */
void cb__breaker_restore(cb_breaker *b, cb_state core, cb_force_mode force, bool disabled,
                         bool warm_up, int64_t open_remaining_ns, int backoff_step,
                         int64_t current_reset_ns)
{
    int64_t now = cb__now(b);
    pthread_mutex_lock(&b->lock);
    b->force = force;
    b->disabled = disabled;
    b->warm_up = warm_up;
    /* an open period that ran out while the state was stored is over */
    if (core == CB_OPEN && open_remaining_ns <= 0)
        core = CB_HALF_OPEN;
    (void)set_state(b, core, now, open_remaining_ns); /* nobody listens yet */
    b->backoff_step = backoff_step;
    b->current_reset_ns = current_reset_ns;
    publish_state(b);
    cb__recompute_next_due(b);
    pthread_mutex_unlock(&b->lock);
}

/* ---- shutdown and destroy ------------------------------------------------ */

/* Shuts b down: see cb.h. Idempotent; returns CB_OK (CB_EINVAL for NULL). */
int cb_shutdown(cb_breaker *b)
{
    if (!b)
        return CB_EINVAL;
    if (atomic_exchange_explicit(&b->shut, 1, memory_order_acq_rel))
        return CB_OK;
    __atomic_store_n(&b->cancel_all, 1, __ATOMIC_RELEASE);
    pthread_mutex_lock(&b->lock);
    publish_state(b);
    pthread_mutex_unlock(&b->lock);
    cb__ticker_stop(b);
    if (b->pool)
        cb__pool_stop(b->pool);
    cb__emit(b, CB_EV_SHUTDOWN, 0, CB_ESHUTDOWN, 0);
    if (b->cache)
        cb__cache_flush(b->cache);
    if (b->coalescer)
        cb__coalescer_flush(b->coalescer);
    return CB_OK;
}

/* Shuts down and frees b. NULL is a no-op. */
void cb_destroy(cb_breaker *b)
{
    if (!b)
        return;
    cb_shutdown(b);
    cb__ticker_join(b);
    cb__pool_free(b->pool);
    cb__listeners_free(b);
    pthread_mutex_destroy(&b->lock);
    pthread_mutex_destroy(&b->tick_lock);
    pthread_mutex_destroy(&b->listeners_lock);
    breaker_free_parts(b);
}

/* ---- ticks --------------------------------------------------------------- */

/* Runs the health check if due; returns true when it failed. */
static bool run_health_check(cb_breaker *b, int64_t now)
{
    if (!b->o.health_check || now < b->next_health_ns)
        return false;
    b->next_health_ns = now + b->o.health_check_interval_ms * 1000000LL;
    return b->o.health_check(b->o.user) != 0;
}

/* Moves an open circuit whose period passed to half-open and reschedules.
 * Returns the event to announce() (NO_EVENT when nothing visible moved). */
static cb_event_kind due_half_open(cb_breaker *b, int64_t now)
{
    cb_event_kind ev = NO_EVENT;
    pthread_mutex_lock(&b->lock);
    if (b->core == CB_OPEN && now >= b->open_until_ns &&
        !atomic_load_explicit(&b->shut, memory_order_relaxed))
        ev = set_state(b, CB_HALF_OPEN, now, 0);
    cb__recompute_next_due(b);
    pthread_mutex_unlock(&b->lock);
    return ev;
}

/* Opens the circuit after a failed health check (opossum's open()). */
static void health_check_failed(cb_breaker *b, int64_t now)
{
    cb__emit(b, CB_EV_HEALTH_CHECK_FAILED, 0, CB_EFAILED, 0);
    cb_event_kind ev = NO_EVENT;
    pthread_mutex_lock(&b->lock);
    if (b->core != CB_OPEN && !overridden(b))
        ev = set_state(b, CB_OPEN, now, NEXT_PERIOD);
    pthread_mutex_unlock(&b->lock);
    announce(b, ev);
}

/* Does what is due at now: rotation (+ snapshot), half-open, health check.
 * With wait false it gives way when another thread is ticking. */
void cb__tick_due(cb_breaker *b, int64_t now, bool wait)
{
    if (in_tick)
        return;
    if (wait)
        pthread_mutex_lock(&b->tick_lock);
    else if (pthread_mutex_trylock(&b->tick_lock) != 0)
        return;
    in_tick = true;
    bool rotated = cb__window_rotate(&b->win, now);
    bool hc_failed = run_health_check(b, now);
    cb_event_kind half = due_half_open(b, now);
    in_tick = false;
    pthread_mutex_unlock(&b->tick_lock);
    announce(b, half);
    if (hc_failed)
        health_check_failed(b, now);
    if (rotated)
        emit_with_stats(b, CB_EV_SNAPSHOT);
}

/* Runs what is due now. Returns CB_OK (CB_EINVAL for NULL). */
int cb_tick(cb_breaker *b)
{
    if (!b)
        return CB_EINVAL;
    if (atomic_load_explicit(&b->shut, memory_order_acquire))
        return CB_OK;
    cb__tick_due(b, cb__now(b), true);
    return CB_OK;
}

/* ---- outcomes ------------------------------------------------------------ */

/* Opens a closed circuit when the window's error (or slow) rate says so. */
static void check_open(cb_breaker *b, int64_t now)
{
    if (b->warm_up && now < b->warm_until_ns)
        return;
    uint64_t win[C_NCOUNTERS], total[C_NCOUNTERS];
    cb__window_raw(&b->win, now, win, total);
    cb_counts c;
    cb__raw_to_counts(win, &c);
    uint64_t vol = (uint64_t)atomic_load_explicit(&b->volume_threshold, memory_order_relaxed);
    int threshold = atomic_load_explicit(&b->error_threshold, memory_order_relaxed);
    uint64_t completed = win[C_SUCCESSES] + win[C_FAILED] + win[C_TIMEOUTS];
    /* failures with no fire left in the window (the calls started before it):
     * an infinite error rate, which opens as in opossum (failures / 0) */
    bool trip = c.fires >= vol && c.failures > 0 &&
                (c.fires == 0 ||
                 (double)c.failures / (double)c.fires * 100.0 > threshold);
    if (b->slow_ns && completed >= vol && completed > 0 &&
        (double)c.slow_calls / (double)completed * 100.0 > b->o.slow_call_rate_threshold)
        trip = true;
    if (!trip)
        return;
    cb_event_kind ev = NO_EVENT;
    pthread_mutex_lock(&b->lock);
    if (b->core == CB_CLOSED && !overridden(b))
        ev = set_state(b, CB_OPEN, now, NEXT_PERIOD);
    pthread_mutex_unlock(&b->lock);
    announce(b, ev);
}

static void after_success(cb_breaker *b, int kind, uint64_t gen, bool slow, int64_t now)
{
    if (kind == ADMIT_TRIAL) {
        cb_event_kind ev = NO_EVENT;
        pthread_mutex_lock(&b->lock);
        b->trials_in_flight--;
        if (gen == b->generation && b->core == CB_HALF_OPEN &&
            ++b->ho_successes >= b->o.half_open_success_threshold)
            ev = set_state(b, CB_CLOSED, now, 0);
        pthread_mutex_unlock(&b->lock);
        announce(b, ev);
    } else if (kind == ADMIT_NORMAL && slow) {
        check_open(b, now);
    }
}

static void after_failure(cb_breaker *b, int kind, uint64_t gen, int64_t now)
{
    if (kind == ADMIT_TRIAL) {
        cb_event_kind ev = NO_EVENT;
        pthread_mutex_lock(&b->lock);
        b->trials_in_flight--;
        if (gen == b->generation && b->core == CB_HALF_OPEN)
            ev = set_state(b, CB_OPEN, now, NEXT_PERIOD);
        pthread_mutex_unlock(&b->lock);
        announce(b, ev);
    } else if (kind == ADMIT_NORMAL) {
        check_open(b, now);
    }
}

/* Runs the fallback for reason, if one is set. */
static void run_fallback(cb_breaker *b, void *arg, cb_result *res, int reason, int action_rc)
{
    if (!b->o.fallback)
        return;
    void *value = NULL;
    int frc = b->o.fallback(arg, reason, reason == CB_EFAILED ? action_rc : 0, &value, b->o.user);
    cb__count(b, C_FALLBACKS, 1);
    if (frc != 0) {
        cb__count(b, C_FALLBACK_FAILURES, 1);
    } else {
        res->fallback = true;
        res->value = value;
    }
    cb__emit(b, CB_EV_FALLBACK, 0, reason, action_rc);
}

static int reject(cb_breaker *b, void *arg, cb_result *res)
{
    cb__count(b, C_REJECTS, 1);
    cb__emit(b, CB_EV_REJECT, 0, CB_EOPEN, 0);
    run_fallback(b, arg, res, CB_EOPEN, 0);
    return CB_EOPEN;
}

static int semaphore_locked(cb_breaker *b, void *arg, cb_result *res, int kind, uint64_t gen,
                            int64_t now)
{
    cb__count(b, C_SEMAPHORE, 1);
    cb__emit(b, CB_EV_SEMAPHORE_LOCKED, 0, CB_ESEMLOCKED, 0);
    cb__emit(b, CB_EV_FAILURE, 0, CB_ESEMLOCKED, 0);
    after_failure(b, kind, gen, now);
    run_fallback(b, arg, res, CB_ESEMLOCKED, 0);
    return CB_ESEMLOCKED;
}

typedef struct outcome {
    int rc;
    void *result;
    bool timed_out;
    int64_t start, end;
} outcome;

/* Counts a finished call, moves the state machine, runs the fallback. */
static int finish(cb_breaker *b, void *arg, cb_result *res, int kind, uint64_t gen,
                  const outcome *oc)
{
    int64_t lat = oc->end - oc->start;
    /* a timeout's latency is the timeout, as in pool mode and opossum; in
     * trust mode the call is counted when it returns, which may be later */
    if (CB__UNLIKELY(oc->timed_out) && b->timeout_ns && lat > b->timeout_ns)
        lat = b->timeout_ns;
    double lat_ms = (double)lat / 1e6;
    bool slow = b->slow_ns && lat >= b->slow_ns;
    res->latency_ms = lat_ms;
    if (CB__LIKELY(!oc->timed_out && oc->rc == 0)) {
        cb__count_completion(b, C_SUCCESSES, lat, slow);
        res->value = oc->result;
        cb__emit(b, CB_EV_SUCCESS, lat_ms, 0, 0);
        if (CB__UNLIKELY(kind != ADMIT_NORMAL || slow))
            after_success(b, kind, gen, slow, oc->end);
        return CB_OK;
    }
    if (oc->timed_out) {
        cb__count_completion(b, C_TIMEOUTS, lat, slow);
        cb__emit(b, CB_EV_TIMEOUT, lat_ms, CB_ETIMEDOUT, 0);
        cb__emit(b, CB_EV_FAILURE, lat_ms, CB_ETIMEDOUT, 0);
        after_failure(b, kind, gen, oc->end);
        run_fallback(b, arg, res, CB_ETIMEDOUT, 0);
        return CB_ETIMEDOUT;
    }
    res->action_rc = oc->rc;
    if (b->o.error_filter && b->o.error_filter(oc->rc, arg, b->o.user)) {
        cb__count_completion(b, C_SUCCESSES, lat, slow);
        cb__emit(b, CB_EV_SUCCESS, lat_ms, CB_EFAILED, oc->rc);
        after_success(b, kind, gen, slow, oc->end);
        return CB_EFAILED;
    }
    cb__count_completion(b, C_FAILED, lat, slow);
    cb__emit(b, CB_EV_FAILURE, lat_ms, CB_EFAILED, oc->rc);
    after_failure(b, kind, gen, oc->end);
    run_fallback(b, arg, res, CB_EFAILED, oc->rc);
    return CB_EFAILED;
}

/* Brings the window (and whatever else fell due) up to end, the moment a
 * call completed, so that its outcome is counted in end's bucket and judged
 * against the window as it stands at end. Only a call that ran past the
 * next due moment gets here. */
CB_COLD static void catch_up(cb_breaker *b, int64_t end)
{
    cb__tick_due(b, end, false);
    /* another thread may hold tick_lock: the rotation itself must not wait for it */
    cb__window_rotate(&b->win, end);
}

/* A disabled breaker protects nothing: the action runs on the caller's thread
 * with no deadline, no capacity slot and no fallback, and its outcome never
 * moves the state machine. The call is still counted (fire, success or
 * failure, latency), so the window shows the traffic once enabled again. */
CB_COLD static int run_disabled(cb_breaker *b, void *arg, cb_result *res, int64_t now)
{
    cb__count(b, C_STARTED, 1);
    cb_call call = {
        .arg = arg,
        .deadline_ns = INT64_MAX,
        .timeout_ms = 0,
        .cancelled = &b->cancel_all,
        .user = b->o.user,
    };
    void *result = NULL;
    int rc = b->o.action(&call, &result);
    int64_t end = cb__now(b);
    if (end >= atomic_load_explicit(&b->next_due_ns, memory_order_acquire))
        catch_up(b, end);
    int64_t lat = end - now;
    double lat_ms = (double)lat / 1e6;
    bool slow = b->slow_ns && lat >= b->slow_ns;
    res->latency_ms = lat_ms;
    if (rc == 0) {
        cb__count_completion(b, C_SUCCESSES, lat, slow);
        res->value = result;
        cb__emit(b, CB_EV_SUCCESS, lat_ms, 0, 0);
        return CB_OK;
    }
    res->action_rc = rc;
    bool filtered = b->o.error_filter && b->o.error_filter(rc, arg, b->o.user);
    cb__count_completion(b, filtered ? C_SUCCESSES : C_FAILED, lat, slow);
    cb__emit(b, filtered ? CB_EV_SUCCESS : CB_EV_FAILURE, lat_ms, CB_EFAILED, rc);
    return CB_EFAILED;
}

/* Runs the action of an admitted call and reports its outcome. */
static int run_admitted(cb_breaker *b, void *arg, cb_result *res, int64_t now, int kind,
                        uint64_t gen)
{
    int cap = b->o.capacity;
    if (cap > 0 && atomic_fetch_add_explicit(&b->sem_used, 1, memory_order_acq_rel) >= cap) {
        atomic_fetch_sub_explicit(&b->sem_used, 1, memory_order_acq_rel);
        return semaphore_locked(b, arg, res, kind, gen, now);
    }
    cb__count(b, C_STARTED, 1);
    cb_call call = {
        .arg = arg,
        .deadline_ns = b->timeout_ns ? now + b->timeout_ns : INT64_MAX,
        .timeout_ms = b->o.timeout_ms,
        .cancelled = &b->cancel_all,
        .user = b->o.user,
        .trial = kind == ADMIT_TRIAL,
    };
    outcome oc = { .start = now, .result = NULL };
    if (CB__UNLIKELY(b->pool)) {
        oc.timed_out = cb__pool_run(b->pool, &call, &oc.rc, &oc.result) == CB_ETIMEDOUT;
        oc.end = cb__now(b);
        if (oc.timed_out && b->timeout_ns && oc.end - now > b->timeout_ns)
            oc.end = now + b->timeout_ns;
    } else {
        oc.rc = b->o.action(&call, &oc.result);
        oc.end = cb__now(b);
        /* a call lasting exactly timeout_ms has reached its deadline: it timed
         * out (as in opossum, whose timer fires before the late answer) */
        if (CB__UNLIKELY(oc.end >= call.deadline_ns)) {
            oc.timed_out = true;
            if (b->o.on_late)
                b->o.on_late(arg, oc.rc, oc.result, b->o.user);
            oc.result = NULL;
        }
    }
    if (cap > 0)
        atomic_fetch_sub_explicit(&b->sem_used, 1, memory_order_acq_rel);
    /* next_due_ns is the earliest moment something is due (a rotation, the
     * open timer): a call that ends before it, as nearly every call does,
     * has nothing to catch up; one that ran past it rotates first */
    if (CB__UNLIKELY(oc.end >= atomic_load_explicit(&b->next_due_ns, memory_order_acquire)))
        catch_up(b, oc.end);
    return finish(b, arg, res, kind, gen, &oc);
}

/* Takes a half-open trial slot; returns false when this period's trials are
 * all taken, or when half_open_max_calls trials (some perhaps from an earlier
 * period, still running) are in flight: the protected service never sees more
 * than half_open_max_calls probes at once. */
CB_COLD static bool admit_trial(cb_breaker *b, uint64_t *gen)
{
    bool ok = false;
    pthread_mutex_lock(&b->lock);
    if (b->core == CB_HALF_OPEN && !overridden(b) &&
        b->ho_admitted < b->o.half_open_max_calls &&
        b->trials_in_flight < b->o.half_open_max_calls) {
        b->ho_admitted++;
        b->trials_in_flight++;
        *gen = b->generation;
        ok = true;
    }
    pthread_mutex_unlock(&b->lock);
    return ok;
}

/* Admits (or rejects) a call according to state st, then runs it. */
static int fire_admit(cb_breaker *b, void *arg, cb_result *res, int64_t now, int st)
{
    uint64_t gen = 0;
    switch (st) {
    case CB_CLOSED:
    case CB_FORCED_CLOSED:
        return run_admitted(b, arg, res, now, ADMIT_NORMAL, 0);
    case CB_DISABLED:
        return run_disabled(b, arg, res, now);
    case CB_HALF_OPEN:
        if (admit_trial(b, &gen))
            return run_admitted(b, arg, res, now, ADMIT_TRIAL, gen);
        return reject(b, arg, res);
    case CB_SHUTDOWN:
        return CB_ESHUTDOWN;
    default:
        return reject(b, arg, res);
    }
}

/* The cache and coalescing in front of admission (opossum's order). */
static int fire_keyed(cb_breaker *b, const char *key, void *arg, cb_result *res, int64_t now,
                      int st)
{
    if (b->cache) {
        if (cb__cache_get(b->cache, key, now, &res->value)) {
            cb__count(b, C_CACHE_HITS, 1);
            res->cached = true;
            cb__emit(b, CB_EV_CACHE_HIT, 0, 0, 0);
            return CB_OK;
        }
        cb__count(b, C_CACHE_MISSES, 1);
        cb__emit(b, CB_EV_CACHE_MISS, 0, 0, 0);
    }
    cb__shared_call *sc = NULL;
    if (b->coalescer) {
        bool leader = true;
        sc = cb__coalesce_join(b->coalescer, key, now, &leader);
        if (sc && !leader) {
            cb__count(b, C_COALESCE_HITS, 1);
            cb__emit(b, CB_EV_COALESCE_HIT, 0, 0, 0);
            return cb__coalesce_wait(b->coalescer, sc, res);
        }
        cb__count(b, C_COALESCE_MISSES, 1);
        cb__emit(b, CB_EV_COALESCE_MISS, 0, 0, 0);
    }
    int rc = fire_admit(b, arg, res, now, st);
    if (b->cache && rc == CB_OK)
        cb__cache_put(b->cache, key, res->value, cb__now(b));
    if (sc)
        cb__coalesce_publish(b->coalescer, sc, rc, res, cb__now(b));
    return rc;
}

/* Fires b with a key for the cache and coalescing. See cb.h. */
int cb_fire_key(cb_breaker *b, const char *key, void *arg, cb_result *res)
{
    cb_result local;
    if (!res)
        res = &local;
    memset(res, 0, sizeof *res);
    if (CB__UNLIKELY(!b))
        return CB_EINVAL;
    int st = atomic_load_explicit(&b->state, memory_order_acquire);
    if (CB__UNLIKELY(st == CB_SHUTDOWN))
        return CB_ESHUTDOWN;
    int64_t now = cb__now(b);
    if (CB__UNLIKELY(now >= atomic_load_explicit(&b->next_due_ns, memory_order_acquire))) {
        cb__tick_due(b, now, false);
        /* the rotation is what a call needs up to date; when another thread
         * holds tick_lock, rotate here rather than wait */
        cb__window_rotate(&b->win, now);
        st = atomic_load_explicit(&b->state, memory_order_acquire);
        if (st == CB_SHUTDOWN)
            return CB_ESHUTDOWN;
    }
    cb__emit(b, CB_EV_FIRE, 0, 0, 0);
    if (CB__UNLIKELY(key && st != CB_DISABLED && (b->cache || b->coalescer)))
        return fire_keyed(b, key, arg, res, now, st);
    return fire_admit(b, arg, res, now, st);
}

/* Fires b with arg. See cb.h. */
int cb_fire(cb_breaker *b, void *arg, cb_result *res)
{
    return cb_fire_key(b, NULL, arg, res);
}

/* ---- control ------------------------------------------------------------- */

/* Opens the circuit by hand and starts the reset timer. */
int cb_open(cb_breaker *b)
{
    if (!b)
        return CB_EINVAL;
    if (atomic_load_explicit(&b->shut, memory_order_acquire))
        return CB_ESHUTDOWN;
    int64_t now = cb__now(b);
    /* an open period that is over but not yet acted on (no ticker) is
     * half-open: opening it again restarts its timer */
    if (now >= atomic_load_explicit(&b->next_due_ns, memory_order_acquire))
        cb__tick_due(b, now, true);
    pthread_mutex_lock(&b->lock);
    cb_event_kind ev = set_state(b, CB_OPEN, now, NEXT_PERIOD);
    pthread_mutex_unlock(&b->lock);
    announce(b, ev);
    return CB_OK;
}

/* Closes the circuit by hand and resets the back-off. */
int cb_close(cb_breaker *b)
{
    if (!b)
        return CB_EINVAL;
    if (atomic_load_explicit(&b->shut, memory_order_acquire))
        return CB_ESHUTDOWN;
    pthread_mutex_lock(&b->lock);
    b->backoff_step = 0; /* also when closed already (an imported back-off) */
    cb_event_kind ev = set_state(b, CB_CLOSED, 0, 0); /* closing reads no time */
    cb__recompute_next_due(b);
    pthread_mutex_unlock(&b->lock);
    announce(b, ev);
    return CB_OK;
}

/* Holds the circuit open or closed, or releases it to closed. */
int cb_force(cb_breaker *b, cb_force_mode mode)
{
    if (!b || (mode != CB_FORCE_NONE && mode != CB_FORCE_OPEN && mode != CB_FORCE_CLOSED))
        return CB_EINVAL;
    if (atomic_load_explicit(&b->shut, memory_order_acquire))
        return CB_ESHUTDOWN;
    pthread_mutex_lock(&b->lock);
    cb_state before = visible_state(b);
    b->force = mode;
    if (mode == CB_FORCE_NONE)
        (void)set_state(b, CB_CLOSED, 0, 0); /* announced below, as the override's end */
    publish_state(b);
    cb__recompute_next_due(b);
    cb_state after = visible_state(b);
    pthread_mutex_unlock(&b->lock);
    /* forcing is an override, not a transition: listeners hear open or close
     * when what callers see changed */
    announce(b, before == after ? NO_EVENT : mode == CB_FORCE_OPEN ? CB_EV_OPEN : CB_EV_CLOSE);
    return CB_OK;
}

/* Copies the tuning b runs with into t. See cb.h. */
int cb_get_tuning(cb_breaker *b, cb_tuning *t)
{
    if (!b || !t)
        return CB_EINVAL;
    pthread_mutex_lock(&b->lock);
    *t = b->tune;
    pthread_mutex_unlock(&b->lock);
    return CB_OK;
}

/* Replaces b's tuning with t, under b->lock as every other control. See cb.h. */
int cb_set_tuning(cb_breaker *b, const cb_tuning *t)
{
    if (!b || cb__tuning_validate(t) != CB_OK)
        return CB_EINVAL;
    if (atomic_load_explicit(&b->shut, memory_order_acquire))
        return CB_ESHUTDOWN;
    pthread_mutex_lock(&b->lock);
    b->tune = *t;
    atomic_store_explicit(&b->volume_threshold, t->volume_threshold, memory_order_relaxed);
    atomic_store_explicit(&b->error_threshold, t->error_threshold_percentage, memory_order_relaxed);
    pthread_mutex_unlock(&b->lock);
    return CB_OK;
}

/* Enables or disables b. */
int cb_enable(cb_breaker *b, bool enabled)
{
    if (!b)
        return CB_EINVAL;
    if (atomic_load_explicit(&b->shut, memory_order_acquire))
        return CB_ESHUTDOWN;
    pthread_mutex_lock(&b->lock);
    b->disabled = !enabled;
    publish_state(b);
    pthread_mutex_unlock(&b->lock);
    return CB_OK;
}

/* Empties the result cache (and the coalescing table). */
int cb_cache_clear(cb_breaker *b)
{
    if (!b)
        return CB_EINVAL;
    if (b->cache)
        cb__cache_flush(b->cache);
    if (b->coalescer)
        cb__coalescer_flush(b->coalescer);
    return CB_OK;
}

/* ---- introspection ------------------------------------------------------- */

/* The visible state; CB_SHUTDOWN for NULL. */
cb_state cb_get_state(cb_breaker *b)
{
    if (!b)
        return CB_SHUTDOWN;
    return (cb_state)atomic_load_explicit(&b->state, memory_order_acquire);
}

/* The breaker's name; NULL for NULL. */
const char *cb_name(const cb_breaker *b)
{
    return b ? b->name : NULL;
}

/* The options the breaker runs with; NULL for NULL. */
const cb_options *cb_get_options(const cb_breaker *b)
{
    return b ? &b->o : NULL;
}

/* Fills st with a snapshot of b's state and statistics. */
int cb_get_stats(cb_breaker *b, cb_stats *st)
{
    if (!b || !st)
        return CB_EINVAL;
    memset(st, 0, sizeof *st);
    uint64_t win[C_NCOUNTERS], total[C_NCOUNTERS];
    int64_t now = cb__now(b);
    cb__window_raw(&b->win, now, win, total);
    cb__raw_to_counts(win, &st->window);
    cb__raw_to_counts(total, &st->total);
    uint64_t completed = win[C_SUCCESSES] + win[C_FAILED] + win[C_TIMEOUTS];
    /* Failures are counted when a call ends, fires when it starts: a call
     * that started before the window and failed inside it is a failure
     * without its fire, and failures / fires then passes 100 (103.7% was
     * seen under a 100% error fault). So the share is taken over the calls
     * whose outcome is in the window: those that ended (successes and
     * failures, semaphore refusals included) and those answered at once
     * (rejects, cache and coalesce hits). With no call in flight at either
     * edge of the window this is failures / fires, as in opossum. */
    const cb_counts *w = &st->window;
    uint64_t decided = w->successes + w->failures + w->rejects + w->cache_hits + w->coalesce_hits;
    st->error_percentage = decided ? (double)w->failures / (double)decided * 100.0 : 0;
    st->slow_percentage = completed ? (double)st->window.slow_calls / (double)completed * 100.0 : 0;
    cb__window_latency(&b->win, now, b->o.rolling_percentiles_enabled, &st->latency_mean_ms,
                       st->percentiles_ms);
    pthread_mutex_lock(&b->lock);
    st->state = visible_state(b);
    st->open_until_ns = b->core == CB_OPEN ? b->open_until_ns : 0;
    st->current_reset_timeout_ms = b->current_reset_ns / 1000000LL;
    pthread_mutex_unlock(&b->lock);
    st->in_flight = cb__in_flight(&b->win);
    return CB_OK;
}
