/* cache.c -- the result cache (TTL + LRU size bound) and request coalescing.
 *
 * The cache is a chained hash table threaded on an LRU list, under one mutex.
 * Coalescing keeps the calls in flight per key in a short list: the first
 * caller of a key leads (runs the action) and publishes its result; callers
 * arriving meanwhile wait on the shared call and receive copies (dup) of it.
 */
#include "cb_internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct cache_entry {
    char *key;
    uint64_t hash;
    void *value;
    int64_t expires_ns;                 /* 0 = never */
    struct cache_entry *hnext, *prev, *next;
} cache_entry;

struct cb__cache {
    pthread_mutex_t mx;
    cache_entry **table;
    size_t nslots, count, cap;
    cache_entry *head, *tail;           /* most recently used first */
    int64_t ttl_ns;
    cb_dup_fn dup;
    cb_free_fn free_value;
    void *user;
};

static uint64_t hash_key(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    while (*s)
        h = (h ^ (unsigned char)*s++) * 1099511628211ull;
    return h;
}

/* Creates the cache for o. Returns CB_OK or CB_ENOMEM. */
int cb__cache_new(const cb_options *o, cb__cache **out)
{
    cb__cache *c = calloc(1, sizeof *c);
    if (!c)
        return CB_ENOMEM;
    c->cap = o->cache_size;
    c->nslots = 64;
    while (c->nslots < c->cap && c->nslots < (1u << 20))
        c->nslots <<= 1;
    c->table = calloc(c->nslots, sizeof *c->table);
    if (!c->table) {
        free(c);
        return CB_ENOMEM;
    }
    c->ttl_ns = o->cache_ttl_ms * 1000000LL;
    c->dup = o->dup;
    c->free_value = o->free_value;
    c->user = o->user;
    pthread_mutex_init(&c->mx, NULL);
    *out = c;
    return CB_OK;
}

static void lru_unlink(cb__cache *c, cache_entry *e)
{
    if (e->prev) e->prev->next = e->next; else c->head = e->next;
    if (e->next) e->next->prev = e->prev; else c->tail = e->prev;
    e->prev = e->next = NULL;
}

static void lru_push_front(cb__cache *c, cache_entry *e)
{
    e->next = c->head;
    e->prev = NULL;
    if (c->head) c->head->prev = e; else c->tail = e;
    c->head = e;
}

/* Unlinks e from the table and the list and frees it (mx held). */
static void entry_remove(cb__cache *c, cache_entry *e)
{
    cache_entry **pp = &c->table[e->hash & (c->nslots - 1)];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    lru_unlink(c, e);
    if (c->free_value && e->value)
        c->free_value(e->value, c->user);
    free(e->key);
    free(e);
    c->count--;
}

static cache_entry *entry_find(cb__cache *c, const char *key, uint64_t h)
{
    for (cache_entry *e = c->table[h & (c->nslots - 1)]; e; e = e->hnext)
        if (e->hash == h && strcmp(e->key, key) == 0)
            return e;
    return NULL;
}

/* Returns true and a copy of the cached value when key is fresh at now. */
bool cb__cache_get(cb__cache *c, const char *key, int64_t now, void **value)
{
    uint64_t h = hash_key(key);
    pthread_mutex_lock(&c->mx);
    cache_entry *e = entry_find(c, key, h);
    if (e && e->expires_ns && now >= e->expires_ns) {
        entry_remove(c, e);
        e = NULL;
    }
    if (e) {
        lru_unlink(c, e);
        lru_push_front(c, e);
        *value = c->dup && e->value ? c->dup(e->value, c->user) : e->value;
    }
    pthread_mutex_unlock(&c->mx);
    return e != NULL;
}

/* Caches a copy of value under key, evicting the least recently used entry
 * beyond the size bound. Out of memory: nothing is cached. */
void cb__cache_put(cb__cache *c, const char *key, void *value, int64_t now)
{
    uint64_t h = hash_key(key);
    cache_entry *e = calloc(1, sizeof *e);
    char *k = strdup(key);
    if (!e || !k) {
        free(e);
        free(k);
        return;
    }
    e->key = k;
    e->hash = h;
    e->expires_ns = c->ttl_ns ? now + c->ttl_ns : 0;
    pthread_mutex_lock(&c->mx);
    e->value = c->dup && value ? c->dup(value, c->user) : value;
    cache_entry *old = entry_find(c, key, h);
    if (old)
        entry_remove(c, old);
    e->hnext = c->table[h & (c->nslots - 1)];
    c->table[h & (c->nslots - 1)] = e;
    lru_push_front(c, e);
    if (++c->count > c->cap)
        entry_remove(c, c->tail);
    pthread_mutex_unlock(&c->mx);
}

/* Removes every entry. */
void cb__cache_flush(cb__cache *c)
{
    pthread_mutex_lock(&c->mx);
    while (c->head)
        entry_remove(c, c->head);
    pthread_mutex_unlock(&c->mx);
}

/* Frees the cache and its entries. NULL is a no-op. */
void cb__cache_free(cb__cache *c)
{
    if (!c)
        return;
    cb__cache_flush(c);
    pthread_mutex_destroy(&c->mx);
    free(c->table);
    free(c);
}

/* ---- coalescing ---------------------------------------------------------- */

