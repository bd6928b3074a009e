/* test_state.c -- opossum's test/state-test.js: exporting a breaker's state and creating a breaker from it. */
#include "harness.h"

#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>

/* Exports fx's breaker; the caller frees the text. */
static char *export_of(cb_breaker *b)
{
    char *json = cb_export_json(b);
    assert_non_null(json);
    return json;
}

/* Replaces fx's breaker by one created from json with fx->opt. */
static void import_into_fx(op_fx *fx, const char *json)
{
    cb_breaker *restored = NULL;
    int rc = cb_create_from_json(&fx->opt, json, &restored);
    if (rc != CB_OK)
        fail_msg("cb_create_from_json: %s", cb_err_name(rc));
    cb_destroy(fx->b);
    fx->b = restored;
    op_listen(fx);
}

/* Exports fx's breaker and replaces it by one created from the export. */
static void export_and_restore(op_fx *fx)
{
    char *json = export_of(fx->b);
    import_into_fx(fx, json);
    free(json);
}

/* True when some string value anywhere in item equals want. */
static bool has_string(const cJSON *item, const char *want)
{
    if (cJSON_IsString(item) && strcmp(item->valuestring, want) == 0)
        return true;
    for (const cJSON *c = item ? item->child : NULL; c; c = c->next)
        if (has_string(c, want))
            return true;
    return false;
}

/* opossum "export the state of a breaker instance (using toJson)": a JSON
 * object that names the breaker. */
static void export_is_a_json_object_naming_the_breaker(void **state)
{
    op_fx *fx = *state;
    op_start(fx);
    char *json = export_of(fx->b);
    cJSON *doc = cJSON_Parse(json);
    free(json);
    assert_non_null(doc);
    bool is_object = cJSON_IsObject(doc);
    bool named = has_string(doc, "passFail");
    cJSON_Delete(doc);
    assert_true(is_object);
    assert_true(named);
}

/* opossum "initialize the breaker as Closed": restored closed, and it still
 * opens on a failure. */
static void closed_export_restores_closed_and_still_opens(void **state)
{
    op_fx *fx = *state;
    op_start(fx);
    export_and_restore(fx);
    assert_int_equal(op_state(fx), CB_CLOSED);
    assert_int_equal(op_fire(fx, -1, NULL), CB_EFAILED);
    assert_int_equal(op_state(fx), CB_OPEN);
}

/* opossum "Pre-populate state as Open - Breaker resets after a configurable
 * amount of time": restored open with the timer's remaining time. */
static void open_export_restores_open_and_resets_after_the_remaining_time(void **state)
{
    op_fx *fx = *state;
    fx->opt.error_threshold_percentage = 1;
    fx->opt.reset_timeout_ms = 100;
    op_start(fx);
    assert_int_equal(op_fire(fx, -1, NULL), CB_EFAILED);
    op_advance(fx, 40);
    export_and_restore(fx);
    assert_int_equal(op_state(fx), CB_OPEN);
    assert_int_equal(op_fire(fx, 100, NULL), CB_EOPEN);
    op_advance(fx, 59);
    assert_int_equal(op_state(fx), CB_OPEN);
    op_advance(fx, 1);
    assert_int_equal(op_state(fx), CB_HALF_OPEN);
    cb_result res;
    assert_int_equal(op_fire(fx, 100, &res), CB_OK);
    assert_int_equal(OP_VAL(res.value), 100);
    assert_int_equal(op_state(fx), CB_CLOSED);
}

/* opossum "Enters halfOpen state if closed is false and more time has elapsed
 * since resetTimeout": an open state whose time is up restores half-open. */
static void open_export_past_its_reset_time_restores_half_open(void **state)
{
    op_fx *fx = *state;
    fx->opt.error_threshold_percentage = 1;
    fx->opt.reset_timeout_ms = 100;
    op_start(fx);
    assert_int_equal(op_fire(fx, -1, NULL), CB_EFAILED);
    cb_manual_clock_advance_ms(fx->clock, 125); /* no tick: still open inside */
    export_and_restore(fx);
    assert_int_equal(cb_tick(fx->b), CB_OK);
    assert_int_equal(op_state(fx), CB_HALF_OPEN);
    cb_result res;
    assert_int_equal(op_fire(fx, 100, &res), CB_OK);
    assert_int_equal(OP_VAL(res.value), 100);
    assert_int_equal(op_state(fx), CB_CLOSED);
}

