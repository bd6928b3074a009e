/* model_rng.h -- the seeded generator both model tests draw their sequences from (model_test.c, retry_model_test.c).
 *
 * splitmix64: one 64-bit state, set from the run's seed before each
 * sequence (model_rng = seed), so a sequence is repeated from its seed alone.
 * Header-only: each test is one program of its own.
 */
#ifndef MODEL_RNG_H
#define MODEL_RNG_H

#include <stdbool.h>
#include <stdint.h>

static uint64_t model_rng;

/* The next 64 random bits. */
static inline uint64_t next_u64(void)
{
    uint64_t z = (model_rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* A number in [0, n); 0 when n <= 0. */
static inline int64_t below(int64_t n) { return n > 0 ? (int64_t)(next_u64() % (uint64_t)n) : 0; }

/* True percent times in a hundred. */
static inline bool chance(int percent) { return below(100) < percent; }

/* One of the n values of v. */
static inline int64_t pick(const int64_t *v, int n) { return v[below(n)]; }

#endif
