/* chaos.c -- runtime faults: their state, the /chaos admin API, and the means
 * to hang or reset a connection (see chaos.h).
 *
 * What a fault is lives in one table, chaos_faults[]: a row per fault with
 * its fields (type, range, default), its words and what one request draws
 * from it. The parser, GET /chaos, the log lines and /metrics walk it; no
 * code here branches on a fault, except hang's own machinery and the
 * faults in force at start (INJECT_ERR, DELAY_MS).
 *
 * The faults in force are one process-wide array under a mutex. A request that meets
 * no fault reads one atomic flag and takes no lock. A PUT is checked whole
 * before anything changes, then swapped in under the lock: nothing is ever
 * half-applied. Expiry is lazy: a fault past its time is switched off (and
 * logged) by the next request or read that looks at the table.
 */
#include "chaos.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>

#include "http.h"
#include "log.h"
#include "monotime.h"
#include "random.h"
#include "faults.h"

#define CHAOS_MAX_BODY 16384
#define CHAOS_BODY_TIMEOUT_MS 10000  /* a PUT's small body must arrive within this */

static struct {
    pthread_mutex_t lock;
    chaos_fault faults[CHAOS_KINDS];
    atomic_bool any;                    /* some fault is on */
    atomic_bool database_down;          /* a health_down fault with fraction 1 */
    atomic_uint hang_generation;        /* bumped on every change of the faults */
    atomic_uint_fast64_t changes;       /* PUT, DELETE and expiries */
    atomic_uint_fast64_t injected[CHAOS_KINDS];
    chaos_listener_fn *listener;        /* told every change (chaos_set_listener) */
} chaos_g = { .lock = PTHREAD_MUTEX_INITIALIZER };

void chaos_set_listener(chaos_listener_fn *fn)
{
    chaos_g.listener = fn;
}

/* Tells the listener, when there is one, the words of a change. Call with the lock held. */
static void tell_locked(const char *words)
{
    if (chaos_g.listener)
        chaos_g.listener(words);
}

/* The index of the row's field whose name, then '}', starts at p; -1 when none. */
static int field_named(const chaos_fault_kind *row, const char *p)
{
    for (int i = 0; row->fields[i].name; i++) {
        size_t l = strlen(row->fields[i].name);
        if (!strncmp(p, row->fields[i].name, l) && p[l] == '}')
            return i;
    }
    return -1;
}

/* The row's "shown" words with its field values in place of "{name}"
 * ("300±50 ms"); "" for a row without. */
static void shown_words(const chaos_fault_kind *row, const int *field, char *buf, size_t len)
{
    size_t n = 0;
    for (const char *p = row->shown ? row->shown : ""; *p && n + 1 < len;) {
        int i = *p == '{' ? field_named(row, p + 1) : -1;
        if (i < 0) {
            buf[n++] = *p++;
            continue;
        }
        int w = snprintf(buf + n, len - n, "%d", field[i]);
        n = w < 0 ? n : n + (size_t)w >= len ? len - 1 : n + (size_t)w;
        p = strchr(p, '}') + 1;
    }
    buf[n] = '\0';
}

/* One fault as words for the log: "latency 200±50 ms on 50% for 60 s". */
static void fault_words(chaos_kind k, const chaos_fault *f, char *buf, size_t len)
{
    char what[96] = " ";
    shown_words(&chaos_faults[k], f->field, what + 1, sizeof what - 1);
    if (!what[1])
        what[0] = '\0';
    char until[48] = " until cleared";
    if (f->expires_ns)
        snprintf(until, sizeof until, " for %.0f s",
                 (double)(f->expires_wall_ms - f->set_wall_ms) / 1000.0);
    if (f->uses_left)
        snprintf(until + strlen(until), sizeof until - strlen(until), " (%d more)", f->uses_left);
    snprintf(buf, len, "%s%s on %g%% of requests%s", chaos_faults[k].name, what,
             f->fraction * 100.0, until);
}

/* Recomputes the summary flags. Call with the lock held. */
static void summarise_locked(void)
{
    bool any = false, down = false;
    for (int k = 0; k < CHAOS_KINDS; k++) {
        const chaos_fault *f = &chaos_g.faults[k];
        any |= f->on;
        down |= chaos_faults[k].health_down && f->on && f->fraction >= 1.0;
    }
    atomic_store(&chaos_g.any, any);
    atomic_store(&chaos_g.database_down, down);
}

