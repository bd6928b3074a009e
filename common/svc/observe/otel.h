/* otel.h -- OpenTelemetry spans, sent to a collector (Jaeger) as OTLP over HTTP with JSON.
 *
 * A sampled request records spans: a server span per request, a span around
 * each breaker call with the breaker's events on it, a client span per
 * attempt of the call to the next hop (its traceparent carries the span's id,
 * so the next hop's server span is its child) and a span per database write.
 * Attribute names are OpenTelemetry's semantic conventions for HTTP and
 * database spans (both the current and the older database names, so that
 * any viewer finds them), plus the breaker's: breaker.name, breaker.label,
 * breaker.state.before, breaker.state.after, breaker.outcome (success,
 * failure, timeout, reject, fallback).
 *
 * Ended spans go to a bounded queue; a background thread sends them in
 * batches (every OTEL_BSP_SCHEDULE_DELAY ms, or at once when a batch is
 * full). A request never waits for the collector: when the queue is full
 * the span is dropped and counted (otel_stats(), /metrics). otel_stop()
 * sends what is queued before the service exits.
 *
 * Every function takes and returns NULL spans quietly: a request that is not
 * sampled, or a service with no collector, records nothing and pays one
 * branch per call. Off unless OTEL_EXPORTER_OTLP_ENDPOINT (or
 * OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set.
 */
#ifndef SVC_OTEL_H
#define SVC_OTEL_H

#include <stdbool.h>
#include <stdint.h>
#include "cb.h"

/* OTEL_TRACES_SAMPLER's values and OpenTelemetry's names for them, once:
 * X(value, name) per sampler, for the enum, config.c's words and /health. */
#define OTEL_SAMPLERS(X)                                  \
    X(OTEL_ALWAYS_ON, "always_on")                        \
    X(OTEL_ALWAYS_OFF, "always_off")                      \
    X(OTEL_RATIO, "traceidratio")                         \
    X(OTEL_PARENT_ALWAYS_ON, "parentbased_always_on")     \
    X(OTEL_PARENT_ALWAYS_OFF, "parentbased_always_off")   \
    X(OTEL_PARENT_RATIO, "parentbased_traceidratio")

#define OTEL_SAMPLER_ENUM(value, name) value,
enum { OTEL_SAMPLERS(OTEL_SAMPLER_ENUM) };
#undef OTEL_SAMPLER_ENUM

typedef enum otel_kind { OTEL_INTERNAL = 1, OTEL_SERVER = 2, OTEL_CLIENT = 3 } otel_kind;

typedef struct otel_config {
    const char *url;          /* where batches are POSTed (.../v1/traces); NULL = off */
    const char *service;      /* service.name */
    const char *instance;     /* service.instance.id; NULL = none */
    int sampler;              /* OTEL_* above */
    double ratio;             /* the ratio samplers' argument, 0..1 */
    int queue_size;           /* spans waiting at most */
    int batch_size;           /* spans per POST at most */
    int delay_ms;             /* a batch leaves at least this often */
    int timeout_ms;           /* one POST's limit */
    const char *query_url;    /* where a viewer reads the traces (Jaeger's query API); NULL = none */
} otel_config;

typedef struct otel_stats {
    bool on;
    uint64_t started;         /* spans recorded */
    uint64_t exported;        /* spans the collector accepted */
    uint64_t dropped;         /* spans lost: queue full, or their batch refused */
    uint64_t failed_exports;  /* POSTs that failed */
    int queued;               /* spans waiting now */
} otel_stats;

typedef struct otel_span otel_span;

/* Starts the exporter thread (nothing when c->url is NULL). Call once,
 * before requests. Returns 0 or -1 (out of memory, no thread). */
int otel_start(const otel_config *c);
/* Sends what is queued (within a few times timeout_ms) and stops the thread. */
void otel_stop(void);
bool otel_on(void);
void otel_get_stats(otel_stats *s);
/* {"on", "endpoint", "service", "sampler", "ratio", "query_url", "started",
 * "exported", "dropped", "failed_exports", "queued"} for /health. */
struct cJSON *otel_report(void);

/* The calling thread's request: starts its server span from the request
 * context (trace.h), deciding with the sampler. NULL when not sampled, or
 * off. The context's sampled flag is set from the decision. */
otel_span *otel_request_begin(const char *name);
/* The calling thread's server span, or NULL. */
otel_span *otel_request_span(void);
/* Ends the server span with the answer's status. */
void otel_request_end(int status);

/* A child span of parent (NULL when parent is NULL). */
otel_span *otel_child(otel_span *parent, const char *name, otel_kind kind);
void otel_end(otel_span *s);
/* Ends it as an error, with a short message. */
void otel_fail(otel_span *s, const char *message);

void otel_str(otel_span *s, const char *key, const char *value);
void otel_int(otel_span *s, const char *key, int64_t value);
void otel_bool(otel_span *s, const char *key, bool value);

/* The span's id (16 hex digits), "" for NULL. */
const char *otel_span_id(const otel_span *s);

/* A span around one call of breaker b (label: what it protects), child of
 * the calling thread's request span; breaker events on this thread go on it
 * until otel_breaker_end(). */
otel_span *otel_breaker_begin(cb_breaker *b, const char *label);
/* Its outcome from cb_fire()'s rc and res, and the state after. */
void otel_breaker_end(otel_span *s, cb_breaker *b, int rc, const cb_result *res);
/* Breaker events on the calling thread go on s (another thread running a
 * copy of the call); NULL stops. */
void otel_breaker_listen(otel_span *s);
/* The breaker listener (cb_on(), CB_EV_ALL): the event on the calling
 * thread's breaker span. */
void otel_breaker_event(cb_breaker *b, const cb_event *ev, void *ctx);

#endif
