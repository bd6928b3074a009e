/* config.h -- a service's configuration, read once from the environment. */
#ifndef SVC_CONFIG_H
#define SVC_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "svc.h"
#include "validate.h"

/* Every setting, after defaults. Strings point into the environment
 * (getenv), which the services never modify. */
typedef struct svc_config {
    const char *id;              /* ID; the spec's name */
    int port;                    /* PORT; the spec's default */
    const char *chain_svc;       /* CHAIN_SVC; NULL = last service of the chain */
    int jumps;                   /* JUMPS; 6 */
    bool inject_err;             /* INJECT_ERR=1; off */
    double err_rate;             /* ERR_RATE; 0.4 */
    int delay_ms;                /* DELAY_MS; 0: every /create waits this long after storing (a slow service) */
    const char *mongo_url;       /* MONGO_URL; mongodb://127.0.0.1:27017 */
    const char *mongo_db;        /* MONGO_DB; the URL's database, else "resilience" (NULL here) */
    int mongo_timeout_ms;        /* MONGO_TIMEOUT_MS; 1000: how long a request waits for the DB */
    int db_max_connections;      /* DB_MAX_CONNECTIONS; 16: database operations in flight at once */
    int64_t outcome_resolve_after_ms; /* OUTCOME_RESOLVE_AFTER_MS; 30000: a "pending" outcome older
                                         than this is marked "unknown"; 0 = never */
    bool log_json;               /* LOG_FORMAT=json; human */
    int log_level;               /* LOG_LEVEL; 0 transitions (default), 1 requests, 2 events */
    bool deadlines;              /* DEADLINE_PROPAGATION; on: honour and pass on X-Deadline-Ms */
    int deadline_margin_ms;      /* DEADLINE_MARGIN_MS; 25: kept back to answer in */
    bool log_snapshots;          /* LOG_SNAPSHOTS=1; off (one breaker snapshot per bucket) */
    int chain_connections;       /* CHAIN_CONNECTIONS; THREADS / 2, at most 64: connections to the next hop */
    /* limits against slow and greedy clients (docs/security.md) */
    int threads;                 /* THREADS; 1024 worker threads: connections served at once */
    int connection_queue;        /* CONNECTION_QUEUE; 64 accepted connections waiting for a worker */
    int max_connections;         /* MAX_CONNECTIONS; THREADS + CONNECTION_QUEUE: more get 503 at accept */
    int reserved_workers;        /* RESERVED_WORKERS; 16, at most THREADS / 4 by default: workers only
                                    GET /health and /metrics may take (others get 503 when the rest are busy) */
    int listen_backlog;          /* LISTEN_BACKLOG; 1024 connections the kernel holds before accept */
    int header_timeout_ms;       /* HEADER_TIMEOUT_MS; 5000: a request's head must arrive within this
                                    (also the longest wait for one read of a body) */
    int body_timeout_ms;         /* BODY_TIMEOUT_MS; 10000: a request's body must arrive within this */
    int keep_alive_timeout_ms;   /* KEEP_ALIVE_TIMEOUT_MS; 5000: an idle kept-alive connection is closed */
    int max_header_bytes;        /* MAX_HEADER_BYTES; 16384: request line and headers */
    int max_body_bytes;          /* MAX_BODY_BYTES; 1048576 */
    validate_limits body_limits; /* a body's shape, checked before the database (413):
                                    .body_keys MAX_BODY_KEYS; 1000 keys in all, 1..1000000
                                    .object_keys MAX_OBJECT_KEYS; 200 keys in one object, 1..1000000
                                    .array_elements MAX_ARRAY_ELEMENTS; 1000 in one array, 1..1000000
                                    .string_bytes MAX_STRING_BYTES; 16384 bytes of one string
                                    or key, 1..268435456 */
    int thread_stack_kb;         /* THREAD_STACK_KB; 512: stack of every thread the service starts */
    const char *admin_token;     /* ADMIN_TOKEN; NULL = admin routes off */
    const char *admin_origin;    /* ADMIN_ALLOWED_ORIGIN; NULL = no other origin's page may call them */
    const char *run_status_file; /* RUN_STATUS_FILE; NULL = none: make run's supervisor status (JSON),
                                    shown as /health's "supervisor" */
    double admin_auth_rate;      /* ADMIN_AUTH_RATE; 2: admin token tries a second per client address */
    int admin_auth_burst;        /* ADMIN_AUTH_BURST; 5: tries an address may make at once (then 429) */

    /* the breaker, by default the original demo's options */
    int64_t cb_timeout_ms;       /* CB_TIMEOUT_MS; 300 */
    int64_t cb_reset_timeout_ms; /* CB_RESET_TIMEOUT_MS; 10000 */
    int cb_error_threshold;      /* CB_ERROR_THRESHOLD; 50 (percent) */
    int cb_volume_threshold;     /* CB_VOLUME_THRESHOLD; 0 */
    int64_t cb_window_ms;        /* CB_WINDOW_MS; 10000 */
    int cb_buckets;              /* CB_BUCKETS; 10 */
    int cb_half_open_calls;      /* CB_HALF_OPEN_CALLS; 1 */
    double cb_backoff;           /* CB_BACKOFF; 1.0 = no back-off */
    int64_t cb_backoff_max_ms;   /* CB_BACKOFF_MAX_MS; 0 = no cap */

    /* replicas and the shared breaker (docs/scale-out.md) */
    char replica[64];            /* REPLICA_ID; the host name: this replica's id (< 64 bytes) */
    bool replica_given;          /* REPLICA_ID was set */
    bool cb_shared;              /* CB_SHARED=on|off; off: replicas of the next-hop breaker decide together */
    const char *cb_shared_circuit; /* CB_SHARED_CIRCUIT; the breaker's name: the circuit replicas share */
    int cb_quorum;               /* CB_QUORUM; 0 = a majority of the live replicas */
    int64_t cb_heartbeat_timeout_ms; /* CB_HEARTBEAT_TIMEOUT_MS; 0 = 3 buckets: a silent replica leaves */
    int64_t cb_lease_ms;         /* CB_LEASE_MS; 0 = 2 buckets: the probe lease's lifetime */

    /* the database breaker, around every write of a received document */
    int64_t db_cb_reset_timeout_ms; /* DB_CB_RESET_TIMEOUT_MS; 5000 */
    int db_cb_error_threshold;      /* DB_CB_ERROR_THRESHOLD; 50 (percent) */
    int db_cb_volume_threshold;     /* DB_CB_VOLUME_THRESHOLD; 3 */
} svc_config;

/* Fills c from the environment and spec's defaults. Returns 0, or -1 with a
 * sentence in err naming the variable, what it expected and what it got
 * ("PORT: expected an integer in 1..65535, got \"abc\""). */
int config_load(svc_config *c, const svc_spec *spec, char *err, size_t errlen);

#endif
