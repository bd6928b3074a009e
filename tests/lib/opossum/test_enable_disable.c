/* test_enable_disable.c -- opossum's test/enable-disable-test.js: a disabled breaker passes every call. */
#include "harness.h"

/* opossum "Defaults to enabled". */
static void breaker_is_enabled_by_default(void **state)
{
    op_fx *fx = *state;
    op_start(fx);
    assert_true(cb_get_options(fx->b)->enabled);
    assert_int_equal(op_state(fx), CB_CLOSED);
}

/* opossum "Accepts options.enabled". */
static void enabled_false_starts_disabled(void **state)
{
    op_fx *fx = *state;
    fx->opt.enabled = false;
    op_start(fx);
    assert_int_equal(op_state(fx), CB_DISABLED);
}

/* opossum "When disabled the circuit should always be closed": failures
 * pass through without opening; once enabled again, the next failure opens
 * (the stats kept counting while disabled). */
static void disabled_circuit_never_opens_and_opens_once_enabled(void **state)
{
    op_fx *fx = *state;
    fx->opt.error_threshold_percentage = 1;
    fx->opt.reset_timeout_ms = 1000;
    op_start(fx);
    assert_int_equal(cb_enable(fx->b, false), CB_OK);
    cb_result res;
    assert_int_equal(op_fire(fx, -1, &res), CB_EFAILED);
    assert_int_equal(res.action_rc, OP_FAIL_RC);
    assert_int_equal(op_state(fx), CB_DISABLED);
    assert_int_equal(op_fire(fx, -1, &res), CB_EFAILED);
    assert_int_equal(op_state(fx), CB_DISABLED);
    assert_int_equal(op_count(fx, CB_EV_OPEN), 0);
    assert_int_equal(fx->action_calls, 2);

    assert_int_equal(cb_enable(fx->b, true), CB_OK);
    assert_int_equal(op_state(fx), CB_CLOSED);
    assert_int_equal(op_fire(fx, -1, &res), CB_EFAILED);
    assert_int_equal(op_state(fx), CB_OPEN);
}

/* opossum "When disabled fire event is still emitted"; the issue adds that
 * stats still count. */
static void disabled_breaker_still_emits_fire_and_counts(void **state)
{
    op_fx *fx = *state;
    op_start(fx);
    assert_int_equal(cb_enable(fx->b, false), CB_OK);
    assert_int_equal(op_fire(fx, 1, NULL), CB_OK);
    assert_int_equal(op_fire(fx, -1, NULL), CB_EFAILED);
    assert_int_equal(op_count(fx, CB_EV_FIRE), 2);
    cb_stats st;
    op_stats(fx, &st);
    assert_int_equal(st.window.fires, 2);
    assert_int_equal(st.window.successes, 1);
    assert_int_equal(st.window.failures, 1);
}

/* A disabled breaker lets calls through even when the circuit was open. */
static void disabling_an_open_circuit_lets_calls_through(void **state)
{
    op_fx *fx = *state;
    fx->opt.error_threshold_percentage = 1;
    op_start(fx);
    assert_int_equal(op_fire(fx, -1, NULL), CB_EFAILED);
    assert_int_equal(op_state(fx), CB_OPEN);
    assert_int_equal(cb_enable(fx->b, false), CB_OK);
    cb_result res;
    assert_int_equal(op_fire(fx, 7, &res), CB_OK);
    assert_int_equal(OP_VAL(res.value), 7);
    assert_int_equal(fx->action_calls, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        OP_TEST(breaker_is_enabled_by_default),
        OP_TEST(enabled_false_starts_disabled),
        OP_TEST(disabled_circuit_never_opens_and_opens_once_enabled),
        OP_TEST(disabled_breaker_still_emits_fire_and_counts),
        OP_TEST(disabling_an_open_circuit_lets_calls_through),
    };
    return cmocka_run_group_tests_name("opossum enable-disable-test.js", tests, NULL, NULL);
}
