/* test_retry.c -- the retry policy of cb_retry.h (cmocka): options, the
 * default predicate, full-jitter bounds, the token budget against a table
 * computed by hand, the deadline cut-off, composition with the breaker in
 * each state, events, and threads sharing one policy.
 *
 * Time is a manual clock shared by the breaker and the policy; the policy
 * "sleeps" with cb_retry_sleep_manual's twin below, which records each
 * back-off and advances the clock. Nothing here really sleeps.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "cb.h"
#include "cb_retry.h"

#define MS 1000000LL

/* What the action returns on each of its runs within one call (the last
 * entry repeats), and how long each run takes on the manual clock. */
typedef struct script {
    int rc[8];
    int n;
    int64_t latency_ms;
    int i;                  /* runs so far */
} script;

#define MAX_LOG 4096

typedef struct fixture {
    cb_manual_clock *mc;
    cb_options bo;
    cb_breaker *b;
    cb_retry_options ro;
    cb_retry *r;
    _Atomic int runs;                    /* actions run */
    int64_t run_start_ns[MAX_LOG];       /* when each run began (single-threaded tests) */
    _Atomic int nsleeps;
    int64_t sleep_ns[MAX_LOG];           /* each back-off slept */
    int64_t sleep_start_ns[MAX_LOG];
    _Atomic int kinds[CB_REV_COUNT];     /* events seen per kind */
    cb_retry_event last[CB_REV_COUNT];   /* last event of each kind (single-threaded) */
    int retry_attempt[MAX_LOG];          /* attempt of each retry event, in order */
    int64_t retry_delay[MAX_LOG];
    int nretry;
    _Atomic int discards;
    bool threaded;                       /* listeners only count */
} fixture;

static int script_action(const cb_call *call, void **result)
{
    fixture *f = call->user;
    script *s = call->arg;
    atomic_fetch_add(&f->runs, 1);
    int i = s->i++;
    int rc = s->rc[i < s->n ? i : s->n - 1];
    if (s->latency_ms)
        cb_manual_clock_advance_ms(f->mc, s->latency_ms);
    *result = rc == 0 ? (void *)"done" : NULL;
    return rc;
}

/* Records the start of each run: the action above cannot read the breaker's
 * clock, so the fixture's listener on "fire" does (single-threaded tests). */
static void on_fire(cb_breaker *b, const cb_event *ev, void *ctx)
{
    (void)b;
    fixture *f = ctx;
    int at = atomic_load(&f->runs);
    if (!f->threaded && ev->kind == CB_EV_FIRE && at < MAX_LOG)
        f->run_start_ns[at] = ev->time_ns;
}

static void record_sleep(int64_t ns, void *ctx)
{
    fixture *f = ctx;
    int at = atomic_fetch_add(&f->nsleeps, 1);
    if (at < MAX_LOG) {
        f->sleep_ns[at] = ns;
        f->sleep_start_ns[at] = cb_manual_clock_get(f->mc).now_ns(f->mc);
    }
    cb_retry_sleep_manual(ns, f->mc);
}

static void recorder(cb_retry *r, const cb_retry_event *ev, void *ctx)
{
    (void)r;
    fixture *f = ctx;
    atomic_fetch_add(&f->kinds[ev->kind], 1);
    if (f->threaded)
        return;
    f->last[ev->kind] = *ev;
    if (ev->kind == CB_REV_RETRY && f->nretry < MAX_LOG) {
        f->retry_attempt[f->nretry] = ev->attempt;
        f->retry_delay[f->nretry++] = ev->delay_ns;
    }
}

/* A breaker that stays closed on failures (volume threshold out of reach)
 * and a policy with its defaults, both on one manual clock. */
static fixture *fixture_new(void)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->mc = cb_manual_clock_new(1000 * MS);
    assert_non_null(f->mc);
    cb_options_init(&f->bo);
    f->bo.name = "retry-test";
    f->bo.action = script_action;
    f->bo.user = f;
    f->bo.clock = cb_manual_clock_get(f->mc);
    f->bo.volume_threshold = 1 << 30;
    cb_retry_options_init(&f->ro);
    f->ro.clock = cb_manual_clock_get(f->mc);
    f->ro.sleep = record_sleep;
    f->ro.sleep_ctx = f;
    f->ro.seed = 42;
    return f;
}

static void fixture_start(fixture *f)
{
    assert_int_equal(cb_create(&f->bo, &f->b), CB_OK);
    assert_true(cb_on(f->b, CB_EV_MASK(CB_EV_FIRE), on_fire, f) > 0);
    assert_int_equal(cb_retry_create(&f->ro, &f->r), CB_OK);
    assert_true(cb_retry_on(f->r, CB_REV_ALL, recorder, f) > 0);
}

static void fixture_free(fixture *f)
{
    cb_retry_destroy(f->r);
    cb_destroy(f->b);
    cb_manual_clock_free(f->mc);
    free(f);
}

static int64_t now_of(fixture *f)
{
    return cb_manual_clock_get(f->mc).now_ns(f->mc);
}

static cb_retry_stats rstats(fixture *f)
{
    cb_retry_stats st;
    assert_int_equal(cb_retry_get_stats(f->r, &st), CB_OK);
    return st;
}

static cb_stats bstats(fixture *f)
{
    cb_stats st;
    assert_int_equal(cb_get_stats(f->b, &st), CB_OK);
    return st;
}

/* ---- options ---------------------------------------------------------------- */

static void options_init_sets_documented_defaults(void **state)
{
    (void)state;
    cb_retry_options o;
    cb_retry_options_init(&o);
    assert_string_equal(o.name, "retry");
    assert_int_equal(o.max_attempts, 3);
    assert_int_equal(o.base_ms, 100);
    assert_int_equal(o.cap_ms, 1000);
    assert_ptr_equal(o.retryable, cb_retry_default_retryable);
    assert_int_equal(o.budget_max_tokens, 10);
    assert_true(o.budget_token_ratio == 0.1);
    assert_null(o.discard);
    assert_null(o.user);
    assert_non_null(o.clock.now_ns);
    assert_ptr_equal(o.sleep, cb_retry_sleep_system);
    assert_null(o.sleep_ctx);
    assert_int_equal(o.seed, 0);
}

