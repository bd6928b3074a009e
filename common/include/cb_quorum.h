/* cb_quorum.h -- one logical breaker shared by several replicas, decided by quorum.
 *
 * Each replica keeps its own cb_breaker (the hot path is untouched) and, once
 * per bucket, calls cb_quorum_sync() with its window counts and its local
 * verdict. The quorum module publishes that vote through a backend, reads the
 * live peers' votes and the shared state, and answers with a view: whether the
 * shared circuit is open, whether this replica holds the probe lease, and
 * whether the replica is running on its local breaker alone (backend down).
 *
 * The rule (docs/scale-out.md):
 *  - live: a vote whose heartbeat is no older than heartbeat_timeout_ms;
 *  - the shared circuit opens when at least `quorum` live replicas (0 = a
 *    majority: live/2 + 1) vote open in the current epoch;
 *  - while open, after the open period one replica takes the probe lease
 *    (compare-and-set with an expiry, so a dead prober's lease runs out and
 *    another takes it) and lets trial calls through; cb_quorum_trial() closes
 *    the shared circuit for all (new epoch: older open votes no longer count)
 *    or re-opens it with the open period multiplied by backoff_multiplier,
 *    capped at reset_timeout_max_ms, for all;
 *  - one replica voting open while the others vote closed moves nothing: it
 *    is protected by its own local breaker only;
 *  - any backend error puts the replica on its local breaker
 *    (CB_QEV_FELL_BACK, view.local_only); the first sync that succeeds again
 *    rejoins (CB_QEV_REJOINED).
 *
 * The caller rejects a call when its local breaker rejects it, or when
 * view.shared_open is set and view.prober is not. When the shared circuit
 * closes (CB_QEV_SHARED_CLOSED) the caller closes its local breaker too
 * (cb_close()): the prober's trial proved the downstream healthy, and a local
 * breaker left open from the outage would vote open in the new epoch.
 *
 * Time: every function takes now_ms, a wall-clock time in milliseconds that
 * all replicas share (heartbeats and lease expiries are compared across
 * replicas, so clock skew between hosts must stay well below
 * heartbeat_timeout_ms and lease_ms). Nothing here sleeps or reads a clock.
 *
 * Thread safety: a cb_quorum is not locked; call it from one thread (e.g. the
 * replica's ticker) or serialise the calls. Listeners run inside the call.
 *
 * No backend ships in libcb; a MongoDB, Redis or etcd backend implements
 * cb_quorum_backend. The services' MongoDB backend is common/svc/cluster/quorum_mongo.c,
 * used when CB_SHARED=on (common/svc/cluster/shared.c).
 */
#ifndef CB_QUORUM_H
#define CB_QUORUM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CB_QUORUM_ID_MAX    64   /* replica ids: at most 63 bytes + NUL */
#define CB_QUORUM_PEERS_MAX 64   /* live votes read per sync */

/* One replica's vote, as published and as read back. */
typedef struct cb_quorum_vote {
    char replica[CB_QUORUM_ID_MAX];
    int64_t successes;     /* the replica's rolling window counts */
    int64_t failures;
    bool open;             /* its local verdict: its own breaker is open */
    int64_t epoch;         /* the shared epoch it voted in (see cb_quorum_shared) */
    int64_t heartbeat_ms;  /* when it published (now_ms of its sync) */
} cb_quorum_vote;

/* The shared state of the logical breaker. A fresh store reads as all zero
 * (closed, epoch 0, version 0). */
typedef struct cb_quorum_shared {
    bool open;
    int64_t epoch;         /* +1 at each close: votes of older epochs are not counted */
    int64_t reopens;       /* consecutive re-opens since the last close (back-off exponent) */
    int64_t open_until_ms; /* end of the current open period */
    int64_t version;       /* +1 at each write; the compare-and-set key */
} cb_quorum_shared;

/* What a store must provide. Every function returns 0 on success and any
 * non-zero value when the store could not be reached or answered wrongly;
 * the module then falls back to the local breaker. `user` is backend.user,
 * `circuit` names the logical breaker (one document / key per circuit).
 *
 * publish       upserts v under (circuit, v->replica), replacing the previous vote.
 * read_votes    stores in out[0..cap) the votes of `circuit` whose heartbeat_ms
 *               >= live_since_ms (the store may return older ones; the module
 *               filters again), sets *n; returns more than cap only as cap.
 * read_shared   reads the shared state; a circuit never written reads as zeros.
 * cas_shared    writes *next only if the stored version equals expected_version
 *               (atomically); sets *swapped. next->version is expected_version+1.
 * lease_acquire takes or renews the probe lease: atomically, if there is no
 *               lease, or it is held by `replica`, or its expiry <= now_ms, it
 *               becomes (replica, expires_ms) and *granted = true; otherwise
 *               nothing changes and *granted = false.
 * lease_release drops the lease if (and only if) `replica` holds it.
 */
typedef struct cb_quorum_backend {
    int (*publish)(void *user, const char *circuit, const cb_quorum_vote *v);
    int (*read_votes)(void *user, const char *circuit, int64_t live_since_ms,
                      cb_quorum_vote *out, size_t cap, size_t *n);
    int (*read_shared)(void *user, const char *circuit, cb_quorum_shared *out);
    int (*cas_shared)(void *user, const char *circuit, int64_t expected_version,
                      const cb_quorum_shared *next, bool *swapped);
    int (*lease_acquire)(void *user, const char *circuit, const char *replica,
                         int64_t now_ms, int64_t expires_ms, bool *granted);
    int (*lease_release)(void *user, const char *circuit, const char *replica);
    void *user;
} cb_quorum_backend;

