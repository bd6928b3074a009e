/* config.c -- reads a service's settings from the environment, refusing bad values by name.
 *
 * Every variable is one row of svc_settings[] below: its field in
 * svc_config, kind, default, range or words, and the README's meaning.
 * config_load() walks the table in order: the default, then the variable's
 * text read by its kind, or by the row's own read() for the few whose
 * default is computed (ID, PORT, MAX_CONNECTIONS, RESERVED_WORKERS,
 * REPLICA_ID); finish() hooks run after every row (CHAIN_CONNECTIONS's
 * default, CB_BUCKETS dividing CB_WINDOW_MS). `make docs` prints the README's
 * tables from the same rows (tests/tools/settings_doc.c), and `make
 * test-docs` fails when they differ. */
#include "config.h"
#include "otel.h"

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

/* True when id is 1..63 bytes of letters, digits and "-_.:/@". */
static bool replica_id_valid(const char *id)
{
    size_t n = strlen(id);
    return n > 0 && n < 64 &&
           strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:/@") == n;
}


/* valid() of CHAIN_SVC: see check_http_url(). */
static bool chain_url_valid(const char *v)
{
    return check_http_url(v) == 0;
}

/* valid() of MONGO_URL: the schemes libmongoc takes. */
static bool mongo_url_valid(const char *v)
{
    return !strncmp(v, "mongodb://", 10) || !strncmp(v, "mongodb+srv://", 14);
}

/* valid() of CB_SHARED_CIRCUIT: it must fit the quorum's 64-byte names. */
static bool circuit_valid(const char *v)
{
    return strlen(v) < 64;
}

/* Writes the refusal of a STRING or WORDS value: "NAME: expected <expect>,
 * got "v"". Returns -1. */
static int refuse(const svc_setting *s, const char *expect, const char *v, char *err,
                  size_t errlen)
{
    snprintf(err, errlen, "%s: expected %s, got \"%s\"", s->name, expect, v);
    return -1;
}

/* Reads v as an integer in [lo, hi] into *out. Returns 0, or -1 with the
 * reason in err. */
