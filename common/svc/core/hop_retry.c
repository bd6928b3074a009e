/* hop_retry.c -- the retry policy around the call to the next hop (RETRY_*, POST /retry).
 *
 * Off by default (RETRY_ATTEMPTS=1), as in the original demo: request.c then
 * calls the breaker once. With more attempts, request.c calls
 * cb_retry_fire() on the policy in force, the retry outside and the breaker
 * inside (cb_retry.h): every attempt is one call of the breaker.
 *
 * POST /retry changes the settings at runtime. A cb_retry's options are
 * fixed, so a change creates a new policy and publishes it with one atomic
 * store; a request that read the old one finishes its call on it. No
 * policy is freed before shutdown: they are a few hundred bytes each, a
 * change is a teacher's hand on the admin route, and HOP_RETRY_MAX_CHANGES
 * bounds them. Keeping them also makes the counts simple: /metrics shows
 * the sum over every policy, which only grows, as a counter must.
 *
 * Which failures are retried: the default predicate's (a timeout, 502, 503,
 * 504) plus chain.c's transport codes CHAIN_ETIMEDOUT and CHAIN_ECONNECT,
 * which the default does not know (it reads negated errnos).
 */
#include "hop_retry.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chain.h"
#include "log.h"
#include "monotime.h"

/* Policies a service may have in its life: the first and this many changes. */
#define HOP_RETRY_MAX_CHANGES 1000

/* One policy and the settings it was made from. */
typedef struct hop_policy {
    cb_retry *retry;
    hop_retry_settings s;
    struct hop_policy *older;   /* the one it replaced; NULL for the first */
} hop_policy;

static struct {
    _Atomic(hop_policy *) current;
    pthread_mutex_t change_lock;   /* one change at a time */
    int changes;
    int log_level;
} hop_g = { .change_lock = PTHREAD_MUTEX_INITIALIZER };

/* The predicate: cb_retry_default_retryable() plus chain.c's transport codes. */
static bool hop_retryable(int rc, int action_rc, void *arg, void *user)
{
    if (rc == CB_EFAILED && (action_rc == CHAIN_ECONNECT || action_rc == CHAIN_ETIMEDOUT))
        return true;
    return cb_retry_default_retryable(rc, action_rc, arg, user);
}

/* discard: the fallback's degraded answer (a cJSON) of an attempt that is
 * retried. A failed attempt's value is only ever the fallback's. */
static void hop_discard(void *value, void *user)
{
    (void)user;
    cJSON_Delete(value);
}

/* The policy's clock: mono_ns(), the clock of hop.http.deadline_ns, which
 * request.c gives the call as its deadline. */
static int64_t hop_clock_now(void *ctx)
{
    (void)ctx;
    return mono_ns();
}

/* Creates a policy from s. Returns it, or NULL with the reason in err. */
static hop_policy *hop_policy_new(const hop_retry_settings *s, char *err, size_t errlen)
{
    cb_retry_options o;
    cb_retry_options_init(&o);
    o.name = "next-hop";
    o.max_attempts = s->attempts;
    o.base_ms = s->base_ms;
    o.cap_ms = s->cap_ms;
    o.budget_max_tokens = s->budget_tokens;
    o.budget_token_ratio = s->budget_ratio;
    o.retryable = hop_retryable;
    o.discard = hop_discard;
    o.clock = (cb_clock){ hop_clock_now, NULL };
    hop_policy *p = calloc(1, sizeof *p);
    int rc = p ? cb_retry_create(&o, &p->retry) : CB_ENOMEM;
    if (rc != CB_OK) {
        snprintf(err, errlen, "cannot create the retry policy: %s", cb_strerror(rc));
        free(p);
        return NULL;
    }
    p->s = *s;
    cb_retry_on(p->retry, log_retry_mask(hop_g.log_level), log_retry_event, NULL);
    return p;
}

/* The settings as words for the log. */
static void hop_words(const hop_retry_settings *s, char *buf, size_t len)
{
    if (s->attempts <= 1)
        snprintf(buf, len, "off (1 attempt)");
    else
        snprintf(buf, len, "%d attempts, back-off %lld..%lld ms, budget %d tokens (+%g a success)",
                 s->attempts, (long long)s->base_ms, (long long)s->cap_ms, s->budget_tokens,
                 s->budget_ratio);
}

int hop_retry_init(const svc_config *c, int log_level)
{
    hop_g.log_level = log_level;
    hop_retry_settings s = { .attempts = c->retry_attempts, .base_ms = c->retry_base_ms,
                             .cap_ms = c->retry_cap_ms, .budget_tokens = c->retry_budget_tokens,
                             .budget_ratio = c->retry_budget_ratio };
    char err[200];
    hop_policy *p = hop_policy_new(&s, err, sizeof err);
    if (!p) {
        log_message(true, "%s", err);
        return -1;
    }
    atomic_store(&hop_g.current, p);
    if (s.attempts > 1) {
        char words[160];
        hop_words(&s, words, sizeof words);
        log_message(false, "retries of the next hop: %s", words);
    }
    return 0;
}

cb_retry *hop_retry_current(hop_retry_settings *s)
{
    hop_policy *p = atomic_load_explicit(&hop_g.current, memory_order_acquire);
    if (!p)
        return NULL;
    if (s)
        *s = p->s;
    return p->retry;
}

