/* idem.h -- idempotency keys: the key a request carries, the key its call to the next hop carries, and the keys in flight in this process.
 *
 * A request's key is its client's Idempotency-Key header (the IETF httpapi
 * draft's; a bare token or a quoted string) or, when it has none, one made
 * here. The call to the next hop carries a key derived from it and from this
 * service's name: the same on every attempt of that call, different at every
 * hop. The key is stored on the request's document, under a unique index
 * (store.h), so a key completed once is never stored twice, by this process
 * or a replica; request.c answers a request whose key is stored with the
 * stored answer. While a request runs, its key is held here: a second
 * request with the same key gets 409 (same body) or 422 (another body)
 * without any work.
 */
#ifndef SVC_IDEM_H
#define SVC_IDEM_H

#include <civetweb.h>
#include <stddef.h>

#define IDEM_KEY_MAX  200   /* bytes of a key */
#define IDEM_HASH_HEX 32    /* hex digits of a body's digest */

/* Reads the request's Idempotency-Key into key: 1..IDEM_KEY_MAX visible
 * ASCII characters, as a bare token or a quoted string (quotes dropped).
 * Returns 1 when there is one, 0 when there is none, -1 when it is
 * malformed (or given twice), with the reason in err. */
int idem_read(struct mg_connection *conn, char key[IDEM_KEY_MAX + 1], char *err, size_t errlen);

/* A key for a request that came without one: 32 random hex digits. */
void idem_new(char key[IDEM_KEY_MAX + 1]);

/* The key the call to the next hop carries: service, '-', and the digest of
 * key and service (32 hex digits). */
void idem_derive(const char *key, const char *service, char out[IDEM_KEY_MAX + 1]);

/* The digest of len bytes at data, as 32 hex digits: two 64-bit FNV-1a
 * hashes with different offsets. It tells a different body from the same
 * one; it is not a cryptographic hash. */
void idem_digest(const void *data, size_t len, char out[IDEM_HASH_HEX + 1]);

/* Prepares the table of keys in flight: at most slots at once (one per
 * worker thread is enough). Returns 0, or -1 when out of memory. */
int idem_init(int slots);

/* Holds key (with the digest of its request's body) for the calling
 * request. Returns 0 (call idem_end() when the request is done), 409 when a
 * request with this key and the same body is in flight, 422 when one with
 * another body is, or 503 when the table is full. */
int idem_begin(const char *key, const char *body_hash);

/* Lets key go. A key not held is ignored. */
void idem_end(const char *key);

#endif
