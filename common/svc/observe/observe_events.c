/* observe_events.c -- the breaker listener (latency histograms, recent events) and the recent-events ring that /events.stream reads.
 *
 * Besides the ring, each breaker keeps its last OBS_TRANSITIONS state
 * changes (open, half-open, close) apart: under a flood of rejects the ring
 * forgets a breaker's opening within seconds, and a page opened late must
 * still be able to show why the breaker is open. Both are written under
 * ring_lock, so an event has one seq in both. */
#include "observe.h"
#include "observe_priv.h"
#include "trace.h"
#include "monotime.h"

#include <stdio.h>
#include <string.h>

/* Whether an event kind belongs in the recent-events feed: state changes and
 * everything that went wrong; fires, successes and snapshots would drown them. */
static bool event_is_feed_worthy(cb_event_kind k)
{
    switch (k) {
    case CB_EV_FAILURE: case CB_EV_TIMEOUT: case CB_EV_REJECT: case CB_EV_OPEN:
    case CB_EV_HALF_OPEN: case CB_EV_CLOSE: case CB_EV_FALLBACK:
    case CB_EV_SEMAPHORE_LOCKED: case CB_EV_HEALTH_CHECK_FAILED: case CB_EV_SHUTDOWN:
        return true;
    default:
        return false;
    }
}

/* Whether e is a state change of a breaker (kept apart from the ring). */
static bool event_is_transition(const obs_event *e)
{
    return !e->shared_name[0] && e->breaker >= 0 && e->breaker < OBS_MAX_BREAKERS &&
           (e->kind == CB_EV_OPEN || e->kind == CB_EV_HALF_OPEN || e->kind == CB_EV_CLOSE);
}

/* Appends e to its breaker's transitions, dropping the oldest when full.
 * Called with ring_lock held. */
static void transition_put(const obs_event *e)
{
    obs_event *list = obs_g.transitions[e->breaker];
    int *n = &obs_g.ntransitions[e->breaker];
    if (*n == OBS_TRANSITIONS) {
        memmove(list, list + 1, sizeof *list * (OBS_TRANSITIONS - 1));
        (*n)--;
    }
    list[(*n)++] = *e;
}

/* Gives e the next sequence number and stores it in the ring, over the
 * oldest event when the ring is full, and a state change also in its
 * breaker's transitions. */
static void ring_put(obs_event *e)
{
    pthread_mutex_lock(&obs_g.ring_lock);
    e->seq = obs_g.next_seq++;
    obs_g.ring[e->seq % OBS_EVENT_RING] = *e;
    if (event_is_transition(e))
        transition_put(e);
    pthread_mutex_unlock(&obs_g.ring_lock);
}

/* Puts a breaker event of ob into the ring. */
static void ring_push(const obs_breaker *ob, const cb_event *ev)
{
    obs_event e = {
        .breaker = ob->index,
        .wall_ms = wall_ms(),
        .kind = ev->kind,
        .state = ev->state,
        .latency_ms = -1,
        .error_percentage = ev->stats ? ev->stats->error_percentage : -1,
        .error = ev->error,
    };
    if (ev->kind == CB_EV_FAILURE || ev->kind == CB_EV_TIMEOUT)
        e.latency_ms = ev->latency_ms;
    const trace_ctx *t = trace_current();   /* the calling thread's request, if any */
    if (t && t->w3c)
        memcpy(e.trace, t->id, sizeof e.trace);
    ring_put(&e);
}

/* cb_listener_fn: latency of every completed call into the breaker's
 * histogram, and the feed-worthy events into the ring. ctx is the obs_breaker. */
void obs_on_breaker_event(cb_breaker *b, const cb_event *ev, void *ctx)
{
    (void)b;
    obs_breaker *ob = ctx;
    if (ev->kind == CB_EV_SUCCESS || ev->kind == CB_EV_FAILURE || ev->kind == CB_EV_TIMEOUT)
        obs_histogram_observe(&ob->latency, ev->latency_ms / 1000.0);
    if (event_is_feed_worthy(ev->kind))
        ring_push(ob, ev);
}

size_t obs_events_since(uint64_t after, obs_event *out, size_t max)
{
    size_t n = 0;
    pthread_mutex_lock(&obs_g.ring_lock);
    uint64_t oldest = obs_g.next_seq > OBS_EVENT_RING ? obs_g.next_seq - OBS_EVENT_RING : 1;
    uint64_t s = after + 1 > oldest ? after + 1 : oldest;
    for (; s < obs_g.next_seq && n < max; s++)
        out[n++] = obs_g.ring[s % OBS_EVENT_RING];
    pthread_mutex_unlock(&obs_g.ring_lock);
    return n;
}

void obs_shared_event(const char *name, const char *state, const char *detail)
{
    if (!obs_g.initialised)
        return;
    obs_event e = { .breaker = 0, .wall_ms = wall_ms(), .latency_ms = -1,
                    .error_percentage = -1 };
    snprintf(e.shared_name, sizeof e.shared_name, "%s", name);
    snprintf(e.shared_state, sizeof e.shared_state, "%s", state);
    snprintf(e.detail, sizeof e.detail, "%s", detail ? detail : "");
    ring_put(&e);
}

size_t obs_transitions_upto(uint64_t upto, obs_event *out, size_t max)
{
    size_t n = 0;
    pthread_mutex_lock(&obs_g.ring_lock);
    for (int b = 0; b < OBS_MAX_BREAKERS; b++)
        for (int i = 0; i < obs_g.ntransitions[b] && n < max; i++)
            if (obs_g.transitions[b][i].seq <= upto)
                out[n++] = obs_g.transitions[b][i];
    pthread_mutex_unlock(&obs_g.ring_lock);
    /* oldest first: a few dozen at most, so an insertion sort */
    for (size_t i = 1; i < n; i++) {
        obs_event e = out[i];
        size_t j = i;
        for (; j > 0 && out[j - 1].seq > e.seq; j--)
            out[j] = out[j - 1];
        out[j] = e;
    }
    return n;
}

void obs_chaos_event(const char *words)
{
    if (!obs_g.initialised)
        return;
    obs_event e = { .breaker = -1, .wall_ms = wall_ms(), .latency_ms = -1, .error_percentage = -1,
                    .chaos = true };
    snprintf(e.detail, sizeof e.detail, "%s", words ? words : "");
    ring_put(&e);
}

uint64_t obs_events_newest_seq(void)
{
    pthread_mutex_lock(&obs_g.ring_lock);
    uint64_t newest = obs_g.next_seq - 1;
    pthread_mutex_unlock(&obs_g.ring_lock);
    return newest;
}
