/* export.c -- the breaker's state as JSON (cJSON), and creating a breaker from
 * it so a restarted process resumes: state, the open timer's remaining time,
 * the back-off step, total counts and the window's buckets. Latency samples
 * are not exported.
 */
#include "cb_internal.h"

#include <cJSON.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* Exported counters, by opossum's names where it has them. */
static const struct {
    const char *name;
    size_t offset;
} count_fields[] = {
    { "fires", offsetof(cb_counts, fires) },
    { "successes", offsetof(cb_counts, successes) },
    { "failures", offsetof(cb_counts, failures) },
    { "timeouts", offsetof(cb_counts, timeouts) },
    { "rejects", offsetof(cb_counts, rejects) },
    { "fallbacks", offsetof(cb_counts, fallbacks) },
    { "fallbackFailures", offsetof(cb_counts, fallback_failures) },
    { "semaphoreRejections", offsetof(cb_counts, semaphore_rejections) },
    { "cacheHits", offsetof(cb_counts, cache_hits) },
    { "cacheMisses", offsetof(cb_counts, cache_misses) },
    { "coalesceCacheHits", offsetof(cb_counts, coalesce_hits) },
    { "coalesceCacheMisses", offsetof(cb_counts, coalesce_misses) },
    { "slowCalls", offsetof(cb_counts, slow_calls) },
};
#define NFIELDS (sizeof count_fields / sizeof count_fields[0])

/* The largest count exported or imported: 2^53, the largest integer a JSON
 * number carries exactly. Exported counts saturate there, imported ones above
 * it are refused and sums of imported ones saturate, so that nothing wraps
 * and a breaker's own export always imports again. */
#define COUNT_MAX 9007199254740992ULL

/* a + b, at most COUNT_MAX; a and b are at most COUNT_MAX. */
static uint64_t count_add(uint64_t a, uint64_t b)
{
    return a + b > COUNT_MAX ? COUNT_MAX : a + b;
}

static uint64_t *field(cb_counts *c, size_t i)
{
    return (uint64_t *)((char *)c + count_fields[i].offset);
}

/* A JSON object of the counts derived from raw ones. */
static cJSON *counts_json(const uint64_t raw[C_NCOUNTERS])
{
    cJSON *o = cJSON_CreateObject();
    cb_counts c;
    cb__raw_to_counts(raw, &c);
    for (size_t i = 0; i < NFIELDS; i++)
        cJSON_AddNumberToObject(o, count_fields[i].name,
                                (double)(*field(&c, i) > COUNT_MAX ? COUNT_MAX : *field(&c, i)));
    return o;
}

/* Raw counts from an exported object; a missing counter is 0 (as opossum's
 * import); a present one must be a number in 0..COUNT_MAX. */
static bool counts_parse(const cJSON *o, uint64_t raw[C_NCOUNTERS])
{
    if (!cJSON_IsObject(o))
        return false;
    cb_counts c = { 0 };
    for (size_t i = 0; i < NFIELDS; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, count_fields[i].name);
        if (!v)
            continue;
        if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0) || v->valuedouble > (double)COUNT_MAX)
            return false;
        *field(&c, i) = (uint64_t)v->valuedouble;
    }
    cb__counts_to_raw(&c, raw); /* each raw count is at most one of c's */
    return true;
}

static void add_state(cJSON *root, cb_breaker *b, int64_t now)
{
    pthread_mutex_lock(&b->lock);
    cJSON_AddStringToObject(root, "state", cb_state_name(cb__visible_state(b)));
    cJSON_AddStringToObject(root, "core", cb_state_name(b->core));
    cJSON_AddStringToObject(root, "force", b->force == CB_FORCE_OPEN ? "open"
                                           : b->force == CB_FORCE_CLOSED ? "closed" : "none");
    cJSON_AddBoolToObject(root, "enabled", !b->disabled);
    cJSON_AddBoolToObject(root, "warmUp", b->warm_up && now < b->warm_until_ns);
    cJSON_AddBoolToObject(root, "shutdown", atomic_load(&b->shut) != 0);
    double remaining = b->core == CB_OPEN ? (double)(b->open_until_ns - now) / 1e6 : 0;
    cJSON_AddNumberToObject(root, "openRemainingMs", remaining > 0 ? remaining : 0);
    cJSON_AddNumberToObject(root, "backoffStep", b->backoff_step);
    cJSON_AddNumberToObject(root, "currentResetTimeoutMs", (double)b->current_reset_ns / 1e6);
    pthread_mutex_unlock(&b->lock);
}

/* The breaker's state as a malloc'd JSON string; NULL when out of memory. */
char *cb_export_json(cb_breaker *b)
{
    if (!b)
        return NULL;
    int64_t now = cb__now(b);
    cJSON *root = cJSON_CreateObject();
    if (!root)
        return NULL;
    cJSON_AddStringToObject(root, "format", "cb-state-1");
    cJSON_AddStringToObject(root, "name", b->name);
    add_state(root, b, now);
    cJSON_AddNumberToObject(root, "rollingCountTimeout", (double)b->o.rolling_count_timeout_ms);
    cJSON_AddNumberToObject(root, "rollingCountBuckets", b->o.rolling_count_buckets);
    uint64_t win[C_NCOUNTERS], total[C_NCOUNTERS];
    cb__window_raw(&b->win, 0, win, total); /* as last rotated, like the buckets below */
    cJSON_AddItemToObject(root, "total", counts_json(total));
    cJSON_AddItemToObject(root, "window", counts_json(win));
    int n = b->win.nbuckets;
    uint64_t (*buckets)[C_NCOUNTERS] = calloc((size_t)n, sizeof *buckets);
    cJSON *arr = cJSON_AddArrayToObject(root, "buckets");
    if (buckets && arr) {
        cb__window_buckets(&b->win, buckets);
        for (int i = 0; i < n; i++)
            cJSON_AddItemToArray(arr, counts_json(buckets[i]));
    }
    free(buckets);
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s;
}

