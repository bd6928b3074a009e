/* ticker.c -- a thread that runs a step every period until stopped (see ticker.h). */
#include "ticker.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "timedwait.h"

struct ticker {
    int64_t period_ms;
    ticker_step_fn step;
    void *ctx;
    pthread_t thread;
    pthread_mutex_t lock;  /* stop */
    pthread_cond_t wake;   /* signalled by ticker_stop() */
    bool stop;
};

/* The thread: a step, then a wait of a period that ticker_stop() cuts short. */
static void *ticker_run(void *arg)
{
    ticker *t = arg;
    pthread_mutex_lock(&t->lock);
    while (!t->stop) {
        pthread_mutex_unlock(&t->lock);
        t->step(t->ctx);
        pthread_mutex_lock(&t->lock);
        if (t->stop)
            break;
        cond_wait_ms(&t->wake, &t->lock, t->period_ms);
    }
    pthread_mutex_unlock(&t->lock);
    return NULL;
}

int ticker_start(int64_t period_ms, ticker_step_fn step, void *ctx, ticker **out)
{
    *out = NULL;
    ticker *t = calloc(1, sizeof *t);
    if (!t)
        return -1;
    t->period_ms = period_ms < 1 ? 1 : period_ms;
    t->step = step;
    t->ctx = ctx;
    pthread_mutex_init(&t->lock, NULL);
    pthread_cond_init(&t->wake, NULL);
    if (pthread_create(&t->thread, NULL, ticker_run, t) != 0) {
        pthread_cond_destroy(&t->wake);
        pthread_mutex_destroy(&t->lock);
        free(t);
        return -1;
    }
    *out = t;
    return 0;
}

void ticker_stop(ticker *t)
{
    if (!t)
        return;
    ticker_stop_join(&t->lock, &t->wake, &t->stop, t->thread);
    pthread_cond_destroy(&t->wake);
    pthread_mutex_destroy(&t->lock);
    free(t);
}
