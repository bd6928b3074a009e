/* strbuf.h -- appending text to a fixed buffer without printf: the request's log line and answer head.
 *
 * snprintf() with a dozen conversions cost more than the rest of a GET /
 * together; these appends are memcpy and integer division. A strbuf never
 * overruns: an append that does not fit is cut, the text stays
 * NUL-terminated, and sb_full() tells that something was cut.
 */
#ifndef SVC_STRBUF_H
#define SVC_STRBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    char *start, *p, *end; /* the buffer; the next byte; its last byte, kept for the NUL */
    bool cut;              /* an append did not fit */
} strbuf;

/* Starts b on buf[len] (len >= 1) with empty text. */
static inline void sb_init(strbuf *b, char *buf, size_t len)
{
    b->start = b->p = buf;
    b->end = buf + len - 1;
    b->cut = false;
    *b->p = '\0';
}

/* Appends n bytes of s (no NUL needed). */
static inline void sb_mem(strbuf *b, const char *s, size_t n)
{
    size_t room = (size_t)(b->end - b->p);
    if (n > room) {
        n = room;
        b->cut = true;
    }
    memcpy(b->p, s, n);
    b->p += n;
    *b->p = '\0';
}

/* Appends a string literal, its length known at compile time. */
#define sb_lit(b, lit) sb_mem((b), "" lit, sizeof(lit) - 1)

/* Appends at most max bytes of s (up to its NUL). */
static inline void sb_str(strbuf *b, const char *s, size_t max)
{
    sb_mem(b, s, strnlen(s, max));
}

/* Appends v in decimal with at least width digits (zero-padded, width <= 20). */
static inline void sb_uint(strbuf *b, unsigned long long v, int width)
{
    char d[24];
    size_t n = 0;
    do {
        d[sizeof d - 1 - n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n < (size_t)width && n < 20)
        d[sizeof d - 1 - n++] = '0';
    sb_mem(b, d + sizeof d - n, n);
}

/* Appends v as "%.<digits>f" does (digits 1..3): directly for 0 <= v < 1e15,
 * else through snprintf. */
static inline void sb_decimals(strbuf *b, double v, int digits)
{
    if (!(v >= 0 && v < 1e15)) {
        char t[400];
        snprintf(t, sizeof t, "%.*f", digits, v);
        sb_str(b, t, sizeof t);
        return;
    }
    unsigned long long scale = digits >= 3 ? 1000 : digits == 2 ? 100 : 10;
    unsigned long long m = (unsigned long long)(v * (double)scale + 0.5);
    sb_uint(b, m / scale, 1);
    sb_str(b, ".", 1);
    sb_uint(b, m % scale, digits >= 3 ? 3 : digits == 2 ? 2 : 1);
}

/* Appends v as "%.1f" does. */
static inline void sb_tenths(strbuf *b, double v)
{
    sb_decimals(b, v, 1);
}

/* The length of b's text. */
static inline size_t sb_len(const strbuf *b)
{
    return (size_t)(b->p - b->start);
}

/* Whether an append was cut. */
static inline bool sb_full(const strbuf *b)
{
    return b->cut;
}

#endif
