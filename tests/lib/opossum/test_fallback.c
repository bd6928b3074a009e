/* test_fallback.c -- opossum's test/test.js, fallback part: when the fallback runs, what it receives, what it returns. */
#include "harness.h"

/* opossum "Executes fallback action, if one exists, when breaker is open". */
static void fallback_runs_when_the_circuit_is_open(void **state)
{
    op_fx *fx = *state;
    fx->opt.error_threshold_percentage = 1;
    fx->opt.fallback = op_fallback_echo;
    op_start(fx);
    assert_int_equal(op_fire(fx, -1, NULL), CB_EFAILED);
    assert_int_equal(op_state(fx), CB_OPEN);
    cb_result res;
    assert_int_equal(op_fire(fx, 100, &res), CB_EOPEN);
    assert_true(res.fallback);
    assert_int_equal(OP_VAL(res.value), 100);
    assert_int_equal(fx->fallback_reason, CB_EOPEN);
    assert_int_equal(fx->fallback_action_rc, 0);
    assert_int_equal(fx->action_calls, 1);
}

/* opossum "Passes error as last argument to the fallback function". */
static void fallback_receives_the_actions_error(void **state)
{
    op_fx *fx = *state;
    fx->opt.error_threshold_percentage = 1;
    fx->opt.fallback = op_fallback_echo;
    op_start(fx);
    cb_result res;
    assert_int_equal(op_fire(fx, -1, &res), CB_EFAILED);
    assert_int_equal(fx->fallback_calls, 1);
    assert_int_equal(fx->fallback_reason, CB_EFAILED);
    assert_int_equal(fx->fallback_action_rc, OP_FAIL_RC);
    assert_true(res.fallback);
    assert_int_equal(res.action_rc, OP_FAIL_RC);
}

/* opossum "Passes arguments to the fallback function". */
static void fallback_receives_the_callers_argument(void **state)
{
    op_fx *fx = *state;
    fx->opt.error_threshold_percentage = 1;
    fx->opt.fallback = op_fallback_echo;
    op_start(fx);
    cb_result res;
    assert_int_equal(op_fire(fx, -1, &res), CB_EFAILED);
    assert_int_equal(OP_VAL(fx->fallback_arg), -1);
    assert_int_equal(OP_VAL(res.value), -1);
}

/* opossum "Returns self from fallback()" fires with success: no fallback. */
static void fallback_does_not_run_on_success(void **state)
{
    op_fx *fx = *state;
    fx->opt.error_threshold_percentage = 1;
    fx->opt.fallback = op_fallback_twice;
    op_start(fx);
    cb_result res;
    assert_int_equal(op_fire(fx, 1, &res), CB_OK);
    assert_int_equal(OP_VAL(res.value), 1);
    assert_false(res.fallback);
    assert_int_equal(fx->fallback_calls, 0);
    assert_int_equal(op_count(fx, CB_EV_FALLBACK), 0);
}

/* opossum "CircuitBreaker executes fallback when an action throws". */
static void fallback_result_is_returned_and_counted(void **state)
{
    op_fx *fx = *state;
    fx->opt.fallback = op_fallback_twice;
    op_start(fx);
    cb_result res;
    assert_int_equal(op_fire(fx, -21, &res), CB_EFAILED);
    assert_true(res.fallback);
    assert_int_equal(OP_VAL(res.value), -42);
    cb_stats st;
    op_stats(fx, &st);
    assert_int_equal(st.window.failures, 1);
    assert_int_equal(st.window.fallbacks, 1);
    assert_int_equal(st.total.fallbacks, 1);
}

/* opossum "CircuitBreaker emits failure when falling back": failure first,
 * with the action's rc, then fallback. */
static void failure_event_precedes_fallback_event(void **state)
{
    op_fx *fx = *state;
    fx->opt.fallback = op_fallback_echo;
    op_start(fx);
    assert_int_equal(op_fire(fx, -1, NULL), CB_EFAILED);
    const cb_event *failure = op_last(fx, CB_EV_FAILURE);
    assert_non_null(failure);
    assert_int_equal(failure->action_rc, OP_FAIL_RC);
    const cb_event_kind want[] = { CB_EV_FIRE, CB_EV_FAILURE, CB_EV_FALLBACK };
    op_assert_sequence(fx, CB_EV_MASK(CB_EV_FIRE) | CB_EV_MASK(CB_EV_FAILURE) |
                       CB_EV_MASK(CB_EV_FALLBACK), want, 3);
}

/* opossum "CircuitBreaker fallback event": emitted once per fallback. */
static void fallback_event_is_emitted(void **state)
{
    op_fx *fx = *state;
    fx->opt.error_threshold_percentage = 0;
    fx->opt.fallback = op_fallback_echo;
    op_start(fx);
    assert_int_equal(op_fire(fx, -1, NULL), CB_EFAILED);
    assert_int_equal(op_count(fx, CB_EV_FALLBACK), 1);
    assert_int_equal(op_fire(fx, 5, NULL), CB_EOPEN);
    assert_int_equal(op_count(fx, CB_EV_FALLBACK), 2);
}

