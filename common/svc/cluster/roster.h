/* roster.h -- the replicas of a service, as the database knows them: each writes a presence record once a bucket and reads its peers'. */
#ifndef SVC_ROSTER_H
#define SVC_ROSTER_H

#include <cJSON.h>
#include <stddef.h>
#include "cb.h"
#include "config.h"

typedef struct roster roster;

/* Starts the roster of service `service` on c's database (CB_SHARED=on
 * turns it on): a thread upserts this replica's presence record (replica
 * id, heartbeat, start time, the state of each of its n breakers) into the
 * `replicas` collection once per bucket (CB_WINDOW_MS / CB_BUCKETS), then
 * reads the records of the service's live replicas: those heard from within
 * the heartbeat timeout (CB_HEARTBEAT_TIMEOUT_MS, 3 buckets by default, as
 * for the shared breaker). c, service and breakers must outlive it. Returns
 * 0 and sets *out, or -1 after logging why. */
int roster_start(const svc_config *c, const char *service, cb_breaker *const *breakers, size_t n,
                 roster **out);

/* Stops the thread and frees r. NULL is a no-op. */
void roster_stop(roster *r);

/* GET /replicas's answer: {"service", "replica" (this one), "database"
 * (whether the last read answered), "heartbeatTimeoutMs", "replicas": [{
 * "replica", "self", "seenMsAgo", "uptimeS", "breakers": {name: state}}]}
 * sorted by replica id. Before the first read, and while the database does
 * not answer, the list holds this replica alone (its own state, live).
 * ctx is a roster *. Thread-safe. NULL when out of memory. */
cJSON *roster_json(void *ctx);

#endif
