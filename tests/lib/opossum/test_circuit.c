/* test_circuit.c -- opossum's test/test.js, core part: creation, options, firing, opening and resetting. */
#include "harness.h"

#include <string.h>

/* opossum "api": a new breaker is closed, neither open nor half-open. */
static void new_breaker_is_closed(void **state)
{
    op_fx *fx = *state;
    op_start(fx);
    assert_int_equal(op_state(fx), CB_CLOSED);
    cb_stats st;
    op_stats(fx, &st);
    assert_int_equal(st.state, CB_CLOSED);
    assert_int_equal(st.total.fires, 0);
    assert_int_equal(st.open_until_ns, 0);
    assert_int_equal(st.in_flight, 0);
    assert_non_null(cb_get_options(fx->b));
    assert_ptr_equal(cb_get_options(fx->b)->action, op_pass_fail);
}

/* opossum "has a name based on the function name": C functions have no
 * runtime name, so the default is the documented "breaker". */
static void name_defaults_to_breaker(void **state)
{
    op_fx *fx = *state;
    fx->opt.name = NULL;
    cb_options o;
    cb_options_init(&o);
    assert_string_equal(o.name, "breaker");
    op_start(fx);
    assert_string_equal(cb_name(fx->b), "breaker");
}

/* opossum "accepts a name as an option": and the breaker keeps its own copy. */
static void accepts_a_name_as_an_option(void **state)
{
    op_fx *fx = *state;
    char name[] = "tacoMachine";
    fx->opt.name = name;
    op_start(fx);
    memset(name, 'x', sizeof name - 1);
    assert_string_equal(cb_name(fx->b), "tacoMachine");
}

/* opossum "Passes parameters to the circuit function". */
static void passes_parameters_to_the_action(void **state)
{
    op_fx *fx = *state;
    op_start(fx);
    cb_result res;
    assert_int_equal(op_fire(fx, 34, &res), CB_OK);
    assert_int_equal(OP_VAL(res.value), 34);
    assert_int_equal(OP_VAL(fx->last_arg), 34);
    assert_false(res.fallback);
    assert_false(res.cached);
    assert_int_equal(fx->action_calls, 1);
}

/* opossum "Fails when the circuit function fails": the action's own error
 * comes back (isOurError false: CB_EFAILED carries the action's rc). */
static void fails_when_the_action_fails(void **state)
{
    op_fx *fx = *state;
    op_start(fx);
    cb_result res;
    assert_int_equal(op_fire(fx, -1, &res), CB_EFAILED);
    assert_int_equal(res.action_rc, OP_FAIL_RC);
    assert_false(res.fallback);
    assert_string_equal(cb_err_name(CB_EFAILED), "CB_EFAILED");
}

/* opossum "CircuitBreaker emits failure when action throws": counted. */
static void failure_is_counted_in_stats(void **state)
{
    op_fx *fx = *state;
    op_start(fx);
    assert_int_equal(op_fire(fx, -1, NULL), CB_EFAILED);
    cb_stats st;
    op_stats(fx, &st);
    assert_int_equal(st.window.failures, 1);
    assert_int_equal(st.window.fires, 1);
    assert_int_equal(st.total.failures, 1);
    assert_int_equal(op_count(fx, CB_EV_FAILURE), 1);
}

/* opossum "Breaker opens after a configurable number of failures": then it
 * fails fast with its own error (EOPENBREAKER) without running the action. */
static void opens_when_error_percentage_exceeds_threshold(void **state)
{
    op_fx *fx = *state;
    fx->opt.error_threshold_percentage = 10;
    op_start(fx);
    assert_int_equal(op_fire(fx, -1, NULL), CB_EFAILED);
    assert_int_equal(op_state(fx), CB_OPEN);
    assert_int_equal(op_fire(fx, 100, NULL), CB_EOPEN);
    assert_int_equal(fx->action_calls, 1);
    assert_string_equal(cb_err_name(CB_EOPEN), "CB_EOPEN");
}

