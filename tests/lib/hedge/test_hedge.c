/* test_hedge.c -- the hedging policy of cb_hedge.h (cmocka): options, first
 * success wins and the loser sees its cancel flag, no hedge before the delay
 * (manual clock) and no CPU spent waiting for it, max copies, the budget against a table computed by hand,
 * all copies failing returns the last failure, the percentile delay, and
 * threads sharing one policy.
 *
 * Copies are steered by their args: each copy's arg is a `copy` record with
 * what its action does (succeed, fail, block until cancelled or released).
 * A blocked action polls its flag and a release flag; every wait is bounded
 * in real time, so a test that goes wrong fails instead of hanging.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cb.h"
#include "cb_hedge.h"

#define MS 1000000LL

typedef enum { SUCCEED, FAIL, BLOCK } behaviour;

typedef struct copy {
    behaviour does;
    int rc;                  /* FAIL: the action's return */
    _Atomic int *cancel;     /* its flag (cb_hedge_call.cancel[i]) */
    struct copy *after;      /* FAIL: returns only once this copy's thread has ended,
                                its outcome recorded (NULL: at once) */
    struct copy *started;    /* FAIL: returns only once this copy has run (NULL: at once) */
    _Atomic int tid;         /* the thread it ran on */
    _Atomic int ran;
    _Atomic int saw_cancel;
} copy;

static _Atomic int release;           /* a blocked copy returns success when set */
static _Atomic int refusals_seen;

/* Sleeps 1 ms of real time (only inside bounded polling loops). */
static void tick(void)
{
    struct timespec ts = { 0, 1000000L };
    nanosleep(&ts, NULL);
}

/* Polls *flag until non-zero, for at most 5 s. Returns true when it was set. */
static bool wait_flag(_Atomic int *flag)
{
    for (int i = 0; i < 5000; i++) {
        if (atomic_load(flag))
            return true;
        tick();
    }
    return false;
}

/* Polls until copy c has run and its thread has ended, for at most 5 s: the
 * policy records a copy's outcome on its thread after the action returns, so
 * only the thread's end (its task gone from /proc/self/task) says it is
 * recorded. */
static void wait_thread_end(copy *c)
{
    char path[64];
    for (int i = 0; i < 5000; i++) {
        int tid = atomic_load(&c->tid);
        snprintf(path, sizeof path, "/proc/self/task/%d", tid);
        if (tid && access(path, F_OK) != 0)
            return;
        tick();
    }
}

/* The action: does what its copy record says. */
static int copy_action(const cb_call *call, void **result)
{
    copy *c = call->arg;
    *result = c;
    atomic_store(&c->tid, (int)gettid());
    atomic_store(&c->ran, 1);
    int rc = 0;
    if (c->does == FAIL) {
        if (c->started)
            wait_flag(&c->started->ran);
        if (c->after)
            wait_thread_end(c->after);
        rc = c->rc;
    } else if (c->does == BLOCK) {
        for (int i = 0; i < 5000 && !atomic_load(c->cancel) && !atomic_load(&release); i++)
            tick();
        if (atomic_load(c->cancel))
            atomic_store(&c->saw_cancel, 1);
    }
    return rc;
}

typedef struct fixture {
    cb_manual_clock *mc;
    cb_breaker *b;
    cb_hedge_options ho;
    cb_hedge *h;
    copy copies[CB_HEDGE_MAX_COPIES];
    _Atomic int cancel[CB_HEDGE_MAX_COPIES];
    void *args[CB_HEDGE_MAX_COPIES];
    _Atomic int events[CB_HEV_COUNT];
} fixture;

static void count_event(cb_hedge *h, const cb_hedge_event *ev, void *ctx)
{
    (void)h;
    fixture *f = ctx;
    atomic_fetch_add(&f->events[ev->kind], 1);
    if (ev->kind == CB_HEV_BUDGET_REFUSED) {
        atomic_fetch_add(&refusals_seen, 1);
        atomic_store(&release, 1);
    }
}

