/* observe_priv.h -- state shared by the observe_*.c files (private to them).
 *
 * One service process observes a few breakers (OBS_MAX_BREAKERS), so the
 * state is a single static object (obs_g). Counters written on request threads are atomics; the event
 * ring and the request table take a short mutex. Streams sleep on a condition
 * variable so that obs_shutdown() wakes them at once.
 */
#ifndef OBSERVE_PRIV_H
#define OBSERVE_PRIV_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <civetweb.h>
#include <cJSON.h>
#include "cb.h"

/* Upper bounds (seconds) of the latency histogram's buckets; +Inf is implied. */
#define OBS_LAT_BUCKETS 12
extern const double obs_latency_bounds_s[OBS_LAT_BUCKETS];

/* A cumulative-friendly histogram: per-bucket counts (not cumulative), sum
 * in microseconds, count. Lock-free. */
typedef struct obs_histogram {
    atomic_uint_fast64_t bucket[OBS_LAT_BUCKETS + 1]; /* last = +Inf */
    atomic_uint_fast64_t sum_us;
    atomic_uint_fast64_t count;
} obs_histogram;

/* One entry of the recent-events ring. */
typedef struct obs_event {
    uint64_t seq;            /* 1, 2, ... in arrival order */
    int breaker;             /* index in obs_g.breakers */
    int64_t wall_ms;         /* wall-clock time (ms since the epoch) */
    cb_event_kind kind;
    cb_state state;
    double latency_ms;       /* -1 when the event has none */
    double error_percentage; /* -1 when the event carries no stats */
    int error;               /* CB_E* or 0 */
    char shared_name[24];    /* a shared-breaker event: its name ("" = a cb_event) */
    char shared_state[16];   /* and the shared state word */
    char detail[192];        /* and its figures; a chaos event's words */
    bool chaos;              /* a change of the service's faults (obs_chaos_event) */
    char trace[33];          /* the W3C trace id of the request whose call it was; "" = none */
} obs_event;

#define OBS_EVENT_RING 128
/* State changes kept per breaker apart from the ring (observe_events.c). */
#define OBS_TRANSITIONS 8

/* Requests counted by (route, status). */
#define OBS_ROUTES 64
#define OBS_ROUTE_LEN 32
typedef struct obs_route {
    char route[OBS_ROUTE_LEN];
    int status;
    atomic_uint_fast64_t count;
    obs_histogram latency;
} obs_route;

/* One observed breaker: its latency histogram and our listener on it. */
typedef struct obs_breaker {
    cb_breaker *cb;
    int index;                  /* in obs_g.breakers */
    char label[96];             /* what it protects in words; its name when none was given */
    int listener_id;            /* cb_on() id, 0 when none */
    obs_histogram latency;
} obs_breaker;

typedef struct obs_global {
    bool initialised;
    char *service;
    char *db_name;
    char *admin_token;          /* NULL when admin routes are off */
    char *admin_origin;         /* the one origin whose pages may call them; NULL = none */
    char *run_status_file;      /* make run's status.json, read by /health; NULL = none */
    obs_breaker breakers[OBS_MAX_BREAKERS];
    int nbreakers;
    int (*db_ping)(void *ctx);
    void (*db_detail)(void *ctx, cJSON *database);
    void *db_ctx;
    int interval_ms;
    char *replica;              /* NULL = none */
    cJSON *(*shared_report)(void *ctx);
    void *shared_ctx;
    cJSON *(*replicas_report)(void *ctx); /* GET /replicas; NULL = the roster is off */
    cJSON *(*retry_report)(void);         /* obs_source's; NULL = no retry policy */
    void (*retry_stats)(cb_retry_stats *st);
    int (*retry_set)(const char *body, size_t len, char *err, size_t errlen);
    cJSON *(*workers_report)(void *ctx);  /* obs_source's; NULL = none */
    void *workers_ctx;
    cJSON *(*shed_report)(void);          /* obs_source's; NULL = no load shedding */
    int (*shed_stats)(bool *enabled, cb_limit_stats *st);
    int (*shed_set)(const char *body, size_t len, char *err, size_t errlen);
    cJSON *(*hedge_report)(void);         /* obs_source's; NULL = no hedging policy */
    void (*hedge_stats)(cb_hedge_stats *st);
    int (*hedge_set)(const char *body, size_t len, char *err, size_t errlen);
    void *roster_ctx;
    int64_t start_ns;           /* CLOCK_MONOTONIC at obs_init() */

    pthread_mutex_t ring_lock;
    obs_event ring[OBS_EVENT_RING];
    uint64_t next_seq;          /* seq the next event gets; starts at 1 */
    /* each breaker's last state changes, oldest first, also under ring_lock */
    obs_event transitions[OBS_MAX_BREAKERS][OBS_TRANSITIONS];
    int ntransitions[OBS_MAX_BREAKERS];

    pthread_mutex_t route_lock;
    obs_route routes[OBS_ROUTES];
    atomic_int nroutes;

    /* streams */
    pthread_mutex_t stream_lock;
    pthread_cond_t stream_wake;  /* broadcast on shutdown and on new events */
    atomic_bool shutting_down;
    atomic_int streams_open;
    atomic_uint_fast64_t streams_served;
    int stream_cap;
} obs_global;

