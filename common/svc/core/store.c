/* store.c -- persistence of received documents in MongoDB over a libmongoc client pool.
 *
 * The pool is created with a short serverSelectionTimeoutMS: when the
 * database is down a request learns it within that time (and answers 503),
 * and the pool's background monitoring finds the database again when it is
 * back, with no restart. Server fields live under "_meta", a key requests may
 * not use, so a client can never overwrite them.
 *
 * The pool holds at most DB_MAX_CONNECTIONS clients (16), and a request
 * waits at most MONGO_TIMEOUT_MS for one (waitQueueTimeoutMS), then answers
 * 503: each client is one connection with one operation in flight, so the
 * number of database operations a service can have in flight is bounded.
 * That bound is what keeps FerretDB's PostgreSQL backend from wedging: its
 * update holds one pooled PostgreSQL connection (the rows of its lookup)
 * while it takes a second one (the transaction that rewrites the row), so
 * once as many updates run at once as its pool has connections, each holds
 * one and waits for another for ever (docs/database.md has the arithmetic).
 *
 * A second pool of one client serves the database watch (dbwatch.c): its
 * ping and the resolution of outcomes left "pending" never wait behind the
 * requests' operations.
 */
#include "store.h"

#include "log.h"
#include "monotime.h"

#include <mongoc/mongoc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct store {
    mongoc_client_pool_t *pool;       /* the requests' writes */
    mongoc_client_pool_t *watch_pool; /* one client: the ping and the outcome resolution */
    char *db;
    char *collection;
    int max_connections;
    int wait_ms;                      /* longest wait for a client of pool */
};

/* Routes libmongoc's own messages into the service's log: warnings and
 * errors only (its debug lines repeat every heartbeat while the database is
 * down). */
static void store_mongoc_log(mongoc_log_level_t level, const char *domain, const char *message,
                             void *ctx)
{
    (void)ctx;
    if (level <= MONGOC_LOG_LEVEL_WARNING)
        log_message(level <= MONGOC_LOG_LEVEL_ERROR, "mongoc %s: %s", domain, message);
}

mongoc_client_pool_t *store_pool_open(const char *url, const char *db, int timeout_ms,
                                      int socket_timeout_ms, int wait_queue_ms, const char *appname,
                                      char **db_out, char *err, size_t errlen)
{
    bson_error_t e;
    mongoc_uri_t *uri = mongoc_uri_new_with_error(url, &e);
    if (!uri) {
        snprintf(err, errlen, "MONGO_URL: expected a MongoDB connection string, got \"%s\" (%s)",
                 url, e.message);
        return NULL;
    }
    mongoc_uri_set_option_as_int32(uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS, timeout_ms);
    mongoc_uri_set_option_as_int32(uri, MONGOC_URI_CONNECTTIMEOUTMS, timeout_ms);
    if (!mongoc_uri_has_option(uri, MONGOC_URI_SOCKETTIMEOUTMS))
        mongoc_uri_set_option_as_int32(uri, MONGOC_URI_SOCKETTIMEOUTMS, socket_timeout_ms);
    if (!mongoc_uri_has_option(uri, MONGOC_URI_HEARTBEATFREQUENCYMS))
        mongoc_uri_set_option_as_int32(uri, MONGOC_URI_HEARTBEATFREQUENCYMS, 500);
    /* A pool whose clients are all busy answers NULL after this long
     * instead of blocking the caller for ever. */
    if (wait_queue_ms > 0 && !mongoc_uri_has_option(uri, MONGOC_URI_WAITQUEUETIMEOUTMS))
        mongoc_uri_set_option_as_int32(uri, MONGOC_URI_WAITQUEUETIMEOUTMS, wait_queue_ms);
    const char *uri_db = mongoc_uri_get_database(uri);
    *db_out = strdup(db ? db : (uri_db && *uri_db) ? uri_db : "resilience");
    mongoc_client_pool_t *pool = *db_out ? mongoc_client_pool_new(uri) : NULL;
    mongoc_uri_destroy(uri);
    if (!pool) {
        free(*db_out);
        *db_out = NULL;
        snprintf(err, errlen, "MONGO_URL: cannot create a client pool for \"%s\"", url);
        return NULL;
    }
    mongoc_client_pool_set_error_api(pool, MONGOC_ERROR_API_VERSION_2);
    mongoc_client_pool_set_appname(pool, appname);
    return pool;
}

