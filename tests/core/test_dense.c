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

static void check_shape(int n, int in, int out, int threads)
{
    cs_parallel_set_threads(threads);
    float *x = filled((size_t)n * in, 1), *w = filled((size_t)in * out, 2), *b = filled(out, 3),
          *dy = filled((size_t)n * out, 4);
    float *y = malloc((size_t)n * out * sizeof *y), *dx = malloc((size_t)n * in * sizeof *dx),
          *dw = calloc((size_t)in * out, sizeof *dw), *db = calloc(out, sizeof *db);
    double *want = calloc((size_t)n * (in > out ? in : out), sizeof *want),
           *scale = calloc((size_t)n * (in > out ? in : out), sizeof *scale);
    for (size_t i = 0; i < (size_t)n * out; i++) y[i] = NAN; /* every output written */
    for (size_t i = 0; i < (size_t)n * in; i++) dx[i] = NAN;

    cs_dense_forward(n, in, out, x, w, b, y);
    for (int r = 0; r < n; r++)
        for (int o = 0; o < out; o++) {
            double s = b[o], a = fabs(b[o]);
            for (int i = 0; i < in; i++) {
                const double p = (double)x[(size_t)r * in + i] * w[(size_t)i * out + o];
                s += p, a += fabs(p);
            }
            want[(size_t)r * out + o] = s, scale[(size_t)r * out + o] = a;
        }
    double e = worst(y, want, scale, (size_t)n * out);
    CHECK(e < 1e-6, "forward n=%d %dx%d on %d threads: relative error %.2e", n, in, out, threads, e);

    cs_dense_backward(n, in, out, x, w, dy, dx, dw, db);
    for (int r = 0; r < n; r++)
        for (int i = 0; i < in; i++) {
            double s = 0, a = 0;
            for (int o = 0; o < out; o++) {
                const double p = (double)dy[(size_t)r * out + o] * w[(size_t)i * out + o];
                s += p, a += fabs(p);
            }
            want[(size_t)r * in + i] = s, scale[(size_t)r * in + i] = a;
        }
    e = worst(dx, want, scale, (size_t)n * in);
    CHECK(e < 1e-6, "input gradient n=%d %dx%d on %d threads: relative error %.2e", n, in, out, threads, e);
    double ew = 0;
    for (int i = 0; i < in; i++)
        for (int o = 0; o < out; o++) {
            double s = 0, a = 0;
            for (int r = 0; r < n; r++) {
                const double p = (double)x[(size_t)r * in + i] * dy[(size_t)r * out + o];
                s += p, a += fabs(p);
            }
            const double err = fabs(dw[(size_t)i * out + o] - s) / (a + 1);
            if (!(err <= ew)) ew = isnan(err) ? INFINITY : err;
        }
    CHECK(ew < 1e-6, "kernel gradient n=%d %dx%d on %d threads: relative error %.2e", n, in, out, threads, ew);
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
