/* hop_hedge.c -- hedging of the call to the next hop (HEDGE_*, POST /hedge).
 *
 * Off by default (HEDGE_MAX_COPIES=1): request.c then calls the breaker once.
 * With more copies, request.c gives hop_hedge_fire() one hop_call per copy,
 * each with its own cancel flag and response buffer, and cb_hedge_fire()
 * makes each copy one call of the breaker (cb_hedge.h); the copies carry the
 * request's Idempotency-Key, so the next hop stores the call once.
 *
 * With the retry policy (RETRY_ATTEMPTS > 1) on as well, request.c runs the
 * retry policy alone for now: cb_retry_fire() calls the breaker itself, and
 * has no hook yet through which each attempt could be a hedged call.
 *
 * POST /hedge changes the settings at runtime as POST /retry does: a new
 * policy published with one atomic store, the old ones kept until shutdown
 * (HOP_HEDGE_MAX_CHANGES bounds them), the counts summed over all of them.
 */
#include "hop_hedge.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "monotime.h"

#define HOP_HEDGE_MAX_CHANGES 1000

/* One policy and the settings it was made from. */
typedef struct hedge_policy {
    cb_hedge *hedge;
    hop_hedge_settings s;
    struct hedge_policy *older;
} hedge_policy;

static struct {
    _Atomic(hedge_policy *) current;
    pthread_mutex_t change_lock;
    int changes;
} hedge_g = { .change_lock = PTHREAD_MUTEX_INITIALIZER };

/* discard: a losing copy's fallback value (a cJSON degraded answer). A
 * success's value is its chain_call, which request.c owns. */
static void hedge_discard(const cb_result *res, void *arg, void *user)
{
    (void)arg;
    (void)user;
    if (res->fallback)
        cJSON_Delete(res->value);
}

/* The policy's clock: mono_ns(). */
static int64_t hedge_clock_now(void *ctx)
{
    (void)ctx;
    return mono_ns();
}

/* Creates a policy from s. Returns it, or NULL with the reason in err. */
static hedge_policy *hedge_policy_new(const hop_hedge_settings *s, char *err, size_t errlen)
{
    if (s->percentile != 0 && s->percentile < 1) {
        snprintf(err, errlen, "percentile must be 0 (a fixed delay) or in 1..99.9 (as "
                 "HEDGE_PERCENTILE), not %g", s->percentile);
        return NULL;
    }
    cb_hedge_options o;
    cb_hedge_options_init(&o);
    o.name = "next-hop";
    o.max_copies = s->max_copies;
    o.delay_ms = s->delay_ms;
    o.delay_percentile = s->percentile;
    o.budget_ratio = s->budget_ratio;
    o.discard = hedge_discard;
    o.clock = (cb_clock){ hedge_clock_now, NULL };
    hedge_policy *p = calloc(1, sizeof *p);
    int rc = p ? cb_hedge_create(&o, &p->hedge) : CB_ENOMEM;
    if (rc != CB_OK) {
        snprintf(err, errlen, "cannot create the hedging policy: %s", cb_strerror(rc));
        free(p);
        return NULL;
    }
    p->s = *s;
    return p;
}

/* The settings as words for the log. */
static void hedge_words(const hop_hedge_settings *s, char *buf, size_t len)
{
    if (s->max_copies <= 1)
        snprintf(buf, len, "off (1 copy)");
    else if (s->percentile > 0)
        snprintf(buf, len, "up to %d copies, delay p%g of recent calls (at least %lld ms), "
                 "hedges at most %g of calls", s->max_copies, s->percentile,
                 (long long)s->delay_ms, s->budget_ratio);
    else
        snprintf(buf, len, "up to %d copies, delay %lld ms, hedges at most %g of calls",
                 s->max_copies, (long long)s->delay_ms, s->budget_ratio);
}

int hop_hedge_init(const svc_config *c)
{
    hop_hedge_settings s = { .max_copies = c->hedge_max_copies, .delay_ms = c->hedge_delay_ms,
                             .percentile = c->hedge_percentile,
                             .budget_ratio = c->hedge_budget_ratio };
    char err[200];
    hedge_policy *p = hedge_policy_new(&s, err, sizeof err);
    if (!p) {
        log_message(true, "%s", err);
        return -1;
    }
    atomic_store(&hedge_g.current, p);
    if (s.max_copies > 1) {
        char words[200];
        hedge_words(&s, words, sizeof words);
        log_message(false, "hedging of the next hop: %s", words);
    }
    return 0;
}

cb_hedge *hop_hedge_current(hop_hedge_settings *s)
{
    hedge_policy *p = atomic_load_explicit(&hedge_g.current, memory_order_acquire);
    if (!p)
        return NULL;
    if (s)
        *s = p->s;
    return p->hedge;
}

bool hop_hedge_on(void)
{
    hop_hedge_settings s;
    return hop_hedge_current(&s) && s.max_copies > 1;
}

int hop_hedge_fire(cb_breaker *b, void **args, _Atomic int *cancel, int ncopies, cb_result *res,
                   int *winner)
{
    cb_hedge *h = hop_hedge_current(NULL);
    *winner = 0;
    if (!h)
        return cb_fire(b, args[0], res);
    cb_hedge_call call = { .args = args, .cancel = cancel, .ncopies = ncopies };
    int rc = cb_hedge_fire(h, b, res, &call);
    *winner = call.winner;
    return rc;
}

