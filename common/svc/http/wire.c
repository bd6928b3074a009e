/* wire.c -- each request head as the client sent it, read under civetweb's feet.
 *
 * civetweb 1.15 parses a head in place and hands begin_request the result:
 * by then a folded line has been swallowed, a bare LF accepted, the path
 * percent-decoded ("%00" ends it, "%63" is "c") and cleaned ("//", "/./",
 * "/../" and a trailing dot removed), and an absolute-form or "*" target
 * has been dropped without an answer. None of that can be told from what
 * it hands over, and it offers no hook on the raw bytes.
 *
 * So this file defines recv() and close() in the executable, as guard.c
 * defines accept(): civetweb's calls bind to them first (the ordinary ELF
 * lookup order). For a descriptor accept() handed to civetweb, recv() runs
 * each byte through a small scanner before civetweb sees it; every other
 * descriptor (libcurl's, libmongoc's) passes straight through, and close()
 * forgets a tracked descriptor before it can be reused. The scanner
 *
 *   - follows the stream head by head: request line, header lines, the
 *     blank line, then Content-Length bytes of body;
 *   - marks a head's faults (a fold, a bare LF or CR, a control byte,
 *     extra whitespace, a non-canonical or too long path: wire_path_check());
 *   - rewrites one byte at most: the first byte of a target that is not
 *     '/' becomes '/', so that civetweb routes "*" and "http://..." targets
 *     to begin_request (which answers them from the raw target kept here)
 *     instead of closing the connection in silence.
 *
 * A head with any fault, any form but origin, a chunked body or a length it
 * cannot read is the connection's last: the scanner stops reading after it,
 * and begin_request closes the connection after its answer. So a clean
 * connection costs a counter per head and nothing is queued.
 *
 *   state       byte                  next
 *   START       CR LF                 START (blank lines before a request)
 *   START       other whitespace      START, WIRE_SPACES
 *   START       other                 METHOD
 *   METHOD      SP                    TARGET0
 *   TARGET0     SP                    TARGET0, WIRE_SPACES
 *   TARGET0     other                 TARGET (first byte kept, '/' given to civetweb)
 *   TARGET      SP                    VERSION (target checked)
 *   VERSION     SP                    VERSION, WIRE_SPACES
 *   VERSION, NAME, VALUE   CR         LF_WANTED
 *   any line    LF without CR         LINE0, WIRE_BARE_LF (an empty line ends the head)
 *   LF_WANTED   LF                    LINE0 (or the end of the head after an empty line)
 *   LINE0       CR                    LF_WANTED (empty line)
 *   LINE0       SP HTAB               VALUE, WIRE_FOLD
 *   LINE0       other                 NAME
 *   NAME        ':'                   VALUE
 *   head end    plain, length N       BODY (N bytes), then START
 *   head end    otherwise             STOP (nothing more is read)
 *
 * Slow clients. civetweb holds a worker for a connection from its accept
 * to its close, so a client that sends its head or body a byte at a time
 * holds one for as long as the timeouts allow (HEADER_TIMEOUT_MS,
 * BODY_TIMEOUT_MS), and a few hundred of them fill the service. The
 * scanner knows when a connection started to owe the service bytes (its
 * accept, the first byte of a later head, the end of a head with a body)
 * and when it stopped (the head's or body's last byte); each connection
 * publishes that time in owed_since. Under pressure (SLOW_CLIENT_MS set,
 * THREADS - RESERVED_WORKERS connections open), a connection that has owed
 * for SLOW_CLIENT_MS is cut, in three places:
 *
 *   recv()             a byte arrives and its head or body is still not whole
 *   wire_sweep()       every tick (svc.c), for clients that send nothing more
 *   wire_cut_slowest() when a new connection or request would be refused
 *                      for want of a worker (MAX_CONNECTIONS, the reserve),
 *                      the one that has owed longest, whatever its age
 *
 * A connection with bytes still unread in the kernel is never cut: those
 * bytes wait for the service (a queued connection, a busy handler), not
 * for the client. A cut connection is marked, its reading side shut down
 * (which wakes the worker polling it), and its next recv() fails with
 * ECONNRESET, after a 408 when a head was in progress (civetweb would answer
 * a head cut short 400); in a handler, http_read_body() answers 408. A
 * cut from another thread holds wire_lock, as does close() when it drops a
 * tracked descriptor, so a descriptor is never shut down after its number
 * has been handed to someone else.
 */
#include "wire.h"

