/* svc.c -- a service's lifecycle: configuration, database pool, breaker, civetweb, signals, shutdown.
 *
 * SIGTERM and SIGINT are blocked in every thread and taken by the main thread
 * with sigwait(), so shutdown runs as ordinary code: streams end, civetweb
 * stops accepting and lets the requests in flight finish, then the breaker,
 * the pool and the libraries are released and the process exits 0.
 */
#include "svc.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <malloc.h>
#include <mongoc/mongoc.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "authlimit.h"
#include "chain.h"
#include "chaos.h"
#include "dbwatch.h"
#include "guard.h"
#include "hop_hedge.h"
#include "hop_retry.h"
#include "shed.h"
#include "idem.h"
#include "log.h"
#include "monotime.h"
#include "observe.h"
#include "otel.h"
#include "request.h"
#include "runtime.h"
#include "roster.h"
#include "shared.h"
#include "stacktrim.h"
#include "ticker.h"
#include "wire.h"

/* How long shutdown waits for the requests in flight. */
#define SVC_DRAIN_MS 30000

/* Asks http://127.0.0.1:PORT<path>: "/health" (--healthcheck: up and its
 * database reachable) or "/" (--livecheck: up, whatever the database). An
 * orchestrator that restarts unhealthy tasks (Swarm) uses --livecheck, so
 * that a database outage does not restart every replica. Returns 0 on 200,
 * else 1. */
static int svc_healthcheck(const svc_spec *spec, const char *path)
{
    svc_config cfg;
    char err[512];
    if (config_load(&cfg, spec, err, sizeof err)) {
        fprintf(stderr, "%s: %s\n", spec->name, err);
        return 1;
    }
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", cfg.port, path);
    if (curl_global_init(CURL_GLOBAL_DEFAULT))
        return 1;
    CURL *k = curl_easy_init();
    long status = 0;
    if (k) {
        curl_easy_setopt(k, CURLOPT_URL, url);
        curl_easy_setopt(k, CURLOPT_TIMEOUT_MS, 3000L);
        FILE *sink = fopen("/dev/null", "w");
        curl_easy_setopt(k, CURLOPT_WRITEDATA, sink);
        if (sink && curl_easy_perform(k) == CURLE_OK)
            curl_easy_getinfo(k, CURLINFO_RESPONSE_CODE, &status);
        if (sink)
            fclose(sink);
        curl_easy_cleanup(k);
    }
    curl_global_cleanup();
    return status == 200 ? 0 : 1;
}

/* Returns 0 when port can be bound, -1 (errno set) when it cannot. */
static int svc_port_free(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_ANY) };
    int rc = bind(fd, (struct sockaddr *)&a, sizeof a);
    int saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

/* The breaker's name: "<ID>-><host:port of CHAIN_SVC>". */
static void svc_breaker_name(const svc_config *cfg, char *buf, size_t len)
{
    const char *host = strstr(cfg->chain_svc, "://");
    host = host ? host + 3 : cfg->chain_svc;
    snprintf(buf, len, "%s->%.*s", cfg->id, (int)strcspn(host, "/?#"), host);
}

/* Creates a breaker from o into *out and logs its events. Returns 0, or -1
 * after logging why. */
static int svc_breaker_start(const svc_config *c, cb_options *o, cb_breaker **out, const char *label)
{
    o->ticker = true;
    int rc = cb_create(o, out);
    if (rc) {
        log_message(true, "cannot create the breaker %s: %s (%s)", o->name, cb_strerror(rc),
                    cb_err_name(rc));
        return -1;
    }
    cb_on(*out, log_breaker_mask(c->log_level, c->log_snapshots), log_breaker_event, (void *)label);
    if (otel_on())
        cb_on(*out, CB_EV_ALL, otel_breaker_event, NULL);
    return 0;
}

/* Starts the span exporter when a collector is set (OTEL_*). Returns 0, or
 * -1 after logging why. */
