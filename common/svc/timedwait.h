/* timedwait.h -- waiting on a condition variable for a number of milliseconds. */
#ifndef SVC_TIMEDWAIT_H
#define SVC_TIMEDWAIT_H

#include <pthread.h>
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

#endif
