/*
 * test_kernels_pool.c - max, average and global pooling (core/layers/pool2d.c,
 * global_pool.c): output sizes by hand, forwards against a plain double-precision
 * reference over many geometries (odd sizes, asymmetric pads, ceil mode, dilation,
 * both divisors), backwards against central differences.
 */
#include "test.h"
#include "kernels/check.h"

/* ---- output sizes ---------------------------------------------------------------- */

static void test_out_size(void)
{
    CHECK(cs_pool2d_out_size(5, 2, 2, 0, 0, 0) == 2, "floor drops the ragged edge");
    CHECK(cs_pool2d_out_size(5, 2, 2, 0, 0, 1) == 3, "ceil keeps a window on the ragged edge");
    CHECK(cs_pool2d_out_size(6, 3, 2, 1, 1, 1) == 4, "ceil: last window starts inside the input");
    /* 5 + 2 - 2 = 5, ceil(5/2) + 1 = 4, but window 3 would start at padded 6 = the end
     * padding: dropped. */
    CHECK(cs_pool2d_out_size(5, 2, 2, 1, 1, 1) == 3, "ceil: window in the end padding dropped");
    CHECK(cs_pool2d_out_size(5, 2, 2, 1, 1, 0) == 3, "floor with padding");
    CHECK(cs_pool2d_out_size(224, 3, 2, 1, 1, 0) == 112, "ResNet's stem pool");
    CHECK(cs_pool2d_out_size(112, 3, 2, 0, 1, 0) == 56, "asymmetric (TF 'same')");
    CHECK(cs_pool2d_out_size(7, 7, 1, 0, 0, 0) == 1, "window as large as the input");
    CHECK(cs_pool2d_out_size(2, 3, 1, 0, 0, 1) == 0, "window larger than the input");
    CHECK(cs_pool2d_out_size(0, 1, 1, 0, 0, 0) == 0 && cs_pool2d_out_size(4, 0, 1, 0, 0, 0) == 0 &&
              cs_pool2d_out_size(4, 2, 0, 0, 0, 0) == 0 && cs_pool2d_out_size(4, 2, 1, -1, 0, 0) == 0,
          "invalid arguments give 0");
}

static void test_check(void)
{
    cs_pool2d_geom g = {.n = 1, .ih = 5, .iw = 5, .c = 2, .oh = 3, .ow = 3, .kh = 2, .kw = 2, .sh = 2, .sw = 2,
                        .pt = 1, .pl = 1, .pb = 1, .pr = 1};
    CHECK(cs_pool2d_check(&g) == NULL, "valid geometry");
    g.oh = 4; /* window 3 would start at input row 5: all padding */
    CHECK(cs_pool2d_check(&g) != NULL, "a window wholly in the end padding");
    g.oh = 3;
    g.pt = 2;
    CHECK(cs_pool2d_check(&g) != NULL, "padding as large as the window");
    g.pt = 1;
    g.sw = 0;
    CHECK(cs_pool2d_check(&g) != NULL, "zero stride");
    g.sw = 2;
    g.c = 0;
    CHECK(cs_pool2d_check(&g) != NULL, "no channels");
}

/* ---- reference ------------------------------------------------------------------- */

/* Plain loops in double: every window position is visited, padding included, and
 * classified, so the divisor is counted rather than computed from clipped bounds. */
static void ref_pool(const cs_pool2d_geom *g, int is_max, const float *x, double *y)
{
    for (int b = 0; b < g->n; b++)
        for (int oy = 0; oy < g->oh; oy++)
            for (int ox = 0; ox < g->ow; ox++)
                for (int k = 0; k < g->c; k++) {
                    double m = -INFINITY, s = 0;
                    int inside = 0, padded = 0;
                    for (int wy = 0; wy < g->kh; wy++)
                        for (int wx = 0; wx < g->kw; wx++) {
                            int iy = oy * g->sh - g->pt + wy * (g->dh ? g->dh : 1),
                                ix = ox * g->sw - g->pl + wx * (g->dw ? g->dw : 1);
                            if (iy >= -g->pt && iy < g->ih + g->pb && ix >= -g->pl && ix < g->iw + g->pr) padded++;
                            if (iy < 0 || iy >= g->ih || ix < 0 || ix >= g->iw) continue;
                            double v = x[(((size_t)b * g->ih + iy) * g->iw + ix) * g->c + k];
                            inside++;
                            s += v;
                            if (v > m) m = v;
                        }
                    size_t o = (((size_t)b * g->oh + oy) * g->ow + ox) * g->c + k;
                    y[o] = is_max ? m : s / (g->count_include_pad ? padded : inside);
                }
}