static void zero_attempts(cb_retry_options *o) { o->max_attempts = 0; }
static void too_many_attempts(cb_retry_options *o) { o->max_attempts = 101; }
static void negative_base(cb_retry_options *o) { o->base_ms = -1; }
static void negative_cap(cb_retry_options *o) { o->cap_ms = -1; }
static void huge_cap(cb_retry_options *o) { o->cap_ms = INT64_MAX / 2; }
static void negative_tokens(cb_retry_options *o) { o->budget_max_tokens = -1; }
static void too_many_tokens(cb_retry_options *o) { o->budget_max_tokens = 1001; }
static void zero_ratio(cb_retry_options *o) { o->budget_token_ratio = 0; }
static void tiny_ratio(cb_retry_options *o) { o->budget_token_ratio = 0.0009; }
static void huge_ratio(cb_retry_options *o) { o->budget_token_ratio = 1000.5; }
static void nan_ratio(cb_retry_options *o) { o->budget_token_ratio = __builtin_nan(""); }
static void no_predicate(cb_retry_options *o) { o->retryable = NULL; }
static void no_clock(cb_retry_options *o) { o->clock.now_ns = NULL; }
static void no_sleep(cb_retry_options *o) { o->sleep = NULL; }
static void defaults(cb_retry_options *o) { (void)o; }
static void no_budget_any_ratio(cb_retry_options *o) { o->budget_max_tokens = 0; o->budget_token_ratio = 0; }
static void one_attempt_no_delay(cb_retry_options *o) { o->max_attempts = 1; o->base_ms = 0; o->cap_ms = 0; }
static void hundred_attempts(cb_retry_options *o) { o->max_attempts = 100; o->budget_max_tokens = 1000; o->budget_token_ratio = 1000; }

static int try_create(void (*tweak)(cb_retry_options *))
{
    cb_retry_options o;
    cb_retry_options_init(&o);
    tweak(&o);
    cb_retry *r = (cb_retry *)0x1;
    int rc = cb_retry_create(&o, &r);
    if (rc == CB_OK)
        cb_retry_destroy(r);
    else
        assert_ptr_equal(r, (cb_retry *)0x1); /* *out untouched on error */
    return rc;
}

