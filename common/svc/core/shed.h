/* shed.h -- load shedding of POST /create: an adaptive concurrency limit
 * (libcb's cb_limit.h) in front of the request's work, its SHED_* settings
 * changed at runtime by POST /shed, and its counts. */
#ifndef SVC_SHED_H
#define SVC_SHED_H

#include <cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include "cb_limit.h"
#include "config.h"

/* Creates the limiter from c's SHED_* settings; its limit changes are
 * logged at LOG_LEVEL=events. Call once, before any request. Returns 0, or
 * -1 after logging why. */
int shed_init(const svc_config *c, int log_level);

/* Asks the limiter whether this thread's request (a POST /create, at
 * civetweb's begin_request, before its body is read) may go on: true when
 * shedding is off or the limiter admits it (the token is kept for
 * shed_end()), false when it is to be shed (answer 503 with Retry-After).
 * Thread-safe, lock-free when off. */
bool shed_admit(void);

/* Gives back this thread's token, if shed_admit() took one, with the
 * request's final status: 2xx (a degraded answer too) is a latency sample;
 * 500 and above (a timeout, the next hop or the database failing) a drop,
 * which shrinks the limit; anything else (4xx: refused before the work)
 * says nothing about load. Call at civetweb's end_request. */
void shed_end(int status);

/* Applies a JSON object (POST /shed's body): any of "enabled" (a boolean),
 * "initial_limit", "min_limit", "max_limit" (integers, each in its
 * SHED_*_LIMIT row's range, min_limit <= max_limit); a field left out keeps
 * its value. The limit starts again from initial_limit. Logged. Returns 0,
 * or 400 with err naming the field, 500 out of memory. */
int shed_set_json(const char *text, size_t len, char *err, size_t errlen);

/* {"enabled", "limit", "in_flight", "admitted", "shed", "dropped",
 * "initial_limit", "min_limit", "max_limit", "no_load_ms"}: the settings in
 * force and the limiter's counts. NULL when out of memory or before
 * shed_init(). */
cJSON *shed_json(void);

/* Whether shedding is on, and the limiter's counts (/metrics). Returns 0,
 * or -1 before shed_init(). Thread-safe. */
int shed_stats(bool *enabled, cb_limit_stats *st);

/* Frees the limiter. Call after the last request. */
void shed_free(void);

#endif
