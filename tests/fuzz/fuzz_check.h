/* fuzz_check.h -- the property check every harness uses: a failed check names
 * the harness (FUZZ_NAME, defined before this header) and the condition, says
 * why, and aborts so that libFuzzer keeps the input. */
#ifndef FUZZ_CHECK_H
#define FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define FUZZ_CHECK(cond, ...)                                                   \
    do {                                                                        \
        if (!(cond)) {                                                          \
            fprintf(stderr, FUZZ_NAME ": check failed: %s: ", #cond);           \
            fprintf(stderr, __VA_ARGS__);                                       \
            fputc('\n', stderr);                                                \
            abort();                                                            \
        }                                                                       \
    } while (0)

#endif
