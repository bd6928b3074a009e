/* harness.c -- the shared fixture of the opossum-parity tests (see harness.h). */
#include "harness.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static op_fx *fx_of(const cb_call *call) { return (op_fx *)call->user; }

/* Reads the call's cancelled flag. The breaker raises it from another thread
 * (the pool's waiter, cb_shutdown), so it is read atomically, not as a plain
 * volatile load, which ThreadSanitizer rightly reports as a race. */
static int cancelled_now(const cb_call *call)
{
    return __atomic_load_n(call->cancelled, __ATOMIC_ACQUIRE);
}

/* An absolute CLOCK_REALTIME time ms from now, for bounded condvar waits. */
static struct timespec deadline_in(int ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

/* Waits on fx->changed until *counter >= n or the real-time bound passes.
 * Caller holds fx->lock. */
static bool wait_counter(op_fx *fx, const int *counter, int n, int timeout_ms)
{
    struct timespec until = deadline_in(timeout_ms);
    while (*counter < n) {
        if (pthread_cond_timedwait(&fx->changed, &fx->lock, &until) == ETIMEDOUT)
            return *counter >= n;
    }
    return true;
}

static void record_event(cb_breaker *b, const cb_event *ev, void *ctx)
{
    op_fx *fx = ctx;
    (void)b;
    pthread_mutex_lock(&fx->lock);
    if (fx->n_events < OP_MAX_EVENTS) {
        fx->events[fx->n_events] = *ev;
        fx->events[fx->n_events].stats = NULL;
        fx->n_events++;
    }
    pthread_cond_broadcast(&fx->changed);
    pthread_mutex_unlock(&fx->lock);
}

int op_setup(void **state)
{
    op_fx *fx = calloc(1, sizeof *fx);
    if (!fx)
        return -1;
    fx->clock = cb_manual_clock_new(OP_CLOCK_START_NS);
    if (!fx->clock) {
        free(fx);
        return -1;
    }
    pthread_mutex_init(&fx->lock, NULL);
    pthread_cond_init(&fx->changed, NULL);
    cb_options_init(&fx->opt);
    fx->opt.clock = cb_manual_clock_get(fx->clock);
    fx->opt.action = op_pass_fail;
    fx->opt.user = fx;
    fx->opt.name = "passFail";
    *state = fx;
    return 0;
}

int op_teardown(void **state)
{
    op_fx *fx = *state;
    if (!fx)
        return 0;
    cb_destroy(fx->b);
    cb_manual_clock_free(fx->clock);
    pthread_cond_destroy(&fx->changed);
    pthread_mutex_destroy(&fx->lock);
    free(fx);
    return 0;
}

void op_start(op_fx *fx)
{
    int rc = cb_create(&fx->opt, &fx->b);
    if (rc != CB_OK)
        fail_msg("cb_create: %s", cb_err_name(rc));
    assert_non_null(fx->b);
    op_listen(fx);
}

void op_listen(op_fx *fx)
{
    assert_true(cb_on(fx->b, CB_EV_ALL, record_event, fx) > 0);
}

int op_fire(op_fx *fx, intptr_t x, cb_result *res)
{
    return cb_fire(fx->b, OP_ARG(x), res);
}

int op_fire_key(op_fx *fx, const char *key, intptr_t x, cb_result *res)
{
    return cb_fire_key(fx->b, key, OP_ARG(x), res);
}

void op_advance(op_fx *fx, int64_t ms)
{
    cb_manual_clock_advance_ms(fx->clock, ms);
    assert_int_equal(cb_tick(fx->b), CB_OK);
}

cb_state op_state(op_fx *fx) { return cb_get_state(fx->b); }

void op_stats(op_fx *fx, cb_stats *st)
{
    memset(st, 0, sizeof *st);
    assert_int_equal(cb_tick(fx->b), CB_OK);
    assert_int_equal(cb_get_stats(fx->b, st), CB_OK);
}

int op_count(op_fx *fx, cb_event_kind k)
{
    int n = 0;
    pthread_mutex_lock(&fx->lock);
    for (int i = 0; i < fx->n_events; i++)
        n += fx->events[i].kind == k;
    pthread_mutex_unlock(&fx->lock);
    return n;
}

const cb_event *op_last(op_fx *fx, cb_event_kind k)
{
    const cb_event *found = NULL;
    pthread_mutex_lock(&fx->lock);
    for (int i = 0; i < fx->n_events; i++)
        if (fx->events[i].kind == k)
            found = &fx->events[i];
    pthread_mutex_unlock(&fx->lock);
    return found;
}

void op_clear_events(op_fx *fx)
{
    pthread_mutex_lock(&fx->lock);
    fx->n_events = 0;
    pthread_mutex_unlock(&fx->lock);
}

/* Writes the recorded kinds in mask into a readable list, for messages. */
static void describe_sequence(op_fx *fx, uint32_t mask, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < fx->n_events && used + 24 < len; i++) {
        if (!(mask & CB_EV_MASK(fx->events[i].kind)))
            continue;
        used += (size_t)snprintf(buf + used, len - used, "%s ",
                                 cb_event_name(fx->events[i].kind));
    }
}

