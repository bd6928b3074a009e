/* roster.c -- the replicas of a service, as the database knows them.
 *
 * Behind a load balancer, a page or a person reaches one replica per
 * connection, so no single replica's stream shows the others. Each replica
 * therefore keeps a presence record in the `replicas` collection, one
 * document per replica under _id "<service>\n<replica>" (service, replica,
 * heartbeat_ms, started_ms, breakers: [{name, state}]), upserted once per
 * bucket by a thread of its own, and reads back its service's records
 * heard from within the heartbeat timeout. GET /replicas answers that list
 * from memory, so the route never waits on the database; the dashboard
 * draws it as a row of replicas per service.
 */
#include "roster.h"

#include <mongoc/mongoc.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "monotime.h"
#include "store.h"
#include "ticker.h"

#define ROSTER_COLLECTION "replicas"
#define ROSTER_MAX 64   /* replicas listed at most */

struct roster {
    const svc_config *cfg;
    const char *service;
    cb_breaker *const *breakers;
    size_t nbreakers;
    mongoc_client_pool_t *pool;
    char *db;
    int64_t period_ms;
    int64_t timeout_ms;
    int64_t started_ms;
    ticker *ticker;      /* runs roster_step() once per period */
    pthread_mutex_t lock;
    cJSON *peers;        /* under lock: the last list read (an array), NULL before one */
    int64_t read_ms;     /* under lock: when it was read */
    bool reachable;      /* under lock: whether the last step's reads and writes answered */
};

/* This replica's breakers as [{name, state}] (a breaker's name holds dots,
 * which a field name may not). */
static void append_breakers(const roster *r, bson_t *parent)
{
    bson_t list, item;
    bson_append_array_begin(parent, "breakers", -1, &list);
    for (size_t i = 0; i < r->nbreakers; i++) {
        char buf[16];
        const char *key;
        bson_uint32_to_string((uint32_t)i, &key, buf, sizeof buf);
        bson_append_document_begin(&list, key, -1, &item);
        BSON_APPEND_UTF8(&item, "name", cb_name(r->breakers[i]));
        BSON_APPEND_UTF8(&item, "state", cb_state_name(cb_get_state(r->breakers[i])));
        bson_append_document_end(&list, &item);
    }
    bson_append_array_end(parent, &list);
}

/* Logs a failed roster operation once per distinct message. */
static void roster_fail(const char *what, const bson_error_t *e)
{
    static __thread char last[128];
    if (strncmp(last, e->message, sizeof last - 1) != 0) {
        snprintf(last, sizeof last, "%.127s", e->message);
        log_message(true, "replica roster: %s failed: %s", what, e->message);
    }
}

/* Upserts this replica's record. Returns true when the database answered. */
static bool roster_publish(roster *r, mongoc_collection_t *coll, int64_t now)
{
    char id[256];
    snprintf(id, sizeof id, "%s\n%s", r->service, r->cfg->replica);
    bson_t *filter = BCON_NEW("_id", BCON_UTF8(id));
    bson_t set = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&set, "service", r->service);
    BSON_APPEND_UTF8(&set, "replica", r->cfg->replica);
    BSON_APPEND_INT64(&set, "heartbeat_ms", now);
    BSON_APPEND_INT64(&set, "started_ms", r->started_ms);
    append_breakers(r, &set);
    bson_t update = BSON_INITIALIZER;
    BSON_APPEND_DOCUMENT(&update, "$set", &set);
    bson_t *opts = BCON_NEW("upsert", BCON_BOOL(true));
    bson_error_t e;
    bool ok = mongoc_collection_update_one(coll, filter, &update, opts, NULL, &e);
    if (!ok)
        roster_fail("publish", &e);
    bson_destroy(opts);
    bson_destroy(&update);
    bson_destroy(&set);
    bson_destroy(filter);
    return ok;
}

static int64_t doc_int(const bson_t *doc, const char *key)
{
    bson_iter_t it;
    return bson_iter_init_find(&it, doc, key) && BSON_ITER_HOLDS_NUMBER(&it) ? bson_iter_as_int64(&it) : 0;
}

/* One record as the route lists it; NULL when it lacks a replica id. */
static cJSON *record_json(const roster *r, const bson_t *doc, int64_t now)
{
    bson_iter_t it, sub;
    if (!bson_iter_init_find(&it, doc, "replica") || !BSON_ITER_HOLDS_UTF8(&it))
        return NULL;
    const char *id = bson_iter_utf8(&it, NULL);
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddStringToObject(o, "replica", id);
    cJSON_AddBoolToObject(o, "self", strcmp(id, r->cfg->replica) == 0);
    int64_t beat = doc_int(doc, "heartbeat_ms"), started = doc_int(doc, "started_ms");
    cJSON_AddNumberToObject(o, "seenMsAgo", (double)(now > beat ? now - beat : 0));
    cJSON_AddNumberToObject(o, "uptimeS", started && beat > started ? (double)(beat - started) / 1000 : 0);
    cJSON *b = cJSON_AddObjectToObject(o, "breakers");
    if (b && bson_iter_init_find(&it, doc, "breakers") && BSON_ITER_HOLDS_ARRAY(&it) &&
        bson_iter_recurse(&it, &sub))
        while (bson_iter_next(&sub)) {
            bson_iter_t name, state;
            if (BSON_ITER_HOLDS_DOCUMENT(&sub) && bson_iter_recurse(&sub, &name) &&
                bson_iter_find(&name, "name") && BSON_ITER_HOLDS_UTF8(&name) &&
                bson_iter_recurse(&sub, &state) && bson_iter_find(&state, "state") &&
                BSON_ITER_HOLDS_UTF8(&state))
                cJSON_AddStringToObject(b, bson_iter_utf8(&name, NULL), bson_iter_utf8(&state, NULL));
        }
    return o;
}

