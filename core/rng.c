/*
 * rng.c - xoshiro256** (Blackman and Vigna), seeded through splitmix64 so that
 * nearby seeds give unrelated streams.
 */
#include "rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void cs_rng_seed(cs_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t cs_rng_next(cs_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double cs_rng_uniform(cs_rng *r) { return (double)(cs_rng_next(r) >> 11) * 0x1.0p-53; }

double cs_rng_normal(cs_rng *r)
{
    /* Box-Muller; u1 is kept away from 0 so log() is finite. */
    double u1 = 1.0 - cs_rng_uniform(r), u2 = cs_rng_uniform(r);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

uint32_t cs_rng_below(cs_rng *r, uint32_t n)
{
    /* Lemire's multiply-shift with rejection: no modulo bias. */
    uint64_t m = (uint64_t)(uint32_t)cs_rng_next(r) * n;
    uint32_t low = (uint32_t)m;
    if (low < n) {
        uint32_t t = (uint32_t)(-n) % n;
        while (low < t) {
            m = (uint64_t)(uint32_t)cs_rng_next(r) * n;
            low = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}

void cs_rng_shuffle(cs_rng *r, int *v, int n)
{
    for (int i = n - 1; i > 0; i--) {
        int j = (int)cs_rng_below(r, (uint32_t)i + 1), t = v[i];
        v[i] = v[j];
        v[j] = t;
    }
}
