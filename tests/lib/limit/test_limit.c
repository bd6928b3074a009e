/* test_limit.c -- the adaptive concurrency limit of cb_limit.h (cmocka):
 * options, the Vegas arithmetic against a table computed by hand under a
 * manual clock, refusal at the limit with CB_ELIMIT, the bounds, events,
 * runtime options, and threads sharing one limiter (for TSan).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "cb.h"
#include "cb_limit.h"

#define MS 1000000LL

/* Counts the events a listener hears and keeps the last of each kind. */
typedef struct heard {
    int n[CB_LEV_COUNT];
    cb_limit_event last[CB_LEV_COUNT];
} heard;

static void on_event(cb_limit *l, const cb_limit_event *ev, void *ctx)
{
    (void)l;
    heard *h = ctx;
    h->n[ev->kind]++;
    h->last[ev->kind] = *ev;
}

/* A limiter on a manual clock at 1 s: initial 10, bounds [2, 12], alpha 3,
 * beta 6, backoff 0.9, a 1000 ms window. */
static cb_limit *table_limiter(cb_manual_clock *mc)
{
    cb_limit_options o;
    cb_limit_options_init(&o);
    o.initial_limit = 10;
    o.min_limit = 2;
    o.max_limit = 12;
    o.alpha = 3;
    o.beta = 6;
    o.backoff_ratio = 0.9;
    o.rtt_window_ms = 1000;
    o.clock = cb_manual_clock_get(mc);
    cb_limit *l = NULL;
    assert_int_equal(cb_limit_create(&o, &l), CB_OK);
    return l;
}

static void defaults_are_the_documented_ones(void **state)
{
    (void)state;
    cb_limit_options o;
    cb_limit_options_init(&o);
    assert_string_equal(o.name, "limit");
    assert_int_equal(o.initial_limit, 20);
    assert_int_equal(o.min_limit, 1);
    assert_int_equal(o.max_limit, 200);
    assert_int_equal(o.alpha, 3);
    assert_int_equal(o.beta, 6);
    assert_true(o.backoff_ratio == 0.9);
    assert_int_equal(o.rtt_window_ms, 10000);
    assert_non_null(o.clock.now_ns);
}

static void invalid_options_are_refused(void **state)
{
    (void)state;
    static const struct { const char *what; int field; double value; } bad[] = {
        { "max 0", 0, 0 }, { "max too large", 0, 100001 }, { "min 0", 1, 0 },
        { "min above max", 1, 201 }, { "alpha negative", 2, -1 }, { "alpha above beta", 2, 7 },
        { "beta too large", 3, 100001 }, { "ratio below 0.5", 4, 0.49 }, { "ratio above 1", 4, 1.01 },
        { "window negative", 5, -1 },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cb_limit_options o;
        cb_limit_options_init(&o);
        int v = (int)bad[i].value;
        switch (bad[i].field) {
        case 0: o.max_limit = v; break;
        case 1: o.min_limit = v; break;
        case 2: o.alpha = v; break;
        case 3: o.beta = v; break;
        case 4: o.backoff_ratio = bad[i].value; break;
        default: o.rtt_window_ms = v; break;
        }
        cb_limit *l = NULL;
        if (cb_limit_create(&o, &l) != CB_EINVAL)
            fail_msg("%s: accepted", bad[i].what);
        assert_null(l);
    }
    cb_limit_options o;
    cb_limit_options_init(&o);
    o.clock.now_ns = NULL;
    cb_limit *l = NULL;
    assert_int_equal(cb_limit_create(&o, &l), CB_EINVAL);
    assert_int_equal(cb_limit_create(NULL, &l), CB_EINVAL);
    cb_limit_options_init(&o);
    assert_int_equal(cb_limit_create(&o, NULL), CB_EINVAL);
    assert_int_equal(cb_limit_acquire(NULL, NULL), CB_EINVAL);
}

/* One row: idle time, then (after releasing background tokens down to bg,
 * when bg >= 0) one call of rtt_ms with an outcome; the limit and the
 * no-load estimate after it, computed by hand from cb_limit.h's table. */
