/* store.h -- persistence of received documents in MongoDB over one client pool. */
#ifndef SVC_STORE_H
#define SVC_STORE_H

#include <mongoc/mongoc.h>
#include <stddef.h>

typedef struct store store;

#define STORE_OK            0
#define STORE_EUNAVAILABLE -1  /* the database could not be reached in time */
#define STORE_EREJECTED    -2  /* the database refused the document */
#define STORE_ENOMEM       -3
#define STORE_EUNKNOWN     -4  /* sent, but no answer came back: it may be stored */

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
 * timeout_ms for a connection, then fails as STORE_EUNAVAILABLE. Connects
 * lazily: an unreachable database does not fail this call. Returns STORE_OK
 * and sets *out, or -1 with a message naming MONGO_URL in err. */
int store_open(const char *url, const char *db, const char *collection, int timeout_ms,
               int max_connections, store **out, char *err, size_t errlen);

/* Inserts the request's JSON object (json, already validated) with the
 * server's fields under "_meta": service, count, received (a date),
 * outcome "pending" and trace (the request's trace id; NULL or "" = none).
 * Writes the new _id's hex (25 bytes) to id_hex and the "received" time
 * (milliseconds since the epoch) to *received_ms. Returns STORE_OK,
 * STORE_EUNAVAILABLE (not stored: the database could not be reached, or
 * every connection stayed busy), STORE_EUNKNOWN (sent, but the answer was
 * lost: it may be stored, with id_hex), STORE_EREJECTED or STORE_ENOMEM,
 * with a message in err. Thread-safe. */
int store_insert(store *s, const char *json, const char *service, int count, const char *trace,
                 char id_hex[25], int64_t *received_ms, char *err, size_t errlen);

/* Sets _meta.outcome (and _meta.reason, _meta.status when given: NULL / 0
 * to omit) on the document id_hex. Returns STORE_OK or an error as
 * store_insert(). Thread-safe. */
int store_record_outcome(store *s, const char *id_hex, const char *outcome,
                         const char *reason, int status);

/* Returns 0 when the database answers a ping, -1 otherwise with the reason
 * in err (NULL for none). Uses the watch's own connection, so it never waits
 * behind the requests' operations. Thread-safe. */
int store_ping(store *s, char *err, size_t errlen);

/* Marks every document of this collection that service stored before
 * before_ms (milliseconds since the epoch) and whose outcome is still
 * "pending" with outcome "unknown", the reason given and "resolved" (the
 * time now). *resolved gets how many were marked. Uses the watch's own
 * connection. Returns STORE_OK or an error as store_insert(), with a
 * message in err. Thread-safe. */
int store_resolve_pending(store *s, const char *service, int64_t before_ms, const char *reason,
                          int64_t *resolved, char *err, size_t errlen);

/* The database's name, e.g. "resilience". */
const char *store_db_name(const store *s);

/* Closes the pool. No call may be in flight. NULL is a no-op. */
void store_close(store *s);

#endif
