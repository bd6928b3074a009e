/* limit.c -- the adaptive concurrency limit of cb_limit.h (TCP Vegas).
 *
 * All the state (limit, in_flight, the no-load estimate and its window, the
 * counts, the listeners) sits behind one mutex: an admission is a lock, a
 * comparison, an increment and a clock read; a release adds the step of
 * cb_limit.h's table (vegas_step() below). Events are collected under the
 * lock and delivered after it is released, to a copy of the listeners.
 */
#include "cb_limit.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct cb__limit_listener {
    int id;
    uint32_t mask;
    cb_limit_listener_fn fn;
    void *ctx;
} cb__limit_listener;

struct cb_limit {
    cb_limit_options o;        /* own copy; o.name points at name */
    char *name;
    pthread_mutex_t lock;
    int limit;
    int in_flight;
    int64_t no_load_ns;        /* 0 = no estimate */
    int64_t window_start_ns;
    int64_t last_rtt_ns;
    uint64_t admitted, shed, samples, dropped;
    cb__limit_listener listeners[CB_LIMIT_MAX_LISTENERS];
    int nlisteners;
    uint32_t listen_mask;      /* union of the listeners' masks */
    int next_listener_id;
};

/* Fills o with the defaults of cb_limit.h. Can't fail. */
void cb_limit_options_init(cb_limit_options *o)
{
    memset(o, 0, sizeof *o);
    o->name = "limit";
    o->initial_limit = 20;
    o->min_limit = 1;
    o->max_limit = 200;
    o->alpha = 3;
    o->beta = 6;
    o->backoff_ratio = 0.9;
    o->rtt_window_ms = 10000;
    o->clock = cb_clock_system();
}

/* CB_OK when o is within cb_limit.h's ranges, else CB_EINVAL. */
static int options_validate(const cb_limit_options *o)
{
    if (!o || !o->clock.now_ns)
        return CB_EINVAL;
    if (o->max_limit < 1 || o->max_limit > 100000 || o->min_limit < 1 || o->min_limit > o->max_limit)
        return CB_EINVAL;
    if (o->alpha < 0 || o->beta < o->alpha || o->beta > 100000)
        return CB_EINVAL;
    /* written so that NaN fails too */
    if (!(o->backoff_ratio >= 0.5 && o->backoff_ratio <= 1.0))
        return CB_EINVAL;
    if (o->rtt_window_ms < 0 || o->rtt_window_ms > 315360000000LL)
        return CB_EINVAL;
    return CB_OK;
}

/* v clamped into l's [min_limit, max_limit]. */
static int clamp_limit(const cb_limit *l, int v)
{
    if (v < l->o.min_limit)
        return l->o.min_limit;
    if (v > l->o.max_limit)
        return l->o.max_limit;
    return v;
}

/* Creates a limiter from validated options. See cb_limit.h. */
int cb_limit_create(const cb_limit_options *o, cb_limit **out)
{
    if (!out || options_validate(o) != CB_OK)
        return CB_EINVAL;
    cb_limit *l = calloc(1, sizeof *l);
    char *name = strdup(o->name ? o->name : "limit");
    if (!l || !name) {
        free(l);
        free(name);
        return CB_ENOMEM;
    }
    l->o = *o;
    l->name = name;
    l->o.name = name;
    l->limit = clamp_limit(l, o->initial_limit);
    pthread_mutex_init(&l->lock, NULL);
    *out = l;
    return CB_OK;
}

/* Frees l. NULL is a no-op. */
void cb_limit_destroy(cb_limit *l)
{
    if (!l)
        return;
    pthread_mutex_destroy(&l->lock);
    free(l->name);
    free(l);
}

/* Replaces the numeric options and resets the limit and the estimate. */
int cb_limit_set_options(cb_limit *l, const cb_limit_options *o)
{
    if (!l || !o)
        return CB_EINVAL;
    cb_limit_options n = *o;
    n.name = l->name;
    n.clock = l->o.clock;
    if (options_validate(&n) != CB_OK)
        return CB_EINVAL;
    pthread_mutex_lock(&l->lock);
    l->o = n;
    l->limit = clamp_limit(l, n.initial_limit);
    l->no_load_ns = 0;
    l->window_start_ns = 0;
    pthread_mutex_unlock(&l->lock);
    return CB_OK;
}

