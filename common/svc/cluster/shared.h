/* shared.h -- the next-hop breaker shared by a service's replicas: cb_quorum on MongoDB, from a ticker thread. */
#ifndef SVC_SHARED_H
#define SVC_SHARED_H

#include <cJSON.h>
#include "cb.h"
#include "config.h"

typedef struct shared shared;

/* Starts sharing breaker b (the next hop's) as circuit CB_SHARED_CIRCUIT
 * (default: b's name) among the replicas on c's database: a thread syncs
 * with the quorum once per bucket (CB_WINDOW_MS / CB_BUCKETS), holds b
 * forced open while the shared circuit is open and this replica is not the
 * prober, reports the prober's first call outcome as the trial, and closes
 * b when the shared circuit closes. Every shared event is logged and fed to
 * /events.stream. c and b must outlive it. Returns 0 and sets *out, or -1
 * after logging why. */
int shared_start(const svc_config *c, cb_breaker *b, shared **out);

/* Stops the thread, releases a lease held, lifts a hold on b and frees s.
 * NULL is a no-op. */
void shared_stop(shared *s);

/* /health's "shared" object: mode ("joining" until the first sync has
 * answered, then "shared" or "local-only"), circuit,
 * replica, open, prober, live, openVotes, needed, epoch. ctx is a shared *.
 * Thread-safe. NULL when out of memory. */
cJSON *shared_json(void *ctx);

#endif
