/* test_regressions.c -- behaviours pinned after the model-based test
 * (tests/lib/model) compared the breaker with an executable model of
 * opossum's semantics: calls longer than a bucket, the disabled breaker, and
 * the three places where the arithmetic had silently differed from opossum.
 * Each test replays one minimal scenario on the manual clock, no ticker.
 */
#include "helpers.h"

/* A window of 1000 ms in 10 buckets, a long timeout, no ticker: every
 * rotation happens lazily inside cb_fire(). */
static fixture *lazy_fixture(void)
{
    fixture *f = fixture_new();
    f->o.rolling_count_timeout_ms = 1000;
    f->o.rolling_count_buckets = 10;
    f->o.timeout_ms = 3000;
    return f;
}

/* A success lasting 1900 ms: its fire left the window, its success is in it. */
static void long_call_is_counted_in_the_bucket_where_it_ends(void **state)
{
    (void)state;
    fixture *f = lazy_fixture();
    fixture_start(f);
    step s = { 0, 1900, NULL };
    assert_int_equal(fire_step(f, &s), CB_OK);
    cb_stats st = stats_of(f);
    assert_int_equal(st.window.successes, 1);
    assert_int_equal(st.window.fires, 0);
    assert_int_equal(st.total.fires, 1);
    fixture_free(f);
}

/* ok, ok, fail, wait 500, fail lasting 600 ms: at the end of the last call
 * the first three are out of the window, which holds one fire and one
 * failure: 100 % > 50 %, the circuit opens (it did not when the call was
 * judged against the window as it stood at its start). */
static void long_failure_is_judged_against_the_window_at_its_end(void **state)
{
    (void)state;
    fixture *f = lazy_fixture();
    fixture_start(f);
    fire_n(f, &OK_STEP, 2, CB_OK);
    assert_int_equal(fire_step(f, &FAIL_STEP), CB_EFAILED);
    cb_manual_clock_advance_ms(f->mc, 500);
    step long_fail = { 7, 600, NULL };
    assert_int_equal(fire_step(f, &long_fail), CB_EFAILED);
    assert_int_equal(cb_get_state(f->b), CB_OPEN);
    fixture_free(f);
}

/* ok, fail, fail, wait 500, fail lasting 600 ms with volume_threshold 4: at
 * the end the window holds one fire, below the volume, so the circuit stays
 * closed (judged against the window as it stood at the start, four fires and
 * three failures, it opened). */
static void long_failure_below_the_volume_at_its_end_does_not_open(void **state)
{
    (void)state;
    fixture *f = lazy_fixture();
    f->o.volume_threshold = 4;
    fixture_start(f);
    assert_int_equal(fire_step(f, &OK_STEP), CB_OK);
    fire_n(f, &FAIL_STEP, 2, CB_EFAILED);
    cb_manual_clock_advance_ms(f->mc, 500);
    step long_fail = { 7, 600, NULL };
    assert_int_equal(fire_step(f, &long_fail), CB_EFAILED);
    assert_int_equal(cb_get_state(f->b), CB_CLOSED);
    cb_stats st = stats_of(f);
    assert_int_equal(st.window.fires, 1);
    assert_int_equal(st.window.failures, 1);
    fixture_free(f);
}

/* A failure whose fire has left the window: failures / 0 fires is an
 * infinite error rate, which opens the circuit, as in opossum. */
static void failure_with_no_fire_left_in_the_window_opens(void **state)
{
    (void)state;
    fixture *f = lazy_fixture();
    f->o.timeout_ms = 0;
    fixture_start(f);
    step long_fail = { 7, 1500, NULL };
    assert_int_equal(fire_step(f, &long_fail), CB_EFAILED);
    cb_stats st = stats_of(f);
    assert_int_equal(st.window.fires, 0);
    assert_int_equal(st.window.failures, 1);
    assert_int_equal(st.state, CB_OPEN);
    fixture_free(f);
}

/* Reading the stats of a breaker nobody ticks shows the window as of now. */
static void stats_read_without_a_tick_show_the_window_as_of_now(void **state)
{
    (void)state;
    fixture *f = lazy_fixture();
    fixture_start(f);
    fire_n(f, &FAIL_STEP, 1, CB_EFAILED);
    cb_manual_clock_advance_ms(f->mc, 1000);
    cb_stats st = stats_of(f);
    assert_int_equal(st.window.fires, 0);
    assert_int_equal(st.window.failures, 0);
    assert_true(st.latency_mean_ms == 0);
    assert_int_equal(st.total.failures, 1);
    fixture_free(f);
}

/* ---- the disabled breaker protects nothing ------------------------------ */

static int nested_fires, nested_rc;
static int64_t nested_deadline;

/* Lasts 500 ms, fires the breaker once more from inside, then fails. */
static int nesting_failing_action(const cb_call *call, void **result)
{
    fixture *f = call->user;
    (void)result;
    nested_deadline = call->deadline_ns;
    cb_manual_clock_advance_ms(f->mc, 500);
    if (nested_fires++ == 0)
        nested_rc = cb_fire(f->b, NULL, NULL);
    return 7;
}

