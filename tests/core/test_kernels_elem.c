/*
 * test_kernels_elem.c - the elementwise and data-movement kernels of core/layers/:
 * activations, broadcasting arithmetic, channel concatenation, padding and the
 * per-channel affine map. Forwards against plain double-precision references,
 * backwards against central differences (and, for activations, against derivatives
 * written in double, which also checks the tails where float formulas lose
 * accuracy), kinks by hand.
 */
#include "test.h"
#include "kernels/check.h"

/* ---- activations ------------------------------------------------------------------ */

static const char *actf_name[CS_ACTF_COUNT] = {"relu",    "clip",         "leaky",      "elu",
                                               "sigmoid", "tanh",         "swish",      "hard_sigmoid",
                                               "hard_swish", "gelu",      "gelu_tanh",  "softplus"};

/* A typical parameter set per kind. */
static cs_actf_params actf_params(cs_actf kind)
{
    cs_actf_params p = {kind, 0, 0};
    if (kind == CS_ACTF_CLIP) p.a = -1.5f, p.b = 2.25f;
    if (kind == CS_ACTF_LEAKY) p.a = 0.3f;
    if (kind == CS_ACTF_ELU) p.a = 0.7f;
    if (kind == CS_ACTF_HARD_SIGMOID) p.a = 0.2f, p.b = 0.5f;
    return p;
}

static const double SQRT_2_OVER_PI = 0.79788456080286535588;

static double ref_actf(const cs_actf_params *p, double x)
{
    const double a = p->a, b = p->b;
    switch (p->kind) {
    case CS_ACTF_RELU: return x > 0 ? x : 0;
    case CS_ACTF_CLIP: return fmin(fmax(x, a), b);
    case CS_ACTF_LEAKY: return x > 0 ? x : a * x;
    case CS_ACTF_ELU: return x > 0 ? x : a * expm1(x);
    case CS_ACTF_SIGMOID: return 1 / (1 + exp(-x));
    case CS_ACTF_TANH: return tanh(x);
    case CS_ACTF_SWISH: return x / (1 + exp(-x));
    case CS_ACTF_HARD_SIGMOID: return fmin(fmax(a * x + b, 0), 1);
    case CS_ACTF_HARD_SWISH: return x * fmin(fmax(x + 3, 0), 6) / 6;
    case CS_ACTF_GELU: return 0.5 * x * erfc(-x / sqrt(2.0));
    case CS_ACTF_GELU_TANH: return x / (1 + exp(-2 * SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)));
    case CS_ACTF_SOFTPLUS: return fmax(x, 0) + log1p(exp(-fabs(x)));
    }
    return NAN;
}

/* The derivative away from kinks, in double. */
static double ref_actf_grad(const cs_actf_params *p, double x)
{
    const double a = p->a, b = p->b, s = 1 / (1 + exp(-x));
    switch (p->kind) {
    case CS_ACTF_RELU: return x > 0;
    case CS_ACTF_CLIP: return x > a && x < b;
    case CS_ACTF_LEAKY: return x > 0 ? 1 : a;
    case CS_ACTF_ELU: return x > 0 ? 1 : a * exp(x);
    case CS_ACTF_SIGMOID: return exp(-fabs(x)) / ((1 + exp(-fabs(x))) * (1 + exp(-fabs(x))));
    case CS_ACTF_TANH: return 1 / (cosh(x) * cosh(x));
    case CS_ACTF_SWISH: return s + x * exp(-fabs(x)) / ((1 + exp(-fabs(x))) * (1 + exp(-fabs(x))));
    case CS_ACTF_HARD_SIGMOID: return a * x + b > 0 && a * x + b < 1 ? a : 0;
    case CS_ACTF_HARD_SWISH: return x < -3 ? 0 : x > 3 ? 1 : x / 3 + 0.5;
    case CS_ACTF_GELU: return 0.5 * erfc(-x / sqrt(2.0)) + x * exp(-0.5 * x * x) / sqrt(2 * M_PI);
    case CS_ACTF_GELU_TANH: {
        /* 0.5 (1 + tanh u) = 1 / (1 + exp(-2u)) and 1 - tanh^2 u = 4 s (1 - s), which keep
         * their accuracy where 1 + tanh u cancels. */
        double u = SQRT_2_OVER_PI * (x + 0.044715 * x * x * x), sp = 1 / (1 + exp(-2 * u)), sm = 1 / (1 + exp(2 * u));
        return sp + 2 * x * sp * sm * SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x * x);
    }
    case CS_ACTF_SOFTPLUS: return s;
    }
    return NAN;
}