static fixture *fixture_new(void)
{
    fixture *f = calloc(1, sizeof *f);
    f->mc = cb_manual_clock_new(1000 * MS);
    cb_options bo;
    cb_options_init(&bo);
    bo.action = copy_action;
    bo.timeout_ms = 0;
    bo.error_threshold_percentage = 100;   /* failures never open it here */
    assert_int_equal(cb_create(&bo, &f->b), CB_OK);
    cb_hedge_options_init(&f->ho);
    f->ho.clock = cb_manual_clock_get(f->mc);
    f->ho.delay_ms = 0;
    f->ho.budget_max_tokens = 0;
    for (int i = 0; i < CB_HEDGE_MAX_COPIES; i++) {
        f->copies[i].cancel = &f->cancel[i];
        f->args[i] = &f->copies[i];
    }
    atomic_store(&release, 0);
    return f;
}

static void fixture_start(fixture *f)
{
    assert_int_equal(cb_hedge_create(&f->ho, &f->h), CB_OK);
    assert_true(cb_hedge_on(f->h, CB_HEV_ALL, count_event, f) > 0);
}

static void fixture_free(fixture *f)
{
    cb_hedge_destroy(f->h);
    cb_destroy(f->b);
    cb_manual_clock_free(f->mc);
    free(f);
}

/* Resets the copies' records for another call. */
static void copies_reset(fixture *f)
{
    for (int i = 0; i < CB_HEDGE_MAX_COPIES; i++) {
        atomic_store(&f->copies[i].ran, 0);
        atomic_store(&f->copies[i].saw_cancel, 0);
    }
    atomic_store(&release, 0);
}

static cb_hedge_call call_of(fixture *f, int n)
{
    return (cb_hedge_call){ .args = f->args, .cancel = f->cancel, .ncopies = n };
}

static cb_hedge_stats hstats(fixture *f)
{
    cb_hedge_stats st;
    assert_int_equal(cb_hedge_get_stats(f->h, &st), CB_OK);
    return st;
}

/* ---- options ---------------------------------------------------------------- */

static void options_init_sets_documented_defaults(void **state)
{
    (void)state;
    cb_hedge_options o;
    cb_hedge_options_init(&o);
    assert_string_equal(o.name, "hedge");
    assert_int_equal(o.max_copies, 2);
    assert_int_equal(o.delay_ms, 50);
    assert_true(o.delay_percentile == 0);
    assert_int_equal(o.window, 100);
    assert_int_equal(o.window_min, 20);
    assert_int_equal(o.budget_max_tokens, 10);
    assert_true(o.budget_ratio == 0.1);
    assert_null(o.discard);
    assert_non_null(o.clock.now_ns);
}

static void no_copies(cb_hedge_options *o) { o->max_copies = 0; }
static void too_many_copies(cb_hedge_options *o) { o->max_copies = CB_HEDGE_MAX_COPIES + 1; }
static void negative_delay(cb_hedge_options *o) { o->delay_ms = -1; }
static void huge_delay(cb_hedge_options *o) { o->delay_ms = 600001; }
static void low_percentile(cb_hedge_options *o) { o->delay_percentile = 0.5; }
static void high_percentile(cb_hedge_options *o) { o->delay_percentile = 100; }
static void nan_percentile(cb_hedge_options *o) { o->delay_percentile = __builtin_nan(""); }
static void empty_window(cb_hedge_options *o) { o->window = 0; }
static void min_over_window(cb_hedge_options *o) { o->window_min = o->window + 1; }
static void negative_tokens(cb_hedge_options *o) { o->budget_max_tokens = -1; }
static void too_many_tokens(cb_hedge_options *o) { o->budget_max_tokens = 1001; }
static void tiny_ratio(cb_hedge_options *o) { o->budget_ratio = 0.0009; }
static void huge_ratio(cb_hedge_options *o) { o->budget_ratio = 100.5; }
static void no_clock(cb_hedge_options *o) { o->clock.now_ns = NULL; }

