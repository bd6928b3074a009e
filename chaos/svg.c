/* svg.c -- timeline.svg: a band per breaker that changed state (the others folded into one line), every request at its latency and in an outcome strip, the retry amplification per second when an expectation bounds it, the load panel (offered load, goodput, shed and p99 per second) when the load ramps or an expectation bounds one of those, the actions as dashed lines labelled with what they did (the fault changes made from outside too), each expectation from its start to its deadline, met or missed.
 *
 * The picture is meant to be read by a student without the journal beside it:
 * breaker states and answer outcomes have colours of their own (a legend says
 * which), every action line says what it did and how much ("shipment: errors
 * on 30% for 60 s"), labels that would collide are stacked in rows, a
 * half-open period is at least MIN_W px wide with a mark per trial call
 * (a failure while half-open, or the close that ends a half-open), each
 * open period carries its length, and the latency axis has ticks.
 */
#include "output.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define W 1180
#define LEFT 270
#define RIGHT 20
#define BAND_H 26
#define BAND_GAP 16         /* room above a band for an open period's length that does not fit on it */
#define HEAD_H 108          /* title, verdict line, the two legend rows */
#define ROW_H 15            /* one row of action labels */
#define LAT_H 160
#define AMP_H 100
#define RATE_H 110          /* the load panel's requests a second */
#define P99_H 80            /* the load panel's p99 per second */
#define LOAD_H (RATE_H + 16 + P99_H)
#define MIN_W 3.0           /* the narrowest state rectangle, so a short half-open shows */
#define CHAR_W 6.4          /* a character's width at font-size 11, roughly, for fitting labels */
/* answer outcomes (and expectations: met, missed) */
#define GREEN "#2e9d4f"
#define ORANGE "#f0a020"
#define RED "#d33b2c"
/* breaker states */
#define CLOSED_C "#b9d3ea"
#define HALF_C "#c2188f"
#define OPEN_C "#1d3f72"
/* the load panel's lines */
#define OFFERED_C "#9a9a9a"
#define GOODPUT_C GREEN
#define SHED_C ORANGE
#define P99_C "#8e44ad"

/* A label of an action line: its text, where it is drawn and in which row. */
typedef struct label {
    double x;               /* the action line's x */
    double x0, x1;          /* the text's extent */
    bool end;               /* anchored at its end (left of the line), near the right edge */
    int row;
    char text[240];
    bool cut;               /* text was shortened to fit; full holds it whole */
    char full[240];
    const char *why;
} label;

/* The picture's layout and scales. */
typedef struct scale {
    double seconds;
    double band_top;        /* y of the first band */
    int nshown;             /* bands drawn (breakers that changed state) */
    int nfolded;            /* lines for the breakers that never changed, one per state they kept */
    double lat_top;
    double max_ms;          /* the latency axis' top, a multiple of lat_step */
    double lat_step;
    label *labels;          /* one per action of the method */
    int nlabels;
    int nrows;
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

/* The colour of a breaker state (never one of the answers' colours). */
static const char *state_colour(const char *state)
{
    const char *s = chaos_plain(state);
    return strcmp(s, "closed") == 0 ? CLOSED_C : strcmp(s, "open") == 0 ? OPEN_C
         : strcmp(s, "half-open") == 0 ? HALF_C : "#999";
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

/* A band's points: its own, or "closed from 0" when it has none. Sets *n. */
static const chaos_point *band_points(const chaos_band *b, int *n)
{
    static const chaos_point closed = { 0, "closed" };
    *n = b && b->n ? b->n : 1;
    return b && b->n ? b->pts : &closed;
}

/* Whether breaker name was ever in another state than its first. */
static bool band_changed(const chaos_run *r, const char *name)
{
    int n;
    const chaos_point *pts = band_points(find_band(r, name), &n);
    for (int k = 1; k < n; k++)
        if (strcmp(chaos_plain(pts[k].state), chaos_plain(pts[0].state)) != 0)
            return true;
    return false;
}

/* The string field key of object o, or NULL. */
static const char *str_of(const cJSON *o, const char *key)
{
    return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, key));
}

/* Writes breaker name's display label into buf: the "label" an event of it
 * carries, else derived from the name ("payment->mongodb" is "payment ->
 * database", "payment-><address>" is "payment -> <the next service>"). */
