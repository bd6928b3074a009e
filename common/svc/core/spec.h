/* spec.h -- what makes a service this service: the types of an svc_spec, below every file that reads one. */
#ifndef SVC_SPEC_H
#define SVC_SPEC_H

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

#endif
