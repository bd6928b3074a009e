/* hop_retry.h -- the retry policy around the call to the next hop: its settings, changed at runtime, and its counts. */
#ifndef SVC_HOP_RETRY_H
#define SVC_HOP_RETRY_H

#include <cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "cb_retry.h"
#include "config.h"

/* The RETRY_* settings (config.c has their defaults and ranges). */
typedef struct hop_retry_settings {
    int attempts;          /* RETRY_ATTEMPTS; 1 = retries off (the call is one cb_fire()) */
    int64_t base_ms;       /* RETRY_BASE_MS */
    int64_t cap_ms;        /* RETRY_CAP_MS */
    int budget_tokens;     /* RETRY_BUDGET_TOKENS; 0 = no budget */
    double budget_ratio;   /* RETRY_BUDGET_RATIO */
} hop_retry_settings;

/* Creates the policy from c's RETRY_* settings; its events are logged at
 * log_level (log_retry_mask()). Call once, before any request. Returns 0,
 * or -1 after logging why. */
int hop_retry_init(const svc_config *c, int log_level);

/* The policy in force and its settings (copied into *s when s is not
 * NULL). It stays valid until hop_retry_free(): a policy replaced by
 * hop_retry_set_json() is kept, so a call still using it finishes on it.
 * NULL before hop_retry_init(). Thread-safe, lock-free. */
cb_retry *hop_retry_current(hop_retry_settings *s);

/* Replaces the settings with those of a JSON object (POST /retry's body):
 * any of "attempts", "base_ms", "cap_ms", "budget_tokens", "budget_ratio";
 * a field left out keeps its value. Each is checked against its RETRY_*
 * row's range. The new policy (its budget full, its counts from zero) is
 * swapped in at once; calls under way finish on the old one. Logged.
 * Returns 0, or an HTTP status (400: a bad body, err names the field; 409:
 * too many changes since the start; 500: out of memory) with err set. */
int hop_retry_set_json(const char *text, size_t len, char *err, size_t errlen);

/* {"on", "attempts", "base_ms", "cap_ms", "budget_tokens", "budget_ratio",
 * "changes", "stats": {"calls", "attempts", "retries", "retries_exhausted",
 * "budget_exhausted", "deadline_exceeded", "refused", "budget_tokens"}}:
 * the settings in force, how often they were changed, and the counts since
 * the start (hop_retry_stats()). NULL when out of memory or before
 * hop_retry_init(). */
cJSON *hop_retry_json(void);

/* The counts since the start, summed over every policy the service has had
 * (so they only grow), with the budget's tokens of the policy in force.
 * Zero before hop_retry_init(). Thread-safe. */
void hop_retry_stats(cb_retry_stats *st);

/* Frees every policy. Call after the last request. */
void hop_retry_free(void);

#endif
