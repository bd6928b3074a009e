/* config.c -- reads a service's settings from the environment, refusing bad values by name. */
#include "config.h"

#include <curl/curl.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* Returns the variable's value, or NULL when it is unset or empty. */
static const char *env(const char *name)
{
    const char *v = getenv(name);
    return (v && *v) ? v : NULL;
}

/* Reads an integer in [lo, hi] into *out (left alone when unset). Returns 0,
 * or -1 with the reason in err. */
static int env_int64(const char *name, int64_t lo, int64_t hi, int64_t *out,
                     char *err, size_t errlen)
{
    const char *v = env(name);
    if (!v)
        return 0;
    char *end = NULL;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (errno || end == v || *end != '\0' || n < lo || n > hi) {
        snprintf(err, errlen, "%s: expected an integer in %lld..%lld, got \"%s\"",
                 name, (long long)lo, (long long)hi, v);
        return -1;
    }
    *out = n;
    return 0;
}

/* As env_int64() for an int. */
static int env_int(const char *name, int lo, int hi, int *out, char *err, size_t errlen)
{
    int64_t n = *out;
    if (env_int64(name, lo, hi, &n, err, errlen))
        return -1;
    *out = (int)n;
    return 0;
}

/* Reads a finite number in [lo, hi] into *out (left alone when unset). */
static int env_double(const char *name, double lo, double hi, double *out,
                      char *err, size_t errlen)
{
    const char *v = env(name);
    if (!v)
        return 0;
    char *end = NULL;
    errno = 0;
    double d = strtod(v, &end);
    if (errno || end == v || *end != '\0' || !isfinite(d) || d < lo || d > hi) {
        snprintf(err, errlen, "%s: expected a number in %g..%g, got \"%s\"", name, lo, hi, v);
        return -1;
    }
    *out = d;
    return 0;
}

/* Reads a 0/1 flag into *out (left alone when unset). */
static int env_flag(const char *name, bool *out, char *err, size_t errlen)
{
    const char *v = env(name);
    if (!v)
        return 0;
    if (strcmp(v, "0") && strcmp(v, "1")) {
        snprintf(err, errlen, "%s: expected 0 or 1, got \"%s\"", name, v);
        return -1;
    }
    *out = v[0] == '1';
    return 0;
}

/* Returns true when host is a name or address a connection can be made to:
 * letters, digits, '-', '_' and '.', or a bracketed IPv6 address (curl has
 * checked its inside). curl's parser also takes hosts such as "%" or "%zz". */
static bool host_is_plausible(const char *host)
{
    if (host[0] == '[')
        return true;
    return *host && strspn(host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                 "0123456789-_.") == strlen(host);
}

/* Returns 0 when url is an absolute http(s) URL with a host, written out in
 * full ("http://host..."): curl's parser also takes "http:/host" and
 * "http:///host", which the breaker's name and the logs would misread. */
static int check_http_url(const char *url)
{
    size_t prefix = !strncasecmp(url, "http://", 7) ? 7 : !strncasecmp(url, "https://", 8) ? 8 : 0;
    if (!prefix || url[prefix] == '/')
        return -1;
    CURLU *u = curl_url();
    if (!u)
        return -1;
    int rc = -1;
    char *scheme = NULL, *host = NULL;
    if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
        (!strcmp(scheme, "http") || !strcmp(scheme, "https")) && host_is_plausible(host))
        rc = 0;
    curl_free(scheme);
    curl_free(host);
    curl_url_cleanup(u);
    return rc;
}

