/* stored.c -- the documents-stored probe: every 200 answer's documents, looked up in the stack's database after the load; and the duplicates count.
 *
 * A service answers 2xx only once its document's outcome is recorded (see
 * answer_send in common/svc/core/request.c), so each hop of a 200 answer that
 * names a document must find it in its service's collection, with the
 * request's id ("chaos-<n>") and the status the hop answered as its
 * _meta.outcome. The documents are read by _id, a few hundred at a time.
 * A database that does not answer makes the probe SKIPPED, said in the
 * verdict, never passed.
 *
 * The duplicates count (for an expectation on "duplicates") finds every
 * document of each request, answered or not, by its trace id: the runner
 * sends each request a traceparent of its own and every hop stores it as
 * _meta.trace. One request's documents in one collection beyond the first
 * are duplicates: a retried call stored again.
 */
#include "stored.h"

#include <mongoc/mongoc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BATCH 256

/* One document to look up, and what was found. */
typedef struct wanted {
    const chaos_request *q;
    const chaos_doc *d;
    bool found;
    char id[64];            /* the stored "id" field */
    char outcome[32];       /* the stored _meta.outcome */
} wanted;

/* Adds one problem, in words (printf-style), to the probe's examples. */
__attribute__((format(printf, 2, 3)))
static void example(chaos_stored *st, const char *fmt, ...)
{
    if (st->nexamples >= 5)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st->examples[st->nexamples++], sizeof st->examples[0], fmt, ap);
    va_end(ap);
}

/* Destroys a cursor read to its end. Returns 0, or -1 with the driver's
 * message in err when the read failed. */
static int cursor_end(mongoc_cursor_t *cur, char *err, size_t errlen)
{
    bson_error_t e;
    int rc = 0;
    if (mongoc_cursor_error(cur, &e)) {
        snprintf(err, errlen, "%s", e.message);
        rc = -1;
    }
    mongoc_cursor_destroy(cur);
    return rc;
}

/* Reads the documents of batch w[0..n) from coll and marks what it found.
 * Returns 0, or -1 with the driver's message in err. */
static int lookup(mongoc_collection_t *coll, wanted *w, int n, char *err, size_t errlen)
{
    bson_t filter, in, ids;
    bson_init(&filter);
    bson_append_document_begin(&filter, "_id", -1, &in);
    bson_append_array_begin(&in, "$in", -1, &ids);
    for (int i = 0; i < n; i++) {
        bson_oid_t oid;
        char key[16];
        bson_oid_init_from_string(&oid, w[i].d->id);
        snprintf(key, sizeof key, "%d", i);
        bson_append_oid(&ids, key, -1, &oid);
    }
    bson_append_array_end(&in, &ids);
    bson_append_document_end(&filter, &in);
    bson_t *opts = BCON_NEW("projection", "{", "id", BCON_INT32(1), "_meta.outcome", BCON_INT32(1), "}");
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, &filter, opts, NULL);
    const bson_t *doc;
    while (mongoc_cursor_next(cur, &doc)) {
        bson_iter_t it;
        char hex[25] = "";
        if (bson_iter_init_find(&it, doc, "_id") && BSON_ITER_HOLDS_OID(&it))
            bson_oid_to_string(bson_iter_oid(&it), hex);
        for (int i = 0; i < n; i++) {
            if (w[i].found || strcmp(w[i].d->id, hex) != 0)
                continue;
            w[i].found = true;
            if (bson_iter_init_find(&it, doc, "id") && BSON_ITER_HOLDS_UTF8(&it))
                snprintf(w[i].id, sizeof w[i].id, "%s", bson_iter_utf8(&it, NULL));
            if (bson_iter_init(&it, doc) && bson_iter_find_descendant(&it, "_meta.outcome", &it) &&
                BSON_ITER_HOLDS_UTF8(&it))
                snprintf(w[i].outcome, sizeof w[i].outcome, "%s", bson_iter_utf8(&it, NULL));
            break;
        }
    }
    int rc = cursor_end(cur, err, errlen);
    bson_destroy(opts);
    bson_destroy(&filter);
    return rc;
}

