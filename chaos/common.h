/* common.h -- the chaos runner's shared vocabulary: the services, an experiment's steps, a run and its records, and the few helpers every part uses (common.c).
 *
 * The runner's files form layers, each calling only the ones below it:
 *
 *   main.c                        the command line
 *   run.c          experiment.c   a run (load, readers, poll, method, rollbacks,
 *                                 verdict); reading and checking a file
 *   act.c  stored.c  measure.c  journal.c  svg.c   an action (and the table
 *                                 of actions the checker walks), the stored
 *                                 probe and duplicates count, the measures, the output
 *   traces.c                      the traces worth opening, and their links
 *   net.c  common.c               HTTP; the clock, progress lines, breaker names,
 *                                 the services (services.tsv, through services.h)
 *
 * Each part declares its entry points in its own header (experiment.h, act.h,
 * stored.h, measure.h, output.h, traces.h, run.h, net.h); this one holds the types they share.
 * Records that several threads add to (requests, events, the state bands)
 * live in chaos_run under its lock.
 */
#ifndef CHAOS_COMMON_H
#define CHAOS_COMMON_H

#include <cJSON.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "services.h"   /* generated from services.tsv: CHAOS_NSVC, CHAOS_SERVICE_ROWS */

#define CHAOS_NDB 2
#define CHAOS_MAX_HOPS 8
#define CHAOS_MAX_REFS 8
/* How long a timed probe of a service (GET /health, GET /) waits for its answer. */
#define CHAOS_PROBE_TIMEOUT_MS 2000L
/* A request sent this much after its due time says the machine stalled the runner. */
#define CHAOS_LATE_S 0.5
/* The load's rates, requests a second. */
#define CHAOS_MIN_RATE 1
#define CHAOS_MAX_RATE 1000
/* At most this many of the load's requests are on the wire at once (the
 * multi handle's connections); more wait in libcurl's queue, their time
 * counted from their due time. */
#define CHAOS_MAX_INFLIGHT 512

/* One service of services.tsv. */
typedef struct chaos_service {
    const char *name;       /* order, payment, shipment */
    int port;               /* its default port, make run's */
    const char *collection; /* where it stores its documents (the svc_spec of its main.c) */
    const char *next;       /* the service it calls, "" for the last */
} chaos_service;

/* The services of services.tsv, in chain order. */
extern const chaos_service chaos_services[CHAOS_NSVC];
/* ferretdb, postgres: make run's database processes. With the services they
 * are the processes kill and restart find through their pid files
 * ($DATA_DIR/run/<name>.pid). */
extern const char *const chaos_databases[CHAOS_NDB];
/* closed, open, half-open: the states a hypothesis or an expectation names. */
extern const char *const chaos_states[3];

/* ---- an experiment (checked by experiment.c) ------------------------------------ */

/* A field an action takes beside at, action and why: its JSON key, its check
 * (experiment.c's field table) and the step member it fills. */
typedef enum chaos_field {
    CHAOS_FIELD_NONE,       /* ends a row's list of fields */
    CHAOS_FIELD_SERVICE,    /* "service": order, payment, shipment (acts on its URL) -> service */
    CHAOS_FIELD_PROCESS,    /* "service": one of make run's processes (its pid file) -> service */
    CHAOS_FIELD_BREAKER,    /* "breaker": "<service>" or "<service>/db" -> breaker */
    CHAOS_FIELD_COMMAND,    /* "command": a non-empty shell command -> command */
    CHAOS_FIELD_FAULTS,     /* "faults": a non-empty object, the body of PUT /chaos -> faults */
    CHAOS_FIELD_SETTINGS,   /* "settings": a non-empty object, the body of POST /retry, /shed or /hedge -> settings */
    CHAOS_FIELD_OPTIONS,    /* "options": a non-empty object, the body of POST /breaker/options -> options */
} chaos_field;

struct chaos_run;
struct chaos_step;

/* How a measure is compared with an expectation's bound. */
typedef enum chaos_op { CHAOS_LE, CHAOS_LT, CHAOS_GE, CHAOS_GT, CHAOS_EQ } chaos_op;

/* Computes a measure over [lo, hi] seconds of the run into *value; svc is
 * the service a per-service measure is taken of ("order.health_p99_ms"),
 * -1 for the others. Returns 0, or -1 with the reason it could not be
 * measured in why. */
typedef int chaos_measure_fn(const struct chaos_run *r, int svc, double lo, double hi, double *value, char *why,
                             size_t whylen);

/* A measure an expectation can bound ("amplification <= 1.3"): one row of
 * measure.c's chaos_measures. */
typedef struct chaos_measure {
    const char *name;
    const char *about;      /* what it counts, in words, for --check's message and the docs */
    chaos_measure_fn *measure;
    bool per_service;       /* written "<service>.<name>" ("order.health_p99_ms") */
} chaos_measure;

