/* stats.c -- counting: per-thread stripes of cumulative counters, the rolling
 * window of buckets, and latency samples for percentiles.
 *
 * Counters only ever grow. At each bucket boundary the sum of all stripes is
 * copied into a ring slot (start_cum); the window's counts are "sum now" minus
 * the copy taken at the start of the oldest bucket still in the window. A call
 * is counted as it happens: its fire in the bucket where it started, its
 * outcome in the bucket where it ended (cb_fire() rotates what fell due
 * during a call before counting it, as opossum's timer would have). Nothing
 * is lost to a concurrent rotation, and the fast path never writes a cache
 * line another thread writes. Reading the window at a time it was not rotated
 * to yet sees it as if it had been (view_epoch).
 *
 * Latency samples: each stripe keeps, per bucket slot, the last CB__SAMPLES
 * latencies (microseconds) recorded by its thread in that bucket. Percentiles
 * are exact while no thread records more than CB__SAMPLES calls in one bucket;
 * beyond that they are computed over the most recent CB__SAMPLES per thread and
 * bucket. Threads beyond CB__EXCL_STRIPES share CB__SHARED_STRIPES stripes.
 */
#include "cb_internal.h"

#include <stdlib.h>
#include <string.h>

static _Atomic int stripe_claims[CB__EXCL_STRIPES];
static _Atomic unsigned shared_next;
static _Thread_local int my_stripe = -1;
static pthread_key_t stripe_key;
static pthread_once_t stripe_once = PTHREAD_ONCE_INIT;

/* Thread exit: gives the exclusive stripe back for another thread. */
static void stripe_release(void *v)
{
    int idx = (int)(intptr_t)v - 1;
    /* a later destructor on this thread that fires a breaker must not touch
     * the stripe it just gave away: fall back to a shared one */
    my_stripe = CB__EXCL_STRIPES;
    if (idx >= 0 && idx < CB__EXCL_STRIPES)
        atomic_store_explicit(&stripe_claims[idx], 0, memory_order_release);
}

static void stripe_key_create(void)
{
    pthread_key_create(&stripe_key, stripe_release);
}

/* Claims an exclusive stripe for this thread, or picks a shared one. */
static int stripe_claim(void)
{
    pthread_once(&stripe_once, stripe_key_create);
    for (int i = 0; i < CB__EXCL_STRIPES; i++) {
        int expected = 0;
        if (atomic_compare_exchange_strong_explicit(&stripe_claims[i], &expected, 1,
                                                    memory_order_acq_rel, memory_order_relaxed)) {
            pthread_setspecific(stripe_key, (void *)(intptr_t)(i + 1));
            return my_stripe = i;
        }
    }
    unsigned n = atomic_fetch_add_explicit(&shared_next, 1, memory_order_relaxed);
    return my_stripe = CB__EXCL_STRIPES + (int)(n % CB__SHARED_STRIPES);
}

/* The calling thread's stripe index (claimed on first use). Can't fail. */
int cb__thread_stripe(void)
{
    int s = my_stripe;
    return CB__LIKELY(s >= 0) ? s : stripe_claim();
}

