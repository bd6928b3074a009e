/* observe_health.c -- GET /health (the service, its database, breakers, shared state, faults and supervisor) and GET /replicas. */
#include "observe.h"
#include "observe_priv.h"
#include "otel.h"
#include "breaker_json.h"
#include "chaos.h"

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The next hop, set once at start (obs_set_next) and read on every /health. */
static char next_name[32];
static char next_url[256];

void obs_set_next(const char *name, const char *url)
{
    bool both = name && *name && url && *url;
    /* the base a page calls /health at: CHAIN_SVC without its path ("/create") */
    const char *host = both ? strstr(url, "://") : NULL;
    host = host ? host + 3 : url;
    int len = both ? (int)(host - url) + (int)strcspn(host, "/?#") : 0;
    snprintf(next_name, sizeof next_name, "%s", both ? name : "");
    snprintf(next_url, sizeof next_url, "%.*s", len, both ? url : "");
}

/* /health's "next": {"name": "payment", "url": "http://127.0.0.1:3001"},
 * or nothing for the last service of the chain. */
static void add_next(cJSON *root)
{
    if (!next_name[0])
        return;
    cJSON *next = cJSON_AddObjectToObject(root, "next");
    cJSON_AddStringToObject(next, "name", next_name);
    cJSON_AddStringToObject(next, "url", next_url);
}

/* One breaker's part of /health: name, state, rolling stats and live
 * options; NULL when
 * its stats cannot be read. */
static cJSON *breaker_health(cb_breaker *cb)
{
    cb_stats st;
    if (cb_get_stats(cb, &st) != CB_OK)
        return NULL;
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "name", cb_name(cb));
    cJSON_AddStringToObject(b, "label", obs_breaker_label(cb));
    cJSON_AddStringToObject(b, "state", cb_state_name(st.state));
    cJSON_AddNumberToObject(b, "errorPercentage", st.error_percentage);
    cJSON_AddNumberToObject(b, "latencyMeanMs", st.latency_mean_ms);
    cJSON *p = cJSON_AddObjectToObject(b, "percentilesMs");
    for (int i = 0; i < CB_PERCENTILES; i++) {
        char key[16];
        snprintf(key, sizeof key, "%g", cb_percentile_points[i] * 100);
        cJSON_AddNumberToObject(p, key, st.percentiles_ms[i]);
    }
    cJSON_AddNumberToObject(b, "inFlight", st.in_flight);
    cJSON_AddNumberToObject(b, "resetTimeoutMs", (double)st.current_reset_timeout_ms);
    breaker_counts_json(b, "window", &st.window);
    breaker_counts_json(b, "total", &st.total);
    obs_tuning_json(b, cb);
    return b;
}

/* /health's "breaker" (the first breaker, null without one) and "breakers"
 * (every breaker of the service). */
static void add_breakers(cJSON *root)
{
    cJSON *first = obs_g.nbreakers ? breaker_health(obs_g.breakers[0].cb) : NULL;
    if (first)
        cJSON_AddItemToObject(root, "breaker", first);
    else
        cJSON_AddNullToObject(root, "breaker");
    cJSON *all = cJSON_AddArrayToObject(root, "breakers");
    for (int i = 0; i < obs_g.nbreakers; i++) {
        cJSON *b = breaker_health(obs_g.breakers[i].cb);
        if (b)
            cJSON_AddItemToArray(all, b);
    }
}

/* The largest supervisor status file /health reads (make run's is under 2 KiB). */
#define OBS_RUN_STATUS_MAX 65536

/* /health's "supervisor": make run's status file (RUN_STATUS_FILE) parsed, as
 * it is now: each process's pid, restarts and last exit. The file is small
 * and replaced atomically by run.sh, so one read without waiting; a file that
 * cannot be read or parsed gives {"error": "..."} instead. NULL when the
 * service runs without a supervisor. */