#include <ctype.h>
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include "monotime.h"

enum wire_state {
    W_START, W_METHOD, W_TARGET0, W_TARGET, W_VERSION, W_LF_WANTED, W_LINE0, W_NAME, W_VALUE,
    W_BODY, W_STOP
};

/* Which header a line is, as far as the scanner cares. */
enum wire_header { H_OTHER, H_LENGTH, H_ENCODING };

struct wire_conn {
    enum wire_state state;
    bool empty_line;         /* the line being ended has no bytes */
    enum wire_header header; /* the header line being read */
    unsigned flags;          /* faults of the head being read */
    int lengths;             /* Content-Length lines in this head */
    bool length_bad;         /* a Content-Length that is not 1*DIGIT (OWS allowed around) */
    bool length_digits_done; /* OWS after the digits seen */
    int length_ndigits;
    bool encoded;            /* a Transfer-Encoding line */
    long long length;
    long long body_left;
    char name[24];           /* the header name read so far, lowercase, cut */
    size_t name_len;
    char target[WIRE_PATH_MAX + 1];
    size_t target_len;       /* bytes kept (up to the query, or all of an absolute target) */
    bool target_query;       /* past the '?' of an origin-form target */
    bool target_long;
    uint32_t heads;          /* heads completed */
    uint32_t served;         /* verdicts handed out */
    wire_head *last;         /* the special head (see the top), once read */
    uint32_t last_seq;       /* its number, 0 = none */
    /* read by other threads (the sweep, accept), written by the worker */
    _Atomic int64_t owed_since; /* mono_ns() since bytes are owed; 0 = none owed */
    atomic_bool owed_body;   /* what is owed is a body (read in a handler) */
    atomic_bool read;        /* a worker has read bytes from it */
    atomic_bool cut;         /* cut as a slow client: every read fails */
    bool cut_answered;       /* the worker has sent the cut's 408 (or chose not to) */
};

/* The descriptors tracked: made once by wire_init() and never freed, so that
 * a close() on any thread (libmongoc's, at shutdown) can read it at any time;
 * wire_free() empties it. */
typedef struct wire_table {
    int n;
    _Atomic(struct wire_conn *) slot[];
} wire_table;

static int wire_port;
static char **wire_names;
static _Atomic(wire_table *) wire_tracked;
static _Thread_local int wire_current_fd = -1;

/* The slow-client cut (see the top). */
static pthread_mutex_t wire_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_int wire_open;              /* tracked connections */
static atomic_int wire_fd_high;           /* highest descriptor ever tracked, + 1 */
static _Atomic int64_t wire_slow_ns;      /* SLOW_CLIENT_MS; 0 = off */
static atomic_int wire_pressure_at;       /* connections open from which it applies */
static atomic_long wire_cut_count;
static char wire_cut_answer[512];
static size_t wire_cut_answer_len;

struct wire_conn *wire_conn_new(void)
{
    return calloc(1, sizeof(struct wire_conn));
}

/* The form of a complete raw target. */
static wire_form wire_form_of(const char *t, size_t n)
{
    if (n > 0 && t[0] == '/')
        return WIRE_ORIGIN;
    if (n == 1 && t[0] == '*')
        return WIRE_ASTERISK;
    if ((n > 7 && !strncasecmp(t, "http://", 7)) || (n > 8 && !strncasecmp(t, "https://", 8)))
        return WIRE_ABSOLUTE;
    return WIRE_OTHER;
}