typedef enum cb_quorum_event_type {
    CB_QEV_VOTED = 0,       /* this replica published its vote (once per bucket) */
    CB_QEV_QUORUM_REACHED,  /* this replica's sync opened the shared circuit */
    CB_QEV_SHARED_OPENED,   /* this replica saw the shared circuit open */
    CB_QEV_LEASE_TAKEN,     /* this replica took the probe lease (probes now) */
    CB_QEV_SHARED_CLOSED,   /* this replica saw the shared circuit close */
    CB_QEV_SHARED_REOPENED, /* the prober's trial failed: open again, backed off */
    CB_QEV_PEER_JOINED,     /* a replica became live (peer = its id) */
    CB_QEV_PEER_LEFT,       /* a replica's heartbeat grew too old */
    CB_QEV_FELL_BACK,       /* backend error: local breaker only (rc = backend rc) */
    CB_QEV_REJOINED         /* the backend answered again */
} cb_quorum_event_type;

/* "voted", "quorum-reached", "shared-opened", "lease-taken", "shared-closed",
 * "shared-reopened", "peer-joined", "peer-left", "fell-back", "rejoined". */
const char *cb_quorum_event_name(cb_quorum_event_type t);

typedef struct cb_quorum_event {
    cb_quorum_event_type type;
    const char *circuit;
    const char *replica;     /* this replica */
    const char *peer;        /* PEER_JOINED / PEER_LEFT: the peer, else NULL */
    int64_t now_ms;
    int live;                /* live replicas at the last successful read */
    int open_votes;          /* of which voting open in the current epoch */
    int needed;              /* votes needed to open */
    int64_t open_ms;         /* SHARED_OPENED / SHARED_REOPENED: the open period */
    int rc;                  /* FELL_BACK: the backend's return */
} cb_quorum_event;

typedef void (*cb_quorum_listener_fn)(const cb_quorum_event *ev, void *user);

typedef struct cb_quorum_options {
    const char *circuit;          /* required: the logical breaker's name */
    const char *replica;          /* required: this replica's id (< CB_QUORUM_ID_MAX) */
    cb_quorum_backend backend;    /* required: every function set */
    int64_t bucket_ms;            /* sync period; publish at most once per bucket. 1000 */
    int64_t heartbeat_timeout_ms; /* a vote older than this is not live. 0 = 3 buckets */
    int quorum;                   /* open votes needed; 0 = majority of live (live/2+1) */
    int64_t reset_timeout_ms;     /* first open period. 10000 */
    double backoff_multiplier;    /* each consecutive re-open multiplies it; 1.0 = none */
    int64_t reset_timeout_max_ms; /* cap of the open period; 0 = none */
    int64_t lease_ms;             /* probe lease lifetime, renewed each sync. 0 = 2 buckets */
    cb_quorum_listener_fn listener; /* may be NULL */
    void *listener_user;
} cb_quorum_options;

/* Fills o with the defaults above (circuit, replica and backend left empty). */
void cb_quorum_options_init(cb_quorum_options *o);

/* What a sync concluded. */
typedef struct cb_quorum_view {
    bool local_only;         /* backend unreachable: use the local breaker alone */
    bool shared_open;        /* the shared circuit is open: reject unless prober */
    bool prober;             /* this replica holds the lease: let trial calls through */
    int live;                /* live replicas (including this one) */
    int open_votes;          /* live replicas voting open in the current epoch */
    int needed;              /* votes needed to open */
    int64_t epoch;
    int64_t open_until_ms;   /* when shared_open */
    int64_t open_ms;         /* the current open period (back-off applied) */
} cb_quorum_view;

typedef struct cb_quorum cb_quorum;

/* Creates the module. Returns CB_OK, CB_EINVAL (missing circuit / replica /
 * backend function, bad durations, multiplier < 1, quorum < 0) or CB_ENOMEM. */
int cb_quorum_new(const cb_quorum_options *o, cb_quorum **out);
/* Releases the lease if held (ignoring errors) and frees q. NULL is a no-op. */
void cb_quorum_free(cb_quorum *q);

/* Runs one sync if now_ms is in a bucket not yet synced: publish this vote,
 * read the live votes and the shared state, open the shared circuit on a
 * quorum, take or renew the probe lease when the open period is over. In a
 * bucket already synced it only copies the last view. local_open is this
 * replica's own breaker verdict (open or half-open counts as open). Returns
 * CB_OK (view filled; view->local_only on backend error) or CB_EINVAL. */
int cb_quorum_sync(cb_quorum *q, int64_t now_ms, int64_t successes, int64_t failures,
                   bool local_open, cb_quorum_view *view);

/* The prober reports its trial: ok closes the shared circuit for all (new
 * epoch, back-off reset); !ok re-opens it for all with the next, longer open
 * period. Releases the lease either way once written. When the shared state
 * changed under it at each of four compare-and-sets, it writes nothing and
 * keeps the lease: the next sync decides. Returns CB_OK or CB_EINVAL (this
 * replica is not the prober). On backend error it falls back
 * (CB_QEV_FELL_BACK) and returns CB_OK with view->local_only set. */
int cb_quorum_trial(cb_quorum *q, int64_t now_ms, bool ok, cb_quorum_view *view);

/* The open period after `reopens` consecutive re-opens under o's back-off. */
int64_t cb_quorum_open_ms(const cb_quorum_options *o, int64_t reopens);

#ifdef __cplusplus
}
#endif
#endif
