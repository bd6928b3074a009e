/* measure.c -- the measures an expectation can bound: retry amplification, from the services' own counts, and duplicate documents, from the database.
 *
 * An expectation such as {"at": 4, "within": 20, "expect": "amplification <= 1.3"}
 * holds when the measure, taken over [at, at + within], compares with the
 * bound as written. chaos_measures, below, is their one table.
 *
 *   amplification   calls that arrived at the last service of the chain per
 *                   request that arrived at the first, both read from each
 *                   service's GET /health (requests.arrived, counted on
 *                   arrival, before anything else is done), which the poller
 *                   reads four times a second. Retries at every hop multiply
 *                   it: three attempts at two hops can make nine.
 *   duplicates      documents stored beyond one per hop for the requests the
 *                   load sent in the span: every hop of a request stores under
 *                   the request's trace id (the runner's traceparent), so two
 *                   documents of one trace in one collection are a duplicate
 *                   (stored.c counts them after the load).
 *   longest_open_s  the longest time, in seconds, a chain breaker (not a
 *                   database one) stayed open in one piece in the span, from
 *                   the state bands (events and the poll): with back-off the
 *                   open periods grow (3, 6, 12 s), without it they stay at
 *                   the reset timeout.
 *
 * The bulkhead's measures are each of one service, written
 * "<service>.<measure>" ("order.health_p99_ms <= 50"), from the poll's
 * timed probes (run.c): GET /health four times a second, GET / twice.
 *
 *   health_p99_ms   the p99 of the service's GET /health in ms; a probe that
 *   root_p99_ms     got no answer, or a refusal (not 2xx), counts as its 2 s
 *                   timeout. Likewise GET /.
 *   busy_max        the most requests holding one of its worker threads at
 *                   once, from /health's workers.busy (THREADS bounds it;
 *                   RESERVED_WORKERS of them only /health and /metrics take).
 *   connections_max the most connections to its next hop out on calls at
 *                   once, from /health's workers.chain.in_use (at most
 *                   CHAIN_CONNECTIONS).
 *
 * The load's own measures, over the requests sent in [at, at + within) (by
 * when each went out; a request that got no answer counts with the time
 * until it failed, at most the load's timeout_ms):
 *
 *   goodput         2xx answers (whole or degraded: a degraded answer is
 *                   still an answer) that came within the hypothesis's
 *                   goodput_ms (default its p99_ms), per second of the span.
 *                   Under overload a busy chain answers late: its goodput
 *                   falls although it works as hard as it can.
 *   goodput_ratio   those answers per request sent in the span (0..1):
 *                   goodput over the offered rate.
 *   p99_ms          the 99th percentile of the latency of the requests sent
 *                   in the span (answered or not), as the hypothesis takes it.
 *   shed            503 answers per second of the span (the load shedding's
 *                   refusals).
 */
#include "measure.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The arrivals count of service svc at time t, interpolated between the
 * poll's samples (the first or last sample's outside them). Returns -1 when
 * the poll never read the service. */
static double arrived_at(const chaos_run *r, int svc, double t)
{
    const chaos_sample *before = NULL, *after = NULL;
    for (int i = 0; i < r->nsamples; i++) {
        const chaos_sample *s = &r->samples[i];
        if (s->svc != svc)
            continue;
        if (s->t <= t)
            before = s;
        else if (!after)
            after = s;
    }
    if (!before && !after)
        return -1;
    if (!before)
        return after->arrived;
    if (!after || after->t <= before->t)
        return before->arrived;
    return before->arrived + (after->arrived - before->arrived) * (t - before->t) / (after->t - before->t);
}

/* amplification: arrivals at the last service / arrivals at the first over [lo, hi]. */
static int measure_amplification(const chaos_run *r, int svc, double lo, double hi, double *value, char *why,
                                 size_t whylen)
{
    (void)svc;
    int first = 0, last = CHAOS_NSVC - 1;
    double f0 = arrived_at(r, first, lo), f1 = arrived_at(r, first, hi);
    double l0 = arrived_at(r, last, lo), l1 = arrived_at(r, last, hi);
    if (f0 < 0 || l0 < 0) {
        snprintf(why, whylen, "no GET /health of %s gave requests.arrived (a service older than the runner?)",
                 f0 < 0 ? chaos_services[first].name : chaos_services[last].name);
        return -1;
    }
    if (f1 - f0 < 1) {
        snprintf(why, whylen, "no request arrived at %s between %g s and %g s", chaos_services[first].name, lo, hi);
        return -1;
    }
    *value = (l1 - l0) / (f1 - f0);
    return 0;
}

