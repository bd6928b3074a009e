/* test_events.c -- opossum's test/test.js, events part: which events a call emits, in what order, with what data. */
#include "harness.h"

#include <string.h>

#define STATE_EVENTS (CB_EV_MASK(CB_EV_OPEN) | CB_EV_MASK(CB_EV_HALF_OPEN) | CB_EV_MASK(CB_EV_CLOSE))

/* opossum "CircuitBreaker events": the counts of every event kind through a
 * success, a failure that opens, a rejection, half-open and a closing success. */
static void events_follow_a_full_open_half_open_close_cycle(void **state)
{
    op_fx *fx = *state;
    fx->opt.error_threshold_percentage = 1;
    fx->opt.timeout_ms = 500;
    fx->opt.reset_timeout_ms = 500;
    op_start(fx);

    assert_int_equal(op_fire(fx, 10, NULL), CB_OK);
    const cb_event_kind after_success[] = { CB_EV_FIRE, CB_EV_SUCCESS };
    op_assert_sequence(fx, CB_EV_ALL & ~CB_EV_MASK(CB_EV_SNAPSHOT), after_success, 2);

    assert_int_equal(op_fire(fx, -1, NULL), CB_EFAILED);
    assert_int_equal(op_count(fx, CB_EV_FIRE), 2);
    assert_int_equal(op_count(fx, CB_EV_FAILURE), 1);
    assert_int_equal(op_count(fx, CB_EV_OPEN), 1);
    assert_int_equal(op_count(fx, CB_EV_REJECT), 0);

    assert_int_equal(op_fire(fx, 10, NULL), CB_EOPEN);
    assert_int_equal(op_count(fx, CB_EV_FIRE), 3);
    assert_int_equal(op_count(fx, CB_EV_REJECT), 1);
    assert_int_equal(op_count(fx, CB_EV_SUCCESS), 1);

    op_advance(fx, 500);
    assert_int_equal(op_count(fx, CB_EV_HALF_OPEN), 1);
    assert_int_equal(op_count(fx, CB_EV_FIRE), 3);

    assert_int_equal(op_fire(fx, 10, NULL), CB_OK);
    assert_int_equal(op_count(fx, CB_EV_FIRE), 4);
    assert_int_equal(op_count(fx, CB_EV_SUCCESS), 2);
    assert_int_equal(op_count(fx, CB_EV_FAILURE), 1);
    assert_int_equal(op_count(fx, CB_EV_REJECT), 1);
    assert_int_equal(op_count(fx, CB_EV_OPEN), 1);
    assert_int_equal(op_count(fx, CB_EV_CLOSE), 1);
    assert_int_equal(op_count(fx, CB_EV_HALF_OPEN), 1);
    assert_int_equal(op_count(fx, CB_EV_TIMEOUT), 0);
    assert_int_equal(op_count(fx, CB_EV_FALLBACK), 0);
    const cb_event_kind states[] = { CB_EV_OPEN, CB_EV_HALF_OPEN, CB_EV_CLOSE };
    op_assert_sequence(fx, STATE_EVENTS, states, 3);
}

/* opossum: a failing call emits fire, then failure, then open. */
static void failure_that_opens_emits_fire_failure_open_in_order(void **state)
{
    op_fx *fx = *state;
    fx->opt.error_threshold_percentage = 1;
    op_start(fx);
    assert_int_equal(op_fire(fx, -1, NULL), CB_EFAILED);
    const cb_event_kind want[] = { CB_EV_FIRE, CB_EV_FAILURE, CB_EV_OPEN };
    op_assert_sequence(fx, CB_EV_ALL & ~CB_EV_MASK(CB_EV_SNAPSHOT), want, 3);
    assert_int_equal(op_last(fx, CB_EV_OPEN)->state, CB_OPEN);
}

