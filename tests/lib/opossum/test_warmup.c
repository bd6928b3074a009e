/* test_warmup.c -- opossum's test/warmup-test.js: allowWarmUp keeps the circuit closed during the first window. */
#include "harness.h"

/* opossum "By default does not allow for warmup". */
static void no_warm_up_by_default(void **state)
{
    op_fx *fx = *state;
    fx->opt.error_threshold_percentage = 1;
    fx->opt.reset_timeout_ms = 100;
    op_start(fx);
    assert_int_equal(op_fire(fx, -1, NULL), CB_EFAILED);
    assert_int_equal(op_state(fx), CB_OPEN);
}

/* opossum "Allows for warmup when option is provided". */
static void warm_up_keeps_the_circuit_closed_in_the_first_window(void **state)
{
    op_fx *fx = *state;
    fx->opt.error_threshold_percentage = 1;
    fx->opt.reset_timeout_ms = 100;
    fx->opt.allow_warm_up = true;
    op_start(fx);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(op_fire(fx, -1, NULL), CB_EFAILED);
        assert_int_equal(op_state(fx), CB_CLOSED);
    }
    op_advance(fx, 9999);
    assert_int_equal(op_fire(fx, -1, NULL), CB_EFAILED);
    assert_int_equal(op_state(fx), CB_CLOSED);
    assert_int_equal(op_count(fx, CB_EV_OPEN), 0);
}

/* opossum "Only warms up for rollingCountTimeout": afterwards a failure opens. */
static void warm_up_ends_after_rolling_count_timeout(void **state)
{
    op_fx *fx = *state;
    fx->opt.error_threshold_percentage = 1;
    fx->opt.reset_timeout_ms = 100;
    fx->opt.allow_warm_up = true;
    fx->opt.rolling_count_timeout_ms = 500;
    op_start(fx);
    assert_int_equal(op_fire(fx, -1, NULL), CB_EFAILED);
    assert_int_equal(op_state(fx), CB_CLOSED);
    op_advance(fx, 500);
    assert_int_equal(op_fire(fx, -1, NULL), CB_EFAILED);
    assert_int_equal(op_state(fx), CB_OPEN);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        OP_TEST(no_warm_up_by_default),
        OP_TEST(warm_up_keeps_the_circuit_closed_in_the_first_window),
        OP_TEST(warm_up_ends_after_rolling_count_timeout),
    };
    return cmocka_run_group_tests_name("opossum warmup-test.js", tests, NULL, NULL);
}
