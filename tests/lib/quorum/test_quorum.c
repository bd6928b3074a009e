/* test_quorum.c -- unit tests of the shared-breaker quorum logic (cb_quorum.h),
 * driven by a manual clock (a plain now_ms the test moves) and an in-memory
 * store shared by several replicas. Each replica reaches the store through its
 * own handle, which the test can cut off to play a database outage. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cb.h"
#include "cb_quorum.h"

/* ---- the in-memory store ------------------------------------------------- */

#define MAXR 8

typedef struct store {
    cb_quorum_vote votes[MAXR];
    int nvotes;
    cb_quorum_shared shared;
    char lease_holder[CB_QUORUM_ID_MAX];
    int64_t lease_expires;
} store;

typedef struct handle {
    store *st;
    bool down;      /* this replica cannot reach the store */
    bool race;      /* another writer opens the circuit just before our next CAS */
    int publishes;
} handle;

static int f_publish(void *u, const char *c, const cb_quorum_vote *v)
{
    handle *h = u;
    (void)c;
    if (h->down)
        return -1;
    h->publishes++;
    for (int i = 0; i < h->st->nvotes; i++)
        if (strcmp(h->st->votes[i].replica, v->replica) == 0) {
            h->st->votes[i] = *v;
            return 0;
        }
    assert_true(h->st->nvotes < MAXR);
    h->st->votes[h->st->nvotes++] = *v;
    return 0;
}

static int f_read_votes(void *u, const char *c, int64_t since, cb_quorum_vote *out, size_t cap,
                        size_t *n)
{
    handle *h = u;
    (void)c;
    if (h->down)
        return -2;
    *n = 0;
    for (int i = 0; i < h->st->nvotes && *n < cap; i++)
        if (h->st->votes[i].heartbeat_ms >= since)
            out[(*n)++] = h->st->votes[i];
    return 0;
}

static int f_read_shared(void *u, const char *c, cb_quorum_shared *out)
{
    handle *h = u;
    (void)c;
    if (h->down)
        return -3;
    *out = h->st->shared;
    return 0;
}

static int f_cas_shared(void *u, const char *c, int64_t expected, const cb_quorum_shared *next,
                        bool *swapped)
{
    handle *h = u;
    (void)c;
    if (h->down)
        return -4;
    if (h->race) {
        h->race = false;
        h->st->shared.open = true;
        h->st->shared.open_until_ms = 123456789;
        h->st->shared.version++;
    }
    *swapped = h->st->shared.version == expected;
    if (*swapped)
        h->st->shared = *next;
    return 0;
}

static int f_lease_acquire(void *u, const char *c, const char *r, int64_t now, int64_t exp,
                           bool *granted)
{
    handle *h = u;
    (void)c;
    if (h->down)
        return -5;
    store *s = h->st;
    *granted = !s->lease_holder[0] || strcmp(s->lease_holder, r) == 0 || s->lease_expires <= now;
    if (*granted) {
        snprintf(s->lease_holder, sizeof s->lease_holder, "%s", r);
        s->lease_expires = exp;
    }
    return 0;
}

static int f_lease_release(void *u, const char *c, const char *r)
{
    handle *h = u;
    (void)c;
    if (h->down)
        return -6;
    if (strcmp(h->st->lease_holder, r) == 0)
        h->st->lease_holder[0] = '\0';
    return 0;
}

/* ---- replicas and events ------------------------------------------------- */

typedef struct replica {
    char id[16];
    cb_quorum_event last[16];   /* last event of each type */
    handle h;
    cb_quorum *q;
    cb_quorum_view v;
    int ev[16];     /* events seen, by type */
    char last_peer[CB_QUORUM_ID_MAX];
} replica;

