/* wire.h -- each request head as the client sent it, read under civetweb's feet. */
#ifndef SVC_WIRE_H
#define SVC_WIRE_H

#include <civetweb.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest request-target path read (the query string is not kept): longer gets 414. */
#define WIRE_PATH_MAX 2048

/* The shape of a request-target (RFC 9112 section 3.2). */
typedef enum wire_form {
    WIRE_ORIGIN = 0,   /* /path?query */
    WIRE_ABSOLUTE,     /* http://authority/path?query */
    WIRE_ASTERISK,     /* * (OPTIONS only) */
    WIRE_OTHER         /* anything else: refused */
} wire_form;

/* What was wrong with a head's bytes; 0 = nothing. */
enum {
    WIRE_FOLD = 1 << 0,        /* a header line starting with SP or HTAB (obs-fold) */
    WIRE_BARE_LF = 1 << 1,     /* a line ended by LF alone */
    WIRE_BARE_CR = 1 << 2,     /* a CR not followed by LF */
    WIRE_CTL = 1 << 3,         /* a control character (NUL, ...) in the head */
    WIRE_SPACES = 1 << 4,      /* whitespace before the request line or more than one SP inside it */
    WIRE_LONG_PATH = 1 << 5,   /* a path longer than WIRE_PATH_MAX (414) */
    WIRE_PATH = 1 << 6,        /* a path not in its one canonical spelling (why in the head) */
};

/* One request head, as begin_request sees it. A head is "plain" when it is
 * an origin-form request in canonical spelling with no fault and a body of
 * known length; any other head is the last the connection serves (the
 * scanner stops reading the stream after it, because it can no longer tell
 * where the next head starts, or because the answer closes). */
typedef struct wire_head {
    unsigned flags;                  /* WIRE_* faults */
    wire_form form;
    bool last;                       /* close the connection after this request */
    char why[160];                   /* WIRE_PATH: which rule the path broke */
    char target[WIRE_PATH_MAX + 1];  /* the raw target up to its query (absolute form: all of it) */
    char path[WIRE_PATH_MAX + 1];    /* the path, percent-decoded (absolute form: its path) */
} wire_head;

/* Turns the scanner on for every connection accept() hands to civetweb from
 * now on (guard.c calls wire_accepted()); max_fd bounds the descriptors
 * tracked (the first call's bound holds for the process: the table of
 * descriptors is never freed, so that a close() on any thread may read it at
 * any time). port and names (NULL-terminated list; names a client may use
 * for this service in an absolute-form target, compared without case) are
 * kept. Returns 0, or -1 when out of memory. Call before civetweb starts. */
int wire_init(int max_fd, int port, const char *const *names);

/* Forgets every connection and the names. Call after civetweb stops. */
void wire_free(void);

/* guard.c's accept(): fd is a connection civetweb is about to serve. */
void wire_accepted(int fd);

/* Fetches the verdict on the head civetweb is about to hand to
 * begin_request on this thread's connection into *out. Returns 1 when
 * found, 0 when the scanner is off (wire_init() not called), -1 when the
 * connection's bytes were never seen (the request must be refused). */
int wire_next_head(wire_head *out);

/* ---- slow clients under pressure ----------------------------------------
 *
 * A tracked connection owes bytes from its accept (its first head), from the
 * first byte of a later head, and from the end of a head with a body until
 * the body's last byte; it owes nothing while the service works on its
 * request or while it idles between requests (civetweb's keep-alive timeout
 * bounds that). Under pressure (at least pressure_at connections open), a
 * connection that has owed the rest of its head or body for slow_ms, with
 * nothing unread in the kernel, is cut: its worker is woken, a head in
 * progress is answered 408 and closed, and a body read in a handler fails
 * (http_read_body() answers 408). */

/* Arms the cut: slow_ms 0 turns it off. Call before civetweb starts. */
void wire_slow_init(int slow_ms, int pressure_at);

/* Cuts every connection that has owed bytes for slow_ms or more, when
 * under pressure; a no-op otherwise. Returns the cuts made since
 * wire_slow_init() (this call's and every other's). Safe on any thread. */
long wire_sweep(void);

/* For a newcomer that would be refused for want of a worker (guard.c's
 * accept() at MAX_CONNECTIONS; with body, a request at the reserve's limit,
 * where only body readers hold handlers): cuts the connection that has kept
 * a worker waiting longest for the rest of a head or body (with body: of a
 * body), one that has sent bytes and has none unread, whatever its age.
 * Returns 1 when one was cut (the newcomer may take its place), 0 when none
 * qualifies or the cut is off. */
int wire_cut_slowest(bool body);

/* True when this thread's connection owes nothing: its request (head and
 * body) has arrived whole, the rest of the body waiting in the kernel
 * counting as arrived. False when it is not tracked. */
bool wire_whole_here(void);

/* True when this thread's connection was cut by the above (its reads fail). */
bool wire_cut_here(void);

/* At shutdown, once no request is in flight: shuts down the reading side
 * of every connection that owes nothing and has nothing unread (a client
 * keeping its connection alive between requests, such as a Prometheus
 * scraper or a browser), so that the worker waiting on it wakes and
 * closes it now rather than when its poll next times out (civetweb's 2 s).
 * Returns how many. Safe on any thread. */
int wire_close_idle(void);

/* Connections cut since wire_slow_init(). */
long wire_cuts(void);

/* Checks a raw path (up to its '?', len bytes, not NUL-terminated) for its
 * one canonical spelling, as civetweb would route it: starts with '/'; no
 * empty segment ("//"), no "." or ".." segment, no segment ending in "."
 * (civetweb drops the dot), no backslash (civetweb turns it into '/'); a '%'
 * is followed by two hex digits and never encodes an unreserved character
 * (ALPHA DIGIT - . _ ~), '/', '\', a control character or a byte over 0x7e;
 * no raw byte outside the visible ASCII range. Writes the decoded path into
 * decoded (cap bytes at least len + 1). Returns 0, or -1 with the rule named
 * in why. This function can't fail otherwise. */
int wire_path_check(const char *path, size_t len, char *decoded, size_t cap, char *why, size_t whylen);

/* Checks an absolute-form target "http://authority/path...": scheme http,
 * no userinfo, and an authority naming this service (a name given to
 * wire_init(), "localhost", "127.0.0.1" or "[::1]", with port the
 * configured one, 80 when absent). Returns 0, or -1 with the reason in why. */
int wire_authority_check(const char *target, char *why, size_t whylen);

/* The scanner itself, for the fuzz harness: a fresh connection's state
 * (NULL when out of memory; wire_conn_free() releases it, NULL is fine),
 * then its bytes in any slices; buf may be changed (the first byte of a
 * target that does not start with '/' becomes '/'). wire_scan_next() pops
 * the next verdict: 1 found, 0 none pending. */
struct wire_conn *wire_conn_new(void);
void wire_conn_free(struct wire_conn *c);
void wire_scan(struct wire_conn *c, char *buf, size_t n);
int wire_scan_next(struct wire_conn *c, wire_head *out);

#endif
