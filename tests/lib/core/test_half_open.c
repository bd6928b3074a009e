/* test_half_open.c -- open -> half-open -> closed/open: lazy and ticker-driven
 * half-open, N trials with M successes, back-off with cap and jitter, slow
 * calls, and pool-mode timeouts that return at the deadline. */
#include "helpers.h"

#include <stdio.h>
#include <time.h>

static void open_now(fixture *f)
{
    fire_step(f, &FAIL_STEP);
    assert_int_equal(cb_get_state(f->b), CB_OPEN);
}

static void circuit_goes_half_open_lazily_at_next_fire_after_reset_timeout(void **state)
{
    (void)state;
    fixture *f = fixture_new();
    f->o.reset_timeout_ms = 5000;
    fixture_start(f);
    open_now(f);
    cb_manual_clock_advance_ms(f->mc, 4999);
    assert_int_equal(fire_step(f, &OK_STEP), CB_EOPEN);
    cb_manual_clock_advance_ms(f->mc, 1);
    assert_int_equal(cb_get_state(f->b), CB_OPEN); /* nobody looked yet: no ticker */
    assert_int_equal(fire_step(f, &OK_STEP), CB_OK);
    assert_int_equal(cb_get_state(f->b), CB_CLOSED);
    assert_int_equal(f->kinds[CB_EV_HALF_OPEN], 1);
    assert_int_equal(f->kinds[CB_EV_CLOSE], 1);
    fixture_free(f);
}

static void cb_tick_moves_open_to_half_open_without_a_call(void **state)
{
    (void)state;
    fixture *f = fixture_new();
    f->o.reset_timeout_ms = 5000;
    fixture_start(f);
    open_now(f);
    cb_manual_clock_advance_ms(f->mc, 5000);
    assert_int_equal(cb_tick(f->b), CB_OK);
    assert_int_equal(cb_get_state(f->b), CB_HALF_OPEN);
    fixture_free(f);
}

static void half_open_failure_reopens_and_restarts_the_timer(void **state)
{
    (void)state;
    fixture *f = fixture_new();
    f->o.reset_timeout_ms = 1000;
    fixture_start(f);
    open_now(f);
    cb_manual_clock_advance_ms(f->mc, 1000);
    assert_int_equal(fire_step(f, &FAIL_STEP), CB_EFAILED);
    assert_int_equal(cb_get_state(f->b), CB_OPEN);
    cb_manual_clock_advance_ms(f->mc, 999);
    assert_int_equal(fire_step(f, &OK_STEP), CB_EOPEN);
    cb_manual_clock_advance_ms(f->mc, 1);
    assert_int_equal(fire_step(f, &OK_STEP), CB_OK);
    assert_int_equal(cb_get_state(f->b), CB_CLOSED);
    assert_int_equal(f->kinds[CB_EV_OPEN], 2);
    fixture_free(f);
}

/* An action that fires its own breaker again while it runs, `depth` levels
 * deep, so several calls are in flight at once on one thread. */
typedef struct nest {
    fixture *f;
    int depth;
    int rcs[16];
    int n;
    int trial_rc; /* what each admitted call returns */
} nest;

static int nesting_action(const cb_call *call, void **result)
{
    (void)result;
    nest *n = call->arg;
    if (n->depth > 0) {
        n->depth--;
        int rc = cb_fire(n->f->b, n, NULL);
        n->rcs[n->n++] = rc;
    }
    return n->trial_rc;
}

