/*
 * dropout.c - inverted dropout: scaled at training time so inference is the identity.
 */
#include "layers.h"
#include "rng.h"

void cs_dropout_forward(size_t n, float rate, const float *x, float *y, uint8_t *mask, uint64_t *rng_state)
{
    cs_rng r;
    cs_rng_seed(&r, *rng_state);
    *rng_state = cs_rng_next(&r); /* the next call gets a fresh stream */
    const float scale = 1.0f / (1.0f - rate);
    for (size_t i = 0; i < n; i++) {
        mask[i] = cs_rng_uniform(&r) >= rate;
        y[i] = mask[i] ? x[i] * scale : 0.0f;
    }
}

void cs_dropout_backward(size_t n, float rate, const uint8_t *mask, const float *dy, float *dx)
{
    const float scale = 1.0f / (1.0f - rate);
    for (size_t i = 0; i < n; i++) dx[i] = mask[i] ? dy[i] * scale : 0.0f;
}
