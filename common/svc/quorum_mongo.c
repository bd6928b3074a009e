/* quorum_mongo.c -- cb_quorum_backend on MongoDB (and FerretDB 1.x) through libmongoc.
 *
 * Three collections, each keyed by _id so that every write is a single
 * atomic document operation, which is all FerretDB 1.x guarantees:
 *
 *   breaker_votes   _id "<circuit>\n<replica>": circuit, replica, successes,
 *                   failures, open, epoch, heartbeat_ms (upsert per sync)
 *   breaker_shared  _id circuit: open, epoch, reopens, open_until_ms, version
 *   breaker_leases  _id circuit: holder, expires_ms
 *
 * Both compare-and-sets are an update whose filter carries the condition
 * (version == expected; holder == me or expires_ms <= now). When the document
 * does not exist yet the update upserts it; when it exists and the condition
 * fails, the upsert collides on _id (duplicate key, code 11000), which is the
 * "lost" answer rather than an error. Every call takes one client from a
 * pool of its own (the ticker thread is its only user).
 */
#include "quorum_mongo.h"

#include <mongoc/mongoc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

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
    bson_error_t e;
    mongoc_uri_t *uri = mongoc_uri_new_with_error(url, &e);
    if (!uri) {
        snprintf(err, errlen, "MONGO_URL: expected a MongoDB connection string, got \"%s\" (%s)",
                 url, e.message);
        return -1;
    }
    mongoc_uri_set_option_as_int32(uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS, timeout_ms);
    mongoc_uri_set_option_as_int32(uri, MONGOC_URI_CONNECTTIMEOUTMS, timeout_ms);
    mongoc_uri_set_option_as_int32(uri, MONGOC_URI_SOCKETTIMEOUTMS, timeout_ms > 2500 ? timeout_ms : 2500);
    mongoc_uri_set_option_as_int32(uri, MONGOC_URI_HEARTBEATFREQUENCYMS, 500);
    quorum_mongo *m = calloc(1, sizeof *m);
    const char *uri_db = mongoc_uri_get_database(uri);
    if (m) {
        m->db = strdup(db ? db : (uri_db && *uri_db) ? uri_db : "resilience");
        m->pool = mongoc_client_pool_new(uri);
    }
    mongoc_uri_destroy(uri);
    if (!m || !m->db || !m->pool) {
        snprintf(err, errlen, "MONGO_URL: cannot create a client pool for \"%s\"", url);
        quorum_mongo_close(m);
        return -1;
    }
    mongoc_client_pool_set_error_api(m->pool, MONGOC_ERROR_API_VERSION_2);
    mongoc_client_pool_set_appname(m->pool, "breaker-quorum");
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

/* read_shared: the circuit's shared state, zeros when never written. */
static int qm_read_shared(void *user, const char *circuit, cb_quorum_shared *out)
{
    quorum_mongo *m = user;
    memset(out, 0, sizeof *out);
    bson_t *filter = BCON_NEW("_id", BCON_UTF8(circuit));
    bson_t *opts = BCON_NEW("limit", BCON_INT64(1));
    mongoc_client_t *client;
    mongoc_collection_t *coll = qm_coll(m, QM_SHARED, &client);
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, filter, opts, NULL);
    const bson_t *doc;
    if (mongoc_cursor_next(cur, &doc)) {
        out->open = qm_bool(doc, "open");
        out->epoch = qm_int(doc, "epoch");
        out->reopens = qm_int(doc, "reopens");
        out->open_until_ms = qm_int(doc, "open_until_ms");
        out->version = qm_int(doc, "version");
    }
    bson_error_t e;
    int rc = mongoc_cursor_error(cur, &e) ? qm_fail("read shared state", &e) : 0;
    mongoc_cursor_destroy(cur);
    qm_done(m, coll, client);
    bson_destroy(opts);
    bson_destroy(filter);
    return rc;
}

/* Runs an update with upsert whose filter carries a condition. Sets *won
 * when a document matched or was inserted; a duplicate key on the upsert
 * (the document exists and the condition failed) is not an error. */