/* Is c an unreserved character (RFC 3986 2.3)? */
static bool wire_unreserved(int c)
{
    return isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

/* The value of hex digit c, or -1 when c is not one. */
static int wire_hex(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int wire_path_check(const char *path, size_t len, char *decoded, size_t cap, char *why, size_t whylen)
{
    size_t out = 0;
    if (cap < len + 1) {
        snprintf(why, whylen, "the path is too long");
        return -1;
    }
    decoded[0] = '\0';
    if (len == 0 || path[0] != '/') {
        snprintf(why, whylen, "the path must start with '/'");
        return -1;
    }
    size_t seg = 0;   /* start of the current segment in path (after its '/') */
    for (size_t i = 0; i <= len; i++) {
        int c = i < len ? (unsigned char)path[i] : '/';
        if (c == '/') {
            if (i > 0) {
                size_t n = i - seg;
                const char *s = path + seg;
                if (n == 0 && i < len) {
                    snprintf(why, whylen, "an empty path segment (\"//\")");
                    return -1;
                }
                if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.')) {
                    snprintf(why, whylen, "a \"%.*s\" path segment", (int)n, s);
                    return -1;
                }
                if (n > 0 && s[n - 1] == '.') {
                    snprintf(why, whylen, "a path segment ending in '.'");
                    return -1;
                }
            }
            seg = i + 1;
            if (i < len)
                decoded[out++] = '/';
            continue;
        }
        if (c == '\\') {
            snprintf(why, whylen, "a backslash in the path");
            return -1;
        }
        if (c <= 0x20 || c >= 0x7f || c == '#') {
            snprintf(why, whylen, "a byte 0x%02x in the path", (unsigned)c);
            return -1;
        }
        if (c == '%') {
            int hi = i + 2 < len ? wire_hex((unsigned char)path[i + 1]) : -1;
            int lo = i + 2 < len ? wire_hex((unsigned char)path[i + 2]) : -1;
            if (hi < 0 || lo < 0) {
                snprintf(why, whylen, "a '%%' not followed by two hex digits");
                return -1;
            }
            int v = hi * 16 + lo;
            if (v == 0) {
                snprintf(why, whylen, "a NUL (%%00) in the path");
                return -1;
            }
            if (wire_unreserved(v) || v == '/' || v == '\\' || v < 0x20 || v >= 0x7f) {
                snprintf(why, whylen, "\"%%%c%c\" encodes '%c', which has one spelling only: write it as "
                         "is", path[i + 1], path[i + 2], isprint(v) ? v : '?');
                return -1;
            }
            decoded[out++] = (char)v;
            i += 2;
            continue;
        }
        decoded[out++] = (char)c;
    }
    decoded[out] = '\0';
    return 0;
}

int wire_authority_check(const char *target, char *why, size_t whylen)
{
    if (strncasecmp(target, "http://", 7)) {
        snprintf(why, whylen, "an absolute target must be http:// (this service speaks no TLS)");
        return -1;
    }
    const char *auth = target + 7;
    size_t n = strcspn(auth, "/?#");
    if (memchr(auth, '@', n)) {
        snprintf(why, whylen, "userinfo in the target's authority");
        return -1;
    }
    if (auth[n] != '/') {
        snprintf(why, whylen, "an absolute target needs a path");
        return -1;
    }
    size_t hostlen = n;
    long port = 80;
    const char *colon = NULL;
    for (size_t i = n; i > 0; i--)
        if (auth[i - 1] == ':') {
            colon = auth + i - 1;
            break;
        } else if (auth[i - 1] == ']') {
            break;
        }
    if (colon) {
        hostlen = (size_t)(colon - auth);
        char *end = NULL;
        port = strtol(colon + 1, &end, 10);
        if (end != auth + n || end == colon + 1 || port <= 0 || port > 65535) {
            snprintf(why, whylen, "the target's port is not a number");
            return -1;
        }
    }
    bool named = false;
    static const char *const loopback[] = { "localhost", "127.0.0.1", "[::1]", NULL };
    for (const char *const *l = loopback; *l && !named; l++)
        named = strlen(*l) == hostlen && !strncasecmp(*l, auth, hostlen);
    for (char **l = wire_names; l && *l && !named; l++)
        named = strlen(*l) == hostlen && !strncasecmp(*l, auth, hostlen);
    if (!named || port != wire_port) {
        snprintf(why, whylen, "the target names %.*s, not this service", (int)(n > 80 ? 80 : n), auth);
        return -1;
    }
    return 0;
}

/* The verdict on a finished head's target into h: its form, the raw
 * target, and the path checked and decoded (origin and absolute forms). */
static void wire_target_done(struct wire_conn *c, wire_head *h)
{
    h->form = wire_form_of(c->target, c->target_len);
    memcpy(h->target, c->target, c->target_len);
    h->target[c->target_len] = '\0';
    h->path[0] = '\0';
    if (c->target_long) {
        h->flags |= WIRE_LONG_PATH;
        return;
    }
    const char *path = h->target;
    size_t len = c->target_len;
    if (h->form == WIRE_ABSOLUTE) {
        const char *slash = strchr(strstr(h->target, "://") + 3, '/');
        if (!slash)
            return;   /* wire_authority_check() refuses it */
        path = slash;
        len = strlen(slash);
    } else if (h->form != WIRE_ORIGIN) {
        return;
    }
    if (wire_path_check(path, len, h->path, sizeof h->path, h->why, sizeof h->why))
        h->flags |= WIRE_PATH;
}

/* Starts a new head's bookkeeping. */
static void wire_head_start(struct wire_conn *c)
{
    c->flags = 0;
    c->lengths = 0;
    c->length_bad = false;
    c->length_digits_done = false;
    c->encoded = false;
    c->length = 0;
    c->target_len = 0;
    c->target_query = false;
    c->target_long = false;
}

/* The head just ended: counts it, and keeps it when it is special. */
static void wire_head_done(struct wire_conn *c)
{
    c->heads++;
    wire_head probe;
    memset(&probe, 0, sizeof probe);
    probe.flags = c->flags;
    wire_target_done(c, &probe);
    bool unknown_length = c->encoded || c->lengths > 1 || c->length_bad;
    bool special = probe.flags || probe.form != WIRE_ORIGIN || unknown_length;
    if (!special) {
        c->body_left = c->lengths ? c->length : 0;
        c->state = c->body_left > 0 ? W_BODY : W_START;
        atomic_store(&c->owed_body, c->body_left > 0);
        atomic_store(&c->owed_since, c->body_left > 0 ? mono_ns() : 0);
        wire_head_start(c);
        return;
    }
    atomic_store(&c->owed_since, 0);   /* nothing more is followed */
    c->state = W_STOP;
    c->last = malloc(sizeof *c->last);
    if (c->last) {
        *c->last = probe;
        c->last->last = true;
    }
    c->last_seq = c->heads;
}

/* Keeps one target byte, up to the query. */
static void wire_target_byte(struct wire_conn *c, char b)
{
    if (b == '?')
        c->target_query = true;
    if (c->target_query)
        return;
    if (c->target_len >= WIRE_PATH_MAX) {
        c->target_long = true;
        return;
    }
    c->target[c->target_len++] = b;
}

/* A header line's name is complete. */
static void wire_name_done(struct wire_conn *c)
{
    c->name[c->name_len] = '\0';
    c->header = H_OTHER;
    if (!strcmp(c->name, "content-length")) {
        c->header = H_LENGTH;
        c->lengths++;
        c->length = 0;
        c->length_ndigits = 0;
        c->length_digits_done = false;
    } else if (!strcmp(c->name, "transfer-encoding")) {
        c->header = H_ENCODING;
        c->encoded = true;
    }
}

/* A Content-Length value byte: 1*DIGIT (at most 18) with OWS around it. */
static void wire_length_byte(struct wire_conn *c, unsigned char b)
{
    if (b == ' ' || b == '\t') {
        if (c->length_ndigits)
            c->length_digits_done = true;
        return;
    }
    if (!isdigit(b) || c->length_digits_done || c->length_ndigits >= 18) {
        c->length_bad = true;
        return;
    }
    c->length = c->length * 10 + (b - '0');
    c->length_ndigits++;
}

/* A line ended (after its CRLF or bare LF). */
static void wire_line_end(struct wire_conn *c)
{
    if (c->header == H_LENGTH && c->length_ndigits == 0)
        c->length_bad = true;
    c->header = H_OTHER;
    if (c->empty_line) {
        wire_head_done(c);
        return;
    }
    c->state = W_LINE0;
    c->empty_line = true;
}

/* True for a control byte (other than what the caller allows). */
static bool wire_ctl(unsigned char b)
{
    return b < 0x20 || b == 0x7f;
}

/* One byte of the request line (states W_START to W_VERSION); buf[i] may be
 * rewritten (a target that does not start with '/'). Returns true when the
 * byte ends the line. */
static bool wire_request_line_byte(struct wire_conn *c, char *buf, size_t i)
{
    unsigned char b = (unsigned char)buf[i];
    bool eol = b == '\r' || b == '\n';
    switch (c->state) {
    case W_START:
        if (eol)
            return false;
        if (atomic_load_explicit(&c->owed_since, memory_order_relaxed) == 0)
            atomic_store(&c->owed_since, mono_ns());   /* a later head: owed from its first byte */
        if (isspace(b)) {
            c->flags |= WIRE_SPACES;
            return false;
        }
        c->state = W_METHOD;
        if (wire_ctl(b))
            c->flags |= WIRE_CTL;
        return false;
    case W_METHOD:
        if (b == ' ')
            c->state = W_TARGET0;
        else if (eol)
            return true;
        else if (wire_ctl(b))
            c->flags |= WIRE_CTL;
        return false;
    case W_TARGET0:
        if (b == ' ' || b == '\t') {
            c->flags |= WIRE_SPACES;
            return false;
        }
        if (eol)
            return true;
        wire_target_byte(c, (char)b);
        if (b != '/')
            buf[i] = '/';   /* civetweb routes it; begin_request answers from the raw target */
        c->state = W_TARGET;
        return false;
    case W_TARGET:
        if (b == ' ') {
            c->state = W_VERSION;
            return false;
        }
        if (eol)
            return true;
        if (wire_ctl(b))
            c->flags |= WIRE_CTL;
        wire_target_byte(c, (char)b);
        return false;
    default: /* W_VERSION */
        if (b == ' ' || b == '\t')
            c->flags |= WIRE_SPACES;
        else if (eol)
            return true;
        else if (wire_ctl(b))
            c->flags |= WIRE_CTL;
        return false;
    }
}

/* One byte of a header line (states W_LINE0 to W_LF_WANTED). Returns true
 * when the byte ends the line. */
static bool wire_header_byte(struct wire_conn *c, unsigned char b)
{
    bool eol = b == '\r' || b == '\n';
    switch (c->state) {
    case W_LINE0:
        if (eol)
            return true;
        c->empty_line = false;
        if (b == ' ' || b == '\t') {
            c->flags |= WIRE_FOLD;
            c->state = W_VALUE;
            return false;
        }
        c->state = W_NAME;
        c->name_len = 0;
        c->header = H_OTHER;
        /* fall through */
    case W_NAME:
        if (b == ':') {
            wire_name_done(c);
            c->state = W_VALUE;
            c->length_digits_done = false;
            return false;
        }
        if (eol)
            return true;
        if (wire_ctl(b))
            c->flags |= WIRE_CTL;
        if (c->name_len < sizeof c->name - 1)
            c->name[c->name_len++] = (char)tolower(b);
        return false;
    case W_VALUE:
        if (eol)
            return true;
        if (b != '\t' && wire_ctl(b))
            c->flags |= WIRE_CTL;
        if (c->header == H_LENGTH)
            wire_length_byte(c, b);
        return false;
    default: /* W_LF_WANTED */
        if (b == '\n') {
            wire_line_end(c);
            return false;
        }
        /* the CR was a byte of a line that goes on */
        c->flags |= WIRE_BARE_CR;
        c->empty_line = false;
        if (b == '\r')
            return false;   /* still waiting for an LF */
        c->state = W_VALUE;
        if (b != '\t' && wire_ctl(b))
            c->flags |= WIRE_CTL;
        return false;
    }
}

/* A CR or LF that ended a line: a CR waits for its LF; a bare LF ends the
 * line at once and marks the head. */
static void wire_line_break(struct wire_conn *c, unsigned char b)
{
    if (c->state != W_LINE0)
        c->empty_line = false;
    if (b == '\r') {
        c->state = W_LF_WANTED;
    } else {
        c->flags |= WIRE_BARE_LF;
        wire_line_end(c);
    }
}

void wire_scan(struct wire_conn *c, char *buf, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char b = (unsigned char)buf[i];
        bool ended;
        switch (c->state) {
        case W_STOP:
            return;
        case W_BODY: {
            size_t take = n - i;
            if ((long long)take > c->body_left)
                take = (size_t)c->body_left;
            c->body_left -= (long long)take;
            i += take - 1;
            if (c->body_left == 0) {
                c->state = W_START;
                atomic_store(&c->owed_since, 0);
                atomic_store(&c->owed_body, false);
            }
            continue;
        }
        case W_START:
        case W_METHOD:
        case W_TARGET0:
        case W_TARGET:
        case W_VERSION:
            ended = wire_request_line_byte(c, buf, i);
            break;
        default:
            ended = wire_header_byte(c, b);
            break;
        }
        if (ended)
            wire_line_break(c, b);
    }
}