/* Fills the defaults: the original demo's, and the spec's. */
static void config_defaults(svc_config *c, const svc_spec *spec)
{
    memset(c, 0, sizeof *c);
    c->id = spec->name;
    c->port = spec->default_port;
    c->jumps = 6;
    c->err_rate = 0.4;
    c->mongo_url = "mongodb://127.0.0.1:27017";
    c->mongo_timeout_ms = 1000;
    c->db_max_connections = 16;
    c->outcome_resolve_after_ms = 30000;
    c->deadlines = true;
    c->deadline_margin_ms = 25;
    c->threads = 1024;
    c->connection_queue = 64;
    c->listen_backlog = 1024;
    c->header_timeout_ms = 5000;
    c->body_timeout_ms = 10000;
    c->keep_alive_timeout_ms = 5000;
    c->max_header_bytes = 16384;
    c->max_body_bytes = 1024 * 1024;
    c->body_limits = (validate_limits)VALIDATE_LIMITS_DEFAULT;
    c->thread_stack_kb = 512;
    c->admin_auth_rate = 2.0;
    c->admin_auth_burst = 5;
    c->cb_timeout_ms = 300;
    c->cb_reset_timeout_ms = 10000;
    c->cb_error_threshold = 50;
    c->cb_window_ms = 10000;
    c->cb_buckets = 10;
    c->cb_half_open_calls = 1;
    c->cb_backoff = 1.0;
    c->db_cb_reset_timeout_ms = 5000;
    c->db_cb_error_threshold = 50;
    c->db_cb_volume_threshold = 3;
}

/* True when list is one or more origins (http:// or https://, no spaces),
 * separated by commas. */
