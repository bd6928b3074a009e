/* experiment.c -- reads an experiment file and checks every field before anything runs.
 *
 * The whole file is checked first: a bad file is refused with one message
 * naming the file and the field ("method[2].within: seconds, a positive
 * number") or, for a JSON syntax error, the line and column, and nothing of
 * it runs. The parsed cJSON tree is kept and the steps point into it.
 * An action step is checked against its row of act.c's chaos_actions: the
 * fields the row names, each with the check of its kind (field_rules).
 */
#include "experiment.h"

#include "act.h"
#include "dynbuf.h"
#include "faults_check.h"
#include "measure.h"
#include "premises.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The checker's state: where to write the one message. */
typedef struct checker {
    const char *path;
    char *err;
    size_t errlen;
} checker;

/* Writes "<path>: <field>: <what>" and returns -1, so callers can `return bad(...)`. */
__attribute__((format(printf, 3, 4)))
static int bad(checker *c, const char *field, const char *fmt, ...)
{
    char what[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    snprintf(c->err, c->errlen, "%s: %s: %s", c->path, field, what);
    return -1;
}

/* True when word is one of the n names. */
static bool one_of(const char *word, const char *const *names, size_t n)
{
    for (size_t i = 0; word && i < n; i++)
        if (strcmp(word, names[i]) == 0)
            return true;
    return false;
}

/* Refuses a key that an object holds twice (cJSON keeps both). Returns 0 or -1. */
static int no_twice(checker *c, const cJSON *obj, const char *prefix)
{
    for (const cJSON *a = obj ? obj->child : NULL; a; a = a->next)
        for (const cJSON *b = a->next; b; b = b->next)
            if (a->string && b->string && strcmp(a->string, b->string) == 0) {
                char field[160];
                snprintf(field, sizeof field, "%s%s", prefix, a->string);
                return bad(c, field, "given twice");
            }
    return 0;
}

/* Refuses every key of obj not among the n names. Returns 0 or -1. */
static int only_known(checker *c, const cJSON *obj, const char *prefix, const char *const *names,
                      size_t n, const char *what)
{
    if (no_twice(c, obj, prefix))
        return -1;
    for (const cJSON *k = obj->child; k; k = k->next)
        if (!one_of(k->string, names, n)) {
            char field[160];
            snprintf(field, sizeof field, "%s%s", prefix, k->string);
            return bad(c, field, "%s", what);
        }
    return 0;
}

/* A number field of obj with a default: *out is set. Returns 0, or -1 when
 * present but not a number in [lo, hi] (hi_open: hi itself excluded). */
static int number(checker *c, const cJSON *obj, const char *key, const char *field, double def,
                  double lo, double hi, bool hi_open, const char *what, double *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v) {
        *out = def;
        return 0;
    }
    if (!cJSON_IsNumber(v) || v->valuedouble < lo || v->valuedouble > hi ||
        (hi_open && v->valuedouble >= hi))
        return bad(c, field, "%s", what);
    *out = v->valuedouble;
    return 0;
}

/* A string field, or NULL when absent; -1 when present and not a string. */
static int string(checker *c, const cJSON *obj, const char *key, const char *field, const char **out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    *out = NULL;
    if (!v)
        return 0;
    if (!cJSON_IsString(v))
        return bad(c, field, "a string");
    *out = v->valuestring;
    return 0;
}

/* "<service>" or "<service>/db". */
static bool breaker_ref_ok(const char *ref)
{
    size_t n = ref ? strcspn(ref, "/") : 0;
    char svc[32];
    if (!ref || n >= sizeof svc || (ref[n] && strcmp(ref + n, "/db") != 0))
        return false;
    snprintf(svc, sizeof svc, "%.*s", (int)n, ref);
    return chaos_service_index(svc) >= 0;
}

/* "order, payment, shipment" (with_databases: then "ferretdb, postgres"), into buf. */
static const char *listed(char *buf, size_t len, bool with_databases)
{
    buf[0] = '\0';
    for (size_t i = 0; i < CHAOS_NSVC + (with_databases ? CHAOS_NDB : 0); i++)
        snprintf(buf + strlen(buf), len - strlen(buf), "%s%s", i ? ", " : "",
                 i < CHAOS_NSVC ? chaos_services[i].name : chaos_databases[i - CHAOS_NSVC]);
    return buf;
}

