/*
 * bn_act_pool.c - batch norm, LeakyReLU and max pooling trained as one block.
 *
 * The unfused layers write a normalised tensor, an activated tensor and the pooled
 * one, then read all of them back in backward: for conv2d_1's 26x26x32 output that is
 * an 11 MB tensor per pass per batch, and the passes are bound by memory, not
 * arithmetic. Here the forward reads x once (twice when it has to gather the batch
 * statistics itself; a conv below usually hands them over) and writes the pooled
 * output and, per pooled value, which element of its window won (one byte) and that
 * element's normalised input. The backward's batch-norm sums need only those
 * per-window values; the input gradient is then produced for any range of rows on
 * demand, so that a conv below takes it chunk by chunk while it is in cache
 * (cs_rows_source) instead of from memory.
 *
 * Every value is computed with the unfused layers' float operations in the same order
 * (batchnorm.c, activations.c, pool.c), so with the same batch statistics the pooled
 * output and the choice of each window's maximum (the first one, on ties) are theirs
 * exactly; statistics gathered chunk by chunk by a conv (cs_conv_forward_stats) may
 * differ from theirs in the last bit.
 */
#include <stdlib.h>
#include <string.h>

#include "layers.h"
#include "simd.h"

typedef struct {
    const cs_bn_act_pool *b;
    const float *x, *mean, *inv_std, *dpooled;
    float *pooled;
    uint8_t *argmax;
    float *win_xhat, *win_grad;
    double *sums; /* [workers][2c]: sum of dy, sum of dy * xhat (dy: into batch norm's output) */
} bap_job;

/* One 2x2 window over c channels: its four values and their maximum stay in
 * registers, compared in the same order as the general loop. restrict: the output
 * arrays overlap nothing, which lets the loop vectorise without runtime checks. */
static inline __attribute__((always_inline)) void window_2x2(int c, const float *restrict i0,
                                                             const float *restrict i1, const float *restrict i2,
                                                             const float *restrict i3, const float *restrict mean,
                                                             const float *restrict inv, const float *restrict gamma,
                                                             const float *restrict beta, float alpha,
                                                             float *restrict out, uint8_t *restrict won,
                                                             float *restrict wx)
{
    for (int k = 0; k < c; k++) {
        float h0 = (i0[k] - mean[k]) * inv[k], h1 = (i1[k] - mean[k]) * inv[k];
        float h2 = (i2[k] - mean[k]) * inv[k], h3 = (i3[k] - mean[k]) * inv[k];
        float v0 = gamma[k] * h0 + beta[k], v1 = gamma[k] * h1 + beta[k];
        float v2 = gamma[k] * h2 + beta[k], v3 = gamma[k] * h3 + beta[k];
        float a0 = v0 * (v0 > 0 ? 1.0f : alpha), a1 = v1 * (v1 > 0 ? 1.0f : alpha);
        float a2 = v2 * (v2 > 0 ? 1.0f : alpha), a3 = v3 * (v3 > 0 ? 1.0f : alpha);
        float m = a0, hw = h0;
        int at = 0;
        at = a1 > m ? 1 : at, hw = a1 > m ? h1 : hw, m = a1 > m ? a1 : m;
        at = a2 > m ? 2 : at, hw = a2 > m ? h2 : hw, m = a2 > m ? a2 : m;
        at = a3 > m ? 3 : at, hw = a3 > m ? h3 : hw, m = a3 > m ? a3 : m;
        out[k] = m;
        won[k] = (uint8_t)at;
        wx[k] = hw;
    }
}

#if CS_HAVE_AVX512_KERNELS
#include "window_avx512.h"
/* A row of 2x2 windows on AVX-512, 16 channels at a time, for c a multiple of 16, with
 * window_2x2's values bit for bit; the compiler's AVX2 version of window_2x2 spilled
 * its registers and was half of the block's forward. */
