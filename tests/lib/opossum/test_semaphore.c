/* test_semaphore.c -- opossum's test/semaphore-test.js and test.js capacity tests: concurrent-call limits. */
#include "harness.h"

static int g_inner_rc;
static int g_in_flight_inside;

static void note_in_flight(op_fx *fx, const cb_call *call)
{
    cb_stats st;
    (void)call;
    cb_get_stats(fx->b, &st);
    g_in_flight_inside = st.in_flight;
}

static void fire_inner(op_fx *fx, const cb_call *call)
{
    (void)call;
    g_inner_rc = cb_fire(fx->b, OP_ARG(1), NULL);
}

static void fire_nested(op_fx *fx, const cb_call *call)
{
    (void)call;
    fx->inside = fire_inner; /* the nested call fires once more inside itself */
    fx->nested_rc = cb_fire(fx->b, OP_ARG(1), &fx->nested_res);
}

static void fire_once_nested(op_fx *fx, const cb_call *call)
{
    (void)call;
    fx->nested_rc = cb_fire(fx->b, OP_ARG(1), &fx->nested_res);
}

static int semaphore_setup(void **state)
{
    g_inner_rc = 12345;
    g_in_flight_inside = -1;
    return op_setup(state);
}

#define SEM_TEST(fn) cmocka_unit_test_setup_teardown(fn, semaphore_setup, op_teardown)

/* opossum "Acquiring a semaphore reduces the number of locks available" and
 * "Releasing a semaphore increases ...": a running call takes a slot, its
 * end gives it back. */
static void running_call_takes_a_slot_and_returns_it(void **state)
{
    op_fx *fx = *state;
    fx->opt.capacity = 1;
    op_start(fx);
    fx->inside = note_in_flight;
    assert_int_equal(op_fire(fx, 1, NULL), CB_OK);
    assert_int_equal(g_in_flight_inside, 1);
    cb_stats st;
    op_stats(fx, &st);
    assert_int_equal(st.in_flight, 0);
}

/* opossum "CircuitBreaker semaphore rate limiting": a call beyond capacity
 * is rejected with ESEMLOCKED, counted, and announced with semaphoreLocked;
 * the action does not run for it. */
static void call_beyond_capacity_is_rejected_with_semaphore_locked(void **state)
{
    op_fx *fx = *state;
    fx->opt.capacity = 1;
    fx->opt.timeout_ms = 300;
    op_start(fx);
    fx->inside = fire_once_nested;
    assert_int_equal(op_fire(fx, 1, NULL), CB_OK);
    assert_int_equal(fx->nested_rc, CB_ESEMLOCKED);
    assert_int_equal(fx->action_calls, 1);
    cb_stats st;
    op_stats(fx, &st);
    assert_int_equal(st.window.semaphore_rejections, 1);
    assert_int_equal(st.total.semaphore_rejections, 1);
    assert_int_equal(op_count(fx, CB_EV_SEMAPHORE_LOCKED), 1);
    assert_string_equal(cb_err_name(CB_ESEMLOCKED), "CB_ESEMLOCKED");
}

/* A capacity of two admits two calls at once and rejects the third. */
static void capacity_admits_exactly_that_many_concurrent_calls(void **state)
{
    op_fx *fx = *state;
    fx->opt.capacity = 2;
    op_start(fx);
    fx->inside = fire_nested;
    assert_int_equal(op_fire(fx, 1, NULL), CB_OK);
    assert_int_equal(fx->nested_rc, CB_OK);
    assert_int_equal(g_inner_rc, CB_ESEMLOCKED);
    assert_int_equal(fx->action_calls, 2);
}

/* opossum handleError on ESEMLOCKED: the fallback runs, told why. */
static void semaphore_locked_call_runs_the_fallback(void **state)
{
    op_fx *fx = *state;
    fx->opt.capacity = 1;
    fx->opt.fallback = op_fallback_twice;
    op_start(fx);
    fx->inside = fire_once_nested;
    assert_int_equal(op_fire(fx, 1, NULL), CB_OK);
    assert_int_equal(fx->nested_rc, CB_ESEMLOCKED);
    assert_true(fx->nested_res.fallback);
    assert_int_equal(OP_VAL(fx->nested_res.value), 2);
    assert_int_equal(fx->fallback_reason, CB_ESEMLOCKED);
}

/* A failing call also returns its slot. */
static void failed_call_returns_its_slot(void **state)
{
    op_fx *fx = *state;
    fx->opt.capacity = 1;
    fx->opt.error_threshold_percentage = 100;
    op_start(fx);
    assert_int_equal(op_fire(fx, -1, NULL), CB_EFAILED);
    assert_int_equal(op_fire(fx, 1, NULL), CB_OK);
    assert_int_equal(op_count(fx, CB_EV_SEMAPHORE_LOCKED), 0);
}

/* opossum "User code cannot change the lock count": the breaker keeps its
 * own copy of the options; changing the caller's struct changes nothing. */
static void capacity_cannot_be_changed_from_outside(void **state)
{
    op_fx *fx = *state;
    fx->opt.capacity = 1;
    op_start(fx);
    fx->opt.capacity = 4;
    assert_int_equal(cb_get_options(fx->b)->capacity, 1);
    fx->inside = fire_once_nested;
    assert_int_equal(op_fire(fx, 1, NULL), CB_OK);
    assert_int_equal(fx->nested_rc, CB_ESEMLOCKED);
}

/* opossum "Semaphores wait until a lock is available" / "can time out
 * waiting": the breaker never waits for a slot (opossum's breaker uses the
 * non-blocking test()); a rejected call returns at once, clock unmoved. */
static void capacity_rejection_does_not_wait(void **state)
{
    op_fx *fx = *state;
    fx->opt.capacity = 1;
    op_start(fx);
    fx->inside = fire_once_nested;
    assert_int_equal(op_fire(fx, 1, NULL), CB_OK);
    assert_int_equal(fx->nested_rc, CB_ESEMLOCKED);
    const cb_event *ev = op_last(fx, CB_EV_SEMAPHORE_LOCKED);
    assert_non_null(ev);
    assert_int_equal(ev->time_ns, OP_CLOCK_START_NS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        SEM_TEST(running_call_takes_a_slot_and_returns_it),
        SEM_TEST(call_beyond_capacity_is_rejected_with_semaphore_locked),
        SEM_TEST(capacity_admits_exactly_that_many_concurrent_calls),
        SEM_TEST(semaphore_locked_call_runs_the_fallback),
        SEM_TEST(failed_call_returns_its_slot),
        SEM_TEST(capacity_cannot_be_changed_from_outside),
        SEM_TEST(capacity_rejection_does_not_wait),
    };
    return cmocka_run_group_tests_name("opossum semaphore-test.js", tests, NULL, NULL);
}