int wire_scan_next(struct wire_conn *c, wire_head *out)
{
    if (c->served >= c->heads)
        return 0;
    c->served++;
    memset(out, 0, offsetof(wire_head, target));
    out->target[0] = out->path[0] = '\0';
    if (c->last_seq && c->served == c->last_seq) {
        if (!c->last) {
            out->flags = WIRE_CTL;   /* out of memory: refuse rather than guess */
            out->last = true;
            return 1;
        }
        *out = *c->last;
        return 1;
    }
    if (c->last_seq && c->served > c->last_seq) {
        out->flags = WIRE_CTL;
        out->last = true;
    }
    return 1;
}

/* ---- the descriptors civetweb serves ------------------------------------ */

int wire_init(int max_fd, int port, const char *const *names)
{
    wire_free();
    size_t n = 0;
    while (names && names[n])
        n++;
    wire_names = calloc(n + 1, sizeof *wire_names);
    if (!wire_names)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (!(wire_names[i] = strdup(names[i]))) {
            wire_free();
            return -1;
        }
    wire_port = port;
    if (!atomic_load(&wire_tracked)) {   /* the first call's size holds */
        wire_table *t = calloc(1, sizeof *t + (size_t)max_fd * sizeof t->slot[0]);
        if (!t) {
            wire_free();
            return -1;
        }
        t->n = max_fd;
        atomic_store(&wire_tracked, t);
    }
    return 0;
}

