/*
 * test_conv_general.c - the general 2-D convolution (core/layers/conv_general.c and
 * depthwise.c) against a plain double-precision loop written out here, against central
 * finite differences of its own forward, and against PyTorch.
 *
 * The forward grid crosses kernel shapes (1x1, 3x3, 5x5, 3x1, 1x7), strides (equal
 * and unequal), dilations, paddings (symmetric, asymmetric, 'same' upper and lower),
 * groups (1, 2, 4, depthwise, depthwise with a multiplier), batch 1 and 3, with and
 * without bias, on odd sizes; each case runs on one worker with the scratch it asks
 * for and on the pool's workers with a scratch of a few rows, so chunks end in the
 * middle of image rows. The backward runs on a subset and on layers large enough for
 * the parallel split, and both worker counts must agree.
 */
#include <stdlib.h>

#include "blas.h"
#include "layers/conv_general.h"
#include "parallel.h"
#include "rng.h"
#include "test.h"

#include "conv_reference.h"

#include "data/conv_general/torch_fixture.h"

/* Workers of the pool in the parallel runs: more than this machine's cores is fine,
 * and an odd count gives uneven splits. */
#define POOL 3

static double rel_diff_ff(const float *a, const float *b, size_t n)
{
    double worst = 0, scale = 0;
    for (size_t i = 0; i < n; i++) {
        const double d = fabs((double)a[i] - b[i]);
        if (!(d <= worst)) worst = d;
        if (fabs(b[i]) > scale) scale = fabs(b[i]);
    }
    return scale > 0 ? worst / scale : worst;
}

/* A scratch of `col` floats per worker and part areas for workers > 0. */
static cs_scratch scratch_make(int workers, size_t col, size_t part)
{
    cs_scratch s = {.workers = workers, .col_floats = col, .part_floats = part};
    for (int w = 0; w < workers; w++) {
        s.col[w] = alloc_or_die(col * sizeof(float));
        if (w > 0) s.part[w] = alloc_or_die(part * sizeof(float));
    }
    return s;
}

static void scratch_free(cs_scratch *s)
{
    for (int w = 0; w < CS_MAX_WORKERS; w++) free(s->col[w]), free(s->part[w]);
}

static void describe(const cs_conv2d_geom *g, int bias, char *buf, size_t len)
{
    snprintf(buf, len, "n%d %dx%dx%d->%dx%dx%d k%dx%d s%d,%d d%d,%d pad %d,%d,%d,%d groups %d%s", g->n, g->ih, g->iw,
             g->ic, g->oh, g->ow, g->oc, g->kh, g->kw, g->sh, g->sw, g->dh, g->dw, g->pt, g->pl, g->pb, g->pr,
             g->groups, bias ? " bias" : "");
}

/* Runs the forward with `workers` and the scratch size `col`, checks it against ref. */
static void check_forward_with(const cs_conv2d_geom *g, const float *x, const float *w, const float *b,
                               const double *ref, int workers, size_t col, const char *what)
{
    cs_scratch s = scratch_make(workers, col, cs_conv2d_part_floats(g));
    float *y = alloc_or_die(out_floats(g) * sizeof(float));
    for (size_t i = 0; i < out_floats(g); i++) y[i] = NAN; /* every output must be written */
    const int rc = cs_conv2d_forward(g, x, w, b, y, &s);
    double e;
    CHECK(rc == 0, "%s: forward returned %d", what, rc);
    CHECK((e = rel_diff(y, ref, out_floats(g))) < 1e-4, "%s (%d workers, %zu scratch floats): output off by %.2e",
          what, workers, col, e);
    free(y);
    scratch_free(&s);
}

static int checked_forward;

