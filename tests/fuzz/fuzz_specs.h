/* fuzz_specs.h -- the three services' specs, taken from their main.c, for the harnesses. */
#ifndef FUZZ_SPECS_H
#define FUZZ_SPECS_H

#include "svc.h"

#define FUZZ_NSPECS 3

/* order, payment, shipment, exactly as their main.c declares them. */
extern const svc_spec *const fuzz_specs[FUZZ_NSPECS];

#endif
