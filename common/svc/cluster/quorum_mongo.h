/* quorum_mongo.h -- the MongoDB backend of cb_quorum_backend (common/include/cb_quorum.h). */
#ifndef SVC_QUORUM_MONGO_H
#define SVC_QUORUM_MONGO_H

#include <stddef.h>
#include "cb_quorum.h"

typedef struct quorum_mongo quorum_mongo;

/* Opens a client pool of its own to url (a mongodb:// URL), database db
 * (NULL: the URL's, else "resilience"), with server selection and connect
 * timeouts of timeout_ms, so that a sync learns of a dead database within
 * that time. Connects lazily: an unreachable database does not fail this
 * call. Collections: breaker_votes (one document per circuit + replica),
 * breaker_shared (one per circuit), breaker_leases (one per circuit).
 * Returns 0 and sets *out, or -1 with a message in err. */
int quorum_mongo_open(const char *url, const char *db, int timeout_ms, quorum_mongo **out,
                      char *err, size_t errlen);

/* Fills b with the six functions and user = m. This function can't fail. */
void quorum_mongo_backend(quorum_mongo *m, cb_quorum_backend *b);

/* Closes the pool. No backend call may be in flight. NULL is a no-op. */
void quorum_mongo_close(quorum_mongo *m);

#endif
