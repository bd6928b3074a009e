/* dbtool.c -- reads a MongoDB database for the tests: ping, and find printing JSON lines.
 *
 *   dbtool ping URL                        exit 0 when the server answers a ping
 *   dbtool find URL DB COLLECTION [FILTER] one relaxed-extended-JSON line per document
 *   dbtool count URL DB COLLECTION [FILTER] the number of matching documents
 *   dbtool drop URL DB                      drops the database
 *
 * FILTER is a JSON object ("{}" when omitted). Exit 0 on success, 1 when the
 * server could not be reached or the command failed, 2 on bad usage.
 */
#include <mongoc/mongoc.h>
#include <stdio.h>
#include <string.h>

/* A client to url with short timeouts, or NULL. */
static mongoc_client_t *dbtool_client(const char *url)
{
    bson_error_t e;
    mongoc_uri_t *uri = mongoc_uri_new_with_error(url, &e);
    if (!uri) {
        fprintf(stderr, "dbtool: bad URL %s: %s\n", url, e.message);
        return NULL;
    }
    mongoc_uri_set_option_as_int32(uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS, 2000);
    mongoc_uri_set_option_as_int32(uri, MONGOC_URI_CONNECTTIMEOUTMS, 1000);
    mongoc_client_t *c = mongoc_client_new_from_uri(uri);
    mongoc_uri_destroy(uri);
    if (c)
        mongoc_client_set_error_api(c, MONGOC_ERROR_API_VERSION_2);
    return c;
}

/* Answers a ping. Returns the exit code. */
static int dbtool_ping(mongoc_client_t *c)
{
    bson_t *cmd = BCON_NEW("ping", BCON_INT32(1));
    bson_error_t e;
    bool ok = mongoc_client_command_simple(c, "admin", cmd, NULL, NULL, &e);
    bson_destroy(cmd);
    if (!ok)
        fprintf(stderr, "dbtool: ping: %s\n", e.message);
    return ok ? 0 : 1;
}

/* Prints every document matching filter, or their count. Returns the exit code. */
static int dbtool_find(mongoc_client_t *c, const char *db, const char *coll_name,
                       const char *filter_json, bool count_only)
{
    bson_error_t e;
    bson_t *filter = bson_new_from_json((const uint8_t *)filter_json, -1, &e);
    if (!filter) {
        fprintf(stderr, "dbtool: bad filter: %s\n", e.message);
        return 2;
    }
    mongoc_collection_t *coll = mongoc_client_get_collection(c, db, coll_name);
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, filter, NULL, NULL);
    const bson_t *doc;
    long n = 0;
    while (mongoc_cursor_next(cur, &doc)) {
        n++;
        if (count_only)
            continue;
        char *s = bson_as_relaxed_extended_json(doc, NULL);
        printf("%s\n", s);
        bson_free(s);
    }
    int rc = 0;
    if (mongoc_cursor_error(cur, &e)) {
        fprintf(stderr, "dbtool: find: %s\n", e.message);
        rc = 1;
    } else if (count_only) {
        printf("%ld\n", n);
    }
    mongoc_cursor_destroy(cur);
    mongoc_collection_destroy(coll);
    bson_destroy(filter);
    return rc;
}

/* Drops the database. Returns the exit code. */
static int dbtool_drop(mongoc_client_t *c, const char *db_name)
{
    mongoc_database_t *db = mongoc_client_get_database(c, db_name);
    bson_error_t e;
    bool ok = mongoc_database_drop(db, &e);
    mongoc_database_destroy(db);
    if (!ok)
        fprintf(stderr, "dbtool: drop: %s\n", e.message);
    return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: dbtool ping URL | find URL DB COLL [FILTER] | count URL DB COLL [FILTER] | drop URL DB\n");
        return 2;
    }
    const char *cmd = argv[1];
    mongoc_init();
    mongoc_client_t *c = dbtool_client(argv[2]);
    int rc = 1;
    if (c && !strcmp(cmd, "ping"))
        rc = dbtool_ping(c);
    else if (c && (!strcmp(cmd, "find") || !strcmp(cmd, "count")) && argc >= 5)
        rc = dbtool_find(c, argv[3], argv[4], argc > 5 ? argv[5] : "{}", !strcmp(cmd, "count"));
    else if (c && !strcmp(cmd, "drop") && argc >= 4)
        rc = dbtool_drop(c, argv[3]);
    else if (c)
        rc = 2;
    mongoc_client_destroy(c);
    mongoc_cleanup();
    return rc;
}
