/* premises.h -- checking an experiment's "requires" against the running stack before anything is done (premises.c). */
#ifndef CHAOS_PREMISES_H
#define CHAOS_PREMISES_H

#include "common.h"

/* Whether name is a setting "requires" may name (a row of premises.c's
 * table: CB_BACKOFF, CB_RESET_TIMEOUT_MS, ...). */
bool chaos_premise_known(const char *name);

/* The settings "requires" may name, comma-separated, into buf. Returns buf. */
const char *chaos_premise_names(char *buf, size_t len);

/* Checks every setting of the experiment's "requires" against the options
 * each service's GET /health shows for its breakers (chain breakers for
 * CB_*, database breakers for DB_CB_*). Returns 0 when they all hold (or
 * there is no "requires"), else -1 with the reason in err ("needs
 * CB_BACKOFF=2; payment's breaker has backoff 1"). Changes nothing. */
int chaos_premises_check(const chaos_run *r, char *err, size_t errlen);

#endif
