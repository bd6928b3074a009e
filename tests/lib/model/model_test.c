/* model_test.c -- the breaker, checked step by step against an executable model
 * of its semantics (opossum's, with the differences common/README.md lists).
 *
 * The model below is written from the documented behaviour, not from
 * common/src: a state (closed, open, half-open), a window of buckets rotated
 * by time alone, opossum's arithmetic (failures / fires * 100 > threshold once
 * fires >= volume, failures / 0 fires opening), warm-up, the reset timer and
 * its back-off, half-open trials tied to the period that admitted them (one,
 * as opossum, or several with a success threshold), capacity, a one-key
 * cache, enable/disable, forced open/closed, timeouts and latency samples. A
 * seeded generator draws a configuration and a sequence of steps (clock moves
 * of every size, calls of random duration and outcome, calls fired from
 * inside a running call so that several are in flight, manual open/close,
 * enable/disable, force),
 * and runs it on a manual clock against libcb twice: with cb_tick() after
 * every clock move (also inside calls, as a ticker would) and with no tick at
 * all (lazy). After every step it compares the state, the open timer, the
 * window's counts, the latency mean and percentiles, and each call's return
 * code.
 *
 * A mismatch is shrunk (steps dropped, nesting cut, durations shortened while
 * it still fails) and printed as an entry for regressions[] below, ready to
 * paste, with the seed that replays the sequence it came from.
 *
 * Environment: MODEL_SEED (base seed, default from the clock; printed),
 * MODEL_SEQS (sequences, default 3000), MODEL_REPLAY (one sequence's seed).
 * Exit 0 when everything agrees, 1 on a mismatch.
 */
#include "cb.h"

#include "model_rng.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_STEPS   80
#define MAX_CHAIN   3     /* a call and the calls fired from inside it */
#define MAX_BUCKETS 10
#define MAX_LAT     512
#define RC_FAIL     7     /* counts as a failure */
#define RC_FILTERED 9     /* the error filter lets it pass */

/* ---- scenarios ------------------------------------------------------------ */

typedef struct config {
    int buckets;
    int64_t interval_ms;  /* window = buckets * interval */
    int64_t timeout_ms;   /* 0 = none */
    int64_t reset_ms;
    int threshold;        /* error % */
    int volume;
    int capacity;
    bool warm_up, enabled, cache, fallback;
    int64_t cache_ttl_ms;
    /* beyond opossum: several trials, back-off (0 = none, else doubling up to
     * this cap) */
    int trials, successes_to_close;
    int64_t backoff_cap_ms;
} config;

enum { S_ADVANCE, S_FIRE, S_OPEN, S_CLOSE, S_ENABLE, S_DISABLE, S_FORCE_OPEN, S_FORCE_CLOSED,
       S_FORCE_NONE };

/* One call of a chain: it lasts before_ms, fires the next call of the chain
 * (if any) from inside, lasts after_ms more, then returns rc. */
typedef struct link {
    int rc;               /* 0, RC_FAIL, RC_FILTERED */
    int64_t before_ms, after_ms;
} link;

typedef struct step {
    int kind;
    int64_t ms;           /* S_ADVANCE */
    int n;                /* S_FIRE: calls in the chain */
    link c[MAX_CHAIN];
} step;

typedef struct scenario {
    const char *name;
    config cfg;
    int nsteps;
    step s[MAX_STEPS];
} scenario;

/* ---- the model ------------------------------------------------------------ */

typedef struct mbucket {
    long fires, successes, failures, timeouts, rejects, fallbacks, semaphore, hits, misses;
    int nlat;
    int64_t lat[MAX_LAT];
} mbucket;

enum { M_CLOSED, M_OPEN, M_HALF_OPEN };

/* What the sequences exercised, printed at the end so a run that checks
 * nothing interesting shows it. */
static struct {
    long steps, calls, opens, half_opens, trial_closes, timeouts, semaphore, rejects, hits,
        disabled_calls, long_calls;
} seen;

typedef struct model {
    config c;
    int64_t now, origin;     /* ms */
    int64_t epoch;
    mbucket b[MAX_BUCKETS];  /* epoch % buckets */
    int core;
    bool disabled;
    uint64_t gen;
    int64_t open_until;
    int trial_admitted;      /* trials admitted in this half-open period */
    int trial_successes;     /* and how many of them succeeded */
    int backoff_step;        /* opens since the last close */
    int force;               /* 0, S_FORCE_OPEN, S_FORCE_CLOSED */
    int trials_in_flight;    /* of any period */
    int in_flight;           /* capacity slots taken */
    int64_t warm_until;
    bool cached;
    int64_t cache_expires;   /* 0 = never */
} model;

