/* request_parse.h -- the parsers of POST /create's outside input, without a
 * connection: the query string's count and the body. request.c answers with
 * them; the fuzz harnesses (tests/fuzz) call them directly. Internal to
 * common/svc. */
#ifndef SVC_REQUEST_PARSE_H
#define SVC_REQUEST_PARSE_H

#include <cJSON.h>
#include <stddef.h>
#include "spec.h"
#include "validate.h"

/* Reads "count" from the query string (len bytes, not necessarily
 * NUL-terminated; NULL = no query string) into *n, 0 when absent. Returns 0,
 * or -1 when it is present and not an integer in 0..INT_MAX-1, or given
 * more than once. */
int request_parse_count(const char *query, size_t len, int *n);

/* Parses a body of len bytes (not necessarily NUL-terminated) and checks it
 * against spec and limits (NULL = no shape limits): validate_text() on the
 * raw text (depth, NULs, control characters, key and element counts), JSON
 * syntax with nothing but whitespace after the value, then validate_body()
 * (keys, types, string lengths). Returns 0 with the parsed body in *body
 * (the caller frees it with cJSON_Delete), or -1 with *body NULL, *why (the
 * status, 400 or 413, and the limit passed, if any) and a sentence in err,
 * which is then the answer's message. */
int request_parse_body(const char *text, size_t len, const svc_spec *spec,
                       const validate_limits *limits, cJSON **body, validate_refusal *why,
                       char *err, size_t errlen);

#endif
