/*
 * test_conv_kernels.c - both ways conv.c computes a convolution, against a plain
 * double-precision loop written out here.
 *
 * Stride-1 'valid' layers run direct AVX-512 kernels (conv_avx512.c) where the CPU
 * has them, every other layer im2col + sgemm; cs_conv_force_im2col() sends any layer
 * the second way. Each geometry below is computed both ways, with two workers, and
 * every output, input gradient, weight gradient and bias gradient is compared with
 * the reference. The geometries cover whole tiles (conv2d_2's own shape), channel
 * counts that leave a masked vector at the end of a tile, more than one tile of
 * outputs or of a kernel row, and row counts that leave a short last group.
 * Layers of at most 32 taps take a direct kernel of conv.c's own on any CPU.
 */
#include <stdlib.h>

#include "layers.h"
#include "rng.h"
#include "simd.h"
#include "test.h"

#include "conv_reference.h"

typedef struct {
    int n, ih, iw, ic, oc, k;
} geometry;

static cs_conv_geom geom_of(const geometry *t)
{
    return (cs_conv_geom){.n = t->n, .ih = t->ih, .iw = t->iw, .ic = t->ic, .oh = t->ih - t->k + 1,
                          .ow = t->iw - t->k + 1, .oc = t->oc, .k = t->k, .stride = 1};
}

/* The reference: every sum in double, straight from the definition. */
static void reference(const cs_conv_geom *g, const float *x, const float *w, const float *b, const float *dy,
                      double *y, double *dx, double *dw, double *db)
{
    const int k = g->k, ic = g->ic, oc = g->oc;
    for (size_t i = 0; i < (size_t)g->n * g->ih * g->iw * ic; i++) dx[i] = 0;
    for (size_t i = 0; i < (size_t)k * k * ic * oc; i++) dw[i] = 0;
    for (int o = 0; o < oc; o++) db[o] = 0;
    for (int n = 0; n < g->n; n++)
        for (int oy = 0; oy < g->oh; oy++)
            for (int ox = 0; ox < g->ow; ox++) {
                const size_t r = ((size_t)n * g->oh + oy) * g->ow + ox;
                for (int o = 0; o < oc; o++) {
                    double s = b[o], d = dy[r * oc + o];
                    db[o] += d;
                    for (int ky = 0; ky < k; ky++)
                        for (int kx = 0; kx < k; kx++)
                            for (int c = 0; c < ic; c++) {
                                const size_t xi = (((size_t)n * g->ih + oy + ky) * g->iw + ox + kx) * ic + c;
                                const size_t wi = (((size_t)ky * k + kx) * ic + c) * oc + o;
                                s += (double)x[xi] * w[wi];
                                dx[xi] += d * w[wi];
                                dw[wi] += d * x[xi];
                            }
                    y[r * oc + o] = s;
                }
            }
}

