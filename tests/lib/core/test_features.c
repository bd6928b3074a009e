/* test_features.c -- capacity, health check, cache, coalescing, rolling
 * window and percentiles, snapshots, listeners, and JSON export/import. */
#include "helpers.h"

#include <stdio.h>

/* ---- capacity ------------------------------------------------------------- */

static int inner_rc;
static int capacity_action(const cb_call *call, void **result)
{
    (void)result;
    fixture *f = call->user;
    if (call->arg)
        inner_rc = cb_fire(f->b, NULL, NULL); /* a second call while this one runs */
    return 0;
}

static void capacity_rejects_concurrent_calls_with_semaphore_locked(void **state)
{
    (void)state;
    fixture *f = fixture_new();
    f->o.action = capacity_action;
    f->o.capacity = 1;
    f->o.volume_threshold = 5;
    fixture_start(f);
    assert_int_equal(cb_fire(f->b, (void *)1, NULL), CB_OK);
    assert_int_equal(inner_rc, CB_ESEMLOCKED);
    assert_int_equal(f->kinds[CB_EV_SEMAPHORE_LOCKED], 1);
    cb_stats st = stats_of(f);
    assert_int_equal(st.window.semaphore_rejections, 1);
    assert_int_equal(st.window.fires, 2);
    assert_int_equal(st.window.failures, 1); /* as opossum: a locked call is a failure */
    assert_int_equal(cb_fire(f->b, NULL, NULL), CB_OK); /* released */
    fixture_free(f);
}

/* ---- health check ----------------------------------------------------------- */

static int health_rc, health_runs;
static int health_check(void *user)
{
    (void)user;
    health_runs++;
    return health_rc;
}

static void failing_health_check_opens_circuit_and_emits_health_check_failed(void **state)
{
    (void)state;
    fixture *f = fixture_new();
    f->o.health_check = health_check;
    f->o.health_check_interval_ms = 1000;
    fixture_start(f);
    health_rc = 0;
    health_runs = 0;
    cb_tick(f->b); /* first check runs at once, as opossum */
    assert_int_equal(health_runs, 1);
    cb_manual_clock_advance_ms(f->mc, 999);
    cb_tick(f->b);
    assert_int_equal(health_runs, 1);
    health_rc = 1;
    cb_manual_clock_advance_ms(f->mc, 1);
    cb_tick(f->b);
    assert_int_equal(health_runs, 2);
    assert_int_equal(f->kinds[CB_EV_HEALTH_CHECK_FAILED], 1);
    assert_int_equal(cb_get_state(f->b), CB_OPEN);
    fixture_free(f);
}

/* ---- cache -------------------------------------------------------------------- */

static void cache_returns_cached_value_without_running_the_action(void **state)
{
    (void)state;
    fixture *f = fixture_new();
    f->o.cache = true;
    fixture_start(f);
    step s = { 0, 0, (void *)"v1" };
    cb_result r;
    assert_int_equal(cb_fire_key(f->b, "a", &s, &r), CB_OK);
    assert_false(r.cached);
    assert_int_equal(cb_fire_key(f->b, "a", &s, &r), CB_OK);
    assert_true(r.cached);
    assert_string_equal((char *)r.value, "v1");
    assert_int_equal(f->calls, 1);
    assert_int_equal(f->kinds[CB_EV_CACHE_HIT], 1);
    assert_int_equal(f->kinds[CB_EV_CACHE_MISS], 1);
    cb_stats st = stats_of(f);
    assert_int_equal(st.window.cache_hits, 1);
    assert_int_equal(st.window.cache_misses, 1);
    assert_int_equal(st.window.fires, 2);
    assert_int_equal(cb_fire_key(f->b, "b", &s, &r), CB_OK);
    assert_int_equal(f->calls, 2);
    assert_int_equal(cb_cache_clear(f->b), CB_OK);
    assert_int_equal(cb_fire_key(f->b, "a", &s, &r), CB_OK);
    assert_false(r.cached);
    assert_int_equal(f->calls, 3);
    fixture_free(f);
}