static void invalid_options_are_refused_with_einval(void **state)
{
    (void)state;
    void (*bad[])(cb_retry_options *) = {
        zero_attempts, too_many_attempts, negative_base, negative_cap, huge_cap, negative_tokens,
        too_many_tokens, zero_ratio, tiny_ratio, huge_ratio, nan_ratio, no_predicate, no_clock,
        no_sleep,
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(try_create(bad[i]), CB_EINVAL);
    void (*good[])(cb_retry_options *) = { defaults, no_budget_any_ratio, one_attempt_no_delay,
                                           hundred_attempts };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        assert_int_equal(try_create(good[i]), CB_OK);
    cb_retry *r;
    assert_int_equal(cb_retry_create(NULL, &r), CB_EINVAL);
    cb_retry_options o;
    cb_retry_options_init(&o);
    assert_int_equal(cb_retry_create(&o, NULL), CB_EINVAL);
    assert_int_equal(cb_retry_get_stats(NULL, NULL), CB_EINVAL);
    assert_null(cb_retry_get_options(NULL));
    cb_retry_destroy(NULL);
}

static void options_are_copied_with_the_name(void **state)
{
    (void)state;
    char name[] = "payments";
    cb_retry_options o;
    cb_retry_options_init(&o);
    o.name = name;
    o.max_attempts = 7;
    cb_retry *r;
    assert_int_equal(cb_retry_create(&o, &r), CB_OK);
    name[0] = 'X';
    o.max_attempts = 1;
    assert_string_equal(cb_retry_get_options(r)->name, "payments");
    assert_int_equal(cb_retry_get_options(r)->max_attempts, 7);
    cb_retry_destroy(r);
}

static void bad_calls_are_refused_without_an_attempt(void **state)
{
    (void)state;
    fixture *f = fixture_new();
    fixture_start(f);
    script s = { { 0 }, 1, 0, 0 };
    cb_result res;
    assert_int_equal(cb_retry_fire(NULL, f->b, &s, &res, NULL), CB_EINVAL);
    assert_int_equal(cb_retry_fire(f->r, NULL, &s, &res, NULL), CB_EINVAL);
    cb_retry_call c = { .timeout_ms = -1 };
    assert_int_equal(cb_retry_fire(f->r, f->b, &s, &res, &c), CB_EINVAL);
    assert_int_equal(c.attempts, 0);
    assert_int_equal(atomic_load(&f->runs), 0);
    assert_int_equal(rstats(f).calls, 0);
    fixture_free(f);
}

/* ---- attempts and the predicate ----------------------------------------------------- */

static void success_on_the_first_attempt_makes_one_call(void **state)
{
    (void)state;
    fixture *f = fixture_new();
    fixture_start(f);
    script s = { { 0 }, 1, 0, 0 };
    cb_result res;
    cb_retry_call c = { 0 };
    assert_int_equal(cb_retry_fire(f->r, f->b, &s, &res, &c), CB_OK);
    assert_string_equal((char *)res.value, "done");
    assert_int_equal(c.attempts, 1);
    assert_int_equal(c.stop, CB_RETRY_DONE);
    assert_int_equal(atomic_load(&f->nsleeps), 0);
    cb_retry_stats st = rstats(f);
    assert_int_equal(st.calls, 1);
    assert_int_equal(st.attempts, 1);
    assert_int_equal(st.retries, 0);
    assert_true(st.budget_tokens == 10.0);
    assert_int_equal(bstats(f).total.fires, 1);
    /* res and call may be NULL */
    s.i = 0;
    assert_int_equal(cb_retry_fire(f->r, f->b, &s, NULL, NULL), CB_OK);
    fixture_free(f);
}

static void retryable_failures_are_retried_until_success(void **state)
{
    (void)state;
    fixture *f = fixture_new();
    fixture_start(f);
    script s = { { 503, 503, 0 }, 3, 0, 0 };
    cb_result res;
    cb_retry_call c = { 0 };
    assert_int_equal(cb_retry_fire(f->r, f->b, &s, &res, &c), CB_OK);
    assert_string_equal((char *)res.value, "done");
    assert_int_equal(res.action_rc, 0);
    assert_int_equal(c.attempts, 3);
    assert_int_equal(c.stop, CB_RETRY_DONE);
    assert_int_equal(atomic_load(&f->runs), 3);
    assert_int_equal(f->nretry, 2);
    assert_int_equal(f->retry_attempt[0], 2);
    assert_int_equal(f->retry_attempt[1], 3);
    assert_int_equal(f->last[CB_REV_RETRY].rc, CB_EFAILED);
    assert_int_equal(f->last[CB_REV_RETRY].action_rc, 503);
    assert_ptr_equal(f->last[CB_REV_RETRY].breaker, f->b);
    assert_ptr_equal(f->last[CB_REV_RETRY].arg, &s);
    cb_retry_stats st = rstats(f);
    assert_int_equal(st.calls, 1);
    assert_int_equal(st.attempts, 3);
    assert_int_equal(st.retries, 2);
    assert_int_equal(st.retries_exhausted, 0);
    fixture_free(f);
}

static void attempts_stop_at_max_attempts_with_retry_exhausted(void **state)
{
    (void)state;
    fixture *f = fixture_new();
    f->ro.max_attempts = 4;
    f->ro.budget_max_tokens = 0;
    fixture_start(f);
    script s = { { 503 }, 1, 0, 0 };
    cb_result res;
    cb_retry_call c = { 0 };
    assert_int_equal(cb_retry_fire(f->r, f->b, &s, &res, &c), CB_EFAILED);
    assert_int_equal(res.action_rc, 503);
    assert_int_equal(c.attempts, 4);
    assert_int_equal(c.stop, CB_RETRY_ATTEMPTS);
    assert_int_equal(atomic_load(&f->runs), 4);
    assert_int_equal(atomic_load(&f->nsleeps) <= 3, 1);
    assert_int_equal(atomic_load(&f->kinds[CB_REV_RETRY]), 3);
    assert_int_equal(atomic_load(&f->kinds[CB_REV_RETRY_EXHAUSTED]), 1);
    assert_int_equal(f->last[CB_REV_RETRY_EXHAUSTED].attempt, 4);
    assert_int_equal(f->last[CB_REV_RETRY_EXHAUSTED].action_rc, 503);
    cb_retry_stats st = rstats(f);
    assert_int_equal(st.retries_exhausted, 1);
    assert_int_equal(st.retries, 3);
    assert_true(st.budget_tokens == 0.0);
    assert_int_equal(st.budget_max_tokens, 0);
    fixture_free(f);
}

static void one_attempt_never_retries(void **state)
{
    (void)state;
    fixture *f = fixture_new();
    f->ro.max_attempts = 1;
    fixture_start(f);
    script s = { { 503 }, 1, 0, 0 };
    cb_retry_call c = { 0 };
    assert_int_equal(cb_retry_fire(f->r, f->b, &s, NULL, &c), CB_EFAILED);
    assert_int_equal(c.attempts, 1);
    assert_int_equal(c.stop, CB_RETRY_ATTEMPTS);
    assert_int_equal(atomic_load(&f->runs), 1);
    assert_int_equal(atomic_load(&f->kinds[CB_REV_RETRY]), 0);
    /* the failure still cost its token */
    assert_true(rstats(f).budget_tokens == 9.0);
    fixture_free(f);
}

static void default_predicate_retries_only_transient_failures(void **state)
{
    (void)state;
    static const struct { int rc, action_rc; bool retryable; } table[] = {
        { CB_ETIMEDOUT, 0, true },
        { CB_EFAILED, 502, true }, { CB_EFAILED, 503, true }, { CB_EFAILED, 504, true },
        { CB_EFAILED, -ECONNREFUSED, true }, { CB_EFAILED, -ECONNRESET, true },
        { CB_EFAILED, -ETIMEDOUT, true },
        { CB_EFAILED, 400, false }, { CB_EFAILED, 401, false }, { CB_EFAILED, 404, false },
        { CB_EFAILED, 409, false }, { CB_EFAILED, 429, false }, { CB_EFAILED, 499, false },
        { CB_EFAILED, 500, false }, { CB_EFAILED, 501, false }, { CB_EFAILED, 505, false },
        { CB_EFAILED, -1, false }, { CB_EFAILED, -2, false }, { CB_EFAILED, 7, false },
        { CB_EFAILED, ECONNREFUSED, false },
        { CB_EOPEN, 0, false }, { CB_ESEMLOCKED, 0, false }, { CB_ESHUTDOWN, 0, false },
        { CB_OK, 0, false }, { CB_EINVAL, 503, false },
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        assert_int_equal(cb_retry_default_retryable(table[i].rc, table[i].action_rc, NULL, NULL),
                         table[i].retryable);
    /* end to end: each action code, twice at most */
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        if (table[i].rc != CB_EFAILED)
            continue;
        fixture *f = fixture_new();
        f->ro.max_attempts = 2;
        fixture_start(f);
        script s = { { table[i].action_rc }, 1, 0, 0 };
        cb_retry_call c = { 0 };
        assert_int_equal(cb_retry_fire(f->r, f->b, &s, NULL, &c), CB_EFAILED);
        assert_int_equal(c.attempts, table[i].retryable ? 2 : 1);
        assert_int_equal(c.stop, table[i].retryable ? CB_RETRY_ATTEMPTS : CB_RETRY_DONE);
        /* a non-retryable failure leaves the budget alone */
        assert_true(rstats(f).budget_tokens == (table[i].retryable ? 8.0 : 10.0));
        fixture_free(f);
    }
}

static void an_attempt_past_the_breaker_timeout_is_retried(void **state)
{
    (void)state;
    fixture *f = fixture_new();
    f->bo.timeout_ms = 100;
    fixture_start(f);
    script s = { { 0 }, 1, 150, 0 }; /* succeeds, but late: the breaker says timeout */
    cb_retry_call c = { 0 };
    assert_int_equal(cb_retry_fire(f->r, f->b, &s, NULL, &c), CB_ETIMEDOUT);
    assert_int_equal(c.attempts, 3);
    assert_int_equal(c.stop, CB_RETRY_ATTEMPTS);
    assert_int_equal(bstats(f).total.timeouts, 3);
    fixture_free(f);
}

typedef struct seen { int calls, rc, action_rc; void *arg, *user; } seen;

static bool only_418(int rc, int action_rc, void *arg, void *user)
{
    seen *s = user;
    s->calls++;
    s->rc = rc;
    s->action_rc = action_rc;
    s->arg = arg;
    s->user = user;
    return rc == CB_EFAILED && action_rc == 418;
}

static void a_custom_predicate_decides_and_sees_arg_and_user(void **state)
{
    (void)state;
    fixture *f = fixture_new();
    seen w = { 0 };
    f->ro.retryable = only_418;
    f->ro.user = &w;
    fixture_start(f);
    script s = { { 418, 418, 503 }, 3, 0, 0 };
    cb_retry_call c = { 0 };
    assert_int_equal(cb_retry_fire(f->r, f->b, &s, NULL, &c), CB_EFAILED);
    assert_int_equal(c.attempts, 3);
    assert_int_equal(w.calls, 3);
    assert_int_equal(w.action_rc, 503);
    assert_ptr_equal(w.arg, &s);
    assert_ptr_equal(w.user, &w);
    /* 503 is not retryable here: stop DONE after attempt 3 (which was the last anyway) */
    s = (script){ { 503 }, 1, 0, 0 };
    assert_int_equal(cb_retry_fire(f->r, f->b, &s, NULL, &c), CB_EFAILED);
    assert_int_equal(c.attempts, 1);
    assert_int_equal(c.stop, CB_RETRY_DONE);
    /* the predicate is not asked about successes */
    w.calls = 0;
    s = (script){ { 0 }, 1, 0, 0 };
    assert_int_equal(cb_retry_fire(f->r, f->b, &s, NULL, &c), CB_OK);
    assert_int_equal(w.calls, 0);
    fixture_free(f);
}

/* ---- back-off ------------------------------------------------------------------------- */

/* The back-off before retry n: min(cap, base * 2^(n-1)), in ns. */
static int64_t bound_ns(int64_t base_ms, int64_t cap_ms, int n)
{
    int64_t b = base_ms * MS;
    for (int i = 1; i < n && b < cap_ms * MS; i++)
        b *= 2;
    return b < cap_ms * MS ? b : cap_ms * MS;
}

static void backoff_is_full_jitter_within_its_bounds(void **state)
{
    (void)state;
    enum { CALLS = 2000, ATTEMPTS = 6 };
    fixture *f = fixture_new();
    f->ro.base_ms = 10;
    f->ro.cap_ms = 80;  /* bounds of retries 1..5: 10, 20, 40, 80, 80 ms */
    f->ro.max_attempts = ATTEMPTS;
    f->ro.budget_max_tokens = 0;
    f->ro.seed = 12345;
    fixture_start(f);
    assert_int_equal(cb_retry_off(f->r, 1), CB_OK); /* the recorder keeps only MAX_LOG */
    int64_t lo[ATTEMPTS], hi[ATTEMPTS];
    double sum[ATTEMPTS] = { 0 };
    for (int n = 1; n < ATTEMPTS; n++) {
        lo[n] = INT64_MAX;
        hi[n] = -1;
    }
    for (int k = 0; k < CALLS; k++) {
        script s = { { 503 }, 1, 0, 0 };
        atomic_store(&f->nsleeps, 0);
        cb_retry_call c = { 0 };
        assert_int_equal(cb_retry_fire(f->r, f->b, &s, NULL, &c), CB_EFAILED);
        assert_int_equal(c.attempts, ATTEMPTS);
        /* a zero delay is not slept, so there may be fewer sleeps than retries */
        int slept = atomic_load(&f->nsleeps);
        assert_true(slept <= ATTEMPTS - 1);
        for (int j = 0; j < slept; j++)
            assert_true(f->sleep_ns[j] > 0);
    }
    /* the delays themselves, from the "retry" events of a second run */
    cb_retry_destroy(f->r);
    assert_int_equal(cb_retry_create(&f->ro, &f->r), CB_OK);
    assert_true(cb_retry_on(f->r, CB_REV_MASK(CB_REV_RETRY), recorder, f) > 0);
    for (int k = 0; k < CALLS / 4; k++) {
        script s = { { 503 }, 1, 0, 0 };
        f->nretry = 0;
        assert_int_equal(cb_retry_fire(f->r, f->b, &s, NULL, NULL), CB_EFAILED);
        assert_int_equal(f->nretry, ATTEMPTS - 1);
        for (int j = 0; j < f->nretry; j++) {
            int n = f->retry_attempt[j] - 1; /* retry n precedes attempt n + 1 */
            assert_int_equal(n, j + 1);
            int64_t d = f->retry_delay[j];
            assert_in_range(d, 0, bound_ns(10, 80, n));
            if (d < lo[n]) lo[n] = d;
            if (d > hi[n]) hi[n] = d;
            sum[n] += (double)d;
        }
    }
    for (int n = 1; n < ATTEMPTS; n++) {
        int64_t b = bound_ns(10, 80, n);
        /* not all equal, and spread over the whole range: uniform on [0, b] */
        assert_true(lo[n] < hi[n]);
        assert_true(lo[n] < b / 20);
        assert_true(hi[n] > b - b / 20);
        double mean = sum[n] / (CALLS / 4);
        assert_true(mean > 0.4 * (double)b && mean < 0.6 * (double)b);
    }
    assert_int_equal(bound_ns(10, 80, 4), 80 * MS);
    assert_int_equal(bound_ns(10, 80, 3), 40 * MS);
    fixture_free(f);
}

static void one_seed_gives_one_sequence_of_delays(void **state)
{
    (void)state;
    int64_t first[64];
    for (int run = 0; run < 2; run++) {
        fixture *f = fixture_new();
        f->ro.max_attempts = 9;
        f->ro.budget_max_tokens = 0;
        f->ro.seed = 7;
        fixture_start(f);
        for (int k = 0; k < 8; k++) {
            script s = { { 503 }, 1, 0, 0 };
            assert_int_equal(cb_retry_fire(f->r, f->b, &s, NULL, NULL), CB_EFAILED);
        }
        assert_int_equal(f->nretry, 64);
        for (int j = 0; j < 64; j++) {
            if (run == 0)
                first[j] = f->retry_delay[j];
            else
                assert_int_equal(first[j], f->retry_delay[j]);
        }
        fixture_free(f);
    }
}

static void zero_base_retries_at_once(void **state)
{
    (void)state;
    fixture *f = fixture_new();
    f->ro.base_ms = 0;
    fixture_start(f);
    int64_t t0 = now_of(f);
    script s = { { 503, 503, 0 }, 3, 0, 0 };
    assert_int_equal(cb_retry_fire(f->r, f->b, &s, NULL, NULL), CB_OK);
    assert_int_equal(atomic_load(&f->nsleeps), 0);
    assert_int_equal(f->retry_delay[0], 0);
    assert_int_equal(f->retry_delay[1], 0);
    assert_int_equal(now_of(f), t0);
    fixture_free(f);
}

static void the_cap_holds_for_every_retry_without_overflow(void **state)
{
    (void)state;
    fixture *f = fixture_new();
    f->ro.base_ms = 1000;
    f->ro.cap_ms = 1500;
    f->ro.max_attempts = 100;
    f->ro.budget_max_tokens = 0;
    fixture_start(f);
    script s = { { 503 }, 1, 0, 0 };
    assert_int_equal(cb_retry_fire(f->r, f->b, &s, NULL, NULL), CB_EFAILED);
    assert_int_equal(f->nretry, 99);
    int above_base = 0;
    for (int j = 0; j < f->nretry; j++) {
        assert_in_range(f->retry_delay[j], 0, (j == 0 ? 1000 : 1500) * MS);
        above_base += f->retry_delay[j] > 1000 * MS;
    }
    assert_true(above_base > 0); /* the cap, not the base, bounds the later retries */
    fixture_free(f);
}

/* ---- budget --------------------------------------------------------------------------------- */

/* One row: a call whose action answers rc[] in turn, what it must do, and
 * the tokens after it (max 10, ratio 0.1, two attempts). Computed by hand:
 * a retryable failure costs 1 (floor 0), a success adds 0.1 (ceiling 10),
 * a retry needs tokens > 5 after the failure's cost. */
typedef struct budget_row {
    int rc[2];
    int n;
    int repeat;          /* the same call this many times */
    int attempts;        /* of the (last) call */
    cb_retry_stop stop;
    double tokens;       /* after the row */
} budget_row;

static void budget_follows_the_token_bucket_table(void **state)
{
    (void)state;
    static const budget_row table[] = {
        { { 503, 0 }, 2, 1, 2, CB_RETRY_DONE, 9.1 },      /* 10 -1 = 9 > 5: retry; +0.1 */
        { { 503, 503 }, 2, 1, 2, CB_RETRY_ATTEMPTS, 7.1 }, /* 8.1 retry, 7.1 */
        { { 503, 503 }, 2, 1, 2, CB_RETRY_ATTEMPTS, 5.1 }, /* 6.1 retry, 5.1 */
        { { 503 }, 1, 1, 1, CB_RETRY_BUDGET, 4.1 },        /* 4.1 <= 5: no retry */
        { { 404 }, 1, 1, 1, CB_RETRY_DONE, 4.1 },          /* not retryable: no cost */
        { { 0 }, 1, 9, 1, CB_RETRY_DONE, 5.0 },            /* 9 successes: +0.9 */
        { { 503 }, 1, 1, 1, CB_RETRY_BUDGET, 4.0 },        /* 4.0 <= 5 */
        { { 0 }, 1, 11, 1, CB_RETRY_DONE, 5.1 },           /* +1.1 */
        { { 503 }, 1, 1, 1, CB_RETRY_BUDGET, 4.1 },        /* 5.1 - 1 = 4.1: still no */
        { { 0 }, 1, 20, 1, CB_RETRY_DONE, 6.1 },           /* +2.0 */
        { { 503, 0 }, 2, 1, 2, CB_RETRY_DONE, 5.2 },       /* 5.1 > 5: retry; +0.1 */
        { { 503, 503 }, 2, 1, 1, CB_RETRY_BUDGET, 4.2 },   /* 4.2: no retry */
        { { 503 }, 1, 4, 1, CB_RETRY_BUDGET, 0.2 },        /* 3.2 2.2 1.2 0.2 */
        { { 503 }, 1, 3, 1, CB_RETRY_BUDGET, 0.0 },        /* floor 0 */
        { { 0 }, 1, 50, 1, CB_RETRY_DONE, 5.0 },           /* +5.0 */
        { { 0 }, 1, 60, 1, CB_RETRY_DONE, 10.0 },          /* ceiling 10 */
        { { 503, 0 }, 2, 1, 2, CB_RETRY_DONE, 9.1 },       /* as the first row */
        { { 0 }, 1, 9, 1, CB_RETRY_DONE, 10.0 },           /* 9.1 + 0.9 */
        { { 503, 503 }, 2, 1, 2, CB_RETRY_ATTEMPTS, 8.0 }, /* 9 retry, 8 */
        { { 503, 503 }, 2, 1, 2, CB_RETRY_ATTEMPTS, 6.0 }, /* 7 retry, 6 */
        { { 503, 503 }, 2, 1, 1, CB_RETRY_BUDGET, 5.0 },   /* exactly half: no retry */
    };
    fixture *f = fixture_new();
    f->ro.max_attempts = 2;
    fixture_start(f);
    int budget_stops = 0;
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        for (int k = 0; k < table[i].repeat; k++) {
            script s = { { table[i].rc[0], table[i].rc[1] }, table[i].n, 0, 0 };
            cb_retry_call c = { 0 };
            cb_retry_fire(f->r, f->b, &s, NULL, &c);
            assert_int_equal(c.attempts, table[i].attempts);
            assert_int_equal(c.stop, table[i].stop);
            budget_stops += c.stop == CB_RETRY_BUDGET;
        }
        double t = rstats(f).budget_tokens;
        if (t < table[i].tokens - 1e-9 || t > table[i].tokens + 1e-9)
            fail_msg("row %zu: tokens %.3f, expected %.3f", i, t, table[i].tokens);
    }
    assert_int_equal(rstats(f).budget_exhausted, budget_stops);
    assert_int_equal(atomic_load(&f->kinds[CB_REV_BUDGET_EXHAUSTED]), budget_stops);
    assert_true(f->last[CB_REV_BUDGET_EXHAUSTED].budget_tokens == 5.0);
    fixture_free(f);
}

