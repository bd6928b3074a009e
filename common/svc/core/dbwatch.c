/* dbwatch.c -- the database watch: a ping a second for /health.
 *
 * The state is written by the watch's thread under a mutex and read by
 * /health under the same mutex: a copy of a few fields, never a wait on
 * the database.
 */
#include "dbwatch.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "monotime.h"
#include "ticker.h"
#include "timedwait.h"

static struct {
    store *db;
    ticker *ticker;             /* runs watch_step() every DBWATCH_RETRY_MS */
    int64_t next_ping_ns;       /* watch_step's due times (its thread only) */
    pthread_mutex_t lock;
    pthread_cond_t wake;        /* a ping finished (dbwatch_start waits for the first) */
    dbwatch_state st;           /* checked_ago_ms and since_ms hold monotonic stamps here */
    int64_t checked_ns;
    int64_t changed_ns;
    int misses;                 /* failed pings in a row */
    _Atomic int64_t write_ok_ns; /* when a request's write last succeeded */
} w = { .lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER };

void dbwatch_write_ok(void)
{
    atomic_store_explicit(&w.write_ok_ns, mono_ns(), memory_order_relaxed);
}

/* Pings once and records the answer; logs a change of state. A database
 * known to answer is called silent only after DBWATCH_MISSES failed pings
 * in a row (one slow ping on a busy machine is not an outage). Returns true
 * when the ping failed but the state has not changed yet: ping again soon. */
static bool watch_ping(void)
{
    char err[160] = "";
    bool up = store_ping(w.db, err, sizeof err) == 0;
    int64_t now = mono_ns();
    pthread_mutex_lock(&w.lock);
    w.misses = up ? 0 : w.misses + 1;
    bool doubt = !up && w.st.known && w.st.reachable && w.misses < DBWATCH_MISSES;
    bool changed = !doubt && (!w.st.known || w.st.reachable != up);
    bool was_known = w.st.known;
    if (!doubt) {
        w.st.known = true;
        w.st.reachable = up;
        snprintf(w.st.error, sizeof w.st.error, "%s", up ? "" : err);
        w.checked_ns = now;
        if (changed)
            w.changed_ns = now;
    }
    pthread_cond_broadcast(&w.wake);
    pthread_mutex_unlock(&w.lock);
    if (changed && (was_known || !up))
        log_message(!up, "database watch: the database %s%s%s", up ? "answers again" : "does not answer",
                    up ? "" : ": ", up ? "" : err);
    return doubt;
}

/* One step of the watch's ticker: a ping when one is due (every
 * DBWATCH_PING_MS, or DBWATCH_RETRY_MS after a failed one that has not
 * changed the state yet). */
static void watch_step(void *ctx)
{
    (void)ctx;
    if (mono_ns() < w.next_ping_ns)
        return;
    bool again = watch_ping();
    int64_t now = mono_ns();
    w.next_ping_ns = now + (int64_t)(again ? DBWATCH_RETRY_MS : DBWATCH_PING_MS) * 1000000;
}

int dbwatch_start(store *s)
{
    w.db = s;
    w.next_ping_ns = 0;
    memset(&w.st, 0, sizeof w.st);
    if (ticker_start(DBWATCH_RETRY_MS, watch_step, NULL, &w.ticker))
        return -1;
    /* The first answer, so /health right after start says what is true. */
    pthread_mutex_lock(&w.lock);
    int64_t until = mono_ns() + 500 * 1000000LL;
    while (!w.st.known && mono_ns() < until)
        cond_wait_ms(&w.wake, &w.lock, 20);
    pthread_mutex_unlock(&w.lock);
    return 0;
}

void dbwatch_stop(void)
{
    if (!w.ticker)
        return;
    ticker_stop(w.ticker);
    w.ticker = NULL;
}

void dbwatch_get(dbwatch_state *st)
{
    int64_t now = mono_ns();
    pthread_mutex_lock(&w.lock);
    *st = w.st;
    st->checked_ago_ms = w.st.known ? (now - w.checked_ns) / 1000000 : -1;
    st->since_ms = w.st.known ? (now - w.changed_ns) / 1000000 : -1;
    int64_t wrote = atomic_load_explicit(&w.write_ok_ns, memory_order_relaxed);
    if (wrote > w.checked_ns && (!w.st.known || !w.st.reachable)) {
        /* a request's write succeeded after the last failed ping */
        st->known = st->reachable = true;
        st->checked_ago_ms = (now - wrote) / 1000000;
        st->since_ms = st->checked_ago_ms;
        st->error[0] = '\0';
    }
    pthread_mutex_unlock(&w.lock);
}
