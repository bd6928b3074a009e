/* idem.c -- idempotency keys: read, made, derived, and held while their request runs.
 *
 * The keys in flight are a small table under a mutex: one slot per request
 * that may run at once, scanned in full (a few hundred slots of a key's
 * first bytes and its length, compared before the key itself).
 */
#include "idem.h"

#include <ctype.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "random.h"

typedef struct idem_slot {
    bool used;
    char key[IDEM_KEY_MAX + 1];
    char hash[IDEM_HASH_HEX + 1];
} idem_slot;

static struct {
    pthread_mutex_t lock;
    idem_slot *slots;
    int n;
} t = { .lock = PTHREAD_MUTEX_INITIALIZER };

int idem_read(struct mg_connection *conn, char key[IDEM_KEY_MAX + 1], char *err, size_t errlen)
{
    key[0] = '\0';
    const char *v = NULL;
    int seen = 0;
    const struct mg_request_info *ri = mg_get_request_info(conn);
    for (int i = 0; i < ri->num_headers; i++) {
        if (strcasecmp(ri->http_headers[i].name, "Idempotency-Key"))
            continue;
        v = ri->http_headers[i].value;
        seen++;
    }
    if (!seen)
        return 0;
    if (seen > 1) {
        snprintf(err, errlen, "Idempotency-Key is given %d times; give it once", seen);
        return -1;
    }
    size_t len = strlen(v);
    if (len >= 2 && v[0] == '"' && v[len - 1] == '"') {
        v++;
        len -= 2;
    }
    if (len == 0 || len > IDEM_KEY_MAX) {
        snprintf(err, errlen, "Idempotency-Key must be 1..%d characters, got %zu", IDEM_KEY_MAX, len);
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c <= 0x20 || c >= 0x7f || c == '"' || c == '\\') {
            snprintf(err, errlen, "Idempotency-Key may hold only visible ASCII characters "
                     "other than '\"' and '\\\\' (byte %zu is 0x%02x)", i, c);
            return -1;
        }
    }
    memcpy(key, v, len);
    key[len] = '\0';
    return 1;
}

void idem_new(char key[IDEM_KEY_MAX + 1])
{
    snprintf(key, IDEM_KEY_MAX + 1, "%016llx%016llx", (unsigned long long)random_u64(),
             (unsigned long long)random_u64());
}

/* 64-bit FNV-1a of len bytes from offset h. */
static uint64_t fnv1a(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

void idem_digest(const void *data, size_t len, char out[IDEM_HASH_HEX + 1])
{
    uint64_t a = fnv1a(0xcbf29ce484222325ULL, data, len);
    uint64_t b = fnv1a(0x84222325cbf29ce4ULL ^ (uint64_t)len, data, len);
    snprintf(out, IDEM_HASH_HEX + 1, "%016llx%016llx", (unsigned long long)a, (unsigned long long)b);
}

void idem_derive(const char *key, const char *service, char out[IDEM_KEY_MAX + 1])
{
    char buf[IDEM_KEY_MAX + 130];
    int n = snprintf(buf, sizeof buf, "%s\n%.120s", key, service);
    char digest[IDEM_HASH_HEX + 1];
    idem_digest(buf, n > 0 && (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1, digest);
    snprintf(out, IDEM_KEY_MAX + 1, "%.120s-%s", service, digest);
}

int idem_init(int slots)
{
    idem_slot *s = calloc((size_t)(slots > 0 ? slots : 1), sizeof *s);
    if (!s)
        return -1;
    pthread_mutex_lock(&t.lock);
    free(t.slots);
    t.slots = s;
    t.n = slots > 0 ? slots : 1;
    pthread_mutex_unlock(&t.lock);
    return 0;
}

int idem_begin(const char *key, const char *body_hash)
{
    int rc = 503;
    pthread_mutex_lock(&t.lock);
    idem_slot *free_slot = NULL;
    for (int i = 0; i < t.n; i++) {
        idem_slot *s = &t.slots[i];
        if (!s->used) {
            if (!free_slot)
                free_slot = s;
        } else if (!strcmp(s->key, key)) {
            rc = strcmp(s->hash, body_hash) ? 422 : 409;
            free_slot = NULL;
            break;
        }
    }
    if (free_slot) {
        free_slot->used = true;
        snprintf(free_slot->key, sizeof free_slot->key, "%s", key);
        snprintf(free_slot->hash, sizeof free_slot->hash, "%s", body_hash);
        rc = 0;
    }
    pthread_mutex_unlock(&t.lock);
    return rc;
}

void idem_end(const char *key)
{
    pthread_mutex_lock(&t.lock);
    for (int i = 0; i < t.n; i++) {
        if (t.slots[i].used && !strcmp(t.slots[i].key, key)) {
            t.slots[i].used = false;
            break;
        }
    }
    pthread_mutex_unlock(&t.lock);
}