static void disabled_breaker_runs_the_action_without_fallback_capacity_or_timeout(void **state)
{
    (void)state;
    fixture *f = fixture_new();
    f->o.action = nesting_failing_action;
    f->o.fallback = fallback_value;
    f->o.capacity = 1;
    f->o.timeout_ms = 100;
    f->o.enabled = false;
    fixture_start(f);
    nested_fires = 0;
    nested_rc = 0;
    cb_result r;
    assert_int_equal(cb_fire(f->b, NULL, &r), CB_EFAILED);
    assert_int_equal(nested_rc, CB_EFAILED);     /* capacity 1, yet both ran */
    assert_int_equal(nested_fires, 2);
    assert_int_equal(nested_deadline, INT64_MAX); /* no deadline: 1000 ms is no timeout */
    assert_false(r.fallback);
    assert_int_equal(f->fallbacks, 0);
    assert_int_equal(r.action_rc, 7);
    cb_stats st = stats_of(f);
    assert_int_equal(st.state, CB_DISABLED);
    assert_int_equal(st.window.fires, 2);        /* stats still count */
    assert_int_equal(st.window.failures, 2);
    assert_int_equal(st.window.timeouts, 0);
    assert_int_equal(st.window.semaphore_rejections, 0);
    assert_int_equal(st.window.fallbacks, 0);
    fixture_free(f);
}

/* ---- differences from opossum, pinned ----------------------------------- */

/* One latency sample per timed-out call (opossum records two: one at its
 * timeout, one with the failure), and the timeout's latency is timeout_ms. */
static void timeout_records_one_latency_sample_of_timeout_ms(void **state)
{
    (void)state;
    fixture *f = fixture_new();
    f->o.timeout_ms = 20;
    fixture_start(f);
    step fast = { 0, 10, NULL }, slow = { 0, 50, NULL };
    assert_int_equal(fire_step(f, &fast), CB_OK);
    cb_result r;
    assert_int_equal(cb_fire(f->b, &slow, &r), CB_ETIMEDOUT);
    assert_true(r.latency_ms == 20.0);
    cb_stats st = stats_of(f);
    assert_true(st.latency_mean_ms == 15.0); /* (10 + 20) / 2; opossum: (10 + 20 + 20) / 3 */
    assert_true(st.percentiles_ms[CB_PERCENTILES - 1] == 20.0);
    fixture_free(f);
}

static int sem_inner_rc;

/* Lasts 10 ms and, the first time, fires the breaker from inside. */
static int nesting_ok_action(const cb_call *call, void **result)
{
    fixture *f = call->user;
    (void)result;
    cb_manual_clock_advance_ms(f->mc, 10);
    if (nested_fires++ == 0)
        sem_inner_rc = cb_fire(f->b, NULL, NULL);
    return 0;
}

/* A capacity rejection records no latency sample (opossum records 0 ms). */
static void capacity_rejection_records_no_latency_sample(void **state)
{
    (void)state;
    fixture *f = fixture_new();
    f->o.action = nesting_ok_action;
    f->o.capacity = 1;
    fixture_start(f);
    nested_fires = 0;
    assert_int_equal(cb_fire(f->b, NULL, NULL), CB_OK);
    assert_int_equal(sem_inner_rc, CB_ESEMLOCKED);
    cb_stats st = stats_of(f);
    assert_int_equal(st.window.semaphore_rejections, 1);
    assert_true(st.latency_mean_ms == 10.0);  /* opossum: (10 + 0) / 2 */
    assert_true(st.percentiles_ms[0] == 10.0);
    fixture_free(f);
}

/* A call lasting exactly timeout_ms times out, as in opossum. */
static void call_lasting_exactly_its_timeout_times_out(void **state)
{
    (void)state;
    fixture *f = fixture_new();
    f->o.timeout_ms = 100;
    fixture_start(f);
    step exact = { 0, 100, (void *)"late" }, under = { 0, 99, (void *)"ok" };
    cb_result r;
    assert_int_equal(cb_fire(f->b, &under, &r), CB_OK);
    assert_int_equal(cb_fire(f->b, &exact, &r), CB_ETIMEDOUT);
    assert_null(r.value);
    cb_stats st = stats_of(f);
    assert_int_equal(st.window.timeouts, 1);
    assert_int_equal(st.window.successes, 1);
    fixture_free(f);
}

const struct CMUnitTest regression_tests[] = {
    cmocka_unit_test(long_call_is_counted_in_the_bucket_where_it_ends),
    cmocka_unit_test(long_failure_is_judged_against_the_window_at_its_end),
    cmocka_unit_test(long_failure_below_the_volume_at_its_end_does_not_open),
    cmocka_unit_test(failure_with_no_fire_left_in_the_window_opens),
    cmocka_unit_test(stats_read_without_a_tick_show_the_window_as_of_now),
    cmocka_unit_test(disabled_breaker_runs_the_action_without_fallback_capacity_or_timeout),
    cmocka_unit_test(timeout_records_one_latency_sample_of_timeout_ms),
    cmocka_unit_test(capacity_rejection_records_no_latency_sample),
    cmocka_unit_test(call_lasting_exactly_its_timeout_times_out),
};
const size_t regression_tests_count = sizeof regression_tests / sizeof regression_tests[0];