/* Copies the options in force. */
int cb_limit_get_options(cb_limit *l, cb_limit_options *o)
{
    if (!l || !o)
        return CB_EINVAL;
    pthread_mutex_lock(&l->lock);
    *o = l->o;
    pthread_mutex_unlock(&l->lock);
    return CB_OK;
}

/* ---- events --------------------------------------------------------------- */

/* The listeners an event of kind k goes to, copied under the lock (held by
 * the caller) into out; returns how many. */
static int listeners_for(const cb_limit *l, cb_limit_event_kind k, cb__limit_listener *out)
{
    int n = 0;
    if (!(l->listen_mask & CB_LEV_MASK(k)))
        return 0;
    for (int i = 0; i < l->nlisteners; i++)
        if (l->listeners[i].mask & CB_LEV_MASK(k))
            out[n++] = l->listeners[i];
    return n;
}

/* Delivers ev to the n copied listeners, with no lock held. */
static void deliver(cb_limit *l, const cb_limit_event *ev, const cb__limit_listener *to, int n)
{
    for (int i = 0; i < n; i++)
        to[i].fn(l, ev, to[i].ctx);
}

/* Recomputes the union of the listeners' masks (lock held). */
static void remask(cb_limit *l)
{
    l->listen_mask = 0;
    for (int i = 0; i < l->nlisteners; i++)
        l->listen_mask |= l->listeners[i].mask;
}

/* Registers a listener. See cb_limit.h. */
int cb_limit_on(cb_limit *l, uint32_t mask, cb_limit_listener_fn fn, void *ctx)
{
    if (!l || !fn || !(mask & CB_LEV_ALL))
        return CB_EINVAL;
    pthread_mutex_lock(&l->lock);
    if (l->nlisteners == CB_LIMIT_MAX_LISTENERS) {
        pthread_mutex_unlock(&l->lock);
        return CB_ENOMEM;
    }
    int id = ++l->next_listener_id;
    l->listeners[l->nlisteners++] = (cb__limit_listener){ id, mask & CB_LEV_ALL, fn, ctx };
    remask(l);
    pthread_mutex_unlock(&l->lock);
    return id;
}

/* Removes a listener. See cb_limit.h. */
int cb_limit_off(cb_limit *l, int id)
{
    if (!l || id <= 0)
        return CB_EINVAL;
    pthread_mutex_lock(&l->lock);
    int rc = CB_ENOTFOUND;
    for (int i = 0; i < l->nlisteners; i++) {
        if (l->listeners[i].id != id)
            continue;
        memmove(&l->listeners[i], &l->listeners[i + 1],
                (size_t)(l->nlisteners - i - 1) * sizeof l->listeners[0]);
        l->nlisteners--;
        remask(l);
        rc = CB_OK;
        break;
    }
    pthread_mutex_unlock(&l->lock);
    return rc;
}

static const char *const event_names[CB_LEV_COUNT] = { "limit", "shed" };

/* The event kind's name; "unknown" outside the enum. */
const char *cb_limit_event_name(cb_limit_event_kind k)
{
    if ((unsigned)k < CB_LEV_COUNT)
        return event_names[k];
    return "unknown";
}

/* ---- admission ------------------------------------------------------------ */

/* Admits a call under the limit, or refuses it with CB_ELIMIT. */
int cb_limit_acquire(cb_limit *l, cb_limit_token *t)
{
    if (!l || !t)
        return CB_EINVAL;
    int64_t now = l->o.clock.now_ns(l->o.clock.ctx);
    cb__limit_listener to[CB_LIMIT_MAX_LISTENERS];
    pthread_mutex_lock(&l->lock);
    if (l->in_flight < l->limit) {
        l->in_flight++;
        l->admitted++;
        pthread_mutex_unlock(&l->lock);
        t->start_ns = now;
        t->held = true;
        return CB_OK;
    }
    l->shed++;
    cb_limit_event ev = { .kind = CB_LEV_SHED, .time_ns = now, .old_limit = l->limit,
                          .limit = l->limit, .in_flight = l->in_flight,
                          .no_load_ns = l->no_load_ns, .outcome = CB_LIMIT_IGNORED };
    int n = listeners_for(l, CB_LEV_SHED, to);
    pthread_mutex_unlock(&l->lock);
    t->held = false;
    deliver(l, &ev, to, n);
    return CB_ELIMIT;
}

