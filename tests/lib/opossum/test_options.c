/* test_options.c -- opossum's test/options-test.js (and the option tests of test.js): defaults, accepted and refused values. */
#include "harness.h"

#include <string.h>

/* opossum options-test.js / test.js: the defaults. */
static void options_default_to_opossums_values(void **state)
{
    (void)state;
    cb_options o;
    memset(&o, 0x5a, sizeof o);
    cb_options_init(&o);
    assert_int_equal(o.timeout_ms, 10000);
    assert_int_equal(o.reset_timeout_ms, 30000);
    assert_int_equal(o.error_threshold_percentage, 50);
    assert_int_equal(o.rolling_count_timeout_ms, 10000);
    assert_int_equal(o.rolling_count_buckets, 10);
    assert_int_equal(o.volume_threshold, 0);
    assert_int_equal(o.capacity, 0); /* unlimited, opossum's MAX_SAFE_INTEGER */
    assert_false(o.allow_warm_up);
    assert_true(o.enabled);
    assert_true(o.rolling_percentiles_enabled);
    assert_int_equal(o.health_check_interval_ms, 5000);
    assert_false(o.cache);
    assert_int_equal(o.cache_ttl_ms, 0);
    assert_false(o.coalesce);
    assert_null(o.fallback);
    assert_null(o.error_filter);
    assert_int_equal(o.half_open_max_calls, 1);
    assert_int_equal(o.half_open_success_threshold, 1);
}

/* opossum options-test.js "... can be set to 0": timeout, resetTimeout and
 * errorThresholdPercentage accept 0 and the breaker keeps it. */
static void zero_timeouts_and_threshold_are_accepted(void **state)
{
    op_fx *fx = *state;
    fx->opt.timeout_ms = 0;
    fx->opt.reset_timeout_ms = 0;
    fx->opt.error_threshold_percentage = 0;
    op_start(fx);
    const cb_options *o = cb_get_options(fx->b);
    assert_int_equal(o->timeout_ms, 0);
    assert_int_equal(o->reset_timeout_ms, 0);
    assert_int_equal(o->error_threshold_percentage, 0);
}

/* Creates with o and expects CB_EINVAL, with *out untouched. */
static void expect_invalid(const cb_options *o)
{
    cb_breaker *sentinel = (cb_breaker *)(uintptr_t)0x1234;
    cb_breaker *out = sentinel;
    assert_int_equal(cb_create(o, &out), CB_EINVAL);
    assert_ptr_equal(out, sentinel);
}

/* opossum "rollingCountBuckets can be set to 0" makes a breaker that divides
 * by zero; here zero buckets and other nonsense are refused (issue 2, item 1). */
static void invalid_options_are_refused(void **state)
{
    op_fx *fx = *state;
    cb_options o = fx->opt;
    o.rolling_count_buckets = 0;
    expect_invalid(&o);
    o = fx->opt;
    o.rolling_count_buckets = 3; /* 10000 ms is not divisible into 3 */
    expect_invalid(&o);
    o = fx->opt;
    o.error_threshold_percentage = -1;
    expect_invalid(&o);
    o = fx->opt;
    o.error_threshold_percentage = 101;
    expect_invalid(&o);
    o = fx->opt;
    o.timeout_ms = -5;
    expect_invalid(&o);
    o = fx->opt;
    o.reset_timeout_ms = -5;
    expect_invalid(&o);
    o = fx->opt;
    o.volume_threshold = -1;
    expect_invalid(&o);
    o = fx->opt;
    o.half_open_max_calls = 1;
    o.half_open_success_threshold = 2;
    expect_invalid(&o);
    assert_int_equal(cb_create(NULL, &fx->b), CB_EINVAL);
    assert_null(fx->b);
}

/* opossum "CircuitBreaker without an action": refused. */
static void breaker_without_an_action_is_refused(void **state)
{
    op_fx *fx = *state;
    fx->opt.action = NULL;
    assert_int_equal(cb_create(&fx->opt, &fx->b), CB_EINVAL);
    assert_null(fx->b);
}

/* opossum "CircuitBreaker default capacity": unlimited. */
static void default_capacity_is_unlimited(void **state)
{
    op_fx *fx = *state;
    op_start(fx);
    assert_int_equal(cb_get_options(fx->b)->capacity, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        OP_TEST(options_default_to_opossums_values),
        OP_TEST(zero_timeouts_and_threshold_are_accepted),
        OP_TEST(invalid_options_are_refused),
        OP_TEST(breaker_without_an_action_is_refused),
        OP_TEST(default_capacity_is_unlimited),
    };
    return cmocka_run_group_tests_name("opossum options-test.js", tests, NULL, NULL);
}
