/* test_states.c -- options, error names, and the closed/open state machine:
 * opening by error percentage and volume, rejection, fallback, error filter,
 * trust-mode timeouts, warm-up, manual and forced states, disabled, shutdown. */
#include "helpers.h"

static void options_init_sets_opossum_defaults(void **state)
{
    (void)state;
    cb_options o;
    cb_options_init(&o);
    assert_int_equal(o.timeout_ms, 10000);
    assert_int_equal(o.reset_timeout_ms, 30000);
    assert_int_equal(o.error_threshold_percentage, 50);
    assert_int_equal(o.rolling_count_timeout_ms, 10000);
    assert_int_equal(o.rolling_count_buckets, 10);
    assert_int_equal(o.volume_threshold, 0);
    assert_int_equal(o.capacity, 0);
    assert_false(o.allow_warm_up);
    assert_true(o.enabled);
    assert_true(o.rolling_percentiles_enabled);
    assert_int_equal(o.half_open_max_calls, 1);
    assert_int_equal(o.half_open_success_threshold, 1);
    assert_int_equal(o.health_check_interval_ms, 5000);
    assert_int_equal(o.cache_size, 1024);
    assert_string_equal(o.name, "breaker");
    assert_non_null(o.clock.now_ns);
}

static int try_create(void (*tweak)(cb_options *))
{
    cb_options o;
    cb_options_init(&o);
    o.action = scripted_action;
    tweak(&o);
    cb_breaker *b = (cb_breaker *)0x1;
    int rc = cb_create(&o, &b);
    if (rc == CB_OK)
        cb_destroy(b);
    else
        assert_ptr_equal(b, (cb_breaker *)0x1); /* *out untouched on error */
    return rc;
}

static void no_action(cb_options *o) { o->action = NULL; }
static void zero_buckets(cb_options *o) { o->rolling_count_buckets = 0; }
static void indivisible_window(cb_options *o) { o->rolling_count_timeout_ms = 10001; }
static void negative_threshold(cb_options *o) { o->error_threshold_percentage = -1; }
static void percentage_over_100(cb_options *o) { o->error_threshold_percentage = 101; }
static void negative_timeout(cb_options *o) { o->timeout_ms = -5; }
static void negative_volume(cb_options *o) { o->volume_threshold = -1; }
static void negative_capacity(cb_options *o) { o->capacity = -1; }
static void zero_trials(cb_options *o) { o->half_open_max_calls = 0; }
static void threshold_over_trials(cb_options *o) { o->half_open_max_calls = 2; o->half_open_success_threshold = 3; }
static void shrinking_backoff(cb_options *o) { o->reset_backoff_multiplier = 0.5; }
static void jitter_over_one(cb_options *o) { o->reset_jitter = 1.5; }
static void slow_rate_over_100(cb_options *o) { o->slow_call_rate_threshold = 200; }
static void bad_timeout_mode(cb_options *o) { o->timeout_mode = (cb_timeout_mode)9; }
static void zero_pool(cb_options *o) { o->timeout_mode = CB_TIMEOUT_POOL; o->pool_threads = 0; }
static void zero_cache_size(cb_options *o) { o->cache = true; o->cache_size = 0; }
static void no_clock(cb_options *o) { o->clock.now_ns = NULL; }
static void zero_health_interval(cb_options *o) { o->health_check = (cb_health_check_fn)1; o->health_check_interval_ms = 0; }
static void defaults(cb_options *o) { (void)o; }