void wire_free(void)
{
    wire_table *t = atomic_load(&wire_tracked);
    pthread_mutex_lock(&wire_lock);
    for (int i = 0; t && i < t->n; i++)
        wire_conn_free(atomic_exchange(&t->slot[i], NULL));
    atomic_store(&wire_open, 0);
    pthread_mutex_unlock(&wire_lock);
    for (char **l = wire_names; l && *l; l++)
        free(*l);
    free(wire_names);
    wire_names = NULL;
}

void wire_conn_free(struct wire_conn *c)
{
    if (c) {
        free(c->last);
        free(c);
    }
}

/* fd's slot, or NULL when fd is not one the table can hold. */
static _Atomic(struct wire_conn *) *wire_slot(int fd)
{
    wire_table *t = atomic_load(&wire_tracked);
    return t && fd >= 0 && fd < t->n ? &t->slot[fd] : NULL;
}

void wire_accepted(int fd)
{
    _Atomic(struct wire_conn *) *slot = wire_slot(fd);
    if (!slot)
        return;
    struct wire_conn *c = wire_conn_new();
    if (c)
        atomic_store(&c->owed_since, mono_ns());   /* its first head is owed from now */
    pthread_mutex_lock(&wire_lock);
    struct wire_conn *old = atomic_exchange(slot, c);
    if (c && !old)
        atomic_fetch_add(&wire_open, 1);
    else if (!c && old)
        atomic_fetch_sub(&wire_open, 1);
    if (fd + 1 > atomic_load(&wire_fd_high))
        atomic_store(&wire_fd_high, fd + 1);
    pthread_mutex_unlock(&wire_lock);
    wire_conn_free(old);
}

