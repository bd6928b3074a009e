/* shipment/main.c -- the shipment service: the last hop; takes a shipment and passes nothing on. */
#include "svc.h"

static const svc_spec spec = {
    .name = "shipment",
    .default_port = 3002,
    .collection = "shipments",
    .required = { { "id", SVC_STRING }, { "directions", SVC_STRING } },
    .pass_on = NULL,
};

int main(int argc, char **argv)
{
    return svc_main(&spec, argc, argv);
}