static void check_forward(const cs_conv2d_geom *g, int bias, uint64_t seed)
{
    cs_rng r;
    cs_rng_seed(&r, seed);
    float *x = random_floats(&r, in_floats(g)), *w = random_floats(&r, w_floats(g)),
          *b = bias ? random_floats(&r, (size_t)g->oc) : NULL;
    double *ref = alloc_or_die(out_floats(g) * sizeof(double));
    ref_forward(g, x, w, b, ref);
    char what[200];
    describe(g, bias, what, sizeof what);
    check_forward_with(g, x, w, b, ref, 1, cs_conv2d_scratch_floats(g), what);
    /* A few rows per chunk: chunks end mid-row and mid-image. */
    check_forward_with(g, x, w, b, ref, POOL, 7 * cs_conv2d_min_scratch_floats(g), what);
    checked_forward++;
    free(x), free(w), free(b), free(ref);
}

/* L = sum(y * r) in double, from the implementation's own float forward. */
static double projection(const cs_conv2d_geom *g, const float *x, const float *w, const float *b, const float *r,
                         float *y, const cs_scratch *s)
{
    cs_conv2d_forward(g, x, w, b, y, s);
    double l = 0;
    for (size_t i = 0; i < out_floats(g); i++) l += (double)y[i] * r[i];
    return l;
}

/* Central difference of L along one coordinate of v (x, w or b). L is linear in each,
 * so the only error is float rounding in the forward. */
static double central_diff(const cs_conv2d_geom *g, float *x, float *w, float *b, const float *r, float *v, size_t i,
                           float *y, const cs_scratch *s)
{
    const float h = 0.05f, keep = v[i];
    v[i] = keep + h;
    const double up = projection(g, x, w, b, r, y, s);
    v[i] = keep - h;
    const double down = projection(g, x, w, b, r, y, s);
    v[i] = keep;
    return (up - down) / (2.0 * h);
}

static int checked_backward, checked_parallel;

/* Backward on one worker and on the pool; both against the reference's analytic
 * gradient, against each other, and a sample of coordinates against central
 * differences. `parallel`: the layer is large enough that the pool must have split
 * the weight gradient (worker 1's partial area shows it). */
