/* fuzz_wire.c -- libFuzzer harness for the raw head scanner (wire.c): the
 * bytes of one connection, cut into slices the way recv() might return
 * them, and every verdict it hands begin_request; the path and authority
 * checks on each kept target.
 *
 * Input: byte 0 picks the slice length (1..64; a client trickling bytes or
 * sending everything at once), the rest is the stream.
 *
 * Asserts: the scanner changes only the first byte of a target, into '/';
 * it never hands out more verdicts than heads it finished; an accepted
 * path decodes to a string with no NUL, no backslash, no empty, "." or ".."
 * segment and no segment ending in '.' (the spellings civetweb would
 * rewrite before routing), so it routes exactly as it reads. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire.h"

/* Aborts unless decoded is a path civetweb leaves as it is. */
static void check_canonical(const char *decoded, const char *raw)
{
    size_t n = strlen(decoded);
    if (n == 0 || decoded[0] != '/' || strchr(decoded, '\\') || strstr(decoded, "//") ||
        strstr(decoded, "/./") || strstr(decoded, "/../") ||
        (n >= 2 && !strcmp(decoded + n - 2, "/.")) || (n >= 3 && !strcmp(decoded + n - 3, "/..")) ||
        strstr(decoded, "./") || decoded[n - 1] == '.') {
        fprintf(stderr, "fuzz_wire: \"%.200s\" accepted as \"%.200s\"\n", raw, decoded);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        static const char *const names[] = { "order", NULL };
        if (wire_init(8, 3000, names))
            return 0;
        ready = 1;
    }
    if (size < 1)
        return 0;
    size_t slice = 1 + data[0] % 64;
    char *buf = malloc(size);
    if (!buf)
        return 0;
    memcpy(buf, data + 1, size - 1);
    size_t len = size - 1;
    struct wire_conn *c = wire_conn_new();
    if (!c) {
        free(buf);
        return 0;
    }
    static wire_head h;
    for (size_t at = 0; at < len; at += slice) {
        size_t n = len - at < slice ? len - at : slice;
        wire_scan(c, buf + at, n);
        while (wire_scan_next(c, &h) == 1) {
            if (!h.flags && (h.form == WIRE_ORIGIN || h.form == WIRE_ABSOLUTE) && h.path[0])
                check_canonical(h.path, h.target);
            if (h.form == WIRE_ABSOLUTE) {
                char why[160];
                (void)wire_authority_check(h.target, why, sizeof why);
            }
        }
    }
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)buf[i] != data[1 + i] && buf[i] != '/') {
            fprintf(stderr, "fuzz_wire: byte %zu changed to 0x%02x\n", i, (unsigned char)buf[i]);
            abort();
        }
    /* The path check alone, on the whole input as a path. */
    char decoded[WIRE_PATH_MAX + 1], why[160];
    if (len <= WIRE_PATH_MAX && !memchr(data + 1, '?', len) &&
        wire_path_check((const char *)data + 1, len, decoded, sizeof decoded, why, sizeof why) == 0) {
        if (strlen(decoded) > len || memchr(data + 1, 0, len)) {
            fprintf(stderr, "fuzz_wire: a path with a NUL, or decoded longer, was accepted\n");
            abort();
        }
        char raw[WIRE_PATH_MAX + 1];
        memcpy(raw, data + 1, len);
        raw[len] = '\0';
        check_canonical(decoded, raw);
    }
    wire_conn_free(c);
    free(buf);
    return 0;
}
