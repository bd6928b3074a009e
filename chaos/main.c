/* main.c -- the chaos runner's command line: runs one experiment file against a running stack (make chaos EXP=...).
 *
 *   chaos EXPERIMENT.json [--order URL] [--payment URL] [--shipment URL]
 *         [--token T] [--out DIR] [--mongo URL] [--run-dir DIR] [--check]
 *
 * Base URLs from the flags or ORDER_URL, PAYMENT_URL, SHIPMENT_URL (default
 * http://127.0.0.1:<port> with the ports of services.tsv, make run's stack;
 * a flag and a variable for each service there); the admin token from
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
#include "premises.h"
#include "run.h"

#include <ctype.h>
#include <stddef.h>
#include <curl/curl.h>
#include <mongoc/mongoc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Prints the usage line, a flag for each service of services.tsv, to f. */
static void usage(FILE *f)
{
    fprintf(f, "usage: chaos EXPERIMENT.json");
    for (int s = 0; s < CHAOS_NSVC; s++)
        fprintf(f, " [--%s URL]", chaos_services[s].name);
    fprintf(f, " [--token T]\n             [--out DIR] [--mongo URL] [--run-dir DIR] [--check]\n");
}

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

/* Reads flag name at argv[*i], "--name V" or "--name=V", into *value (moving
 * *i past V). Returns 1 when argv[*i] is that flag, 0 when it is another, and
 * -1, with a message on stderr, when its value is missing. */