static void half_open_admits_exactly_max_calls_trials(void **state)
{
    (void)state;
    fixture *f = fixture_new();
    f->o.action = nesting_action;
    f->o.half_open_max_calls = 3;
    f->o.half_open_success_threshold = 3;
    f->o.reset_timeout_ms = 100;
    fixture_start(f);
    cb_open(f->b);
    cb_manual_clock_advance_ms(f->mc, 100);
    nest n = { .f = f, .depth = 5, .trial_rc = 0 };
    assert_int_equal(cb_fire(f->b, &n, NULL), CB_OK);
    /* trials 1..3 in flight at once; the 4th call is refused; innermost first */
    assert_int_equal(n.n, 3);
    assert_int_equal(n.rcs[0], CB_EOPEN);
    assert_int_equal(n.rcs[1], CB_OK);
    assert_int_equal(n.rcs[2], CB_OK);
    assert_int_equal(cb_get_state(f->b), CB_CLOSED);
    cb_stats st = stats_of(f);
    assert_int_equal(st.window.rejects, 1);
    assert_int_equal(st.window.successes, 3);
    fixture_free(f);
}

/* A breaker whose circuit opened and whose 100 ms reset timeout just passed:
 * the next call is a half-open trial. */
static fixture *half_open_fixture(int max_calls, int success_threshold)
{
    fixture *f = fixture_new();
    f->o.half_open_max_calls = max_calls;
    f->o.half_open_success_threshold = success_threshold;
    f->o.reset_timeout_ms = 100;
    fixture_start(f);
    open_now(f);
    cb_manual_clock_advance_ms(f->mc, 100);
    return f;
}

static void half_open_closes_after_success_threshold_successes(void **state)
{
    (void)state;
    fixture *f = half_open_fixture(3, 2);
    assert_int_equal(fire_step(f, &OK_STEP), CB_OK);
    assert_int_equal(cb_get_state(f->b), CB_HALF_OPEN);
    assert_int_equal(fire_step(f, &OK_STEP), CB_OK);
    assert_int_equal(cb_get_state(f->b), CB_CLOSED);
    fixture_free(f);
}

static void half_open_failure_after_successes_reopens(void **state)
{
    (void)state;
    fixture *f = half_open_fixture(3, 3);
    fire_n(f, &OK_STEP, 2, CB_OK);
    assert_int_equal(cb_get_state(f->b), CB_HALF_OPEN);
    assert_int_equal(fire_step(f, &FAIL_STEP), CB_EFAILED);
    assert_int_equal(cb_get_state(f->b), CB_OPEN);
    fixture_free(f);
}

static int64_t open_period_ms(fixture *f)
{
    cb_stats st = stats_of(f);
    return st.current_reset_timeout_ms;
}

/* Reopens from half-open: waits out the period, fails the trial. */
static void reopen(fixture *f)
{
    cb_stats st = stats_of(f);
    cb_manual_clock_advance_ns(f->mc, st.open_until_ns - f->o.clock.now_ns(f->o.clock.ctx));
    assert_int_equal(fire_step(f, &FAIL_STEP), CB_EFAILED);
    assert_int_equal(cb_get_state(f->b), CB_OPEN);
}

static void backoff_multiplies_open_period_up_to_cap_and_resets_on_close(void **state)
{
    (void)state;
    fixture *f = fixture_new();
    f->o.reset_timeout_ms = 1000;
    f->o.reset_backoff_multiplier = 2.0;
    f->o.reset_timeout_max_ms = 5000;
    fixture_start(f);
    open_now(f);
    assert_int_equal(open_period_ms(f), 1000);
    int64_t want[] = { 2000, 4000, 5000, 5000 };
    for (int i = 0; i < 4; i++) {
        reopen(f);
        assert_int_equal(open_period_ms(f), want[i]);
    }
    cb_manual_clock_advance_ms(f->mc, 5000);
    assert_int_equal(fire_step(f, &OK_STEP), CB_OK);
    assert_int_equal(cb_get_state(f->b), CB_CLOSED);
    open_now(f);
    assert_int_equal(open_period_ms(f), 1000);
    fixture_free(f);
}

static cb_tuning tuning_of(fixture *f)
{
    cb_tuning t;
    assert_int_equal(cb_get_tuning(f->b, &t), CB_OK);
    return t;
}

