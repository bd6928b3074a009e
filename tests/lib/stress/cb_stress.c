/* cb_stress.c -- concurrency stress test of the breaker: 8 threads fire one
 * breaker with mixed outcomes (success, failure, filtered failure, timeout,
 * capacity) while a driver thread moves a manual clock, so the circuit opens,
 * goes half-open and closes over and over. Afterwards the counts must add up
 * exactly to what the threads observed, no more than half_open_max_calls
 * trials may ever have run at once, and the circuit must close again once
 * failures stop. A second phase fires a CB_TIMEOUT_POOL breaker in real time
 * and checks that calls return at their deadline and late results reach
 * on_late. Bounded in calls and in time; ends with "N passed, N failed".
 */
#include "cb.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define THREADS        8
#define CALLS          20000
#define MAX_TRIALS     3
#define TIME_LIMIT_S   120
#define TIMEOUT_MS     1000

enum outcome { O_OK, O_FAIL, O_FILTERED, O_TIMEOUT, O_NOUTCOMES };

static cb_manual_clock *clock_mc;
static cb_breaker *breaker;
static atomic_int trials_running, trials_max, trials_total;
static atomic_int half_opens, opens, closes, events_seen;
static atomic_bool stop_driver;
static double started_s;

typedef struct observed {
    uint64_t ok, filtered, failed, timed_out, rejected, locked, other, fallbacks;
} observed;

static observed per_thread[THREADS];

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int stress_action(const cb_call *call, void **result)
{
    int what = (int)(intptr_t)call->arg;
    if (call->trial) {
        int now = atomic_fetch_add(&trials_running, 1) + 1;
        int max = atomic_load(&trials_max);
        while (now > max && !atomic_compare_exchange_weak(&trials_max, &max, now)) {
        }
        atomic_fetch_add(&trials_total, 1);
    }
    if (what == O_TIMEOUT)
        cb_manual_clock_advance_ms(clock_mc, TIMEOUT_MS + 1);
    else
        sched_yield();
    if (call->trial)
        atomic_fetch_sub(&trials_running, 1);
    *result = NULL;
    return what == O_OK || what == O_TIMEOUT ? 0 : what == O_FAIL ? 5 : 6;
}

static bool filter_six(int rc, void *arg, void *user)
{
    (void)arg;
    (void)user;
    return rc == 6;
}

static int always_fallback(void *arg, int reason, int rc, void **result, void *user)
{
    (void)arg;
    (void)reason;
    (void)rc;
    (void)user;
    *result = (void *)"fallback";
    return 0;
}

static void count_events(cb_breaker *b, const cb_event *ev, void *ctx)
{
    (void)b;
    (void)ctx;
    atomic_fetch_add(&events_seen, 1);
    if (ev->kind == CB_EV_HALF_OPEN)
        atomic_fetch_add(&half_opens, 1);
    else if (ev->kind == CB_EV_OPEN)
        atomic_fetch_add(&opens, 1);
    else if (ev->kind == CB_EV_CLOSE)
        atomic_fetch_add(&closes, 1);
}

/* Failure-heavy and healthy stretches alternate so the state keeps moving. */
static int pick_outcome(unsigned *seed, int i)
{
    int r = (int)(rand_r(seed) % 100);
    bool stormy = (i / 1000) % 4 == 0;
    if (r < (stormy ? 55 : 5))
        return O_FAIL;
    if (r < (stormy ? 60 : 10))
        return O_FILTERED;
    if (r < (stormy ? 63 : 11))
        return O_TIMEOUT;
    return O_OK;
}

static void observe(observed *o, int rc, const cb_result *r)
{
    if (r->fallback)
        o->fallbacks++;
    switch (rc) {
    case CB_OK: o->ok++; break;
    case CB_EFAILED: if (r->fallback) o->failed++; else o->filtered++; break;
    case CB_ETIMEDOUT: o->timed_out++; break;
    case CB_EOPEN: o->rejected++; break;
    case CB_ESEMLOCKED: o->locked++; break;
    default: o->other++; break;
    }
}

static void *firing_thread(void *arg)
{
    int me = (int)(intptr_t)arg;
    unsigned seed = 1234u + (unsigned)me;
    for (int i = 0; i < CALLS && now_s() - started_s < TIME_LIMIT_S; i++) {
        cb_result r;
        cb_manual_clock_advance_ns(clock_mc, 200000); /* time passes with the traffic */
        int rc = cb_fire(breaker, (void *)(intptr_t)pick_outcome(&seed, i), &r);
        observe(&per_thread[me], rc, &r);
    }
    return NULL;
}