static mbucket *cur(model *m) { return &m->b[m->epoch % m->c.buckets]; }

/* Time passes: the reset timer fires, buckets rotate. */
static void m_advance_to(model *m, int64_t t)
{
    m->now = t;
    if (m->core == M_OPEN && t >= m->open_until) {
        seen.half_opens++;
        m->core = M_HALF_OPEN;
        m->gen++;
        m->trial_admitted = m->trial_successes = 0;
    }
    int64_t e = (t - m->origin) / m->c.interval_ms;
    for (int i = 0; m->epoch < e; i++) {
        m->epoch++;
        if (i < m->c.buckets)
            memset(cur(m), 0, sizeof(mbucket));
    }
}

/* The open period: reset_ms, doubled per open since the last close, capped. */
static int64_t m_period(const model *m)
{
    int64_t p = m->c.reset_ms;
    if (!m->c.backoff_cap_ms)
        return p;
    for (int i = 0; i < m->backoff_step && p < m->c.backoff_cap_ms; i++)
        p *= 2;
    return p < m->c.backoff_cap_ms ? p : m->c.backoff_cap_ms;
}

static void m_open(model *m)
{
    seen.opens++;
    m->core = M_OPEN;
    m->gen++;
    m->open_until = m->now + m_period(m);
    m->backoff_step++;
    m->trial_admitted = m->trial_successes = 0;
}

static void m_close(model *m)
{
    m->core = M_CLOSED;
    m->gen++;
    m->backoff_step = 0;
    m->trial_admitted = m->trial_successes = 0;
}

static mbucket m_window(const model *m)
{
    mbucket w;
    memset(&w, 0, sizeof w);
    for (int i = 0; i < m->c.buckets; i++) {
        const mbucket *x = &m->b[i];
        w.fires += x->fires;
        w.successes += x->successes;
        w.failures += x->failures;
        w.timeouts += x->timeouts;
        w.rejects += x->rejects;
        w.fallbacks += x->fallbacks;
        w.semaphore += x->semaphore;
        w.hits += x->hits;
        w.misses += x->misses;
        for (int k = 0; k < x->nlat && w.nlat < MAX_LAT; k++)
            w.lat[w.nlat++] = x->lat[k];
    }
    return w;
}

/* opossum's check after a failure in the closed state. */
static void m_judge(model *m)
{
    if (m->c.warm_up && m->now < m->warm_until)
        return;
    mbucket w = m_window(m);
    bool trip = w.fires >= m->c.volume && w.failures > 0 &&
                (w.fires == 0 || (double)w.failures / (double)w.fires * 100.0 > m->c.threshold);
    if (trip && m->core == M_CLOSED && !m->disabled && !m->force)
        m_open(m);
}

static void m_lat(model *m, int64_t ms)
{
    mbucket *x = cur(m);
    if (x->nlat < MAX_LAT)
        x->lat[x->nlat++] = ms;
}

static int m_fallback(model *m)
{
    if (m->c.fallback)
        cur(m)->fallbacks++;
    return 0;
}

