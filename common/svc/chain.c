/* chain.c -- POSTs to the next service with libcurl, one reused keep-alive handle per thread.
 *
 * civetweb's worker threads live as long as the server, so a handle kept in
 * thread-specific storage keeps its connection to the next hop open between
 * requests; it is cleaned up when its thread exits.
 */
#include "chain.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CHAIN_MAX_RESPONSE (1024 * 1024)

/* A thread's handle and the headers it sends. */
typedef struct chain_handle {
    CURL *curl;
    struct curl_slist *headers;
} chain_handle;

static pthread_key_t chain_key;

/* Frees a thread's handle (the key's destructor). */
static void chain_handle_free(void *p)
{
    chain_handle *h = p;
    if (!h)
        return;
    curl_easy_cleanup(h->curl);
    curl_slist_free_all(h->headers);
    free(h);
}

int chain_global_init(void)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return -1;
    return pthread_key_create(&chain_key, chain_handle_free) ? -1 : 0;
}

void chain_global_cleanup(void)
{
    chain_handle_free(pthread_getspecific(chain_key));
    pthread_setspecific(chain_key, NULL);
    pthread_key_delete(chain_key);
    curl_global_cleanup();
}

/* Returns the calling thread's handle, creating it. NULL when out of memory. */
static chain_handle *chain_handle_get(void)
{
    chain_handle *h = pthread_getspecific(chain_key);
    if (h)
        return h;
    h = calloc(1, sizeof *h);
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
    pthread_setspecific(chain_key, h);
    return h;
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

/* Appends received bytes to the call's response, refusing over 1 MiB. */
static size_t chain_write(char *data, size_t size, size_t n, void *userp)
{
    chain_call *c = userp;
    size_t len = size * n;
    if (c->response_len + len > CHAIN_MAX_RESPONSE)
        return 0;
    char *grown = realloc(c->response, c->response_len + len + 1);
    if (!grown)
        return 0;
    memcpy(grown + c->response_len, data, len);
    c->response = grown;
    c->response_len += len;
    c->response[c->response_len] = '\0';
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

int chain_post(chain_call *c, long timeout_ms)
{
    chain_handle *h = chain_handle_get();
    if (!h) {
        c->curl_rc = CURLE_OUT_OF_MEMORY;
        return CHAIN_ETRANSFER;
    }
    CURL *k = h->curl;
    struct curl_slist *extra = NULL;
    if (c->headers && *c->headers) {
        /* The thread's fixed headers, then this call's (trace, deadline). */
        for (const struct curl_slist *x = h->headers; x; x = x->next)
            if (!(extra = chain_append(extra, x->data, strlen(x->data))))
                break;
        for (const char *p = c->headers; extra && *p;) {
            size_t n = strcspn(p, "\n");
            extra = chain_append(extra, p, n);
            p += n + (p[n] == '\n');
        }
        if (!extra) {
            c->curl_rc = CURLE_OUT_OF_MEMORY;
            return CHAIN_ETRANSFER;
        }
    }
    curl_easy_setopt(k, CURLOPT_URL, c->url);
    curl_easy_setopt(k, CURLOPT_HTTPHEADER, extra ? extra : h->headers);
    curl_easy_setopt(k, CURLOPT_POSTFIELDS, c->body);
    curl_easy_setopt(k, CURLOPT_POSTFIELDSIZE, (long)strlen(c->body));
    curl_easy_setopt(k, CURLOPT_TIMEOUT_MS, timeout_ms < 1 ? 1L : timeout_ms);
    curl_easy_setopt(k, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(k, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(k, CURLOPT_WRITEFUNCTION, chain_write);
    curl_easy_setopt(k, CURLOPT_WRITEDATA, c);
    c->curl_rc = curl_easy_perform(k);
    c->status = 0;
    curl_easy_getinfo(k, CURLINFO_RESPONSE_CODE, &c->status);
    if (extra) {
        curl_easy_setopt(k, CURLOPT_HTTPHEADER, h->headers);
        curl_slist_free_all(extra);
    }
    return chain_code(c);
}

/* Nanoseconds on CLOCK_MONOTONIC, the breaker's default clock. */
static int64_t chain_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int chain_action(const cb_call *call, void **result)
{
    chain_call *c = call->arg;
    long timeout_ms = 24L * 3600 * 1000;
    int64_t deadline = call->deadline_ns;
    if (c->deadline_ns > 0 && c->deadline_ns < deadline)
        deadline = c->deadline_ns;
    if (deadline != INT64_MAX) {
        /* Rounded up and one more millisecond: a transfer that runs out of
         * time returns just after the deadline, so the breaker counts a
         * timeout rather than a failure. */
        int64_t left_ns = deadline - chain_now_ns();
        timeout_ms = left_ns <= 0 ? 1 : (long)((left_ns + 999999) / 1000000) + 1;
    }
    *result = c;
    return chain_post(c, timeout_ms);
}

const char *chain_reason(int action_rc, char *buf, size_t len)
{
    if (action_rc >= 100)
        snprintf(buf, len, "failure(%d)", action_rc);
    else if (action_rc == CHAIN_ETIMEDOUT)
        snprintf(buf, len, "timeout");
    else if (action_rc == CHAIN_ECONNECT)
        snprintf(buf, len, "failure(connect)");
    else
        snprintf(buf, len, "failure(transfer)");
    return buf;
}