static void tuning_backoff_set_while_running_doubles_each_open_period(void **state)
{
    (void)state;
    fixture *f = fixture_new();
    f->o.reset_timeout_ms = 1000;
    fixture_start(f);
    open_now(f);
    reopen(f);
    assert_int_equal(open_period_ms(f), 1000); /* no back-off: 1 s, 1 s */
    cb_tuning t = tuning_of(f);
    assert_true(t.reset_backoff_multiplier == 1.0);
    t.reset_backoff_multiplier = 2.0;
    t.reset_timeout_max_ms = 60000;
    assert_int_equal(cb_set_tuning(f->b, &t), CB_OK);
    cb_close(f->b);
    open_now(f);
    assert_int_equal(open_period_ms(f), 1000);
    int64_t want[] = { 2000, 4000, 8000 };
    for (int i = 0; i < 3; i++) {
        reopen(f);
        assert_int_equal(open_period_ms(f), want[i]);
    }
    t.reset_backoff_multiplier = 1.0; /* off again: the next period is the reset timeout */
    assert_int_equal(cb_set_tuning(f->b, &t), CB_OK);
    reopen(f);
    assert_int_equal(open_period_ms(f), 1000);
    fixture_free(f);
}

static void tuning_reset_timeout_counts_from_the_next_opening(void **state)
{
    (void)state;
    fixture *f = fixture_new();
    f->o.reset_timeout_ms = 1000;
    fixture_start(f);
    open_now(f);
    cb_tuning t = tuning_of(f);
    t.reset_timeout_ms = 3000;
    assert_int_equal(cb_set_tuning(f->b, &t), CB_OK);
    cb_manual_clock_advance_ms(f->mc, 1000); /* the period under way keeps its end */
    assert_int_equal(fire_step(f, &FAIL_STEP), CB_EFAILED);
    assert_int_equal(open_period_ms(f), 3000);
    cb_manual_clock_advance_ms(f->mc, 2999);
    assert_int_equal(fire_step(f, &OK_STEP), CB_EOPEN);
    cb_manual_clock_advance_ms(f->mc, 1);
    assert_int_equal(fire_step(f, &OK_STEP), CB_OK);
    assert_int_equal(cb_get_state(f->b), CB_CLOSED);
    fixture_free(f);
}

static void tuning_thresholds_apply_to_the_next_outcome(void **state)
{
    (void)state;
    fixture *f = fixture_new();
    fixture_start(f);
    cb_tuning t = tuning_of(f);
    t.volume_threshold = 3;
    t.error_threshold_percentage = 60;
    assert_int_equal(cb_set_tuning(f->b, &t), CB_OK);
    assert_int_equal(fire_step(f, &FAIL_STEP), CB_EFAILED);   /* 1 fire < volume 3 */
    assert_int_equal(fire_step(f, &OK_STEP), CB_OK);
    assert_int_equal(fire_step(f, &OK_STEP), CB_OK);
    assert_int_equal(fire_step(f, &FAIL_STEP), CB_EFAILED);   /* 2 of 4 = 50% <= 60% */
    assert_int_equal(cb_get_state(f->b), CB_CLOSED);
    assert_int_equal(fire_step(f, &FAIL_STEP), CB_EFAILED);   /* 3 of 5 = 60%: not above */
    assert_int_equal(cb_get_state(f->b), CB_CLOSED);
    assert_int_equal(fire_step(f, &FAIL_STEP), CB_EFAILED);   /* 4 of 6 = 67% > 60% */
    assert_int_equal(cb_get_state(f->b), CB_OPEN);
    fixture_free(f);
}

static void tuning_refuses_each_field_out_of_range_and_keeps_the_old(void **state)
{
    (void)state;
    fixture *f = fixture_new();
    fixture_start(f);
    cb_tuning good = tuning_of(f);
    cb_tuning bad[5];
    for (int i = 0; i < 5; i++)
        bad[i] = good;
    bad[0].reset_timeout_ms = -1;
    bad[1].reset_backoff_multiplier = 0.5;
    bad[2].reset_timeout_max_ms = -5;
    bad[3].volume_threshold = -1;
    bad[4].error_threshold_percentage = 101;
    for (int i = 0; i < 5; i++) {
        assert_int_equal(cb_set_tuning(f->b, &bad[i]), CB_EINVAL);
        cb_tuning now = tuning_of(f);
        assert_memory_equal(&now, &good, sizeof now);
    }
    assert_int_equal(cb_set_tuning(NULL, &good), CB_EINVAL);
    assert_int_equal(cb_set_tuning(f->b, NULL), CB_EINVAL);
    assert_int_equal(cb_get_tuning(f->b, NULL), CB_EINVAL);
    fixture_free(f);
}