static void check_backward(const cs_conv2d_geom *g, int bias, uint64_t seed, int parallel)
{
    cs_rng r;
    cs_rng_seed(&r, seed);
    float *x = random_floats(&r, in_floats(g)), *w = random_floats(&r, w_floats(g)),
          *b = bias ? random_floats(&r, (size_t)g->oc) : NULL, *dy = random_floats(&r, out_floats(g));
    double *rdx = alloc_or_die(in_floats(g) * sizeof(double)), *rdw = alloc_or_die(w_floats(g) * sizeof(double)),
           *rdb = alloc_or_die((size_t)g->oc * sizeof(double));
    ref_backward(g, x, w, dy, rdx, rdw, rdb);
    char what[200];
    describe(g, bias, what, sizeof what);

    float *dx[2], *dw[2], *db[2];
    const int workers[2] = {1, POOL};
    for (int k = 0; k < 2; k++) {
        cs_scratch s = scratch_make(workers[k], cs_conv2d_scratch_floats(g), cs_conv2d_part_floats(g));
        if (k == 1)
            for (size_t i = 0; i < s.part_floats; i++) s.part[1][i] = NAN;
        dx[k] = alloc_or_die(in_floats(g) * sizeof(float));
        dw[k] = alloc_or_die(w_floats(g) * sizeof(float));
        db[k] = alloc_or_die((size_t)g->oc * sizeof(float));
        for (size_t i = 0; i < in_floats(g); i++) dx[k][i] = NAN; /* overwritten, every element */
        /* dw/db are added to: start from 1 and take it off afterwards. */
        for (size_t i = 0; i < w_floats(g); i++) dw[k][i] = 1.0f;
        for (int o = 0; o < g->oc; o++) db[k][o] = 1.0f;
        const int rc = cs_conv2d_backward(g, x, w, dy, dx[k], dw[k], db[k], &s);
        CHECK(rc == 0, "%s: backward returned %d", what, rc);
        for (size_t i = 0; i < w_floats(g); i++) dw[k][i] -= 1.0f;
        for (int o = 0; o < g->oc; o++) db[k][o] -= 1.0f;
        double e;
        CHECK((e = rel_diff(dx[k], rdx, in_floats(g))) < 1e-4, "%s (%d workers): dx off by %.2e", what, workers[k], e);
        CHECK((e = rel_diff(dw[k], rdw, w_floats(g))) < 1e-4, "%s (%d workers): dw off by %.2e", what, workers[k], e);
        CHECK((e = rel_diff(db[k], rdb, (size_t)g->oc)) < 1e-4, "%s (%d workers): db off by %.2e", what, workers[k],
              e);
        if (k == 1 && parallel) {
            int touched = 1;
            for (size_t i = 0; i < s.part_floats; i++)
                if (isnan(s.part[1][i])) touched = 0;
            CHECK(touched, "%s: worker 1 did not sum a share of the weight gradient", what);
            checked_parallel += touched;
        }
        if (k == 0) { /* finite differences, on one worker */
            float *y = alloc_or_die(out_floats(g) * sizeof(float));
            for (int t = 0; t < 6; t++) {
                const size_t ix = cs_rng_next(&r) % in_floats(g), wi = cs_rng_next(&r) % w_floats(g);
                double fd = central_diff(g, x, w, b, dy, x, ix, y, &s);
                CHECK(fabs(fd - dx[0][ix]) <= 2e-3 * (1 + fabs(fd)), "%s: dx[%zu] %.6g, finite difference %.6g", what,
                      ix, dx[0][ix], fd);
                fd = central_diff(g, x, w, b, dy, w, wi, y, &s);
                CHECK(fabs(fd - dw[0][wi]) <= 2e-3 * (1 + fabs(fd)), "%s: dw[%zu] %.6g, finite difference %.6g", what,
                      wi, dw[0][wi], fd);
                if (b) {
                    const size_t o = cs_rng_next(&r) % (size_t)g->oc;
                    fd = central_diff(g, x, w, b, dy, b, o, y, &s);
                    CHECK(fabs(fd - db[0][o]) <= 2e-3 * (1 + fabs(fd)), "%s: db[%zu] %.6g, finite difference %.6g",
                          what, o, db[0][o], fd);
                }
            }
            free(y);
        }
        scratch_free(&s);
    }
    double e;
    CHECK((e = rel_diff_ff(dx[1], dx[0], in_floats(g))) < 1e-5, "%s: dx of 1 and %d workers differ by %.2e", what,
          POOL, e);
    CHECK((e = rel_diff_ff(dw[1], dw[0], w_floats(g))) < 1e-5, "%s: dw of 1 and %d workers differ by %.2e", what,
          POOL, e);
    CHECK((e = rel_diff_ff(db[1], db[0], (size_t)g->oc)) < 1e-5, "%s: db of 1 and %d workers differ by %.2e", what,
          POOL, e);
    checked_backward++;
    for (int k = 0; k < 2; k++) free(dx[k]), free(dw[k]), free(db[k]);
    free(x), free(w), free(b), free(dy), free(rdx), free(rdw), free(rdb);
}

/* A geometry from the input, kernel, stride, dilation, padding mode and groups;
 * pads: 0 symmetric 1 (kernel rows / 2 for odd kernels), 1 asymmetric (0, 1, 1, 0),
 * 2 'same' upper, 3 'same' lower. Returns 0 when the window does not fit. */
static int make_geom(cs_conv2d_geom *g, int n, int ih, int iw, int ic, int oc, int kh, int kw, int sh, int sw,
                     int dh, int dw, int pads, int groups)
{
    *g = (cs_conv2d_geom){.n = n, .ih = ih, .iw = iw, .ic = ic, .oc = oc, .kh = kh, .kw = kw, .sh = sh, .sw = sw,
                          .dh = dh, .dw = dw, .groups = groups};
    switch (pads) {
    case 0: g->pt = g->pb = kh / 2, g->pl = g->pr = kw / 2; break;
    case 1: g->pt = 0, g->pl = 1, g->pb = 1, g->pr = 0; break;
    default:
        cs_conv2d_same_pads(ih, kh, sh, dh, pads == 2, &g->pt, &g->pb);
        cs_conv2d_same_pads(iw, kw, sw, dw, pads == 2, &g->pl, &g->pr);
    }
    g->oh = cs_conv2d_out_size(ih, kh, sh, dh, g->pt, g->pb);
    g->ow = cs_conv2d_out_size(iw, kw, sw, dw, g->pl, g->pr);
    return g->oh > 0 && g->ow > 0;
}

