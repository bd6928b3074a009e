/* quorum_mongo.c -- cb_quorum_backend on MongoDB (and FerretDB 1.x) through libmongoc.
 *
 * Three collections. Votes are plain upserts (each replica writes only its
 * own document). The two compare-and-sets do not rely on an update's filter
 * being re-checked atomically against a concurrent update, which MongoDB
 * guarantees but FerretDB 1.x over SQLite does not (in the Swarm test three
 * replicas were granted one lease within 8 ms through such an update): they
 * rest on the one operation every store makes atomic, an insert under a
 * unique _id.
 *
 *   breaker_votes   _id "<circuit>\n<replica>": circuit, replica, successes,
 *                   failures, open, epoch, heartbeat_ms (upsert per sync)
 *   breaker_shared  one document per version, _id "<circuit>#<version>":
 *                   open, epoch, reopens, open_until_ms; the newest is the
 *                   state; compare-and-set = insert version + 1
 *   breaker_leases  one document per generation, _id "<circuit>#<gen>":
 *                   holder, expires_ms; taking a free or expired lease =
 *                   insert generation + 1; renewal and release update the
 *                   holder's own generation
 *
 * Older versions and generations are pruned (the newest 8 are kept). Every
 * call takes one client from a pool of its own (the ticker thread is its
 * only user).
 */
#include "quorum_mongo.h"

#include <mongoc/mongoc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "store.h"

#define QM_VOTES  "breaker_votes"
#define QM_SHARED "breaker_shared"
#define QM_LEASES "breaker_leases"
#define QM_DUPLICATE_KEY 11000

struct quorum_mongo {
    mongoc_client_pool_t *pool;
    char *db;
};

int quorum_mongo_open(const char *url, const char *db, int timeout_ms, quorum_mongo **out,
                      char *err, size_t errlen)
{
    quorum_mongo *m = calloc(1, sizeof *m);
    if (!m) {
        snprintf(err, errlen, "MONGO_URL: cannot create a client pool for \"%s\"", url);
        return -1;
    }
    m->pool = store_pool_open(url, db, timeout_ms, timeout_ms > 2500 ? timeout_ms : 2500, 0,
                              "breaker-quorum", &m->db, err, errlen);
    if (!m->pool) {
        quorum_mongo_close(m);
        return -1;
    }
    mongoc_client_pool_max_size(m->pool, 2);
    *out = m;
    return 0;
}

void quorum_mongo_close(quorum_mongo *m)
{
    if (!m)
        return;
    if (m->pool)
        mongoc_client_pool_destroy(m->pool);
    free(m->db);
    free(m);
}

/* A collection handle on a client from the pool; give both back with qm_done(). */
static mongoc_collection_t *qm_coll(quorum_mongo *m, const char *name, mongoc_client_t **client)
{
    *client = mongoc_client_pool_pop(m->pool);
    return mongoc_client_get_collection(*client, m->db, name);
}

static void qm_done(quorum_mongo *m, mongoc_collection_t *coll, mongoc_client_t *client)
{
    mongoc_collection_destroy(coll);
    mongoc_client_pool_push(m->pool, client);
}

/* Reads an integer field of any numeric BSON type; 0 when absent. */
static int64_t qm_int(const bson_t *doc, const char *key)
{
    bson_iter_t it;
    if (bson_iter_init_find(&it, doc, key) &&
        (BSON_ITER_HOLDS_INT32(&it) || BSON_ITER_HOLDS_INT64(&it) || BSON_ITER_HOLDS_DOUBLE(&it)))
        return bson_iter_as_int64(&it);
    return 0;
}

static bool qm_bool(const bson_t *doc, const char *key)
{
    bson_iter_t it;
    return bson_iter_init_find(&it, doc, key) && bson_iter_as_bool(&it);
}

/* Logs a failed store operation once per distinct message, so a dead
 * database does not write a line per bucket. Returns -1. */
static int qm_fail(const char *what, const bson_error_t *e)
{
    static __thread char last[128];
    if (strncmp(last, e->message, sizeof last - 1) != 0) {
        snprintf(last, sizeof last, "%.127s", e->message);
        log_message(true, "shared breaker: %s failed: %s", what, e->message);
    }
    return -1;
}