/* A field's check: v is the field's value (NULL when absent), f its name for
 * messages. Fills its member of *s. Returns 0, or -1 with the message. */
typedef int field_check(checker *c, const cJSON *v, const char *f, chaos_step *s);

static int check_service(checker *c, const cJSON *v, const char *f, chaos_step *s)
{
    char names[200];
    if (!cJSON_IsString(v) || chaos_service_index(v->valuestring) < 0)
        return bad(c, f, "one of %s", listed(names, sizeof names, false));
    s->service = v->valuestring;
    return 0;
}

static int check_process(checker *c, const cJSON *v, const char *f, chaos_step *s)
{
    char names[200];
    if (!cJSON_IsString(v) ||
        (chaos_service_index(v->valuestring) < 0 && !one_of(v->valuestring, chaos_databases, CHAOS_NDB)))
        return bad(c, f, "one of make run's processes: %s", listed(names, sizeof names, true));
    s->service = v->valuestring;
    return 0;
}

static int check_breaker(checker *c, const cJSON *v, const char *f, chaos_step *s)
{
    if (!cJSON_IsString(v) || !breaker_ref_ok(v->valuestring))
        return bad(c, f, "\"<service>\" (its chain breaker) or \"<service>/db\" (its database breaker)");
    s->breaker = v->valuestring;
    return 0;
}

static int check_command(checker *c, const cJSON *v, const char *f, chaos_step *s)
{
    if (!cJSON_IsString(v) || !v->valuestring[0])
        return bad(c, f, "a shell command");
    s->command = v->valuestring;
    return 0;
}

/* faults: a body PUT /chaos takes, read by the services' own parser
 * (common/svc/lab/faults.c), so a misspelt fault or field is named here. */
static int check_faults(checker *c, const cJSON *v, const char *f, chaos_step *s)
{
    char why[400];
    if (!cJSON_IsObject(v) || !v->child)
        return bad(c, f, "an object of faults, as PUT /chaos takes");
    if (chaos_faults_check(v, why, sizeof why))
        return bad(c, f, "a body PUT /chaos takes, but the services say: %s", why);
    s->faults = v;
    return 0;
}

static int check_settings(checker *c, const cJSON *v, const char *f, chaos_step *s)
{
    if (!cJSON_IsObject(v) || !v->child)
        return bad(c, f, "an object of settings, the body of POST /retry, /shed or /hedge, e.g. "
                         "{\"attempts\": 3, \"budget_tokens\": 0}, {\"enabled\": true, \"max_limit\": 8}, "
                         "{\"max_copies\": 2, \"delay_ms\": 50}");
    s->settings = v;
    return 0;
}

static int check_options(checker *c, const cJSON *v, const char *f, chaos_step *s)
{
    if (!cJSON_IsObject(v) || !v->child)
        return bad(c, f, "an object of breaker options, as POST /breaker/options takes, e.g. "
                         "{\"backoff\": 2, \"reset_timeout_ms\": 3000}");
    s->options = v;
    return 0;
}

/* The fields an action row may name: each one's key and check. */
static const struct field_rule {
    const char *key;
    field_check *check;
} field_rules[] = {
    [CHAOS_FIELD_SERVICE] = { "service", check_service },
    [CHAOS_FIELD_PROCESS] = { "service", check_process },
    [CHAOS_FIELD_BREAKER] = { "breaker", check_breaker },
    [CHAOS_FIELD_COMMAND] = { "command", check_command },
    [CHAOS_FIELD_FAULTS] = { "faults", check_faults },
    [CHAOS_FIELD_SETTINGS] = { "settings", check_settings },
    [CHAOS_FIELD_OPTIONS] = { "options", check_options },
};

/* Checks key of step j (named field) with check. Returns 0 or -1. */
static int check_field(checker *c, const cJSON *j, const char *field, const char *key, field_check *check,
                       chaos_step *s)
{
    char f[160];
    snprintf(f, sizeof f, "%s.%s", field, key);
    return check(c, cJSON_GetObjectItemCaseSensitive(j, key), f, s);
}

/* The row of action name in chaos_actions, or NULL when there is none. */
static const chaos_action *action_row(const char *name)
{
    for (size_t i = 0; name && i < chaos_nactions; i++)
        if (strcmp(chaos_actions[i].name, name) == 0)
            return &chaos_actions[i];
    return NULL;
}

