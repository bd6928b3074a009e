/* fuzz_body.c -- libFuzzer harness for POST /create's body: the input is the
 * raw body, checked against each service's spec exactly as request.c does
 * (depth scan, cJSON parse, fields and keys), then printed and turned into
 * BSON as store.c and chain.c do with an accepted body.
 *
 * Beyond "no crash, no sanitizer report", it asserts what the rest of the
 * path relies on: a refusal comes with a message; an accepted body is an
 * object that prints, and its print parses and prints again to the same
 * text (what is stored and passed on is what was received; cJSON_Compare
 * cannot tell duplicate keys apart), still passes the spec's checks, and converts to
 * BSON. */
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

/* What happens to an accepted body after the checks. */
static void accepted(cJSON *body, const svc_spec *spec)
{
    FUZZ_CHECK(cJSON_IsObject(body), "%s accepted a body that is not an object", spec->name);
    char *text = cJSON_PrintUnformatted(body);
    FUZZ_CHECK(text != NULL, "%s: an accepted body does not print", spec->name);
    cJSON *again = NULL;
    char err[600] = "";
    int rc = request_parse_body(text, strlen(text), spec, &again, err, sizeof err);
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
        if (request_parse_body(text, size, fuzz_specs[i], &body, err, sizeof err) == 0) {
            accepted(body, fuzz_specs[i]);
            cJSON_Delete(body);
        } else {
            FUZZ_CHECK(body == NULL && err[0], "%s: a refusal without a message or with a body",
                       fuzz_specs[i]->name);
        }
    }
    free(text);
    return 0;
}
