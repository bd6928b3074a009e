/* test_cache.c -- opossum's test/cache.js: the result cache and request coalescing. */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPECTED 34

static void start_cache(op_fx *fx, int64_t ttl_ms, size_t size)
{
    fx->opt.cache = true;
    fx->opt.cache_ttl_ms = ttl_ms;
    if (size)
        fx->opt.cache_size = size;
    op_start(fx);
}

/* Fires key k with x and asserts the outcome and where the value came from. */
static void fire_expect(op_fx *fx, const char *k, intptr_t x, intptr_t want, bool cached)
{
    cb_result res;
    assert_int_equal(op_fire_key(fx, k, x, &res), CB_OK);
    assert_int_equal(OP_VAL(res.value), want);
    if (res.cached != cached)
        fail_msg("key %s: cached=%d, want %d", k, res.cached, cached);
}

/* opossum "Using cache": a miss runs the action, a hit returns the cached
 * value without running it; both are counted as fires; clearing empties it. */
static void cache_hit_returns_the_cached_value_without_running_the_action(void **state)
{
    op_fx *fx = *state;
    start_cache(fx, 0, 0);
    fire_expect(fx, "34", EXPECTED, EXPECTED, false);
    cb_stats st;
    op_stats(fx, &st);
    assert_int_equal(st.window.cache_hits, 0);
    assert_int_equal(st.window.cache_misses, 1);
    assert_int_equal(st.window.fires, 1);
    fire_expect(fx, "34", EXPECTED, EXPECTED, true);
    op_stats(fx, &st);
    assert_int_equal(st.window.cache_hits, 1);
    assert_int_equal(st.window.cache_misses, 1);
    assert_int_equal(st.window.fires, 2);
    assert_int_equal(fx->action_calls, 1);
    assert_int_equal(op_count(fx, CB_EV_CACHE_HIT), 1);
    assert_int_equal(op_count(fx, CB_EV_CACHE_MISS), 1);
    assert_int_equal(cb_cache_clear(fx->b), CB_OK);
    fire_expect(fx, "34", EXPECTED, EXPECTED, false);
    assert_int_equal(fx->action_calls, 2);
}

/* opossum "Using cache with custom get cache key": the caller's key decides;
 * a different argument under the same key is a hit. */
static void cache_is_keyed_by_the_callers_key(void **state)
{
    op_fx *fx = *state;
    start_cache(fx, 0, 0);
    fire_expect(fx, "key-34", EXPECTED, EXPECTED, false);
    fire_expect(fx, "key-34", 99, EXPECTED, true);
    fire_expect(fx, "key-99", 99, 99, false);
    assert_int_equal(fx->action_calls, 2);
}

/* Without a key there is no caching at all. */
static void call_without_a_key_is_never_cached(void **state)
{
    op_fx *fx = *state;
    start_cache(fx, 0, 0);
    fire_expect(fx, NULL, 5, 5, false);
    fire_expect(fx, NULL, 5, 5, false);
    assert_int_equal(fx->action_calls, 2);
    assert_int_equal(op_count(fx, CB_EV_CACHE_HIT), 0);
}

/* opossum only caches successes: a failure is not reused. */
static void failures_are_not_cached(void **state)
{
    op_fx *fx = *state;
    fx->opt.error_threshold_percentage = 100;
    start_cache(fx, 0, 0);
    assert_int_equal(op_fire_key(fx, "k", -1, NULL), CB_EFAILED);
    fire_expect(fx, "k", 3, 3, false);
    assert_int_equal(fx->action_calls, 2);
}

/* opossum "Using cache with TTL" and MemoryCache "TTL is checked and entry
 * removed when expired". */
static void cache_entries_expire_after_their_ttl(void **state)
{
    op_fx *fx = *state;
    start_cache(fx, 100, 0);
    fire_expect(fx, "34", EXPECTED, EXPECTED, false);
    op_advance(fx, 99);
    fire_expect(fx, "34", EXPECTED, EXPECTED, true);
    op_advance(fx, 2);
    fire_expect(fx, "34", EXPECTED, EXPECTED, false);
    cb_stats st;
    op_stats(fx, &st);
    assert_int_equal(st.total.cache_hits, 1);
    assert_int_equal(st.total.cache_misses, 2);
    assert_int_equal(st.total.fires, 3);
}

/* MemoryCache "Default max size of cache": documented default 1024. */
static void cache_size_defaults_to_1024(void **state)
{
    (void)state;
    cb_options o;
    cb_options_init(&o);
    assert_int_equal(o.cache_size, 1024);
}

