/* chain.c -- POSTs to the next service with libcurl, over a bounded pool of keep-alive handles.
 *
 * A handle keeps its connection to the next hop open between calls. The pool
 * holds at most `connections` handles (CHAIN_CONNECTIONS, half the worker
 * threads by default): the next hop serves each kept-alive connection with
 * one of its worker threads for as long as the connection lives, so a hop
 * that opened one connection per worker thread could hold every thread of
 * the next one, and its /health, admin routes and streams would wait
 * seconds for a thread. A call that finds every handle busy waits for one
 * within its own time (the pool is a bulkhead); the wait counts against the
 * call's timeout.
 */
#include "chain.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "dynbuf.h"
#include "trace.h"
#include "monotime.h"

#define CHAIN_MAX_RESPONSE (1024 * 1024)

/* A handle and the headers it sends. */
typedef struct chain_handle {
    CURL *curl;
    CURLM *multi;              /* for cancellable transfers; made at the first */
    struct curl_slist *headers;
} chain_handle;

/* The pool: handles made so far (at most size), the idle ones on a stack. */
static struct {
    pthread_mutex_t lock;
    pthread_cond_t freed;
    chain_handle **idle;
    int nidle;
    int made;
    int size;
    int waiting;   /* calls waiting for a handle now */
} chain_pool = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* Frees a handle. */
static void chain_handle_free(chain_handle *h)
{
    if (!h)
        return;
    curl_easy_cleanup(h->curl);
    if (h->multi)
        curl_multi_cleanup(h->multi);
    curl_slist_free_all(h->headers);
    free(h);
}

int chain_global_init(int connections)
{
    if (connections < 1 || curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return -1;
    chain_pool.idle = calloc((size_t)connections, sizeof *chain_pool.idle);
    if (!chain_pool.idle) {
        curl_global_cleanup();
        return -1;
    }
    chain_pool.size = connections;
    chain_pool.nidle = chain_pool.made = 0;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&chain_pool.freed, &ca);
    pthread_condattr_destroy(&ca);
    return 0;
}

void chain_global_cleanup(void)
{
    for (int i = 0; i < chain_pool.nidle; i++)
        chain_handle_free(chain_pool.idle[i]);
    free(chain_pool.idle);
    chain_pool.idle = NULL;
    chain_pool.nidle = chain_pool.made = chain_pool.size = 0;
    pthread_cond_destroy(&chain_pool.freed);
    curl_global_cleanup();
}

/* Makes a handle. NULL when out of memory. */
static chain_handle *chain_handle_new(void)
{
    chain_handle *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->curl = curl_easy_init();
    h->headers = curl_slist_append(NULL, "Content-Type: application/json");
    struct curl_slist *more = h->headers ? curl_slist_append(h->headers, "Expect:") : NULL;
    if (!h->curl || !more) {
        chain_handle_free(h);
        return NULL;
    }
    h->headers = more;
    return h;
}

/* Takes an idle handle, makes one while the pool has room, else waits until
 * one is put back or deadline (CLOCK_MONOTONIC) passes. NULL when none came
 * in time (*timed_out set) or out of memory. */
static chain_handle *chain_handle_take(const struct timespec *deadline, int *timed_out)
{
    *timed_out = 0;
    pthread_mutex_lock(&chain_pool.lock);
    while (chain_pool.nidle == 0 && chain_pool.made >= chain_pool.size) {
        chain_pool.waiting++;
        int rc = pthread_cond_timedwait(&chain_pool.freed, &chain_pool.lock, deadline);
        chain_pool.waiting--;
        if (rc) {
            if (chain_pool.nidle == 0 && chain_pool.made >= chain_pool.size) {
                pthread_mutex_unlock(&chain_pool.lock);
                *timed_out = 1;
                return NULL;
            }
        }
    }
    chain_handle *h = NULL;
    if (chain_pool.nidle > 0) {
        h = chain_pool.idle[--chain_pool.nidle];
    } else {
        chain_pool.made++;
        pthread_mutex_unlock(&chain_pool.lock);
        h = chain_handle_new();
        if (h)
            return h;
        pthread_mutex_lock(&chain_pool.lock);
        chain_pool.made--;
        pthread_cond_signal(&chain_pool.freed);
    }
    pthread_mutex_unlock(&chain_pool.lock);
    return h;
}

