/* store.c -- persistence of received documents in MongoDB over a libmongoc client pool.
 *
 * The pool is created with a short serverSelectionTimeoutMS: when the
 * database is down a request learns it within that time (and answers 503),
 * and the pool's background monitoring finds the database again when it is
 * back, with no restart. Server fields live under "_meta", a key requests may
 * not use, so a client can never overwrite them.
 *
 * A request's document is written once, with its outcome, when the
 * request's work is done (request.c). The writes of concurrent requests are
 * grouped: at most DB_WRITERS inserts are in flight, and the documents that
 * arrive meanwhile wait for the next free writer, which carries all of them
 * in one unordered insert_many. FerretDB writes an insert of many documents
 * as one multi-row INSERT in one PostgreSQL transaction: one round trip and
 * one commit (one WAL flush) for the group instead of one each. Each
 * request returns only when the insert carrying its own document was
 * answered, with that document's own result.
 *
 * The pool holds at most DB_MAX_CONNECTIONS clients (16), and a writer
 * waits at most MONGO_TIMEOUT_MS for one (waitQueueTimeoutMS), then fails
 * its batch as unavailable (503): each client is one connection with one
 * operation in flight, so the database operations a service has in flight
 * are bounded (docs/database.md: what that bound keeps FerretDB from).
 *
 * A second pool of one client serves the database watch (dbwatch.c): its
 * ping never waits behind the requests' operations.
 */
#include "store.h"

#include "log.h"
#include "monotime.h"

#include <mongoc/mongoc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* One request's document on its way to the database. */
typedef struct store_write {
    bson_t *doc;
    int rc;                           /* set by the batch's writer */
    bool done;                        /* under the store's lock */
    char err[200];
    struct store_write *next;
} store_write;

struct store {
    mongoc_client_pool_t *pool;       /* the requests' writes */
    mongoc_client_pool_t *watch_pool; /* one client: the ping and the outcome resolution */
    char *db;
    char *collection;
    int max_connections;
    int wait_ms;                      /* longest wait for a client of pool */
    pthread_mutex_t lock;             /* the queue and the counts below */
    pthread_cond_t written;           /* a batch was written */
    store_write *queue, **queue_tail; /* documents waiting for a writer */
    int batches;                      /* batches being written */
    int max_batches;                  /* DB_WRITERS */
    int64_t written_batches, written_docs;
    bool keys;                        /* documents carry a unique _key */
    bool key_index;                   /* its index is known to exist (under lock) */
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
               int max_connections, int writers, store **out, char *err, size_t errlen)
{
    mongoc_log_set_handler(store_mongoc_log, NULL);
    store *s = calloc(1, sizeof *s);
    if (!s || !(s->collection = strdup(collection))) {
        snprintf(err, errlen, "MONGO_URL: cannot create a client pool for \"%s\"", url);
        store_close(s);
        return -1;
    }
    s->max_connections = max_connections;
    s->max_batches = writers < 1 ? 1 : writers > max_connections ? max_connections : writers;
    s->wait_ms = timeout_ms;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->written, NULL);
    s->queue_tail = &s->queue;
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

/* Builds the document: the request's fields, its _id and _meta, the
 * outcome included. */
static bson_t *store_document(const store_doc *d, char *err, size_t errlen)
{
    bson_error_t e;
    bson_t *doc = bson_new_from_json((const uint8_t *)d->json, -1, &e);
    if (!doc) {
        snprintf(err, errlen, "the body cannot be stored: %s", e.message);
        return NULL;
    }
    bson_oid_t oid;
    bson_oid_init_from_string(&oid, d->id_hex);
    bson_t meta;
    BSON_APPEND_OID(doc, "_id", &oid);
    if (d->key)
        BSON_APPEND_UTF8(doc, "_key", d->key);
    BSON_APPEND_DOCUMENT_BEGIN(doc, "_meta", &meta);
    BSON_APPEND_UTF8(&meta, "service", d->service);
    BSON_APPEND_INT32(&meta, "count", d->count);
    BSON_APPEND_DATE_TIME(&meta, "received", d->received_ms);
    BSON_APPEND_UTF8(&meta, "outcome", d->outcome);
    if (d->reason)
        BSON_APPEND_UTF8(&meta, "reason", d->reason);
    if (d->status)
        BSON_APPEND_INT32(&meta, "status", d->status);
    if (d->trace && *d->trace)
        BSON_APPEND_UTF8(&meta, "trace", d->trace);
    if (d->body_hash)
        BSON_APPEND_UTF8(&meta, "bodyHash", d->body_hash);
    if (d->answer)
        BSON_APPEND_UTF8(&meta, "answer", d->answer);
    bson_append_document_end(doc, &meta);
    return doc;
}