static void breaker_label(const chaos_run *r, const char *name, char *buf, size_t len)
{
    const cJSON *ev;
    cJSON_ArrayForEach(ev, r->events) {
        const char *l = str_of(ev, "label"), *b = str_of(ev, "breaker");
        if (l && b && strcmp(b, name) == 0) {
            snprintf(buf, len, "%s", l);
            return;
        }
    }
    const char *arrow = strstr(name, "->");
    if (!arrow) {
        snprintf(buf, len, "%s", name);
        return;
    }
    int svclen = (int)(arrow - name);
    char svc[64];
    snprintf(svc, sizeof svc, "%.*s", svclen, name);
    int i = chaos_service_index(svc);
    const char *to = strcmp(arrow + 2, "mongodb") == 0 ? "database"
                   : i >= 0 && chaos_services[i].next[0] ? chaos_services[i].next : arrow + 2;
    snprintf(buf, len, "%s -> %s", svc, to);
}

/* ---- the action labels ------------------------------------------------------------- */

/* Writes an action record's label into buf: its "what", the words act.c's
 * act_describe() gave it when it was carried out (an outside change's own
 * words), else its action and target as they are. */
static void action_words(const cJSON *a, char *buf, size_t len)
{
    const char *what = str_of(a, "what");
    const char *action = str_of(a, "action"), *svc = str_of(a, "service"), *br = str_of(a, "breaker");
    if (what && what[0])
        snprintf(buf, len, "%s", what);
    else
        snprintf(buf, len, "%s %s", action ? action : "?", svc ? svc : br ? br : "");
}

/* Whether label a, in its row, collides with label b: their texts overlap in
 * one row, or (with lines) the line of the one in the upper row, drawn from
 * its label down, crosses the other's text. */
static bool clash(const label *a, const label *b, bool lines)
{
    if (a->row == b->row)
        return a->x0 < b->x1 + 8 && b->x0 < a->x1 + 8;
    const label *up = a->row < b->row ? a : b, *down = a->row < b->row ? b : a;
    return lines && up->x > down->x0 - 4 && up->x < down->x1 + 4 && fabs(up->x - down->x) > 0.5;
}

/* The first row up to rows (a new one) where label i collides with none of
 * the labels before it (with lines or not), or -1. */
static int free_row(label *ls, int i, int rows, bool lines)
{
    for (ls[i].row = 0; ls[i].row <= rows; ls[i].row++) {
        bool any = false;
        for (int k = 0; k < i && !any; k++)
            any = clash(&ls[i], &ls[k], lines);
        if (!any)
            return ls[i].row;
    }
    return -1;
}

/* The margin a label keeps from the picture's left edge. */
#define LABEL_EDGE 4.0

/* Shortens l's text to at most room px, ending it with "..." (the whole
 * text stays in l->full, the label's tooltip). */
static void fit_label(label *l, double room)
{
    size_t keep = room > 4 * CHAR_W ? (size_t)(room / CHAR_W) - 3 : 1;
    if (strlen(l->text) <= keep + 3)
        return;
    snprintf(l->full, sizeof l->full, "%s", l->text);
    snprintf(l->text + keep, sizeof l->text - keep, "...");
    l->cut = true;
}

/* Places each label in the first row where it collides with none placed
 * before, lines included, else in the first where no text overlaps (a label
 * crowded against the right edge may then cross a line); a label that would
 * run past the right edge is drawn to the left of its line, and one that
 * fits on neither side is shortened to the larger side. Returns the number
 * of rows. */
static int place_labels(label *ls, int n)
{
    int rows = 0;
    for (int i = 0; i < n; i++) {
        double right = W - RIGHT - (ls[i].x + 3), left = ls[i].x - 3 - LABEL_EDGE;
        if ((double)strlen(ls[i].text) * CHAR_W > (right > left ? right : left))
            fit_label(&ls[i], right > left ? right : left);
        double w = (double)strlen(ls[i].text) * CHAR_W;
        ls[i].end = ls[i].x + 3 + w > W - RIGHT;
        ls[i].x0 = ls[i].end ? ls[i].x - 3 - w : ls[i].x + 3;
        ls[i].x1 = ls[i].end ? ls[i].x - 3 : ls[i].x + 3 + w;
        if (free_row(ls, i, rows, true) < 0)
            free_row(ls, i, rows, false);
        if (ls[i].row + 1 > rows)
            rows = ls[i].row + 1;
    }
    return rows;
}

