/* options.c -- the options' defaults (opossum's) and their validation. */
#include "cb_internal.h"

#include <math.h>

/* Fills o with the documented defaults. Can't fail. */
void cb_options_init(cb_options *o)
{
    *o = (cb_options){
        .name = "breaker",
        .timeout_ms = 10000,
        .reset_timeout_ms = 30000,
        .error_threshold_percentage = 50,
        .rolling_count_timeout_ms = 10000,
        .rolling_count_buckets = 10,
        .volume_threshold = 0,
        .capacity = 0,
        .allow_warm_up = false,
        .enabled = true,
        .rolling_percentiles_enabled = true,
        .half_open_max_calls = 1,
        .half_open_success_threshold = 1,
        .reset_backoff_multiplier = 1.0,
        .reset_timeout_max_ms = 0,
        .reset_jitter = 0.0,
        .slow_call_duration_ms = 0,
        .slow_call_rate_threshold = 100,
        .timeout_mode = CB_TIMEOUT_TRUST,
        .pool_threads = 4,
        .health_check_interval_ms = 5000,
        .cache_ttl_ms = 0,
        .cache_size = 1024,
        .coalesce_ttl_ms = 0,
        .coalesce_reset_on_error = true,
        .clock = cb_clock_system(),
        .ticker = false,
        .ticker_interval_ms = 0,
        .seed = 0,
    };
}

static bool pct_ok(int p) { return p >= 0 && p <= 100; }

/* Returns CB_OK when the timing options are sound, else CB_EINVAL. */
static int validate_times(const cb_options *o)
{
    if (o->timeout_ms < 0 || o->reset_timeout_ms < 0 || o->reset_timeout_max_ms < 0)
        return CB_EINVAL;
    if (o->rolling_count_buckets <= 0 || o->rolling_count_timeout_ms <= 0)
        return CB_EINVAL;
    if (o->rolling_count_timeout_ms % o->rolling_count_buckets != 0)
        return CB_EINVAL;
    if (o->slow_call_duration_ms < 0 || o->ticker_interval_ms < 0)
        return CB_EINVAL;
    if (o->cache_ttl_ms < 0 || o->coalesce_ttl_ms < 0)
        return CB_EINVAL;
    if (o->health_check && o->health_check_interval_ms <= 0)
        return CB_EINVAL;
    return CB_OK;
}

/* Returns CB_OK when o can build a breaker, else CB_EINVAL. */
int cb__options_validate(const cb_options *o)
{
    if (!o || !o->action || !o->clock.now_ns)
        return CB_EINVAL;
    if (validate_times(o) != CB_OK)
        return CB_EINVAL;
    if (!pct_ok(o->error_threshold_percentage) || !pct_ok(o->slow_call_rate_threshold))
        return CB_EINVAL;
    if (o->volume_threshold < 0 || o->capacity < 0)
        return CB_EINVAL;
    if (o->half_open_max_calls < 1 || o->half_open_success_threshold < 1 ||
        o->half_open_success_threshold > o->half_open_max_calls)
        return CB_EINVAL;
    if (!(o->reset_backoff_multiplier >= 1.0) || isinf(o->reset_backoff_multiplier))
        return CB_EINVAL;
    if (!(o->reset_jitter >= 0.0 && o->reset_jitter <= 1.0))
        return CB_EINVAL;
    if (o->timeout_mode != CB_TIMEOUT_TRUST && o->timeout_mode != CB_TIMEOUT_POOL)
        return CB_EINVAL;
    if (o->timeout_mode == CB_TIMEOUT_POOL && (o->pool_threads < 1 || o->pool_threads > 256))
        return CB_EINVAL;
    if (o->cache && o->cache_size == 0)
        return CB_EINVAL;
    return CB_OK;
}

/* Returns CB_OK when every field of t is within the range cb.h gives it, else
 * CB_EINVAL. */
int cb__tuning_validate(const cb_tuning *t)
{
    if (!t || t->reset_timeout_ms < 0 || t->reset_timeout_max_ms < 0)
        return CB_EINVAL;
    if (!(t->reset_backoff_multiplier >= 1.0) || isinf(t->reset_backoff_multiplier))
        return CB_EINVAL;
    if (t->volume_threshold < 0 || !pct_ok(t->error_threshold_percentage))
        return CB_EINVAL;
    return CB_OK;
}
