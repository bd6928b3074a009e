/* store.h -- persistence of received documents in MongoDB over one client pool. */
#ifndef SVC_STORE_H
#define SVC_STORE_H

#include <mongoc/mongoc.h>
#include <stddef.h>
#include <stdint.h>

typedef struct store store;

#define STORE_OK            0
#define STORE_EUNAVAILABLE -1  /* the database could not be reached in time */
#define STORE_EREJECTED    -2  /* the database refused the document */
#define STORE_ENOMEM       -3
#define STORE_EUNKNOWN     -4  /* sent, but no answer came back: it may be stored */
#define STORE_EDUPLICATE   -5  /* a document with this idempotency key is stored already */
#define STORE_ENOTFOUND    -6  /* no such document */

/* A client pool on url (a mongodb:// URL) for the services' database
 * work: server selection and connecting give up after timeout_ms, reads
 * after socket_timeout_ms and heartbeats come every 500 ms unless the URL
 * sets them; error API 2; appname names the pool to the server. A
 * wait_queue_ms above 0 bounds the wait for a client of a pool whose
 * clients are all in use (mongoc_client_pool_pop() then returns NULL);
 * 0 waits for as long as it takes. *db_out
 * gets the database's name (malloc'd): db, else the URL's, else
 * "resilience". Connects lazily. Returns the pool, or NULL with a message
 * naming MONGO_URL in err. Shared by the store and the breaker quorum. */
mongoc_client_pool_t *store_pool_open(const char *url, const char *db, int timeout_ms,
                                      int socket_timeout_ms, int wait_queue_ms, const char *appname,
                                      char **db_out, char *err, size_t errlen);

/* Opens a pool to url (a mongodb:// URL); documents go to db.collection,
 * db being NULL for the URL's database or "resilience". Server selection
 * gives up after timeout_ms, so an unreachable database fails requests fast
 * and the pool reconnects by itself once it returns. At most
 * max_connections operations are in flight at once; one more waits at most
 * timeout_ms for a connection, then fails as STORE_EUNAVAILABLE. The
 * requests' documents are written by at most writers inserts at a time
 * (1..max_connections), each carrying every document that waited for it
 * (group commit, below). Connects lazily: an unreachable database does not
 * fail this call. Returns STORE_OK and sets *out, or -1 with a message
 * naming MONGO_URL in err. */
int store_open(const char *url, const char *db, const char *collection, int timeout_ms,
               int max_connections, int writers, store **out, char *err, size_t errlen);

/* Stored documents carry an idempotency key (_key, at the top level, where
 * FerretDB can hand an equality on it to PostgreSQL: under _meta it read
 * the whole collection for each replay), unique in the collection: before
 * its first insert the store creates the index {_key: 1} (unique, sparse:
 * documents without a key are not in it),
 * and an insert whose key is stored already fails as STORE_EDUPLICATE.
 * Call before the first insert. */
void store_use_keys(store *s);

/* The most documents one insert carries. */
#define STORE_BATCH_MAX 64

/* One request's document: its body and what the service adds under
 * "_meta". */
typedef struct store_doc {
    const char *id_hex;     /* its _id: 24 hex digits, from store_new_id() */
    const char *json;       /* the request's JSON object, already validated */
    const char *service;    /* _meta.service */
    int count;              /* _meta.count: the jump count */
    int64_t received_ms;    /* _meta.received: when the request came (ms since the epoch) */
    const char *outcome;    /* _meta.outcome: ok, last, degraded, injected, hang, deadline */
    const char *reason;     /* _meta.reason, or NULL for none */
    int status;             /* _meta.status (the HTTP status answered), or 0 for none */
    const char *trace;      /* _meta.trace: the request's trace id; NULL or "" = none */
    const char *key;        /* _key: the idempotency key; NULL = none */
    const char *body_hash;  /* _meta.bodyHash: the digest of the request's body; NULL = none */
    const char *answer;     /* _meta.answer: the answer sent, as JSON text; NULL = none */
} store_doc;

/* A new document id (an ObjectId's 24 hex digits and a NUL). */
void store_new_id(char id_hex[25]);

/* Stores d in one insert, its outcome included, and returns once that
 * insert is answered: over PostgreSQL, committed. Group commit: while
 * `writers` inserts are in flight, the documents of other requests wait,
 * and the next free writer takes all of them (up to STORE_BATCH_MAX) in one
 * unordered insert, so concurrent requests share a round trip and a
 * commit; each caller still returns only after its own document's insert
 * is answered, with that document's own result. A lone request waits for
 * nobody. Returns STORE_OK, STORE_EUNAVAILABLE (not stored: the database
 * could not be reached, failed, or every connection stayed busy),
 * STORE_EUNKNOWN (sent, but the answer was lost: it may be stored),
 * STORE_EREJECTED or STORE_ENOMEM, with a message in err. Thread-safe. */
int store_insert(store *s, const store_doc *d, char *err, size_t errlen);

/* What store_find_key() found: the stored request with that key. */
typedef struct store_keyed {
    char id_hex[25];
    int64_t received_ms;
    int status;                      /* the HTTP status it answered */
    char body_hash[40];
    char *answer;                    /* malloc'd JSON text, or NULL when none was kept */
} store_keyed;

/* Finds the document stored with idempotency key. Returns STORE_OK (free
 * out->answer), STORE_ENOTFOUND, or an error as store_insert(). Thread-safe. */
int store_find_key(store *s, const char *key, store_keyed *out, char *err, size_t errlen);

/* Frees an expired key: renames the key of document id_hex (to
 * "<key>#expired-<id>"), so a new request may use it. Returns STORE_OK or
 * an error as store_insert(). Thread-safe. */
int store_expire_key(store *s, const char *key, const char *id_hex, char *err, size_t errlen);

/* Inserts written and the documents they carried, since the store opened
 * (documents / batches is the mean group size). Thread-safe. */
void store_get_stats(store *s, int64_t *batches, int64_t *documents);

/* Returns 0 when the database answers a ping, -1 otherwise with the reason
 * in err (NULL for none). Uses the watch's own connection, so it never waits
 * behind the requests' operations. Thread-safe. */
int store_ping(store *s, char *err, size_t errlen);

/* The database's name, e.g. "resilience". */
const char *store_db_name(const store *s);

/* Closes the pool. No call may be in flight. NULL is a no-op. */
void store_close(store *s);

#endif
