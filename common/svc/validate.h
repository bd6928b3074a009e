/* validate.h -- checks a request body against a service's spec before anything is stored. */
#ifndef SVC_VALIDATE_H
#define SVC_VALIDATE_H

#include <cJSON.h>
#include <stddef.h>
#include "svc.h"

/* The deepest nesting a body may have (objects and arrays). */
#define VALIDATE_MAX_DEPTH 32

/* Scans raw JSON text (len bytes) and returns 0 when no object or array in
 * it is nested deeper than VALIDATE_MAX_DEPTH, else -1 with a message. Run
 * before parsing: the parser recurses once per level, and civetweb's worker
 * threads have small stacks. Never reads past len. */
int validate_depth(const char *text, size_t len, char *err, size_t errlen);

/* Returns 0 when body is a JSON object carrying every field spec requires
 * with its type, and no key (at any depth) that is empty, starts with '$',
 * contains '.', or is a reserved top-level key ("_id", "_meta"), whose keys
 * and strings are valid UTF-8 and numbers finite, and that is no deeper than
 * VALIDATE_MAX_DEPTH. Otherwise returns -1 with a sentence in err
 * naming the field or key and where it is ("payment.shipment.$where"). */
int validate_body(const cJSON *body, const svc_spec *spec, char *err, size_t errlen);

#endif
