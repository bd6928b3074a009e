/* hedge.c -- the hedging policy of cb_hedge.h: copies of a call through a
 * breaker, the first success wins, the others are cancelled.
 *
 * One call is a small coordinator on the caller's thread and one thread per
 * copy. The coordinator and the copies share a per-call record (hcall)
 * under its mutex: how many copies started and finished, the winner, each
 * copy's result. The coordinator sleeps on the record's condition until a
 * copy finishes or the next copy is due, so a call that finishes before the
 * delay costs one thread and one wake-up. The policy's shared state is the
 * budget (one atomic of milli-tokens, changed by compare-and-swap as in
 * retry.c), the counts (atomics) and the latency window (a ring under a
 * mutex, read at each call when a percentile is configured).
 */
#include "cb_hedge.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { H_CALLS, H_COPIES, H_HEDGES, H_WINS, H_CANCELLED, H_BUDGET, H_FAILED, H_THREADS,
       H_NCOUNTERS };

typedef struct cb__hedge_listener {
    int id;
    uint32_t mask;
    cb_hedge_listener_fn fn;
    void *ctx;
} cb__hedge_listener;

struct cb_hedge {
    cb_hedge_options o;            /* own copy; o.name points at name */
    char *name;
    int64_t max_milli;             /* budget_max_tokens * 1000; 0 = no budget */
    int64_t ratio_milli;           /* budget_ratio * 1000, rounded */
    _Atomic int64_t tokens_milli;
    _Atomic uint64_t count[H_NCOUNTERS];

    pthread_mutex_t window_lock;   /* the ring of winning latencies */
    int64_t *window;
    int window_n, window_next;

    pthread_mutex_t listeners_lock;
    cb__hedge_listener listeners[CB_HEDGE_MAX_LISTENERS];
    int nlisteners, next_listener_id;
};

/* ---- options and lifecycle ----------------------------------------------- */

/* Fills o with the defaults of cb_hedge.h. Can't fail. */
void cb_hedge_options_init(cb_hedge_options *o)
{
    memset(o, 0, sizeof *o);
    o->name = "hedge";
    o->max_copies = 2;
    o->delay_ms = 50;
    o->window = 100;
    o->window_min = 20;
    o->budget_max_tokens = 10;
    o->budget_ratio = 0.1;
    o->clock = cb_clock_system();
}

/* CB_OK when every option is in its documented range (NaN fails too). */
static int options_validate(const cb_hedge_options *o)
{
    if (!o || o->max_copies < 1 || o->max_copies > CB_HEDGE_MAX_COPIES)
        return CB_EINVAL;
    if (o->delay_ms < 0 || o->delay_ms > 600000)
        return CB_EINVAL;
    if (o->delay_percentile != 0 && !(o->delay_percentile >= 1 && o->delay_percentile <= 99.9))
        return CB_EINVAL;
    if (o->window < 1 || o->window > 10000 || o->window_min < 1 || o->window_min > o->window)
        return CB_EINVAL;
    if (o->budget_max_tokens < 0 || o->budget_max_tokens > 1000)
        return CB_EINVAL;
    if (o->budget_max_tokens > 0 && !(o->budget_ratio >= 0.001 && o->budget_ratio <= 100.0))
        return CB_EINVAL;
    return o->clock.now_ns ? CB_OK : CB_EINVAL;
}

/* Creates a policy from validated options. See cb_hedge.h. */
int cb_hedge_create(const cb_hedge_options *o, cb_hedge **out)
{
    if (!out || options_validate(o) != CB_OK)
        return CB_EINVAL;
    cb_hedge *h = calloc(1, sizeof *h);
    char *name = strdup(o->name ? o->name : "hedge");
    int64_t *window = calloc((size_t)o->window, sizeof *window);
    if (!h || !name || !window) {
        free(h);
        free(name);
        free(window);
        return CB_ENOMEM;
    }
    h->o = *o;
    h->name = name;
    h->o.name = name;
    h->window = window;
    h->max_milli = (int64_t)o->budget_max_tokens * 1000;
    h->ratio_milli = h->max_milli ? (int64_t)(o->budget_ratio * 1000.0 + 0.5) : 0;
    atomic_init(&h->tokens_milli, h->max_milli);
    for (int i = 0; i < H_NCOUNTERS; i++)
        atomic_init(&h->count[i], 0);
    pthread_mutex_init(&h->window_lock, NULL);
    pthread_mutex_init(&h->listeners_lock, NULL);
    *out = h;
    return CB_OK;
}

/* Frees h. NULL is a no-op. */
void cb_hedge_destroy(cb_hedge *h)
{
    if (!h)
        return;
    pthread_mutex_destroy(&h->window_lock);
    pthread_mutex_destroy(&h->listeners_lock);
    free(h->window);
    free(h->name);
    free(h);
}