static int svc_tracing_start(const svc_config *c)
{
    static char url[1024];
    const char *base = c->otel_endpoint;
    if (c->otel_traces_endpoint)
        snprintf(url, sizeof url, "%s", c->otel_traces_endpoint);
    else if (base)
        snprintf(url, sizeof url, "%.*s/v1/traces",
                 (int)(strlen(base) - (base[strlen(base) - 1] == '/')), base);
    otel_config o = { .url = url[0] ? url : NULL, .query_url = c->traces_query_url, .service = c->otel_service ? c->otel_service : c->id,
                      .instance = c->replica[0] ? c->replica : NULL,
                      .sampler = c->otel_sampler, .ratio = c->otel_sampler_arg,
                      .queue_size = c->otel_queue, .batch_size = c->otel_batch,
                      .delay_ms = c->otel_delay_ms, .timeout_ms = c->otel_timeout_ms };
    if (otel_start(&o)) {
        log_message(true, "cannot start the span exporter's thread");
        return -1;
    }
    if (o.url)
        log_message(false, "tracing: spans to %s as %s", url, o.service);
    return 0;
}

/* The chain breaker's error filter: a hedged call's copy cancelled because
 * another copy won is not a failure of the next hop (it counts as a
 * success, and no fallback runs for it). */
static bool svc_cancelled_copy(int action_rc, void *arg, void *user)
{
    (void)arg;
    (void)user;
    return action_rc == CHAIN_ECANCELLED;
}

/* Creates rt->breaker for CHAIN_SVC from the configured options. Returns 0,
 * or -1 after logging why. */
static int svc_breaker_create(svc_runtime *rt)
{
    const svc_config *c = &rt->cfg;
    if (!c->chain_svc)
        return 0;
    char name[256];
    svc_breaker_name(c, name, sizeof name);
    snprintf(rt->breaker_label, sizeof rt->breaker_label, "%s -> %s", rt->spec->name,
             rt->spec->pass_on ? rt->spec->pass_on : "next hop");
    cb_options o;
    cb_options_init(&o);
    o.name = name;
    o.action = chain_action;
    o.user = rt;
    o.fallback = request_fallback;
    o.error_filter = svc_cancelled_copy;
    o.timeout_ms = c->cb_timeout_ms;
    o.reset_timeout_ms = c->cb_reset_timeout_ms;
    o.error_threshold_percentage = c->cb_error_threshold;
    o.volume_threshold = c->cb_volume_threshold;
    o.rolling_count_timeout_ms = c->cb_window_ms;
    o.rolling_count_buckets = c->cb_buckets;
    o.half_open_max_calls = c->cb_half_open_calls;
    o.half_open_success_threshold = 1;
    o.reset_backoff_multiplier = c->cb_backoff;
    o.reset_timeout_max_ms = c->cb_backoff_max_ms;
    return svc_breaker_start(c, &o, &rt->breaker, rt->breaker_label);
}

/* Creates rt->db_breaker, "<ID>->mongodb", around document writes. It has no
 * timeout of its own: libmongoc's server selection (MONGO_TIMEOUT_MS) and
 * socket timeouts bound every write, and a write that succeeded late must
 * not be answered as a failure. Returns 0, or -1 after logging why. */
static int svc_db_breaker_create(svc_runtime *rt)
{
    const svc_config *c = &rt->cfg;
    char name[256];
    snprintf(name, sizeof name, "%s->mongodb", c->id);
    snprintf(rt->db_label, sizeof rt->db_label, "%s -> database", rt->spec->name);
    cb_options o;
    cb_options_init(&o);
    o.name = name;
    o.action = request_store_action;
    o.error_filter = request_store_error_filter;
    o.user = rt;
    o.timeout_ms = 0;
    o.reset_timeout_ms = c->db_cb_reset_timeout_ms;
    o.error_threshold_percentage = c->db_cb_error_threshold;
    o.volume_threshold = c->db_cb_volume_threshold;
    return svc_breaker_start(c, &o, &rt->db_breaker, rt->db_label);
}

