/*
 * test_conv_block.c - a first conv trained with its block through its input's patch
 * sums (conv_block.c), against the same conv and block computed the other way: the
 * conv's output stored, its batch statistics gathered from it, the block applied to
 * it, and the conv's backward fed by the block's input gradient.
 *
 * Geometries: conv2d_1's own (3x3 over one channel, 32 outputs); two channels, 48
 * outputs and a 3x3 pool that leaves a ragged edge (those outputs still reach the
 * gradient through the batch mean); three channels and 20 outputs (no multiple of 16:
 * the plain C path for the winners), with ReLU. The block's own forward is also held to
 * a plain loop, bit for bit.
 */
#include <stdlib.h>

#include "conv_block.h"
#include "layers.h"
#include "parallel.h"
#include "rng.h"
#include "test.h"

typedef struct {
    int n, ih, iw, ic, oc, k, p;
    float alpha;
} block_case;

static float *random_floats(cs_rng *r, size_t n, double lo, double hi)
{
    float *v = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) v[i] = (float)(lo + (hi - lo) * cs_rng_uniform(r));
    return v;
}

static double max_abs(const float *v, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        if (fabs(v[i]) > m) m = fabs(v[i]);
    return m;
}

static double max_diff(const float *a, const float *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        if (!(fabs(a[i] - b[i]) <= m)) m = fabs(a[i] - b[i]);
    return m;
}

/* The block's forward written out plainly: normalise, scale and shift, activate, and
 * the first maximum of each window, with the float operations of the unfused layers
 * (this file is built without fused multiply-adds), so the same bits are expected. */
static void reference_block(const cs_bn_act_pool *b, const float *y, const float *mean, const float *inv,
                            float *pooled, uint8_t *argmax, float *win_xhat)
{
    const int ph = b->h / b->p, pw = b->w / b->p, c = b->c;
    for (int n = 0; n < b->n; n++)
        for (int oy = 0; oy < ph; oy++)
            for (int ox = 0; ox < pw; ox++)
                for (int k = 0; k < c; k++) {
                    const size_t o = (((size_t)n * ph + oy) * pw + ox) * c + k;
                    for (int q = 0; q < b->p * b->p; q++) {
                        const int yy = oy * b->p + q / b->p, xx = ox * b->p + q % b->p;
                        const float h = (y[(((size_t)n * b->h + yy) * b->w + xx) * c + k] - mean[k]) * inv[k];
                        const float v = b->gamma[k] * h + b->beta[k], a = v * (v > 0 ? 1.0f : b->alpha);
                        if (q == 0 || a > pooled[o]) pooled[o] = a, argmax[o] = (uint8_t)q, win_xhat[o] = h;
                    }
                }
}