/* duplicates: the documents stored beyond one per hop for the requests sent in [lo, hi]. */
static int measure_duplicates(const chaos_run *r, int svc, double lo, double hi, double *value, char *why,
                              size_t whylen)
{
    (void)svc;
    if (!r->stored.counted) {
        snprintf(why, whylen, "%s", r->stored.count_error[0] ? r->stored.count_error : "not counted");
        return -1;
    }
    int n = 0;
    for (int i = 0; i < r->nreqs; i++)
        if (r->reqs[i].t >= lo && r->reqs[i].t <= hi && r->reqs[i].duplicates > 0)
            n += r->reqs[i].duplicates;
    *value = n;
    return 0;
}

/* longest_open_s: the longest unbroken "open" stretch of a chain breaker's band within [lo, hi]. */
static int measure_longest_open(const chaos_run *r, int svc, double lo, double hi, double *value, char *why,
                                size_t whylen)
{
    (void)svc;
    double longest = -1;
    for (int i = 0; i < r->nbands; i++) {
        const chaos_band *b = &r->bands[i];
        size_t n = strlen(b->name);
        if (n >= 9 && strcmp(b->name + n - 9, "->mongodb") == 0)
            continue;
        longest = longest < 0 ? 0 : longest;
        for (int k = 0; k < b->n; k++) {
            if (strcmp(b->pts[k].state, "open") != 0 || (k > 0 && strcmp(b->pts[k - 1].state, "open") == 0))
                continue;
            int end = k + 1;
            while (end < b->n && strcmp(b->pts[end].state, "open") == 0)
                end++;
            double from = fmax(b->pts[k].t, lo), to = fmin(end < b->n ? b->pts[end].t : hi, hi);
            if (to - from > longest)
                longest = to - from;
        }
    }
    if (longest < 0) {
        snprintf(why, whylen, "no chain breaker was seen in the run");
        return -1;
    }
    *value = longest;
    return 0;
}

/* qsort order of doubles, smallest first. */
static int by_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The p99 of service svc's probes of route sent in [lo, hi]. A probe with
 * no answer, or with one other than 2xx (a refusal: 503 at the connection
 * limit or with no worker to spare), counts as its whole timeout: a health
 * check that failed, however fast the refusal. Returns 0, or -1 with why. */
static int probe_p99(const chaos_run *r, int svc, chaos_route route, double lo, double hi, double *value,
                     char *why, size_t whylen)
{
    double *ms = malloc(((size_t)r->ntimings + 1) * sizeof *ms);
    int n = 0;
    for (int i = 0; ms && i < r->ntimings; i++) {
        const chaos_timing *p = &r->timings[i];
        if (p->svc == svc && p->route == route && p->t >= lo && p->t <= hi)
            ms[n++] = p->status >= 200 && p->status < 300 ? p->ms : (double)CHAOS_PROBE_TIMEOUT_MS;
    }
    if (n == 0) {
        snprintf(why, whylen, "%s", ms ? "no probe of the service was sent in the span" : "out of memory");
        free(ms);
        return -1;
    }
    qsort(ms, (size_t)n, sizeof *ms, by_double);
    *value = ms[(int)(n * 0.99) < n - 1 ? (int)(n * 0.99) : n - 1];
    free(ms);
    return 0;
}

/* <service>.health_p99_ms: the p99 of the poll's GET /health of the service. */
static int measure_health_p99(const chaos_run *r, int svc, double lo, double hi, double *value, char *why,
                              size_t whylen)
{
    return probe_p99(r, svc, CHAOS_ROUTE_HEALTH, lo, hi, value, why, whylen);
}

/* <service>.root_p99_ms: the p99 of the poll's GET / of the service. */
static int measure_root_p99(const chaos_run *r, int svc, double lo, double hi, double *value, char *why,
                            size_t whylen)
{
    return probe_p99(r, svc, CHAOS_ROUTE_ROOT, lo, hi, value, why, whylen);
}

/* The largest of a count the service's /health answers gave in [lo, hi]
 * (busy or in_use, picked by the offset of its chaos_timing member).
 * Returns 0, or -1 with why. */
static int count_max(const chaos_run *r, int svc, size_t member, const char *what, double lo, double hi,
                     double *value, char *why, size_t whylen)
{
    double most = -1;
    for (int i = 0; i < r->ntimings; i++) {
        const chaos_timing *p = &r->timings[i];
        double v = *(const double *)((const char *)p + member);
        if (p->svc == svc && p->t >= lo && p->t <= hi && !isnan(v) && v > most)
            most = v;
    }
    if (most < 0) {
        snprintf(why, whylen, "no GET /health of %s in the span gave %s (a service older than the runner, "
                 "or one that calls no next hop?)", chaos_services[svc].name, what);
        return -1;
    }
    *value = most;
    return 0;
}

