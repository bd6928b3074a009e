/* test_shutdown.c -- opossum's test/circuit-shutdown-test.js: shutting a breaker down. */
#include "harness.h"

/* opossum "EventEmitter max listeners": creating, firing and shutting down
 * many breakers leaves nothing behind (AddressSanitizer's leak check). */
static void many_breakers_created_fired_and_shut_down_leak_nothing(void **state)
{
    op_fx *fx = *state;
    for (int i = 0; i < 100; i++) {
        cb_breaker *b = NULL;
        assert_int_equal(cb_create(&fx->opt, &b), CB_OK);
        assert_int_equal(cb_fire(b, OP_ARG(1), NULL), CB_OK);
        assert_int_equal(cb_shutdown(b), CB_OK);
        cb_destroy(b);
    }
    assert_int_equal(fx->action_calls, 100);
}

/* opossum "Circuit shuts down properly": a shutdown event, the shutdown
 * state, and every later fire refused with ESHUTDOWN without running. */
static void shutdown_emits_event_and_refuses_later_fires(void **state)
{
    op_fx *fx = *state;
    op_start(fx);
    assert_int_equal(op_fire(fx, 1, NULL), CB_OK);
    assert_int_equal(cb_shutdown(fx->b), CB_OK);
    assert_int_equal(op_count(fx, CB_EV_SHUTDOWN), 1);
    assert_int_equal(op_state(fx), CB_SHUTDOWN);
    cb_result res;
    assert_int_equal(op_fire(fx, 1, &res), CB_ESHUTDOWN);
    assert_false(res.fallback);
    assert_int_equal(fx->action_calls, 1);
    assert_string_equal(cb_err_name(CB_ESHUTDOWN), "CB_ESHUTDOWN");
}

/* opossum's shutdown returns before fire emits anything: no fire event,
 * no fallback, for a call after shutdown. */
static void fire_after_shutdown_emits_nothing_and_skips_fallback(void **state)
{
    op_fx *fx = *state;
    fx->opt.fallback = op_fallback_echo;
    op_start(fx);
    assert_int_equal(cb_shutdown(fx->b), CB_OK);
    op_clear_events(fx);
    assert_int_equal(op_fire(fx, 1, NULL), CB_ESHUTDOWN);
    assert_int_equal(op_count(fx, CB_EV_FIRE), 0);
    assert_int_equal(fx->fallback_calls, 0);
}

/* Shutting down twice is harmless and announced once. */
static void shutdown_is_idempotent(void **state)
{
    op_fx *fx = *state;
    op_start(fx);
    assert_int_equal(cb_shutdown(fx->b), CB_OK);
    assert_int_equal(cb_shutdown(fx->b), CB_OK);
    assert_int_equal(op_count(fx, CB_EV_SHUTDOWN), 1);
}

/* Shutdown while open: no timer wakes it up to half-open later. */
static void shutdown_stops_the_reset_timer(void **state)
{
    op_fx *fx = *state;
    fx->opt.error_threshold_percentage = 1;
    fx->opt.reset_timeout_ms = 100;
    op_start(fx);
    assert_int_equal(op_fire(fx, -1, NULL), CB_EFAILED);
    assert_int_equal(cb_shutdown(fx->b), CB_OK);
    op_advance(fx, 1000);
    assert_int_equal(op_state(fx), CB_SHUTDOWN);
    assert_int_equal(op_count(fx, CB_EV_HALF_OPEN), 0);
    assert_int_equal(op_count(fx, CB_EV_SNAPSHOT), 0); /* status.shutdown() stops them */
    assert_int_equal(op_fire(fx, 1, NULL), CB_ESHUTDOWN);
}

static void shut_down_from_inside(op_fx *fx, const cb_call *call)
{
    (void)call;
    cb_shutdown(fx->b);
}

/* A call in flight when the breaker shuts down sees its cancelled flag. */
static void shutdown_raises_cancelled_flag_of_calls_in_flight(void **state)
{
    op_fx *fx = *state;
    fx->opt.action = op_timed;
    fx->opt.timeout_ms = 0;
    op_start(fx);
    fx->inside = shut_down_from_inside;
    (void)op_fire(fx, 1, NULL);
    assert_int_equal(fx->cancelled_seen, 1);
    assert_int_equal(op_state(fx), CB_SHUTDOWN);
}

/* opossum shutdown from state: destroy without shutdown first is fine too. */
static void destroy_without_shutdown_announces_shutdown(void **state)
{
    op_fx *fx = *state;
    op_start(fx);
    assert_int_equal(op_fire(fx, 1, NULL), CB_OK);
    cb_destroy(fx->b);
    fx->b = NULL;
    assert_int_equal(op_count(fx, CB_EV_SHUTDOWN), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        OP_TEST(many_breakers_created_fired_and_shut_down_leak_nothing),
        OP_TEST(shutdown_emits_event_and_refuses_later_fires),
        OP_TEST(fire_after_shutdown_emits_nothing_and_skips_fallback),
        OP_TEST(shutdown_is_idempotent),
        OP_TEST(shutdown_stops_the_reset_timer),
        OP_TEST(shutdown_raises_cancelled_flag_of_calls_in_flight),
        OP_TEST(destroy_without_shutdown_announces_shutdown),
    };
    return cmocka_run_group_tests_name("opossum circuit-shutdown-test.js", tests, NULL, NULL);
}