void store_new_id(char id_hex[25])
{
    bson_oid_t oid;
    bson_oid_init(&oid, NULL);
    bson_oid_to_string(&oid, id_hex);
}

/* The result of one write of a batch, read by its writer. */
static void write_fail(store_write *w, int rc, const char *msg)
{
    w->rc = rc;
    snprintf(w->err, sizeof w->err, "%.199s", msg);
}

/* Inserts one document alone; a duplicate _id means an earlier try of the
 * same batch stored it. */
static void store_insert_alone(mongoc_collection_t *coll, store_write *w)
{
    bson_error_t e;
    if (mongoc_collection_insert_one(coll, w->doc, NULL, NULL, &e)) {
        w->rc = STORE_OK;
        return;
    }
    if (e.code == 11000) {
        /* its own _id (stored by the batch's first try), or its key */
        bson_iter_t id;
        bson_t *filter = NULL;
        if (bson_iter_init_find(&id, w->doc, "_id") && BSON_ITER_HOLDS_OID(&id))
            filter = BCON_NEW("_id", BCON_OID(bson_iter_oid(&id)));
        int64_t n = filter ? mongoc_collection_count_documents(coll, filter, NULL, NULL, NULL, &e) : 0;
        bson_destroy(filter);
        if (n > 0)
            w->rc = STORE_OK;
        else
            write_fail(w, n < 0 ? store_error_kind(&e) : STORE_EDUPLICATE,
                       n < 0 ? e.message : "a document with this idempotency key is stored already");
        return;
    }
    int rc = store_error_kind(&e);
    write_fail(w, rc == STORE_EUNAVAILABLE && e.domain == MONGOC_ERROR_STREAM ? STORE_EUNKNOWN : rc,
               e.message);
}

/* Makes sure the unique index of idempotency keys exists (once per
 * process: createIndexes is a no-op when it does). Returns false with the
 * reason in err when it cannot be made. */
static bool store_key_index(store *s, mongoc_client_t *client, char *err, size_t errlen)
{
    pthread_mutex_lock(&s->lock);
    bool known = s->key_index;
    pthread_mutex_unlock(&s->lock);
    if (known)
        return true;
    bson_t *cmd = BCON_NEW("createIndexes", BCON_UTF8(s->collection), "indexes", "[", "{",
                           "key", "{", "_key", BCON_INT32(1), "}",
                           "name", BCON_UTF8("_key_unique"), "unique", BCON_BOOL(true),
                           "sparse", BCON_BOOL(true), "}", "]");
    mongoc_database_t *db = mongoc_client_get_database(client, s->db);
    bson_error_t e;
    bool ok = mongoc_database_write_command_with_opts(db, cmd, NULL, NULL, &e);
    mongoc_database_destroy(db);
    bson_destroy(cmd);
    if (!ok) {
        snprintf(err, errlen, "cannot make the unique index of idempotency keys: %.140s", e.message);
        return false;
    }
    pthread_mutex_lock(&s->lock);
    s->key_index = true;
    pthread_mutex_unlock(&s->lock);
    return true;
}

/* Writes the n documents of batch in one insert (unordered: one refused
 * document does not keep the others out) and sets each write's result. A
 * batch the server failed as a whole, with more than one document, is
 * written again one by one, so that each request learns its own
 * document's fate: FerretDB inserts a failed batch's documents one by one
 * and stops at the first that fails, after storing the ones before it
 * (their _id is ours, so storing them again is a duplicate, not a copy). */