static int parse_integer(const char *name, const char *v, double lo, double hi, int64_t *out,
                         char *err, size_t errlen)
{
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

/* Stores n in the integer field at p of size bytes (a bool, an int or an
 * int64_t). This function can't fail. */
static void store_integer(void *p, size_t size, int64_t n)
{
    if (size == sizeof(int64_t)) {
        *(int64_t *)p = n;
    } else if (size == sizeof(int)) {
        *(int *)p = (int)n;
    } else {
        *(bool *)p = n != 0;
    }
}

/* Reads v into s's field of c by s's kind. Returns 0, or -1 with the
 * message in err. */
static int setting_parse(const svc_setting *s, const char *v, svc_config *c, char *err,
                         size_t errlen)
{
    char *field = (char *)c + s->offset;
    switch (s->kind) {
    case SETTING_INTEGER: {
        int64_t n;
        if (parse_integer(s->name, v, s->lo, s->hi, &n, err, errlen))
            return -1;
        store_integer(field, s->size, n);
        return 0;
    }
    case SETTING_NUMBER: {
        char *end = NULL;
        errno = 0;
        double d = strtod(v, &end);
        if (errno || end == v || *end != '\0' || !isfinite(d) || d < s->lo || d > s->hi) {
            snprintf(err, errlen, "%s: expected a number in %g..%g, got \"%s\"",
                     s->name, s->lo, s->hi, v);
            return -1;
        }
        *(double *)field = d;
        return 0;
    }
    case SETTING_FLAG:
        if (strcmp(v, "0") && strcmp(v, "1")) {
            snprintf(err, errlen, "%s: expected 0 or 1, got \"%s\"", s->name, v);
            return -1;
        }
        *(bool *)field = v[0] == '1';
        return 0;
    case SETTING_WORDS: {
        char expect[128] = "";
        for (const svc_word *w = s->words; w->word; w++) {
            if (!strcmp(v, w->word)) {
                store_integer(field, s->size, w->value);
                return 0;
            }
            size_t used = strlen(expect);
            snprintf(expect + used, sizeof expect - used, "%s\"%s\"",
                     w == s->words ? "" : w[1].word ? ", " : " or ", w->word);
        }
        return refuse(s, expect, v, err, errlen);
    }
    case SETTING_STRING:
        if (s->valid && !s->valid(v))
            return refuse(s, s->expect, v, err, errlen);
        *(const char **)field = v;
        return 0;
    }
    return 0;
}

/* read() of ID: the spec's name unless set. */
static int read_id(svc_config *c, const svc_spec *spec, const svc_setting *s, const char *v,
                   char *err, size_t errlen)
{
    (void)s, (void)err, (void)errlen;
    c->id = v ? v : spec->name;
    return 0;
}

/* read() of PORT: the spec's port unless set. */
static int read_port(svc_config *c, const svc_spec *spec, const svc_setting *s, const char *v,
                     char *err, size_t errlen)
{
    c->port = spec->default_port;
    return v ? setting_parse(s, v, c, err, errlen) : 0;
}

/* read() of MAX_CONNECTIONS: THREADS + CONNECTION_QUEUE unless set. */
static int read_max_connections(svc_config *c, const svc_spec *spec, const svc_setting *s,
                                const char *v, char *err, size_t errlen)
{
    (void)spec;
    c->max_connections = c->threads + c->connection_queue;
    return v ? setting_parse(s, v, c, err, errlen) : 0;
}

/* read() of RESERVED_WORKERS: 16, at most THREADS / 4, unless set; at most
 * THREADS - 1 when set. */
static int read_reserved_workers(svc_config *c, const svc_spec *spec, const svc_setting *s,
                                 const char *v, char *err, size_t errlen)
{
    (void)spec;
    c->reserved_workers = c->threads / 4 < 16 ? c->threads / 4 : 16;
    if (!v)
        return 0;
    int64_t n;
    if (parse_integer(s->name, v, 0, c->threads - 1, &n, err, errlen))
        return -1;
    c->reserved_workers = (int)n;
    return 0;
}

/* read() of REPLICA_ID: copied into c->replica; the host name (or "local")
 * unless set. */
static int read_replica(svc_config *c, const svc_spec *spec, const svc_setting *s,
                        const char *v, char *err, size_t errlen)
{
    (void)spec;
    c->replica_given = v != NULL;
    if (v && !replica_id_valid(v))
        return refuse(s, s->expect, v, err, errlen);
    if (v) {
        snprintf(c->replica, sizeof c->replica, "%s", v);
    } else if (gethostname(c->replica, sizeof c->replica) != 0 || !c->replica[0]) {
        snprintf(c->replica, sizeof c->replica, "%s", "local");
    }
    c->replica[sizeof c->replica - 1] = '\0';
    return 0;
}

/* finish() of CHAIN_CONNECTIONS: unless set, half the threads, at most 64,
 * so the next hop keeps threads for others. This function can't fail. */
static int finish_chain_connections(svc_config *c, char *err, size_t errlen)
{
    (void)err, (void)errlen;
    if (!c->chain_connections) {
        int half = c->threads > 1 ? c->threads / 2 : 1;
        c->chain_connections = half < 64 ? half : 64;
    }
    return 0;
}

/* finish() of CB_BUCKETS: the buckets must divide the window. */
static int finish_cb_buckets(svc_config *c, char *err, size_t errlen)
{
    if (c->cb_window_ms % c->cb_buckets) {
        snprintf(err, errlen, "CB_BUCKETS: expected a divisor of CB_WINDOW_MS (%lld), got %d",
                 (long long)c->cb_window_ms, c->cb_buckets);
        return -1;
    }
    return 0;
}

/* finish() of SHED_MAX_LIMIT: the bounds must not cross. */
static int finish_shed_limits(svc_config *c, char *err, size_t errlen)
{
    if (c->shed_min_limit > c->shed_max_limit) {
        snprintf(err, errlen, "SHED_MIN_LIMIT: expected at most SHED_MAX_LIMIT (%d), got %d",
                 c->shed_max_limit, c->shed_min_limit);
        return -1;
    }
    return 0;
}

static const svc_word log_formats[] = { { "human", 0 }, { "json", 1 }, { NULL, 0 } };
static const svc_word log_levels[] = { { "transitions", 0 }, { "requests", 1 },
                                       { "events", 2 }, { NULL, 0 } };
static const svc_word on_off[] = { { "on", 1 }, { "off", 0 }, { NULL, 0 } };
/* OTEL_TRACES_SAMPLER: OpenTelemetry's names for otel.h's samplers */
#define SAMPLER_WORD(value, name) { name, value },
static const svc_word samplers[] = { OTEL_SAMPLERS(SAMPLER_WORD) { NULL, 0 } };
#undef SAMPLER_WORD

#define FIELD(f) .offset = offsetof(svc_config, f), .size = sizeof(((svc_config *)0)->f)
#define INTEGER(l, h) .kind = SETTING_INTEGER, .lo = (l), .hi = (h)
#define NUMBER(l, h) .kind = SETTING_NUMBER, .lo = (l), .hi = (h)
#define SERVICE .docs = SETTING_DOC_SERVICE
#define LIMITS .docs = SETTING_DOC_LIMITS
#define BOTH .docs = SETTING_DOC_SERVICE | SETTING_DOC_LIMITS

const svc_setting svc_settings[] = {
    /* the strings first */
    { .name = "ID", .kind = SETTING_STRING, FIELD(id), .read = read_id, SERVICE,
      .doc_default = "the service's name", .meaning = "name in answers and logs" },
    { .name = "CHAIN_SVC", .kind = SETTING_STRING, FIELD(chain_svc), .valid = chain_url_valid,
      .expect = "an http:// or https:// URL", SERVICE,
      .meaning = "next hop's URL, e.g. `http://payment:3000/create`; none = last service" },
    { .name = "MONGO_URL", .kind = SETTING_STRING, FIELD(mongo_url),
      .dflt = "mongodb://127.0.0.1:27017", .valid = mongo_url_valid,
      .expect = "a mongodb:// URL", SERVICE, .meaning = "the database" },
    { .name = "MONGO_DB", .kind = SETTING_STRING, FIELD(mongo_db), SERVICE,
      .doc_default = "the URL's database, else `resilience`", .meaning = "database name" },
    { .name = "LOG_FORMAT", .kind = SETTING_WORDS, FIELD(log_json), .dflt = "human",
      .words = log_formats, SERVICE, .meaning = "or `json` (JSON lines)" },
    { .name = "LOG_PREFIX", .kind = SETTING_STRING, SERVICE, /* read by log.c */
      .meaning = "text written before every log line (`make run` sets `[order] ` and so on)" },
    { .name = "LOG_LEVEL", .kind = SETTING_WORDS, FIELD(log_level), .dflt = "transitions",
      .words = log_levels, SERVICE,
      .meaning = "`transitions`: state changes, runtime-fault changes and messages; "
                 "`requests`: also one line per request and the breaker events where "
                 "something went wrong (failure, timeout, reject) and every retry event (retry, "
                 "retry-exhausted, budget-exhausted, deadline); `events`: every breaker event" },
    { .name = "ADMIN_TOKEN", .kind = SETTING_STRING, FIELD(admin_token), SERVICE,
      .meaning = "enables the admin routes: `PUT`/`DELETE /chaos`, `POST /breaker/open`, "
                 "`/breaker/close`, `/breaker/options`, `/retry`, `/hedge` and `/shed`" },
    { .name = "ADMIN_ALLOWED_ORIGIN", .kind = SETTING_STRING, FIELD(admin_origin),
      .valid = origins_valid,
      .expect = "origins such as \"https://admin.example\" separated by commas (never \"*\")",
      SERVICE,
      .meaning = "the origins (comma-separated, never `*`) whose pages may call the admin "
                 "routes; the dashboard served by order on 3000 needs `http://localhost:3000` "
                 "on payment and shipment to steer them (the classroom profile sets it)" },
    { .name = "RUN_STATUS_FILE", .kind = SETTING_STRING, FIELD(run_status_file), SERVICE,
      .meaning = "a supervisor's status file (JSON), read on each `GET /health` and shown as "
                 "its `supervisor` (`make run` sets `$DATA_DIR/run/status.json`: every "
                 "process's restarts and last exit)" },

    /* the original demo's, the database, deadlines */
    { .name = "PORT", INTEGER(1, 65535), FIELD(port), .read = read_port, SERVICE,
      .doc_default = "3000 / 3001 / 3002", .meaning = "port to listen on, on all interfaces" },
    { .name = "JUMPS", INTEGER(1, 1000000), FIELD(jumps), .dflt = "6", SERVICE,
      .meaning = "a hop with `count >= JUMPS` answers \"last\"" },
    { .name = "INJECT_ERR", .kind = SETTING_FLAG, FIELD(inject_err), .dflt = "0", SERVICE,
      .meaning = "1 = answer 502 with probability `ERR_RATE` (its document stored with outcome `injected`): the error fault "
                 "in force at start" },
    { .name = "ERR_RATE", NUMBER(0.0, 1.0), FIELD(err_rate), .dflt = "0.4", SERVICE,
      .meaning = "the probability of `INJECT_ERR`'s 502, the original demo's rate" },
    { .name = "DELAY_MS", INTEGER(0, 600000), FIELD(delay_ms), .dflt = "0", SERVICE,
      .meaning = "every `/create` waits this long before its work (the call to the next "
                 "hop, then the write): the latency fault in force at start" },
    { .name = "MONGO_TIMEOUT_MS", INTEGER(1, 600000), FIELD(mongo_timeout_ms), .dflt = "1000",
      SERVICE,
      .meaning = "how long a request waits for an unreachable database (or for one of its "
                 "busy connections) before 503" },
    { .name = "DB_MAX_CONNECTIONS", INTEGER(1, 1000), FIELD(db_max_connections), .dflt = "16",
      SERVICE,
      .meaning = "database operations in flight at once (libmongoc's `maxPoolSize`); kept "
                 "below what FerretDB's PostgreSQL pool can serve, see "
                 "[docs/database.md](docs/database.md)" },
    { .name = "DB_WRITERS", INTEGER(1, 1000), FIELD(db_writers), .dflt = "1", SERVICE,
      .meaning = "inserts of documents in flight at once; the documents of requests that "
                 "finish meanwhile wait and go together in the next one, one round trip and "
                 "one commit for all of them (group commit; at most `DB_MAX_CONNECTIONS`)" },
    { .name = "IDEMPOTENCY_KEYS", .kind = SETTING_FLAG, FIELD(idempotency_keys), .dflt = "1",
      SERVICE,
      .meaning = "1 = honour a request's `Idempotency-Key` (or make one when the call to the "
                 "next hop may be retried), store it under a unique index, answer a key stored "
                 "already with its stored answer (`Idempotent-Replayed: true`) and pass the next "
                 "hop a key derived from it; 0 = no keys: a retried call stores twice" },
    { .name = "IDEMPOTENCY_TTL_S", INTEGER(1, 31536000), FIELD(idempotency_ttl_s),
      .dflt = "86400", SERVICE,
      .meaning = "how long a stored key is answered from the database; an older one is "
                 "freed and its request runs again" },
    { .name = "LOG_SNAPSHOTS", .kind = SETTING_FLAG, FIELD(log_snapshots), .dflt = "0", SERVICE,
      .meaning = "1 = also log the breakers' once-per-bucket snapshot events" },
    { .name = "DEADLINE_PROPAGATION", .kind = SETTING_FLAG, FIELD(deadlines), .dflt = "1",
      SERVICE,
      .meaning = "1 = honour a caller's `X-Deadline-Ms` and pass the next hop what is left; "
                 "0 = every hop has its own `CB_TIMEOUT_MS` (the timeout cascade)" },
    { .name = "DEADLINE_MARGIN_MS", INTEGER(0, 60000), FIELD(deadline_margin_ms), .dflt = "25",
      SERVICE, .meaning = "of a caller's deadline, the time kept back to answer it" },
    { .name = "CHAIN_CONNECTIONS", INTEGER(1, 1024), FIELD(chain_connections),
      .finish = finish_chain_connections, SERVICE,
      .doc_default = "`THREADS` / 2, at most 64",
      .meaning = "at most this many kept-alive connections to the next hop; a call waits for "
                 "a free one within its timeout. Each connection holds one of the next hop's "
                 "worker threads while it lives: fewer connections than threads leave the "
                 "next hop free to answer `/health`, the admin routes and streams under load" },

    /* limits against slow and greedy clients (docs/security.md) */
    { .name = "THREADS", INTEGER(1, 8192), FIELD(threads), .dflt = "128", BOTH,
      .meaning = "worker threads, one per connection: connections served at once. civetweb "
                 "starts them all with the service and each holds ~20 KB even idle (1024 were "
                 "20 MB of an idle service's 35; docs/database.md, \"Memory\")" },
    { .name = "CONNECTION_QUEUE", INTEGER(1, 65536), FIELD(connection_queue), .dflt = "64",
      LIMITS, .meaning = "accepted connections waiting for a worker" },
    { .name = "LISTEN_BACKLOG", INTEGER(1, 65535), FIELD(listen_backlog), .dflt = "1024",
      LIMITS, .meaning = "connections the kernel holds before accept" },
    { .name = "HEADER_TIMEOUT_MS", INTEGER(100, 600000), FIELD(header_timeout_ms),
      .dflt = "5000", LIMITS,
      .meaning = "a head must arrive within this (civetweb `request_timeout_ms`); also the "
                 "longest wait for one read of a body" },
    { .name = "BODY_TIMEOUT_MS", INTEGER(100, 600000), FIELD(body_timeout_ms), .dflt = "10000",
      LIMITS, .meaning = "a body must arrive within this, else 408" },
    { .name = "KEEP_ALIVE_TIMEOUT_MS", INTEGER(0, 600000), FIELD(keep_alive_timeout_ms),
      .dflt = "5000", LIMITS, .meaning = "an idle kept-alive connection is closed after this" },
    { .name = "MAX_HEADER_BYTES", INTEGER(1024, 1024 * 1024), FIELD(max_header_bytes),
      .dflt = "16384", LIMITS, .meaning = "request line and headers" },
    { .name = "MAX_BODY_BYTES", INTEGER(1, 256 * 1024 * 1024), FIELD(max_body_bytes),
      .dflt = "1048576", LIMITS, .meaning = "a body's bytes; more get 413" },
    { .name = "MAX_BODY_KEYS", INTEGER(1, 1000000), FIELD(body_limits.body_keys),
      .dflt = "1000", SERVICE,
      .meaning = "a body with more keys than this, counted at every depth, gets 413 before it "
                 "is parsed or stored" },
    { .name = "MAX_OBJECT_KEYS", INTEGER(1, 1000000), FIELD(body_limits.object_keys),
      .dflt = "200", SERVICE, .meaning = "an object with more keys: 413" },
    { .name = "MAX_ARRAY_ELEMENTS", INTEGER(1, 1000000), FIELD(body_limits.array_elements),
      .dflt = "1000", SERVICE, .meaning = "an array with more elements: 413" },
    { .name = "MAX_STRING_BYTES", INTEGER(1, 256 * 1024 * 1024), FIELD(body_limits.string_bytes),
      .dflt = "16384", SERVICE,
      .meaning = "a string or key longer than this, in bytes of UTF-8 as decoded: 413" },
    { .name = "THREAD_STACK_KB", INTEGER(128, 65536), FIELD(thread_stack_kb), .dflt = "512",
      LIMITS,
      .meaning = "stack of each thread the service starts; the default is kept under "
                 "ThreadSanitizer" },
    { .name = "MALLOC_ARENAS", INTEGER(1, 64), FIELD(malloc_arenas), .dflt = "2", LIMITS,
      .meaning = "glibc's malloc arenas at most (`M_ARENA_MAX`): the threads share them, so "
                 "what one frees serves the next; glibc's own cap is 8 per core, each arena "
                 "keeping the pages it once used. Not under a sanitizer" },
    { .name = "MAX_CONNECTIONS", INTEGER(1, 1000000), FIELD(max_connections),
      .read = read_max_connections, LIMITS, .doc_default = "`THREADS` + `CONNECTION_QUEUE`",
      .meaning = "more are answered 503 with `Retry-After: 1` at accept time" },
    { .name = "RESERVED_WORKERS", .kind = SETTING_INTEGER, FIELD(reserved_workers),
      .read = read_reserved_workers, BOTH, .doc_default = "16, at most `THREADS` / 4",
      .doc_range = "0..`THREADS` - 1",
      .meaning = "worker threads only `GET`/`HEAD /health` and `/metrics` may take: any other "
                 "request gets 503 with `Retry-After: 1` at `begin_request` while `THREADS` - "
                 "`RESERVED_WORKERS` requests are in handlers" },
    { .name = "SLOW_CLIENT_MS", INTEGER(0, 600000), FIELD(slow_client_ms), .dflt = "300", LIMITS,
      .meaning = "under pressure (`THREADS` - `RESERVED_WORKERS` connections open), a "
                 "connection that has kept its worker waiting this long for the rest of a head "
                 "or body is cut: 408, its worker freed; at `MAX_CONNECTIONS` the longest "
                 "waiting one gives way to a new connection. 0 = never (only the timeouts "
                 "above drop slow clients)" },
    { .name = "ADMIN_AUTH_RATE", NUMBER(0.01, 1000.0), FIELD(admin_auth_rate), .dflt = "2",
      SERVICE,
      .meaning = "wrong admin tokens a second each client address may try after the burst; "
                 "more get 429 with `Retry-After`, see [docs/security.md](docs/security.md)" },
    { .name = "ADMIN_AUTH_BURST", INTEGER(1, 1000), FIELD(admin_auth_burst), .dflt = "5",
      SERVICE, .meaning = "wrong admin tokens an address may try at once" },

    /* replicas and the shared breaker (docs/scale-out.md) */
    { .name = "REPLICA_ID", .kind = SETTING_STRING, FIELD(replica), .read = read_replica,
      .expect = "1 to 63 letters, digits or \"-_.:/@\"", SERVICE,
      .doc_default = "the host name",
      .meaning = "this replica's id (1–63 of letters, digits, `-_.:/@`): in log lines "
                 "(`payment/payment.2` when set or when sharing), `/health`, `/metrics` "
                 "(`service_replica_info`) and the dashboard's service event" },
    { .name = "CB_SHARED", .kind = SETTING_WORDS, FIELD(cb_shared), .dflt = "off",
      .words = on_off, SERVICE,
      .meaning = "`on`: the replicas of this service share the chain breaker by quorum "
                 "through the database ([scale-out](#scale-out-replicas-on-docker-swarm))" },
    { .name = "CB_SHARED_CIRCUIT", .kind = SETTING_STRING, FIELD(cb_shared_circuit),
      .valid = circuit_valid, .expect = "at most 63 bytes", SERVICE,
      .doc_default = "the breaker's name",
      .meaning = "the name the replicas share the circuit under (set it when replicas reach "
                 "the next hop through different addresses)" },
    { .name = "CB_QUORUM", INTEGER(0, 64), FIELD(cb_quorum), .dflt = "0", SERVICE,
      .meaning = "open votes of live replicas that open the shared circuit; 0 = a majority of "
                 "the live replicas" },
    { .name = "CB_HEARTBEAT_TIMEOUT_MS", INTEGER(0, 3600000), FIELD(cb_heartbeat_timeout_ms),
      .dflt = "0", SERVICE, .doc_default = "0 = 3 buckets",
      .meaning = "a replica whose last vote is older leaves the quorum" },
    { .name = "CB_LEASE_MS", INTEGER(0, 3600000), FIELD(cb_lease_ms), .dflt = "0", SERVICE,
      .doc_default = "0 = 2 buckets",
      .meaning = "lifetime of the probe lease, renewed every bucket by its holder: a dead "
                 "prober's lease runs out" },

    /* the breakers, by default the original demo's options */
    { .name = "CB_TIMEOUT_MS", INTEGER(0, 3600000), FIELD(cb_timeout_ms), .dflt = "300",
      SERVICE, .meaning = "chain breaker: timeout of the downstream call, the demo's" },
    { .name = "CB_RESET_TIMEOUT_MS", INTEGER(1, 86400000), FIELD(cb_reset_timeout_ms),
      .dflt = "10000", SERVICE,
      .meaning = "chain breaker: open → half-open after this, the demo's" },
    { .name = "CB_ERROR_THRESHOLD", INTEGER(0, 100), FIELD(cb_error_threshold), .dflt = "50",
      SERVICE, .meaning = "chain breaker: opens above this error percentage, the demo's" },
    { .name = "CB_VOLUME_THRESHOLD", INTEGER(0, 1000000), FIELD(cb_volume_threshold),
      .dflt = "0", SERVICE, .meaning = "chain breaker: calls in the window before it may open" },
    { .name = "CB_WINDOW_MS", INTEGER(1, 86400000), FIELD(cb_window_ms), .dflt = "10000",
      SERVICE, .meaning = "chain breaker: rolling window length" },
    { .name = "CB_BUCKETS", INTEGER(1, 10000), FIELD(cb_buckets), .dflt = "10",
      .finish = finish_cb_buckets, SERVICE,
      .meaning = "chain breaker: buckets in the window, which they must divide" },
    { .name = "CB_HALF_OPEN_CALLS", INTEGER(1, 10000), FIELD(cb_half_open_calls), .dflt = "1",
      SERVICE, .meaning = "chain breaker: trial calls admitted while half-open" },
    { .name = "CB_BACKOFF", NUMBER(1.0, 100.0), FIELD(cb_backoff), .dflt = "1.0", SERVICE,
      .meaning = "chain breaker: multiplier of the open period on each re-open; 1 = none" },
    { .name = "CB_BACKOFF_MAX_MS", INTEGER(0, 86400000), FIELD(cb_backoff_max_ms), .dflt = "0",
      SERVICE, .meaning = "chain breaker: cap of the backed-off open period; 0 = none" },
    { .name = "RETRY_ATTEMPTS", INTEGER(1, 100), FIELD(retry_attempts), .dflt = "1", SERVICE,
      .meaning = "attempts of each call to the next hop, the first included; 1 = no retry, the "
                 "demo's. A timeout, a refused or broken connection, 502, 503 and 504 are retried, "
                 "never a call the breaker refused (open, capacity). `POST /retry` changes the "
                 "`RETRY_*` settings at runtime" },
    { .name = "RETRY_BASE_MS", INTEGER(0, 60000), FIELD(retry_base_ms), .dflt = "100", SERVICE,
      .meaning = "the back-off before retry n is random in [0, min(`RETRY_CAP_MS`, "
                 "`RETRY_BASE_MS` × 2^(n-1))] ms (full jitter); no retry or back-off passes the "
                 "call's deadline" },
    { .name = "RETRY_CAP_MS", INTEGER(0, 600000), FIELD(retry_cap_ms), .dflt = "1000", SERVICE,
      .meaning = "the back-off's ceiling" },
    { .name = "RETRY_BUDGET_TOKENS", INTEGER(0, 1000), FIELD(retry_budget_tokens), .dflt = "10",
      SERVICE,
      .meaning = "the retry budget shared by every call (gRPC's retry throttle): a failure that "
                 "may be retried costs a token, and retries stop while half or fewer are left; "
                 "0 = no budget" },
    { .name = "RETRY_BUDGET_RATIO", NUMBER(0.001, 1000.0), FIELD(retry_budget_ratio),
      .dflt = "0.1", SERVICE, .meaning = "tokens a successful attempt gives back to the budget" },
    { .name = "SHED", .kind = SETTING_WORDS, FIELD(shed), .dflt = "off", .words = on_off, SERVICE,
      .meaning = "`on`: an adaptive concurrency limit (TCP Vegas, libcb's `cb_limit.h`) guards "
                 "`POST /create` before its body is read; a request over the limit gets 503 "
                 "with `Retry-After: 1` at once, nothing stored. The limit grows while latency "
                 "stays near the no-load latency and shrinks when it rises or a request ends "
                 "5xx. `/`, `/health`, `/metrics`, the streams and the admin routes are never "
                 "shed. `POST /shed` changes the `SHED*` settings at runtime" },
    { .name = "SHED_INITIAL_LIMIT", INTEGER(1, 100000), FIELD(shed_initial_limit), .dflt = "20",
      SERVICE, .meaning = "requests in flight the limit starts from (and starts again from on "
                          "each `POST /shed`), kept within the bounds below" },
    { .name = "SHED_MIN_LIMIT", INTEGER(1, 100000), FIELD(shed_min_limit), .dflt = "1", SERVICE,
      .meaning = "the concurrency limit never falls below this many requests" },
    { .name = "SHED_MAX_LIMIT", INTEGER(1, 100000), FIELD(shed_max_limit), .dflt = "100",
      .finish = finish_shed_limits, SERVICE,
      .meaning = "the concurrency limit never grows above this many requests; at least "
                 "`SHED_MIN_LIMIT`" },
    { .name = "HEDGE_MAX_COPIES", INTEGER(1, 8), FIELD(hedge_max_copies), .dflt = "1", SERVICE,
      .meaning = "copies of each call to the next hop, the first included; 1 = no hedging. A copy "
                 "starts when the earlier ones have not answered after the hedging delay; the first "
                 "success wins and the others are cancelled; every copy carries the call's "
                 "Idempotency-Key and is one call of the breaker. `POST /hedge` changes the "
                 "`HEDGE_*` settings at runtime" },
    { .name = "HEDGE_DELAY_MS", INTEGER(0, 600000), FIELD(hedge_delay_ms), .dflt = "50",
      SERVICE, .meaning = "the hedging delay, or its floor when `HEDGE_PERCENTILE` is set" },
    { .name = "HEDGE_PERCENTILE", NUMBER(0.0, 99.9), FIELD(hedge_percentile), .dflt = "0",
      SERVICE, .meaning = "0 = the fixed `HEDGE_DELAY_MS`; else 1..99.9: the delay is this "
                 "percentile of the last 100 winning calls' latencies (after 20), at least "
                 "`HEDGE_DELAY_MS`" },
    { .name = "HEDGE_BUDGET_RATIO", NUMBER(0.001, 1.0), FIELD(hedge_budget_ratio),
      .dflt = "0.1", SERVICE,
      .meaning = "hedges may be at most this fraction of calls: a token bucket of 10 tokens, a "
                 "call adds this many, a hedge takes one" },
    { .name = "OTEL_EXPORTER_OTLP_ENDPOINT", .kind = SETTING_STRING, FIELD(otel_endpoint),
      .valid = chain_url_valid, .expect = "an http:// or https:// URL", SERVICE,
      .meaning = "tracing: the OpenTelemetry collector (Jaeger) that spans are sent to, as OTLP "
                 "over HTTP with JSON, at `<url>/v1/traces`, e.g. `http://127.0.0.1:4318`; none = "
                 "no spans (`make run TRACES=on` sets it; see docs/tracing.md)" },
    { .name = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", .kind = SETTING_STRING,
      FIELD(otel_traces_endpoint), .valid = chain_url_valid,
      .expect = "an http:// or https:// URL", SERVICE,
      .meaning = "tracing: the whole URL spans are POSTed to, instead of the one above's "
                 "`/v1/traces`" },
    { .name = "OTEL_SERVICE_NAME", .kind = SETTING_STRING, FIELD(otel_service), SERVICE,
      .doc_default = "`ID`", .meaning = "tracing: the spans' `service.name`" },
    { .name = "OTEL_TRACES_SAMPLER", .kind = SETTING_WORDS, FIELD(otel_sampler),
      .dflt = "parentbased_always_on", .words = samplers, SERVICE,
      .meaning = "tracing: which requests record spans: `always_on`, `always_off`, "
                 "`traceidratio` (a share of trace ids, `OTEL_TRACES_SAMPLER_ARG`), or "
                 "`parentbased_...` of each: a request whose caller sent a `traceparent` "
                 "follows the caller's sampled flag" },
    { .name = "OTEL_TRACES_SAMPLER_ARG", NUMBER(0.0, 1.0), FIELD(otel_sampler_arg), .dflt = "1",
      SERVICE, .meaning = "tracing: the share of traces the ratio samplers record" },
    { .name = "OTEL_BSP_MAX_QUEUE_SIZE", INTEGER(1, 1000000), FIELD(otel_queue), .dflt = "2048",
      SERVICE, .meaning = "tracing: ended spans waiting to be sent at most; when the collector "
                          "is slow or gone, more are dropped and counted "
                          "(`otel_spans_dropped_total`), never waited for" },
    { .name = "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", INTEGER(1, 100000), FIELD(otel_batch),
      .dflt = "512", SERVICE, .meaning = "tracing: spans sent in one POST at most" },
    { .name = "OTEL_BSP_SCHEDULE_DELAY", INTEGER(1, 600000), FIELD(otel_delay_ms),
      .dflt = "1000", SERVICE,
      .meaning = "tracing: ms between two sends of what has ended (a full batch leaves at once)" },
    { .name = "OTEL_EXPORTER_OTLP_TIMEOUT", INTEGER(1, 600000), FIELD(otel_timeout_ms),
      .dflt = "10000", SERVICE, .meaning = "tracing: ms one send may take" },
    { .name = "TRACES_QUERY_URL", .kind = SETTING_STRING, FIELD(traces_query_url),
      .valid = chain_url_valid, .expect = "an http:// or https:// URL", SERVICE,
      .meaning = "tracing: the base URL of Jaeger's query API (`http://localhost:16686`), shown "
                 "on `/health` so that the dashboard draws a request's trace from it" },
    { .name = "DB_CB_RESET_TIMEOUT_MS", INTEGER(1, 86400000), FIELD(db_cb_reset_timeout_ms),
      .dflt = "5000", SERVICE, .meaning = "database breaker: open → half-open after this" },
    { .name = "DB_CB_ERROR_THRESHOLD", INTEGER(0, 100), FIELD(db_cb_error_threshold),
      .dflt = "50", SERVICE,
      .meaning = "database breaker: opens above this percentage of failed writes" },
    { .name = "DB_CB_VOLUME_THRESHOLD", INTEGER(0, 1000000), FIELD(db_cb_volume_threshold),
      .dflt = "3", SERVICE,
      .meaning = "database breaker: writes in the window before it may open" },
};

const size_t svc_settings_count = sizeof svc_settings / sizeof svc_settings[0];

int config_load(svc_config *c, const svc_spec *spec, char *err, size_t errlen)
{
    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < svc_settings_count; i++) {
        const svc_setting *s = &svc_settings[i];
        const char *v = env(s->name);
        if (s->read) {
            if (s->read(c, spec, s, v, err, errlen))
                return -1;
        } else if (s->size && (v || s->dflt)) {
            if (setting_parse(s, v ? v : s->dflt, c, err, errlen))
                return -1;
        }
    }
    for (size_t i = 0; i < svc_settings_count; i++)
        if (svc_settings[i].finish && svc_settings[i].finish(c, err, errlen))
            return -1;
    return 0;
}