/* Checks an action step: its name is a row of chaos_actions, its fields
 * those of the row, each passing its check. Returns 0 or -1. */
static int check_action(checker *c, const cJSON *j, const char *field, chaos_step *s)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, "action");
    const chaos_action *row = cJSON_IsString(a) ? action_row(a->valuestring) : NULL;
    char f[160];
    snprintf(f, sizeof f, "%s.action", field);
    if (!row) {
        char names[200] = "";
        for (size_t i = 0; i < chaos_nactions; i++)
            snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", i ? ", " : "",
                     chaos_actions[i].name);
        return bad(c, f, "one of %s (or an expect step)", names);
    }
    s->action = row->name;
    s->kind = row;
    const char *allowed[3 + sizeof row->fields / sizeof row->fields[0]] = { "at", "action", "why" };
    size_t nallowed = 3;
    for (const chaos_field *k = row->fields; *k != CHAOS_FIELD_NONE; k++) {
        const struct field_rule *rule = &field_rules[*k];
        if (check_field(c, j, field, rule->key, rule->check, s))
            return -1;
        allowed[nallowed++] = rule->key;
    }
    char prefix[160], what[64];
    snprintf(prefix, sizeof prefix, "%s.", field);
    snprintf(what, sizeof what, "unknown field for action %s", s->action);
    return only_known(c, j, prefix, allowed, nallowed, what);
}

/* Checks an expectation step (method only): expect, within, and breaker
 * for a state ("open"), none for a measure ("amplification <= 1.3").
 * Returns 0 or -1. */
static int check_expectation(checker *c, const cJSON *j, const char *field, double seconds, bool in_method,
                             chaos_step *s)
{
    const cJSON *expect = cJSON_GetObjectItemCaseSensitive(j, "expect");
    char f[160];
    snprintf(f, sizeof f, "%s.expect", field);
    if (!in_method)
        return bad(c, f, "expectations belong in method");
    bool state = cJSON_IsString(expect) && one_of(expect->valuestring, chaos_states, 3);
    s->measure_svc = -1;
    if (!state && (!cJSON_IsString(expect) ||
                   chaos_measure_parse(expect->valuestring, &s->measure, &s->measure_svc, &s->op, &s->bound))) {
        char names[400], services[200] = "";
        for (int i = 0; i < CHAOS_NSVC; i++)
            snprintf(services + strlen(services), sizeof services - strlen(services), "%s%s", i ? ", " : "",
                     chaos_services[i].name);
        return bad(c, f, "a breaker state (closed, open, half-open) or \"<measure> <op> <number>\" "
                         "with a measure of %s (<service> one of %s) and an op of <=, <, >=, >, == "
                         "(\"amplification <= 1.3\", \"order.health_p99_ms <= 50\")",
                   chaos_measure_names(names, sizeof names), services);
    }
    s->expect = expect->valuestring;
    const cJSON *within = cJSON_GetObjectItemCaseSensitive(j, "within");
    snprintf(f, sizeof f, "%s.within", field);
    if (!cJSON_IsNumber(within) || within->valuedouble <= 0)
        return bad(c, f, "seconds, a positive number");
    s->within = within->valuedouble;
    if (s->measure && s->at + s->within > seconds)
        return bad(c, f, "a measure is taken within the load: at + within must be at most %g s", seconds);
    if (state && check_field(c, j, field, "breaker", check_breaker, s))
        return -1;
    static const char *const known[] = { "at", "expect", "within", "why", "breaker" };
    char prefix[160];
    snprintf(prefix, sizeof prefix, "%s.", field);
    return only_known(c, j, prefix, known, state ? 5 : 4,
                      state ? "unknown field" : "unknown field for a measure (it names no breaker)");
}

/* Checks the fields every step may have: why, and at (required in method,
 * within the load). Returns 0 or -1. */
static int check_why_at(checker *c, const cJSON *j, const char *field, double seconds, bool in_method,
                        chaos_step *s)
{
    char f[160];
    snprintf(f, sizeof f, "%s.why", field);
    if (string(c, j, "why", f, &s->why))
        return -1;
    const cJSON *at = cJSON_GetObjectItemCaseSensitive(j, "at");
    snprintf(f, sizeof f, "%s.at", field);
    if (in_method) {
        if (!cJSON_IsNumber(at) || at->valuedouble < 0 || at->valuedouble >= seconds)
            return bad(c, f, "seconds from the start of the load, in 0..%g", seconds);
        s->at = at->valuedouble;
    } else if (at && !cJSON_IsNumber(at)) {
        return bad(c, f, "a number of seconds");
    }
    return 0;
}

