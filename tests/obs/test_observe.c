/* test_observe.c -- the observe module in-process: exact figures with a manual clock,
 * real civetweb and real HTTP (libcurl) for /metrics and /health.
 *
 * The Python suite (run_obs_tests.py) covers the services end to end; this
 * program pins down what only exact inputs can show: histogram buckets and
 * sums to the microsecond, the HystrixCommand figures, the event ring's
 * wrap-around and paging, label escaping of awkward breaker names, and
 * /health's 503 when the database ping fails; and the log writer (log.c):
 * lines from many threads arrive whole, each thread's in order, none lost,
 * and the request line reads as documented.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <cJSON.h>
#include <civetweb.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cb.h"
#include "log.h"
#include "observe.h"
#include "observe_priv.h"

/* ---- fixture: a breaker on a manual clock, observed, served by civetweb ---- */

typedef struct fixture {
    cb_manual_clock *clock;
    cb_breaker *breaker;
    struct mg_context *http;
    int port;
    int db_down;               /* what the fake database ping answers */
} fixture;

/* The action: arg is the latency in microseconds to spend (on the manual
 * clock) and, when negative, a failure after -arg microseconds. */
static int timed_action(const cb_call *call, void **result)
{
    fixture *f = call->user;
    intptr_t us = (intptr_t)call->arg;
    cb_manual_clock_advance_ns(f->clock, (int64_t)(us < 0 ? -us : us) * 1000);
    *result = NULL;
    return us < 0 ? 1 : 0;
}

static int db_ping(void *ctx)
{
    return ((fixture *)ctx)->db_down;
}

static int free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof a;
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(s, (struct sockaddr *)&a, &len), 0);
    close(s);
    return ntohs(a.sin_port);
}

static fixture *fixture_new(const char *breaker_name)
{
    fixture *f = calloc(1, sizeof *f);
    f->clock = cb_manual_clock_new(1000000000);
    cb_options o;
    cb_options_init(&o);
    o.name = breaker_name;
    o.action = timed_action;
    o.user = f;
    o.timeout_ms = 0;
    o.clock = cb_manual_clock_get(f->clock);
    assert_int_equal(cb_create(&o, &f->breaker), CB_OK);
    obs_source src = { .service = "unit", .breakers = { f->breaker }, .db_ping = db_ping,
                       .db_ctx = f, .db_name = "unitdb", .admin_token = "t0k" };
    assert_int_equal(obs_init(&src), 0);
    char port[16];
    f->port = free_port();
    snprintf(port, sizeof port, "127.0.0.1:%d", f->port);
    const char *options[] = { "listening_ports", port, "num_threads", "4", NULL };
    f->http = mg_start(NULL, NULL, options);
    assert_non_null(f->http);
    obs_register(f->http);
    return f;
}

static void fixture_free(fixture *f)
{
    obs_shutdown();
    mg_stop(f->http);
    obs_free();
    cb_destroy(f->breaker);
    cb_manual_clock_free(f->clock);
    free(f);
}

static void fire_us(fixture *f, intptr_t us)
{
    cb_fire(f->breaker, (void *)us, NULL);
}

/* ---- a tiny HTTP client ------------------------------------------------------ */

typedef struct body {
    char *text;
    size_t len;
} body;

static size_t collect(char *data, size_t size, size_t n, void *ctx)
{
    body *b = ctx;
    b->text = realloc(b->text, b->len + size * n + 1);
    memcpy(b->text + b->len, data, size * n);
    b->len += size * n;
    b->text[b->len] = '\0';
    return size * n;
}

/* GETs path; returns the body (caller frees) and stores the status. */
static char *get(fixture *f, const char *path, long *status)
{
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", f->port, path);
    body b = { calloc(1, 1), 0 };
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    curl_easy_cleanup(c);
    return b.text;
}

