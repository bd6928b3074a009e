/* ticker.c -- the optional ticker thread: calls the breaker's tick (cb_tick()) when the next thing
 * is due (bucket rotation, end of the open period, health check) and at least
 * every ticker_interval_ms (default: the bucket interval) of real time, so the
 * circuit goes half-open on time, health checks run and snapshots are emitted
 * with no traffic. It waits on a condition variable so shutdown wakes it.
 */
#include "cb_internal.h"

#include <time.h>

static void *ticker_main(void *v)
{
    cb_breaker *b = v;
    int64_t interval = b->o.ticker_interval_ms ? b->o.ticker_interval_ms * 1000000LL
                                               : b->win.interval_ns;
    pthread_mutex_lock(&b->ticker_mx);
    while (!b->ticker_stop) {
        /* wake at the next thing due (e.g. the end of the open period), at
         * the latest after one interval, at the earliest after 1 ms */
        int64_t step = atomic_load(&b->next_due_ns) - cb__now(b);
        if (step > interval)
            step = interval;
        if (step < 1000000)
            step = 1000000;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t abs = (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec + step;
        ts.tv_sec = abs / 1000000000LL;
        ts.tv_nsec = abs % 1000000000LL;
        pthread_cond_timedwait(&b->ticker_cv, &b->ticker_mx, &ts);
        if (b->ticker_stop)
            break;
        pthread_mutex_unlock(&b->ticker_mx);
        b->ticker_tick(b);
        pthread_mutex_lock(&b->ticker_mx);
    }
    pthread_mutex_unlock(&b->ticker_mx);
    return NULL;
}

/* Starts the ticker thread, which calls tick(b) (cb_tick, handed down so
 * that this file stays below the breaker). Returns CB_OK or CB_ETHREAD. */
int cb__ticker_start(cb_breaker *b, int (*tick)(cb_breaker *))
{
    b->ticker_tick = tick;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&b->ticker_cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&b->ticker_mx, NULL);
    if (pthread_create(&b->ticker, NULL, ticker_main, b) != 0)
        return CB_ETHREAD;
    b->ticker_running = true;
    return CB_OK;
}

/* Asks the ticker to stop (no-op without one). */
void cb__ticker_stop(cb_breaker *b)
{
    if (!b->ticker_running)
        return;
    pthread_mutex_lock(&b->ticker_mx);
    b->ticker_stop = true;
    pthread_cond_broadcast(&b->ticker_cv);
    pthread_mutex_unlock(&b->ticker_mx);
}

/* Joins the ticker thread after cb__ticker_stop(). */
void cb__ticker_join(cb_breaker *b)
{
    if (!b->ticker_running)
        return;
    pthread_join(b->ticker, NULL);
    b->ticker_running = false;
    pthread_mutex_destroy(&b->ticker_mx);
    pthread_cond_destroy(&b->ticker_cv);
}

/* Wakes the ticker so it recomputes when to tick (something became due
 * earlier, e.g. the circuit opened). No-op without a ticker. */
void cb__ticker_wake(cb_breaker *b)
{
    if (!b->ticker_running)
        return;
    pthread_mutex_lock(&b->ticker_mx);
    pthread_cond_broadcast(&b->ticker_cv);
    pthread_mutex_unlock(&b->ticker_mx);
}
