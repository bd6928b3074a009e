/* observe_metrics.c -- GET /metrics: the Prometheus text exposition format 0.0.4.
 *
 * Breaker and retry series carry {service, breaker}; request series carry {service,
 * route, status}. Counters come from cb_stats.total (monotonic since the
 * breaker was created), the latency histograms from observe.c's listener and
 * obs_record_request(). The page is built in a growing buffer (open_memstream).
 */
#include "observe.h"
#include "authlimit.h"
#include "guard.h"
#include "wire.h"
#include "observe_priv.h"
#include "otel.h"
#include "chaos.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Answers replayed for a stored idempotency key (obs_count_replay()), and
 * POST /create requests that arrived (obs_count_arrival()). */
static atomic_long obs_replays, obs_arrivals;

/* Copies s into buf (of len bytes) as a label value: backslash, double quote
 * and newline escaped; truncated when it does not fit. Returns buf. */
static const char *label_value(char *buf, size_t len, const char *s)
{
    size_t o = 0;
    for (; *s && o + 3 < len; s++) {
        if (*s == '\\' || *s == '"') {
            buf[o++] = '\\';
            buf[o++] = *s;
        } else if (*s == '\n') {
            buf[o++] = '\\';
            buf[o++] = 'n';
        } else {
            buf[o++] = *s;
        }
    }
    buf[o] = '\0';
    return buf;
}

static void put_header(FILE *f, const char *name, const char *type, const char *help)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* {service="...",breaker="..."} without the closing brace, so callers may add labels. */
static void put_breaker_labels(FILE *f, cb_breaker *cb)
{
    char service[128], breaker[256];
    fprintf(f, "{service=\"%s\",breaker=\"%s\"",
            label_value(service, sizeof service, obs_g.service),
            label_value(breaker, sizeof breaker, cb_name(cb)));
}

/* A breaker counter family: its name, help, and where it sits in cb_counts. */
typedef struct breaker_counter {
    const char *name;
    const char *help;
    size_t offset;
} breaker_counter;

static const breaker_counter breaker_counters[] = {
    { "circuit_breaker_fires_total", "Calls made through the breaker.",
      offsetof(cb_counts, fires) },
    { "circuit_breaker_successes_total", "Calls whose action succeeded.",
      offsetof(cb_counts, successes) },
    { "circuit_breaker_failures_total", "Calls whose action failed (timeouts included).",
      offsetof(cb_counts, failures) },
    { "circuit_breaker_timeouts_total", "Calls that did not finish before their deadline.",
      offsetof(cb_counts, timeouts) },
    { "circuit_breaker_rejects_total", "Calls rejected because the circuit was open.",
      offsetof(cb_counts, rejects) },
    { "circuit_breaker_fallbacks_total", "Calls answered by the fallback.",
      offsetof(cb_counts, fallbacks) },
    { "circuit_breaker_fallback_failures_total", "Fallbacks that failed too.",
      offsetof(cb_counts, fallback_failures) },
    { "circuit_breaker_semaphore_rejections_total", "Calls rejected because the capacity was reached.",
      offsetof(cb_counts, semaphore_rejections) },
    { "circuit_breaker_slow_calls_total", "Calls slower than the slow-call threshold.",
      offsetof(cb_counts, slow_calls) },
};

/* One counter family: its header, then one series per breaker (st[i] holds
 * breaker i's stats). */
static void put_breaker_counter(FILE *f, const cb_stats *st, const breaker_counter *c)
{
    put_header(f, c->name, "counter", c->help);
    for (int i = 0; i < obs_g.nbreakers; i++) {
        uint64_t value;
        memcpy(&value, (const char *)&st[i].total + c->offset, sizeof value);
        fputs(c->name, f);
        put_breaker_labels(f, obs_g.breakers[i].cb);
        fprintf(f, "} %llu\n", (unsigned long long)value);
    }
}

/* Writes the _bucket/_sum/_count series of h; labels is the inside of the
 * braces (may be empty). */