/* publish: upsert the vote under _id "<circuit>\n<replica>". */
static int qm_publish(void *user, const char *circuit, const cb_quorum_vote *v)
{
    quorum_mongo *m = user;
    char id[2 * CB_QUORUM_ID_MAX + 2];
    snprintf(id, sizeof id, "%s\n%s", circuit, v->replica);
    bson_t *filter = BCON_NEW("_id", BCON_UTF8(id));
    bson_t *update = BCON_NEW("$set", "{",
                              "circuit", BCON_UTF8(circuit), "replica", BCON_UTF8(v->replica),
                              "successes", BCON_INT64(v->successes),
                              "failures", BCON_INT64(v->failures), "open", BCON_BOOL(v->open),
                              "epoch", BCON_INT64(v->epoch),
                              "heartbeat_ms", BCON_INT64(v->heartbeat_ms), "}");
    bson_t *opts = BCON_NEW("upsert", BCON_BOOL(true));
    mongoc_client_t *client;
    mongoc_collection_t *coll = qm_coll(m, QM_VOTES, &client);
    bson_error_t e;
    int rc = mongoc_collection_update_one(coll, filter, update, opts, NULL, &e) ? 0
                                                                               : qm_fail("publish", &e);
    qm_done(m, coll, client);
    bson_destroy(opts);
    bson_destroy(update);
    bson_destroy(filter);
    return rc;
}

/* read_votes: the circuit's votes with heartbeat_ms >= live_since_ms. */
static int qm_read_votes(void *user, const char *circuit, int64_t live_since_ms,
                         cb_quorum_vote *out, size_t cap, size_t *n)
{
    quorum_mongo *m = user;
    bson_t *filter = BCON_NEW("circuit", BCON_UTF8(circuit),
                              "heartbeat_ms", "{", "$gte", BCON_INT64(live_since_ms), "}");
    bson_t *opts = BCON_NEW("limit", BCON_INT64((int64_t)cap));
    mongoc_client_t *client;
    mongoc_collection_t *coll = qm_coll(m, QM_VOTES, &client);
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, filter, opts, NULL);
    const bson_t *doc;
    size_t k = 0;
    while (k < cap && mongoc_cursor_next(cur, &doc)) {
        cb_quorum_vote *v = &out[k++];
        memset(v, 0, sizeof *v);
        bson_iter_t it;
        if (bson_iter_init_find(&it, doc, "replica") && BSON_ITER_HOLDS_UTF8(&it))
            snprintf(v->replica, sizeof v->replica, "%s", bson_iter_utf8(&it, NULL));
        v->successes = qm_int(doc, "successes");
        v->failures = qm_int(doc, "failures");
        v->open = qm_bool(doc, "open");
        v->epoch = qm_int(doc, "epoch");
        v->heartbeat_ms = qm_int(doc, "heartbeat_ms");
    }
    bson_error_t e;
    int rc = mongoc_cursor_error(cur, &e) ? qm_fail("read votes", &e) : 0;
    *n = k;
    mongoc_cursor_destroy(cur);
    qm_done(m, coll, client);
    bson_destroy(opts);
    bson_destroy(filter);
    return rc;
}

/* Reads the circuit's newest document of collection (highest `key`) into
 * *doc (a bson_copy(); NULL when there is none). Returns 0 or -1. */
static int qm_newest(quorum_mongo *m, const char *collection, const char *circuit,
                     const char *key, bson_t **doc)
{
    *doc = NULL;
    bson_t *filter = BCON_NEW("circuit", BCON_UTF8(circuit));
    bson_t *opts = BCON_NEW("sort", "{", key, BCON_INT32(-1), "}", "limit", BCON_INT64(1));
    mongoc_client_t *client;
    mongoc_collection_t *coll = qm_coll(m, collection, &client);
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, filter, opts, NULL);
    const bson_t *found;
    if (mongoc_cursor_next(cur, &found))
        *doc = bson_copy(found);
    bson_error_t e;
    int rc = 0;
    if (mongoc_cursor_error(cur, &e)) {
        rc = qm_fail(collection, &e);
        if (*doc)
            bson_destroy(*doc);
        *doc = NULL;
    }
    mongoc_cursor_destroy(cur);
    qm_done(m, coll, client);
    bson_destroy(opts);
    bson_destroy(filter);
    return rc;
}