static void the_token_ratio_is_kept_to_three_decimals(void **state)
{
    (void)state;
    fixture *f = fixture_new();
    f->ro.budget_token_ratio = 0.0016; /* 1.6 milli-tokens: 2 */
    f->ro.max_attempts = 1;
    fixture_start(f);
    script fail = { { 503 }, 1, 0, 0 };
    cb_retry_fire(f->r, f->b, &fail, NULL, NULL);
    script ok = { { 0 }, 1, 0, 0 };
    cb_retry_fire(f->r, f->b, &ok, NULL, NULL);
    double t = rstats(f).budget_tokens;
    assert_true(t > 9.002 - 1e-9 && t < 9.002 + 1e-9);
    fixture_free(f);
}

static void without_a_budget_every_call_uses_all_its_attempts(void **state)
{
    (void)state;
    fixture *f = fixture_new();
    f->ro.budget_max_tokens = 0;
    fixture_start(f);
    for (int k = 0; k < 100; k++) {
        script s = { { 503 }, 1, 0, 0 };
        cb_retry_call c = { 0 };
        assert_int_equal(cb_retry_fire(f->r, f->b, &s, NULL, &c), CB_EFAILED);
        assert_int_equal(c.attempts, 3);
    }
    cb_retry_stats st = rstats(f);
    assert_int_equal(st.attempts, 300);
    assert_int_equal(st.budget_exhausted, 0);
    assert_int_equal(st.retries_exhausted, 100);
    fixture_free(f);
}

