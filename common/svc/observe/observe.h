/* observe.h -- what a service shows about itself: /health, /metrics,
 * /hystrix.stream, /breaker (and its admin routes) and /dashboard.
 *
 * The request runtime (svc.c) calls obs_init() once at start, obs_register()
 * once the civetweb context exists, obs_record_request() after every request,
 * and obs_shutdown() before stopping civetweb (it ends every open stream so
 * that worker threads are free to stop).
 */
#ifndef OBSERVE_H
#define OBSERVE_H

#include <civetweb.h>
#include <cJSON.h>
#include "cb.h"
#include "cb_limit.h"
#include "cb_hedge.h"
#include "cb_retry.h"

#define OBS_MAX_BREAKERS 4

typedef struct obs_source {
    const char *service;          /* the service's ID ("order") */
    /* the service's breakers, the next hop's first, then the database's; the
     * list ends at the first NULL. The first is what /breaker shows by default. */
    cb_breaker *breakers[OBS_MAX_BREAKERS];
    /* each breaker's label, what it protects in words ("payment -> shipment",
     * "payment -> database"), shown beside its name; NULL = its name */
    const char *labels[OBS_MAX_BREAKERS];
    /* Returns 0 when the database is known to answer, non-zero otherwise.
     * Called from request threads for /health, which must answer at once:
     * it must never wait on the database (the service keeps the last known
     * state, dbwatch.h). Thread-safe. */
    int (*db_ping)(void *ctx);
    /* Adds what else is known of the database to /health's "database"
     * object (the state's age, the last error); NULL = nothing. Thread-safe. */
    void (*db_detail)(void *ctx, cJSON *database);
    void *db_ctx;
    const char *db_name;          /* shown in /health ("orders-db" or the URL's db) */
    const char *admin_token;      /* ADMIN_TOKEN; NULL or "" = admin routes answer 404 */
    const char *admin_origin;     /* ADMIN_ALLOWED_ORIGIN; NULL = no cross-origin admin call */
    const char *run_status_file;  /* RUN_STATUS_FILE: read on each /health into "supervisor"; NULL = none */
    int hystrix_interval_ms;      /* 0 = 1000 */
    const char *replica;          /* this replica's id (REPLICA_ID or the host name); NULL = none */
    /* The shared breaker's state for /health ("shared"), a new cJSON object,
     * or NULL; NULL function = sharing off. Thread-safe. */
    cJSON *(*shared_report)(void *ctx);
    void *shared_ctx;
    /* The retry policy around the call to the next hop (core/hop_retry.h);
     * NULL functions = none (no next hop). retry_report: its settings and
     * counts as a new cJSON object (GET /breaker, /health); retry_stats: the
     * counts since the start (/metrics); retry_set: POST /retry's body
     * applied, 0 or an HTTP status with err. Thread-safe. */
    cJSON *(*retry_report)(void);
    void (*retry_stats)(cb_retry_stats *st);
    int (*retry_set)(const char *body, size_t len, char *err, size_t errlen);
    /* The bulkhead's counts for /health's "workers" (the worker threads, the
     * reserve, those busy now, the next-hop connections in use), a new cJSON
     * object; NULL = none. Thread-safe and cheap: it reads counters. */
    cJSON *(*workers_report)(void *ctx);
    void *workers_ctx;
    /* Load shedding of POST /create (core/shed.h); NULL functions = none.
     * shed_report: its settings and counts as a new cJSON object (/health,
     * POST /shed's answer); shed_stats: on or off and the limiter's counts
     * (/metrics), 0 or -1; shed_set: POST /shed's body applied, 0 or an
     * HTTP status with err. Thread-safe. */
    cJSON *(*shed_report)(void);
    int (*shed_stats)(bool *enabled, cb_limit_stats *st);
    int (*shed_set)(const char *body, size_t len, char *err, size_t errlen);
    /* The hedging policy of the call to the next hop (core/hop_hedge.h), as
     * the retry's: hedge_report for /health and POST /hedge's answer,
     * hedge_set applies POST /hedge's body. NULL = none. Thread-safe. */
    cJSON *(*hedge_report)(void);
    void (*hedge_stats)(cb_hedge_stats *st);  /* its counts since the start (/metrics) */
    int (*hedge_set)(const char *body, size_t len, char *err, size_t errlen);
} obs_source;

/* Copies src and starts the uptime clock. Returns 0, or -1 when out of memory. */
int obs_init(const obs_source *src);

/* Registers the routes above on ctx. */
void obs_register(struct mg_context *ctx);

/* Counts one finished request for /metrics. route is the matched route
 * ("/create", "/", "other"), status the HTTP status, seconds its latency.
 * Thread-safe and cheap. */
void obs_record_request(const char *route, int status, double seconds);

/* Counts one answer replayed for an idempotency key stored already (the
 * request stored nothing). Thread-safe and cheap. */
void obs_count_replay(void);

/* Counts one POST /create that arrived (before anything is done with it):
 * /health's requests.arrived and /metrics' service_create_arrivals_total,
 * the count the chaos runner divides to measure retry amplification.
 * Thread-safe and cheap. */
void obs_count_arrival(void);

/* Sets /health's "shared" source (see obs_source.shared_report). Call after
 * obs_init() and before obs_register(). */
void obs_set_shared(cJSON *(*fn)(void *ctx), void *ctx);

/* Sets GET /replicas's source (roster.h's roster_json): the service's
 * replicas as the database knows them. Without one, /replicas answers 404.
 * Call after obs_init() and before obs_register(). */
void obs_set_roster(cJSON *(*fn)(void *ctx), void *ctx);

/* Feeds one shared-breaker event (cb_quorum.h) into the recent-events ring
 * as an event of the first breaker: name ("shared-opened", ...), the shared
 * state word ("shared-open", "shared-closed", "local-only") and a short
 * detail ("live=3 openVotes=2 needed=2"). The strings are copied. Thread-safe. */
void obs_shared_event(const char *name, const char *state, const char *detail);

/* The label of breaker cb (obs_source.labels), or its name when it has none
 * or is not one of the service's. */
const char *obs_breaker_label(const cb_breaker *cb);

/* Sets /health's "next": the service this one calls (name, its spec's
 * pass_on) and the base URL it calls it at (CHAIN_SVC's scheme, host and
 * port; its path is left out), so that a page
 * served by the first service can find the rest of the chain. Either NULL
 * or "" leaves "next" out (the last service). The strings are copied (a
 * name over 31 bytes or a URL over 255 is cut). Call before obs_register(). */
void obs_set_next(const char *name, const char *url);
/* Puts a "chaos" event into the recent-events ring (and so on
 * /events.stream): the service's faults changed, said in words ("PUT
 * /chaos: error on 30% of requests for 60 s"). Its "breaker" is "" and the
 * words are its "detail". chaos.c's listener (chaos_set_listener). Thread-safe;
 * does nothing before obs_init(). */
void obs_chaos_event(const char *words);

/* Ends every open stream and refuses new ones. Idempotent. */
void obs_shutdown(void);

/* Frees what obs_init() took. After obs_shutdown() and civetweb stopped. */
void obs_free(void);

#endif