/* Moves time forward and reads the breaker the way a dashboard would. */
static void *driver_thread(void *arg)
{
    (void)arg;
    for (long i = 0; !atomic_load(&stop_driver) && now_s() - started_s < TIME_LIMIT_S; i++) {
        cb_manual_clock_advance_ms(clock_mc, 1);
        if (i % 200 == 0) {
            cb_stats st;
            cb_get_stats(breaker, &st);
            free(cb_export_json(breaker));
        }
        sched_yield();
    }
    return NULL;
}


/* ---- pool mode, real time ------------------------------------------------------ */

#define POOL_THREADS 4
#define POOL_CALLS   150
#define POOL_TIMEOUT_MS 3

static atomic_int late_results, pool_calls_late_returned;

static void sleep_us(long us)
{
    struct timespec ts = { 0, us * 1000 };
    nanosleep(&ts, NULL);
}

/* Sleeps 0..5 ms, ignoring its deadline half the time. */
static int pool_action(const cb_call *call, void **result)
{
    long us = (long)(intptr_t)call->arg;
    for (long slept = 0; slept < us; slept += 500) {
        if (us % 2 == 0 && __atomic_load_n(call->cancelled, __ATOMIC_ACQUIRE))
            break;
        sleep_us(500);
    }
    *result = NULL;
    return 0;
}

static void pool_late(void *arg, int rc, void *result, void *user)
{
    (void)arg;
    (void)rc;
    (void)result;
    (void)user;
    atomic_fetch_add(&late_results, 1);
}

static cb_breaker *pool_breaker;
static observed pool_seen[POOL_THREADS];

static void *pool_firing_thread(void *arg)
{
    int me = (int)(intptr_t)arg;
    unsigned seed = 99u + (unsigned)me;
    for (int i = 0; i < POOL_CALLS && now_s() - started_s < TIME_LIMIT_S; i++) {
        cb_result r;
        double t0 = now_s();
        long us = (long)(rand_r(&seed) % 5000);
        int rc = cb_fire(pool_breaker, (void *)(intptr_t)us, &r);
        if ((now_s() - t0) * 1000.0 > POOL_TIMEOUT_MS + 250)
            atomic_fetch_add(&pool_calls_late_returned, 1);
        observe(&pool_seen[me], rc, &r);
    }
    return NULL;
}

/* Fires a pool-mode breaker from several threads; returns the calls made. */
static uint64_t run_pool_phase(cb_stats *st)
{
    cb_options o;
    cb_options_init(&o);
    o.name = "stress-pool";
    o.action = pool_action;
    o.timeout_mode = CB_TIMEOUT_POOL;
    o.pool_threads = 3;
    o.timeout_ms = POOL_TIMEOUT_MS;
    o.on_late = pool_late;
    o.error_threshold_percentage = 100; /* never opens: every call reaches the pool */
    if (cb_create(&o, &pool_breaker) != CB_OK)
        exit(1);
    pthread_t t[POOL_THREADS];
    for (int i = 0; i < POOL_THREADS; i++)
        pthread_create(&t[i], NULL, pool_firing_thread, (void *)(intptr_t)i);
    for (int i = 0; i < POOL_THREADS; i++)
        pthread_join(t[i], NULL);
    cb_get_stats(pool_breaker, st);
    cb_destroy(pool_breaker); /* joins the workers: every late result has been delivered */
    uint64_t calls = 0;
    for (int i = 0; i < POOL_THREADS; i++)
        calls += pool_seen[i].ok + pool_seen[i].timed_out;
    return calls;
}

static int passed, failed;

static void check(bool ok, const char *what)
{
    printf("%s: %s\n", ok ? "PASS" : "FAIL", what);
    if (ok)
        passed++;
    else
        failed++;
}

static cb_breaker *make_breaker(void)
{
    cb_options o;
    cb_options_init(&o);
    o.name = "stress";
    o.action = stress_action;
    o.clock = cb_manual_clock_get(clock_mc);
    o.timeout_ms = TIMEOUT_MS;
    o.reset_timeout_ms = 30;
    o.reset_backoff_multiplier = 1.5;
    o.reset_timeout_max_ms = 200;
    o.reset_jitter = 0.1;
    o.rolling_count_timeout_ms = 100;
    o.rolling_count_buckets = 10;
    o.volume_threshold = 10;
    o.half_open_max_calls = MAX_TRIALS;
    o.half_open_success_threshold = 2;
    o.capacity = 6;
    o.error_filter = filter_six;
    o.fallback = always_fallback;
    cb_breaker *b = NULL;
    if (cb_create(&o, &b) != CB_OK) {
        fprintf(stderr, "stress: cb_create failed\n");
        exit(1);
    }
    cb_on(b, CB_EV_ALL, count_events, NULL);
    return b;
}