/* Checks one step of method (in_method) or rollbacks and fills *s: an
 * expectation when it has "expect", else an action. Returns 0 or -1. */
static int check_step(checker *c, const cJSON *j, const char *field, double seconds, bool in_method,
                      chaos_step *s)
{
    if (!cJSON_IsObject(j))
        return bad(c, field, "must be an object");
    memset(s, 0, sizeof *s);
    if (check_why_at(c, j, field, seconds, in_method, s))
        return -1;
    if (cJSON_GetObjectItemCaseSensitive(j, "expect"))
        return check_expectation(c, j, field, seconds, in_method, s);
    return check_action(c, j, field, s);
}

/* Checks a list of steps ("method" or "rollbacks") into a new array. Returns 0 or -1. */
static int check_steps(checker *c, const cJSON *list, const char *name, double seconds, bool in_method,
                       chaos_step **out, int *n)
{
    int count = cJSON_GetArraySize(list);
    *out = calloc(count > 0 ? (size_t)count : 1, sizeof **out);
    *n = 0;
    if (!*out)
        return bad(c, name, "out of memory");
    int i = 0;
    for (const cJSON *j = list->child; j; j = j->next, i++) {
        char field[64];
        snprintf(field, sizeof field, "%s[%d]", name, i);
        if (check_step(c, j, field, seconds, in_method, &(*out)[i]))
            return -1;
        *n = i + 1;
    }
    return 0;
}

/* The largest experiment file read. */
#define EXPERIMENT_MAX_BYTES (16u << 20)

/* Reads the whole file into a new NUL-terminated buffer (at most
 * EXPERIMENT_MAX_BYTES). NULL with a message on error. */