static const int kernels[][2] = {{1, 1}, {3, 3}, {5, 5}, {3, 1}, {1, 7}};
static const int strides[][2] = {{1, 1}, {2, 2}, {1, 2}, {2, 1}};
static const int dilations[][2] = {{1, 1}, {2, 2}, {2, 1}};
/* {ic, oc, groups}: ic 12 so that 4 groups have 3 channels each. */
static const int groupings[][3] = {{12, 8, 1}, {12, 8, 2}, {12, 8, 4}, {12, 12, 12}, {12, 24, 12}};

static void test_forward_grid(void)
{
    int i = 0, misfits = 0;
    for (size_t k = 0; k < sizeof kernels / sizeof kernels[0]; k++)
        for (size_t s = 0; s < sizeof strides / sizeof strides[0]; s++)
            for (size_t d = 0; d < sizeof dilations / sizeof dilations[0]; d++)
                for (int p = 0; p < 4; p++)
                    for (size_t gr = 0; gr < sizeof groupings / sizeof groupings[0]; gr++, i++) {
                        const int n = i % 2 ? 3 : 1, bias = (i / 2 + i / 5) % 2;
                        cs_conv2d_geom g;
                        if (!make_geom(&g, n, 9, 11, groupings[gr][0], groupings[gr][1], kernels[k][0], kernels[k][1],
                                       strides[s][0], strides[s][1], dilations[d][0], dilations[d][1], p,
                                       groupings[gr][2])) {
                            /* The window is larger than the padded input: refused, not computed. */
                            char err[200] = "";
                            CHECK(cs_conv2d_check(&g, err, sizeof err) != 0 && strstr(err, "does not fit"),
                                  "case %d: a misfit accepted (%s)", i, err);
                            misfits++;
                            continue;
                        }
                        char err[200] = "";
                        CHECK(cs_conv2d_check(&g, err, sizeof err) == 0, "case %d: %s", i, err);
                        check_forward(&g, bias, 1000 + (uint64_t)i);
                    }
    fprintf(stderr, "  (%d geometries computed, %d misfits refused)\n", checked_forward, misfits);
    CHECK(checked_forward > 1100, "only %d geometries computed", checked_forward);
}

/* Depthwise layers wide enough for every block of the channel loops (64, 32, 16, the
 * rest) and rows long enough for the four-pixel interior kernel, forward and backward. */
static void test_depthwise(void)
{
    static const int shapes[][8] = {
        /* ic, mult, kh, kw, sh, sw, pads, dilation */
        {84, 1, 3, 3, 1, 1, 2, 1}, {84, 1, 3, 3, 2, 2, 2, 1}, {84, 1, 3, 3, 2, 2, 3, 1}, {96, 1, 5, 5, 1, 1, 0, 1},
        {96, 1, 3, 3, 1, 1, 0, 2}, {20, 1, 3, 3, 1, 2, 1, 1}, {33, 3, 3, 3, 2, 2, 2, 1}, {5, 2, 1, 7, 1, 1, 2, 1},
        {16, 1, 9, 9, 1, 1, 2, 1}, /* 81 taps: summed in two pieces */
        {1, 40, 3, 3, 1, 1, 0, 1}, /* one input channel: a first layer, 32 + 8 outputs */
        {3, 16, 3, 3, 2, 1, 3, 2}, {2, 32, 5, 3, 1, 1, 2, 1},
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const int *t = shapes[i];
        cs_conv2d_geom g;
        CHECK(make_geom(&g, 2, 13, 17, t[0], t[0] * t[1], t[2], t[3], t[4], t[5], t[7], t[7], t[6], t[0]),
              "shape %zu fits", i);
        check_forward(&g, (int)(i % 2), 2000 + i);
        check_backward(&g, (int)(i % 2), 2100 + i, 0);
    }
}