/* Makes the labels of the method's actions, and of the fault changes made
 * from outside (curl, the dashboard: "outside" records, in their words),
 * into s. Returns 0, or -1 when out of memory. */
static int make_labels(const chaos_run *r, scale *s)
{
    int n = cJSON_GetArraySize(r->actions);
    s->labels = calloc(n ? (size_t)n : 1, sizeof *s->labels);
    if (!s->labels)
        return -1;
    const cJSON *a;
    cJSON_ArrayForEach(a, r->actions) {
        const char *phase = str_of(a, "phase");
        if (!phase || (strcmp(phase, "method") != 0 && strcmp(phase, "outside") != 0))
            continue;
        label *l = &s->labels[s->nlabels++];
        l->x = X(s, cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(a, "t")));
        l->why = str_of(a, "why");
        action_words(a, l->text, sizeof l->text);
    }
    s->nrows = place_labels(s->labels, s->nlabels);
    return 0;
}

/* ---- the head --------------------------------------------------------------------- */

/* One swatch of the legend at x, y: a rectangle of colour and its words. Returns the next x. */
static int swatch(FILE *f, int x, int y, const char *colour, const char *words)
{
    fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"12\" height=\"12\" fill=\"%s\"/>\n", x, y - 10, colour);
    fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"11\">%s</text>\n", x + 16, y, words);
    return x + 16 + (int)(strlen(words) * CHAR_W) + 18;
}

/* The legend: a row for the breaker states (and the trial marks), a row for
 * the answers (and the expectations). */
static void draw_legend(FILE *f)
{
    int y = 70, x = LEFT;
    fprintf(f, "<g class=\"legend\">\n<text x=\"%d\" y=\"%d\" text-anchor=\"end\" font-size=\"11\" "
            "font-weight=\"bold\">breaker state</text>\n", LEFT - 8, y);
    x = swatch(f, x, y, CLOSED_C, "closed");
    x = swatch(f, x, y, HALF_C, "half-open (trial calls let through)");
    x = swatch(f, x, y, OPEN_C, "open (calls rejected)");
    fprintf(f, "<path d=\"M%d %d l5 -9 l5 9 z\" fill=\"#000\"/><text x=\"%d\" y=\"%d\" font-size=\"11\">"
            "trial call succeeded</text>\n", x, y, x + 14, y);
    x += 14 + (int)(20 * CHAR_W) + 14;
    fprintf(f, "<path d=\"M%d %d l5 -9 l5 9 z\" fill=\"#fff\" stroke=\"#000\"/><text x=\"%d\" y=\"%d\" "
            "font-size=\"11\">trial call failed</text>\n", x, y, x + 14, y);
    y += 20;
    x = LEFT;
    fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\" font-size=\"11\" font-weight=\"bold\">"
            "answer (dots, strip)</text>\n", LEFT - 8, y);
    x = swatch(f, x, y, GREEN, "whole");
    x = swatch(f, x, y, ORANGE, "degraded (200, a hop's fallback)");
    x = swatch(f, x, y, RED, "error");
    fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#333\" stroke-dasharray=\"4 3\"/>"
            "<text x=\"%d\" y=\"%d\" font-size=\"11\">action</text>\n", x, y - 12, x, y + 2, x + 6, y);
    fputs("</g>\n", f);
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
    draw_legend(f);
}

/* ---- the bands -------------------------------------------------------------------- */

/* The run time of an event: its "t" (when the runner read it). */
static double event_t(const cJSON *ev)
{
    return cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(ev, "t"));
}

/* The length in seconds of breaker name's open period that the bands start
 * at t (the service's own clock, from its open event to the next halfOpen or
 * close event), or -1 when the events do not say. */
static double open_length(const chaos_run *r, const char *name, double t)
{
    const cJSON *ev, *opened = NULL;
    double best = 1.0;              /* an open event read at most this far from t */
    cJSON_ArrayForEach(ev, r->events) {
        const char *b = str_of(ev, "breaker"), *kind = str_of(ev, "event");
        if (b && kind && strcmp(b, name) == 0 && strcmp(kind, "open") == 0 && fabs(event_t(ev) - t) < best) {
            best = fabs(event_t(ev) - t);
            opened = ev;
        }
    }
    if (!opened)
        return -1;
    double from = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(opened, "time"));
    for (ev = opened->next; ev; ev = ev->next) {
        const char *b = str_of(ev, "breaker"), *kind = str_of(ev, "event");
        double to = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(ev, "time"));
        if (b && kind && strcmp(b, name) == 0 && (strcmp(kind, "halfOpen") == 0 || strcmp(kind, "close") == 0))
            return to >= from ? (to - from) / 1000 : -1;
    }
    return -1;
}