/* Points where the kind's derivative jumps. */
static int near_kink(const cs_actf_params *p, double x)
{
    double k[2] = {NAN, NAN};
    switch (p->kind) {
    case CS_ACTF_RELU: case CS_ACTF_LEAKY: case CS_ACTF_ELU: k[0] = 0; break;
    case CS_ACTF_CLIP: k[0] = p->a, k[1] = p->b; break;
    case CS_ACTF_HARD_SIGMOID: k[0] = -p->b / p->a, k[1] = (1 - p->b) / p->a; break;
    case CS_ACTF_HARD_SWISH: k[0] = -3, k[1] = 3; break;
    default: break;
    }
    return fabs(x - k[0]) < 0.01 || fabs(x - k[1]) < 0.01;
}

typedef struct {
    const cs_actf_params *p;
    size_t n;
    const float *x;
} actf_ctx;

static void eval_actf(void *ctx, float *y)
{
    const actf_ctx *c = ctx;
    cs_actf_forward(c->p, c->n, c->x, y);
}

static void test_actf_values(void)
{
    cs_rng r;
    cs_rng_seed(&r, 21);
    /* Large enough to spread over the workers. */
    const size_t n = 70000;
    float *x = K_FLOATS(n), *y = K_FLOATS(n), *dy = K_FLOATS(n), *dx = K_FLOATS(n), *xs = K_FLOATS(n);
    double *want = K_DOUBLES(n);
    for (int kind = 0; kind < CS_ACTF_COUNT; kind++) {
        const cs_actf_params p = actf_params((cs_actf)kind);
        for (size_t i = 0; i < n; i++) {
            do x[i] = (float)(-8 + 16 * cs_rng_uniform(&r));
            while (near_kink(&p, x[i]));
        }
        /* and some large ones, which must not overflow */
        for (size_t i = 0; i < 100; i++) x[i] = (float)((i % 2 ? 1 : -1) * (20 + i * 100));
        cs_actf_forward(&p, n, x, y);
        for (size_t i = 0; i < n; i++) want[i] = ref_actf(&p, x[i]);
        char what[64];
        snprintf(what, sizeof what, "%s forward", actf_name[kind]);
        k_compare(what, y, want, n, 2e-6);
        /* Backward against the double derivative. */
        k_uniform(&r, dy, n, -1, 1);
        for (size_t i = 0; i < n; i++) dx[i] = NAN;
        cs_actf_backward(&p, n, x, y, dy, dx);
        for (size_t i = 0; i < n; i++) want[i] = dy[i] * ref_actf_grad(&p, x[i]);
        snprintf(what, sizeof what, "%s backward", actf_name[kind]);
        k_compare(what, dx, want, n, 2e-6);
        /* In place: y over x, dx over dy. */
        for (size_t i = 0; i < n; i++) xs[i] = x[i];
        cs_actf_forward(&p, n, xs, xs);
        CHECK(!memcmp(xs, y, n * sizeof(float)), "%s: in place forward", actf_name[kind]);
        for (size_t i = 0; i < n; i++) xs[i] = dy[i];
        cs_actf_backward(&p, n, x, y, xs, xs);
        CHECK(!memcmp(xs, dx, n * sizeof(float)), "%s: in place backward", actf_name[kind]);
    }
    free(x), free(y), free(dy), free(dx), free(xs), free(want);
}

