/* halt.c -- chaos --halt: the big red button. Clears every fault and closes every breaker that is not closed, on every service, and says what it cleared.
 *
 * For each service of services.tsv, in chain order:
 *
 *   GET /chaos      the faults in force (their names, for the report)
 *   DELETE /chaos   clears them (admin token)
 *   GET /health     the breakers and their states
 *   POST /breaker/close?name=<name>   for each one not "closed" (forced-open,
 *                   open, half-open, forced-closed): un-forces it and closes it
 *
 * A service that does not answer, or refuses (a wrong token), is named and
 * the others are still cleared: the button does as much as it can.
 */
#include "halt.h"

#include "net.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HALT_TIMEOUT_MS 5000

/* A breaker's label in words: the "label" /health gives, else "<svc> ->
 * database" for a name ending "->mongodb", else "<svc> -> <the next service>". */
static void breaker_label(int svc, const cJSON *b, char *buf, size_t len)
{
    const char *label = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(b, "label"));
    const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(b, "name"));
    size_t n = name ? strlen(name) : 0;
    if (label && *label)
        snprintf(buf, len, "%s", label);
    else if (n >= 9 && strcmp(name + n - 9, "->mongodb") == 0)
        snprintf(buf, len, "%s -> database", chaos_services[svc].name);
    else if (chaos_services[svc].next[0])
        snprintf(buf, len, "%s -> %s", chaos_services[svc].name, chaos_services[svc].next);
    else
        snprintf(buf, len, "%s", name ? name : "?");
}

/* One request to service svc's path; the answer's JSON in *json (NULL when
 * none). Returns true on a 2xx answer, else false with the reason in why. */
static bool ask(const chaos_run *r, int svc, const char *method, const char *path, cJSON **json, char *why,
                size_t whylen)
{
    char url[700];
    snprintf(url, sizeof url, "%s%s", r->urls[svc], path);
    net_answer a;
    long st = net_request(method, url, NULL, r->token, HALT_TIMEOUT_MS, &a);
    *json = st ? cJSON_Parse(a.body) : NULL;
    bool ok = st >= 200 && st < 300;
    if (!st)
        snprintf(why, whylen, "does not answer at %s (%s)", r->urls[svc], a.error);
    else if (!ok) {
        const char *e = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(*json, "error"));
        snprintf(why, whylen, "%s %s answered %ld%s%s", method, path, st, e ? ": " : "", e ? e : "");
    }
    net_answer_free(&a);
    return ok;
}

/* Clears service svc's faults: their names go to cleared ("error, latency",
 * "" when none). Returns true when the service did it. */
static bool halt_faults(const chaos_run *r, int svc, char *cleared, size_t len, char *why, size_t whylen)
{
    cJSON *now = NULL, *after = NULL;
    cleared[0] = '\0';
    bool ok = ask(r, svc, "GET", "/chaos", &now, why, whylen);
    const cJSON *f;
    cJSON_ArrayForEach(f, cJSON_GetObjectItemCaseSensitive(now, "faults")) {
        size_t n = strlen(cleared);
        snprintf(cleared + n, len - n, "%s%s", n ? ", " : "", f->string);
    }
    ok = ok && ask(r, svc, "DELETE", "/chaos", &after, why, whylen);
    cJSON_Delete(now);
    cJSON_Delete(after);
    return ok;
}

/* Closes every breaker of service svc that is not closed, saying each one.
 * *closed counts them. Returns true when the service answered every request. */
static bool halt_breakers(const chaos_run *r, int svc, int *closed, char *why, size_t whylen)
{
    cJSON *h = NULL;
    if (!ask(r, svc, "GET", "/health", &h, why, whylen)) {
        cJSON_Delete(h);
        return false;
    }
    bool ok = true;
    const cJSON *b;
    cJSON_ArrayForEach(b, cJSON_GetObjectItemCaseSensitive(h, "breakers")) {
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(b, "name"));
        const char *state = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(b, "state"));
        if (!name || !state || strcmp(state, "closed") == 0)
            continue;
        char *quoted = curl_easy_escape(NULL, name, 0);
        char path[600], label[200];
        snprintf(path, sizeof path, "/breaker/close?name=%s", quoted ? quoted : "");
        curl_free(quoted);
        breaker_label(svc, b, label, sizeof label);
        cJSON *answer = NULL;
        char failed[400];
        if (ask(r, svc, "POST", path, &answer, failed, sizeof failed)) {
            const char *now = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(answer, "state"));
            printf("%s: was %s, now %s\n", label, state, now ? now : "closed");
            (*closed)++;
        } else {
            printf("%s: was %s, NOT closed: %s\n", label, state, failed);
            snprintf(why, whylen, "%s", failed);
            ok = false;
        }
        cJSON_Delete(answer);
    }
    cJSON_Delete(h);
    return ok;
}

int chaos_halt(const chaos_run *r)
{
    int rc = 0;
    for (int s = 0; s < CHAOS_NSVC; s++) {
        const char *name = chaos_services[s].name;
        char cleared[300], why[700];
        int closed = 0;
        bool faults_ok = halt_faults(r, s, cleared, sizeof cleared, why, sizeof why);
        if (!faults_ok) {
            printf("%s: NOT cleared: %s\n", name, why);
            fprintf(stderr, "chaos: --halt: %s %s\n", name, why);
            rc = 2;
        } else if (cleared[0]) {
            printf("%s: cleared %s\n", name, cleared);
        }
        /* a service that does not answer has no breakers to reach either */
        bool silent = !faults_ok && strstr(why, "does not answer");
        if (!silent && !halt_breakers(r, s, &closed, why, sizeof why)) {
            fprintf(stderr, "chaos: --halt: %s %s\n", name, why);
            rc = 2;
        } else if (!silent && faults_ok && !cleared[0] && !closed) {
            printf("%s: nothing to clear\n", name);
        }
        fflush(stdout);
    }
    return rc;
}
