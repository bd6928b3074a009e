/* svc.h -- the runtime the three services share: a service is a spec handed to svc_main().
 *
 * order, payment and shipment differ only in data: their name, default port,
 * collection, the fields a request must carry and the nested object passed to
 * the next hop. Each main.c fills one svc_spec and calls svc_main(); request
 * handling, persistence, chaining, logging and shutdown live here, once.
 */
#ifndef SVC_H
#define SVC_H

#include <stddef.h>

/* The JSON type a required field must have. */
typedef enum svc_type {
    SVC_STRING = 1,
    SVC_NUMBER,
    SVC_ARRAY,
    SVC_OBJECT,
    SVC_BOOL
} svc_type;

/* One required top-level field of a request body. */
typedef struct svc_field {
    const char *name;
    svc_type type;
} svc_field;

#define SVC_MAX_FIELDS 8

/* What makes a service this service. */
typedef struct svc_spec {
    const char *name;                    /* default ID, e.g. "order" */
    int default_port;                    /* PORT when unset */
    const char *collection;              /* where documents go, e.g. "orders" */
    svc_field required[SVC_MAX_FIELDS];  /* required fields; the list ends at a NULL name */
    const char *pass_on;                 /* nested object POSTed to CHAIN_SVC; NULL = none */
} svc_spec;

/* Runs the service described by spec until SIGTERM or SIGINT. With
 * "--healthcheck" as the only argument, asks the running instance's /health
 * instead and returns 0 on 200, 1 otherwise. Returns the process exit code:
 * 0 after a clean shutdown, 2 for a bad configuration (the message names the
 * variable), 1 for any other start-up failure. */
int svc_main(const svc_spec *spec, int argc, char **argv);

/* "string", "number", "array", "object", "boolean". Never NULL. */
const char *svc_type_name(svc_type t);

#endif
