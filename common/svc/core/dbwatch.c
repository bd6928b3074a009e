/* dbwatch.c -- the database watch: a ping a second for /health, and outcomes no request recorded resolved as "unknown".
 *
 * The state is written by the watch's thread under a mutex and read by
 * /health under the same mutex: a copy of a few fields, never a wait on
 * the database. The documents still held by requests in flight are kept in
 * one slot per request thread (an atomic "received" time, 0 when free), so
 * the resolver's cut-off is the older of "resolve_after ago" and the
 * oldest document held: a request that has run for longer than
 * OUTCOME_RESOLVE_AFTER_MS (a hang fault) still records its own outcome.
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
    const char *service;
    int64_t resolve_after_ms;
    ticker *ticker;             /* runs watch_step() every DBWATCH_RETRY_MS */
    int64_t next_ping_ns;       /* watch_step's due times (its thread only) */
    int64_t next_resolve_ns;
    pthread_mutex_t lock;
    pthread_cond_t wake;        /* a ping finished (dbwatch_start waits for the first) */
    dbwatch_state st;           /* checked_ago_ms and since_ms hold monotonic stamps here */
    int64_t checked_ns;
    int64_t changed_ns;
    _Atomic int64_t *slots;     /* per request thread: the received time of its document, 0 = none */
    int nslots;
    atomic_int next_slot;
    atomic_bool overflow_told;
    int misses;                 /* failed pings in a row */
    _Atomic int64_t write_ok_ns; /* when a request's write last succeeded */
} w = { .lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER };

static __thread int my_slot; /* index + 1; 0 = none taken yet */

void dbwatch_open(int64_t received_ms)
{
    if (!w.slots)
        return;
    if (!my_slot) {
        int i = atomic_fetch_add(&w.next_slot, 1);
        if (i >= w.nslots) {
            if (!atomic_exchange(&w.overflow_told, true))
                log_message(true, "database watch: more request threads than slots (%d); their "
                            "documents are resolved by age alone", w.nslots);
            return;
        }
        my_slot = i + 1;
    }
    atomic_store_explicit(&w.slots[my_slot - 1], received_ms, memory_order_release);
}

void dbwatch_write_ok(void)
{
    atomic_store_explicit(&w.write_ok_ns, mono_ns(), memory_order_relaxed);
}

void dbwatch_close(void)
{
    if (w.slots && my_slot)
        atomic_store_explicit(&w.slots[my_slot - 1], 0, memory_order_release);
}

/* The received time of the oldest document a request still holds, or
 * INT64_MAX when none does. */
static int64_t oldest_open_ms(void)
{
    int64_t oldest = INT64_MAX;
    int n = atomic_load(&w.next_slot);
    if (n > w.nslots)
        n = w.nslots;
    for (int i = 0; i < n; i++) {
        int64_t t = atomic_load_explicit(&w.slots[i], memory_order_acquire);
        if (t && t < oldest)
            oldest = t;
    }
    return oldest;
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

/* Marks the outcomes left pending as "unknown" (only while the database answers). */
static void watch_resolve(void)
{
    int64_t cutoff = wall_ms() - w.resolve_after_ms;
    int64_t oldest = oldest_open_ms();
    if (oldest <= cutoff)
        cutoff = oldest - 1;
    char reason[200], err[200] = "";
    snprintf(reason, sizeof reason,
             "no outcome recorded within %lld ms: the service stopped, the database went away "
             "between its two writes, or the insert's answer was lost",
             (long long)w.resolve_after_ms);
    int64_t n = 0;
    int rc = store_resolve_pending(w.db, w.service, cutoff, reason, &n, err, sizeof err);
    pthread_mutex_lock(&w.lock);
    if (rc == STORE_OK) {
        w.st.resolved += n;
        w.st.resolve_passes++;
    }
    pthread_mutex_unlock(&w.lock);
    if (n > 0)
        log_message(false, "database watch: %lld document(s) left \"pending\" marked \"unknown\"",
                    (long long)n);
    else if (rc != STORE_OK)
        log_message(true, "database watch: cannot resolve pending outcomes: %s", err);
}

/* One step of the watch's ticker: a ping when one is due (every
 * DBWATCH_PING_MS, or DBWATCH_RETRY_MS after a failed one that has not
 * changed the state yet), then a pass over the pending outcomes when one is
 * due and the database answers. */
static void watch_step(void *ctx)
{
    (void)ctx;
    if (mono_ns() < w.next_ping_ns)
        return;
    bool again = watch_ping();
    int64_t now = mono_ns();
    w.next_ping_ns = now + (int64_t)(again ? DBWATCH_RETRY_MS : DBWATCH_PING_MS) * 1000000;
    if (w.resolve_after_ms <= 0 || now < w.next_resolve_ns)
        return;
    pthread_mutex_lock(&w.lock);
    bool up = w.st.reachable;
    pthread_mutex_unlock(&w.lock);
    if (up)
        watch_resolve();
    w.next_resolve_ns = mono_ns() + (int64_t)DBWATCH_RESOLVE_MS * 1000000;
}

int dbwatch_start(store *s, const char *service, int64_t resolve_after_ms, int slots)
{
    w.db = s;
    w.service = service;
    w.resolve_after_ms = resolve_after_ms;
    w.next_ping_ns = w.next_resolve_ns = 0;
    memset(&w.st, 0, sizeof w.st);
    w.nslots = slots > 0 ? slots : 1;
    w.slots = calloc((size_t)w.nslots, sizeof *w.slots);
    if (!w.slots)
        return -1;
    if (ticker_start(DBWATCH_RETRY_MS, watch_step, NULL, &w.ticker)) {
        free((void *)w.slots);
        w.slots = NULL;
        return -1;
    }
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
    free((void *)w.slots);
    w.slots = NULL;
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
