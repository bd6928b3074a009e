/* order/main.c -- the order service: the first hop; takes an order and passes its payment on. */
#include "svc.h"

static const svc_spec spec = {
    .name = "order",
    .default_port = 3000,
    .collection = "orders",
    .required = { { "id", SVC_STRING }, { "items", SVC_ARRAY }, { "payment", SVC_OBJECT } },
    .pass_on = "payment",
};

int main(int argc, char **argv)
{
    return svc_main(&spec, argc, argv);
}
