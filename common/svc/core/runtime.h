/* runtime.h -- what a running service holds, shared by its lifecycle (svc.c) and its handlers (request.c). */
#ifndef SVC_RUNTIME_H
#define SVC_RUNTIME_H

#include <civetweb.h>
#include <stdatomic.h>
#include "cb.h"
#include "config.h"
#include "store.h"
#include "spec.h"

/* A running service (svc.c fills it; request.c's handlers read it). */
typedef struct svc_runtime {
    const svc_spec *spec;
    svc_config cfg;
    store *db;
    cb_breaker *breaker;   /* guards the call to CHAIN_SVC; NULL without one */
    cb_breaker *db_breaker; /* guards the writes of received documents */
    char breaker_label[96]; /* what breaker protects, in words: "payment -> shipment" */
    char db_label[96];      /* and db_breaker: "payment -> database" */
    struct shared *shared; /* CB_SHARED=on: the next-hop breaker shared by the replicas; else NULL */
    struct roster *roster; /* CB_SHARED=on: this service's replicas in the database; else NULL */
    cb_breaker *roster_breakers[2]; /* the breakers the roster reports */
    atomic_int in_flight;  /* requests inside a handler now */
    atomic_bool draining;  /* shutting down: new requests answer 503 */
    atomic_int busy;       /* requests between begin_request and end_request (the reserve) */
} svc_runtime;

#endif
