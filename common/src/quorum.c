/* quorum.c -- the shared-breaker decision logic of cb_quorum.h. Free of any
 * store: every read and write goes through cb_quorum_backend.
 *
 * The shared circuit is a state machine kept in the store (cb_quorum_shared)
 * and moved by whichever replica's cb_quorum_sync() or cb_quorum_trial()
 * meets the event first:
 *
 *   from            event                                         to
 *   closed          a sync counts open votes >= needed (live
 *                   replicas voting open in the current epoch,
 *                   this one included; a majority by default)     open for open_ms(reopens)
 *   open            the open period passed: a sync takes the
 *                   probe lease (one replica at a time; renewed
 *                   at each sync, it expires when its holder
 *                   stops syncing and another may take it)        open, probing
 *   open, probing   the prober's trial succeeds                   closed, epoch + 1, reopens 0
 *   open, probing   the prober's trial fails                      open for open_ms(reopens + 1)
 *
 * and, for this replica alone:
 *   shared          a backend call fails                          local breaker only (fell-back)
 *   local only      a sync succeeds again                         shared (rejoined)
 *
 * What makes it safe: the shared state changes only by compare-and-set
 * against the version the writer just read, so replicas deciding at once on
 * the same reading cannot both write it. Two that see the same quorum open
 * the circuit once (the loser adopts the state it re-reads); a trial whose
 * write lost re-reads and applies its verdict to what it finds. Votes get
 * the same guard from the epoch they were cast in: a close starts a new
 * epoch, so no open vote cast before it counts towards opening again.
 */
#include "cb_quorum.h"
#include "cb.h"

#include <stdlib.h>
#include <string.h>

struct cb_quorum {
    cb_quorum_options o;
    char circuit[CB_QUORUM_ID_MAX];
    char replica[CB_QUORUM_ID_MAX];
    int64_t synced_bucket;        /* bucket of the last sync attempt; INT64_MIN = none */
    bool fell_back;               /* currently on the local breaker */
    bool was_open;                /* shared_open at the last successful sync */
    bool prober;
    cb_quorum_view view;
    char live[CB_QUORUM_PEERS_MAX][CB_QUORUM_ID_MAX]; /* peers live at the last read */
    int nlive;
};

static const char *const ev_names[] = {
    "voted", "quorum-reached", "shared-opened", "lease-taken", "shared-closed",
    "shared-reopened", "peer-joined", "peer-left", "fell-back", "rejoined",
};

const char *cb_quorum_event_name(cb_quorum_event_type t)
{
    if ((unsigned)t < sizeof ev_names / sizeof ev_names[0])
        return ev_names[t];
    return "unknown";
}

void cb_quorum_options_init(cb_quorum_options *o)
{
    memset(o, 0, sizeof *o);
    o->bucket_ms = 1000;
    o->reset_timeout_ms = 10000;
    o->backoff_multiplier = 1.0;
}

static int64_t heartbeat_timeout(const cb_quorum_options *o)
{
    return o->heartbeat_timeout_ms > 0 ? o->heartbeat_timeout_ms : 3 * o->bucket_ms;
}

static int64_t lease_ms(const cb_quorum_options *o)
{
    return o->lease_ms > 0 ? o->lease_ms : 2 * o->bucket_ms;
}

int64_t cb_quorum_open_ms(const cb_quorum_options *o, int64_t reopens)
{
    double ms = (double)o->reset_timeout_ms;
    double cap = o->reset_timeout_max_ms > 0 ? (double)o->reset_timeout_max_ms : 0;
    for (int64_t i = 0; i < reopens && o->backoff_multiplier > 1.0; i++) {
        ms *= o->backoff_multiplier;
        if ((cap > 0 && ms >= cap) || ms > 1e15)
            break;
    }
    if (cap > 0 && ms > cap)
        ms = cap;
    if (ms > 1e15)
        ms = 1e15;
    return (int64_t)ms;
}