/* Fires chain[i..n) at the model's time; appends every call's code to rcs. */
static int m_fire(model *m, const link *chain, int i, int n, int *rcs, int *nrcs)
{
    int slot = (*nrcs)++;
    int rc;
    seen.calls++;
    const link *l = &chain[i];
    bool keyed = m->c.cache && !m->disabled;
    if (keyed) {
        if (m->cached && (m->cache_expires == 0 || m->now < m->cache_expires)) {
            seen.hits++;
            cur(m)->fires++;
            cur(m)->hits++;
            return rcs[slot] = CB_OK;
        }
        cur(m)->misses++;
    }
    int64_t start = m->now;
    if (m->disabled) { /* no protection: no capacity, deadline or fallback */
        seen.disabled_calls++;
        cur(m)->fires++;
        m_advance_to(m, m->now + l->before_ms);
        if (i + 1 < n)
            m_fire(m, chain, i + 1, n, rcs, nrcs);
        m_advance_to(m, m->now + l->after_ms);
        if (l->rc == 0 || l->rc == RC_FILTERED)
            cur(m)->successes++;
        else
            cur(m)->failures++;
        m_lat(m, m->now - start);
        return rcs[slot] = l->rc == 0 ? CB_OK : CB_EFAILED;
    }
    bool trial = false;
    uint64_t gen = 0;
    int visible = m->force == S_FORCE_OPEN ? M_OPEN : m->force == S_FORCE_CLOSED ? M_CLOSED
                                                                               : m->core;
    if (visible == M_OPEN ||
        (visible == M_HALF_OPEN &&
         (m->trial_admitted >= m->c.trials || m->trials_in_flight >= m->c.trials))) {
        cur(m)->fires++;
        cur(m)->rejects++;
        seen.rejects++;
        m_fallback(m);
        return rcs[slot] = CB_EOPEN;
    }
    if (visible == M_HALF_OPEN) {
        trial = true;
        gen = m->gen;
        m->trial_admitted++;
        m->trials_in_flight++;
    }
    if (m->c.capacity > 0 && m->in_flight >= m->c.capacity) {
        cur(m)->fires++;
        cur(m)->semaphore++;
        seen.semaphore++;
        cur(m)->failures++;
        if (trial) {
            m->trials_in_flight--;
            if (gen == m->gen && m->core == M_HALF_OPEN)
                m_open(m);
        } else {
            m_judge(m);
        }
        m_fallback(m);
        return rcs[slot] = CB_ESEMLOCKED;
    }
    cur(m)->fires++;
    m->in_flight++;
    m_advance_to(m, m->now + l->before_ms);
    if (i + 1 < n)
        m_fire(m, chain, i + 1, n, rcs, nrcs);
    m_advance_to(m, m->now + l->after_ms);
    m->in_flight--;
    int64_t lat = m->now - start;
    if ((start - m->origin) / m->c.interval_ms != (m->now - m->origin) / m->c.interval_ms)
        seen.long_calls++;
    bool timed_out = m->c.timeout_ms > 0 && lat >= m->c.timeout_ms;
    bool ok;
    if (timed_out) {
        seen.timeouts++;
        cur(m)->timeouts++;
        cur(m)->failures++;
        m_lat(m, m->c.timeout_ms);
        ok = false;
        rc = CB_ETIMEDOUT;
    } else if (l->rc == 0 || l->rc == RC_FILTERED) {
        cur(m)->successes++;
        m_lat(m, lat);
        ok = true;
        rc = l->rc == 0 ? CB_OK : CB_EFAILED;
    } else {
        cur(m)->failures++;
        m_lat(m, lat);
        ok = false;
        rc = CB_EFAILED;
    }
    if (trial) {
        m->trials_in_flight--;
        if (gen == m->gen && m->core == M_HALF_OPEN) {
            if (ok) {
                if (++m->trial_successes >= m->c.successes_to_close) {
                    seen.trial_closes++;
                    m_close(m);
                }
            }
            else
                m_open(m);
        }
    } else if (!ok) {
        m_judge(m);
    }
    if (!ok)
        m_fallback(m);
    if (keyed && rc == CB_OK) {
        m->cached = true;
        m->cache_expires = m->c.cache_ttl_ms ? m->now + m->c.cache_ttl_ms : 0;
    }
    return rcs[slot] = rc;
}

/* ---- the breaker under test ------------------------------------------------ */

typedef struct runner {
    config c;
    bool ticked;
    cb_manual_clock *mc;
    cb_breaker *b;
    const link *chain;
    int n;
    int rcs[MAX_CHAIN], nrcs;
} runner;

typedef struct call_ctx {
    runner *r;
    int i;
} call_ctx;

static void r_advance(runner *r, int64_t ms)
{
    cb_manual_clock_advance_ms(r->mc, ms);
    if (r->ticked)
        cb_tick(r->b);
}

static int r_fire(runner *r, int i);

static int chain_action(const cb_call *call, void **result)
{
    call_ctx *cx = call->arg;
    runner *r = cx->r;
    const link *l = &r->chain[cx->i];
    r_advance(r, l->before_ms);
    if (cx->i + 1 < r->n)
        r_fire(r, cx->i + 1);
    r_advance(r, l->after_ms);
    *result = (void *)"value";
    return l->rc;
}

static int r_fire(runner *r, int i)
{
    call_ctx cx = { r, i };
    int slot = r->nrcs++;
    cb_result res;
    int rc = cb_fire_key(r->b, r->c.cache ? "k" : NULL, &cx, &res);
    r->rcs[slot] = rc;
    return rc;
}

static bool filter(int rc, void *arg, void *user)
{
    (void)arg;
    (void)user;
    return rc == RC_FILTERED;
}

static int fallback(void *arg, int reason, int rc, void **result, void *user)
{
    (void)arg;
    (void)reason;
    (void)rc;
    (void)user;
    *result = (void *)"fallback";
    return 0;
}

#define START_NS 1000000000LL

