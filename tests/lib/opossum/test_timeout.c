/* test_timeout.c -- opossum's test/test.js, timeout and AbortController part: deadlines, timeouts, cancellation. */
#include "harness.h"

#include <time.h>

/* opossum "Fails when the circuit function times out": a late return is a
 * timeout (ETIMEDOUT), not a success, even though the action succeeded. */
static void fails_when_the_action_times_out(void **state)
{
    op_fx *fx = *state;
    fx->opt.action = op_timed;
    fx->opt.timeout_ms = 10;
    op_start(fx);
    cb_result res;
    assert_int_equal(op_fire(fx, 100, &res), CB_ETIMEDOUT);
    assert_false(res.fallback);
    assert_string_equal(cb_err_name(CB_ETIMEDOUT), "CB_ETIMEDOUT");
    cb_stats st;
    op_stats(fx, &st);
    assert_int_equal(st.window.timeouts, 1);
    assert_int_equal(st.window.successes, 0);
}

/* A call that returns before its deadline is a success. */
static void call_within_its_timeout_succeeds(void **state)
{
    op_fx *fx = *state;
    fx->opt.action = op_timed;
    fx->opt.timeout_ms = 10;
    op_start(fx);
    cb_result res;
    assert_int_equal(op_fire(fx, 9, &res), CB_OK);
    assert_int_equal(OP_VAL(res.value), 9);
    assert_int_equal(op_count(fx, CB_EV_TIMEOUT), 0);
}

/* opossum: a timeout goes through handleError, so it counts toward opening. */
static void timeouts_open_the_circuit(void **state)
{
    op_fx *fx = *state;
    fx->opt.action = op_timed;
    fx->opt.timeout_ms = 10;
    fx->opt.error_threshold_percentage = 1;
    op_start(fx);
    assert_int_equal(op_fire(fx, 50, NULL), CB_ETIMEDOUT);
    assert_int_equal(op_state(fx), CB_OPEN);
    assert_int_equal(op_fire(fx, 1, NULL), CB_EOPEN);
}

/* The action receives its deadline on the breaker's clock and its budget. */
static void action_receives_its_deadline(void **state)
{
    op_fx *fx = *state;
    fx->opt.action = op_timed;
    fx->opt.timeout_ms = 250;
    op_start(fx);
    assert_int_equal(op_fire(fx, 1, NULL), CB_OK);
    assert_int_equal(fx->last_call.timeout_ms, 250);
    assert_int_equal(fx->last_call.deadline_ns, OP_CLOCK_START_NS + 250 * 1000000LL);
    assert_ptr_equal(fx->last_call.user, fx);
    assert_int_equal(fx->cancelled_seen, 0);
}

/* opossum "CircuitBreaker without a timeout": no deadline at all, so even a
 * one-hour call succeeds. */
static void breaker_without_a_timeout_never_times_out(void **state)
{
    op_fx *fx = *state;
    fx->opt.action = op_timed;
    fx->opt.timeout_ms = 0;
    op_start(fx);
    cb_result res;
    assert_int_equal(op_fire(fx, 3600 * 1000, &res), CB_OK);
    assert_int_equal(fx->last_call.deadline_ns, INT64_MAX);
    assert_int_equal(fx->last_call.timeout_ms, 0);
    assert_int_equal(op_count(fx, CB_EV_TIMEOUT), 0);
}

/* opossum "Circuit Breaker timeout with semaphore released": a timed-out call
 * gives its capacity slot back. */
static void timeout_releases_the_capacity_slot(void **state)
{
    op_fx *fx = *state;
    fx->opt.action = op_timed;
    fx->opt.timeout_ms = 10;
    fx->opt.capacity = 1;
    fx->opt.error_threshold_percentage = 100; /* the timeout must not open it */
    op_start(fx);
    assert_int_equal(op_fire(fx, 1000, NULL), CB_ETIMEDOUT);
    cb_stats st;
    op_stats(fx, &st);
    assert_int_equal(st.in_flight, 0);
    assert_int_equal(op_fire(fx, 1, NULL), CB_OK);
    assert_int_equal(op_count(fx, CB_EV_SEMAPHORE_LOCKED), 0);
}

/* ---- CB_TIMEOUT_POOL: real threads, the system clock -------------------- */

static double elapsed_ms(const struct timespec *a, const struct timespec *b)
{
    return (double)(b->tv_sec - a->tv_sec) * 1e3 + (double)(b->tv_nsec - a->tv_nsec) / 1e6;
}

/* Sets fx up for pool mode on the real clock with a short timeout. */
static void use_pool(op_fx *fx, int64_t timeout_ms)
{
    fx->opt.clock = cb_clock_system();
    fx->opt.timeout_mode = CB_TIMEOUT_POOL;
    fx->opt.pool_threads = 2;
    fx->opt.timeout_ms = timeout_ms;
    fx->opt.on_late = op_on_late;
}

/* opossum's timeout does not wait for the action: with the pool, fire returns
 * at the deadline even when the action ignores it, and opossum
 * "abortController ... should call abort() upon timeout": the action's
 * cancelled flag is raised. The late result goes to on_late. */
static void pool_returns_at_the_deadline_and_raises_cancelled(void **state)
{
    op_fx *fx = *state;
    use_pool(fx, 50);
    fx->opt.action = op_ignores_deadline;
    op_start(fx);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(op_fire(fx, 1, NULL), CB_ETIMEDOUT);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    bool late = op_wait_late(fx, 1, 3000);
    assert_true(late);
    assert_true(elapsed_ms(&t0, &t1) < 1000.0);
    assert_int_equal(fx->cancelled_seen, 1);
    assert_int_equal(fx->late_rc, 0);
    assert_int_equal(op_count(fx, CB_EV_TIMEOUT), 1);
}

/* opossum "abort controller should not be aborted if request completes
 * before timeout": an in-time call is never cancelled, on_late never runs. */
static void pool_call_in_time_is_not_cancelled(void **state)
{
    op_fx *fx = *state;
    use_pool(fx, 5000);
    fx->opt.action = op_ignores_deadline;
    op_start(fx);
    op_open_gate(fx); /* the action returns at once */
    cb_result res;
    assert_int_equal(op_fire(fx, 3, &res), CB_OK);
    assert_int_equal(OP_VAL(res.value), 3);
    assert_int_equal(fx->cancelled_seen, 0);
    assert_int_equal(fx->late_calls, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        OP_TEST(fails_when_the_action_times_out),
        OP_TEST(call_within_its_timeout_succeeds),
        OP_TEST(timeouts_open_the_circuit),
        OP_TEST(action_receives_its_deadline),
        OP_TEST(breaker_without_a_timeout_never_times_out),
        OP_TEST(timeout_releases_the_capacity_slot),
        OP_TEST(pool_returns_at_the_deadline_and_raises_cancelled),
        OP_TEST(pool_call_in_time_is_not_cancelled),
    };
    return cmocka_run_group_tests_name("opossum test.js: timeout", tests, NULL, NULL);
}