typedef struct {
    const cs_pool2d_geom *g;
    int is_max;
    const float *x;
} pool_ctx;

static void eval_pool(void *ctx, float *y)
{
    const pool_ctx *p = ctx;
    if (p->is_max) cs_maxpool2d_forward(p->g, p->x, y);
    else cs_avgpool2d_forward(p->g, p->x, y);
}

/* Forward against the reference; backward against differences (coordinate by
 * coordinate when small). */
static void check_pool(cs_rng *r, const cs_pool2d_geom *g, int is_max, const char *what)
{
    CHECK(cs_pool2d_check(g) == NULL, "%s: check: %s", what, cs_pool2d_check(g));
    const size_t nx = (size_t)g->n * g->ih * g->iw * g->c, ny = (size_t)g->n * g->oh * g->ow * g->c;
    float *x = K_FLOATS(nx), *y = K_FLOATS(ny), *dy = K_FLOATS(ny), *dx = K_FLOATS(nx);
    double *want = K_DOUBLES(ny), *rd = K_DOUBLES(ny);
    if (is_max) k_distinct(r, x, nx);
    else k_uniform(r, x, nx, -1, 1);
    pool_ctx ctx = {g, is_max, x};
    eval_pool(&ctx, y);
    ref_pool(g, is_max, x, want);
    k_compare(what, y, want, ny, 1e-6);
    k_uniform(r, dy, ny, -1, 1);
    for (size_t i = 0; i < ny; i++) rd[i] = dy[i];
    for (size_t i = 0; i < nx; i++) dx[i] = NAN; /* backward must overwrite */
    if (is_max) cs_maxpool2d_backward(g, x, y, dy, dx);
    else cs_avgpool2d_backward(g, dy, dx);
    k_gradcheck(what, eval_pool, &ctx, x, nx, ny, rd, dx, 1e-3, 1e-3, r);
    free(x), free(y), free(dy), free(dx), free(want), free(rd);
}