/* opossum fail(): errorRate > threshold, strictly; at exactly 50% it stays closed. */
static void stays_closed_at_exactly_the_threshold(void **state)
{
    op_fx *fx = *state;
    fx->opt.error_threshold_percentage = 50;
    op_start(fx);
    assert_int_equal(op_fire(fx, 1, NULL), CB_OK);
    assert_int_equal(op_fire(fx, -1, NULL), CB_EFAILED); /* 1 of 2 = 50% */
    assert_int_equal(op_state(fx), CB_CLOSED);
    assert_int_equal(op_fire(fx, -1, NULL), CB_EFAILED); /* 2 of 3 = 66% */
    assert_int_equal(op_state(fx), CB_OPEN);
}

/* Successes never open the circuit, whatever the threshold (0 included). */
static void successes_never_open_the_circuit(void **state)
{
    op_fx *fx = *state;
    fx->opt.error_threshold_percentage = 0;
    op_start(fx);
    for (int i = 1; i <= 20; i++)
        assert_int_equal(op_fire(fx, i, NULL), CB_OK);
    assert_int_equal(op_state(fx), CB_CLOSED);
    assert_int_equal(op_count(fx, CB_EV_OPEN), 0);
}

/* opossum "Breaker resets after a configurable amount of time". */
static void resets_after_reset_timeout(void **state)
{
    op_fx *fx = *state;
    fx->opt.error_threshold_percentage = 1;
    fx->opt.reset_timeout_ms = 100;
    op_start(fx);
    assert_int_equal(op_fire(fx, -1, NULL), CB_EFAILED);
    op_advance(fx, 99);
    assert_int_equal(op_fire(fx, 100, NULL), CB_EOPEN);
    op_advance(fx, 26); /* 125 ms: resetTimeout * 1.25 */
    cb_result res;
    assert_int_equal(op_fire(fx, 100, &res), CB_OK);
    assert_int_equal(OP_VAL(res.value), 100);
    assert_int_equal(op_state(fx), CB_CLOSED);
}

/* opossum "... resets ... when multiple jobs fail". */
static void resets_after_reset_timeout_when_multiple_calls_fail(void **state)
{
    op_fx *fx = *state;
    fx->opt.error_threshold_percentage = 1;
    fx->opt.reset_timeout_ms = 100;
    op_start(fx);
    assert_int_equal(op_fire(fx, -1, NULL), CB_EFAILED);
    assert_int_equal(op_fire(fx, -1, NULL), CB_EOPEN);
    op_advance(fx, 125);
    cb_result res;
    assert_int_equal(op_fire(fx, 100, &res), CB_OK);
    assert_int_equal(OP_VAL(res.value), 100);
}

/* The open period is measured from the moment it opened (lazily, without
 * cb_tick: the next fire moves it to half-open, opossum issue 719). */
static void moves_to_half_open_lazily_at_the_next_fire(void **state)
{
    op_fx *fx = *state;
    fx->opt.error_threshold_percentage = 1;
    fx->opt.reset_timeout_ms = 100;
    op_start(fx);
    assert_int_equal(op_fire(fx, -1, NULL), CB_EFAILED);
    cb_manual_clock_advance_ms(fx->clock, 100);
    assert_int_equal(op_fire(fx, 5, NULL), CB_OK);
    assert_int_equal(op_state(fx), CB_CLOSED);
    const cb_event_kind want[] = { CB_EV_OPEN, CB_EV_HALF_OPEN, CB_EV_CLOSE };
    op_assert_sequence(fx, CB_EV_MASK(CB_EV_OPEN) | CB_EV_MASK(CB_EV_HALF_OPEN) |
                       CB_EV_MASK(CB_EV_CLOSE), want, 3);
}

