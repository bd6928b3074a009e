/* common.c -- the helpers every part of the runner uses: the clock, progress lines, breaker names and labels; the tables of services (services.tsv), databases and states. Calls nothing of the runner. */
#include "common.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

const chaos_service chaos_services[CHAOS_NSVC] = { CHAOS_SERVICE_ROWS };
const char *const chaos_databases[CHAOS_NDB] = { "ferretdb", "postgres" };
const char *const chaos_states[3] = { "closed", "open", "half-open" };

volatile sig_atomic_t chaos_signal;

double chaos_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

double chaos_rate_at(const chaos_experiment *e, double t)
{
    double c = t < 0 ? 0 : t > e->seconds ? e->seconds : t;
    return e->rate + (e->ramp_to - e->rate) * c / e->seconds;
}

int chaos_load_total(const chaos_experiment *e)
{
    return (int)floor((e->rate + e->ramp_to) / 2 * e->seconds + 1e-9);
}

double chaos_due(const chaos_experiment *e, int n)
{
    /* a t^2 + rate t - n = 0 with a = (ramp_to - rate) / (2 seconds), in the
     * form 2n / (rate + sqrt(rate^2 + 4an)) that holds for a = 0 (n / rate,
     * exactly) and for a ramp down alike */
    double a = (e->ramp_to - e->rate) / (2 * e->seconds);
    double disc = e->rate * e->rate + 4 * a * n;
    return 2.0 * n / (e->rate + sqrt(disc > 0 ? disc : 0));
}

double chaos_now(const chaos_run *r)
{
    return r->t0 > 0 ? chaos_mono() - r->t0 : 0.0;
}

void chaos_say(const chaos_run *r, const char *fmt, ...)
{
    char msg[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    flockfile(stdout);
    if (r->t0 > 0)
        printf("chaos %6.1fs  %s\n", chaos_now(r), msg);
    else
        printf("chaos  %s\n", msg);
    fflush(stdout);
    funlockfile(stdout);
}

void chaos_say_wrapped(const chaos_run *r, int indent, const char *text)
{
    /* the width left after "chaos  " (or "chaos  12.3s  ") and the indent */
    int width = CHAOS_WRAP - (r->t0 > 0 ? 15 : 7) - indent;
    if (width < 20)
        width = 20;
    flockfile(stdout);
    const char *p = text;
    while (*p) {
        while (*p == ' ')
            p++;
        int n = (int)strlen(p);
        if (n > width) {            /* break at the last space that fits, else after the word */
            int cut = width;
            while (cut > 0 && p[cut] != ' ')
                cut--;
            if (cut == 0)
                cut = (int)strcspn(p, " ");
            n = cut;
        }
        if (n == 0)
            break;
        if (r->t0 > 0)
            printf("chaos %6.1fs  %*s%.*s\n", chaos_now(r), indent, "", n, p);
        else
            printf("chaos  %*s%.*s\n", indent, "", n, p);
        p += n;
    }
    fflush(stdout);
    funlockfile(stdout);
}

void chaos_label(int svc, const char *name, char *buf, size_t len)
{
    size_t n = name ? strlen(name) : 0;
    bool db = n >= 9 && strcmp(name + n - 9, "->mongodb") == 0;
    const char *from = svc >= 0 && svc < CHAOS_NSVC ? chaos_services[svc].name : "?";
    const char *to = db ? "database" : svc >= 0 && svc < CHAOS_NSVC && chaos_services[svc].next[0]
                                           ? chaos_services[svc].next : name ? name : "?";
    snprintf(buf, len, "%s -> %s", from, to);
}

void chaos_ref_label(const char *ref, char *buf, size_t len)
{
    char svc[32];
    snprintf(svc, sizeof svc, "%.*s", (int)strcspn(ref, "/"), ref);
    int i = chaos_service_index(svc);
    bool db = strchr(ref, '/') != NULL;
    if (i < 0 || (!db && !chaos_services[i].next[0]))
        snprintf(buf, len, "%s", ref);
    else
        snprintf(buf, len, "%s -> %s", svc, db ? "database" : chaos_services[i].next);
}

const char *chaos_plain(const char *state)
{
    return state && strncmp(state, "forced-", 7) == 0 ? state + 7 : state;
}

int chaos_service_index(const char *name)
{
    for (int i = 0; name && i < CHAOS_NSVC; i++)
        if (strcmp(chaos_services[i].name, name) == 0)
            return i;
    return -1;
}

const char *chaos_ref_name(const chaos_run *r, const char *ref)
{
    for (int i = 0; i < r->nrefs; i++)
        if (strcmp(r->refs[i], ref) == 0)
            return r->ref_names[i];
    return NULL;
}
