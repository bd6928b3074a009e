/* test_percentiles.c -- opossum's test/test.js rolling-percentile tests and lib/status.js latency arithmetic. */
#include "harness.h"

static void assert_near(double got, double want)
{
    if (got < want - 1e-6 || got > want + 1e-6)
        fail_msg("got %.6f, want %.6f", got, want);
}

/* opossum "rolling percentile enabled option defaults to true": mean and
 * every percentile start at 0. */
static void percentiles_start_at_zero_when_enabled(void **state)
{
    op_fx *fx = *state;
    op_start(fx);
    assert_true(cb_get_options(fx->b)->rolling_percentiles_enabled);
    cb_stats st;
    op_stats(fx, &st);
    assert_near(st.latency_mean_ms, 0);
    for (int i = 0; i < CB_PERCENTILES; i++)
        assert_near(st.percentiles_ms[i], 0);
}

/* opossum "rolling percentile enabled option set to false": -1 everywhere. */
static void percentiles_are_minus_one_when_disabled(void **state)
{
    op_fx *fx = *state;
    fx->opt.rolling_percentiles_enabled = false;
    fx->opt.action = op_timed;
    op_start(fx);
    assert_int_equal(op_fire(fx, 5, NULL), CB_OK);
    cb_stats st;
    op_stats(fx, &st);
    assert_near(st.latency_mean_ms, -1);
    for (int i = 0; i < CB_PERCENTILES; i++)
        assert_near(st.percentiles_ms[i], -1);
}

/* The points reported are opossum's. */
static void percentile_points_are_opossums(void **state)
{
    (void)state;
    const double want[CB_PERCENTILES] = { 0.0, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 1.0 };
    for (int i = 0; i < CB_PERCENTILES; i++)
        assert_near(cb_percentile_points[i], want[i]);
}

/* opossum status.js: nearest rank, sorted[ceil(p * n) - 1], p = 0 the minimum,
 * and the mean; latencies 10, 1, 9, 2, ..., 5 (out of order) give 1..10. */
static void percentiles_use_nearest_rank_over_sorted_latencies(void **state)
{
    op_fx *fx = *state;
    fx->opt.action = op_timed;
    op_start(fx);
    const int order[10] = { 10, 1, 9, 2, 8, 3, 7, 4, 6, 5 };
    for (int i = 0; i < 10; i++)
        assert_int_equal(op_fire(fx, order[i], NULL), CB_OK);
    cb_stats st;
    op_stats(fx, &st);
    assert_near(st.latency_mean_ms, 5.5);
    const double want[CB_PERCENTILES] = { 1, 3, 5, 8, 9, 10, 10, 10, 10 };
    for (int i = 0; i < CB_PERCENTILES; i++)
        assert_near(st.percentiles_ms[i], want[i]);
}

/* opossum status.js increment(): successes, failures and timeouts carry a
 * latency; rejected calls do not. */
static void latencies_count_failures_and_timeouts_not_rejects(void **state)
{
    op_fx *fx = *state;
    fx->opt.action = op_timed_failing;
    fx->opt.error_threshold_percentage = 1;
    op_start(fx);
    assert_int_equal(op_fire(fx, 4, NULL), CB_EFAILED); /* opens */
    assert_int_equal(op_fire(fx, 100, NULL), CB_EOPEN); /* no latency */
    cb_stats st;
    op_stats(fx, &st);
    assert_near(st.latency_mean_ms, 4);
    assert_near(st.percentiles_ms[0], 4);
    assert_near(st.percentiles_ms[CB_PERCENTILES - 1], 4);
}

/* Latencies leave with their bucket. */
static void latencies_roll_out_with_the_window(void **state)
{
    op_fx *fx = *state;
    fx->opt.action = op_timed;
    op_start(fx);
    assert_int_equal(op_fire(fx, 100, NULL), CB_OK);
    op_advance(fx, 10000);
    assert_int_equal(op_fire(fx, 2, NULL), CB_OK);
    cb_stats st;
    op_stats(fx, &st);
    assert_near(st.latency_mean_ms, 2);
    assert_near(st.percentiles_ms[CB_PERCENTILES - 1], 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        OP_TEST(percentiles_start_at_zero_when_enabled),
        OP_TEST(percentiles_are_minus_one_when_disabled),
        OP_TEST(percentile_points_are_opossums),
        OP_TEST(percentiles_use_nearest_rank_over_sorted_latencies),
        OP_TEST(latencies_count_failures_and_timeouts_not_rejects),
        OP_TEST(latencies_roll_out_with_the_window),
    };
    return cmocka_run_group_tests_name("opossum test.js: percentiles", tests, NULL, NULL);
}