/* Switches fault k off by itself (why: "expired", "used up") and logs it,
 * naming what it was. Call with the lock held. */
static void switch_off_locked(int k, const char *why)
{
    chaos_fault *f = &chaos_g.faults[k];
    char words[200];
    fault_words((chaos_kind)k, f, words, sizeof words);
    log_message(false, "chaos: %s %s", why, words);
    char told[240];
    snprintf(told, sizeof told, "%s %s", why, words);
    tell_locked(told);
    memset(f, 0, sizeof *f);
    atomic_fetch_add(&chaos_g.changes, 1);
}

/* Switches off the faults past their time. Call with the lock held. */
static void expire_locked(int64_t now)
{
    bool changed = false;
    for (int k = 0; k < CHAOS_KINDS; k++) {
        chaos_fault *f = &chaos_g.faults[k];
        if (!f->on || !f->expires_ns || now < f->expires_ns)
            continue;
        switch_off_locked(k, "expired");
        changed = true;
    }
    if (changed) {
        atomic_fetch_add(&chaos_g.hang_generation, 1);
        summarise_locked();
    }
}

void chaos_init(double error_fraction, int delay_ms)
{
    pthread_mutex_lock(&chaos_g.lock);
    memset(chaos_g.faults, 0, sizeof chaos_g.faults);
    int64_t now = wall_ms();
    if (error_fraction > 0)
        chaos_g.faults[CHAOS_ERROR] = (chaos_fault){ .on = true, .fraction = error_fraction,
                                                     .set_wall_ms = now };
    if (delay_ms > 0)   /* latency's fields: ms, jitter_ms */
        chaos_g.faults[CHAOS_LATENCY] = (chaos_fault){ .on = true, .fraction = 1.0,
                                                       .field = { delay_ms, 0 },
                                                       .set_wall_ms = now };
    summarise_locked();
    pthread_mutex_unlock(&chaos_g.lock);
}

/* Whether a fault applying to fraction f hits this request. */
static bool hits(const chaos_fault *f)
{
    return f->on && (f->fraction >= 1.0 || chaos_random_unit() < f->fraction);
}

/* Counts one request met by fault k, which has a limit of uses; at the
 * last, switches it off and logs it. Call with the lock held. */
static void use_locked(int k)
{
    chaos_fault *f = &chaos_g.faults[k];
    if (!f->uses_left || --f->uses_left > 0)
        return;
    switch_off_locked(k, "used up");
    atomic_fetch_add(&chaos_g.hang_generation, 1);
    summarise_locked();
}

void chaos_draw_request(chaos_draw *d)
{
    memset(d, 0, sizeof *d);
    if (!atomic_load_explicit(&chaos_g.any, memory_order_relaxed))
        return;
    pthread_mutex_lock(&chaos_g.lock);
    expire_locked(mono_ns());
    for (int k = 0; k < CHAOS_KINDS; k++) {
        const chaos_fault *f = &chaos_g.faults[k];
        if (!hits(f))
            continue;
        int (*amount)(const int *) = chaos_faults[k].amount;
        d->amount[k] = amount ? amount(f->field) : 0;
        d->hit[k] = !amount || d->amount[k] > 0;   /* a latency of 0 ms is none */
        if (d->hit[k])
            use_locked(k);
    }
    pthread_mutex_unlock(&chaos_g.lock);
    /* Counted here, whether or not the request gets as far as the fault. */
    for (int k = 0; k < CHAOS_KINDS; k++)
        if (d->hit[k])
            atomic_fetch_add(&chaos_g.injected[k], 1);
}

bool chaos_database_down(void)
{
    if (!atomic_load(&chaos_g.any))
        return false;
    pthread_mutex_lock(&chaos_g.lock);
    expire_locked(mono_ns());
    pthread_mutex_unlock(&chaos_g.lock);
    return atomic_load(&chaos_g.database_down);
}

/* ---- the connection's socket ---------------------------------------------- */

/* The socket civetweb serves conn on: the descriptor whose peer is the
 * request's remote address and port and whose local port is the server's.
 * civetweb does not hand it out; this is only for the reset and hang faults.
 * Returns the descriptor or -1. */
