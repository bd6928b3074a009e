/* main.c -- the chaos runner's command line: runs one experiment file against a running stack (make chaos EXP=...).
 *
 *   chaos EXPERIMENT.json [--order URL] [--payment URL] [--shipment URL]
 *         [--token T] [--out DIR] [--mongo URL] [--run-dir DIR] [--check]
 *
 * Base URLs from the flags or ORDER_URL, PAYMENT_URL, SHIPMENT_URL (default
 * http://127.0.0.1:3000..3002, make run's stack); the admin token from
 * --token or ADMIN_TOKEN; the database the documents-stored probe reads from
 * --mongo or MONGO_URL (default mongodb://127.0.0.1:27017, make run's), its
 * name from the URL's path or MONGO_DB (default "resilience"), as the
 * services take them. The folder of make run's pid files (the kill and
 * restart actions) from --run-dir or RUN_DIR, else from the services'
 * /health ("supervisor".run_dir). --out defaults to build/chaos/<experiment name>.
 * --check only checks the file. Exit 0: the experiment passed; 1: it did
 * not; 2: a bad file, flag or stack (named), nothing run.
 */
#include "experiment.h"
#include "run.h"

#include <ctype.h>
#include <curl/curl.h>
#include <mongoc/mongoc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: chaos EXPERIMENT.json [--order URL] [--payment URL] [--shipment URL] [--token T]\n"
    "             [--out DIR] [--mongo URL] [--run-dir DIR] [--check]\n";

/* The handler of SIGINT and SIGTERM: notes the signal; the main thread rolls back. */
static void on_signal(int sig)
{
    chaos_signal = sig;
}

/* Checks "http(s)://host:port" (no path, no spaces). */
static bool base_url_ok(const char *u)
{
    const char *rest = strncmp(u, "http://", 7) == 0 ? u + 7 : strncmp(u, "https://", 8) == 0 ? u + 8 : NULL;
    const char *colon = rest ? strrchr(rest, ':') : NULL;
    if (!colon || colon == rest || !colon[1])
        return false;
    for (const char *p = rest; p < colon; p++)
        if (*p == '/' || isspace((unsigned char)*p))
            return false;
    for (const char *p = colon + 1; *p; p++)
        if (!isdigit((unsigned char)*p))
            return false;
    return true;
}

/* The value of flag name at argv[*i] ("--name V" or "--name=V"), or NULL when argv[*i] is another flag.
 * Exits 2 when the value is missing. */
static const char *flag(int argc, char **argv, int *i, const char *name)
{
    size_t n = strlen(name);
    if (strncmp(argv[*i], name, n) != 0)
        return NULL;
    if (argv[*i][n] == '=')
        return argv[*i] + n + 1;
    if (argv[*i][n] != '\0')
        return NULL;
    if (*i + 1 >= argc) {
        fprintf(stderr, "%schaos: %s: expected a value\n", usage, name);
        exit(2);
    }
    return argv[++*i];
}

/* The default output folder: build/chaos/<file name without .json>. */
static void default_out(const char *path, char *out, size_t len)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t n = strlen(base);
    const char *dot = strrchr(base, '.');
    if (dot && dot != base)
        n = (size_t)(dot - base);
    snprintf(out, len, "build/chaos/%.*s", (int)n, base);
}

/* Parses the command line, checks the file, finds the stack, runs. Returns the exit status above. */
int main(int argc, char **argv)
{
    const char *urls[CHAOS_NSVC] = { getenv("ORDER_URL"), getenv("PAYMENT_URL"), getenv("SHIPMENT_URL") };
    static const char *const defaults[CHAOS_NSVC] = { "http://127.0.0.1:3000", "http://127.0.0.1:3001",
                                                      "http://127.0.0.1:3002" };
    const char *token = getenv("ADMIN_TOKEN"), *out = NULL, *mongo = getenv("MONGO_URL"), *path = NULL;
    const char *run_dir = getenv("RUN_DIR");
    bool check = false;
    for (int i = 1; i < argc; i++) {
        const char *v;
        bool known = false;
        for (int s = 0; s < CHAOS_NSVC; s++) {
            char name[32];
            snprintf(name, sizeof name, "--%s", chaos_services[s]);
            if ((v = flag(argc, argv, &i, name))) {
                urls[s] = v;
                known = true;
            }
        }
        if (known)
            continue;
        if ((v = flag(argc, argv, &i, "--token")))
            token = v;
        else if ((v = flag(argc, argv, &i, "--out")))
            out = v;
        else if ((v = flag(argc, argv, &i, "--mongo")))
            mongo = v;
        else if ((v = flag(argc, argv, &i, "--run-dir")))
            run_dir = v;
        else if (strcmp(argv[i], "--check") == 0)
            check = true;
        else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            printf("%s", usage);
            return 0;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "%schaos: %s: unknown flag\n", usage, argv[i]);
            return 2;
        } else if (path) {
            fprintf(stderr, "%schaos: %s: one experiment file at a time\n", usage, argv[i]);
            return 2;
        } else {
            path = argv[i];
        }
    }
    if (!path) {
        fprintf(stderr, "%schaos: the experiment file is missing (see experiments/)\n", usage);
        return 2;
    }
    char err[1200];
    chaos_experiment exp;
    if (chaos_experiment_load(path, &exp, err, sizeof err)) {
        fprintf(stderr, "chaos: %s\n", err);
        return 2;
    }
    if (check) {
        printf("chaos: %s: ok\n", path);
        chaos_experiment_free(&exp);
        return 0;
    }
    chaos_run r = { .exp = &exp, .token = token ? token : "" };
    pthread_mutex_init(&r.lock, NULL);
    for (int s = 0; s < CHAOS_NSVC; s++) {
        const char *u = urls[s] && *urls[s] ? urls[s] : defaults[s];
        size_t n = strlen(u);
        while (n && u[n - 1] == '/')
            n--;
        snprintf(r.urls[s], sizeof r.urls[s], "%.*s", (int)n, u);
        if (!base_url_ok(r.urls[s])) {
            fprintf(stderr, "chaos: --%s: expected http://host:port, got \"%s\"\n", chaos_services[s], u);
            chaos_run_free(&r);
            chaos_experiment_free(&exp);
            return 2;
        }
    }
    char outbuf[1024];
    if (!out) {
        default_out(path, outbuf, sizeof outbuf);
        out = outbuf;
    }
    r.out = out;
    r.mongo_url = mongo && *mongo ? mongo : "mongodb://127.0.0.1:27017";
    r.mongo_db = getenv("MONGO_DB");
    if (run_dir && *run_dir)
        snprintf(r.run_dir, sizeof r.run_dir, "%s", run_dir);

    struct sigaction sa = { .sa_handler = on_signal };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    mongoc_init();
    mongoc_log_set_handler(NULL, NULL);     /* the probe says what went wrong itself */
    int rc;
    if (chaos_discover(&r, err, sizeof err)) {
        fprintf(stderr, "chaos: %s\n", err);
        rc = 2;
    } else {
        rc = chaos_run_experiment(&r);
    }
    chaos_run_free(&r);
    chaos_experiment_free(&exp);
    mongoc_cleanup();
    curl_global_cleanup();
    return rc;
}