static void cache_entries_expire_after_ttl(void **state)
{
    (void)state;
    fixture *f = fixture_new();
    f->o.cache = true;
    f->o.cache_ttl_ms = 100;
    fixture_start(f);
    cb_result r;
    cb_fire_key(f->b, "a", (void *)&OK_STEP, &r);
    cb_manual_clock_advance_ms(f->mc, 99);
    cb_fire_key(f->b, "a", (void *)&OK_STEP, &r);
    assert_true(r.cached);
    cb_manual_clock_advance_ms(f->mc, 1);
    cb_fire_key(f->b, "a", (void *)&OK_STEP, &r);
    assert_false(r.cached);
    assert_int_equal(f->calls, 2);
    fixture_free(f);
}

static void cache_evicts_least_recently_used_beyond_its_size(void **state)
{
    (void)state;
    fixture *f = fixture_new();
    f->o.cache = true;
    f->o.cache_size = 2;
    fixture_start(f);
    cb_result r;
    cb_fire_key(f->b, "a", (void *)&OK_STEP, &r);
    cb_fire_key(f->b, "b", (void *)&OK_STEP, &r);
    cb_fire_key(f->b, "a", (void *)&OK_STEP, &r); /* a is now the most recent */
    cb_fire_key(f->b, "c", (void *)&OK_STEP, &r); /* evicts b */
    assert_int_equal(f->calls, 3);
    cb_fire_key(f->b, "a", (void *)&OK_STEP, &r);
    assert_true(r.cached);
    cb_fire_key(f->b, "b", (void *)&OK_STEP, &r);
    assert_false(r.cached);
    fixture_free(f);
}

static void failures_are_not_cached(void **state)
{
    (void)state;
    fixture *f = fixture_new();
    f->o.cache = true;
    f->o.volume_threshold = 10;
    fixture_start(f);
    cb_result r;
    assert_int_equal(cb_fire_key(f->b, "a", (void *)&FAIL_STEP, &r), CB_EFAILED);
    assert_int_equal(cb_fire_key(f->b, "a", (void *)&FAIL_STEP, &r), CB_EFAILED);
    assert_int_equal(f->calls, 2);
    fixture_free(f);
}

/* ---- coalescing ------------------------------------------------------------------ */

typedef struct coalesce_ctx {
    cb_breaker *b;
    pthread_mutex_t mx;
    pthread_cond_t cv;
    int hits;
    int actions;
    int rcs[4];
    void *values[4];
} coalesce_ctx;

static coalesce_ctx cc = { NULL, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, {0}, {0} };

/* The leader's action waits (bounded) until the three followers joined. */
static int leader_action(const cb_call *call, void **result)
{
    (void)call;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 5;
    pthread_mutex_lock(&cc.mx);
    cc.actions++;
    while (cc.hits < 3)
        if (pthread_cond_timedwait(&cc.cv, &cc.mx, &until) != 0)
            break;
    pthread_mutex_unlock(&cc.mx);
    *result = (void *)"shared";
    return 0;
}

static void on_coalesce_hit(cb_breaker *b, const cb_event *ev, void *ctx)
{
    (void)b;
    (void)ev;
    (void)ctx;
    pthread_mutex_lock(&cc.mx);
    cc.hits++;
    pthread_cond_broadcast(&cc.cv);
    pthread_mutex_unlock(&cc.mx);
}

static void *coalesce_caller(void *arg)
{
    int i = (int)(intptr_t)arg;
    cb_result r;
    cc.rcs[i] = cb_fire_key(cc.b, "same", NULL, &r);
    cc.values[i] = r.value;
    return NULL;
}

static void concurrent_calls_with_one_key_share_one_action(void **state)
{
    (void)state;
    cb_options o;
    cb_options_init(&o);
    o.action = leader_action;
    o.coalesce = true;
    assert_int_equal(cb_create(&o, &cc.b), CB_OK);
    assert_true(cb_on(cc.b, CB_EV_MASK(CB_EV_COALESCE_HIT), on_coalesce_hit, NULL) > 0);
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, coalesce_caller, (void *)(intptr_t)i), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(cc.actions, 1);
    assert_int_equal(cc.hits, 3);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(cc.rcs[i], CB_OK);
        assert_string_equal((char *)cc.values[i], "shared");
    }
    cb_stats st;
    cb_get_stats(cc.b, &st);
    assert_int_equal(st.window.coalesce_hits, 3);
    assert_int_equal(st.window.coalesce_misses, 1);
    assert_int_equal(st.window.successes, 1);
    assert_int_equal(st.window.fires, 4);
    cb_destroy(cc.b);
}