CS_AVX512 static void row_2x2_avx512(const cs_bn_act_pool *b, const float *band, size_t o, const float *mean,
                                     const float *inv, float *pooled, uint8_t *argmax, float *win_xhat)
{
    const int w = b->w, c = b->c, ow = w / 2;
    for (int ox = 0; ox < ow; ox++, o += c) {
        const float *i0 = band + (size_t)ox * 2 * c, *i1 = i0 + c, *i2 = i0 + (size_t)w * c, *i3 = i2 + c;
        for (int k = 0; k < c; k += 16) {
            const cs_window_consts wc = {_mm512_loadu_ps(mean + k), _mm512_loadu_ps(inv + k),
                                         _mm512_loadu_ps(b->gamma + k), _mm512_loadu_ps(b->beta + k),
                                         _mm512_set1_ps(b->alpha)};
            cs_window4_avx512(&wc, _mm512_loadu_ps(i0 + k), _mm512_loadu_ps(i1 + k), _mm512_loadu_ps(i2 + k),
                              _mm512_loadu_ps(i3 + k), pooled + o + k, win_xhat + o + k, argmax + o + k);
        }
    }
}

#else
#define row_2x2_avx512(b, band, o, mean, inv, pooled, argmax, win_xhat) (void)0
#endif

static int avx512_rows_ok(const cs_bn_act_pool *b)
{
    return b->p == 2 && b->c % 16 == 0 && cs_cpu_avx512();
}

/* AVX2 where the CPU has it (simd.h), without fused multiply-adds: the values must
 * stay the unfused layers' bit for bit. */
CS_CLONES void cs_bn_act_pool_apply_row(const cs_bn_act_pool *b, const float *band, long row, const float *mean,
                                        const float *inv, float *pooled, uint8_t *argmax, float *win_xhat)
{
    const int w = b->w, c = b->c, p = b->p, ow = w / p;
    const float alpha = b->alpha, *gamma = b->gamma, *beta = b->beta;
    if (avx512_rows_ok(b)) {
        row_2x2_avx512(b, band, (size_t)row * ow * c, mean, inv, pooled, argmax, win_xhat);
        return;
    }
    float won[c]; /* window position of the maximum so far, as a float to vectorise with the values */
    for (int ox = 0; ox < ow; ox++) {
        const size_t o = ((size_t)row * ow + ox) * c;
        float *out = pooled + o;
        if (p == 2) { /* the usual window */
            const float *i0 = band + (size_t)ox * 2 * c, *i1 = i0 + c, *i2 = i0 + (size_t)w * c, *i3 = i2 + c;
            window_2x2(c, i0, i1, i2, i3, mean, inv, gamma, beta, alpha, out, argmax + o, win_xhat + o);
            continue;
        }
        for (int wy = 0; wy < p; wy++)
            for (int wx = 0; wx < p; wx++) {
                const float *in = band + ((size_t)wy * w + ox * p + wx) * c;
                const float pos = (float)(wy * p + wx);
                float *wxh = win_xhat + o;
                if (pos == 0) { /* the window's first element starts the maximum */
                    for (int k = 0; k < c; k++) {
                        float hk = (in[k] - mean[k]) * inv[k], v = gamma[k] * hk + beta[k];
                        out[k] = v * (v > 0 ? 1.0f : alpha);
                        won[k] = 0;
                        wxh[k] = hk;
                    }
                    continue;
                }
                for (int k = 0; k < c; k++) { /* selects, not branches: they vectorise */
                    float hk = (in[k] - mean[k]) * inv[k], v = gamma[k] * hk + beta[k];
                    float a = v * (v > 0 ? 1.0f : alpha);
                    won[k] = a > out[k] ? pos : won[k];
                    wxh[k] = a > out[k] ? hk : wxh[k];
                    out[k] = a > out[k] ? a : out[k];
                }
            }
        for (int k = 0; k < c; k++) argmax[o + k] = (uint8_t)won[k];
    }
}