static inline void bump(_Atomic uint64_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

static size_t round64(size_t n) { return (n + 63) & ~(size_t)63; }

/* One 64-byte aligned block per stripe for its samples, so the sample
 * counters two threads write never share a cache line. */
static int stripe_samples_alloc(cb__stripe *s, int nbuckets)
{
    size_t epochs = round64((size_t)nbuckets * sizeof *s->sample_epoch);
    size_t counts = round64((size_t)nbuckets * sizeof *s->sample_n);
    size_t samples = round64((size_t)nbuckets * CB__SAMPLES * sizeof *s->samples);
    void *mem = NULL;
    if (posix_memalign(&mem, 64, epochs + counts + samples) != 0)
        return CB_ENOMEM;
    memset(mem, 0, epochs + counts + samples);
    s->sample_epoch = mem;
    s->sample_n = (void *)((char *)mem + epochs);
    s->samples = (void *)((char *)mem + epochs + counts);
    return CB_OK;
}

/* Initialises w for nbuckets buckets over window_ms, starting at now_ns.
 * Returns CB_OK or CB_ENOMEM (nothing left allocated). */
int cb__window_init(cb__window *w, int nbuckets, int64_t window_ms, int64_t now_ns)
{
    memset(w, 0, sizeof *w);
    w->nbuckets = nbuckets;
    w->interval_ns = window_ms * 1000000LL / nbuckets;
    w->origin_ns = now_ns;
    atomic_init(&w->epoch, 0);
    atomic_init(&w->next_rotate_ns, now_ns + w->interval_ns);
    w->start_cum = calloc((size_t)nbuckets, sizeof *w->start_cum);
    void *mem = NULL;
    if (!w->start_cum || posix_memalign(&mem, 64, CB__STRIPES * sizeof(cb__stripe)) != 0) {
        free(w->start_cum);
        return CB_ENOMEM;
    }
    memset(mem, 0, CB__STRIPES * sizeof(cb__stripe));
    w->stripes = mem;
    for (int i = 0; i < CB__STRIPES; i++) {
        cb__stripe *s = &w->stripes[i];
        s->shared = i >= CB__EXCL_STRIPES;
        pthread_mutex_init(&s->lock, NULL);
        if (stripe_samples_alloc(s, nbuckets) != CB_OK) {
            cb__window_free(w);
            return CB_ENOMEM;
        }
        for (int k = 0; k < nbuckets; k++)
            atomic_init(&s->sample_epoch[k], -1);
    }
    pthread_mutex_init(&w->lock, NULL);
    return CB_OK;
}

/* Frees what cb__window_init allocated. Safe on a partly built window. */
void cb__window_free(cb__window *w)
{
    if (w->stripes) {
        for (int i = 0; i < CB__STRIPES; i++) {
            free(w->stripes[i].sample_epoch); /* one block, see stripe_samples_alloc */
        }
        free(w->stripes);
    }
    free(w->start_cum);
    w->stripes = NULL;
    w->start_cum = NULL;
}

/* Adds n to counter k on the calling thread's stripe. Can't fail. */
void cb__count(cb_breaker *b, int k, uint64_t n)
{
    cb__stripe *s = &b->win.stripes[cb__thread_stripe()];
    if (CB__UNLIKELY(s->shared)) {
        pthread_mutex_lock(&s->lock);
        bump(&s->c[k], n);
        pthread_mutex_unlock(&s->lock);
        return;
    }
    bump(&s->c[k], n);
}

static inline void record_sample(cb__stripe *s, int nbuckets, int64_t epoch, int64_t latency_ns)
{
    int slot = (int)(epoch % nbuckets);
    if (atomic_load_explicit(&s->sample_epoch[slot], memory_order_relaxed) != epoch) {
        atomic_store_explicit(&s->sample_n[slot], 0, memory_order_relaxed);
        atomic_store_explicit(&s->sample_epoch[slot], epoch, memory_order_release);
    }
    uint32_t i = atomic_load_explicit(&s->sample_n[slot], memory_order_relaxed);
    int64_t us = latency_ns / 1000;
    uint32_t v = us < 0 ? 0 : us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
    atomic_store_explicit(&s->samples[(size_t)slot * CB__SAMPLES + i % CB__SAMPLES], v,
                          memory_order_relaxed);
    atomic_store_explicit(&s->sample_n[slot], i + 1, memory_order_release);
}

/* Counts one finished call under counter k with its latency. Can't fail. */
void cb__count_completion(cb_breaker *b, int k, int64_t latency_ns, bool slow)
{
    cb__stripe *s = &b->win.stripes[cb__thread_stripe()];
    bool shared = s->shared;
    if (CB__UNLIKELY(shared))
        pthread_mutex_lock(&s->lock);
    bump(&s->c[k], 1);
    if (slow)
        bump(&s->c[C_SLOW], 1);
    if (b->o.rolling_percentiles_enabled)
        record_sample(s, b->win.nbuckets,
                      atomic_load_explicit(&b->win.epoch, memory_order_relaxed), latency_ns);
    if (CB__UNLIKELY(shared))
        pthread_mutex_unlock(&s->lock);
}

/* Sums every stripe's counters into out. */
void cb__window_sum_now(cb__window *w, uint64_t out[C_NCOUNTERS])
{
    memset(out, 0, sizeof(uint64_t) * C_NCOUNTERS);
    for (int i = 0; i < CB__STRIPES; i++)
        for (int k = 0; k < C_NCOUNTERS; k++)
            out[k] += atomic_load_explicit(&w->stripes[i].c[k], memory_order_relaxed);
}

static int slot_of(const cb__window *w, int64_t epoch)
{
    int64_t m = epoch % w->nbuckets;
    return (int)(m < 0 ? m + w->nbuckets : m);
}

/* Moves the window to now_ns's bucket. Returns true when it moved. */
bool cb__window_rotate(cb__window *w, int64_t now_ns)
{
    int64_t e = (now_ns - w->origin_ns) / w->interval_ns;
    pthread_mutex_lock(&w->lock);
    int64_t cur = atomic_load_explicit(&w->epoch, memory_order_relaxed);
    if (e <= cur) {
        pthread_mutex_unlock(&w->lock);
        return false;
    }
    uint64_t cum[C_NCOUNTERS];
    cb__window_sum_now(w, cum);
    int64_t from = cur + 1 > e - w->nbuckets + 1 ? cur + 1 : e - w->nbuckets + 1;
    for (int64_t k = from; k <= e; k++)
        memcpy(w->start_cum[slot_of(w, k)], cum, sizeof cum);
    atomic_store_explicit(&w->epoch, e, memory_order_release);
    atomic_store_explicit(&w->next_rotate_ns, w->origin_ns + (e + 1) * w->interval_ns,
                          memory_order_release);
    pthread_mutex_unlock(&w->lock);
    return true;
}

/* The epoch the window is viewed at: now_ns's, or the window's own epoch cur
 * when now_ns is not past it (a window not yet rotated to now is seen as it
 * will be once rotated, without rotating it). */
static int64_t view_epoch(const cb__window *w, int64_t cur, int64_t now_ns)
{
    if (now_ns <= w->origin_ns)
        return cur;
    int64_t e = (now_ns - w->origin_ns) / w->interval_ns;
    return e > cur ? e : cur;
}

/* Raw counts over the window as it stands at now_ns (win) and since creation
 * (total). Buckets that fell due but were not rotated yet count as empty, so
 * a breaker nobody ticks reads as one that was ticked. Rotates nothing. */
void cb__window_raw(cb__window *w, int64_t now_ns, uint64_t win[C_NCOUNTERS],
                    uint64_t total[C_NCOUNTERS])
{
    pthread_mutex_lock(&w->lock);
    cb__window_sum_now(w, total);
    int64_t cur = atomic_load_explicit(&w->epoch, memory_order_relaxed);
    int64_t oldest = view_epoch(w, cur, now_ns) - w->nbuckets + 1;
    const uint64_t *start = oldest <= cur ? w->start_cum[slot_of(w, oldest)] : total;
    for (int k = 0; k < C_NCOUNTERS; k++)
        win[k] = total[k] > start[k] ? total[k] - start[k] : 0;
    pthread_mutex_unlock(&w->lock);
}

/* Public counts from raw ones. */
void cb__raw_to_counts(const uint64_t r[C_NCOUNTERS], cb_counts *c)
{
    c->fires = r[C_STARTED] + r[C_REJECTS] + r[C_SEMAPHORE] + r[C_CACHE_HITS] + r[C_COALESCE_HITS];
    c->successes = r[C_SUCCESSES];
    c->failures = r[C_FAILED] + r[C_TIMEOUTS] + r[C_SEMAPHORE];
    c->timeouts = r[C_TIMEOUTS];
    c->rejects = r[C_REJECTS];
    c->fallbacks = r[C_FALLBACKS];
    c->fallback_failures = r[C_FALLBACK_FAILURES];
    c->semaphore_rejections = r[C_SEMAPHORE];
    c->cache_hits = r[C_CACHE_HITS];
    c->cache_misses = r[C_CACHE_MISSES];
    c->coalesce_hits = r[C_COALESCE_HITS];
    c->coalesce_misses = r[C_COALESCE_MISSES];
    c->slow_calls = r[C_SLOW];
}

static uint64_t sub0(uint64_t a, uint64_t b) { return a > b ? a - b : 0; }

/* Raw counts from public ones (the inverse of cb__raw_to_counts, clamped at 0). */
void cb__counts_to_raw(const cb_counts *c, uint64_t r[C_NCOUNTERS])
{
    r[C_SEMAPHORE] = c->semaphore_rejections;
    r[C_REJECTS] = c->rejects;
    r[C_CACHE_HITS] = c->cache_hits;
    r[C_COALESCE_HITS] = c->coalesce_hits;
    r[C_STARTED] = sub0(c->fires, c->rejects + c->semaphore_rejections + c->cache_hits +
                                      c->coalesce_hits);
    r[C_SUCCESSES] = c->successes;
    r[C_TIMEOUTS] = c->timeouts;
    r[C_FAILED] = sub0(c->failures, c->timeouts + c->semaphore_rejections);
    r[C_FALLBACKS] = c->fallbacks;
    r[C_FALLBACK_FAILURES] = c->fallback_failures;
    r[C_CACHE_MISSES] = c->cache_misses;
    r[C_COALESCE_MISSES] = c->coalesce_misses;
    r[C_SLOW] = c->slow_calls;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* Copies the samples of the window viewed at now_ns into a malloc'd array;
 * *n gets their number. */
static uint32_t *collect_samples(cb__window *w, int64_t now_ns, size_t *n)
{
    int64_t e = view_epoch(w, atomic_load_explicit(&w->epoch, memory_order_acquire), now_ns);
    uint32_t *all = malloc((size_t)CB__STRIPES * w->nbuckets * CB__SAMPLES * sizeof *all);
    *n = 0;
    if (!all)
        return NULL;
    for (int i = 0; i < CB__STRIPES; i++) {
        cb__stripe *s = &w->stripes[i];
        for (int slot = 0; slot < w->nbuckets; slot++) {
            int64_t se = atomic_load_explicit(&s->sample_epoch[slot], memory_order_acquire);
            if (se < 0 || se <= e - w->nbuckets || se > e)
                continue;
            uint32_t cnt = atomic_load_explicit(&s->sample_n[slot], memory_order_acquire);
            if (cnt > CB__SAMPLES)
                cnt = CB__SAMPLES;
            for (uint32_t j = 0; j < cnt; j++)
                all[(*n)++] = atomic_load_explicit(&s->samples[(size_t)slot * CB__SAMPLES + j],
                                                   memory_order_relaxed);
        }
    }
    return all;
}

/* Latency mean and percentiles (ms) over the window, with opossum's formula:
 * sorted latencies; p = 0 -> the first, else element ceil(p * n) - 1; 0 when
 * there are none; -1 everywhere when disabled. */
void cb__window_latency(cb__window *w, int64_t now_ns, bool enabled, double *mean,
                        double pct[CB_PERCENTILES])
{
    if (!enabled) {
        *mean = -1;
        for (int i = 0; i < CB_PERCENTILES; i++)
            pct[i] = -1;
        return;
    }
    size_t n = 0;
    uint32_t *all = collect_samples(w, now_ns, &n);
    qsort(all, n, sizeof *all, cmp_u32);
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += all[i];
    *mean = n ? sum / (double)n / 1000.0 : 0;
    for (int i = 0; i < CB_PERCENTILES; i++) {
        double p = cb_percentile_points[i];
        size_t idx = p == 0 ? 1 : (size_t)__builtin_ceil(p * (double)n);
        pct[i] = (n && idx >= 1 && idx <= n) ? all[idx - 1] / 1000.0 : 0;
    }
    free(all);
}

/* Raw counts per bucket, oldest first (the newest is the one being filled). */
void cb__window_buckets(cb__window *w, uint64_t (*out)[C_NCOUNTERS])
{
    pthread_mutex_lock(&w->lock);
    uint64_t now[C_NCOUNTERS];
    cb__window_sum_now(w, now);
    int64_t e = atomic_load_explicit(&w->epoch, memory_order_relaxed);
    for (int i = 0; i < w->nbuckets; i++) {
        int64_t k = e - w->nbuckets + 1 + i;
        const uint64_t *start = w->start_cum[slot_of(w, k)];
        const uint64_t *end = i == w->nbuckets - 1 ? now : w->start_cum[slot_of(w, k + 1)];
        for (int c = 0; c < C_NCOUNTERS; c++)
            out[i][c] = sub0(end[c], start[c]);
    }
    pthread_mutex_unlock(&w->lock);
}

/* Seeds a fresh window with imported totals and buckets (oldest first). */
void cb__window_import(cb__window *w, const uint64_t total[C_NCOUNTERS],
                       uint64_t (*buckets)[C_NCOUNTERS], int nbuckets)
{
    pthread_mutex_lock(&w->lock);
    for (int k = 0; k < C_NCOUNTERS; k++)
        atomic_store_explicit(&w->stripes[CB__BASE_STRIPE].c[k], total[k], memory_order_relaxed);
    int64_t e = atomic_load_explicit(&w->epoch, memory_order_relaxed);
    uint64_t start[C_NCOUNTERS];
    memcpy(start, total, sizeof start);
    for (int i = 0; i < w->nbuckets; i++) {
        int bi = nbuckets - 1 - i; /* newest first */
        if (buckets && bi >= 0)
            for (int k = 0; k < C_NCOUNTERS; k++)
                start[k] = sub0(start[k], buckets[bi][k]);
        memcpy(w->start_cum[slot_of(w, e - i)], start, sizeof start);
    }
    pthread_mutex_unlock(&w->lock);
}

/* Calls admitted and not yet finished, summed over the threads' stripes. */
int cb__in_flight(cb__window *w)
{
    int64_t n = 0;
    for (int i = 0; i < CB__BASE_STRIPE; i++) {
        cb__stripe *s = &w->stripes[i];
        n += (int64_t)atomic_load_explicit(&s->c[C_STARTED], memory_order_relaxed);
        n -= (int64_t)atomic_load_explicit(&s->c[C_SUCCESSES], memory_order_relaxed);
        n -= (int64_t)atomic_load_explicit(&s->c[C_FAILED], memory_order_relaxed);
        n -= (int64_t)atomic_load_explicit(&s->c[C_TIMEOUTS], memory_order_relaxed);
    }
    return n > 0 ? (int)n : 0;
}