/* Puts h back for the next call. */
static void chain_handle_put(chain_handle *h)
{
    pthread_mutex_lock(&chain_pool.lock);
    chain_pool.idle[chain_pool.nidle++] = h;
    pthread_cond_signal(&chain_pool.freed);
    pthread_mutex_unlock(&chain_pool.lock);
}

void chain_pool_counts(int *size, int *in_use, int *waiting)
{
    pthread_mutex_lock(&chain_pool.lock);
    *size = chain_pool.size;
    *in_use = chain_pool.made - chain_pool.nidle;
    *waiting = chain_pool.waiting;
    pthread_mutex_unlock(&chain_pool.lock);
}

/* Appends the n-byte header line at p to list. NULL when out of memory
 * (list is freed then). */
static struct curl_slist *chain_append(struct curl_slist *list, const char *p, size_t n)
{
    char line[512];
    snprintf(line, sizeof line, "%.*s", (int)n, p);
    struct curl_slist *grown = curl_slist_append(list, line);
    if (!grown)
        curl_slist_free_all(list);
    return grown;
}

/* Appends received bytes to the response body (a dynbuf capped at
 * CHAIN_MAX_RESPONSE); over the cap, or out of memory, the transfer fails. */
static size_t chain_write(char *data, size_t size, size_t n, void *userp)
{
    dynbuf *body = userp;
    size_t len = size * n;
    return dynbuf_add(body, data, len) == 0 ? len : 0;
}

/* Reads the db-chain of the answer's Server-Timing header (trace.h). */
static size_t chain_header(char *data, size_t size, size_t n, void *userp)
{
    static const char name[] = "server-timing:";
    chain_call *c = userp;
    size_t len = size * n;
    if (len > sizeof name - 1 && !strncasecmp(data, name, sizeof name - 1))
        trace_parse_db_chain(data + sizeof name - 1, len - (sizeof name - 1), &c->next_db_ns);
    return len;
}

/* Maps a finished transfer to chain_post()'s return. */
static int chain_code(const chain_call *c)
{
    switch (c->curl_rc) {
    case CURLE_OK:
        return (c->status >= 200 && c->status < 300) ? 0 : (int)c->status;
    case CURLE_OPERATION_TIMEDOUT:
        return CHAIN_ETIMEDOUT;
    case CURLE_ABORTED_BY_CALLBACK:
        return CHAIN_ECANCELLED;
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_GOT_NOTHING:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
        return CHAIN_ECONNECT;
    default:
        return CHAIN_ETRANSFER;
    }
}

/* The CLOCK_MONOTONIC time timeout_ms from *start (read now). */
static struct timespec chain_deadline(struct timespec *start, long timeout_ms)
{
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, start);
    deadline.tv_sec = start->tv_sec + timeout_ms / 1000;
    deadline.tv_nsec = start->tv_nsec + (timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    return deadline;
}

/* The header list for c on h: NULL when c adds none (h's own are sent),
 * else h's fixed headers followed by c's (trace, deadline), which the
 * caller frees. Returns 0, or -1 when out of memory. */
static int chain_call_headers(const chain_handle *h, const chain_call *c, struct curl_slist **out)
{
    struct curl_slist *extra = NULL;
    *out = NULL;
    if ((!c->headers || !*c->headers) && !c->traceparent[0])
        return 0;
    for (const struct curl_slist *x = h->headers; x; x = x->next)
        if (!(extra = chain_append(extra, x->data, strlen(x->data))))
            return -1;
    for (const char *p = c->headers ? c->headers : ""; *p;) {
        size_t n = strcspn(p, "\n");
        if (!(extra = chain_append(extra, p, n)))
            return -1;
        p += n + (p[n] == '\n');
    }
    if (c->traceparent[0] && !(extra = chain_append(extra, c->traceparent, strlen(c->traceparent))))
        return -1;
    *out = extra;
    return 0;
}