/* ---- deadline ---------------------------------------------------------------------------------- */

static void a_deadline_already_passed_makes_no_attempt(void **state)
{
    (void)state;
    fixture *f = fixture_new();
    fixture_start(f);
    script s = { { 0 }, 1, 0, 0 };
    cb_result res;
    cb_retry_call c = { .deadline_ns = now_of(f) };
    assert_int_equal(cb_retry_fire(f->r, f->b, &s, &res, &c), CB_ETIMEDOUT);
    assert_int_equal(c.attempts, 0);
    assert_int_equal(c.stop, CB_RETRY_DEADLINE);
    assert_null(res.value);
    assert_int_equal(atomic_load(&f->runs), 0);
    assert_int_equal(bstats(f).total.fires, 0);
    assert_int_equal(f->last[CB_REV_DEADLINE].attempt, 0);
    assert_int_equal(f->last[CB_REV_DEADLINE].rc, CB_ETIMEDOUT);
    cb_retry_stats st = rstats(f);
    assert_int_equal(st.calls, 1);
    assert_int_equal(st.attempts, 0);
    assert_int_equal(st.deadline_exceeded, 1);
    assert_int_equal(st.deadline_before_first, 1);
    fixture_free(f);
}

static void no_attempt_starts_and_no_backoff_is_slept_past_the_deadline(void **state)
{
    (void)state;
    /* many seeds, so that some back-offs fit and some do not */
    for (uint64_t seed = 1; seed <= 300; seed++) {
        fixture *f = fixture_new();
        f->ro.seed = seed;
        f->ro.base_ms = 20;
        f->ro.cap_ms = 40;
        f->ro.max_attempts = 100;
        f->ro.budget_max_tokens = 0;
        fixture_start(f);
        int64_t t0 = now_of(f);
        int64_t deadline = t0 + 100 * MS;
        script s = { { 503 }, 1, 3, 0 }; /* each attempt takes 3 ms */
        cb_result res;
        cb_retry_call c = { .timeout_ms = 100 };
        assert_int_equal(cb_retry_fire(f->r, f->b, &s, &res, &c), CB_EFAILED);
        assert_int_equal(res.action_rc, 503); /* the last attempt's outcome */
        assert_int_equal(c.stop, CB_RETRY_DEADLINE);
        assert_int_equal(c.attempts, atomic_load(&f->runs));
        assert_true(c.attempts >= 2);
        for (int j = 0; j < c.attempts; j++)
            assert_true(f->run_start_ns[j] < deadline);
        int slept = atomic_load(&f->nsleeps);
        for (int j = 0; j < slept; j++)
            assert_true(f->sleep_start_ns[j] + f->sleep_ns[j] < deadline);
        /* the call ends at the last attempt's end, never later than 3 ms past the deadline */
        assert_true(now_of(f) < deadline + 3 * MS);
        assert_int_equal(atomic_load(&f->kinds[CB_REV_DEADLINE]), 1);
        assert_int_equal(rstats(f).deadline_exceeded, 1);
        assert_int_equal(rstats(f).deadline_before_first, 0);
        fixture_free(f);
    }
}