static void test_actf_gradcheck(void)
{
    cs_rng r;
    cs_rng_seed(&r, 22);
    const size_t n = 300;
    float *x = K_FLOATS(n), *y = K_FLOATS(n), *dy = K_FLOATS(n), *dx = K_FLOATS(n);
    double *rd = K_DOUBLES(n);
    for (int kind = 0; kind < CS_ACTF_COUNT; kind++) {
        const cs_actf_params p = actf_params((cs_actf)kind);
        for (size_t i = 0; i < n; i++) {
            do x[i] = (float)(-6 + 12 * cs_rng_uniform(&r));
            while (near_kink(&p, x[i]));
        }
        k_uniform(&r, dy, n, -1, 1);
        for (size_t i = 0; i < n; i++) rd[i] = dy[i];
        cs_actf_forward(&p, n, x, y);
        cs_actf_backward(&p, n, x, y, dy, dx);
        actf_ctx c = {&p, n, x};
        k_gradcheck(actf_name[kind], eval_actf, &c, x, n, n, rd, dx, 1e-3, 2e-3, &r);
    }
    free(x), free(y), free(dy), free(dx), free(rd);
}

/* Far in the tails the values are tiny but must keep their relative accuracy. */
static void test_actf_tails(void)
{
    const struct {
        cs_actf kind;
        float x;
    } cases[] = {{CS_ACTF_SIGMOID, -80}, {CS_ACTF_SIGMOID, -30}, {CS_ACTF_SWISH, -80},  {CS_ACTF_SWISH, -20},
                 {CS_ACTF_GELU, -12},    {CS_ACTF_GELU, -8},     {CS_ACTF_GELU_TANH, -9}, {CS_ACTF_GELU_TANH, -5},
                 {CS_ACTF_SOFTPLUS, -80}, {CS_ACTF_SOFTPLUS, 30}, {CS_ACTF_ELU, -1e-3f}, {CS_ACTF_SIGMOID, 30}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const cs_actf_params p = actf_params(cases[i].kind);
        float x = cases[i].x, y, dy = 1, dx;
        cs_actf_forward(&p, 1, &x, &y);
        cs_actf_backward(&p, 1, &x, &y, &dy, &dx);
        double want = ref_actf(&p, x), dwant = ref_actf_grad(&p, x);
        CHECK(fabs(y - want) <= 1e-5 * fabs(want), "%s(%g) = %.9g, want %.9g", actf_name[cases[i].kind], x, y, want);
        CHECK(fabs(dx - dwant) <= 1e-5 * fabs(dwant), "%s'(%g) = %.9g, want %.9g", actf_name[cases[i].kind], x, dx,
              dwant);
    }
}