/* Forwards civetweb's own messages to the log. */
static int svc_civetweb_log(const struct mg_connection *conn, const char *message)
{
    (void)conn;
    log_message(true, "civetweb: %s", message);
    return 1;
}

/* civetweb's connection_closed callback, in the worker thread that served
 * the connection: the accept guard counts it out, and the worker gives
 * back the stack pages the connection touched before it waits for another. */
static void svc_connection_closed(const struct mg_connection *conn)
{
    guard_closed(conn);
    stack_trim();
}

/* How long a request at the reserve's limit waits for the slow body cut in
 * its favour to leave its handler. */
#define SVC_GIVE_WAY_MS 100

/* civetweb's begin_request: request_begin() (request.c), which answers 503
 * while THREADS - RESERVED_WORKERS requests are in handlers. Before that,
 * a request that would be so refused, and has arrived whole (its body
 * too, in civetweb's hands or waiting in the kernel: a client may send it
 * in a packet of its own; one still arriving would only be the next slow
 * body), has the handler that has waited longest for a body cut (wire.c,
 * when SLOW_CLIENT_MS is on; never its own connection), waits up to
 * SVC_GIVE_WAY_MS for it to leave and is admitted in its place, even when
 * another request took the freed count first: a slow body gives way to a
 * whole request, as a slow head gives way to a new connection at accept. */
static int svc_begin_request(struct mg_connection *conn)
{
    svc_runtime *rt = mg_get_user_data(mg_get_context(conn));
    int limit = rt->cfg.threads - rt->cfg.reserved_workers;
    if (rt->cfg.slow_client_ms > 0 && atomic_load(&rt->busy) >= limit && wire_whole_here() &&
        wire_cut_slowest(true)) {
        struct timespec tick = { 0, 1000000 };
        for (int waited = 0; atomic_load(&rt->busy) >= limit && waited < SVC_GIVE_WAY_MS; waited++)
            nanosleep(&tick, NULL);
        /* its place is this request's, whoever reaches the count first */
        request_admit_in_place();
    }
    return request_begin(conn);
}

/* Turns on the raw head scanner (wire.c) for the connections civetweb will
 * serve: descriptors up to the soft limit, this service's names for an
 * absolute-form target (ID and the host name). Returns 0, or -1 after
 * logging why. */
static int svc_wire_start(const svc_config *c)
{
    struct rlimit rl;
    int max_fd = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
                 rl.rlim_cur < (1u << 20) ? (int)rl.rlim_cur : 1 << 20;
    char host[256] = "";
    if (gethostname(host, sizeof host - 1))
        host[0] = '\0';
    const char *names[] = { c->id, host[0] ? host : NULL, NULL };
    if (wire_init(max_fd, c->port, names)) {
        log_message(true, "out of memory for the head scanner of %d descriptors", max_fd);
        return -1;
    }
    return 0;
}

/* Starts civetweb on the configured port with the routes, its limits from
 * the configuration, and the accept-time cap (guard.c). NULL after logging why. */
