/* traces.h -- the traces worth opening after a run, with links to them (traces.c). */
#ifndef CHAOS_TRACES_H
#define CHAOS_TRACES_H

#include "common.h"

/* Notes from the first service's /health (h) whether the stack traces: when
 * its "tracing" is on and names a query_url, r->traces_url is that URL (no
 * trailing slash), else "". Can't fail. */
void chaos_traces_note(chaos_run *r, const cJSON *h);

/* Picks, from r's requests (sorted by n, the load done), the request of each
 * row of the table of picks into r->picks (-1 when none fits): the first
 * degraded answer, the first degraded by an open circuit, the last degraded,
 * the first without a 2xx answer, the first stored twice, the slowest. Can't
 * fail. */
void chaos_traces_pick(chaos_run *r);

/* The journal's "traces": {"query_url", "picks": {"<pick>": {"what", "n",
 * "t", "ms", "status", "degraded", "trace", "dashboard", "jaeger"} or null}};
 * the links are null when the stack does not trace. NULL when out of memory. */
cJSON *chaos_traces_json(const chaos_run *r);

/* Says each pick, "open this trace: <what> (...): <dashboard link>" and
 * Jaeger's link under it; with tracing off the trace id and how to turn
 * tracing on. */
void chaos_traces_say(const chaos_run *r);

#endif