/* opossum's timeout breaker in "CircuitBreaker events": a timeout event. */
static void timeout_emits_a_timeout_event(void **state)
{
    op_fx *fx = *state;
    fx->opt.action = op_timed;
    fx->opt.timeout_ms = 500;
    op_start(fx);
    assert_int_equal(op_fire(fx, 10000, NULL), CB_ETIMEDOUT);
    assert_int_equal(op_count(fx, CB_EV_TIMEOUT), 1);
    assert_int_equal(op_count(fx, CB_EV_SUCCESS), 0);
    assert_int_equal(op_last(fx, CB_EV_TIMEOUT)->error, CB_ETIMEDOUT);
}

/* opossum "Circuit Breaker success event emits latency". */
static void success_event_carries_latency(void **state)
{
    op_fx *fx = *state;
    fx->opt.action = op_timed;
    op_start(fx);
    cb_result res;
    assert_int_equal(op_fire(fx, 5, &res), CB_OK);
    const cb_event *ev = op_last(fx, CB_EV_SUCCESS);
    assert_non_null(ev);
    assert_true(ev->latency_ms > 4.999 && ev->latency_ms < 5.001);
    assert_true(res.latency_ms > 4.999 && res.latency_ms < 5.001);
}

/* opossum "Circuit Breaker failure event emits latency". */
static void failure_event_carries_latency(void **state)
{
    op_fx *fx = *state;
    fx->opt.action = op_timed_failing;
    op_start(fx);
    assert_int_equal(op_fire(fx, 7, NULL), CB_EFAILED);
    const cb_event *ev = op_last(fx, CB_EV_FAILURE);
    assert_non_null(ev);
    assert_true(ev->latency_ms > 6.999 && ev->latency_ms < 7.001);
    assert_int_equal(ev->action_rc, OP_FAIL_RC);
}

/* opossum "Circuit Breaker timeout event emits latency": at least the timeout. */
static void timeout_event_carries_latency(void **state)
{
    op_fx *fx = *state;
    fx->opt.action = op_timed;
    fx->opt.timeout_ms = 10;
    op_start(fx);
    assert_int_equal(op_fire(fx, 10000, NULL), CB_ETIMEDOUT);
    const cb_event *ev = op_last(fx, CB_EV_TIMEOUT);
    assert_non_null(ev);
    assert_true(ev->latency_ms >= 10.0);
}

/* Events carry the breaker's clock time. */
static void events_carry_the_clock_time(void **state)
{
    op_fx *fx = *state;
    op_start(fx);
    cb_manual_clock_advance_ms(fx->clock, 42);
    assert_int_equal(op_fire(fx, 1, NULL), CB_OK);
    assert_int_equal(op_last(fx, CB_EV_FIRE)->time_ns, OP_CLOCK_START_NS + 42 * 1000000LL);
}

/* ---- snapshot (opossum "CircuitBreaker status listeners") ---------------- */

typedef struct snap_rec {
    int n;
    cb_stats last;
} snap_rec;

static void record_snapshot(cb_breaker *b, const cb_event *ev, void *ctx)
{
    snap_rec *r = ctx;
    (void)b;
    if (ev->kind != CB_EV_SNAPSHOT || !ev->stats)
        return;
    r->n++;
    r->last = *ev->stats;
}

/* A snapshot with the window's counts is emitted once per bucket interval. */
static void snapshot_is_emitted_once_per_bucket_with_window_stats(void **state)
{
    op_fx *fx = *state;
    snap_rec rec;
    memset(&rec, 0, sizeof rec);
    fx->opt.rolling_count_timeout_ms = 2500;
    fx->opt.rolling_count_buckets = 25;
    op_start(fx);
    assert_true(cb_on(fx->b, CB_EV_MASK(CB_EV_SNAPSHOT), record_snapshot, &rec) > 0);
    assert_int_equal(op_fire(fx, 10, NULL), CB_OK);
    assert_int_equal(op_fire(fx, -1, NULL), CB_EFAILED);
    op_advance(fx, 100);
    assert_int_equal(rec.n, 1);
    assert_int_equal(rec.last.window.fires, 2);
    assert_int_equal(rec.last.window.successes, 1);
    assert_int_equal(rec.last.window.failures, 1);
    assert_int_equal(rec.last.window.fallbacks, 0);
    assert_int_equal(rec.last.window.rejects, 0);
    assert_int_equal(rec.last.window.timeouts, 0);
    op_advance(fx, 100);
    assert_int_equal(rec.n, 2);
    op_advance(fx, 50);
    assert_int_equal(rec.n, 2);
}