static void on_event(const cb_quorum_event *ev, void *user)
{
    replica *r = user;
    assert_true((unsigned)ev->type < 16);
    r->ev[ev->type]++;
    r->last[ev->type] = *ev;
    assert_string_equal(ev->replica, r->id);
    assert_string_equal(ev->circuit, "shipment");
    if (ev->peer)
        snprintf(r->last_peer, sizeof r->last_peer, "%s", ev->peer);
}

typedef struct world {
    store st;
    replica r[MAXR];
    int n;
    int64_t now;        /* the manual clock, ms */
    cb_quorum_options o;
} world;

static void world_init(world *w, int n, int quorum)
{
    memset(w, 0, sizeof *w);
    w->n = n;
    w->now = 100000;
    cb_quorum_options_init(&w->o);
    w->o.circuit = "shipment";
    w->o.bucket_ms = 1000;
    w->o.quorum = quorum;
    w->o.reset_timeout_ms = 5000;
    w->o.listener = on_event;
    for (int i = 0; i < n; i++) {
        replica *r = &w->r[i];
        snprintf(r->id, sizeof r->id, "r%d", i);
        r->h.st = &w->st;
        cb_quorum_options o = w->o;
        o.replica = r->id;
        o.backend = (cb_quorum_backend){f_publish, f_read_votes, f_read_shared, f_cas_shared,
                                        f_lease_acquire, f_lease_release, &r->h};
        o.listener_user = r;
        assert_int_equal(cb_quorum_new(&o, &r->q), CB_OK);
    }
}

static void world_free(world *w)
{
    for (int i = 0; i < w->n; i++)
        cb_quorum_free(w->r[i].q);
}

/* Replica i syncs now with its local verdict. */
static cb_quorum_view *sync1(world *w, int i, bool open)
{
    replica *r = &w->r[i];
    assert_int_equal(cb_quorum_sync(r->q, w->now, open ? 2 : 10, open ? 8 : 0, open, &r->v),
                     CB_OK);
    return &r->v;
}

/* Every replica syncs; open_mask bit i = replica i's local verdict. */
static void sync_all(world *w, unsigned open_mask)
{
    for (int i = 0; i < w->n; i++)
        sync1(w, i, (open_mask >> i) & 1u);
}

static void next_bucket(world *w) { w->now += w->o.bucket_ms; }

/* ---- tests --------------------------------------------------------------- */

static void test_publish_once_per_bucket(void **st)
{
    (void)st;
    world w;
    world_init(&w, 1, 0);
    for (int k = 0; k < 5; k++) {
        sync1(&w, 0, false);
        w.now += 100;                       /* stays within the bucket for 10 steps */
    }
    assert_int_equal(w.r[0].h.publishes, 1);
    assert_int_equal(w.r[0].ev[CB_QEV_VOTED], 1);
    w.now += 600;                           /* 100500 + 500 -> next bucket */
    sync1(&w, 0, false);
    sync1(&w, 0, false);
    assert_int_equal(w.r[0].h.publishes, 2);
    assert_int_equal(w.r[0].ev[CB_QEV_VOTED], 2);
    assert_int_equal(w.st.votes[0].heartbeat_ms, w.now);
    assert_int_equal(w.st.votes[0].failures, 0);
    assert_int_equal(w.st.votes[0].successes, 10);
    world_free(&w);
}

