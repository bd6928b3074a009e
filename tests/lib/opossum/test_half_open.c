/* test_half_open.c -- opossum's test/half-open-test.js and test.js "circuit halfOpen": the trial call after the open period. */
#include "harness.h"

static void fire_while_trial_in_flight(op_fx *fx, const cb_call *call)
{
    (void)call;
    fx->state_inside = cb_get_state(fx->b);
    fx->nested_rc = cb_fire(fx->b, OP_ARG(1), &fx->nested_res);
}

/* Opens the circuit with one failing call and waits out resetTimeout * 1.5. */
static void open_then_wait(op_fx *fx, intptr_t failing_arg)
{
    assert_int_equal(op_fire(fx, failing_arg, NULL), CB_EFAILED);
    assert_int_equal(op_state(fx), CB_OPEN);
    op_advance(fx, fx->opt.reset_timeout_ms * 3 / 2);
    assert_int_equal(op_state(fx), CB_HALF_OPEN);
}

/* opossum "When half-open, the circuit only allows one request through":
 * while the trial call runs, another call is rejected; the trial fails, the
 * circuit opens again, and the next call is rejected. */
static void half_open_admits_only_one_trial_call(void **state)
{
    op_fx *fx = *state;
    fx->opt.error_threshold_percentage = 1;
    fx->opt.reset_timeout_ms = 100;
    op_start(fx);
    open_then_wait(fx, -1);
    fx->inside = fire_while_trial_in_flight;
    cb_result res;
    assert_int_equal(op_fire(fx, -1, &res), CB_EFAILED);
    assert_int_equal(fx->nested_rc, CB_EOPEN);
    assert_int_equal(op_count(fx, CB_EV_REJECT), 1);
    assert_int_equal(op_last(fx, CB_EV_REJECT)->error, CB_EOPEN);
    assert_int_equal(fx->action_calls, 2); /* the first failure and the trial */
    assert_int_equal(op_state(fx), CB_OPEN);
    assert_int_equal(op_fire(fx, 1, NULL), CB_EOPEN);
    assert_int_equal(fx->action_calls, 2);
}

/* opossum "When half-open, a filtered error should close the circuit". */
static void filtered_error_in_half_open_closes_the_circuit(void **state)
{
    op_fx *fx = *state;
    fx->opt.action = op_fail_with_code;
    fx->opt.error_threshold_percentage = 1;
    fx->opt.reset_timeout_ms = 100;
    fx->opt.error_filter = op_filter_below_500;
    op_start(fx);
    open_then_wait(fx, 500);
    cb_result res;
    assert_int_equal(op_fire(fx, 400, &res), CB_EFAILED);
    assert_int_equal(res.action_rc, 400);
    assert_int_equal(op_state(fx), CB_CLOSED);
    assert_int_equal(op_count(fx, CB_EV_CLOSE), 1);
}

/* opossum test.js "circuit halfOpen": a failed trial re-opens the circuit and
 * restarts the timer; after another resetTimeout a successful trial closes it. */
static void failed_trial_reopens_and_restarts_the_timer(void **state)
{
    op_fx *fx = *state;
    fx->opt.error_threshold_percentage = 1;
    fx->opt.reset_timeout_ms = 100;
    op_start(fx);
    assert_int_equal(op_fire(fx, -1, NULL), CB_EFAILED);
    assert_false(fx->last_call.trial);
    op_advance(fx, 130);
    assert_int_equal(op_state(fx), CB_HALF_OPEN);
    assert_int_equal(op_fire(fx, -1, NULL), CB_EFAILED);
    assert_true(fx->last_call.trial);
    assert_int_equal(op_state(fx), CB_OPEN);
    op_advance(fx, 99);
    assert_int_equal(op_state(fx), CB_OPEN); /* timer restarted at the re-open */
    op_advance(fx, 31);
    assert_int_equal(op_state(fx), CB_HALF_OPEN);
    cb_result res;
    assert_int_equal(op_fire(fx, 1, &res), CB_OK);
    assert_int_equal(OP_VAL(res.value), 1);
    assert_int_equal(op_state(fx), CB_CLOSED);
    const cb_event_kind want[] = { CB_EV_OPEN, CB_EV_HALF_OPEN, CB_EV_OPEN,
                                   CB_EV_HALF_OPEN, CB_EV_CLOSE };
    op_assert_sequence(fx, CB_EV_MASK(CB_EV_OPEN) | CB_EV_MASK(CB_EV_HALF_OPEN) |
                       CB_EV_MASK(CB_EV_CLOSE), want, 5);
}

