/* svg.c -- timeline.svg: a band per breaker coloured by state, every request at its latency and in an outcome strip, the retry amplification per second when an expectation bounds it, the actions as dashed lines (with the fault changes made from outside), each expectation from its start to its deadline, met or missed. */
#include "output.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define W 1180
#define LEFT 270
#define RIGHT 20
#define BAND_H 26
#define TOP 96
#define LAT_H 160
#define AMP_H 100
#define GREEN "#2e9d4f"
#define ORANGE "#f0a020"
#define RED "#d33b2c"

/* The picture's scales. */
typedef struct scale {
    double seconds;
    double lat_top;
    double max_ms;
} scale;

/* The x of time t (clamped to the load). */
static double X(const scale *s, double t)
{
    double c = t < 0 ? 0 : t > s->seconds ? s->seconds : t;
    return LEFT + c / s->seconds * (W - LEFT - RIGHT);
}

/* The y of a latency in ms (clamped to the largest). */
static double Y(const scale *s, double ms)
{
    return s->lat_top + LAT_H - (ms < s->max_ms ? ms : s->max_ms) / s->max_ms * LAT_H;
}

/* Writes text with &, <, > and " escaped. */
static void esc(FILE *f, const char *text)
{
    for (const char *p = text ? text : ""; *p; p++) {
        switch (*p) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*p, f);
        }
    }
}

/* The colour of a breaker state. */
static const char *state_colour(const char *state)
{
    const char *s = chaos_plain(state);
    return strcmp(s, "closed") == 0 ? GREEN : strcmp(s, "open") == 0 ? RED
         : strcmp(s, "half-open") == 0 ? ORANGE : "#999";
}

/* The colour of a request's outcome: whole, degraded (200), error. */
static const char *outcome_colour(const chaos_request *q)
{
    return q->whole ? GREEN : q->status == 200 ? ORANGE : RED;
}

/* The band of breaker name, or NULL. */
static const chaos_band *find_band(const chaos_run *r, const char *name)
{
    for (int i = 0; i < r->nbands; i++)
        if (strcmp(r->bands[i].name, name) == 0)
            return &r->bands[i];
    return NULL;
}

/* The title, the verdict line and the legend. */
static void draw_head(FILE *f, const chaos_run *r)
{
    const chaos_stored *st = &r->stored;
    fputs("<text x=\"270\" y=\"24\" font-size=\"17\" font-weight=\"bold\">", f);
    esc(f, r->exp->title);
    fprintf(f, "</text>\n<text x=\"270\" y=\"44\" fill=\"#444\">verdict: %s; hypothesis before %s, after %s; "
            "%d requests", r->passed ? "PASSED" : "FAILED", r->probes[0].ok ? "held" : "NOT held",
            r->probes[1].ok ? "held" : "NOT held", r->nreqs);
    if (st->asked && st->result < 0)
        fputs("; documents stored: SKIPPED (no database)", f);
    else if (st->asked)
        fprintf(f, "; documents stored: %d/%d%s", st->found, st->documents, st->result ? "" : " (NOT held)");
    fputs("</text>\n", f);
    static const char *const labels[3][2] = { { "breaker closed / whole answer", GREEN },
                                              { "half-open / degraded answer", ORANGE },
                                              { "open / error answer", RED } };
    for (int k = 0; k < 3; k++) {
        fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"10\" height=\"10\" fill=\"%s\"/>\n", LEFT + k * 220,
                TOP - 42, labels[k][1]);
        fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"11\">%s</text>\n", LEFT + k * 220 + 14, TOP - 33,
                labels[k][0]);
    }
}

/* One band per breaker of the stack, a rectangle per state. */
static void draw_bands(FILE *f, const chaos_run *r, const scale *s)
{
    for (int i = 0; i < r->nrefs; i++) {
        const char *name = r->ref_names[i];
        int y = TOP + i * (BAND_H + 8);
        fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">", LEFT - 8, y + 17);
        esc(f, name);
        fputs("</text>\n", f);
        const chaos_band *b = find_band(r, name);
        static const chaos_point closed = { 0, "closed" };
        const chaos_point *pts = b && b->n ? b->pts : &closed;
        int n = b && b->n ? b->n : 1;
        for (int k = 0; k < n; k++) {
            double t = pts[k].t, t1 = k + 1 < n ? pts[k + 1].t : s->seconds;
            double x = X(s, t), w = X(s, t1) - x;
            fprintf(f, "<rect x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"%s\"><title>", x, y,
                    w > 1.0 ? w : 1.0, BAND_H, state_colour(pts[k].state));
            esc(f, name);
            fprintf(f, " %s from %.1f s</title></rect>\n", pts[k].state, t);
        }
    }
}