static char *read_file(checker *c, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(c->err, c->errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    dynbuf d;
    dynbuf_init(&d, EXPERIMENT_MAX_BYTES);
    char chunk[8192];
    size_t got;
    int rc = 0;
    while (!rc && (got = fread(chunk, 1, sizeof chunk, f)) > 0)
        rc = dynbuf_add(&d, chunk, got);
    bool failed = ferror(f);
    int saved = errno;
    fclose(f);
    if (rc || failed) {
        dynbuf_free(&d);
        snprintf(c->err, c->errlen, "%s: cannot be read (%s)", path,
                 rc ? dynbuf_strerror(rc) : strerror(saved));
        return NULL;
    }
    char *text = dynbuf_take(&d, NULL);
    return text ? text : calloc(1, 1);
}

/* Writes "<path>:<line>:<col>: not valid JSON ..." for a parse that stopped at where. */
static void syntax_error(checker *c, const char *text, const char *where)
{
    int line = 1, col = 1;
    const char *p = text;
    if (!where || where < text)
        where = text + strlen(text);
    /* cJSON stops inside a bad word ("oops"): point at its start */
    while (where > text && *where && isalnum((unsigned char)where[-1]))
        where--;
    for (; p < where && *p; p++) {
        if (*p == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
    }
    char near[32];
    size_t k = 0;
    for (const char *q = where; *q && *q != '\n' && k < sizeof near - 1; q++)
        near[k++] = *q;
    near[k] = '\0';
    if (k)
        snprintf(c->err, c->errlen, "%s:%d:%d: not valid JSON: unexpected text at \"%s\"", c->path,
                 line, col, near);
    else
        snprintf(c->err, c->errlen, "%s:%d:%d: not valid JSON: the text ends too early", c->path, line,
                 col);
}

/* What a rate of the load may be, for the messages. */
#define RATE_WHAT "a rate: requests a second in 1..1000, or a multiple of the capacity such as \"0.5x\" " \
                  "or \"4x\" (with load.capacity or --capacity)"

/* Reads rate field key of load (absent: def): a number of requests a
 * second, or "<k>x", k times capacity (0: none given); either must come to
 * CHAOS_MIN_RATE..CHAOS_MAX_RATE. Returns 0, or -1 naming load.<key>. */
static int load_rate(checker *c, const cJSON *load, const char *key, double def, double capacity, double *out)
{
    char f[64];
    snprintf(f, sizeof f, "load.%s", key);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(load, key);
    double rate = def;
    if (cJSON_IsNumber(v)) {
        rate = v->valuedouble;
    } else if (cJSON_IsString(v)) {
        char *end = NULL;
        double k = strtod(v->valuestring, &end);
        if (end == v->valuestring || strcmp(end, "x") != 0 || !(k > 0) || !isfinite(k))
            return bad(c, f, RATE_WHAT "; got \"%s\"", v->valuestring);
        if (capacity <= 0)
            return bad(c, f, "\"%s\" is a multiple of the capacity, but no capacity is given: add "
                             "load.capacity (requests a second) or --capacity N", v->valuestring);
        rate = k * capacity;
    } else if (v) {
        return bad(c, f, RATE_WHAT);
    }
    if (!(rate >= CHAOS_MIN_RATE && rate <= CHAOS_MAX_RATE))
        return bad(c, f, RATE_WHAT "; this one comes to %g requests a second", rate);
    *out = rate;
    return 0;
}

/* Checks "load": seconds, capacity (the command line's --capacity, already
 * in e->capacity, wins over the file's), rate, ramp_to, timeout_ms.
 * Returns 0 or -1. */
static int check_load(checker *c, const cJSON *load, chaos_experiment *e)
{
    if (load && !cJSON_IsObject(load))
        return bad(c, "load", "must be an object");
    static const char *const keys[] = { "rate", "ramp_to", "seconds", "capacity", "timeout_ms" };
    if (load && only_known(c, load, "load.", keys, 5,
                           "unknown field; the fields are rate, ramp_to, seconds, capacity, timeout_ms"))
        return -1;
    double file_capacity = 0;
    if (number(c, load, "seconds", "load.seconds", 20, 5, 600, false, "a number in 5..600", &e->seconds) ||
        number(c, load, "capacity", "load.capacity", 0, 1, 1e6, false,
               "requests a second the chain sustains (make bench-services measures it), a number in 1..1000000",
               &file_capacity) ||
        number(c, load, "timeout_ms", "load.timeout_ms", 10000, 100, 60000, false,
               "ms each request of the load waits for its answer, a number in 100..60000", &e->timeout_ms))
        return -1;
    if (e->capacity <= 0)
        e->capacity = file_capacity;
    if (load_rate(c, load, "rate", 10, e->capacity, &e->rate) ||
        load_rate(c, load, "ramp_to", e->rate, e->capacity, &e->ramp_to))
        return -1;
    return 0;
}

/* Checks the top level: fields, title, requires, load, hypothesis. Returns 0 or -1. */
static int check_top(checker *c, chaos_experiment *e)
{
    const cJSON *d = e->doc;
    if (!cJSON_IsObject(d))
        return bad(c, "(top)", "must be an object");
    static const char *const known[] = { "hypothesis", "lesson", "load", "method", "requires",
                                         "rollbacks", "title" };
    if (only_known(c, d, "", known, 7,
                   "unknown field; the fields are hypothesis, lesson, load, method, requires, "
                   "rollbacks, title"))
        return -1;
    const cJSON *title = cJSON_GetObjectItemCaseSensitive(d, "title");
    if (!cJSON_IsString(title) || !title->valuestring[0])
        return bad(c, "title", "a non-empty string is required");
    e->title = title->valuestring;
    if (string(c, d, "lesson", "lesson", &e->lesson))
        return -1;
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(d, "requires");
    if (req) {
        bool ok = cJSON_IsObject(req) && !no_twice(c, req, "requires.");
        for (const cJSON *k = ok ? req->child : NULL; k; k = k->next)
            ok = ok && cJSON_IsString(k);
        if (!ok)
            return bad(c, "requires",
                       "an object of the settings the stack must be started with, e.g. {\"CB_BACKOFF\": \"2\"}");
        for (const cJSON *k = req->child; k; k = k->next) {
            char f[80], names[300];
            snprintf(f, sizeof f, "requires.%.60s", k->string);
            if (!chaos_premise_known(k->string))
                return bad(c, f, "a setting the runner can check on the running stack: one of %s",
                           chaos_premise_names(names, sizeof names));
        }
        e->requires = req;
    }
    if (check_load(c, cJSON_GetObjectItemCaseSensitive(d, "load"), e))
        return -1;
    const cJSON *hyp = cJSON_GetObjectItemCaseSensitive(d, "hypothesis");
    if (hyp && !cJSON_IsObject(hyp))
        return bad(c, "hypothesis", "must be an object");
    static const char *const probes[] = { "ok_ratio", "p99_ms", "breakers", "window_s", "stored", "goodput_ms" };
    if (hyp && only_known(c, hyp, "hypothesis.", probes, 6,
                          "unknown probe; the probes are ok_ratio, p99_ms, breakers, window_s, stored, goodput_ms"))
        return -1;
    if (number(c, hyp, "ok_ratio", "hypothesis.ok_ratio", 0.9, 0, 1, false, "a number in 0..1",
               &e->ok_ratio) ||
        number(c, hyp, "p99_ms", "hypothesis.p99_ms", 1000, 1e-9, 1e12, false, "a positive number",
               &e->p99_ms) ||
        number(c, hyp, "goodput_ms", "hypothesis.goodput_ms", e->p99_ms, 1e-9, 1e12, false,
               "a positive number of ms: a 2xx answer within it counts as goodput", &e->goodput_ms) ||
        number(c, hyp, "window_s", "hypothesis.window_s", 3, 1, e->seconds / 2, false,
               "a number of seconds, at most half the load", &e->window_s))
        return -1;
    const cJSON *br = cJSON_GetObjectItemCaseSensitive(hyp, "breakers");
    e->breakers = "closed";
    if (br) {
        if (!cJSON_IsString(br) || !one_of(br->valuestring, chaos_states, 3))
            return bad(c, "hypothesis.breakers", "one of closed, open, half-open");
        e->breakers = br->valuestring;
    }
    const cJSON *stored = cJSON_GetObjectItemCaseSensitive(hyp, "stored");
    if (stored && !cJSON_IsBool(stored))
        return bad(c, "hypothesis.stored",
                   "true (every 200 answer's documents must be in the database) or false");
    e->stored = cJSON_IsTrue(stored);
    return 0;
}

int chaos_experiment_load(const char *path, double capacity, chaos_experiment *exp, char *err, size_t errlen)
{
    checker c = { .path = path, .err = err, .errlen = errlen };
    memset(exp, 0, sizeof *exp);
    char *text = read_file(&c, path);
    if (!text)
        return -1;
    return chaos_experiment_parse(path, text, capacity, exp, err, errlen);
}

int chaos_experiment_parse(const char *path, char *text, double capacity, chaos_experiment *exp, char *err,
                           size_t errlen)
{
    checker c = { .path = path, .err = err, .errlen = errlen };
    memset(exp, 0, sizeof *exp);
    exp->path = path;
    exp->capacity = capacity;
    const char *end = NULL;
    exp->doc = cJSON_ParseWithOpts(text, &end, true);
    if (!exp->doc) {
        syntax_error(&c, text, end ? end : cJSON_GetErrorPtr());
        free(text);
        return -1;
    }
    free(text);
    int rc = check_top(&c, exp);
    if (rc == 0) {
        const cJSON *method = cJSON_GetObjectItemCaseSensitive(exp->doc, "method");
        if (!cJSON_IsArray(method))
            rc = bad(&c, "method", "a list of steps ([] for a load only)");
        else
            rc = check_steps(&c, method, "method", exp->seconds, true, &exp->method, &exp->nmethod);
    }
    if (rc == 0) {
        const cJSON *rb = cJSON_GetObjectItemCaseSensitive(exp->doc, "rollbacks");
        if (rb && !cJSON_IsArray(rb))
            rc = bad(&c, "rollbacks", "a list of actions");
        else if (rb)
            rc = check_steps(&c, rb, "rollbacks", exp->seconds, false, &exp->rollbacks, &exp->nrollbacks);
    }
    if (rc) {
        chaos_experiment_free(exp);
        return -1;
    }
    /* stable insertion sort by at: steps at the same second keep the file's order */
    for (int i = 1; i < exp->nmethod; i++) {
        chaos_step s = exp->method[i];
        int j = i;
        for (; j > 0 && exp->method[j - 1].at > s.at; j--)
            exp->method[j] = exp->method[j - 1];
        exp->method[j] = s;
    }
    return 0;
}

void chaos_experiment_free(chaos_experiment *exp)
{
    free(exp->method);
    free(exp->rollbacks);
    cJSON_Delete(exp->doc);
    exp->method = exp->rollbacks = NULL;
    exp->doc = NULL;
    exp->nmethod = exp->nrollbacks = 0;
}
