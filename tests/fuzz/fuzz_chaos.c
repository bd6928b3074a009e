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
#include "../../common/svc/lab/chaos.c"

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
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(faults, chaos_faults[k].name);
        if (next[k].expires_ns && next[k].expires_ns < soon)
            continue;
        FUZZ_CHECK(next[k].on == (x != NULL), "%s is %s but reported %s", chaos_faults[k].name,
                   next[k].on ? "on" : "off", x ? "on" : "off");
        if (!x)
            continue;
        FUZZ_CHECK(number(x, "fraction") == next[k].fraction, "%s.fraction %g reported as %g",
                   chaos_faults[k].name, next[k].fraction, number(x, "fraction"));
        for (int i = 0; chaos_faults[k].fields[i].name; i++) {
            const char *field = chaos_faults[k].fields[i].name;
            FUZZ_CHECK(number(x, field) == next[k].field[i], "%s.%s %d reported as %g",
                       chaos_faults[k].name, field, next[k].field[i], number(x, field));
        }
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
            if (!strcmp(x->string, chaos_faults[k].name))
                last = x;
        if (cJSON_IsNull(last))
            FUZZ_CHECK(!next[k].on, "%s is on though its last mention is null", chaos_faults[k].name);
        if (!last || !cJSON_IsObject(last) || !next[k].on)
            continue;
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(last, "expires_s");
        if (!e || (cJSON_IsNumber(e) && e->valuedouble == 0))
            FUZZ_CHECK(next[k].expires_ns == 0, "%s expires though its last mention says never",
                       chaos_faults[k].name);
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
        FUZZ_CHECK(f->fraction > 0 && f->fraction <= 1, "%s.fraction %g", chaos_faults[k].name,
                   f->fraction);
        for (int i = 0; chaos_faults[k].fields[i].name; i++) {
            const chaos_field *c = &chaos_faults[k].fields[i];
            FUZZ_CHECK(f->field[i] >= c->min && f->field[i] <= c->max, "%s.%s %d out of %g..%g",
                       chaos_faults[k].name, c->name, f->field[i], c->min, c->max);
        }
    }
    chaos_apply(next, "fuzz:");
    reported(next);
    for (int i = 0; i < 4; i++) {
        chaos_draw d;
        chaos_draw_request(&d);
        const chaos_fault *lat = &next[CHAOS_LATENCY];
        int ms = d.amount[CHAOS_LATENCY];
        FUZZ_CHECK(ms >= 0 && ms <= lat->field[0] + lat->field[1],
                   "latency %d ms drawn from %d±%d", ms, lat->field[0], lat->field[1]);
        FUZZ_CHECK(!d.hit[CHAOS_HANG] || d.amount[CHAOS_HANG] >= 1, "a hang of at most %d ms",
                   d.amount[CHAOS_HANG]);
        for (int k = 0; k < CHAOS_KINDS; k++)
            FUZZ_CHECK(!d.hit[k] || next[k].on, "%s drawn while off", chaos_faults[k].name);
    }
    chaos_fault none[CHAOS_KINDS];
    memset(none, 0, sizeof none);
    chaos_apply(none, "fuzz:");
    return 0;
}
