/* test_context.c -- opossum's test/context-test.js: the caller's context ("this") reaches the action and callbacks. */
#include "harness.h"

#include <string.h>

typedef struct lunch_ctx {
    const char *lunch;
    op_fx *fx;
    int calls;
} lunch_ctx;

/* Returns the argument when given one, else the context's lunch. */
static int get_lunch(const cb_call *call, void **result)
{
    lunch_ctx *ctx = call->user;
    ctx->calls++;
    *result = call->arg ? call->arg : (void *)ctx->lunch;
    return 0;
}

static void start_with_context(op_fx *fx, lunch_ctx *ctx, bool enabled)
{
    memset(ctx, 0, sizeof *ctx);
    ctx->lunch = "sushi";
    ctx->fx = fx;
    fx->opt.action = get_lunch;
    fx->opt.user = ctx;
    fx->opt.enabled = enabled;
    op_start(fx);
}

/* opossum "Allows applying a this context": cb_options.user is the context. */
static void action_receives_the_user_context(void **state)
{
    op_fx *fx = *state;
    lunch_ctx ctx;
    start_with_context(fx, &ctx, true);
    cb_result res;
    assert_int_equal(cb_fire(fx->b, NULL, &res), CB_OK);
    assert_string_equal((const char *)res.value, "sushi");
    assert_int_equal(ctx.calls, 1);
}

/* opossum "The this context is used even when circuit is disabled". */
static void action_receives_the_user_context_when_disabled(void **state)
{
    op_fx *fx = *state;
    lunch_ctx ctx;
    start_with_context(fx, &ctx, false);
    assert_int_equal(op_state(fx), CB_DISABLED);
    cb_result res;
    assert_int_equal(cb_fire(fx->b, NULL, &res), CB_OK);
    assert_string_equal((const char *)res.value, "sushi");
}

/* opossum "The apply() method correctly passes arguments". */
static void argument_and_context_reach_the_action_together(void **state)
{
    op_fx *fx = *state;
    lunch_ctx ctx;
    char burgers[] = "burgers";
    start_with_context(fx, &ctx, true);
    cb_result res;
    assert_int_equal(cb_fire(fx->b, burgers, &res), CB_OK);
    assert_ptr_equal(res.value, burgers);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        OP_TEST(action_receives_the_user_context),
        OP_TEST(action_receives_the_user_context_when_disabled),
        OP_TEST(argument_and_context_reach_the_action_together),
    };
    return cmocka_run_group_tests_name("opossum context-test.js", tests, NULL, NULL);
}