int cb_quorum_new(const cb_quorum_options *o, cb_quorum **out)
{
    if (!o || !out)
        return CB_EINVAL;
    *out = NULL;
    const cb_quorum_backend *b = &o->backend;
    if (!o->circuit || !o->replica || !o->circuit[0] || !o->replica[0] ||
        strlen(o->circuit) >= CB_QUORUM_ID_MAX || strlen(o->replica) >= CB_QUORUM_ID_MAX ||
        !b->publish || !b->read_votes || !b->read_shared || !b->cas_shared ||
        !b->lease_acquire || !b->lease_release || o->bucket_ms <= 0 ||
        o->heartbeat_timeout_ms < 0 || o->quorum < 0 || o->reset_timeout_ms < 0 ||
        o->reset_timeout_max_ms < 0 || o->lease_ms < 0 || !(o->backoff_multiplier >= 1.0))
        return CB_EINVAL;
    cb_quorum *q = calloc(1, sizeof *q);
    if (!q)
        return CB_ENOMEM;
    q->o = *o;
    strcpy(q->circuit, o->circuit);
    strcpy(q->replica, o->replica);
    q->o.circuit = q->circuit;
    q->o.replica = q->replica;
    q->synced_bucket = INT64_MIN;
    *out = q;
    return CB_OK;
}

void cb_quorum_free(cb_quorum *q)
{
    if (!q)
        return;
    if (q->prober)
        (void)q->o.backend.lease_release(q->o.backend.user, q->circuit, q->replica);
    free(q);
}

static void emit(cb_quorum *q, cb_quorum_event_type t, int64_t now_ms, const char *peer,
                 int64_t open_ms, int rc)
{
    if (!q->o.listener)
        return;
    cb_quorum_event ev = {
        .type = t, .circuit = q->circuit, .replica = q->replica, .peer = peer,
        .now_ms = now_ms, .live = q->view.live, .open_votes = q->view.open_votes,
        .needed = q->view.needed, .open_ms = open_ms, .rc = rc,
    };
    q->o.listener(&ev, q->o.listener_user);
}

static int fall_back(cb_quorum *q, int64_t now_ms, int rc, cb_quorum_view *view)
{
    if (!q->fell_back) {
        q->fell_back = true;
        emit(q, CB_QEV_FELL_BACK, now_ms, NULL, 0, rc);
    }
    q->prober = false;
    q->view.local_only = true;
    q->view.shared_open = false;
    q->view.prober = false;
    if (view)
        *view = q->view;
    return CB_OK;
}

/* Emits PEER_JOINED / PEER_LEFT by comparing the live ids with the last read. */
static void diff_peers(cb_quorum *q, int64_t now_ms, const cb_quorum_vote *v, size_t n,
                       const bool *alive)
{
    for (size_t i = 0; i < n; i++) {
        if (!alive[i] || strcmp(v[i].replica, q->replica) == 0)
            continue;
        bool known = false;
        for (int j = 0; j < q->nlive && !known; j++)
            known = strcmp(q->live[j], v[i].replica) == 0;
        if (!known)
            emit(q, CB_QEV_PEER_JOINED, now_ms, v[i].replica, 0, 0);
    }
    for (int j = 0; j < q->nlive; j++) {
        bool still = false;
        for (size_t i = 0; i < n && !still; i++)
            still = alive[i] && strcmp(q->live[j], v[i].replica) == 0;
        if (!still)
            emit(q, CB_QEV_PEER_LEFT, now_ms, q->live[j], 0, 0);
    }
    q->nlive = 0;
    for (size_t i = 0; i < n && q->nlive < CB_QUORUM_PEERS_MAX; i++)
        if (alive[i] && strcmp(v[i].replica, q->replica) != 0) {
            memcpy(q->live[q->nlive], v[i].replica, CB_QUORUM_ID_MAX);
            q->live[q->nlive][CB_QUORUM_ID_MAX - 1] = '\0';
            q->nlive++;
        }
}

static void set_shared(cb_quorum *q, const cb_quorum_shared *s)
{
    q->view.shared_open = s->open;
    q->view.epoch = s->epoch;
    q->view.open_until_ms = s->open ? s->open_until_ms : 0;
    q->view.open_ms = cb_quorum_open_ms(&q->o, s->reopens);
}

/* Reads the shared state into *s (the epoch this vote belongs to) and
 * publishes this replica's vote, kept in *me. Returns 0 or the backend's
 * error. */
