/* db_bench.c -- the database alone: what a service's writes cost without the service.
 *
 *   db_bench URL DB COLLECTION THREADS SECONDS [insert|insert+update]
 *
 * THREADS threads share one libmongoc client pool, as a service's workers do,
 * and for SECONDS each writes documents shaped like a shipment's: an insert
 * with an ObjectId _id and a _meta sub-document ("insert"), or that insert and
 * then the $set of the outcome by _id that a service does after answering
 * ("insert+update", one request's worth of writes). It prints one line:
 *
 *   ops=N seconds=S rps=R p50_ms=A p99_ms=B errors=E
 *
 * where an op is one insert or one insert+update pair. Exit 0 when every write
 * succeeded, 1 otherwise, 2 on bad usage. The bench-services script runs it
 * beside the services so the services' share of a request's cost is visible.
 */
#include <mongoc/mongoc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DB_BENCH_MAX_SAMPLES 1000000

/* What every thread shares. */
typedef struct bench {
    mongoc_client_pool_t *pool;
    const char *db, *collection;
    bool update;
    double stop_at;
    atomic_long ops, errors, nsamples;
    double *samples_ms;
} bench;

/* Seconds on the monotonic clock. */
static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One op: the insert, then (with update) the outcome's $set by _id. Returns
 * true when every write succeeded. */
static bool bench_op(bench *b, mongoc_collection_t *coll)
{
    bson_oid_t oid;
    bson_oid_init(&oid, NULL);
    bson_t *doc = BCON_NEW("id", "1", "directions", "home", "_id", BCON_OID(&oid),
                           "_meta", "{", "service", "shipment", "count", BCON_INT32(1),
                           "outcome", "pending", "}");
    bson_error_t e;
    bool ok = mongoc_collection_insert_one(coll, doc, NULL, NULL, &e);
    bson_destroy(doc);
    if (ok && b->update) {
        bson_t *filter = BCON_NEW("_id", BCON_OID(&oid));
        bson_t *set = BCON_NEW("$set", "{", "_meta.outcome", "last", "}");
        ok = mongoc_collection_update_one(coll, filter, set, NULL, NULL, &e);
        bson_destroy(filter);
        bson_destroy(set);
    }
    if (!ok)
        fprintf(stderr, "db_bench: %s\n", e.message);
    return ok;
}

/* A worker: ops until the stop time, each timed. */
static void *bench_worker(void *arg)
{
    bench *b = arg;
    mongoc_client_t *client = mongoc_client_pool_pop(b->pool);
    mongoc_collection_t *coll = mongoc_client_get_collection(client, b->db, b->collection);
    for (double t0 = now_s(); t0 < b->stop_at; t0 = now_s()) {
        bool ok = bench_op(b, coll);
        double ms = (now_s() - t0) * 1000.0;
        atomic_fetch_add(ok ? &b->ops : &b->errors, 1);
        long i = atomic_fetch_add(&b->nsamples, 1);
        if (i < DB_BENCH_MAX_SAMPLES)
            b->samples_ms[i] = ms;
    }
    mongoc_collection_destroy(coll);
    mongoc_client_pool_push(b->pool, client);
    return NULL;
}

/* qsort order for doubles. */
static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    if (argc < 6 || argc > 7 || (argc == 7 && strcmp(argv[6], "insert") &&
                                 strcmp(argv[6], "insert+update"))) {
        fprintf(stderr, "usage: %s URL DB COLLECTION THREADS SECONDS [insert|insert+update]\n",
                argv[0]);
        return 2;
    }
    int threads = atoi(argv[4]);
    double seconds = atof(argv[5]);
    if (threads < 1 || threads > 256 || seconds <= 0 || seconds > 600) {
        fprintf(stderr, "db_bench: THREADS must be 1..256 and SECONDS 0..600\n");
        return 2;
    }
    mongoc_init();
    bson_error_t e;
    mongoc_uri_t *uri = mongoc_uri_new_with_error(argv[1], &e);
    if (!uri) {
        fprintf(stderr, "db_bench: bad URL %s: %s\n", argv[1], e.message);
        return 2;
    }
    static bench b;
    b.pool = mongoc_client_pool_new(uri);
    mongoc_uri_destroy(uri);
    mongoc_client_pool_set_error_api(b.pool, MONGOC_ERROR_API_VERSION_2);
    b.db = argv[2];
    b.collection = argv[3];
    b.update = argc == 7 && !strcmp(argv[6], "insert+update");
    b.samples_ms = calloc(DB_BENCH_MAX_SAMPLES, sizeof *b.samples_ms);
    if (!b.samples_ms)
        return 1;
    pthread_t tid[256];
    double t0 = now_s();
    b.stop_at = t0 + seconds;
    for (int i = 0; i < threads; i++)
        pthread_create(&tid[i], NULL, bench_worker, &b);
    for (int i = 0; i < threads; i++)
        pthread_join(tid[i], NULL);
    double elapsed = now_s() - t0;
    long n = atomic_load(&b.nsamples);
    if (n > DB_BENCH_MAX_SAMPLES)
        n = DB_BENCH_MAX_SAMPLES;
    qsort(b.samples_ms, (size_t)n, sizeof *b.samples_ms, cmp_double);
    double p50 = n ? b.samples_ms[n / 2] : 0, p99 = n ? b.samples_ms[(n * 99) / 100] : 0;
    printf("ops=%ld seconds=%.2f rps=%.1f p50_ms=%.2f p99_ms=%.2f errors=%ld\n",
           atomic_load(&b.ops), elapsed, (double)atomic_load(&b.ops) / elapsed, p50, p99,
           atomic_load(&b.errors));
    free(b.samples_ms);
    mongoc_client_pool_destroy(b.pool);
    mongoc_cleanup();
    return atomic_load(&b.errors) ? 1 : 0;
}