static void test_actf_kinks(void)
{
    /* PyTorch's choices at the points where the derivative jumps (hard swish: the
     * one-sided derivative of the flat or linear side, as PyTorch's current kernels). */
    const struct {
        cs_actf kind;
        float a, b, x, grad;
    } cases[] = {
        {CS_ACTF_RELU, 0, 0, 0, 0},
        {CS_ACTF_CLIP, 0, 6, 0, 0}, /* relu6 = hardtanh(0, 6): 0 at both ends */
        {CS_ACTF_CLIP, 0, 6, 6, 0},
        {CS_ACTF_CLIP, 0, 6, 3, 1},
        {CS_ACTF_CLIP, 0, 6, 7, 0},
        {CS_ACTF_LEAKY, 0.1f, 0, 0, 0.1f},
        {CS_ACTF_ELU, 0.5f, 0, 0, 0.5f},
        {CS_ACTF_HARD_SIGMOID, 1 / 6.0f, 0.5f, -3, 0},
        {CS_ACTF_HARD_SIGMOID, 1 / 6.0f, 0.5f, 3, 0},
        {CS_ACTF_HARD_SIGMOID, 1 / 6.0f, 0.5f, 0, 1 / 6.0f},
        {CS_ACTF_HARD_SWISH, 0, 0, -4, 0},
        {CS_ACTF_HARD_SWISH, 0, 0, -3, 0},
        {CS_ACTF_HARD_SWISH, 0, 0, 3, 1},
        {CS_ACTF_HARD_SWISH, 0, 0, -2.5f, -2.5f / 3 + 0.5f},
        {CS_ACTF_HARD_SWISH, 0, 0, 4, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const cs_actf_params p = {cases[i].kind, cases[i].a, cases[i].b};
        float x = cases[i].x, y, dy = 1, dx;
        cs_actf_forward(&p, 1, &x, &y);
        cs_actf_backward(&p, 1, &x, &y, &dy, &dx);
        CHECK(fabsf(dx - cases[i].grad) <= 1e-7f, "%s'(%g) = %g, want %g", actf_name[p.kind], x, dx, cases[i].grad);
    }
    /* Hand values. */
    const cs_actf_params relu6 = {CS_ACTF_CLIP, 0, 6}, hs = {CS_ACTF_HARD_SWISH, 0, 0};
    float x[4] = {-1, 2, 9, 1}, y[4];
    cs_actf_forward(&relu6, 3, x, y);
    CHECK(y[0] == 0 && y[1] == 2 && y[2] == 6, "relu6 values");
    cs_actf_forward(&hs, 4, x, y);
    CHECK_NEAR(y[0], -1 * 2 / 6.0, 1e-7, "hard swish(-1)");
    CHECK_NEAR(y[3], 4 / 6.0, 1e-7, "hard swish(1)");
}

/* ---- binary ------------------------------------------------------------------------- */

static const char *op_name[4] = {"add", "sub", "mul", "div"};

static size_t bin_at(const int d[4], int b, int y, int x, int k)
{
    return (((size_t)(d[0] == 1 ? 0 : b) * d[1] + (d[1] == 1 ? 0 : y)) * d[2] + (d[2] == 1 ? 0 : x)) * d[3] +
           (d[3] == 1 ? 0 : k);
}

typedef struct {
    const cs_binary_geom *g;
    const float *a, *b;
} bin_ctx;

static void eval_bin(void *ctx, float *y)
{
    const bin_ctx *c = ctx;
    cs_binary_forward(c->g, c->a, c->b, y);
}

static void check_binary(cs_rng *r, cs_binary_geom g, const char *pattern)
{
    CHECK(cs_binary_check(&g) == NULL, "%s: check says %s", pattern, cs_binary_check(&g));
    const int ad[4] = {g.an, g.ah, g.aw, g.ac}, bd[4] = {g.bn, g.bh, g.bw, g.bc};
    const size_t na = (size_t)g.an * g.ah * g.aw * g.ac, nb = (size_t)g.bn * g.bh * g.bw * g.bc,
                 ny = (size_t)g.n * g.h * g.w * g.c;
    float *a = K_FLOATS(na), *b = K_FLOATS(nb), *y = K_FLOATS(ny), *dy = K_FLOATS(ny), *da = K_FLOATS(na),
          *db = K_FLOATS(nb);
    double *want = K_DOUBLES(ny), *rd = K_DOUBLES(ny);
    k_uniform(r, a, na, -2, 2);
    /* Divisors away from 0: +-[0.5, 2]. */
    for (size_t i = 0; i < nb; i++) b[i] = (float)((cs_rng_below(r, 2) ? 1 : -1) * (0.5 + 1.5 * cs_rng_uniform(r)));
    k_uniform(r, dy, ny, -1, 1);
    for (size_t i = 0; i < ny; i++) rd[i] = dy[i];
    bin_ctx ctx = {&g, a, b};
    for (int op = 0; op < 4; op++) {
        g.op = (cs_binop)op;
        char what[128];
        snprintf(what, sizeof what, "%s %s", op_name[op], pattern);
        cs_binary_forward(&g, a, b, y);
        for (int bb = 0; bb < g.n; bb++)
            for (int yy = 0; yy < g.h; yy++)
                for (int xx = 0; xx < g.w; xx++)
                    for (int k = 0; k < g.c; k++) {
                        double va = a[bin_at(ad, bb, yy, xx, k)], vb = b[bin_at(bd, bb, yy, xx, k)];
                        want[(((size_t)bb * g.h + yy) * g.w + xx) * g.c + k] =
                            op == 0 ? va + vb : op == 1 ? va - vb : op == 2 ? va * vb : va / vb;
                    }
        k_compare(what, y, want, ny, 1e-6);
        for (size_t i = 0; i < na; i++) da[i] = NAN;
        for (size_t i = 0; i < nb; i++) db[i] = NAN;
        cs_binary_backward(&g, a, b, dy, da, db);
        char wa[140];
        snprintf(wa, sizeof wa, "%s: da", what);
        k_gradcheck(wa, eval_bin, &ctx, a, na, ny, rd, da, 1e-3, 1e-3, r);
        snprintf(wa, sizeof wa, "%s: db", what);
        k_gradcheck(wa, eval_bin, &ctx, b, nb, ny, rd, db, 1e-3, 1e-3, r);
        /* Either gradient alone gives the same values. */
        float *da2 = K_FLOATS(na), *db2 = K_FLOATS(nb);
        cs_binary_backward(&g, a, b, dy, da2, NULL);
        cs_binary_backward(&g, a, b, dy, NULL, db2);
        CHECK(!memcmp(da, da2, na * sizeof(float)) && !memcmp(db, db2, nb * sizeof(float)), "%s: one at a time",
              what);
        free(da2), free(db2);
    }
    free(a), free(b), free(y), free(dy), free(da), free(db), free(want), free(rd);
}

static cs_binary_geom bin_geom(int n, int h, int w, int c, int an, int ah, int aw, int ac, int bn, int bh, int bw,
                               int bc)
{
    cs_binary_geom g = {CS_BIN_ADD, n, h, w, c, an, ah, aw, ac, bn, bh, bw, bc};
    return g;
}

static void test_binary(void)
{
    cs_rng r;
    cs_rng_seed(&r, 31);
    check_binary(&r, bin_geom(2, 3, 5, 4, 2, 3, 5, 4, 2, 3, 5, 4), "same shape");
    check_binary(&r, bin_geom(2, 3, 5, 4, 2, 3, 5, 4, 2, 1, 1, 4), "(n,1,1,c) per channel");
    check_binary(&r, bin_geom(2, 3, 5, 4, 2, 1, 1, 4, 2, 3, 5, 4), "per channel on the left");
    check_binary(&r, bin_geom(3, 3, 5, 4, 3, 3, 5, 4, 1, 1, 1, 4), "(1,1,1,c) constant");
    check_binary(&r, bin_geom(2, 3, 5, 4, 2, 3, 5, 4, 1, 1, 1, 1), "scalar");
    check_binary(&r, bin_geom(2, 3, 5, 4, 1, 1, 1, 1, 2, 3, 5, 4), "scalar on the left");
    check_binary(&r, bin_geom(2, 3, 5, 4, 2, 3, 5, 1, 2, 3, 5, 4), "(n,h,w,1) per pixel");
    check_binary(&r, bin_geom(2, 3, 5, 4, 2, 3, 5, 1, 2, 1, 1, 4), "outer product of pixels and channels");
    check_binary(&r, bin_geom(2, 3, 5, 4, 2, 1, 5, 4, 2, 3, 1, 4), "rows against columns");
    check_binary(&r, bin_geom(3, 2, 3, 2, 1, 2, 3, 2, 3, 2, 3, 2), "a batch-1 constant");
    check_binary(&r, bin_geom(1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1), "one value");
    check_binary(&r, bin_geom(2, 2, 3, 300, 2, 2, 3, 300, 2, 1, 1, 300), "more channels than a block");
    check_binary(&r, bin_geom(2, 2, 3, 300, 2, 2, 3, 300, 2, 2, 3, 1), "wide channels summed per pixel");
    /* Large enough to spread over the workers (squeeze-and-excitation's multiply). */
    check_binary(&r, bin_geom(8, 28, 28, 64, 8, 28, 28, 64, 8, 1, 1, 64), "SE scale, large");
    check_binary(&r, bin_geom(4, 40, 40, 32, 4, 40, 40, 32, 4, 40, 40, 32), "same shape, large");

    cs_binary_geom bad = bin_geom(2, 3, 5, 4, 2, 2, 5, 4, 2, 3, 5, 4);
    CHECK(cs_binary_check(&bad) != NULL, "a dimension that is neither the output's nor 1");
    bad = bin_geom(2, 3, 5, 4, 2, 3, 5, 4, 2, 3, 5, 4);
    bad.op = (cs_binop)7;
    CHECK(cs_binary_check(&bad) != NULL, "unknown operation");
    bad = bin_geom(0, 3, 5, 4, 1, 3, 5, 4, 1, 3, 5, 4);
    CHECK(cs_binary_check(&bad) != NULL, "empty batch");
}

/* ---- concat --------------------------------------------------------------------- */

typedef struct {
    size_t rows;
    int k;
    const int *cs;
    const float *const *xs;
} cat_ctx;

static void eval_cat(void *ctx, float *y)
{
    const cat_ctx *c = ctx;
    cs_concat_forward(c->rows, c->k, c->cs, c->xs, y);
}

static void check_concat(cs_rng *r, size_t rows, int k, const int *cs)
{
    float *xs[8], *dxs[8];
    int total = 0;
    for (int i = 0; i < k; i++) {
        xs[i] = K_FLOATS(rows * cs[i]);
        dxs[i] = K_FLOATS(rows * cs[i]);
        k_uniform(r, xs[i], rows * cs[i], -1, 1);
        total += cs[i];
    }
    const size_t ny = rows * total;
    float *y = K_FLOATS(ny), *dy = K_FLOATS(ny);
    double *rd = K_DOUBLES(ny);
    cat_ctx ctx = {rows, k, cs, (const float *const *)xs};
    eval_cat(&ctx, y);
    int bad = 0;
    for (size_t row = 0; row < rows; row++)
        for (int i = 0, at = 0; i < k; at += cs[i], i++)
            for (int j = 0; j < cs[i]; j++) bad += y[row * total + at + j] != xs[i][row * cs[i] + j];
    CHECK(bad == 0, "concat rows %zu k %d: %d values misplaced", rows, k, bad);
    k_uniform(r, dy, ny, -1, 1);
    for (size_t i = 0; i < ny; i++) rd[i] = dy[i];
    cs_concat_backward(rows, k, cs, dy, dxs);
    for (int i = 0; i < k; i++) {
        char what[64];
        snprintf(what, sizeof what, "concat rows %zu input %d of %d", rows, i, k);
        k_gradcheck(what, eval_cat, &ctx, xs[i], rows * cs[i], ny, rd, dxs[i], 1e-3, 1e-4, r);
    }
    /* A NULL gradient is skipped; the others are still written. */
    if (k > 1) {
        float *first = dxs[0];
        for (size_t i = 0; i < rows * cs[k - 1]; i++) dxs[k - 1][i] = NAN;
        dxs[0] = NULL;
        cs_concat_backward(rows, k, cs, dy, dxs);
        bad = 0;
        for (size_t row = 0; row < rows; row++)
            for (int j = 0; j < cs[k - 1]; j++) bad += dxs[k - 1][row * cs[k - 1] + j] != dy[row * total + total - cs[k - 1] + j];
        CHECK(bad == 0, "concat: the others written past a NULL gradient");
        dxs[0] = first;
    }
    cs_concat_backward(rows, k, cs, dy, NULL);
    for (int i = 0; i < k; i++) free(xs[i]), free(dxs[i]);
    free(y), free(dy), free(rd);
}

static void test_concat(void)
{
    cs_rng r;
    cs_rng_seed(&r, 41);
    const int c2[2] = {3, 5}, c3[3] = {1, 7, 2}, c1[1] = {4}, big[4] = {64, 32, 96, 64};
    check_concat(&r, 15, 2, c2);
    check_concat(&r, 7, 3, c3);
    check_concat(&r, 9, 1, c1);
    check_concat(&r, 2 * 28 * 28, 4, big);
}

/* ---- pad ----------------------------------------------------------------------------- */

typedef struct {
    const cs_pad_geom *g;
    const float *x;
} pad_ctx;

static void eval_pad(void *ctx, float *y)
{
    const pad_ctx *c = ctx;
    cs_pad_forward(c->g, c->x, y);
}

static void check_pad(cs_rng *r, const cs_pad_geom *g, const char *what)
{
    CHECK(cs_pad_check(g) == NULL, "%s: check says %s", what, cs_pad_check(g));
    const int oh = g->h + g->top + g->bottom, ow = g->w + g->left + g->right, oc = g->c + g->cbegin + g->cend;
    const size_t nx = (size_t)g->n * g->h * g->w * g->c, ny = (size_t)g->n * oh * ow * oc;
    float *x = K_FLOATS(nx), *y = K_FLOATS(ny), *dy = K_FLOATS(ny), *dx = K_FLOATS(nx);
    double *want = K_DOUBLES(ny), *rd = K_DOUBLES(ny);
    k_uniform(r, x, nx, -1, 1);
    pad_ctx ctx = {g, x};
    for (size_t i = 0; i < ny; i++) y[i] = NAN;
    eval_pad(&ctx, y);
    for (int b = 0; b < g->n; b++)
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++)
                for (int k = 0; k < oc; k++) {
                    int iy = oy - g->top, ix = ox - g->left, ic = k - g->cbegin;
                    int in = iy >= 0 && iy < g->h && ix >= 0 && ix < g->w && ic >= 0 && ic < g->c;
                    want[(((size_t)b * oh + oy) * ow + ox) * oc + k] =
                        in ? x[(((size_t)b * g->h + iy) * g->w + ix) * g->c + ic] : g->value;
                }
    k_compare(what, y, want, ny, 0);
    k_uniform(r, dy, ny, -1, 1);
    for (size_t i = 0; i < ny; i++) rd[i] = dy[i];
    for (size_t i = 0; i < nx; i++) dx[i] = NAN;
    cs_pad_backward(g, dy, dx);
    k_gradcheck(what, eval_pad, &ctx, x, nx, ny, rd, dx, 1e-3, 1e-4, r);
    free(x), free(y), free(dy), free(dx), free(want), free(rd);
}