/* Changes the tuning over and over while the main thread fires (TSan run). */
static void *retune(void *arg)
{
    cb_breaker *b = arg;
    cb_tuning t;
    cb_get_tuning(b, &t);
    for (int i = 0; i < 2000; i++) {
        t.volume_threshold = i % 5;
        t.reset_backoff_multiplier = 1.0 + (i % 3);
        cb_set_tuning(b, &t);
    }
    return NULL;
}

static void tuning_changes_race_free_with_calls_on_other_threads(void **state)
{
    (void)state;
    fixture *f = fixture_new();
    f->o.reset_timeout_ms = 0;
    fixture_start(f);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, retune, f->b), 0);
    for (int i = 0; i < 2000; i++)
        (void)fire_step(f, i % 2 ? &FAIL_STEP : &OK_STEP);
    pthread_join(th, NULL);
    fixture_free(f);
}

static void backoff_jitter_stays_within_bounds_and_varies(void **state)
{
    (void)state;
    fixture *f = fixture_new();
    f->o.reset_timeout_ms = 1000;
    f->o.reset_jitter = 0.2;
    f->o.seed = 42;
    fixture_start(f);
    int64_t lo = INT64_MAX, hi = 0;
    for (int i = 0; i < 50; i++) {
        cb_open(f->b);
        int64_t p = open_period_ms(f);
        assert_true(p >= 800 && p <= 1200);
        lo = p < lo ? p : lo;
        hi = p > hi ? p : hi;
        cb_close(f->b);
    }
    assert_true(hi - lo > 50);
    fixture_free(f);
}

static void slow_calls_open_circuit_when_slow_percentage_exceeds_threshold(void **state)
{
    (void)state;
    fixture *f = fixture_new();
    f->o.slow_call_duration_ms = 50;
    f->o.slow_call_rate_threshold = 50;
    f->o.timeout_ms = 0;
    fixture_start(f);
    step fast = { 0, 10, NULL }, slow = { 0, 50, NULL };
    assert_int_equal(fire_step(f, &fast), CB_OK);
    assert_int_equal(fire_step(f, &slow), CB_OK); /* 1/2 = 50%: not above */
    assert_int_equal(cb_get_state(f->b), CB_CLOSED);
    assert_int_equal(fire_step(f, &slow), CB_OK); /* 2/3 */
    assert_int_equal(cb_get_state(f->b), CB_OPEN);
    cb_stats st = stats_of(f);
    assert_int_equal(st.window.slow_calls, 2);
    assert_int_equal(st.window.failures, 0);
    assert_true(st.slow_percentage > 66.0 && st.slow_percentage < 67.0);
    fixture_free(f);
}

static void manual_clock_moves_only_when_advanced(void **state)
{
    (void)state;
    cb_manual_clock *mc = cb_manual_clock_new(5);
    cb_clock c = cb_manual_clock_get(mc);
    assert_int_equal(c.now_ns(c.ctx), 5);
    assert_int_equal(c.now_ns(c.ctx), 5);
    cb_manual_clock_advance_ns(mc, 10);
    cb_manual_clock_advance_ms(mc, 1);
    cb_manual_clock_advance_ms(mc, -3);
    assert_int_equal(c.now_ns(c.ctx), 1000015);
    cb_manual_clock_free(mc);
    cb_clock sys = cb_clock_system();
    int64_t a = sys.now_ns(sys.ctx), b = sys.now_ns(sys.ctx);
    assert_true(b >= a);
}