/* Writes the length of an open period on its rectangle [x, x + w] at band y,
 * or just above it when it does not fit. */
static void draw_open_length(FILE *f, const chaos_run *r, const char *name, const chaos_point *pts, int n, int k,
                             double x, double w, double y, double seconds)
{
    bool ended = k + 1 < n;
    double len = ended ? open_length(r, name, pts[k].t) : -1;
    if (len < 0)
        len = (ended ? pts[k + 1].t : seconds) - pts[k].t;
    char text[40];
    snprintf(text, sizeof text, ended ? "%.1f s" : "%.1f s, still open", len);
    bool fits = (double)strlen(text) * CHAR_W + 6 <= w;
    fprintf(f, "<text class=\"open-length\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"11\" "
            "fill=\"%s\">%s<title>open for %s</title></text>\n", x + w / 2, fits ? y + 17 : y - 3,
            fits ? "#fff" : OPEN_C, text, text);
}

/* A mark per trial call of breaker name at the bottom of its band at y: a
 * failure while half-open (failed), a close event right after half-open
 * (succeeded). */
static void draw_trials(FILE *f, const chaos_run *r, const scale *s, const char *name, double y)
{
    const cJSON *ev;
    bool half = false;      /* the last transition was to half-open */
    cJSON_ArrayForEach(ev, r->events) {
        const char *b = str_of(ev, "breaker"), *kind = str_of(ev, "event"), *state = str_of(ev, "state");
        if (!b || !kind || !state || strcmp(b, name) != 0)
            continue;
        bool failed = strcmp(kind, "failure") == 0 && strcmp(state, "half-open") == 0;
        bool closed = strcmp(kind, "close") == 0 && half;   /* not a forced close */
        if (strcmp(kind, "open") == 0 || strcmp(kind, "halfOpen") == 0 || strcmp(kind, "close") == 0)
            half = strcmp(kind, "halfOpen") == 0;
        if (!failed && !closed)
            continue;
        fprintf(f, "<path class=\"trial\" d=\"M%.1f %.1f l5 -9 l5 9 z\" fill=\"%s\" stroke=\"%s\">"
                "<title>trial call %s at %.1f s</title></path>\n", X(s, event_t(ev)) - 5, y + BAND_H,
                failed ? "#fff" : "#000", failed ? "#000" : "#fff", failed ? "failed" : "succeeded", event_t(ev));
    }
}

/* One band: a rectangle per state (half-open ones drawn last, at least
 * MIN_W wide), the lengths of the open periods, the trial marks. */
static void draw_band(FILE *f, const chaos_run *r, const scale *s, const char *name, double y)
{
    char lab[128];
    breaker_label(r, name, lab, sizeof lab);
    fprintf(f, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">", LEFT - 8, y + 17);
    esc(f, lab);
    fputs("<title>", f);
    esc(f, name);
    fputs("</title></text>\n", f);
    int n;
    const chaos_point *pts = band_points(find_band(r, name), &n);
    for (int pass = 0; pass < 2; pass++) {
        for (int k = 0; k < n; k++) {
            bool half = strcmp(chaos_plain(pts[k].state), "half-open") == 0;
            if (half != (pass == 1))
                continue;
            double t = pts[k].t, t1 = k + 1 < n ? pts[k + 1].t : s->seconds;
            double x = X(s, t), w = X(s, t1) - x;
            if (w < MIN_W)
                w = MIN_W, x = x + MIN_W > W - RIGHT ? W - RIGHT - MIN_W : x;
            fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%d\" fill=\"%s\"><title>", x, y, w,
                    BAND_H, state_colour(pts[k].state));
            esc(f, name);
            fprintf(f, " %s from %.1f s</title></rect>\n", pts[k].state, t);
            if (strcmp(chaos_plain(pts[k].state), "open") == 0)
                draw_open_length(f, r, name, pts, n, k, x, w, y, s->seconds);
        }
    }
    draw_trials(f, r, s, name, y);
}

/* A band per breaker that changed state, then one line naming the others
 * by the state they kept. */