static void create_refuses_each_invalid_option(void **state)
{
    (void)state;
    void (*bad[])(cb_hedge_options *) = {
        no_copies, too_many_copies, negative_delay, huge_delay, low_percentile,
        high_percentile, nan_percentile, empty_window, min_over_window, negative_tokens,
        too_many_tokens, tiny_ratio, huge_ratio, no_clock,
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cb_hedge_options o;
        cb_hedge_options_init(&o);
        bad[i](&o);
        cb_hedge *h = (cb_hedge *)0x1;
        assert_int_equal(cb_hedge_create(&o, &h), CB_EINVAL);
        assert_ptr_equal(h, (cb_hedge *)0x1);
    }
    assert_int_equal(cb_hedge_fire(NULL, NULL, NULL, NULL), CB_EINVAL);
}

/* ---- first success wins ----------------------------------------------------------- */

static void first_success_wins_and_the_loser_sees_its_cancel_flag(void **state)
{
    (void)state;
    fixture *f = fixture_new();
    fixture_start(f);
    f->copies[0].does = BLOCK;    /* slow: blocks until cancelled */
    f->copies[1].does = SUCCEED;  /* the hedge answers at once */
    cb_hedge_call call = call_of(f, 2);
    cb_result res;
    assert_int_equal(cb_hedge_fire(f->h, f->b, &res, &call), CB_OK);
    assert_ptr_equal(res.value, &f->copies[1]);
    assert_int_equal(call.copies, 2);
    assert_int_equal(call.winner, 1);
    assert_int_equal(call.cancelled, 1);
    assert_int_equal(atomic_load(&f->copies[0].saw_cancel), 1);
    assert_int_equal(atomic_load(&f->cancel[1]), 0);
    cb_hedge_stats st = hstats(f);
    assert_int_equal(st.calls, 1);
    assert_int_equal(st.copies, 2);
    assert_int_equal(st.hedges, 1);
    assert_int_equal(st.hedge_wins, 1);
    assert_int_equal(st.cancelled, 1);
    assert_int_equal(atomic_load(&f->events[CB_HEV_HEDGE]), 1);
    assert_int_equal(atomic_load(&f->events[CB_HEV_WIN]), 1);
    cb_stats bs;
    assert_int_equal(cb_get_stats(f->b, &bs), CB_OK);
    assert_int_equal(bs.total.fires, 2);   /* the breaker counted both copies */
    fixture_free(f);
}

static void a_fast_first_copy_sends_no_hedge(void **state)
{
    (void)state;
    fixture *f = fixture_new();
    f->ho.delay_ms = 20;
    fixture_start(f);
    f->copies[0].does = SUCCEED;
    cb_hedge_call call = call_of(f, 2);
    assert_int_equal(cb_hedge_fire(f->h, f->b, NULL, &call), CB_OK);
    assert_int_equal(call.copies, 1);
    assert_int_equal(call.winner, 0);
    assert_int_equal(atomic_load(&f->copies[1].ran), 0);
    assert_int_equal(hstats(f).hedges, 0);
    fixture_free(f);
}

/* ---- the delay, on the manual clock ----------------------------------------------- */

typedef struct firing {
    fixture *f;
    cb_hedge_call call;
    int rc;
} firing;

static void *fire_thread(void *p)
{
    firing *x = p;
    x->rc = cb_hedge_fire(x->f->h, x->f->b, NULL, &x->call);
    return NULL;
}

static void no_hedge_starts_before_the_delay_has_passed_on_the_clock(void **state)
{
    (void)state;
    fixture *f = fixture_new();
    f->ho.delay_ms = 20;
    fixture_start(f);
    f->copies[0].does = BLOCK;
    f->copies[1].does = SUCCEED;
    firing x = { .f = f, .call = call_of(f, 2) };
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, fire_thread, &x), 0);
    assert_true(wait_flag(&f->copies[0].ran));
    cb_manual_clock_advance_ms(f->mc, 19);
    /* 19 ms on the clock: whatever real time passes, no hedge */
    for (int i = 0; i < 60; i++)
        tick();
    assert_int_equal(atomic_load(&f->copies[1].ran), 0);
    cb_manual_clock_advance_ms(f->mc, 1);
    assert_true(wait_flag(&f->copies[1].ran));
    pthread_join(t, NULL);
    assert_int_equal(x.rc, CB_OK);
    assert_int_equal(x.call.winner, 1);
    assert_int_equal(atomic_load(&f->copies[0].saw_cancel), 1);
    fixture_free(f);
}

