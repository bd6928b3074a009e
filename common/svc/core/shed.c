/* shed.c -- load shedding of POST /create (SHED_*, POST /shed).
 *
 * Off by default (SHED=off). When on, request.c asks shed_admit() at
 * civetweb's begin_request for every POST /create, before its body is read
 * and before any database work; a refusal is answered 503 with
 * `Retry-After: 1` there, in microseconds. An admitted request holds a
 * token of the limiter (cb_limit.h, TCP Vegas) until end_request, where
 * shed_end() gives it back with the request's status: its latency (from
 * begin_request to end_request, on the service's monotonic clock) is the
 * sample that grows or shrinks the limit. `/`, `/health`, `/metrics`, the
 * streams and the admin routes never reach the limiter.
 *
 * One limiter lives from shed_init() to shed_free(); POST /shed changes its
 * options in place (cb_limit_set_options()) and flips the switch, so a
 * token taken before a change is given back to the same limiter. The token
 * is thread-local: civetweb serves a request from begin_request to
 * end_request on one worker thread.
 */
#include "shed.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "monotime.h"

static struct {
    cb_limit *limit;
    atomic_bool enabled;
    pthread_mutex_t change_lock;   /* one POST /shed at a time */
} shed_g = { .change_lock = PTHREAD_MUTEX_INITIALIZER };

/* This worker's token, held from shed_admit() to shed_end(). */
static _Thread_local cb_limit_token shed_token;

/* The limiter's clock: mono_ns(), the services' one monotonic clock. */
static int64_t shed_clock_now(void *ctx)
{
    (void)ctx;
    return mono_ns();
}

/* Logs a change of the limit (LOG_LEVEL=events). */
static void shed_log_limit(cb_limit *l, const cb_limit_event *ev, void *ctx)
{
    (void)l;
    (void)ctx;
    log_message(false, "shed: concurrency limit %d -> %d (%s, latency %.1f ms, no-load %.1f ms, "
                "queue %d, in flight %d)", ev->old_limit, ev->limit,
                ev->outcome == CB_LIMIT_DROPPED ? "a failed request" : "a latency sample",
                (double)ev->rtt_ns / 1e6, (double)ev->no_load_ns / 1e6, ev->queue, ev->in_flight);
}

int shed_init(const svc_config *c, int log_level)
{
    cb_limit_options o;
    cb_limit_options_init(&o);
    o.name = "create";
    o.initial_limit = c->shed_initial_limit;
    o.min_limit = c->shed_min_limit;
    o.max_limit = c->shed_max_limit;
    o.clock = (cb_clock){ shed_clock_now, NULL };
    int rc = cb_limit_create(&o, &shed_g.limit);
    if (rc != CB_OK) {
        log_message(true, "cannot create the concurrency limit: %s", cb_strerror(rc));
        return -1;
    }
    if (log_level >= 2)
        cb_limit_on(shed_g.limit, CB_LEV_MASK(CB_LEV_LIMIT), shed_log_limit, NULL);
    atomic_store(&shed_g.enabled, c->shed);
    if (c->shed)
        log_message(false, "load shedding of POST /create: on, limit %d in [%d, %d]",
                    c->shed_initial_limit, c->shed_min_limit, c->shed_max_limit);
    return 0;
}

bool shed_admit(void)
{
    if (!atomic_load_explicit(&shed_g.enabled, memory_order_relaxed) || !shed_g.limit)
        return true;
    return cb_limit_acquire(shed_g.limit, &shed_token) == CB_OK;
}

/* The limiter's reading of a final status (see shed.h). */
static cb_limit_outcome shed_outcome(int status)
{
    if (status >= 200 && status < 300)
        return CB_LIMIT_SUCCESS;
    if (status >= 500)
        return CB_LIMIT_DROPPED;
    return CB_LIMIT_IGNORED;
}

void shed_end(int status)
{
    if (shed_token.held)
        cb_limit_release(shed_g.limit, &shed_token, shed_outcome(status));
}

/* The fields of POST /shed beside "enabled": the JSON name, its SHED_* row, where it goes. */
static const setting_field shed_fields[] = {
    { "initial_limit", "SHED_INITIAL_LIMIT", offsetof(cb_limit_options, initial_limit), 'i' },
    { "min_limit", "SHED_MIN_LIMIT", offsetof(cb_limit_options, min_limit), 'i' },
    { "max_limit", "SHED_MAX_LIMIT", offsetof(cb_limit_options, max_limit), 'i' },
};