static void draw_bands(FILE *f, const chaos_run *r, const scale *s)
{
    int shown = 0;
    for (int i = 0; i < r->nrefs; i++)
        if (band_changed(r, r->ref_names[i]))
            draw_band(f, r, s, r->ref_names[i], s->band_top + shown++ * (BAND_H + BAND_GAP));
    if (!s->nfolded)
        return;
    double y = s->band_top + shown * (BAND_H + BAND_GAP) + 4;
    for (int st = 0; st < 3; st++) {
        bool any = false;
        for (int i = 0; i < r->nrefs; i++) {
            const char *name = r->ref_names[i];
            int n;
            const chaos_point *pts = band_points(find_band(r, name), &n);
            if (band_changed(r, name) || strcmp(chaos_plain(pts[0].state), chaos_states[st]) != 0)
                continue;
            if (!any)
                fprintf(f, "<rect x=\"%d\" y=\"%.1f\" width=\"%d\" height=\"15\" fill=\"#fff\"/>\n"
                        "<text class=\"unchanged\" x=\"%d\" y=\"%.1f\" fill=\"#444\">"
                        "<tspan font-weight=\"bold\">unchanged, %s throughout:</tspan>", LEFT, y - 11, W - LEFT - RIGHT,
                        LEFT, y, chaos_states[st]);
            char lab[128];
            breaker_label(r, name, lab, sizeof lab);
            fprintf(f, "%s<tspan>", any ? ", " : " ");
            esc(f, lab);
            fputs("<title>", f);
            esc(f, name);
            fprintf(f, " %s throughout</title></tspan>", chaos_states[st]);
            any = true;
        }
        if (any) {
            fputs("</text>\n", f);
            y += 16;
        }
    }
}

/* ---- the requests, the amplification ---------------------------------------------- */

/* A round step (1, 2, 2.5 or 5 times a power of ten) that cuts [0, top] into at most 5 parts. */
static double nice_step(double top)
{
    double p = pow(10, floor(log10(top / 5)));
    static const double m[] = { 1, 2, 2.5, 5, 10 };
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++)
        if (top / (m[i] * p) <= 5)
            return m[i] * p;
    return 10 * p;
}

/* The ticks of a vertical axis from 0 to top by step at [y0, y0 + h]: a
 * light line across the plot and the number left of it. */
static void draw_ticks(FILE *f, double y0, double h, double top, double step)
{
    for (double v = 0; v <= top + step / 1000; v += step) {
        double y = y0 + h - v / top * h;
        fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#eee\"/>\n", LEFT, y, W - RIGHT, y);
        fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#999\"/>\n", LEFT - 4, y, LEFT, y);
        fprintf(f, "<text class=\"tick\" x=\"%d\" y=\"%.1f\" text-anchor=\"end\" font-size=\"10\" fill=\"#666\">"
                "%g</text>\n", LEFT - 6, y + 3.5, v);
    }
}