static int qm_conditional_upsert(quorum_mongo *m, const char *collection, const char *what,
                                 const bson_t *filter, const bson_t *update, bool *won)
{
    bson_t *opts = BCON_NEW("upsert", BCON_BOOL(true));
    mongoc_client_t *client;
    mongoc_collection_t *coll = qm_coll(m, collection, &client);
    bson_t reply;
    bson_error_t e;
    int rc = 0;
    *won = false;
    if (mongoc_collection_update_one(coll, filter, update, opts, &reply, &e)) {
        *won = qm_int(&reply, "matchedCount") > 0 || qm_int(&reply, "upsertedCount") > 0;
    } else if (e.code == QM_DUPLICATE_KEY) {
        *won = false;
    } else {
        rc = qm_fail(what, &e);
    }
    bson_destroy(&reply);
    qm_done(m, coll, client);
    bson_destroy(opts);
    return rc;
}

/* cas_shared: write next only where version == expected_version. */
static int qm_cas_shared(void *user, const char *circuit, int64_t expected_version,
                         const cb_quorum_shared *next, bool *swapped)
{
    bson_t *filter = BCON_NEW("_id", BCON_UTF8(circuit), "version", BCON_INT64(expected_version));
    if (expected_version == 0) {
        /* never written: no version field yet, or the document is absent */
        bson_destroy(filter);
        filter = BCON_NEW("_id", BCON_UTF8(circuit),
                          "$or", "[", "{", "version", BCON_INT64(0), "}",
                                      "{", "version", "{", "$exists", BCON_BOOL(false), "}", "}", "]");
    }
    bson_t *update = BCON_NEW("$set", "{", "open", BCON_BOOL(next->open),
                              "epoch", BCON_INT64(next->epoch), "reopens", BCON_INT64(next->reopens),
                              "open_until_ms", BCON_INT64(next->open_until_ms),
                              "version", BCON_INT64(next->version), "}");
    int rc = qm_conditional_upsert(user, QM_SHARED, "compare-and-set of the shared state",
                                   filter, update, swapped);
    bson_destroy(update);
    bson_destroy(filter);
    return rc;
}

/* lease_acquire: take or renew where there is no lease, it is ours, or it expired. */
static int qm_lease_acquire(void *user, const char *circuit, const char *replica, int64_t now_ms,
                            int64_t expires_ms, bool *granted)
{
    bson_t *filter = BCON_NEW("_id", BCON_UTF8(circuit),
                              "$or", "[", "{", "holder", BCON_UTF8(replica), "}",
                                          "{", "expires_ms", "{", "$lte", BCON_INT64(now_ms), "}", "}",
                                          "{", "holder", BCON_UTF8(""), "}", "]");
    bson_t *update = BCON_NEW("$set", "{", "holder", BCON_UTF8(replica),
                              "expires_ms", BCON_INT64(expires_ms), "}");
    int rc = qm_conditional_upsert(user, QM_LEASES, "probe lease", filter, update, granted);
    bson_destroy(update);
    bson_destroy(filter);
    return rc;
}

/* lease_release: clear the lease only when replica holds it. */
static int qm_lease_release(void *user, const char *circuit, const char *replica)
{
    quorum_mongo *m = user;
    bson_t *filter = BCON_NEW("_id", BCON_UTF8(circuit), "holder", BCON_UTF8(replica));
    bson_t *update = BCON_NEW("$set", "{", "holder", BCON_UTF8(""), "expires_ms", BCON_INT64(0), "}");
    mongoc_client_t *client;
    mongoc_collection_t *coll = qm_coll(m, QM_LEASES, &client);
    bson_error_t e;
    int rc = mongoc_collection_update_one(coll, filter, update, NULL, NULL, &e)
                 ? 0 : qm_fail("lease release", &e);
    qm_done(m, coll, client);
    bson_destroy(update);
    bson_destroy(filter);
    return rc;
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