/* Checks the documents of one service's collection. Returns 0, or -1 with a message in err. */
static int check_collection(chaos_run *r, mongoc_client_t *client, int svc, char *err, size_t errlen)
{
    chaos_stored *st = &r->stored;
    mongoc_collection_t *coll = mongoc_client_get_collection(client, st->db, chaos_services[svc].collection);
    wanted *w = calloc(BATCH + CHAOS_MAX_HOPS, sizeof *w);
    int n = 0, rc = 0;
    if (!w) {
        snprintf(err, errlen, "out of memory");
        mongoc_collection_destroy(coll);
        return -1;
    }
    for (int i = 0; rc == 0 && i <= r->nreqs; i++) {
        const chaos_request *q = i < r->nreqs ? &r->reqs[i] : NULL;
        for (int k = 0; q && q->status == 200 && k < q->ndocs; k++)
            if (q->docs[k].svc == svc)
                w[n++] = (wanted){ .q = q, .d = &q->docs[k] };
        if (n < BATCH && (q || n == 0))
            continue;
        if ((rc = lookup(coll, w, n, err, errlen)))
            break;
        for (int k = 0; k < n; k++) {
            char rid[32];
            snprintf(rid, sizeof rid, "chaos-%d", w[k].q->n);
            st->documents++;
            if (!w[k].found) {
                st->missing++;
                example(st, "%s %s (request %s) is not stored", chaos_services[svc].collection, w[k].d->id, rid);
            } else if (strcmp(w[k].outcome, w[k].d->outcome) != 0 || strcmp(w[k].id, rid) != 0) {
                st->wrong++;
                example(st, "%s %s (request %s): stored with id %s and outcome %s, answered %s",
                        chaos_services[svc].collection, w[k].d->id, rid, w[k].id[0] ? w[k].id : "(none)",
                        w[k].outcome[0] ? w[k].outcome : "(none)", w[k].d->outcome);
            } else {
                st->found++;
            }
        }
        n = 0;
    }
    free(w);
    mongoc_collection_destroy(coll);
    return rc;
}

/* Marks the probe skipped with a reason and says so. */
static void skipped(chaos_run *r, const char *why)
{
    snprintf(r->stored.reason, sizeof r->stored.reason, "%s", why);
    r->stored.result = -1;
    chaos_say(r, "hypothesis stored: SKIPPED: %s", why);
}

/* A client of the stack's database (--mongo), which answered a ping; sets
 * r->stored's url and db. NULL, with the reason in why, when there is none. */
static mongoc_client_t *db_client(chaos_run *r, char *why, size_t whylen)
{
    chaos_stored *st = &r->stored;
    snprintf(st->url, sizeof st->url, "%s", r->mongo_url);
    bson_error_t e;
    mongoc_uri_t *uri = mongoc_uri_new_with_error(r->mongo_url, &e);
    if (!uri) {
        snprintf(why, whylen, "--mongo: expected a MongoDB connection string, got \"%s\" (%s)", r->mongo_url,
                 e.message);
        return NULL;
    }
    const char *uri_db = mongoc_uri_get_database(uri);
    snprintf(st->db, sizeof st->db, "%s",
             r->mongo_db && *r->mongo_db ? r->mongo_db : uri_db && *uri_db ? uri_db : "resilience");
    mongoc_uri_set_option_as_int32(uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS, 3000);
    mongoc_uri_set_option_as_int32(uri, MONGOC_URI_CONNECTTIMEOUTMS, 2000);
    mongoc_uri_set_option_as_int32(uri, MONGOC_URI_SOCKETTIMEOUTMS, 20000);
    mongoc_client_t *client = mongoc_client_new_from_uri(uri);
    mongoc_uri_destroy(uri);
    if (!client) {
        snprintf(why, whylen, "cannot make a database client for --mongo");
        return NULL;
    }
    mongoc_client_set_error_api(client, MONGOC_ERROR_API_VERSION_2);
    mongoc_client_set_appname(client, "chaos");
    bson_t *ping = BCON_NEW("ping", BCON_INT32(1));
    bool up = mongoc_client_command_simple(client, "admin", ping, NULL, NULL, &e);
    bson_destroy(ping);
    if (!up) {
        snprintf(why, whylen, "no database answers at %s (%s); give the stack's database with --mongo or MONGO_URL",
                 r->mongo_url, e.message);
        mongoc_client_destroy(client);
        return NULL;
    }
    return client;
}

/* Counts, in one service's collection, the documents stored under the
 * traces of r's requests, and adds those beyond the first of each trace to
 * its request's duplicates. Returns 0, or -1 with the driver's message in err. */
