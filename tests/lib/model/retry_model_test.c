/* retry_model_test.c -- the retry policy composed with the breaker
 * (cb_retry_fire: retry outside, breaker inside), checked step by step
 * against an executable model of what cb_retry.h and cb.h say.
 *
 * The model below is written from the two headers' comments, not from
 * common/src: for each call it predicts every attempt the breaker sees (and
 * when each one starts), the result code and the result (value, fallback
 * flag, action_rc), why the call stopped, the events in order with every
 * field ("retry" with the attempt about to start and its back-off,
 * "retry-exhausted", "budget-exhausted", "deadline"), the back-offs slept,
 * the values discarded, the token bucket in milli-tokens by hand
 * arithmetic, and the breaker's side of it: its state (closed, open,
 * half-open with its trials, forced, disabled, shut down), its open timer
 * and the window's and the total counts. The breaker half follows the
 * breaker model of model_test.c (a window of buckets rotated by time,
 * opossum's arithmetic, trials tied to the half-open period, back-off of
 * the open period), kept to sequential calls.
 *
 * The back-off is random, so the model does not predict it: it reads each
 * drawn delay from the "retry" event at the position where it expects one,
 * and checks it: within full jitter's [0, min(cap, base * 2^(n-1))], and
 * ending before the call's deadline. When the deadline lies inside that range
 * the policy may stop ("deadline") or retry; the model accepts either, and
 * the run sums, over every such decision, the stops it saw against the
 * number uniform draws would give. The delays far from any deadline are
 * summed too (their mean must be half their bound). The policy's generator
 * is seeded from the scenario, so a sequence replays exactly; every eighth
 * sequence is run twice to check that the same seed gives the same back-offs.
 *
 * A seeded generator draws a configuration (breaker: window, timeout, reset
 * period, threshold, volume, trials, back-off, fallback, error filter,
 * ticked or lazy; policy: attempts, base, cap, budget size and ratio, seed)
 * and a sequence of steps: clock moves, cb_tick(), calls through
 * cb_retry_fire() whose attempts have scripted outcomes (success, a
 * retryable code, a non-retryable one, a timeout; each with a duration on
 * the manual clock and an oversleep of the back-off that follows it), with
 * no deadline, a relative one, an absolute one (sometimes already passed,
 * sometimes exactly at an attempt's end) or both; cb_open, cb_close,
 * cb_force, cb_enable and, near the end, cb_shutdown. After every step it
 * compares the clock, the breaker's state, open timer and counts,
 * cb_retry_stats and the discards; after every call, the whole call.
 *
 * What the model states where the headers leave room to read: a refusal by
 * the breaker (CB_EOPEN when open, forced open or half-open with its trials
 * taken; CB_ESHUTDOWN) is one attempt, returned at once with the breaker's
 * fallback value, counted in "refused", with no event and no token; the
 * sleep function is called only for a back-off > 0 ns; a "retry" event whose
 * back-off overslept the deadline is followed by "deadline" and no attempt
 * (so "retry" events may outnumber cb_retry_stats.retries); a failure the
 * breaker's error filter passes is a success to the breaker but CB_EFAILED
 * to the policy, so it is retried and costs a token when retryable.
 *
 * A mismatch prints the seed, the sequence and the step, is shrunk (steps
 * dropped, attempts cut, durations zeroed while it still fails) and printed
 * as an entry for regressions[] below, ready to paste.
 *
 * Environment: RETRY_MODEL_SEED (base seed; MODEL_SEED if unset; default
 * from the clock; printed), RETRY_MODEL_SEQS (sequences, default 2000),
 * RETRY_MODEL_REPLAY (one sequence's seed). Exit 0 when everything agrees,
 * 1 on a mismatch. The last line is "retry_model: N passed, N failed".
 */
#include "cb.h"
#include "cb_retry.h"

#include "model_rng.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MS          ((int64_t)1000000)
#define START_NS    ((int64_t)1000000000)
#define MAX_STEPS   100
#define MAX_SCRIPT  8     /* scripted attempts of a call; the last repeats */
#define MAX_TRACE   24    /* events, sleeps or runs of one call (max_attempts <= 8) */
#define MAX_BUCKETS 10
/* The regression scenarios' policy seed. Not a small number: the policy's
 * generator (xorshift) turns a small seed into a first draw near 0 (seed 42
 * gives 2.5e-9 of the bound), so every first back-off would be ~0 ns. */
#define DEFAULT_SEED 0x9E3779B97F4A7C15ull

static const char OK_VALUE[] = "ok";
static const char FB_VALUE[] = "fallback";

/* ---- scenarios ------------------------------------------------------------ */

typedef struct config {
    /* the breaker */
    int buckets;
    int64_t interval_ms;      /* window = buckets * interval */
    int64_t timeout_ms;       /* 0 = none */
    int64_t reset_ms;         /* 0 = half-open again at once */
    int threshold, volume;
    int trials, successes_to_close;
    int64_t backoff_cap_ms;   /* 0 = no back-off of the open period, else doubling up to it */
    bool enabled, fallback;
    bool filter;              /* the error filter passes 409 and 504 */
    bool ticked;              /* cb_tick() after every clock move, as a ticker would */
    /* the policy */
    int max_attempts;
    int64_t base_ms, cap_ms;
    int budget_max;           /* budget_max_tokens */
    int ratio_e4;             /* budget_token_ratio = ratio_e4 / 10000 */
    uint64_t seed;
} config;

/* One attempt of a call: the action returns rc after latency_ms on the
 * manual clock; the back-off slept after it (if any) oversleeps by
 * oversleep_ns, as a real sleep may. */
typedef struct attempt {
    int rc;
    int64_t latency_ms;
    int64_t oversleep_ns;
} scripted;

enum { S_ADVANCE, S_TICK, S_FIRE, S_OPEN, S_CLOSE, S_FORCE_OPEN, S_FORCE_CLOSED, S_FORCE_NONE,
       S_ENABLE, S_DISABLE, S_SHUTDOWN };

typedef struct step {
    int kind;
    int64_t ns;               /* S_ADVANCE */
    /* S_FIRE */
    bool has_abs;             /* call.deadline_ns = the call's start + abs_off_ns */
    int64_t abs_off_ns;
    int64_t timeout_ms;       /* call.timeout_ms; 0 = none */
    int n;
    scripted a[MAX_SCRIPT];
} step;

/* What a regression scenario pins by hand, on libcb alone, at its end. */
typedef struct want {
    bool on;
    uint64_t calls, attempts, retries, exhausted, budget, deadline, before_first, refused;
    int64_t tokens_milli;
    cb_state state;
} want;

typedef struct scenario {
    const char *name;
    config cfg;
    want w;
    int nsteps;
    step s[MAX_STEPS];
} scenario;

/* One call as seen (libcb) or predicted (model). */
enum { V_NULL, V_OK, V_FB, V_OTHER };

typedef struct trace {
    int rc, attempts, stop;
    int value;                /* res.value: V_* */
    bool fallback;
    int action_rc;
    double latency_ms;
    int nev;
    cb_retry_event ev[MAX_TRACE];
    int nsleep;
    int64_t sleep_at[MAX_TRACE], sleep_ns[MAX_TRACE];
    int nrun;
    int64_t run_at[MAX_TRACE];
    int discards;
    /* libcb only: what was wrong on its own */
    bool overflow, bad_pointer, bad_discard, bad_arg;
} trace;

/* What the sequences exercised, printed at the end so that a run that
 * checks nothing interesting shows it. */
static struct {
    long steps, calls, attempts, runs, retries, sleeps, oversleeps, discards;
    long stop[5];                      /* by cb_retry_stop */
    long att_closed, att_open, att_half_open, att_forced, att_disabled, att_shutdown;
    long retry_trials;                 /* a retry admitted as a half-open trial */
    long retry_rejected;               /* a retry rejected by the breaker */
    long opened_mid_call;              /* a call's failure opened the breaker */
    long trial_closes, timeouts, filtered_retried, budget_at_half;
    long deadline_first, deadline_gap0, deadline_cut, deadline_overslept;
    /* the jitter */
    long draws;                        /* delays far from any deadline, bound > 0 */
    double sum_u, sum_u2;              /* of delay / bound */
    long amb;                          /* deadline inside [0, bound]: either answer */
    long amb_stops;
    double amb_expected, amb_var;
} seen;

/* ---- the model ------------------------------------------------------------ */

typedef struct mcounts {
    long fires, successes, failures, timeouts, rejects, fallbacks;
} mcounts;

enum { M_CLOSED, M_OPEN, M_HALF_OPEN };

typedef struct model {
    config c;
    int64_t now;             /* ns, on the same scale as the manual clock */
    int64_t interval_ns, epoch;
    mcounts b[MAX_BUCKETS];  /* epoch % buckets */
    mcounts total;
    int core;
    bool disabled, shut;
    bool pending;            /* half-open by time, which lazy libcb does at its next call */
    int force;               /* 0, S_FORCE_OPEN, S_FORCE_CLOSED */
    int64_t open_until;
    int trial_admitted, trial_successes, backoff_step;
    /* the policy */
    int64_t tokens, max_milli, ratio_milli, base_ns, cap_ns;
    uint64_t calls, attempts, retries, exhausted, budget, deadline, before_first, refused;
    long discards;
    char flag[320];          /* a rule libcb broke while the model read a delay from it */
} model;

