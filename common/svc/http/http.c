/* http.c -- civetweb helpers: JSON responses with CORS headers, bounded body reads, content types. */
#include "http.h"

#include "dynbuf.h"
#include "monotime.h"
#include "strbuf.h"
#include "trace.h"
#include "wire.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* What begin_request decided about the request this thread serves. */
static _Thread_local struct {
    bool expect_continue;   /* the client waits for 100 Continue before its body */
    bool close_after;       /* the connection closes after this request's answer */
    int retry_after_s;      /* > 0: the next answer carries Retry-After */
    bool replayed;          /* the next answer carries Idempotent-Replayed: true */
} http_req;

void http_retry_after(int seconds)
{
    http_req.retry_after_s = seconds;
}

void http_replayed(void)
{
    http_req.replayed = true;
}

void http_request_begin(bool expect_continue, bool close_after)
{
    http_req.expect_continue = expect_continue;
    http_req.close_after = close_after;
    http_req.retry_after_s = 0;
    http_req.replayed = false;
}

/* Returns true when the connection should close after this answer: asked
 * by the caller, by begin_request (http_request_begin()), by a body the
 * client still holds back for a 100 Continue never sent (reading on would
 * wait for it in vain), or by the client (Connection: close, or HTTP/1.0
 * without keep-alive). */
static bool http_must_close(struct mg_connection *conn, bool close)
{
    if (close || http_req.close_after || http_req.expect_continue)
        return true;
    const struct mg_request_info *ri = mg_get_request_info(conn);
    const char *c = mg_get_header(conn, "Connection");
    if (c && !strcasecmp(c, "close"))
        return true;
    return ri->http_version && !strcmp(ri->http_version, "1.0") &&
           !(c && !strcasecmp(c, "keep-alive"));
}

/* Writes the current time as an HTTP date into buf (at least 30 bytes). Each
 * thread formats it once a second and copies it the rest of the time. */
static void http_date(char *buf, size_t len)
{
    static _Thread_local time_t cached_at = -1;
    static _Thread_local char cached[32];
    time_t now = time(NULL);
    if (now != cached_at) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(cached, sizeof cached, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        cached_at = now;
    }
    strbuf b;
    sb_init(&b, buf, len);
    sb_str(&b, cached, sizeof cached);
}

/* Largest head http_send_raw() writes: the fixed lines plus the status text
 * and the content type, both short. */
#define HTTP_HEAD_MAX 768

int http_send_raw(struct mg_connection *conn, int status, const char *type,
                  const char *cache, const char *body, size_t len, bool close)
{
    return http_send_cors(conn, status, type, cache, body, len, close, "*");
}

int http_send_cors(struct mg_connection *conn, int status, const char *type, const char *cache,
                   const char *body, size_t len, bool close, const char *origin)
{
    close = http_must_close(conn, close);
    if (close)
        mg_disable_keep_alive(conn);
    const char *method = mg_get_request_info(conn)->request_method;
    size_t send_len = method && !strcmp(method, "HEAD") ? 0 : len;
    char date[64];
    http_date(date, sizeof date);
    char stack[HTTP_HEAD_MAX + 4096];
    char *out = stack;
    if (send_len > sizeof stack - HTTP_HEAD_MAX && !(out = malloc(HTTP_HEAD_MAX + send_len)))
        out = stack; /* out of memory: the head alone, then the body */
    const trace_ctx *t = trace_current();
    strbuf h;
    sb_init(&h, out, HTTP_HEAD_MAX);
    sb_lit(&h, "HTTP/1.1 ");
    sb_uint(&h, status < 0 ? 0u : (unsigned)status, 1);
    sb_lit(&h, " ");
    sb_str(&h, mg_get_response_code_text(conn, status), 100);
    sb_lit(&h, "\r\nDate: ");
    sb_str(&h, date, sizeof date);
    sb_lit(&h, "\r\nContent-Type: ");
    sb_str(&h, type, 100);
    sb_lit(&h, "\r\nContent-Length: ");
    sb_uint(&h, len, 1);
    sb_lit(&h, "\r\n");
    if (origin) {
        sb_lit(&h, "Access-Control-Allow-Origin: ");
        sb_str(&h, origin, 120);
        sb_str(&h, strcmp(origin, "*") ? "\r\nVary: Origin\r\n" : "\r\n", 20);
        sb_lit(&h, "Access-Control-Expose-Headers: X-Request-Id, Server-Timing, Idempotent-Replayed\r\n");
    }
    if (t) {
        sb_lit(&h, "X-Request-Id: ");
        sb_str(&h, t->id, sizeof t->id);
        sb_lit(&h, "\r\n");
        char timing[160];
        if (trace_server_timing(timing, sizeof timing)) {
            sb_lit(&h, "Server-Timing: ");
            sb_str(&h, timing, sizeof timing);
            sb_lit(&h, "\r\n");
        }
    }
    if (http_req.retry_after_s > 0) {
        sb_lit(&h, "Retry-After: ");
        sb_uint(&h, (unsigned)http_req.retry_after_s, 1);
        sb_lit(&h, "\r\n");
        http_req.retry_after_s = 0;
    }
    if (http_req.replayed) {
        sb_lit(&h, "Idempotent-Replayed: true\r\n");
        http_req.replayed = false;
    }
    sb_lit(&h, "Cache-Control: ");
    sb_str(&h, cache ? cache : "no-store", 200);
    sb_str(&h, close ? "\r\nConnection: close\r\n\r\n" : "\r\nConnection: keep-alive\r\n\r\n", 40);
    size_t head = sb_len(&h);
    if (sb_full(&h)) {
        if (out != stack)
            free(out);
        return -1;
    }
    if (out == stack && send_len > sizeof stack - HTTP_HEAD_MAX) {
        mg_write(conn, out, head);
        mg_write(conn, body, send_len);
        return status;
    }
    if (send_len)
        memcpy(out + head, body, send_len);
    mg_write(conn, out, head + send_len);
    if (out != stack)
        free(out);
    return status;
}