static void test_backward(void)
{
    /* Every 11th geometry of the forward grid (the stride of the walk makes it reach
     * every kernel, stride, padding and grouping). */
    int i = 0;
    for (size_t k = 0; k < sizeof kernels / sizeof kernels[0]; k++)
        for (size_t s = 0; s < sizeof strides / sizeof strides[0]; s++)
            for (size_t d = 0; d < sizeof dilations / sizeof dilations[0]; d++)
                for (int p = 0; p < 4; p++)
                    for (size_t gr = 0; gr < sizeof groupings / sizeof groupings[0]; gr++, i++) {
                        if (i % 11) continue;
                        cs_conv2d_geom g;
                        if (!make_geom(&g, i % 2 ? 3 : 1, 9, 11, groupings[gr][0], groupings[gr][1], kernels[k][0],
                                       kernels[k][1], strides[s][0], strides[s][1], dilations[d][0], dilations[d][1],
                                       p, groupings[gr][2]))
                            continue;
                        check_backward(&g, i % 3 != 0, 3000 + (uint64_t)i, 0);
                    }
    fprintf(stderr, "  (%d geometries from the grid)\n", checked_backward);
    CHECK(checked_backward >= 90, "only %d geometries", checked_backward);
}

/* Layers with enough work that the pool splits them, forward and backward. */
static void test_backward_parallel(void)
{
    static const int shapes[][12] = {
        /* n, ih, iw, ic, oc, k, stride, dilation, pads, groups, pointwise expected */
        {3, 21, 19, 16, 32, 3, 1, 1, 2, 1},  {3, 33, 31, 16, 32, 3, 2, 2, 1, 2}, {3, 20, 20, 32, 32, 3, 1, 1, 3, 4},
        {3, 30, 30, 64, 64, 1, 1, 1, 2, 1},  {2, 30, 30, 64, 64, 1, 1, 1, 2, 2}, {2, 24, 24, 48, 48, 3, 1, 1, 2, 48},
        {3, 25, 23, 40, 80, 3, 2, 1, 2, 40}, {2, 26, 26, 80, 80, 5, 1, 2, 0, 80},
    };
    checked_parallel = 0;
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const int *t = shapes[i];
        cs_conv2d_geom g;
        CHECK(make_geom(&g, t[0], t[1], t[2], t[3], t[4], t[5], t[5], t[6], t[6], t[7], t[7], t[8], t[9]),
              "shape %zu fits", i);
        check_forward(&g, (int)(i % 2), 4100 + i);
        check_backward(&g, 1, 4000 + i, 1);
    }
    CHECK(checked_parallel == (int)(sizeof shapes / sizeof shapes[0]), "%d of %zu split", checked_parallel,
          sizeof shapes / sizeof shapes[0]);
}