/* ---- real time, bounded ----------------------------------------------------- */

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t mono_ns_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* The system clock may read the TSC, but it must read as CLOCK_MONOTONIC
 * within the re-anchoring bound (1 ms) and never go backwards, here over a
 * bounded 30 ms of busy reads and again after sleeping past the bound. */
static void system_clock_tracks_clock_monotonic_within_a_millisecond(void **state)
{
    (void)state;
    const int64_t bound = 1000000 + 200000; /* re-anchor period + slack for the read itself */
    cb_clock sys = cb_clock_system();
    int64_t prev = 0, start = mono_ns_now();
    for (int round = 0; round < 2; round++) {
        for (long i = 0; i < 5000000 && mono_ns_now() - start < 30000000LL; i++) {
            int64_t a = mono_ns_now();
            int64_t c = sys.now_ns(sys.ctx);
            int64_t b = mono_ns_now();
            assert_true(c >= prev);
            assert_true(c >= a - bound && c <= b + bound);
            prev = c;
        }
        struct timespec nap = { 0, 5 * 1000000 }; /* past the bound: the next read re-anchors */
        nanosleep(&nap, NULL);
        start = mono_ns_now();
    }
}

typedef struct waiter {
    pthread_mutex_t mx;
    pthread_cond_t cv;
    int half_opens;
} waiter;

static void on_half_open(cb_breaker *b, const cb_event *ev, void *ctx)
{
    (void)b;
    (void)ev;
    waiter *w = ctx;
    pthread_mutex_lock(&w->mx);
    w->half_opens++;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mx);
}

static void ticker_moves_open_to_half_open_with_no_traffic(void **state)
{
    (void)state;
    fixture *f = fixture_new();
    f->o.reset_timeout_ms = 1000;
    f->o.ticker = true;
    f->o.ticker_interval_ms = 2;
    fixture_start(f);
    waiter w = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0 };
    assert_true(cb_on(f->b, CB_EV_MASK(CB_EV_HALF_OPEN), on_half_open, &w) > 0);
    cb_open(f->b);
    cb_manual_clock_advance_ms(f->mc, 1000); /* manual time passes; the ticker notices */
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 5;
    pthread_mutex_lock(&w.mx);
    while (w.half_opens == 0)
        if (pthread_cond_timedwait(&w.cv, &w.mx, &until) != 0)
            break;
    int seen = w.half_opens;
    pthread_mutex_unlock(&w.mx);
    assert_int_equal(seen, 1);
    assert_int_equal(cb_get_state(f->b), CB_HALF_OPEN);
    fixture_free(f);
}


typedef struct late_box {
    pthread_mutex_t mx;
    pthread_cond_t cv;
    int calls;
    int rc;
    void *result;
} late_box;

static late_box box = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, NULL };

static void pool_late(void *arg, int rc, void *result, void *user)
{
    (void)arg;
    (void)user;
    pthread_mutex_lock(&box.mx);
    box.calls++;
    box.rc = rc;
    box.result = result;
    pthread_cond_broadcast(&box.cv);
    pthread_mutex_unlock(&box.mx);
}

/* Ignores its deadline: busy for 300 ms of real time, whatever the flag says. */
static int stubborn_action(const cb_call *call, void **result)
{
    int64_t end = mono_ms() + (call->arg ? 300 : 0);
    while (mono_ms() < end) {
        struct timespec ts = { 0, 1000000 };
        nanosleep(&ts, NULL);
    }
    *result = (void *)"late result";
    return 0;
}


