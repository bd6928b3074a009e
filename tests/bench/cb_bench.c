/* cb_bench.c -- the breaker library's benchmark: cost per call of cb_fire()
 * in each state, next to a bare call of the same action, and of a successful
 * call through a retry policy and a closed breaker (cb_retry_fire()), and of
 * an adaptive concurrency limit's admission (cb_limit_acquire() and
 * cb_limit_release() of a success sample) and refusal (CB_ELIMIT). Prints
 * one line per case: "bench <case> <ns> ns/call" (the best of 9 interleaved
 * rounds).
 */
#include "cb.h"
#include "cb_limit.h"
#include "cb_retry.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define CALLS  1000000
#define ROUNDS 9

static int noop_action(const cb_call *call, void **result)
{
    *result = call->arg;
    return 0;
}

/* Kept in a volatile so the baseline call is a real indirect call, like cb_fire's. */
static cb_action_fn volatile baseline_fn = noop_action;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, int rc)
{
    fprintf(stderr, "bench: %s: %s\n", what, cb_strerror(rc));
    exit(1);
}

static cb_breaker *make(int64_t timeout_ms, int64_t reset_ms, int trials)
{
    cb_options o;
    cb_options_init(&o);
    o.name = "bench";
    o.action = noop_action;
    o.timeout_ms = timeout_ms;
    o.reset_timeout_ms = reset_ms;
    o.half_open_max_calls = trials;
    o.half_open_success_threshold = trials;
    cb_breaker *b;
    int rc = cb_create(&o, &b);
    if (rc != CB_OK)
        die("cb_create", rc);
    return b;
}

static double run_fires(cb_breaker *b, int expect)
{
    double t0 = now_s();
    for (int i = 0; i < CALLS; i++)
        if (cb_fire(b, &i, NULL) != expect)
            die("unexpected result", expect);
    return (now_s() - t0) * 1e9 / CALLS;
}

/* Successful calls through a retry policy with its defaults (budget on)
 * around b: one attempt each, the budget full. */
static double run_retry_fires(cb_breaker *b)
{
    cb_retry_options o;
    cb_retry_options_init(&o);
    cb_retry *r;
    int rc = cb_retry_create(&o, &r);
    if (rc != CB_OK)
        die("cb_retry_create", rc);
    double t0 = now_s();
    for (int i = 0; i < CALLS; i++)
        if (cb_retry_fire(r, b, &i, NULL, NULL) != CB_OK)
            die("retry_closed_success", CB_EFAILED);
    double ns = (now_s() - t0) * 1e9 / CALLS;
    cb_retry_destroy(r);
    return ns;
}

/* An admitted call through a limiter with its defaults (system clock):
 * acquire, then release as a success sample, which runs the Vegas step. */
static double run_limit_admit(void)
{
    cb_limit_options o;
    cb_limit_options_init(&o);
    cb_limit *l;
    int rc = cb_limit_create(&o, &l);
    if (rc != CB_OK)
        die("cb_limit_create", rc);
    double t0 = now_s();
    for (int i = 0; i < CALLS; i++) {
        cb_limit_token t;
        if ((rc = cb_limit_acquire(l, &t)) != CB_OK ||
            (rc = cb_limit_release(l, &t, CB_LIMIT_SUCCESS)) != CB_OK)
            die("limit_acquire_release", rc);
    }
    double ns = (now_s() - t0) * 1e9 / CALLS;
    cb_limit_destroy(l);
    return ns;
}

/* A refused call: a limiter of 1 whose one place is taken. */
static double run_limit_shed(void)
{
    cb_limit_options o;
    cb_limit_options_init(&o);
    o.initial_limit = o.min_limit = o.max_limit = 1;
    cb_limit *l;
    int rc = cb_limit_create(&o, &l);
    if (rc != CB_OK)
        die("cb_limit_create", rc);
    cb_limit_token held, t;
    cb_limit_acquire(l, &held);
    double t0 = now_s();
    for (int i = 0; i < CALLS; i++)
        if ((rc = cb_limit_acquire(l, &t)) != CB_ELIMIT)
            die("limit_shed", rc);
    double ns = (now_s() - t0) * 1e9 / CALLS;
    cb_limit_release(l, &held, CB_LIMIT_IGNORED);
    cb_limit_destroy(l);
    return ns;
}

