/* test_volume_threshold.c -- opossum's test/volume-threshold-test.js: a minimum number of fires before the circuit may open. */
#include "harness.h"

/* opossum "By default does not have a volume threshold". */
static void no_volume_threshold_by_default(void **state)
{
    op_fx *fx = *state;
    fx->opt.error_threshold_percentage = 1;
    fx->opt.reset_timeout_ms = 100;
    op_start(fx);
    assert_int_equal(op_fire(fx, -1, NULL), CB_EFAILED);
    assert_int_equal(op_state(fx), CB_OPEN);
}

/* opossum "Has a volume threshold before tripping when option is provided". */
static void stays_closed_until_volume_threshold_is_reached(void **state)
{
    op_fx *fx = *state;
    fx->opt.error_threshold_percentage = 1;
    fx->opt.reset_timeout_ms = 100;
    fx->opt.volume_threshold = 3;
    op_start(fx);
    assert_int_equal(op_fire(fx, -1, NULL), CB_EFAILED);
    assert_int_equal(op_state(fx), CB_CLOSED);
    assert_int_equal(op_fire(fx, -1, NULL), CB_EFAILED);
    assert_int_equal(op_state(fx), CB_CLOSED);
    assert_int_equal(op_fire(fx, -1, NULL), CB_EFAILED);
    assert_int_equal(op_state(fx), CB_OPEN);
}

/* Only fires inside the rolling window count toward the volume. */
static void volume_counts_fires_inside_the_window_only(void **state)
{
    op_fx *fx = *state;
    fx->opt.error_threshold_percentage = 1;
    fx->opt.volume_threshold = 2;
    op_start(fx);
    assert_int_equal(op_fire(fx, -1, NULL), CB_EFAILED);
    op_advance(fx, 10000); /* the first fire leaves the window */
    assert_int_equal(op_fire(fx, -1, NULL), CB_EFAILED);
    assert_int_equal(op_state(fx), CB_CLOSED);
    assert_int_equal(op_fire(fx, -1, NULL), CB_EFAILED);
    assert_int_equal(op_state(fx), CB_OPEN);
}

/* opossum "volume threshold does not affect halfOpen state": once half-open
 * (with the window emptied by time), a single failed trial re-opens it. */
static void volume_threshold_does_not_apply_in_half_open(void **state)
{
    op_fx *fx = *state;
    fx->opt.error_threshold_percentage = 1;
    fx->opt.reset_timeout_ms = 300;
    fx->opt.rolling_count_timeout_ms = 300;
    fx->opt.volume_threshold = 2;
    op_start(fx);
    assert_int_equal(op_fire(fx, -1, NULL), CB_EFAILED);
    assert_int_equal(op_state(fx), CB_CLOSED);
    assert_int_equal(op_fire(fx, -1, NULL), CB_EFAILED);
    assert_int_equal(op_state(fx), CB_OPEN);
    op_advance(fx, 450);
    assert_int_equal(op_state(fx), CB_HALF_OPEN);
    cb_stats st;
    op_stats(fx, &st);
    assert_int_equal(st.window.fires, 0);
    assert_int_equal(op_fire(fx, -1, NULL), CB_EFAILED);
    assert_int_equal(op_state(fx), CB_OPEN);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        OP_TEST(no_volume_threshold_by_default),
        OP_TEST(stays_closed_until_volume_threshold_is_reached),
        OP_TEST(volume_counts_fires_inside_the_window_only),
        OP_TEST(volume_threshold_does_not_apply_in_half_open),
    };
    return cmocka_run_group_tests_name("opossum volume-threshold-test.js", tests, NULL, NULL);
}