static int publish_vote(cb_quorum *q, int64_t now_ms, int64_t successes, int64_t failures,
                        bool local_open, cb_quorum_shared *s, cb_quorum_vote *me)
{
    const cb_quorum_backend *b = &q->o.backend;
    memset(s, 0, sizeof *s);
    int rc = b->read_shared(b->user, q->circuit, s);
    if (rc != 0)
        return rc;
    memset(me, 0, sizeof *me);
    memcpy(me->replica, q->replica, sizeof me->replica);
    me->successes = successes;
    me->failures = failures;
    me->open = local_open;
    me->epoch = s->epoch;
    me->heartbeat_ms = now_ms;
    return b->publish(b->user, q->circuit, me);
}

/* Reads into votes[0..*n) the votes whose heartbeat is at least live_since
 * (at most CB_QUORUM_PEERS_MAX). Returns 0 or the backend's error. */
static int read_live_votes(cb_quorum *q, int64_t live_since, cb_quorum_vote *votes, size_t *n)
{
    const cb_quorum_backend *b = &q->o.backend;
    *n = 0;
    int rc = b->read_votes(b->user, q->circuit, live_since, votes, CB_QUORUM_PEERS_MAX, n);
    if (rc == 0 && *n > CB_QUORUM_PEERS_MAX)
        *n = CB_QUORUM_PEERS_MAX;
    return rc;
}

/* Counts the live replicas and their open votes in s's epoch, this
 * replica's own vote once (from *me, not from what the store returned), sets
 * the view's live / open_votes / needed, and tells the listener: rejoined (after
 * a fall-back), voted, and which peers joined or left. */
static void tally_votes(cb_quorum *q, int64_t now_ms, int64_t live_since,
                        const cb_quorum_shared *s, const cb_quorum_vote *me,
                        cb_quorum_vote *votes, size_t n)
{
    bool alive[CB_QUORUM_PEERS_MAX];
    int live = 0, open_votes = 0;
    for (size_t i = 0; i < n; i++) {
        votes[i].replica[CB_QUORUM_ID_MAX - 1] = '\0';
        bool self = strcmp(votes[i].replica, q->replica) == 0;
        if (self) {
            /* Count our own vote from what we just published, once. */
            alive[i] = false;
            continue;
        }
        alive[i] = votes[i].heartbeat_ms >= live_since;
        if (!alive[i])
            continue;
        live++;
        if (votes[i].open && votes[i].epoch == s->epoch)
            open_votes++;
    }
    live++;
    if (me->open)
        open_votes++;
    q->view.local_only = false;
    q->view.live = live;
    q->view.open_votes = open_votes;
    q->view.needed = q->o.quorum > 0 ? q->o.quorum : live / 2 + 1;
    if (q->fell_back) {
        q->fell_back = false;
        emit(q, CB_QEV_REJOINED, now_ms, NULL, 0, 0);
    }
    emit(q, CB_QEV_VOTED, now_ms, NULL, 0, 0);
    diff_peers(q, now_ms, votes, n, alive);
}

/* Opens the closed shared circuit when the tally reached the quorum: a
 * compare-and-set from the version in *s. *s becomes the state that holds
 * afterwards, this replica's write or the one another replica made first.
 * Returns 0 or the backend's error. */
static int open_on_quorum(cb_quorum *q, int64_t now_ms, cb_quorum_shared *s)
{
    if (s->open || q->view.open_votes < q->view.needed)
        return 0;
    const cb_quorum_backend *b = &q->o.backend;
    cb_quorum_shared next = *s;
    next.open = true;
    next.open_until_ms = now_ms + cb_quorum_open_ms(&q->o, s->reopens);
    next.version = s->version + 1;
    bool swapped = false;
    int rc = b->cas_shared(b->user, q->circuit, s->version, &next, &swapped);
    if (rc != 0)
        return rc;
    if (!swapped)
        return b->read_shared(b->user, q->circuit, s);
    *s = next;
    q->view.epoch = s->epoch;
    emit(q, CB_QEV_QUORUM_REACHED, now_ms, NULL, 0, 0);
    return 0;
}

/* Takes s as the view's shared state and tells the listener when the shared
 * circuit opened or closed since the last sync. */
static void observe_shared(cb_quorum *q, int64_t now_ms, const cb_quorum_shared *s)
{
    set_shared(q, s);
    if (s->open && !q->was_open)
        emit(q, CB_QEV_SHARED_OPENED, now_ms, NULL, q->view.open_ms, 0);
    if (!s->open && q->was_open)
        emit(q, CB_QEV_SHARED_CLOSED, now_ms, NULL, 0, 0);
    q->was_open = s->open;
}