/* Inserts doc; *won = false on a duplicate _id (another replica's insert
 * came first), which is not an error. Returns 0 or -1. */
static int qm_insert_unique(quorum_mongo *m, const char *collection, const bson_t *doc, bool *won)
{
    mongoc_client_t *client;
    mongoc_collection_t *coll = qm_coll(m, collection, &client);
    bson_error_t e;
    int rc = 0;
    *won = mongoc_collection_insert_one(coll, doc, NULL, NULL, &e);
    if (!*won && e.code != QM_DUPLICATE_KEY)
        rc = qm_fail(collection, &e);
    qm_done(m, coll, client);
    return rc;
}

/* Deletes the circuit's documents whose `key` is below keep_from. Best
 * effort (errors ignored): only the newest entries are ever read. */
static void qm_prune(quorum_mongo *m, const char *collection, const char *circuit,
                     const char *key, int64_t keep_from)
{
    if (keep_from <= 1)
        return;
    bson_t *filter = BCON_NEW("circuit", BCON_UTF8(circuit), key, "{", "$lt", BCON_INT64(keep_from), "}");
    mongoc_client_t *client;
    mongoc_collection_t *coll = qm_coll(m, collection, &client);
    (void)mongoc_collection_delete_many(coll, filter, NULL, NULL, NULL);
    qm_done(m, coll, client);
    bson_destroy(filter);
}

/* read_shared: the newest version of the circuit's shared state, zeros when
 * never written. */
static int qm_read_shared(void *user, const char *circuit, cb_quorum_shared *out)
{
    memset(out, 0, sizeof *out);
    bson_t *doc;
    if (qm_newest(user, QM_SHARED, circuit, "version", &doc))
        return -1;
    if (doc) {
        out->open = qm_bool(doc, "open");
        out->epoch = qm_int(doc, "epoch");
        out->reopens = qm_int(doc, "reopens");
        out->open_until_ms = qm_int(doc, "open_until_ms");
        out->version = qm_int(doc, "version");
        bson_destroy(doc);
    }
    return 0;
}

/* cas_shared: inserts version expected_version + 1 under _id
 * "<circuit>#<version>". Versions are written once each and in order (a
 * writer inserts v + 1 only after reading v as the newest), so the insert
 * collides exactly when another writer moved the state past expected_version. */
static int qm_cas_shared(void *user, const char *circuit, int64_t expected_version,
                         const cb_quorum_shared *next, bool *swapped)
{
    char id[CB_QUORUM_ID_MAX + 24];
    snprintf(id, sizeof id, "%s#%lld", circuit, (long long)(expected_version + 1));
    bson_t *doc = BCON_NEW("_id", BCON_UTF8(id), "circuit", BCON_UTF8(circuit),
                           "version", BCON_INT64(expected_version + 1), "open", BCON_BOOL(next->open),
                           "epoch", BCON_INT64(next->epoch), "reopens", BCON_INT64(next->reopens),
                           "open_until_ms", BCON_INT64(next->open_until_ms));
    int rc = qm_insert_unique(user, QM_SHARED, doc, swapped);
    bson_destroy(doc);
    if (rc == 0 && *swapped)
        qm_prune(user, QM_SHARED, circuit, "version", expected_version + 1 - 8);
    return rc;
}

/* Sets the holder's expiry on lease generation gen, only if replica holds
 * it. Sets *matched. Returns 0 or -1. */
