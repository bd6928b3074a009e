/* test_error_filter.c -- opossum's test/error-filter-test.js: errors the filter says do not count. */
#include "harness.h"

static void start_filtered(op_fx *fx, bool with_filter)
{
    fx->opt.action = op_fail_with_code;
    fx->opt.error_threshold_percentage = 1;
    fx->opt.reset_timeout_ms = 10000;
    fx->opt.error_filter = with_filter ? op_filter_below_500 : NULL;
    op_start(fx);
}

/* opossum "Bypasses failure stats if errorFilter returns true": the call
 * counts as a success, the circuit stays closed, the error still comes back. */
static void filtered_error_counts_as_success_and_is_still_returned(void **state)
{
    op_fx *fx = *state;
    start_filtered(fx, true);
    cb_result res;
    assert_int_equal(op_fire(fx, 400, &res), CB_EFAILED);
    assert_int_equal(res.action_rc, 400);
    cb_stats st;
    op_stats(fx, &st);
    assert_int_equal(st.window.failures, 0);
    assert_int_equal(st.window.successes, 1);
    assert_int_equal(op_state(fx), CB_CLOSED);
    assert_int_equal(op_count(fx, CB_EV_SUCCESS), 1);
    assert_int_equal(op_count(fx, CB_EV_FAILURE), 0);
}

/* opossum "Increments failure stats if errorFilter returns false". */
static void unfiltered_error_counts_as_failure_and_opens(void **state)
{
    op_fx *fx = *state;
    start_filtered(fx, true);
    cb_result res;
    assert_int_equal(op_fire(fx, 500, &res), CB_EFAILED);
    assert_int_equal(res.action_rc, 500);
    cb_stats st;
    op_stats(fx, &st);
    assert_int_equal(st.window.failures, 1);
    assert_int_equal(op_state(fx), CB_OPEN);
}

/* opossum "Increments failure stats if no filter is provided". */
static void every_error_counts_without_a_filter(void **state)
{
    op_fx *fx = *state;
    start_filtered(fx, false);
    assert_int_equal(op_fire(fx, 400, NULL), CB_EFAILED);
    cb_stats st;
    op_stats(fx, &st);
    assert_int_equal(st.window.failures, 1);
    assert_int_equal(op_state(fx), CB_OPEN);
}

/* opossum "Provides invocation parameters to error filter". */
static void filter_receives_the_error_and_the_argument(void **state)
{
    op_fx *fx = *state;
    start_filtered(fx, true);
    assert_int_equal(op_fire(fx, 504, NULL), CB_EFAILED);
    assert_int_equal(fx->filter_calls, 1);
    assert_int_equal(fx->filter_rc, 504);
    assert_int_equal(OP_VAL(fx->filter_arg), 504);
}

/* opossum "A successful errorFilter should not invoke the fallback" and
 * "... should still return the error from function invocation". */
static void filtered_error_does_not_run_the_fallback(void **state)
{
    op_fx *fx = *state;
    fx->opt.fallback = op_fallback_echo;
    start_filtered(fx, true);
    cb_result res;
    assert_int_equal(op_fire(fx, 404, &res), CB_EFAILED);
    assert_int_equal(res.action_rc, 404);
    assert_false(res.fallback);
    assert_int_equal(fx->fallback_calls, 0);
    assert_int_equal(op_count(fx, CB_EV_FALLBACK), 0);
}

/* The filter is not consulted for successes. */
static void filter_is_not_called_for_successes(void **state)
{
    op_fx *fx = *state;
    fx->opt.error_filter = op_filter_below_500;
    op_start(fx);
    assert_int_equal(op_fire(fx, 1, NULL), CB_OK);
    assert_int_equal(fx->filter_calls, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        OP_TEST(filtered_error_counts_as_success_and_is_still_returned),
        OP_TEST(unfiltered_error_counts_as_failure_and_opens),
        OP_TEST(every_error_counts_without_a_filter),
        OP_TEST(filter_receives_the_error_and_the_argument),
        OP_TEST(filtered_error_does_not_run_the_fallback),
        OP_TEST(filter_is_not_called_for_successes),
    };
    return cmocka_run_group_tests_name("opossum error-filter-test.js", tests, NULL, NULL);
}