static void test_majority_2_of_3(void **st)
{
    (void)st;
    world w;
    world_init(&w, 3, 0);
    sync_all(&w, 0);                        /* everyone live */
    next_bucket(&w);
    sync_all(&w, 0x1);                      /* 1 of 3 open: nothing */
    for (int i = 0; i < 3; i++) {
        assert_false(w.r[i].v.shared_open);
        assert_int_equal(w.r[i].v.needed, 2);
        assert_int_equal(w.r[i].v.live, 3);
    }
    next_bucket(&w);
    sync_all(&w, 0x3);                      /* r0, r1 open: r1's sync reaches quorum */
    assert_false(w.r[0].v.shared_open);     /* r0 synced before r1 voted */
    assert_true(w.r[1].v.shared_open);
    assert_true(w.r[2].v.shared_open);      /* r2 sees it in the same bucket */
    assert_int_equal(w.r[1].ev[CB_QEV_QUORUM_REACHED], 1);
    assert_int_equal(w.r[2].ev[CB_QEV_QUORUM_REACHED], 0);
    assert_int_equal(w.r[2].ev[CB_QEV_SHARED_OPENED], 1);
    next_bucket(&w);
    sync_all(&w, 0x3);
    for (int i = 0; i < 3; i++) {
        assert_true(w.r[i].v.shared_open);
        assert_int_equal(w.r[i].ev[CB_QEV_SHARED_OPENED], 1);
    }
    assert_int_equal(w.r[0].v.open_until_ms, w.now - 1000 + 5000);
    world_free(&w);
}

static void test_majority_3_of_5(void **st)
{
    (void)st;
    world w;
    world_init(&w, 5, 0);
    sync_all(&w, 0);
    next_bucket(&w);
    sync_all(&w, 0x3);                      /* 2 of 5 */
    next_bucket(&w);
    sync_all(&w, 0x3);
    assert_false(w.r[4].v.shared_open);
    assert_int_equal(w.r[4].v.needed, 3);
    assert_int_equal(w.r[4].v.open_votes, 2);
    next_bucket(&w);
    sync_all(&w, 0x13);                     /* r0, r1, r4: 3 of 5 */
    assert_true(w.r[4].v.shared_open);
    assert_int_equal(w.r[4].ev[CB_QEV_QUORUM_REACHED], 1);
    world_free(&w);
}

static void test_even_count(void **st)
{
    (void)st;
    world w;
    world_init(&w, 4, 0);                   /* majority of 4 is 3: a tie does not open */
    sync_all(&w, 0);
    next_bucket(&w);
    sync_all(&w, 0x3);
    next_bucket(&w);
    sync_all(&w, 0x3);
    assert_false(w.r[3].v.shared_open);
    assert_int_equal(w.r[3].v.needed, 3);
    next_bucket(&w);
    sync_all(&w, 0x7);
    assert_true(w.r[3].v.shared_open);
    world_free(&w);

    world_init(&w, 4, 2);                   /* a configured quorum of 2 opens on the tie */
    sync_all(&w, 0);
    next_bucket(&w);
    sync_all(&w, 0x3);
    assert_true(w.r[3].v.shared_open);
    assert_int_equal(w.r[3].v.needed, 2);
    world_free(&w);
}

static void test_single_replica(void **st)
{
    (void)st;
    world w;
    world_init(&w, 1, 0);
    sync1(&w, 0, false);
    assert_false(w.r[0].v.shared_open);
    assert_int_equal(w.r[0].v.needed, 1);
    next_bucket(&w);
    sync1(&w, 0, true);
    assert_true(w.r[0].v.shared_open);
    assert_int_equal(w.r[0].ev[CB_QEV_QUORUM_REACHED], 1);
    assert_int_equal(w.r[0].ev[CB_QEV_PEER_JOINED], 0);
    world_free(&w);
}