/* ---- rolling window, percentiles, snapshots --------------------------------------- */

static void rolling_window_forgets_buckets_older_than_the_window(void **state)
{
    (void)state;
    fixture *f = fixture_new();
    f->o.rolling_count_timeout_ms = 1000;
    f->o.rolling_count_buckets = 10;
    f->o.volume_threshold = 100;
    fixture_start(f);
    fire_n(f, &FAIL_STEP, 3, CB_EFAILED);
    cb_manual_clock_advance_ms(f->mc, 500);
    fire_n(f, &OK_STEP, 2, CB_OK);
    cb_stats st = stats_of(f);
    assert_int_equal(st.window.fires, 5);
    cb_manual_clock_advance_ms(f->mc, 500); /* the first bucket leaves the window */
    cb_tick(f->b);
    st = stats_of(f);
    assert_int_equal(st.window.fires, 2);
    assert_int_equal(st.window.failures, 0);
    assert_int_equal(st.total.fires, 5);
    assert_int_equal(st.total.failures, 3);
    cb_manual_clock_advance_ms(f->mc, 5000);
    cb_tick(f->b);
    st = stats_of(f);
    assert_int_equal(st.window.fires, 0);
    assert_int_equal(st.total.fires, 5);
    fixture_free(f);
}

static void percentiles_follow_opossum_formula(void **state)
{
    (void)state;
    fixture *f = fixture_new();
    f->o.timeout_ms = 0;
    fixture_start(f);
    for (int ms = 1; ms <= 10; ms++) {
        step s = { 0, ms, NULL };
        fire_step(f, &s);
    }
    cb_stats st = stats_of(f);
    /* sorted 1..10: p=0 -> 1; else element ceil(p*10)-1 */
    double want[CB_PERCENTILES] = { 1, 3, 5, 8, 9, 10, 10, 10, 10 };
    for (int i = 0; i < CB_PERCENTILES; i++)
        assert_true(st.percentiles_ms[i] == want[i]);
    assert_true(st.latency_mean_ms == 5.5);
    fixture_free(f);
}

static void percentiles_are_minus_one_when_disabled(void **state)
{
    (void)state;
    fixture *f = fixture_new();
    f->o.rolling_percentiles_enabled = false;
    fixture_start(f);
    fire_step(f, &OK_STEP);
    cb_stats st = stats_of(f);
    assert_true(st.latency_mean_ms == -1);
    for (int i = 0; i < CB_PERCENTILES; i++)
        assert_true(st.percentiles_ms[i] == -1);
    fixture_free(f);
}

static uint64_t snapshot_fires;
static void on_snapshot(cb_breaker *b, const cb_event *ev, void *ctx)
{
    (void)b;
    (void)ctx;
    assert_non_null(ev->stats);
    snapshot_fires = ev->stats->window.fires;
}

static void snapshot_is_emitted_once_per_bucket_interval_with_window_stats(void **state)
{
    (void)state;
    fixture *f = fixture_new();
    f->o.rolling_count_timeout_ms = 1000;
    f->o.rolling_count_buckets = 10;
    fixture_start(f);
    cb_on(f->b, CB_EV_MASK(CB_EV_SNAPSHOT), on_snapshot, NULL);
    fire_n(f, &OK_STEP, 2, CB_OK);
    cb_manual_clock_advance_ms(f->mc, 99);
    cb_tick(f->b);
    assert_int_equal(f->kinds[CB_EV_SNAPSHOT], 0);
    cb_manual_clock_advance_ms(f->mc, 1);
    cb_tick(f->b);
    cb_tick(f->b);
    assert_int_equal(f->kinds[CB_EV_SNAPSHOT], 1);
    assert_int_equal(snapshot_fires, 2);
    cb_manual_clock_advance_ms(f->mc, 100);
    fire_step(f, &OK_STEP); /* lazily, at the next fire */
    assert_int_equal(f->kinds[CB_EV_SNAPSHOT], 2);
    fixture_free(f);
}

/* ---- listeners ---------------------------------------------------------------------- */

static int counts_a[CB_EV_COUNT], counts_b[CB_EV_COUNT];
static void listen_a(cb_breaker *b, const cb_event *ev, void *ctx)
{
    (void)b;
    (void)ctx;
    counts_a[ev->kind]++;
}
static void listen_b(cb_breaker *b, const cb_event *ev, void *ctx)
{
    (void)b;
    (void)ctx;
    counts_b[ev->kind]++;
}