/* Once failures stop and time passes, the circuit must close again. */
static bool closes_again(void)
{
    for (int i = 0; i < 100 && cb_get_state(breaker) != CB_CLOSED; i++) {
        cb_manual_clock_advance_ms(clock_mc, 250);
        cb_fire(breaker, (void *)(intptr_t)O_OK, NULL);
    }
    return cb_get_state(breaker) == CB_CLOSED;
}

int main(void)
{
    clock_mc = cb_manual_clock_new(0);
    breaker = make_breaker();
    started_s = now_s();
    pthread_t threads[THREADS], driver;
    pthread_create(&driver, NULL, driver_thread, NULL);
    for (int i = 0; i < THREADS; i++)
        pthread_create(&threads[i], NULL, firing_thread, (void *)(intptr_t)i);
    for (int i = 0; i < THREADS; i++)
        pthread_join(threads[i], NULL);
    atomic_store(&stop_driver, true);
    pthread_join(driver, NULL);

    observed all = { 0 };
    for (int i = 0; i < THREADS; i++) {
        all.ok += per_thread[i].ok;
        all.filtered += per_thread[i].filtered;
        all.failed += per_thread[i].failed;
        all.timed_out += per_thread[i].timed_out;
        all.rejected += per_thread[i].rejected;
        all.locked += per_thread[i].locked;
        all.other += per_thread[i].other;
        all.fallbacks += per_thread[i].fallbacks;
    }
    uint64_t calls = all.ok + all.filtered + all.failed + all.timed_out + all.rejected +
                     all.locked + all.other;
    cb_stats st;
    cb_get_stats(breaker, &st);
    printf("calls %llu: ok %llu filtered %llu failed %llu timeout %llu rejected %llu locked %llu;"
           " opens %d half-opens %d closes %d; trials %d (max %d at once); %.1fs\n",
           (unsigned long long)calls, (unsigned long long)all.ok,
           (unsigned long long)all.filtered, (unsigned long long)all.failed,
           (unsigned long long)all.timed_out, (unsigned long long)all.rejected,
           (unsigned long long)all.locked, atomic_load(&opens), atomic_load(&half_opens),
           atomic_load(&closes), atomic_load(&trials_total), atomic_load(&trials_max),
           now_s() - started_s);

    check(calls == (uint64_t)THREADS * CALLS && all.other == 0, "every call finished within the time limit with a known code");
    check(st.total.fires == calls, "fires equal the calls the threads made");
    check(st.total.successes == all.ok + all.filtered, "successes equal ok + filtered errors");
    check(st.total.failures == all.failed + all.timed_out + all.locked,
          "failures equal failed + timed out + capacity-locked");
    check(st.total.timeouts == all.timed_out, "timeouts equal the timeouts observed");
    check(st.total.rejects == all.rejected, "rejects equal the rejections observed");
    check(st.total.semaphore_rejections == all.locked, "semaphore rejections equal the locked calls");
    check(st.total.fallbacks == all.fallbacks, "fallbacks equal the fallback results observed");
    check(st.total.fires == st.total.successes + st.total.failures + st.total.rejects,
          "fires == successes + failures + rejects");
    check(st.in_flight == 0, "nothing left in flight");
    check(atomic_load(&opens) > 3 && atomic_load(&half_opens) > 3 && atomic_load(&closes) > 0,
          "the circuit opened, went half-open and closed repeatedly");
    check(atomic_load(&trials_max) <= MAX_TRIALS, "no more than half_open_max_calls trials ran at once");
    check(atomic_load(&trials_total) <= MAX_TRIALS * atomic_load(&half_opens),
          "no half-open period admitted more than half_open_max_calls trials");
    check(closes_again(), "the circuit closes again once failures stop (never wedged open)");

    cb_destroy(breaker);
    cb_manual_clock_free(clock_mc);

    cb_stats pst;
    uint64_t pool_calls = run_pool_phase(&pst);
    uint64_t pool_timeouts = 0;
    for (int i = 0; i < POOL_THREADS; i++)
        pool_timeouts += pool_seen[i].timed_out;
    printf("pool: calls %llu, timeouts %llu, late results %d, calls returning >250 ms late %d\n",
           (unsigned long long)pool_calls, (unsigned long long)pool_timeouts,
           atomic_load(&late_results), atomic_load(&pool_calls_late_returned));
    check(pool_calls == POOL_THREADS * POOL_CALLS, "pool mode: every call returned ok or timed out");
    check(pst.total.timeouts == pool_timeouts && pst.total.successes == pool_calls - pool_timeouts,
          "pool mode: counts equal what the callers saw");
    check(pool_timeouts > 0 && (uint64_t)atomic_load(&late_results) <= pool_timeouts,
          "pool mode: late results go to on_late, never more than the timeouts");
    check(atomic_load(&pool_calls_late_returned) == 0,
          "pool mode: no call returned more than 250 ms (scheduling slack) after its deadline");
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