/* opossum "Using cache max size" and "Enforcement of cache max size": the
 * bound holds, the entry used longest ago goes (least recently used, as the
 * header documents; opossum evicts the oldest insertion). */
static void cache_evicts_the_least_recently_used_entry_at_its_size(void **state)
{
    op_fx *fx = *state;
    start_cache(fx, 0, 2);
    fire_expect(fx, "1", 1, 1, false);
    fire_expect(fx, "2", 2, 2, false);
    fire_expect(fx, "1", 1, 1, true);   /* "1" is now the most recent */
    fire_expect(fx, "3", 3, 3, false);  /* evicts "2" */
    fire_expect(fx, "1", 1, 1, true);
    fire_expect(fx, "3", 3, 3, true);
    fire_expect(fx, "2", 2, 2, false);
    assert_int_equal(fx->action_calls, 4);
}

/* MemoryCache "Flush cache": every entry goes. */
static void clearing_the_cache_forgets_every_entry(void **state)
{
    op_fx *fx = *state;
    start_cache(fx, 0, 0);
    char key[16];
    for (int i = 1; i <= 10; i++) {
        snprintf(key, sizeof key, "key%d", i);
        fire_expect(fx, key, i, i, false);
    }
    assert_int_equal(cb_cache_clear(fx->b), CB_OK);
    fire_expect(fx, "key5", 5, 5, false);
    assert_int_equal(fx->action_calls, 11);
}

/* opossum call() looks in the cache before it looks at the state: an open
 * circuit still answers from the cache. */
static void open_circuit_still_answers_from_the_cache(void **state)
{
    op_fx *fx = *state;
    start_cache(fx, 0, 0);
    fire_expect(fx, "k", 3, 3, false);
    assert_int_equal(cb_open(fx->b), CB_OK);
    fire_expect(fx, "k", 3, 3, true);
    assert_int_equal(op_fire_key(fx, "other", 4, NULL), CB_EOPEN);
    assert_int_equal(fx->action_calls, 1);
}

/* opossum call(): "Protection, caches and coalesce disabled" when disabled. */
static void disabled_breaker_bypasses_the_cache(void **state)
{
    op_fx *fx = *state;
    fx->opt.enabled = false;
    start_cache(fx, 0, 0);
    fire_expect(fx, "k", 3, 3, false);
    fire_expect(fx, "k", 3, 3, false);
    assert_int_equal(fx->action_calls, 2);
    assert_int_equal(op_count(fx, CB_EV_CACHE_HIT), 0);
}

/* ---- ownership: dup and free (opossum's custom transport has no C twin) -- */

static int g_live; /* values allocated and not yet freed */

static int alloc_action(const cb_call *call, void **result)
{
    intptr_t *v = malloc(sizeof *v);
    (void)call;
    if (!v)
        return 1;
    *v = OP_VAL(call->arg);
    __atomic_add_fetch(&g_live, 1, __ATOMIC_SEQ_CST);
    *result = v;
    return 0;
}

static void *dup_value(const void *value, void *user)
{
    (void)user;
    intptr_t *v = malloc(sizeof *v);
    if (!v)
        return NULL;
    *v = *(const intptr_t *)value;
    __atomic_add_fetch(&g_live, 1, __ATOMIC_SEQ_CST);
    return v;
}

static void free_value(void *value, void *user)
{
    (void)user;
    if (!value)
        return;
    __atomic_sub_fetch(&g_live, 1, __ATOMIC_SEQ_CST);
    free(value);
}

/* Every caller owns what it gets; the breaker frees its own copies when the
 * cache is cleared or the breaker destroyed: nothing leaks, nothing is freed
 * twice. */
static void cached_values_are_duplicated_for_callers_and_freed_by_the_breaker(void **state)
{
    op_fx *fx = *state;
    g_live = 0;
    fx->opt.action = alloc_action;
    fx->opt.dup = dup_value;
    fx->opt.free_value = free_value;
    start_cache(fx, 0, 0);
    cb_result a, b, c;
    assert_int_equal(op_fire_key(fx, "k", 7, &a), CB_OK);
    assert_int_equal(op_fire_key(fx, "k", 7, &b), CB_OK);
    assert_true(b.cached);
    assert_ptr_not_equal(a.value, b.value);
    assert_int_equal(*(intptr_t *)b.value, 7);
    free_value(a.value, NULL);
    free_value(b.value, NULL);
    assert_int_equal(cb_cache_clear(fx->b), CB_OK);
    assert_int_equal(op_fire_key(fx, "k", 8, &c), CB_OK);
    assert_false(c.cached);
    free_value(c.value, NULL);
    cb_destroy(fx->b);
    fx->b = NULL;
    assert_int_equal(g_live, 0);
}