/* The transfer on h's multi handle, polled every CHAIN_CANCEL_POLL_MS for
 * *cancel: curl_easy_perform() would notice a cancel only at its progress
 * callback, about once a second while it waits for an answer. Returns the
 * transfer's CURLcode, CURLE_ABORTED_BY_CALLBACK when cancelled (the
 * connection is then closed). */
#define CHAIN_CANCEL_POLL_MS 2
static CURLcode chain_perform_cancellable(chain_handle *h, _Atomic int *cancel)
{
    if (!h->multi && !(h->multi = curl_multi_init()))
        return CURLE_OUT_OF_MEMORY;
    if (curl_multi_add_handle(h->multi, h->curl) != CURLM_OK)
        return CURLE_FAILED_INIT;
    CURLcode rc = CURLE_ABORTED_BY_CALLBACK;
    int running = 1;
    while (running && !atomic_load(cancel)) {
        if (curl_multi_perform(h->multi, &running) != CURLM_OK) {
            rc = CURLE_FAILED_INIT;
            break;
        }
        if (running)
            curl_multi_poll(h->multi, NULL, 0, CHAIN_CANCEL_POLL_MS, NULL);
    }
    int queued;
    CURLMsg *m;
    while (!running && (m = curl_multi_info_read(h->multi, &queued)))
        if (m->msg == CURLMSG_DONE)
            rc = m->data.result;
    curl_multi_remove_handle(h->multi, h->curl);
    return rc;
}

/* Runs the transfer of c on h with headers (h's own when NULL) and at most
 * timeout_ms: sets c's curl_rc, status, response and next_db_ns, then
 * leaves h as it found it, for the next call. */
