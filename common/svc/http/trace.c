/* trace.c -- the request context across hops (see trace.h). */
#include "trace.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "random.h"
#include "monotime.h"
#include "strbuf.h"

static _Thread_local trace_ctx trace_tls;
static _Thread_local bool trace_active;

static bool is_lower_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

static bool all_zero(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != '0')
            return false;
    return true;
}

bool trace_parse_traceparent(const char *v, char id[33])
{
    char parent[17];
    bool sampled;
    return trace_parse_parent(v, id, parent, &sampled);
}

bool trace_parse_parent(const char *v, char id[33], char parent[17], bool *sampled)
{
    /* 00-<32 hex trace-id>-<16 hex parent-id>-<2 hex flags>, 55 characters */
    if (!v || strlen(v) != 55 || strncmp(v, "00-", 3) || v[35] != '-' || v[52] != '-')
        return false;
    if (!is_lower_hex(v + 3, 32) || !is_lower_hex(v + 36, 16) || !is_lower_hex(v + 53, 2) ||
        all_zero(v + 3, 32) || all_zero(v + 36, 16))
        return false;
    memcpy(id, v + 3, 32);
    id[32] = '\0';
    memcpy(parent, v + 36, 16);
    parent[16] = '\0';
    int flags = (v[54] >= 'a' ? v[54] - 'a' + 10 : v[54] - '0');
    *sampled = flags & 1;
    return true;
}

