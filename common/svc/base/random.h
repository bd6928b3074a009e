/* random.h -- fast, non-cryptographic random numbers for the services: trace ids and fault draws. */
#ifndef SVC_RANDOM_H
#define SVC_RANDOM_H

#include <stdint.h>

/* A pseudo-random 64-bit number from the calling thread's own xorshift64*
 * generator, seeded from the clock and the stack's address on first use.
 * Not for secrets (tokens are made elsewhere). Thread-safe, lock-free. This
 * function can't fail. */
uint64_t random_u64(void);

#endif