/* ---- coalescing ---------------------------------------------------------- */

/* Starts three threads firing key k on a gated action, lets the first in,
 * waits until the others joined it (coalesceCacheHit), then opens the gate. */
static void fire_three_at_once(op_fx *fx, op_thread t[3], int want_hits)
{
    op_thread_start(&t[0], fx, "34", EXPECTED);
    assert_true(op_wait_gate_entered(fx, 1, 5000));
    op_thread_start(&t[1], fx, "34", EXPECTED);
    op_thread_start(&t[2], fx, "34", EXPECTED);
    bool joined = want_hits ? op_wait_event(fx, CB_EV_COALESCE_HIT, want_hits, 3000)
                            : op_wait_gate_entered(fx, 3, 5000);
    op_open_gate(fx);
    for (int i = 0; i < 3; i++)
        op_thread_join(&t[i]);
    assert_true(joined);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(t[i].rc, CB_OK);
        assert_int_equal(OP_VAL(t[i].res.value), EXPECTED);
    }
}

/* opossum "Using coalesce cache + regular cache": three concurrent calls run
 * the action once; afterwards the regular cache answers first. */
static void concurrent_calls_share_one_action_then_the_cache_answers(void **state)
{
    op_fx *fx = *state;
    fx->opt.action = op_gated;
    fx->opt.cache = true;
    fx->opt.cache_ttl_ms = 200;
    fx->opt.coalesce = true;
    fx->opt.coalesce_ttl_ms = 200;
    op_start(fx);
    op_thread t[3];
    fire_three_at_once(fx, t, 2);
    cb_stats st;
    op_stats(fx, &st);
    assert_int_equal(st.window.cache_hits, 0);
    assert_int_equal(st.window.coalesce_hits, 2);
    assert_int_equal(st.window.fires, 3);
    assert_int_equal(st.window.successes, 1);
    assert_int_equal(fx->action_calls, 1);
    int coalesced = t[0].res.coalesced + t[1].res.coalesced + t[2].res.coalesced;
    assert_int_equal(coalesced, 2);

    fire_expect(fx, "34", EXPECTED, EXPECTED, true);
    op_stats(fx, &st);
    assert_int_equal(st.window.cache_hits, 1);
    assert_int_equal(st.window.coalesce_hits, 2);
    assert_int_equal(st.window.successes, 1);
}

/* opossum "Using coalesce cache only": shared while in flight and for
 * coalesceTTL; after it expires the action runs again. */
static void coalesced_result_is_shared_for_its_ttl_only(void **state)
{
    op_fx *fx = *state;
    fx->opt.action = op_gated;
    fx->opt.coalesce = true;
    fx->opt.coalesce_ttl_ms = 200;
    op_start(fx);
    op_thread t[3];
    fire_three_at_once(fx, t, 2);
    cb_stats st;
    op_stats(fx, &st);
    assert_int_equal(st.window.cache_hits, 0);
    assert_int_equal(st.window.coalesce_hits, 2);
    assert_int_equal(st.window.fires, 3);
    assert_int_equal(st.window.successes, 1);

    op_advance(fx, 250);
    cb_result res;
    assert_int_equal(op_fire_key(fx, "34", EXPECTED, &res), CB_OK);
    assert_false(res.coalesced);
    op_stats(fx, &st);
    assert_int_equal(st.window.cache_hits, 0);
    assert_int_equal(st.window.coalesce_hits, 2);
    assert_int_equal(st.window.successes, 2);
    assert_int_equal(fx->action_calls, 2);
}

/* opossum "No coalesce cache": three concurrent calls, three executions. */
static void without_coalescing_concurrent_calls_each_run(void **state)
{
    op_fx *fx = *state;
    fx->opt.action = op_gated;
    op_start(fx);
    op_thread t[3];
    fire_three_at_once(fx, t, 0);
    cb_stats st;
    op_stats(fx, &st);
    assert_int_equal(st.window.cache_hits, 0);
    assert_int_equal(st.window.coalesce_hits, 0);
    assert_int_equal(st.window.fires, 3);
    assert_int_equal(st.window.successes, 3);
    assert_int_equal(fx->action_calls, 3);
}

/* opossum "coalesceResetOn: expect no hit after success": with
 * coalesce_ttl_ms 0 a finished call is not reused. */
