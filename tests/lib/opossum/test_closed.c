/* test_closed.c -- opossum's test/closed-test.js: a call that succeeds after the circuit opened does not close it. */
#include "harness.h"

static void fail_while_in_flight(op_fx *fx, const cb_call *call)
{
    (void)call;
    fx->nested_rc = cb_fire(fx->b, OP_ARG(-1), &fx->nested_res);
    fx->state_inside = cb_get_state(fx->b);
}

/* opossum "When open, an existing request resolving does not close circuit":
 * call 1 is in flight, call 2 fails and opens the circuit, then call 1
 * succeeds; the circuit stays open and no close event is emitted. */
static void success_of_a_call_started_before_opening_does_not_close(void **state)
{
    op_fx *fx = *state;
    fx->opt.error_threshold_percentage = 1;
    fx->opt.reset_timeout_ms = 60000;
    op_start(fx);
    fx->inside = fail_while_in_flight;
    cb_result res;
    assert_int_equal(op_fire(fx, 1, &res), CB_OK);
    assert_int_equal(OP_VAL(res.value), 1);
    assert_int_equal(fx->nested_rc, CB_EFAILED);
    assert_int_equal(fx->state_inside, CB_OPEN);
    assert_int_equal(op_state(fx), CB_OPEN);
    assert_int_equal(op_count(fx, CB_EV_CLOSE), 0);
    assert_int_equal(op_fire(fx, 1, NULL), CB_EOPEN);
}

/* The late success still counts as a success in the window. */
static void success_after_opening_is_still_counted(void **state)
{
    op_fx *fx = *state;
    fx->opt.error_threshold_percentage = 1;
    fx->opt.reset_timeout_ms = 60000;
    op_start(fx);
    fx->inside = fail_while_in_flight;
    assert_int_equal(op_fire(fx, 1, NULL), CB_OK);
    cb_stats st;
    op_stats(fx, &st);
    assert_int_equal(st.window.fires, 2);
    assert_int_equal(st.window.successes, 1);
    assert_int_equal(st.window.failures, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        OP_TEST(success_of_a_call_started_before_opening_does_not_close),
        OP_TEST(success_after_opening_is_still_counted),
    };
    return cmocka_run_group_tests_name("opossum closed-test.js", tests, NULL, NULL);
}
