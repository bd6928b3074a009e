/* main.c -- the chaos runner's command line: runs one experiment file against a running stack (make chaos EXP=...), a load alone, or the halt.
 *
 *   chaos EXPERIMENT.json [--order URL] [--payment URL] [--shipment URL]
 *         [--token T] [--out DIR] [--mongo URL] [--run-dir DIR] [--check]
 *   chaos --load RATE[/s] [--ramp-to RATE[/s]] [--for SECONDS] [the same flags]
 *   chaos --halt [--order URL] [--payment URL] [--shipment URL] [--token T]
 *
 * --load runs no file: a load of RATE requests a second on order for
 * SECONDS (default 60; 5..600), an experiment whose method is empty, so
 * that a teacher can improvise (curl PUT /chaos, the dashboard): every
 * breaker transition and every fault change made from outside is in the
 * journal and the picture. --ramp-to makes that load ramp, linearly from
 * RATE at the start to this at the end (open loop: each request at its due
 * time). A rate is 1..1000 requests a second, or "<k>x": k times the
 * capacity of --capacity N (requests a second the chain sustains, which
 * make bench-services measures), which also sets the capacity of an
 * experiment file's "<k>x" rates before the file's own load.capacity.
 * --halt is the big red button: on every service
 * it clears the faults (DELETE /chaos) and closes every breaker that is not
 * closed (POST /breaker/close), and says what it cleared; exit 0 when every
 * service answered, 2 naming one that did not.
 *
 * Base URLs from the flags or ORDER_URL, PAYMENT_URL, SHIPMENT_URL (default
 * http://127.0.0.1:<port> with the ports of services.tsv, make run's stack;
 * a flag and a variable for each service there); the admin token from
 * --token or ADMIN_TOKEN; the database the documents-stored probe reads from
 * --mongo or MONGO_URL (default mongodb://127.0.0.1:27017, make run's), its
 * name from the URL's path or MONGO_DB (default "resilience"), as the
 * services take them. The folder of make run's pid files (the kill and
 * restart actions) from --run-dir or RUN_DIR, else from the services'
 * /health ("supervisor".run_dir). Each run keeps its own folder: by default
 * build/chaos/<experiment name>/<YYYYmmdd-HHMMSS>/ (build/chaos/load/... for
 * --load), with build/chaos/<experiment name>/latest a link to the newest;
 * --out DIR writes into DIR itself, and no link. --check only checks the
 * file. SIGINT (Ctrl-C), SIGTERM and SIGHUP (the terminal closed) end the
 * run early: the rollbacks run, and the journal and picture of the run so
 * far are written (exit 1). Exit 0: the experiment passed; 1: it did not,
 * or was interrupted; 2: a bad file, flag or stack (named), nothing run.
 */
#include "experiment.h"
#include "premises.h"
#include "run.h"

#include "halt.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <curl/curl.h>
#include <mongoc/mongoc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Prints the usage line, a flag for each service of services.tsv, to f. */
static void usage(FILE *f)
{
    fprintf(f, "usage: chaos EXPERIMENT.json");
    for (int s = 0; s < CHAOS_NSVC; s++)
        fprintf(f, " [--%s URL]", chaos_services[s].name);
    fprintf(f, " [--token T]\n             [--out DIR] [--mongo URL] [--run-dir DIR] [--check]\n"
               "       chaos --load RATE/s [--ramp-to RATE/s] [--for SECONDS] [the same flags]   a load alone\n"
               "       (a RATE may be \"<k>x\", k times --capacity N; --capacity N also sets a file's)\n"
               "       chaos --halt [the URL and token flags]   clear every fault, close every breaker\n");
}

/* The handler of SIGINT, SIGTERM and SIGHUP: notes the signal; the main thread rolls back. */
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

/* The folder of an experiment's runs: build/chaos/<file name without .json>. */
static void runs_folder(const char *path, char *out, size_t len)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t n = strlen(base);
    const char *dot = strrchr(base, '.');
    if (dot && dot != base)
        n = (size_t)(dot - base);
    snprintf(out, len, "build/chaos/%.*s", (int)n, base);
}

/* This run's own folder in runs (build/chaos/<name>): runs/<YYYYmmdd-HHMMSS>,
 * or with -2, -3, ... when a run of the same second has it already. The
 * folder itself is made when the journal is written. */
static void run_folder(const char *runs, char *out, size_t len)
{
    char stamp[32];
    time_t now = time(NULL);
    struct tm tm;
    strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", localtime_r(&now, &tm));
    snprintf(out, len, "%s/%s", runs, stamp);
    struct stat st;
    for (int k = 2; stat(out, &st) == 0 && k < 1000; k++)
        snprintf(out, len, "%s/%s-%d", runs, stamp, k);
}