static bool r_start(runner *r, const config *c, bool ticked)
{
    memset(r, 0, sizeof *r);
    r->c = *c;
    r->ticked = ticked;
    r->mc = cb_manual_clock_new(START_NS);
    cb_options o;
    cb_options_init(&o);
    o.name = "model";
    o.action = chain_action;
    o.clock = cb_manual_clock_get(r->mc);
    o.rolling_count_buckets = c->buckets;
    o.rolling_count_timeout_ms = c->buckets * c->interval_ms;
    o.timeout_ms = c->timeout_ms;
    o.reset_timeout_ms = c->reset_ms;
    o.error_threshold_percentage = c->threshold;
    o.volume_threshold = c->volume;
    o.capacity = c->capacity;
    o.allow_warm_up = c->warm_up;
    o.enabled = c->enabled;
    o.cache = c->cache;
    o.cache_ttl_ms = c->cache_ttl_ms;
    o.error_filter = filter;
    o.fallback = c->fallback ? fallback : NULL;
    o.seed = 1;
    o.half_open_max_calls = c->trials;
    o.half_open_success_threshold = c->successes_to_close;
    if (c->backoff_cap_ms) {
        o.reset_backoff_multiplier = 2.0;
        o.reset_timeout_max_ms = c->backoff_cap_ms;
    }
    int rc = cb_create(&o, &r->b);
    if (rc != CB_OK) {
        fprintf(stderr, "model: cb_create: %s\n", cb_strerror(rc));
        return false;
    }
    return true;
}

static void r_stop(runner *r)
{
    cb_destroy(r->b);
    cb_manual_clock_free(r->mc);
}

/* ---- comparing ------------------------------------------------------------- */

static char why[1024];