bool trace_valid_request_id(const char *v)
{
    size_t n = v ? strlen(v) : 0;
    if (n < 1 || n > TRACE_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = v[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.' || c == ':'))
            return false;
    }
    return true;
}

bool trace_parse_deadline(const char *v, int64_t *ms)
{
    if (!v || !*v || strlen(v) > 8)
        return false;
    int64_t n = 0;
    for (const char *p = v; *p; p++) {
        if (*p < '0' || *p > '9')
            return false;
        n = n * 10 + (*p - '0');
    }
    if (n > 86400000)
        return false;
    *ms = n;
    return true;
}

/* 2n random lowercase hex digits into out (2n + 1 bytes). */
static void random_hex(char *out, int n)
{
    static const char hex[] = "0123456789abcdef";
    uint64_t r = 0;
    for (int i = 0; i < 2 * n; i++) {
        if (i % 16 == 0)
            r = random_u64();
        out[i] = hex[(r >> 60) & 15]; /* the high bits: xorshift's best */
        r <<= 4;
    }
    out[2 * n] = '\0';
    if (all_zero(out, (size_t)(2 * n)))
        out[2 * n - 1] = '1';
}

int trace_begin(struct mg_connection *conn, bool deadlines)
{
    trace_ctx *t = &trace_tls;
    memset(t, 0, sizeof *t);
    trace_active = true;
    t->start_ns = mono_ns();
    char id[33];
    const char *rid = mg_get_header(conn, "X-Request-Id");
    t->sampled = true;
    if (trace_parse_parent(mg_get_header(conn, "traceparent"), id, t->parent, &t->sampled)) {
        memcpy(t->id, id, sizeof id);
        t->w3c = true;
    } else if (trace_valid_request_id(rid)) {
        snprintf(t->id, sizeof t->id, "%s", rid);
        t->w3c = strlen(rid) == 32 && is_lower_hex(rid, 32) && !all_zero(rid, 32);
    } else {
        random_hex(t->id, 16);
        t->w3c = true;
    }
    const char *d = mg_get_header(conn, "X-Deadline-Ms");
    if (!deadlines || !d)
        return 0;
    int64_t ms;
    if (!trace_parse_deadline(d, &ms))
        return -1;
    t->deadline_ns = mono_ns() + ms * 1000000;
    t->deadline_given = true;
    return 0;
}

void trace_drop_deadline(void)
{
    trace_tls.deadline_given = false;
    trace_tls.deadline_ns = 0;
}

void trace_end(void)
{
    trace_active = false;
}

const trace_ctx *trace_current(void)
{
    return trace_active ? &trace_tls : NULL;
}

int64_t trace_left_ms(void)
{
    if (!trace_active || !trace_tls.deadline_given)
        return INT64_MAX;
    return (trace_tls.deadline_ns - mono_ns()) / 1000000;
}

void trace_time_db(int64_t ns)
{
    if (trace_active && ns > 0)
        trace_tls.db_ns += ns;
}

void trace_time_next(int64_t ns, int64_t next_db_ns)
{
    if (!trace_active)
        return;
    trace_tls.next_ns += ns > 0 ? ns : 1;
    if (next_db_ns > 0)
        trace_tls.next_db_ns += next_db_ns;
}

/* Appends "name;dur=<ns in ms, 3 decimals>" to b. */
static void timing_entry(strbuf *b, const char *name, int64_t ns)
{
    if (sb_len(b))
        sb_lit(b, ", ");
    sb_str(b, name, 16);
    sb_lit(b, ";dur=");
    int64_t us = (ns + 500) / 1000;
    sb_uint(b, (uint64_t)(us / 1000), 1);
    sb_lit(b, ".");
    sb_uint(b, (uint64_t)(us % 1000), 3);
}

size_t trace_server_timing(char *buf, size_t len)
{
    const trace_ctx *t = trace_current();
    if (!t || (!t->db_ns && !t->next_ns) || len == 0)
        return 0;
    strbuf b;
    sb_init(&b, buf, len);
    timing_entry(&b, "db", t->db_ns);
    timing_entry(&b, "db-chain", t->db_ns + t->next_db_ns);
    if (t->next_ns)
        timing_entry(&b, "next", t->next_ns);
    timing_entry(&b, "total", mono_ns() - t->start_ns);
    return sb_full(&b) ? 0 : sb_len(&b);
}

/* Reads "<ms>[.<fraction>]" at p..end (then only parameters or spaces) into
 * *ns. False when it is not a non-negative number of milliseconds under a day. */
static bool parse_ms(const char *p, const char *end, int64_t *ns)
{
    int64_t ms = 0, frac = 0, scale = 1000000;
    const char *digits = p;
    while (p < end && *p >= '0' && *p <= '9' && ms < 86400000)
        ms = ms * 10 + (*p++ - '0');
    if (p == digits || ms >= 86400000)
        return false;
    if (p < end && *p == '.')
        for (p++; p < end && *p >= '0' && *p <= '9'; p++)
            if (scale >= 10)
                frac += (*p - '0') * (scale /= 10);
    if (p < end && *p != ';' && *p != ' ' && *p != '\r' && *p != '\n')
        return false;
    *ns = ms * 1000000 + frac;
    return true;
}

bool trace_parse_db_chain(const char *v, size_t len, int64_t *ns)
{
    static const char name[] = "db-chain;dur=";
    const size_t n = sizeof name - 1;
    const char *end = v + len;
    for (const char *p = v; p < end;) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *stop = comma ? comma : end;
        while (p < stop && *p == ' ')
            p++;
        if ((size_t)(stop - p) >= n && !memcmp(p, name, n))
            return parse_ms(p + n, stop, ns);
        p = stop + 1;
    }
    return false;
}

char *trace_next_headers(char *buf, size_t len, int64_t budget_ms)
{
    const trace_ctx *t = trace_current();
    size_t o = 0;
    buf[0] = '\0';
    if (t) {
        o += (size_t)snprintf(buf + o, len - o, "X-Request-Id: %s\n", t->id);
    }
    if (budget_ms >= 0 && o < len)
        snprintf(buf + o, len - o, "X-Deadline-Ms: %lld\n", (long long)budget_ms);
    return buf;
}

char *trace_parent_line(char *buf, size_t len, const char *trace_id, const char *span, bool sampled)
{
    buf[0] = '\0';
    if (!trace_id || !*trace_id)
        return buf;
    char made[17];
    if (!span || !*span) {
        random_hex(made, 8);
        span = made;
    }
    snprintf(buf, len, "traceparent: 00-%s-%s-%s", trace_id, span, sampled ? "01" : "00");
    return buf;
}

void trace_set_sampled(bool sampled)
{
    if (trace_active)
        trace_tls.sampled = sampled;
}

void trace_new_span_id(char out[17])
{
    random_hex(out, 8);
}