/* <service>.busy_max: the most requests holding a worker at once, as /health saw them. */
static int measure_busy_max(const chaos_run *r, int svc, double lo, double hi, double *value, char *why,
                            size_t whylen)
{
    return count_max(r, svc, offsetof(chaos_timing, busy), "workers.busy", lo, hi, value, why, whylen);
}

/* <service>.connections_max: the most next-hop connections out on calls at once. */
static int measure_connections_max(const chaos_run *r, int svc, double lo, double hi, double *value,
                                   char *why, size_t whylen)
{
    return count_max(r, svc, offsetof(chaos_timing, in_use), "workers.chain.in_use", lo, hi, value, why,
                     whylen);
}

/* Whether request q is goodput: a 2xx answer within goodput_ms. */
static bool is_goodput(const chaos_run *r, const chaos_request *q)
{
    return q->status >= 200 && q->status < 300 && q->ms <= r->exp->goodput_ms;
}

/* The tally of the requests sent in [lo, hi): how many, the goodput among
 * them, the 503s and the p99 of their latency (NAN when none). Returns 0,
 * or -1 when out of memory. */
static int span_tally(const chaos_run *r, double lo, double hi, chaos_second *out)
{
    double *lat = malloc(((size_t)r->nreqs + 1) * sizeof *lat);
    if (!lat)
        return -1;
    *out = (chaos_second){ .p99_ms = NAN };
    for (int i = 0; i < r->nreqs; i++) {
        const chaos_request *q = &r->reqs[i];
        if (q->t < lo || q->t >= hi)
            continue;
        lat[out->offered++] = q->ms;
        out->goodput += is_goodput(r, q);
        out->shed += q->status == 503;
    }
    if (out->offered) {
        int n = out->offered, k = (int)(n * 0.99);
        qsort(lat, (size_t)n, sizeof *lat, by_double);
        out->p99_ms = lat[k < n - 1 ? k : n - 1];
    }
    free(lat);
    return 0;
}

