/* dynbuf.h -- one growable byte buffer with a cap, as curl's lib/dynbuf.h: for a body of unknown length.
 *
 * A dynbuf grows by doubling up to the cap its owner gives at init; an
 * append that would pass the cap, or that cannot get memory, fails and
 * leaves the text as it was. The text is always NUL-terminated (the NUL is
 * not counted in the length nor against the cap). For text of a known bound
 * written on a hot path, strbuf.h appends into a fixed buffer instead.
 */
#ifndef SVC_DYNBUF_H
#define SVC_DYNBUF_H

#include <stddef.h>

typedef struct dynbuf {
    char *buf;     /* NULL until the first append */
    size_t len;    /* bytes of text */
    size_t alloc;  /* bytes allocated (text, NUL and room) */
    size_t cap;    /* the most bytes of text it may hold */
} dynbuf;

/* Error codes of the appends (0 is success). */
#define DYNBUF_ETOOBIG -1 /* the append would pass the cap */
#define DYNBUF_ENOMEM  -2 /* out of memory */

/* Starts d empty, holding at most cap bytes. Allocates nothing. This
 * function can't fail. */
void dynbuf_init(dynbuf *d, size_t cap);

/* Appends n bytes of mem. Returns 0, DYNBUF_ETOOBIG or DYNBUF_ENOMEM; on
 * error d is left unaltered. */
int dynbuf_add(dynbuf *d, const void *mem, size_t n);

/* Appends printf-formatted text. Returns 0, DYNBUF_ETOOBIG or
 * DYNBUF_ENOMEM; on error d is left unaltered. */
int dynbuf_printf(dynbuf *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Hands the text over: returns it (NUL-terminated; the caller frees it) and
 * its length in *len (when len is not NULL), and leaves d empty with the
 * same cap. Returns NULL, *len 0, when nothing was ever appended. This
 * function can't fail. */
char *dynbuf_take(dynbuf *d, size_t *len);

/* Empties the text and keeps its memory for the next appends (a buffer
 * filled again and again). This function can't fail. */
void dynbuf_clear(dynbuf *d);

/* Frees the text and leaves d empty with the same cap. */
void dynbuf_free(dynbuf *d);

/* The text so far ("" before any append) and its length. */
const char *dynbuf_text(const dynbuf *d);
size_t dynbuf_len(const dynbuf *d);

/* A word for an append's error code: "too big", "out of memory", "ok". */
const char *dynbuf_strerror(int rc);

#endif
