/* monotime.h -- the services' one reading of CLOCK_MONOTONIC, the clock the breaker also uses by default. */
#ifndef SVC_MONOTIME_H
#define SVC_MONOTIME_H

#include <stdint.h>
#include <time.h>

/* Nanoseconds on CLOCK_MONOTONIC (shared by every process on the machine). */
static inline int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Milliseconds since the epoch on CLOCK_REALTIME: for times a person or
 * another process reads (documents, answers), never for measuring. */
static inline int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#endif