/* Only the gradients asked for are written. */
static void test_backward_partial(void)
{
    cs_conv2d_geom gs[2];
    make_geom(&gs[0], 2, 9, 8, 6, 4, 3, 3, 2, 1, 1, 2, 1, 2);
    make_geom(&gs[1], 2, 9, 8, 6, 12, 3, 3, 1, 2, 2, 1, 2, 6);
    for (int k = 0; k < 2; k++) {
        const cs_conv2d_geom *g = &gs[k];
        cs_rng r;
        cs_rng_seed(&r, 77);
        float *x = random_floats(&r, in_floats(g)), *w = random_floats(&r, w_floats(g)),
              *dy = random_floats(&r, out_floats(g));
        float *dx = alloc_or_die(in_floats(g) * sizeof(float)), *dw = alloc_or_die(w_floats(g) * sizeof(float)),
              *db = alloc_or_die((size_t)g->oc * sizeof(float));
        double *rdx = alloc_or_die(in_floats(g) * sizeof(double)), *rdw = alloc_or_die(w_floats(g) * sizeof(double)),
               *rdb = alloc_or_die((size_t)g->oc * sizeof(double));
        ref_backward(g, x, w, dy, rdx, rdw, rdb);
        cs_scratch s = scratch_make(2, cs_conv2d_scratch_floats(g), cs_conv2d_part_floats(g));
        double e;
        CHECK(cs_conv2d_backward(g, x, w, dy, dx, NULL, NULL, &s) == 0, "dx only");
        CHECK((e = rel_diff(dx, rdx, in_floats(g))) < 1e-4, "dx alone off by %.2e", e);
        CHECK(cs_conv2d_backward(g, x, w, dy, NULL, dw, NULL, &s) == 0, "dw only");
        CHECK((e = rel_diff(dw, rdw, w_floats(g))) < 1e-4, "dw alone off by %.2e", e);
        CHECK(cs_conv2d_backward(g, x, w, dy, NULL, NULL, db, &s) == 0, "db only");
        CHECK((e = rel_diff(db, rdb, (size_t)g->oc)) < 1e-4, "db alone off by %.2e", e);
        /* A second call adds: twice the gradient. */
        CHECK(cs_conv2d_backward(g, x, w, dy, NULL, dw, db, &s) == 0, "dw and db");
        for (size_t i = 0; i < w_floats(g); i++) rdw[i] *= 2;
        for (int o = 0; o < g->oc; o++) rdb[o] *= 2;
        CHECK((e = rel_diff(dw, rdw, w_floats(g))) < 1e-4, "dw added off by %.2e", e);
        CHECK((e = rel_diff(db, rdb, (size_t)g->oc)) < 1e-4, "db added off by %.2e", e);
        scratch_free(&s);
        free(x), free(w), free(dy), free(dx), free(dw), free(db), free(rdx), free(rdw), free(rdb);
    }
}

static void test_sizes(void)
{
    /* out = floor((in + pads - ((k - 1) * d + 1)) / s) + 1 */
    CHECK(cs_conv2d_out_size(28, 3, 1, 1, 0, 0) == 26, "valid 3x3");
    CHECK(cs_conv2d_out_size(224, 7, 2, 1, 3, 3) == 112, "ResNet stem");
    CHECK(cs_conv2d_out_size(112, 3, 2, 1, 0, 1) == 56, "MobileNet, TF-style pads");
    CHECK(cs_conv2d_out_size(9, 3, 1, 4, 0, 0) == 1, "dilation 4: span 9 of 9");
    CHECK(cs_conv2d_out_size(10, 3, 1, 4, 0, 0) == 2, "dilation 4: span 9 of 10");
    CHECK(cs_conv2d_out_size(8, 3, 1, 4, 0, 0) == -1, "dilation 4: span 9 of 8");
    CHECK(cs_conv2d_out_size(8, 3, 0, 1, 0, 0) == -1, "stride 0");
    CHECK(cs_conv2d_out_size(8, 3, 1, 1, -1, 0) == -1, "negative pad");
    int b, e;
    /* in 10, k 3, s 2: out 5, padded span (5-1)*2+3 = 11, one pad. */
    cs_conv2d_same_pads(10, 3, 2, 1, 1, &b, &e);
    CHECK(b == 0 && e == 1, "same upper 10/3/2: %d %d", b, e);
    cs_conv2d_same_pads(10, 3, 2, 1, 0, &b, &e);
    CHECK(b == 1 && e == 0, "same lower 10/3/2: %d %d", b, e);
    /* in 7, k 4, s 1: 3 pads, the odd one at the end (upper) or the beginning (lower). */
    cs_conv2d_same_pads(7, 4, 1, 1, 1, &b, &e);
    CHECK(b == 1 && e == 2, "same upper 7/4/1: %d %d", b, e);
    cs_conv2d_same_pads(7, 4, 1, 1, 0, &b, &e);
    CHECK(b == 2 && e == 1, "same lower 7/4/1: %d %d", b, e);
    /* Dilation 2 makes a 5-tap kernel span 9: 8 pads at stride 1. */
    cs_conv2d_same_pads(9, 5, 1, 2, 1, &b, &e);
    CHECK(b == 4 && e == 4, "same dilated: %d %d", b, e);
    /* Stride larger than the kernel: no padding. */
    cs_conv2d_same_pads(8, 1, 2, 1, 1, &b, &e);
    CHECK(b == 0 && e == 0, "same 1x1 stride 2: %d %d", b, e);
    for (int in = 1; in < 30; in++)
        for (int s = 1; s < 4; s++)
            for (int k = 1; k < 6; k++) {
                cs_conv2d_same_pads(in, k, s, 1, in % 2, &b, &e);
                CHECK(cs_conv2d_out_size(in, k, s, 1, b, e) == (in + s - 1) / s, "same: in %d k %d s %d", in, k, s);
            }
}

