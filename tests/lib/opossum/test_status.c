/* test_status.c -- opossum's test/status-test.js: stats carried over from a previous breaker, and snapshots. */
#include "harness.h"

#include <stdlib.h>
#include <cjson/cJSON.h>

/* Builds a breaker with 1 success and 1 failure, exports it, and makes
 * fx's breaker the one created from that export with fx->opt. */
static void start_from_previous_counts(op_fx *fx)
{
    cb_options prev = fx->opt;
    prev.error_threshold_percentage = 99;
    prev.fallback = NULL;
    cb_breaker *old = NULL;
    assert_int_equal(cb_create(&prev, &old), CB_OK);
    int rc_ok = cb_fire(old, OP_ARG(1), NULL);
    int rc_fail = cb_fire(old, OP_ARG(-1), NULL);
    char *json = cb_export_json(old);
    cb_destroy(old);
    assert_int_equal(rc_ok, CB_OK);
    assert_int_equal(rc_fail, CB_EFAILED);
    assert_non_null(json);
    int rc = cb_create_from_json(&fx->opt, json, &fx->b);
    free(json);
    assert_int_equal(rc, CB_OK);
    op_listen(fx);
    fx->action_calls = 0;
}

/* opossum "new Status static method": the imported counts are there. */
static void imported_counts_are_reported(void **state)
{
    op_fx *fx = *state;
    start_from_previous_counts(fx);
    cb_stats st;
    op_stats(fx, &st);
    assert_int_equal(st.window.fires, 2);
    assert_int_equal(st.window.successes, 1);
    assert_int_equal(st.window.failures, 1);
    assert_int_equal(st.window.rejects, 0);
    assert_int_equal(st.total.fires, 2);
}

/* opossum "import stats": the imported counts keep counting, and they take
 * part in the decision to open (1 imported failure of 2, then more). */
static void imported_counts_keep_counting(void **state)
{
    op_fx *fx = *state;
    fx->opt.error_threshold_percentage = 1;
    fx->opt.fallback = op_fallback_echo;
    start_from_previous_counts(fx);
    assert_int_equal(op_state(fx), CB_CLOSED);
    cb_result res;
    for (int x = 10; x <= 30; x += 10) {
        assert_int_equal(op_fire(fx, x, &res), CB_OK);
        assert_int_equal(OP_VAL(res.value), x);
    }
    cb_stats st;
    op_stats(fx, &st);
    assert_int_equal(st.window.fires, 5);
    assert_int_equal(op_fire(fx, -10, &res), CB_EFAILED);
    op_stats(fx, &st);
    assert_int_equal(st.window.failures, 2);
    assert_int_equal(st.window.fires, 6);
    assert_int_equal(op_state(fx), CB_OPEN); /* 2 of 6 > 1% */
    assert_int_equal(op_fire(fx, -20, &res), CB_EOPEN);
    assert_true(res.fallback);
    assert_int_equal(OP_VAL(res.value), -20);
    op_stats(fx, &st);
    assert_int_equal(st.window.failures, 2);
    assert_int_equal(st.window.rejects, 1);
    assert_int_equal(st.window.fires, 7);
    assert_int_equal(st.window.fallbacks, 2);
}

/* Deletes every member named name anywhere under item; returns how many. */
static int delete_everywhere(cJSON *item, const char *name)
{
    int n = 0;
    while (cJSON_IsObject(item) && cJSON_GetObjectItemCaseSensitive(item, name)) {
        cJSON_DeleteItemFromObjectCaseSensitive(item, name);
        n++;
    }
    for (cJSON *c = item ? item->child : NULL; c; c = c->next)
        n += delete_everywhere(c, name);
    return n;
}

/* opossum "import stats, but leave some out": counters missing from an
 * export start at zero and the others are kept (opossum status.js builds the
 * imported bucket as { ...bucket(), ...stats }). The export names these two
 * counters as opossum's stats do. */
