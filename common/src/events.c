/* events.c -- listeners and event delivery.
 *
 * The listener list is copy-on-write: emitting takes a reference to the
 * current list under a small mutex and calls each listener with no lock held,
 * so listeners may call cb_on()/cb_off()/cb_fire() freely. A call checks one
 * atomic mask first, so kinds nobody listens to cost one load.
 */
#include "cb_internal.h"

#include <stdlib.h>
#include <string.h>

static cb__listener_set *set_acquire(cb_breaker *b)
{
    pthread_mutex_lock(&b->listeners_lock);
    cb__listener_set *s = b->listeners;
    if (s)
        atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    pthread_mutex_unlock(&b->listeners_lock);
    return s;
}

static void set_release(cb__listener_set *s)
{
    if (s && atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1)
        free(s);
}

/* Delivers ev to every listener registered for its kind, in order. */
void cb__emit_slow(cb_breaker *b, const cb_event *ev)
{
    cb__listener_set *s = set_acquire(b);
    if (!s)
        return;
    for (int i = 0; i < s->n; i++)
        if (s->items[i].mask & CB_EV_MASK(ev->kind))
            s->items[i].fn(b, ev, s->items[i].ctx);
    set_release(s);
}

/* Emits kind with the given figures when some listener wants it. */
void cb__emit(cb_breaker *b, cb_event_kind k, double latency_ms, int error, int action_rc)
{
    if (!cb__wants(b, k))
        return;
    cb_event ev = {
        .kind = k,
        .state = (cb_state)atomic_load_explicit(&b->state, memory_order_acquire),
        .time_ns = cb__now(b),
        .latency_ms = latency_ms,
        .error = error,
        .action_rc = action_rc,
    };
    cb__emit_slow(b, &ev);
}

/* Emits kind with the window's stats st attached (the caller read them:
 * this file stays below the breaker it serves). */
void cb__emit_stats(cb_breaker *b, cb_event_kind k, const cb_stats *st)
{
    cb_event ev = {
        .kind = k,
        .state = st->state,
        .time_ns = cb__now(b),
        .stats = st,
    };
    cb__emit_slow(b, &ev);
}

static uint32_t mask_of(const cb__listener_set *s)
{
    uint32_t m = 0;
    for (int i = 0; s && i < s->n; i++)
        m |= s->items[i].mask;
    return m;
}

/* Publishes s as the current list (lock held); drops the old one. */
static void set_publish(cb_breaker *b, cb__listener_set *s)
{
    cb__listener_set *old = b->listeners;
    b->listeners = s;
    atomic_store_explicit(&b->listen_mask, mask_of(s), memory_order_release);
    set_release(old);
}

static cb__listener_set *set_copy(const cb__listener_set *old, int extra)
{
    int n = old ? old->n : 0;
    cb__listener_set *s = malloc(sizeof *s + (size_t)(n + extra) * sizeof(cb__listener));
    if (!s)
        return NULL;
    atomic_init(&s->refs, 1);
    s->n = n;
    if (n)
        memcpy(s->items, old->items, (size_t)n * sizeof(cb__listener));
    return s;
}

/* Registers fn for the kinds in mask. Returns its id (> 0), CB_EINVAL for a
 * NULL breaker/function or an empty mask, or CB_ENOMEM. */
int cb_on(cb_breaker *b, uint32_t mask, cb_listener_fn fn, void *ctx)
{
    if (!b || !fn || (mask & CB_EV_ALL) == 0)
        return CB_EINVAL;
    pthread_mutex_lock(&b->listeners_lock);
    cb__listener_set *s = set_copy(b->listeners, 1);
    if (!s) {
        pthread_mutex_unlock(&b->listeners_lock);
        return CB_ENOMEM;
    }
    int id = ++b->next_listener_id;
    s->items[s->n++] = (cb__listener){ id, mask & CB_EV_ALL, fn, ctx };
    set_publish(b, s);
    pthread_mutex_unlock(&b->listeners_lock);
    return id;
}

/* Removes listener id. Returns CB_OK, CB_ENOTFOUND, CB_EINVAL or CB_ENOMEM. */
int cb_off(cb_breaker *b, int id)
{
    if (!b)
        return CB_EINVAL;
    pthread_mutex_lock(&b->listeners_lock);
    cb__listener_set *old = b->listeners;
    int at = -1;
    for (int i = 0; old && i < old->n; i++)
        if (old->items[i].id == id)
            at = i;
    if (at < 0) {
        pthread_mutex_unlock(&b->listeners_lock);
        return CB_ENOTFOUND;
    }
    cb__listener_set *s = set_copy(old, 0);
    if (!s) {
        pthread_mutex_unlock(&b->listeners_lock);
        return CB_ENOMEM;
    }
    memmove(&s->items[at], &s->items[at + 1], (size_t)(s->n - at - 1) * sizeof(cb__listener));
    s->n--;
    set_publish(b, s);
    pthread_mutex_unlock(&b->listeners_lock);
    return CB_OK;
}

/* Drops the listener list (at destroy). */
void cb__listeners_free(cb_breaker *b)
{
    pthread_mutex_lock(&b->listeners_lock);
    set_publish(b, NULL);
    pthread_mutex_unlock(&b->listeners_lock);
}
