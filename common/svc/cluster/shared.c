/* shared.c -- one next-hop breaker shared by a service's replicas, decided by quorum through MongoDB.
 *
 * The local cb_breaker keeps its hot path: request threads call cb_fire() as
 * before. A ticker thread of this module wakes every SHARED_POLL_MS and
 *
 *   1. reports the prober's trial (the first call outcome after this replica
 *      took the lease, caught by a breaker listener) with cb_quorum_trial();
 *   2. calls cb_quorum_sync() with the local window and verdict (the sync
 *      itself talks to the database at most once per bucket);
 *   3. applies the view to the local breaker:
 *
 *      view                                   local breaker
 *      shared open, not the prober            held with cb_force(CB_FORCE_OPEN)
 *      shared open, prober                    hold lifted (closed): calls are trials
 *      shared closed (after being open)       hold lifted, cb_close()
 *      local only (database unreachable)      hold lifted: the local breaker alone
 *
 * A hold is lifted only when this module set it: a breaker forced by hand
 * through the admin routes is left alone. Lifting a hold returns the local
 * breaker to closed (cb_force() semantics); while held it votes closed.
 */
#include "shared.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cb_quorum.h"
#include "log.h"
#include "monotime.h"
#include "observe.h"
#include "quorum_mongo.h"
#include "ticker.h"

/* How often the ticker looks at the trial and the bucket. */
#define SHARED_POLL_MS 25

enum { TRIAL_NONE = 0, TRIAL_OK, TRIAL_FAILED };

struct shared {
    const svc_config *cfg;
    cb_breaker *b;
    quorum_mongo *m;
    cb_quorum *q;
    char circuit[CB_QUORUM_ID_MAX];
    int listener_id;
    ticker *ticker;         /* runs shared_step() every SHARED_POLL_MS */
    pthread_mutex_t lock;   /* view */
    cb_quorum_view view;    /* the last view, for /health */
    bool have_view;
    /* the ticker's own */
    bool held;              /* this module forced b open */
    bool close_pending;     /* a shared-closed event asks for cb_close() */
    bool voting_open;
    /* between request threads and the ticker */
    atomic_bool probing;
    atomic_int trial;
};

/* The shared state word an event is logged with. */
static const char *shared_state_word(const shared *s, const cb_quorum_event *ev)
{
    switch (ev->type) {
    case CB_QEV_FELL_BACK:
        return "local-only";
    case CB_QEV_QUORUM_REACHED: case CB_QEV_SHARED_OPENED: case CB_QEV_LEASE_TAKEN:
    case CB_QEV_SHARED_REOPENED:
        return "shared-open";
    case CB_QEV_SHARED_CLOSED:
        return "shared-closed";
    default:
        return s->have_view && s->view.shared_open ? "shared-open" : "shared-closed";
    }
}

/* cb_quorum_listener_fn: every shared event to the log and the event feed;
 * "voted" only at LOG_LEVEL=events, and in the feed only when voting open
 * (one line per bucket otherwise). Runs on the ticker thread. */
static void shared_on_event(const cb_quorum_event *ev, void *user)
{
    shared *s = user;
    const char *name = cb_quorum_event_name(ev->type);
    const char *state = shared_state_word(s, ev);
    bool quiet = ev->type == CB_QEV_VOTED;
    if (!quiet || s->cfg->log_level >= LOG_EVENTS)
        log_shared_event(s->circuit, name, state, ev->live, ev->open_votes, ev->needed, ev->peer,
                         ev->open_ms, ev->rc);
    if (!quiet || s->voting_open) {
        char detail[160];
        snprintf(detail, sizeof detail, "live=%d openVotes=%d needed=%d%s%.63s", ev->live,
                 ev->open_votes, ev->needed, ev->peer ? " peer=" : "", ev->peer ? ev->peer : "");
        obs_shared_event(name, state, detail);
    }
    if (ev->type == CB_QEV_SHARED_CLOSED)
        s->close_pending = true;
}

/* cb_listener_fn on the local breaker: while this replica probes, the first
 * call outcome is the trial. Runs on request threads. */
static void shared_on_call(cb_breaker *b, const cb_event *ev, void *ctx)
{
    (void)b;
    shared *s = ctx;
    if (!atomic_load(&s->probing))
        return;
    int expected = TRIAL_NONE;
    atomic_compare_exchange_strong(&s->trial, &expected,
                                   ev->kind == CB_EV_SUCCESS ? TRIAL_OK : TRIAL_FAILED);
}

/* Applies a view to the local breaker (see the table at the top). */
static void shared_apply(shared *s, const cb_quorum_view *view)
{
    if (s->close_pending) {
        s->close_pending = false;
        if (s->held) {
            cb_force(s->b, CB_FORCE_NONE);
            s->held = false;
        }
        cb_close(s->b);
    }
    bool hold = !view->local_only && view->shared_open && !view->prober;
    if (hold && !s->held) {
        cb_state st = cb_get_state(s->b);
        if (st != CB_FORCED_OPEN && st != CB_FORCED_CLOSED && st != CB_DISABLED &&
            st != CB_SHUTDOWN) {
            cb_force(s->b, CB_FORCE_OPEN);
            s->held = true;
        }
    } else if (!hold && s->held) {
        cb_force(s->b, CB_FORCE_NONE);
        s->held = false;
    }
    bool probing = view->prober && !view->local_only;
    if (!probing)
        atomic_store(&s->trial, TRIAL_NONE);
    atomic_store(&s->probing, probing);
    pthread_mutex_lock(&s->lock);
    s->view = *view;
    s->have_view = true;
    pthread_mutex_unlock(&s->lock);
}