static void every_listener_receives_the_events_it_registered_for(void **state)
{
    (void)state;
    fixture *f = fixture_new();
    fixture_start(f);
    memset(counts_a, 0, sizeof counts_a);
    memset(counts_b, 0, sizeof counts_b);
    int a = cb_on(f->b, CB_EV_ALL, listen_a, NULL);
    int b = cb_on(f->b, CB_EV_MASK(CB_EV_FAILURE) | CB_EV_MASK(CB_EV_OPEN), listen_b, NULL);
    assert_true(a > 0 && b > 0 && a != b);
    fire_step(f, &OK_STEP);
    fire_step(f, &FAIL_STEP);
    fire_step(f, &FAIL_STEP);
    assert_int_equal(counts_a[CB_EV_FIRE], 3);
    assert_int_equal(counts_a[CB_EV_SUCCESS], 1);
    assert_int_equal(counts_a[CB_EV_FAILURE], 2);
    assert_int_equal(counts_b[CB_EV_FIRE], 0);
    assert_int_equal(counts_b[CB_EV_FAILURE], 2);
    assert_int_equal(counts_b[CB_EV_OPEN], 1);
    assert_int_equal(cb_off(f->b, a), CB_OK);
    assert_int_equal(cb_off(f->b, a), CB_ENOTFOUND);
    fire_step(f, &OK_STEP);
    assert_int_equal(counts_a[CB_EV_REJECT], 0);
    assert_int_equal(cb_on(f->b, 0, listen_a, NULL), CB_EINVAL);
    assert_int_equal(cb_on(f->b, CB_EV_ALL, NULL, NULL), CB_EINVAL);
    fixture_free(f);
}

/* ---- export / import ------------------------------------------------------------------ */

static void export_import_round_trip_resumes_open_timer_backoff_and_counts(void **state)
{
    (void)state;
    fixture *f = fixture_new();
    f->o.reset_timeout_ms = 1000;
    f->o.reset_backoff_multiplier = 2.0;
    fixture_start(f);
    fire_n(f, &OK_STEP, 3, CB_OK);
    fire_step(f, &FAIL_STEP);
    fire_step(f, &FAIL_STEP);
    fire_step(f, &FAIL_STEP); /* 3/6 = 50%: not yet */
    fire_step(f, &FAIL_STEP); /* 4/7 opens */
    assert_int_equal(cb_get_state(f->b), CB_OPEN);
    cb_manual_clock_advance_ms(f->mc, 1000);
    fire_step(f, &FAIL_STEP); /* trial fails: re-open for 2000 ms */
    cb_manual_clock_advance_ms(f->mc, 500);
    cb_stats before = stats_of(f);
    char *json = cb_export_json(f->b);
    assert_non_null(json);

    cb_breaker *b2;
    assert_int_equal(cb_create_from_json(&f->o, json, &b2), CB_OK);
    free(json);
    cb_stats after;
    cb_get_stats(b2, &after);
    assert_int_equal(after.state, CB_OPEN);
    assert_memory_equal(&after.total, &before.total, sizeof before.total);
    assert_memory_equal(&after.window, &before.window, sizeof before.window);
    assert_int_equal(after.open_until_ns, before.open_until_ns);
    assert_int_equal(after.current_reset_timeout_ms, 2000);
    cb_manual_clock_advance_ms(f->mc, 1499);
    assert_int_equal(cb_fire(b2, (void *)&OK_STEP, NULL), CB_EOPEN);
    cb_manual_clock_advance_ms(f->mc, 1);
    assert_int_equal(cb_fire(b2, (void *)&FAIL_STEP, NULL), CB_EFAILED); /* trial fails */
    cb_get_stats(b2, &after);
    assert_int_equal(after.current_reset_timeout_ms, 4000); /* back-off step resumed */
    cb_destroy(b2);
    fixture_free(f);
}