static void chain_perform(chain_handle *h, chain_call *c, struct curl_slist *headers, long timeout_ms)
{
    CURL *k = h->curl;
    dynbuf body;
    dynbuf_init(&body, CHAIN_MAX_RESPONSE);
    curl_easy_setopt(k, CURLOPT_URL, c->url);
    curl_easy_setopt(k, CURLOPT_HTTPHEADER, headers ? headers : h->headers);
    curl_easy_setopt(k, CURLOPT_POSTFIELDS, c->body);
    curl_easy_setopt(k, CURLOPT_POSTFIELDSIZE, (long)strlen(c->body));
    curl_easy_setopt(k, CURLOPT_TIMEOUT_MS, timeout_ms < 1 ? 1L : timeout_ms);
    curl_easy_setopt(k, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(k, CURLOPT_TCP_KEEPALIVE, 1L);
    /* A name is looked up again after a second (curl keeps it 60 s): behind
     * DNS round robin (Swarm's dnsrr) replicas come and go with new addresses. */
    curl_easy_setopt(k, CURLOPT_DNS_CACHE_TIMEOUT, 1L);
    curl_easy_setopt(k, CURLOPT_WRITEFUNCTION, chain_write);
    curl_easy_setopt(k, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(k, CURLOPT_HEADERFUNCTION, chain_header);
    curl_easy_setopt(k, CURLOPT_HEADERDATA, c);
    c->next_db_ns = 0;
    c->curl_rc = c->cancel ? chain_perform_cancellable(h, c->cancel) : curl_easy_perform(k);
    c->status = 0;
    curl_easy_getinfo(k, CURLINFO_RESPONSE_CODE, &c->status);
    c->response = dynbuf_take(&body, &c->response_len);
    if (headers)
        curl_easy_setopt(k, CURLOPT_HTTPHEADER, h->headers);
    curl_easy_setopt(k, CURLOPT_WRITEDATA, NULL);
    curl_easy_setopt(k, CURLOPT_HEADERDATA, NULL);
}

int chain_post(chain_call *c, long timeout_ms)
{
    if (timeout_ms < 1)
        timeout_ms = 1;
    struct timespec start;
    struct timespec deadline = chain_deadline(&start, timeout_ms);
    int timed_out;
    chain_handle *h = chain_handle_take(&deadline, &timed_out);
    c->status = 0;
    if (!h) {
        c->curl_rc = timed_out ? CURLE_OPERATION_TIMEDOUT : CURLE_OUT_OF_MEMORY;
        return timed_out ? CHAIN_ETIMEDOUT : CHAIN_ETRANSFER;
    }
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long waited_ms = (long)((now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000);
    struct curl_slist *headers;
    if (chain_call_headers(h, c, &headers)) {
        chain_handle_put(h);
        c->curl_rc = CURLE_OUT_OF_MEMORY;
        return CHAIN_ETRANSFER;
    }
    chain_perform(h, c, headers, timeout_ms - waited_ms);
    curl_slist_free_all(headers);
    chain_handle_put(h);
    return chain_code(c);
}

/* The client span of one attempt of c: OpenTelemetry's HTTP client
 * attributes, the host and port read from the URL. */
static otel_span *chain_span_begin(chain_call *c)
{
    otel_span *s = otel_child(c->span, "POST", OTEL_CLIENT);
    if (!s)
        return NULL;
    otel_breaker_listen(c->span);   /* a hedged copy runs on a thread of its own */
    otel_str(s, "http.request.method", "POST");
    otel_str(s, "url.full", c->url);
    const char *host = strstr(c->url, "://");
    host = host ? host + 3 : c->url;
    size_t n = strcspn(host, ":/?#");
    char name[96];
    snprintf(name, sizeof name, "%.*s", (int)n, host);
    otel_str(s, "server.address", name);
    otel_int(s, "server.port", host[n] == ':' ? atoi(host + n + 1)
                                              : !strncmp(c->url, "https", 5) ? 443 : 80);
    if (c->attempt)
        otel_int(s, "http.request.resend_count", c->attempt);
    if (c->copy)
        otel_int(s, "app.hedge.copy", c->copy);
    return s;
}

/* Ends it with what the attempt got (rc: chain_post()'s). */
static void chain_span_end(otel_span *s, const chain_call *c, int rc)
{
    if (!s)
        return;
    if (c->status)
        otel_int(s, "http.response.status_code", c->status);
    if (!rc) {
        otel_end(s);
        return;
    }
    char why[32];
    chain_reason(rc, why, sizeof why);
    otel_str(s, "error.type", rc == CHAIN_ETIMEDOUT ? "timeout" : why);
    otel_fail(s, why);
}

int chain_action(const cb_call *call, void **result)
{
    chain_call *c = call->arg;
    /* A retried call (hop_retry.h) runs this again on the same chain_call:
     * the earlier attempt's answer is dropped. */
    free(c->response);
    c->response = NULL;
    c->response_len = 0;
    c->status = 0;
    c->next_db_ns = 0;
    long timeout_ms = 24L * 3600 * 1000;
    int64_t deadline = call->deadline_ns;
    if (c->deadline_ns > 0 && c->deadline_ns < deadline)
        deadline = c->deadline_ns;
    if (deadline != INT64_MAX) {
        /* Rounded up and one more millisecond: a transfer that runs out of
         * time returns just after the deadline, so the breaker counts a
         * timeout rather than a failure. */
        int64_t left_ns = deadline - mono_ns();
        timeout_ms = left_ns <= 0 ? 1 : (long)((left_ns + 999999) / 1000000) + 1;
    }
    *result = c;
    otel_span *span = chain_span_begin(c);
    trace_parent_line(c->traceparent, sizeof c->traceparent, c->trace_id, otel_span_id(span),
                      c->sampled);
    c->attempt++;
    int rc = chain_post(c, timeout_ms);
    chain_span_end(span, c, rc);
    return rc;
}

const char *chain_reason(int action_rc, char *buf, size_t len)
{
    if (action_rc >= 100)
        snprintf(buf, len, "failure(%d)", action_rc);
    else if (action_rc == CHAIN_ETIMEDOUT)
        snprintf(buf, len, "timeout");
    else if (action_rc == CHAIN_ECONNECT)
        snprintf(buf, len, "failure(connect)");
    else if (action_rc == CHAIN_ECANCELLED)
        snprintf(buf, len, "cancelled");
    else
        snprintf(buf, len, "failure(transfer)");
    return buf;
}
