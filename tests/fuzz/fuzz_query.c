/* fuzz_query.c -- libFuzzer harness for the query strings the services read:
 * ?count=N on POST /create (request_parse_count) and ?name= on /breaker and
 * its admin routes (civetweb's mg_get_var into the 256-byte buffer observe.c
 * uses). The input is the query string, without the '?'.
 *
 * Asserts: an accepted count is in 0..INT_MAX-1, so that count + 1 (the next
 * hop's count) cannot overflow; a decoded name fits its buffer. */
#include <civetweb.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "request_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* civetweb hands the handlers a NUL-terminated query string */
    char *qs = malloc(size + 1);
    if (!qs)
        return 0;
    memcpy(qs, data, size);
    qs[size] = '\0';
    size_t len = strlen(qs);
    int n = -1;
    if (request_parse_count(qs, len, &n) == 0) {
        if (n < 0 || n >= INT_MAX) {
            fprintf(stderr, "fuzz_query: count %d accepted from \"%.200s\"\n", n, qs);
            abort();
        }
    }
    char name[256];
    int got = mg_get_var(qs, len, "name", name, sizeof name);
    if (got >= 0 && (size_t)got >= sizeof name) {
        fprintf(stderr, "fuzz_query: name of %d bytes in a %zu-byte buffer\n", got, sizeof name);
        abort();
    }
    free(qs);
    return 0;
}