static void the_earlier_of_deadline_and_timeout_holds(void **state)
{
    (void)state;
    for (int which = 0; which < 2; which++) {
        fixture *f = fixture_new();
        f->ro.base_ms = 0;
        f->ro.max_attempts = 100;
        f->ro.budget_max_tokens = 0;
        fixture_start(f);
        int64_t t0 = now_of(f);
        script s = { { 503 }, 1, 10, 0 }; /* 10 ms an attempt, retried at once */
        cb_retry_call c = which == 0 ? (cb_retry_call){ .deadline_ns = t0 + 30 * MS, .timeout_ms = 1000 }
                                     : (cb_retry_call){ .deadline_ns = t0 + 1000 * MS, .timeout_ms = 50 };
        cb_retry_fire(f->r, f->b, &s, NULL, &c);
        /* attempts start at 0, 10, 20 (and 30, 40 for 50 ms): none at the deadline */
        assert_int_equal(c.attempts, which == 0 ? 3 : 5);
        assert_int_equal(c.stop, CB_RETRY_DEADLINE);
        fixture_free(f);
    }
}

/* ---- composition with the breaker ------------------------------------------------------------- */

static int fallback_value(void *arg, int reason, int action_rc, void **result, void *user)
{
    (void)arg; (void)reason; (void)action_rc; (void)user;
    *result = strdup("fallback");
    return *result ? 0 : 1;
}

static void discard_value(void *value, void *user)
{
    fixture *f = user;
    atomic_fetch_add(&f->discards, 1);
    free(value);
}

static void closed_breaker_sees_every_attempt(void **state)
{
    (void)state;
    fixture *f = fixture_new();
    fixture_start(f);
    script s = { { 503, -ECONNRESET, 0 }, 3, 0, 0 };
    assert_int_equal(cb_retry_fire(f->r, f->b, &s, NULL, NULL), CB_OK);
    cb_stats st = bstats(f);
    assert_int_equal(st.state, CB_CLOSED);
    assert_int_equal(st.total.fires, 3);
    assert_int_equal(st.total.failures, 2);
    assert_int_equal(st.total.successes, 1);
    assert_int_equal(atomic_load(&f->runs), 3);
    fixture_free(f);
}

static void open_breaker_rejects_once_and_is_not_retried(void **state)
{
    (void)state;
    fixture *f = fixture_new();
    f->bo.fallback = fallback_value;
    fixture_start(f);
    assert_int_equal(cb_open(f->b), CB_OK);
    script s = { { 0 }, 1, 0, 0 };
    cb_result res;
    cb_retry_call c = { 0 };
    assert_int_equal(cb_retry_fire(f->r, f->b, &s, &res, &c), CB_EOPEN);
    assert_true(res.fallback);
    assert_string_equal((char *)res.value, "fallback");
    free(res.value);
    assert_int_equal(c.attempts, 1);
    assert_int_equal(c.stop, CB_RETRY_REFUSED);
    assert_int_equal(atomic_load(&f->runs), 0);
    assert_int_equal(atomic_load(&f->nsleeps), 0);
    assert_int_equal(atomic_load(&f->kinds[CB_REV_RETRY]), 0);
    cb_stats st = bstats(f);
    assert_int_equal(st.total.fires, 1);
    assert_int_equal(st.total.rejects, 1);
    cb_retry_stats rs = rstats(f);
    assert_int_equal(rs.refused, 1);
    assert_true(rs.budget_tokens == 10.0); /* a refusal costs no token */
    /* forced open and shut down: the same */
    assert_int_equal(cb_force(f->b, CB_FORCE_OPEN), CB_OK);
    assert_int_equal(cb_retry_fire(f->r, f->b, &s, &res, &c), CB_EOPEN);
    free(res.value);
    assert_int_equal(c.attempts, 1);
    assert_int_equal(cb_shutdown(f->b), CB_OK);
    assert_int_equal(cb_retry_fire(f->r, f->b, &s, &res, &c), CB_ESHUTDOWN);
    assert_int_equal(c.attempts, 1);
    assert_int_equal(c.stop, CB_RETRY_REFUSED);
    fixture_free(f);
}