static struct mg_context *svc_http_start(svc_runtime *rt)
{
    const svc_config *c = &rt->cfg;
    char port[16], threads[16], queue[16], backlog[16], header_ms[16], keep_ms[16], head_max[16];
    snprintf(port, sizeof port, "%d", c->port);
    snprintf(threads, sizeof threads, "%d", c->threads);
    snprintf(queue, sizeof queue, "%d", c->connection_queue);
    snprintf(backlog, sizeof backlog, "%d", c->listen_backlog);
    snprintf(header_ms, sizeof header_ms, "%d", c->header_timeout_ms);
    snprintf(keep_ms, sizeof keep_ms, "%d", c->keep_alive_timeout_ms);
    snprintf(head_max, sizeof head_max, "%d", c->max_header_bytes);
    const char *options[] = {
        "listening_ports", port, "num_threads", threads,
        "connection_queue", queue, "listen_backlog", backlog,
        "enable_keep_alive", "yes", "keep_alive_timeout_ms", keep_ms,
        "request_timeout_ms", header_ms, "max_request_size", head_max,
        /* No CORS answered by civetweb itself: its automatic preflight would
         * allow any origin and any method on every route, the admin routes
         * included. The handlers answer CORS (observe.c for the admin routes). */
        "access_control_allow_origin", "", "access_control_allow_methods", "",
        /* Answers leave in one write; never hold a small one back (Nagle). */
        "tcp_nodelay", "1",
        NULL
    };
    struct mg_callbacks callbacks;
    memset(&callbacks, 0, sizeof callbacks);
    callbacks.log_message = svc_civetweb_log;
    callbacks.begin_request = svc_begin_request;
    callbacks.http_error = request_http_error;
    callbacks.connection_closed = svc_connection_closed;
    callbacks.end_request = request_end;
    if (svc_wire_start(c))
        return NULL;
    wire_slow_init(c->slow_client_ms, c->threads - c->reserved_workers);
    guard_init(c->max_connections, 1, c->id);
    struct mg_init_data init = { .callbacks = &callbacks, .user_data = rt,
                                 .configuration_options = options };
    char text[256] = "";
    unsigned code = 0;
    struct mg_error_data error = { .code = &code, .text = text, .text_buffer_size = sizeof text };
    struct mg_context *ctx = mg_start2(&init, &error);
    if (!ctx) {
        guard_init(0, 0, c->id);
        wire_free();
        log_message(true, "PORT %d: cannot listen: %s", c->port, text);
        return NULL;
    }
    obs_register(ctx);
    request_register(ctx, rt);
    return ctx;
}

/* The slow-client sweep's ticker (wire.c cuts; this logs): one line when
 * cuts begin, one when a second has passed without any, with their count. */
typedef struct svc_slow_watch {
    const svc_config *cfg;
    long seen;          /* cuts counted at the last step */
    long burst_start;   /* cuts counted when the burst began; -1 = no burst */
    int64_t last_ns;    /* when the last cut was seen */
    ticker *ticker;
} svc_slow_watch;

/* The sweep's period: a quarter of SLOW_CLIENT_MS, within 10..100 ms. */
static int64_t svc_slow_period_ms(const svc_config *c)
{
    int64_t p = c->slow_client_ms / 4;
    return p < 10 ? 10 : p > 100 ? 100 : p;
}

/* One step of the sweep (ctx is the svc_slow_watch). */
static void svc_slow_step(void *ctx)
{
    svc_slow_watch *w = ctx;
    long cuts = wire_sweep();
    int64_t now = mono_ns();
    if (cuts != w->seen) {
        if (w->burst_start < 0) {
            w->burst_start = w->seen;
            log_message(false, "slow clients: cutting connections that keep a worker waiting over "
                        "%d ms for a head or body (SLOW_CLIENT_MS; %d connections open)",
                        w->cfg->slow_client_ms, guard_open());
        }
        w->seen = cuts;
        w->last_ns = now;
    } else if (w->burst_start >= 0 && now - w->last_ns >= 1000000000) {
        log_message(false, "slow clients: %ld connection(s) cut; none in the last second",
                    cuts - w->burst_start);
        w->burst_start = -1;
    }
}

/* True while the database breaker holds its circuit open: every write
 * fails at once, which is known without asking the database. */
static bool svc_db_circuit_open(const svc_runtime *rt)
{
    cb_state state = cb_get_state(rt->db_breaker);
    return state == CB_OPEN || state == CB_FORCED_OPEN;
}

/* /health's database check, from what the service already knows (never a
 * wait): the watch's last ping, the database breaker's circuit, and a
 * database fault covering every request, which makes the database look
 * down as it does to the requests. ctx is the svc_runtime. */
static int svc_db_ping(void *ctx)
{
    dbwatch_state st;
    dbwatch_get(&st);
    return chaos_database_down() || !st.reachable || svc_db_circuit_open(ctx) ? 1 : 0;
}

/* /health's database details: how old the state is, since when it holds,
 * why the last ping failed, whether the database circuit is open, and the
 * inserts written with the documents they carried (group commit). ctx is
 * the svc_runtime. */