static void test_pool_hand(void)
{
    /* 1x3x3, 2x2 window, stride 1, pad 1 on every side, ceil off: 4x4 windows.
     * The corner window holds only x[0] = 1: its divisor is 1 or 4. */
    float x[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, y[16];
    cs_pool2d_geom g = {.n = 1, .ih = 3, .iw = 3, .c = 1, .oh = 4, .ow = 4, .kh = 2, .kw = 2, .sh = 1, .sw = 1,
                        .pt = 1, .pl = 1, .pb = 1, .pr = 1};
    cs_avgpool2d_forward(&g, x, y);
    CHECK_NEAR(y[0], 1, 1e-6, "corner, padding excluded");
    CHECK_NEAR(y[5], 3, 1e-6, "interior (1+2+4+5)/4");
    g.count_include_pad = 1;
    cs_avgpool2d_forward(&g, x, y);
    CHECK_NEAR(y[0], 0.25, 1e-6, "corner, padding counted");
    CHECK_NEAR(y[15], 9 / 4.0, 1e-6, "far corner, padding counted");
    cs_maxpool2d_forward(&g, x, y);
    CHECK_NEAR(y[0], 1, 0, "max corner");
    CHECK_NEAR(y[15], 9, 0, "max far corner");
    /* Negative values: padding (-inf) never wins. */
    for (int i = 0; i < 9; i++) x[i] = -x[i];
    cs_maxpool2d_forward(&g, x, y);
    CHECK_NEAR(y[0], -1, 0, "padding never wins");
    CHECK_NEAR(y[5], -1, 0, "max of negatives");

    /* Ceil mode overhang with count_include_pad: 1x6 row (as 1x1x6 pooled 1x3, stride
     * 2, pad 1 each side), last window [5, 8) clipped to the padded end 7: divisor 2. */
    float r6[6] = {1, 1, 1, 1, 1, 1}, o4[4];
    cs_pool2d_geom h = {.n = 1, .ih = 1, .iw = 6, .c = 1, .oh = 1, .ow = 4, .kh = 1, .kw = 3, .sh = 1, .sw = 2,
                        .pl = 1, .pr = 1, .count_include_pad = 1};
    CHECK(cs_pool2d_out_size(6, 3, 2, 1, 1, 1) == 4, "ceil width");
    cs_avgpool2d_forward(&h, r6, o4);
    CHECK_NEAR(o4[0], 2 / 3.0, 1e-6, "first window: one pad of three");
    CHECK_NEAR(o4[3], 0.5, 1e-6, "overhanging window: clipped divisor 2");
}

static void test_pool_ties(void)
{
    /* Equal values: the gradient goes to the first maximum in row-major order only. */
    float x[8] = {3, 1, 3, 3, 2, 2, 2, 2}, y[2], dy[2] = {1, 10}, dx[8];
    cs_pool2d_geom g = {.n = 1, .ih = 2, .iw = 4, .c = 1, .oh = 1, .ow = 2, .kh = 2, .kw = 2, .sh = 2, .sw = 2};
    cs_maxpool2d_forward(&g, x, y);
    cs_maxpool2d_backward(&g, x, y, dy, dx);
    float want[8] = {1, 0, 10, 0, 0, 0, 0, 0};
    for (int i = 0; i < 8; i++) CHECK_NEAR(dx[i], want[i], 0, "first maximum takes the gradient");
    /* Overlapping windows that share a maximum both send it their gradient. */
    float x2[3] = {0, 5, 1}, y2[2], dy2[2] = {1, 2}, dx2[3];
    cs_pool2d_geom o = {.n = 1, .ih = 1, .iw = 3, .c = 1, .oh = 1, .ow = 2, .kh = 1, .kw = 2, .sh = 1, .sw = 1};
    cs_maxpool2d_forward(&o, x2, y2);
    cs_maxpool2d_backward(&o, x2, y2, dy2, dx2);
    CHECK_NEAR(dx2[1], 3, 0, "overlapping windows add");
    CHECK_NEAR(dx2[0] + dx2[2], 0, 0, "the others get nothing");
}

/* Whether some window of g holds no input position, by visiting every tap. */
static int has_empty_window(const cs_pool2d_geom *g)
{
    const int dh = g->dh ? g->dh : 1, dw = g->dw ? g->dw : 1;
    for (int oy = 0; oy < g->oh; oy++)
        for (int ox = 0; ox < g->ow; ox++) {
            int inside = 0;
            for (int wy = 0; wy < g->kh; wy++)
                for (int wx = 0; wx < g->kw; wx++) {
                    int iy = oy * g->sh - g->pt + wy * dh, ix = ox * g->sw - g->pl + wx * dw;
                    inside += iy >= 0 && iy < g->ih && ix >= 0 && ix < g->iw;
                }
            if (!inside) return 1;
        }
    return 0;
}

static void test_pool_random(void)
{
    cs_rng r;
    cs_rng_seed(&r, 11);
    int done = 0, ceil_overhang = 0, tiling = 0, dilated = 0, refused = 0;
    while (done < 240) {
        cs_pool2d_geom g = {.n = 1 + (int)cs_rng_below(&r, 2), .ih = 1 + (int)cs_rng_below(&r, 9),
                            .iw = 1 + (int)cs_rng_below(&r, 9), .c = 1 + (int)cs_rng_below(&r, 4),
                            .kh = 1 + (int)cs_rng_below(&r, 4), .kw = 1 + (int)cs_rng_below(&r, 4),
                            .sh = 1 + (int)cs_rng_below(&r, 3), .sw = 1 + (int)cs_rng_below(&r, 3)};
        /* A quarter of the cases dilated (0 and 1 both mean none). */
        if (cs_rng_below(&r, 4) == 0) g.dh = (int)cs_rng_below(&r, 4), g.dw = (int)cs_rng_below(&r, 4);
        const int eh = (g.kh - 1) * (g.dh ? g.dh : 1) + 1, ew = (g.kw - 1) * (g.dw ? g.dw : 1) + 1;
        g.pt = (int)cs_rng_below(&r, (uint32_t)eh);
        g.pb = (int)cs_rng_below(&r, (uint32_t)eh);
        g.pl = (int)cs_rng_below(&r, (uint32_t)ew);
        g.pr = (int)cs_rng_below(&r, (uint32_t)ew);
        g.count_include_pad = done % 2;
        const int ceil = done / 2 % 2;
        g.oh = cs_pool2d_out_size(g.ih, eh, g.sh, g.pt, g.pb, ceil);
        g.ow = cs_pool2d_out_size(g.iw, ew, g.sw, g.pl, g.pr, ceil);
        if (!g.oh || !g.ow) continue;
        /* Dilated taps can step over the whole input: the check must say so. */
        const int empty = has_empty_window(&g);
        CHECK(!empty == (cs_pool2d_check(&g) == NULL), "check of a geometry with%s an empty window: %s",
              empty ? "" : "out", cs_pool2d_check(&g) ? cs_pool2d_check(&g) : "ok");
        refused += empty;
        if (empty) continue;
        dilated += (g.dh > 1 || g.dw > 1);
        if ((g.oh - 1) * g.sh + eh > g.ih + g.pt + g.pb) ceil_overhang++;
        if (g.sh == g.kh && g.sw == g.kw && eh == g.kh && ew == g.kw)
            tiling += (g.oh - 1) * g.sh - g.pt + g.kh >= g.ih && (g.ow - 1) * g.sw - g.pl + g.kw >= g.iw;
        char what[160];
        snprintf(what, sizeof what, "%s n%d %dx%dx%d k%dx%d s%dx%d d%dx%d pad %d,%d,%d,%d ceil%d incl%d",
                 done % 4 < 2 ? "max" : "avg", g.n, g.ih, g.iw, g.c, g.kh, g.kw, g.sh, g.sw, g.dh, g.dw, g.pt, g.pl,
                 g.pb, g.pr, ceil, g.count_include_pad);
        check_pool(&r, &g, done % 4 < 2, what);
        done++;
    }
    CHECK(ceil_overhang > 10, "the cases include ceil-mode windows past the padding (%d)", ceil_overhang);
    CHECK(dilated > 20 && refused > 0, "the cases include dilated windows (%d) and refused geometries (%d)", dilated,
          refused);
    CHECK(tiling > 3, "the cases include windows that tile the input (%d)", tiling);
}

static void test_pool_wide(void)
{
    /* More channels than one block of the max-pool backward, and a batch large enough
     * to spread over the workers. */
    cs_rng r;
    cs_rng_seed(&r, 12);
    cs_pool2d_geom g = {.n = 2, .ih = 5, .iw = 6, .c = 300, .kh = 3, .kw = 3, .sh = 2, .sw = 2, .pt = 1, .pl = 1,
                        .pb = 1, .pr = 1};
    g.oh = cs_pool2d_out_size(g.ih, 3, 2, 1, 1, 1);
    g.ow = cs_pool2d_out_size(g.iw, 3, 2, 1, 1, 1);
    check_pool(&r, &g, 1, "max wide");
    g.count_include_pad = 1;
    check_pool(&r, &g, 0, "avg wide");
    cs_pool2d_geom big = {.n = 8, .ih = 33, .iw = 31, .c = 16, .kh = 3, .kw = 3, .sh = 2, .sw = 2, .pt = 1, .pl = 1,
                          .pb = 1, .pr = 1};
    big.oh = cs_pool2d_out_size(big.ih, 3, 2, 1, 1, 0);
    big.ow = cs_pool2d_out_size(big.iw, 3, 2, 1, 1, 0);
    check_pool(&r, &big, 1, "max batch");
    check_pool(&r, &big, 0, "avg batch");
    /* Keras' 2x2 pool on odd sizes: side-by-side windows that leave the last row and
     * column out (their gradient is 0), and with ceil mode clip them instead. */
    cs_pool2d_geom keras = {.n = 3, .ih = 11, .iw = 13, .c = 8, .kh = 2, .kw = 2, .sh = 2, .sw = 2};
    for (int ceil = 0; ceil < 2; ceil++) {
        keras.oh = cs_pool2d_out_size(keras.ih, 2, 2, 0, 0, ceil);
        keras.ow = cs_pool2d_out_size(keras.iw, 2, 2, 0, 0, ceil);
        check_pool(&r, &keras, 1, ceil ? "max 2x2 ceil" : "max 2x2 ragged");
        check_pool(&r, &keras, 0, ceil ? "avg 2x2 ceil" : "avg 2x2 ragged");
    }
}

/* ---- global pooling ------------------------------------------------------------------ */

typedef struct {
    int n, h, w, c, is_max;
    const float *x;
} gp_ctx;

static void eval_gp(void *ctx, float *y)
{
    const gp_ctx *p = ctx;
    if (p->is_max) cs_global_maxpool_forward(p->n, p->h, p->w, p->c, p->x, y);
    else cs_global_avgpool_forward(p->n, p->h, p->w, p->c, p->x, y);
}

static void check_global(cs_rng *r, int n, int h, int w, int c, int is_max)
{
    const size_t nx = (size_t)n * h * w * c, ny = (size_t)n * c;
    float *x = K_FLOATS(nx), *y = K_FLOATS(ny), *dy = K_FLOATS(ny), *dx = K_FLOATS(nx);
    double *want = K_DOUBLES(ny), *rd = K_DOUBLES(ny);
    char what[80];
    snprintf(what, sizeof what, "global %s %dx%dx%dx%d", is_max ? "max" : "avg", n, h, w, c);
    k_distinct(r, x, nx);
    gp_ctx ctx = {n, h, w, c, is_max, x};
    eval_gp(&ctx, y);
    for (int b = 0; b < n; b++)
        for (int k = 0; k < c; k++) {
            double m = -INFINITY, s = 0;
            for (int p = 0; p < h * w; p++) {
                double v = x[((size_t)b * h * w + p) * c + k];
                s += v;
                m = v > m ? v : m;
            }
            want[(size_t)b * c + k] = is_max ? m : s / (h * w);
        }
    k_compare(what, y, want, ny, 1e-6);
    k_uniform(r, dy, ny, -1, 1);
    for (size_t i = 0; i < ny; i++) rd[i] = dy[i];
    for (size_t i = 0; i < nx; i++) dx[i] = NAN;
    if (is_max) cs_global_maxpool_backward(n, h, w, c, x, y, dy, dx);
    else cs_global_avgpool_backward(n, h, w, c, dy, dx);
    k_gradcheck(what, eval_gp, &ctx, x, nx, ny, rd, dx, 1e-3, 1e-3, r);
    free(x), free(y), free(dy), free(dx), free(want), free(rd);
}

static void test_global(void)
{
    cs_rng r;
    cs_rng_seed(&r, 13);
    for (int is_max = 0; is_max < 2; is_max++) {
        check_global(&r, 2, 3, 5, 7, is_max);
        check_global(&r, 1, 1, 1, 4, is_max);
        check_global(&r, 3, 7, 7, 300, is_max);
        check_global(&r, 16, 14, 14, 32, is_max);
    }
    /* Ties: the first position takes the gradient. */
    float x[6] = {2, 5, 2, 5, 1, 5}, y[2], dy[2] = {1, 1}, dx[6];
    cs_global_maxpool_forward(1, 1, 3, 2, x, y);
    cs_global_maxpool_backward(1, 1, 3, 2, x, y, dy, dx);
    float want[6] = {1, 1, 0, 0, 0, 0};
    for (int i = 0; i < 6; i++) CHECK_NEAR(dx[i], want[i], 0, "global max ties");
}

int main(void)
{
    RUN(test_out_size);
    RUN(test_check);
    RUN(test_pool_hand);
    RUN(test_pool_ties);
    RUN(test_pool_random);
    RUN(test_pool_wide);
    RUN(test_global);
    return test_summary("kernels_pool");
}