/* h's own copy of its options. */
const cb_hedge_options *cb_hedge_get_options(const cb_hedge *h)
{
    return h ? &h->o : NULL;
}

/* ---- budget ----------------------------------------------------------------- */

/* A call: tokens += ratio, at most max. */
static void budget_call(cb_hedge *h)
{
    int64_t t = atomic_load_explicit(&h->tokens_milli, memory_order_relaxed);
    while (t < h->max_milli) {
        int64_t n = t + h->ratio_milli > h->max_milli ? h->max_milli : t + h->ratio_milli;
        if (atomic_compare_exchange_weak_explicit(&h->tokens_milli, &t, n, memory_order_relaxed,
                                                  memory_order_relaxed))
            return;
    }
}

/* A hedge is due: takes 1000 milli-tokens when there are that many.
 * Returns true when the hedge may be sent (always without a budget). */
static bool budget_take(cb_hedge *h)
{
    if (!h->max_milli)
        return true;
    int64_t t = atomic_load_explicit(&h->tokens_milli, memory_order_relaxed);
    while (t >= 1000) {
        if (atomic_compare_exchange_weak_explicit(&h->tokens_milli, &t, t - 1000,
                                                  memory_order_relaxed, memory_order_relaxed))
            return true;
    }
    return false;
}

static double tokens_now(cb_hedge *h)
{
    return (double)atomic_load_explicit(&h->tokens_milli, memory_order_relaxed) / 1000.0;
}

/* ---- the latency window ---------------------------------------------------------- */