static void svc_db_detail(void *ctx, cJSON *db)
{
    dbwatch_state st;
    dbwatch_get(&st);
    cJSON_AddNumberToObject(db, "checkedAgoMs", (double)st.checked_ago_ms);
    cJSON_AddNumberToObject(db, "stateForMs", (double)st.since_ms);
    if (st.error[0])
        cJSON_AddStringToObject(db, "error", st.error);
    if (svc_db_circuit_open(ctx))
        cJSON_AddStringToObject(db, "circuit", "open: every write fails at once until its trial succeeds");
    if (chaos_database_down())
        cJSON_AddStringToObject(db, "fault", "the database fault is on (DELETE /chaos clears it)");
    int64_t batches, docs;
    store_get_stats(((svc_runtime *)ctx)->db, &batches, &docs);
    cJSON_AddNumberToObject(db, "inserts", (double)batches);
    cJSON_AddNumberToObject(db, "documentsWritten", (double)docs);
}

/* With IDEMPOTENCY_KEYS, the store's unique index of keys and the table of
 * keys in flight (one slot per worker and then some). Returns 0, or -1
 * after logging why. */
static int svc_keys_start(svc_runtime *rt)
{
    if (!rt->cfg.idempotency_keys)
        return 0;
    store_use_keys(rt->db);
    if (idem_init(rt->cfg.threads + 64) == 0)
        return 0;
    log_message(true, "out of memory for the table of idempotency keys in flight");
    return -1;
}

/* /health's "workers": the bulkhead's counts now. THREADS worker threads,
 * RESERVED_WORKERS of them kept for /health and /metrics, busy the requests
 * between begin_request and end_request, in_handlers those inside a
 * handler; chain the next hop's pool (CHAIN_CONNECTIONS): its connections
 * out on calls and the calls waiting for one. NULL when out of memory. */
static cJSON *svc_workers_json(void *ctx)
{
    svc_runtime *rt = ctx;
    cJSON *w = cJSON_CreateObject();
    if (!w)
        return NULL;
    cJSON_AddNumberToObject(w, "threads", rt->cfg.threads);
    cJSON_AddNumberToObject(w, "reserved", rt->cfg.reserved_workers);
    cJSON_AddNumberToObject(w, "busy", atomic_load(&rt->busy));
    cJSON_AddNumberToObject(w, "in_handlers", atomic_load(&rt->in_flight));
    if (rt->cfg.chain_svc) {
        int size, in_use, waiting;
        chain_pool_counts(&size, &in_use, &waiting);
        cJSON *c = cJSON_AddObjectToObject(w, "chain");
        cJSON_AddNumberToObject(c, "connections", size);
        cJSON_AddNumberToObject(c, "in_use", in_use);
        cJSON_AddNumberToObject(c, "waiting", waiting);
    }
    return w;
}

/* Hands the runtime to the observability module. Returns 0 or -1. */
static int svc_observe(svc_runtime *rt)
{
    obs_source src = {
        .service = rt->cfg.id,
        .breakers = { rt->breaker ? rt->breaker : rt->db_breaker,
                      rt->breaker ? rt->db_breaker : NULL },
        .labels = { rt->breaker ? rt->breaker_label : rt->db_label,
                    rt->breaker ? rt->db_label : NULL },
        .db_ping = svc_db_ping,
        .db_detail = svc_db_detail,
        .db_ctx = rt,
        .db_name = store_db_name(rt->db),
        .admin_token = rt->cfg.admin_token,
        .admin_origin = rt->cfg.admin_origin,
        .run_status_file = rt->cfg.run_status_file,
        .hystrix_interval_ms = 0,
        .replica = rt->cfg.replica,
        .retry_report = rt->breaker ? hop_retry_json : NULL,
        .retry_stats = rt->breaker ? hop_retry_stats : NULL,
        .retry_set = rt->breaker ? hop_retry_set_json : NULL,
        .workers_report = svc_workers_json,
        .workers_ctx = rt,
        .shed_report = shed_json,
        .shed_stats = shed_stats,
        .shed_set = shed_set_json,
        .hedge_report = rt->breaker ? hop_hedge_json : NULL,
        .hedge_stats = rt->breaker ? hop_hedge_stats : NULL,
        .hedge_set = rt->breaker ? hop_hedge_set_json : NULL,
    };
    if (obs_init(&src) != 0)
        return -1;
    obs_set_next(rt->spec->pass_on, rt->cfg.chain_svc);
    return 0;
}