typedef struct row {
    int64_t idle_ms;
    int bg;
    int64_t rtt_ms;
    cb_limit_outcome outcome;
    int limit;
    int64_t no_load_ms;
} row;

/* Background: 5 tokens held, so that in_flight at a release is 6 and
 * 6 * 2 >= the limit (not application-limited) while the limit is <= 12. */
static const row table[] = {
    /* rtt 10, the first sample: no_load 10, queue ceil(10*0/10) = 0 < 3: +1 */
    { 0, -1, 10, CB_LIMIT_SUCCESS, 11, 10 },
    { 0, -1, 10, CB_LIMIT_SUCCESS, 12, 10 },
    /* queue 0 again, but 13 is above max_limit 12 */
    { 0, -1, 10, CB_LIMIT_SUCCESS, 12, 10 },
    /* queue ceil(12*10/20) = 6: not above beta 6, unchanged */
    { 0, -1, 20, CB_LIMIT_SUCCESS, 12, 10 },
    /* queue ceil(12*20/30) = 8 > 6: -1 */
    { 0, -1, 30, CB_LIMIT_SUCCESS, 11, 10 },
    /* queue ceil(11*30/40) = ceil(8.25) = 9 > 6: -1 */
    { 0, -1, 40, CB_LIMIT_SUCCESS, 10, 10 },
    /* dropped: min(10-1, floor(10*0.9) = 9) */
    { 0, -1, 10, CB_LIMIT_DROPPED, 9, 10 },
    /* floor(8.1) = 8; floor(7.2) = 7; floor(6.3) = 6 */
    { 0, -1, 10, CB_LIMIT_DROPPED, 8, 10 },
    { 0, -1, 10, CB_LIMIT_DROPPED, 7, 10 },
    { 0, -1, 10, CB_LIMIT_DROPPED, 6, 10 },
    /* rtt 8 below the estimate: no_load 8, queue 0: +1 */
    { 0, -1, 8, CB_LIMIT_SUCCESS, 7, 8 },
    /* an ignored call moves nothing */
    { 0, -1, 500, CB_LIMIT_IGNORED, 7, 8 },
    /* 1000 ms later the window has passed: no_load restarts at 20, queue 0: +1 */
    { 1000, -1, 20, CB_LIMIT_SUCCESS, 8, 20 },
    /* one token in the background: in_flight 2, 2*2 < 8, application-limited:
     * unchanged although queue would be ceil(8*80/100) = 7; no_load stays 20 */
    { 0, 1, 100, CB_LIMIT_SUCCESS, 8, 20 },
    /* drops down to min_limit 2: 7.2 -> 7, 6.3 -> 6, 5.4 -> 5, 4.5 -> 4, 3.6 -> 3,
     * 2.7 -> 2, then 1.8 -> 1 clamped to 2 */
    { 0, 1, 10, CB_LIMIT_DROPPED, 7, 20 },
    { 0, 1, 10, CB_LIMIT_DROPPED, 6, 20 },
    { 0, 1, 10, CB_LIMIT_DROPPED, 5, 20 },
    { 0, 1, 10, CB_LIMIT_DROPPED, 4, 20 },
    { 0, 1, 10, CB_LIMIT_DROPPED, 3, 20 },
    { 0, 1, 10, CB_LIMIT_DROPPED, 2, 20 },
    { 0, 1, 10, CB_LIMIT_DROPPED, 2, 20 },
};