static void finished_call_is_not_reused_when_sharing_only_in_flight(void **state)
{
    op_fx *fx = *state;
    fx->opt.coalesce = true;
    fx->opt.coalesce_ttl_ms = 0;
    op_start(fx);
    assert_int_equal(op_fire_key(fx, "k", 1, NULL), CB_OK);
    assert_int_equal(op_fire_key(fx, "k", 1, NULL), CB_OK);
    assert_int_equal(fx->action_calls, 2);
    assert_int_equal(op_count(fx, CB_EV_COALESCE_HIT), 0);
}

/* opossum "coalesceResetOn: expect no hit after error": a failed shared call
 * is not reused (coalesce_reset_on_error, the default). */
static void failed_call_is_not_reused(void **state)
{
    op_fx *fx = *state;
    fx->opt.coalesce = true;
    fx->opt.coalesce_ttl_ms = 1000;
    fx->opt.error_threshold_percentage = 99;
    fx->opt.allow_warm_up = true;
    op_start(fx);
    assert_true(cb_get_options(fx->b)->coalesce_reset_on_error);
    assert_int_equal(op_fire_key(fx, "k", -1, NULL), CB_EFAILED);
    cb_result res;
    assert_int_equal(op_fire_key(fx, "k", 1, &res), CB_OK);
    assert_false(res.coalesced);
    assert_int_equal(fx->action_calls, 2);
    cb_stats st;
    op_stats(fx, &st);
    assert_int_equal(st.window.coalesce_hits, 0);
}

/* opossum "coalesceResetOn: expect no hit after timeout". */
static void timed_out_call_is_not_reused(void **state)
{
    op_fx *fx = *state;
    fx->opt.action = op_timed;
    fx->opt.timeout_ms = 200;
    fx->opt.coalesce = true;
    fx->opt.coalesce_ttl_ms = 5000;
    fx->opt.error_threshold_percentage = 99;
    fx->opt.allow_warm_up = true;
    op_start(fx);
    assert_int_equal(op_fire_key(fx, "k", 1000, NULL), CB_ETIMEDOUT);
    cb_result res;
    assert_int_equal(op_fire_key(fx, "k", 1, &res), CB_OK);
    assert_false(res.coalesced);
    assert_int_equal(OP_VAL(res.value), 1);
    cb_stats st;
    op_stats(fx, &st);
    assert_int_equal(st.window.coalesce_hits, 0);
}

/* opossum keeps coalesceResetOn empty by default, so a failure is shared for
 * coalesceTTL; here that is coalesce_reset_on_error = false. */
static void failed_call_is_shared_when_reset_on_error_is_off(void **state)
{
    op_fx *fx = *state;
    fx->opt.coalesce = true;
    fx->opt.coalesce_ttl_ms = 1000;
    fx->opt.coalesce_reset_on_error = false;
    fx->opt.error_threshold_percentage = 99;
    fx->opt.allow_warm_up = true;
    op_start(fx);
    assert_int_equal(op_fire_key(fx, "k", -1, NULL), CB_EFAILED);
    cb_result res;
    assert_int_equal(op_fire_key(fx, "k", 1, &res), CB_EFAILED);
    assert_true(res.coalesced);
    assert_int_equal(res.action_rc, OP_FAIL_RC);
    assert_int_equal(fx->action_calls, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        OP_TEST(cache_hit_returns_the_cached_value_without_running_the_action),
        OP_TEST(cache_is_keyed_by_the_callers_key),
        OP_TEST(call_without_a_key_is_never_cached),
        OP_TEST(failures_are_not_cached),
        OP_TEST(cache_entries_expire_after_their_ttl),
        OP_TEST(cache_size_defaults_to_1024),
        OP_TEST(cache_evicts_the_least_recently_used_entry_at_its_size),
        OP_TEST(clearing_the_cache_forgets_every_entry),
        OP_TEST(open_circuit_still_answers_from_the_cache),
        OP_TEST(disabled_breaker_bypasses_the_cache),
        OP_TEST(cached_values_are_duplicated_for_callers_and_freed_by_the_breaker),
        OP_TEST(concurrent_calls_share_one_action_then_the_cache_answers),
        OP_TEST(coalesced_result_is_shared_for_its_ttl_only),
        OP_TEST(without_coalescing_concurrent_calls_each_run),
        OP_TEST(finished_call_is_not_reused_when_sharing_only_in_flight),
        OP_TEST(failed_call_is_not_reused),
        OP_TEST(timed_out_call_is_not_reused),
        OP_TEST(failed_call_is_shared_when_reset_on_error_is_off),
    };
    return cmocka_run_group_tests_name("opossum cache.js", tests, NULL, NULL);
}