/* Carries out a checked step of its action. Returns the status: 200 when
 * done, an HTTP status when a service answered, 0 when nothing answered or it
 * failed; *answer is set to the answer (JSON) or words saying what happened
 * (a JSON string). */
typedef long chaos_act_fn(struct chaos_run *r, const struct chaos_step *s, cJSON **answer);

/* One action of the experiment files, one row of act.c's chaos_actions: the
 * checker (experiment.c) walks it for the name and the fields, the actor
 * (act.c) calls its act. */
typedef struct chaos_action {
    const char *name;
    chaos_field fields[3];  /* what it takes, in the order they are checked; CHAOS_FIELD_NONE ends */
    chaos_act_fn *act;
} chaos_action;

/* One step of "method" or "rollbacks": an action, or (method only) an expectation.
 * Strings point into chaos_experiment.doc; absent ones are NULL. */
typedef struct chaos_step {
    double at;              /* seconds from the start of the load (method only; 0 in rollbacks) */
    const char *expect;     /* the state expected, or NULL for an action */
    double within;          /* an expectation's deadline, seconds after at */
    const char *action;     /* the action's name (a row of chaos_actions), NULL for an expectation */
    const chaos_action *kind;   /* that row, NULL for an expectation */
    const char *service;    /* CHAOS_FIELD_SERVICE or _PROCESS */
    const char *breaker;    /* CHAOS_FIELD_BREAKER, and expectations: "<service>" or "<service>/db" */
    const char *command;    /* CHAOS_FIELD_COMMAND */
    const cJSON *faults;    /* CHAOS_FIELD_FAULTS */
    const cJSON *settings;  /* CHAOS_FIELD_SETTINGS */
    const cJSON *options;   /* CHAOS_FIELD_OPTIONS */
    const chaos_measure *measure;   /* a measure's expectation ("amplification <= 1.3"), else NULL */
    int measure_svc;        /* with a per-service measure: its service (index in chaos_services), else -1 */
    chaos_op op;            /* with measure: the comparison */
    double bound;           /* with measure: the number it is compared with */
    const char *why;        /* optional words for the reader */
} chaos_step;

/* A checked experiment. Defaults are filled in: load.rate 10, load.seconds 20,
 * load.ramp_to the rate (no ramp), load.timeout_ms 10000, no capacity,
 * ok_ratio 0.9, p99_ms 1000, goodput_ms the p99_ms, breakers "closed",
 * window_s 3, stored false. */
typedef struct chaos_experiment {
    cJSON *doc;             /* the parsed file, owning every string below */
    const char *path;
    const char *title;
    const char *lesson;     /* NULL when absent */
    const cJSON *requires;  /* an object of settings, or NULL */
    double rate;            /* requests a second at the start, CHAOS_MIN_RATE..CHAOS_MAX_RATE */
    double ramp_to;         /* requests a second at the end (linear from rate); == rate: no ramp */
    double capacity;        /* requests a second the rates "<k>x" are multiples of; 0: none given */
    double timeout_ms;      /* each request of the load gives up after this, 100..60000 */
    double seconds;         /* the load's length, 5..600 */
    double ok_ratio;        /* share of whole answers, 0..1 */
    double p99_ms;          /* positive */
    double goodput_ms;      /* a 2xx answer counts as goodput when it came within this; positive */
    const char *breakers;   /* the state every breaker should be in */
    double window_s;        /* 1..seconds/2 */
    bool stored;            /* check that every 200 answer's documents are stored */
    chaos_step *method;     /* sorted by at (stable) */
    int nmethod;
    chaos_step *rollbacks;
    int nrollbacks;
} chaos_experiment;

/* ---- a run and its records (run.c adds to them; the parts below read them) ---------- */

/* One document an answer names: the hop's service, its id and the status it answered. */
typedef struct chaos_doc {
    int svc;                /* index in chaos_services */
    char id[25];
    char outcome[16];       /* ok, last, degraded */
} chaos_doc;

/* One request of the load. */
typedef struct chaos_request {
    int n;
    double t;               /* sent, seconds from the start */
    double ms;              /* until the answer (or the failure) */
    int status;             /* 0: no answer */
    bool whole;             /* 200, every hop answered, no degraded hop */
    char degraded[64];      /* "<service>:<reason>" of the first degraded hop, "" when none */
    char trace[80];         /* the trace id (the runner's traceparent names it) */
    chaos_doc docs[CHAOS_MAX_HOPS];
    int ndocs;
    int duplicates;         /* documents stored beyond one per hop for it; -1 when not counted */
} chaos_request;

/* The traces worth opening after a run, one per row of traces.c's table:
 * the first degraded answer, the first degraded by an open circuit, the
 * last degraded answer, the first request without a 2xx answer, the first
 * stored twice, the slowest. */