/* Takes or renews the probe lease once the open period is over, and drops a
 * lease held otherwise; q->prober says whether this replica holds it.
 * Returns 0 or the backend's error (then q->prober is false). */
static int hold_lease(cb_quorum *q, int64_t now_ms, const cb_quorum_shared *s)
{
    const cb_quorum_backend *b = &q->o.backend;
    bool was_prober = q->prober;
    q->prober = false;
    if (s->open && now_ms >= s->open_until_ms) {
        bool granted = false;
        int rc = b->lease_acquire(b->user, q->circuit, q->replica, now_ms,
                                  now_ms + lease_ms(&q->o), &granted);
        if (rc != 0)
            return rc;
        q->prober = granted;
        if (granted && !was_prober)
            emit(q, CB_QEV_LEASE_TAKEN, now_ms, NULL, 0, 0);
    } else if (was_prober) {
        (void)b->lease_release(b->user, q->circuit, q->replica);
    }
    return 0;
}

/* One sync per bucket, in steps: vote, read the live votes, tally them, open
 * on a quorum, take in the shared state, hold the lease. A backend error at
 * any step falls back to the local breaker. See cb_quorum.h. */
int cb_quorum_sync(cb_quorum *q, int64_t now_ms, int64_t successes, int64_t failures,
                   bool local_open, cb_quorum_view *view)
{
    if (!q || !view || now_ms < 0)
        return CB_EINVAL;
    int64_t bucket = now_ms / q->o.bucket_ms;
    if (bucket == q->synced_bucket) {
        *view = q->view;
        return CB_OK;
    }
    q->synced_bucket = bucket;
    int64_t live_since = now_ms - heartbeat_timeout(&q->o);
    cb_quorum_shared s;
    cb_quorum_vote me, votes[CB_QUORUM_PEERS_MAX];
    size_t n = 0;
    int rc = publish_vote(q, now_ms, successes, failures, local_open, &s, &me);
    if (rc == 0)
        rc = read_live_votes(q, live_since, votes, &n);
    if (rc != 0)
        return fall_back(q, now_ms, rc, view);
    tally_votes(q, now_ms, live_since, &s, &me, votes, n);
    if ((rc = open_on_quorum(q, now_ms, &s)) != 0)
        return fall_back(q, now_ms, rc, view);
    observe_shared(q, now_ms, &s);
    if ((rc = hold_lease(q, now_ms, &s)) != 0)
        return fall_back(q, now_ms, rc, view);
    q->view.prober = q->prober;
    *view = q->view;
    return CB_OK;
}

int cb_quorum_trial(cb_quorum *q, int64_t now_ms, bool ok, cb_quorum_view *view)
{
    if (!q || !view || !q->prober)
        return CB_EINVAL;
    const cb_quorum_backend *b = &q->o.backend;
    int rc;
    for (int attempt = 0; attempt < 4; attempt++) {
        cb_quorum_shared s;
        memset(&s, 0, sizeof s);
        if ((rc = b->read_shared(b->user, q->circuit, &s)) != 0)
            return fall_back(q, now_ms, rc, view);
        cb_quorum_shared next = s;
        next.version = s.version + 1;
        if (ok) {
            next.open = false;
            next.epoch = s.epoch + 1;
            next.reopens = 0;
            next.open_until_ms = 0;
        } else {
            next.open = true;
            next.reopens = s.reopens + 1;
            next.open_until_ms = now_ms + cb_quorum_open_ms(&q->o, next.reopens);
        }
        bool swapped = false;
        if ((rc = b->cas_shared(b->user, q->circuit, s.version, &next, &swapped)) != 0)
            return fall_back(q, now_ms, rc, view);
        if (!swapped)
            continue;
        (void)b->lease_release(b->user, q->circuit, q->replica);
        q->prober = false;
        set_shared(q, &next);
        q->view.prober = false;
        if (ok) {
            /* This replica's own vote is from the old epoch now: it no longer counts. */
            q->view.open_votes = 0;
            emit(q, CB_QEV_SHARED_CLOSED, now_ms, NULL, 0, 0);
        } else {
            emit(q, CB_QEV_SHARED_REOPENED, now_ms, NULL, q->view.open_ms, 0);
        }
        q->was_open = next.open;
        *view = q->view;
        return CB_OK;
    }
    /* The state kept moving under us: leave it to the next sync. */
    *view = q->view;
    return CB_OK;
}