/* opossum _halfOpen() runs from a timer: with cb_tick and no traffic the
 * circuit becomes half-open on time, and emits halfOpen exactly once. */
static void half_open_happens_on_time_without_traffic(void **state)
{
    op_fx *fx = *state;
    fx->opt.error_threshold_percentage = 1;
    fx->opt.reset_timeout_ms = 100;
    op_start(fx);
    assert_int_equal(op_fire(fx, -1, NULL), CB_EFAILED);
    op_advance(fx, 99);
    assert_int_equal(op_state(fx), CB_OPEN);
    op_advance(fx, 1);
    assert_int_equal(op_state(fx), CB_HALF_OPEN);
    op_advance(fx, 1000);
    assert_int_equal(op_count(fx, CB_EV_HALF_OPEN), 1);
    assert_int_equal(op_last(fx, CB_EV_HALF_OPEN)->state, CB_HALF_OPEN);
}

/* opossum's open period is a timer: with the ticker thread the circuit goes
 * half-open with no call and no cb_tick() at all (opossum issue 719). */
static void ticker_moves_to_half_open_without_any_call(void **state)
{
    op_fx *fx = *state;
    fx->opt.error_threshold_percentage = 1;
    fx->opt.reset_timeout_ms = 100;
    fx->opt.ticker = true;
    fx->opt.ticker_interval_ms = 5;
    op_start(fx);
    assert_int_equal(op_fire(fx, -1, NULL), CB_EFAILED);
    cb_manual_clock_advance_ms(fx->clock, 100);
    assert_true(op_wait_event(fx, CB_EV_HALF_OPEN, 1, 3000));
    assert_int_equal(op_state(fx), CB_HALF_OPEN);
    assert_int_equal(fx->action_calls, 1);
}

/* A timed-out trial counts as a failure: the circuit opens again. */
static void timed_out_trial_reopens_the_circuit(void **state)
{
    op_fx *fx = *state;
    fx->opt.action = op_timed_failing;
    fx->opt.timeout_ms = 50;
    fx->opt.error_threshold_percentage = 1;
    fx->opt.reset_timeout_ms = 100;
    op_start(fx);
    open_then_wait(fx, 1);
    assert_int_equal(op_fire(fx, 500, NULL), CB_ETIMEDOUT);
    assert_int_equal(op_state(fx), CB_OPEN);
}

/* cb_open()/cb_close() by hand, as opossum's open() and close(). */
static void open_and_close_by_hand(void **state)
{
    op_fx *fx = *state;
    fx->opt.reset_timeout_ms = 100;
    op_start(fx);
    assert_int_equal(cb_open(fx->b), CB_OK);
    assert_int_equal(op_state(fx), CB_OPEN);
    assert_int_equal(op_fire(fx, 1, NULL), CB_EOPEN);
    op_advance(fx, 100);
    assert_int_equal(op_state(fx), CB_HALF_OPEN); /* open() starts the timer */
    assert_int_equal(cb_close(fx->b), CB_OK);
    assert_int_equal(op_state(fx), CB_CLOSED);
    assert_int_equal(op_fire(fx, 1, NULL), CB_OK);
    const cb_event_kind want[] = { CB_EV_OPEN, CB_EV_HALF_OPEN, CB_EV_CLOSE };
    op_assert_sequence(fx, CB_EV_MASK(CB_EV_OPEN) | CB_EV_MASK(CB_EV_HALF_OPEN) |
                       CB_EV_MASK(CB_EV_CLOSE), want, 3);
}

/* opossum close()/open() emit nothing when already in that state. */
static void closing_a_closed_circuit_emits_nothing(void **state)
{
    op_fx *fx = *state;
    op_start(fx);
    assert_int_equal(cb_close(fx->b), CB_OK);
    assert_int_equal(op_count(fx, CB_EV_CLOSE), 0);
    assert_int_equal(cb_open(fx->b), CB_OK);
    assert_int_equal(cb_open(fx->b), CB_OK);
    assert_int_equal(op_count(fx, CB_EV_OPEN), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        OP_TEST(half_open_admits_only_one_trial_call),
        OP_TEST(filtered_error_in_half_open_closes_the_circuit),
        OP_TEST(failed_trial_reopens_and_restarts_the_timer),
        OP_TEST(half_open_happens_on_time_without_traffic),
        OP_TEST(ticker_moves_to_half_open_without_any_call),
        OP_TEST(timed_out_trial_reopens_the_circuit),
        OP_TEST(open_and_close_by_hand),
        OP_TEST(closing_a_closed_circuit_emits_nothing),
    };
    return cmocka_run_group_tests_name("opossum half-open-test.js", tests, NULL, NULL);
}