static bool state_from_name(const char *s, cb_state *out)
{
    for (int i = CB_CLOSED; i <= CB_SHUTDOWN; i++)
        if (strcmp(s, cb_state_name((cb_state)i)) == 0) {
            *out = (cb_state)i;
            return true;
        }
    return false;
}

typedef struct imported {
    cb_state core;
    cb_force_mode force;
    bool enabled, warm_up, shutdown;
    double remaining_ms, current_reset_ms;
    int backoff_step;
    uint64_t total[C_NCOUNTERS];
    uint64_t (*buckets)[C_NCOUNTERS];
    int nbuckets;
} imported;

/* The longest open period or reset timeout an import may carry: ten years,
 * far below where milliseconds * 1e6 + the clock would overflow int64_t. */
#define IMPORT_MAX_MS (10.0 * 365 * 86400 * 1000)

static double num_or(const cJSON *root, const char *key, double dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

static bool parse_import(const cJSON *root, imported *im)
{
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(root, "format");
    const cJSON *core = cJSON_GetObjectItemCaseSensitive(root, "core");
    const cJSON *force = cJSON_GetObjectItemCaseSensitive(root, "force");
    if (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, "cb-state-1") != 0 ||
        !cJSON_IsString(core) || !state_from_name(core->valuestring, &im->core) ||
        im->core > CB_HALF_OPEN || !cJSON_IsString(force))
        return false;
    im->force = strcmp(force->valuestring, "open") == 0     ? CB_FORCE_OPEN
                : strcmp(force->valuestring, "closed") == 0 ? CB_FORCE_CLOSED : CB_FORCE_NONE;
    im->enabled = !cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(root, "enabled"));
    im->warm_up = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "warmUp"));
    im->shutdown = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "shutdown"));
    /* bounded before any conversion: a double out of int64_t's (or int's)
     * range does not convert, and the open timer is added to the clock */
    im->remaining_ms = num_or(root, "openRemainingMs", 0);
    im->current_reset_ms = num_or(root, "currentResetTimeoutMs", 0);
    double step = num_or(root, "backoffStep", 0);
    if (!(step >= 0 && step <= 1000) || !(im->remaining_ms >= 0) ||
        im->remaining_ms > IMPORT_MAX_MS || !(im->current_reset_ms >= 0) ||
        im->current_reset_ms > IMPORT_MAX_MS)
        return false;
    im->backoff_step = (int)step;
    const cJSON *total = cJSON_GetObjectItemCaseSensitive(root, "total");
    if (total && !counts_parse(total, im->total))
        return false;
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, "buckets");
    int n = cJSON_IsArray(arr) ? cJSON_GetArraySize(arr) : 0;
    if (n > 0 && !(im->buckets = calloc((size_t)n, sizeof *im->buckets)))
        return false;
    im->nbuckets = n;
    for (int i = 0; i < n; i++)
        if (!counts_parse(cJSON_GetArrayItem(arr, i), im->buckets[i]))
            return false;
    return true;
}

/* Creates a breaker from o resuming the exported json. See cb.h. */
int cb_create_from_json(const cb_options *o, const char *json, cb_breaker **out)
{
    if (!out || !json)
        return CB_EINVAL;
    cJSON *root = cJSON_Parse(json);
    imported im = { 0 };
    bool ok = root && parse_import(root, &im);
    cJSON_Delete(root);
    if (!ok) {
        free(im.buckets);
        return CB_EPARSE;
    }
    cb_breaker *b;
    int rc = cb__breaker_new(o, &b);
    if (rc != CB_OK) {
        free(im.buckets);
        return rc;
    }
    /* the totals hold at least what the window holds */
    for (int k = 0; k < C_NCOUNTERS; k++) {
        uint64_t in_window = 0;
        for (int i = 0; i < im.nbuckets; i++)
            in_window = count_add(in_window, im.buckets[i][k]);
        if (im.total[k] < in_window)
            im.total[k] = in_window;
    }
    uint64_t (*buckets)[C_NCOUNTERS] = im.buckets;
    int nbuckets = im.nbuckets;
    /* buckets of another window shape are folded into the newest one */
    if (nbuckets != b->win.nbuckets && nbuckets > 0) {
        for (int i = 0; i < nbuckets - 1; i++)
            for (int k = 0; k < C_NCOUNTERS; k++)
                im.buckets[nbuckets - 1][k] = count_add(im.buckets[nbuckets - 1][k],
                                                        im.buckets[i][k]);
        buckets = &im.buckets[nbuckets - 1];
        nbuckets = 1;
    }
    cb__window_import(&b->win, im.total, buckets, nbuckets);
    free(im.buckets);
    cb__breaker_restore(b, im.core, im.force, !im.enabled, im.warm_up,
                        (int64_t)(im.remaining_ms * 1e6), im.backoff_step,
                        (int64_t)(im.current_reset_ms * 1e6));
    rc = cb__breaker_start(b);
    if (rc == CB_OK && im.shutdown)
        cb_shutdown(b);
    if (rc != CB_OK) {
        cb_destroy(b);
        return rc;
    }
    *out = b;
    return CB_OK;
}