/* Every request as a dot at its latency, then as a mark in the outcome strip. */
static void draw_requests(FILE *f, const chaos_run *r, const scale *s, double out_top)
{
    fprintf(f, "<text x=\"%d\" y=\"%.0f\" text-anchor=\"end\">latency (ms)</text>\n", LEFT - 8, s->lat_top + 12);
    fprintf(f, "<text x=\"%d\" y=\"%.0f\" text-anchor=\"end\" fill=\"#666\">max %.0f</text>\n", LEFT - 8,
            s->lat_top + 28, s->max_ms);
    fprintf(f, "<rect x=\"%d\" y=\"%.0f\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#ccc\"/>\n", LEFT,
            s->lat_top, W - LEFT - RIGHT, LAT_H);
    for (int i = 0; i < r->nreqs; i++)
        fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.2\" fill=\"%s\"/>\n", X(s, r->reqs[i].t),
                Y(s, r->reqs[i].ms), outcome_colour(&r->reqs[i]));
    fprintf(f, "<text x=\"%d\" y=\"%.0f\" text-anchor=\"end\">answers</text>\n", LEFT - 8, out_top + 14);
    for (int i = 0; i < r->nreqs; i++)
        fprintf(f, "<rect x=\"%.1f\" y=\"%.0f\" width=\"2\" height=\"20\" fill=\"%s\"/>\n", X(s, r->reqs[i].t),
                out_top, outcome_colour(&r->reqs[i]));
}

/* The amplification of each second as a line over [0, top], with a dashed
 * line at 1 (no retries) and at each amplification expectation's bound,
 * across its span. */
static void draw_amplification(FILE *f, const chaos_run *r, const scale *s, double y0)
{
    double top = 3;
    for (int i = 0; i < r->namplification; i++)
        if (!isnan(r->amplification[i]) && r->amplification[i] > top)
            top = ceil(r->amplification[i]);
#define AY(v) (y0 + AMP_H - ((v) < top ? (v) : top) / top * AMP_H)
    fprintf(f, "<text x=\"%d\" y=\"%.0f\" text-anchor=\"end\">amplification</text>\n", LEFT - 8, y0 + 12);
    fprintf(f, "<text x=\"%d\" y=\"%.0f\" text-anchor=\"end\" fill=\"#666\">calls at %s per request "
            "at %s</text>\n", LEFT - 8, y0 + 28, chaos_services[CHAOS_NSVC - 1].name, chaos_services[0].name);
    fprintf(f, "<text x=\"%d\" y=\"%.0f\" text-anchor=\"end\" fill=\"#666\">max %.0f</text>\n", LEFT - 8,
            y0 + 44, top);
    fprintf(f, "<rect x=\"%d\" y=\"%.0f\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#ccc\"/>\n", LEFT, y0,
            W - LEFT - RIGHT, AMP_H);
    fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#999\" stroke-dasharray=\"2 3\">"
            "<title>1: one call per request, no retries</title></line>\n", LEFT, AY(1.0), W - RIGHT, AY(1.0));
    for (int k = 0; k < r->nexpects; k++) {
        const chaos_step *st = r->expects[k].step;
        if (!st->measure || strcmp(st->measure->name, "amplification") != 0)
            continue;
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-dasharray=\"6 3\">"
                "<title>", X(s, st->at), AY(st->bound), X(s, st->at + st->within), AY(st->bound),
                r->expects[k].met ? GREEN : RED);
        esc(f, st->expect);
        fputs("</title></line>\n", f);
    }
    bool open = false;
    for (int i = 0; i < r->namplification; i++) {
        double v = r->amplification[i];
        if (isnan(v)) {
            if (open)
                fputs("\"/>\n", f);
            open = false;
            continue;
        }
        fprintf(f, "%s%.1f,%.1f", open ? " " : "<polyline fill=\"none\" stroke=\"#3060c0\" stroke-width=\"2\" points=\"",
                X(s, i + 0.5), AY(v));
        open = true;
    }
    if (open)
        fputs("\"/>\n", f);
    for (int i = 0; i < r->namplification; i++)
        if (!isnan(r->amplification[i]))
            fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\" fill=\"#3060c0\"><title>%d-%d s: %.2f</title>"
                    "</circle>\n", X(s, i + 0.5), AY(r->amplification[i]), i, i + 1, r->amplification[i]);
#undef AY
}

