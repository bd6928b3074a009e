/* premises.c -- an experiment's "requires", checked against the running stack before anything is done.
 *
 * A lesson that needs a setting of the stack names it in "requires"
 * ({"CB_BACKOFF": "2"}). Each setting is a row of premises[] below: the
 * service setting, the option of /health's breakers' "options" that shows
 * it (POST /breaker/options changes it at runtime), and whether it is the
 * chain breakers' (CB_*) or the database breakers' (DB_CB_*). The run starts
 * only when every service's breakers of that kind show the value; else the
 * runner exits 2 with the reason and nothing applied. THREADS,
 * RESERVED_WORKERS and CHAIN_CONNECTIONS (the pool of connections to the next
 * hop: "workers.chain.connections", absent on the last service, which calls
 * no one) are checked against /health's "workers" instead. A lesson can also set
 * what it needs itself with a tune step, and then needs no "requires".
 */
#include "premises.h"
#include "net.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct premise {
    const char *setting;    /* the service setting (config.c's name) */
    const char *option;     /* its name in /health's breakers[].options */
    bool db;                /* the database breakers' (DB_CB_*), else the chain breakers' */
    const char *worker;     /* a setting of the worker threads: its name in /health's "workers"
                               (then option is NULL) */
} premises[] = {
    { "CB_RESET_TIMEOUT_MS", "reset_timeout_ms", false, NULL },
    { "CB_BACKOFF", "backoff", false, NULL },
    { "CB_BACKOFF_MAX_MS", "backoff_max_ms", false, NULL },
    { "CB_VOLUME_THRESHOLD", "volume_threshold", false, NULL },
    { "CB_ERROR_THRESHOLD", "error_threshold", false, NULL },
    { "DB_CB_RESET_TIMEOUT_MS", "reset_timeout_ms", true, NULL },
    { "DB_CB_VOLUME_THRESHOLD", "volume_threshold", true, NULL },
    { "DB_CB_ERROR_THRESHOLD", "error_threshold", true, NULL },
    { "THREADS", NULL, false, "threads" },
    { "RESERVED_WORKERS", NULL, false, "reserved" },
    { "CHAIN_CONNECTIONS", NULL, false, "chain.connections" },
};
#define NPREMISES (sizeof premises / sizeof premises[0])

/* The row of setting name, or NULL. */
static const struct premise *premise_row(const char *name)
{
    for (size_t i = 0; name && i < NPREMISES; i++)
        if (strcmp(premises[i].setting, name) == 0)
            return &premises[i];
    return NULL;
}

bool chaos_premise_known(const char *name)
{
    return premise_row(name) != NULL;
}

const char *chaos_premise_names(char *buf, size_t len)
{
    buf[0] = '\0';
    for (size_t i = 0; i < NPREMISES; i++)
        snprintf(buf + strlen(buf), len - strlen(buf), "%s%s", i ? ", " : "", premises[i].setting);
    return buf;
}

/* Whether breaker name is a database breaker ("<svc>->mongodb"). */
static bool is_db_breaker(const char *name)
{
    size_t n = strlen(name);
    return n >= 9 && strcmp(name + n - 9, "->mongodb") == 0;
}

/* Checks row p (a worker setting) = want against one /health answer h of
 * service svc: its "workers". Returns 0, or -1 with the reason in err. */
static int check_workers(const struct premise *p, const char *want, double v, const char *svc,
                         const cJSON *h, char *err, size_t errlen)
{
    const cJSON *w = cJSON_GetObjectItemCaseSensitive(h, "workers");
    const char *dot = strchr(p->worker, '.');
    if (dot) {              /* "chain.connections": only a service with a next hop has a pool */
        char group[32];
        snprintf(group, sizeof group, "%.*s", (int)(dot - p->worker), p->worker);
        int i = chaos_service_index(svc);
        if (i >= 0 && !chaos_services[i].next[0])
            return 0;
        w = cJSON_GetObjectItemCaseSensitive(w, group);
    }
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(w, dot ? dot + 1 : p->worker);
    if (!cJSON_IsNumber(n)) {
        snprintf(err, errlen, "needs %s=%s; %s's /health shows no workers.%s (a service older than the "
                 "runner?), so it cannot be checked", p->setting, want, svc, p->worker);
        return -1;
    }
    if (fabs(n->valuedouble - v) > 1e-9) {
        snprintf(err, errlen, "needs %s=%s; %s runs with %g (restart the stack with %s=%s)", p->setting, want,
                 svc, n->valuedouble, p->setting, want);
        return -1;
    }
    return 0;
}

/* Checks row p = want against the breakers of one /health answer h of
 * service svc (its workers for a worker setting). Returns 0, or -1 with the
 * reason in err. */
static int check_health(const struct premise *p, const char *want, double v, const char *svc,
                        const cJSON *h, char *err, size_t errlen)
{
    if (p->worker)
        return check_workers(p, want, v, svc, h, err, errlen);
    const cJSON *b;
    cJSON_ArrayForEach(b, cJSON_GetObjectItemCaseSensitive(h, "breakers")) {
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(b, "name"));
        if (!name || is_db_breaker(name) != p->db)
            continue;
        const cJSON *opt = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(b, "options"),
                                                            p->option);
        if (!cJSON_IsNumber(opt)) {
            snprintf(err, errlen, "needs %s=%s; %s's /health shows no options of its breakers (a service "
                     "older than the runner?), so it cannot be checked", p->setting, want, svc);
            return -1;
        }
        if (fabs(opt->valuedouble - v) > 1e-9) {
            snprintf(err, errlen, "needs %s=%s; %s's %sbreaker has %s %g (restart the stack with %s=%s, "
                     "or set it with a tune step)", p->setting, want, svc, p->db ? "database " : "",
                     p->option, opt->valuedouble, p->setting, want);
            return -1;
        }
    }
    return 0;
}

int chaos_premises_check(const chaos_run *r, char *err, size_t errlen)
{
    const cJSON *req = r->exp->requires;
    const cJSON *k;
    cJSON_ArrayForEach(k, req) {
        const struct premise *p = premise_row(k->string);
        char *end = NULL;
        double v = strtod(k->valuestring, &end);
        if (!p || end == k->valuestring || *end || !isfinite(v)) {
            char names[300];
            snprintf(err, errlen, "requires %s=%s cannot be checked against the running stack: a setting "
                     "must be one of %s with a number", k->string, k->valuestring,
                     chaos_premise_names(names, sizeof names));
            return -1;
        }
        for (int i = 0; i < CHAOS_NSVC; i++) {
            char url[300];
            snprintf(url, sizeof url, "%s/health", r->urls[i]);
            net_answer a;
            long st = net_request("GET", url, NULL, NULL, 5000, &a);
            cJSON *h = st ? cJSON_Parse(a.body) : NULL;
            int rc = 0;
            if (!cJSON_IsObject(h)) {
                snprintf(err, errlen, "needs %s=%s; %s's /health did not answer JSON (%ld), so it cannot "
                         "be checked", k->string, k->valuestring, chaos_services[i].name, st);
                rc = -1;
            } else {
                rc = check_health(p, k->valuestring, v, chaos_services[i].name, h, err, errlen);
            }
            cJSON_Delete(h);
            net_answer_free(&a);
            if (rc)
                return -1;
        }
    }
    return 0;
}