int wire_next_head(wire_head *out)
{
    if (!atomic_load(&wire_tracked))
        return 0;
    _Atomic(struct wire_conn *) *slot = wire_slot(wire_current_fd);
    struct wire_conn *c = slot ? atomic_load(slot) : NULL;
    if (!c || !wire_scan_next(c, out))
        return -1;
    return 1;
}

/* ---- slow clients under pressure (see the top) ---------------------------- */

void wire_slow_init(int slow_ms, int pressure_at)
{
    const char *service = wire_names && wire_names[0] ? wire_names[0] : "service";
    char body[300];
    int blen = snprintf(body, sizeof body,
                        "{\"error\":\"the request's head did not arrive within %d ms while %s is "
                        "busy (SLOW_CLIENT_MS)\",\"status\":408,\"service\":\"%s\"}",
                        slow_ms, service, service);
    int n = snprintf(wire_cut_answer, sizeof wire_cut_answer,
                     "HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\n"
                     "Content-Length: %d\r\nAccess-Control-Allow-Origin: *\r\n"
                     "Cache-Control: no-store\r\nConnection: close\r\n\r\n%s",
                     blen, body);
    wire_cut_answer_len = blen > 0 && n > 0 && (size_t)n < sizeof wire_cut_answer ? (size_t)n : 0;
    atomic_store(&wire_cut_count, 0);
    atomic_store(&wire_pressure_at, pressure_at);
    atomic_store(&wire_slow_ns, (int64_t)slow_ms * 1000000);
}

long wire_cuts(void)
{
    return atomic_load(&wire_cut_count);
}

/* True when the cut applies now: on, and enough connections open. */
static bool wire_under_pressure(void)
{
    return atomic_load(&wire_slow_ns) > 0 && atomic_load(&wire_open) >= atomic_load(&wire_pressure_at);
}

