/* chaos.h -- faults a service injects into its own requests, switched at runtime.
 *
 * Five faults, each applying to a fraction of POST /create requests and each
 * able to expire by itself:
 *
 *   error     answer 502 after storing (the demo's injected error)
 *   latency   wait ms +- jitter_ms after storing (a slow service)
 *   hang      hold the request, answering nothing, until the caller gives up
 *             (its connection closes), max_ms passes or the fault is cleared
 *   reset     drop the connection with a TCP reset before anything is stored
 *   database  treat the database as unreachable: the write fails as if it
 *             were down, through the database breaker, and /health says so
 *   no_deadlines  ignore the caller's X-Deadline-Ms and pass none on, as with
 *             DEADLINE_PROPAGATION=0: the timeout cascade, switched at runtime
 *
 * GET /chaos shows them; PUT /chaos (admin token) replaces them all with the
 * JSON body's; DELETE /chaos (admin token) clears them. INJECT_ERR/ERR_RATE
 * and DELAY_MS are the error and latency faults in force at start. Every
 * change and every expiry is a log line and counted in /metrics.
 */
#ifndef SVC_CHAOS_H
#define SVC_CHAOS_H

#include <cJSON.h>
#include <civetweb.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include "config.h"

typedef enum chaos_kind {
    CHAOS_ERROR = 0, CHAOS_LATENCY, CHAOS_HANG, CHAOS_RESET, CHAOS_DATABASE, CHAOS_NO_DEADLINES,
    CHAOS_KINDS
} chaos_kind;

/* What the faults in force decided for one request. */
typedef struct chaos_draw {
    bool error;          /* answer 502 */
    bool reset;          /* reset the connection */
    bool hang;           /* hold until the caller gives up or hang_max_ms */
    bool database;       /* the database is "unreachable" for this request */
    bool no_deadlines;   /* deadlines neither honoured nor passed on */
    int latency_ms;      /* wait this long after storing; 0 = none */
    int hang_max_ms;
} chaos_draw;

/* Sets the faults in force at start from INJECT_ERR/ERR_RATE and DELAY_MS.
 * Call once before the server starts. This function can't fail. */
void chaos_init(const svc_config *cfg);

/* Rolls the dice for one request against the faults in force (expiring the
 * ones past their time). Thread-safe. */
void chaos_draw_request(chaos_draw *d);

/* True while a database fault covers every request (fraction 1): /health
 * reports the database down. Thread-safe. */
bool chaos_database_down(void);

/* 64 random bits from a per-thread xorshift generator (not for secrets). */
uint64_t chaos_random_u64(void);

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
 * its Access-Control-Allow-Origin (NULL = none). Returns the status. */
int chaos_serve(struct mg_connection *conn, const char *service, const char *origin);

/* The faults in force as a JSON object, for GET /chaos and /health; NULL
 * when out of memory. */
cJSON *chaos_to_json(void);

/* Writes the chaos metrics (Prometheus text) to f; service is the label
 * value, already escaped. */
void chaos_put_metrics(FILE *f, const char *service);

#endif