/* The time axis and the actions (rollbacks at the right edge, unlabelled). */
static void draw_axis_actions(FILE *f, const chaos_run *r, const scale *s, double ax)
{
    int secs = (int)s->seconds, step = secs / 10 > 1 ? secs / 10 : 1;
    for (int t = 0; t <= secs; t += step) {
        fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%.0f\" stroke=\"#eee\"/>\n", X(s, t), TOP - 6,
                X(s, t), ax - 8);
        fprintf(f, "<text x=\"%.1f\" y=\"%.0f\" text-anchor=\"middle\" fill=\"#444\">%d s</text>\n", X(s, t),
                ax + 4, t);
    }
    const cJSON *a;
    cJSON_ArrayForEach(a, r->actions) {
        const char *phase = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(a, "phase"));
        const char *action = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(a, "action"));
        const char *svc = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(a, "service"));
        const char *br = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(a, "breaker"));
        bool method = phase && strcmp(phase, "method") == 0;
        /* a fault changed from outside (curl, the dashboard) or ended by itself: at its time, in its words */
        const char *outside = phase && strcmp(phase, "outside") == 0
            ? cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(a, "what")) : NULL;
        double x = method || outside ? X(s, cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(a, "t")))
                                     : X(s, s->seconds);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%.0f\" stroke=\"#333\" stroke-dasharray=\"4 3\"/>\n",
                x, TOP - 12, x, ax - 8);
        if (outside) {
            fprintf(f, "<text x=\"%.1f\" y=\"%d\" fill=\"#333\" class=\"outside\">", x + 3, TOP - 14);
            esc(f, outside);
            fputs("</text>\n", f);
        } else if (method) {
            fprintf(f, "<text x=\"%.1f\" y=\"%d\" fill=\"#333\">", x + 3, TOP - 14);
            esc(f, action);
            if (svc || br) {
                fputc(' ', f);
                esc(f, svc ? svc : br);
            }
            fputs("</text>\n", f);
        }
    }
}

/* Each expectation as a bar from its start to its deadline, a dot where it was met. */
static void draw_expectations(FILE *f, const chaos_run *r, const scale *s, double ey)
{
    fprintf(f, "<text x=\"%d\" y=\"%.0f\" font-weight=\"bold\">expectations</text>\n", LEFT, ey);
    for (int k = 0; k < r->nexpects; k++) {
        const chaos_expectation *x = &r->expects[k];
        double y = ey + 14 + k * 20;
        const char *colour = x->met ? GREEN : RED;
        double x0 = X(s, x->step->at), x1 = X(s, x->step->at + x->step->within);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.0f\" x2=\"%.1f\" y2=\"%.0f\" stroke=\"%s\" stroke-width=\"4\"/>\n",
                x0, y, x1, y, colour);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.0f\" x2=\"%.1f\" y2=\"%.0f\" stroke=\"%s\" stroke-width=\"2\"/>\n",
                x1, y - 7, x1, y + 7, colour);
        if (x->met)
            fprintf(f, "<circle cx=\"%.1f\" cy=\"%.0f\" r=\"5\" fill=\"%s\"/>\n", X(s, x->met_at), y, colour);
        fprintf(f, "<text x=\"%d\" y=\"%.0f\" text-anchor=\"end\" fill=\"%s\">", LEFT - 8, y + 4, colour);
        if (x->step->measure) {
            esc(f, x->step->expect);
            if (x->unmeasured[0])
                fputs(": not measured</text>\n", f);
            else
                fprintf(f, ": %s (%.2f)</text>\n", x->met ? "met" : "MISSED", x->value);
            continue;
        }
        esc(f, x->step->breaker);
        fputc(' ', f);
        esc(f, x->step->expect);
        fprintf(f, " within %g s: %s</text>\n", x->step->within, x->met ? "met" : "MISSED");
    }
}

int chaos_svg_write(const chaos_run *r, char *err, size_t errlen)
{
    scale s = { .seconds = r->exp->seconds, .max_ms = 100 };
    s.lat_top = TOP + r->nrefs * (BAND_H + 8) + 30;
    for (int i = 0; i < r->nreqs; i++)
        if (r->reqs[i].ms > s.max_ms)
            s.max_ms = r->reqs[i].ms;
    double amp_top = s.lat_top + LAT_H + 20;
    double out_top = r->namplification ? amp_top + AMP_H + 30 : s.lat_top + LAT_H + 30;
    double ax = out_top + 34;
    int h = (int)out_top + 40 + 70 + 20 * r->nexpects;
    char path[1100];
    snprintf(path, sizeof path, "%s/timeline.svg", r->out);
    FILE *f = fopen(path, "w");
    if (!f) {
        snprintf(err, errlen, "%s: cannot be written (%s)", path, strerror(errno));
        return -1;
    }
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\" "
            "font-size=\"12\">\n<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n", W, h, W, h);
    draw_head(f, r);
    draw_bands(f, r, &s);
    draw_requests(f, r, &s, out_top);
    if (r->namplification)
        draw_amplification(f, r, &s, amp_top);
    draw_axis_actions(f, r, &s, ax);
    draw_expectations(f, r, &s, ax + 24);
    fputs("</svg>\n", f);
    if (ferror(f) | fclose(f)) {
        snprintf(err, errlen, "%s: cannot be written (%s)", path, strerror(errno));
        return -1;
    }
    return 0;
}