static void check_geometry(const geometry *t, int force_im2col)
{
    const cs_conv_geom g = geom_of(t);
    const size_t in = (size_t)g.n * g.ih * g.iw * g.ic, out = (size_t)g.n * g.oh * g.ow * g.oc,
                 kw = (size_t)g.k * g.k * g.ic * g.oc;
    cs_rng r;
    cs_rng_seed(&r, (uint64_t)(t->ic * 131 + t->oc));
    float *x = random_floats(&r, in), *w = random_floats(&r, kw), *b = random_floats(&r, (size_t)g.oc),
          *dy = random_floats(&r, out);
    float *y = malloc(out * sizeof(float)), *dx = malloc(in * sizeof(float)), *dw = calloc(kw, sizeof(float)),
          *db = calloc((size_t)g.oc, sizeof(float));
    double *ry = malloc(out * sizeof(double)), *rdx = malloc(in * sizeof(double)),
           *rdw = malloc(kw * sizeof(double)), *rdb = malloc((size_t)g.oc * sizeof(double));
    reference(&g, x, w, b, dy, ry, rdx, rdw, rdb);

    /* Two workers, with the scratch training gives them. */
    const size_t col_floats = 512 * (size_t)g.k * g.k * g.ic > kw ? 512 * (size_t)g.k * g.k * g.ic : kw;
    cs_scratch s = {.workers = 2, .col_floats = col_floats, .part_floats = kw + g.oc};
    for (int i = 0; i < 2; i++) s.col[i] = malloc(col_floats * sizeof(float));
    s.part[1] = malloc(s.part_floats * sizeof(float));

    cs_conv_force_im2col(force_im2col);
    cs_conv_forward(&g, x, w, b, y, &s);
    for (size_t i = 0; i < in; i++) dx[i] = NAN; /* the backward must overwrite every element */
    cs_conv_backward(&g, x, w, dy, dx, dw, db, &s);
    cs_conv_force_im2col(0);

    const char *way = force_im2col ? "im2col" : "direct";
    char what[160];
    snprintf(what, sizeof what, "%s, %dx%dx%d -> %d (k %d, n %d)", way, t->ih, t->iw, t->ic, t->oc, t->k, t->n);
    double e;
    CHECK((e = rel_diff(y, ry, out)) < 1e-5, "%s: output off by %.2e", what, e);
    CHECK((e = rel_diff(dx, rdx, in)) < 1e-5, "%s: input gradient off by %.2e", what, e);
    CHECK((e = rel_diff(dw, rdw, kw)) < 1e-5, "%s: weight gradient off by %.2e", what, e);
    CHECK((e = rel_diff(db, rdb, (size_t)g.oc)) < 1e-5, "%s: bias gradient off by %.2e", what, e);

    for (int i = 0; i < 2; i++) free(s.col[i]);
    free(s.part[1]);
    free(x), free(w), free(b), free(dy), free(y), free(dx), free(dw), free(db);
    free(ry), free(rdx), free(rdw), free(rdb);
}

static const geometry cases[] = {
    {.n = 5, .ih = 13, .iw = 13, .ic = 32, .oc = 64, .k = 3}, /* conv2d_2: whole tiles, 605 rows */
    {.n = 3, .ih = 9, .iw = 7, .ic = 5, .oc = 70, .k = 3},    /* a masked last vector of outputs and of taps */
    {.n = 2, .ih = 8, .iw = 8, .ic = 40, .oc = 16, .k = 3},   /* a kernel row of 120 taps: two tiles */
    {.n = 1, .ih = 6, .iw = 5, .ic = 33, .oc = 128, .k = 2},  /* two tiles of outputs, 20 rows */
    {.n = 2, .ih = 5, .iw = 5, .ic = 4, .oc = 5, .k = 5},     /* one output position per image */
    /* Receptive fields of up to 32 taps (conv2d_1's 3x3x1) take conv.c's own direct
     * kernel, six positions by 32 outputs at a time, on any CPU. */
    {.n = 3, .ih = 7, .iw = 6, .ic = 1, .oc = 32, .k = 3}, /* 20 rows per image: short groups */
    {.n = 2, .ih = 6, .iw = 9, .ic = 3, .oc = 40, .k = 3}, /* 8 outputs past a multiple of 32 */
};

static void test_direct_kernels(void)
{
    const int have = cs_cpu_avx512();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const cs_conv_geom g = geom_of(&cases[i]);
        /* Short receptive fields always, and on a CPU with AVX-512 every one of these
         * layers, must take a direct kernel. */
        const int direct = have || g.k * g.k * g.ic <= 32;
        CHECK(cs_conv_uses_im2col(&g) == !direct, "case %zu: direct kernels %s", i, direct ? "not taken" : "taken");
        check_geometry(&cases[i], 0);
    }
    fprintf(stderr, "  (direct AVX-512 kernels %s on this CPU)\n", have ? "compared" : "absent: im2col compared");
}

static void test_im2col_path(void)
{
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cs_conv_force_im2col(1);
        const cs_conv_geom g = geom_of(&cases[i]);
        CHECK(cs_conv_uses_im2col(&g), "case %zu: im2col forced", i);
        cs_conv_force_im2col(0);
        check_geometry(&cases[i], 1);
    }
}

int main(void)
{
    RUN(test_direct_kernels);
    RUN(test_im2col_path);
    return test_summary("conv_kernels");
}
