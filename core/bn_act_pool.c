/*
 * bn_act_pool.c - batch norm, LeakyReLU and max pooling trained as one block.
 *
 * The unfused layers write a normalised tensor, an activated tensor and the pooled
 * one, then read all of them back in backward: for conv2d_1's 26x26x32 output that is
 * an 11 MB tensor per pass per batch, and the passes are bound by memory, not
 * arithmetic. Here the forward reads x twice (statistics, then normalise-activate-pool
 * in one sweep) and writes only the pooled output; the backward recomputes each
 * window's values from x (a few operations per element, in registers) in two sweeps:
 * the per-channel sums batch norm's gradient needs, then the input gradient.
 *
 * Every value is computed with the unfused layers' float operations in the same order
 * (batchnorm.c, activations.c, pool.c), so the pooled output and the choice of each
 * window's maximum (the first one, on ties) are theirs exactly. Work is spread over
 * rows of windows (image, output row); sums are per worker, in float over a row of
 * windows and in double across rows.
 */
#include <stdlib.h>
#include <string.h>

#include "layers.h"
#include "simd.h"

typedef struct {
    const cs_bn_act_pool *b;
    const float *x, *mean, *inv_std, *pooled, *dpooled;
    const float *scale, *mdy, *mdyx; /* backward, second sweep: gamma*inv_std and the two means */
    float *out, *dx;
    double *sums; /* [workers][2c]: sum of dy, sum of dy * xhat (dy: into batch norm's output) */
} bap_job;

/* AVX2 where the CPU has it (simd.h), without fused multiply-adds: the values must
 * stay the unfused layers' bit for bit. */
CS_CLONES static void forward_range(void *ctx, long begin, long end, int worker)
{
    (void)worker;
    const bap_job *j = ctx;
    const cs_bn_act_pool *b = j->b;
    const int h = b->h, w = b->w, c = b->c, p = b->p, oh = h / p, ow = w / p;
    const float alpha = b->alpha, *gamma = b->gamma, *beta = b->beta, *mean = j->mean, *inv = j->inv_std;
    for (long row = begin; row < end; row++) {
        const int img = (int)(row / oh), oy = (int)(row % oh);
        for (int ox = 0; ox < ow; ox++) {
            float *out = j->out + (((size_t)img * oh + oy) * ow + ox) * c;
            for (int wy = 0; wy < p; wy++)
                for (int wx = 0; wx < p; wx++) {
                    const float *in = j->x + (((size_t)img * h + oy * p + wy) * w + ox * p + wx) * c;
                    const int first = wy == 0 && wx == 0;
                    for (int k = 0; k < c; k++) {
                        float v = gamma[k] * ((in[k] - mean[k]) * inv[k]) + beta[k];
                        float a = v * (v > 0 ? 1.0f : alpha);
                        out[k] = first || a > out[k] ? a : out[k];
                    }
                }
        }
    }
}

void cs_bn_act_pool_forward(const cs_bn_act_pool *b, const float *x, float *mean, float *inv_std, float *moving_mean,
                            float *moving_var, float momentum, float *pooled)
{
    cs_bn_batch_stats((size_t)b->n * b->h * b->w, b->c, x, b->eps, mean, inv_std, moving_mean, moving_var, momentum);
    bap_job j = {.b = b, .x = x, .mean = mean, .inv_std = inv_std, .out = pooled};
    const int oh = b->h / b->p, ow = b->w / b->p;
    cs_parallel_run((long)b->n * oh, cs_parallel_grain((long)ow * b->c * b->p * b->p, 1), 0, forward_range, &j);
}

/* The two backward sweeps walk the same windows: for every element, the gradient that
 * reaches batch norm's output there (dpooled times the activation's slope at the
 * window's first maximum, 0 elsewhere) and the normalised input xhat. The first sweep
 * adds them up per channel (float over a row of windows, double across rows); the
 * second writes dx. Each sweep gets its own inlined copy (AVX2 where the CPU has it,
 * simd.h), in which the branch on `sweep` is a constant. */
enum { SUMS, INPUT_GRAD };