int store_open(const char *url, const char *db, const char *collection, int timeout_ms,
               int max_connections, store **out, char *err, size_t errlen)
{
    mongoc_log_set_handler(store_mongoc_log, NULL);
    store *s = calloc(1, sizeof *s);
    if (!s || !(s->collection = strdup(collection))) {
        snprintf(err, errlen, "MONGO_URL: cannot create a client pool for \"%s\"", url);
        store_close(s);
        return -1;
    }
    s->max_connections = max_connections;
    s->wait_ms = timeout_ms;
    s->pool = store_pool_open(url, db, timeout_ms, 5000, timeout_ms, collection, &s->db, err,
                              errlen);
    char *watch_db = NULL;
    if (s->pool)
        s->watch_pool = store_pool_open(url, db, timeout_ms, 2000, timeout_ms, "database-watch",
                                        &watch_db, err, errlen);
    free(watch_db);
    if (!s->pool || !s->watch_pool) {
        store_close(s);
        return -1;
    }
    mongoc_client_pool_max_size(s->pool, (uint32_t)max_connections);
    mongoc_client_pool_max_size(s->watch_pool, 1);
    *out = s;
    return STORE_OK;
}

/* Takes a client of pool, waiting at most the pool's waitQueueTimeoutMS.
 * Returns NULL with a message in err when every client stayed busy. */
static mongoc_client_t *store_take(const store *s, mongoc_client_pool_t *pool, char *err,
                                   size_t errlen)
{
    mongoc_client_t *client = mongoc_client_pool_pop(pool);
    if (!client && err)
        snprintf(err, errlen, "all %d database connections stayed busy for %d ms",
                 pool == s->pool ? s->max_connections : 1, s->wait_ms);
    return client;
}

/* True for a server's error code that says the database itself failed
 * (MongoDB's InternalError, which FerretDB answers when its backend cannot
 * be reached; host and network errors; shutting down; not primary), not
 * that it refused the document. */
static bool store_server_failed(uint32_t code)
{
    switch (code) {
    case 1:      /* InternalError */
    case 6:      /* HostUnreachable */
    case 7:      /* HostNotFound */
    case 89:     /* NetworkTimeout */
    case 91:     /* ShutdownInProgress */
    case 189:    /* PrimarySteppedDown */
    case 262:    /* ExceededTimeLimit */
    case 10107:  /* NotWritablePrimary */
    case 11600:  /* InterruptedAtShutdown */
    case 11602:  /* InterruptedDueToReplStateChange */
    case 13435:  /* NotPrimaryNoSecondaryOk */
        return true;
    default:
        return false;
    }
}

/* Classifies a libmongoc error: unreachable or failing (503) or refused
 * (the document: 400). Only the first counts against the database breaker. */
static int store_error_kind(const bson_error_t *e)
{
    switch (e->domain) {
    case MONGOC_ERROR_SERVER:
    case MONGOC_ERROR_WRITE_CONCERN:
        return store_server_failed(e->code) ? STORE_EUNAVAILABLE : STORE_EREJECTED;
    case MONGOC_ERROR_BSON:
    case MONGOC_ERROR_COMMAND:
        return STORE_EREJECTED;
    default:
        return STORE_EUNAVAILABLE;
    }
}

/* Builds the document: the request's fields, an _id and _meta. */
static bson_t *store_document(const char *json, const char *service, int count, const char *trace,
                              bson_oid_t *oid, int64_t received_ms, char *err, size_t errlen)
{
    bson_error_t e;
    bson_t *doc = bson_new_from_json((const uint8_t *)json, -1, &e);
    if (!doc) {
        snprintf(err, errlen, "the body cannot be stored: %s", e.message);
        return NULL;
    }
    bson_oid_init(oid, NULL);
    bson_t meta;
    BSON_APPEND_OID(doc, "_id", oid);
    BSON_APPEND_DOCUMENT_BEGIN(doc, "_meta", &meta);
    BSON_APPEND_UTF8(&meta, "service", service);
    BSON_APPEND_INT32(&meta, "count", count);
    BSON_APPEND_DATE_TIME(&meta, "received", received_ms);
    BSON_APPEND_UTF8(&meta, "outcome", "pending");
    if (trace && *trace)
        BSON_APPEND_UTF8(&meta, "trace", trace);
    bson_append_document_end(doc, &meta);
    return doc;
}