static void store_flush(store *s, store_write *batch, int n)
{
    char err[200];
    mongoc_client_t *client = store_take(s, s->pool, err, sizeof err);
    if (!client) {
        for (store_write *w = batch; w; w = w->next)
            write_fail(w, STORE_EUNAVAILABLE, err);
        return;
    }
    if (s->keys && !store_key_index(s, client, err, sizeof err)) {
        for (store_write *w = batch; w; w = w->next)
            write_fail(w, STORE_EUNAVAILABLE, err);
        mongoc_client_pool_push(s->pool, client);
        return;
    }
    mongoc_collection_t *coll = mongoc_client_get_collection(client, s->db, s->collection);
    const bson_t *docs[STORE_BATCH_MAX];
    int i = 0;
    for (store_write *w = batch; w; w = w->next)
        docs[i++] = w->doc;
    bson_t *opts = BCON_NEW("ordered", BCON_BOOL(false));
    bson_t reply;
    bson_error_t e;
    bool ok = mongoc_collection_insert_many(coll, docs, (size_t)n, opts, &reply, &e);
    for (store_write *w = batch; w; w = w->next)
        w->rc = STORE_OK;
    bson_iter_t it, errs;
    if (!ok && bson_iter_init_find(&it, &reply, "writeErrors") && BSON_ITER_HOLDS_ARRAY(&it)
        && bson_iter_recurse(&it, &errs) && bson_iter_next(&errs)) {
        /* per document: the others are stored */
        do {
            bson_iter_t one;
            int32_t index = -1, code = 0;
            const char *msg = "refused";
            if (!BSON_ITER_HOLDS_DOCUMENT(&errs) || !bson_iter_recurse(&errs, &one))
                continue;
            while (bson_iter_next(&one)) {
                if (!strcmp(bson_iter_key(&one), "index") && BSON_ITER_HOLDS_INT32(&one))
                    index = bson_iter_int32(&one);
                else if (!strcmp(bson_iter_key(&one), "code") && BSON_ITER_HOLDS_INT32(&one))
                    code = bson_iter_int32(&one);
                else if (!strcmp(bson_iter_key(&one), "errmsg") && BSON_ITER_HOLDS_UTF8(&one))
                    msg = bson_iter_utf8(&one, NULL);
            }
            store_write *w = batch;
            for (int k = 0; w && k < index; k++)
                w = w->next;
            if (index >= 0 && w)
                write_fail(w, code == 11000 ? STORE_EDUPLICATE
                              : store_server_failed((uint32_t)code) ? STORE_EUNAVAILABLE
                                                                    : STORE_EREJECTED, msg);
        } while (bson_iter_next(&errs));
    } else if (!ok && n > 1 && e.domain != MONGOC_ERROR_STREAM
               && store_error_kind(&e) != STORE_EUNAVAILABLE) {
        for (store_write *w = batch; w; w = w->next)
            store_insert_alone(coll, w);
    } else if (!ok) {
        int rc = store_error_kind(&e);
        /* Sent but not answered: the database may have stored them. */
        if (rc == STORE_EUNAVAILABLE && e.domain == MONGOC_ERROR_STREAM)
            rc = STORE_EUNKNOWN;
        for (store_write *w = batch; w; w = w->next)
            write_fail(w, rc, e.message);
    }
    bson_destroy(&reply);
    bson_destroy(opts);
    mongoc_collection_destroy(coll);
    mongoc_client_pool_push(s->pool, client);
}

int store_insert(store *s, const store_doc *d, char *err, size_t errlen)
{
    if (!bson_oid_is_valid(d->id_hex, strlen(d->id_hex))) {
        snprintf(err, errlen, "not a document id: \"%.30s\"", d->id_hex);
        return STORE_EREJECTED;
    }
    store_write me = { .doc = store_document(d, err, errlen) };
    if (!me.doc)
        return STORE_EREJECTED;
    pthread_mutex_lock(&s->lock);
    *s->queue_tail = &me;
    s->queue_tail = &me.next;
    while (!me.done) {
        if (s->batches >= s->max_batches || !s->queue) {
            pthread_cond_wait(&s->written, &s->lock);
            continue;
        }
        /* A writer is free: this thread writes what waits, its own write
         * or not, up to STORE_BATCH_MAX documents. */
        store_write *batch = s->queue, *last = batch;
        int n = 1;
        while (n < STORE_BATCH_MAX && last->next) {
            last = last->next;
            n++;
        }
        s->queue = last->next;
        if (!s->queue)
            s->queue_tail = &s->queue;
        last->next = NULL;
        s->batches++;
        pthread_mutex_unlock(&s->lock);
        store_flush(s, batch, n);
        pthread_mutex_lock(&s->lock);
        s->batches--;
        for (store_write *w = batch, *next; w; w = next) {
            next = w->next;   /* w may return (and go) once done is seen */
            w->done = true;
        }
        s->written_batches++;
        s->written_docs += n;
        pthread_cond_broadcast(&s->written);
    }
    pthread_mutex_unlock(&s->lock);
    bson_destroy(me.doc);
    if (me.rc != STORE_OK)
        snprintf(err, errlen, "%s", me.err);
    return me.rc;
}