/* Every request as a dot at its latency, then as a mark in the outcome strip. */
static void draw_requests(FILE *f, const chaos_run *r, const scale *s, double out_top)
{
    fprintf(f, "<text x=\"%d\" y=\"%.0f\" text-anchor=\"end\">latency (ms)</text>\n", LEFT - 40,
            s->lat_top + LAT_H / 2 + 4);
    draw_ticks(f, s->lat_top, LAT_H, s->max_ms, s->lat_step);
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
    fprintf(f, "<text x=\"%d\" y=\"%.0f\" text-anchor=\"end\">amplification</text>\n", LEFT - 30, y0 + 12);
    fprintf(f, "<text x=\"%d\" y=\"%.0f\" text-anchor=\"end\" fill=\"#666\">calls at %s per</text>\n", LEFT - 30,
            y0 + 28, chaos_services[CHAOS_NSVC - 1].name);
    fprintf(f, "<text x=\"%d\" y=\"%.0f\" text-anchor=\"end\" fill=\"#666\">request at %s</text>\n", LEFT - 30,
            y0 + 44, chaos_services[0].name);
    draw_ticks(f, y0, AMP_H, top, top <= 5 ? 1 : nice_step(top));
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

/* ---- the load panel: offered load, goodput, shed and p99 per second ---------------- */

/* Whether the picture has the load panel: the load ramps, or an
 * expectation bounds one of the load's measures. */
static bool load_panel_shown(const chaos_run *r)
{
    static const char *const load_measures[] = { "goodput", "goodput_ratio", "p99_ms", "shed" };
    if (r->nper_second == 0)
        return false;
    if (r->exp->ramp_to != r->exp->rate)
        return true;
    for (int k = 0; k < r->nexpects; k++)
        for (size_t i = 0; r->expects[k].step->measure && i < sizeof load_measures / sizeof load_measures[0]; i++)
            if (strcmp(r->expects[k].step->measure->name, load_measures[i]) == 0)
                return true;
    return false;
}

/* The y of v in a plot of [0, top] at [y0, y0 + h] (clamped to top). */
static double VY(double y0, double h, double top, double v)
{
    return y0 + h - (v < top ? v : top) / top * h;
}

/* One value a second as a polyline through each second's middle in the plot
 * [y0, y0 + h] over [0, top], broken where a value is NAN, each point with
 * its title ("12-13 s: goodput 57 requests/s"), width px wide, dashed when dash. */
static void draw_series(FILE *f, const scale *s, double y0, double h, double top, const double *v, int n,
                        const char *colour, const char *what, const char *unit, int width, bool dash)
{
    bool open = false;
    for (int i = 0; i < n; i++) {
        if (isnan(v[i])) {
            if (open)
                fputs("\"/>\n", f);
            open = false;
            continue;
        }
        if (!open)
            fprintf(f, "<polyline class=\"%s\" fill=\"none\" stroke=\"%s\" stroke-width=\"%d\"%s points=\"", what,
                    colour, width, dash ? " stroke-dasharray=\"5 3\"" : "");
        fprintf(f, "%s%.1f,%.1f", open ? " " : "", X(s, i + 0.5), VY(y0, h, top, v[i]));
        open = true;
    }
    if (open)
        fputs("\"/>\n", f);
    for (int i = 0; i < n; i++)
        if (!isnan(v[i]))
            fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2\" fill=\"%s\"><title>%d-%d s: %s %.0f %s</title>"
                    "</circle>\n", X(s, i + 0.5), VY(y0, h, top, v[i]), colour, i, i + 1, what, v[i], unit);
}

/* Each expectation on measure name (of the plot [y0, y0 + h] over
 * [0, top]) as a dashed line at its bound across its span, green when met,
 * red when missed (a goodput_ratio has no line: it is a share, not a rate). */
static void draw_bounds(FILE *f, const chaos_run *r, const scale *s, double y0, double h, double top,
                        const char *name)
{
    for (int k = 0; k < r->nexpects; k++) {
        const chaos_step *st = r->expects[k].step;
        if (!st->measure || strcmp(st->measure->name, name) != 0)
            continue;
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-dasharray=\"6 3\">"
                "<title>", X(s, st->at), VY(y0, h, top, st->bound), X(s, st->at + st->within),
                VY(y0, h, top, st->bound), r->expects[k].met ? GREEN : RED);
        esc(f, st->expect);
        fputs("</title></line>\n", f);
    }
}

/* The top of a plot of values v (at least floor), a multiple of its tick step *step. */
static double plot_top(const double *v, int n, double floor_, double *step)
{
    double top = floor_;
    for (int i = 0; i < n; i++)
        if (!isnan(v[i]) && v[i] > top)
            top = v[i];
    *step = nice_step(top);
    return ceil(top / *step) * *step;
}

/* The load panel at y0: requests a second (offered, goodput, shed when any,
 * the asked rate dashed) over the load, then the p99 of each second's
 * requests, each plot with its axis ticks, its words and a legend on the
 * left, and the expectations' bounds. Returns -1 when out of memory. */
