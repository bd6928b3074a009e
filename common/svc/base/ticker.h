/* ticker.h -- a thread that runs a step every period until stopped: the roster's, the shared breaker's and the database watch's loop. */
#ifndef SVC_TICKER_H
#define SVC_TICKER_H

#include <stdint.h>

typedef struct ticker ticker;

/* One step; ctx is the one given to ticker_start(). Runs on the ticker's thread. */
typedef void (*ticker_step_fn)(void *ctx);

/* Starts a thread that calls step(ctx) at once, then again period_ms
 * (>= 1) after each step ends, until ticker_stop(). Returns 0 and sets
 * *out, or -1 (out of memory, or no thread) with *out NULL. */
int ticker_start(int64_t period_ms, ticker_step_fn step, void *ctx, ticker **out);

/* Wakes the thread, waits for a step under way to end, joins the thread and
 * frees t; no step runs after it returns. NULL is a no-op. */
void ticker_stop(ticker *t);

#endif