static void put_histogram(FILE *f, const char *name, const char *labels, obs_histogram *h)
{
    uint64_t cumulative = 0;
    const char *sep = *labels ? "," : "";
    for (int i = 0; i <= OBS_LAT_BUCKETS; i++) {
        cumulative += atomic_load_explicit(&h->bucket[i], memory_order_relaxed);
        if (i < OBS_LAT_BUCKETS)
            fprintf(f, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep,
                    obs_latency_bounds_s[i], (unsigned long long)cumulative);
        else
            fprintf(f, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep,
                    (unsigned long long)cumulative);
    }
    /* The count is the +Inf bucket so that the two always agree even while
     * other threads are observing. */
    double sum = (double)atomic_load_explicit(&h->sum_us, memory_order_relaxed) / 1e6;
    fprintf(f, "%s_sum{%s} %.6f\n", name, labels, sum);
    fprintf(f, "%s_count{%s} %llu\n", name, labels, (unsigned long long)cumulative);
}

static void put_breaker_metrics(FILE *f)
{
    cb_stats st[OBS_MAX_BREAKERS];
    for (int i = 0; i < obs_g.nbreakers; i++)
        if (cb_get_stats(obs_g.breakers[i].cb, &st[i]) != CB_OK)
            memset(&st[i], 0, sizeof st[i]);
    if (obs_g.nbreakers == 0)
        return;
    for (size_t c = 0; c < sizeof breaker_counters / sizeof breaker_counters[0]; c++)
        put_breaker_counter(f, st, &breaker_counters[c]);

    put_header(f, "circuit_breaker_state", "gauge",
               "1 for the breaker's current state, 0 for the others.");
    for (int i = 0; i < obs_g.nbreakers; i++)
        for (int s = CB_CLOSED; s <= CB_SHUTDOWN; s++) {
            fputs("circuit_breaker_state", f);
            put_breaker_labels(f, obs_g.breakers[i].cb);
            fprintf(f, ",state=\"%s\"} %d\n", cb_state_name((cb_state)s), st[i].state == (cb_state)s);
        }
    put_header(f, "circuit_breaker_error_ratio", "gauge",
               "Failed calls over calls in the rolling window (0..1).");
    for (int i = 0; i < obs_g.nbreakers; i++) {
        fputs("circuit_breaker_error_ratio", f);
        put_breaker_labels(f, obs_g.breakers[i].cb);
        fprintf(f, "} %g\n", st[i].error_percentage / 100.0);
    }
    put_header(f, "circuit_breaker_in_flight_calls", "gauge", "Calls running now.");
    for (int i = 0; i < obs_g.nbreakers; i++) {
        fputs("circuit_breaker_in_flight_calls", f);
        put_breaker_labels(f, obs_g.breakers[i].cb);
        fprintf(f, "} %d\n", st[i].in_flight);
    }
    put_header(f, "circuit_breaker_call_duration_seconds", "histogram",
               "Latency of calls whose action ran (success, failure or timeout).");
    for (int i = 0; i < obs_g.nbreakers; i++) {
        char labels[512], service[128], breaker[256];
        snprintf(labels, sizeof labels, "service=\"%s\",breaker=\"%s\"",
                 label_value(service, sizeof service, obs_g.service),
                 label_value(breaker, sizeof breaker, cb_name(obs_g.breakers[i].cb)));
        put_histogram(f, "circuit_breaker_call_duration_seconds", labels,
                      &obs_g.breakers[i].latency);
    }
}

/* Writes the route label set for slot r into buf. */
static void route_labels(char *buf, size_t len, const obs_route *r)
{
    char service[128], route[2 * OBS_ROUTE_LEN];
    snprintf(buf, len, "service=\"%s\",route=\"%s\",status=\"%d\"",
             label_value(service, sizeof service, obs_g.service),
             label_value(route, sizeof route, r->route), r->status);
}

static void put_request_metrics(FILE *f)
{
    int n = atomic_load_explicit(&obs_g.nroutes, memory_order_acquire);
    char labels[384];
    put_header(f, "http_requests_total", "counter", "Finished HTTP requests by route and status.");
    for (int i = 0; i < n; i++) {
        route_labels(labels, sizeof labels, &obs_g.routes[i]);
        fprintf(f, "http_requests_total{%s} %llu\n", labels,
                (unsigned long long)atomic_load(&obs_g.routes[i].count));
    }
    put_header(f, "http_request_duration_seconds", "histogram",
               "Latency of finished HTTP requests by route and status.");
    for (int i = 0; i < n; i++) {
        route_labels(labels, sizeof labels, &obs_g.routes[i]);
        put_histogram(f, "http_request_duration_seconds", labels, &obs_g.routes[i].latency);
    }
}