extern obs_global obs_g;

/* Seconds since obs_init(). */
double obs_uptime_s(void);

/* Counts one observation of seconds in h. Thread-safe, lock-free. */
void obs_histogram_observe(obs_histogram *h, double seconds);

/* Adds a Date header written with gmtime_r(): civetweb's own uses gmtime(),
 * whose static buffer races between worker threads (TSan reports it). Call
 * between mg_response_header_start() and mg_response_header_send(). */
void obs_add_date_header(struct mg_connection *conn);

/* Sends a whole response: status, content type, CORS, Content-Length and
 * body. Returns status (for civetweb's handler return). */
int obs_send(struct mg_connection *conn, int status, const char *content_type,
             const char *body, size_t len);
/* As obs_send() with a NUL-terminated JSON body; body NULL sends a 500. */
int obs_send_json(struct mg_connection *conn, int status, const char *body);

/* Copies the oldest max events still in the ring with seq > after into out,
 * oldest first (events pushed out of the ring are skipped). Returns how many
 * were copied. Thread-safe. */
size_t obs_events_since(uint64_t after, obs_event *out, size_t max);
/* Copies every breaker's kept state changes with seq <= upto into out (at
 * most max), oldest first: what a new stream sends before its replay of
 * the ring, so that a page opened late still sees each breaker's last
 * changes. Returns how many were copied. Thread-safe. */
size_t obs_transitions_upto(uint64_t upto, obs_event *out, size_t max);
/* The seq of the newest event, 0 when there was none. Thread-safe. */
uint64_t obs_events_newest_seq(void);

/* Sends {"error": message, "status": status, "service": ...}, open to every
 * origin. Returns status. */
int obs_send_error(struct mg_connection *conn, int status, const char *message);

/* Answers a CORS preflight: 204 with methods and the headers the routes
 * accept, for origin ("*" or one origin). Returns 204. */
int obs_send_preflight(struct mg_connection *conn, const char *methods, const char *origin);

/* A read-only route's method check: answers a preflight or a 405 and
 * returns its status, or 0 for GET and HEAD. */
int obs_answer_unless_get(struct mg_connection *conn);

/* The breaker listener (a cb_listener_fn; ctx is the obs_breaker): every
 * completed call's latency into the breaker's histogram, the events worth
 * showing into the ring (observe_events.c). */
void obs_on_breaker_event(cb_breaker *b, const cb_event *ev, void *ctx);

/* Route handlers, one per file that serves them. Each returns the status. */
/* /health's "requests": {"arrived": POST /create requests that arrived,
 * "replayed": answers replayed for a stored idempotency key}. */
cJSON *obs_requests_json(void);                                     /* observe_metrics.c */
int obs_handle_health(struct mg_connection *conn, void *cbdata);   /* observe_health.c */
int obs_handle_replicas(struct mg_connection *conn, void *cbdata); /* observe_health.c */
int obs_handle_breaker(struct mg_connection *conn, void *cbdata);  /* observe_admin.c */
int obs_handle_chaos(struct mg_connection *conn, void *cbdata);    /* observe_admin.c */
int obs_handle_retry(struct mg_connection *conn, void *cbdata);    /* observe_admin.c */
int obs_handle_shed(struct mg_connection *conn, void *cbdata);     /* observe_admin.c */
int obs_handle_hedge(struct mg_connection *conn, void *cbdata);    /* observe_admin.c */
int obs_handle_metrics(struct mg_connection *conn, void *cbdata);
int obs_handle_hystrix_stream(struct mg_connection *conn, void *cbdata);
int obs_handle_dashboard(struct mg_connection *conn, void *cbdata);

/* The HystrixCommand JSON for obs_g.breakers[i], malloc'd (free()); NULL
 * when there is no such breaker or out of memory. */
char *obs_hystrix_json(int i);

/* The observed breaker named name, or the first when name is NULL or empty;
 * NULL when there is none. */
obs_breaker *obs_breaker_named(const char *name);

/* Adds cb's live options (cb_get_tuning) to parent as "options":
 * {"reset_timeout_ms", "backoff", "backoff_max_ms", "volume_threshold",
 * "error_threshold"}, the names POST /breaker/options takes. Returns the
 * object, or NULL when they cannot be read (parent then lacks it). */
cJSON *obs_tuning_json(cJSON *parent, cb_breaker *cb);

#endif
