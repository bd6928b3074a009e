/* fuzz_config.c -- libFuzzer harness for the configuration read from the
 * environment (config_load), then the database URL as store_open() takes it.
 * The input is an environment, one NAME=VALUE a line; the process's
 * environment is cleared first, so each input stands alone.
 *
 * Asserts: a refusal names a variable ("NAME: expected ..."); an accepted
 * configuration holds what the runtime relies on without checking again
 * (the window divides into buckets, ranges, a CHAIN_SVC with a scheme). */
#include <mongoc/mongoc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "fuzz_specs.h"
#include "store.h"

#define FUZZ_CHECK(cond, ...)                                                   \
    do {                                                                        \
        if (!(cond)) {                                                          \
            fprintf(stderr, "fuzz_config: check failed: %s: ", #cond);          \
            fprintf(stderr, __VA_ARGS__);                                       \
            fputc('\n', stderr);                                                \
            abort();                                                            \
        }                                                                       \
    } while (0)

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
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
    FUZZ_CHECK(!c->chain_svc || strstr(c->chain_svc, "://"), "%s: CHAIN_SVC %s", spec->name,
               c->chain_svc);
    /* store_open() parses MONGO_URL and builds a pool without connecting;
     * mongodb+srv:// would resolve DNS, which a fuzzer must not do */
    if (!strncmp(c->mongo_url, "mongodb://", 10)) {
        store *s = NULL;
        char err[512] = "";
        if (store_open(c->mongo_url, c->mongo_db, spec->collection, c->mongo_timeout_ms, &s, err,
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
