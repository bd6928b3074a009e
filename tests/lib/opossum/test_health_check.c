/* test_health_check.c -- opossum's test/health-check-test.js: a periodic health check that opens the circuit when it fails. */
#include "harness.h"

static void start_with_health_check(op_fx *fx, int health_rc)
{
    fx->opt.health_check = op_health_check;
    fx->opt.health_check_interval_ms = 10000;
    fx->health_rc = health_rc;
    op_start(fx);
}

/* opossum "Circuits accept a health check function": it runs every interval. */
static void health_check_runs_every_interval(void **state)
{
    op_fx *fx = *state;
    start_with_health_check(fx, 0);
    op_advance(fx, 0);
    int before = fx->health_calls;
    op_advance(fx, 9999);
    assert_int_equal(fx->health_calls, before);
    op_advance(fx, 1);
    assert_int_equal(fx->health_calls, before + 1);
    op_advance(fx, 10000);
    assert_int_equal(fx->health_calls, before + 2);
}

/* A healthy check leaves the circuit alone. */
static void passing_health_check_keeps_the_circuit_closed(void **state)
{
    op_fx *fx = *state;
    start_with_health_check(fx, 0);
    for (int i = 0; i < 3; i++)
        op_advance(fx, 10000);
    assert_true(fx->health_calls >= 3);
    assert_int_equal(op_state(fx), CB_CLOSED);
    assert_int_equal(op_count(fx, CB_EV_HEALTH_CHECK_FAILED), 0);
}

/* opossum "healthCheckFailed is emitted on failure". */
static void failing_health_check_emits_health_check_failed(void **state)
{
    op_fx *fx = *state;
    start_with_health_check(fx, 1);
    op_advance(fx, 10000);
    assert_true(fx->health_calls >= 1);
    assert_true(op_count(fx, CB_EV_HEALTH_CHECK_FAILED) >= 1);
}

/* opossum "circuit opens on health check failure": open event, then calls
 * are rejected. */
static void failing_health_check_opens_the_circuit(void **state)
{
    op_fx *fx = *state;
    start_with_health_check(fx, 1);
    op_advance(fx, 10000);
    assert_int_equal(op_state(fx), CB_OPEN);
    assert_int_equal(op_count(fx, CB_EV_OPEN), 1);
    assert_int_equal(op_fire(fx, 1, NULL), CB_EOPEN);
    assert_int_equal(fx->action_calls, 0);
}

/* opossum open() does nothing on an open circuit: a check that keeps
 * failing opens it once and does not restart its timer. */
static void repeated_health_check_failures_open_once(void **state)
{
    op_fx *fx = *state;
    fx->opt.reset_timeout_ms = 25000;
    start_with_health_check(fx, 1);
    op_advance(fx, 10000);
    op_advance(fx, 10000);
    assert_true(fx->health_calls >= 2);
    assert_int_equal(op_count(fx, CB_EV_OPEN), 1);
    assert_true(op_count(fx, CB_EV_HEALTH_CHECK_FAILED) >= 2);
    fx->health_rc = 0;
    op_advance(fx, 10000);
    op_advance(fx, 4999); /* 24.999 s after the first failure */
    assert_int_equal(op_state(fx), CB_OPEN);
    op_advance(fx, 1);    /* 25 s: the timer started by the first failure */
    assert_int_equal(op_state(fx), CB_HALF_OPEN);
}

/* opossum "Health check function executes in the circuit breaker context":
 * the check receives cb_options.user. */
static void health_check_receives_the_user_context(void **state)
{
    op_fx *fx = *state;
    start_with_health_check(fx, 0);
    op_advance(fx, 10000);
    assert_true(fx->health_calls >= 1); /* op_health_check counts through user */
}

/* The health check opens; after the open period the circuit goes half-open
 * and a good trial closes it as usual. */
static void circuit_opened_by_health_check_recovers(void **state)
{
    op_fx *fx = *state;
    fx->opt.reset_timeout_ms = 1000;
    start_with_health_check(fx, 1);
    op_advance(fx, 10000);
    assert_int_equal(op_state(fx), CB_OPEN);
    fx->health_rc = 0;
    op_advance(fx, 1000);
    assert_int_equal(op_state(fx), CB_HALF_OPEN);
    assert_int_equal(op_fire(fx, 1, NULL), CB_OK);
    assert_int_equal(op_state(fx), CB_CLOSED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        OP_TEST(health_check_runs_every_interval),
        OP_TEST(passing_health_check_keeps_the_circuit_closed),
        OP_TEST(failing_health_check_emits_health_check_failed),
        OP_TEST(failing_health_check_opens_the_circuit),
        OP_TEST(repeated_health_check_failures_open_once),
        OP_TEST(health_check_receives_the_user_context),
        OP_TEST(circuit_opened_by_health_check_recovers),
    };
    return cmocka_run_group_tests_name("opossum health-check-test.js", tests, NULL, NULL);
}
