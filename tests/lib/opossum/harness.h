/* harness.h -- the shared fixture of the opossum-parity tests: a manual clock,
 * scriptable actions and fallbacks, and a recorder of breaker events.
 *
 * Every test gets an op_fx through cmocka's setup (op_setup) and tears it down
 * in op_teardown, so a failed assertion never leaks the breaker or the clock.
 * A test adjusts fx->opt (already filled by cb_options_init, with the manual
 * clock and op_pass_fail as the action), then calls op_start(fx).
 *
 * The actions mirror opossum's test helpers, translated to C:
 *   op_pass_fail(x)      succeeds with x when x > 0, fails with OP_FAIL_RC otherwise
 *   op_fail_with_code(c) fails with rc c (an HTTP-like status code)
 *   op_timed(ms)         takes ms on the manual clock, then succeeds with ms
 *   op_timed_failing(ms) takes ms on the manual clock, then fails
 * Each runs fx->inside (a one-shot hook) while "in flight", which is how a
 * test makes another call happen during a call without threads.
 *
 * Nothing here asserts from inside a breaker callback: callbacks only record,
 * and the test asserts afterwards, so a failure never unwinds through the
 * library while it holds a lock.
 */
#ifndef OP_HARNESS_H
#define OP_HARNESS_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdbool.h>
#include <pthread.h>
#include <cmocka.h>

#include "cb.h"

/* What op_pass_fail returns when it fails (opossum's "Error: x is < 0"). */
#define OP_FAIL_RC 7
/* The manual clock's start: far from zero so "0 = unset" fields stand out. */
#define OP_CLOCK_START_NS ((int64_t)1000000000000)

#define OP_ARG(x) ((void *)(intptr_t)(x))
#define OP_VAL(p) ((intptr_t)(p))

#define OP_MAX_EVENTS 512

typedef struct op_fx op_fx;
typedef void (*op_hook_fn)(op_fx *fx, const cb_call *call);

struct op_fx {
    cb_manual_clock *clock;
    cb_options opt;
    cb_breaker *b;

    /* events, in order (stats pointers dropped) */
    pthread_mutex_t lock;
    pthread_cond_t changed;
    cb_event events[OP_MAX_EVENTS];
    int n_events;

    /* actions */
    int action_calls;
    void *last_arg;               /* the arg of the last action call */
    cb_call last_call;            /* a copy of what the last action was given */
    int cancelled_seen;           /* value of *cancelled when the action ended */
    op_hook_fn inside;            /* one-shot: runs inside the next action */

    /* nested calls made by hooks */
    int nested_rc;
    cb_result nested_res;
    cb_state state_inside;        /* cb_get_state() seen from inside the action */

    /* fallback */
    int fallback_calls;
    int fallback_reason;
    int fallback_action_rc;
    void *fallback_arg;

    /* error filter */
    int filter_calls;
    int filter_rc;
    void *filter_arg;

    /* health check */
    int health_calls;
    int health_rc;                /* what the health check returns */

    /* gate for threaded tests: op_gated blocks until gate_open */
    bool gate_open;
    int gate_entered;

    /* late results (CB_TIMEOUT_POOL) */
    int late_calls;
    int late_rc;
};

/* cmocka setup: allocates an op_fx with a manual clock and default options
 * (cb_options_init, manual clock, op_pass_fail, user = fx). Returns 0, or -1
 * when out of memory. */
int op_setup(void **state);
/* cmocka teardown: destroys the breaker (if started), the clock and fx. */
int op_teardown(void **state);
/* Creates the breaker from fx->opt and registers the event recorder for
 * every kind. Fails the test when cb_create does. */
void op_start(op_fx *fx);
/* Registers the event recorder on fx->b (op_start does it). */
void op_listen(op_fx *fx);

/* Fires with arg x (no key); returns cb_fire's code and fills *res if given. */
int op_fire(op_fx *fx, intptr_t x, cb_result *res);
/* Fires with a key for the cache and coalescing. */
int op_fire_key(op_fx *fx, const char *key, intptr_t x, cb_result *res);
/* Advances the manual clock by ms and runs cb_tick(). */
void op_advance(op_fx *fx, int64_t ms);
/* The breaker's state right now. */
cb_state op_state(op_fx *fx);
/* Fills *st after a cb_tick(); fails the test on error. */
void op_stats(op_fx *fx, cb_stats *st);

/* How many events of kind k were recorded. */
int op_count(op_fx *fx, cb_event_kind k);
/* The last recorded event of kind k, or NULL. */
const cb_event *op_last(op_fx *fx, cb_event_kind k);
/* Forgets the recorded events. */
void op_clear_events(op_fx *fx);
/* Asserts that the recorded events, filtered to the kinds in mask, are
 * exactly the n kinds in want, in order. */
void op_assert_sequence(op_fx *fx, uint32_t mask, const cb_event_kind *want, int n);
/* Waits (bounded by timeout_ms of real time) until an event of kind k has
 * been recorded at least n times. Returns true when it was. */
bool op_wait_event(op_fx *fx, cb_event_kind k, int n, int timeout_ms);

/* Actions (see the file comment). */
int op_pass_fail(const cb_call *call, void **result);
int op_fail_with_code(const cb_call *call, void **result);
int op_timed(const cb_call *call, void **result);
int op_timed_failing(const cb_call *call, void **result);
/* Blocks (bounded, 5 s of real time) until op_open_gate(), then succeeds
 * with arg. Counts itself in gate_entered before blocking. */
int op_gated(const cb_call *call, void **result);
/* Ignores its deadline for up to 2 s of real time, polling *cancelled; then
 * succeeds with arg. Records what it saw in cancelled_seen. */
int op_ignores_deadline(const cb_call *call, void **result);
/* Opens the gate of op_gated. */
void op_open_gate(op_fx *fx);
/* Waits (bounded) until n calls have entered op_gated. */
bool op_wait_gate_entered(op_fx *fx, int n, int timeout_ms);

/* Fallbacks: echo returns arg, twice returns 2*arg, fail fails (rc 99). */
int op_fallback_echo(void *arg, int reason, int action_rc, void **result, void *user);
int op_fallback_twice(void *arg, int reason, int action_rc, void **result, void *user);
int op_fallback_fail(void *arg, int reason, int action_rc, void **result, void *user);
/* Error filter: ignores (returns true for) rc < 500, as opossum's tests do. */
bool op_filter_below_500(int action_rc, void *arg, void *user);
/* Health check: returns fx->health_rc, counting calls. */
int op_health_check(void *user);
/* Late-result callback: counts calls and keeps the rc. */
void op_on_late(void *arg, int action_rc, void *result, void *user);
/* Waits (bounded) until on_late ran n times. */
bool op_wait_late(op_fx *fx, int n, int timeout_ms);

/* Runs f(fx, arg) on a new thread that fires the breaker; see op_thread_join. */
typedef struct op_thread {
    pthread_t tid;
    op_fx *fx;
    const char *key;
    intptr_t x;
    int rc;
    cb_result res;
} op_thread;
/* Starts a thread that runs op_fire_key(fx, key, x). */
void op_thread_start(op_thread *t, op_fx *fx, const char *key, intptr_t x);
/* Joins it; its rc and res are then valid. */
void op_thread_join(op_thread *t);

#define OP_TEST(fn) cmocka_unit_test_setup_teardown(fn, op_setup, op_teardown)

#endif /* OP_HARNESS_H */