/* Reads the service's live records, sorted by replica id. NULL on an error. */
static cJSON *roster_read(roster *r, mongoc_collection_t *coll, int64_t now)
{
    bson_t *filter = BCON_NEW("service", BCON_UTF8(r->service),
                              "heartbeat_ms", "{", "$gte", BCON_INT64(now - r->timeout_ms), "}");
    bson_t *opts = BCON_NEW("sort", "{", "replica", BCON_INT32(1), "}", "limit", BCON_INT64(ROSTER_MAX));
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, filter, opts, NULL);
    cJSON *list = cJSON_CreateArray();
    const bson_t *doc;
    while (list && mongoc_cursor_next(cur, &doc)) {
        cJSON *o = record_json(r, doc, now);
        if (o)
            cJSON_AddItemToArray(list, o);
    }
    bson_error_t e;
    if (mongoc_cursor_error(cur, &e)) {
        roster_fail("read", &e);
        cJSON_Delete(list);
        list = NULL;
    }
    mongoc_cursor_destroy(cur);
    bson_destroy(opts);
    bson_destroy(filter);
    return list;
}

/* One step (a ticker_step_fn; ctx is the roster): publish, then read the peers. */
static void roster_step(void *ctx)
{
    roster *r = ctx;
    int64_t now = wall_ms();
    mongoc_client_t *client = mongoc_client_pool_pop(r->pool);
    mongoc_collection_t *coll = mongoc_client_get_collection(client, r->db, ROSTER_COLLECTION);
    cJSON *list = roster_publish(r, coll, now) ? roster_read(r, coll, now) : NULL;
    mongoc_collection_destroy(coll);
    mongoc_client_pool_push(r->pool, client);
    pthread_mutex_lock(&r->lock);
    r->reachable = list != NULL;
    if (list) {
        cJSON_Delete(r->peers);
        r->peers = list;
        r->read_ms = now;
    }
    pthread_mutex_unlock(&r->lock);
}

int roster_start(const svc_config *c, const char *service, cb_breaker *const *breakers, size_t n,
                 roster **out)
{
    *out = NULL;
    roster *r = calloc(1, sizeof *r);
    if (!r) {
        log_message(true, "replica roster: out of memory");
        return -1;
    }
    r->cfg = c;
    r->service = service;
    r->breakers = breakers;
    r->nbreakers = n;
    r->period_ms = c->cb_window_ms / c->cb_buckets;
    if (r->period_ms < 1)
        r->period_ms = 1;
    r->timeout_ms = c->cb_heartbeat_timeout_ms ? c->cb_heartbeat_timeout_ms : 3 * r->period_ms;
    r->started_ms = wall_ms();
    pthread_mutex_init(&r->lock, NULL);
    char err[512];
    r->pool = store_pool_open(c->mongo_url, c->mongo_db, c->mongo_timeout_ms,
                              c->mongo_timeout_ms > 2500 ? c->mongo_timeout_ms : 2500, 0, "replica-roster",
                              &r->db, err, sizeof err);
    if (!r->pool) {
        log_message(true, "replica roster: %s", err);
        roster_stop(r);
        return -1;
    }
    mongoc_client_pool_max_size(r->pool, 1);
    if (ticker_start(r->period_ms, roster_step, r, &r->ticker)) {
        log_message(true, "replica roster: cannot start its thread");
        roster_stop(r);
        return -1;
    }
    *out = r;
    return 0;
}

void roster_stop(roster *r)
{
    if (!r)
        return;
    ticker_stop(r->ticker);
    if (r->pool)
        mongoc_client_pool_destroy(r->pool);
    free(r->db);
    cJSON_Delete(r->peers);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

/* This replica's own entry, from memory: the list when no read answered. */
static cJSON *self_entry(const roster *r, int64_t now)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddStringToObject(o, "replica", r->cfg->replica);
    cJSON_AddBoolToObject(o, "self", true);
    cJSON_AddNumberToObject(o, "seenMsAgo", 0);
    cJSON_AddNumberToObject(o, "uptimeS", (double)(now - r->started_ms) / 1000);
    cJSON *b = cJSON_AddObjectToObject(o, "breakers");
    for (size_t i = 0; b && i < r->nbreakers; i++)
        cJSON_AddStringToObject(b, cb_name(r->breakers[i]), cb_state_name(cb_get_state(r->breakers[i])));
    return o;
}

cJSON *roster_json(void *ctx)
{
    roster *r = ctx;
    int64_t now = wall_ms();
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddStringToObject(o, "service", r->service);
    cJSON_AddStringToObject(o, "replica", r->cfg->replica);
    pthread_mutex_lock(&r->lock);
    bool reachable = r->reachable;
    cJSON *list = r->peers && reachable ? cJSON_Duplicate(r->peers, true) : NULL;
    int64_t age = now - r->read_ms;
    pthread_mutex_unlock(&r->lock);
    cJSON_AddBoolToObject(o, "database", reachable);
    cJSON_AddNumberToObject(o, "heartbeatTimeoutMs", (double)r->timeout_ms);
    if (list) {
        /* the ages as of now, not as of the read */
        cJSON *e;
        cJSON_ArrayForEach(e, list) {
            cJSON *seen = cJSON_GetObjectItem(e, "seenMsAgo");
            if (seen)
                cJSON_SetNumberValue(seen, seen->valuedouble + (double)age);
        }
    } else {
        list = cJSON_CreateArray();
        cJSON *self = list ? self_entry(r, now) : NULL;
        if (self)
            cJSON_AddItemToArray(list, self);
    }
    if (list)
        cJSON_AddItemToObject(o, "replicas", list);
    return o;
}