void store_use_keys(store *s)
{
    s->keys = true;
}

int store_find_key(store *s, const char *key, store_keyed *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    mongoc_client_t *client = store_take(s, s->pool, err, errlen);
    if (!client)
        return STORE_EUNAVAILABLE;
    mongoc_collection_t *coll = mongoc_client_get_collection(client, s->db, s->collection);
    bson_t *filter = BCON_NEW("_key", BCON_UTF8(key));
    bson_t *opts = BCON_NEW("limit", BCON_INT64(1));
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, filter, opts, NULL);
    const bson_t *doc;
    int rc = STORE_ENOTFOUND;
    if (mongoc_cursor_next(cur, &doc)) {
        rc = STORE_OK;
        bson_iter_t it, m;
        if (bson_iter_init_find(&it, doc, "_id") && BSON_ITER_HOLDS_OID(&it))
            bson_oid_to_string(bson_iter_oid(&it), out->id_hex);
        if (bson_iter_init_find(&it, doc, "_meta") && BSON_ITER_HOLDS_DOCUMENT(&it) &&
            bson_iter_recurse(&it, &m)) {
            while (bson_iter_next(&m)) {
                const char *k = bson_iter_key(&m);
                if (!strcmp(k, "received") && BSON_ITER_HOLDS_DATE_TIME(&m))
                    out->received_ms = bson_iter_date_time(&m);
                else if (!strcmp(k, "status") && BSON_ITER_HOLDS_NUMBER(&m))
                    out->status = (int)bson_iter_as_int64(&m);
                else if (!strcmp(k, "bodyHash") && BSON_ITER_HOLDS_UTF8(&m))
                    snprintf(out->body_hash, sizeof out->body_hash, "%s", bson_iter_utf8(&m, NULL));
                else if (!strcmp(k, "answer") && BSON_ITER_HOLDS_UTF8(&m))
                    out->answer = strdup(bson_iter_utf8(&m, NULL));
            }
        }
    }
    bson_error_t e;
    if (rc == STORE_ENOTFOUND && mongoc_cursor_error(cur, &e)) {
        rc = store_error_kind(&e);
        snprintf(err, errlen, "%s", e.message);
    }
    mongoc_cursor_destroy(cur);
    bson_destroy(opts);
    bson_destroy(filter);
    mongoc_collection_destroy(coll);
    mongoc_client_pool_push(s->pool, client);
    return rc;
}

int store_expire_key(store *s, const char *key, const char *id_hex, char *err, size_t errlen)
{
    if (!bson_oid_is_valid(id_hex, strlen(id_hex))) {
        snprintf(err, errlen, "not a document id: \"%.30s\"", id_hex);
        return STORE_EREJECTED;
    }
    mongoc_client_t *client = store_take(s, s->pool, err, errlen);
    if (!client)
        return STORE_EUNAVAILABLE;
    mongoc_collection_t *coll = mongoc_client_get_collection(client, s->db, s->collection);
    bson_oid_t oid;
    bson_oid_init_from_string(&oid, id_hex);
    char renamed[400];
    snprintf(renamed, sizeof renamed, "%s#expired-%s", key, id_hex);
    bson_t *filter = BCON_NEW("_id", BCON_OID(&oid), "_key", BCON_UTF8(key));
    bson_t *update = BCON_NEW("$set", "{", "_key", BCON_UTF8(renamed), "}");
    bson_error_t e;
    int rc = STORE_OK;
    if (!mongoc_collection_update_one(coll, filter, update, NULL, NULL, &e)) {
        rc = store_error_kind(&e);
        snprintf(err, errlen, "%s", e.message);
    }
    bson_destroy(update);
    bson_destroy(filter);
    mongoc_collection_destroy(coll);
    mongoc_client_pool_push(s->pool, client);
    return rc;
}

void store_get_stats(store *s, int64_t *batches, int64_t *documents)
{
    pthread_mutex_lock(&s->lock);
    *batches = s->written_batches;
    *documents = s->written_docs;
    pthread_mutex_unlock(&s->lock);
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
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->written);
    free(s->db);
    free(s->collection);
    free(s);
}
