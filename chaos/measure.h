/* measure.h -- the measures an expectation can bound, and reading "<measure> <op> <number>" (measure.c). */
#ifndef CHAOS_MEASURE_H
#define CHAOS_MEASURE_H

#include "common.h"

/* The measures, one row each (name, words, function). A new measure is a
 * row there and its function. */
extern const chaos_measure chaos_measures[];
extern const size_t chaos_nmeasures;

/* Reads text as "<measure> <op> <number>" (op one of <=, <, >=, >, ==); a
 * per-service measure is written "<service>.<measure>" ("order.health_p99_ms
 * <= 50"), and *svc is set to its service (-1 for the others). Returns 0,
 * or -1 when it is not one. */
int chaos_measure_parse(const char *text, const chaos_measure **m, int *svc, chaos_op *op, double *bound);

/* Writes the measures' names for an error message, a per-service one as
 * "<service>.<name>": "amplification, ..., <service>.health_p99_ms". Returns buf. */
const char *chaos_measure_names(char *buf, size_t len);

/* Whether value op bound holds. */
bool chaos_op_holds(chaos_op op, double value, double bound);

/* The amplification of each second of the load, [i, i+1) for i < n, into
 * out; NAN for a second in which no request arrived at the first service. */
void chaos_amplification_series(const chaos_run *r, double *out, int n);

/* Each second [i, i+1) of the load, i < n, into out: the requests sent in
 * it, the goodput and the 503s among them, and their p99 (NAN when none
 * was sent). Returns 0, or -1 when out of memory. */
int chaos_per_second(const chaos_run *r, chaos_second *out, int n);

#endif