/* The tally of [lo, hi), or -1 with why when nothing was sent in it. */
static int span_sent(const chaos_run *r, double lo, double hi, chaos_second *t, char *why, size_t whylen)
{
    if (span_tally(r, lo, hi, t)) {
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    if (t->offered == 0) {
        snprintf(why, whylen, "the load sent no request between %g s and %g s", lo, hi);
        return -1;
    }
    return 0;
}

/* goodput: 2xx answers within goodput_ms per second of [lo, hi). */
static int measure_goodput(const chaos_run *r, int svc, double lo, double hi, double *value, char *why, size_t whylen)
{
    (void)svc;
    chaos_second t;
    if (span_sent(r, lo, hi, &t, why, whylen))
        return -1;
    *value = t.goodput / (hi - lo);
    return 0;
}

/* goodput_ratio: 2xx answers within goodput_ms per request sent in [lo, hi). */
static int measure_goodput_ratio(const chaos_run *r, int svc, double lo, double hi, double *value, char *why,
                                 size_t whylen)
{
    (void)svc;
    chaos_second t;
    if (span_sent(r, lo, hi, &t, why, whylen))
        return -1;
    *value = (double)t.goodput / t.offered;
    return 0;
}

/* p99_ms: the 99th percentile of the latency of the requests sent in [lo, hi). */
static int measure_p99(const chaos_run *r, int svc, double lo, double hi, double *value, char *why, size_t whylen)
{
    (void)svc;
    chaos_second t;
    if (span_sent(r, lo, hi, &t, why, whylen))
        return -1;
    *value = t.p99_ms;
    return 0;
}

/* shed: 503 answers per second of [lo, hi). */
static int measure_shed(const chaos_run *r, int svc, double lo, double hi, double *value, char *why, size_t whylen)
{
    (void)svc;
    chaos_second t;
    if (span_sent(r, lo, hi, &t, why, whylen))
        return -1;
    *value = t.shed / (hi - lo);
    return 0;
}

const chaos_measure chaos_measures[] = {
    { "amplification",
      "calls arriving at the last service per request arriving at the first (their GET /health "
      "requests.arrived)", measure_amplification, false },
    { "duplicates",
      "documents stored beyond one per hop for the requests sent in the span (read from the "
      "database with --mongo)", measure_duplicates, false },
    { "longest_open_s",
      "the longest time in seconds a chain breaker stayed open in one piece (open periods grow "
      "with back-off)", measure_longest_open, false },
    { "health_p99_ms",
      "the p99 in ms of the service's GET /health, timed four times a second (a probe with no answer, "
      "or a refusal, counts as its 2 s timeout)", measure_health_p99, true },
    { "root_p99_ms",
      "the p99 in ms of the service's GET /, timed twice a second (no answer or a refusal: its 2 s timeout)",
      measure_root_p99, true },
    { "busy_max",
      "the most requests holding one of the service's worker threads at once (its /health's "
      "workers.busy)", measure_busy_max, true },
    { "connections_max",
      "the most connections to the service's next hop out on calls at once (its /health's "
      "workers.chain.in_use, at most CHAIN_CONNECTIONS)", measure_connections_max, true },
    { "goodput",
      "2xx answers (whole or degraded) within the hypothesis's goodput_ms (default its p99_ms) per second, "
      "of the requests sent in the span", measure_goodput, false },
    { "goodput_ratio",
      "those answers per request sent in the span (goodput over the offered rate, 0..1)", measure_goodput_ratio, false },
    { "p99_ms",
      "the 99th percentile latency in ms of the requests sent in the span (answered or not)", measure_p99, false },
    { "shed",
      "503 answers per second (the load shedding's refusals) to the requests sent in the span", measure_shed, false },
};
const size_t chaos_nmeasures = sizeof chaos_measures / sizeof chaos_measures[0];

/* The row of name ("amplification", "order.health_p99_ms") into *m and its
 * service into *svc (-1 for a measure of the run). Returns 0, or -1 when it
 * names no row, a per-service row has no known service or another row has one. */
static int measure_named(const char *name, const chaos_measure **m, int *svc)
{
    const char *dot = strchr(name, '.');
    char service[32] = "";
    if (dot)
        snprintf(service, sizeof service, "%.*s", (int)(dot - name), name);
    const char *row = dot ? dot + 1 : name;
    *svc = dot ? chaos_service_index(service) : -1;
    *m = NULL;
    for (size_t i = 0; i < chaos_nmeasures; i++)
        if (strcmp(chaos_measures[i].name, row) == 0)
            *m = &chaos_measures[i];
    if (*m && (*m)->per_service != (dot != NULL))
        *m = NULL;
    if (*m && dot && *svc < 0)
        *m = NULL;
    return *m ? 0 : -1;
}

int chaos_measure_parse(const char *text, const chaos_measure **m, int *svc, chaos_op *op, double *bound)
{
    static const struct { const char *word; chaos_op op; } ops[] = {
        { "<=", CHAOS_LE }, { ">=", CHAOS_GE }, { "==", CHAOS_EQ }, { "<", CHAOS_LT }, { ">", CHAOS_GT },
    };
    char name[64], word[4], rest[2];
    double number;
    *m = NULL;
    if (!text || sscanf(text, " %63[a-z0-9_.] %3[<>=] %lf %1s", name, word, &number, rest) != 3 || !isfinite(number) ||
        measure_named(name, m, svc))
        return -1;
    for (size_t i = 0; *m && i < sizeof ops / sizeof ops[0]; i++)
        if (strcmp(ops[i].word, word) == 0) {
            *op = ops[i].op;
            *bound = number;
            return 0;
        }
    return -1;
}

const char *chaos_measure_names(char *buf, size_t len)
{
    buf[0] = '\0';
    for (size_t i = 0; i < chaos_nmeasures; i++)
        snprintf(buf + strlen(buf), len - strlen(buf), "%s%s%s", i ? ", " : "",
                 chaos_measures[i].per_service ? "<service>." : "", chaos_measures[i].name);
    return buf;
}

bool chaos_op_holds(chaos_op op, double value, double bound)
{
    switch (op) {
    case CHAOS_LE: return value <= bound + 1e-9;
    case CHAOS_LT: return value < bound;
    case CHAOS_GE: return value >= bound - 1e-9;
    case CHAOS_GT: return value > bound;
    case CHAOS_EQ: return fabs(value - bound) <= 1e-9;
    }
    return false;
}

void chaos_amplification_series(const chaos_run *r, double *out, int n)
{
    char why[200];
    for (int i = 0; i < n; i++)
        if (measure_amplification(r, -1, i, i + 1, &out[i], why, sizeof why))
            out[i] = NAN;
}

int chaos_per_second(const chaos_run *r, chaos_second *out, int n)
{
    for (int i = 0; i < n; i++)
        if (span_tally(r, i, i + 1, &out[i]))
            return -1;
    return 0;
}
