/* dynbuf.c -- one growable byte buffer with a cap (see dynbuf.h). */
#include "dynbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The first allocation, so that small texts do not grow byte by byte. */
#define DYNBUF_MIN 64

void dynbuf_init(dynbuf *d, size_t cap)
{
    d->buf = NULL;
    d->len = d->alloc = 0;
    d->cap = cap;
}

/* Makes room for n more bytes of text and the NUL. Returns 0,
 * DYNBUF_ETOOBIG or DYNBUF_ENOMEM; d is unaltered on error. */
static int dynbuf_room(dynbuf *d, size_t n)
{
    if (n > d->cap - d->len)
        return DYNBUF_ETOOBIG;
    size_t need = d->len + n + 1;
    if (need <= d->alloc)
        return 0;
    size_t want = d->alloc ? d->alloc : DYNBUF_MIN;
    while (want < need)
        want *= 2;
    if (want > d->cap + 1)
        want = d->cap + 1 > need ? d->cap + 1 : need;
    char *grown = realloc(d->buf, want);
    if (!grown)
        return DYNBUF_ENOMEM;
    d->buf = grown;
    d->alloc = want;
    return 0;
}

int dynbuf_add(dynbuf *d, const void *mem, size_t n)
{
    int rc = dynbuf_room(d, n);
    if (rc)
        return rc;
    if (n)
        memcpy(d->buf + d->len, mem, n);
    d->len += n;
    d->buf[d->len] = '\0';
    return 0;
}

int dynbuf_printf(dynbuf *d, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return DYNBUF_ENOMEM;
    int rc = dynbuf_room(d, (size_t)n);
    if (rc)
        return rc;
    va_start(ap, fmt);
    vsnprintf(d->buf + d->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    d->len += (size_t)n;
    return 0;
}

char *dynbuf_take(dynbuf *d, size_t *len)
{
    char *text = d->buf;
    if (len)
        *len = d->len;
    dynbuf_init(d, d->cap);
    return text;
}

void dynbuf_clear(dynbuf *d)
{
    d->len = 0;
    if (d->buf)
        d->buf[0] = '\0';
}

void dynbuf_free(dynbuf *d)
{
    free(d->buf);
    dynbuf_init(d, d->cap);
}

const char *dynbuf_text(const dynbuf *d)
{
    return d->buf ? d->buf : "";
}

size_t dynbuf_len(const dynbuf *d)
{
    return d->len;
}

const char *dynbuf_strerror(int rc)
{
    return rc == DYNBUF_ETOOBIG ? "too big" : rc == DYNBUF_ENOMEM ? "out of memory" : "ok";
}
