/* net.h -- the HTTP client every part of the runner uses (net.c, on libcurl). */
#ifndef CHAOS_NET_H
#define CHAOS_NET_H

#include "dynbuf.h"
#include <curl/curl.h>
#include <stddef.h>

/* An answer: status 0 when none came (error says why); body NUL-terminated. */
typedef struct net_answer {
    long status;
    char *body;
    size_t len;
    char error[256];
} net_answer;

/* Per-transfer state net_setup() hands to libcurl; the caller keeps it alive
 * until the transfer ends and then calls net_transfer_done(). */
typedef struct net_transfer {
    net_answer answer;
    dynbuf body;            /* the answer's body as it arrives */
    struct curl_slist *headers;
    char errbuf[256];
} net_transfer;

/* Sets up handle h (a fresh or reset easy handle) for one request: method,
 * url, an optional JSON body (copied by libcurl), a Bearer token (NULL or ""
 * for none), a total time limit. The answer is collected in t. Returns 0, or
 * -1 when out of memory. */
int net_setup(CURL *h, net_transfer *t, const char *method, const char *url, const char *json_body,
              const char *token, long timeout_ms);

/* Fills t->answer's status or error after the transfer ended with code rc and frees the header list. Can't fail. */
void net_transfer_done(CURL *h, net_transfer *t, CURLcode rc);

/* One blocking request (see net_setup). Always fills *a; free it with
 * net_answer_free(). Returns a->status (0 when no answer came). */
long net_request(const char *method, const char *url, const char *json_body, const char *token,
                 long timeout_ms, net_answer *a);

/* Frees the body. Safe twice. */
void net_answer_free(net_answer *a);

#endif