/* Blocks until SIGTERM or SIGINT arrives (they are blocked in every thread). */
static int svc_wait_signal(const sigset_t *set)
{
    int sig = 0;
    while (sigwait(set, &sig) != 0)
        ;
    return sig;
}

/* Refuses new requests (503) and waits, at most SVC_DRAIN_MS, until the
 * requests in flight are answered: civetweb stops writing once mg_stop()
 * begins, so answers must be out before it is called. */
static void svc_drain(svc_runtime *rt)
{
    atomic_store(&rt->draining, true);
    struct timespec tick = { 0, 10 * 1000000 };
    for (int waited = 0; atomic_load(&rt->in_flight) > 0 && waited < SVC_DRAIN_MS; waited += 10)
        nanosleep(&tick, NULL);
    int left = atomic_load(&rt->in_flight);
    if (left > 0)
        log_message(true, "%d request(s) still running after %d ms; stopping anyway", left, SVC_DRAIN_MS);
}

/* Connects once to the service's own port: civetweb's accept loop polls
 * for 2 s at a time and notices mg_stop() only when it wakes, so a
 * connection right after the stop flag is set cuts shutdown by that much. */
static void *svc_waker(void *arg)
{
    int port = *(int *)arg;
    struct timespec pause = { 0, 50 * 1000000 };
    nanosleep(&pause, NULL);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd >= 0) {
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        connect(fd, (struct sockaddr *)&a, sizeof a);
        close(fd);
    }
    return NULL;
}

/* Stops civetweb, waking its accept loop so that it does not sleep out its poll. */
static void svc_http_stop(struct mg_context *ctx, int port)
{
    pthread_t waker;
    bool woken = pthread_create(&waker, NULL, svc_waker, &port) == 0;
    mg_stop(ctx);
    if (woken)
        pthread_join(waker, NULL);
}

/* Serves until a signal, then stops in order. Returns the exit code. */
static int svc_serve(svc_runtime *rt, const sigset_t *set)
{
    if (svc_port_free(rt->cfg.port)) {
        log_message(true, "PORT %d is already in use (%s); stop what uses it or set PORT",
                    rt->cfg.port, strerror(errno));
        return 1;
    }
    struct mg_context *ctx = svc_http_start(rt);
    if (!ctx)
        return 1;
    svc_slow_watch slow = { .cfg = &rt->cfg, .burst_start = -1 };
    if (rt->cfg.slow_client_ms > 0 &&
        ticker_start(svc_slow_period_ms(&rt->cfg), svc_slow_step, &slow, &slow.ticker))
        log_message(true, "no thread for the slow-client sweep: slow clients are cut only when they send");
    log_message(false, "listening on port %d; next hop %s; JUMPS=%d INJECT_ERR=%d ERR_RATE=%g "
                "DELAY_MS=%d; database %s; deadlines %s; admin routes %s",
                rt->cfg.port, rt->cfg.chain_svc ? rt->cfg.chain_svc : "(none, last service)",
                rt->cfg.jumps, rt->cfg.inject_err, rt->cfg.err_rate, rt->cfg.delay_ms,
                store_db_name(rt->db), rt->cfg.deadlines ? "propagated" : "off",
                rt->cfg.admin_token && *rt->cfg.admin_token ? "on" : "off (no ADMIN_TOKEN)");
    int sig = svc_wait_signal(set);
    log_message(false, "%s received: finishing %d request(s) in flight", strsignal(sig),
                atomic_load(&rt->in_flight));
    svc_drain(rt);
    obs_shutdown();
    ticker_stop(slow.ticker);
    wire_close_idle();   /* kept-alive connections: their workers stop now, not in 2 s */
    svc_http_stop(ctx, rt->cfg.port);
    wire_free();
    log_message(false, "stopped");
    return 0;
}

