/*
 * rng.h - the one seeded random generator (xoshiro256**, seeded with splitmix64).
 * Same seed, same sequence, on every machine: weights, shuffles and dropout masks
 * all come from it, so a seed reproduces a model bit for bit.
 */
#ifndef CS_RNG_H
#define CS_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t s[4];
} cs_rng;

void cs_rng_seed(cs_rng *r, uint64_t seed);
uint64_t cs_rng_next(cs_rng *r);
double cs_rng_uniform(cs_rng *r); /* [0, 1) with 53 random bits */
double cs_rng_normal(cs_rng *r);  /* standard normal (Box-Muller) */
uint32_t cs_rng_below(cs_rng *r, uint32_t n); /* uniform in [0, n), unbiased */
void cs_rng_shuffle(cs_rng *r, int *v, int n); /* Fisher-Yates */

#endif
