/* timedwait.h -- a ticker thread's two moves: waiting on its condition variable for a number of milliseconds, and being stopped. */
#ifndef SVC_TIMEDWAIT_H
#define SVC_TIMEDWAIT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

/* Waits on cond (default clock, CLOCK_REALTIME) with lock held for at most
 * ms milliseconds, or until signalled. The caller re-checks its condition. */
static inline void cond_wait_ms(pthread_cond_t *cond, pthread_mutex_t *lock, int64_t ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += (time_t)(ms / 1000);
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(cond, lock, &until);
}

/* Stops a ticker thread that waits on cond under lock while *stop is false:
 * sets *stop, wakes it and joins it. */
static inline void ticker_stop_join(pthread_mutex_t *lock, pthread_cond_t *cond, bool *stop,
                                    pthread_t thread)
{
    pthread_mutex_lock(lock);
    *stop = true;
    pthread_cond_signal(cond);
    pthread_mutex_unlock(lock);
    pthread_join(thread, NULL);
}

#endif