static int conn_socket(struct mg_connection *conn)
{
    const struct mg_request_info *ri = mg_get_request_info(conn);
    struct rlimit rl;
    int limit = 4096;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)limit)
        limit = (int)rl.rlim_cur;
    for (int fd = 3; fd < limit; fd++) {
        struct sockaddr_storage peer, local;
        socklen_t pl = sizeof peer, ll = sizeof local;
        if (getpeername(fd, (struct sockaddr *)&peer, &pl) != 0)
            continue;
        if (getsockname(fd, (struct sockaddr *)&local, &ll) != 0)
            continue;
        char addr[INET6_ADDRSTRLEN] = "";
        int pport, lport;
        if (peer.ss_family == AF_INET) {
            const struct sockaddr_in *p = (const struct sockaddr_in *)&peer;
            inet_ntop(AF_INET, &p->sin_addr, addr, sizeof addr);
            pport = ntohs(p->sin_port);
            lport = ntohs(((const struct sockaddr_in *)&local)->sin_port);
        } else if (peer.ss_family == AF_INET6) {
            const struct sockaddr_in6 *p = (const struct sockaddr_in6 *)&peer;
            inet_ntop(AF_INET6, &p->sin6_addr, addr, sizeof addr);
            pport = ntohs(p->sin6_port);
            lport = ntohs(((const struct sockaddr_in6 *)&local)->sin6_port);
        } else {
            continue;
        }
        if (pport == ri->remote_port && lport == ri->server_port && !strcmp(addr, ri->remote_addr))
            return fd;
    }
    return -1;
}

int chaos_reset(struct mg_connection *conn)
{
    int fd = conn_socket(conn);
    if (fd < 0)
        return -1;
    int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (nul < 0)
        return -1;
    /* A zero linger makes the last close send RST instead of FIN. dup2()
     * closes the socket and puts /dev/null in its place in one step, so the
     * descriptor civetweb holds stays valid (and is not reused by another
     * connection) until civetweb closes it. */
    struct linger lg = { .l_onoff = 1, .l_linger = 0 };
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    int rc = dup2(nul, fd) < 0 ? -1 : 0;
    close(nul);
    mg_disable_keep_alive(conn);
    return rc;
}

int chaos_hang(struct mg_connection *conn, int max_ms, const _Atomic bool *stop)
{
    int64_t start = mono_ns();
    int64_t end = start + (int64_t)max_ms * 1000000;
    unsigned gen = atomic_load(&chaos_g.hang_generation);
    int fd = conn_socket(conn);
    for (;;) {
        int64_t now = mono_ns();
        if (now >= end || (stop && atomic_load(stop)))
            break;
        if (atomic_load(&chaos_g.hang_generation) != gen) {
            pthread_mutex_lock(&chaos_g.lock);
            bool on = chaos_g.faults[CHAOS_HANG].on;
            pthread_mutex_unlock(&chaos_g.lock);
            if (!on)
                break;
            gen = atomic_load(&chaos_g.hang_generation);
        }
        int wait = (int)((end - now) / 1000000);
        wait = wait > 100 ? 100 : wait < 1 ? 1 : wait;
        if (fd >= 0) {
            struct pollfd p = { .fd = fd, .events = POLLRDHUP };
            if (poll(&p, 1, wait) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)))
                break;   /* the caller gave up */
        } else {
            struct timespec d = { 0, (long)wait * 1000000 };
            nanosleep(&d, NULL);
        }
    }
    return (int)((mono_ns() - start) / 1000000);
}

/* ---- GET, PUT, DELETE /chaos ---------------------------------------------- */

