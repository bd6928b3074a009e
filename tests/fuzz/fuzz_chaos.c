/* fuzz_chaos.c -- libFuzzer harness for the JSON the admin routes accept: the
 * body of PUT /chaos, parsed and checked as chaos_serve() does, then put in
 * force, read back and drawn against.
 *
 * chaos.c is compiled into this file, so that its static parser and table
 * are reached without widening chaos.h; the archive's copy is then not
 * linked. Asserts: a refusal has a message; an accepted body puts in force
 * exactly what GET /chaos then reports (each fault on or off, its fraction
 * and milliseconds); a fault is what its last mention says; a draw stays
 * within the faults' bounds. */
#include "../../common/svc/chaos.c"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define FUZZ_NAME "fuzz_chaos"
#include "fuzz_check.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    /* every change of the faults is a log line on stdout; libFuzzer reports on stderr */
    int null = open("/dev/null", O_WRONLY);
    if (null >= 0) {
        dup2(null, STDOUT_FILENO);
        close(null);
    }
    return 0;
}

/* The number field of fault x, or -1 when absent. */
static double number(const cJSON *x, const char *field)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(x, field);
    return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

/* Checks that GET /chaos reports what next put in force; a fault due to
 * expire within a second may be gone already. */
static void reported(const chaos_fault next[CHAOS_KINDS])
{
    int64_t soon = mono_ns() + 1000000000LL;
    cJSON *state = chaos_to_json();
    FUZZ_CHECK(state != NULL, "no state");
    const cJSON *faults = cJSON_GetObjectItemCaseSensitive(state, "faults");
    for (int k = 0; k < CHAOS_KINDS; k++) {
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(faults, chaos_names[k]);
        if (next[k].expires_ns && next[k].expires_ns < soon)
            continue;
        FUZZ_CHECK(next[k].on == (x != NULL), "%s is %s but reported %s", chaos_names[k],
                   next[k].on ? "on" : "off", x ? "on" : "off");
        if (!x)
            continue;
        FUZZ_CHECK(number(x, "fraction") == next[k].fraction, "%s.fraction %g reported as %g",
                   chaos_names[k], next[k].fraction, number(x, "fraction"));
        if (k == CHAOS_LATENCY)
            FUZZ_CHECK(number(x, "ms") == next[k].ms && number(x, "jitter_ms") == next[k].jitter_ms,
                       "latency %d±%d reported as %g±%g", next[k].ms, next[k].jitter_ms,
                       number(x, "ms"), number(x, "jitter_ms"));
        if (k == CHAOS_HANG)
            FUZZ_CHECK(number(x, "max_ms") == next[k].max_ms, "hang.max_ms %d reported as %g",
                       next[k].max_ms, number(x, "max_ms"));
    }
    cJSON_Delete(state);
}

/* Checks that each fault is what the last mention of it in body says: one
 * mentioned last as null is off, one mentioned last without expires_s (or
 * with 0) never expires, whatever an earlier mention of the same name said. */
static void last_mention_wins(const cJSON *body, const chaos_fault next[CHAOS_KINDS])
{
    for (int k = 0; k < CHAOS_KINDS; k++) {
        const cJSON *last = NULL;
        for (const cJSON *x = body->child; x; x = x->next)
            if (!strcmp(x->string, chaos_names[k]))
                last = x;
        if (cJSON_IsNull(last))
            FUZZ_CHECK(!next[k].on, "%s is on though its last mention is null", chaos_names[k]);
        if (!last || !cJSON_IsObject(last) || !next[k].on)
            continue;
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(last, "expires_s");
        if (!e || (cJSON_IsNumber(e) && e->valuedouble == 0))
            FUZZ_CHECK(next[k].expires_ns == 0, "%s expires though its last mention says never",
                       chaos_names[k]);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cJSON *body = cJSON_ParseWithLength((const char *)data, size);
    if (!body)
        return 0;
    chaos_fault next[CHAOS_KINDS];
    char err[300] = "";
    int rc = chaos_parse(body, next, err, sizeof err);
    if (rc == 0)
        last_mention_wins(body, next);
    cJSON_Delete(body);
    if (rc) {
        FUZZ_CHECK(err[0], "a refusal without a message");
        return 0;
    }
    for (int k = 0; k < CHAOS_KINDS; k++) {
        const chaos_fault *f = &next[k];
        if (!f->on)
            continue;
        FUZZ_CHECK(f->fraction > 0 && f->fraction <= 1, "%s.fraction %g", chaos_names[k],
                   f->fraction);
        FUZZ_CHECK(f->ms >= 0 && f->ms <= CHAOS_MAX_MS && f->jitter_ms >= 0 &&
                   f->jitter_ms <= CHAOS_MAX_MS, "%s: %d±%d ms", chaos_names[k], f->ms,
                   f->jitter_ms);
        FUZZ_CHECK(k != CHAOS_HANG || (f->max_ms >= 1 && f->max_ms <= CHAOS_MAX_MS),
                   "hang.max_ms %d", f->max_ms);
    }
    chaos_apply(next, "fuzz:");
    reported(next);
    for (int i = 0; i < 4; i++) {
        chaos_draw d;
        chaos_draw_request(&d);
        const chaos_fault *lat = &next[CHAOS_LATENCY];
        FUZZ_CHECK(d.latency_ms >= 0 && d.latency_ms <= lat->ms + lat->jitter_ms,
                   "latency %d ms drawn from %d±%d", d.latency_ms, lat->ms, lat->jitter_ms);
        FUZZ_CHECK(!d.hang || d.hang_max_ms >= 1, "a hang of at most %d ms", d.hang_max_ms);
        FUZZ_CHECK(!d.error || next[CHAOS_ERROR].on, "an error drawn while off");
        FUZZ_CHECK(!d.reset || next[CHAOS_RESET].on, "a reset drawn while off");
        FUZZ_CHECK(!d.database || next[CHAOS_DATABASE].on, "a database fault drawn while off");
    }
    chaos_fault none[CHAOS_KINDS];
    memset(none, 0, sizeof none);
    chaos_apply(none, "fuzz:");
    return 0;
}