static bool origins_valid(const char *list)
{
    for (const char *p = list;;) {
        size_t n = strcspn(p, ",");
        if (strncmp(p, "http://", 7) && strncmp(p, "https://", 8))
            return false;
        for (size_t i = 0; i < n; i++)
            if (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n' || p[i] == '*')
                return false;
        if (!p[n])
            return true;
        p += n + 1;
    }
}

/* Reads the strings and their checks. */
static int config_strings(svc_config *c, char *err, size_t errlen)
{
    if (env("ID"))
        c->id = env("ID");
    c->chain_svc = env("CHAIN_SVC");
    if (c->chain_svc && check_http_url(c->chain_svc)) {
        snprintf(err, errlen, "CHAIN_SVC: expected an http:// or https:// URL, got \"%s\"",
                 c->chain_svc);
        return -1;
    }
    if (env("MONGO_URL"))
        c->mongo_url = env("MONGO_URL");
    if (strncmp(c->mongo_url, "mongodb://", 10) && strncmp(c->mongo_url, "mongodb+srv://", 14)) {
        snprintf(err, errlen, "MONGO_URL: expected a mongodb:// URL, got \"%s\"", c->mongo_url);
        return -1;
    }
    c->mongo_db = env("MONGO_DB");
    const char *fmt = env("LOG_FORMAT");
    if (fmt && strcmp(fmt, "human") && strcmp(fmt, "json")) {
        snprintf(err, errlen, "LOG_FORMAT: expected \"human\" or \"json\", got \"%s\"", fmt);
        return -1;
    }
    c->log_json = fmt && !strcmp(fmt, "json");
    const char *level = env("LOG_LEVEL");
    static const char *const levels[] = { "transitions", "requests", "events" };
    if (level) {
        int i = 0;
        while (i < 3 && strcmp(level, levels[i]))
            i++;
        if (i == 3) {
            snprintf(err, errlen, "LOG_LEVEL: expected \"transitions\", \"requests\" or "
                                  "\"events\", got \"%s\"", level);
            return -1;
        }
        c->log_level = i;
    }
    c->admin_token = env("ADMIN_TOKEN");
    c->admin_origin = env("ADMIN_ALLOWED_ORIGIN");
    c->run_status_file = env("RUN_STATUS_FILE");
    if (c->admin_origin && !origins_valid(c->admin_origin)) {
        snprintf(err, errlen, "ADMIN_ALLOWED_ORIGIN: expected origins such as "
                 "\"https://admin.example\" separated by commas (never \"*\"), got \"%s\"",
                 c->admin_origin);
        return -1;
    }
    return 0;
}

/* Reads the breakers' options. */
static int config_breaker(svc_config *c, char *err, size_t errlen)
{
    if (env_int64("CB_TIMEOUT_MS", 0, 3600000, &c->cb_timeout_ms, err, errlen) ||
        env_int64("CB_RESET_TIMEOUT_MS", 1, 86400000, &c->cb_reset_timeout_ms, err, errlen) ||
        env_int("CB_ERROR_THRESHOLD", 0, 100, &c->cb_error_threshold, err, errlen) ||
        env_int("CB_VOLUME_THRESHOLD", 0, 1000000, &c->cb_volume_threshold, err, errlen) ||
        env_int64("CB_WINDOW_MS", 1, 86400000, &c->cb_window_ms, err, errlen) ||
        env_int("CB_BUCKETS", 1, 10000, &c->cb_buckets, err, errlen) ||
        env_int("CB_HALF_OPEN_CALLS", 1, 10000, &c->cb_half_open_calls, err, errlen) ||
        env_double("CB_BACKOFF", 1.0, 100.0, &c->cb_backoff, err, errlen) ||
        env_int64("CB_BACKOFF_MAX_MS", 0, 86400000, &c->cb_backoff_max_ms, err, errlen) ||
        env_int64("DB_CB_RESET_TIMEOUT_MS", 1, 86400000, &c->db_cb_reset_timeout_ms, err, errlen) ||
        env_int("DB_CB_ERROR_THRESHOLD", 0, 100, &c->db_cb_error_threshold, err, errlen) ||
        env_int("DB_CB_VOLUME_THRESHOLD", 0, 1000000, &c->db_cb_volume_threshold, err, errlen))
        return -1;
    if (c->cb_window_ms % c->cb_buckets) {
        snprintf(err, errlen, "CB_BUCKETS: expected a divisor of CB_WINDOW_MS (%lld), got %d",
                 (long long)c->cb_window_ms, c->cb_buckets);
        return -1;
    }
    return 0;
}

/* True when id is 1..63 bytes of letters, digits and "-_.:/@". */
static bool replica_id_valid(const char *id)
{
    size_t n = strlen(id);
    return n > 0 && n < 64 &&
           strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:/@") == n;
}

/* Reads the replica's identity and the shared breaker's settings. */
static int config_shared(svc_config *c, char *err, size_t errlen)
{
    const char *id = env("REPLICA_ID");
    c->replica_given = id != NULL;
    if (id && !replica_id_valid(id)) {
        snprintf(err, errlen, "REPLICA_ID: expected 1 to 63 letters, digits or \"-_.:/@\", "
                 "got \"%s\"", id);
        return -1;
    }
    if (id) {
        snprintf(c->replica, sizeof c->replica, "%s", id);
    } else if (gethostname(c->replica, sizeof c->replica) != 0 || !c->replica[0]) {
        snprintf(c->replica, sizeof c->replica, "%s", "local");
    }
    c->replica[sizeof c->replica - 1] = '\0';
    const char *shared = env("CB_SHARED");
    if (shared && strcmp(shared, "on") && strcmp(shared, "off")) {
        snprintf(err, errlen, "CB_SHARED: expected \"on\" or \"off\", got \"%s\"", shared);
        return -1;
    }
    c->cb_shared = shared && !strcmp(shared, "on");
    c->cb_shared_circuit = env("CB_SHARED_CIRCUIT");
    if (c->cb_shared_circuit && strlen(c->cb_shared_circuit) >= 64) {
        snprintf(err, errlen, "CB_SHARED_CIRCUIT: expected at most 63 bytes, got \"%s\"",
                 c->cb_shared_circuit);
        return -1;
    }
    if (env_int("CB_QUORUM", 0, 64, &c->cb_quorum, err, errlen) ||
        env_int64("CB_HEARTBEAT_TIMEOUT_MS", 0, 3600000, &c->cb_heartbeat_timeout_ms, err, errlen) ||
        env_int64("CB_LEASE_MS", 0, 3600000, &c->cb_lease_ms, err, errlen))
        return -1;
    return 0;
}

/* Reads the limits against slow and greedy clients. */
static int config_limits(svc_config *c, char *err, size_t errlen)
{
    if (env_int("THREADS", 1, 8192, &c->threads, err, errlen) ||
        env_int("CONNECTION_QUEUE", 1, 65536, &c->connection_queue, err, errlen) ||
        env_int("LISTEN_BACKLOG", 1, 65535, &c->listen_backlog, err, errlen) ||
        env_int("HEADER_TIMEOUT_MS", 100, 600000, &c->header_timeout_ms, err, errlen) ||
        env_int("BODY_TIMEOUT_MS", 100, 600000, &c->body_timeout_ms, err, errlen) ||
        env_int("KEEP_ALIVE_TIMEOUT_MS", 0, 600000, &c->keep_alive_timeout_ms, err, errlen) ||
        env_int("MAX_HEADER_BYTES", 1024, 1024 * 1024, &c->max_header_bytes, err, errlen) ||
        env_int("MAX_BODY_BYTES", 1, 256 * 1024 * 1024, &c->max_body_bytes, err, errlen) ||
        env_int("MAX_BODY_KEYS", 1, 1000000, &c->body_limits.body_keys, err, errlen) ||
        env_int("MAX_OBJECT_KEYS", 1, 1000000, &c->body_limits.object_keys, err, errlen) ||
        env_int("MAX_ARRAY_ELEMENTS", 1, 1000000, &c->body_limits.array_elements, err, errlen) ||
        env_int("MAX_STRING_BYTES", 1, 256 * 1024 * 1024, &c->body_limits.string_bytes, err,
                errlen) ||
        env_int("THREAD_STACK_KB", 128, 65536, &c->thread_stack_kb, err, errlen))
        return -1;
    c->max_connections = c->threads + c->connection_queue;
    c->reserved_workers = c->threads / 4 < 16 ? c->threads / 4 : 16;
    return env_int("MAX_CONNECTIONS", 1, 1000000, &c->max_connections, err, errlen) ||
           env_int("RESERVED_WORKERS", 0, c->threads - 1, &c->reserved_workers, err, errlen) ||
           env_double("ADMIN_AUTH_RATE", 0.01, 1000.0, &c->admin_auth_rate, err, errlen) ||
           env_int("ADMIN_AUTH_BURST", 1, 1000, &c->admin_auth_burst, err, errlen);
}

int config_load(svc_config *c, const svc_spec *spec, char *err, size_t errlen)
{
    config_defaults(c, spec);
    if (config_strings(c, err, errlen) ||
        env_int("PORT", 1, 65535, &c->port, err, errlen) ||
        env_int("JUMPS", 1, 1000000, &c->jumps, err, errlen) ||
        env_flag("INJECT_ERR", &c->inject_err, err, errlen) ||
        env_double("ERR_RATE", 0.0, 1.0, &c->err_rate, err, errlen) ||
        env_int("DELAY_MS", 0, 600000, &c->delay_ms, err, errlen) ||
        env_int("MONGO_TIMEOUT_MS", 1, 600000, &c->mongo_timeout_ms, err, errlen) ||
        env_int("DB_MAX_CONNECTIONS", 1, 1000, &c->db_max_connections, err, errlen) ||
        env_int64("OUTCOME_RESOLVE_AFTER_MS", 0, 86400000, &c->outcome_resolve_after_ms, err, errlen) ||
        env_flag("LOG_SNAPSHOTS", &c->log_snapshots, err, errlen) ||
        env_flag("DEADLINE_PROPAGATION", &c->deadlines, err, errlen) ||
        env_int("DEADLINE_MARGIN_MS", 0, 60000, &c->deadline_margin_ms, err, errlen) ||
        env_int("CHAIN_CONNECTIONS", 1, 1024, &c->chain_connections, err, errlen) ||
        config_limits(c, err, errlen) || config_shared(c, err, errlen))
        return -1;
    if (!c->chain_connections) {
        /* fewer than the next hop's threads, so it keeps threads for others */
        int half = c->threads > 1 ? c->threads / 2 : 1;
        c->chain_connections = half < 64 ? half : 64;
    }
    return config_breaker(c, err, errlen);
}
