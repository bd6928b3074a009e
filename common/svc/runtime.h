/* runtime.h -- what a running service holds, shared by its lifecycle (svc.c) and its handlers (request.c). */
#ifndef SVC_RUNTIME_H
#define SVC_RUNTIME_H

#include <civetweb.h>
#include <stdatomic.h>
#include "cb.h"
#include "config.h"
#include "store.h"
#include "svc.h"

typedef struct svc_runtime {
    const svc_spec *spec;
    svc_config cfg;
    store *db;
    cb_breaker *breaker;   /* guards the call to CHAIN_SVC; NULL without one */
    atomic_int in_flight;  /* requests inside a handler now */
    atomic_bool draining;  /* shutting down: new requests answer 503 */
} svc_runtime;

/* Registers GET /, POST /create and the catch-all 404 on ctx. Call after
 * obs_register(), so that its routes are in place first. rt must outlive ctx. */
void request_register(struct mg_context *ctx, svc_runtime *rt);

/* The breaker's fallback (a cb_fallback_fn): builds the degraded answer, a
 * cJSON object {"service","count","status":"degraded","reason","breaker"},
 * into *result. user is the svc_runtime. Returns 0, or -1 when out of memory. */
int request_fallback(void *arg, int reason, int action_rc, void **result, void *user);

#endif