static int draw_load_panel(FILE *f, const chaos_run *r, const scale *s, double y0)
{
    int n = r->nper_second;
    double *v = malloc((size_t)n * 5 * sizeof *v + 1);
    if (!v)
        return -1;
    double *offered = v, *goodput = v + n, *shed = v + 2 * n, *p99 = v + 3 * n, *asked = v + 4 * n;
    int sheds = 0;
    for (int i = 0; i < n; i++) {
        offered[i] = r->per_second[i].offered;
        goodput[i] = r->per_second[i].goodput;
        shed[i] = r->per_second[i].shed;
        sheds += r->per_second[i].shed;
        p99[i] = r->per_second[i].p99_ms;
        asked[i] = chaos_rate_at(r->exp, i + 0.5);
    }
    double rstep, top = plot_top(offered, n, 10, &rstep);
    top = fmax(top, plot_top(asked, n, 10, &rstep));
    rstep = nice_step(top);
    top = ceil(top / rstep) * rstep;
    fputs("<g class=\"load-panel\">\n", f);
    fprintf(f, "<text x=\"%d\" y=\"%.0f\" text-anchor=\"end\">load (requests/s)</text>\n", LEFT - 36, y0 + 12);
    int ly = (int)y0 + 30;
    swatch(f, LEFT - 190, ly, OFFERED_C, "offered (sent)");
    swatch(f, LEFT - 190, ly + 16, GOODPUT_C, "goodput (2xx in time)");
    if (sheds)
        swatch(f, LEFT - 190, ly + 32, SHED_C, "shed (503)");
    fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"10\" fill=\"#666\">in time: within %g ms</text>\n",
            LEFT - 190, ly + (sheds ? 48 : 32), r->exp->goodput_ms);
    draw_ticks(f, y0, RATE_H, top, rstep);
    fprintf(f, "<rect x=\"%d\" y=\"%.0f\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#ccc\"/>\n", LEFT, y0,
            W - LEFT - RIGHT, RATE_H);
    if (r->exp->capacity > 0)
        fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#999\" stroke-dasharray=\"2 3\">"
                "<title>capacity: %g requests a second</title></line>\n", LEFT, VY(y0, RATE_H, top, r->exp->capacity),
                W - RIGHT, VY(y0, RATE_H, top, r->exp->capacity), r->exp->capacity);
    draw_series(f, s, y0, RATE_H, top, asked, n, OFFERED_C, "asked", "requests/s", 1, true);
    draw_series(f, s, y0, RATE_H, top, offered, n, OFFERED_C, "offered", "requests/s", 5, false);
    if (sheds)
        draw_series(f, s, y0, RATE_H, top, shed, n, SHED_C, "shed", "503/s", 2, false);
    draw_series(f, s, y0, RATE_H, top, goodput, n, GOODPUT_C, "goodput", "requests/s", 2, false);
    draw_bounds(f, r, s, y0, RATE_H, top, "goodput");
    draw_bounds(f, r, s, y0, RATE_H, top, "shed");
    double py = y0 + RATE_H + 16, pstep, ptop = plot_top(p99, n, 10, &pstep);
    for (int k = 0; k < r->nexpects; k++)   /* a p99 bound in sight */
        if (r->expects[k].step->measure && strcmp(r->expects[k].step->measure->name, "p99_ms") == 0 &&
            r->expects[k].step->bound > ptop) {
            pstep = nice_step(r->expects[k].step->bound);
            ptop = ceil(r->expects[k].step->bound / pstep) * pstep;
        }
    fprintf(f, "<text x=\"%d\" y=\"%.0f\" text-anchor=\"end\">p99 (ms)</text>\n", LEFT - 36, py + 12);
    swatch(f, LEFT - 190, (int)py + 30, P99_C, "p99 of each second");
    draw_ticks(f, py, P99_H, ptop, pstep);
    fprintf(f, "<rect x=\"%d\" y=\"%.0f\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#ccc\"/>\n", LEFT, py,
            W - LEFT - RIGHT, P99_H);
    draw_series(f, s, py, P99_H, ptop, p99, n, P99_C, "p99", "ms", 2, false);
    draw_bounds(f, r, s, py, P99_H, ptop, "p99_ms");
    fputs("</g>\n", f);
    free(v);
    return 0;
}

/* ---- the axis, the actions, the expectations ---------------------------------------- */

/* The time axis: a light line and the seconds every tenth of the load or so
 * (drawn first, under everything). */
static void draw_time_axis(FILE *f, const scale *s, double ax)
{
    int secs = (int)s->seconds, step = secs / 10 > 1 ? secs / 10 : 1;
    for (int t = 0; t <= secs; t += step) {
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.0f\" stroke=\"#eee\"/>\n", X(s, t),
                s->band_top - 6, X(s, t), ax - 8);
        fprintf(f, "<text x=\"%.1f\" y=\"%.0f\" text-anchor=\"middle\" fill=\"#444\">%d s</text>\n", X(s, t),
                ax + 4, t);
    }
}

/* The actions: each method action's line from its label's row down, the
 * label in that row (rollbacks at the right edge, unlabelled). */