static int qm_lease_update(quorum_mongo *m, const char *circuit, int64_t gen, const char *replica,
                           const char *new_holder, int64_t expires_ms, bool *matched)
{
    char id[CB_QUORUM_ID_MAX + 24];
    snprintf(id, sizeof id, "%s#%lld", circuit, (long long)gen);
    bson_t *filter = BCON_NEW("_id", BCON_UTF8(id), "holder", BCON_UTF8(replica));
    bson_t *update = BCON_NEW("$set", "{", "holder", BCON_UTF8(new_holder),
                              "expires_ms", BCON_INT64(expires_ms), "}");
    mongoc_client_t *client;
    mongoc_collection_t *coll = qm_coll(m, QM_LEASES, &client);
    bson_t reply;
    bson_error_t e;
    int rc = 0;
    *matched = false;
    if (mongoc_collection_update_one(coll, filter, update, NULL, &reply, &e))
        *matched = qm_int(&reply, "matchedCount") > 0;
    else
        rc = qm_fail("probe lease update", &e);
    bson_destroy(&reply);
    qm_done(m, coll, client);
    bson_destroy(update);
    bson_destroy(filter);
    return rc;
}

/* lease_acquire: the newest lease generation decides. Held by replica: renew
 * it (only its holder writes it) and keep it only if no newer generation
 * appeared meanwhile (a takeover after it had expired). Free, released or
 * expired: insert generation g + 1, which exactly one replica wins. */
static int qm_lease_acquire(void *user, const char *circuit, const char *replica, int64_t now_ms,
                            int64_t expires_ms, bool *granted)
{
    quorum_mongo *m = user;
    *granted = false;
    bson_t *doc;
    if (qm_newest(m, QM_LEASES, circuit, "gen", &doc))
        return -1;
    int64_t gen = doc ? qm_int(doc, "gen") : 0;
    int64_t expires = doc ? qm_int(doc, "expires_ms") : 0;
    char holder[CB_QUORUM_ID_MAX] = "";
    bson_iter_t it;
    if (doc && bson_iter_init_find(&it, doc, "holder") && BSON_ITER_HOLDS_UTF8(&it))
        snprintf(holder, sizeof holder, "%s", bson_iter_utf8(&it, NULL));
    if (doc)
        bson_destroy(doc);
    if (holder[0] && strcmp(holder, replica) == 0) {
        if (qm_lease_update(m, circuit, gen, replica, replica, expires_ms, granted))
            return -1;
        if (*granted) {
            if (qm_newest(m, QM_LEASES, circuit, "gen", &doc))
                return -1;
            *granted = doc && qm_int(doc, "gen") == gen;
            if (doc)
                bson_destroy(doc);
        }
        return 0;
    }
    if (holder[0] && expires > now_ms)
        return 0;   /* another replica holds it */
    char id[CB_QUORUM_ID_MAX + 24];
    snprintf(id, sizeof id, "%s#%lld", circuit, (long long)(gen + 1));
    bson_t *lease = BCON_NEW("_id", BCON_UTF8(id), "circuit", BCON_UTF8(circuit),
                             "gen", BCON_INT64(gen + 1), "holder", BCON_UTF8(replica),
                             "expires_ms", BCON_INT64(expires_ms));
    int rc = qm_insert_unique(m, QM_LEASES, lease, granted);
    bson_destroy(lease);
    if (rc == 0 && *granted)
        qm_prune(m, QM_LEASES, circuit, "gen", gen + 1 - 8);
    return rc;
}

/* lease_release: clears the newest generation's holder if replica holds it. */
static int qm_lease_release(void *user, const char *circuit, const char *replica)
{
    quorum_mongo *m = user;
    bson_t *doc;
    if (qm_newest(m, QM_LEASES, circuit, "gen", &doc))
        return -1;
    if (!doc)
        return 0;
    int64_t gen = qm_int(doc, "gen");
    bson_destroy(doc);
    bool matched;
    return qm_lease_update(m, circuit, gen, replica, "", 0, &matched);
}

void quorum_mongo_backend(quorum_mongo *m, cb_quorum_backend *b)
{
    memset(b, 0, sizeof *b);
    b->publish = qm_publish;
    b->read_votes = qm_read_votes;
    b->read_shared = qm_read_shared;
    b->cas_shared = qm_cas_shared;
    b->lease_acquire = qm_lease_acquire;
    b->lease_release = qm_lease_release;
    b->user = m;
}
