/* retry.c -- the retry policy of cb_retry.h: attempts through a breaker,
 * full-jitter back-off, gRPC's token-bucket budget, a per-call deadline.
 *
 * The policy sits above the breaker and uses only its public API: each
 * attempt is one cb_fire_key(). Its shared state is small on purpose:
 *  - the budget is one atomic integer of milli-tokens, changed by
 *    compare-and-swap (clamped to [0, max]), so the success path never locks;
 *    a full budget (the common case) costs one load;
 *  - the counts are atomics;
 *  - the random generator (xorshift64) is behind a mutex, taken only when a
 *    retry is scheduled;
 *  - listeners are a copy-on-write list, as the breaker's (events.c).
 * The decision after an attempt reads as the table at the top of cb_retry.h,
 * in next_step() below.
 */
#include "cb_retry.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct cb__retry_listener {
    int id;
    uint32_t mask;
    cb_retry_listener_fn fn;
    void *ctx;
} cb__retry_listener;

typedef struct cb__retry_listener_set {
    _Atomic int refs;
    int n;
    cb__retry_listener items[];
} cb__retry_listener_set;

enum { R_CALLS, R_ATTEMPTS, R_RETRIES, R_EXHAUSTED, R_BUDGET, R_DEADLINE, R_DEADLINE_FIRST,
       R_REFUSED, R_NCOUNTERS };

struct cb_retry {
    cb_retry_options o;            /* own copy; o.name points at name */
    char *name;
    int64_t base_ns, cap_ns;
    int64_t max_milli;             /* budget_max_tokens * 1000; 0 = no budget */
    int64_t ratio_milli;           /* budget_token_ratio * 1000, rounded */
    _Atomic int64_t tokens_milli;
    _Atomic uint64_t count[R_NCOUNTERS];

    pthread_mutex_t rng_lock;
    uint64_t rng;

    pthread_mutex_t listeners_lock;
    cb__retry_listener_set *listeners;
    _Atomic uint32_t listen_mask;
    int next_listener_id;
};

/* ---- defaults, predicate, sleep ------------------------------------------ */

/* Fills o with the defaults of cb_retry.h. Can't fail. */
void cb_retry_options_init(cb_retry_options *o)
{
    memset(o, 0, sizeof *o);
    o->name = "retry";
    o->max_attempts = 3;
    o->base_ms = 100;
    o->cap_ms = 1000;
    o->retryable = cb_retry_default_retryable;
    o->budget_max_tokens = 10;
    o->budget_token_ratio = 0.1;
    o->clock = cb_clock_system();
    o->sleep = cb_retry_sleep_system;
}

/* Timeouts, 502/503/504, refused or reset connections. Can't fail. */
bool cb_retry_default_retryable(int rc, int action_rc, void *arg, void *user)
{
    (void)arg;
    (void)user;
    if (rc == CB_ETIMEDOUT)
        return true;
    if (rc != CB_EFAILED)
        return false;
    switch (action_rc) {
    case 502: case 503: case 504:
    case -ECONNREFUSED: case -ECONNRESET: case -ETIMEDOUT:
        return true;
    default:
        return false;
    }
}