static int count_collection(chaos_run *r, mongoc_client_t *client, int svc, char *err, size_t errlen)
{
    mongoc_collection_t *coll = mongoc_client_get_collection(client, r->stored.db, chaos_services[svc].collection);
    int *seen = calloc((size_t)r->nreqs + 1, sizeof *seen);
    int rc = seen ? 0 : -1;
    if (!seen)
        snprintf(err, errlen, "out of memory");
    for (int from = 0; rc == 0 && from < r->nreqs; from += BATCH) {
        bson_t filter, in, traces;
        bson_init(&filter);
        bson_append_document_begin(&filter, "_meta.trace", -1, &in);
        bson_append_array_begin(&in, "$in", -1, &traces);
        for (int i = from; i < r->nreqs && i < from + BATCH; i++) {
            char key[16];
            snprintf(key, sizeof key, "%d", i - from);
            bson_append_utf8(&traces, key, -1, r->reqs[i].trace, -1);
        }
        bson_append_array_end(&in, &traces);
        bson_append_document_end(&filter, &in);
        bson_t *opts = BCON_NEW("projection", "{", "_meta.trace", BCON_INT32(1), "}");
        mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, &filter, opts, NULL);
        const bson_t *doc;
        while (mongoc_cursor_next(cur, &doc)) {
            bson_iter_t it;
            if (!bson_iter_init(&it, doc) || !bson_iter_find_descendant(&it, "_meta.trace", &it) ||
                !BSON_ITER_HOLDS_UTF8(&it))
                continue;
            /* the runner's trace ids end in the request's n + 1, in hex */
            const char *trace = bson_iter_utf8(&it, NULL);
            size_t len = strlen(trace);
            long long n = len == 32 ? strtoll(trace + 16, NULL, 16) - 1 : -1;
            for (int i = from; i < r->nreqs && i < from + BATCH; i++)
                if (r->reqs[i].n == n && strcmp(r->reqs[i].trace, trace) == 0 && seen[i]++)
                    r->reqs[i].duplicates++;
        }
        rc = cursor_end(cur, err, errlen);
        bson_destroy(opts);
        bson_destroy(&filter);
    }
    free(seen);
    mongoc_collection_destroy(coll);
    return rc;
}

void chaos_duplicates_count(chaos_run *r)
{
    chaos_stored *st = &r->stored;
    char err[520];
    mongoc_client_t *client = db_client(r, st->count_error, sizeof st->count_error);
    if (!client) {
        chaos_say(r, "duplicates: not counted: %s", st->count_error);
        return;
    }
    for (int i = 0; i < r->nreqs; i++)
        r->reqs[i].duplicates = 0;
    for (int svc = 0; svc < CHAOS_NSVC; svc++)
        if (count_collection(r, client, svc, err, sizeof err)) {
            snprintf(st->count_error, sizeof st->count_error, "reading %s.%s at %s failed: %s", st->db,
                     chaos_services[svc].collection, r->mongo_url, err);
            chaos_say(r, "duplicates: not counted: %s", st->count_error);
            for (int i = 0; i < r->nreqs; i++)
                r->reqs[i].duplicates = -1;
            mongoc_client_destroy(client);
            return;
        }
    mongoc_client_destroy(client);
    int requests = 0;
    st->duplicates = 0;
    for (int i = 0; i < r->nreqs; i++) {
        st->duplicates += r->reqs[i].duplicates;
        requests += r->reqs[i].duplicates > 0;
    }
    st->counted = true;
    chaos_say(r, "duplicates: %d documents stored twice or more, for %d of the %d requests (database %s at %s)",
              st->duplicates, requests, r->nreqs, st->db, st->url);
}

void chaos_stored_check(chaos_run *r)
{
    chaos_stored *st = &r->stored;
    char why[1024], err[520];
    mongoc_client_t *client = db_client(r, why, sizeof why);
    if (!client) {
        skipped(r, why);
        return;
    }
    for (int i = 0; i < r->nreqs; i++) {
        const chaos_request *q = &r->reqs[i];
        if (q->status != 200)
            continue;
        st->answers++;
        bool order_doc = false;
        for (int k = 0; k < q->ndocs; k++)
            order_doc = order_doc || q->docs[k].svc == 0;
        if (!order_doc) {
            st->no_document++;
            example(st, "request chaos-%d answered 200 naming no document of %s", q->n, chaos_services[0].name);
        }
    }
    for (int svc = 0; svc < CHAOS_NSVC; svc++)
        if (check_collection(r, client, svc, err, sizeof err)) {
            snprintf(why, sizeof why, "reading %s.%s at %s failed: %s", st->db, chaos_services[svc].collection,
                     r->mongo_url, err);
            skipped(r, why);
            mongoc_client_destroy(client);
            return;
        }
    mongoc_client_destroy(client);
    st->result = st->answers > 0 && !st->missing && !st->wrong && !st->no_document;
    if (st->result)
        chaos_say(r, "hypothesis stored: held: %d answers (status 200) name %d documents; all %d stored with "
                  "the outcome answered (database %s at %s)", st->answers, st->documents, st->found, st->db,
                  st->url);
    else
        chaos_say(r, "hypothesis stored: NOT held: %d answers (status 200) name %d documents: %d stored, "
                  "%d missing, %d with another outcome or id; %d answers name no document (database %s at %s)%s%s",
                  st->answers, st->documents, st->found, st->missing, st->wrong, st->no_document, st->db,
                  st->url, st->nexamples ? "; first: " : "", st->nexamples ? st->examples[0] : "");
}