/* True when fd has bytes in the kernel that nobody has read yet. */
static bool wire_unread(int fd)
{
    int pending = 0;
    return ioctl(fd, FIONREAD, &pending) == 0 && pending > 0;
}

/* Marks c cut and counts it. Returns false when it already was. */
static bool wire_mark_cut(struct wire_conn *c)
{
    bool was = false;
    if (!atomic_compare_exchange_strong(&c->cut, &was, true))
        return false;
    atomic_fetch_add(&wire_cut_count, 1);
    return true;
}

/* For another thread than c's worker, holding wire_lock: cuts c and wakes
 * the worker that polls fd (its next recv() fails). */
static void wire_cut_locked(struct wire_conn *c, int fd)
{
    if (wire_mark_cut(c))
        shutdown(fd, SHUT_RD);
}

/* The C library's recv(), found once: the next definition after this
 * executable's (ThreadSanitizer's, when it is there: its recv() records
 * that the bytes were sent before they were received, which recvfrom()'s
 * does not, so calling the latter would make every exchange look like a race). */
static ssize_t (*wire_real_recv(void))(int, void *, size_t, int)
{
    static _Atomic(ssize_t (*)(int, void *, size_t, int)) real;
    ssize_t (*f)(int, void *, size_t, int) = atomic_load(&real);
    if (!f) {
        f = (ssize_t (*)(int, void *, size_t, int))dlsym(RTLD_NEXT, "recv");
        atomic_store(&real, f);
    }
    return f;
}

long wire_sweep(void)
{
    if (!wire_under_pressure())
        return wire_cuts();
    wire_table *t = atomic_load(&wire_tracked);
    int64_t now = mono_ns(), slow = atomic_load(&wire_slow_ns);
    pthread_mutex_lock(&wire_lock);
    int high = atomic_load(&wire_fd_high);
    for (int fd = 0; t && fd < high && fd < t->n; fd++) {
        struct wire_conn *c = atomic_load(&t->slot[fd]);
        if (!c || atomic_load(&c->cut))
            continue;
        int64_t since = atomic_load(&c->owed_since);
        if (since && now - since >= slow && !wire_unread(fd))
            wire_cut_locked(c, fd);
    }
    pthread_mutex_unlock(&wire_lock);
    return wire_cuts();
}

int wire_close_idle(void)
{
    wire_table *t = atomic_load(&wire_tracked);
    int closed = 0;
    pthread_mutex_lock(&wire_lock);
    int high = atomic_load(&wire_fd_high);
    for (int fd = 0; t && fd < high && fd < t->n; fd++) {
        struct wire_conn *c = atomic_load(&t->slot[fd]);
        if (c && !atomic_load(&c->cut) && !atomic_load(&c->owed_since) && !wire_unread(fd) &&
            shutdown(fd, SHUT_RD) == 0)
            closed++;
    }
    pthread_mutex_unlock(&wire_lock);
    return closed;
}

int wire_cut_slowest(bool body)
{
    wire_table *t = atomic_load(&wire_tracked);
    if (!t || atomic_load(&wire_slow_ns) <= 0)
        return 0;
    pthread_mutex_lock(&wire_lock);
    int high = atomic_load(&wire_fd_high);
    int victim[2] = { -1, -1 };   /* the oldest with nothing unread, the oldest of all */
    int64_t oldest[2] = { 0, 0 };
    for (int fd = 0; fd < high && fd < t->n; fd++) {
        struct wire_conn *c = atomic_load(&t->slot[fd]);
        if (!c || !atomic_load(&c->read) || atomic_load(&c->cut) || (body && !atomic_load(&c->owed_body)))
            continue;   /* never read: it may still wait in civetweb's queue, holding no worker */
        if (fd == wire_current_fd)
            continue;   /* the caller's own connection makes room, it is not the room */
        int64_t since = atomic_load(&c->owed_since);
        if (!since)
            continue;
        if (victim[1] < 0 || since < oldest[1]) {
            victim[1] = fd;
            oldest[1] = since;
        }
        if ((victim[0] < 0 || since < oldest[0]) && !wire_unread(fd)) {
            victim[0] = fd;
            oldest[0] = since;
        }
    }
    /* A byte unread means its worker has not caught up yet; a trickler's
     * last byte may be one, so it only makes a connection the last choice. */
    int fd = victim[0] >= 0 ? victim[0] : victim[1];
    if (fd >= 0)
        wire_cut_locked(atomic_load(&t->slot[fd]), fd);
    pthread_mutex_unlock(&wire_lock);
    return fd >= 0;
}