/* The fields of POST /hedge: the JSON name, its HEDGE_* row, where it goes. */
static const setting_field hedge_fields[] = {
    { "max_copies", "HEDGE_MAX_COPIES", offsetof(hop_hedge_settings, max_copies), 'i' },
    { "delay_ms", "HEDGE_DELAY_MS", offsetof(hop_hedge_settings, delay_ms), 'l' },
    { "percentile", "HEDGE_PERCENTILE", offsetof(hop_hedge_settings, percentile), 'd' },
    { "budget_ratio", "HEDGE_BUDGET_RATIO", offsetof(hop_hedge_settings, budget_ratio), 'd' },
};

/* Reads body's fields over s, each checked against its row's range.
 * Returns 0, or -1 with err set. */
static int hedge_parse(const cJSON *body, hop_hedge_settings *s, char *err, size_t errlen)
{
    if (!cJSON_IsObject(body)) {
        snprintf(err, errlen, "the body must be a JSON object such as {\"max_copies\": 2, "
                 "\"delay_ms\": 50, \"percentile\": 0, \"budget_ratio\": 0.1}");
        return -1;
    }
    for (const cJSON *x = body->child; x; x = x->next)
        if (setting_field_set(hedge_fields, sizeof hedge_fields / sizeof hedge_fields[0], x->string,
                              cJSON_IsNumber(x), x->valuedouble, s, NULL, err, errlen))
            return -1;
    return 0;
}

int hop_hedge_set_json(const char *text, size_t len, char *err, size_t errlen)
{
    cJSON *body = cJSON_ParseWithLength(text, len);
    if (!body) {
        snprintf(err, errlen, "the body is not valid JSON");
        return 400;
    }
    pthread_mutex_lock(&hedge_g.change_lock);
    hedge_policy *old = atomic_load(&hedge_g.current);
    hop_hedge_settings s = old ? old->s : (hop_hedge_settings){ 0 };
    int status = 0;
    hedge_policy *p = NULL;
    if (!old) {
        snprintf(err, errlen, "this service has no hedging policy");
        status = 404;
    } else if (hedge_parse(body, &s, err, errlen)) {
        status = 400;
    } else if (hedge_g.changes >= HOP_HEDGE_MAX_CHANGES) {
        snprintf(err, errlen, "the hedging settings were changed %d times since the start, the "
                 "most a service keeps; restart it to change them again", hedge_g.changes);
        status = 409;
    } else if (!(p = hedge_policy_new(&s, err, errlen))) {
        status = s.percentile != 0 && s.percentile < 1 ? 400 : 500;
    } else {
        p->older = old;
        hedge_g.changes++;
        atomic_store_explicit(&hedge_g.current, p, memory_order_release);
        char words[200];
        hedge_words(&s, words, sizeof words);
        log_message(false, "admin: hedging of the next hop set to %s (POST /hedge)", words);
    }
    pthread_mutex_unlock(&hedge_g.change_lock);
    cJSON_Delete(body);
    return status;
}

void hop_hedge_stats(cb_hedge_stats *st)
{
    memset(st, 0, sizeof *st);
    hedge_policy *cur = atomic_load_explicit(&hedge_g.current, memory_order_acquire);
    for (hedge_policy *p = cur; p; p = p->older) {
        cb_hedge_stats one;
        if (cb_hedge_get_stats(p->hedge, &one) != CB_OK)
            continue;
        st->calls += one.calls;
        st->copies += one.copies;
        st->hedges += one.hedges;
        st->hedge_wins += one.hedge_wins;
        st->cancelled += one.cancelled;
        st->budget_refused += one.budget_refused;
        st->failed += one.failed;
        st->thread_failures += one.thread_failures;
        if (p == cur) {
            st->budget_tokens = one.budget_tokens;
            st->delay_ms = one.delay_ms;
        }
    }
}

cJSON *hop_hedge_json(void)
{
    hop_hedge_settings s;
    if (!hop_hedge_current(&s))
        return NULL;
    cb_hedge_stats st;
    hop_hedge_stats(&st);
    pthread_mutex_lock(&hedge_g.change_lock);
    int changes = hedge_g.changes;
    pthread_mutex_unlock(&hedge_g.change_lock);
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddBoolToObject(o, "on", s.max_copies > 1);
    cJSON_AddNumberToObject(o, "max_copies", s.max_copies);
    cJSON_AddNumberToObject(o, "delay_ms", (double)s.delay_ms);
    cJSON_AddNumberToObject(o, "percentile", s.percentile);
    cJSON_AddNumberToObject(o, "budget_ratio", s.budget_ratio);
    cJSON_AddNumberToObject(o, "changes", changes);
    cJSON *n = cJSON_AddObjectToObject(o, "stats");
    cJSON_AddNumberToObject(n, "calls", (double)st.calls);
    cJSON_AddNumberToObject(n, "copies", (double)st.copies);
    cJSON_AddNumberToObject(n, "hedges", (double)st.hedges);
    cJSON_AddNumberToObject(n, "hedge_wins", (double)st.hedge_wins);
    cJSON_AddNumberToObject(n, "cancelled", (double)st.cancelled);
    cJSON_AddNumberToObject(n, "budget_refused", (double)st.budget_refused);
    cJSON_AddNumberToObject(n, "failed", (double)st.failed);
    cJSON_AddNumberToObject(n, "budget_tokens", st.budget_tokens);
    cJSON_AddNumberToObject(n, "delay_ms", st.delay_ms);
    return o;
}

void hop_hedge_free(void)
{
    hedge_policy *p = atomic_exchange(&hedge_g.current, NULL);
    while (p) {
        hedge_policy *older = p->older;
        cb_hedge_destroy(p->hedge);
        free(p);
        p = older;
    }
}