static void check_case(const block_case *t)
{
    const cs_conv_geom g = {.n = t->n, .ih = t->ih, .iw = t->iw, .ic = t->ic, .oh = t->ih - t->k + 1,
                            .ow = t->iw - t->k + 1, .oc = t->oc, .k = t->k, .stride = 1};
    const int c = g.oc, kdim = g.k * g.k * g.ic;
    const size_t in = (size_t)g.n * g.ih * g.iw * g.ic, rows = (size_t)g.n * g.oh * g.ow, out = rows * c,
                 pooled = (size_t)g.n * (g.oh / t->p) * (g.ow / t->p) * c, kw = (size_t)kdim * c;
    cs_rng r;
    cs_rng_seed(&r, (uint64_t)(t->oc * 7 + t->p));
    /* Pixel-like inputs (0..1) and a bias, as a first layer sees them: a mean far from 0. */
    float *x = random_floats(&r, in, 0, 1), *w = random_floats(&r, kw, -0.5, 0.5), *b = random_floats(&r, c, -1, 1);
    float *gamma = random_floats(&r, c, 0.5, 1.5), *beta = random_floats(&r, c, -0.5, 0.5);
    float *dpooled = random_floats(&r, pooled, -1, 1);

    cs_scratch s = {.workers = cs_parallel_threads(), .col_floats = 1 << 18, .part_floats = kw + c,
                    .dy_floats = CS_DY_CHUNK_FLOATS};
    for (int i = 0; i < s.workers; i++) {
        s.col[i] = malloc(s.col_floats * sizeof(float));
        s.part[i] = malloc(s.part_floats * sizeof(float));
        s.dy[i] = malloc(s.dy_floats * sizeof(float));
    }
    const cs_bn_act_pool blk = {.n = g.n, .h = g.oh, .w = g.ow, .c = c, .p = t->p, .alpha = t->alpha,
                                .gamma = gamma, .beta = beta, .eps = 1e-3f};
    char what[120];
    snprintf(what, sizeof what, "%dx%dx%d k%d -> %d, pool %d", t->ih, t->iw, t->ic, t->k, c, t->p);
    CHECK(cs_conv_block_ok(&g, &blk, &s), "%s: taken by the block path", what);

    /* The other way: the conv's output stored, statistics from it. */
    float *y = malloc(out * sizeof(float)), *mean = malloc(2 * c * sizeof(float)), *inv = mean + c;
    float *mm = calloc(2 * c, sizeof(float)), *mv = mm + c;
    cs_conv_forward(&g, x, w, b, y, &s);
    double *sums = malloc(CS_BN_SUMS(c) * sizeof(double));
    cs_bn_batch_stats(rows, c, y, blk.eps, mean, inv, mm, mv, 0.99f, sums);
    /* This way. */
    double *moments = malloc(cs_conv_block_moment_count(&g) * sizeof(double)),
           *work = malloc(cs_conv_block_work_count(&g, s.workers) * sizeof(double));
    float *mean2 = malloc(2 * c * sizeof(float)), *inv2 = mean2 + c, *mm2 = calloc(2 * c, sizeof(float)),
          *mv2 = mm2 + c;
    cs_conv_block_moments(&g, x, &s, moments, work);
    cs_conv_block_stats(&g, w, b, moments, blk.eps, mean2, inv2, mm2, mv2, 0.99f, sums);
    double scale_m = max_abs(mean, c), e;
    CHECK((e = max_diff(mean, mean2, c)) <= 1e-6 * scale_m, "%s: batch mean off by %.2e (of %.2e)", what, e, scale_m);
    CHECK((e = max_diff(inv, inv2, c) / max_abs(inv, c)) <= 1e-5, "%s: 1/std off by %.2e relative", what, e);
    CHECK((e = max_diff(mv, mv2, c) / max_abs(mv, c)) <= 1e-5, "%s: moving variance off by %.2e relative", what, e);

    /* Forward with the same statistics: the block's values exactly. */
    float *p1 = malloc(pooled * sizeof(float)), *p2 = malloc(pooled * sizeof(float));
    float *wx1 = malloc(pooled * sizeof(float)), *wx2 = malloc(pooled * sizeof(float));
    uint8_t *am1 = malloc(pooled), *am2 = malloc(pooled);
    reference_block(&blk, y, mean, inv, p1, am1, wx1);
    cs_conv_block_forward(&g, x, w, b, &blk, mean, inv, p2, am2, wx2, &s);
    CHECK(memcmp(p1, p2, pooled * sizeof(float)) == 0 && memcmp(am1, am2, pooled) == 0 &&
              memcmp(wx1, wx2, pooled * sizeof(float)) == 0,
          "%s: pooled values, winners and their inputs differ", what);
    cs_bn_act_pool_apply(&blk, y, mean, inv, p2, am2, wx2); /* the block on the stored output */
    CHECK(memcmp(p1, p2, pooled * sizeof(float)) == 0 && memcmp(am1, am2, pooled) == 0 &&
              memcmp(wx1, wx2, pooled * sizeof(float)) == 0,
          "%s: the block on the stored output differs", what);

    /* Backward: the block's parameter gradients and input-gradient constants, and the
     * conv's weight and bias gradients. */
    float *grad_consts = malloc(6 * c * sizeof(float)), *win_grad = malloc(pooled * sizeof(float));
    float *bn1 = calloc(4 * c, sizeof(float)), *bn2 = bn1 + 2 * c; /* dgamma, dbeta each way */
    cs_bn_act_pool_grad gr = {.b = &blk, .x = y, .mean = mean, .inv_std = inv, .argmax = am1, .win_xhat = wx1,
                              .win_grad = win_grad, .scale = grad_consts, .mean_dy = grad_consts + c,
                              .mean_dyx = grad_consts + 2 * c, .sums = sums};
    cs_bn_act_pool_grad gr2 = gr;
    gr2.scale = grad_consts + 3 * c, gr2.mean_dy = grad_consts + 4 * c, gr2.mean_dyx = grad_consts + 5 * c;
    gr2.win_grad = NULL, gr2.x = NULL; /* this way reads neither */
    cs_bn_act_pool_backward_begin(&gr, dpooled, bn1, bn1 + c);
    float *dw1 = calloc(kw, sizeof(float)), *db1 = calloc(c, sizeof(float));
    float *dw2 = calloc(kw, sizeof(float)), *db2 = calloc(c, sizeof(float));
    cs_rows_source src = {cs_bn_act_pool_input_grad, &gr};
    cs_conv_backward_from(&g, x, w, &src, NULL, dw1, db1, &s);
    cs_conv_block_backward(&g, x, w, b, &gr2, dpooled, moments, bn2, bn2 + c, dw2, db2, &s, work);
    const double scale_bn = max_abs(bn1, 2 * c);
    CHECK((e = max_diff(bn1, bn2, 2 * c)) <= 1e-5 * scale_bn, "%s: dgamma/dbeta off by %.2e (of %.2e)", what, e,
          scale_bn);
    CHECK((e = max_diff(grad_consts, grad_consts + 3 * c, 3 * c)) <= 1e-5 * max_abs(grad_consts, 3 * c),
          "%s: batch norm's input-gradient constants off by %.2e", what, e);
    const double scale_w = max_abs(dw1, kw);
    CHECK(scale_w > 1e-3, "%s: a weight gradient to compare (%.2e)", what, scale_w);
    CHECK((e = max_diff(dw1, dw2, kw)) <= 1e-4 * scale_w, "%s: weight gradient off by %.2e (of %.2e)", what, e,
          scale_w);
    /* A conv's bias under batch norm gets no gradient (the batch mean takes it away):
     * both are rounding around 0. */
    CHECK((e = max_abs(db2, c)) <= 1e-4 * scale_w && max_abs(db1, c) <= 1e-4 * scale_w,
          "%s: bias gradient %.2e (the other way %.2e)", what, e, max_abs(db1, c));

    for (int i = 0; i < s.workers; i++) free(s.col[i]), free(s.part[i]), free(s.dy[i]);
    free(x), free(w), free(b), free(gamma), free(beta), free(dpooled), free(y), free(mean), free(mm);
    free(moments), free(sums), free(work), free(mean2), free(mm2), free(p1), free(p2), free(wx1), free(wx2), free(am1), free(am2);
    free(grad_consts), free(win_grad), free(bn1), free(dw1), free(db1), free(dw2), free(db2);
}

static void test_block_matches_stored_output(void)
{
    const block_case cases[] = {
        {.n = 6, .ih = 28, .iw = 28, .ic = 1, .oc = 32, .k = 3, .p = 2, .alpha = 0.3f},
        {.n = 3, .ih = 11, .iw = 11, .ic = 2, .oc = 48, .k = 2, .p = 3, .alpha = 0.3f},
        {.n = 4, .ih = 9, .iw = 10, .ic = 3, .oc = 20, .k = 3, .p = 2, .alpha = 0.0f},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) check_case(&cases[i]);
}

int main(void)
{
    RUN(test_block_matches_stored_output);
    return test_summary("conv_block");
}
