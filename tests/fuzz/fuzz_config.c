/* fuzz_config.c -- libFuzzer harness for the configuration read from the
 * environment (config_load), then the database URL as store_open() takes it.
 * The input is an environment, one NAME=VALUE a line; the process's
 * environment is cleared first, so each input stands alone.
 *
 * Asserts: a refusal names a variable ("NAME: expected ..."); an accepted
 * configuration holds what the runtime relies on without checking again
 * (the window divides into buckets, ranges), and CHAIN_SVC's text names the
 * host curl will call. */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <stdbool.h>
#include <mongoc/mongoc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "config.h"
#include "fuzz_specs.h"
#include "store.h"

#define FUZZ_NAME "fuzz_config"
#include "fuzz_check.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    /* the service's log (libmongoc's complaints about the URLs tried) goes to
     * stdout; libFuzzer reports on stderr */
    int null = open("/dev/null", O_WRONLY);
    if (null >= 0) {
        dup2(null, STDOUT_FILENO);
        close(null);
    }
    mongoc_init();
    return 0;
}

/* Replaces the environment with the input's NAME=VALUE lines. */
static void set_environment(const uint8_t *data, size_t size)
{
    clearenv();
    char *text = malloc(size + 1);
    if (!text)
        return;
    memcpy(text, data, size);
    text[size] = '\0';
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *eq = strchr(line, '=');
        if (!eq || eq == line)
            continue;
        *eq = '\0';
        setenv(line, eq + 1, 1);
    }
    free(text);
}

/* Returns true when text (len bytes) and host are the same IPv4 address in
 * two spellings: curl writes "3" or "0x7f.1" out as "0.0.0.3", "127.0.0.1". */
static bool same_ipv4(const char *text, size_t len, const char *host)
{
    char buf[64];
    struct in_addr a, b;
    if (len >= sizeof buf)
        return false;
    memcpy(buf, text, len);
    buf[len] = '\0';
    return inet_aton(buf, &a) && inet_aton(host, &b) && a.s_addr == b.s_addr;
}

/* Checks that CHAIN_SVC names, after its "://", the host curl will call:
 * the breaker's name and the logs are taken from that text (svc.c). */
static void chain_host_agrees(const char *url, const char *service)
{
    const char *p = strstr(url, "://");
    FUZZ_CHECK(p != NULL, "%s: CHAIN_SVC %s has no \"://\"", service, url);
    p += 3;
    size_t n = strcspn(p, "/?#");
    const char *at = memrchr(p, '@', n);
    if (at) {
        n -= (size_t)(at + 1 - p);
        p = at + 1;
    }
    const char *end = p[0] == '[' ? memchr(p, ']', n) : memchr(p, ':', n);
    size_t hlen = end ? (size_t)(end - p) + (p[0] == '[') : n;
    CURLU *u = curl_url();
    char *host = NULL;
    if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK)
        FUZZ_CHECK((strlen(host) == hlen && !strncasecmp(host, p, hlen)) ||
                   same_ipv4(p, hlen, host),
                   "%s: CHAIN_SVC %s reads as host \"%.*s\", curl calls \"%s\"", service, url,
                   (int)hlen, p, host);
    curl_free(host);
    curl_url_cleanup(u);
}

/* What an accepted configuration promises. */
static void accepted(const svc_config *c, const svc_spec *spec)
{
    FUZZ_CHECK(c->id && *c->id, "%s: no ID", spec->name);
    FUZZ_CHECK(c->port >= 1 && c->port <= 65535, "%s: PORT %d", spec->name, c->port);
    FUZZ_CHECK(c->threads >= 1, "%s: THREADS %d", spec->name, c->threads);
    FUZZ_CHECK(c->err_rate >= 0.0 && c->err_rate <= 1.0, "%s: ERR_RATE %g", spec->name, c->err_rate);
    FUZZ_CHECK(c->cb_buckets >= 1 && c->cb_window_ms >= 1 && c->cb_window_ms % c->cb_buckets == 0,
               "%s: CB_WINDOW_MS %lld, CB_BUCKETS %d", spec->name, (long long)c->cb_window_ms,
               c->cb_buckets);
    FUZZ_CHECK(c->cb_backoff >= 1.0, "%s: CB_BACKOFF %g", spec->name, c->cb_backoff);
    if (c->chain_svc)
        chain_host_agrees(c->chain_svc, spec->name);
    /* store_open() parses MONGO_URL and builds a pool without connecting;
     * mongodb+srv:// would resolve DNS, which a fuzzer must not do */
    if (!strncmp(c->mongo_url, "mongodb://", 10)) {
        store *s = NULL;
        char err[512] = "";
        if (store_open(c->mongo_url, c->mongo_db, spec->collection, c->mongo_timeout_ms,
                       c->db_max_connections, c->db_writers, &s, err,
                       sizeof err) == 0)
            store_close(s);
        else
            FUZZ_CHECK(!strncmp(err, "MONGO_URL", 9), "%s: store_open refused without naming "
                       "MONGO_URL: %s", spec->name, err);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    set_environment(data, size);
    for (int i = 0; i < FUZZ_NSPECS; i++) {
        svc_config c;
        char err[1024] = "";
        if (config_load(&c, fuzz_specs[i], err, sizeof err) == 0)
            accepted(&c, fuzz_specs[i]);
        else
            FUZZ_CHECK(err[0] >= 'A' && err[0] <= 'Z' && strstr(err, ": expected"),
                       "%s: a refusal that names no variable: %s", fuzz_specs[i]->name, err);
    }
    return 0;
}
