/* experiment.h -- reading and checking an experiment file (experiment.c). */
#ifndef CHAOS_EXPERIMENT_H
#define CHAOS_EXPERIMENT_H

#include "common.h"

/* Reads and checks the file at path into *exp; capacity (requests a
 * second, 0: none) is the command line's --capacity, which the load's rates
 * "<k>x" multiply, before the file's load.capacity. Returns 0, or -1 with a
 * message in err naming the file and the field ("method[2].within: ...") or,
 * for a JSON syntax error, the line and column ("x.json:3:3: not valid JSON").
 * On error *exp holds nothing to free. */
int chaos_experiment_load(const char *path, double capacity, chaos_experiment *exp, char *err, size_t errlen);

/* Checks the experiment in text (a malloc'd string, which it frees) as
 * chaos_experiment_load() does a file's; path names it in messages (the
 * load-only mode's made-up experiment). Returns 0 or -1 as that does. */
int chaos_experiment_parse(const char *path, char *text, double capacity, chaos_experiment *exp, char *err,
                           size_t errlen);

/* Frees what chaos_experiment_load() allocated. Safe on a zeroed struct. */
void chaos_experiment_free(chaos_experiment *exp);

#endif