static double run_baseline(void)
{
    double t0 = now_s();
    for (int i = 0; i < CALLS; i++) {
        cb_call call = { .arg = &i };
        void *r;
        if (baseline_fn(&call, &r) != 0)
            die("baseline", -1);
    }
    return (now_s() - t0) * 1e9 / CALLS;
}

static void *thread_fires(void *b)
{
    for (int i = 0; i < CALLS; i++)
        if (cb_fire(b, &i, NULL) != CB_OK)
            die("2threads", CB_EFAILED);
    return NULL;
}

static double run_two_threads(cb_breaker *b)
{
    pthread_t t[2];
    double t0 = now_s();
    for (int i = 0; i < 2; i++)
        if (pthread_create(&t[i], NULL, thread_fires, b) != 0)
            die("pthread_create", CB_ETHREAD);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    return (now_s() - t0) * 1e9 / (2.0 * CALLS);
}

typedef enum { CASE_BASELINE, CASE_CLOSED, CASE_CLOSED_NO_TIMEOUT, CASE_OPEN, CASE_HALF_OPEN,
               CASE_TWO_THREADS, CASE_RETRY, CASE_LIMIT, CASE_LIMIT_SHED, CASE_COUNT } bench_case;

static const char *const case_names[CASE_COUNT] = {
    "baseline_call", "closed_success", "closed_success_no_timeout", "open_reject",
    "half_open_trial", "closed_success_2threads", "retry_closed_success",
    "limit_acquire_release", "limit_shed",
};

static double run_case(bench_case c)
{
    cb_breaker *b = NULL;
    double ns = 0;
    switch (c) {
    case CASE_BASELINE: return run_baseline();
    case CASE_LIMIT: return run_limit_admit();
    case CASE_LIMIT_SHED: return run_limit_shed();
    case CASE_CLOSED: b = make(10000, 30000, 1); ns = run_fires(b, CB_OK); break;
    case CASE_CLOSED_NO_TIMEOUT: b = make(0, 30000, 1); ns = run_fires(b, CB_OK); break;
    case CASE_OPEN:
        b = make(10000, 3600 * 1000, 1);
        cb_open(b);
        ns = run_fires(b, CB_EOPEN);
        break;
    case CASE_HALF_OPEN:
        b = make(10000, 0, 1 << 30);
        cb_open(b);
        cb_tick(b);
        if (cb_get_state(b) != CB_HALF_OPEN)
            die("half-open setup", CB_EINVAL);
        ns = run_fires(b, CB_OK);
        break;
    case CASE_TWO_THREADS: b = make(10000, 30000, 1); ns = run_two_threads(b); break;
    case CASE_RETRY: b = make(10000, 30000, 1); ns = run_retry_fires(b); break;
    default: break;
    }
    cb_destroy(b);
    return ns;
}

int main(void)
{
    cb_clock_system(); /* calibrate before timing */
    double best[CASE_COUNT];
    for (int c = 0; c < CASE_COUNT; c++)
        best[c] = 1e30;
    /* rounds interleave the cases, so a burst of load elsewhere on the
     * machine does not spoil every round of one case */
    for (int r = 0; r < ROUNDS; r++)
        for (int c = 0; c < CASE_COUNT; c++) {
            double ns = run_case((bench_case)c);
            if (ns < best[c])
                best[c] = ns;
        }
    for (int c = 0; c < CASE_COUNT; c++)
        printf("bench %s %.1f ns/call\n", case_names[c], best[c]);
    return 0;
}