#define CNT(m, f) ((m)->b[(m)->epoch % (m)->c.buckets].f++, (m)->total.f++)

/* What is due at now: an open circuit whose period passed is half-open.
 * poke: libcb looks at the time now too (a call, cb_tick, cb_open), so a lazy
 * breaker is no longer behind. */
static void m_due(model *m, bool poke)
{
    if (m->shut)
        return;
    if (m->core == M_OPEN && m->now >= m->open_until) {
        m->core = M_HALF_OPEN;
        m->trial_admitted = m->trial_successes = 0;
        if (!poke)
            m->pending = true;
    }
    if (poke)
        m->pending = false;
}

/* Time passes: buckets rotate (by time from the breaker's creation), then
 * what fell due happens. */
static void m_advance_to(model *m, int64_t t)
{
    m->now = t;
    int64_t e = (t - START_NS) / m->interval_ns;
    for (int i = 0; m->epoch < e; i++) {
        m->epoch++;
        if (i < m->c.buckets)
            memset(&m->b[m->epoch % m->c.buckets], 0, sizeof(mcounts));
    }
    m_due(m, m->c.ticked);
}

/* The open period: reset_ms, doubled per open since the last close, capped. */
static int64_t m_period_ns(const model *m)
{
    int64_t p = m->c.reset_ms;
    if (m->c.backoff_cap_ms) {
        for (int i = 0; i < m->backoff_step && p < m->c.backoff_cap_ms; i++)
            p *= 2;
        if (p > m->c.backoff_cap_ms)
            p = m->c.backoff_cap_ms;
    }
    return p * MS;
}

static void m_open(model *m)
{
    m->core = M_OPEN;
    m->open_until = m->now + m_period_ns(m);
    m->backoff_step++;
    m->trial_admitted = m->trial_successes = 0;
    m->pending = false;
}

static void m_close(model *m)
{
    m->core = M_CLOSED;
    m->backoff_step = 0;
    m->trial_admitted = m->trial_successes = 0;
    m->pending = false;
}

static mcounts m_window(const model *m)
{
    mcounts w = { 0 };
    for (int i = 0; i < m->c.buckets; i++) {
        w.fires += m->b[i].fires;
        w.successes += m->b[i].successes;
        w.failures += m->b[i].failures;
        w.timeouts += m->b[i].timeouts;
        w.rejects += m->b[i].rejects;
        w.fallbacks += m->b[i].fallbacks;
    }
    return w;
}

/* opossum's check after a failure in the closed state: the error
 * percentage over the window passes the threshold once fires reach the
 * volume (failures with no fire left in the window count as infinite). */
static bool m_judge(model *m)
{
    mcounts w = m_window(m);
    bool trip = w.fires >= m->c.volume && w.failures > 0 &&
                (w.fires == 0 || (double)w.failures / (double)w.fires * 100.0 > m->c.threshold);
    if (trip && m->core == M_CLOSED && !m->disabled && !m->force) {
        m_open(m);
        return true;
    }
    return false;
}

static bool m_filtered(const model *m, int rc) { return m->c.filter && (rc == 409 || rc == 504); }

/* cb_retry_default_retryable as cb_retry.h words it. */
static bool m_retryable(int rc, int action_rc)
{
    if (rc == CB_ETIMEDOUT)
        return true;
    if (rc != CB_EFAILED)
        return false;
    return action_rc == 502 || action_rc == 503 || action_rc == 504 ||
           action_rc == -ECONNREFUSED || action_rc == -ECONNRESET || action_rc == -ETIMEDOUT;
}

typedef struct outcome {
    int rc, action_rc, value;
    bool fallback, ran;
    int64_t start;
    double latency_ms;
} outcome;

static void m_fallback(model *m, outcome *o)
{
    if (!m->c.fallback)
        return;
    CNT(m, fallbacks);
    o->fallback = true;
    o->value = V_FB;
}

/* One cb_fire() of the scripted attempt a: the breaker's side. */
static void m_fire(model *m, const scripted *a, bool retry, outcome *o)
{
    memset(o, 0, sizeof *o);
    if (m->shut) { /* refused, counted nowhere */
        seen.att_shutdown++;
        o->rc = CB_ESHUTDOWN;
        return;
    }
    m_due(m, true);
    o->start = m->now;
    if (m->disabled) { /* the action just runs: no deadline, no fallback, no state */
        seen.att_disabled++;
        CNT(m, fires);
        o->ran = true;
        m_advance_to(m, m->now + a->latency_ms * MS);
        o->latency_ms = (double)(m->now - o->start) / 1e6;
        if (a->rc == 0) {
            CNT(m, successes);
            o->rc = CB_OK;
            o->value = V_OK;
        } else {
            if (m_filtered(m, a->rc))
                CNT(m, successes);
            else
                CNT(m, failures);
            o->rc = CB_EFAILED;
            o->action_rc = a->rc;
        }
        return;
    }
    int visible = m->force == S_FORCE_OPEN ? M_OPEN : m->force == S_FORCE_CLOSED ? M_CLOSED
                                                                               : m->core;
    if (m->force)
        seen.att_forced++;
    else if (visible == M_CLOSED)
        seen.att_closed++;
    else if (visible == M_OPEN)
        seen.att_open++;
    else
        seen.att_half_open++;
    if (visible == M_OPEN || (visible == M_HALF_OPEN && m->trial_admitted >= m->c.trials)) {
        CNT(m, fires);
        CNT(m, rejects);
        o->rc = CB_EOPEN;
        m_fallback(m, o);
        if (retry)
            seen.retry_rejected++;
        return;
    }
    bool trial = visible == M_HALF_OPEN;
    if (trial) {
        m->trial_admitted++;
        if (retry)
            seen.retry_trials++;
    }
    CNT(m, fires);
    o->ran = true;
    m_advance_to(m, m->now + a->latency_ms * MS);
    int64_t lat = m->now - o->start;
    int64_t tmo = m->c.timeout_ms * MS;
    bool ok;
    if (tmo > 0 && lat >= tmo) { /* reaching the deadline is a timeout; the late value is dropped */
        seen.timeouts++;
        CNT(m, timeouts);
        CNT(m, failures);
        o->rc = CB_ETIMEDOUT;
        o->latency_ms = (double)tmo / 1e6;
        ok = false;
    } else if (a->rc == 0) {
        CNT(m, successes);
        o->rc = CB_OK;
        o->value = V_OK;
        o->latency_ms = (double)lat / 1e6;
        ok = true;
    } else if (m_filtered(m, a->rc)) { /* a success to the breaker, CB_EFAILED to the caller */
        CNT(m, successes);
        o->rc = CB_EFAILED;
        o->action_rc = a->rc;
        o->latency_ms = (double)lat / 1e6;
        ok = true;
    } else {
        CNT(m, failures);
        o->rc = CB_EFAILED;
        o->action_rc = a->rc;
        o->latency_ms = (double)lat / 1e6;
        ok = false;
    }
    if (trial) {
        if (m->core == M_HALF_OPEN) {
            if (!ok)
                m_open(m);
            else if (++m->trial_successes >= m->c.successes_to_close) {
                seen.trial_closes++;
                m_close(m);
            }
        }
    } else if (!ok && m_judge(m)) {
        seen.opened_mid_call++;
    }
    if (!ok)
        m_fallback(m, o);
}

/* min(cap, base * 2^(n-1)) in ns: the bound of the back-off before retry n. */
static int64_t m_bound_ns(const model *m, int n)
{
    int64_t b = m->base_ns;
    for (int i = 1; i < n && b < m->cap_ns; i++)
        b *= 2;
    return b < m->cap_ns ? b : m->cap_ns;
}