bool wire_cut_here(void)
{
    _Atomic(struct wire_conn *) *slot = wire_slot(wire_current_fd);
    struct wire_conn *c = slot ? atomic_load(slot) : NULL;
    return c && atomic_load(&c->cut);
}

bool wire_whole_here(void)
{
    int fd = wire_current_fd;
    _Atomic(struct wire_conn *) *slot = wire_slot(fd);
    struct wire_conn *c = slot ? atomic_load(slot) : NULL;
    if (!c)
        return false;
    if (atomic_load(&c->owed_since) == 0)
        return true;
    /* a body sent in a packet of its own after the head: here already */
    int pending = 0;
    return atomic_load(&c->owed_body) && c->state == W_BODY && c->body_left > 0 &&
           ioctl(fd, FIONREAD, &pending) == 0 && pending >= c->body_left;
}

/* On c's worker, in recv(): true when c, whose head or body is still not
 * whole after the bytes just read, has owed them too long under pressure. */
static bool wire_too_slow(struct wire_conn *c, int fd)
{
    int64_t since = atomic_load(&c->owed_since);
    if (!since || !wire_under_pressure())
        return false;
    return mono_ns() - since >= atomic_load(&wire_slow_ns) && !wire_unread(fd);
}

/* On c's worker: the read of a cut connection. A head in progress is
 * answered 408 first (once; a body's is the handler's to answer), and
 * the connection closed for writing, so that civetweb's own answer to a
 * head cut short cannot follow it. Returns -1 with errno ECONNRESET. */
static ssize_t wire_refuse_cut(struct wire_conn *c, int fd)
{
    if (!c->cut_answered) {
        c->cut_answered = true;
        if (c->state != W_BODY && c->state != W_STOP && wire_cut_answer_len) {
            (void)send(fd, wire_cut_answer, wire_cut_answer_len, MSG_DONTWAIT | MSG_NOSIGNAL);
            shutdown(fd, SHUT_WR);
        }
    }
    errno = ECONNRESET;
    return -1;
}

/* See the top of the file: civetweb's recv() lands here. Returns what the
 * C library's recv() returns; a tracked descriptor's bytes are scanned
 * first. A cut connection's reads fail with ECONNRESET. */
ssize_t recv(int fd, void *buf, size_t len, int flags)
{
    ssize_t (*real)(int, void *, size_t, int) = wire_real_recv();
    _Atomic(struct wire_conn *) *slot = wire_slot(fd);
    struct wire_conn *c = slot ? atomic_load(slot) : NULL;
    if (c && atomic_load(&c->cut)) {
        wire_current_fd = fd;
        return wire_refuse_cut(c, fd);
    }
    ssize_t n = real ? real(fd, buf, len, flags) : recvfrom(fd, buf, len, flags, NULL, NULL);
    if (n <= 0 || (flags & MSG_PEEK) || !c)
        return n;
    wire_current_fd = fd;
    if (!atomic_load_explicit(&c->read, memory_order_relaxed))
        atomic_store(&c->read, true);
    wire_scan(c, buf, (size_t)n);
    if (wire_too_slow(c, fd) && wire_mark_cut(c))
        return wire_refuse_cut(c, fd);
    return n;
}

/* The C library's close(), found once. */
static int (*wire_real_close(void))(int)
{
    static _Atomic(int (*)(int)) real;
    int (*f)(int) = atomic_load(&real);
    if (!f) {
        f = (int (*)(int))dlsym(RTLD_NEXT, "close");
        atomic_store(&real, f);
    }
    return f;
}

/* See the top of the file: forgets a tracked descriptor, then closes it.
 * Returns what the C library's close() returns. */
int close(int fd)
{
    _Atomic(struct wire_conn *) *slot = wire_slot(fd);
    if (slot && atomic_load(slot)) {
        /* under wire_lock: a cut from another thread sees the slot empty
         * or the descriptor still open, never the number reused */
        pthread_mutex_lock(&wire_lock);
        struct wire_conn *c = atomic_exchange(slot, NULL);
        if (c)
            atomic_fetch_sub(&wire_open, 1);
        pthread_mutex_unlock(&wire_lock);
        wire_conn_free(c);
    }
    if (slot && wire_current_fd == fd)
        wire_current_fd = -1;
    int (*real)(int) = wire_real_close();
    if (!real) {
        errno = ENOSYS;
        return -1;
    }
    return real(fd);
}