/* Gives every thread started from now on (civetweb's workers above all) a
 * stack of THREAD_STACK_KB (not under ThreadSanitizer), and raises the soft limit on descriptors to what
 * MAX_CONNECTIONS needs (one per connection, plus the database pool, the
 * next hop and the log), at most to the hard limit; says so when that is
 * short. */
static void svc_prepare_limits(const svc_config *c)
{
    pthread_attr_t attr;
#if defined(__SANITIZE_THREAD__)
    /* ThreadSanitizer cannot start threads on small stacks: keep the default. */
    if (0) {
#else
    if (pthread_attr_init(&attr) == 0) {
#endif
        if (pthread_attr_setstacksize(&attr, (size_t)c->thread_stack_kb * 1024) ||
            pthread_setattr_default_np(&attr))
            log_message(true, "THREAD_STACK_KB=%d: cannot set the default stack size",
                        c->thread_stack_kb);
        pthread_attr_destroy(&attr);
    }
    struct rlimit rl;
    rlim_t need = (rlim_t)c->max_connections + (rlim_t)c->threads + 256;
    if (getrlimit(RLIMIT_NOFILE, &rl) || rl.rlim_cur >= need)
        return;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= need ? need : rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < need)
        log_message(true, "open files limited to %llu (hard limit), MAX_CONNECTIONS=%d needs %llu; "
                    "raise ulimit -n", (unsigned long long)rl.rlim_cur, c->max_connections,
                    (unsigned long long)need);
}

/* CB_SHARED=on: the roster of this service's replicas, with the state of
 * each of this replica's breakers, behind GET /replicas. */
static int svc_roster_start(svc_runtime *rt)
{
    size_t n = 0;
    if (rt->breaker)
        rt->roster_breakers[n++] = rt->breaker;
    if (rt->db_breaker)
        rt->roster_breakers[n++] = rt->db_breaker;
    if (roster_start(&rt->cfg, rt->cfg.id, rt->roster_breakers, n, &rt->roster))
        return -1;
    obs_set_roster(roster_json, rt->roster);
    return 0;
}

/* Everything after configuration: libraries, pool, breakers, server. */
static int svc_run(svc_runtime *rt, const sigset_t *set)
{
    char err[512];
    int code = 1;
    svc_prepare_limits(&rt->cfg);
    if (chain_global_init(rt->cfg.chain_connections)) {
        log_message(true, "cannot initialise libcurl");
        return 1;
    }
    mongoc_init();
    mg_init_library(0);
    if (store_open(rt->cfg.mongo_url, rt->cfg.mongo_db, rt->spec->collection,
                   rt->cfg.mongo_timeout_ms, rt->cfg.db_max_connections, rt->cfg.db_writers,
                   &rt->db, err, sizeof err)) {
        log_message(true, "%s", err);
        code = 2;
    } else if (svc_keys_start(rt)) {
        log_message(true, "out of memory for the idempotency keys' table");
    } else if (dbwatch_start(rt->db)) {
        log_message(true, "cannot start the database watch's thread");
    } else if ((authlimit_init(rt->cfg.admin_auth_rate, rt->cfg.admin_auth_burst), 1) &&
               svc_tracing_start(&rt->cfg) == 0 && svc_breaker_create(rt) == 0 && svc_db_breaker_create(rt) == 0 &&
               (!rt->breaker || hop_retry_init(&rt->cfg, rt->cfg.log_level) == 0) &&
               shed_init(&rt->cfg, rt->cfg.log_level) == 0 &&
               (!rt->breaker || hop_hedge_init(&rt->cfg) == 0) &&
               svc_observe(rt) == 0) {
        if (!rt->cfg.cb_shared) {
            code = svc_serve(rt, set);
        } else if (svc_roster_start(rt) == 0 &&
                   (!rt->breaker || shared_start(&rt->cfg, rt->breaker, &rt->shared) == 0)) {
            if (rt->shared)
                obs_set_shared(shared_json, rt->shared); /* before civetweb's threads start */
            code = svc_serve(rt, set);
        }
        shared_stop(rt->shared);
        rt->shared = NULL;
        roster_stop(rt->roster);
        rt->roster = NULL;
        obs_free();
    }
    otel_stop();    /* every request has ended: what is queued is sent */
    dbwatch_stop();
    hop_retry_free();
    shed_free();
    hop_hedge_free();
    cb_destroy(rt->breaker);
    cb_destroy(rt->db_breaker);
    store_close(rt->db);
    mg_exit_library();
    mongoc_cleanup();
    chain_global_cleanup();
    return code;
}