cJSON *chaos_to_json(void)
{
    pthread_mutex_lock(&chaos_g.lock);
    expire_locked(mono_ns());
    chaos_fault f[CHAOS_KINDS];
    memcpy(f, chaos_g.faults, sizeof f);
    pthread_mutex_unlock(&chaos_g.lock);
    int64_t now = wall_ms();
    cJSON *o = cJSON_CreateObject();
    cJSON *faults = cJSON_AddObjectToObject(o, "faults");
    if (!faults) {
        cJSON_Delete(o);
        return NULL;
    }
    for (int k = 0; k < CHAOS_KINDS; k++) {
        if (!f[k].on)
            continue;
        const chaos_fault_kind *row = &chaos_faults[k];
        cJSON *x = cJSON_AddObjectToObject(faults, row->name);
        cJSON_AddNumberToObject(x, "fraction", f[k].fraction);
        for (int i = 0; row->fields[i].name; i++)
            cJSON_AddNumberToObject(x, row->fields[i].name, f[k].field[i]);
        if (f[k].expires_ns)
            cJSON_AddNumberToObject(x, "expires_in_s",
                                    (double)(f[k].expires_wall_ms - now) / 1000.0);
        else
            cJSON_AddNullToObject(x, "expires_in_s");
        cJSON_AddNumberToObject(x, "set_at_ms", (double)f[k].set_wall_ms);
        if (f[k].uses_left)
            cJSON_AddNumberToObject(x, "uses_left", f[k].uses_left);
    }
    cJSON *n = cJSON_AddObjectToObject(o, "injected");
    for (int k = 0; k < CHAOS_KINDS; k++)
        cJSON_AddNumberToObject(n, chaos_faults[k].name, (double)atomic_load(&chaos_g.injected[k]));
    cJSON_AddNumberToObject(o, "changes", (double)atomic_load(&chaos_g.changes));
    return o;
}

/* One field as JSON: its name, type, range, default (null when required)
 * and words. */
static cJSON *field_to_json(const chaos_field *f, bool common)
{
    cJSON *x = cJSON_CreateObject();
    cJSON_AddStringToObject(x, "name", f->name);
    cJSON_AddStringToObject(x, "type", f->integer ? "integer" : "number");
    cJSON_AddNumberToObject(x, "min", f->min);
    cJSON_AddNumberToObject(x, "max", f->max);
    if (f->required)
        cJSON_AddNullToObject(x, "default");
    else
        cJSON_AddNumberToObject(x, "default", f->dflt);
    cJSON_AddBoolToObject(x, "required", f->required);
    cJSON_AddBoolToObject(x, "common", common);
    cJSON_AddStringToObject(x, "label", f->label);
    cJSON_AddStringToObject(x, "about", f->about);
    return x;
}

cJSON *chaos_kinds_to_json(void)
{
    cJSON *kinds = cJSON_CreateArray();
    for (int k = 0; kinds && k < CHAOS_KINDS; k++) {
        const chaos_fault_kind *row = &chaos_faults[k];
        cJSON *x = cJSON_CreateObject();
        cJSON_AddItemToArray(kinds, x);
        cJSON_AddStringToObject(x, "name", row->name);
        cJSON_AddStringToObject(x, "label", row->label);
        cJSON_AddStringToObject(x, "about", row->about);
        if (row->shown)
            cJSON_AddStringToObject(x, "shown", row->shown);
        else
            cJSON_AddNullToObject(x, "shown");
        cJSON *fields = cJSON_AddArrayToObject(x, "fields");
        for (const chaos_field *f = chaos_common_fields; f->name; f++)
            cJSON_AddItemToArray(fields, field_to_json(f, true));
        for (const chaos_field *f = row->fields; f->name; f++)
            cJSON_AddItemToArray(fields, field_to_json(f, false));
    }
    return kinds;
}

/* Puts next in force, logging each fault that changed. */
static void chaos_apply(const chaos_fault next[CHAOS_KINDS], const char *how)
{
    pthread_mutex_lock(&chaos_g.lock);
    int changed = 0;
    char told[400];     /* every change in one line, for the listener */
    snprintf(told, sizeof told, "%s", how);
    for (int k = 0; k < CHAOS_KINDS; k++) {
        chaos_fault *cur = &chaos_g.faults[k];
        if (!cur->on && !next[k].on)
            continue;
        char words[200];
        if (next[k].on) {
            fault_words((chaos_kind)k, &next[k], words, sizeof words);
            log_message(false, "chaos: %s %s", how, words);
        } else {
            snprintf(words, sizeof words, "%s (cleared)", chaos_faults[k].name);
            log_message(false, "chaos: %s %s", how, words);
        }
        size_t n = strlen(told);
        snprintf(told + n, sizeof told - n, "%s %s", changed ? ";" : "", words);
        *cur = next[k];
        changed++;
    }
    if (changed) {
        atomic_fetch_add(&chaos_g.hang_generation, 1);
        tell_locked(told);
    }
    if (!changed)
        log_message(false, "chaos: %s: no faults before or after", how);
    atomic_fetch_add(&chaos_g.changes, 1);
    summarise_locked();
    pthread_mutex_unlock(&chaos_g.lock);
}