static void invalid_options_are_refused_with_einval(void **state)
{
    (void)state;
    void (*bad[])(cb_options *) = {
        no_action, zero_buckets, indivisible_window, negative_threshold, percentage_over_100,
        negative_timeout, negative_volume, negative_capacity, zero_trials, threshold_over_trials,
        shrinking_backoff, jitter_over_one, slow_rate_over_100, bad_timeout_mode, zero_pool,
        zero_cache_size, no_clock, zero_health_interval,
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(try_create(bad[i]), CB_EINVAL);
    assert_int_equal(try_create(defaults), CB_OK);
    assert_int_equal(cb_create(NULL, NULL), CB_EINVAL);
    assert_int_equal(cb_fire(NULL, NULL, NULL), CB_EINVAL);
}

static void every_error_code_has_a_name_and_a_sentence(void **state)
{
    (void)state;
    for (int e = CB_OK; e >= CB_ELIMIT; e--) {
        assert_string_not_equal(cb_strerror(e), "unknown error");
        assert_string_not_equal(cb_err_name(e), "CB_EUNKNOWN");
    }
    assert_string_equal(cb_strerror(-99), "unknown error");
    assert_string_equal(cb_err_name(CB_EOPEN), "CB_EOPEN");
    assert_string_equal(cb_state_name(CB_HALF_OPEN), "half-open");
    assert_string_equal(cb_event_name(CB_EV_HALF_OPEN), "halfOpen");
    assert_string_equal(cb_event_name(CB_EV_COALESCE_HIT), "coalesceCacheHit");
    assert_string_equal(cb_event_name(CB_EV_COUNT), "unknown");
}

static void success_returns_action_result_and_counts_it(void **state)
{
    (void)state;
    fixture *f = fixture_new();
    fixture_start(f);
    step s = { 0, 3, (void *)"value" };
    cb_result r;
    assert_int_equal(cb_fire(f->b, &s, &r), CB_OK);
    assert_string_equal((char *)r.value, "value");
    assert_false(r.fallback);
    assert_true(r.latency_ms >= 3.0 && r.latency_ms < 3.001);
    cb_stats st = stats_of(f);
    assert_int_equal(st.window.fires, 1);
    assert_int_equal(st.window.successes, 1);
    assert_int_equal(st.total.successes, 1);
    assert_int_equal(f->kinds[CB_EV_FIRE], 1);
    assert_int_equal(f->kinds[CB_EV_SUCCESS], 1);
    assert_int_equal(st.in_flight, 0);
    fixture_free(f);
}

static void failure_opens_when_error_percentage_exceeds_threshold(void **state)
{
    (void)state;
    fixture *f = fixture_new();
    fixture_start(f);
    fire_n(f, &OK_STEP, 1, CB_OK);
    assert_int_equal(fire_step(f, &FAIL_STEP), CB_EFAILED); /* 1/2 = 50%: not above */
    assert_int_equal(cb_get_state(f->b), CB_CLOSED);
    assert_int_equal(fire_step(f, &FAIL_STEP), CB_EFAILED); /* 2/3 > 50% */
    assert_int_equal(cb_get_state(f->b), CB_OPEN);
    assert_int_equal(f->kinds[CB_EV_OPEN], 1);
    cb_stats st = stats_of(f);
    assert_int_equal(st.window.failures, 2);
    assert_int_equal(st.current_reset_timeout_ms, 30000);
    assert_true(st.open_until_ns > 0);
    fixture_free(f);
}

static void volume_threshold_keeps_circuit_closed_until_enough_fires(void **state)
{
    (void)state;
    fixture *f = fixture_new();
    f->o.volume_threshold = 3;
    fixture_start(f);
    fire_n(f, &FAIL_STEP, 2, CB_EFAILED);
    assert_int_equal(cb_get_state(f->b), CB_CLOSED);
    fire_n(f, &FAIL_STEP, 1, CB_EFAILED);
    assert_int_equal(cb_get_state(f->b), CB_OPEN);
    fixture_free(f);
}

static void open_circuit_rejects_and_runs_fallback(void **state)
{
    (void)state;
    fixture *f = fixture_new();
    f->o.fallback = fallback_value;
    fixture_start(f);
    cb_result r;
    assert_int_equal(cb_fire(f->b, (void *)&FAIL_STEP, &r), CB_EFAILED);
    assert_true(r.fallback);
    assert_string_equal((char *)r.value, "fallback");
    assert_int_equal(r.action_rc, 7);
    assert_int_equal(f->fallback_reason, CB_EFAILED);
    assert_int_equal(f->fallback_action_rc, 7);
    assert_int_equal(cb_get_state(f->b), CB_OPEN);
    int calls = f->calls;
    assert_int_equal(cb_fire(f->b, (void *)&OK_STEP, &r), CB_EOPEN);
    assert_int_equal(f->calls, calls); /* the action did not run */
    assert_true(r.fallback);
    assert_int_equal(f->fallback_reason, CB_EOPEN);
    cb_stats st = stats_of(f);
    assert_int_equal(st.window.rejects, 1);
    assert_int_equal(st.window.fires, 2); /* rejects count as fires */
    assert_int_equal(st.window.fallbacks, 2);
    assert_int_equal(f->kinds[CB_EV_REJECT], 1);
    assert_int_equal(f->kinds[CB_EV_FALLBACK], 2);
    fixture_free(f);
}

static void failure_events_come_before_open_and_fallback(void **state)
{
    (void)state;
    fixture *f = fixture_new();
    f->o.fallback = fallback_value;
    fixture_start(f);
    fire_step(f, &FAIL_STEP);
    cb_event_kind want[] = { CB_EV_FIRE, CB_EV_FAILURE, CB_EV_OPEN, CB_EV_FALLBACK };
    assert_int_equal(f->nseq, 4);
    for (int i = 0; i < 4; i++)
        assert_int_equal(f->seq[i], want[i]);
    fixture_free(f);
}

static bool filter_rc_7(int rc, void *arg, void *user)
{
    (void)arg;
    (void)user;
    return rc == 7;
}

static void error_filter_counts_success_without_fallback_but_fire_reports_error(void **state)
{
    (void)state;
    fixture *f = fixture_new();
    f->o.error_filter = filter_rc_7;
    f->o.fallback = fallback_value;
    fixture_start(f);
    cb_result r;
    for (int i = 0; i < 5; i++) {
        assert_int_equal(cb_fire(f->b, (void *)&FAIL_STEP, &r), CB_EFAILED);
        assert_int_equal(r.action_rc, 7);
        assert_false(r.fallback);
    }
    assert_int_equal(cb_get_state(f->b), CB_CLOSED);
    assert_int_equal(f->fallbacks, 0);
    cb_stats st = stats_of(f);
    assert_int_equal(st.window.successes, 5);
    assert_int_equal(st.window.failures, 0);
    step other = { 8, 0, NULL };
    assert_int_equal(cb_fire(f->b, &other, &r), CB_EFAILED);
    assert_true(r.fallback);
    fixture_free(f);
}

static int late_calls;
static void *late_value;
static void on_late_record(void *arg, int rc, void *result, void *user)
{
    (void)arg;
    (void)rc;
    (void)user;
    late_calls++;
    late_value = result;
}

static void late_return_in_trust_mode_counts_as_timeout_and_failure(void **state)
{
    (void)state;
    fixture *f = fixture_new();
    f->o.timeout_ms = 100;
    f->o.volume_threshold = 10;
    f->o.on_late = on_late_record;
    fixture_start(f);
    late_calls = 0;
    step slow = { 0, 101, (void *)"late" };
    step just_in_time = { 0, 99, (void *)"ok" }; /* exactly 100 ms times out: test_regressions.c */
    cb_result r;
    assert_int_equal(cb_fire(f->b, &just_in_time, &r), CB_OK);
    assert_int_equal(cb_fire(f->b, &slow, &r), CB_ETIMEDOUT);
    assert_null(r.value);
    assert_int_equal(late_calls, 1);
    assert_string_equal((char *)late_value, "late");
    cb_stats st = stats_of(f);
    assert_int_equal(st.window.timeouts, 1);
    assert_int_equal(st.window.failures, 1);
    assert_int_equal(f->kinds[CB_EV_TIMEOUT], 1);
    assert_int_equal(f->kinds[CB_EV_FAILURE], 1);
    fixture_free(f);
}

static void action_receives_deadline_and_budget(void **state);
static int64_t seen_deadline, seen_budget;
static int deadline_action(const cb_call *call, void **result)
{
    (void)result;
    seen_deadline = call->deadline_ns;
    seen_budget = call->timeout_ms;
    return __atomic_load_n(call->cancelled, __ATOMIC_RELAXED);
}

static void action_receives_deadline_and_budget(void **state)
{
    (void)state;
    fixture *f = fixture_new();
    f->o.action = deadline_action;
    f->o.timeout_ms = 250;
    fixture_start(f);
    assert_int_equal(cb_fire(f->b, NULL, NULL), CB_OK);
    assert_int_equal(seen_deadline, 1000000000LL + 250 * 1000000LL);
    assert_int_equal(seen_budget, 250);
    cb_destroy(f->b);
    f->o.timeout_ms = 0;
    fixture_start(f);
    assert_int_equal(cb_fire(f->b, NULL, NULL), CB_OK);
    assert_int_equal(seen_deadline, INT64_MAX);
    fixture_free(f);
}

static void allow_warm_up_keeps_circuit_closed_during_first_window(void **state)
{
    (void)state;
    fixture *f = fixture_new();
    f->o.allow_warm_up = true;
    fixture_start(f);
    fire_n(f, &FAIL_STEP, 5, CB_EFAILED);
    assert_int_equal(cb_get_state(f->b), CB_CLOSED);
    cb_manual_clock_advance_ms(f->mc, 10000);
    fire_n(f, &FAIL_STEP, 1, CB_EFAILED);
    assert_int_equal(cb_get_state(f->b), CB_OPEN);
    fixture_free(f);
}

static void manual_open_and_close_move_the_circuit(void **state)
{
    (void)state;
    fixture *f = fixture_new();
    fixture_start(f);
    assert_int_equal(cb_open(f->b), CB_OK);
    assert_int_equal(cb_get_state(f->b), CB_OPEN);
    assert_int_equal(fire_step(f, &OK_STEP), CB_EOPEN);
    assert_int_equal(cb_close(f->b), CB_OK);
    assert_int_equal(cb_get_state(f->b), CB_CLOSED);
    assert_int_equal(fire_step(f, &OK_STEP), CB_OK);
    assert_int_equal(f->kinds[CB_EV_OPEN], 1);
    assert_int_equal(f->kinds[CB_EV_CLOSE], 1);
    fixture_free(f);
}

static void forced_states_hold_until_released(void **state)
{
    (void)state;
    fixture *f = fixture_new();
    f->o.reset_timeout_ms = 10;
    fixture_start(f);
    assert_int_equal(cb_force(f->b, CB_FORCE_OPEN), CB_OK);
    assert_int_equal(cb_get_state(f->b), CB_FORCED_OPEN);
    cb_manual_clock_advance_ms(f->mc, 1000);
    assert_int_equal(fire_step(f, &OK_STEP), CB_EOPEN);
    assert_int_equal(cb_get_state(f->b), CB_FORCED_OPEN);
    assert_int_equal(cb_force(f->b, CB_FORCE_CLOSED), CB_OK);
    fire_n(f, &FAIL_STEP, 10, CB_EFAILED);
    assert_int_equal(cb_get_state(f->b), CB_FORCED_CLOSED);
    assert_int_equal(cb_force(f->b, CB_FORCE_NONE), CB_OK);
    assert_int_equal(cb_get_state(f->b), CB_CLOSED);
    assert_int_equal(cb_force(f->b, (cb_force_mode)7), CB_EINVAL);
    fixture_free(f);
}

static void disabled_breaker_passes_every_call_and_still_counts(void **state)
{
    (void)state;
    fixture *f = fixture_new();
    f->o.enabled = false;
    fixture_start(f);
    assert_int_equal(cb_get_state(f->b), CB_DISABLED);
    fire_n(f, &FAIL_STEP, 5, CB_EFAILED);
    assert_int_equal(cb_get_state(f->b), CB_DISABLED);
    cb_stats st = stats_of(f);
    assert_int_equal(st.window.fires, 5);
    assert_int_equal(st.window.failures, 5);
    assert_int_equal(cb_enable(f->b, true), CB_OK);
    assert_int_equal(cb_get_state(f->b), CB_CLOSED);
    fire_n(f, &FAIL_STEP, 1, CB_EFAILED);
    assert_int_equal(cb_get_state(f->b), CB_OPEN);
    fixture_free(f);
}

static void shutdown_notifies_listeners_refuses_fires_and_is_idempotent(void **state)
{
    (void)state;
    fixture *f = fixture_new();
    f->o.cache = true;
    fixture_start(f);
    assert_int_equal(cb_fire_key(f->b, "k", (void *)&OK_STEP, NULL), CB_OK);
    assert_int_equal(cb_shutdown(f->b), CB_OK);
    assert_int_equal(cb_shutdown(f->b), CB_OK);
    assert_int_equal(f->kinds[CB_EV_SHUTDOWN], 1);
    assert_int_equal(cb_get_state(f->b), CB_SHUTDOWN);
    int calls = f->calls;
    assert_int_equal(fire_step(f, &OK_STEP), CB_ESHUTDOWN);
    assert_int_equal(cb_fire_key(f->b, "k", (void *)&OK_STEP, NULL), CB_ESHUTDOWN);
    assert_int_equal(f->calls, calls);
    assert_int_equal(cb_open(f->b), CB_ESHUTDOWN);
    assert_int_equal(cb_tick(f->b), CB_OK);
    cb_destroy(NULL);
    fixture_free(f);
}

const struct CMUnitTest state_tests[] = {
    cmocka_unit_test(options_init_sets_opossum_defaults),
    cmocka_unit_test(invalid_options_are_refused_with_einval),
    cmocka_unit_test(every_error_code_has_a_name_and_a_sentence),
    cmocka_unit_test(success_returns_action_result_and_counts_it),
    cmocka_unit_test(failure_opens_when_error_percentage_exceeds_threshold),
    cmocka_unit_test(volume_threshold_keeps_circuit_closed_until_enough_fires),
    cmocka_unit_test(open_circuit_rejects_and_runs_fallback),
    cmocka_unit_test(failure_events_come_before_open_and_fallback),
    cmocka_unit_test(error_filter_counts_success_without_fallback_but_fire_reports_error),
    cmocka_unit_test(late_return_in_trust_mode_counts_as_timeout_and_failure),
    cmocka_unit_test(action_receives_deadline_and_budget),
    cmocka_unit_test(allow_warm_up_keeps_circuit_closed_during_first_window),
    cmocka_unit_test(manual_open_and_close_move_the_circuit),
    cmocka_unit_test(forced_states_hold_until_released),
    cmocka_unit_test(disabled_breaker_passes_every_call_and_still_counts),
    cmocka_unit_test(shutdown_notifies_listeners_refuses_fires_and_is_idempotent),
};
const size_t state_tests_count = sizeof state_tests / sizeof state_tests[0];