/* The value of the first line of text starting with series (name and labels). */
static double series(const char *text, const char *line_start)
{
    const char *p = text;
    size_t n = strlen(line_start);
    while (p && *p) {
        if (strncmp(p, line_start, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    fail_msg("no series %s", line_start);
    return -1;
}

/* ---- tests ---------------------------------------------------------------------- */

static void latency_histogram_counts_each_call_in_its_bucket(void **state)
{
    (void)state;
    fixture *f = fixture_new("hist");
    intptr_t lat_us[] = { 500, 3000, -30000, 700000, 7000000 };
    for (size_t i = 0; i < sizeof lat_us / sizeof lat_us[0]; i++)
        fire_us(f, lat_us[i]);
    long status = 0;
    char *m = get(f, "/metrics", &status);
    assert_int_equal(status, 200);
#define B(le) "circuit_breaker_call_duration_seconds_bucket{service=\"unit\",breaker=\"hist\",le=\"" le "\"}"
    assert_true(series(m, B("0.001")) == 1);
    assert_true(series(m, B("0.0025")) == 1);
    assert_true(series(m, B("0.005")) == 2);
    assert_true(series(m, B("0.025")) == 2);
    assert_true(series(m, B("0.05")) == 3);
    assert_true(series(m, B("0.5")) == 3);
    assert_true(series(m, B("1")) == 4);
    assert_true(series(m, B("5")) == 4);
    assert_true(series(m, B("+Inf")) == 5);
#undef B
    const char *labels = "{service=\"unit\",breaker=\"hist\"}";
    char name[128];
    snprintf(name, sizeof name, "circuit_breaker_call_duration_seconds_count%s", labels);
    assert_true(series(m, name) == 5);
    snprintf(name, sizeof name, "circuit_breaker_call_duration_seconds_sum%s", labels);
    assert_float_equal(series(m, name), 7.7335, 1e-6);
    snprintf(name, sizeof name, "circuit_breaker_fires_total%s", labels);
    assert_true(series(m, name) == 5);
    snprintf(name, sizeof name, "circuit_breaker_failures_total%s", labels);
    assert_true(series(m, name) == 1);
    free(m);
    fixture_free(f);
}

static void hystrix_command_reports_exact_window_figures(void **state)
{
    (void)state;
    fixture *f = fixture_new("hx");
    cb_force(f->breaker, CB_FORCE_CLOSED); /* one failure must not open it */
    fire_us(f, 10000);
    fire_us(f, 20000);
    fire_us(f, 30000);
    fire_us(f, -40000);
    char *text = obs_hystrix_json(0);
    cJSON *o = cJSON_Parse(text);
    assert_non_null(o);
    assert_string_equal(cJSON_GetObjectItem(o, "type")->valuestring, "HystrixCommand");
    assert_string_equal(cJSON_GetObjectItem(o, "name")->valuestring, "hx");
    assert_string_equal(cJSON_GetObjectItem(o, "group")->valuestring, "unit");
    assert_int_equal(cJSON_GetObjectItem(o, "requestCount")->valueint, 4);
    assert_int_equal(cJSON_GetObjectItem(o, "errorCount")->valueint, 1);
    assert_int_equal(cJSON_GetObjectItem(o, "errorPercentage")->valueint, 25);
    assert_int_equal(cJSON_GetObjectItem(o, "rollingCountSuccess")->valueint, 3);
    assert_int_equal(cJSON_GetObjectItem(o, "rollingCountFailure")->valueint, 1);
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(o, "isCircuitBreakerOpen")));
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(o, "propertyValue_circuitBreakerForceClosed")));
    cJSON *lat = cJSON_GetObjectItem(o, "latencyExecute");
    assert_int_equal(cJSON_GetArraySize(lat), CB_PERCENTILES);
    assert_int_equal(cJSON_GetObjectItem(lat, "100")->valueint, 40);
    assert_int_equal(cJSON_GetObjectItem(lat, "0")->valueint, 10);
    assert_int_equal(cJSON_GetObjectItem(o, "latencyExecute_mean")->valueint, 25);
    cJSON_Delete(o);
    free(text);
    fixture_free(f);
}

static void event_ring_keeps_the_newest_events_oldest_first(void **state)
{
    (void)state;
    fixture *f = fixture_new("ring");
    cb_force(f->breaker, CB_FORCE_CLOSED);
    for (int i = 0; i < 300; i++)
        fire_us(f, -100); /* one failure event each (no fallback) */
    uint64_t newest = obs_events_newest_seq();
    assert_true(newest >= 300);
    obs_event ev[OBS_EVENT_RING + 8];
    size_t n = obs_events_since(0, ev, sizeof ev / sizeof ev[0]);
    assert_int_equal(n, OBS_EVENT_RING);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(ev[i].seq, newest - OBS_EVENT_RING + 1 + i);
    /* paging: 10 at a time from an old position, in order, never skipping */
    uint64_t after = newest - 25;
    n = obs_events_since(after, ev, 10);
    assert_int_equal(n, 10);
    assert_int_equal(ev[0].seq, after + 1);
    assert_int_equal(ev[9].seq, after + 10);
    assert_int_equal(ev[0].kind, CB_EV_FAILURE);
    assert_int_equal(obs_events_since(newest, ev, 10), 0);
    fixture_free(f);
}

