/* faults.h -- the table of faults and the PUT /chaos body's parser, shared by lab/chaos.c and the chaos runner's checker (faults.c; private to them).
 *
 * faults.c holds what a fault is (chaos_faults[], the fields every fault
 * takes) and reading a body into faults, without civetweb, logging or the
 * faults in force, so that the chaos runner can link it alone (faults.o and
 * base/random.o) and check an experiment's fault bodies with the very
 * table the services use.
 */
#ifndef SVC_LAB_FAULTS_H
#define SVC_LAB_FAULTS_H

#include "chaos.h"
#include "faults_check.h"

/* One fault as a body sets it (and as it is in force). */
typedef struct chaos_fault {
    bool on;
    double fraction;      /* share of requests it applies to, 0..1 */
    int field[CHAOS_MAX_FIELDS];   /* the row's own fields, in its order */
    int uses_left;        /* a row with a uses field set > 0: requests it may still meet */
    int64_t expires_ns;   /* monotonic; 0 = never */
    int64_t expires_wall_ms;
    int64_t set_wall_ms;
} chaos_fault;

/* fraction and expires_s: the fields every fault takes (NULL-name ended). */
extern const chaos_field chaos_common_fields[];

/* Checks a PUT /chaos body into out (every fault, on or off; expiries from
 * now). Returns 0, or -1 with a sentence naming the fault or field in err.
 * Applies nothing. */
int chaos_parse(const cJSON *body, chaos_fault out[CHAOS_KINDS], char *err, size_t errlen);

#endif