static void test_heartbeat_expiry(void **st)
{
    (void)st;
    world w;
    world_init(&w, 3, 0);                   /* heartbeat timeout: 3 buckets */
    sync_all(&w, 0);
    next_bucket(&w);
    sync_all(&w, 0);
    assert_int_equal(w.r[0].ev[CB_QEV_PEER_JOINED], 2);
    /* r2 votes open and dies. */
    next_bucket(&w);
    sync1(&w, 2, true);
    sync1(&w, 0, false);
    sync1(&w, 1, false);
    /* 3 s after r2's heartbeat it still counts (>= now - 3000)... */
    w.now += 3000;
    sync1(&w, 1, false);
    assert_int_equal(w.r[1].v.live, 3);
    assert_int_equal(w.r[1].ev[CB_QEV_PEER_LEFT], 0);
    /* ...one bucket later it does not: r0's open vote is 1 of 2, needed 2. */
    next_bucket(&w);
    sync1(&w, 0, true);
    assert_int_equal(w.r[0].v.live, 2);
    assert_int_equal(w.r[0].v.needed, 2);
    assert_int_equal(w.r[0].v.open_votes, 1);
    assert_false(w.r[0].v.shared_open);
    assert_int_equal(w.r[0].ev[CB_QEV_PEER_LEFT], 1);
    assert_string_equal(w.r[0].last_peer, "r2");
    /* r2 comes back: joined again. */
    next_bucket(&w);
    sync1(&w, 2, false);
    sync1(&w, 0, false);
    assert_int_equal(w.r[0].v.live, 3);
    assert_int_equal(w.r[0].ev[CB_QEV_PEER_JOINED], 3);
    assert_string_equal(w.r[0].last_peer, "r2");
    world_free(&w);

    /* The same dead open vote, still fresh, does make the quorum with r0's. */
    world_init(&w, 3, 0);
    sync_all(&w, 0x4);
    next_bucket(&w);
    sync1(&w, 0, true);
    assert_true(w.r[0].v.shared_open);
    world_free(&w);
}

/* Opens the shared circuit with all replicas voting open; by the next bucket
 * every replica has seen it. */
static void open_all(world *w)
{
    sync_all(w, 0);
    next_bucket(w);
    sync_all(w, 0xff);
    next_bucket(w);
    sync_all(w, 0xff);
    for (int i = 0; i < w->n; i++)
        assert_true(w->r[i].v.shared_open);
}

static int probers(world *w)
{
    int p = 0;
    for (int i = 0; i < w->n; i++)
        p += w->r[i].v.prober;
    return p;
}

static void test_lease_and_takeover(void **st)
{
    (void)st;
    world w;
    world_init(&w, 3, 0);                   /* lease: 2 buckets */
    open_all(&w);
    int64_t until = w.r[0].v.open_until_ms;
    next_bucket(&w);
    sync_all(&w, 0xff);
    assert_int_equal(probers(&w), 0);       /* still within the open period */
    w.now = until;
    sync_all(&w, 0xff);
    assert_int_equal(probers(&w), 1);
    assert_true(w.r[0].v.prober);
    assert_int_equal(w.r[0].ev[CB_QEV_LEASE_TAKEN], 1);
    /* The prober renews in each sync; the others keep being refused. */
    for (int k = 0; k < 4; k++) {
        next_bucket(&w);
        sync_all(&w, 0xff);
        assert_int_equal(probers(&w), 1);
        assert_true(w.r[0].v.prober);
    }
    assert_int_equal(w.r[0].ev[CB_QEV_LEASE_TAKEN], 1);
    /* r0 dies holding the lease: within its 2 s nobody takes it... */
    next_bucket(&w);
    sync1(&w, 1, true);
    sync1(&w, 2, true);
    assert_false(w.r[1].v.prober);
    assert_false(w.r[2].v.prober);
    /* ...after that, one of the others does. */
    next_bucket(&w);
    sync1(&w, 1, true);
    sync1(&w, 2, true);
    assert_true(w.r[1].v.prober);
    assert_false(w.r[2].v.prober);
    assert_int_equal(w.r[1].ev[CB_QEV_LEASE_TAKEN], 1);
    /* Only the prober may report a trial. */
    assert_int_equal(cb_quorum_trial(w.r[2].q, w.now, true, &w.r[2].v), CB_EINVAL);
    world_free(&w);
}