static void metrics_escape_quotes_and_backslashes_in_breaker_names(void **state)
{
    (void)state;
    fixture *f = fixture_new("pay\"ment\\x");
    fire_us(f, 100);
    obs_record_request("/create", 200, 0.002);
    obs_record_request("/create", 200, 0.004);
    obs_record_request("/", 404, 0.0001);
    long status = 0;
    char *m = get(f, "/metrics", &status);
    assert_int_equal(status, 200);
    assert_true(series(m, "circuit_breaker_fires_total{service=\"unit\",breaker=\"pay\\\"ment\\\\x\"}") == 1);
    assert_true(series(m, "http_requests_total{service=\"unit\",route=\"/create\",status=\"200\"}") == 2);
    assert_true(series(m, "http_requests_total{service=\"unit\",route=\"/\",status=\"404\"}") == 1);
    assert_float_equal(series(m, "http_request_duration_seconds_sum{service=\"unit\",route=\"/create\",status=\"200\"}"),
                       0.006, 1e-6);
    /* promtool, when installed, must accept it */
    if (system("command -v promtool >/dev/null 2>&1") == 0) {
        FILE *p = popen("promtool check metrics >/dev/null 2>&1", "w");
        assert_non_null(p);
        fputs(m, p);
        assert_int_equal(pclose(p), 0);
    } else {
        printf("SKIP: promtool is not installed; the text was not linted\n");
    }
    free(m);
    fixture_free(f);
}

static void health_is_503_while_the_database_ping_fails(void **state)
{
    (void)state;
    fixture *f = fixture_new("health");
    long status = 0;
    char *h = get(f, "/health", &status);
    assert_int_equal(status, 200);
    assert_non_null(strstr(h, "\"reachable\":true"));
    free(h);
    f->db_down = 1;
    h = get(f, "/health", &status);
    assert_int_equal(status, 503);
    assert_non_null(strstr(h, "\"reachable\":false"));
    assert_non_null(strstr(h, "\"name\":\"unitdb\""));
    free(h);
    f->db_down = 0;
    free(get(f, "/health", &status));
    assert_int_equal(status, 200);
    fixture_free(f);
}

static void init_twice_is_refused_and_free_allows_a_new_init(void **state)
{
    (void)state;
    fixture *f = fixture_new("twice");
    obs_source src = { .service = "again" };
    assert_int_equal(obs_init(&src), -1);
    fixture_free(f);
    assert_int_equal(obs_init(&src), 0);
    obs_record_request("/", 200, 0.001); /* no breaker, no server: still fine */
    obs_shutdown();
    obs_shutdown();
    obs_free();
}

/* Runs fn with stdout (the file descriptor log.c writes to) sent to a
 * temporary file, flushes the log, and returns the file opened for reading
 * (already unlinked). */
static FILE *capture_log(void (*fn)(void))
{
    fflush(stdout);
    char path[] = "/tmp/test-observe-log-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    int saved = dup(STDOUT_FILENO);
    assert_true(saved >= 0);
    assert_int_equal(dup2(fd, STDOUT_FILENO), STDOUT_FILENO);
    fn();
    log_flush();
    assert_int_equal(dup2(saved, STDOUT_FILENO), STDOUT_FILENO);
    close(saved);
    close(fd);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    unlink(path);
    return f;
}

enum { LOG_THREADS = 16, LOG_LINES = 5000 };

/* One logging thread: LOG_LINES numbered lines. */
static void *log_numbered_lines(void *arg)
{
    int k = (int)(intptr_t)arg;
    for (int i = 0; i < LOG_LINES; i++)
        log_message(false, "logtest t=%d i=%d end", k, i);
    return NULL;
}

/* LOG_THREADS threads log at once: 80,000 lines, several times what the
 * queue's shards hold, so the threads also wait for room. */
static void log_from_many_threads(void)
{
    log_init("logtest", false);
    pthread_t t[LOG_THREADS];
    for (int k = 0; k < LOG_THREADS; k++)
        assert_int_equal(pthread_create(&t[k], NULL, log_numbered_lines, (void *)(intptr_t)k), 0);
    for (int k = 0; k < LOG_THREADS; k++)
        pthread_join(t[k], NULL);
}

static void log_lines_from_many_threads_arrive_whole_in_order_and_none_lost(void **state)
{
    (void)state;
    FILE *f = capture_log(log_from_many_threads);
    int next[LOG_THREADS] = { 0 };
    char line[512];
    long lines = 0;
    while (fgets(line, sizeof line, f)) {
        int k = -1, i = -1, end = 0;
        const char *m = strstr(line, " logtest info logtest t=");
        assert_non_null(m);
        assert_int_equal(sscanf(m, " logtest info logtest t=%d i=%d end\n%n", &k, &i, &end) >= 2, 1);
        assert_true(end > 0 && m[end] == '\0');   /* whole: nothing after the newline */
        assert_true(k >= 0 && k < LOG_THREADS);
        assert_int_equal(i, next[k]);             /* this thread's lines in order */
        next[k]++;
        lines++;
    }
    fclose(f);
    assert_int_equal(lines, (long)LOG_THREADS * LOG_LINES);
    for (int k = 0; k < LOG_THREADS; k++)
        assert_int_equal(next[k], LOG_LINES);
}