static void fire_while_trial_in_flight(op_fx *fx, const cb_call *call)
{
    (void)call;
    fx->nested_rc = cb_fire(fx->b, OP_ARG(1), &fx->nested_res);
}

/* opossum state-test "When half-open, the circuit only allows one request
 * through": restored half-open, one trial, a second call rejected, the
 * failed trial re-opens. */
static void half_open_export_restores_half_open_with_one_trial(void **state)
{
    op_fx *fx = *state;
    fx->opt.error_threshold_percentage = 1;
    fx->opt.reset_timeout_ms = 100;
    op_start(fx);
    assert_int_equal(op_fire(fx, -1, NULL), CB_EFAILED);
    op_advance(fx, 100);
    assert_int_equal(op_state(fx), CB_HALF_OPEN);
    export_and_restore(fx);
    assert_int_equal(op_state(fx), CB_HALF_OPEN);
    fx->inside = fire_while_trial_in_flight;
    assert_int_equal(op_fire(fx, -1, NULL), CB_EFAILED);
    assert_int_equal(fx->nested_rc, CB_EOPEN);
    assert_int_equal(op_state(fx), CB_OPEN);
    assert_int_equal(op_fire(fx, 1, NULL), CB_EOPEN);
}

/* opossum "Circuit initialized as shutdown". */
static void shutdown_export_restores_shut_down(void **state)
{
    op_fx *fx = *state;
    op_start(fx);
    assert_int_equal(cb_shutdown(fx->b), CB_OK);
    export_and_restore(fx);
    assert_int_equal(op_state(fx), CB_SHUTDOWN);
    assert_int_equal(op_fire(fx, 1, NULL), CB_ESHUTDOWN);
    assert_int_equal(fx->action_calls, 0);
}

/* opossum state.enabled: a disabled breaker restores disabled. */
static void disabled_export_restores_disabled(void **state)
{
    op_fx *fx = *state;
    op_start(fx);
    assert_int_equal(cb_enable(fx->b, false), CB_OK);
    export_and_restore(fx);
    assert_int_equal(op_state(fx), CB_DISABLED);
}

/* opossum "imports the state and status of a breaker instance": the window
 * and the totals come back as they were, and keep counting. */
static void restored_breaker_keeps_its_counts(void **state)
{
    op_fx *fx = *state;
    fx->opt.error_threshold_percentage = 99;
    op_start(fx);
    for (int x = 1; x <= 3; x++)
        assert_int_equal(op_fire(fx, x, NULL), CB_OK);
    assert_int_equal(op_fire(fx, -1, NULL), CB_EFAILED);
    cb_stats before, after;
    op_stats(fx, &before);
    export_and_restore(fx);
    op_stats(fx, &after);
    assert_int_equal(after.window.fires, before.window.fires);
    assert_int_equal(after.window.successes, 3);
    assert_int_equal(after.window.failures, 1);
    assert_int_equal(after.total.fires, 4);
    assert_int_equal(after.total.successes, 3);
    assert_int_equal(after.total.failures, 1);
    assert_int_equal(op_fire(fx, 5, NULL), CB_OK);
    op_stats(fx, &after);
    assert_int_equal(after.window.fires, 5);
    assert_int_equal(after.total.fires, 5);
}

/* Not an export: refused with CB_EPARSE, nothing created. */
static void text_that_is_not_an_export_is_refused(void **state)
{
    op_fx *fx = *state;
    const char *bad[] = { "", "not json", "{\"state\":", "[1,2,3]", "42" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cb_breaker *out = NULL;
        int rc = cb_create_from_json(&fx->opt, bad[i], &out);
        if (rc != CB_EPARSE)
            fail_msg("input '%s': got %s, want CB_EPARSE", bad[i], cb_err_name(rc));
        assert_null(out);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        OP_TEST(export_is_a_json_object_naming_the_breaker),
        OP_TEST(closed_export_restores_closed_and_still_opens),
        OP_TEST(open_export_restores_open_and_resets_after_the_remaining_time),
        OP_TEST(open_export_past_its_reset_time_restores_half_open),
        OP_TEST(half_open_export_restores_half_open_with_one_trial),
        OP_TEST(shutdown_export_restores_shut_down),
        OP_TEST(disabled_export_restores_disabled),
        OP_TEST(restored_breaker_keeps_its_counts),
        OP_TEST(text_that_is_not_an_export_is_refused),
    };
    return cmocka_run_group_tests_name("opossum state-test.js", tests, NULL, NULL);
}