static void test_trial_closes_for_all(void **st)
{
    (void)st;
    world w;
    world_init(&w, 3, 0);
    open_all(&w);
    w.now = w.r[0].v.open_until_ms;
    sync_all(&w, 0xff);
    assert_true(w.r[0].v.prober);
    int64_t epoch = w.r[0].v.epoch;
    assert_int_equal(cb_quorum_trial(w.r[0].q, w.now, true, &w.r[0].v), CB_OK);
    assert_false(w.r[0].v.shared_open);
    assert_false(w.r[0].v.prober);
    assert_int_equal(w.r[0].v.epoch, epoch + 1);
    assert_int_equal(w.st.lease_holder[0], '\0');
    assert_int_equal(w.r[0].ev[CB_QEV_SHARED_CLOSED], 1);
    /* The others still vote open from their local breakers' half-open state in
     * this bucket, but their old-epoch votes are gone: the next sync sees the
     * circuit closed. They publish in the new epoch from then on. */
    next_bucket(&w);
    sync1(&w, 1, false);
    sync1(&w, 2, false);
    sync1(&w, 0, false);
    for (int i = 0; i < 3; i++) {
        assert_false(w.r[i].v.shared_open);
        assert_int_equal(w.r[i].ev[CB_QEV_SHARED_CLOSED], 1);
    }
    world_free(&w);

    /* A stale open vote of the previous epoch does not re-open it. */
    world_init(&w, 3, 0);
    open_all(&w);
    w.now = w.r[0].v.open_until_ms;
    sync_all(&w, 0x7);                      /* r1, r2 publish open votes of epoch 0 */
    assert_true(w.r[0].v.prober);
    assert_int_equal(cb_quorum_trial(w.r[0].q, w.now, true, &w.r[0].v), CB_OK);
    next_bucket(&w);
    sync1(&w, 0, true);                     /* r1, r2 still carry those votes */
    assert_int_equal(w.r[0].v.live, 3);
    assert_int_equal(w.r[0].v.open_votes, 1);
    assert_false(w.r[0].v.shared_open);
    world_free(&w);
}

static void test_backoff_across_reopens(void **st)
{
    (void)st;
    world w;
    world_init(&w, 2, 0);
    world_free(&w);
    w.o.backoff_multiplier = 2.0;
    w.o.reset_timeout_max_ms = 15000;
    assert_int_equal(cb_quorum_open_ms(&w.o, 0), 5000);
    assert_int_equal(cb_quorum_open_ms(&w.o, 1), 10000);
    assert_int_equal(cb_quorum_open_ms(&w.o, 2), 15000);
    assert_int_equal(cb_quorum_open_ms(&w.o, 50), 15000);

    /* Rebuild the world with the back-off options. */
    cb_quorum_options o = w.o;
    memset(&w.st, 0, sizeof w.st);
    for (int i = 0; i < 2; i++) {
        replica *r = &w.r[i];
        memset(r->ev, 0, sizeof r->ev);
        cb_quorum_options ro = o;
        ro.replica = r->id;
        ro.backend = (cb_quorum_backend){f_publish, f_read_votes, f_read_shared, f_cas_shared,
                                         f_lease_acquire, f_lease_release, &r->h};
        ro.listener_user = r;
        assert_int_equal(cb_quorum_new(&ro, &r->q), CB_OK);
    }
    open_all(&w);
    int64_t expect[] = {10000, 15000, 15000};
    for (int k = 0; k < 3; k++) {
        w.now = w.r[0].v.open_until_ms;
        sync_all(&w, 0x3);
        int p = w.r[0].v.prober ? 0 : 1;
        assert_true(w.r[p].v.prober);
        assert_int_equal(cb_quorum_trial(w.r[p].q, w.now, false, &w.r[p].v), CB_OK);
        assert_true(w.r[p].v.shared_open);
        assert_int_equal(w.r[p].v.open_ms, expect[k]);
        assert_int_equal(w.r[p].v.open_until_ms, w.now + expect[k]);
        /* The other replica sees the longer period at its next sync, and no
         * one probes before it ends. */
        next_bucket(&w);
        sync_all(&w, 0x3);
        assert_int_equal(w.r[1 - p].v.open_until_ms, w.r[p].v.open_until_ms);
        assert_int_equal(w.r[1 - p].v.open_ms, expect[k]);
        assert_int_equal(probers(&w), 0);
    }
    assert_int_equal(w.r[0].ev[CB_QEV_SHARED_REOPENED] + w.r[1].ev[CB_QEV_SHARED_REOPENED], 3);
    /* A successful trial resets the back-off for the next opening. */
    w.now = w.r[0].v.open_until_ms;
    sync_all(&w, 0x3);
    int p = w.r[0].v.prober ? 0 : 1;
    assert_int_equal(cb_quorum_trial(w.r[p].q, w.now, true, &w.r[p].v), CB_OK);
    next_bucket(&w);
    sync_all(&w, 0x3);                      /* new epoch: both vote open again */
    assert_true(w.r[1].v.shared_open);
    assert_int_equal(w.r[1].v.open_ms, 5000);
    world_free(&w);
}