static void the_limit_follows_the_hand_computed_table(void **state)
{
    (void)state;
    cb_manual_clock *mc = cb_manual_clock_new(1000 * MS);
    cb_limit *l = table_limiter(mc);
    heard h = { 0 };
    assert_true(cb_limit_on(l, CB_LEV_ALL, on_event, &h) > 0);
    cb_limit_token bg[5];
    int nbg = 5;
    for (int i = 0; i < nbg; i++)
        assert_int_equal(cb_limit_acquire(l, &bg[i]), CB_OK);
    int changes = 0, before = 10;
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        const row *r = &table[i];
        while (r->bg >= 0 && nbg > r->bg)
            assert_int_equal(cb_limit_release(l, &bg[--nbg], CB_LIMIT_IGNORED), CB_OK);
        cb_manual_clock_advance_ms(mc, r->idle_ms);
        cb_limit_token t;
        assert_int_equal(cb_limit_acquire(l, &t), CB_OK);
        cb_manual_clock_advance_ms(mc, r->rtt_ms);
        assert_int_equal(cb_limit_release(l, &t, r->outcome), CB_OK);
        cb_limit_stats st;
        assert_int_equal(cb_limit_get_stats(l, &st), CB_OK);
        if (st.limit != r->limit || st.no_load_ns != r->no_load_ms * MS)
            fail_msg("row %zu: limit %d (want %d), no_load %lld ns (want %lld ms)", i, st.limit,
                     r->limit, (long long)st.no_load_ns, (long long)r->no_load_ms);
        assert_int_equal(st.in_flight, nbg);
        if (st.limit != before) {
            changes++;
            assert_int_equal(h.last[CB_LEV_LIMIT].old_limit, before);
            assert_int_equal(h.last[CB_LEV_LIMIT].limit, st.limit);
            assert_int_equal(h.last[CB_LEV_LIMIT].outcome, r->outcome);
        }
        before = st.limit;
    }
    assert_int_equal(h.n[CB_LEV_LIMIT], changes);
    assert_int_equal(h.n[CB_LEV_SHED], 0);
    while (nbg > 0)
        assert_int_equal(cb_limit_release(l, &bg[--nbg], CB_LIMIT_IGNORED), CB_OK);
    cb_limit_stats st;
    cb_limit_get_stats(l, &st);
    assert_int_equal(st.in_flight, 0);
    assert_int_equal(st.samples, 9);
    assert_int_equal(st.dropped, 11);
    assert_int_equal(st.last_rtt_ns, 100 * MS);
    cb_limit_destroy(l);
    cb_manual_clock_free(mc);
}

static void the_event_carries_the_queue_estimate(void **state)
{
    (void)state;
    cb_manual_clock *mc = cb_manual_clock_new(1000 * MS);
    cb_limit *l = table_limiter(mc);
    heard h = { 0 };
    cb_limit_on(l, CB_LEV_MASK(CB_LEV_LIMIT), on_event, &h);
    cb_limit_token t[7];
    for (int i = 0; i < 7; i++)
        assert_int_equal(cb_limit_acquire(l, &t[i]), CB_OK);
    cb_manual_clock_advance_ms(mc, 10);
    cb_limit_release(l, &t[0], CB_LIMIT_SUCCESS);     /* in flight 7: no_load 10 -> 11 */
    cb_manual_clock_advance_ms(mc, 30);
    cb_limit_release(l, &t[1], CB_LIMIT_SUCCESS);     /* in flight 6, rtt 40: ceil(11*30/40) = 9 -> 10 */
    assert_int_equal(h.n[CB_LEV_LIMIT], 2);
    assert_int_equal(h.last[CB_LEV_LIMIT].queue, 9);
    assert_int_equal(h.last[CB_LEV_LIMIT].rtt_ns, 40 * MS);
    assert_int_equal(h.last[CB_LEV_LIMIT].no_load_ns, 10 * MS);
    assert_int_equal(h.last[CB_LEV_LIMIT].in_flight, 5);
    for (int i = 2; i < 7; i++)
        cb_limit_release(l, &t[i], CB_LIMIT_IGNORED);
    cb_limit_destroy(l);
    cb_manual_clock_free(mc);
}