/* Runs the service again, once, in place (same pid) with glibc's per-thread
 * malloc caches off (GLIBC_TUNABLES=glibc.malloc.tcache_count=0), unless
 * GLIBC_TUNABLES already sets that count. Each worker thread otherwise
 * keeps the chunks it freed in a cache of its own that no other thread can
 * use; as connections rotate through the workers every cache fills, and
 * with 1024 workers a service's RSS climbed ~1 MB per 6,000 requests on 16
 * connections without levelling off (flat with the caches off, at the same
 * throughput: docs/database.md, "Memory"). Tunables are read only when a
 * program starts, hence the exec. Not under a sanitizer (its own allocator);
 * when the exec fails the service runs on as it is. */
static void svc_without_thread_caches(char **argv)
{
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    (void)argv;
#else
    const char *t = getenv("GLIBC_TUNABLES");
    if (t && strstr(t, "glibc.malloc.tcache_count"))
        return;
    char value[512];
    int n = snprintf(value, sizeof value, "%s%sglibc.malloc.tcache_count=0", t ? t : "",
                     t && *t ? ":" : "");
    if (n < 0 || (size_t)n >= sizeof value || setenv("GLIBC_TUNABLES", value, 1))
        return;
    execv("/proc/self/exe", argv);
#endif
}

int svc_main(const svc_spec *spec, int argc, char **argv)
{
    if (argc == 2 && !strcmp(argv[1], "--healthcheck"))
        return svc_healthcheck(spec, "/health");
    if (argc == 2 && !strcmp(argv[1], "--livecheck"))
        return svc_healthcheck(spec, "/");
    if (argc > 1) {
        fprintf(stderr, "usage: %s [--healthcheck | --livecheck]\n(configuration comes from the environment)\n",
                argv[0]);
        return 2;
    }
    svc_without_thread_caches(argv);
    /* A fixed threshold: a large body's buffer is its own mapping, given
     * back when freed (glibc otherwise raises the threshold after the first
     * free of one, and later large buffers stay in the heap for good). */
    mallopt(M_MMAP_THRESHOLD, 256 * 1024);
    setvbuf(stdout, NULL, _IOLBF, 0);
    svc_runtime rt = { .spec = spec };
    char err[512];
    if (config_load(&rt.cfg, spec, err, sizeof err)) {
        fprintf(stderr, "%s: configuration error: %s\n", spec->name, err);
        return 2;
    }
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
    /* Before any thread starts: every thread's allocations share
     * MALLOC_ARENAS arenas (see config.c). */
    mallopt(M_ARENA_MAX, rt.cfg.malloc_arenas);
#endif
    log_init(rt.cfg.id, rt.cfg.log_json);
    if (rt.cfg.replica_given || rt.cfg.cb_shared)
        log_set_replica(rt.cfg.replica);
    log_set_level(rt.cfg.log_level);
    chaos_init(rt.cfg.inject_err ? rt.cfg.err_rate : 0.0, rt.cfg.delay_ms);
    chaos_set_listener(obs_chaos_event);    /* every change of the faults on /events.stream */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    return svc_run(&rt, &set);
}
