/* faults.c -- what a fault is (chaos_faults[], one row per fault) and the parser of a PUT /chaos body; see faults.h and chaos.h. */
#include "faults.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "monotime.h"
#include "random.h"

#define CHAOS_MAX_MS 600000         /* latency, jitter, hang: at most 10 minutes */
#define CHAOS_MAX_EXPIRES_S 86400   /* a fault lasts at most a day */
#define CHAOS_HANG_DEFAULT_MS 60000

/* fraction and expires_s: the fields every fault takes. */
const chaos_field chaos_common_fields[] = {
    { .name = "fraction", .label = "fraction", .min = 0, .max = 1, .dflt = 1,
      .about = "the share of requests it applies to (0 = off)" },
    { .name = "expires_s", .label = "expires in s", .min = 0, .max = CHAOS_MAX_EXPIRES_S,
      .about = "it ends by itself after this many seconds (0 = never)" },
    { .name = NULL }
};

/* latency: ms, +- jitter_ms uniformly; never below 0. */
static int latency_amount(const int *fields)
{
    int j = fields[1];
    int ms = fields[0] + (j ? (int)((chaos_random_unit() * 2.0 - 1.0) * j) : 0);
    return ms > 0 ? ms : 0;
}

/* hang: the longest hold. */
static int hang_amount(const int *fields)
{
    return fields[0];
}

const chaos_fault_kind chaos_faults[CHAOS_KINDS] = {
    [CHAOS_ERROR] = {
        .name = "error", .label = "error 502",
        .about = "answer 502, its document stored as \"injected\" (the demo's injected error)",
    },
    [CHAOS_LATENCY] = {
        .name = "latency", .label = "latency",
        .about = "wait ms ± jitter_ms before the work (a slow service)",
        .fields = {
            { .name = "ms", .label = "ms", .about = "the added milliseconds", .integer = true,
              .min = 0, .max = CHAOS_MAX_MS, .required = true },
            { .name = "jitter_ms", .label = "± jitter ms", .about = "± this much, uniformly",
              .integer = true, .min = 0, .max = CHAOS_MAX_MS, .dflt = 0 },
        },
        .shown = "{ms}±{jitter_ms} ms", .amount = latency_amount,
    },
    [CHAOS_HANG] = {
        .name = "hang", .label = "hang",
        .about = "hold the request, answering nothing, until the caller gives up, max_ms "
                 "passes or the fault is cleared",
        .fields = {
            { .name = "max_ms", .label = "max ms", .about = "the longest hold", .integer = true,
              .min = 1, .max = CHAOS_MAX_MS, .dflt = CHAOS_HANG_DEFAULT_MS },
        },
        .shown = "up to {max_ms} ms", .amount = hang_amount,
    },
    [CHAOS_RESET] = {
        .name = "reset", .label = "reset",
        .about = "drop the connection with a TCP reset before anything is stored",
    },
    [CHAOS_DATABASE] = {
        .name = "database", .label = "database",
        .about = "the write fails as if the database were unreachable; /health says so",
        .health_down = true,
    },
    [CHAOS_NO_DEADLINES] = {
        .name = "no_deadlines", .label = "no deadlines",
        .about = "ignore the caller's X-Deadline-Ms and pass none on (the timeout cascade)",
    },
    [CHAOS_LOSE_ANSWER] = {
        .name = "lose_answer", .label = "lose answer",
        .about = "do the work and store the document with its outcome, then reset the "
                 "connection instead of answering (a retry meets a completed write)",
        .fields = {
            { .name = "times", .label = "times", .about = "only the next this many requests, "
              "then it switches itself off (0 = until cleared)", .integer = true,
              .min = 0, .max = 1000000, .dflt = 0, .uses = true },
        },
    },
    [CHAOS_NO_IDEMPOTENCY] = {
        .name = "no_idempotency", .label = "no idempotency keys",
        .about = "ignore the request's Idempotency-Key and pass none on: a retried call stores "
                 "again (as IDEMPOTENCY_KEYS=0)",
    },
};


double chaos_random_unit(void)
{
    return (double)(random_u64() >> 11) / 9007199254740992.0;
}

/* The faults' names, "error, latency, ...", written into buf (for the
 * parser's messages). Returns buf. */
static const char *fault_list(char *buf, size_t len)
{
    size_t n = 0;
    buf[0] = '\0';
    for (int k = 0; k < CHAOS_KINDS && n < len; k++) {
        int w = snprintf(buf + n, len - n, "%s%s", k ? ", " : "", chaos_faults[k].name);
        n += w > 0 ? (size_t)w : 0;
    }
    return buf;
}

/* Reads the number field f of fault object x into *out, checking its range
 * and, for an integer, that it is whole; leaves *out when x has no such
 * field. Returns 0, or -1 with err set. */