/* Records a winning copy's latency. */
static void window_add(cb_hedge *h, int64_t ns)
{
    pthread_mutex_lock(&h->window_lock);
    h->window[h->window_next] = ns;
    h->window_next = (h->window_next + 1) % h->o.window;
    if (h->window_n < h->o.window)
        h->window_n++;
    pthread_mutex_unlock(&h->window_lock);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* The delay before each further copy, in ns. See cb_hedge.h. */
int64_t cb_hedge_delay_ns(cb_hedge *h)
{
    if (!h)
        return 0;
    int64_t floor_ns = h->o.delay_ms * 1000000LL;
    if (h->o.delay_percentile == 0)
        return floor_ns;
    int64_t *sorted = malloc((size_t)h->o.window * sizeof *sorted);
    if (!sorted)
        return floor_ns;
    pthread_mutex_lock(&h->window_lock);
    int n = h->window_n;
    memcpy(sorted, h->window, (size_t)n * sizeof *sorted);
    pthread_mutex_unlock(&h->window_lock);
    int64_t p = floor_ns;
    if (n >= h->o.window_min) {
        qsort(sorted, (size_t)n, sizeof *sorted, cmp_i64);
        int rank = (int)ceil(h->o.delay_percentile / 100.0 * n);
        p = sorted[rank < 1 ? 0 : rank - 1];
    }
    free(sorted);
    return p > floor_ns ? p : floor_ns;
}

/* ---- events ------------------------------------------------------------------------ */

static const char *const event_names[CB_HEV_COUNT] = { "hedge", "win", "budget-refused" };

/* The event kind's name; "unknown" outside the enum. */
const char *cb_hedge_event_name(cb_hedge_event_kind k)
{
    return (unsigned)k < CB_HEV_COUNT ? event_names[k] : "unknown";
}

/* Registers fn for the kinds in mask. See cb_hedge.h. */
int cb_hedge_on(cb_hedge *h, uint32_t mask, cb_hedge_listener_fn fn, void *ctx)
{
    if (!h || !fn || (mask & CB_HEV_ALL) == 0)
        return CB_EINVAL;
    pthread_mutex_lock(&h->listeners_lock);
    int id = CB_EINVAL;
    if (h->nlisteners < CB_HEDGE_MAX_LISTENERS) {
        id = ++h->next_listener_id;
        h->listeners[h->nlisteners++] = (cb__hedge_listener){ id, mask & CB_HEV_ALL, fn, ctx };
    }
    pthread_mutex_unlock(&h->listeners_lock);
    return id;
}

/* Removes listener id. See cb_hedge.h. */
int cb_hedge_off(cb_hedge *h, int id)
{
    if (!h)
        return CB_EINVAL;
    pthread_mutex_lock(&h->listeners_lock);
    int rc = CB_ENOTFOUND;
    for (int i = 0; i < h->nlisteners; i++) {
        if (h->listeners[i].id != id)
            continue;
        memmove(&h->listeners[i], &h->listeners[i + 1],
                (size_t)(h->nlisteners - i - 1) * sizeof h->listeners[0]);
        h->nlisteners--;
        rc = CB_OK;
        break;
    }
    pthread_mutex_unlock(&h->listeners_lock);
    return rc;
}

/* Runs the listeners of ev's kind on a copy of the list, no lock held. */
static void emit(cb_hedge *h, cb_hedge_event *ev)
{
    cb__hedge_listener l[CB_HEDGE_MAX_LISTENERS];
    pthread_mutex_lock(&h->listeners_lock);
    int n = h->nlisteners;
    memcpy(l, h->listeners, (size_t)n * sizeof l[0]);
    pthread_mutex_unlock(&h->listeners_lock);
    ev->time_ns = h->o.clock.now_ns(h->o.clock.ctx);
    ev->budget_tokens = tokens_now(h);
    for (int i = 0; i < n; i++)
        if (l[i].mask & CB_HEV_MASK(ev->kind))
            l[i].fn(h, ev, l[i].ctx);
}

/* ---- one call ------------------------------------------------------------------------ */

static inline void count(cb_hedge *h, int k)
{
    atomic_fetch_add_explicit(&h->count[k], 1, memory_order_relaxed);
}

static inline int64_t now_ns(const cb_hedge *h)
{
    return h->o.clock.now_ns(h->o.clock.ctx);
}

/* A call's shared record: the coordinator and its copies, under mu. */
typedef struct hcall {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    cb_hedge *h;
    cb_breaker *b;
    cb_hedge_call *call;
    int started, done, winner, last;
    int cancelled;
    int64_t delay_ns;
    int rc[CB_HEDGE_MAX_COPIES];
    cb_result res[CB_HEDGE_MAX_COPIES];
    pthread_t th[CB_HEDGE_MAX_COPIES];
    bool threaded[CB_HEDGE_MAX_COPIES];
    bool finished[CB_HEDGE_MAX_COPIES];
    struct hcopy { struct hcall *c; int i; } copy[CB_HEDGE_MAX_COPIES];
} hcall;

/* Marks every copy still running as cancelled (c->mu held). */
static void cancel_others(hcall *c, int winner)
{
    for (int i = 0; i < c->started; i++) {
        if (i == winner || c->finished[i])
            continue;
        atomic_store(&c->call->cancel[i], 1);
        c->cancelled++;
    }
}

/* Runs copy i: one cb_fire_key(), then records its outcome; the first success
 * wins and cancels the others. */
static void copy_run(hcall *c, int i)
{
    cb_hedge *h = c->h;
    int64_t start = now_ns(h);
    cb_result r = { 0 };
    int rc = cb_fire_key(c->b, c->call->key, c->call->args[i], &r);
    int64_t took = now_ns(h) - start;
    pthread_mutex_lock(&c->mu);
    c->rc[i] = rc;
    c->res[i] = r;
    c->finished[i] = true;
    c->done++;
    bool won = rc == CB_OK && c->winner < 0;
    if (won) {
        c->winner = i;
        cancel_others(c, i);
    } else if (c->winner < 0) {
        c->last = i;
    }
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
    if (!won)
        return;
    window_add(h, took);
    if (i > 0) {
        count(h, H_WINS);
        cb_hedge_event ev = { .kind = CB_HEV_WIN, .copy = i + 1, .delay_ns = c->delay_ns,
                              .breaker = c->b };
        emit(h, &ev);
    }
}

static void *copy_thread(void *p)
{
    struct hcopy *x = p;
    copy_run(x->c, x->i);
    return NULL;
}

/* Starts copy c->started on a thread (c->mu held). Returns false when no
 * thread could be started (nothing changed). */
static bool copy_start(hcall *c)
{
    int i = c->started;
    atomic_store(&c->call->cancel[i], 0);
    c->copy[i] = (struct hcopy){ c, i };
    if (pthread_create(&c->th[i], NULL, copy_thread, &c->copy[i]) != 0) {
        count(c->h, H_THREADS);
        return false;
    }
    c->threaded[i] = true;
    c->started++;
    count(c->h, H_COPIES);
    return true;
}

/* Waits on c->cv (made on CLOCK_MONOTONIC) until that clock passes ns from
 * now, or a copy signals (c->mu held). */
static void wait_for(hcall *c, int64_t ns)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t t = (int64_t)ts.tv_nsec + ns;
    ts.tv_sec += (time_t)(t / 1000000000LL);
    ts.tv_nsec = (long)(t % 1000000000LL);
    pthread_cond_timedwait(&c->cv, &c->mu, &ts);
}

/* A hedge is due (c->mu held): asks the budget and starts the copy.
 * Returns false when no further copy will be started for this call. */
static bool hedge_due(hcall *c, bool *budget_refused)
{
    cb_hedge *h = c->h;
    cb_hedge_event ev = { .copy = c->started + 1, .delay_ns = c->delay_ns, .breaker = c->b };
    if (!budget_take(h)) {
        count(h, H_BUDGET);
        *budget_refused = true;
        ev.kind = CB_HEV_BUDGET_REFUSED;
    } else if (copy_start(c)) {
        count(h, H_HEDGES);
        ev.kind = CB_HEV_HEDGE;
    } else {
        return false;
    }
    pthread_mutex_unlock(&c->mu);
    emit(h, &ev);
    pthread_mutex_lock(&c->mu);
    return ev.kind == CB_HEV_HEDGE;
}