static void half_open_trial_that_fails_reopens_and_the_retry_is_rejected(void **state)
{
    (void)state;
    fixture *f = fixture_new();
    f->bo.reset_timeout_ms = 5000; /* longer than any back-off (<= 1 s) */
    fixture_start(f);
    assert_int_equal(cb_open(f->b), CB_OK);
    cb_manual_clock_advance_ms(f->mc, 5000);
    assert_int_equal(cb_tick(f->b), CB_OK);
    assert_int_equal(cb_get_state(f->b), CB_HALF_OPEN);
    script s = { { 503 }, 1, 0, 0 };
    cb_retry_call c = { 0 };
    assert_int_equal(cb_retry_fire(f->r, f->b, &s, NULL, &c), CB_EOPEN);
    assert_int_equal(c.attempts, 2);     /* the trial, then one rejected retry */
    assert_int_equal(c.stop, CB_RETRY_REFUSED);
    assert_int_equal(atomic_load(&f->runs), 1);
    cb_stats st = bstats(f);
    assert_int_equal(st.state, CB_OPEN);
    assert_int_equal(st.total.fires, 2);
    assert_int_equal(st.total.failures, 1);
    assert_int_equal(st.total.rejects, 1);
    fixture_free(f);
}

static void half_open_trial_that_succeeds_closes_in_one_attempt(void **state)
{
    (void)state;
    fixture *f = fixture_new();
    f->bo.reset_timeout_ms = 5000;
    fixture_start(f);
    assert_int_equal(cb_open(f->b), CB_OK);
    cb_manual_clock_advance_ms(f->mc, 5000);
    cb_tick(f->b);
    script s = { { 0 }, 1, 0, 0 };
    cb_retry_call c = { 0 };
    assert_int_equal(cb_retry_fire(f->r, f->b, &s, NULL, &c), CB_OK);
    assert_int_equal(c.attempts, 1);
    assert_int_equal(cb_get_state(f->b), CB_CLOSED);
    fixture_free(f);
}

static void failed_attempts_that_open_the_breaker_end_the_call(void **state)
{
    (void)state;
    fixture *f = fixture_new();
    f->bo.volume_threshold = 2;    /* opens on the second failure (100% > 50%) */
    f->ro.max_attempts = 5;
    fixture_start(f);
    script s = { { 503 }, 1, 0, 0 };
    cb_retry_call c = { 0 };
    assert_int_equal(cb_retry_fire(f->r, f->b, &s, NULL, &c), CB_EOPEN);
    assert_int_equal(c.attempts, 3);  /* fail, fail (opens), rejected */
    assert_int_equal(atomic_load(&f->runs), 2);
    assert_int_equal(bstats(f).total.fires, 3);
    assert_int_equal(cb_get_state(f->b), CB_OPEN);
    fixture_free(f);
}

/* The outer call holds the breaker's one slot while its action fires an
 * inner call through the same policy and breaker. */
static int inner_rc, inner_attempts;

static int nested_action(const cb_call *call, void **result)
{
    fixture *f = call->user;
    script inner = { { 503 }, 1, 0, 0 };
    cb_retry_call c = { 0 };
    inner_rc = cb_retry_fire(f->r, f->b, &inner, NULL, &c);
    inner_attempts = c.attempts;
    *result = NULL;
    return 0;
}

static void a_capacity_rejection_is_not_retried(void **state)
{
    (void)state;
    fixture *f = fixture_new();
    f->bo.capacity = 1;
    f->bo.action = nested_action;
    fixture_start(f);
    assert_int_equal(cb_retry_fire(f->r, f->b, NULL, NULL, NULL), CB_OK);
    assert_int_equal(inner_rc, CB_ESEMLOCKED);
    assert_int_equal(inner_attempts, 1);
    assert_int_equal(bstats(f).total.semaphore_rejections, 1);
    assert_int_equal(rstats(f).refused, 1);
    assert_int_equal(atomic_load(&f->kinds[CB_REV_RETRY]), 0);
    fixture_free(f);
}

static void a_retried_attempts_fallback_value_is_discarded(void **state)
{
    (void)state;
    fixture *f = fixture_new();
    f->bo.fallback = fallback_value;
    f->ro.discard = discard_value;
    f->ro.user = f;
    fixture_start(f);
    script s = { { 503, 503, 0 }, 3, 0, 0 };
    cb_result res;
    assert_int_equal(cb_retry_fire(f->r, f->b, &s, &res, NULL), CB_OK);
    assert_string_equal((char *)res.value, "done");
    assert_false(res.fallback);
    assert_int_equal(atomic_load(&f->discards), 2);
    /* the last attempt's fallback value is the caller's */
    s = (script){ { 503 }, 1, 0, 0 };
    assert_int_equal(cb_retry_fire(f->r, f->b, &s, &res, NULL), CB_EFAILED);
    assert_true(res.fallback);
    assert_int_equal(atomic_load(&f->discards), 4);
    free(res.value);
    fixture_free(f);
}

static void a_key_reaches_the_breakers_cache(void **state)
{
    (void)state;
    fixture *f = fixture_new();
    f->bo.cache = true;
    fixture_start(f);
    script s = { { 503, 0 }, 2, 0, 0 };
    cb_retry_call c = { .key = "k" };
    cb_result res;
    assert_int_equal(cb_retry_fire(f->r, f->b, &s, &res, &c), CB_OK);
    assert_int_equal(c.attempts, 2);
    assert_int_equal(cb_retry_fire(f->r, f->b, &s, &res, &c), CB_OK);
    assert_true(res.cached);
    assert_int_equal(c.attempts, 1);
    assert_int_equal(atomic_load(&f->runs), 2);
    fixture_free(f);
}

/* ---- events ------------------------------------------------------------------------------------ */

static void listeners_hear_the_kinds_they_asked_for(void **state)
{
    (void)state;
    assert_string_equal(cb_retry_event_name(CB_REV_RETRY), "retry");
    assert_string_equal(cb_retry_event_name(CB_REV_RETRY_EXHAUSTED), "retry-exhausted");
    assert_string_equal(cb_retry_event_name(CB_REV_BUDGET_EXHAUSTED), "budget-exhausted");
    assert_string_equal(cb_retry_event_name(CB_REV_DEADLINE), "deadline");
    assert_string_equal(cb_retry_event_name(CB_REV_COUNT), "unknown");
    fixture *f = fixture_new();
    assert_int_equal(cb_create(&f->bo, &f->b), CB_OK);
    assert_int_equal(cb_retry_create(&f->ro, &f->r), CB_OK);
    assert_int_equal(cb_retry_on(NULL, CB_REV_ALL, recorder, f), CB_EINVAL);
    assert_int_equal(cb_retry_on(f->r, CB_REV_ALL, NULL, f), CB_EINVAL);
    assert_int_equal(cb_retry_on(f->r, 1u << CB_REV_COUNT, recorder, f), CB_EINVAL);
    int id = cb_retry_on(f->r, CB_REV_MASK(CB_REV_RETRY_EXHAUSTED), recorder, f);
    assert_true(id > 0);
    script s = { { 503 }, 1, 0, 0 };
    cb_retry_fire(f->r, f->b, &s, NULL, NULL);
    assert_int_equal(atomic_load(&f->kinds[CB_REV_RETRY]), 0);
    assert_int_equal(atomic_load(&f->kinds[CB_REV_RETRY_EXHAUSTED]), 1);
    assert_true(f->last[CB_REV_RETRY_EXHAUSTED].time_ns == now_of(f));
    assert_true(f->last[CB_REV_RETRY_EXHAUSTED].budget_tokens == 7.0);
    assert_int_equal(cb_retry_off(f->r, id), CB_OK);
    assert_int_equal(cb_retry_off(f->r, id), CB_ENOTFOUND);
    assert_int_equal(cb_retry_off(NULL, id), CB_EINVAL);
    s.i = 0;
    cb_retry_fire(f->r, f->b, &s, NULL, NULL);
    assert_int_equal(atomic_load(&f->kinds[CB_REV_RETRY_EXHAUSTED]), 1);
    fixture_free(f);
}