static int read_number(const cJSON *x, const char *fault, const chaos_field *f, double *out,
                       char *err, size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(x, f->name);
    if (!v)
        return 0;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < f->min ||
        v->valuedouble > f->max || (f->integer && v->valuedouble != floor(v->valuedouble))) {
        snprintf(err, errlen, "%s.%s must be %s in %g..%g", fault, f->name,
                 f->integer ? "an integer" : "a number", f->min, f->max);
        return -1;
    }
    *out = v->valuedouble;
    return 0;
}

/* The field named name in list (NULL-name ended), or NULL. */
static const chaos_field *find_field(const chaos_field *list, const char *name)
{
    for (; list->name; list++)
        if (!strcmp(list->name, name))
            return list;
    return NULL;
}

/* Checks fault object x, a fault of row's kind, into out (all zero when
 * its fraction is 0). Returns 0, or -1 with a sentence naming the field in
 * err. */
static int parse_fault(const cJSON *x, const chaos_fault_kind *row, int64_t now_mono,
                       int64_t now_wall, chaos_fault *out, char *err, size_t errlen)
{
    const char *name = row->name;
    if (!cJSON_IsObject(x)) {
        snprintf(err, errlen, "%s must be an object, e.g. {\"fraction\": 0.5}", name);
        return -1;
    }
    for (const cJSON *f = x->child; f; f = f->next)
        if (!find_field(chaos_common_fields, f->string) && !find_field(row->fields, f->string)) {
            snprintf(err, errlen, "%s has no field \"%.64s\"", name, f->string);
            return -1;
        }
    double common[sizeof chaos_common_fields / sizeof chaos_common_fields[0]], own[CHAOS_MAX_FIELDS] = { 0 };
    for (int i = 0; chaos_common_fields[i].name; i++) {
        common[i] = chaos_common_fields[i].dflt;
        if (read_number(x, name, &chaos_common_fields[i], &common[i], err, errlen))
            return -1;
    }
    for (int i = 0; row->fields[i].name; i++) {
        own[i] = row->fields[i].dflt;
        if (read_number(x, name, &row->fields[i], &own[i], err, errlen))
            return -1;
    }
    for (const chaos_field *f = row->fields; f->name; f++)
        if (f->required && !cJSON_GetObjectItemCaseSensitive(x, f->name)) {
            snprintf(err, errlen, "%s.%s is required (%s)", name, f->name, f->about);
            return -1;
        }
    double fraction = common[0], expires = common[1];   /* chaos_common_fields' order */
    memset(out, 0, sizeof *out);
    if (fraction <= 0)
        return 0;
    out->on = true;
    out->fraction = fraction;
    for (int i = 0; i < CHAOS_MAX_FIELDS; i++)
        out->field[i] = (int)own[i];
    for (int i = 0; row->fields[i].name; i++)
        if (row->fields[i].uses && own[i] > 0)
            out->uses_left = (int)own[i];
    out->set_wall_ms = now_wall;
    if (expires > 0) {
        out->expires_ns = now_mono + (int64_t)(expires * 1e9);
        out->expires_wall_ms = now_wall + (int64_t)(expires * 1000.0);
    }
    return 0;
}

/* Checks the PUT body into out (every fault, on or off). Returns 0, or -1
 * with a sentence naming the field in err. */
int chaos_parse(const cJSON *body, chaos_fault out[CHAOS_KINDS], char *err, size_t errlen)
{
    memset(out, 0, sizeof(chaos_fault) * CHAOS_KINDS);
    char names[160];
    if (!cJSON_IsObject(body)) {
        snprintf(err, errlen, "the body must be a JSON object of faults: %s",
                 fault_list(names, sizeof names));
        return -1;
    }
    int64_t now_mono = mono_ns(), now_wall = wall_ms();
    bool seen[CHAOS_KINDS] = { false };
    for (const cJSON *x = body->child; x; x = x->next) {
        int k = 0;
        while (k < CHAOS_KINDS && strcmp(x->string, chaos_faults[k].name))
            k++;
        if (k == CHAOS_KINDS) {
            snprintf(err, errlen, "unknown fault \"%.64s\"; the faults are %s", x->string,
                     fault_list(names, sizeof names));
            return -1;
        }
        if (seen[k]) {
            snprintf(err, errlen, "fault \"%s\" is given twice; give each fault once",
                     chaos_faults[k].name);
            return -1;
        }
        seen[k] = true;
        if (cJSON_IsNull(x))
            continue;   /* "latency": null says "none", like leaving it out */
        if (parse_fault(x, &chaos_faults[k], now_mono, now_wall, &out[k], err, errlen))
            return -1;
    }
    return 0;
}

int chaos_faults_check(const cJSON *body, char *err, size_t errlen)
{
    chaos_fault none[CHAOS_KINDS];
    return chaos_parse(body, none, err, errlen);
}