static void a_call_at_the_limit_is_refused_with_CB_ELIMIT(void **state)
{
    (void)state;
    cb_manual_clock *mc = cb_manual_clock_new(1000 * MS);
    cb_limit_options o;
    cb_limit_options_init(&o);
    o.initial_limit = 3;
    o.clock = cb_manual_clock_get(mc);
    cb_limit *l = NULL;
    assert_int_equal(cb_limit_create(&o, &l), CB_OK);
    heard h = { 0 };
    cb_limit_on(l, CB_LEV_MASK(CB_LEV_SHED), on_event, &h);
    cb_limit_token t[4];
    for (int i = 0; i < 3; i++)
        assert_int_equal(cb_limit_acquire(l, &t[i]), CB_OK);
    assert_int_equal(cb_limit_acquire(l, &t[3]), CB_ELIMIT);
    assert_false(t[3].held);
    assert_int_equal(cb_limit_release(l, &t[3], CB_LIMIT_SUCCESS), CB_EINVAL);
    assert_int_equal(h.n[CB_LEV_SHED], 1);
    assert_int_equal(h.last[CB_LEV_SHED].limit, 3);
    assert_int_equal(h.last[CB_LEV_SHED].in_flight, 3);
    assert_string_equal(cb_err_name(CB_ELIMIT), "CB_ELIMIT");
    assert_string_equal(cb_strerror(CB_ELIMIT), "concurrency limit reached");
    cb_limit_stats st;
    cb_limit_get_stats(l, &st);
    assert_int_equal(st.admitted, 3);
    assert_int_equal(st.shed, 1);
    assert_int_equal(st.in_flight, 3);
    assert_int_equal(cb_limit_release(l, &t[0], CB_LIMIT_IGNORED), CB_OK);
    assert_int_equal(cb_limit_release(l, &t[0], CB_LIMIT_IGNORED), CB_EINVAL);   /* twice */
    assert_int_equal(cb_limit_acquire(l, &t[0]), CB_OK);
    for (int i = 0; i < 3; i++)
        assert_int_equal(cb_limit_release(l, &t[i], CB_LIMIT_IGNORED), CB_OK);
    cb_limit_destroy(l);
    cb_manual_clock_free(mc);
}

static void the_initial_limit_is_clamped_into_the_bounds(void **state)
{
    (void)state;
    cb_limit_options o;
    cb_limit_options_init(&o);
    o.initial_limit = 500;
    o.max_limit = 50;
    cb_limit *l = NULL;
    assert_int_equal(cb_limit_create(&o, &l), CB_OK);
    cb_limit_stats st;
    cb_limit_get_stats(l, &st);
    assert_int_equal(st.limit, 50);
    o.initial_limit = 0;
    o.min_limit = 4;
    assert_int_equal(cb_limit_set_options(l, &o), CB_OK);
    cb_limit_get_stats(l, &st);
    assert_int_equal(st.limit, 4);
    cb_limit_destroy(l);
}

static void new_options_reset_the_limit_and_keep_the_calls_in_flight(void **state)
{
    (void)state;
    cb_manual_clock *mc = cb_manual_clock_new(1000 * MS);
    cb_limit *l = table_limiter(mc);
    cb_limit_token t[2];
    cb_limit_acquire(l, &t[0]);
    cb_limit_acquire(l, &t[1]);
    cb_manual_clock_advance_ms(mc, 10);
    cb_limit_release(l, &t[0], CB_LIMIT_DROPPED);            /* 10 -> 9 */
    cb_limit_options o;
    assert_int_equal(cb_limit_get_options(l, &o), CB_OK);
    o.initial_limit = 1;
    o.min_limit = 1;
    o.max_limit = 1;
    assert_int_equal(cb_limit_set_options(l, &o), CB_OK);
    cb_limit_token u;
    assert_int_equal(cb_limit_acquire(l, &u), CB_ELIMIT);       /* t[1] still in flight */
    assert_int_equal(cb_limit_release(l, &t[1], CB_LIMIT_SUCCESS), CB_OK);
    assert_int_equal(cb_limit_acquire(l, &u), CB_OK);
    cb_limit_release(l, &u, CB_LIMIT_IGNORED);
    o.alpha = 9;                                                /* above beta 6 */
    assert_int_equal(cb_limit_set_options(l, &o), CB_EINVAL);
    cb_limit_options now;
    cb_limit_get_options(l, &now);
    assert_int_equal(now.alpha, 3);
    assert_string_equal(now.name, "limit");
    cb_limit_destroy(l);
    cb_manual_clock_free(mc);
}