/* The thread waiting for a hedge's delay sleeps: over 300 ms of real time
 * with a 50 ms delay never reached on the clock, the firing thread uses
 * under 30 ms of CPU (a wait on the wrong clock returns at once and spins). */
static void waiting_for_the_delay_costs_no_cpu(void **state)
{
    (void)state;
    fixture *f = fixture_new();
    f->ho.delay_ms = 50;
    fixture_start(f);
    f->copies[0].does = BLOCK;
    firing x = { .f = f, .call = call_of(f, 2) };
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, fire_thread, &x), 0);
    assert_true(wait_flag(&f->copies[0].ran));
    clockid_t cpu;
    assert_int_equal(pthread_getcpuclockid(t, &cpu), 0);
    struct timespec a, b;
    assert_int_equal(clock_gettime(cpu, &a), 0);
    for (int i = 0; i < 300; i++)
        tick();
    assert_int_equal(clock_gettime(cpu, &b), 0);
    int64_t used_ns = (b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec);
    assert_int_equal(atomic_load(&f->copies[1].ran), 0);
    atomic_store(&release, 1);
    pthread_join(t, NULL);
    assert_int_equal(x.rc, CB_OK);
    assert_true(used_ns < 30 * MS);
    fixture_free(f);
}

/* ---- max copies ------------------------------------------------------------------------ */

static void at_most_max_copies_start(void **state)
{
    (void)state;
    fixture *f = fixture_new();
    f->ho.max_copies = 3;
    fixture_start(f);
    f->copies[0].does = BLOCK;
    f->copies[1].does = BLOCK;
    f->copies[2].does = SUCCEED;
    f->copies[3].does = SUCCEED;
    cb_hedge_call call = call_of(f, 4);
    assert_int_equal(cb_hedge_fire(f->h, f->b, NULL, &call), CB_OK);
    assert_int_equal(call.copies, 3);
    assert_int_equal(call.winner, 2);
    assert_int_equal(call.cancelled, 2);
    assert_int_equal(atomic_load(&f->copies[3].ran), 0);
    assert_int_equal(atomic_load(&f->copies[0].saw_cancel), 1);
    assert_int_equal(atomic_load(&f->copies[1].saw_cancel), 1);
    /* fewer args than max_copies: the args bound the copies */
    copies_reset(f);
    f->copies[1].does = SUCCEED;
    call = call_of(f, 1);
    f->copies[0].does = SUCCEED;
    assert_int_equal(cb_hedge_fire(f->h, f->b, NULL, &call), CB_OK);
    assert_int_equal(call.copies, 1);
    cb_hedge_stats st = hstats(f);
    assert_int_equal(st.copies, st.calls + st.hedges);
    assert_int_equal(st.hedges, 2);
    fixture_free(f);
}

/* ---- the budget -------------------------------------------------------------------------- */

