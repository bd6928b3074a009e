/* names.c -- words for the library's codes: errors, states and event kinds. */
#include "cb.h"

/* A sentence describing err; "unknown error" for unknown codes. */
const char *cb_strerror(int err)
{
    switch (err) {
    case CB_OK: return "success";
    case CB_EOPEN: return "circuit is open";
    case CB_ETIMEDOUT: return "action timed out";
    case CB_EFAILED: return "action failed";
    case CB_ESEMLOCKED: return "capacity reached (semaphore locked)";
    case CB_ESHUTDOWN: return "circuit has been shut down";
    case CB_EINVAL: return "invalid argument or option";
    case CB_ENOMEM: return "out of memory";
    case CB_EPARSE: return "not an exported breaker state";
    case CB_ENOTFOUND: return "not found";
    case CB_ETHREAD: return "a thread could not be started";
    case CB_ELIMIT: return "concurrency limit reached";
    default: return "unknown error";
    }
}

/* The code's name ("CB_EOPEN"); "CB_EUNKNOWN" for unknown codes. */
const char *cb_err_name(int err)
{
    switch (err) {
    case CB_OK: return "CB_OK";
    case CB_EOPEN: return "CB_EOPEN";
    case CB_ETIMEDOUT: return "CB_ETIMEDOUT";
    case CB_EFAILED: return "CB_EFAILED";
    case CB_ESEMLOCKED: return "CB_ESEMLOCKED";
    case CB_ESHUTDOWN: return "CB_ESHUTDOWN";
    case CB_EINVAL: return "CB_EINVAL";
    case CB_ENOMEM: return "CB_ENOMEM";
    case CB_EPARSE: return "CB_EPARSE";
    case CB_ENOTFOUND: return "CB_ENOTFOUND";
    case CB_ETHREAD: return "CB_ETHREAD";
    case CB_ELIMIT: return "CB_ELIMIT";
    default: return "CB_EUNKNOWN";
    }
}

static const char *const state_names[] = {
    "closed", "open", "half-open", "forced-open", "forced-closed", "disabled", "shutdown",
};

/* The state's name; "unknown" outside the enum. */
const char *cb_state_name(cb_state s)
{
    if ((unsigned)s < sizeof state_names / sizeof state_names[0])
        return state_names[s];
    return "unknown";
}

static const char *const event_names[CB_EV_COUNT] = {
    "fire", "success", "failure", "timeout", "reject", "open", "halfOpen", "close",
    "fallback", "semaphoreLocked", "healthCheckFailed", "shutdown", "cacheHit",
    "cacheMiss", "coalesceCacheHit", "coalesceCacheMiss", "snapshot",
};

/* opossum's name for the event kind; "unknown" outside the enum. */
const char *cb_event_name(cb_event_kind k)
{
    if ((unsigned)k < CB_EV_COUNT)
        return event_names[k];
    return "unknown";
}

const double cb_percentile_points[CB_PERCENTILES] = {
    0.0, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 1.0,
};
