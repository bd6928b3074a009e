/* validate.h -- checks a request body against a service's spec before anything is stored. */
#ifndef SVC_VALIDATE_H
#define SVC_VALIDATE_H

#include <cJSON.h>
#include <stddef.h>
#include "spec.h"

/* The deepest nesting a body may have (objects and arrays). */
#define VALIDATE_MAX_DEPTH 32

/* The limits on a body's shape, each an environment variable (config.c):
 * a real order is far below every one of them. They bound what one document
 * may cost the database (FerretDB spends ~50 s of CPU on an object of
 * 100,000 keys) and are checked before anything reaches it. */
typedef struct validate_limits {
    int body_keys;        /* MAX_BODY_KEYS: keys in the whole body, at every depth */
    int object_keys;      /* MAX_OBJECT_KEYS: keys of one object */
    int array_elements;   /* MAX_ARRAY_ELEMENTS: elements of one array */
    int string_bytes;     /* MAX_STRING_BYTES: bytes of one string or key, as decoded (UTF-8) */
} validate_limits;

/* The defaults of the limits above (README, "Environment"). */
#define VALIDATE_LIMITS_DEFAULT { .body_keys = 1000, .object_keys = 200, \
                                  .array_elements = 1000, .string_bytes = 16384 }

/* Why a body was refused: the HTTP status to answer (400 for a body that
 * is not acceptable JSON, 413 for one over a shape limit) and, for a 413,
 * the limit's variable and its value, which the answer names. */
typedef struct validate_refusal {
    int status;           /* 400 or 413 */
    const char *limit;    /* "MAX_BODY_KEYS" ...; NULL unless a limit was passed */
    int value;            /* the limit's value when limit is set */
} validate_refusal;

/* Scans raw JSON text (len bytes, not necessarily NUL-terminated) before it
 * is parsed, in one pass that never reads past len and allocates nothing,
 * and refuses with 400: nesting deeper than VALIDATE_MAX_DEPTH (the parser
 * recurses once per level and worker threads have small stacks); a NUL,
 * raw (0x00) or escaped (\u0000), in a string or key (cJSON would cut the
 * string there: "a\u0000b" would be stored as "a"), naming the field; any
 * other raw control character inside a string, or outside one other than
 * JSON whitespace (RFC 8259). With 413, when limits is not NULL: an object
 * with more than limits->object_keys keys, more than limits->body_keys
 * keys in all, an array with more than limits->array_elements elements,
 * naming the limit and where it was passed (refused as soon as it is, so a
 * body of 100,000 keys costs microseconds). Returns 0, or -1 with *why and
 * a sentence in err. String lengths are checked by validate_body(), on the
 * decoded strings. */
int validate_text(const char *text, size_t len, const validate_limits *limits,
                  validate_refusal *why, char *err, size_t errlen);

/* Returns 0 when body is a JSON object carrying every field spec requires
 * with its type, and no key (at any depth) that is empty, starts with '$',
 * contains '.', or is a reserved top-level key ("_id", "_meta"), whose keys
 * and strings are valid UTF-8 and numbers finite, and that is no deeper than
 * VALIDATE_MAX_DEPTH. With limits not NULL, no string or key may be longer
 * than limits->string_bytes (413). Otherwise returns -1 with *why and a
 * sentence in err naming the field or key and where it is
 * ("payment.shipment.$where"). */
int validate_body(const cJSON *body, const svc_spec *spec, const validate_limits *limits,
                  validate_refusal *why, char *err, size_t errlen);

/* "string", "number", "array", "object", "boolean". Never NULL. This
 * function can't fail. */
const char *svc_type_name(svc_type t);

#endif
