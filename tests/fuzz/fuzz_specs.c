/* fuzz_specs.c -- includes each service's main.c under other names, so the
 * harnesses check bodies against the very specs the services use and the two
 * cannot drift. Each main() is renamed and never called. */
#include "fuzz_specs.h"

#define main fuzz_order_main
#define spec fuzz_order_spec
#include "../../order/main.c"
#undef main
#undef spec

#define main fuzz_payment_main
#define spec fuzz_payment_spec
#include "../../payment/main.c"
#undef main
#undef spec

#define main fuzz_shipment_main
#define spec fuzz_shipment_spec
#include "../../shipment/main.c"
#undef main
#undef spec

const svc_spec *const fuzz_specs[FUZZ_NSPECS] = {
    &fuzz_order_spec, &fuzz_payment_spec, &fuzz_shipment_spec,
};
