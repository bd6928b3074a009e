/* pool.c -- the worker pool behind CB_TIMEOUT_POOL: cb_fire() hands the action
 * to a worker and waits on a condition variable until it finishes or the
 * deadline passes, so the caller returns on time even when the action ignores
 * its deadline. A late result is handed to on_late on the worker thread.
 * A job whose deadline passed before a worker picked it up is not run.
 */
#include "cb_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

enum { JOB_QUEUED, JOB_RUNNING, JOB_DONE };

typedef struct cb__job {
    pthread_mutex_t mx;
    pthread_cond_t cv;
    int refs;
    int phase;
    bool abandoned;           /* the caller returned CB_ETIMEDOUT */
    int cancelled;            /* call.cancelled points here */
    cb_call call;
    int rc;
    void *result;
    struct cb__job *next;
} cb__job;

struct cb__pool {
    cb_breaker *b;
    pthread_mutex_t mx;
    pthread_cond_t cv;
    cb__job *head, *tail;
    bool stop;
    int nthreads, started;
    pthread_t *threads;
    cb__job **current;        /* per worker: the job it runs */
};

typedef struct worker_arg {
    cb__pool *p;
    int index;
} worker_arg;

static void job_unref(cb__job *j)
{
    pthread_mutex_lock(&j->mx);
    int left = --j->refs;
    pthread_mutex_unlock(&j->mx);
    if (left == 0) {
        pthread_mutex_destroy(&j->mx);
        pthread_cond_destroy(&j->cv);
        free(j);
    }
}

/* Runs j on a worker; delivers the result to the caller or to on_late. */
static void job_run(cb__pool *p, cb__job *j)
{
    pthread_mutex_lock(&j->mx);
    bool skip = j->abandoned;
    if (!skip)
        j->phase = JOB_RUNNING;
    pthread_mutex_unlock(&j->mx);
    if (skip)
        return;
    void *result = NULL;
    int rc = p->b->o.action(&j->call, &result);
    pthread_mutex_lock(&j->mx);
    bool late = j->abandoned;
    if (!late) {
        j->phase = JOB_DONE;
        j->rc = rc;
        j->result = result;
        pthread_cond_broadcast(&j->cv);
    }
    pthread_mutex_unlock(&j->mx);
    if (late && p->b->o.on_late)
        p->b->o.on_late(j->call.arg, rc, result, p->b->o.user);
}

static void *worker_main(void *v)
{
    worker_arg *wa = v;
    cb__pool *p = wa->p;
    int me = wa->index;
    free(wa);
    pthread_mutex_lock(&p->mx);
    for (;;) {
        while (!p->head && !p->stop)
            pthread_cond_wait(&p->cv, &p->mx);
        cb__job *j = p->head;
        if (!j)
            break;
        p->head = j->next;
        if (!p->head)
            p->tail = NULL;
        p->current[me] = j;
        pthread_mutex_unlock(&p->mx);
        job_run(p, j);
        pthread_mutex_lock(&p->mx);
        p->current[me] = NULL;
        pthread_mutex_unlock(&p->mx);
        job_unref(j);
        pthread_mutex_lock(&p->mx);
    }
    pthread_mutex_unlock(&p->mx);
    return NULL;
}

/* Starts threads workers for b. Returns CB_OK, CB_ENOMEM or CB_ETHREAD. */
int cb__pool_new(cb_breaker *b, int threads, cb__pool **out)
{
    cb__pool *p = calloc(1, sizeof *p);
    if (!p)
        return CB_ENOMEM;
    p->b = b;
    p->nthreads = threads;
    p->threads = calloc((size_t)threads, sizeof *p->threads);
    p->current = calloc((size_t)threads, sizeof *p->current);
    pthread_mutex_init(&p->mx, NULL);
    pthread_cond_init(&p->cv, NULL);
    *out = p;
    if (!p->threads || !p->current)
        return CB_ENOMEM;
    for (int i = 0; i < threads; i++) {
        worker_arg *wa = malloc(sizeof *wa);
        if (!wa)
            return CB_ENOMEM;
        *wa = (worker_arg){ p, i };
        if (pthread_create(&p->threads[i], NULL, worker_main, wa) != 0) {
            free(wa);
            return CB_ETHREAD;
        }
        p->started++;
    }
    return CB_OK;
}

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static cb__job *job_new(const cb_call *call)
{
    cb__job *j = calloc(1, sizeof *j);
    if (!j)
        return NULL;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&j->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&j->mx, NULL);
    j->call = *call;
    j->call.cancelled = &j->cancelled;
    j->refs = 2;
    return j;
}

/* Waits for j until abs_ns on CLOCK_MONOTONIC (INT64_MAX: for ever). */
static int job_wait(cb__job *j, int64_t abs_ns, int *rc, void **result)
{
    struct timespec ts = { abs_ns / 1000000000LL, abs_ns % 1000000000LL };
    pthread_mutex_lock(&j->mx);
    while (j->phase != JOB_DONE) {
        if (abs_ns == INT64_MAX)
            pthread_cond_wait(&j->cv, &j->mx);
        else if (pthread_cond_timedwait(&j->cv, &j->mx, &ts) == ETIMEDOUT)
            break;
    }
    int ret = CB_OK;
    if (j->phase == JOB_DONE) {
        *rc = j->rc;
        *result = j->result;
    } else {
        j->abandoned = true;
        __atomic_store_n(&j->cancelled, 1, __ATOMIC_RELEASE);
        ret = CB_ETIMEDOUT;
    }
    pthread_mutex_unlock(&j->mx);
    return ret;
}

/* Runs call's action on the pool. Returns CB_OK with *rc and *result when it
 * finished before the deadline, CB_ETIMEDOUT when it did not. When the pool is
 * stopped or out of memory the action runs on the caller's thread. */
int cb__pool_run(cb__pool *p, cb_call *call, int *rc, void **result)
{
    int64_t abs_ns = INT64_MAX;
    if (call->deadline_ns != INT64_MAX)
        abs_ns = mono_ns() + (call->deadline_ns - cb__now(p->b));
    cb__job *j = job_new(call);
    pthread_mutex_lock(&p->mx);
    if (!j || p->stop) {
        pthread_mutex_unlock(&p->mx);
        if (j) {
            j->refs = 1;
            job_unref(j);
        }
        *rc = p->b->o.action(call, result);
        return CB_OK;
    }
    if (p->tail) p->tail->next = j; else p->head = j;
    p->tail = j;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mx);
    int ret = job_wait(j, abs_ns, rc, result);
    job_unref(j);
    return ret;
}

/* Stops taking jobs; raises the cancelled flag of every queued and running
 * job. Workers finish the queue and exit; cb__pool_free() joins them. */
void cb__pool_stop(cb__pool *p)
{
    pthread_mutex_lock(&p->mx);
    p->stop = true;
    for (cb__job *j = p->head; j; j = j->next)
        __atomic_store_n(&j->cancelled, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < p->nthreads; i++)
        if (p->current[i])
            __atomic_store_n(&p->current[i]->cancelled, 1, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mx);
}

/* Stops the pool, joins its workers and frees it. NULL is a no-op. */
void cb__pool_free(cb__pool *p)
{
    if (!p)
        return;
    cb__pool_stop(p);
    for (int i = 0; i < p->started; i++)
        pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->mx);
    pthread_cond_destroy(&p->cv);
    free(p->threads);
    free(p->current);
    free(p);
}