static void import_of_open_state_whose_timer_expired_is_half_open(void **state)
{
    (void)state;
    fixture *f = fixture_new();
    fixture_start(f);
    fire_step(f, &FAIL_STEP);
    char *json = cb_export_json(f->b);
    char *p = strstr(json, "\"openRemainingMs\":");
    assert_non_null(p);
    char buf[4096];
    snprintf(buf, sizeof buf, "%.*s\"openRemainingMs\":0%s", (int)(p - json), json,
             strchr(p, ','));
    free(json);
    cb_breaker *b2;
    assert_int_equal(cb_create_from_json(&f->o, buf, &b2), CB_OK);
    assert_int_equal(cb_get_state(b2), CB_HALF_OPEN);
    cb_destroy(b2);
    fixture_free(f);
}

static void import_refuses_what_is_not_an_export(void **state)
{
    (void)state;
    fixture *f = fixture_new();
    cb_breaker *b2 = NULL;
    const char *bad[] = { "", "{", "[]", "{\"format\":\"x\"}", "null",
                          "{\"format\":\"cb-state-1\",\"core\":\"sideways\",\"force\":\"none\"}" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(cb_create_from_json(&f->o, bad[i], &b2), CB_EPARSE);
    assert_null(b2);
    assert_int_equal(cb_create_from_json(&f->o, NULL, &b2), CB_EINVAL);
    fixture_free(f);
}


/* ---- ownership of shared results --------------------------------------------------- */

static int copies, frees;
static void *dup_string(const void *v, void *user)
{
    (void)user;
    copies++;
    return strdup(v);
}
static void free_string(void *v, void *user)
{
    (void)user;
    frees++;
    free(v);
}
static int malloc_action(const cb_call *call, void **result)
{
    (void)call;
    *result = strdup("fresh");
    return 0;
}

static void cache_hands_out_copies_and_frees_its_own_with_free_value(void **state)
{
    (void)state;
    fixture *f = fixture_new();
    f->o.action = malloc_action;
    f->o.cache = true;
    f->o.cache_size = 1;
    f->o.dup = dup_string;
    f->o.free_value = free_string;
    fixture_start(f);
    copies = frees = 0;
    cb_result r;
    assert_int_equal(cb_fire_key(f->b, "a", NULL, &r), CB_OK);
    free(r.value);                        /* the caller owns what it got */
    assert_int_equal(cb_fire_key(f->b, "a", NULL, &r), CB_OK);
    assert_true(r.cached);
    assert_string_equal((char *)r.value, "fresh");
    free(r.value);
    assert_int_equal(cb_fire_key(f->b, "b", NULL, &r), CB_OK); /* evicts a */
    free(r.value);
    assert_int_equal(frees, 1);
    fixture_free(f);                      /* frees b's copy; LeakSanitizer checks */
    assert_int_equal(frees, 2);
    assert_int_equal(copies, 3);
}

/* ---- many threads failing at once (opossum issue 385) ------------------------------- */

static pthread_barrier_t storm_barrier;
static cb_breaker *storm_breaker;

static int storm_action(const cb_call *call, void **result)
{
    (void)call;
    (void)result;
    pthread_barrier_wait(&storm_barrier); /* all eight fail at the same moment */
    return 1;
}

static void *storm_thread(void *arg)
{
    (void)arg;
    cb_fire(storm_breaker, NULL, NULL);
    return NULL;
}

static void many_threads_failing_at_once_still_reach_half_open_after_reset_timeout(void **state)
{
    (void)state;
    fixture *f = fixture_new();
    f->o.action = storm_action;
    f->o.reset_timeout_ms = 1000;
    f->o.volume_threshold = 8;
    fixture_start(f);
    storm_breaker = f->b;
    pthread_barrier_init(&storm_barrier, NULL, 8);
    pthread_t t[8];
    for (int i = 0; i < 8; i++)
        assert_int_equal(pthread_create(&t[i], NULL, storm_thread, NULL), 0);
    for (int i = 0; i < 8; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&storm_barrier);
    assert_int_equal(cb_get_state(f->b), CB_OPEN);
    assert_int_equal(f->kinds[CB_EV_OPEN], 1);
    cb_stats st = stats_of(f);
    assert_int_equal(st.total.failures, 8);
    assert_int_equal(st.current_reset_timeout_ms, 1000);
    cb_manual_clock_advance_ms(f->mc, 1000);
    cb_tick(f->b);
    assert_int_equal(cb_get_state(f->b), CB_HALF_OPEN);
    fixture_free(f);
}

static void coalesce_ttl_reuses_a_success_but_not_a_failure(void **state)
{
    (void)state;
    fixture *f = fixture_new();
    f->o.coalesce = true;
    f->o.coalesce_ttl_ms = 100;
    f->o.volume_threshold = 100;
    fixture_start(f);
    step ok = { 0, 0, (void *)"one" };
    cb_result r;
    assert_int_equal(cb_fire_key(f->b, "k", &ok, &r), CB_OK);
    assert_false(r.coalesced);
    assert_int_equal(cb_fire_key(f->b, "k", &ok, &r), CB_OK);
    assert_true(r.coalesced); /* finished, but within coalesce_ttl_ms */
    assert_string_equal((char *)r.value, "one");
    assert_int_equal(f->calls, 1);
    cb_manual_clock_advance_ms(f->mc, 100);
    assert_int_equal(cb_fire_key(f->b, "k", &ok, &r), CB_OK);
    assert_false(r.coalesced);
    assert_int_equal(f->calls, 2);
    assert_int_equal(cb_fire_key(f->b, "bad", (void *)&FAIL_STEP, &r), CB_EFAILED);
    assert_int_equal(cb_fire_key(f->b, "bad", (void *)&FAIL_STEP, &r), CB_EFAILED);
    assert_false(r.coalesced); /* coalesce_reset_on_error: a failure is not shared */
    assert_int_equal(f->calls, 4);
    assert_int_equal(f->kinds[CB_EV_COALESCE_HIT], 1);
    assert_int_equal(f->kinds[CB_EV_COALESCE_MISS], 4);
    fixture_free(f);
}

static int cancelled_seen = -1;
static int shutting_action(const cb_call *call, void **result)
{
    (void)result;
    fixture *f = call->user;
    int before = __atomic_load_n(call->cancelled, __ATOMIC_ACQUIRE);
    cb_shutdown(f->b);
    cancelled_seen = before * 10 + __atomic_load_n(call->cancelled, __ATOMIC_ACQUIRE);
    return 0;
}

static void shutdown_raises_the_cancelled_flag_of_calls_in_flight(void **state)
{
    (void)state;
    fixture *f = fixture_new();
    f->o.action = shutting_action;
    fixture_start(f);
    assert_int_equal(cb_fire(f->b, NULL, NULL), CB_OK); /* it was admitted before */
    assert_int_equal(cancelled_seen, 1);                 /* 0 before, 1 after */
    assert_int_equal(cb_fire(f->b, NULL, NULL), CB_ESHUTDOWN);
    fixture_free(f);
}

const struct CMUnitTest feature_tests[] = {
    cmocka_unit_test(capacity_rejects_concurrent_calls_with_semaphore_locked),
    cmocka_unit_test(failing_health_check_opens_circuit_and_emits_health_check_failed),
    cmocka_unit_test(cache_returns_cached_value_without_running_the_action),
    cmocka_unit_test(cache_entries_expire_after_ttl),
    cmocka_unit_test(cache_evicts_least_recently_used_beyond_its_size),
    cmocka_unit_test(failures_are_not_cached),
    cmocka_unit_test(concurrent_calls_with_one_key_share_one_action),
    cmocka_unit_test(rolling_window_forgets_buckets_older_than_the_window),
    cmocka_unit_test(percentiles_follow_opossum_formula),
    cmocka_unit_test(percentiles_are_minus_one_when_disabled),
    cmocka_unit_test(snapshot_is_emitted_once_per_bucket_interval_with_window_stats),
    cmocka_unit_test(every_listener_receives_the_events_it_registered_for),
    cmocka_unit_test(export_import_round_trip_resumes_open_timer_backoff_and_counts),
    cmocka_unit_test(import_of_open_state_whose_timer_expired_is_half_open),
    cmocka_unit_test(import_refuses_what_is_not_an_export),
    cmocka_unit_test(cache_hands_out_copies_and_frees_its_own_with_free_value),
    cmocka_unit_test(coalesce_ttl_reuses_a_success_but_not_a_failure),
    cmocka_unit_test(shutdown_raises_the_cancelled_flag_of_calls_in_flight),
    cmocka_unit_test(many_threads_failing_at_once_still_reach_half_open_after_reset_timeout),
};
const size_t feature_tests_count = sizeof feature_tests / sizeof feature_tests[0];
