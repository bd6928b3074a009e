/* payment/main.c -- the payment service: the second hop; takes a payment and passes its shipment on. */
#include "svc.h"

static const svc_spec spec = {
    .name = "payment",
    .default_port = 3001,
    .collection = "payments",
    .required = { { "id", SVC_STRING }, { "amount", SVC_NUMBER }, { "shipment", SVC_OBJECT } },
    .pass_on = "shipment",
};

int main(int argc, char **argv)
{
    return svc_main(&spec, argc, argv);
}