/* ---- threads ----------------------------------------------------------------------------------- */

enum { THREADS = 8 };
static int per_thread; /* set before the threads start */

static void *fail_once_then_succeed(void *arg)
{
    fixture *f = arg;
    for (int k = 0; k < per_thread; k++) {
        script s = { { 503, 0 }, 2, 0, 0 };
        cb_retry_fire(f->r, f->b, &s, NULL, NULL);
    }
    return NULL;
}

static void *always_fail(void *arg)
{
    fixture *f = arg;
    for (int k = 0; k < per_thread; k++) {
        script s = { { 503 }, 1, 0, 0 };
        cb_retry_fire(f->r, f->b, &s, NULL, NULL);
    }
    return NULL;
}

static void run_threads(fixture *f, void *(*fn)(void *))
{
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, fn, f), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
}

static void threads_sharing_a_policy_count_every_attempt(void **state)
{
    (void)state;
    fixture *f = fixture_new();
    f->ro.budget_max_tokens = 0;
    f->ro.base_ms = 1;
    f->ro.seed = 0; /* from the clock */
    f->threaded = true;
    fixture_start(f);
    per_thread = 300;
    run_threads(f, fail_once_then_succeed);
    const uint64_t calls = THREADS * per_thread;
    cb_retry_stats st = rstats(f);
    assert_int_equal(st.calls, calls);
    assert_int_equal(st.attempts, 2 * calls);
    assert_int_equal(st.retries, calls);
    assert_int_equal(st.retries_exhausted, 0);
    assert_int_equal(atomic_load(&f->kinds[CB_REV_RETRY]), calls);
    assert_int_equal(atomic_load(&f->runs), 2 * calls);
    cb_stats bs = bstats(f);
    assert_int_equal(bs.total.fires, 2 * calls);
    assert_int_equal(bs.total.successes, calls);
    assert_int_equal(bs.total.failures, calls);
    fixture_free(f);
}

static void threads_sharing_a_budget_spend_it_exactly(void **state)
{
    (void)state;
    fixture *f = fixture_new();
    f->ro.max_attempts = 2;
    f->ro.budget_max_tokens = 1000;
    f->ro.base_ms = 0;
    f->threaded = true;
    fixture_start(f);
    per_thread = 60; /* 480 calls: fewer than 1000 failures, so no floor */
    run_threads(f, always_fail);
    const uint64_t calls = THREADS * per_thread;
    cb_retry_stats st = rstats(f);
    assert_int_equal(st.calls, calls);
    /* every call wanted one retry: it had it, or the budget said no */
    assert_int_equal(st.retries + st.budget_exhausted, calls);
    assert_int_equal(st.retries_exhausted, st.retries);  /* each retry failed too */
    assert_int_equal(st.attempts, calls + st.retries);
    /* each failed attempt cost one token. Only the first 499 costs left more
     * than 500, so at most 499 retries; among those 499 costs a retry's cost
     * follows its call's first, so at least half are first attempts. */
    assert_in_range(st.retries, 250, 499);
    assert_true(st.budget_tokens == 1000.0 - (double)st.attempts);
    assert_int_equal(bstats(f).total.fires, st.attempts);
    fixture_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(options_init_sets_documented_defaults),
        cmocka_unit_test(invalid_options_are_refused_with_einval),
        cmocka_unit_test(options_are_copied_with_the_name),
        cmocka_unit_test(bad_calls_are_refused_without_an_attempt),
        cmocka_unit_test(success_on_the_first_attempt_makes_one_call),
        cmocka_unit_test(retryable_failures_are_retried_until_success),
        cmocka_unit_test(attempts_stop_at_max_attempts_with_retry_exhausted),
        cmocka_unit_test(one_attempt_never_retries),
        cmocka_unit_test(default_predicate_retries_only_transient_failures),
        cmocka_unit_test(an_attempt_past_the_breaker_timeout_is_retried),
        cmocka_unit_test(a_custom_predicate_decides_and_sees_arg_and_user),
        cmocka_unit_test(backoff_is_full_jitter_within_its_bounds),
        cmocka_unit_test(one_seed_gives_one_sequence_of_delays),
        cmocka_unit_test(zero_base_retries_at_once),
        cmocka_unit_test(the_cap_holds_for_every_retry_without_overflow),
        cmocka_unit_test(budget_follows_the_token_bucket_table),
        cmocka_unit_test(the_token_ratio_is_kept_to_three_decimals),
        cmocka_unit_test(without_a_budget_every_call_uses_all_its_attempts),
        cmocka_unit_test(a_deadline_already_passed_makes_no_attempt),
        cmocka_unit_test(no_attempt_starts_and_no_backoff_is_slept_past_the_deadline),
        cmocka_unit_test(the_earlier_of_deadline_and_timeout_holds),
        cmocka_unit_test(closed_breaker_sees_every_attempt),
        cmocka_unit_test(open_breaker_rejects_once_and_is_not_retried),
        cmocka_unit_test(half_open_trial_that_fails_reopens_and_the_retry_is_rejected),
        cmocka_unit_test(half_open_trial_that_succeeds_closes_in_one_attempt),
        cmocka_unit_test(failed_attempts_that_open_the_breaker_end_the_call),
        cmocka_unit_test(a_capacity_rejection_is_not_retried),
        cmocka_unit_test(a_retried_attempts_fallback_value_is_discarded),
        cmocka_unit_test(a_key_reaches_the_breakers_cache),
        cmocka_unit_test(listeners_hear_the_kinds_they_asked_for),
        cmocka_unit_test(threads_sharing_a_policy_count_every_attempt),
        cmocka_unit_test(threads_sharing_a_budget_spend_it_exactly),
    };
    return _cmocka_run_group_tests("retry", tests, sizeof tests / sizeof tests[0], NULL, NULL)
               ? 1 : 0;
}