/* The coordinator: starts copies as they fall due (the first delay counted
 * from first_ns, when the first copy was started) until one wins or every
 * started copy has failed, then joins them all. c->started >= 1. */
static void coordinate(hcall *c, int max, bool *budget_refused, int64_t first_ns)
{
    cb_hedge *h = c->h;
    int64_t next = first_ns + c->delay_ns;
    bool more = c->started < max;
    pthread_mutex_lock(&c->mu);
    while (c->winner < 0 && c->done < c->started) {
        if (!more) {
            pthread_cond_wait(&c->cv, &c->mu);
            continue;
        }
        int64_t now = now_ns(h);
        if (now < next) {
            wait_for(c, next - now);
            continue;
        }
        more = hedge_due(c, budget_refused) && c->started < max;
        next = now + c->delay_ns;
    }
    pthread_mutex_unlock(&c->mu);
    for (int i = 0; i < c->started; i++)
        if (c->threaded[i])
            pthread_join(c->th[i], NULL);
}

/* Hands every result but the returned one to discard. */
static void discard_others(cb_hedge *h, hcall *c, int kept)
{
    if (!h->o.discard)
        return;
    for (int i = 0; i < c->started; i++)
        if (i != kept)
            h->o.discard(&c->res[i], c->call->args[i], h->o.user);
}

/* Calls b through the policy. See cb_hedge.h. */
int cb_hedge_fire(cb_hedge *h, cb_breaker *b, cb_result *res, cb_hedge_call *call)
{
    cb_result local;
    if (!res)
        res = &local;
    memset(res, 0, sizeof *res);
    if (!h || !b || !call || !call->args || !call->cancel || call->ncopies < 1)
        return CB_EINVAL;
    call->copies = 0;
    call->winner = 0;
    call->cancelled = 0;
    call->budget_refused = false;
    count(h, H_CALLS);
    budget_call(h);
    int max = call->ncopies < h->o.max_copies ? call->ncopies : h->o.max_copies;
    hcall c = { .h = h, .b = b, .call = call, .winner = -1, .last = 0 };
    c.delay_ns = max > 1 ? cb_hedge_delay_ns(h) : 0;
    pthread_mutex_init(&c.mu, NULL);
    /* wait_for() reads CLOCK_MONOTONIC: the condition variable must wait on
     * it too (on the default, CLOCK_REALTIME, every wait would return at once
     * and the coordinator would spin through the delay) */
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c.cv, &ca);
    pthread_condattr_destroy(&ca);
    int64_t first_ns = now_ns(h);
    pthread_mutex_lock(&c.mu);
    bool threaded = max > 1 && copy_start(&c);
    pthread_mutex_unlock(&c.mu);
    if (threaded) {
        coordinate(&c, max, &call->budget_refused, first_ns);
    } else {
        /* no hedging, or no thread: the one copy runs here */
        atomic_store(&call->cancel[0], 0);
        c.started = 1;
        count(h, H_COPIES);
        copy_run(&c, 0);
    }
    pthread_cond_destroy(&c.cv);
    pthread_mutex_destroy(&c.mu);
    int kept = c.winner >= 0 ? c.winner : c.last;
    if (c.winner < 0)
        count(h, H_FAILED);
    for (int i = 0; i < c.cancelled; i++)
        count(h, H_CANCELLED);
    discard_others(h, &c, kept);
    *res = c.res[kept];
    call->copies = c.started;
    call->winner = kept;
    call->cancelled = c.cancelled;
    return c.rc[kept];
}

/* ---- statistics ------------------------------------------------------------------------ */

/* Fills st with h's counts. See cb_hedge.h. */
int cb_hedge_get_stats(cb_hedge *h, cb_hedge_stats *st)
{
    if (!h || !st)
        return CB_EINVAL;
    uint64_t n[H_NCOUNTERS];
    for (int i = 0; i < H_NCOUNTERS; i++)
        n[i] = atomic_load_explicit(&h->count[i], memory_order_relaxed);
    *st = (cb_hedge_stats){
        .calls = n[H_CALLS], .copies = n[H_COPIES], .hedges = n[H_HEDGES], .hedge_wins = n[H_WINS],
        .cancelled = n[H_CANCELLED], .budget_refused = n[H_BUDGET], .failed = n[H_FAILED],
        .thread_failures = n[H_THREADS], .budget_tokens = tokens_now(h),
        .delay_ms = (double)cb_hedge_delay_ns(h) / 1e6,
    };
    return CB_OK;
}
