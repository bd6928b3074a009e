/* net.c -- the runner's HTTP client on libcurl: one request set up the same way for the load, the probes and the actions. */
#include "net.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bodies past this are cut (an answer of the chain is under 2 KB). */
#define NET_MAX_BODY (4u << 20)

/* libcurl write callback: appends to the transfer's body (at most NET_MAX_BODY). */
static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
    net_transfer *t = arg;
    size_t len = size * n;
    return dynbuf_add(&t->body, data, len) ? 0 : len;
}


int net_setup(CURL *h, net_transfer *t, const char *method, const char *url, const char *json_body,
              const char *token, long timeout_ms)
{
    memset(t, 0, sizeof *t);
    dynbuf_init(&t->body, NET_MAX_BODY);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms < 3000 ? timeout_ms : 3000L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, t);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, t->errbuf);
    if (json_body) {
        curl_easy_setopt(h, CURLOPT_COPYPOSTFIELDS, json_body);
        t->headers = curl_slist_append(t->headers, "Content-Type: application/json");
        if (!t->headers)
            return -1;
    } else if (strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, 0L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
    }
    if (token && *token) {
        char auth[512];
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
        struct curl_slist *l = curl_slist_append(t->headers, auth);
        if (!l)
            return -1;
        t->headers = l;
    }
    /* no "Expect: 100-continue" round trip for a PUT body */
    struct curl_slist *l = curl_slist_append(t->headers, "Expect:");
    if (!l)
        return -1;
    t->headers = l;
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, t->headers);
    return 0;
}

void net_transfer_done(CURL *h, net_transfer *t, CURLcode rc)
{
    net_answer *a = &t->answer;
    if (rc == CURLE_OK) {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &a->status);
    } else {
        a->status = 0;
        snprintf(a->error, sizeof a->error, "%s", t->errbuf[0] ? t->errbuf : curl_easy_strerror(rc));
    }
    a->body = dynbuf_take(&t->body, &a->len);
    if (!a->body)
        a->body = calloc(1, 1);
    curl_slist_free_all(t->headers);
    t->headers = NULL;
}

long net_request(const char *method, const char *url, const char *json_body, const char *token,
                 long timeout_ms, net_answer *a)
{
    net_transfer t;
    CURL *h = curl_easy_init();
    if (!h || net_setup(h, &t, method, url, json_body, token, timeout_ms)) {
        if (h)
            curl_slist_free_all(t.headers);
        curl_easy_cleanup(h);
        memset(a, 0, sizeof *a);
        snprintf(a->error, sizeof a->error, "out of memory");
        return 0;
    }
    CURLcode rc = curl_easy_perform(h);
    net_transfer_done(h, &t, rc);
    curl_easy_cleanup(h);
    *a = t.answer;
    return a->status;
}

void net_answer_free(net_answer *a)
{
    free(a->body);
    a->body = NULL;
    a->len = 0;
}
