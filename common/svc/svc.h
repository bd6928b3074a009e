/* svc.h -- the runtime the three services share: a service is a spec handed to svc_main().
 *
 * order, payment and shipment differ only in data: their name, default port,
 * collection, the fields a request must carry and the nested object passed to
 * the next hop. Each main.c fills one svc_spec and calls svc_main(); request
 * handling, persistence, chaining, logging and shutdown live here, once.
 */
#ifndef SVC_H
#define SVC_H

#include "spec.h"

/* Runs the service described by spec until SIGTERM or SIGINT. With
 * "--healthcheck" as the only argument, asks the running instance's /health
 * instead and returns 0 on 200, 1 otherwise. Returns the process exit code:
 * 0 after a clean shutdown, 2 for a bad configuration (the message names the
 * variable), 1 for any other start-up failure. */
int svc_main(const svc_spec *spec, int argc, char **argv);

#endif