/* opossum "Breaker resets for circuits with a fallback function". */
static void circuit_with_fallback_still_resets(void **state)
{
    op_fx *fx = *state;
    fx->opt.error_threshold_percentage = 1;
    fx->opt.reset_timeout_ms = 100;
    fx->opt.fallback = op_fallback_twice;
    op_start(fx);
    cb_result res;
    assert_int_equal(op_fire(fx, -1, &res), CB_EFAILED);
    assert_int_equal(OP_VAL(res.value), -2);
    op_advance(fx, 125);
    assert_int_equal(op_fire(fx, 100, &res), CB_OK);
    assert_false(res.fallback);
    assert_int_equal(OP_VAL(res.value), 100);
}

/* opossum "Fallback called once for the same execution when timing out":
 * an action that fails after its deadline runs the fallback exactly once,
 * for the timeout. */
static void fallback_runs_once_when_a_call_times_out(void **state)
{
    op_fx *fx = *state;
    fx->opt.action = op_timed_failing;
    fx->opt.timeout_ms = 100;
    fx->opt.fallback = op_fallback_echo;
    op_start(fx);
    cb_result res;
    assert_int_equal(op_fire(fx, 200, &res), CB_ETIMEDOUT);
    assert_int_equal(fx->fallback_calls, 1);
    assert_int_equal(fx->fallback_reason, CB_ETIMEDOUT);
    assert_true(res.fallback);
    assert_int_equal(op_count(fx, CB_EV_FALLBACK), 1);
}

/* opossum "fallback as a rejected promise" / "fallback that throws": when
 * the fallback fails too, the call reports its original reason, no value. */
static void failing_fallback_reports_the_original_error(void **state)
{
    op_fx *fx = *state;
    fx->opt.error_threshold_percentage = 1;
    fx->opt.reset_timeout_ms = 100;
    fx->opt.fallback = op_fallback_fail;
    op_start(fx);
    cb_result res;
    assert_int_equal(op_fire(fx, -1, &res), CB_EFAILED);
    assert_false(res.fallback);
    assert_int_equal(res.action_rc, OP_FAIL_RC);
    assert_int_equal(fx->fallback_calls, 1);
    assert_int_equal(op_fire(fx, 1, &res), CB_EOPEN);
    assert_false(res.fallback);
    cb_stats st;
    op_stats(fx, &st);
    assert_int_equal(st.total.fallback_failures, 2);
}

/* ---- fallback as another breaker (opossum "fallback as a CircuitBreaker") */

static cb_breaker *g_second;

static int identity_action(const cb_call *call, void **result)
{
    *result = call->arg;
    return 0;
}

static int fallback_via_second_breaker(void *arg, int reason, int action_rc,
                                       void **result, void *user)
{
    cb_result res;
    (void)reason;
    (void)action_rc;
    (void)user;
    int rc = cb_fire(g_second, arg, &res);
    if (rc != CB_OK)
        return rc;
    *result = res.value;
    return 0;
}

static int second_teardown(void **state)
{
    cb_destroy(g_second);
    g_second = NULL;
    return op_teardown(state);
}

/* Creates the second breaker with action, sharing fx's clock. */
static void start_second(op_fx *fx, cb_action_fn action)
{
    cb_options o = fx->opt;
    o.name = "second";
    o.action = action;
    o.fallback = NULL;
    assert_int_equal(cb_create(&o, &g_second), CB_OK);
}

static void fallback_can_be_another_breaker(void **state)
{
    op_fx *fx = *state;
    fx->opt.error_threshold_percentage = 1;
    fx->opt.reset_timeout_ms = 100;
    start_second(fx, identity_action);
    fx->opt.fallback = fallback_via_second_breaker;
    op_start(fx);
    cb_result res;
    assert_int_equal(op_fire(fx, -1, &res), CB_EFAILED);
    assert_true(res.fallback);
    assert_int_equal(OP_VAL(res.value), -1);
}

static void failing_fallback_breaker_reports_the_original_error(void **state)
{
    op_fx *fx = *state;
    fx->opt.error_threshold_percentage = 1;
    fx->opt.reset_timeout_ms = 100;
    start_second(fx, op_pass_fail);
    fx->opt.fallback = fallback_via_second_breaker;
    op_start(fx);
    cb_result res;
    assert_int_equal(op_fire(fx, -1, &res), CB_EFAILED);
    assert_false(res.fallback);
    assert_int_equal(res.action_rc, OP_FAIL_RC);
    assert_int_equal(fx->action_calls, 2); /* ours, then the second breaker's */
    assert_int_equal(cb_get_state(g_second), CB_OPEN);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        OP_TEST(fallback_runs_when_the_circuit_is_open),
        OP_TEST(fallback_receives_the_actions_error),
        OP_TEST(fallback_receives_the_callers_argument),
        OP_TEST(fallback_does_not_run_on_success),
        OP_TEST(fallback_result_is_returned_and_counted),
        OP_TEST(failure_event_precedes_fallback_event),
        OP_TEST(fallback_event_is_emitted),
        OP_TEST(circuit_with_fallback_still_resets),
        OP_TEST(fallback_runs_once_when_a_call_times_out),
        OP_TEST(failing_fallback_reports_the_original_error),
        cmocka_unit_test_setup_teardown(fallback_can_be_another_breaker, op_setup, second_teardown),
        cmocka_unit_test_setup_teardown(failing_fallback_breaker_reports_the_original_error,
                                        op_setup, second_teardown),
    };
    return cmocka_run_group_tests_name("opossum test.js: fallback", tests, NULL, NULL);
}