/* opossum "Breaker status reflects open state". */
static void stats_reflect_open_state(void **state)
{
    op_fx *fx = *state;
    fx->opt.error_threshold_percentage = 0;
    fx->opt.reset_timeout_ms = 100;
    op_start(fx);
    assert_int_equal(op_fire(fx, -1, NULL), CB_EFAILED);
    cb_stats st;
    op_stats(fx, &st);
    assert_int_equal(st.state, CB_OPEN);
    assert_int_equal(st.open_until_ns, OP_CLOCK_START_NS + 100 * 1000000LL);
    assert_int_equal(st.current_reset_timeout_ms, 100);
}

/* opossum "CircuitBreaker status": counts across successes, a failure that
 * opens, and a rejected call that falls back. (opossum sets the fallback
 * after the failure; here it is set from the start, so it runs twice.) */
static void stats_count_fires_failures_rejects_and_fallbacks(void **state)
{
    op_fx *fx = *state;
    fx->opt.error_threshold_percentage = 1;
    fx->opt.fallback = op_fallback_echo;
    op_start(fx);
    cb_result res;
    for (int x = 10; x <= 30; x += 10) {
        assert_int_equal(op_fire(fx, x, &res), CB_OK);
        assert_int_equal(OP_VAL(res.value), x);
    }
    cb_stats st;
    op_stats(fx, &st);
    assert_int_equal(st.window.fires, 3);
    assert_int_equal(op_fire(fx, -10, &res), CB_EFAILED);
    op_stats(fx, &st);
    assert_int_equal(st.window.failures, 1);
    assert_int_equal(st.window.fires, 4);
    assert_int_equal(op_fire(fx, -20, &res), CB_EOPEN);
    assert_true(res.fallback);
    assert_int_equal(OP_VAL(res.value), -20);
    op_stats(fx, &st);
    assert_int_equal(st.window.failures, 1);
    assert_int_equal(st.window.rejects, 1);
    assert_int_equal(st.window.fires, 5);
    assert_int_equal(st.window.successes, 3);
    assert_int_equal(st.window.fallbacks, 2);
    assert_int_equal(st.total.fires, 5);
}

/* opossum status.js: errorRate = failures / fires * 100 over the window. */
static void error_percentage_is_failures_over_fires(void **state)
{
    op_fx *fx = *state;
    fx->opt.error_threshold_percentage = 90;
    op_start(fx);
    assert_int_equal(op_fire(fx, 1, NULL), CB_OK);
    assert_int_equal(op_fire(fx, 1, NULL), CB_OK);
    assert_int_equal(op_fire(fx, 1, NULL), CB_OK);
    assert_int_equal(op_fire(fx, -1, NULL), CB_EFAILED);
    cb_stats st;
    op_stats(fx, &st);
    assert_true(st.error_percentage > 24.999 && st.error_percentage < 25.001);
}

/* A call that starts before the window and fails inside it is a failure
 * without its fire (fires are counted at the start, failures at the end):
 * the error % is taken over the calls decided in the window, so it stays
 * at 100 where failures / fires would read 200. */
static void error_percentage_never_passes_100_when_a_call_straddles_the_window(void **state)
{
    op_fx *fx = *state;
    fx->opt.action = op_timed_failing;
    fx->opt.volume_threshold = 100; /* stays closed: both calls run */
    fx->opt.timeout_ms = 0;         /* no deadline: the long call fails, it does not time out */
    op_start(fx);
    assert_int_equal(op_fire(fx, 10500, NULL), CB_EFAILED); /* its fire leaves the 10 s window */
    assert_int_equal(op_fire(fx, 0, NULL), CB_EFAILED);
    cb_stats st;
    op_stats(fx, &st);
    assert_int_equal(st.window.failures, 2);
    assert_int_equal(st.window.fires, 1);
    assert_true(st.error_percentage > 99.999 && st.error_percentage < 100.001);
}