/* A retry counter family: its name, help, and where it sits in cb_retry_stats. */
static const breaker_counter retry_counters[] = {
    { "retry_calls_total", "Calls to the next hop made through the retry policy.",
      offsetof(cb_retry_stats, calls) },
    { "retry_attempts_total", "Attempts (breaker calls) those calls made.",
      offsetof(cb_retry_stats, attempts) },
    { "retry_retries_total", "Attempts after a call's first.",
      offsetof(cb_retry_stats, retries) },
    { "retry_exhausted_total", "Calls that failed after every attempt (retry-exhausted).",
      offsetof(cb_retry_stats, retries_exhausted) },
    { "retry_budget_exhausted_total", "Calls whose retry the budget refused (budget-exhausted).",
      offsetof(cb_retry_stats, budget_exhausted) },
    { "retry_deadline_exceeded_total", "Calls whose retry the deadline cut off.",
      offsetof(cb_retry_stats, deadline_exceeded) },
    { "retry_refused_total", "Calls ended by the breaker's refusal (never retried).",
      offsetof(cb_retry_stats, refused) },
};

/* The retry policy of the call to the next hop: its counters since the
 * start (every policy's since POST /retry changes swap them) and the
 * budget's tokens now, labelled with the next hop's breaker. */
static void put_retry_metrics(FILE *f)
{
    if (!obs_g.retry_stats || !obs_g.nbreakers)
        return;
    cb_retry_stats st;
    obs_g.retry_stats(&st);
    for (size_t i = 0; i < sizeof retry_counters / sizeof retry_counters[0]; i++) {
        const breaker_counter *c = &retry_counters[i];
        put_header(f, c->name, "counter", c->help);
        fprintf(f, "%s", c->name);
        put_breaker_labels(f, obs_g.breakers[0].cb);
        fprintf(f, "} %llu\n",
                (unsigned long long)*(const uint64_t *)((const char *)&st + c->offset));
    }
    put_header(f, "retry_budget_tokens", "gauge",
               "Tokens in the retry budget now; retries stop at half its size or below.");
    fprintf(f, "retry_budget_tokens");
    put_breaker_labels(f, obs_g.breakers[0].cb);
    fprintf(f, "} %.3f\n", st.budget_tokens);
}

/* A hedging counter family: its name, help, and where it sits in cb_hedge_stats. */
static const breaker_counter hedge_counters[] = {
    { "hedge_calls_total", "Calls to the next hop made through the hedging policy.",
      offsetof(cb_hedge_stats, calls) },
    { "hedge_copies_total", "Copies (breaker calls) those calls sent, the first included.",
      offsetof(cb_hedge_stats, copies) },
    { "hedge_hedges_total", "Copies sent after a call's first (the extra calls).",
      offsetof(cb_hedge_stats, hedges) },
    { "hedge_wins_total", "Calls won by a copy other than the first.",
      offsetof(cb_hedge_stats, hedge_wins) },
    { "hedge_cancelled_total", "Copies cancelled because another copy won.",
      offsetof(cb_hedge_stats, cancelled) },
    { "hedge_budget_refused_total", "Hedges due that the budget refused.",
      offsetof(cb_hedge_stats, budget_refused) },
};

/* The hedging policy of the call to the next hop: its counters since the
 * start, labelled with the next hop's breaker. */
static void put_hedge_metrics(FILE *f)
{
    if (!obs_g.hedge_stats || !obs_g.nbreakers)
        return;
    cb_hedge_stats st;
    obs_g.hedge_stats(&st);
    for (size_t i = 0; i < sizeof hedge_counters / sizeof hedge_counters[0]; i++) {
        const breaker_counter *c = &hedge_counters[i];
        put_header(f, c->name, "counter", c->help);
        fprintf(f, "%s", c->name);
        put_breaker_labels(f, obs_g.breakers[0].cb);
        fprintf(f, "} %llu\n",
                (unsigned long long)*(const uint64_t *)((const char *)&st + c->offset));
    }
}

