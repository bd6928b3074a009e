/* helpers.h -- shared fixtures of the library's unit tests: a manual clock, a
 * scripted action whose outcome and latency the test chooses, and an event
 * recorder. Every test drives time by hand; none sleeps.
 */
#ifndef CB_TEST_HELPERS_H
#define CB_TEST_HELPERS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cb.h"

/* What one call of scripted_action does: advance the clock, then return rc. */
typedef struct step {
    int rc;                 /* 0 = success */
    int64_t latency_ms;     /* clock advance during the call */
    void *value;            /* result on success */
} step;

typedef struct fixture {
    cb_manual_clock *mc;
    cb_breaker *b;
    cb_options o;
    int calls;              /* actions run */
    int kinds[CB_EV_COUNT]; /* events seen per kind */
    cb_event_kind seq[256]; /* order of events (first 256) */
    int nseq;
    int fallback_reason, fallback_action_rc, fallbacks;
} fixture;

static fixture *current_fixture;

static inline int scripted_action(const cb_call *call, void **result)
{
    const step *s = call->arg;
    fixture *f = call->user;
    f->calls++;
    if (s && s->latency_ms)
        cb_manual_clock_advance_ms(f->mc, s->latency_ms);
    if (s && s->rc == 0)
        *result = s->value;
    return s ? s->rc : 0;
}

static inline void recorder(cb_breaker *b, const cb_event *ev, void *ctx)
{
    (void)b;
    fixture *f = ctx; /* listeners may run on several threads at once */
    __atomic_fetch_add(&f->kinds[ev->kind], 1, __ATOMIC_RELAXED);
    int at = __atomic_fetch_add(&f->nseq, 1, __ATOMIC_RELAXED);
    if (at < 256)
        f->seq[at] = ev->kind;
    else
        __atomic_store_n(&f->nseq, 256, __ATOMIC_RELAXED);
}

static inline int fallback_value(void *arg, int reason, int action_rc, void **result, void *user)
{
    (void)arg;
    fixture *f = user;
    f->fallbacks++;
    f->fallback_reason = reason;
    f->fallback_action_rc = action_rc;
    *result = (void *)"fallback";
    return 0;
}

/* Options with a manual clock and the scripted action; the test adjusts them. */
static inline fixture *fixture_new(void)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->mc = cb_manual_clock_new(1000000000LL);
    assert_non_null(f->mc);
    cb_options_init(&f->o);
    f->o.name = "test";
    f->o.action = scripted_action;
    f->o.user = f;
    f->o.clock = cb_manual_clock_get(f->mc);
    current_fixture = f;
    return f;
}

/* Creates the breaker from f->o and records every event. */
static inline cb_breaker *fixture_start(fixture *f)
{
    assert_int_equal(cb_create(&f->o, &f->b), CB_OK);
    assert_true(cb_on(f->b, CB_EV_ALL, recorder, f) > 0);
    return f->b;
}

static inline void fixture_free(fixture *f)
{
    cb_destroy(f->b);
    cb_manual_clock_free(f->mc);
    free(f);
}

static const step OK_STEP = { 0, 0, NULL };
static const step FAIL_STEP = { 7, 0, NULL };

static inline int fire_step(fixture *f, const step *s)
{
    return cb_fire(f->b, (void *)s, NULL);
}

static inline void fire_n(fixture *f, const step *s, int n, int expect)
{
    for (int i = 0; i < n; i++)
        assert_int_equal(fire_step(f, s), expect);
}

static inline cb_stats stats_of(fixture *f)
{
    cb_stats st;
    assert_int_equal(cb_get_stats(f->b, &st), CB_OK);
    return st;
}

#endif
