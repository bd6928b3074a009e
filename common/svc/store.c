/* store.c -- persistence of received documents in MongoDB over a libmongoc client pool.
 *
 * The pool is created with a short serverSelectionTimeoutMS: when the
 * database is down a request learns it within that time (and answers 503),
 * and the pool's background monitoring finds the database again when it is
 * back, with no restart. Server fields live under "_meta", a key requests may
 * not use, so a client can never overwrite them.
 */
#include "store.h"

#include "log.h"

#include <mongoc/mongoc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct store {
    mongoc_client_pool_t *pool;
    char *db;
    char *collection;
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
                                      int socket_timeout_ms, const char *appname, char **db_out,
                                      char *err, size_t errlen)
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
               store **out, char *err, size_t errlen)
{
    mongoc_log_set_handler(store_mongoc_log, NULL);
    store *s = calloc(1, sizeof *s);
    if (!s || !(s->collection = strdup(collection))) {
        snprintf(err, errlen, "MONGO_URL: cannot create a client pool for \"%s\"", url);
        store_close(s);
        return -1;
    }
    s->pool = store_pool_open(url, db, timeout_ms, 5000, collection, &s->db, err, errlen);
    if (!s->pool) {
        store_close(s);
        return -1;
    }
    *out = s;
    return STORE_OK;
}

/* Classifies a libmongoc error: unreachable (503) or refused (the document). */
static int store_error_kind(const bson_error_t *e)
{
    switch (e->domain) {
    case MONGOC_ERROR_SERVER:
    case MONGOC_ERROR_WRITE_CONCERN:
    case MONGOC_ERROR_BSON:
    case MONGOC_ERROR_COMMAND:
        return STORE_EREJECTED;
    default:
        return STORE_EUNAVAILABLE;
    }
}

/* The wall-clock time in milliseconds since the epoch. */
static int64_t store_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Builds the document: the request's fields, an _id and _meta. */
static bson_t *store_document(const char *json, const char *service, int count, const char *trace,
                              bson_oid_t *oid, char *err, size_t errlen)
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
    BSON_APPEND_DATE_TIME(&meta, "received", store_now_ms());
    BSON_APPEND_UTF8(&meta, "outcome", "pending");
    if (trace && *trace)
        BSON_APPEND_UTF8(&meta, "trace", trace);
    bson_append_document_end(doc, &meta);
    return doc;
}

int store_insert(store *s, const char *json, const char *service, int count, const char *trace,
                 char id_hex[25], char *err, size_t errlen)
{
    bson_oid_t oid;
    bson_t *doc = store_document(json, service, count, trace, &oid, err, errlen);
    if (!doc)
        return STORE_EREJECTED;
    mongoc_client_t *client = mongoc_client_pool_pop(s->pool);
    mongoc_collection_t *coll = mongoc_client_get_collection(client, s->db, s->collection);
    bson_error_t e;
    int rc = STORE_OK;
    if (!mongoc_collection_insert_one(coll, doc, NULL, NULL, &e)) {
        rc = store_error_kind(&e);
        snprintf(err, errlen, "%s", e.message);
    }
    mongoc_collection_destroy(coll);
    mongoc_client_pool_push(s->pool, client);
    bson_destroy(doc);
    if (rc == STORE_OK)
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
    mongoc_client_t *client = mongoc_client_pool_pop(s->pool);
    mongoc_collection_t *coll = mongoc_client_get_collection(client, s->db, s->collection);
    bson_error_t e;
    int rc = mongoc_collection_update_one(coll, filter, &update, NULL, NULL, &e)
                 ? STORE_OK : store_error_kind(&e);
    mongoc_collection_destroy(coll);
    mongoc_client_pool_push(s->pool, client);
    bson_destroy(&update);
    bson_destroy(&set);
    bson_destroy(filter);
    return rc;
}

int store_ping(void *ctx)
{
    store *s = ctx;
    if (!s)
        return -1;
    mongoc_client_t *client = mongoc_client_pool_pop(s->pool);
    bson_t *cmd = BCON_NEW("ping", BCON_INT32(1));
    bson_error_t e;
    bool ok = mongoc_client_command_simple(client, "admin", cmd, NULL, NULL, &e);
    bson_destroy(cmd);
    mongoc_client_pool_push(s->pool, client);
    return ok ? 0 : -1;
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
    free(s->db);
    free(s->collection);
    free(s);
}