/* The fields of POST /retry: the JSON name, its RETRY_* row, where it goes. */
static const setting_field hop_fields[] = {
    { "attempts", "RETRY_ATTEMPTS", offsetof(hop_retry_settings, attempts), 'i' },
    { "base_ms", "RETRY_BASE_MS", offsetof(hop_retry_settings, base_ms), 'l' },
    { "cap_ms", "RETRY_CAP_MS", offsetof(hop_retry_settings, cap_ms), 'l' },
    { "budget_tokens", "RETRY_BUDGET_TOKENS", offsetof(hop_retry_settings, budget_tokens), 'i' },
    { "budget_ratio", "RETRY_BUDGET_RATIO", offsetof(hop_retry_settings, budget_ratio), 'd' },
};

/* Reads body's fields over s, each checked against its row's range.
 * Returns 0, or -1 with err set. */
static int hop_parse(const cJSON *body, hop_retry_settings *s, char *err, size_t errlen)
{
    if (!cJSON_IsObject(body)) {
        snprintf(err, errlen, "the body must be a JSON object such as {\"attempts\": 3, "
                 "\"base_ms\": 100, \"cap_ms\": 1000, \"budget_tokens\": 10, \"budget_ratio\": 0.1}");
        return -1;
    }
    for (const cJSON *x = body->child; x; x = x->next)
        if (setting_field_set(hop_fields, sizeof hop_fields / sizeof hop_fields[0], x->string,
                              cJSON_IsNumber(x), x->valuedouble, s, NULL, err, errlen))
            return -1;
    return 0;
}

int hop_retry_set_json(const char *text, size_t len, char *err, size_t errlen)
{
    cJSON *body = cJSON_ParseWithLength(text, len);
    if (!body) {
        snprintf(err, errlen, "the body is not valid JSON");
        return 400;
    }
    pthread_mutex_lock(&hop_g.change_lock);
    hop_policy *old = atomic_load(&hop_g.current);
    hop_retry_settings s = old ? old->s : (hop_retry_settings){ 0 };
    int status = 0;
    hop_policy *p = NULL;
    if (!old) {
        snprintf(err, errlen, "this service has no retry policy");
        status = 404;
    } else if (hop_parse(body, &s, err, errlen)) {
        status = 400;
    } else if (hop_g.changes >= HOP_RETRY_MAX_CHANGES) {
        snprintf(err, errlen, "the retry settings were changed %d times since the start, the "
                 "most a service keeps; restart it to change them again", hop_g.changes);
        status = 409;
    } else if (!(p = hop_policy_new(&s, err, errlen))) {
        status = 500;
    } else {
        p->older = old;
        hop_g.changes++;
        atomic_store_explicit(&hop_g.current, p, memory_order_release);
        char words[160];
        hop_words(&s, words, sizeof words);
        log_message(false, "admin: retries of the next hop set to %s (POST /retry)", words);
    }
    pthread_mutex_unlock(&hop_g.change_lock);
    cJSON_Delete(body);
    return status;
}

void hop_retry_stats(cb_retry_stats *st)
{
    memset(st, 0, sizeof *st);
    hop_policy *cur = atomic_load_explicit(&hop_g.current, memory_order_acquire);
    for (hop_policy *p = cur; p; p = p->older) {
        cb_retry_stats one;
        if (cb_retry_get_stats(p->retry, &one) != CB_OK)
            continue;
        st->calls += one.calls;
        st->attempts += one.attempts;
        st->retries += one.retries;
        st->retries_exhausted += one.retries_exhausted;
        st->budget_exhausted += one.budget_exhausted;
        st->deadline_exceeded += one.deadline_exceeded;
        st->deadline_before_first += one.deadline_before_first;
        st->refused += one.refused;
        if (p == cur) {
            st->budget_tokens = one.budget_tokens;
            st->budget_max_tokens = one.budget_max_tokens;
        }
    }
}

cJSON *hop_retry_json(void)
{
    hop_retry_settings s;
    if (!hop_retry_current(&s))
        return NULL;
    cb_retry_stats st;
    hop_retry_stats(&st);
    pthread_mutex_lock(&hop_g.change_lock);
    int changes = hop_g.changes;
    pthread_mutex_unlock(&hop_g.change_lock);
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddBoolToObject(o, "on", s.attempts > 1);
    cJSON_AddNumberToObject(o, "attempts", s.attempts);
    cJSON_AddNumberToObject(o, "base_ms", (double)s.base_ms);
    cJSON_AddNumberToObject(o, "cap_ms", (double)s.cap_ms);
    cJSON_AddNumberToObject(o, "budget_tokens", s.budget_tokens);
    cJSON_AddNumberToObject(o, "budget_ratio", s.budget_ratio);
    cJSON_AddNumberToObject(o, "changes", changes);
    cJSON *n = cJSON_AddObjectToObject(o, "stats");
    cJSON_AddNumberToObject(n, "calls", (double)st.calls);
    cJSON_AddNumberToObject(n, "attempts", (double)st.attempts);
    cJSON_AddNumberToObject(n, "retries", (double)st.retries);
    cJSON_AddNumberToObject(n, "retries_exhausted", (double)st.retries_exhausted);
    cJSON_AddNumberToObject(n, "budget_exhausted", (double)st.budget_exhausted);
    cJSON_AddNumberToObject(n, "deadline_exceeded", (double)st.deadline_exceeded);
    cJSON_AddNumberToObject(n, "refused", (double)st.refused);
    cJSON_AddNumberToObject(n, "budget_tokens", st.budget_tokens);
    return o;
}

void hop_retry_free(void)
{
    hop_policy *p = atomic_exchange(&hop_g.current, NULL);
    while (p) {
        hop_policy *older = p->older;
        cb_retry_destroy(p->retry);
        free(p);
        p = older;
    }
}