static void test_bad_input(void)
{
    cs_conv2d_geom ok;
    make_geom(&ok, 1, 8, 8, 4, 6, 3, 3, 1, 1, 1, 1, 2, 2);
    char err[200];
    CHECK(cs_conv2d_check(&ok, err, sizeof err) == 0, "a good geometry refused");
    /* What each spoiled copy of `ok` below is, and a word its error must contain. */
    static const struct {
        const char *what, *says;
    } bad[] = {
        {"groups not dividing", "groups"}, {"wrong output size", "give"}, {"stride 0", "at least 1"},
        {"negative pad", "negative"},      {"no channels", "positive"},   {"huge padding", "too large"},
        {"huge dilation", "too large"},
    };
    enum { BAD = sizeof bad / sizeof bad[0] };
    cs_conv2d_geom g[BAD];
    for (int i = 0; i < BAD; i++) g[i] = ok;
    g[0].groups = 4;   /* 4 input channels, 6 outputs */
    g[1].oh = 7;       /* the pads give 8 */
    g[2].sw = 0;
    g[3].pl = -1;
    g[4].ic = 0;
    g[5].pt = g[5].pb = INT32_MAX / 2; /* output rows would still fit an int: refused all the same */
    g[5].oh = cs_conv2d_out_size(g[5].ih, g[5].kh, g[5].sh, g[5].dh, g[5].pt, g[5].pb);
    g[6].dw = INT32_MAX / 2;
    float x[8 * 8 * 4] = {0}, w[3 * 3 * 2 * 6] = {0}, y[8 * 8 * 6];
    cs_scratch s = scratch_make(1, cs_conv2d_scratch_floats(&ok), 0);
    for (int i = 0; i < BAD; i++) {
        err[0] = 0;
        CHECK(cs_conv2d_check(&g[i], err, sizeof err) != 0 && strstr(err, bad[i].says), "%s: accepted or unclear (%s)",
              bad[i].what, err);
        CHECK(cs_conv2d_forward(&g[i], x, w, NULL, y, &s) == -1, "%s: forward ran", bad[i].what);
        CHECK(cs_conv2d_backward(&g[i], x, w, y, x, w, NULL, &s) == -1, "%s: backward ran", bad[i].what);
    }
    CHECK(cs_conv2d_check(NULL, err, sizeof err) != 0, "no geometry");
    CHECK(cs_conv2d_forward(&ok, NULL, w, NULL, y, &s) == -1, "no input");
    CHECK(cs_conv2d_forward(&ok, x, w, NULL, NULL, &s) == -1, "no output");
    CHECK(cs_conv2d_forward(&ok, x, w, NULL, y, NULL) == -1, "no scratch");
    cs_scratch small = s;
    small.col_floats = cs_conv2d_min_scratch_floats(&ok) - 1;
    CHECK(cs_conv2d_forward(&ok, x, w, NULL, y, &small) == -1, "a scratch smaller than one row");
    cs_scratch missing = s;
    missing.workers = 2; /* col[1] is NULL */
    CHECK(cs_conv2d_forward(&ok, x, w, NULL, y, &missing) == -1, "a worker without scratch");
    CHECK(cs_conv2d_forward(&ok, x, w, NULL, y, &s) == 0, "the good geometry runs");
    scratch_free(&s);
}

