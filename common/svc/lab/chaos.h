/* chaos.h -- faults a service injects into its own requests, switched at runtime.
 *
 * Seven faults, each applying to a fraction of POST /create requests and each
 * able to expire by itself:
 *
 *   error     answer 502, its document stored as "injected" (the demo's injected error)
 *   latency   wait ms +- jitter_ms before the work (a slow service)
 *   hang      hold the request, answering nothing, until the caller gives up
 *             (its connection closes), max_ms passes or the fault is cleared
 *   reset     drop the connection with a TCP reset before anything is stored
 *   database  treat the database as unreachable: the write fails as if it
 *             were down, through the database breaker, and /health says so
 *   no_deadlines  ignore the caller's X-Deadline-Ms and pass none on, as with
 *             DEADLINE_PROPAGATION=0: the timeout cascade, switched at runtime
 *   lose_answer  do all the work (call the next hop, store the document with
 *             its outcome), then reset the connection instead of answering:
 *             a caller that retries meets a completed write; with times,
 *             only the next times requests, then it switches itself off
 *
 * They are one table, chaos_faults[] (a row per fault: its name, its fields
 * with their types, ranges and defaults, what it does), which the PUT /chaos
 * parser, GET /chaos (whose "kinds" the dashboard builds its controls from),
 * the log lines and /metrics walk; request.c keeps the list of what each
 * fault does to a request, in the order a request meets them. A new fault
 * is a constant below, a row in chaos_faults[] and its hook in request.c
 * (a compile-time check counts the hooks).
 *
 * GET /chaos shows them; PUT /chaos (admin token) replaces them all with the
 * JSON body's; DELETE /chaos (admin token) clears them. INJECT_ERR/ERR_RATE
 * and DELAY_MS are the error and latency faults in force at start. Every
 * change and every expiry is a log line, counted in /metrics and told to
 * the listener (chaos_set_listener: a "chaos" event on /events.stream).
 */
#ifndef SVC_CHAOS_H
#define SVC_CHAOS_H

#include <cJSON.h>
#include <civetweb.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* The faults, in the order of chaos_faults[] (and of GET /chaos, the log
 * and /metrics). */
typedef enum chaos_kind {
    CHAOS_ERROR = 0, CHAOS_LATENCY, CHAOS_HANG, CHAOS_RESET, CHAOS_DATABASE, CHAOS_NO_DEADLINES,
    CHAOS_LOSE_ANSWER, CHAOS_NO_IDEMPOTENCY, CHAOS_KINDS
} chaos_kind;

#define CHAOS_MAX_FIELDS 2   /* a fault's own fields, beyond fraction and expires_s */

/* One field of a fault in PUT /chaos: a number in [min, max]. */
typedef struct chaos_field {
    const char *name;     /* "ms"; NULL ends a row's list */
    const char *label;    /* the dashboard's short label, "± jitter ms" */
    const char *about;    /* what it is, "the added milliseconds" */
    bool integer;         /* a whole number (else any number) */
    double min, max;
    bool required;        /* no default: PUT /chaos refuses a fault without it */
    double dflt;          /* the value when left out (unless required) */
    bool uses;            /* a count of requests: the fault switches itself off once
                             it has met this many (0 = no limit) */
} chaos_field;

/* One fault: a row of chaos_faults[]. */
typedef struct chaos_fault_kind {
    const char *name;     /* as PUT /chaos, GET /chaos and /metrics spell it */
    const char *label;    /* the dashboard's row label */
    const char *about;    /* one line: what a request meets */
    chaos_field fields[CHAOS_MAX_FIELDS + 1];   /* its own fields, NULL-name ended */
    const char *shown;    /* its fields in words for the log and the dashboard,
                           * "{ms}±{jitter_ms} ms"; NULL = none */
    /* The number one request draws from the fault's field values (latency:
     * the milliseconds to wait, jitter included); a draw of 0 is no fault.
     * NULL = 0 and the fault applies. */
    int (*amount)(const int *fields);
    bool health_down;     /* on for every request, /health says the database is down */
} chaos_fault_kind;

/* The table of faults, indexed by chaos_kind. */
extern const chaos_fault_kind chaos_faults[CHAOS_KINDS];

/* What the faults in force decided for one request. */
typedef struct chaos_draw {
    bool hit[CHAOS_KINDS];      /* the request meets this fault */
    int amount[CHAOS_KINDS];    /* what it drew (the row's amount()); 0 when none */
} chaos_draw;

/* Sets the faults in force at start: the error fault on error_fraction of
 * requests (INJECT_ERR=1 with ERR_RATE; 0 = off) and the latency fault of
 * delay_ms on every request (DELAY_MS; 0 = off). Call once before the
 * server starts. This function can't fail. */
void chaos_init(double error_fraction, int delay_ms);

/* Called with the words of every change of the faults in force ("PUT
 * /chaos: error on 30% of requests for 60 s", "DELETE /chaos: error
 * (cleared)", "expired latency 200 ms on 100% of requests for 5 s"): a PUT
 * or DELETE that changed something, and each fault that switched itself off.
 * It runs under the faults' lock, so it must not call back into chaos.c. */
typedef void chaos_listener_fn(const char *words);

/* Sets the one listener (NULL: none); svc.c hands it the event ring's
 * obs_chaos_event, so /events.stream carries every change. Call before the
 * server starts. This function can't fail. */
void chaos_set_listener(chaos_listener_fn *fn);

/* Rolls the dice for one request against the faults in force (expiring the
 * ones past their time) and counts each fault drawn. Thread-safe. */
void chaos_draw_request(chaos_draw *d);

/* True while a fault marked health_down (database) covers every request
 * (fraction 1): /health reports the database down. Thread-safe. */
bool chaos_database_down(void);


/* A uniform number in [0, 1) from the same generator. */
double chaos_random_unit(void);

/* Holds the request on conn until its client closes the connection,
 * max_ms passes, the hang fault is cleared or *stop turns true. Returns the
 * milliseconds held. */
int chaos_hang(struct mg_connection *conn, int max_ms, const _Atomic bool *stop);

/* Drops conn's connection with a TCP reset (RST), so the client reads no
 * answer. The handler must send nothing after. Returns 0, or -1 when the
 * connection's socket could not be found (the caller answers instead). */
int chaos_reset(struct mg_connection *conn);

/* GET, PUT and DELETE on /chaos. The admin check (and OPTIONS) is the
 * caller's (observe.c); this answers an authorised request, with origin as
 * its Access-Control-Allow-Origin (NULL = none). GET's answer also holds
 * "kinds" (chaos_kinds_to_json). Returns the status. */
int chaos_serve(struct mg_connection *conn, const char *service, const char *origin);

/* The faults in force as a JSON object, for GET /chaos and /health; NULL
 * when out of memory. */
cJSON *chaos_to_json(void);

/* The table of faults as a JSON array, a description per fault (name,
 * label, about, shown, and its fields with type, min, max, default,
 * required, label, about; fraction and expires_s marked "common"), from
 * which the dashboard builds its controls; NULL when out of memory. */
cJSON *chaos_kinds_to_json(void);

/* Writes the chaos metrics (Prometheus text) to f; service is the label
 * value, already escaped. */
void chaos_put_metrics(FILE *f, const char *service);

#endif