enum { CHAOS_PICK_FIRST_DEGRADED, CHAOS_PICK_FIRST_REFUSED, CHAOS_PICK_LAST_DEGRADED, CHAOS_PICK_FIRST_ERROR,
       CHAOS_PICK_FIRST_DUPLICATED, CHAOS_PICK_SLOWEST, CHAOS_NPICKS };

/* A service's count of POST /create arrivals (GET /health's requests.arrived) at time t. */
typedef struct chaos_sample {
    double t;
    int svc;
    double arrived;
} chaos_sample;

/* The routes the poller times on every service while the load runs. */
typedef enum chaos_route { CHAOS_ROUTE_HEALTH, CHAOS_ROUTE_ROOT } chaos_route;

/* One timed probe of a service: GET /health (four times a second, the
 * poll) or GET / (twice a second), with the bulkhead's counts a /health
 * answer gave (its "workers"). */
typedef struct chaos_timing {
    double t;               /* sent, seconds from the start */
    int svc;
    chaos_route route;
    double ms;              /* until the answer, or until the probe gave up (its timeout) */
    int status;             /* 0: no answer */
    double busy;            /* workers.busy: requests holding a worker; NAN when not given */
    double in_use;          /* workers.chain.in_use: next-hop connections out on calls; NAN when not given */
} chaos_timing;
/* One second of the load, [t, t+1), by when each request was sent. */
typedef struct chaos_second {
    int offered;            /* requests sent */
    int goodput;            /* of them, 2xx answers (whole or degraded) within goodput_ms */
    int shed;               /* of them, 503 answers */
    double p99_ms;          /* of them (answered or not); NAN when none was sent */
} chaos_second;

/* A breaker's state over time: (t, state) from the first sight on. */
typedef struct chaos_point {
    double t;
    char state[24];
} chaos_point;

typedef struct chaos_band {
    char *name;
    chaos_point *pts;
    int n, cap;
} chaos_band;

/* An expectation and how it was judged. */
typedef struct chaos_expectation {
    const chaos_step *step;
    const char *name;       /* the breaker's full name (the ref when unknown); the measure's name */
    bool met;
    double met_at;
    double value;           /* a measure's value over the expectation's span */
    char unmeasured[200];   /* why a measure could not be measured; "" when it was */
    bool undecided;         /* the run stopped early, before its window closed, and it was not met */
    bool told;              /* its result was already said while the run went on */
    char missed[240];       /* a missed state's reason ("payment -> shipment stayed closed; ..."), else "" */
} chaos_expectation;

/* The hypothesis probe over one window. */
typedef struct chaos_probe {
    const char *when;       /* "before" or "after" */
    double lo, hi;
    int requests;
    double ok_ratio;
    double p99_ms;          /* -1 when no request fell in the window */
    cJSON *states;          /* breaker name -> state */
    bool ok;
    bool undecided;         /* the run stopped early, before its window ended */
} chaos_probe;

/* The documents-stored probe (stored.c). */
typedef struct chaos_stored {
    bool asked;             /* the hypothesis has "stored": true */
    int result;             /* 1 passed, 0 failed, -1 skipped (reason says why) */
    char url[512];          /* the database it read */
    char db[128];
    int answers;            /* 200 answers checked */
    int documents;          /* documents those answers name */
    int found;              /* stored, with the request's id and the outcome answered */
    int missing;            /* not in the database */
    int wrong;              /* stored, with another outcome or id */
    int no_document;        /* 200 answers that name no document of order */
    char examples[5][200];  /* the first problems, said in words */
    int nexamples;
    char reason[1100];      /* why it was skipped */
    /* the duplicates count (when an expectation measures duplicates) */
    bool counted;           /* every request's duplicates were counted */
    int duplicates;         /* documents stored beyond one per hop, over every request */
    char count_error[1400]; /* why they could not be counted */
} chaos_stored;

/* The wall-clock span (ms) of one of the runner's own actions on a service
 * (-1: on every service, a shell command), so that the fault changes it
 * makes, which come back on the stream as "chaos" events, are not recorded
 * a second time as changes from outside. hi_ms is INFINITY while it runs. */
typedef struct chaos_own {
    int svc;
    double lo_ms, hi_ms;
} chaos_own;