static cJSON *supervisor_status(void)
{
    if (!obs_g.run_status_file)
        return NULL;
    const char *problem = NULL;
    char *text = malloc(OBS_RUN_STATUS_MAX + 1);
    FILE *f = text ? fopen(obs_g.run_status_file, "rb") : NULL;
    size_t len = f ? fread(text, 1, OBS_RUN_STATUS_MAX + 1, f) : 0;
    if (!text)
        problem = "out of memory";
    else if (!f)
        problem = "cannot open RUN_STATUS_FILE";
    else if (ferror(f))
        problem = "cannot read RUN_STATUS_FILE";
    else if (len > OBS_RUN_STATUS_MAX)
        problem = "RUN_STATUS_FILE is larger than 64 KiB";
    if (f)
        fclose(f);
    cJSON *status = NULL;
    if (!problem) {
        text[len] = '\0';
        if (!(status = cJSON_Parse(text)) || !cJSON_IsObject(status)) {
            cJSON_Delete(status);
            status = NULL;
            problem = "RUN_STATUS_FILE is not a JSON object";
        }
    }
    free(text);
    if (problem) {
        status = cJSON_CreateObject();
        cJSON_AddStringToObject(status, "error", problem);
        cJSON_AddStringToObject(status, "file", obs_g.run_status_file);
    }
    return status;
}

/* GET /health: 200 {"status":"ok",...} when the database is known to
 * answer, else 503; from the last known state, never waiting on the database. */
int obs_handle_health(struct mg_connection *conn, void *cbdata)
{
    (void)cbdata;
    int sent = obs_answer_unless_get(conn);
    if (sent)
        return sent;
    bool reachable = obs_g.db_ping ? obs_g.db_ping(obs_g.db_ctx) == 0 : true;
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "status", reachable ? "ok" : "unavailable");
    cJSON_AddStringToObject(root, "service", obs_g.service);
    if (obs_g.replica)
        cJSON_AddStringToObject(root, "replica", obs_g.replica);
    if (obs_g.replicas_report)
        cJSON_AddBoolToObject(root, "roster", true); /* GET /replicas answers */
    cJSON_AddNumberToObject(root, "uptime_s", obs_uptime_s());
    cJSON *db = cJSON_AddObjectToObject(root, "database");
    cJSON_AddStringToObject(db, "name", obs_g.db_name ? obs_g.db_name : "");
    cJSON_AddBoolToObject(db, "reachable", reachable);
    if (obs_g.db_detail)
        obs_g.db_detail(obs_g.db_ctx, db);
    add_next(root);
    add_breakers(root);
    cJSON *requests = obs_requests_json();
    if (requests)
        cJSON_AddItemToObject(root, "requests", requests);
    cJSON *workers = obs_g.workers_report ? obs_g.workers_report(obs_g.workers_ctx) : NULL;
    if (workers)
        cJSON_AddItemToObject(root, "workers", workers);
    cJSON *shared = obs_g.shared_report ? obs_g.shared_report(obs_g.shared_ctx) : NULL;
    if (shared)
        cJSON_AddItemToObject(root, "shared", shared);
    cJSON *retry = obs_g.retry_report ? obs_g.retry_report() : NULL;
    if (retry)
        cJSON_AddItemToObject(root, "retry", retry);
    cJSON *shed = obs_g.shed_report ? obs_g.shed_report() : NULL;
    if (shed)
        cJSON_AddItemToObject(root, "shed", shed);
    cJSON *hedge = obs_g.hedge_report ? obs_g.hedge_report() : NULL;
    if (hedge)
        cJSON_AddItemToObject(root, "hedge", hedge);
    cJSON *tracing = otel_report();
    if (tracing)
        cJSON_AddItemToObject(root, "tracing", tracing);
    cJSON *chaos = chaos_to_json();
    if (chaos)
        cJSON_AddItemToObject(root, "chaos", chaos);
    cJSON *supervisor = supervisor_status();
    if (supervisor)
        cJSON_AddItemToObject(root, "supervisor", supervisor);
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    int status = obs_send_json(conn, reachable ? 200 : 503, text);
    free(text);
    return status;
}

/* GET /replicas: the service's live replicas, as the database knows them. */
int obs_handle_replicas(struct mg_connection *conn, void *cbdata)
{
    (void)cbdata;
    int sent = obs_answer_unless_get(conn);
    if (sent)
        return sent;
    if (!obs_g.replicas_report)
        return obs_send_error(conn, 404, "no replica roster: it is kept in the database when the service "
                                     "runs with CB_SHARED=on");
    cJSON *root = obs_g.replicas_report(obs_g.roster_ctx);
    char *text = root ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (!text)
        return obs_send_error(conn, 500, "out of memory");
    int status = obs_send_json(conn, 200, text);
    free(text);
    return status;
}