/* Sends one response with the default cache policy (no-store). */
static int http_send(struct mg_connection *conn, int status, const char *type,
                     const char *body, size_t len, bool close)
{
    return http_send_raw(conn, status, type, NULL, body, len, close);
}

int http_send_json_cors(struct mg_connection *conn, int status, const cJSON *body, bool close,
                        const char *origin)
{
    char *text = cJSON_PrintUnformatted(body);
    if (!text) {
        static const char oom[] = "{\"error\":\"out of memory\",\"status\":500}";
        http_send_cors(conn, 500, "application/json", NULL, oom, sizeof oom - 1, true, origin);
        return 500;
    }
    http_send_cors(conn, status, "application/json", NULL, text, strlen(text), close, origin);
    free(text);
    return status;
}

int http_send_json(struct mg_connection *conn, int status, const cJSON *body, bool close)
{
    return http_send_json_cors(conn, status, body, close, "*");
}

void http_add_trace(cJSON *o)
{
    const trace_ctx *t = trace_current();
    if (o && t && t->id[0])
        cJSON_AddStringToObject(o, "trace", t->id);
}

/* http_send_error_cors() with its arguments in ap. */
static int http_send_verror(struct mg_connection *conn, int status, const char *service, bool close,
                            const char *origin, const char *fmt, va_list ap)
{
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    cJSON *o = cJSON_CreateObject();
    if (o) {
        cJSON_AddStringToObject(o, "error", msg);
        cJSON_AddNumberToObject(o, "status", status);
        cJSON_AddStringToObject(o, "service", service);
        http_add_trace(o);
    }
    http_send_json_cors(conn, status, o, close, origin);
    cJSON_Delete(o);
    return status;
}

int http_send_error_cors(struct mg_connection *conn, int status, const char *service, bool close,
                         const char *origin, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    http_send_verror(conn, status, service, close, origin, fmt, ap);
    va_end(ap);
    return status;
}

int http_send_error(struct mg_connection *conn, int status, const char *service, bool close,
                    const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    http_send_verror(conn, status, service, close, "*", fmt, ap);
    va_end(ap);
    return status;
}

int http_send_text(struct mg_connection *conn, int status, const char *text)
{
    return http_send(conn, status, "text/plain; charset=utf-8", text, strlen(text), false);
}

int http_send_preflight(struct mg_connection *conn, const char *allow)
{
    mg_printf(conn,
              "HTTP/1.1 204 No Content\r\nAccess-Control-Allow-Origin: *\r\n"
              "Access-Control-Allow-Methods: %s\r\nAccess-Control-Allow-Headers: Content-Type, Authorization\r\n"
              "Access-Control-Max-Age: 600\r\nAllow: %s\r\nContent-Length: 0\r\n\r\n",
              allow, allow);
    return 204;
}

/* Milliseconds on the monotonic clock. */
static int64_t http_now_ms(void)
{
    return mono_ns() / 1000000;
}

/* civetweb's mg_read() returns only when it has every byte asked for, or
 * when the client has been silent for request_timeout_ms: a client sending
 * a byte a second would hold it for as many seconds as bytes are asked. So
 * the body is asked for in steps that start at one byte and double while a
 * read comes back within HTTP_STEP_MS, and fall back to one byte when one
 * does not: a fast or already buffered body costs a few calls more (about
 * log2 of its size, no extra system call), and a slow one is seen at least
 * every 2 * HTTP_STEP_MS, so that the deadline holds. */
