/* hop_hedge.h -- hedging of the call to the next hop: its settings, changed at runtime, and its counts. */
#ifndef SVC_HOP_HEDGE_H
#define SVC_HOP_HEDGE_H

#include <cJSON.h>
#include <stddef.h>
#include <stdint.h>
#include "cb_hedge.h"
#include "config.h"

/* The HEDGE_* settings (config.c has their defaults and ranges). */
typedef struct hop_hedge_settings {
    int max_copies;        /* HEDGE_MAX_COPIES; 1 = hedging off */
    int64_t delay_ms;      /* HEDGE_DELAY_MS */
    double percentile;     /* HEDGE_PERCENTILE; 0 = the fixed delay */
    double budget_ratio;   /* HEDGE_BUDGET_RATIO */
} hop_hedge_settings;

/* Creates the policy from c's HEDGE_* settings. Call once, before any
 * request. Returns 0, or -1 after logging why. */
int hop_hedge_init(const svc_config *c);

/* The policy in force and its settings (copied into *s when s is not NULL);
 * valid until hop_hedge_free() (a replaced policy is kept, as in
 * hop_retry.c). NULL before hop_hedge_init(). Thread-safe, lock-free. */
cb_hedge *hop_hedge_current(hop_hedge_settings *s);

/* True when calls to the next hop are hedged now (max_copies > 1). */
bool hop_hedge_on(void);

/* Calls b through the policy in force with one arg per copy (args[i] is a
 * chain_call-first struct whose cancel points at cancel[i]); see
 * cb_hedge_fire(). With hedging off, one cb_fire_key(). *winner is the index
 * of the copy whose result is returned. */
int hop_hedge_fire(cb_breaker *b, void **args, _Atomic int *cancel, int ncopies, cb_result *res,
                   int *winner);

/* Replaces the settings with those of a JSON object (POST /hedge's body):
 * any of "max_copies", "delay_ms", "percentile", "budget_ratio"; a field
 * left out keeps its value, each is checked against its HEDGE_* row's range.
 * Returns 0, or an HTTP status (400: err names the field; 409: too many
 * changes; 500) with err set. Logged. */
int hop_hedge_set_json(const char *text, size_t len, char *err, size_t errlen);

/* {"on", "max_copies", "delay_ms", "percentile", "budget_ratio", "changes",
 * "stats": {"calls", "copies", "hedges", "hedge_wins", "cancelled",
 * "budget_refused", "failed", "budget_tokens", "delay_ms"}}: the settings in
 * force and the counts since the start, summed over every policy. NULL when
 * out of memory or before hop_hedge_init(). */
cJSON *hop_hedge_json(void);

/* The counts since the start, summed over every policy (so they only grow). */
void hop_hedge_stats(cb_hedge_stats *st);

/* Frees every policy. Call after the last request. */
void hop_hedge_free(void);

#endif