typedef struct chaos_run {
    const chaos_experiment *exp;
    char urls[CHAOS_NSVC][256];
    const char *token;
    const char *out;
    const char *mongo_url;
    const char *mongo_db;
    char run_dir[512];      /* make run's $DATA_DIR/run (pid files); "" when unknown */
    unsigned long long trace_base;  /* the run's own trace ids: this, then the request's n */
    char traces_url[256];   /* Jaeger's query API, from the first service's /health; "" when it does not trace */

    double t0;              /* monotonic seconds at the start of the load; 0 before */
    double wall0_ms;        /* wall-clock ms at the start, minus 50 (older events are history) */
    atomic_bool stop;       /* tells the load, the readers and the poll to finish */
    atomic_bool load_done;  /* the load thread sent every request and has every answer */

    pthread_mutex_t lock;   /* guards everything below that threads add to */
    chaos_request *reqs;
    int nreqs, capreqs;
    cJSON *events;          /* breaker events from /events.stream, with "t" */
    chaos_band *bands;
    int nbands, capbands;
    chaos_sample *samples;  /* every service's arrivals, from the /health poll */
    int nsamples, capsamples;
    chaos_timing *timings;  /* every service's GET /health and GET / timed (the poll) */
    int ntimings, captimings;
    double *amplification;  /* after the load, when an expectation measures it: per second, NAN when unknown */
    int namplification;
    chaos_second *per_second;   /* after the load: each second's offered, goodput, shed, p99 */
    int nper_second;
    unsigned long long last_seq[CHAOS_NSVC];
    double last_time[CHAOS_NSVC];
    cJSON *outside;         /* fault changes made from outside (curl, the dashboard), as action
                               records with phase "outside"; moved into actions at the end */
    chaos_own *own;         /* the runner's own actions on the services */
    int nown, capown;

    /* the load thread's own lateness: how long after its due time a request
     * went out (written by the load thread, read after it is joined) */
    double max_late_s;
    double max_late_at;     /* the due time of the latest request */
    int late_sends;         /* requests sent more than LATE_S after their due time */

    /* main thread only */
    char *refs[CHAOS_MAX_REFS];      /* "payment", "payment/db", ... */
    char *ref_names[CHAOS_MAX_REFS]; /* the breaker's full name */
    int nrefs;
    cJSON *actions;
    cJSON *tuned;           /* breakers a tune changed: [{"breaker", "options" as before}], for the restore */
    chaos_expectation *expects;
    int nexpects;
    chaos_probe probes[2];
    chaos_stored stored;
    int picks[CHAOS_NPICKS];    /* the request (index in reqs) of each trace worth opening; -1: none */
    char aborted[256];
    double ended_at;        /* when an aborted run stopped acting (seconds from the start) */
    double next_tally;      /* when the next load tally line is due */
    int tally_from;         /* the first request answered since the last tally */
    bool passed;
} chaos_run;

/* ---- helpers (common.c) ------------------------------------------------------------ */

/* Set by the SIGINT / SIGTERM / SIGHUP handler: the signal's number, 0 when none came. */
extern volatile sig_atomic_t chaos_signal;

/* The load's rate (requests a second) at t seconds from its start: linear
 * from e->rate at 0 to e->ramp_to at e->seconds. Can't fail. */
double chaos_rate_at(const chaos_experiment *e, double t);

/* How many requests the load sends in all: the integral of the rate,
 * (rate + ramp_to) / 2 * seconds, rounded down. Can't fail. */
int chaos_load_total(const chaos_experiment *e);

/* The due time (seconds from the start) of request n (from 0): the t at
 * which the integral of the rate from 0 reaches n, i.e. the root of
 * rate t + (ramp_to - rate) t^2 / (2 seconds) = n; n / rate without a ramp.
 * Can't fail. */
double chaos_due(const chaos_experiment *e, int n);

/* Monotonic seconds. Can't fail. */
double chaos_mono(void);

/* Seconds since the start of the load (0 before it started). */
double chaos_now(const chaos_run *r);

/* Prints a progress line "chaos   12.3s  msg" (printf-style). Safe from any
 * thread: a line is never mixed with another's. */
void chaos_say(const chaos_run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prints text as progress lines indented by indent spaces, wrapped at
 * CHAOS_WRAP columns (the lesson's text), all together. */
void chaos_say_wrapped(const chaos_run *r, int indent, const char *text);
#define CHAOS_WRAP 78

/* A breaker's display label from its service (index in chaos_services) and
 * full name: "payment -> database" for a name ending "->mongodb", else
 * "payment -> shipment" (the service's next hop). */
void chaos_label(int svc, const char *name, char *buf, size_t len);

/* The label of an experiment's breaker ref: "payment" -> "payment -> shipment",
 * "payment/db" -> "payment -> database"; the ref itself when it is neither. */
void chaos_ref_label(const char *ref, char *buf, size_t len);

/* "forced-open" -> "open": a circuit forced open is open. */
const char *chaos_plain(const char *state);

/* The index of service name in chaos_services, or -1 when it is none of them. */
int chaos_service_index(const char *name);

/* A breaker's full name for a ref ("payment/db"), or NULL when the stack has none. */
const char *chaos_ref_name(const chaos_run *r, const char *ref);

#endif