static bool differ(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    return false;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static const char *m_state_name(const model *m)
{
    if (m->disabled)
        return "disabled";
    if (m->force)
        return m->force == S_FORCE_OPEN ? "forced-open" : "forced-closed";
    return m->core == M_CLOSED ? "closed" : m->core == M_OPEN ? "open" : "half-open";
}

static bool agree(runner *r, model *m)
{
    cb_stats st;
    if (cb_get_stats(r->b, &st) != CB_OK)
        return differ("cb_get_stats failed");
    cb_state want = m->disabled ? CB_DISABLED
                  : m->force == S_FORCE_OPEN ? CB_FORCED_OPEN
                  : m->force == S_FORCE_CLOSED ? CB_FORCED_CLOSED
                  : m->core == M_CLOSED ? CB_CLOSED
                  : m->core == M_OPEN ? CB_OPEN : CB_HALF_OPEN;
    int64_t now_ns = START_NS + (m->now - m->origin) * 1000000LL;
    bool pending = !r->ticked && want == CB_HALF_OPEN && st.state == CB_OPEN &&
                   st.open_until_ns <= now_ns; /* lazy: moves at the next call */
    if (st.state != want && !pending)
        return differ("state: libcb %s, model %s", cb_state_name(st.state), m_state_name(m));
    int64_t until_ns = START_NS + (m->open_until - m->origin) * 1000000LL;
    if (want == CB_OPEN && st.open_until_ns != until_ns)
        return differ("open timer: libcb ends at %" PRId64 " ms, model at %" PRId64 " ms",
                      (st.open_until_ns - START_NS) / 1000000LL, m->open_until - m->origin);
    mbucket w = m_window(m);
    struct { const char *name; uint64_t lib; long mod; } f[] = {
        { "fires", st.window.fires, w.fires },
        { "successes", st.window.successes, w.successes },
        { "failures", st.window.failures, w.failures },
        { "timeouts", st.window.timeouts, w.timeouts },
        { "rejects", st.window.rejects, w.rejects },
        { "fallbacks", st.window.fallbacks, w.fallbacks },
        { "semaphore_rejections", st.window.semaphore_rejections, w.semaphore },
        { "cache_hits", st.window.cache_hits, w.hits },
        { "cache_misses", st.window.cache_misses, w.misses },
    };
    for (size_t k = 0; k < sizeof f / sizeof f[0]; k++)
        if (f[k].lib != (uint64_t)f[k].mod)
            return differ("window %s: libcb %" PRIu64 ", model %ld", f[k].name, f[k].lib,
                          f[k].mod);
    qsort(w.lat, (size_t)w.nlat, sizeof w.lat[0], cmp_i64);
    double sum = 0;
    for (int k = 0; k < w.nlat; k++)
        sum += (double)w.lat[k];
    double mean = w.nlat ? sum / w.nlat : 0;
    if (fabs(mean - st.latency_mean_ms) > 1e-6)
        return differ("latency mean: libcb %.3f, model %.3f (%d samples)", st.latency_mean_ms,
                      mean, w.nlat);
    for (int k = 0; k < CB_PERCENTILES; k++) {
        double p = cb_percentile_points[k];
        int idx = p == 0 ? 1 : (int)ceil(p * w.nlat);
        double want_p = w.nlat ? (double)w.lat[idx - 1] : 0;
        if (fabs(want_p - st.percentiles_ms[k]) > 1e-6)
            return differ("latency p%g: libcb %.3f, model %.3f", p * 100, st.percentiles_ms[k],
                          want_p);
    }
    return true;
}

/* Runs sc in one mode; returns the index of the first step that disagrees,
 * or -1 when all agree. */
static int run(const scenario *sc, bool ticked)
{
    runner r;
    if (!r_start(&r, &sc->cfg, ticked)) {
        differ("cannot create the breaker");
        return 0;
    }
    model m;
    memset(&m, 0, sizeof m);
    m.c = sc->cfg;
    m.disabled = !sc->cfg.enabled;
    m.warm_until = sc->cfg.buckets * sc->cfg.interval_ms;
    int bad = -1;
    if (!agree(&r, &m))
        bad = 0;
    for (int i = 0; i < sc->nsteps && bad < 0; i++) {
        const step *s = &sc->s[i];
        switch (s->kind) {
        case S_ADVANCE:
            r_advance(&r, s->ms);
            m_advance_to(&m, m.now + s->ms);
            break;
        case S_FIRE: {
            int mrcs[MAX_CHAIN], mn = 0;
            r.chain = s->c;
            r.n = s->n;
            r.nrcs = 0;
            r_fire(&r, 0);
            m_fire(&m, s->c, 0, s->n, mrcs, &mn);
            for (int k = 0; k < mn && bad < 0; k++)
                if (r.rcs[k] != mrcs[k]) {
                    differ("call %d of the chain: libcb %s, model %s", k, cb_err_name(r.rcs[k]),
                           cb_err_name(mrcs[k]));
                    bad = i;
                }
            break;
        }
        case S_OPEN:
            cb_open(r.b);
            if (m.core != M_OPEN)
                m_open(&m);
            break;
        case S_CLOSE:
            cb_close(r.b);
            if (m.core != M_CLOSED)
                m_close(&m);
            m.backoff_step = 0;
            break;
        case S_ENABLE:
            cb_enable(r.b, true);
            m.disabled = false;
            break;
        case S_DISABLE:
            cb_enable(r.b, false);
            m.disabled = true;
            break;
        case S_FORCE_OPEN:
        case S_FORCE_CLOSED:
            cb_force(r.b, s->kind == S_FORCE_OPEN ? CB_FORCE_OPEN : CB_FORCE_CLOSED);
            m.force = s->kind;
            break;
        case S_FORCE_NONE:
            cb_force(r.b, CB_FORCE_NONE);
            m.force = 0;
            if (m.core != M_CLOSED)
                m_close(&m);
            break;
        }
        seen.steps++;
        if (bad < 0 && !agree(&r, &m))
            bad = i;
    }
    r_stop(&r);
    return bad;
}

/* ---- generating ------------------------------------------------------------ */

/* the generator: model_rng.h */

/* A duration that lands near the edges that matter: a bucket, the window,
 * the timeout, the reset period. */
static int64_t duration(const config *c)
{
    int64_t win = c->buckets * c->interval_ms;
    switch (below(8)) {
    case 0: return 0;
    case 1: return below(c->interval_ms);
    case 2: return c->interval_ms + below(3) - 1;
    case 3: return c->timeout_ms ? c->timeout_ms + below(3) - 1 : below(win);
    case 4: return below(2 * win + 1);
    case 5: return c->reset_ms + below(3) - 1;
    case 6: return below(c->interval_ms / 4 + 1);
    default: return win + below(3) - 1;
    }
}

static void gen_config(config *c)
{
    static const int64_t buckets[] = { 1, 2, 3, 5, 10 };
    static const int64_t intervals[] = { 10, 50, 100, 250 };
    c->buckets = (int)pick(buckets, 5);
    c->interval_ms = pick(intervals, 4);
    int64_t win = c->buckets * c->interval_ms;
    c->timeout_ms = chance(20) ? 0 : 1 + below(2 * win);
    c->reset_ms = 1 + below(2 * win);
    static const int64_t thresholds[] = { 0, 10, 25, 50, 50, 75, 100 };
    c->threshold = (int)pick(thresholds, 7);
    c->volume = chance(40) ? 0 : (int)below(6);
    c->capacity = chance(60) ? 0 : 1 + (int)below(2);
    c->warm_up = chance(20);
    c->enabled = chance(95);
    c->cache = chance(15);
    c->cache_ttl_ms = chance(30) ? 0 : 1 + below(win);
    c->fallback = chance(60);
    c->trials = chance(70) ? 1 : 2 + (int)below(2);
    c->successes_to_close = 1 + (int)below(c->trials);
    c->backoff_cap_ms = chance(70) ? 0 : c->reset_ms * (1 + below(8));
}

static void gen_scenario(scenario *sc, uint64_t seed)
{
    model_rng = seed;
    memset(sc, 0, sizeof *sc);
    sc->name = "generated";
    gen_config(&sc->cfg);
    sc->nsteps = 10 + (int)below(MAX_STEPS - 10);
    for (int i = 0; i < sc->nsteps; i++) {
        step *s = &sc->s[i];
        int64_t k = below(100);
        if (k < 35) {
            s->kind = S_ADVANCE;
            s->ms = duration(&sc->cfg);
        } else if (k < 92) {
            s->kind = S_FIRE;
            s->n = chance(20) ? 2 + (int)below(MAX_CHAIN - 1) : 1;
            for (int j = 0; j < s->n; j++) {
                int64_t o = below(100);
                s->c[j].rc = o < 55 ? 0 : o < 88 ? RC_FAIL : RC_FILTERED;
                int64_t d = chance(50) ? 0 : duration(&sc->cfg);
                s->c[j].before_ms = chance(50) ? d : below(d + 1);
                s->c[j].after_ms = d - s->c[j].before_ms;
            }
        } else if (k < 95) {
            s->kind = S_OPEN;
        } else if (k < 97) {
            s->kind = S_CLOSE;
        } else if (k < 98) {
            s->kind = chance(50) ? S_DISABLE : S_ENABLE;
        } else {
            static const int64_t forces[] = { S_FORCE_OPEN, S_FORCE_CLOSED, S_FORCE_NONE,
                                              S_FORCE_NONE };
            s->kind = (int)pick(forces, 4);
        }
    }
}

/* ---- shrinking and printing ---------------------------------------------- */

static bool fails(const scenario *sc, bool ticked) { return run(sc, ticked) >= 0; }

/* Drops steps, cuts chains and shortens durations while sc still fails. */
static void shrink(scenario *sc, bool ticked)
{
    bool progress = true;
    while (progress) {
        progress = false;
        for (int i = sc->nsteps - 1; i >= 0; i--) {
            scenario t = *sc;
            memmove(&t.s[i], &t.s[i + 1], sizeof(step) * (size_t)(t.nsteps - i - 1));
            t.nsteps--;
            if (fails(&t, ticked)) {
                *sc = t;
                progress = true;
            }
        }
        for (int i = 0; i < sc->nsteps; i++) {
            step *s = &sc->s[i];
            if (s->kind == S_FIRE && s->n > 1) {
                scenario t = *sc;
                t.s[i].n--;
                if (fails(&t, ticked)) {
                    *sc = t;
                    progress = true;
                }
            }
            for (int j = 0; j < (s->kind == S_FIRE ? s->n : 1); j++) {
                int64_t *fields[2] = { s->kind == S_FIRE ? &s->c[j].before_ms : &s->ms,
                                       s->kind == S_FIRE ? &s->c[j].after_ms : NULL };
                for (int f = 0; f < 2; f++) {
                    if (!fields[f] || *fields[f] == 0 || s->kind > S_FIRE)
                        continue;
                    int64_t old = *fields[f];
                    int64_t tries[2] = { 0, old / 2 };
                    for (int k = 0; k < 2; k++) {
                        *fields[f] = tries[k];
                        if (fails(sc, ticked)) {
                            progress = true;
                            break;
                        }
                        *fields[f] = old;
                    }
                }
            }
        }
    }
}

static const char *rc_name(int rc) { return rc == 0 ? "0" : rc == RC_FAIL ? "RC_FAIL" : "RC_FILTERED"; }

static void print_scenario(const scenario *sc, const char *name)
{
    const config *c = &sc->cfg;
    static const char *kinds[] = { "S_ADVANCE", "S_FIRE", "S_OPEN", "S_CLOSE", "S_ENABLE",
                                   "S_DISABLE", "S_FORCE_OPEN", "S_FORCE_CLOSED",
                                   "S_FORCE_NONE" };
    printf("    SCENARIO(\"%s\",\n", name);
    printf("             { .buckets = %d, .interval_ms = %" PRId64 ", .timeout_ms = %" PRId64
           ", .reset_ms = %" PRId64 ", .threshold = %d,\n"
           "               .volume = %d, .capacity = %d, .warm_up = %s, .enabled = %s,"
           " .cache = %s,\n               .cache_ttl_ms = %" PRId64 ", .fallback = %s,"
           " .trials = %d, .successes_to_close = %d, .backoff_cap_ms = %" PRId64 " }",
           c->buckets, c->interval_ms, c->timeout_ms, c->reset_ms, c->threshold, c->volume,
           c->capacity, c->warm_up ? "true" : "false", c->enabled ? "true" : "false",
           c->cache ? "true" : "false", c->cache_ttl_ms, c->fallback ? "true" : "false",
           c->trials, c->successes_to_close, c->backoff_cap_ms);
    for (int i = 0; i < sc->nsteps; i++) {
        const step *s = &sc->s[i];
        printf(",\n             ");
        if (s->kind == S_ADVANCE) {
            printf("ADV(%" PRId64 ")", s->ms);
        } else if (s->kind == S_FIRE) {
            printf("FIRE(");
            for (int j = 0; j < s->n; j++)
                printf("%sCALL(%s, %" PRId64 ", %" PRId64 ")", j ? ", " : "",
                       rc_name(s->c[j].rc), s->c[j].before_ms, s->c[j].after_ms);
            printf(")");
        } else {
            printf("CTRL(%s)", kinds[s->kind]);
        }
    }
    printf("),\n");
}

/* ---- regressions: minimal scenarios the model found, kept for ever --------- */

/* A window of 1 s in 10 buckets; the rest as given. */
#define CFG_1S(tmo, rst, thr, vol, cap, on, fb)                                        \
    { .buckets = 10, .interval_ms = 100, .timeout_ms = (tmo), .reset_ms = (rst),        \
      .threshold = (thr), .volume = (vol), .capacity = (cap), .enabled = (on),          \
      .fallback = (fb), .trials = 1, .successes_to_close = 1 }
#define SCENARIO(nm, cf, ...)                                                           \
    { .name = (nm), .cfg = cf,                                                          \
      .nsteps = (int)(sizeof((step[]){ __VA_ARGS__ }) / sizeof(step)), .s = { __VA_ARGS__ } }
#define ADV(t)        { .kind = S_ADVANCE, .ms = (t) }
#define CTRL(k)       { .kind = (k) }
#define CALL(r, b, a) { .rc = (r), .before_ms = (b), .after_ms = (a) }
#define FIRE(...)                                                                       \
    { .kind = S_FIRE, .n = (int)(sizeof((link[]){ __VA_ARGS__ }) / sizeof(link)),        \
      .c = { __VA_ARGS__ } }

static const scenario regressions[] = {
    /* a call longer than a bucket is counted where it ends */
    SCENARIO("long_success_counted_where_it_ends", CFG_1S(3000, 5000, 50, 0, 0, true, false),
             FIRE(CALL(0, 1900, 0)), ADV(50)),
    /* ... and judged against the window as it stands at its end */
    SCENARIO("long_failure_judged_at_its_end_opens", CFG_1S(3000, 5000, 50, 0, 0, true, false),
             FIRE(CALL(0, 0, 0)), FIRE(CALL(0, 0, 0)), FIRE(CALL(RC_FAIL, 0, 0)), ADV(500),
             FIRE(CALL(RC_FAIL, 600, 0))),
    SCENARIO("long_failure_judged_at_its_end_below_volume",
             CFG_1S(3000, 5000, 50, 4, 0, true, false),
             FIRE(CALL(0, 0, 0)), FIRE(CALL(RC_FAIL, 0, 0)), FIRE(CALL(RC_FAIL, 0, 0)), ADV(500),
             FIRE(CALL(RC_FAIL, 600, 0))),
    /* failures with no fire left in the window open */
    SCENARIO("failure_with_no_fire_in_the_window", CFG_1S(0, 5000, 50, 0, 0, true, false),
             FIRE(CALL(RC_FAIL, 1500, 0)), FIRE(CALL(0, 0, 0))),
    /* a disabled breaker: no fallback, no capacity, no timeout */
    SCENARIO("disabled_runs_no_fallback", CFG_1S(3000, 5000, 50, 0, 0, false, true),
             FIRE(CALL(RC_FAIL, 10, 0))),
    SCENARIO("disabled_has_no_capacity", CFG_1S(3000, 5000, 50, 0, 1, false, false),
             FIRE(CALL(0, 5, 5), CALL(0, 1, 0))),
    SCENARIO("disabled_has_no_timeout", CFG_1S(100, 5000, 50, 0, 0, false, true),
             FIRE(CALL(0, 150, 0))),
    /* a call lasting exactly its timeout times out; one latency sample */
    SCENARIO("exactly_timeout_times_out", CFG_1S(100, 5000, 50, 0, 0, true, false),
             FIRE(CALL(0, 100, 0)), FIRE(CALL(0, 250, 0))),
    /* a capacity rejection records no latency sample */
    SCENARIO("capacity_rejection_has_no_latency", CFG_1S(3000, 5000, 100, 0, 1, true, false),
             FIRE(CALL(0, 10, 10), CALL(0, 0, 0))),
    /* opening a lazily half-open circuit restarts its timer */
    SCENARIO("open_when_lazily_half_open", CFG_1S(3000, 100, 50, 0, 0, true, false),
             CTRL(S_OPEN), ADV(150), CTRL(S_OPEN), FIRE(CALL(0, 0, 0))),
};

/* ---- main ------------------------------------------------------------------ */

static uint64_t env_u64(const char *name, uint64_t dflt, bool *set)
{
    const char *v = getenv(name);
    if (set)
        *set = v && *v;
    return v && *v ? strtoull(v, NULL, 0) : dflt;
}

/* Runs sc in both modes; on a mismatch shrinks and prints it. */
static bool check(const scenario *sc, const char *label, uint64_t seed)
{
    for (int mode = 0; mode < 2; mode++) {
        bool ticked = mode == 0;
        int bad = run(sc, ticked);
        if (bad < 0)
            continue;
        printf("MISMATCH %s (%s, %s) at step %d: %s\n", label, sc->name,
               ticked ? "ticked" : "lazy", bad, why);
        if (seed)
            printf("replay: MODEL_REPLAY=%" PRIu64 "\n", seed);
        scenario small = *sc;
        shrink(&small, ticked);
        run(&small, ticked);
        printf("shrunk to %d steps (%s): %s\npaste into regressions[]:\n", small.nsteps,
               ticked ? "ticked" : "lazy", why);
        print_scenario(&small, "found_by_the_model");
        return false;
    }
    return true;
}

int main(void)
{
    bool replay_set;
    uint64_t replay = env_u64("MODEL_REPLAY", 0, &replay_set);
    uint64_t base = env_u64("MODEL_SEED", (uint64_t)time(NULL) ^ ((uint64_t)clock() << 20), NULL);
    uint64_t seqs = env_u64("MODEL_SEQS", 3000, NULL);
    int failed = 0;
    size_t nreg = sizeof regressions / sizeof regressions[0];

    for (size_t i = 0; i < nreg; i++)
        if (!check(&regressions[i], "regression", 0))
            failed++;
    printf("model: %zu regression scenarios, %d failed\n",
           sizeof regressions / sizeof regressions[0], failed);

    static scenario sc;
    if (replay_set) {
        gen_scenario(&sc, replay);
        if (!check(&sc, "replay", replay))
            failed++;
        printf("model: replayed sequence %" PRIu64 ": %s\n", replay, failed ? "FAILED" : "ok");
        return failed ? 1 : 0;
    }
    printf("model: MODEL_SEED=%" PRIu64 " MODEL_SEQS=%" PRIu64 " (each in ticked and lazy mode)\n",
           base, seqs);
    fflush(stdout);
    uint64_t n = 0;
    int mismatches = 0;
    for (; n < seqs && mismatches < 3; n++) {
        uint64_t seed = base + n * 0x9E3779B97F4A7C15ull;
        gen_scenario(&sc, seed);
        if (!check(&sc, "sequence", seed))
            mismatches++;
    }
    failed += mismatches;
    printf("model: %" PRIu64 " sequences, %d mismatches (MODEL_SEED=%" PRIu64 ")\n", n,
           mismatches, base);
    printf("model: exercised %ld steps, %ld calls (%ld crossing a bucket boundary, %ld while "
           "disabled), %ld opens, %ld half-opens, %ld closes by a trial, %ld timeouts, %ld "
           "capacity rejections, %ld open rejections, %ld cache hits\n",
           seen.steps, seen.calls, seen.long_calls, seen.disabled_calls, seen.opens,
           seen.half_opens, seen.trial_closes, seen.timeouts, seen.semaphore, seen.rejects,
           seen.hits);
    /* the line scripts/summarize.py counts: scenarios and sequences */
    printf("model: %" PRIu64 " passed, %d failed\n", (uint64_t)nreg + n - (uint64_t)failed,
           failed);
    return failed ? 1 : 0;
}