#define HTTP_STEP_MS 100

/* Reads at most want bytes, in a step of *step bytes (adjusted as above).
 * Returns mg_read()'s result. */
static int http_read_step(struct mg_connection *conn, char *buf, size_t want, size_t *step)
{
    size_t ask = want < *step ? want : *step;
    int64_t t0 = http_now_ms();
    int n = mg_read(conn, buf, ask);
    if (http_now_ms() - t0 < HTTP_STEP_MS) {
        if (*step < (size_t)1 << 20)
            *step *= 2;
    } else {
        *step = 1;
    }
    return n;
}

/* Sends "100 Continue" when the client holds its body back until asked
 * (RFC 9110 10.1.1). Returns 0, or -1 when the write failed. */
static int http_send_continue(struct mg_connection *conn)
{
    static const char go_on[] = "HTTP/1.1 100 Continue\r\n\r\n";
    if (!http_req.expect_continue)
        return 0;
    http_req.expect_continue = false;
    return mg_write(conn, go_on, sizeof go_on - 1) == (int)(sizeof go_on - 1) ? 0 : -1;
}

int http_read_body(struct mg_connection *conn, size_t limit, int timeout_ms, char **out, size_t *len)
{
    const struct mg_request_info *ri = mg_get_request_info(conn);
    if (ri->content_length > (long long)limit)
        return 413;
    if (http_send_continue(conn))
        return 400;
    int64_t deadline = http_now_ms() + timeout_ms;
    dynbuf body;
    dynbuf_init(&body, limit);
    char chunk[16384];
    size_t step = 1;
    int status = 0;
    for (;;) {
        if (http_now_ms() > deadline) {
            status = 408;
            break;
        }
        /* one byte past the limit at most: enough to tell that it was passed */
        size_t room = limit - dynbuf_len(&body);
        int n = http_read_step(conn, chunk, room < sizeof chunk ? room + 1 : sizeof chunk, &step);
        if (n <= 0) {
            /* cut as a slow client under pressure (wire.c): its body was too slow */
            status = n < 0 ? (wire_cut_here() ? 408 : 400) : 0;
            break;
        }
        int rc = dynbuf_add(&body, chunk, (size_t)n);
        if (rc) {
            status = rc == DYNBUF_ETOOBIG ? 413 : 500;
            break;
        }
    }
    if (status) {
        dynbuf_free(&body);
        return status;
    }
    *out = dynbuf_take(&body, len);
    if (!*out && !(*out = calloc(1, 1)))
        return 500;
    return 0;
}

bool http_discard_body(struct mg_connection *conn, size_t max, int timeout_ms)
{
    if (http_req.expect_continue)
        return false;   /* never asked for: the client sends nothing, the connection closes */
    char sink[16384];
    size_t total = 0, step = 1;
    int64_t deadline = http_now_ms() + timeout_ms;
    while (total <= max && http_now_ms() <= deadline) {
        int n = http_read_step(conn, sink, sizeof sink, &step);
        if (n <= 0)
            return n == 0;
        total += (size_t)n;
    }
    return false;
}

/* Counts the header lines named name. */
static int http_count_headers(const struct mg_request_info *ri, const char *name)
{
    int n = 0;
    for (int i = 0; i < ri->num_headers; i++)
        n += !strcasecmp(ri->http_headers[i].name, name);
    return n;
}

int http_check_head(const struct mg_request_info *ri, long long body_limit, bool *expect_continue,
                    char *why, size_t len)
{
    *expect_continue = false;
    bool http11 = ri->http_version && !strcmp(ri->http_version, "1.1");
    int hosts = http_count_headers(ri, "Host");
    if (hosts > 1 || (http11 && hosts == 0)) {
        snprintf(why, len, hosts ? "more than one Host header" : "an HTTP/1.1 request without a Host header");
        return 400;
    }
    if (http_count_headers(ri, "X-Deadline-Ms") > 1) {
        snprintf(why, len, "more than one X-Deadline-Ms header");
        return 400;
    }
    bool continue_asked = false;
    for (int i = 0; i < ri->num_headers; i++) {
        if (strcasecmp(ri->http_headers[i].name, "Expect"))
            continue;
        const char *v = ri->http_headers[i].value;
        size_t n = strlen(v);
        while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
            n--;
        if (n != 12 || strncasecmp(v, "100-continue", 12)) {
            snprintf(why, len, "the expectation \"%.60s\" cannot be met (only 100-continue is known)", v);
            return 417;
        }
        continue_asked = true;
    }
    if (continue_asked && ri->content_length > body_limit) {
        snprintf(why, len, "the body is larger than %lld bytes", body_limit);
        return 413;
    }
    /* HTTP/1.0 has no 100 Continue: its client does not wait for one. */
    *expect_continue = continue_asked && http11 &&
                       (ri->content_length > 0 || http_count_headers(ri, "Transfer-Encoding"));
    return 0;
}

