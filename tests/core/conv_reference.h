/*
 * conv_reference.h - the 2-D convolution of conv_general.h straight from its
 * definition, in double precision, for tests to check the kernels against: random
 * tensors, the forward, the analytic gradients of sum(y * dy), and the worst
 * difference relative to the reference's largest value.
 */
#ifndef CS_TEST_CONV_REFERENCE_H
#define CS_TEST_CONV_REFERENCE_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layers/conv_general.h"
#include "rng.h"
#include "test.h"

static inline float *random_floats(cs_rng *r, size_t n)
{
    float *v = malloc((n ? n : 1) * sizeof(float));
    if (!v) {
        perror("setup: malloc");
        exit(99);
    }
    for (size_t i = 0; i < n; i++) v[i] = (float)(cs_rng_uniform(r) * 2 - 1);
    return v;
}

static inline size_t in_floats(const cs_conv2d_geom *g) { return (size_t)g->n * g->ih * g->iw * g->ic; }
static inline size_t out_floats(const cs_conv2d_geom *g) { return (size_t)g->n * g->oh * g->ow * g->oc; }
static inline size_t w_floats(const cs_conv2d_geom *g)
{
    return (size_t)g->kh * g->kw * (g->ic / g->groups) * g->oc;
}

/* Calls fn(ix, wi, oi) for every (input, kernel, output) index triple the convolution
 * multiplies together: y[oi] += x[ix] * w[wi]. Straight from the definition. */
#define FOR_EACH_PRODUCT(g, BODY)                                                                              \
    for (int n_ = 0; n_ < (g)->n; n_++)                                                                        \
        for (int oy_ = 0; oy_ < (g)->oh; oy_++)                                                                \
            for (int ox_ = 0; ox_ < (g)->ow; ox_++)                                                            \
                for (int o_ = 0; o_ < (g)->oc; o_++) {                                                         \
                    const int icg_ = (g)->ic / (g)->groups, grp_ = o_ / ((g)->oc / (g)->groups);               \
                    const size_t oi = (((size_t)n_ * (g)->oh + oy_) * (g)->ow + ox_) * (g)->oc + o_;           \
                    for (int ky_ = 0; ky_ < (g)->kh; ky_++)                                                    \
                        for (int kx_ = 0; kx_ < (g)->kw; kx_++) {                                              \
                            const int iy_ = oy_ * (g)->sh - (g)->pt + ky_ * (g)->dh;                           \
                            const int ix_ = ox_ * (g)->sw - (g)->pl + kx_ * (g)->dw;                           \
                            if (iy_ < 0 || iy_ >= (g)->ih || ix_ < 0 || ix_ >= (g)->iw) continue;              \
                            for (int c_ = 0; c_ < icg_; c_++) {                                                \
                                const size_t ix =                                                              \
                                    (((size_t)n_ * (g)->ih + iy_) * (g)->iw + ix_) * (g)->ic + grp_ * icg_ + c_; \
                                const size_t wi = (((size_t)ky_ * (g)->kw + kx_) * icg_ + c_) * (g)->oc + o_;  \
                                BODY;                                                                          \
                            }                                                                                  \
                        }                                                                                      \
                }

static inline void ref_forward(const cs_conv2d_geom *g, const float *x, const float *w, const float *b, double *y)
{
    for (size_t i = 0; i < out_floats(g); i++) y[i] = b ? b[i % g->oc] : 0.0;
    FOR_EACH_PRODUCT(g, y[oi] += (double)x[ix] * w[wi]);
}

/* The analytic gradients of sum(y * dy). */
static inline void ref_backward(const cs_conv2d_geom *g, const float *x, const float *w, const float *dy, double *dx,
                         double *dw, double *db)
{
    memset(dx, 0, in_floats(g) * sizeof(double));
    memset(dw, 0, w_floats(g) * sizeof(double));
    memset(db, 0, (size_t)g->oc * sizeof(double));
    for (size_t i = 0; i < out_floats(g); i++) db[i % g->oc] += dy[i];
    FOR_EACH_PRODUCT(g, (dx[ix] += (double)dy[oi] * w[wi], dw[wi] += (double)dy[oi] * x[ix]));
}

/* Largest |got - want| over n values, relative to the largest |want|. */
static inline double rel_diff(const float *got, const double *want, size_t n)
{
    double worst = 0, scale = 0;
    for (size_t i = 0; i < n; i++) {
        const double d = fabs(got[i] - want[i]);
        if (!(d <= worst)) worst = d; /* NaN counts as worst */
        if (fabs(want[i]) > scale) scale = fabs(want[i]);
    }
    return scale > 0 ? worst / scale : worst;
}

#endif