int store_insert(store *s, const char *json, const char *service, int count, const char *trace,
                 char id_hex[25], int64_t *received_ms, char *err, size_t errlen)
{
    bson_oid_t oid;
    *received_ms = wall_ms();
    bson_t *doc = store_document(json, service, count, trace, &oid, *received_ms, err, errlen);
    if (!doc)
        return STORE_EREJECTED;
    mongoc_client_t *client = store_take(s, s->pool, err, errlen);
    if (!client) {
        bson_destroy(doc);
        return STORE_EUNAVAILABLE;
    }
    mongoc_collection_t *coll = mongoc_client_get_collection(client, s->db, s->collection);
    bson_error_t e;
    int rc = STORE_OK;
    if (!mongoc_collection_insert_one(coll, doc, NULL, NULL, &e)) {
        rc = store_error_kind(&e);
        /* Sent but not answered: the database may have stored it. */
        if (rc == STORE_EUNAVAILABLE && e.domain == MONGOC_ERROR_STREAM)
            rc = STORE_EUNKNOWN;
        snprintf(err, errlen, "%s", e.message);
    }
    mongoc_collection_destroy(coll);
    mongoc_client_pool_push(s->pool, client);
    bson_destroy(doc);
    if (rc == STORE_OK || rc == STORE_EUNKNOWN)
        bson_oid_to_string(&oid, id_hex);
    return rc;
}

int store_record_outcome(store *s, const char *id_hex, const char *outcome,
                         const char *reason, int status)
{
    if (!bson_oid_is_valid(id_hex, strlen(id_hex)))
        return STORE_EREJECTED;
    bson_oid_t oid;
    bson_oid_init_from_string(&oid, id_hex);
    bson_t *filter = BCON_NEW("_id", BCON_OID(&oid));
    bson_t set = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&set, "_meta.outcome", outcome);
    if (reason)
        BSON_APPEND_UTF8(&set, "_meta.reason", reason);
    if (status)
        BSON_APPEND_INT32(&set, "_meta.status", status);
    bson_t update = BSON_INITIALIZER;
    BSON_APPEND_DOCUMENT(&update, "$set", &set);
    int rc = STORE_EUNAVAILABLE;
    mongoc_client_t *client = store_take(s, s->pool, NULL, 0);
    if (client) {
        mongoc_collection_t *coll = mongoc_client_get_collection(client, s->db, s->collection);
        bson_error_t e;
        rc = mongoc_collection_update_one(coll, filter, &update, NULL, NULL, &e)
                 ? STORE_OK : store_error_kind(&e);
        mongoc_collection_destroy(coll);
        mongoc_client_pool_push(s->pool, client);
    }
    bson_destroy(&update);
    bson_destroy(&set);
    bson_destroy(filter);
    return rc;
}

int store_ping(store *s, char *err, size_t errlen)
{
    mongoc_client_t *client = store_take(s, s->watch_pool, err, errlen);
    if (!client)
        return -1;
    bson_t *cmd = BCON_NEW("ping", BCON_INT32(1));
    bson_error_t e;
    bool ok = mongoc_client_command_simple(client, "admin", cmd, NULL, NULL, &e);
    if (!ok && err)
        snprintf(err, errlen, "%s", e.message);
    bson_destroy(cmd);
    mongoc_client_pool_push(s->watch_pool, client);
    return ok ? 0 : -1;
}

int store_resolve_pending(store *s, const char *service, int64_t before_ms, const char *reason,
                          int64_t *resolved, char *err, size_t errlen)
{
    *resolved = 0;
    bson_t *filter = BCON_NEW("_meta.outcome", BCON_UTF8("pending"),
                              "_meta.service", BCON_UTF8(service),
                              "_meta.received", "{", "$lt", BCON_DATE_TIME(before_ms), "}");
    bson_t *update = BCON_NEW("$set", "{",
                              "_meta.outcome", BCON_UTF8("unknown"),
                              "_meta.reason", BCON_UTF8(reason),
                              "_meta.resolved", BCON_DATE_TIME(wall_ms()),
                              "}");
    int rc = STORE_EUNAVAILABLE;
    mongoc_client_t *client = store_take(s, s->watch_pool, err, errlen);
    if (client) {
        mongoc_collection_t *coll = mongoc_client_get_collection(client, s->db, s->collection);
        bson_error_t e;
        bson_t reply;
        if (mongoc_collection_update_many(coll, filter, update, NULL, &reply, &e)) {
            bson_iter_t it;
            if (bson_iter_init_find(&it, &reply, "modifiedCount") && BSON_ITER_HOLDS_NUMBER(&it))
                *resolved = bson_iter_as_int64(&it);
            rc = STORE_OK;
        } else {
            rc = store_error_kind(&e);
            if (err)
                snprintf(err, errlen, "%s", e.message);
        }
        bson_destroy(&reply);
        mongoc_collection_destroy(coll);
        mongoc_client_pool_push(s->watch_pool, client);
    }
    bson_destroy(update);
    bson_destroy(filter);
    return rc;
}

const char *store_db_name(const store *s)
{
    return s->db;
}

void store_close(store *s)
{
    if (!s)
        return;
    if (s->pool)
        mongoc_client_pool_destroy(s->pool);
    if (s->watch_pool)
        mongoc_client_pool_destroy(s->watch_pool);
    free(s->db);
    free(s->collection);
    free(s);
}