/* Set by log_after_a_quiet_millisecond: whether stdout held the quiet line
 * when log_message() returned. */
static bool quiet_line_out_at_return;

/* A line after more than a millisecond without one, then 100 at once. */
static void log_after_a_quiet_millisecond(void)
{
    log_init("logtest", false);
    log_message(false, "logtest before");
    log_flush();   /* nothing queued, the writer idle */
    /* the quiet interval: a millisecond on CLOCK_MONOTONIC, which log.c reads */
    const struct timespec quiet = { 0, 2000000 };
    nanosleep(&quiet, NULL);
    log_message(false, "logtest quiet line");
    char buf[4096];
    ssize_t n = pread(STDOUT_FILENO, buf, sizeof buf - 1, 0);
    buf[n > 0 ? n : 0] = '\0';
    quiet_line_out_at_return = strstr(buf, " logtest quiet line\n") != NULL;
    for (int i = 0; i < 100; i++)
        log_message(false, "logtest burst i=%d end", i);
}

static void a_line_after_a_quiet_millisecond_is_out_when_log_returns_and_keeps_its_place(void **state)
{
    (void)state;
    FILE *f = capture_log(log_after_a_quiet_millisecond);
    assert_true(quiet_line_out_at_return);
    char line[512];
    assert_non_null(fgets(line, sizeof line, f));
    assert_non_null(strstr(line, " logtest before\n"));
    assert_non_null(fgets(line, sizeof line, f));
    assert_non_null(strstr(line, " logtest quiet line\n"));
    for (int i = 0; i < 100; i++) {
        char want[64];
        snprintf(want, sizeof want, " logtest burst i=%d end\n", i);
        assert_non_null(fgets(line, sizeof line, f));
        assert_non_null(strstr(line, want));
    }
    assert_null(fgets(line, sizeof line, f));
    fclose(f);
}

/* Two request lines: a short one, and one whose path and query are cut. */
static void log_two_requests(void)
{
    log_init("logtest", false);
    log_set_level(LOG_REQUESTS);
    log_request("GET", "/create", "count=3", 201, 12.34);
    char uri[600], query[300];
    memset(uri, 'u', sizeof uri - 1);
    uri[0] = '/';
    uri[sizeof uri - 1] = '\0';
    memset(query, 'q', sizeof query - 1);
    query[sizeof query - 1] = '\0';
    log_request("POST", uri, query, 503, 1234567.06);
    log_request("HEAD", "/", NULL, 200, 0.04);
    log_set_level(LOG_TRANSITIONS);
}

static void request_line_reads_method_path_status_and_latency(void **state)
{
    (void)state;
    FILE *f = capture_log(log_two_requests);
    char line[2048], want[1024];
    assert_non_null(fgets(line, sizeof line, f));
    assert_non_null(strstr(line, " logtest request GET /create?count=3 201 12.3ms\n"));
    assert_int_equal(strlen(line), strlen("2026-01-02T03:04:05.678Z") + strlen(strstr(line, " logtest")));
    assert_non_null(fgets(line, sizeof line, f));
    snprintf(want, sizeof want, " logtest request POST /%.399s?%.150s 503 1234567.1ms\n",
             "uuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuu"
             "uuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuu"
             "uuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuu"
             "uuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuu"
             "uuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuu",
             "qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq"
             "qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq");
    assert_non_null(strstr(line, want));
    assert_non_null(fgets(line, sizeof line, f));
    assert_non_null(strstr(line, " logtest request HEAD / 200 0.0ms\n"));
    assert_null(fgets(line, sizeof line, f));
    fclose(f);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    mg_init_library(0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(latency_histogram_counts_each_call_in_its_bucket),
        cmocka_unit_test(hystrix_command_reports_exact_window_figures),
        cmocka_unit_test(event_ring_keeps_the_newest_events_oldest_first),
        cmocka_unit_test(metrics_escape_quotes_and_backslashes_in_breaker_names),
        cmocka_unit_test(health_is_503_while_the_database_ping_fails),
        cmocka_unit_test(init_twice_is_refused_and_free_allows_a_new_init),
        cmocka_unit_test(log_lines_from_many_threads_arrive_whole_in_order_and_none_lost),
        cmocka_unit_test(request_line_reads_method_path_status_and_latency),
        cmocka_unit_test(a_line_after_a_quiet_millisecond_is_out_when_log_returns_and_keeps_its_place),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    mg_exit_library();
    curl_global_cleanup();
    return failed ? 1 : 0;
}