static void test_one_bad_replica(void **st)
{
    (void)st;
    world w;
    world_init(&w, 3, 0);
    sync_all(&w, 0);
    for (int k = 0; k < 20; k++) {          /* r1's own calls fail, the others' succeed */
        next_bucket(&w);
        sync_all(&w, 0x2);
        for (int i = 0; i < 3; i++) {
            assert_false(w.r[i].v.shared_open);
            assert_false(w.r[i].v.local_only);
        }
        assert_int_equal(w.r[1].v.open_votes, 1);
    }
    for (int i = 0; i < 3; i++) {
        assert_int_equal(w.r[i].ev[CB_QEV_QUORUM_REACHED], 0);
        assert_int_equal(w.r[i].ev[CB_QEV_SHARED_OPENED], 0);
    }
    assert_false(w.st.shared.open);
    assert_int_equal(w.st.shared.version, 0);
    world_free(&w);
}

static void test_backend_failure_and_rejoin(void **st)
{
    (void)st;
    world w;
    world_init(&w, 3, 0);
    open_all(&w);
    w.r[0].h.down = true;
    for (int k = 0; k < 5; k++) {
        next_bucket(&w);
        sync_all(&w, 0x1);
        assert_true(w.r[0].v.local_only);
        assert_false(w.r[0].v.shared_open); /* the caller uses its own breaker */
        assert_false(w.r[0].v.prober);
    }
    assert_int_equal(w.r[0].ev[CB_QEV_FELL_BACK], 1);
    assert_int_equal(w.r[0].ev[CB_QEV_REJOINED], 0);
    /* The others saw r0 stop heartbeating. */
    assert_int_equal(w.r[1].ev[CB_QEV_PEER_LEFT], 1);
    assert_int_equal(w.r[1].v.live, 2);
    w.r[0].h.down = false;
    next_bucket(&w);
    sync1(&w, 0, true);
    assert_false(w.r[0].v.local_only);
    assert_true(w.r[0].v.shared_open);
    assert_int_equal(w.r[0].ev[CB_QEV_REJOINED], 1);
    sync1(&w, 1, true);
    assert_int_equal(w.r[1].v.live, 3);
    assert_int_equal(w.r[1].ev[CB_QEV_PEER_JOINED], 3);

    /* A backend error during a trial falls back too. */
    w.now = w.r[1].v.open_until_ms;
    sync_all(&w, 0x7);
    int p = w.r[0].v.prober ? 0 : (w.r[1].v.prober ? 1 : 2);
    assert_true(w.r[p].v.prober);
    w.r[p].h.down = true;
    assert_int_equal(cb_quorum_trial(w.r[p].q, w.now, true, &w.r[p].v), CB_OK);
    assert_true(w.r[p].v.local_only);
    assert_true(w.st.shared.open);
    world_free(&w);
}