bool http_is_json(const char *content_type)
{
    if (!content_type)
        return false;
    while (*content_type == ' ')
        content_type++;
    size_t n = strcspn(content_type, "; ");
    if (n == 16 && !strncasecmp(content_type, "application/json", 16))
        return true;
    return n > 17 && !strncasecmp(content_type, "application/", 12) &&
           !strncasecmp(content_type + n - 5, "+json", 5);
}

/* Returns true when s is 1*DIGIT with at most 18 digits (no sign, no list,
 * no whitespace: a value strtoll() would read differently is refused). */
static bool http_is_length(const char *s)
{
    size_t n = strspn(s, "0123456789");
    return n > 0 && n <= 18 && s[n] == '\0';
}

/* civetweb 1.15 parses a header line in place: it writes a NUL over the
 * colon and over every space it skipped before the colon, and the value
 * starts after the spaces that follow the colon. So more than one NUL
 * between the end of the name and the value means "Name : value". */
static bool http_space_before_colon(const struct mg_header *h)
{
    const char *p = h->name + strlen(h->name);
    int nuls = 0;
    while (p < h->value && *p == '\0') {
        nuls++;
        p++;
    }
    return nuls > 1;
}

/* The same in-place parse turns a line's CRLF into two NULs, so the next
 * header's name starts two bytes after the end of this value; one byte
 * means a bare LF, anything else a NUL inside the value or a folded line
 * (obs-fold) that civetweb swallowed. After the last header the byte after
 * the first NUL must be a NUL too (the LF of CRLF, or the last byte of the
 * block): anything else is a line civetweb stopped at after a bare LF. A
 * folded line right after a CRLF-ended last header cannot be seen: telling
 * it from the end of the block would read the byte after it, which may lie
 * past civetweb's buffer; civetweb ignores that line and all after it.
 * wire.c sees that fold in the raw bytes and refuses it before this runs. */
static bool http_line_ends_ok(const struct mg_request_info *ri, int i)
{
    const char *end = ri->http_headers[i].value + strlen(ri->http_headers[i].value);
    if (i + 1 < ri->num_headers)
        return ri->http_headers[i + 1].name == end + 2 && end[1] == '\0';
    return end[1] == '\0';
}

int http_check_framing(const struct mg_request_info *ri, char *why, size_t len)
{
    if (ri->num_headers >= MG_MAX_HEADERS) {
        snprintf(why, len, "too many header lines: at most %d are read", MG_MAX_HEADERS - 1);
        return 431;
    }
    const char *cl = NULL, *te = NULL;
    for (int i = 0; i < ri->num_headers; i++) {
        const struct mg_header *h = &ri->http_headers[i];
        if (http_space_before_colon(h)) {
            snprintf(why, len, "whitespace between the header name \"%.60s\" and its colon", h->name);
            return 400;
        }
        if (!http_line_ends_ok(ri, i)) {
            snprintf(why, len, "the header line \"%.60s\" does not end with CRLF "
                     "(a bare LF, a NUL or a folded line)", h->name);
            return 400;
        }
        if (!strcasecmp(h->name, "Content-Length")) {
            if (cl) {
                snprintf(why, len, "more than one Content-Length header (\"%.30s\" and \"%.30s\")",
                         cl, h->value);
                return 400;
            }
            cl = h->value;
            if (!http_is_length(cl)) {
                snprintf(why, len, "Content-Length must be digits only, got \"%.40s\"", cl);
                return 400;
            }
        } else if (!strcasecmp(h->name, "Transfer-Encoding")) {
            if (te) {
                snprintf(why, len, "more than one Transfer-Encoding header");
                return 400;
            }
            te = h->value;
            if (strcasecmp(te, "chunked")) {
                snprintf(why, len, "Transfer-Encoding must be \"chunked\" alone, got \"%.40s\"", te);
                return 400;
            }
        }
    }
    if (cl && te) {
        snprintf(why, len, "both Transfer-Encoding and Content-Length: the body's length is ambiguous");
        return 400;
    }
    if (!cl && !te && ri->request_method &&
        (!strcmp(ri->request_method, "POST") || !strcmp(ri->request_method, "PUT") ||
         !strcmp(ri->request_method, "PATCH"))) {
        snprintf(why, len, "a %s needs a Content-Length or Transfer-Encoding: chunked",
                 ri->request_method);
        return 411;
    }
    if (te && ri->http_version && strcmp(ri->http_version, "1.1")) {
        snprintf(why, len, "Transfer-Encoding in an HTTP/%.8s request", ri->http_version);
        return 400;
    }
    return 0;
}