static void draw_actions(FILE *f, const chaos_run *r, const scale *s, double ax)
{
    for (int i = 0; i < s->nlabels; i++) {
        const label *l = &s->labels[i];
        double y = HEAD_H + l->row * ROW_H;
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.0f\" stroke=\"#333\" stroke-dasharray=\"4 3\"/>\n",
                l->x, y - 10, l->x, ax - 8);
        fprintf(f, "<text class=\"action\" x=\"%.1f\" y=\"%.1f\" font-size=\"11\" fill=\"#222\"%s>", l->end ? l->x1 : l->x0,
                y, l->end ? " text-anchor=\"end\"" : "");
        esc(f, l->text);
        if (l->why || l->cut) {
            fputs("<title>", f);
            esc(f, l->cut ? l->full : "");
            fputs(l->cut && l->why ? ": " : "", f);
            esc(f, l->why ? l->why : "");
            fputs("</title>", f);
        }
        fputs("</text>\n", f);
    }
    const cJSON *a;
    cJSON_ArrayForEach(a, r->actions) {
        const char *phase = str_of(a, "phase");
        if (phase && (strcmp(phase, "method") == 0 || strcmp(phase, "outside") == 0))
            continue;
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.0f\" stroke=\"#333\" stroke-dasharray=\"4 3\"/>\n",
                X(s, s->seconds), s->band_top - 6, X(s, s->seconds), ax - 8);
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

/* Lays the picture out: the label rows, the bands shown, the latency axis. */
static void lay_out(const chaos_run *r, scale *s)
{
    s->band_top = HEAD_H + s->nrows * ROW_H + BAND_GAP;
    bool kept[3] = { false, false, false };
    for (int i = 0; i < r->nrefs; i++) {
        int n;
        const chaos_point *pts = band_points(find_band(r, r->ref_names[i]), &n);
        if (band_changed(r, r->ref_names[i]))
            s->nshown++;
        for (int st = 0; st < 3 && !band_changed(r, r->ref_names[i]); st++)
            kept[st] |= strcmp(chaos_plain(pts[0].state), chaos_states[st]) == 0;
    }
    for (int st = 0; st < 3; st++)
        s->nfolded += kept[st];
    double top = 100;
    for (int i = 0; i < r->nreqs; i++)
        if (r->reqs[i].ms > top)
            top = r->reqs[i].ms;
    s->lat_step = nice_step(top);
    s->max_ms = ceil(top / s->lat_step) * s->lat_step;
    s->lat_top = s->band_top + s->nshown * (BAND_H + BAND_GAP) + s->nfolded * 16 + 14;
}

int chaos_svg_write(const chaos_run *r, char *err, size_t errlen)
{
    scale s = { .seconds = r->exp->seconds };
    if (make_labels(r, &s)) {
        snprintf(err, errlen, "%s/timeline.svg: out of memory", r->out);
        return -1;
    }
    lay_out(r, &s);
    double amp_top = s.lat_top + LAT_H + 20;
    double load_top = (r->namplification ? amp_top + AMP_H + 20 : amp_top) + 10;
    bool panel = load_panel_shown(r);
    double out_top = panel ? load_top + LOAD_H + 30 : r->namplification ? amp_top + AMP_H + 30
                                                                         : s.lat_top + LAT_H + 30;
    double ax = out_top + 34;
    int h = (int)out_top + 40 + 70 + 20 * r->nexpects;
    char path[1100];
    snprintf(path, sizeof path, "%s/timeline.svg", r->out);
    FILE *f = fopen(path, "w");
    if (!f) {
        snprintf(err, errlen, "%s: cannot be written (%s)", path, strerror(errno));
        free(s.labels);
        return -1;
    }
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\" "
            "font-size=\"12\">\n<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n", W, h, W, h);
    draw_head(f, r);
    draw_time_axis(f, &s, ax);
    draw_bands(f, r, &s);
    draw_requests(f, r, &s, out_top);
    if (r->namplification)
        draw_amplification(f, r, &s, amp_top);
    if (panel && draw_load_panel(f, r, &s, load_top)) {
        fclose(f);
        free(s.labels);
        snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    draw_actions(f, r, &s, ax);
    draw_expectations(f, r, &s, ax + 24);
    fputs("</svg>\n", f);
    free(s.labels);
    if (ferror(f) | fclose(f)) {
        snprintf(err, errlen, "%s: cannot be written (%s)", path, strerror(errno));
        return -1;
    }
    return 0;
}