static inline __attribute__((always_inline)) void backward_sweep(const bap_job *j, long begin, long end, int worker, int sweep)
{
    const cs_bn_act_pool *b = j->b;
    const int h = b->h, w = b->w, c = b->c, p = b->p, oh = h / p, ow = w / p;
    const float alpha = b->alpha, *gamma = b->gamma, *beta = b->beta, *mean = j->mean, *inv = j->inv_std;
    const float *scale = j->scale, *mdy = j->mdy, *mdyx = j->mdyx;
    double *s1 = j->sums + (size_t)worker * 2 * c, *s2 = s1 + c;
    float taken[c], r1[c], r2[c];
    for (long row = begin; row < end; row++) {
        const int img = (int)(row / oh), oy = (int)(row % oh);
        memset(r1, 0, sizeof r1);
        memset(r2, 0, sizeof r2);
        for (int ox = 0; ox < ow; ox++) {
            const size_t o = (((size_t)img * oh + oy) * ow + ox) * c;
            const float *yo = j->pooled + o, *dyo = j->dpooled + o;
            memset(taken, 0, sizeof taken);
            for (int wy = 0; wy < p; wy++)
                for (int wx = 0; wx < p; wx++) {
                    const size_t at = (((size_t)img * h + oy * p + wy) * w + ox * p + wx) * c;
                    const float *in = j->x + at;
                    float *d = j->dx + at;
                    for (int k = 0; k < c; k++) {
                        float xh = (in[k] - mean[k]) * inv[k];
                        float v = gamma[k] * xh + beta[k];
                        float a = v * (v > 0 ? 1.0f : alpha);
                        float hit = a == yo[k] && taken[k] == 0.0f ? 1.0f : 0.0f;
                        float g = hit * dyo[k] * (v > 0 ? 1.0f : alpha);
                        taken[k] += hit;
                        if (sweep == SUMS) {
                            r1[k] += g;
                            r2[k] += g * xh;
                        } else {
                            d[k] = scale[k] * (g - mdy[k] - xh * mdyx[k]);
                        }
                    }
                }
        }
        if (sweep == SUMS)
            for (int k = 0; k < c; k++) s1[k] += r1[k], s2[k] += r2[k];
    }
}

CS_CLONES static void grad_sums_range(void *ctx, long begin, long end, int worker)
{
    backward_sweep(ctx, begin, end, worker, SUMS);
}

CS_CLONES static void input_grad_range(void *ctx, long begin, long end, int worker)
{
    backward_sweep(ctx, begin, end, worker, INPUT_GRAD);
}

/* Elements past the last full window (an odd height or width) get no gradient from
 * the pool, but batch norm's gradient still reaches them through the batch mean. */
static void ragged_edge(const bap_job *j)
{
    const cs_bn_act_pool *b = j->b;
    const int h = b->h, w = b->w, c = b->c, p = b->p, hf = h / p * p, wf = w / p * p;
    if (hf == h && wf == w) return;
    for (int img = 0; img < b->n; img++)
        for (int y = 0; y < h; y++)
            for (int x = y < hf ? wf : 0; x < w; x++) {
                const size_t at = (((size_t)img * h + y) * w + x) * c;
                for (int k = 0; k < c; k++) {
                    float hk = (j->x[at + k] - j->mean[k]) * j->inv_std[k];
                    j->dx[at + k] = j->scale[k] * (0.0f - j->mdy[k] - hk * j->mdyx[k]);
                }
            }
}

void cs_bn_act_pool_backward(const cs_bn_act_pool *b, const float *x, const float *mean, const float *inv_std,
                             const float *pooled, const float *dpooled, float *dx, float *dgamma, float *dbeta)
{
    const int c = b->c, parts = cs_parallel_threads(), oh = b->h / b->p, ow = b->w / b->p;
    const size_t rows = (size_t)b->n * b->h * b->w;
    double *sums = calloc((size_t)parts * 2 * c, sizeof(double));
    if (!sums) return;
    bap_job j = {.b = b, .x = x, .mean = mean, .inv_std = inv_std, .pooled = pooled, .dpooled = dpooled,
                 .dx = dx, .sums = sums};
    const long grain = cs_parallel_grain((long)ow * c * b->p * b->p, 1);
    cs_parallel_run((long)b->n * oh, grain, parts, grad_sums_range, &j);
    for (int p = 1; p < parts; p++)
        for (int k = 0; k < 2 * c; k++) sums[k] += sums[(size_t)p * 2 * c + k];
    if (dgamma)
        for (int k = 0; k < c; k++) {
            dgamma[k] += (float)sums[c + k];
            dbeta[k] += (float)sums[k];
        }
    if (dx) {
        /* dx = gamma * inv_std * (dy - mean(dy) - xhat * mean(dy * xhat)), as batchnorm.c */
        float scale[c], mdy[c], mdyx[c];
        for (int k = 0; k < c; k++) {
            scale[k] = b->gamma[k] * inv_std[k];
            mdy[k] = (float)(sums[k] / rows);
            mdyx[k] = (float)(sums[c + k] / rows);
        }
        j.scale = scale, j.mdy = mdy, j.mdyx = mdyx;
        cs_parallel_run((long)b->n * oh, grain, parts, input_grad_range, &j);
        ragged_edge(&j);
    }
    free(sums);
}
