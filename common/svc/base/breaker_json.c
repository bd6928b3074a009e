/* breaker_json.c -- a breaker's counts as JSON (see breaker_json.h). */
#include "breaker_json.h"

cJSON *breaker_counts_json(cJSON *parent, const char *name, const cb_counts *c)
{
    cJSON *o = cJSON_AddObjectToObject(parent, name);
    if (!o)
        return NULL;
    cJSON_AddNumberToObject(o, "fires", (double)c->fires);
    cJSON_AddNumberToObject(o, "successes", (double)c->successes);
    cJSON_AddNumberToObject(o, "failures", (double)c->failures);
    cJSON_AddNumberToObject(o, "timeouts", (double)c->timeouts);
    cJSON_AddNumberToObject(o, "rejects", (double)c->rejects);
    cJSON_AddNumberToObject(o, "fallbacks", (double)c->fallbacks);
    cJSON_AddNumberToObject(o, "fallbackFailures", (double)c->fallback_failures);
    cJSON_AddNumberToObject(o, "semaphoreRejections", (double)c->semaphore_rejections);
    cJSON_AddNumberToObject(o, "slowCalls", (double)c->slow_calls);
    return o;
}