struct cb__shared_call {
    char *key;
    int refs;
    bool done, in_table;
    int rc;
    cb_result res;
    void *own_value;          /* the coalescer's copy when dup is set */
    int64_t expires_ns;
    pthread_cond_t cv;
    struct cb__shared_call *next;
};

struct cb__coalescer {
    pthread_mutex_t mx;
    cb__shared_call *list;
    int64_t ttl_ns;
    bool reset_on_error;
    cb_dup_fn dup;
    cb_free_fn free_value;
    void *user;
};

/* Creates the coalescing table for o. Returns CB_OK or CB_ENOMEM. */
int cb__coalescer_new(const cb_options *o, cb__coalescer **out)
{
    cb__coalescer *c = calloc(1, sizeof *c);
    if (!c)
        return CB_ENOMEM;
    pthread_mutex_init(&c->mx, NULL);
    c->ttl_ns = o->coalesce_ttl_ms * 1000000LL;
    c->reset_on_error = o->coalesce_reset_on_error;
    c->dup = o->dup;
    c->free_value = o->free_value;
    c->user = o->user;
    *out = c;
    return CB_OK;
}

static void shared_free(cb__coalescer *c, cb__shared_call *sc)
{
    if (c->free_value && sc->own_value)
        c->free_value(sc->own_value, c->user);
    pthread_cond_destroy(&sc->cv);
    free(sc->key);
    free(sc);
}

/* Takes sc out of the table (mx held); frees it when nobody holds it. */
static void table_remove(cb__coalescer *c, cb__shared_call *sc)
{
    for (cb__shared_call **pp = &c->list; *pp; pp = &(*pp)->next)
        if (*pp == sc) {
            *pp = sc->next;
            break;
        }
    sc->in_table = false;
    if (sc->refs == 0)
        shared_free(c, sc);
}

static void unref_locked(cb__coalescer *c, cb__shared_call *sc)
{
    if (--sc->refs == 0 && !sc->in_table)
        shared_free(c, sc);
}

/* Joins the call in flight for key, or starts one (*leader = true). */
cb__shared_call *cb__coalesce_join(cb__coalescer *c, const char *key, int64_t now, bool *leader)
{
    pthread_mutex_lock(&c->mx);
    cb__shared_call *found = NULL, *next;
    for (cb__shared_call *sc = c->list; sc; sc = next) {
        next = sc->next;
        if (sc->done && sc->expires_ns && now >= sc->expires_ns) {
            table_remove(c, sc);
            continue;
        }
        if (!found && strcmp(sc->key, key) == 0)
            found = sc;
    }
    if (found) {
        found->refs++;
        *leader = false;
        pthread_mutex_unlock(&c->mx);
        return found;
    }
    cb__shared_call *sc = calloc(1, sizeof *sc);
    if (sc && !(sc->key = strdup(key))) {
        free(sc);
        sc = NULL;
    }
    if (sc) {
        sc->refs = 1;
        sc->in_table = true;
        sc->expires_ns = c->ttl_ns ? now + c->ttl_ns : 0;
        pthread_cond_init(&sc->cv, NULL);
        sc->next = c->list;
        c->list = sc;
    }
    *leader = true;
    pthread_mutex_unlock(&c->mx);
    return sc;
}

/* The leader hands its outcome to the waiters and drops its reference. */
void cb__coalesce_publish(cb__coalescer *c, cb__shared_call *sc, int rc, const cb_result *res,
                          int64_t now)
{
    pthread_mutex_lock(&c->mx);
    sc->done = true;
    sc->rc = rc;
    sc->res = *res;
    if (c->dup && res->value)
        sc->res.value = sc->own_value = c->dup(res->value, c->user);
    bool keep = c->ttl_ns && now < sc->expires_ns && !(rc != CB_OK && c->reset_on_error);
    if (sc->in_table && !keep)
        table_remove(c, sc);
    pthread_cond_broadcast(&sc->cv);
    unref_locked(c, sc);
    pthread_mutex_unlock(&c->mx);
}

/* Waits for the shared outcome, copies it into res, returns its code. */
int cb__coalesce_wait(cb__coalescer *c, cb__shared_call *sc, cb_result *res)
{
    pthread_mutex_lock(&c->mx);
    while (!sc->done)
        pthread_cond_wait(&sc->cv, &c->mx);
    *res = sc->res;
    res->coalesced = true;
    if (c->dup && sc->own_value)
        res->value = c->dup(sc->own_value, c->user);
    int rc = sc->rc;
    unref_locked(c, sc);
    pthread_mutex_unlock(&c->mx);
    return rc;
}

/* Drops the caller's reference without waiting. */
void cb__coalesce_release(cb__coalescer *c, cb__shared_call *sc)
{
    pthread_mutex_lock(&c->mx);
    unref_locked(c, sc);
    pthread_mutex_unlock(&c->mx);
}

/* Forgets every key: later calls start afresh; waiters still get results. */
void cb__coalescer_flush(cb__coalescer *c)
{
    pthread_mutex_lock(&c->mx);
    while (c->list)
        table_remove(c, c->list);
    pthread_mutex_unlock(&c->mx);
}

/* Frees the coalescer. NULL is a no-op. No call may be in flight. */
void cb__coalescer_free(cb__coalescer *c)
{
    if (!c)
        return;
    cb__coalescer_flush(c);
    pthread_mutex_destroy(&c->mx);
    free(c);
}
