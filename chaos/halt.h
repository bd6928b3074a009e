/* halt.h -- chaos --halt: clearing every fault and closing every breaker of the stack (halt.c). */
#ifndef CHAOS_HALT_H
#define CHAOS_HALT_H

#include "common.h"

/* Clears the faults (DELETE /chaos) and closes every breaker that is not
 * closed (POST /breaker/close) on each service of r->urls, with r->token,
 * printing per service what it cleared ("shipment: cleared error, latency";
 * "payment -> shipment: was forced-open, now closed"; "order: nothing to
 * clear"). Returns 0 when every service answered, 2 when one did not or
 * refused (named on stderr); the others are cleared all the same. */
int chaos_halt(const chaos_run *r);

#endif