/* Float arrays the fixture holds, compared to 1e-4 of their largest value. */
static void check_against(const char *what, const float *got, const float *want, size_t n)
{
    double worst = 0, scale = 0;
    for (size_t i = 0; i < n; i++) {
        const double d = fabs((double)got[i] - want[i]);
        if (!(d <= worst)) worst = d;
        if (fabs(want[i]) > scale) scale = fabs(want[i]);
    }
    CHECK(scale > 0 && worst <= 1e-4 * scale, "%s: off by %.3g (largest %.3g)", what, worst, scale);
}

/* The layers of tests/data/conv_general/torch_fixture.h, computed by PyTorch's
 * conv2d with its autograd gradients (tests/conv_general/make_fixture.py). */
static void test_torch_fixture(void)
{
    for (int c = 0; c < TORCH_FIXTURE_CASES; c++) {
        const torch_fixture_case *t = &torch_fixture[c];
        const cs_conv2d_geom g = {.n = t->n, .ih = t->ih, .iw = t->iw, .ic = t->ic, .oh = t->oh, .ow = t->ow,
                                  .oc = t->oc, .kh = t->kh, .kw = t->kw, .sh = t->sh, .sw = t->sw, .dh = t->dh,
                                  .dw = t->dw, .pt = t->pt, .pl = t->pl, .pb = t->pb, .pr = t->pr,
                                  .groups = t->groups};
        char err[200] = "";
        CHECK(cs_conv2d_check(&g, err, sizeof err) == 0, "%s: %s", t->name, err);
        if (err[0]) continue;
        cs_scratch s = scratch_make(2, cs_conv2d_scratch_floats(&g), cs_conv2d_part_floats(&g));
        float *y = alloc_or_die(out_floats(&g) * sizeof(float)), *dx = alloc_or_die(in_floats(&g) * sizeof(float)),
              *dw = alloc_or_die(w_floats(&g) * sizeof(float)), *db = alloc_or_die((size_t)g.oc * sizeof(float));
        CHECK(cs_conv2d_forward(&g, t->x, t->w, t->b, y, &s) == 0, "%s: forward", t->name);
        CHECK(cs_conv2d_backward(&g, t->x, t->w, t->dy, dx, dw, db, &s) == 0, "%s: backward", t->name);
        char what[120];
        snprintf(what, sizeof what, "%s output", t->name);
        check_against(what, y, t->y, out_floats(&g));
        snprintf(what, sizeof what, "%s input gradient", t->name);
        check_against(what, dx, t->grad_x, in_floats(&g));
        snprintf(what, sizeof what, "%s kernel gradient", t->name);
        check_against(what, dw, t->grad_w, w_floats(&g));
        snprintf(what, sizeof what, "%s bias gradient", t->name);
        check_against(what, db, t->grad_b, (size_t)g.oc);
        /* The layout change ONNX weights need, against PyTorch's own layout. */
        float *hwio = alloc_or_die(w_floats(&g) * sizeof(float)), *oihw = alloc_or_die(w_floats(&g) * sizeof(float));
        cs_conv2d_kernel_from_oihw(&g, t->w_oihw, hwio);
        CHECK(memcmp(hwio, t->w, w_floats(&g) * sizeof(float)) == 0, "%s: kernel from (o, i, h, w)", t->name);
        cs_conv2d_kernel_to_oihw(&g, t->w, oihw);
        CHECK(memcmp(oihw, t->w_oihw, w_floats(&g) * sizeof(float)) == 0, "%s: kernel to (o, i, h, w)", t->name);
        free(hwio), free(oihw);
        scratch_free(&s);
        free(y), free(dx), free(dw), free(db);
    }
}

int main(int argc, char **argv)
{
    if (cs_blas_init(argc, argv) != 0) return 1;
    cs_blas_set_threads(1); /* the pool splits the work; sgemm runs on each worker alone */
    cs_parallel_set_threads(POOL);
    RUN(test_sizes);
    RUN(test_bad_input);
    RUN(test_forward_grid);
    RUN(test_depthwise);
    RUN(test_backward);
    RUN(test_backward_parallel);
    RUN(test_backward_partial);
    RUN(test_torch_fixture);
    return test_summary("conv_general");
}