void op_assert_sequence(op_fx *fx, uint32_t mask, const cb_event_kind *want, int n)
{
    char got[1024];
    int j = 0;
    bool same = true;
    pthread_mutex_lock(&fx->lock);
    for (int i = 0; i < fx->n_events; i++) {
        if (!(mask & CB_EV_MASK(fx->events[i].kind)))
            continue;
        if (j >= n || fx->events[i].kind != want[j])
            same = false;
        j++;
    }
    if (j != n)
        same = false;
    describe_sequence(fx, mask, got, sizeof got);
    pthread_mutex_unlock(&fx->lock);
    if (!same) {
        char wanted[1024];
        size_t used = 0;
        wanted[0] = '\0';
        for (int i = 0; i < n && used + 24 < sizeof wanted; i++)
            used += (size_t)snprintf(wanted + used, sizeof wanted - used, "%s ",
                                     cb_event_name(want[i]));
        fail_msg("events: want [%s] got [%s]", wanted, got);
    }
}

bool op_wait_event(op_fx *fx, cb_event_kind k, int n, int timeout_ms)
{
    struct timespec until = deadline_in(timeout_ms);
    bool ok = false;
    pthread_mutex_lock(&fx->lock);
    for (;;) {
        int seen = 0;
        for (int i = 0; i < fx->n_events; i++)
            seen += fx->events[i].kind == k;
        if (seen >= n) {
            ok = true;
            break;
        }
        if (pthread_cond_timedwait(&fx->changed, &fx->lock, &until) == ETIMEDOUT)
            break;
    }
    pthread_mutex_unlock(&fx->lock);
    return ok;
}

/* Bookkeeping every action does first: count, remember, run the hook. */
static op_fx *enter_action(const cb_call *call)
{
    op_fx *fx = fx_of(call);
    op_hook_fn hook;
    pthread_mutex_lock(&fx->lock);
    fx->action_calls++;
    fx->last_arg = call->arg;
    fx->last_call = *call;
    hook = fx->inside;
    fx->inside = NULL;
    pthread_mutex_unlock(&fx->lock);
    if (hook)
        hook(fx, call);
    return fx;
}

int op_pass_fail(const cb_call *call, void **result)
{
    enter_action(call);
    if (OP_VAL(call->arg) > 0) {
        *result = call->arg;
        return 0;
    }
    return OP_FAIL_RC;
}

int op_fail_with_code(const cb_call *call, void **result)
{
    (void)result;
    enter_action(call);
    return (int)OP_VAL(call->arg);
}

int op_timed(const cb_call *call, void **result)
{
    op_fx *fx = enter_action(call);
    cb_manual_clock_advance_ms(fx->clock, OP_VAL(call->arg));
    fx->cancelled_seen = cancelled_now(call);
    *result = call->arg;
    return 0;
}

int op_timed_failing(const cb_call *call, void **result)
{
    op_fx *fx = enter_action(call);
    (void)result;
    cb_manual_clock_advance_ms(fx->clock, OP_VAL(call->arg));
    return OP_FAIL_RC;
}

int op_gated(const cb_call *call, void **result)
{
    op_fx *fx = enter_action(call);
    struct timespec until = deadline_in(5000);
    pthread_mutex_lock(&fx->lock);
    fx->gate_entered++;
    pthread_cond_broadcast(&fx->changed);
    while (!fx->gate_open) {
        if (pthread_cond_timedwait(&fx->changed, &fx->lock, &until) == ETIMEDOUT)
            break;
    }
    pthread_mutex_unlock(&fx->lock);
    *result = call->arg;
    return 0;
}