/* ---- listeners ----------------------------------------------------------- */

typedef struct order_rec {
    int seq[8];
    int n;
} order_rec;

static void first_listener(cb_breaker *b, const cb_event *ev, void *ctx)
{
    order_rec *r = ctx;
    (void)b;
    if (ev->kind == CB_EV_SUCCESS && r->n < 8)
        r->seq[r->n++] = 1;
}

static void second_listener(cb_breaker *b, const cb_event *ev, void *ctx)
{
    order_rec *r = ctx;
    (void)b;
    if (ev->kind == CB_EV_SUCCESS && r->n < 8)
        r->seq[r->n++] = 2;
}

/* Listeners run in registration order, only for their mask, until removed. */
static void listeners_run_in_order_for_their_kinds_until_removed(void **state)
{
    op_fx *fx = *state;
    order_rec r;
    memset(&r, 0, sizeof r);
    fx->opt.error_threshold_percentage = 100; /* never opens */
    op_start(fx);
    int id1 = cb_on(fx->b, CB_EV_MASK(CB_EV_SUCCESS), first_listener, &r);
    int id2 = cb_on(fx->b, CB_EV_MASK(CB_EV_SUCCESS), second_listener, &r);
    assert_true(id1 > 0 && id2 > 0 && id1 != id2);
    assert_int_equal(op_fire(fx, -1, NULL), CB_EFAILED);
    assert_int_equal(r.n, 0);
    assert_int_equal(op_fire(fx, 1, NULL), CB_OK);
    assert_int_equal(r.n, 2);
    assert_int_equal(r.seq[0], 1);
    assert_int_equal(r.seq[1], 2);
    assert_int_equal(cb_off(fx->b, id1), CB_OK);
    assert_int_equal(cb_off(fx->b, id1), CB_ENOTFOUND);
    assert_int_equal(op_fire(fx, 1, NULL), CB_OK);
    assert_int_equal(r.n, 3);
    assert_int_equal(r.seq[2], 2);
}

/* opossum's event names. */
static void event_names_are_opossums(void **state)
{
    (void)state;
    const char *want[CB_EV_COUNT] = {
        "fire", "success", "failure", "timeout", "reject", "open", "halfOpen",
        "close", "fallback", "semaphoreLocked", "healthCheckFailed", "shutdown",
        "cacheHit", "cacheMiss", "coalesceCacheHit", "coalesceCacheMiss", "snapshot",
    };
    for (int k = 0; k < CB_EV_COUNT; k++)
        assert_string_equal(cb_event_name((cb_event_kind)k), want[k]);
    assert_non_null(cb_event_name(CB_EV_COUNT));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        OP_TEST(events_follow_a_full_open_half_open_close_cycle),
        OP_TEST(failure_that_opens_emits_fire_failure_open_in_order),
        OP_TEST(timeout_emits_a_timeout_event),
        OP_TEST(success_event_carries_latency),
        OP_TEST(failure_event_carries_latency),
        OP_TEST(timeout_event_carries_latency),
        OP_TEST(events_carry_the_clock_time),
        OP_TEST(snapshot_is_emitted_once_per_bucket_with_window_stats),
        OP_TEST(listeners_run_in_order_for_their_kinds_until_removed),
        OP_TEST(event_names_are_opossums),
    };
    return cmocka_run_group_tests_name("opossum test.js: events", tests, NULL, NULL);
}
