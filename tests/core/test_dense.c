/*
 * test_dense.c - the fully connected kernels (core/dense.c) against a double-precision
 * reference: forward and backward, a batch of one (matrix-vector products, split over
 * the pool in blocks of the kernel's rows with partial sums) and a batch of several,
 * on 1, 2 and 3 threads, with shapes whose row counts do not divide evenly.
 */
#include "test.h"

#include "layers.h"
#include "parallel.h"

static float value(unsigned *state)
{
    *state = *state * 1103515245u + 12345u;
    return (float)((*state >> 8) / 16777216.0 - 0.5);
}

static float *filled(size_t n, unsigned seed)
{
    float *v = malloc(n * sizeof *v);
    for (size_t i = 0; i < n; i++) v[i] = value(&seed);
    return v;
}

/* max |got - want| / (sum of |products| + 1): float32 rounding of the sums is well
 * below 1e-6 of that scale; a product lost or counted twice is far above it. */
static double worst(const float *got, const double *want, const double *scale, size_t n)
{
    double w = 0;
    for (size_t i = 0; i < n; i++) {
        const double e = fabs(got[i] - want[i]) / (scale[i] + 1);
        if (!(e <= w)) w = isnan(e) ? INFINITY : e;
    }
    return w;
}

/* want = A B (+ bias) in double, and scale = the sum of |products| (+ |bias|): A is
 * rows x inner and B inner x cols, each element (i, j) at i * stride_i + j * stride_j. */
static void product(int rows, int cols, int inner, const float *a, size_t a_row, size_t a_k, const float *b,
                    size_t b_k, size_t b_col, const float *bias, double *want, double *scale)
{
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) {
            double s = bias ? bias[c] : 0, m = bias ? fabs(bias[c]) : 0;
            for (int k = 0; k < inner; k++) {
                const double p = (double)a[r * a_row + k * a_k] * b[k * b_k + c * b_col];
                s += p, m += fabs(p);
            }
            want[(size_t)r * cols + c] = s, scale[(size_t)r * cols + c] = m;
        }
}

static void check_shape(int n, int in, int out, int threads)
{
    cs_parallel_set_threads(threads);
    float *x = filled((size_t)n * in, 1), *w = filled((size_t)in * out, 2), *b = filled(out, 3),
          *dy = filled((size_t)n * out, 4);
    float *y = malloc((size_t)n * out * sizeof *y), *dx = malloc((size_t)n * in * sizeof *dx),
          *dw = calloc((size_t)in * out, sizeof *dw), *db = calloc(out, sizeof *db);
    size_t most = (size_t)n * (in > out ? in : out);
    if ((size_t)in * out > most) most = (size_t)in * out;
    double *want = calloc(most, sizeof *want), *scale = calloc(most, sizeof *scale);
    for (size_t i = 0; i < (size_t)n * out; i++) y[i] = NAN; /* every output written */
    for (size_t i = 0; i < (size_t)n * in; i++) dx[i] = NAN;

    cs_dense_forward(n, in, out, x, w, b, y);
    product(n, out, in, x, in, 1, w, out, 1, b, want, scale); /* y = x W + b */
    double e = worst(y, want, scale, (size_t)n * out);
    CHECK(e < 1e-6, "forward n=%d %dx%d on %d threads: relative error %.2e", n, in, out, threads, e);

    cs_dense_backward(n, in, out, x, w, dy, dx, dw, db);
    product(n, in, out, dy, out, 1, w, 1, out, NULL, want, scale); /* dx = dy W^T */
    e = worst(dx, want, scale, (size_t)n * in);
    CHECK(e < 1e-6, "input gradient n=%d %dx%d on %d threads: relative error %.2e", n, in, out, threads, e);
    product(in, out, n, x, 1, in, dy, out, 1, NULL, want, scale); /* dW = x^T dy */
    e = worst(dw, want, scale, (size_t)in * out);
    CHECK(e < 1e-6, "kernel gradient n=%d %dx%d on %d threads: relative error %.2e", n, in, out, threads, e);
    double eb = 0;
    for (int o = 0; o < out; o++) {
        double s = 0;
        for (int r = 0; r < n; r++) s += dy[(size_t)r * out + o];
        if (!(fabs(db[o] - s) <= eb)) eb = fabs(db[o] - s);
    }
    CHECK(eb < 1e-5, "bias gradient n=%d %dx%d on %d threads: %.2e", n, in, out, threads, eb);
    free(x), free(w), free(b), free(dy), free(y), free(dx), free(dw), free(db), free(want), free(scale);
}

/* MobileNetV2's and ResNet-18's classifiers (1280 and 512 -> 1000) are large enough to split; 1283 rows do not
 * divide by 2 or 3; a small layer stays on one thread. */
static void test_single_image(void)
{
    const int shapes[][2] = {{1280, 1000}, {512, 1000}, {1283, 997}, {3000, 700}, {64, 10}};
    for (int t = 1; t <= 3; t++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) check_shape(1, shapes[s][0], shapes[s][1], t);
}

static void test_batch(void)
{
    for (int t = 1; t <= 3; t++) {
        check_shape(5, 1283, 97, t);
        check_shape(2, 300, 1000, t);
    }
}

/* A caller limited to one part (a server's request thread) computes the same. */
static void test_limited_caller(void)
{
    const int was = cs_parallel_limit_this_thread(1);
    check_shape(1, 1280, 1000, 2);
    cs_parallel_limit_this_thread(was);
}

int main(void)
{
    RUN(test_single_image);
    RUN(test_batch);
    RUN(test_limited_caller);
    return test_summary("dense");
}