/* Load shedding of POST /create: requests shed, the concurrency limit and
 * the requests holding a place under it (present whether shedding is on or
 * off, so a graph does not lose its series when it is switched). */
static void put_shed_metrics(FILE *f, const char *service)
{
    bool enabled;
    cb_limit_stats st;
    if (!obs_g.shed_stats || obs_g.shed_stats(&enabled, &st))
        return;
    put_header(f, "service_shed_total", "counter",
               "POST /create requests shed (503 with Retry-After) over the concurrency limit.");
    fprintf(f, "service_shed_total{service=\"%s\"} %llu\n", service, (unsigned long long)st.shed);
    put_header(f, "service_concurrency_limit", "gauge",
               "The adaptive concurrency limit of POST /create; 0 while shedding is off.");
    fprintf(f, "service_concurrency_limit{service=\"%s\"} %d\n", service, enabled ? st.limit : 0);
    put_header(f, "service_in_flight", "gauge",
               "POST /create requests admitted under the concurrency limit and not yet answered.");
    fprintf(f, "service_in_flight{service=\"%s\"} %d\n", service, st.in_flight);
}

/* The span exporter's counters (present with tracing off too, at 0). */
static void put_tracing_metrics(FILE *f, const char *service)
{
    otel_stats st;
    otel_get_stats(&st);
    static const struct { const char *name, *type, *help; size_t off; } rows[] = {
        { "otel_spans_started_total", "counter", "Spans recorded by sampled requests.",
          offsetof(otel_stats, started) },
        { "otel_spans_exported_total", "counter", "Spans the collector accepted.",
          offsetof(otel_stats, exported) },
        { "otel_spans_dropped_total", "counter",
          "Spans lost: the queue was full (the collector slow or gone) or their batch failed.",
          offsetof(otel_stats, dropped) },
        { "otel_exports_failed_total", "counter", "Batches of spans the collector did not take.",
          offsetof(otel_stats, failed_exports) },
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        put_header(f, rows[i].name, rows[i].type, rows[i].help);
        fprintf(f, "%s{service=\"%s\"} %llu\n", rows[i].name, service,
                (unsigned long long)*(const uint64_t *)((const char *)&st + rows[i].off));
    }
    put_header(f, "otel_spans_queued", "gauge", "Ended spans waiting to be sent.");
    fprintf(f, "otel_spans_queued{service=\"%s\"} %d\n", service, st.queued);
}