static void m_flag(model *m, const char *fmt, ...)
{
    if (m->flag[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->flag, sizeof m->flag, fmt, ap);
    va_end(ap);
}

static void m_event(trace *p, cb_retry_event_kind kind, int64_t t, int attempt, int64_t delay,
                    int rc, int action_rc, int64_t tokens)
{
    if (p->nev >= MAX_TRACE)
        return;
    p->ev[p->nev++] = (cb_retry_event){
        .kind = kind, .time_ns = t, .attempt = attempt, .delay_ns = delay, .rc = rc,
        .action_rc = action_rc, .budget_tokens = (double)tokens / 1000.0,
    };
}

/* One cb_retry_fire() of step s, as cb_retry.h describes it. The one thing
 * the model does not decide is the random back-off: it is read from libcb's
 * "retry" event at the same position of the call (real), and checked. */
static void m_call(model *m, const step *s, const trace *real, trace *p)
{
    memset(p, 0, sizeof *p);
    seen.calls++;
    m->calls++;
    int64_t deadline = INT64_MAX;
    if (s->has_abs)
        deadline = m->now + s->abs_off_ns;
    if (s->timeout_ms > 0 && m->now + s->timeout_ms * MS < deadline)
        deadline = m->now + s->timeout_ms * MS;
    int rc = CB_ETIMEDOUT;
    int attempt = 0;
    int stop;
    outcome o = { 0 };
    for (;;) {
        /* no attempt starts at or after the deadline */
        if (deadline != INT64_MAX && m->now >= deadline) {
            m_event(p, CB_REV_DEADLINE, m->now, attempt, 0, rc,
                    rc == CB_EFAILED ? o.action_rc : 0, m->tokens);
            m->deadline++;
            if (attempt == 0) {
                m->before_first++;
                seen.deadline_first++;
            } else {
                seen.deadline_overslept++;
            }
            stop = CB_RETRY_DEADLINE;
            break;
        }
        if (attempt > 0) {
            m->retries++;
            if (o.value != V_NULL)
                p->discards++; /* the retried attempt's value (its fallback's) */
        }
        attempt++;
        m->attempts++;
        const scripted *a = &s->a[(attempt < s->n ? attempt : s->n) - 1];
        m_fire(m, a, attempt > 1, &o);
        rc = o.rc;
        if (o.ran && p->nrun < MAX_TRACE)
            p->run_at[p->nrun++] = o.start;
        if (rc == CB_OK) { /* a success adds ratio, up to max */
            if (m->max_milli)
                m->tokens = m->tokens + m->ratio_milli < m->max_milli
                                ? m->tokens + m->ratio_milli : m->max_milli;
            stop = CB_RETRY_DONE;
            break;
        }
        if (rc != CB_ETIMEDOUT && rc != CB_EFAILED) { /* refused: at once, budget untouched */
            m->refused++;
            stop = CB_RETRY_REFUSED;
            break;
        }
        int action_rc = rc == CB_EFAILED ? o.action_rc : 0;
        if (!m_retryable(rc, action_rc)) {
            stop = CB_RETRY_DONE;
            break;
        }
        if (rc == CB_EFAILED && m_filtered(m, action_rc))
            seen.filtered_retried++;
        /* a retryable failure costs one token, at least 0 ... */
        if (m->max_milli)
            m->tokens = m->tokens > 1000 ? m->tokens - 1000 : 0;
        /* ... then: no attempt left, the budget, the deadline, in this order */
        if (attempt >= m->c.max_attempts) {
            m_event(p, CB_REV_RETRY_EXHAUSTED, m->now, attempt, 0, rc, action_rc, m->tokens);
            m->exhausted++;
            stop = CB_RETRY_ATTEMPTS;
            break;
        }
        if (m->max_milli && m->tokens <= m->max_milli / 2) {
            if (m->tokens == m->max_milli / 2)
                seen.budget_at_half++;
            m_event(p, CB_REV_BUDGET_EXHAUSTED, m->now, attempt, 0, rc, action_rc, m->tokens);
            m->budget++;
            stop = CB_RETRY_BUDGET;
            break;
        }
        int64_t bound = m_bound_ns(m, attempt);
        const cb_retry_event *rev = p->nev < real->nev ? &real->ev[p->nev] : NULL;
        bool real_retry = rev && rev->kind == CB_REV_RETRY;
        int64_t d = real_retry ? rev->delay_ns : 0;
        int64_t gap = deadline == INT64_MAX ? INT64_MAX : deadline - m->now;
        if (real_retry && (d < 0 || d > bound))
            m_flag(m, "the back-off before retry %d is %" PRId64 " ns, outside full jitter's "
                   "[0, %" PRId64 "] (base %" PRId64 " ms, cap %" PRId64 " ms)",
                   attempt, d, bound, m->c.base_ms, m->c.cap_ms);
        if (real_retry && gap != INT64_MAX && d >= gap)
            m_flag(m, "the back-off before retry %d (%" PRId64 " ns) ends at or after the "
                   "deadline, %" PRId64 " ns away, and was scheduled", attempt, d, gap);
        bool retry;
        if (gap == INT64_MAX || bound < gap) { /* every draw fits: a retry */
            retry = true;
            if (real_retry && bound > 0 && d >= 0 && d <= bound) {
                double u = (double)d / (double)bound;
                seen.draws++;
                seen.sum_u += u;
                seen.sum_u2 += u * u;
            }
        } else if (gap <= 0) { /* the attempt itself ran to the deadline */
            retry = false;
            seen.deadline_gap0++;
        } else { /* 0 < gap <= bound: depends on the draw, uniform on [0, bound] */
            retry = real_retry && d < gap;
            double q = (double)(bound - gap + 1) / (double)(bound + 1);
            seen.amb++;
            seen.amb_expected += q;
            seen.amb_var += q * (1 - q);
            seen.amb_stops += !retry;
        }
        if (!retry) {
            m_event(p, CB_REV_DEADLINE, m->now, attempt, 0, rc, action_rc, m->tokens);
            m->deadline++;
            seen.deadline_cut++;
            stop = CB_RETRY_DEADLINE;
            break;
        }
        m_event(p, CB_REV_RETRY, m->now, attempt + 1, d, rc, action_rc, m->tokens);
        if (d > 0) { /* the sleep function is called with ns > 0 only */
            if (p->nsleep < MAX_TRACE) {
                p->sleep_at[p->nsleep] = m->now;
                p->sleep_ns[p->nsleep++] = d;
            }
            if (a->oversleep_ns)
                seen.oversleeps++;
            m_advance_to(m, m->now + d + a->oversleep_ns);
        }
    }
    p->rc = rc;
    p->attempts = attempt;
    p->stop = stop;
    if (attempt > 0) { /* the last attempt's result */
        p->value = o.value;
        p->fallback = o.fallback;
        p->action_rc = o.action_rc;
        p->latency_ms = o.latency_ms;
    }
    m->discards += p->discards;
    seen.attempts += attempt;
    seen.runs += p->nrun;
    seen.retries += attempt > 1 ? attempt - 1 : 0;
    seen.sleeps += p->nsleep;
    seen.discards += p->discards;
    seen.stop[stop]++;
}

static void m_init(model *m, const config *c)
{
    memset(m, 0, sizeof *m);
    m->c = *c;
    m->now = START_NS;
    m->interval_ns = c->interval_ms * MS;
    m->disabled = !c->enabled;
    m->max_milli = (int64_t)c->budget_max * 1000;
    /* budget_token_ratio * 1000, rounded (the scenarios avoid halves) */
    m->ratio_milli = m->max_milli ? (c->ratio_e4 + 5) / 10 : 0;
    m->tokens = m->max_milli;
    m->base_ns = c->base_ms * MS;
    m->cap_ns = c->cap_ms * MS;
}

/* ---- libcb under test -------------------------------------------------------- */

typedef struct runner {
    config c;
    cb_manual_clock *mc;
    cb_clock clock;
    cb_breaker *b;
    cb_retry *r;
    const step *s;      /* the call being fired */
    int arg;            /* its address is every call's arg */
    trace t;
    long discards;
    uint64_t hash;      /* of every back-off and event: the same seed, the same hash */
} runner;

static int64_t r_now(runner *r) { return r->clock.now_ns(r->clock.ctx); }

static void mix(runner *r, int64_t v)
{
    r->hash = (r->hash ^ (uint64_t)v) * 0x100000001B3ull;
}

/* Moves the clock; a ticked breaker is ticked after every move. */
static void r_move(runner *r, int64_t ns)
{
    cb_manual_clock_advance_ns(r->mc, ns);
    if (r->c.ticked)
        cb_tick(r->b);
}

static const scripted *r_script(runner *r, int k) /* attempt k, from 1 */
{
    if (k < 1)
        k = 1;
    return &r->s->a[(k < r->s->n ? k : r->s->n) - 1];
}

static int action(const cb_call *call, void **result)
{
    runner *r = call->user;
    trace *t = &r->t;
    if (call->arg != &r->arg)
        t->bad_arg = true;
    const scripted *a = r_script(r, t->nrun + 1);
    if (t->nrun < MAX_TRACE)
        t->run_at[t->nrun] = r_now(r);
    else
        t->overflow = true;
    t->nrun++;
    r_move(r, a->latency_ms * MS);
    *result = a->rc == 0 ? (void *)OK_VALUE : NULL;
    return a->rc;
}

static int fallback(void *arg, int reason, int action_rc, void **result, void *user)
{
    (void)arg;
    (void)reason;
    (void)action_rc;
    (void)user;
    *result = (void *)FB_VALUE;
    return 0;
}

static bool filter(int action_rc, void *arg, void *user)
{
    (void)arg;
    runner *r = user;
    return r->c.filter && (action_rc == 409 || action_rc == 504);
}

/* The policy's sleep: recorded, then the clock moves by it (and by the
 * oversleep scripted for the attempt it follows). */
static void sleep_hook(int64_t ns, void *ctx)
{
    runner *r = ctx;
    trace *t = &r->t;
    if (t->nsleep < MAX_TRACE) {
        t->sleep_at[t->nsleep] = r_now(r);
        t->sleep_ns[t->nsleep++] = ns;
    } else {
        t->overflow = true;
    }
    mix(r, ns);
    r_move(r, ns + r_script(r, t->nrun)->oversleep_ns);
}

static void listener(cb_retry *rp, const cb_retry_event *ev, void *ctx)
{
    (void)rp;
    runner *r = ctx;
    trace *t = &r->t;
    if (ev->breaker != r->b || ev->arg != &r->arg)
        t->bad_pointer = true;
    if (t->nev < MAX_TRACE)
        t->ev[t->nev++] = *ev;
    else
        t->overflow = true;
    mix(r, ev->kind);
    mix(r, ev->delay_ns);
    mix(r, ev->time_ns);
}

static void discard(void *value, void *user)
{
    runner *r = user;
    r->t.discards++;
    r->discards++;
    if (value != FB_VALUE)
        r->t.bad_discard = true;
}

static int value_kind(const void *v)
{
    return v == NULL ? V_NULL : v == OK_VALUE ? V_OK : v == FB_VALUE ? V_FB : V_OTHER;
}

/* Fires step s through the policy; the trace is left in r->t. */
static void r_fire(runner *r, const step *s)
{
    memset(&r->t, 0, sizeof r->t);
    r->s = s;
    cb_retry_call call = { 0 };
    if (s->has_abs)
        call.deadline_ns = r_now(r) + s->abs_off_ns;
    call.timeout_ms = s->timeout_ms;
    cb_result res;
    trace *t = &r->t;
    t->rc = cb_retry_fire(r->r, r->b, &r->arg, &res, &call);
    t->attempts = call.attempts;
    t->stop = (int)call.stop;
    t->value = value_kind(res.value);
    t->fallback = res.fallback;
    t->action_rc = res.action_rc;
    t->latency_ms = res.latency_ms;
    mix(r, t->rc);
}

static bool r_start(runner *r, const config *c)
{
    memset(r, 0, sizeof *r);
    r->c = *c;
    r->hash = 0xCBF29CE484222325ull;
    r->mc = cb_manual_clock_new(START_NS);
    if (!r->mc)
        return false;
    r->clock = cb_manual_clock_get(r->mc);
    cb_options o;
    cb_options_init(&o);
    o.name = "retry-model";
    o.action = action;
    o.user = r;
    o.clock = r->clock;
    o.rolling_count_buckets = c->buckets;
    o.rolling_count_timeout_ms = c->buckets * c->interval_ms;
    o.timeout_ms = c->timeout_ms;
    o.reset_timeout_ms = c->reset_ms;
    o.error_threshold_percentage = c->threshold;
    o.volume_threshold = c->volume;
    o.enabled = c->enabled;
    o.fallback = c->fallback ? fallback : NULL;
    o.error_filter = filter;
    o.half_open_max_calls = c->trials;
    o.half_open_success_threshold = c->successes_to_close;
    if (c->backoff_cap_ms) {
        o.reset_backoff_multiplier = 2.0;
        o.reset_timeout_max_ms = c->backoff_cap_ms;
    }
    o.seed = 1;
    int rc = cb_create(&o, &r->b);
    if (rc != CB_OK) {
        fprintf(stderr, "retry_model: cb_create: %s\n", cb_strerror(rc));
        cb_manual_clock_free(r->mc);
        return false;
    }
    cb_retry_options ro;
    cb_retry_options_init(&ro);
    ro.name = "retry-model";
    ro.max_attempts = c->max_attempts;
    ro.base_ms = c->base_ms;
    ro.cap_ms = c->cap_ms;
    ro.budget_max_tokens = c->budget_max;
    ro.budget_token_ratio = c->ratio_e4 / 10000.0;
    ro.discard = discard;
    ro.user = r;
    ro.clock = r->clock;
    ro.sleep = sleep_hook;
    ro.sleep_ctx = r;
    ro.seed = c->seed;
    rc = cb_retry_create(&ro, &r->r);
    if (rc == CB_OK && cb_retry_on(r->r, CB_REV_ALL, listener, r) <= 0)
        rc = CB_ENOMEM;
    if (rc != CB_OK) {
        fprintf(stderr, "retry_model: cb_retry_create: %s\n", cb_strerror(rc));
        cb_retry_destroy(r->r);
        cb_destroy(r->b);
        cb_manual_clock_free(r->mc);
        return false;
    }
    return true;
}

static void r_stop(runner *r)
{
    cb_retry_destroy(r->r);
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

static const char *stop_name(int s)
{
    static const char *names[] = { "DONE", "REFUSED", "ATTEMPTS", "BUDGET", "DEADLINE" };
    return s >= 0 && s < 5 ? names[s] : "?";
}

static const char *value_name(int v)
{
    static const char *names[] = { "NULL", "\"ok\"", "\"fallback\"", "another pointer" };
    return names[v];
}

static const char *m_state_name(const model *m)
{
    if (m->shut)
        return "shutdown";
    if (m->disabled)
        return "disabled";
    if (m->force)
        return m->force == S_FORCE_OPEN ? "forced-open" : "forced-closed";
    return m->core == M_CLOSED ? "closed" : m->core == M_OPEN ? "open" : "half-open";
}

static void ev_text(char *buf, size_t n, const cb_retry_event *e)
{
    snprintf(buf, n, "%s(attempt %d, delay %" PRId64 " ns, rc %s, action_rc %d, tokens %.3f, "
             "at +%" PRId64 " ns)", cb_retry_event_name(e->kind), e->attempt, e->delay_ns,
             cb_err_name(e->rc), e->action_rc, e->budget_tokens, e->time_ns - START_NS);
}

/* One call: libcb's trace t against the model's prediction p. */
static bool same_call(const trace *t, const trace *p, model *m)
{
    if (t->overflow)
        return differ("libcb made more than %d attempts, sleeps or events in one call "
                      "(max_attempts %d)", MAX_TRACE, m->c.max_attempts);
    if (t->bad_arg)
        return differ("the action was given another arg than the call's");
    if (t->bad_pointer)
        return differ("an event named another breaker or arg than the call's");
    if (t->bad_discard)
        return differ("discard was called with a value no failed attempt's fallback gave");
    if (m->flag[0])
        return differ("%s", m->flag);
    char a[256], b[256];
    for (int k = 0; k < t->nev || k < p->nev; k++) {
        if (k >= t->nev || k >= p->nev) {
            ev_text(a, sizeof a, k < t->nev ? &t->ev[k] : &p->ev[k]);
            return differ("event %d: only %s has it: %s", k + 1, k < t->nev ? "libcb" : "the model",
                          a);
        }
        const cb_retry_event *x = &t->ev[k], *y = &p->ev[k];
        if (x->kind != y->kind || x->time_ns != y->time_ns || x->attempt != y->attempt ||
            x->delay_ns != y->delay_ns || x->rc != y->rc || x->action_rc != y->action_rc ||
            x->budget_tokens != y->budget_tokens) {
            ev_text(a, sizeof a, x);
            ev_text(b, sizeof b, y);
            return differ("event %d: libcb %s, model %s", k + 1, a, b);
        }
    }
    if (t->rc != p->rc)
        return differ("cb_retry_fire returned %s, model %s", cb_err_name(t->rc), cb_err_name(p->rc));
    if (t->attempts != p->attempts || t->stop != p->stop)
        return differ("call: libcb %d attempts, stop %s; model %d attempts, stop %s", t->attempts,
                      stop_name(t->stop), p->attempts, stop_name(p->stop));
    if (t->nrun != p->nrun)
        return differ("the action ran %d times, model %d", t->nrun, p->nrun);
    for (int k = 0; k < t->nrun; k++)
        if (t->run_at[k] != p->run_at[k])
            return differ("run %d started at +%" PRId64 " ns, model +%" PRId64, k + 1,
                          t->run_at[k] - START_NS, p->run_at[k] - START_NS);
    if (t->nsleep != p->nsleep)
        return differ("%d back-offs slept, model %d", t->nsleep, p->nsleep);
    for (int k = 0; k < t->nsleep; k++)
        if (t->sleep_at[k] != p->sleep_at[k] || t->sleep_ns[k] != p->sleep_ns[k])
            return differ("sleep %d: libcb %" PRId64 " ns at +%" PRId64 ", model %" PRId64
                          " ns at +%" PRId64, k + 1, t->sleep_ns[k], t->sleep_at[k] - START_NS,
                          p->sleep_ns[k], p->sleep_at[k] - START_NS);
    if (t->value != p->value || t->fallback != p->fallback || t->action_rc != p->action_rc)
        return differ("result: libcb value %s, fallback %d, action_rc %d; model %s, %d, %d",
                      value_name(t->value), t->fallback, t->action_rc, value_name(p->value),
                      p->fallback, p->action_rc);
    if (t->latency_ms != p->latency_ms)
        return differ("result latency: libcb %.6f ms, model %.6f ms", t->latency_ms, p->latency_ms);
    if (t->discards != p->discards)
        return differ("%d values discarded, model %d", t->discards, p->discards);
    return true;
}

/* After every step: the clock, the breaker, the policy's counts. */
static bool agree(runner *r, model *m)
{
    int64_t now = r_now(r);
    if (now != m->now)
        return differ("clock: libcb at +%" PRId64 " ns, model +%" PRId64, now - START_NS,
                      m->now - START_NS);
    cb_stats st;
    if (cb_get_stats(r->b, &st) != CB_OK)
        return differ("cb_get_stats failed");
    cb_state want = m->shut ? CB_SHUTDOWN
                  : m->disabled ? CB_DISABLED
                  : m->force == S_FORCE_OPEN ? CB_FORCED_OPEN
                  : m->force == S_FORCE_CLOSED ? CB_FORCED_CLOSED
                  : m->core == M_CLOSED ? CB_CLOSED
                  : m->core == M_OPEN ? CB_OPEN : CB_HALF_OPEN;
    bool pending = m->pending && want == CB_HALF_OPEN && st.state == CB_OPEN &&
                   st.open_until_ns <= now; /* lazy: moves at the next call or tick */
    if (st.state != want && !pending)
        return differ("state: libcb %s, model %s", cb_state_name(st.state), m_state_name(m));
    if (want == CB_OPEN && st.open_until_ns != m->open_until)
        return differ("open timer: libcb ends at +%" PRId64 " ns, model +%" PRId64,
                      st.open_until_ns - START_NS, m->open_until - START_NS);
    mcounts w = m_window(m);
    struct { const char *name; uint64_t lib; long mod; } f[] = {
        { "window fires", st.window.fires, w.fires },
        { "window successes", st.window.successes, w.successes },
        { "window failures", st.window.failures, w.failures },
        { "window timeouts", st.window.timeouts, w.timeouts },
        { "window rejects", st.window.rejects, w.rejects },
        { "window fallbacks", st.window.fallbacks, w.fallbacks },
        { "total fires", st.total.fires, m->total.fires },
        { "total successes", st.total.successes, m->total.successes },
        { "total failures", st.total.failures, m->total.failures },
        { "total timeouts", st.total.timeouts, m->total.timeouts },
        { "total rejects", st.total.rejects, m->total.rejects },
        { "total fallbacks", st.total.fallbacks, m->total.fallbacks },
    };
    for (size_t k = 0; k < sizeof f / sizeof f[0]; k++)
        if (f[k].lib != (uint64_t)f[k].mod)
            return differ("breaker %s: libcb %" PRIu64 ", model %ld", f[k].name, f[k].lib,
                          f[k].mod);
    cb_retry_stats rs;
    if (cb_retry_get_stats(r->r, &rs) != CB_OK)
        return differ("cb_retry_get_stats failed");
    struct { const char *name; uint64_t lib, mod; } g[] = {
        { "calls", rs.calls, m->calls },
        { "attempts", rs.attempts, m->attempts },
        { "retries", rs.retries, m->retries },
        { "retries_exhausted", rs.retries_exhausted, m->exhausted },
        { "budget_exhausted", rs.budget_exhausted, m->budget },
        { "deadline_exceeded", rs.deadline_exceeded, m->deadline },
        { "deadline_before_first", rs.deadline_before_first, m->before_first },
        { "refused", rs.refused, m->refused },
    };
    for (size_t k = 0; k < sizeof g / sizeof g[0]; k++)
        if (g[k].lib != g[k].mod)
            return differ("retry %s: libcb %" PRIu64 ", model %" PRIu64, g[k].name, g[k].lib,
                          g[k].mod);
    if (rs.budget_tokens != (double)m->tokens / 1000.0)
        return differ("budget: libcb %.3f tokens, model %.3f", rs.budget_tokens,
                      (double)m->tokens / 1000.0);
    if (rs.budget_max_tokens != m->c.budget_max)
        return differ("budget_max_tokens: libcb %d, model %d", rs.budget_max_tokens, m->c.budget_max);
    if (rs.attempts != rs.calls - rs.deadline_before_first + rs.retries)
        return differ("retry stats: attempts %" PRIu64 " != calls %" PRIu64 " - before first %"
                      PRIu64 " + retries %" PRIu64, rs.attempts, rs.calls,
                      rs.deadline_before_first, rs.retries);
    if (r->discards != m->discards)
        return differ("discards: libcb %ld, model %ld", r->discards, m->discards);
    return true;
}

/* The hand-computed facts a regression scenario pins, on libcb's counts. */
static bool pinned(runner *r, const want *w)
{
    cb_retry_stats rs;
    cb_retry_get_stats(r->r, &rs);
    struct { const char *name; uint64_t lib, want; } g[] = {
        { "calls", rs.calls, w->calls },
        { "attempts", rs.attempts, w->attempts },
        { "retries", rs.retries, w->retries },
        { "retries_exhausted", rs.retries_exhausted, w->exhausted },
        { "budget_exhausted", rs.budget_exhausted, w->budget },
        { "deadline_exceeded", rs.deadline_exceeded, w->deadline },
        { "deadline_before_first", rs.deadline_before_first, w->before_first },
        { "refused", rs.refused, w->refused },
    };
    for (size_t k = 0; k < sizeof g / sizeof g[0]; k++)
        if (g[k].lib != g[k].want)
            return differ("pinned %s: libcb %" PRIu64 ", pinned %" PRIu64, g[k].name, g[k].lib,
                          g[k].want);
    if (rs.budget_tokens != (double)w->tokens_milli / 1000.0)
        return differ("pinned budget: libcb %.3f tokens, pinned %.3f", rs.budget_tokens,
                      (double)w->tokens_milli / 1000.0);
    if (cb_get_state(r->b) != w->state)
        return differ("pinned state: libcb %s, pinned %s", cb_state_name(cb_get_state(r->b)),
                      cb_state_name(w->state));
    return true;
}

/* Runs sc; returns the index of the first step that disagrees (nsteps for
 * a pinned fact), or -1 when all agree. *hash: libcb's back-offs and events. */
static int run(const scenario *sc, uint64_t *hash)
{
    static runner r;
    static model m;
    static trace p;
    config c = sc->cfg;
    if (c.trials < 1)
        c.trials = 1;
    if (c.successes_to_close < 1)
        c.successes_to_close = 1;
    if (!c.seed)
        c.seed = DEFAULT_SEED;
    if (!r_start(&r, &c)) {
        differ("cannot create the breaker or the policy");
        return 0;
    }
    m_init(&m, &c);
    int bad = -1;
    if (!agree(&r, &m))
        bad = 0;
    for (int i = 0; i < sc->nsteps && bad < 0; i++) {
        const step *s = &sc->s[i];
        switch (s->kind) {
        case S_ADVANCE:
            r_move(&r, s->ns);
            m_advance_to(&m, m.now + s->ns);
            break;
        case S_TICK:
            cb_tick(r.b);
            m_due(&m, true);
            break;
        case S_FIRE:
            r_fire(&r, s);
            m_call(&m, s, &r.t, &p);
            if (!same_call(&r.t, &p, &m))
                bad = i;
            break;
        case S_OPEN: /* opens, unless open already; a lapsed period is half-open */
            cb_open(r.b);
            if (!m.shut) {
                m_due(&m, true);
                if (m.core != M_OPEN)
                    m_open(&m);
            }
            break;
        case S_CLOSE:
            cb_close(r.b);
            if (!m.shut) {
                if (m.core != M_CLOSED)
                    m_close(&m);
                m.backoff_step = 0;
            }
            break;
        case S_FORCE_OPEN:
        case S_FORCE_CLOSED:
            cb_force(r.b, s->kind == S_FORCE_OPEN ? CB_FORCE_OPEN : CB_FORCE_CLOSED);
            if (!m.shut)
                m.force = s->kind;
            break;
        case S_FORCE_NONE: /* the override ends in closed */
            cb_force(r.b, CB_FORCE_NONE);
            if (!m.shut) {
                m.force = 0;
                if (m.core != M_CLOSED)
                    m_close(&m);
            }
            break;
        case S_ENABLE:
        case S_DISABLE:
            cb_enable(r.b, s->kind == S_ENABLE);
            if (!m.shut)
                m.disabled = s->kind == S_DISABLE;
            break;
        case S_SHUTDOWN:
            cb_shutdown(r.b);
            m.shut = true;
            break;
        }
        seen.steps++;
        if (bad < 0 && !agree(&r, &m))
            bad = i;
    }
    if (bad < 0 && sc->w.on && !pinned(&r, &sc->w))
        bad = sc->nsteps;
    if (hash)
        *hash = r.hash;
    r_stop(&r);
    return bad;
}

/* ---- generating ------------------------------------------------------------ */

/* the generator: model_rng.h */
static int64_t at_least0(int64_t v) { return v < 0 ? 0 : v; }

static const int64_t retryable_rcs[] = { 502, 503, 504, -ECONNREFUSED, -ECONNRESET, -ETIMEDOUT };
static const int64_t other_rcs[] = { 400, 404, 409, 429, 500, 501, -1, 7 };

/* A duration in ms near the edges that matter: a bucket, the window, the
 * breaker's timeout, the reset period, the back-off's base and cap. */
static int64_t duration_ms(const config *c)
{
    int64_t win = c->buckets * c->interval_ms;
    switch (below(10)) {
    case 0: return 0;
    case 1: return below(c->interval_ms);
    case 2: return c->interval_ms + below(3) - 1;
    case 3: return c->timeout_ms ? c->timeout_ms + below(3) - 1 : below(win);
    case 4: return below(2 * win + 1);
    case 5: return at_least0(c->reset_ms + below(3) - 1);
    case 6: return below(c->base_ms + 2);
    case 7: return below(c->cap_ms + 2);
    case 8: return below(c->interval_ms / 4 + 1);
    default: return win + below(3) - 1;
    }
}

static void gen_config(config *c)
{
    static const int64_t buckets[] = { 1, 2, 5, 10 };
    static const int64_t intervals[] = { 10, 50, 100, 250 };
    c->buckets = (int)pick(buckets, 4);
    c->interval_ms = pick(intervals, 4);
    int64_t win = c->buckets * c->interval_ms;
    c->timeout_ms = chance(25) ? 0 : 1 + below(win);
    c->reset_ms = chance(5) ? 0 : 1 + below(2 * win);
    static const int64_t thresholds[] = { 0, 10, 25, 50, 50, 75, 75, 100 };
    c->threshold = (int)pick(thresholds, 8);
    c->volume = chance(25) ? 0 : 1 + (int)below(8);
    c->trials = chance(70) ? 1 : 2 + (int)below(2);
    c->successes_to_close = 1 + (int)below(c->trials);
    c->backoff_cap_ms = chance(70) || !c->reset_ms ? 0 : c->reset_ms * (1 + below(8));
    c->enabled = chance(97);
    c->fallback = chance(60);
    c->filter = chance(25);
    c->ticked = chance(50);
    static const int64_t attempts[] = { 1, 2, 3, 3, 4, 5, 8 };
    c->max_attempts = (int)pick(attempts, 7);
    static const int64_t bases[] = { 0, 1, 5, 20, 100 };
    c->base_ms = pick(bases, 5);
    int64_t caps[] = { c->base_ms, 2 * c->base_ms, 4 * c->base_ms, 1000, 50, 0 };
    c->cap_ms = pick(caps, 6);
    static const int64_t budgets[] = { 0, 0, 1, 2, 3, 4, 5, 10, 20 };
    c->budget_max = (int)pick(budgets, 9);
    static const int64_t ratios[] = { 10, 16, 1000, 2500, 5000, 10000, 20000, 3333 };
    c->ratio_e4 = chance(75) ? (int)pick(ratios, 8) : 10 + (int)below(30000);
    if (c->ratio_e4 % 10 == 5) /* no halves: "rounded" has one answer */
        c->ratio_e4++;
    c->seed = next_u64() | 1;
}

static void gen_fire(const config *c, step *s)
{
    s->kind = S_FIRE;
    s->n = 1 + (int)below(MAX_SCRIPT);
    for (int j = 0; j < s->n; j++) {
        scripted *a = &s->a[j];
        int64_t k = below(100);
        a->latency_ms = chance(45) ? 0 : duration_ms(c) / (chance(50) ? 1 : 4);
        if (k < 25) {
            a->rc = 0;
        } else if (k < 65) {
            a->rc = (int)pick(retryable_rcs, 6);
        } else if (k < 82) {
            a->rc = (int)pick(other_rcs, 8);
        } else { /* the breaker's timeout, whatever the action answers late */
            a->rc = chance(30) ? 0 : chance(50) ? (int)pick(retryable_rcs, 6) : (int)pick(other_rcs, 8);
            a->latency_ms = c->timeout_ms ? c->timeout_ms + below(3) : duration_ms(c);
        }
        a->oversleep_ns = chance(85) ? 0 : below(2 * c->cap_ms + 2) * MS + below(MS);
    }
    s->has_abs = false;
    s->abs_off_ns = 0;
    s->timeout_ms = 0;
    int64_t k = below(100);
    if (k < 35)
        return;
    /* deadlines near the end of the first attempt and its back-off's range */
    int64_t lat0 = s->a[0].latency_ms;
    int64_t bound1 = c->base_ms < c->cap_ms ? c->base_ms : c->cap_ms;
    int64_t span = 3 * c->cap_ms + 3 * lat0 + 20;
    if (k < 60 || k >= 85)
        s->timeout_ms = 1 + (chance(50) ? lat0 + below(2 * bound1 + 2) : below(span));
    if (k >= 60) {
        s->has_abs = true;
        int64_t w = below(16);
        if (w == 0)                           /* now, or passed */
            s->abs_off_ns = chance(50) ? 0 : -below(5 * MS);
        else if (w < 3 && lat0 > 0)           /* at the first attempt's end */
            s->abs_off_ns = lat0 * MS + below(3) - 1;
        else if (w < 9)                       /* inside the first back-off's range */
            s->abs_off_ns = lat0 * MS + 1 + below(2 * bound1 * MS + 2);
        else
            s->abs_off_ns = below(span) * MS + below(MS);
    }
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
        int64_t k = below(1000);
        if (k < 200) {
            s->kind = S_ADVANCE;
            s->ns = duration_ms(&sc->cfg) * MS + (chance(20) ? below(MS) : 0);
        } else if (k < 270) {
            s->kind = S_TICK;
        } else if (k < 850) {
            gen_fire(&sc->cfg, s);
        } else if (k < 885) {
            s->kind = S_OPEN;
        } else if (k < 910) {
            s->kind = S_CLOSE;
        } else if (k < 935) {
            static const int64_t forces[] = { S_FORCE_OPEN, S_FORCE_CLOSED, S_FORCE_NONE,
                                              S_FORCE_NONE, S_FORCE_NONE };
            s->kind = (int)pick(forces, 5);
        } else if (k < 955) {
            s->kind = chance(25) ? S_DISABLE : S_ENABLE;
        } else if (k < 960 && i > sc->nsteps * 3 / 4) {
            s->kind = S_SHUTDOWN;
        } else {
            gen_fire(&sc->cfg, s);
        }
    }
}

/* ---- shrinking and printing ---------------------------------------------- */

static bool fails(const scenario *sc) { return run(sc, NULL) >= 0; }

/* Drops steps, cuts scripts and zeroes durations while sc still fails. */
static void shrink(scenario *sc)
{
    bool progress = true;
    while (progress) {
        progress = false;
        for (int i = sc->nsteps - 1; i >= 0; i--) {
            scenario t = *sc;
            memmove(&t.s[i], &t.s[i + 1], sizeof(step) * (size_t)(t.nsteps - i - 1));
            t.nsteps--;
            if (fails(&t)) {
                *sc = t;
                progress = true;
            }
        }
        for (int i = 0; i < sc->nsteps; i++) {
            step *s = &sc->s[i];
            if (s->kind == S_FIRE && s->n > 1) {
                s->n--;
                if (fails(sc))
                    progress = true;
                else
                    s->n++;
            }
            int64_t *fields[2 * MAX_SCRIPT + 1];
            int nf = 0;
            if (s->kind == S_ADVANCE)
                fields[nf++] = &s->ns;
            for (int j = 0; s->kind == S_FIRE && j < s->n; j++) {
                fields[nf++] = &s->a[j].latency_ms;
                fields[nf++] = &s->a[j].oversleep_ns;
            }
            for (int f = 0; f < nf; f++) {
                int64_t old = *fields[f];
                if (old == 0)
                    continue;
                *fields[f] = 0;
                if (fails(sc)) {
                    progress = true;
                    continue;
                }
                *fields[f] = old;
            }
        }
    }
}

static void print_scenario(const scenario *sc, const char *name)
{
    config norm = sc->cfg;
    const config *c = &norm;
    if (norm.trials < 1)
        norm.trials = 1;
    if (norm.successes_to_close < 1)
        norm.successes_to_close = 1;
    if (!norm.seed)
        norm.seed = DEFAULT_SEED;
    static const char *kinds[] = { "S_ADVANCE", "S_TICK", "S_FIRE", "S_OPEN", "S_CLOSE",
                                   "S_FORCE_OPEN", "S_FORCE_CLOSED", "S_FORCE_NONE",
                                   "S_ENABLE", "S_DISABLE", "S_SHUTDOWN" };
    printf("    SCENARIO(\"%s\",\n", name);
    printf("             ALL(.buckets = %d, .interval_ms = %" PRId64 ", .timeout_ms = %" PRId64
           ", .reset_ms = %" PRId64 ",\n"
           "                 .threshold = %d, .volume = %d, .trials = %d, .successes_to_close = %d,"
           "\n                 .backoff_cap_ms = %" PRId64 ", .enabled = %s, .fallback = %s,"
           " .filter = %s, .ticked = %s,\n"
           "                 .max_attempts = %d, .base_ms = %" PRId64 ", .cap_ms = %" PRId64
           ", .budget_max = %d, .ratio_e4 = %d,\n                 .seed = %" PRIu64 "ull),\n"
           "             NO_PIN",
           c->buckets, c->interval_ms, c->timeout_ms, c->reset_ms, c->threshold, c->volume,
           c->trials, c->successes_to_close, c->backoff_cap_ms, c->enabled ? "true" : "false",
           c->fallback ? "true" : "false", c->filter ? "true" : "false",
           c->ticked ? "true" : "false", c->max_attempts, c->base_ms, c->cap_ms, c->budget_max,
           c->ratio_e4, c->seed);
    for (int i = 0; i < sc->nsteps; i++) {
        const step *s = &sc->s[i];
        printf(",\n             ");
        if (s->kind == S_ADVANCE) {
            printf("ADV(%" PRId64 ")", s->ns);
        } else if (s->kind == S_FIRE) {
            printf("FIRE(%s, %" PRId64 ", %" PRId64, s->has_abs ? "true" : "false", s->abs_off_ns,
                   s->timeout_ms);
            for (int j = 0; j < s->n; j++)
                printf(", AT(%d, %" PRId64 ", %" PRId64 ")", s->a[j].rc, s->a[j].latency_ms,
                       s->a[j].oversleep_ns);
            printf(")");
        } else {
            printf("CTRL(%s)", kinds[s->kind]);
        }
    }
    printf("),\n");
}

/* ---- regressions: scenarios that pin the trickiest cases, kept for ever ------- */

/* A breaker with a 1 s window in 10 buckets that opens on 50% errors, no
 * timeout, reset period 0, one trial (trials and successes_to_close of 0
 * read as 1); a policy with no budget and the seed DEFAULT_SEED (a seed of
 * 0 reads as it). The rest as given. */
#define CFG(...)                                                                        \
    { .buckets = 10, .interval_ms = 100, .threshold = 50, .enabled = true, __VA_ARGS__ }
#define SCENARIO(nm, cf, pin, ...)                                                      \
    { .name = (nm), .cfg = cf, .w = pin,                                                \
      .nsteps = (int)(sizeof((step[]){ __VA_ARGS__ }) / sizeof(step)), .s = { __VA_ARGS__ } }
#define ALL(...)      { __VA_ARGS__ }   /* every field given: what a mismatch prints */
#define NO_PIN        { .on = false }
#define PIN(...)      { .on = true, __VA_ARGS__ }
#define ADV(t)        { .kind = S_ADVANCE, .ns = (t) }
#define CTRL(k)       { .kind = (k) }
#define AT(r, l, o)   { .rc = (r), .latency_ms = (l), .oversleep_ns = (o) }
#define FIRE(abs, off, tmo, ...)                                                        \
    { .kind = S_FIRE, .has_abs = (abs), .abs_off_ns = (off), .timeout_ms = (tmo),       \
      .n = (int)(sizeof((scripted[]){ __VA_ARGS__ }) / sizeof(scripted)),                 \
      .a = { __VA_ARGS__ } }
#define CALL(...)     FIRE(false, 0, 0, __VA_ARGS__)

static const scenario regressions[] = {
    /* The budget at exactly half its maximum refuses the retry. Three tokens
     * (3000 milli, half 1500), ratio 0.5 (500), three attempts:
     *   503 503 503   3000 -1000 = 2000 > 1500: retry; 1000 <= 1500: budget  (2 attempts)
     *   ok ok ok      1500, 2000, 2500
     *   503 ok        2500 -1000 = 1500, exactly half: budget-exhausted    (1 attempt)
     *   ok ok ok      2000, 2500, 3000 (the cap)
     *   503 ok        3000 -1000 = 2000: retry, then ok: 2500              (2 attempts)
     * = 9 calls, 11 attempts, 2 retries, 2 budget stops, 2500 milli-tokens. */
    SCENARIO("budget_exhausted_exactly_at_half",
             CFG(.volume = 1000, .max_attempts = 3, .base_ms = 10, .cap_ms = 100,
                 .budget_max = 3, .ratio_e4 = 5000),
             PIN(.calls = 9, .attempts = 11, .retries = 2, .budget = 2, .tokens_milli = 2500,
                 .state = CB_CLOSED),
             CALL(AT(503, 0, 0)), CALL(AT(0, 0, 0)), CALL(AT(0, 0, 0)), CALL(AT(0, 0, 0)),
             CALL(AT(503, 0, 0), AT(0, 0, 0)), CALL(AT(0, 0, 0)), CALL(AT(0, 0, 0)),
             CALL(AT(0, 0, 0)), CALL(AT(503, 0, 0), AT(0, 0, 0))),
    /* Two tokens: a failure from the full budget leaves exactly half, so this
     * budget never allows a retry; a 404 costs nothing. 2000 -> 1000, 1000,
     * 1000 + 2 * 1000 (ratio 1) = 2000 (capped at max), 1000. */
    SCENARIO("two_tokens_never_retry",
             CFG(.volume = 1000, .max_attempts = 5, .base_ms = 1, .cap_ms = 1,
                 .budget_max = 2, .ratio_e4 = 10000),
             PIN(.calls = 5, .attempts = 5, .budget = 2, .tokens_milli = 1000,
                 .state = CB_CLOSED),
             CALL(AT(503, 0, 0), AT(0, 0, 0)), CALL(AT(404, 0, 0)), CALL(AT(0, 0, 0)),
             CALL(AT(0, 0, 0)), CALL(AT(-ECONNRESET, 0, 0), AT(0, 0, 0))),
    /* The deadline cuts the back-off: the first attempt takes 10 ms, the
     * deadline is 1 ns after it, every back-off is up to 100 ms (the seed's
     * first draw is 86 ms): "deadline" after one attempt, no sleep, the token
     * spent (9000). Then a deadline exactly at the attempt's end (the earlier
     * of deadline_ns and timeout_ms; nothing left: deadline, 8000), and one
     * already passed (no attempt at all: CB_ETIMEDOUT, deadline_before_first). */
    SCENARIO("deadline_cuts_the_backoff",
             CFG(.volume = 1000, .max_attempts = 4, .base_ms = 100, .cap_ms = 100,
                 .budget_max = 10, .ratio_e4 = 1000),
             PIN(.calls = 3, .attempts = 2, .deadline = 3, .before_first = 1,
                 .tokens_milli = 8000, .state = CB_CLOSED),
             FIRE(true, 10 * MS + 1, 0, AT(503, 10, 0)),
             FIRE(true, 10 * MS, 50, AT(-ETIMEDOUT, 10, 0)),
             FIRE(true, 0, 0, AT(0, 0, 0))),
    /* A back-off that fits (base = cap = 1 ms, 1.5 ms left after a 10 ms
     * attempt) but oversleeps by 5 ms: "retry" was announced, yet no attempt
     * starts after the deadline: "deadline" with the attempts made (1). */
    SCENARIO("deadline_after_an_oversleep",
             CFG(.volume = 1000, .max_attempts = 4, .base_ms = 1, .cap_ms = 1,
                 .budget_max = 10, .ratio_e4 = 1000),
             PIN(.calls = 1, .attempts = 1, .deadline = 1, .tokens_milli = 9000,
                 .state = CB_CLOSED),
             FIRE(true, 11500000, 0, AT(503, 10, 5 * MS))),
    /* The breaker's own timeout is a retryable failure: 60 ms against 50. */
    SCENARIO("breaker_timeouts_are_retried",
             CFG(.timeout_ms = 50, .volume = 1000, .max_attempts = 3, .base_ms = 0,
                 .budget_max = 0),
             PIN(.calls = 1, .attempts = 3, .retries = 2, .exhausted = 1, .state = CB_CLOSED),
             CALL(AT(0, 60, 0))),
    /* A half-open breaker admits one trial: it fails, the circuit opens
     * again, the retry is rejected (CB_EOPEN, not retried, no token for the
     * rejection). After the period, a trial that succeeds closes it in one
     * attempt. */
    SCENARIO("half_open_admits_one_attempt",
             CFG(.volume = 1000, .reset_ms = 1000, .max_attempts = 3, .base_ms = 10,
                 .cap_ms = 10, .fallback = true, .budget_max = 10, .ratio_e4 = 1000),
             PIN(.calls = 2, .attempts = 3, .retries = 1, .refused = 1, .tokens_milli = 9100,
                 .state = CB_CLOSED),
             CTRL(S_OPEN), ADV(1000 * MS), CALL(AT(503, 0, 0), AT(0, 0, 0)), ADV(2000 * MS),
             CALL(AT(0, 0, 0))),
    /* With a reset period of 0 every failed trial's circuit is half-open
     * again at once: each retry is a new trial, until one succeeds. */
    SCENARIO("zero_reset_each_retry_is_a_new_trial",
             CFG(.volume = 1000, .reset_ms = 0, .max_attempts = 4, .base_ms = 0,
                 .budget_max = 0),
             PIN(.calls = 1, .attempts = 3, .retries = 2, .state = CB_CLOSED),
             CTRL(S_OPEN), CALL(AT(503, 0, 0), AT(504, 0, 0), AT(0, 0, 0))),
    /* Two trials, two successes to close: a trial that the error filter
     * passes (504) is a success to the breaker yet a retryable CB_EFAILED to
     * the policy; the retry is the second trial and closes the circuit. */
    SCENARIO("filtered_trial_is_retried_and_counts_as_a_success",
             CFG(.volume = 1000, .reset_ms = 100, .trials = 2, .successes_to_close = 2,
                 .filter = true, .max_attempts = 3, .base_ms = 0, .budget_max = 0),
             PIN(.calls = 1, .attempts = 2, .retries = 1, .state = CB_CLOSED),
             CTRL(S_OPEN), ADV(100 * MS), CALL(AT(504, 0, 0), AT(0, 0, 0))),
    /* Failed attempts open a closed breaker (volume 2): the third attempt is
     * rejected and ends the call; an open breaker rejects a new call once. */
    SCENARIO("failures_open_the_breaker_mid_call",
             CFG(.volume = 2, .reset_ms = 5000, .max_attempts = 5, .base_ms = 1, .cap_ms = 4,
                 .budget_max = 0, .fallback = true),
             PIN(.calls = 2, .attempts = 4, .retries = 2, .refused = 2, .state = CB_OPEN),
             CALL(AT(503, 1, 0)), CALL(AT(0, 0, 0))),
    /* Forced open: rejected, never retried; shut down: the same. */
    SCENARIO("forced_open_and_shutdown_refuse_once",
             CFG(.volume = 1000, .max_attempts = 3, .base_ms = 1, .cap_ms = 1,
                 .budget_max = 10, .ratio_e4 = 1000),
             PIN(.calls = 2, .attempts = 2, .refused = 2, .tokens_milli = 10000,
                 .state = CB_SHUTDOWN),
             CTRL(S_FORCE_OPEN), CALL(AT(503, 0, 0)), CTRL(S_SHUTDOWN), CALL(AT(0, 0, 0))),
};

/* ---- main ------------------------------------------------------------------ */

static uint64_t env_u64(const char *name, uint64_t dflt, bool *set)
{
    const char *v = getenv(name);
    if (set)
        *set = v && *v;
    return v && *v ? strtoull(v, NULL, 0) : dflt;
}

/* Runs sc; on a mismatch prints where, shrinks it and prints it. */
static bool check(const scenario *sc, const char *label, uint64_t base, uint64_t index,
                  uint64_t seed, bool twice)
{
    uint64_t h1 = 0, h2 = 0;
    int bad = run(sc, &h1);
    if (bad < 0 && twice && run(sc, &h2) < 0 && h1 != h2) {
        differ("the same seed (%" PRIu64 ") gave libcb another sequence of back-offs and "
               "events on a second run", sc->cfg.seed);
        bad = sc->nsteps;
    }
    if (bad < 0)
        return true;
    if (seed && base)
        printf("MISMATCH %s %" PRIu64 " (RETRY_MODEL_SEED=%" PRIu64 ") at step %d of %d: %s\n"
               "replay: RETRY_MODEL_REPLAY=%" PRIu64 "\n",
               label, index, base, bad, sc->nsteps, why, seed);
    else if (seed)
        printf("MISMATCH %s of RETRY_MODEL_REPLAY=%" PRIu64 " at step %d of %d: %s\n", label,
               seed, bad, sc->nsteps, why);
    else
        printf("MISMATCH %s (%s) at step %d of %d: %s\n", label, sc->name, bad, sc->nsteps, why);
    scenario *small = malloc(sizeof *small);
    if (!small)
        return false;
    *small = *sc;
    small->w.on = false;
    if (fails(small)) {
        shrink(small);
        int at = run(small, NULL);
        printf("shrunk to %d steps (step %d): %s\npaste into regressions[]:\n", small->nsteps, at,
               why);
        print_scenario(small, "found_by_the_model");
    }
    free(small);
    return false;
}

int main(void)
{
    bool replay_set;
    uint64_t replay = env_u64("RETRY_MODEL_REPLAY", 0, &replay_set);
    uint64_t dflt = (uint64_t)time(NULL) ^ ((uint64_t)clock() << 20);
    uint64_t base = env_u64("RETRY_MODEL_SEED", env_u64("MODEL_SEED", dflt, NULL), NULL);
    uint64_t seqs = env_u64("RETRY_MODEL_SEQS", 2000, NULL);
    int failed = 0;
    size_t nreg = sizeof regressions / sizeof regressions[0];

    for (size_t i = 0; i < nreg; i++)
        if (!check(&regressions[i], "regression", 0, i, 0, true))
            failed++;
    printf("retry_model: %zu regression scenarios, %d failed\n", nreg, failed);

    static scenario sc;
    if (replay_set) {
        gen_scenario(&sc, replay);
        bool ok = check(&sc, "replay", 0, 0, replay, true);
        printf("retry_model: replayed sequence %" PRIu64 ": %s\n", replay, ok ? "ok" : "FAILED");
        return ok && !failed ? 0 : 1;
    }
    printf("retry_model: RETRY_MODEL_SEED=%" PRIu64 " RETRY_MODEL_SEQS=%" PRIu64 "\n", base, seqs);
    fflush(stdout);
    uint64_t n = 0;
    int mismatches = 0;
    for (; n < seqs && mismatches < 3; n++) {
        uint64_t seed = base + n * 0x9E3779B97F4A7C15ull;
        gen_scenario(&sc, seed);
        if (!check(&sc, "sequence", base, n, seed, n % 8 == 0))
            mismatches++;
        fflush(stdout);
    }
    failed += mismatches;
    printf("retry_model: %" PRIu64 " sequences, %d mismatches (RETRY_MODEL_SEED=%" PRIu64 ")\n", n,
           mismatches, base);
    printf("retry_model: exercised %ld steps, %ld calls, %ld attempts (%ld ran the action), "
           "%ld retries, %ld back-offs slept (%ld overslept), %ld values discarded\n",
           seen.steps, seen.calls, seen.attempts, seen.runs, seen.retries, seen.sleeps,
           seen.oversleeps, seen.discards);
    printf("retry_model: stops: %ld done, %ld refused, %ld retry-exhausted, %ld budget-exhausted "
           "(%ld at exactly half), %ld deadline (%ld before the first attempt, %ld with the "
           "attempt past it, %ld cut in the back-off, %ld after an oversleep)\n",
           seen.stop[CB_RETRY_DONE], seen.stop[CB_RETRY_REFUSED], seen.stop[CB_RETRY_ATTEMPTS],
           seen.stop[CB_RETRY_BUDGET], seen.budget_at_half, seen.stop[CB_RETRY_DEADLINE],
           seen.deadline_first, seen.deadline_gap0, seen.deadline_cut - seen.deadline_gap0,
           seen.deadline_overslept);
    printf("retry_model: breaker under the attempts: %ld closed, %ld open, %ld half-open, "
           "%ld forced, %ld disabled, %ld shut down; %ld retries admitted as trials, %ld "
           "retries rejected, %ld opened by a call's failure, %ld closed by a trial, %ld "
           "timeouts, %ld filtered failures retried\n",
           seen.att_closed, seen.att_open, seen.att_half_open, seen.att_forced, seen.att_disabled,
           seen.att_shutdown, seen.retry_trials, seen.retry_rejected, seen.opened_mid_call,
           seen.trial_closes, seen.timeouts, seen.filtered_retried);
    /* the jitter over the whole run: uniform on [0, bound] */
    int stat_failed = 0;
    if (seen.draws >= 1000) {
        double mean = seen.sum_u / seen.draws, mean2 = seen.sum_u2 / seen.draws;
        double tol = 6.0 * sqrt(1.0 / 12.0 / seen.draws);
        bool ok = fabs(mean - 0.5) <= tol && fabs(mean2 - 1.0 / 3.0) <= 2 * tol;
        printf("retry_model: jitter: %ld delays, delay/bound mean %.4f (uniform: 0.5 +- %.4f), "
               "mean square %.4f (1/3): %s\n", seen.draws, mean, tol, mean2, ok ? "ok" : "FAILED");
        stat_failed += !ok;
    }
    if (seen.amb > 0) {
        double tol = 6.0 * sqrt(seen.amb_var) + 3.0;
        bool ok = fabs((double)seen.amb_stops - seen.amb_expected) <= tol;
        printf("retry_model: deadline inside the back-off's range: %ld times, %ld stopped, "
               "uniform draws give %.1f +- %.1f: %s\n", seen.amb, seen.amb_stops,
               seen.amb_expected, tol, ok ? "ok" : seen.amb >= 200 ? "FAILED" : "off, but too few to judge");
        stat_failed += !ok && seen.amb >= 200; /* fewer: too few to judge */
    }
    failed += stat_failed;
    /* the line scripts/summarize.py counts: scenarios, sequences, the two
     * statistical checks */
    uint64_t total = (uint64_t)nreg + n + (seen.draws >= 1000) + (seen.amb >= 200);
    printf("retry_model: %" PRIu64 " passed, %d failed\n", total - (uint64_t)failed, failed);
    return failed ? 1 : 0;
}