/* opossum "CircuitBreaker rolling counts": the window forgets, totals do not. */
static void rolling_window_forgets_old_buckets(void **state)
{
    op_fx *fx = *state;
    fx->opt.rolling_count_timeout_ms = 200;
    fx->opt.rolling_count_buckets = 2;
    op_start(fx);
    for (int x = 10; x <= 30; x += 10)
        assert_int_equal(op_fire(fx, x, NULL), CB_OK);
    cb_stats st;
    op_stats(fx, &st);
    assert_int_equal(st.window.successes, 3);
    op_advance(fx, 100);
    op_stats(fx, &st);
    assert_int_equal(st.window.successes, 3); /* still in the older bucket */
    op_advance(fx, 200);
    op_stats(fx, &st);
    assert_int_equal(st.window.successes, 0);
    assert_int_equal(st.window.fires, 0);
    assert_int_equal(st.total.successes, 3);
}

/* A failure that has left the window no longer counts toward opening. */
static void failures_outside_the_window_do_not_open(void **state)
{
    op_fx *fx = *state;
    fx->opt.error_threshold_percentage = 50;
    fx->opt.volume_threshold = 2;
    op_start(fx);
    assert_int_equal(op_fire(fx, -1, NULL), CB_EFAILED);
    assert_int_equal(op_state(fx), CB_CLOSED); /* 1 fire < volume 2 */
    op_advance(fx, 11000);
    assert_int_equal(op_fire(fx, 1, NULL), CB_OK);
    assert_int_equal(op_fire(fx, -1, NULL), CB_EFAILED); /* 1 of 2: 50% */
    assert_int_equal(op_state(fx), CB_CLOSED);
}

/* cb_strerror / cb_err_name / cb_state_name never return NULL. */
static void error_and_state_names_are_words(void **state)
{
    (void)state;
    const int codes[] = { CB_OK, CB_EOPEN, CB_ETIMEDOUT, CB_EFAILED, CB_ESEMLOCKED,
                          CB_ESHUTDOWN, CB_EINVAL, CB_ENOMEM, CB_EPARSE, CB_ENOTFOUND,
                          CB_ETHREAD, CB_ELIMIT, -12345 };
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        assert_non_null(cb_strerror(codes[i]));
        assert_non_null(cb_err_name(codes[i]));
        assert_true(strlen(cb_strerror(codes[i])) > 0);
    }
    assert_string_equal(cb_strerror(-12345), "unknown error");
    assert_string_equal(cb_state_name(CB_CLOSED), "closed");
    assert_string_equal(cb_state_name(CB_OPEN), "open");
    assert_string_equal(cb_state_name(CB_HALF_OPEN), "half-open");
    assert_string_equal(cb_state_name(CB_SHUTDOWN), "shutdown");
    assert_non_null(cb_state_name((cb_state)99));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        OP_TEST(new_breaker_is_closed),
        OP_TEST(name_defaults_to_breaker),
        OP_TEST(accepts_a_name_as_an_option),
        OP_TEST(passes_parameters_to_the_action),
        OP_TEST(fails_when_the_action_fails),
        OP_TEST(failure_is_counted_in_stats),
        OP_TEST(opens_when_error_percentage_exceeds_threshold),
        OP_TEST(stays_closed_at_exactly_the_threshold),
        OP_TEST(successes_never_open_the_circuit),
        OP_TEST(resets_after_reset_timeout),
        OP_TEST(resets_after_reset_timeout_when_multiple_calls_fail),
        OP_TEST(moves_to_half_open_lazily_at_the_next_fire),
        OP_TEST(stats_reflect_open_state),
        OP_TEST(stats_count_fires_failures_rejects_and_fallbacks),
        OP_TEST(error_percentage_is_failures_over_fires),
        OP_TEST(error_percentage_never_passes_100_when_a_call_straddles_the_window),
        OP_TEST(rolling_window_forgets_old_buckets),
        OP_TEST(failures_outside_the_window_do_not_open),
        OP_TEST(error_and_state_names_are_words),
    };
    return cmocka_run_group_tests_name("opossum test.js: circuit", tests, NULL, NULL);
}
