/* common.c -- the helpers every part of the runner uses: the clock, progress lines, breaker names; the tables of services (services.tsv), databases and states. Calls nothing of the runner. */
#include "common.h"

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
    if (r->t0 > 0)
        printf("chaos %6.1fs  %s\n", chaos_now(r), msg);
    else
        printf("chaos  %s\n", msg);
    fflush(stdout);
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
