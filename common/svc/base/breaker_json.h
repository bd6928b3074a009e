/* breaker_json.h -- a breaker's counts as JSON, in the one spelling /health, /breaker and the JSON log share. */
#ifndef SVC_BREAKER_JSON_H
#define SVC_BREAKER_JSON_H

#include <cJSON.h>
#include "cb.h"

/* Adds c to parent as the object `name`: {"fires", "successes", "failures",
 * "timeouts", "rejects", "fallbacks", "fallbackFailures",
 * "semaphoreRejections", "slowCalls"} (camelCase, /health's public form).
 * Returns the object, or NULL when out of memory (parent then lacks it). */
cJSON *breaker_counts_json(cJSON *parent, const char *name, const cb_counts *c);

#endif