/* The row of svc_settings[] named name, or NULL. */
static const svc_setting *setting_named(const char *name)
{
    for (size_t i = 0; i < svc_settings_count; i++)
        if (!strcmp(svc_settings[i].name, name))
            return &svc_settings[i];
    return NULL;
}

int setting_field_set(const setting_field *fields, size_t n, const char *name, bool is_number,
                      double value, void *out, const char *others, char *err, size_t errlen)
{
    size_t i = 0;
    while (i < n && strcmp(name, fields[i].json))
        i++;
    if (i == n) {
        int used = snprintf(err, errlen, "unknown field \"%.64s\"; the fields are %s%s", name,
                            others ? others : "", others ? ", " : "");
        for (size_t k = 0; k < n && used >= 0 && (size_t)used < errlen; k++)
            used += snprintf(err + used, errlen - (size_t)used, "%s%s", fields[k].json, k + 1 < n ? ", " : "");
        return -1;
    }
    const setting_field *f = &fields[i];
    const svc_setting *row = setting_named(f->setting);
    bool whole = f->type != 'd';
    if (!row || !is_number || !isfinite(value) || value < row->lo || value > row->hi ||
        (whole && value != floor(value))) {
        snprintf(err, errlen, "%s must be %s in %g..%g (as %s)", f->json, whole ? "an integer" : "a number",
                 row ? row->lo : 0, row ? row->hi : 0, f->setting);
        return -1;
    }
    char *field = (char *)out + f->offset;
    if (f->type == 'i')
        *(int *)field = (int)value;
    else if (f->type == 'l')
        *(int64_t *)field = (int64_t)value;
    else
        *(double *)field = value;
    return 0;
}