/* One poll (a ticker_step_fn; ctx is the shared): the trial if one came
 * in, then the sync. */
static void shared_step(void *ctx)
{
    shared *s = ctx;
    /* the wall clock: heartbeats and lease expiries are compared across
     * replicas (and hosts) */
    int64_t now = wall_ms();
    cb_quorum_view view;
    int trial = atomic_load(&s->trial);
    if (trial != TRIAL_NONE && atomic_load(&s->probing)) {
        atomic_store(&s->probing, false);
        atomic_store(&s->trial, TRIAL_NONE);
        if (cb_quorum_trial(s->q, now, trial == TRIAL_OK, &view) == CB_OK)
            shared_apply(s, &view);
    }
    cb_stats st;
    if (cb_get_stats(s->b, &st) != CB_OK)
        return;
    /* Held open by this module, the breaker has no verdict of its own: it
     * votes closed, so that the sync that learns of a close does not cast
     * an open vote into the new epoch (the hold is not a failure it saw). */
    bool local_open = st.state == CB_OPEN || st.state == CB_HALF_OPEN;
    s->voting_open = local_open;
    if (cb_quorum_sync(s->q, now, (int64_t)st.window.successes,
                       (int64_t)(st.window.failures + st.window.timeouts), local_open,
                       &view) == CB_OK)
        shared_apply(s, &view);
}

int shared_start(const svc_config *c, cb_breaker *b, shared **out)
{
    *out = NULL;
    shared *s = calloc(1, sizeof *s);
    if (!s) {
        log_message(true, "shared breaker: out of memory");
        return -1;
    }
    s->cfg = c;
    s->b = b;
    pthread_mutex_init(&s->lock, NULL);
    snprintf(s->circuit, sizeof s->circuit, "%s", c->cb_shared_circuit ? c->cb_shared_circuit : cb_name(b));
    char err[512];
    if (quorum_mongo_open(c->mongo_url, c->mongo_db, c->mongo_timeout_ms, &s->m, err, sizeof err)) {
        log_message(true, "shared breaker: %s", err);
        shared_stop(s);
        return -1;
    }
    cb_quorum_options o;
    cb_quorum_options_init(&o);
    o.circuit = s->circuit;
    o.replica = c->replica;
    quorum_mongo_backend(s->m, &o.backend);
    o.bucket_ms = c->cb_window_ms / c->cb_buckets;
    o.heartbeat_timeout_ms = c->cb_heartbeat_timeout_ms;
    o.quorum = c->cb_quorum;
    o.reset_timeout_ms = c->cb_reset_timeout_ms;
    o.backoff_multiplier = c->cb_backoff;
    o.reset_timeout_max_ms = c->cb_backoff_max_ms;
    o.lease_ms = c->cb_lease_ms;
    o.listener = shared_on_event;
    o.listener_user = s;
    int rc = cb_quorum_new(&o, &s->q);
    if (rc != CB_OK) {
        log_message(true, "shared breaker %s: cannot start: %s", s->circuit, cb_strerror(rc));
        shared_stop(s);
        return -1;
    }
    s->listener_id = cb_on(b, CB_EV_MASK(CB_EV_SUCCESS) | CB_EV_MASK(CB_EV_FAILURE) |
                              CB_EV_MASK(CB_EV_TIMEOUT), shared_on_call, s);
    if (s->listener_id <= 0 || ticker_start(SHARED_POLL_MS, shared_step, s, &s->ticker)) {
        log_message(true, "shared breaker %s: cannot start its thread", s->circuit);
        shared_stop(s);
        return -1;
    }
    log_message(false, "shared breaker %s: replica %s, bucket %lld ms, quorum %s, "
                "heartbeat timeout %lld ms, lease %lld ms", s->circuit, c->replica,
                (long long)o.bucket_ms, c->cb_quorum ? "fixed" : "majority",
                (long long)(o.heartbeat_timeout_ms ? o.heartbeat_timeout_ms : 3 * o.bucket_ms),
                (long long)(o.lease_ms ? o.lease_ms : 2 * o.bucket_ms));
    *out = s;
    return 0;
}

void shared_stop(shared *s)
{
    if (!s)
        return;
    ticker_stop(s->ticker);
    if (s->listener_id > 0)
        cb_off(s->b, s->listener_id);
    if (s->held)
        cb_force(s->b, CB_FORCE_NONE);
    cb_quorum_free(s->q);
    quorum_mongo_close(s->m);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

cJSON *shared_json(void *ctx)
{
    shared *s = ctx;
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    pthread_mutex_lock(&s->lock);
    cb_quorum_view v = s->view;
    bool have = s->have_view;
    pthread_mutex_unlock(&s->lock);
    cJSON_AddStringToObject(o, "mode", !have ? "joining" : v.local_only ? "local-only" : "shared");
    cJSON_AddStringToObject(o, "circuit", s->circuit);
    cJSON_AddStringToObject(o, "replica", s->cfg->replica);
    cJSON_AddBoolToObject(o, "open", have && v.shared_open);
    cJSON_AddBoolToObject(o, "prober", have && v.prober);
    cJSON_AddNumberToObject(o, "live", v.live);
    cJSON_AddNumberToObject(o, "openVotes", v.open_votes);
    cJSON_AddNumberToObject(o, "needed", v.needed);
    cJSON_AddNumberToObject(o, "epoch", (double)v.epoch);
    return o;
}