static void test_pad(void)
{
    cs_rng r;
    cs_rng_seed(&r, 51);
    const struct {
        cs_pad_geom g;
        const char *what;
    } cases[] = {
        {{2, 3, 4, 3, 1, 2, 3, 0, 0, 0, 0}, "asymmetric zero padding"},
        {{1, 5, 5, 2, 0, 0, 1, 1, 0, 0, 0.5f}, "bottom-right only (TF 'same'), value 0.5"},
        {{2, 3, 3, 3, 1, 1, 1, 1, 2, 1, -1}, "channels too, value -1"},
        {{2, 6, 5, 2, -1, -2, 1, -1, 0, 0, 0}, "negative pads crop"},
        {{1, 4, 4, 5, 0, 0, 0, 0, -2, 1, 0}, "channels cropped and added"},
        {{1, 3, 2, 1, -1, 0, -1, 0, 0, 0, 0}, "rows cropped away but one"},
        {{1, 2, 2, 1, 0, 3, 0, -4, 0, 0, 2}, "columns all moved out of the window"},
        {{3, 30, 30, 32, 1, 1, 1, 1, 0, 0, 0}, "large"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) check_pad(&r, &cases[i].g, cases[i].what);
    cs_pad_geom bad = {1, 2, 2, 1, -1, 0, -1, 0, 0, 0, 0};
    CHECK(cs_pad_check(&bad) != NULL, "cropping everything is refused");
    bad = (cs_pad_geom){0, 2, 2, 1, 0, 0, 0, 0, 0, 0, 0};
    CHECK(cs_pad_check(&bad) != NULL, "empty input is refused");
}

/* ---- channel affine --------------------------------------------------------------------- */

typedef struct {
    size_t rows;
    int c;
    const float *x, *scale, *shift;
} aff_ctx;

static void eval_aff(void *ctx, float *y)
{
    const aff_ctx *a = ctx;
    cs_channel_affine_forward(a->rows, a->c, a->x, a->scale, a->shift, y);
}

static void check_affine(cs_rng *r, size_t rows, int c)
{
    const size_t n = rows * c;
    float *x = K_FLOATS(n), *y = K_FLOATS(n), *dy = K_FLOATS(n), *dx = K_FLOATS(n), *scale = K_FLOATS(c),
          *shift = K_FLOATS(c), *ds = K_FLOATS(c), *dt = K_FLOATS(c);
    double *want = K_DOUBLES(n), *rd = K_DOUBLES(n);
    k_uniform(r, x, n, -2, 2);
    k_uniform(r, scale, c, -2, 2);
    k_uniform(r, shift, c, -1, 1);
    aff_ctx ctx = {rows, c, x, scale, shift};
    eval_aff(&ctx, y);
    for (size_t i = 0; i < n; i++) want[i] = (double)x[i] * scale[i % c] + shift[i % c];
    char what[64];
    snprintf(what, sizeof what, "affine %zux%d", rows, c);
    k_compare(what, y, want, n, 1e-6);
    k_uniform(r, dy, n, -1, 1);
    for (size_t i = 0; i < n; i++) rd[i] = dy[i];
    /* Parameter gradients are added: start them at 1 and take the 1 off. */
    for (int k = 0; k < c; k++) ds[k] = dt[k] = 1;
    cs_channel_affine_backward(rows, c, x, scale, dy, dx, ds, dt);
    for (int k = 0; k < c; k++) ds[k] -= 1, dt[k] -= 1;
    k_gradcheck(what, eval_aff, &ctx, x, n, n, rd, dx, 1e-3, 1e-3, r);
    k_gradcheck("affine scale", eval_aff, &ctx, scale, c, n, rd, ds, 1e-3, 1e-3, r);
    k_gradcheck("affine shift", eval_aff, &ctx, shift, c, n, rd, dt, 1e-3, 1e-3, r);
    /* Each output alone. */
    float *dx2 = K_FLOATS(n), *ds2 = K_FLOATS(c), *dt2 = K_FLOATS(c);
    cs_channel_affine_backward(rows, c, x, scale, dy, dx2, NULL, NULL);
    cs_channel_affine_backward(rows, c, NULL, scale, dy, NULL, NULL, dt2);
    cs_channel_affine_backward(rows, c, x, scale, dy, NULL, ds2, NULL);
    int same = !memcmp(dx, dx2, n * sizeof(float));
    for (int k = 0; k < c; k++) same &= fabsf(ds2[k] - ds[k]) <= 1e-6f * (1 + fabsf(ds2[k])) &&
                                      fabsf(dt2[k] - dt[k]) <= 1e-6f * (1 + fabsf(dt2[k]));
    CHECK(same, "%s: outputs one at a time", what);
    free(x), free(y), free(dy), free(dx), free(scale), free(shift), free(ds), free(dt), free(want), free(rd);
    free(dx2), free(ds2), free(dt2);
}

static void test_affine(void)
{
    cs_rng r;
    cs_rng_seed(&r, 61);
    check_affine(&r, 13, 3);
    check_affine(&r, 1, 1);
    check_affine(&r, 5, 300);
    check_affine(&r, 2 * 56 * 56, 64);
}

int main(void)
{
    RUN(test_actf_values);
    RUN(test_actf_gradcheck);
    RUN(test_actf_tails);
    RUN(test_actf_kinks);
    RUN(test_binary);
    RUN(test_concat);
    RUN(test_pad);
    RUN(test_affine);
    return test_summary("kernels_elem");
}
