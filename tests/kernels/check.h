/*
 * check.h - what the kernel tests share: random tensors, comparison against a
 * double-precision reference, and gradient checks by central differences.
 *
 * A gradient check differentiates L = sum_i r_i y_i, a random projection of a
 * kernel's output evaluated in double from the float kernel, with respect to one of
 * its input buffers: coordinate by coordinate for small buffers, and along a random
 * direction always. The analytic side is the kernel's backward run with dy = r.
 * Include after test.h.
 */
#ifndef CS_TEST_KERNELS_CHECK_H
#define CS_TEST_KERNELS_CHECK_H

#include <math.h>
#include <stdlib.h>

#include "layers/kernels.h"
#include "rng.h"

/* A zeroed allocation of n floats/doubles; a setup failure exits 99. */
static inline void *k_alloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (!p) {
        fprintf(stderr, "setup: out of memory\n");
        exit(99);
    }
    return p;
}
#define K_FLOATS(n) ((float *)k_alloc((n), sizeof(float)))
#define K_DOUBLES(n) ((double *)k_alloc((n), sizeof(double)))

static inline void k_uniform(cs_rng *r, float *x, size_t n, double lo, double hi)
{
    for (size_t i = 0; i < n; i++) x[i] = (float)(lo + (hi - lo) * cs_rng_uniform(r));
}

/* Distinct values 1/256 apart, in random order: no two tie, and max pooling's
 * winners do not change under the checks' steps (at most 1e-3 each way). */
static inline void k_distinct(cs_rng *r, float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) x[i] = (float)((double)i / 256.0 - (double)n / 512.0);
    for (size_t i = n; i > 1; i--) {
        size_t j = cs_rng_below(r, (uint32_t)i);
        float t = x[i - 1];
        x[i - 1] = x[j];
        x[j] = t;
    }
}

/* Every got[i] within tol * max(1, |want[i]|) of want[i]; reports the first few misses. */
static inline int k_compare(const char *what, const float *got, const double *want, size_t n, double tol)
{
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        double err = fabs((double)got[i] - want[i]), lim = tol * fmax(1.0, fabs(want[i]));
        if (!(err <= lim)) {
            if (bad < 5) CHECK(0, "%s[%zu]: %.9g vs %.9g (tol %g)", what, i, (double)got[i], want[i], lim);
            bad++;
        }
    }
    CHECK(bad == 0, "%s: %d of %zu values differ", what, bad, n);
    return bad;
}

/* Recomputes the kernel's output into y from the buffers ctx points at. */
typedef void (*k_eval_fn)(void *ctx, float *y);

static inline double k_project(const float *y, const double *r, size_t ny)
{
    double s = 0;
    for (size_t i = 0; i < ny; i++) s += r[i] * y[i];
    return s;
}

/* Checks grad (the analytic dL/dp for L = r . f) against central differences with
 * step h, perturbing the buffer p (np floats) that ctx's evaluation reads; y is
 * scratch for ny outputs. Tolerance: tol * max(1, |derivative|). p is restored. */
static inline void k_gradcheck(const char *what, k_eval_fn f, void *ctx, float *p, size_t np, size_t ny,
                               const double *r, const float *grad, double h, double tol, cs_rng *rng)
{
    float *y = K_FLOATS(ny);
    int bad = 0;
    /* Coordinate by coordinate while that stays cheap and each difference involves few
     * rounded outputs (their rounding, over 2h, is the differences' noise). */
    if (np <= 2000 && ny <= 20000) {
        for (size_t i = 0; i < np; i++) {
            const float p0 = p[i], up = (float)(p0 + h), down = (float)(p0 - h);
            p[i] = up;
            f(ctx, y);
            double lu = k_project(y, r, ny);
            p[i] = down;
            f(ctx, y);
            double ld = k_project(y, r, ny);
            p[i] = p0;
            double fd = (lu - ld) / ((double)up - (double)down);
            if (!(fabs(fd - grad[i]) <= tol * fmax(1.0, fabs(fd)))) {
                if (bad < 5) CHECK(0, "%s: d/dp[%zu] %.9g, differences give %.9g", what, i, (double)grad[i], fd);
                bad++;
            }
        }
    }
    /* Along a random direction v: L(p + h v) - L(p - h v) = grad . (the step actually
     * taken, which rounding makes differ a little from 2 h v), divided by 2h. */
    float *p0 = K_FLOATS(np), *v = K_FLOATS(np);
    for (size_t i = 0; i < np; i++) p0[i] = p[i];
    k_uniform(rng, v, np, -1, 1);
    for (size_t i = 0; i < np; i++) p[i] = (float)(p0[i] + h * v[i]);
    f(ctx, y);
    const double lu = k_project(y, r, ny);
    double dot = 0, scale = 0;
    for (size_t i = 0; i < np; i++) {
        const float up = p[i];
        p[i] = (float)(p0[i] - h * v[i]);
        dot += (double)grad[i] * ((double)up - p[i]);
        scale += fabs((double)grad[i] * ((double)up - p[i]));
    }
    f(ctx, y);
    const double ld = k_project(y, r, ny);
    for (size_t i = 0; i < np; i++) p[i] = p0[i];
    CHECK(fabs((lu - ld) - dot) / (2 * h) <= tol * fmax(1.0, scale / (2 * h)),
          "%s: along a random direction %.9g, differences give %.9g", what, dot / (2 * h), (lu - ld) / (2 * h));
    CHECK(bad == 0, "%s: %d of %zu derivatives differ", what, bad, np);
    free(p0);
    free(v);
    free(y);
}

#endif