static void forward_range(void *ctx, long begin, long end, int worker)
{
    (void)worker;
    const bap_job *j = ctx;
    const cs_bn_act_pool *b = j->b;
    const int oh = b->h / b->p;
    for (long row = begin; row < end; row++) {
        const int img = (int)(row / oh), oy = (int)(row % oh);
        const float *band = j->x + ((size_t)img * b->h + (size_t)oy * b->p) * b->w * b->c;
        cs_bn_act_pool_apply_row(b, band, row, j->mean, j->inv_std, j->pooled, j->argmax, j->win_xhat);
    }
}

void cs_bn_act_pool_apply(const cs_bn_act_pool *b, const float *x, const float *mean, const float *inv_std,
                          float *pooled, uint8_t *argmax, float *win_xhat)
{
    bap_job j = {.b = b, .x = x, .mean = mean, .inv_std = inv_std, .pooled = pooled, .argmax = argmax,
                 .win_xhat = win_xhat};
    const int oh = b->h / b->p, ow = b->w / b->p;
    cs_parallel_run((long)b->n * oh, cs_parallel_grain((long)ow * b->c * b->p * b->p, 1), 0, forward_range, &j);
}

void cs_bn_act_pool_forward(const cs_bn_act_pool *b, const float *x, float *mean, float *inv_std, float *moving_mean,
                            float *moving_var, float momentum, float *pooled, uint8_t *argmax, float *win_xhat, double *sums)
{
    cs_bn_batch_stats((size_t)b->n * b->h * b->w, b->c, x, b->eps, mean, inv_std, moving_mean, moving_var, momentum, sums);
    cs_bn_act_pool_apply(b, x, mean, inv_std, pooled, argmax, win_xhat);
}

/* Per window, from the winner's normalised input kept by the forward (x itself is not
 * read): the gradient reaching batch norm's output at the window's winner
 * (dpooled times the activation's slope there; 0 at the others), kept in win_grad,
 * and its share of the two per-channel sums (float over a row of windows, double
 * across rows, per worker). */
CS_CLONES static void window_grad_range(void *ctx, long begin, long end, int worker)
{
    const bap_job *j = ctx;
    const cs_bn_act_pool *b = j->b;
    const int c = b->c, oh = b->h / b->p, ow = b->w / b->p;
    const float alpha = b->alpha, *gamma = b->gamma, *beta = b->beta;
    double *s1 = j->sums + (size_t)worker * 2 * c, *s2 = s1 + c;
    float r1[c], r2[c];
    for (long row = begin; row < end; row++) {
        const int img = (int)(row / oh), oy = (int)(row % oh);
        memset(r1, 0, sizeof r1);
        memset(r2, 0, sizeof r2);
        for (int ox = 0; ox < ow; ox++) {
            const size_t o = (((size_t)img * oh + oy) * ow + ox) * c;
            const float *dyo = j->dpooled + o;
            float *gw = j->win_grad + o;
            const float *wx = j->win_xhat + o;
            for (int k = 0; k < c; k++) {
                float xh = wx[k];
                float v = gamma[k] * xh + beta[k];
                float g = dyo[k] * (v > 0 ? 1.0f : alpha);
                gw[k] = g;
                r1[k] += g;
                r2[k] += g * xh;
            }
        }
        for (int k = 0; k < c; k++) s1[k] += r1[k], s2[k] += r2[k];
    }
}


