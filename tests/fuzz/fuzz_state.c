/* fuzz_state.c -- libFuzzer harness for cb_create_from_json(), the breaker's
 * state import: the input is the JSON a restarted process would read back.
 *
 * An accepted state is then driven as a service would drive it, on a manual
 * clock: stats, calls that fail and succeed, time passing past the open
 * period, a tick; and its export must import again (the library reads back
 * what it writes). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cb.h"

#define FUZZ_NAME "fuzz_state"
#include "fuzz_check.h"

/* Succeeds when arg is non-NULL. */
static int action(const cb_call *call, void **result)
{
    *result = NULL;
    return call->arg ? 0 : 1;
}

/* The options a service's chain breaker has, on the manual clock. */
static void options(cb_options *o, cb_manual_clock *mc)
{
    cb_options_init(o);
    o->name = "fuzz";
    o->action = action;
    o->clock = cb_manual_clock_get(mc);
    o->timeout_ms = 300;
    o->reset_timeout_ms = 10000;
    o->reset_backoff_multiplier = 2.0;
    o->reset_timeout_max_ms = 60000;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *json = malloc(size + 1);
    if (!json)
        return 0;
    memcpy(json, data, size);
    json[size] = '\0';
    /* a clock of its own per input, so that every input replays alike */
    cb_manual_clock *mc = cb_manual_clock_new(1000LL * 1000000000LL);
    if (!mc) {
        free(json);
        return 0;
    }
    cb_options o;
    options(&o, mc);
    cb_breaker *b = NULL;
    int rc = cb_create_from_json(&o, json, &b);
    free(json);
    if (rc != CB_OK) {
        FUZZ_CHECK(rc == CB_EPARSE, "an import failed with %s", cb_err_name(rc));
        cb_manual_clock_free(mc);
        return 0;
    }
    cb_stats st;
    cb_get_stats(b, &st);
    FUZZ_CHECK(st.total.fires >= st.window.fires, "total fires %llu < window fires %llu",
               (unsigned long long)st.total.fires, (unsigned long long)st.window.fires);
    static int ok = 1;
    cb_fire(b, NULL, NULL);
    cb_fire(b, &ok, NULL);
    cb_manual_clock_advance_ms(mc, 61000);
    cb_tick(b);
    cb_fire(b, &ok, NULL);
    char *out = cb_export_json(b);
    FUZZ_CHECK(out != NULL, "no export");
    cb_breaker *again = NULL;
    rc = cb_create_from_json(&o, out, &again);
    FUZZ_CHECK(rc == CB_OK, "its own export does not import (%s): %.400s", cb_err_name(rc), out);
    cb_destroy(again);
    free(out);
    cb_destroy(b);
    cb_manual_clock_free(mc);
    return 0;
}
