/* config.h -- a service's configuration, read once from the environment. */
#ifndef SVC_CONFIG_H
#define SVC_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "spec.h"
#include "validate.h"

/* Every setting, after defaults. Strings point into the environment
 * (getenv), which the services never modify. Each field's variable, default,
 * range and meaning are in svc_settings[] (config.c), the one place they are
 * written; the comments below name the variable and what a special value means. */
typedef struct svc_config {
    const char *id;              /* ID */
    int port;                    /* PORT */
    const char *chain_svc;       /* CHAIN_SVC; NULL = last service of the chain */
    int jumps;                   /* JUMPS */
    bool inject_err;             /* INJECT_ERR */
    double err_rate;             /* ERR_RATE */
    int delay_ms;                /* DELAY_MS */
    const char *mongo_url;       /* MONGO_URL */
    const char *mongo_db;        /* MONGO_DB; NULL = the URL's database, else "resilience" */
    int mongo_timeout_ms;        /* MONGO_TIMEOUT_MS */
    int db_max_connections;      /* DB_MAX_CONNECTIONS */
    bool idempotency_keys;       /* IDEMPOTENCY_KEYS */
    int idempotency_ttl_s;       /* IDEMPOTENCY_TTL_S */
    int db_writers;              /* DB_WRITERS: inserts in flight at once (group commit) */
    bool log_json;               /* LOG_FORMAT=json */
    int log_level;               /* LOG_LEVEL: 0 transitions, 1 requests, 2 events */
    bool deadlines;              /* DEADLINE_PROPAGATION */
    int deadline_margin_ms;      /* DEADLINE_MARGIN_MS */
    bool log_snapshots;          /* LOG_SNAPSHOTS */
    int chain_connections;       /* CHAIN_CONNECTIONS */
    /* limits against slow and greedy clients (docs/security.md) */
    int threads;                 /* THREADS */
    int connection_queue;        /* CONNECTION_QUEUE */
    int max_connections;         /* MAX_CONNECTIONS */
    int reserved_workers;        /* RESERVED_WORKERS */
    int slow_client_ms;          /* SLOW_CLIENT_MS; 0 = slow clients are never cut */
    int listen_backlog;          /* LISTEN_BACKLOG */
    int header_timeout_ms;       /* HEADER_TIMEOUT_MS */
    int body_timeout_ms;         /* BODY_TIMEOUT_MS */
    int keep_alive_timeout_ms;   /* KEEP_ALIVE_TIMEOUT_MS */
    int max_header_bytes;        /* MAX_HEADER_BYTES */
    int max_body_bytes;          /* MAX_BODY_BYTES */
    validate_limits body_limits; /* MAX_BODY_KEYS, MAX_OBJECT_KEYS, MAX_ARRAY_ELEMENTS,
                                    MAX_STRING_BYTES: a body's shape, checked before the
                                    database (413) */
    int thread_stack_kb;         /* THREAD_STACK_KB */
    int malloc_arenas;           /* MALLOC_ARENAS */
    const char *admin_token;     /* ADMIN_TOKEN; NULL = admin routes off */
    const char *admin_origin;    /* ADMIN_ALLOWED_ORIGIN; NULL = no other origin's page may call them */
    const char *run_status_file; /* RUN_STATUS_FILE; NULL = none */
    double admin_auth_rate;      /* ADMIN_AUTH_RATE */
    int admin_auth_burst;        /* ADMIN_AUTH_BURST */

    /* the breaker, by default the original demo's options */
    int64_t cb_timeout_ms;       /* CB_TIMEOUT_MS */
    int64_t cb_reset_timeout_ms; /* CB_RESET_TIMEOUT_MS */
    int cb_error_threshold;      /* CB_ERROR_THRESHOLD (percent) */
    int cb_volume_threshold;     /* CB_VOLUME_THRESHOLD */
    int64_t cb_window_ms;        /* CB_WINDOW_MS */
    int cb_buckets;              /* CB_BUCKETS; divides cb_window_ms */
    int cb_half_open_calls;      /* CB_HALF_OPEN_CALLS */
    double cb_backoff;           /* CB_BACKOFF; 1.0 = no back-off */
    int64_t cb_backoff_max_ms;   /* CB_BACKOFF_MAX_MS; 0 = no cap */

    /* retries of the call to the next hop (hop_retry.h); off by default */
    int retry_attempts;          /* RETRY_ATTEMPTS; 1 = off */
    int64_t retry_base_ms;       /* RETRY_BASE_MS */
    int64_t retry_cap_ms;        /* RETRY_CAP_MS */
    int retry_budget_tokens;     /* RETRY_BUDGET_TOKENS; 0 = no budget */
    double retry_budget_ratio;   /* RETRY_BUDGET_RATIO */
    /* hedging of the call to the next hop (hop_hedge.h); off by default */
    int hedge_max_copies;        /* HEDGE_MAX_COPIES; 1 = off */
    int64_t hedge_delay_ms;      /* HEDGE_DELAY_MS */
    double hedge_percentile;     /* HEDGE_PERCENTILE; 0 = the fixed delay */
    double hedge_budget_ratio;   /* HEDGE_BUDGET_RATIO */

    /* load shedding of POST /create (shed.h); off by default */
    bool shed;                   /* SHED=on */
    int shed_initial_limit;      /* SHED_INITIAL_LIMIT */
    int shed_min_limit;          /* SHED_MIN_LIMIT */
    int shed_max_limit;          /* SHED_MAX_LIMIT */
    const char *otel_endpoint;   /* OTEL_EXPORTER_OTLP_ENDPOINT; NULL = tracing off */
    const char *otel_traces_endpoint; /* OTEL_EXPORTER_OTLP_TRACES_ENDPOINT; NULL = the above's /v1/traces */
    const char *otel_service;    /* OTEL_SERVICE_NAME; NULL = ID */
    int otel_sampler;            /* OTEL_TRACES_SAMPLER: OTEL_* of otel.h */
    double otel_sampler_arg;     /* OTEL_TRACES_SAMPLER_ARG */
    int otel_queue;              /* OTEL_BSP_MAX_QUEUE_SIZE */
    int otel_batch;              /* OTEL_BSP_MAX_EXPORT_BATCH_SIZE */
    int otel_delay_ms;           /* OTEL_BSP_SCHEDULE_DELAY */
    int otel_timeout_ms;         /* OTEL_EXPORTER_OTLP_TIMEOUT */
    const char *traces_query_url; /* TRACES_QUERY_URL; NULL = none */

    /* replicas and the shared breaker (docs/scale-out.md) */
    char replica[64];            /* REPLICA_ID, else the host name */
    bool replica_given;          /* REPLICA_ID was set */
    bool cb_shared;              /* CB_SHARED=on */
    const char *cb_shared_circuit; /* CB_SHARED_CIRCUIT; NULL = the breaker's name */
    int cb_quorum;               /* CB_QUORUM; 0 = a majority of the live replicas */
    int64_t cb_heartbeat_timeout_ms; /* CB_HEARTBEAT_TIMEOUT_MS; 0 = 3 buckets */
    int64_t cb_lease_ms;         /* CB_LEASE_MS; 0 = 2 buckets */

    /* the database breaker, around every write of a received document */
    int64_t db_cb_reset_timeout_ms; /* DB_CB_RESET_TIMEOUT_MS */
    int db_cb_error_threshold;      /* DB_CB_ERROR_THRESHOLD (percent) */
    int db_cb_volume_threshold;     /* DB_CB_VOLUME_THRESHOLD */
} svc_config;