/* Step 1 of cb_limit.h's table: the no-load estimate after a sample rtt at
 * now (lock held). */
static void estimate_update(cb_limit *l, int64_t rtt, int64_t now)
{
    int64_t window = l->o.rtt_window_ms * 1000000LL;
    if (!l->no_load_ns || (window > 0 && now >= l->window_start_ns + window)) {
        l->no_load_ns = rtt;
        l->window_start_ns = now;
    } else if (rtt < l->no_load_ns) {
        l->no_load_ns = rtt;
    }
}

/* Steps 2 to 5 of cb_limit.h's table: the limit after a success sample rtt
 * with in_flight calls counting this one (lock held); *queue gets step 3's
 * estimate (0 when the step is skipped). */
static int vegas_step(const cb_limit *l, int64_t rtt, int in_flight, int *queue)
{
    *queue = 0;
    if ((int64_t)in_flight * 2 < l->limit)
        return l->limit;
    int64_t over = rtt > l->no_load_ns ? rtt - l->no_load_ns : 0;
    int64_t q = rtt > 0 ? ((int64_t)l->limit * over + rtt - 1) / rtt : 0;
    *queue = (int)q;
    if (q < l->o.alpha)
        return clamp_limit(l, l->limit + 1);
    if (q > l->o.beta)
        return clamp_limit(l, l->limit - 1);
    return l->limit;
}

/* The limit after a dropped call (lock held). */
static int backoff_step(const cb_limit *l)
{
    int cut = (int)((double)l->limit * l->o.backoff_ratio);   /* positive: truncation floors */
    return clamp_limit(l, cut < l->limit - 1 ? cut : l->limit - 1);
}

/* Gives a token back; a success sample or a drop may move the limit. */
int cb_limit_release(cb_limit *l, cb_limit_token *t, cb_limit_outcome outcome)
{
    if (!l || !t || !t->held || (unsigned)outcome > CB_LIMIT_IGNORED)
        return CB_EINVAL;
    t->held = false;
    int64_t now = l->o.clock.now_ns(l->o.clock.ctx);
    int64_t rtt = now > t->start_ns ? now - t->start_ns : 0;
    cb__limit_listener to[CB_LIMIT_MAX_LISTENERS];
    cb_limit_event ev = { .kind = CB_LEV_LIMIT, .time_ns = now, .outcome = outcome };
    pthread_mutex_lock(&l->lock);
    int before = l->limit;
    if (outcome == CB_LIMIT_SUCCESS) {
        l->samples++;
        l->last_rtt_ns = rtt;
        estimate_update(l, rtt, now);
        l->limit = vegas_step(l, rtt, l->in_flight, &ev.queue);
        ev.rtt_ns = rtt;
    } else if (outcome == CB_LIMIT_DROPPED) {
        l->dropped++;
        l->limit = backoff_step(l);
    }
    l->in_flight--;
    int n = 0;
    if (l->limit != before) {
        ev.old_limit = before;
        ev.limit = l->limit;
        ev.in_flight = l->in_flight;
        ev.no_load_ns = l->no_load_ns;
        n = listeners_for(l, CB_LEV_LIMIT, to);
    }
    pthread_mutex_unlock(&l->lock);
    deliver(l, &ev, to, n);
    return CB_OK;
}

/* A snapshot of the state and the counts. */
int cb_limit_get_stats(cb_limit *l, cb_limit_stats *st)
{
    if (!l || !st)
        return CB_EINVAL;
    pthread_mutex_lock(&l->lock);
    *st = (cb_limit_stats){ .limit = l->limit, .in_flight = l->in_flight,
                            .admitted = l->admitted, .shed = l->shed, .samples = l->samples,
                            .dropped = l->dropped, .no_load_ns = l->no_load_ns,
                            .last_rtt_ns = l->last_rtt_ns };
    pthread_mutex_unlock(&l->lock);
    return CB_OK;
}