/* Points runs/latest at the run folder out (a link to its last part), in
 * one step: the link is made under a temporary name and renamed over the
 * old one. Does nothing when out was not written. Returns 0, or -1 with a
 * message on stderr. */
static int link_latest(const char *runs, const char *out)
{
    struct stat st;
    if (stat(out, &st) != 0)
        return 0;
    const char *leaf = strrchr(out, '/');
    leaf = leaf ? leaf + 1 : out;
    char tmp[1100], latest[1100];
    snprintf(tmp, sizeof tmp, "%s/.latest.%ld", runs, (long)getpid());
    snprintf(latest, sizeof latest, "%s/latest", runs);
    unlink(tmp);
    if (symlink(leaf, tmp) != 0 || rename(tmp, latest) != 0) {
        fprintf(stderr, "chaos: %s: cannot point it at %s (%s)\n", latest, leaf, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* The command line, with the environment's values where a flag is absent. */
typedef struct options {
    const char *urls[CHAOS_NSVC];   /* NULL or "": the default */
    const char *token, *out, *mongo, *run_dir, *path;
    const char *load, *seconds;     /* --load RATE/s, --for SECONDS: a load alone */
    const char *ramp_to;            /* --ramp-to RATE/s: the load alone ramps to this */
    const char *capacity;           /* --capacity N: what the rates "<k>x" multiply */
    bool check, help, halt;
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
        { "--load", offsetof(options, load) },
        { "--for", offsetof(options, seconds) },
        { "--ramp-to", offsetof(options, ramp_to) },
        { "--capacity", offsetof(options, capacity) },
    };
    for (size_t k = 0; k < sizeof rows / sizeof rows[0]; k++)
        if (strncmp(arg, rows[k].flag, strlen(rows[k].flag)) == 0) {
            snprintf(name, len, "%s", rows[k].flag);
            return (const char **)((char *)o + rows[k].offset);
        }
    return NULL;
}

/* The modes' rules: an experiment file, --load or --halt, one of them;
 * --for only with --load; --check only with a file. Returns 0, or 2 with a
 * message on stderr. */
static int modes_ok(const options *o)
{
    const char *why = NULL;
    if (o->halt && (o->path || o->load || o->seconds || o->check))
        why = "--halt takes no experiment file, --load, --for or --check";
    else if (o->load && o->path)
        why = "--load runs without an experiment file (a file's load is its \"load\")";
    else if (o->seconds && !o->load)
        why = "--for goes with --load";
    else if (o->ramp_to && !o->load)
        why = "--ramp-to goes with --load (a file's ramp is its load.ramp_to)";
    else if (o->capacity && o->halt)
        why = "--capacity goes with --load or an experiment file";
    else if (o->load && o->check)
        why = "--check checks an experiment file";
    else if (!o->path && !o->load && !o->halt)
        why = "the experiment file is missing (see experiments/), or give --load RATE/s or --halt";
    if (!why)
        return 0;
    usage(stderr);
    fprintf(stderr, "chaos: %s\n", why);
    return 2;
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
        } else if (strcmp(argv[i], "--halt") == 0) {
            o->halt = true;
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
    return modes_ok(o);
}

/* Fills the run's settings from the options: base URLs (checked), token,
 * output folder (outbuf when defaulted: a new folder in runs, the folder of
 * the experiment's runs), database, pid files. Returns 0, or 2 with a
 * message on stderr. */
static int set_up_run(chaos_run *r, const options *o, char *outbuf, size_t outlen, char *runs, size_t runslen)
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
    runs[0] = '\0';
    if (o->out) {
        r->out = o->out;
    } else {
        runs_folder(o->path ? o->path : "load", runs, runslen);
        run_folder(runs, outbuf, outlen);
        r->out = outbuf;
    }
    r->mongo_url = o->mongo && *o->mongo ? o->mongo : "mongodb://127.0.0.1:27017";
    r->mongo_db = getenv("MONGO_DB");
    if (o->run_dir && *o->run_dir)
        snprintf(r->run_dir, sizeof r->run_dir, "%s", o->run_dir);
    return 0;
}

/* Sets up signals, libcurl and libmongoc, finds the stack and runs the
 * experiment (or the halt). Returns the exit status above. */
static int run(chaos_run *r, bool halt)
{
    struct sigaction sa = { .sa_handler = on_signal };
    sigemptyset(&sa.sa_mask);
    static const int caught[] = { SIGINT, SIGTERM, SIGHUP };
    for (size_t i = 0; i < sizeof caught / sizeof caught[0]; i++)
        sigaction(caught[i], &sa, NULL);
    /* a terminal or pipe gone must not end the runner before its rollbacks */
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (halt) {
        int rc = chaos_halt(r);
        curl_global_cleanup();
        return rc;
    }
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

/* Reads a number with an optional unit (unit: "/s", "s") in [lo, hi] from
 * text into *out. Returns 0, or 2 with a message naming flag on stderr. */
static int number_flag(const char *flag, const char *text, const char *unit, double lo, double hi, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(text, &end);
    if (end != text && strcmp(end, unit) == 0)
        end += strlen(unit);
    if (errno || end == text || *end || !(v >= lo && v <= hi)) {
        usage(stderr);
        fprintf(stderr, "chaos: %s: expected a number in %g..%g%s, got \"%s\"\n", flag, lo, hi,
                unit[0] == '/' ? " (requests a second, e.g. 10/s)" : " (seconds)", text);
        return 2;
    }
    *out = v;
    return 0;
}

/* Writes a rate flag's text as a JSON value into buf: "<k>x" as a string
 * (experiment.c multiplies it by the capacity), else a number of requests
 * a second checked here. Returns 0, or 2 with a message on stderr. */
static int rate_value(const char *flag, const char *text, char *buf, size_t len)
{
    char *end = NULL;
    double k = strtod(text, &end);
    if (end != text && strcmp(end, "x") == 0 && k > 0 && isfinite(k)) {
        snprintf(buf, len, "\"%.17gx\"", k);
        return 0;
    }
    double rate;
    if (number_flag(flag, text, "/s", CHAOS_MIN_RATE, CHAOS_MAX_RATE, &rate))
        return 2;
    snprintf(buf, len, "%.17g", rate);
    return 0;
}

/* The --capacity flag's number (0 when absent). Returns 0, or 2 with a message on stderr. */
static int capacity_flag(const options *o, double *capacity)
{
    *capacity = 0;
    return o->capacity ? number_flag("--capacity", o->capacity, "/s", 1, 1e6, capacity) : 0;
}

/* The experiment of --load: its load (with --ramp-to, a ramp) and an empty
 * method, checked like a file. Returns 0, or 2 with a message on stderr. */
static int load_only(const options *o, double capacity, chaos_experiment *exp)
{
    double seconds = 60;
    char rate[64], ramp[64] = "";
    if (rate_value("--load", o->load, rate, sizeof rate) ||
        (o->ramp_to && rate_value("--ramp-to", o->ramp_to, ramp, sizeof ramp)) ||
        (o->seconds && number_flag("--for", o->seconds, "s", 5, 600, &seconds)))
        return 2;
    char *text = malloc(600), err[1200], what[160];
    if (!text) {
        fprintf(stderr, "chaos: out of memory\n");
        return 2;
    }
    if (ramp[0])
        snprintf(what, sizeof what, "a ramp from %s to %s requests a second over %g s", o->load, o->ramp_to,
                 seconds);
    else
        snprintf(what, sizeof what, "%s requests a second for %g s", o->load, seconds);
    for (char *q = what; *q; q++)   /* the flags' words go into a JSON string */
        if (*q == '"' || *q == '\\' || (unsigned char)*q < 0x20)
            *q = '?';
    snprintf(text, 600, "{\"title\": \"Load only: %s\", \"lesson\": \"Improvise: "
             "change faults with curl or the dashboard; every change and transition is drawn.\", "
             "\"load\": {\"rate\": %s%s%s, \"seconds\": %g}, \"method\": []}", what, rate,
             ramp[0] ? ", \"ramp_to\": " : "", ramp, seconds);
    if (chaos_experiment_parse("--load", text, capacity, exp, err, sizeof err)) {
        fprintf(stderr, "chaos: %s\n", err);
        return 2;
    }
    return 0;
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
    char err[1200], outbuf[1024], runs[1024];
    if (o.halt) {
        chaos_run r = { 0 };
        pthread_mutex_init(&r.lock, NULL);
        rc = set_up_run(&r, &o, outbuf, sizeof outbuf, runs, sizeof runs);
        if (rc == 0)
            rc = run(&r, true);
        chaos_run_free(&r);
        return rc;
    }
    chaos_experiment exp;
    double capacity;
    if (capacity_flag(&o, &capacity))
        return 2;
    if (o.load) {
        if (load_only(&o, capacity, &exp))
            return 2;
    } else if (chaos_experiment_load(o.path, capacity, &exp, err, sizeof err)) {
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
    rc = set_up_run(&r, &o, outbuf, sizeof outbuf, runs, sizeof runs);
    if (rc == 0)
        rc = run(&r, false);
    if (runs[0] && link_latest(runs, r.out) && rc == 0)
        rc = 2;
    chaos_run_free(&r);
    chaos_experiment_free(&exp);
    return rc;
}
