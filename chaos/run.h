/* run.h -- running one checked experiment against a stack (run.c); main.c's entry points. */
#ifndef CHAOS_RUN_H
#define CHAOS_RUN_H

#include "common.h"

/* Reads every service's /health and the names of its breakers. Returns 0, or
 * -1 with a message in err when a service does not answer. */
int chaos_discover(chaos_run *r, char *err, size_t errlen);

/* Runs the experiment: load, method, rollbacks (always), probes, verdict,
 * journal and picture in r->out. Returns 0 when it passed, 1 when it did not,
 * 2 when its threads could not start (nothing run) or the output could not
 * be written (said on stderr). */
int chaos_run_experiment(chaos_run *r);

/* Frees the run's records. */
void chaos_run_free(chaos_run *r);

#endif