static void the_budget_follows_the_table(void **state)
{
    (void)state;
    fixture *f = fixture_new();
    f->ho.budget_max_tokens = 2;
    f->ho.budget_ratio = 0.5;
    fixture_start(f);
    /* copy 1 blocks until cancelled by the hedge, or released when the budget
     * refuses the hedge (the listener sets release) */
    f->copies[0].does = BLOCK;
    f->copies[1].does = SUCCEED;
    /* milli-tokens: +500 a call (max 2000), -1000 a hedge while >= 1000 */
    static const struct { bool hedged; double tokens_after; } table[] = {
        { true, 1.0 },   /* 2000 (capped)       -> hedge -> 1000 */
        { true, 0.5 },   /* 1000 + 500 = 1500   -> hedge ->  500 */
        { true, 0.0 },   /*  500 + 500 = 1000   -> hedge ->    0 */
        { false, 0.5 },  /*    0 + 500 =  500   -> refused */
        { true, 0.0 },   /*  500 + 500 = 1000   -> hedge ->    0 */
        { false, 0.5 },  /*  refused */
        { true, 0.0 },
    };
    int refused = 0;
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        copies_reset(f);
        cb_hedge_call call = call_of(f, 2);
        assert_int_equal(cb_hedge_fire(f->h, f->b, NULL, &call), CB_OK);
        assert_int_equal(call.copies, table[i].hedged ? 2 : 1);
        assert_int_equal(call.budget_refused, !table[i].hedged);
        assert_int_equal(call.winner, table[i].hedged ? 1 : 0);
        assert_true(hstats(f).budget_tokens == table[i].tokens_after);
        refused += !table[i].hedged;
    }
    cb_hedge_stats st = hstats(f);
    assert_int_equal(st.budget_refused, refused);
    assert_int_equal(st.hedges, 7 - refused);
    assert_int_equal(atomic_load(&f->events[CB_HEV_BUDGET_REFUSED]), refused);
    fixture_free(f);
}

/* ---- every copy failing ------------------------------------------------------------------ */

static void when_every_copy_fails_the_last_failure_is_returned(void **state)
{
    (void)state;
    fixture *f = fixture_new();
    fixture_start(f);
    /* copy 1 fails only after copy 2's failure is recorded: copy 1's is the last */
    f->copies[0] = (copy){ .does = FAIL, .rc = 7, .cancel = &f->cancel[0], .after = &f->copies[1] };
    f->copies[1] = (copy){ .does = FAIL, .rc = 5, .cancel = &f->cancel[1] };
    cb_hedge_call call = call_of(f, 2);
    cb_result res;
    assert_int_equal(cb_hedge_fire(f->h, f->b, &res, &call), CB_EFAILED);
    assert_int_equal(res.action_rc, 7);
    assert_int_equal(call.winner, 0);
    assert_int_equal(call.copies, 2);
    assert_int_equal(call.cancelled, 0);
    /* and the other way round; copy 1 fails only after copy 0 has, and copy 0
     * only once copy 1 has started (a copy that failed before the hedge was
     * due would end the call with no hedge) */
    f->copies[0] = (copy){ .does = FAIL, .rc = 7, .cancel = &f->cancel[0], .started = &f->copies[1] };
    f->copies[1] = (copy){ .does = FAIL, .rc = 5, .cancel = &f->cancel[1], .after = &f->copies[0] };
    assert_int_equal(cb_hedge_fire(f->h, f->b, &res, &call), CB_EFAILED);
    assert_int_equal(res.action_rc, 5);
    assert_int_equal(call.winner, 1);
    assert_int_equal(hstats(f).failed, 2);
    fixture_free(f);
}

/* ---- the percentile delay ----------------------------------------------------------------- */

static int64_t advance_by;

/* Takes advance_by ms on the manual clock (the arg is the clock). */
static int slow_action(const cb_call *call, void **result)
{
    cb_manual_clock_advance_ms(call->arg, advance_by);
    *result = NULL;
    return 0;
}