static int flag(int argc, char **argv, int *i, const char *name, const char **value)
{
    size_t n = strlen(name);
    if (strncmp(argv[*i], name, n) != 0)
        return 0;
    if (argv[*i][n] == '=') {
        *value = argv[*i] + n + 1;
        return 1;
    }
    if (argv[*i][n] != '\0')
        return 0;
    if (*i + 1 >= argc) {
        usage(stderr);
        fprintf(stderr, "chaos: %s: expected a value\n", name);
        return -1;
    }
    *value = argv[++*i];
    return 1;
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

/* The command line, with the environment's values where a flag is absent. */
typedef struct options {
    const char *urls[CHAOS_NSVC];   /* NULL or "": the default */
    const char *token, *out, *mongo, *run_dir, *path;
    bool check, help;
} options;

/* The flags that take a value, and where each goes. */
static const char **value_flag(options *o, const char *arg, char *name, size_t len)
{
    for (int s = 0; s < CHAOS_NSVC; s++) {
        snprintf(name, len, "--%s", chaos_services[s].name);
        if (strncmp(arg, name, strlen(name)) == 0)
            return &o->urls[s];
    }
    static const struct { const char *flag; size_t offset; } rows[] = {
        { "--token", offsetof(options, token) },
        { "--out", offsetof(options, out) },
        { "--mongo", offsetof(options, mongo) },
        { "--run-dir", offsetof(options, run_dir) },
    };
    for (size_t k = 0; k < sizeof rows / sizeof rows[0]; k++)
        if (strncmp(arg, rows[k].flag, strlen(rows[k].flag)) == 0) {
            snprintf(name, len, "%s", rows[k].flag);
            return (const char **)((char *)o + rows[k].offset);
        }
    return NULL;
}

/* Parses the command line into *o, starting from the environment (see the
 * top of this file). Returns 0, or 2 with a message on stderr. */
static int parse_args(int argc, char **argv, options *o)
{
    *o = (options){ .token = getenv("ADMIN_TOKEN"), .mongo = getenv("MONGO_URL"), .run_dir = getenv("RUN_DIR") };
    for (int s = 0; s < CHAOS_NSVC; s++) {
        char var[64];       /* ORDER_URL, ... */
        snprintf(var, sizeof var, "%s_URL", chaos_services[s].name);
        for (char *c = var; *c; c++)
            *c = (char)toupper((unsigned char)*c);
        o->urls[s] = getenv(var);
    }
    for (int i = 1; i < argc; i++) {
        char name[32];
        const char **slot = value_flag(o, argv[i], name, sizeof name);
        int got = slot ? flag(argc, argv, &i, name, slot) : 0;
        if (got < 0)
            return 2;
        if (got > 0)
            continue;
        if (strcmp(argv[i], "--check") == 0) {
            o->check = true;
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            o->help = true;
            return 0;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            usage(stderr);
        fprintf(stderr, "chaos: %s: unknown flag\n", argv[i]);
            return 2;
        } else if (o->path) {
            usage(stderr);
        fprintf(stderr, "chaos: %s: one experiment file at a time\n", argv[i]);
            return 2;
        } else {
            o->path = argv[i];
        }
    }
    if (!o->path) {
        usage(stderr);
        fprintf(stderr, "chaos: the experiment file is missing (see experiments/)\n");
        return 2;
    }
    return 0;
}

/* Fills the run's settings from the options: base URLs (checked), token,
 * output folder (outbuf when defaulted), database, pid files. Returns 0, or
 * 2 with a message on stderr. */
static int set_up_run(chaos_run *r, const options *o, char *outbuf, size_t outlen)
{
    r->token = o->token ? o->token : "";
    for (int s = 0; s < CHAOS_NSVC; s++) {
        char fallback[64];  /* make run's: the port of services.tsv */
        snprintf(fallback, sizeof fallback, "http://127.0.0.1:%d", chaos_services[s].port);
        const char *u = o->urls[s] && *o->urls[s] ? o->urls[s] : fallback;
        size_t n = strlen(u);
        while (n && u[n - 1] == '/')
            n--;
        snprintf(r->urls[s], sizeof r->urls[s], "%.*s", (int)n, u);
        if (!base_url_ok(r->urls[s])) {
            fprintf(stderr, "chaos: --%s: expected http://host:port, got \"%s\"\n", chaos_services[s].name, u);
            return 2;
        }
    }
    if (o->out) {
        r->out = o->out;
    } else {
        default_out(o->path, outbuf, outlen);
        r->out = outbuf;
    }
    r->mongo_url = o->mongo && *o->mongo ? o->mongo : "mongodb://127.0.0.1:27017";
    r->mongo_db = getenv("MONGO_DB");
    if (o->run_dir && *o->run_dir)
        snprintf(r->run_dir, sizeof r->run_dir, "%s", o->run_dir);
    return 0;
}

/* Sets up signals, libcurl and libmongoc, finds the stack and runs the
 * experiment. Returns the exit status above. */
static int run(chaos_run *r)
{
    struct sigaction sa = { .sa_handler = on_signal };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    mongoc_init();
    mongoc_log_set_handler(NULL, NULL);     /* the probe says what went wrong itself */
    char err[1200];
    int rc;
    if (chaos_discover(r, err, sizeof err) || chaos_premises_check(r, err, sizeof err)) {
        fprintf(stderr, "chaos: %s\n", err);
        rc = 2;
    } else {
        rc = chaos_run_experiment(r);
    }
    mongoc_cleanup();
    curl_global_cleanup();
    return rc;
}

/* Parses the command line, checks the file, finds the stack, runs. Returns the exit status above. */
int main(int argc, char **argv)
{
    options o;
    int rc = parse_args(argc, argv, &o);
    if (rc || o.help) {
        if (o.help)
            usage(stdout);
        return rc;
    }
    char err[1200];
    chaos_experiment exp;
    if (chaos_experiment_load(o.path, &exp, err, sizeof err)) {
        fprintf(stderr, "chaos: %s\n", err);
        return 2;
    }
    if (o.check) {
        printf("chaos: %s: ok\n", o.path);
        chaos_experiment_free(&exp);
        return 0;
    }
    chaos_run r = { .exp = &exp };
    pthread_mutex_init(&r.lock, NULL);
    char outbuf[1024];
    rc = set_up_run(&r, &o, outbuf, sizeof outbuf);
    if (rc == 0)
        rc = run(&r);
    chaos_run_free(&r);
    chaos_experiment_free(&exp);
    return rc;
}
