/* dbwatch.h -- the database watch: what /health knows of the database without asking it.
 *
 * One thread per service pings the database every DBWATCH_PING_MS over its
 * own connection (a ping gives up after 2 s) and keeps the answer; a
 * database that answered is called silent after DBWATCH_MISSES failed pings
 * in a row, the second 100 ms after the first, so /health reads the last known
 * state (and its age) instead of waiting on the database in the request.
 */
#ifndef SVC_DBWATCH_H
#define SVC_DBWATCH_H

#include <stdbool.h>
#include <stdint.h>
#include "store.h"

#define DBWATCH_PING_MS     1000   /* one ping a second */
#define DBWATCH_MISSES      2      /* failed pings in a row before an answering database is called silent */
#define DBWATCH_RETRY_MS    100    /* the wait before pinging again after a failed ping */

/* The last known state of the database. */
typedef struct dbwatch_state {
    bool known;              /* a ping has finished since start */
    bool reachable;          /* the last ping was answered */
    int64_t checked_ago_ms;  /* since the last ping finished */
    int64_t since_ms;        /* how long the state has been what it is */
    char error[160];         /* why the last ping failed; "" when it did not */
} dbwatch_state;

/* Starts the watch of s: pings now and waits at most 500 ms for that first
 * answer, then every DBWATCH_PING_MS. Returns 0, or -1 when its thread
 * cannot start. */
int dbwatch_start(store *s);

/* Stops and joins the watch's thread. A no-op when it was not started. */
void dbwatch_stop(void);

/* Fills *st with the last known state. Never waits on the database.
 * Thread-safe. This function can't fail. */
void dbwatch_get(dbwatch_state *st);

/* A request's write succeeded: the database answers, whatever the last
 * ping said. Lock-free; thread-safe. */
void dbwatch_write_ok(void);

#endif