/* Sends the faults in force with status; with kinds, the table of faults too. */
static int send_state(struct mg_connection *conn, const char *service, int status, const char *origin,
                      bool kinds)
{
    cJSON *o = chaos_to_json();
    cJSON *table = kinds ? chaos_kinds_to_json() : NULL;
    if (!o || (kinds && !table)) {
        cJSON_Delete(o);
        cJSON_Delete(table);
        return http_send_error_cors(conn, 500, service, true, origin, "out of memory");
    }
    cJSON_AddStringToObject(o, "service", service);
    if (table)
        cJSON_AddItemToObject(o, "kinds", table);
    int rc = http_send_json_cors(conn, status, o, false, origin);
    cJSON_Delete(o);
    return rc;
}

int chaos_serve(struct mg_connection *conn, const char *service, const char *origin)
{
    const char *method = mg_get_request_info(conn)->request_method;
    if (!strcmp(method, "GET") || !strcmp(method, "HEAD"))
        return send_state(conn, service, 200, origin, true);
    if (!strcmp(method, "DELETE")) {
        chaos_fault none[CHAOS_KINDS];
        memset(none, 0, sizeof none);
        chaos_apply(none, "DELETE /chaos:");
        return send_state(conn, service, 200, origin, false);
    }
    if (strcmp(method, "PUT"))
        return http_send_error_cors(conn, 405, service, false, origin,
                                    "method %.20s is not allowed on /chaos; use GET, PUT or DELETE",
                                    method);
    if (!http_is_json(mg_get_header(conn, "Content-Type")))
        return http_send_error_cors(conn, 415, service, false, origin,
                                    "Content-Type must be application/json");
    char *text = NULL;
    size_t len = 0;
    int rc = http_read_body(conn, CHAOS_MAX_BODY, CHAOS_BODY_TIMEOUT_MS, &text, &len);
    if (rc == 413)
        return http_send_error_cors(conn, 413, service, true, origin,
                                    "the body is larger than %d bytes", CHAOS_MAX_BODY);
    if (rc == 408)
        return http_send_error_cors(conn, 408, service, true, origin,
                                    "the body did not arrive within %d ms", CHAOS_BODY_TIMEOUT_MS);
    if (rc)
        return http_send_error_cors(conn, rc, service, true, origin, "the body could not be read");
    cJSON *body = cJSON_ParseWithLength(text, len);
    free(text);
    if (!body)
        return http_send_error_cors(conn, 400, service, false, origin, "the body is not valid JSON");
    chaos_fault next[CHAOS_KINDS];
    char err[300];
    rc = chaos_parse(body, next, err, sizeof err);
    cJSON_Delete(body);
    if (rc)
        return http_send_error_cors(conn, 400, service, false, origin, "%s", err);
    chaos_apply(next, "PUT /chaos:");
    return send_state(conn, service, 200, origin, false);
}

void chaos_put_metrics(FILE *f, const char *service)
{
    chaos_fault faults[CHAOS_KINDS];
    pthread_mutex_lock(&chaos_g.lock);
    expire_locked(mono_ns());
    memcpy(faults, chaos_g.faults, sizeof faults);
    pthread_mutex_unlock(&chaos_g.lock);
    fprintf(f, "# HELP chaos_fault_fraction Share of requests a runtime fault applies to (0 = off).\n"
               "# TYPE chaos_fault_fraction gauge\n");
    for (int k = 0; k < CHAOS_KINDS; k++)
        fprintf(f, "chaos_fault_fraction{service=\"%s\",fault=\"%s\"} %g\n", service,
                chaos_faults[k].name, faults[k].on ? faults[k].fraction : 0.0);
    fprintf(f, "# HELP chaos_injected_total Requests a runtime fault was drawn for.\n"
               "# TYPE chaos_injected_total counter\n");
    for (int k = 0; k < CHAOS_KINDS; k++)
        fprintf(f, "chaos_injected_total{service=\"%s\",fault=\"%s\"} %llu\n", service,
                chaos_faults[k].name, (unsigned long long)atomic_load(&chaos_g.injected[k]));
    fprintf(f, "# HELP chaos_changes_total Changes of the runtime faults (PUT, DELETE, expiry).\n"
               "# TYPE chaos_changes_total counter\nchaos_changes_total{service=\"%s\"} %llu\n",
            service, (unsigned long long)atomic_load(&chaos_g.changes));
}
