/* dbwatch.h -- the database watch: what /health knows of the database without asking it, and the outcomes no request recorded.
 *
 * One thread per service pings the database every DBWATCH_PING_MS over its
 * own connection (a ping gives up after 2 s) and keeps the answer; a
 * database that answered is called silent after DBWATCH_MISSES failed pings
 * in a row, the second 100 ms after the first, so /health reads the last known
 * state (and its age) instead of waiting on the database in the request.
 * While the database answers, the same thread marks the documents this
 * service stored more than OUTCOME_RESOLVE_AFTER_MS ago whose outcome is
 * still "pending" (the process died between its two writes, the database
 * went away in between, or the answer of the insert was lost) with outcome
 * "unknown", a reason and the time; a document whose request is still in
 * flight in this process is never touched (dbwatch_open()/dbwatch_close()).
 */
#ifndef SVC_DBWATCH_H
#define SVC_DBWATCH_H

#include <stdbool.h>
#include <stdint.h>
#include "store.h"

#define DBWATCH_PING_MS     1000   /* one ping a second */
#define DBWATCH_RESOLVE_MS  5000   /* a pass over the pending outcomes every 5 s */
#define DBWATCH_MISSES      2      /* failed pings in a row before an answering database is called silent */
#define DBWATCH_RETRY_MS    100    /* the wait before pinging again after a failed ping */

/* The last known state of the database. */
typedef struct dbwatch_state {
    bool known;              /* a ping has finished since start */
    bool reachable;          /* the last ping was answered */
    int64_t checked_ago_ms;  /* since the last ping finished */
    int64_t since_ms;        /* how long the state has been what it is */
    int64_t resolved;        /* outcomes marked "unknown" since start */
    int64_t resolve_passes;  /* passes over the pending outcomes that ran */
    char error[160];         /* why the last ping failed; "" when it did not */
} dbwatch_state;

/* Starts the watch of s for service (the "_meta.service" of its documents):
 * pings now and waits at most 500 ms for that first answer, then every
 * DBWATCH_PING_MS; resolves outcomes pending for more than resolve_after_ms
 * (0 = never). slots is the number of request threads that may hold a
 * document open. Returns 0, or -1 when its thread cannot start. */
int dbwatch_start(store *s, const char *service, int64_t resolve_after_ms, int slots);

/* Stops and joins the watch's thread. A no-op when it was not started. */
void dbwatch_stop(void);

/* Fills *st with the last known state. Never waits on the database.
 * Thread-safe. This function can't fail. */
void dbwatch_get(dbwatch_state *st);

/* The calling request thread holds the document it stored at received_ms
 * (milliseconds since the epoch) until dbwatch_close(): its outcome is
 * not resolved meanwhile. Lock-free; thread-safe. */
void dbwatch_open(int64_t received_ms);

/* A request's write succeeded: the database answers, whatever the last
 * ping said. Lock-free; thread-safe. */
void dbwatch_write_ok(void);

/* The calling request thread no longer holds a document. */
void dbwatch_close(void);

#endif
