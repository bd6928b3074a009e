/* fuzz_body.c -- libFuzzer harness for POST /create's body: the input is the
 * raw body, checked against each service's spec exactly as request.c does
 * (text scan with shape limits, cJSON parse, trailing data, fields and keys), then printed and turned into
 * BSON as store.c and chain.c do with an accepted body.
 *
 * Beyond "no crash, no sanitizer report", it asserts what the rest of the
 * path relies on: a refusal comes with a message; an accepted body is an
 * object that prints, and its print parses and prints again to the same
 * text (what is stored and passed on is what was received; cJSON_Compare
 * cannot tell duplicate keys apart), still passes the spec's checks and limits, and
 * converts to BSON; a refusal is a 400, or a 413 that names its limit. */
#include <bson.h>
#include <cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_specs.h"
#include "request_parse.h"

/* Stops the run with a reproducible finding: libFuzzer saves the input. */
#define FUZZ_NAME "fuzz_body"
#include "fuzz_check.h"

/* The shape limits the harness checks with: small, so that short inputs
 * reach them and both sides of every limit are explored. */
static const validate_limits limits = { .body_keys = 12, .object_keys = 6, .array_elements = 8,
                                        .string_bytes = 40 };

/* What happens to an accepted body after the checks. */
static void accepted(cJSON *body, const svc_spec *spec)
{
    FUZZ_CHECK(cJSON_IsObject(body), "%s accepted a body that is not an object", spec->name);
    char *text = cJSON_PrintUnformatted(body);
    FUZZ_CHECK(text != NULL, "%s: an accepted body does not print", spec->name);
    cJSON *again = NULL;
    char err[600] = "";
    validate_refusal why;
    int rc = request_parse_body(text, strlen(text), spec, &limits, &again, &why, err, sizeof err);
    FUZZ_CHECK(rc == 0, "%s: the printed body %.300s is refused: %s", spec->name, text, err);
    char *text2 = cJSON_PrintUnformatted(again);
    FUZZ_CHECK(text2 && !strcmp(text, text2), "%s: the printed body %.300s prints again as %.300s",
               spec->name, text, text2 ? text2 : "(nothing)");
    free(text2);
    cJSON_Delete(again);
    bson_error_t e;
    bson_t *doc = bson_new_from_json((const uint8_t *)text, -1, &e);
    FUZZ_CHECK(doc != NULL, "%s: the accepted body %.300s is not storable: %s", spec->name, text,
               e.message);
    bson_destroy(doc);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* the body as http_read_body() hands it over: len bytes in a buffer of their own */
    char *text = malloc(size ? size : 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    for (int i = 0; i < FUZZ_NSPECS; i++) {
        cJSON *body = NULL;
        char err[600] = "";
        validate_refusal why;
        if (request_parse_body(text, size, fuzz_specs[i], &limits, &body, &why, err,
                               sizeof err) == 0) {
            /* cJSON would cut a string at a NUL: such a body must never pass */
            FUZZ_CHECK(memchr(text, 0, size) == NULL, "%s accepted a body with a NUL byte",
                       fuzz_specs[i]->name);
            accepted(body, fuzz_specs[i]);
            cJSON_Delete(body);
        } else {
            FUZZ_CHECK(body == NULL && err[0], "%s: a refusal without a message or with a body",
                       fuzz_specs[i]->name);
            FUZZ_CHECK(why.status == 400 || why.status == 413, "%s: refused with status %d",
                       fuzz_specs[i]->name, why.status);
            FUZZ_CHECK((why.status == 413) == (why.limit != NULL),
                       "%s: a %d names limit %s: %s", fuzz_specs[i]->name, why.status,
                       why.limit ? why.limit : "(none)", err);
        }
    }
    free(text);
    return 0;
}