static void counts_missing_from_an_export_start_at_zero(void **state)
{
    op_fx *fx = *state;
    fx->opt.error_threshold_percentage = 99;
    fx->opt.fallback = op_fallback_echo;
    op_start(fx);
    assert_int_equal(op_fire(fx, 1, NULL), CB_OK);
    assert_int_equal(op_fire(fx, -1, NULL), CB_EFAILED);
    char *json = cb_export_json(fx->b);
    assert_non_null(json);
    cJSON *doc = cJSON_Parse(json);
    free(json);
    assert_non_null(doc);
    int removed = delete_everywhere(doc, "successes") + delete_everywhere(doc, "fallbacks");
    char *trimmed = cJSON_PrintUnformatted(doc);
    cJSON_Delete(doc);
    assert_non_null(trimmed);
    cb_breaker *restored = NULL;
    int rc = cb_create_from_json(&fx->opt, trimmed, &restored);
    free(trimmed);
    assert_true(removed >= 2);
    if (rc != CB_OK)
        fail_msg("import of an export without successes/fallbacks: %s, want CB_OK", cb_err_name(rc));
    cb_destroy(fx->b);
    fx->b = restored;
    cb_stats st;
    op_stats(fx, &st);
    assert_int_equal(st.total.successes, 0);
    assert_int_equal(st.total.fallbacks, 0);
    assert_int_equal(st.total.failures, 1);
    assert_int_equal(st.window.failures, 1);
}

/* opossum "enableSnapshots defaults to true": a listener for every kind gets
 * a snapshot each bucket interval without asking for anything else. */
static void snapshots_are_emitted_by_default(void **state)
{
    op_fx *fx = *state;
    op_start(fx);
    op_advance(fx, 1000);
    assert_int_equal(op_count(fx, CB_EV_SNAPSHOT), 1);
    assert_int_equal(op_last(fx, CB_EV_SNAPSHOT)->kind, CB_EV_SNAPSHOT);
}

typedef struct kinds_seen {
    int snapshots;
    int fires;
} kinds_seen;

static void count_kinds(cb_breaker *b, const cb_event *ev, void *ctx)
{
    kinds_seen *k = ctx;
    (void)b;
    k->snapshots += ev->kind == CB_EV_SNAPSHOT;
    k->fires += ev->kind == CB_EV_FIRE;
}

/* opossum "enableSnapshots ... false": here a listener opts out with its
 * mask and then never sees a snapshot. */
static void listener_without_snapshot_in_its_mask_gets_none(void **state)
{
    op_fx *fx = *state;
    kinds_seen seen = { 0, 0 };
    op_start(fx);
    assert_true(cb_on(fx->b, CB_EV_ALL & ~CB_EV_MASK(CB_EV_SNAPSHOT), count_kinds, &seen) > 0);
    assert_int_equal(op_fire(fx, 1, NULL), CB_OK);
    op_advance(fx, 5000);
    assert_int_equal(seen.snapshots, 0);
    assert_int_equal(seen.fires, 1);
    assert_true(op_count(fx, CB_EV_SNAPSHOT) >= 1);
}

/* opossum status-test "breaker stats should reset when rotateBucketController
 * not provided" (rollingCountTimeout 10): time alone empties the window. */
static void stats_reset_when_the_window_passes(void **state)
{
    op_fx *fx = *state;
    fx->opt.rolling_count_timeout_ms = 10;
    op_start(fx);
    assert_int_equal(op_fire(fx, -1, NULL), CB_EFAILED);
    op_advance(fx, 100);
    cb_stats st;
    op_stats(fx, &st);
    assert_int_equal(st.window.failures, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        OP_TEST(imported_counts_are_reported),
        OP_TEST(imported_counts_keep_counting),
        OP_TEST(counts_missing_from_an_export_start_at_zero),
        OP_TEST(snapshots_are_emitted_by_default),
        OP_TEST(listener_without_snapshot_in_its_mask_gets_none),
        OP_TEST(stats_reset_when_the_window_passes),
    };
    return cmocka_run_group_tests_name("opossum status-test.js", tests, NULL, NULL);
}
