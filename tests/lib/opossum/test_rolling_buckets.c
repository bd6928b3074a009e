/* test_rolling_buckets.c -- opossum's test/rolling-event-emitter-test.js: what drives bucket rotation (here: the injectable clock). */
#include "harness.h"

/* opossum's rotateBucketController lets the user drive rotation; here the
 * injectable clock does: while it stands still nothing rotates, however
 * often cb_tick() runs. */
static void buckets_do_not_rotate_while_the_clock_stands_still(void **state)
{
    op_fx *fx = *state;
    fx->opt.rolling_count_timeout_ms = 10;
    fx->opt.rolling_count_buckets = 1;
    op_start(fx);
    assert_int_equal(op_fire(fx, -1, NULL), CB_EFAILED);
    for (int i = 0; i < 100; i++)
        assert_int_equal(cb_tick(fx->b), CB_OK);
    cb_stats st;
    op_stats(fx, &st);
    assert_int_equal(st.window.failures, 1);
}

/* The clock passing a bucket boundary rotates it out. */
static void buckets_rotate_when_the_clock_passes_the_window(void **state)
{
    op_fx *fx = *state;
    fx->opt.rolling_count_timeout_ms = 10;
    fx->opt.rolling_count_buckets = 1;
    op_start(fx);
    assert_int_equal(op_fire(fx, -1, NULL), CB_EFAILED);
    op_advance(fx, 10);
    cb_stats st;
    op_stats(fx, &st);
    assert_int_equal(st.window.failures, 0);
    assert_int_equal(st.total.failures, 1);
}

/* opossum "When disabled, the event emitter listener should be removed": a
 * disabled breaker here keeps counting (issue 2), so its window keeps
 * rotating too. */
static void disabled_breaker_window_still_rotates(void **state)
{
    op_fx *fx = *state;
    op_start(fx);
    assert_int_equal(cb_enable(fx->b, false), CB_OK);
    assert_int_equal(op_fire(fx, -1, NULL), CB_EFAILED);
    op_advance(fx, 10000);
    cb_stats st;
    op_stats(fx, &st);
    assert_int_equal(st.window.fires, 0);
    assert_int_equal(st.total.fires, 1);
    assert_int_equal(cb_enable(fx->b, true), CB_OK);
    assert_int_equal(op_fire(fx, 1, NULL), CB_OK);
    op_stats(fx, &st);
    assert_int_equal(st.window.fires, 1);
}

/* opossum "Event listener should be removed only for the breaker that is
 * disabled": two breakers on one clock; disabling one leaves the other
 * counting and opening. */
static void disabling_one_breaker_leaves_another_on_the_same_clock(void **state)
{
    op_fx *fx = *state;
    fx->opt.error_threshold_percentage = 1;
    op_start(fx);
    cb_breaker *other = NULL;
    fx->opt.name = "other";
    assert_int_equal(cb_create(&fx->opt, &other), CB_OK);
    assert_int_equal(cb_enable(fx->b, false), CB_OK);
    int rc_other = cb_fire(other, OP_ARG(-1), NULL);
    cb_state other_state = cb_get_state(other);
    cb_destroy(other);
    assert_int_equal(rc_other, CB_EFAILED);
    assert_int_equal(other_state, CB_OPEN);
    assert_int_equal(op_state(fx), CB_DISABLED);
}

/* opossum "Listener should not be attached with a call to enable if there is
 * already a listener": enabling twice is the same as once (one fire, one
 * count). */
static void enabling_an_enabled_breaker_changes_nothing(void **state)
{
    op_fx *fx = *state;
    op_start(fx);
    assert_int_equal(cb_enable(fx->b, true), CB_OK);
    assert_int_equal(cb_enable(fx->b, true), CB_OK);
    assert_int_equal(op_state(fx), CB_CLOSED);
    assert_int_equal(op_fire(fx, 1, NULL), CB_OK);
    cb_stats st;
    op_stats(fx, &st);
    assert_int_equal(st.window.fires, 1);
    assert_int_equal(op_count(fx, CB_EV_FIRE), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        OP_TEST(buckets_do_not_rotate_while_the_clock_stands_still),
        OP_TEST(buckets_rotate_when_the_clock_passes_the_window),
        OP_TEST(disabled_breaker_window_still_rotates),
        OP_TEST(disabling_one_breaker_leaves_another_on_the_same_clock),
        OP_TEST(enabling_an_enabled_breaker_changes_nothing),
    };
    return cmocka_run_group_tests_name("opossum rolling-event-emitter-test.js", tests, NULL, NULL);
}