static void listeners_come_and_go(void **state)
{
    (void)state;
    cb_limit_options o;
    cb_limit_options_init(&o);
    cb_limit *l = NULL;
    cb_limit_create(&o, &l);
    heard h = { 0 };
    int ids[CB_LIMIT_MAX_LISTENERS];
    for (int i = 0; i < CB_LIMIT_MAX_LISTENERS; i++)
        assert_true((ids[i] = cb_limit_on(l, CB_LEV_ALL, on_event, &h)) > 0);
    assert_int_equal(cb_limit_on(l, CB_LEV_ALL, on_event, &h), CB_ENOMEM);
    assert_int_equal(cb_limit_on(l, 0, on_event, &h), CB_EINVAL);
    assert_int_equal(cb_limit_on(l, CB_LEV_ALL, NULL, &h), CB_EINVAL);
    for (int i = 0; i < CB_LIMIT_MAX_LISTENERS; i++)
        assert_int_equal(cb_limit_off(l, ids[i]), CB_OK);
    assert_int_equal(cb_limit_off(l, ids[0]), CB_ENOTFOUND);
    assert_string_equal(cb_limit_event_name(CB_LEV_SHED), "shed");
    assert_string_equal(cb_limit_event_name(CB_LEV_COUNT), "unknown");
    cb_limit_destroy(l);
}

/* ---- threads ----------------------------------------------------------- */

#define THREADS 4
#define ROUNDS 20000

typedef struct shared {
    cb_limit *l;
    _Atomic int inside;
    _Atomic int most_inside;
    _Atomic uint64_t admitted, shed;
} shared;

static void *worker(void *arg)
{
    shared *s = arg;
    for (int i = 0; i < ROUNDS; i++) {
        cb_limit_token t;
        if (cb_limit_acquire(s->l, &t) != CB_OK) {
            atomic_fetch_add(&s->shed, 1);
            continue;
        }
        atomic_fetch_add(&s->admitted, 1);
        int in = atomic_fetch_add(&s->inside, 1) + 1;
        int most = atomic_load(&s->most_inside);
        while (in > most && !atomic_compare_exchange_weak(&s->most_inside, &most, in)) {
        }
        atomic_fetch_sub(&s->inside, 1);
        cb_limit_release(s->l, &t, i % 7 == 0 ? CB_LIMIT_DROPPED : CB_LIMIT_SUCCESS);
    }
    return NULL;
}

static void threads_sharing_a_limiter_count_every_call(void **state)
{
    (void)state;
    cb_limit_options o;
    cb_limit_options_init(&o);
    o.initial_limit = 2;
    o.max_limit = 3;
    shared s = { 0 };
    assert_int_equal(cb_limit_create(&o, &s.l), CB_OK);
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, worker, &s), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    cb_limit_stats st;
    cb_limit_get_stats(s.l, &st);
    assert_int_equal(st.in_flight, 0);
    assert_int_equal(st.admitted + st.shed, (uint64_t)THREADS * ROUNDS);
    assert_int_equal(st.admitted, atomic_load(&s.admitted));
    assert_int_equal(st.shed, atomic_load(&s.shed));
    assert_true(atomic_load(&s.most_inside) <= 3);
    assert_true(st.limit >= 1 && st.limit <= 3);
    cb_limit_destroy(s.l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults_are_the_documented_ones),
        cmocka_unit_test(invalid_options_are_refused),
        cmocka_unit_test(the_limit_follows_the_hand_computed_table),
        cmocka_unit_test(the_event_carries_the_queue_estimate),
        cmocka_unit_test(a_call_at_the_limit_is_refused_with_CB_ELIMIT),
        cmocka_unit_test(the_initial_limit_is_clamped_into_the_bounds),
        cmocka_unit_test(new_options_reset_the_limit_and_keep_the_calls_in_flight),
        cmocka_unit_test(listeners_come_and_go),
        cmocka_unit_test(threads_sharing_a_limiter_count_every_call),
    };
    return cmocka_run_group_tests_name("cb_limit", tests, NULL, NULL);
}