/* Reads body's fields over o and *enabled. Returns 0, or -1 with err set. */
static int shed_parse(const cJSON *body, cb_limit_options *o, bool *enabled, char *err,
                      size_t errlen)
{
    if (!cJSON_IsObject(body)) {
        snprintf(err, errlen, "the body must be a JSON object such as {\"enabled\": true, "
                 "\"initial_limit\": 20, \"min_limit\": 1, \"max_limit\": 100}");
        return -1;
    }
    for (const cJSON *x = body->child; x; x = x->next) {
        if (strcmp(x->string, "enabled")) {
            if (setting_field_set(shed_fields, sizeof shed_fields / sizeof shed_fields[0], x->string,
                                  cJSON_IsNumber(x), x->valuedouble, o, "enabled", err, errlen))
                return -1;
        } else if (cJSON_IsBool(x)) {
            *enabled = cJSON_IsTrue(x);
        } else {
            snprintf(err, errlen, "enabled must be true or false");
            return -1;
        }
    }
    if (o->min_limit > o->max_limit) {
        snprintf(err, errlen, "min_limit (%d) must not be above max_limit (%d)", o->min_limit,
                 o->max_limit);
        return -1;
    }
    return 0;
}

int shed_set_json(const char *text, size_t len, char *err, size_t errlen)
{
    cJSON *body = cJSON_ParseWithLength(text, len);
    if (!body) {
        snprintf(err, errlen, "the body is not valid JSON");
        return 400;
    }
    pthread_mutex_lock(&shed_g.change_lock);
    cb_limit_options o;
    bool enabled = atomic_load(&shed_g.enabled);
    int status = 0;
    if (!shed_g.limit || cb_limit_get_options(shed_g.limit, &o) != CB_OK) {
        snprintf(err, errlen, "this service has no concurrency limit");
        status = 500;
    } else if (shed_parse(body, &o, &enabled, err, errlen)) {
        status = 400;
    } else if (cb_limit_set_options(shed_g.limit, &o) != CB_OK) {
        snprintf(err, errlen, "the limits were refused by the limiter");
        status = 400;
    } else {
        atomic_store(&shed_g.enabled, enabled);
        log_message(false, "admin: load shedding of POST /create %s, limit %d in [%d, %d] "
                    "(POST /shed)", enabled ? "on" : "off", o.initial_limit, o.min_limit,
                    o.max_limit);
    }
    pthread_mutex_unlock(&shed_g.change_lock);
    cJSON_Delete(body);
    return status;
}

int shed_stats(bool *enabled, cb_limit_stats *st)
{
    if (!shed_g.limit)
        return -1;
    *enabled = atomic_load(&shed_g.enabled);
    return cb_limit_get_stats(shed_g.limit, st) == CB_OK ? 0 : -1;
}

cJSON *shed_json(void)
{
    bool enabled;
    cb_limit_stats st;
    cb_limit_options o;
    if (shed_stats(&enabled, &st) || cb_limit_get_options(shed_g.limit, &o) != CB_OK)
        return NULL;
    cJSON *j = cJSON_CreateObject();
    if (!j)
        return NULL;
    cJSON_AddBoolToObject(j, "enabled", enabled);
    cJSON_AddNumberToObject(j, "limit", st.limit);
    cJSON_AddNumberToObject(j, "in_flight", st.in_flight);
    cJSON_AddNumberToObject(j, "admitted", (double)st.admitted);
    cJSON_AddNumberToObject(j, "shed", (double)st.shed);
    cJSON_AddNumberToObject(j, "dropped", (double)st.dropped);
    cJSON_AddNumberToObject(j, "initial_limit", o.initial_limit);
    cJSON_AddNumberToObject(j, "min_limit", o.min_limit);
    cJSON_AddNumberToObject(j, "max_limit", o.max_limit);
    cJSON_AddNumberToObject(j, "no_load_ms", (double)st.no_load_ns / 1e6);
    return j;
}

void shed_free(void)
{
    cb_limit_destroy(shed_g.limit);
    shed_g.limit = NULL;
}