static void the_delay_is_the_percentile_of_recent_wins_with_a_floor(void **state)
{
    (void)state;
    cb_manual_clock *mc = cb_manual_clock_new(1000 * MS);
    cb_options bo;
    cb_options_init(&bo);
    bo.action = slow_action;
    bo.timeout_ms = 0;
    cb_breaker *b;
    assert_int_equal(cb_create(&bo, &b), CB_OK);
    cb_hedge_options o;
    cb_hedge_options_init(&o);
    o.clock = cb_manual_clock_get(mc);
    o.max_copies = 1;         /* no hedging: the window still learns */
    o.delay_ms = 1;
    o.delay_percentile = 50;
    o.window = 4;
    o.window_min = 2;
    cb_hedge *h;
    assert_int_equal(cb_hedge_create(&o, &h), CB_OK);
    /* latencies in, and the delay after each: nearest rank ceil(0.5 n) */
    static const struct { int64_t ms, delay_ms; } table[] = {
        { 10, 1 },    /* n = 1 < window_min: the floor */
        { 40, 10 },   /* {10, 40}: rank 1 */
        { 20, 20 },   /* {10, 20, 40}: rank 2 */
        { 30, 20 },   /* {10, 20, 30, 40}: rank 2 */
        { 50, 30 },   /* 10 leaves: {20, 30, 40, 50}: rank 2 */
    };
    void *args[1] = { mc };
    _Atomic int cancel[1];
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        advance_by = table[i].ms;
        cb_hedge_call call = { .args = args, .cancel = cancel, .ncopies = 1 };
        assert_int_equal(cb_hedge_fire(h, b, NULL, &call), CB_OK);
        assert_int_equal(cb_hedge_delay_ns(h), table[i].delay_ms * MS);
    }
    cb_hedge_destroy(h);
    o.delay_ms = 35;          /* the floor wins over a lower percentile */
    assert_int_equal(cb_hedge_create(&o, &h), CB_OK);
    for (size_t i = 0; i < 4; i++) {
        cb_hedge_call call = { .args = args, .cancel = cancel, .ncopies = 1 };
        assert_int_equal(cb_hedge_fire(h, b, NULL, &call), CB_OK);
    }
    assert_int_equal(cb_hedge_delay_ns(h), 50 * MS);   /* all 50: p50 = 50 > 35 */
    cb_hedge_destroy(h);
    cb_destroy(b);
    cb_manual_clock_free(mc);
}

/* ---- threads --------------------------------------------------------------------------- */

typedef struct worker {
    fixture *f;
    copy copies[2];
    _Atomic int cancel[2];
} worker;

static void *worker_run(void *p)
{
    worker *w = p;
    void *args[2] = { &w->copies[0], &w->copies[1] };
    for (int i = 0; i < 50; i++) {
        w->copies[0] = (copy){ .does = i % 2 ? BLOCK : SUCCEED, .cancel = &w->cancel[0] };
        w->copies[1] = (copy){ .does = SUCCEED, .cancel = &w->cancel[1] };
        cb_hedge_call call = { .args = args, .cancel = w->cancel, .ncopies = 2 };
        assert_int_equal(cb_hedge_fire(w->f->h, w->f->b, NULL, &call), CB_OK);
    }
    return NULL;
}

static void threads_share_one_policy(void **state)
{
    (void)state;
    fixture *f = fixture_new();
    f->ho.clock = cb_clock_system();
    f->ho.delay_ms = 0;
    fixture_start(f);
    worker w[4];
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        memset(&w[i], 0, sizeof w[i]);
        w[i].f = f;
        assert_int_equal(pthread_create(&t[i], NULL, worker_run, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    cb_hedge_stats st = hstats(f);
    assert_int_equal(st.calls, 200);
    assert_int_equal(st.copies, st.calls + st.hedges);
    assert_true(st.hedge_wins <= st.hedges);
    fixture_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(options_init_sets_documented_defaults),
        cmocka_unit_test(create_refuses_each_invalid_option),
        cmocka_unit_test(first_success_wins_and_the_loser_sees_its_cancel_flag),
        cmocka_unit_test(a_fast_first_copy_sends_no_hedge),
        cmocka_unit_test(no_hedge_starts_before_the_delay_has_passed_on_the_clock),
        cmocka_unit_test(waiting_for_the_delay_costs_no_cpu),
        cmocka_unit_test(at_most_max_copies_start),
        cmocka_unit_test(the_budget_follows_the_table),
        cmocka_unit_test(when_every_copy_fails_the_last_failure_is_returned),
        cmocka_unit_test(the_delay_is_the_percentile_of_recent_wins_with_a_floor),
        cmocka_unit_test(threads_share_one_policy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
