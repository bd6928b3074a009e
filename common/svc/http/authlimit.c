/* authlimit.c -- how often each client address may try an admin token: a token bucket per address.
 *
 * A bucket holds up to burst tries and refills at rate tries a second. A try
 * is taken before the token is compared (so that many connections from one
 * address at once cannot all reach the comparison) and given back when the
 * token was right: only failures drain the bucket. Buckets live in a fixed
 * table (AUTHLIMIT_SLOTS, open addressing over AUTHLIMIT_PROBES slots); a
 * full neighbourhood gives up its fullest bucket, which is as good as new.
 * One mutex guards the table: admin calls are rare, and a refusal is a few
 * hundred nanoseconds of work.
 */
#include "authlimit.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#define AUTHLIMIT_SLOTS 4096
#define AUTHLIMIT_PROBES 8

typedef struct bucket {
    char addr[48];          /* "" = free */
    double tries;           /* left at refilled_ns */
    int64_t refilled_ns;
    bool refusing;          /* refused since the last allowed try */
} bucket;

static pthread_mutex_t authlimit_lock = PTHREAD_MUTEX_INITIALIZER;
static bucket authlimit_table[AUTHLIMIT_SLOTS];
static double authlimit_rate = 2.0;
static double authlimit_burst = 5.0;
static atomic_ullong authlimit_failed;
static atomic_ullong authlimit_refused;

void authlimit_init(double rate_per_s, int burst)
{
    pthread_mutex_lock(&authlimit_lock);
    memset(authlimit_table, 0, sizeof authlimit_table);
    authlimit_rate = rate_per_s > 0 ? rate_per_s : 1.0;
    authlimit_burst = burst > 0 ? burst : 1;
    pthread_mutex_unlock(&authlimit_lock);
    atomic_store(&authlimit_failed, 0);
    atomic_store(&authlimit_refused, 0);
}

/* FNV-1a of s. */
static uint32_t authlimit_hash(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

/* Brings b up to now_ns. */
static void authlimit_refill(bucket *b, int64_t now_ns)
{
    double add = (double)(now_ns - b->refilled_ns) / 1e9 * authlimit_rate;
    if (add > 0) {
        b->tries = b->tries + add > authlimit_burst ? authlimit_burst : b->tries + add;
        b->refilled_ns = now_ns;
    }
}

/* addr's bucket, made (full) when new. Call with the lock held. */
static bucket *authlimit_find(const char *addr, int64_t now_ns, bool create)
{
    uint32_t h = authlimit_hash(addr);
    bucket *fullest = NULL;
    for (int i = 0; i < AUTHLIMIT_PROBES; i++) {
        bucket *b = &authlimit_table[(h + (uint32_t)i) % AUTHLIMIT_SLOTS];
        if (!strcmp(b->addr, addr))
            return b;
        if (!b->addr[0]) {
            if (!fullest || fullest->addr[0])
                fullest = b;
            continue;
        }
        authlimit_refill(b, now_ns);
        if (!fullest || (fullest->addr[0] && b->tries > fullest->tries))
            fullest = b;
    }
    if (!create)
        return NULL;
    snprintf(fullest->addr, sizeof fullest->addr, "%s", addr);
    fullest->tries = authlimit_burst;
    fullest->refilled_ns = now_ns;
    fullest->refusing = false;
    return fullest;
}

int authlimit_take(const char *addr, int64_t now_ns, bool *first_refusal)
{
    *first_refusal = false;
    pthread_mutex_lock(&authlimit_lock);
    bucket *b = authlimit_find(addr ? addr : "", now_ns, true);
    authlimit_refill(b, now_ns);
    int wait_s = 0;
    if (b->tries >= 1.0) {
        b->tries -= 1.0;
        b->refusing = false;
    } else {
        wait_s = (int)((1.0 - b->tries) / authlimit_rate) + 1;
        *first_refusal = !b->refusing;
        b->refusing = true;
    }
    pthread_mutex_unlock(&authlimit_lock);
    if (wait_s)
        atomic_fetch_add(&authlimit_refused, 1);
    return wait_s;
}

void authlimit_refund(const char *addr)
{
    pthread_mutex_lock(&authlimit_lock);
    bucket *b = authlimit_find(addr ? addr : "", 0, false);
    if (b)
        b->tries = b->tries + 1.0 > authlimit_burst ? authlimit_burst : b->tries + 1.0;
    pthread_mutex_unlock(&authlimit_lock);
}

void authlimit_count_failure(void)
{
    atomic_fetch_add(&authlimit_failed, 1);
}

uint64_t authlimit_failures(void)
{
    return atomic_load(&authlimit_failed);
}

uint64_t authlimit_refusals(void)
{
    return atomic_load(&authlimit_refused);
}