static void ticker_goes_half_open_on_time_not_at_the_next_bucket(void **state)
{
    (void)state;
    cb_options o;
    cb_options_init(&o);
    o.action = stubborn_action;
    o.reset_timeout_ms = 50; /* the bucket interval is 1000 ms */
    o.ticker = true;
    cb_breaker *b;
    assert_int_equal(cb_create(&o, &b), CB_OK);
    waiter w = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0 };
    assert_true(cb_on(b, CB_EV_MASK(CB_EV_HALF_OPEN), on_half_open, &w) > 0);
    int64_t t0 = mono_ms();
    cb_open(b);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 5;
    pthread_mutex_lock(&w.mx);
    while (w.half_opens == 0)
        if (pthread_cond_timedwait(&w.cv, &w.mx, &until) != 0)
            break;
    pthread_mutex_unlock(&w.mx);
    int64_t took = mono_ms() - t0;
    assert_int_equal(cb_get_state(b), CB_HALF_OPEN);
    if (!(took >= 45 && took < 500))
        fprintf(stderr, "half-open after %lld ms\n", (long long)took);
    assert_true(took >= 45 && took < 500);
    cb_destroy(b);
}

static void pool_mode_returns_at_the_deadline_and_hands_late_result_to_on_late(void **state)
{
    (void)state;
    cb_options o;
    cb_options_init(&o);
    o.action = stubborn_action;
    o.timeout_mode = CB_TIMEOUT_POOL;
    o.pool_threads = 2;
    o.timeout_ms = 50;
    o.on_late = pool_late;
    cb_breaker *b;
    assert_int_equal(cb_create(&o, &b), CB_OK);
    cb_result r;
    assert_int_equal(cb_fire(b, NULL, &r), CB_OK); /* quick call: on time */
    assert_string_equal((char *)r.value, "late result");
    int64_t t0 = mono_ms();
    assert_int_equal(cb_fire(b, (void *)1, &r), CB_ETIMEDOUT);
    int64_t took = mono_ms() - t0;
    assert_true(took >= 45 && took < 250);
    assert_true(r.latency_ms >= 49.0 && r.latency_ms <= 50.5);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 5;
    pthread_mutex_lock(&box.mx);
    while (box.calls == 0)
        if (pthread_cond_timedwait(&box.cv, &box.mx, &until) != 0)
            break;
    int calls = box.calls;
    pthread_mutex_unlock(&box.mx);
    assert_int_equal(calls, 1);
    assert_string_equal((char *)box.result, "late result");
    cb_stats st;
    cb_get_stats(b, &st);
    assert_int_equal(st.window.timeouts, 1);
    cb_destroy(b);
}

const struct CMUnitTest half_open_tests[] = {
    cmocka_unit_test(circuit_goes_half_open_lazily_at_next_fire_after_reset_timeout),
    cmocka_unit_test(cb_tick_moves_open_to_half_open_without_a_call),
    cmocka_unit_test(half_open_failure_reopens_and_restarts_the_timer),
    cmocka_unit_test(half_open_admits_exactly_max_calls_trials),
    cmocka_unit_test(half_open_closes_after_success_threshold_successes),
    cmocka_unit_test(half_open_failure_after_successes_reopens),
    cmocka_unit_test(backoff_multiplies_open_period_up_to_cap_and_resets_on_close),
    cmocka_unit_test(backoff_jitter_stays_within_bounds_and_varies),
    cmocka_unit_test(tuning_backoff_set_while_running_doubles_each_open_period),
    cmocka_unit_test(tuning_reset_timeout_counts_from_the_next_opening),
    cmocka_unit_test(tuning_thresholds_apply_to_the_next_outcome),
    cmocka_unit_test(tuning_refuses_each_field_out_of_range_and_keeps_the_old),
    cmocka_unit_test(tuning_changes_race_free_with_calls_on_other_threads),
    cmocka_unit_test(slow_calls_open_circuit_when_slow_percentage_exceeds_threshold),
    cmocka_unit_test(manual_clock_moves_only_when_advanced),
    cmocka_unit_test(system_clock_tracks_clock_monotonic_within_a_millisecond),
    cmocka_unit_test(ticker_moves_open_to_half_open_with_no_traffic),
    cmocka_unit_test(ticker_goes_half_open_on_time_not_at_the_next_bucket),
    cmocka_unit_test(pool_mode_returns_at_the_deadline_and_hands_late_result_to_on_late),
};
const size_t half_open_tests_count = sizeof half_open_tests / sizeof half_open_tests[0];