void cs_bn_act_pool_backward_begin(cs_bn_act_pool_grad *gr, const float *dpooled, float *dgamma, float *dbeta)
{
    const cs_bn_act_pool *b = gr->b;
    const int c = b->c, parts = cs_parallel_threads(), oh = b->h / b->p, ow = b->w / b->p;
    const size_t rows = (size_t)b->n * b->h * b->w;
    double *sums = gr->sums;
    memset(sums, 0, (size_t)parts * 2 * c * sizeof(double));
    bap_job j = {.b = b, .x = gr->x, .mean = gr->mean, .inv_std = gr->inv_std, .dpooled = dpooled,
                 .win_xhat = (float *)gr->win_xhat, .win_grad = gr->win_grad, .sums = sums};
    cs_parallel_run((long)b->n * oh, cs_parallel_grain((long)ow * c * b->p * b->p, 1), parts, window_grad_range, &j);
    cs_bn_grad_consts(c, rows, sums, parts, b->gamma, gr->inv_std, dgamma, dbeta, gr->scale, gr->mean_dy,
                      gr->mean_dyx);
}

/* Elements past the last full window (an odd height or width) get no gradient from
 * the pool, but batch norm's gradient still reaches them through the batch mean. */
CS_CLONES void cs_bn_act_pool_input_grad(void *ctx, size_t r0, size_t rows, float *dx)
{
    const cs_bn_act_pool_grad *gr = ctx;
    const cs_bn_act_pool *b = gr->b;
    const int h = b->h, w = b->w, c = b->c, p = b->p, oh = h / p, ow = w / p;
    const float *mean = gr->mean, *inv = gr->inv_std, *scale = gr->scale, *mdy = gr->mean_dy, *mdyx = gr->mean_dyx;
    const size_t per_image = (size_t)h * w;
    int img = (int)(r0 / per_image), y = (int)(r0 % per_image) / w, x = (int)(r0 % per_image) % w;
    /* The window (oy, ox) and the place in it (ry, rx), advanced without divisions. */
    int oy = y / p, ry = y % p, ox = x / p, rx = x % p;
    for (size_t r = 0; r < rows; r++) {
        const float *in = gr->x + (r0 + r) * c;
        float *d = dx + r * c;
        if (oy < oh && ox < ow) {
            const size_t o = (((size_t)img * oh + oy) * ow + ox) * c;
            const float pos = (float)(ry * p + rx);
            const uint8_t *won = gr->argmax + o;
            const float *gw = gr->win_grad + o;
            for (int k = 0; k < c; k++) {
                float xh = (in[k] - mean[k]) * inv[k];
                float g = (float)won[k] == pos ? gw[k] : 0.0f;
                d[k] = scale[k] * (g - mdy[k] - xh * mdyx[k]);
            }
        } else {
            for (int k = 0; k < c; k++) {
                float xh = (in[k] - mean[k]) * inv[k];
                d[k] = scale[k] * (0.0f - mdy[k] - xh * mdyx[k]);
            }
        }
        if (++rx == p) rx = 0, ox++;
        if (++x == w) {
            x = rx = ox = 0;
            if (++ry == p) ry = 0, oy++;
            if (++y == h) y = ry = oy = 0, img++;
        }
    }
}

typedef struct {
    cs_bn_act_pool_grad *gr;
    float *dx;
    size_t per_image;
} input_grad_job;

static void input_grad_range(void *ctx, long begin, long end, int worker)
{
    (void)worker;
    const input_grad_job *j = ctx;
    const size_t r0 = (size_t)begin * j->per_image, rows = (size_t)(end - begin) * j->per_image;
    cs_bn_act_pool_input_grad(j->gr, r0, rows, j->dx + r0 * j->gr->b->c);
}

void cs_bn_act_pool_backward(cs_bn_act_pool_grad *gr, const float *dpooled, float *dx, float *dgamma, float *dbeta)
{
    cs_bn_act_pool_backward_begin(gr, dpooled, dgamma, dbeta);
    if (!dx) return;
    const cs_bn_act_pool *b = gr->b;
    input_grad_job j = {.gr = gr, .dx = dx, .per_image = (size_t)b->h * b->w};
    cs_parallel_run(b->n, cs_parallel_grain((long)j.per_image * b->c * 8, 1), 0, input_grad_range, &j);
}