int op_ignores_deadline(const cb_call *call, void **result)
{
    op_fx *fx = enter_action(call);
    struct timespec until = deadline_in(2000);
    pthread_mutex_lock(&fx->lock);
    fx->gate_entered++;
    pthread_cond_broadcast(&fx->changed);
    while (!cancelled_now(call) && !fx->gate_open) {
        /* the breaker raises *cancelled without signalling us: poll */
        struct timespec step = deadline_in(5);
        pthread_cond_timedwait(&fx->changed, &fx->lock, &step);
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        if (now.tv_sec > until.tv_sec ||
            (now.tv_sec == until.tv_sec && now.tv_nsec >= until.tv_nsec))
            break;
    }
    fx->cancelled_seen = cancelled_now(call);
    pthread_mutex_unlock(&fx->lock);
    *result = call->arg;
    return 0;
}

void op_open_gate(op_fx *fx)
{
    pthread_mutex_lock(&fx->lock);
    fx->gate_open = true;
    pthread_cond_broadcast(&fx->changed);
    pthread_mutex_unlock(&fx->lock);
}

bool op_wait_gate_entered(op_fx *fx, int n, int timeout_ms)
{
    pthread_mutex_lock(&fx->lock);
    bool ok = wait_counter(fx, &fx->gate_entered, n, timeout_ms);
    pthread_mutex_unlock(&fx->lock);
    return ok;
}

/* Records one fallback call in fx. */
static op_fx *note_fallback(void *arg, int reason, int action_rc, void *user)
{
    op_fx *fx = user;
    pthread_mutex_lock(&fx->lock);
    fx->fallback_calls++;
    fx->fallback_reason = reason;
    fx->fallback_action_rc = action_rc;
    fx->fallback_arg = arg;
    pthread_mutex_unlock(&fx->lock);
    return fx;
}

int op_fallback_echo(void *arg, int reason, int action_rc, void **result, void *user)
{
    note_fallback(arg, reason, action_rc, user);
    *result = arg;
    return 0;
}

int op_fallback_twice(void *arg, int reason, int action_rc, void **result, void *user)
{
    note_fallback(arg, reason, action_rc, user);
    *result = OP_ARG(OP_VAL(arg) * 2);
    return 0;
}

int op_fallback_fail(void *arg, int reason, int action_rc, void **result, void *user)
{
    (void)result;
    note_fallback(arg, reason, action_rc, user);
    return 99;
}

bool op_filter_below_500(int action_rc, void *arg, void *user)
{
    op_fx *fx = user;
    pthread_mutex_lock(&fx->lock);
    fx->filter_calls++;
    fx->filter_rc = action_rc;
    fx->filter_arg = arg;
    pthread_mutex_unlock(&fx->lock);
    return action_rc < 500;
}

int op_health_check(void *user)
{
    op_fx *fx = user;
    pthread_mutex_lock(&fx->lock);
    fx->health_calls++;
    int rc = fx->health_rc;
    pthread_mutex_unlock(&fx->lock);
    return rc;
}

void op_on_late(void *arg, int action_rc, void *result, void *user)
{
    op_fx *fx = user;
    (void)arg;
    (void)result;
    pthread_mutex_lock(&fx->lock);
    fx->late_calls++;
    fx->late_rc = action_rc;
    pthread_cond_broadcast(&fx->changed);
    pthread_mutex_unlock(&fx->lock);
}

bool op_wait_late(op_fx *fx, int n, int timeout_ms)
{
    pthread_mutex_lock(&fx->lock);
    bool ok = wait_counter(fx, &fx->late_calls, n, timeout_ms);
    pthread_mutex_unlock(&fx->lock);
    return ok;
}

static void *thread_main(void *p)
{
    op_thread *t = p;
    t->rc = op_fire_key(t->fx, t->key, t->x, &t->res);
    return NULL;
}

void op_thread_start(op_thread *t, op_fx *fx, const char *key, intptr_t x)
{
    memset(t, 0, sizeof *t);
    t->fx = fx;
    t->key = key;
    t->x = x;
    assert_int_equal(pthread_create(&t->tid, NULL, thread_main, t), 0);
}

void op_thread_join(op_thread *t)
{
    assert_int_equal(pthread_join(t->tid, NULL), 0);
}