/* Fills c from the environment and spec's defaults. Returns 0, or -1 with a
 * sentence in err naming the variable, what it expected and what it got
 * ("PORT: expected an integer in 1..65535, got \"abc\""). */
int config_load(svc_config *c, const svc_spec *spec, char *err, size_t errlen);

/* How a variable's text is read. */
typedef enum svc_setting_kind {
    SETTING_INTEGER, /* a decimal integer in lo..hi, into an int or an int64_t */
    SETTING_NUMBER,  /* a finite number in lo..hi, into a double */
    SETTING_FLAG,    /* 0 or 1, into a bool */
    SETTING_WORDS,   /* one of words[], into a bool or an int: the word's value */
    SETTING_STRING,  /* text that valid() accepts (any when NULL), kept as a pointer */
} svc_setting_kind;

/* One word a SETTING_WORDS variable accepts, and the value it stands for. */
typedef struct svc_word {
    const char *word;
    int value;
} svc_word;

/* The README tables a setting is documented in (a bit set): README.md's
 * "Environment variables" and common/svc/README.md's "Environment", or
 * docs/security.md's limits against slow and greedy clients. */
enum { SETTING_DOC_SERVICE = 1, SETTING_DOC_LIMITS = 2 };

/* One environment variable of the services: a row of svc_settings[]. Its
 * order is the order variables are read in, so of several bad values the
 * first row's is reported. */
typedef struct svc_setting {
    const char *name;
    svc_setting_kind kind;
    size_t offset, size;   /* its field in svc_config; size 0: read elsewhere (log.c) */
    const char *dflt;      /* the default, written as the variable would be; NULL: none */
    double lo, hi;         /* INTEGER, NUMBER: the range (exact for integers below 2^53) */
    const svc_word *words; /* WORDS: the accepted words, ended by { NULL } */
    bool (*valid)(const char *v);  /* STRING: NULL = any text */
    const char *expect;    /* STRING: what valid() wants, as in "NAME: expected <expect>" */
    /* Instead of the kind's reading: fills the field from v, or from a
     * default computed from the spec or earlier rows when v is NULL. Returns
     * 0, or -1 with the message in err. */
    int (*read)(svc_config *c, const svc_spec *spec, const struct svc_setting *s,
                const char *v, char *err, size_t errlen);
    /* Run after every row is read (a check or default across rows). Returns
     * 0, or -1 with the message in err. */
    int (*finish)(svc_config *c, char *err, size_t errlen);
    unsigned docs;         /* SETTING_DOC_* */
    const char *doc_default; /* the README's default when it is not dflt (computed) */
    const char *doc_range;   /* the README's range when it is not lo..hi */
    const char *meaning;     /* the README's one-line meaning (Markdown) */
} svc_setting;

/* Every variable the services read, in the order config_load() reads them. */
extern const svc_setting svc_settings[];
extern const size_t svc_settings_count;

/* A field of an admin route's JSON body that changes a setting at runtime
 * (POST /retry, /hedge, /shed): its JSON name, the svc_settings[] row whose
 * range it must keep, where it goes in the caller's struct and its type. */
typedef struct setting_field {
    const char *json;
    const char *setting;
    size_t offset;
    char type;              /* 'i' int, 'l' int64_t, 'd' double */
} setting_field;

/* Sets the field named name of the struct at out from value, when name is
 * one of fields (n of them) and value is a number in its row's range (whole
 * for 'i' and 'l'). Returns 0, or -1 with err naming the field: "attempts
 * must be an integer in 1..100 (as RETRY_ATTEMPTS)", or "unknown field \"x\";
 * the fields are ..." listing others (a field the caller reads itself, such
 * as "enabled"; NULL = none) and then fields. */
int setting_field_set(const setting_field *fields, size_t n, const char *name, bool is_number,
                      double value, void *out, const char *others, char *err, size_t errlen);

#endif