static void put_service_metrics(FILE *f)
{
    char buf[128];
    const char *service = label_value(buf, sizeof buf, obs_g.service);
    put_header(f, "service_uptime_seconds", "gauge", "Seconds since the service started.");
    fprintf(f, "service_uptime_seconds{service=\"%s\"} %.3f\n", service, obs_uptime_s());
    put_shed_metrics(f, service);
    put_tracing_metrics(f, service);
    put_header(f, "service_event_streams", "gauge", "Open /hystrix.stream and /events.stream clients.");
    fprintf(f, "service_event_streams{service=\"%s\"} %d\n", service,
            atomic_load(&obs_g.streams_open));
    put_header(f, "service_event_streams_served_total", "counter",
               "Event-stream clients served since start.");
    fprintf(f, "service_event_streams_served_total{service=\"%s\"} %llu\n", service,
            (unsigned long long)atomic_load(&obs_g.streams_served));
    if (obs_g.replica) {
        char rbuf[128];
        put_header(f, "service_replica_info", "gauge", "This replica's id (REPLICA_ID or the host name).");
        fprintf(f, "service_replica_info{service=\"%s\",replica=\"%s\"} 1\n", service,
                label_value(rbuf, sizeof rbuf, obs_g.replica));
    }
    cJSON *shared = obs_g.shared_report ? obs_g.shared_report(obs_g.shared_ctx) : NULL;
    if (shared) {
        char rbuf[128], cbuf[256];
        const char *circuit = cJSON_GetStringValue(cJSON_GetObjectItem(shared, "circuit"));
        const char *mode = cJSON_GetStringValue(cJSON_GetObjectItem(shared, "mode"));
        const char *labels_fmt = "{service=\"%s\",replica=\"%s\",circuit=\"%s\"}";
        char labels[512];
        snprintf(labels, sizeof labels, labels_fmt, service,
                 label_value(rbuf, sizeof rbuf, obs_g.replica ? obs_g.replica : ""),
                 label_value(cbuf, sizeof cbuf, circuit ? circuit : ""));
        put_header(f, "circuit_breaker_shared_open", "gauge",
                   "1 while the circuit shared by the replicas is open.");
        fprintf(f, "circuit_breaker_shared_open%s %d\n", labels,
                cJSON_IsTrue(cJSON_GetObjectItem(shared, "open")));
        put_header(f, "circuit_breaker_shared_local_only", "gauge",
                   "1 while this replica runs on its local breaker alone (joining, or database unreachable).");
        fprintf(f, "circuit_breaker_shared_local_only%s %d\n", labels,
                !mode || strcmp(mode, "shared") != 0);
        put_header(f, "circuit_breaker_shared_live_replicas", "gauge",
                   "Live replicas at this replica's last sync.");
        fprintf(f, "circuit_breaker_shared_live_replicas%s %d\n", labels,
                (int)cJSON_GetNumberValue(cJSON_GetObjectItem(shared, "live")));
        cJSON_Delete(shared);
    }
    put_header(f, "admin_auth_failures_total", "counter",
               "Admin calls with a missing or wrong token that reached the token check (401).");
    fprintf(f, "admin_auth_failures_total{service=\"%s\"} %llu\n", service,
            (unsigned long long)authlimit_failures());
    put_header(f, "admin_auth_limited_total", "counter",
               "Admin calls refused with 429 before the token check: too many failures from their address.");
    fprintf(f, "admin_auth_limited_total{service=\"%s\"} %llu\n", service,
            (unsigned long long)authlimit_refusals());
    put_header(f, "service_connections_open", "gauge", "Connections accepted and not yet closed.");
    fprintf(f, "service_connections_open{service=\"%s\"} %d\n", service, guard_open());
    put_header(f, "service_connections_refused_total", "counter",
               "Connections answered 503 at accept time (MAX_CONNECTIONS).");
    fprintf(f, "service_connections_refused_total{service=\"%s\"} %ld\n", service, guard_refused());
    put_header(f, "service_slow_clients_cut_total", "counter",
               "Connections cut under pressure for keeping a worker waiting over SLOW_CLIENT_MS for a head or body.");
    fprintf(f, "service_slow_clients_cut_total{service=\"%s\"} %ld\n", service, wire_cuts());
    put_header(f, "service_idempotent_replays_total", "counter",
               "Requests answered with the stored answer of their Idempotency-Key (nothing stored).");
    fprintf(f, "service_idempotent_replays_total{service=\"%s\"} %ld\n", service,
            atomic_load_explicit(&obs_replays, memory_order_relaxed));
    put_header(f, "service_create_arrivals_total", "counter",
               "POST /create requests that arrived, counted before anything else is done with them.");
    fprintf(f, "service_create_arrivals_total{service=\"%s\"} %ld\n", service,
            atomic_load_explicit(&obs_arrivals, memory_order_relaxed));
    chaos_put_metrics(f, service);
}

void obs_count_replay(void)
{
    atomic_fetch_add_explicit(&obs_replays, 1, memory_order_relaxed);
}

void obs_count_arrival(void)
{
    atomic_fetch_add_explicit(&obs_arrivals, 1, memory_order_relaxed);
}

cJSON *obs_requests_json(void)
{
    cJSON *o = cJSON_CreateObject();
    if (o) {
        cJSON_AddNumberToObject(o, "arrived",
                                (double)atomic_load_explicit(&obs_arrivals, memory_order_relaxed));
        cJSON_AddNumberToObject(o, "replayed",
                                (double)atomic_load_explicit(&obs_replays, memory_order_relaxed));
    }
    return o;
}

int obs_handle_metrics(struct mg_connection *conn, void *cbdata)
{
    (void)cbdata;
    char *page = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&page, &len);
    if (!f)
        return obs_send_json(conn, 500, NULL);
    put_breaker_metrics(f);
    put_retry_metrics(f);
    put_hedge_metrics(f);
    put_request_metrics(f);
    put_service_metrics(f);
    fclose(f);
    int status = obs_send(conn, 200, "text/plain; version=0.0.4; charset=utf-8", page, len);
    free(page);
    return status;
}