static void test_event_payload_and_cas_race(void **st)
{
    (void)st;
    world w;
    world_init(&w, 3, 0);
    sync_all(&w, 0);
    next_bucket(&w);
    sync_all(&w, 0x3);
    cb_quorum_event *e = &w.r[1].last[CB_QEV_QUORUM_REACHED];
    assert_int_equal(e->live, 3);
    assert_int_equal(e->open_votes, 2);
    assert_int_equal(e->needed, 2);
    assert_int_equal(e->now_ms, w.now);
    assert_null(e->peer);
    assert_int_equal(w.r[2].last[CB_QEV_SHARED_OPENED].open_ms, 5000);
    e = &w.r[0].last[CB_QEV_VOTED];
    assert_int_equal(e->live, 3);
    assert_int_equal(e->open_votes, 1);
    w.r[0].h.down = true;
    next_bucket(&w);
    sync1(&w, 0, true);
    assert_int_equal(w.r[0].last[CB_QEV_FELL_BACK].rc, -3);   /* read_shared's error */
    world_free(&w);

    /* Two replicas reach the quorum at once: the one whose CAS loses adopts
     * the winner's state instead of writing its own. */
    world_init(&w, 1, 0);
    w.r[0].h.race = true;
    sync1(&w, 0, true);
    assert_true(w.r[0].v.shared_open);
    assert_int_equal(w.r[0].v.open_until_ms, 123456789);
    assert_int_equal(w.st.shared.version, 1);
    assert_int_equal(w.r[0].ev[CB_QEV_QUORUM_REACHED], 0);
    assert_int_equal(w.r[0].ev[CB_QEV_SHARED_OPENED], 1);
    world_free(&w);
}

static void test_invalid_options(void **st)
{
    (void)st;
    world w;
    world_init(&w, 1, 0);
    cb_quorum *q = NULL;
    cb_quorum_options o = w.o;
    o.replica = "x";
    assert_int_equal(cb_quorum_new(&o, &q), CB_EINVAL);     /* no backend */
    o.backend = (cb_quorum_backend){f_publish, f_read_votes, f_read_shared, f_cas_shared,
                                    f_lease_acquire, f_lease_release, &w.r[0].h};
    o.backoff_multiplier = 0.5;
    assert_int_equal(cb_quorum_new(&o, &q), CB_EINVAL);
    o.backoff_multiplier = 1.0;
    o.quorum = -1;
    assert_int_equal(cb_quorum_new(&o, &q), CB_EINVAL);
    o.quorum = 0;
    o.bucket_ms = 0;
    assert_int_equal(cb_quorum_new(&o, &q), CB_EINVAL);
    o.bucket_ms = 1000;
    o.replica = "";
    assert_int_equal(cb_quorum_new(&o, &q), CB_EINVAL);
    o.replica = "x";
    assert_int_equal(cb_quorum_new(&o, &q), CB_OK);
    assert_int_equal(cb_quorum_sync(q, -1, 0, 0, false, &w.r[0].v), CB_EINVAL);
    cb_quorum_free(q);
    cb_quorum_free(NULL);
    assert_string_equal(cb_quorum_event_name(CB_QEV_FELL_BACK), "fell-back");
    assert_string_equal(cb_quorum_event_name((cb_quorum_event_type)99), "unknown");
    world_free(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_publish_once_per_bucket),
        cmocka_unit_test(test_majority_2_of_3),
        cmocka_unit_test(test_majority_3_of_5),
        cmocka_unit_test(test_even_count),
        cmocka_unit_test(test_single_replica),
        cmocka_unit_test(test_heartbeat_expiry),
        cmocka_unit_test(test_lease_and_takeover),
        cmocka_unit_test(test_trial_closes_for_all),
        cmocka_unit_test(test_backoff_across_reopens),
        cmocka_unit_test(test_one_bad_replica),
        cmocka_unit_test(test_backend_failure_and_rejoin),
        cmocka_unit_test(test_event_payload_and_cas_race),
        cmocka_unit_test(test_invalid_options),
    };
    return cmocka_run_group_tests_name("quorum", tests, NULL, NULL);
}