/* nanosleep() for ns, resumed after a signal with what remains. */
void cb_retry_sleep_system(int64_t ns, void *ctx)
{
    (void)ctx;
    if (ns <= 0)
        return;
    struct timespec ts = { (time_t)(ns / 1000000000LL), (long)(ns % 1000000000LL) };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Advances the manual clock ctx by ns instead of sleeping. */
void cb_retry_sleep_manual(int64_t ns, void *ctx)
{
    cb_manual_clock_advance_ns(ctx, ns);
}

/* ---- lifecycle ------------------------------------------------------------ */

static int options_validate(const cb_retry_options *o)
{
    if (!o || o->max_attempts < 1 || o->max_attempts > 100 || o->base_ms < 0 || o->cap_ms < 0)
        return CB_EINVAL;
    if (o->budget_max_tokens < 0 || o->budget_max_tokens > 1000)
        return CB_EINVAL;
    /* written so that NaN fails too */
    if (o->budget_max_tokens > 0 &&
        !(o->budget_token_ratio >= 0.001 && o->budget_token_ratio <= 1000.0))
        return CB_EINVAL;
    if (!o->retryable || !o->clock.now_ns || !o->sleep)
        return CB_EINVAL;
    /* ms -> ns must not overflow: ten years is plenty */
    if (o->base_ms > 315360000000LL || o->cap_ms > 315360000000LL)
        return CB_EINVAL;
    return CB_OK;
}

/* Creates a policy from validated options. See cb_retry.h. */
int cb_retry_create(const cb_retry_options *o, cb_retry **out)
{
    if (!out || options_validate(o) != CB_OK)
        return CB_EINVAL;
    cb_retry *r = calloc(1, sizeof *r);
    char *name = strdup(o->name ? o->name : "retry");
    if (!r || !name) {
        free(r);
        free(name);
        return CB_ENOMEM;
    }
    r->o = *o;
    r->name = name;
    r->o.name = name;
    r->base_ns = o->base_ms * 1000000LL;
    r->cap_ns = o->cap_ms * 1000000LL;
    r->max_milli = (int64_t)o->budget_max_tokens * 1000;
    r->ratio_milli = r->max_milli ? (int64_t)(o->budget_token_ratio * 1000.0 + 0.5) : 0;
    atomic_init(&r->tokens_milli, r->max_milli);
    for (int i = 0; i < R_NCOUNTERS; i++)
        atomic_init(&r->count[i], 0);
    atomic_init(&r->listen_mask, 0);
    pthread_mutex_init(&r->rng_lock, NULL);
    pthread_mutex_init(&r->listeners_lock, NULL);
    int64_t now = o->clock.now_ns(o->clock.ctx);
    r->rng = o->seed ? o->seed : (uint64_t)now ^ (uint64_t)(uintptr_t)r;
    if (!r->rng)
        r->rng = 0x9E3779B97F4A7C15ull;
    *out = r;
    return CB_OK;
}

static void set_release(cb__retry_listener_set *s)
{
    if (s && atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1)
        free(s);
}

/* Frees r and its listeners. NULL is a no-op. */
void cb_retry_destroy(cb_retry *r)
{
    if (!r)
        return;
    set_release(r->listeners);
    pthread_mutex_destroy(&r->rng_lock);
    pthread_mutex_destroy(&r->listeners_lock);
    free(r->name);
    free(r);
}

/* r's own copy of its options. */
const cb_retry_options *cb_retry_get_options(const cb_retry *r)
{
    return r ? &r->o : NULL;
}

/* ---- budget ---------------------------------------------------------------- */

/* A successful attempt: tokens += ratio, at most max. */
static void budget_success(cb_retry *r)
{
    int64_t t = atomic_load_explicit(&r->tokens_milli, memory_order_relaxed);
    while (t < r->max_milli) {
        int64_t n = t + r->ratio_milli;
        if (n > r->max_milli)
            n = r->max_milli;
        if (atomic_compare_exchange_weak_explicit(&r->tokens_milli, &t, n, memory_order_relaxed,
                                                  memory_order_relaxed))
            return;
    }
}

/* A retryable failed attempt: tokens -= 1000, at least 0. Returns the tokens
 * after it (0 without a budget). */
static int64_t budget_failure(cb_retry *r)
{
    if (!r->max_milli)
        return 0;
    int64_t t = atomic_load_explicit(&r->tokens_milli, memory_order_relaxed);
    for (;;) {
        int64_t n = t > 1000 ? t - 1000 : 0;
        if (atomic_compare_exchange_weak_explicit(&r->tokens_milli, &t, n, memory_order_relaxed,
                                                  memory_order_relaxed))
            return n;
    }
}

/* True when a budget with tokens (after the failure's cost) allows a retry. */
static bool budget_allows(const cb_retry *r, int64_t tokens)
{
    return r->max_milli == 0 || tokens > r->max_milli / 2;
}

/* ---- back-off ----------------------------------------------------------------- */

/* min(cap, base * 2^(n-1)) in ns, without overflow. */
static int64_t backoff_bound_ns(const cb_retry *r, int n)
{
    int shift = n - 1;
    if (r->base_ns == 0)
        return 0;
    if (shift >= 62 || r->base_ns > (r->cap_ns >> shift))
        return r->cap_ns;
    return r->base_ns << shift;
}

/* A uniformly random back-off in [0, bound] ns for retry n (full jitter). */
static int64_t backoff_draw_ns(cb_retry *r, int n)
{
    int64_t bound = backoff_bound_ns(r, n);
    if (bound <= 0)
        return 0;
    pthread_mutex_lock(&r->rng_lock);
    uint64_t x = r->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    r->rng = x;
    pthread_mutex_unlock(&r->rng_lock);
    /* multiply-shift maps x onto [0, bound] without modulo's bias */
    return (int64_t)(((unsigned __int128)x * (uint64_t)(bound + 1)) >> 64);
}

/* ---- events ----------------------------------------------------------------------- */

static cb__retry_listener_set *set_acquire(cb_retry *r)
{
    pthread_mutex_lock(&r->listeners_lock);
    cb__retry_listener_set *s = r->listeners;
    if (s)
        atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    pthread_mutex_unlock(&r->listeners_lock);
    return s;
}

static void emit(cb_retry *r, const cb_retry_event *ev)
{
    if (!(atomic_load_explicit(&r->listen_mask, memory_order_relaxed) & CB_REV_MASK(ev->kind)))
        return;
    cb__retry_listener_set *s = set_acquire(r);
    for (int i = 0; s && i < s->n; i++)
        if (s->items[i].mask & CB_REV_MASK(ev->kind))
            s->items[i].fn(r, ev, s->items[i].ctx);
    set_release(s);
}

static uint32_t mask_of(const cb__retry_listener_set *s)
{
    uint32_t m = 0;
    for (int i = 0; s && i < s->n; i++)
        m |= s->items[i].mask;
    return m;
}

/* Publishes s as the current list (lock held); drops the old one. */
static void set_publish(cb_retry *r, cb__retry_listener_set *s)
{
    cb__retry_listener_set *old = r->listeners;
    r->listeners = s;
    atomic_store_explicit(&r->listen_mask, mask_of(s), memory_order_release);
    set_release(old);
}

static cb__retry_listener_set *set_copy(const cb__retry_listener_set *old, int extra)
{
    int n = old ? old->n : 0;
    cb__retry_listener_set *s = malloc(sizeof *s + (size_t)(n + extra) * sizeof(cb__retry_listener));
    if (!s)
        return NULL;
    atomic_init(&s->refs, 1);
    s->n = n;
    if (n)
        memcpy(s->items, old->items, (size_t)n * sizeof(cb__retry_listener));
    return s;
}

/* Registers fn for the kinds in mask. See cb_retry.h. */
int cb_retry_on(cb_retry *r, uint32_t mask, cb_retry_listener_fn fn, void *ctx)
{
    if (!r || !fn || (mask & CB_REV_ALL) == 0)
        return CB_EINVAL;
    pthread_mutex_lock(&r->listeners_lock);
    cb__retry_listener_set *s = set_copy(r->listeners, 1);
    if (!s) {
        pthread_mutex_unlock(&r->listeners_lock);
        return CB_ENOMEM;
    }
    int id = ++r->next_listener_id;
    s->items[s->n++] = (cb__retry_listener){ id, mask & CB_REV_ALL, fn, ctx };
    set_publish(r, s);
    pthread_mutex_unlock(&r->listeners_lock);
    return id;
}

/* Removes listener id. See cb_retry.h. */
int cb_retry_off(cb_retry *r, int id)
{
    if (!r)
        return CB_EINVAL;
    pthread_mutex_lock(&r->listeners_lock);
    cb__retry_listener_set *old = r->listeners;
    int at = -1;
    for (int i = 0; old && i < old->n; i++)
        if (old->items[i].id == id)
            at = i;
    cb__retry_listener_set *s = at < 0 ? NULL : set_copy(old, 0);
    if (at >= 0 && s) {
        memmove(&s->items[at], &s->items[at + 1],
                (size_t)(s->n - at - 1) * sizeof(cb__retry_listener));
        s->n--;
        set_publish(r, s);
    }
    pthread_mutex_unlock(&r->listeners_lock);
    return at < 0 ? CB_ENOTFOUND : s ? CB_OK : CB_ENOMEM;
}

static const char *const event_names[CB_REV_COUNT] = {
    "retry", "retry-exhausted", "budget-exhausted", "deadline",
};

/* The event kind's name; "unknown" outside the enum. */
const char *cb_retry_event_name(cb_retry_event_kind k)
{
    if ((unsigned)k < CB_REV_COUNT)
        return event_names[k];
    return "unknown";
}

/* ---- firing ----------------------------------------------------------------------- */

static inline int64_t now_ns(const cb_retry *r)
{
    return r->o.clock.now_ns(r->o.clock.ctx);
}

static inline void count(cb_retry *r, int k)
{
    atomic_fetch_add_explicit(&r->count[k], 1, memory_order_relaxed);
}

static double tokens_now(cb_retry *r)
{
    return (double)atomic_load_explicit(&r->tokens_milli, memory_order_relaxed) / 1000.0;
}

/* The call's deadline on the policy's clock; INT64_MAX for none. */
static int64_t deadline_of(const cb_retry *r, const cb_retry_call *call)
{
    int64_t d = INT64_MAX;
    if (!call)
        return d;
    if (call->deadline_ns > 0)
        d = call->deadline_ns;
    if (call->timeout_ms > 0) {
        int64_t now = now_ns(r);
        int64_t rel = call->timeout_ms > (INT64_MAX - now) / 1000000LL
                          ? INT64_MAX : now + call->timeout_ms * 1000000LL;
        if (rel < d)
            d = rel;
    }
    return d;
}

/* Stops the call for stop, emitting its event (counted in counter k). */
static cb_retry_stop stop_with(cb_retry *r, cb_retry_stop stop, int k, cb_retry_event *ev)
{
    count(r, k);
    ev->time_ns = now_ns(r);
    emit(r, ev);
    return stop;
}

/* What follows an attempt that ended in rc: CB_RETRY_DONE etc. to stop, or
 * -1 to retry after *delay_ns. attempt is the number of the attempt made. */
static int next_step(cb_retry *r, cb_breaker *b, void *arg, int rc, const cb_result *res,
                     int attempt, int64_t deadline, int64_t *delay_ns)
{
    if (rc == CB_OK) {
        budget_success(r);
        return CB_RETRY_DONE;
    }
    if (rc != CB_ETIMEDOUT && rc != CB_EFAILED) {
        count(r, R_REFUSED);
        return CB_RETRY_REFUSED;
    }
    int action_rc = rc == CB_EFAILED ? res->action_rc : 0;
    if (!r->o.retryable(rc, action_rc, arg, r->o.user))
        return CB_RETRY_DONE;
    int64_t tokens = budget_failure(r);
    cb_retry_event ev = {
        .attempt = attempt, .rc = rc, .action_rc = action_rc,
        .budget_tokens = (double)tokens / 1000.0, .breaker = b, .arg = arg,
    };
    if (attempt >= r->o.max_attempts) {
        ev.kind = CB_REV_RETRY_EXHAUSTED;
        return stop_with(r, CB_RETRY_ATTEMPTS, R_EXHAUSTED, &ev);
    }
    if (!budget_allows(r, tokens)) {
        ev.kind = CB_REV_BUDGET_EXHAUSTED;
        return stop_with(r, CB_RETRY_BUDGET, R_BUDGET, &ev);
    }
    int64_t delay = backoff_draw_ns(r, attempt);
    int64_t now = now_ns(r);
    if (deadline != INT64_MAX && (delay >= deadline - now)) {
        ev.kind = CB_REV_DEADLINE;
        return stop_with(r, CB_RETRY_DEADLINE, R_DEADLINE, &ev);
    }
    ev.kind = CB_REV_RETRY;
    ev.time_ns = now;
    ev.attempt = attempt + 1;
    ev.delay_ns = delay;
    emit(r, &ev);
    *delay_ns = delay;
    return -1;
}

/* Calls b with arg, retrying as the policy says. See cb_retry.h. */
int cb_retry_fire(cb_retry *r, cb_breaker *b, void *arg, cb_result *res, cb_retry_call *call)
{
    cb_result local;
    if (!res)
        res = &local;
    memset(res, 0, sizeof *res);
    if (call) {
        call->attempts = 0;
        call->stop = CB_RETRY_DONE;
    }
    if (!r || !b || (call && call->timeout_ms < 0))
        return CB_EINVAL;
    count(r, R_CALLS);
    int64_t deadline = deadline_of(r, call);
    const char *key = call ? call->key : NULL;
    int rc = CB_ETIMEDOUT;
    int attempt = 0;
    int stop;
    for (;;) {
        if (deadline != INT64_MAX && now_ns(r) >= deadline) {
            /* only a sleep that overran (or a deadline passed on arrival) gets here */
            cb_retry_event ev = {
                .kind = CB_REV_DEADLINE, .attempt = attempt, .rc = rc,
                .action_rc = rc == CB_EFAILED ? res->action_rc : 0,
                .budget_tokens = tokens_now(r), .breaker = b, .arg = arg,
            };
            if (attempt == 0)
                count(r, R_DEADLINE_FIRST);
            stop = stop_with(r, CB_RETRY_DEADLINE, R_DEADLINE, &ev);
            break;
        }
        if (attempt > 0) {
            if (r->o.discard && res->value)
                r->o.discard(res->value, r->o.user);
            count(r, R_RETRIES);
        }
        attempt++;
        count(r, R_ATTEMPTS);
        rc = cb_fire_key(b, key, arg, res);
        int64_t delay = 0;
        stop = next_step(r, b, arg, rc, res, attempt, deadline, &delay);
        if (stop >= 0)
            break;
        if (delay > 0)
            r->o.sleep(delay, r->o.sleep_ctx);
    }
    if (call) {
        call->attempts = attempt;
        call->stop = (cb_retry_stop)stop;
    }
    return rc;
}

/* ---- statistics ----------------------------------------------------------------- */

/* Fills st with r's counts. See cb_retry.h. */
int cb_retry_get_stats(cb_retry *r, cb_retry_stats *st)
{
    if (!r || !st)
        return CB_EINVAL;
    uint64_t c[R_NCOUNTERS];
    for (int i = 0; i < R_NCOUNTERS; i++)
        c[i] = atomic_load_explicit(&r->count[i], memory_order_relaxed);
    *st = (cb_retry_stats){
        .calls = c[R_CALLS], .attempts = c[R_ATTEMPTS], .retries = c[R_RETRIES],
        .retries_exhausted = c[R_EXHAUSTED], .budget_exhausted = c[R_BUDGET],
        .deadline_exceeded = c[R_DEADLINE], .deadline_before_first = c[R_DEADLINE_FIRST],
        .refused = c[R_REFUSED], .budget_tokens = tokens_now(r),
        .budget_max_tokens = r->o.budget_max_tokens,
    };
    return CB_OK;
}
