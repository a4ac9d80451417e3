/*
 * activations.c - LeakyReLU, ReLU and softmax.
 *
 * The elementwise loops are written as selects, not branches: activation signs are
 * random, so a branch mispredicts half the time, and selects vectorise.
 */
#include <math.h>

#include "layers.h"
#include "simd.h"

#define GRAIN CS_PARALLEL_MIN_WORK

typedef struct {
    float alpha;
    const float *x, *dy;
    float *y, *dx;
} elem_job;

static void leaky_forward_range(void *ctx, long begin, long end, int worker)
{
    (void)worker;
    const elem_job *j = ctx;
    const float alpha = j->alpha, *x = j->x;
    float *y = j->y;
    for (long i = begin; i < end; i++) {
        float v = x[i];
        y[i] = v * (v > 0 ? 1.0f : alpha); /* a select of constants: vectorises */
    }
}

void cs_leaky_forward(size_t n, float alpha, const float *x, float *y)
{
    elem_job j = {.alpha = alpha, .x = x, .y = y};
    cs_parallel_run((long)n, GRAIN, 0, leaky_forward_range, &j);
}

static void leaky_backward_range(void *ctx, long begin, long end, int worker)
{
    (void)worker;
    const elem_job *j = ctx;
    const float alpha = j->alpha, *x = j->x, *dy = j->dy;
    float *dx = j->dx;
    for (long i = begin; i < end; i++) {
        dx[i] = dy[i] * (x[i] > 0 ? 1.0f : alpha);
    }
}

void cs_leaky_backward(size_t n, float alpha, const float *x, const float *dy, float *dx)
{
    elem_job j = {.alpha = alpha, .x = x, .dy = dy, .dx = dx};
    cs_parallel_run((long)n, GRAIN, 0, leaky_backward_range, &j);
}

CS_CLONES static void relu_forward_range(void *ctx, long begin, long end, int worker)
{
    (void)worker;
    const elem_job *j = ctx;
    const float *restrict x = j->x;
    float *restrict y = j->y;
    for (long i = begin; i < end; i++) {
        float v = x[i];
        y[i] = v > 0 ? v : 0.0f;
    }
}

void cs_relu_forward(size_t n, const float *x, float *y)
{
    elem_job j = {.x = x, .y = y};
    cs_parallel_run((long)n, GRAIN, 0, relu_forward_range, &j);
}

/* (dx may be dy itself: each element is read before it is written.) */
CS_CLONES static void relu_backward_range(void *ctx, long begin, long end, int worker)
{
    (void)worker;
    const elem_job *j = ctx;
    const float *y = j->x, *dy = j->dy;
    float *dx = j->dx;
    for (long i = begin; i < end; i++) {
        float d = dy[i];
        dx[i] = y[i] > 0 ? d : 0.0f;
    }
}

void cs_relu_backward(size_t n, const float *y, const float *dy, float *dx)
{
    elem_job j = {.x = y, .dy = dy, .dx = dx};
    cs_parallel_run((long)n, GRAIN, 0, relu_backward_range, &j);
}

void cs_softmax_forward(int n, int k, const float *z, float *p)
{
    for (int i = 0; i < n; i++) {
        const float *zi = z + (size_t)i * k;
        float *pi = p + (size_t)i * k, mx = zi[0];
        for (int j = 1; j < k; j++)
            if (zi[j] > mx) mx = zi[j];
        double sum = 0;
        for (int j = 0; j < k; j++) sum += pi[j] = expf(zi[j] - mx);
        for (int j = 0; j < k; j++) pi[j] = (float)(pi[j] / sum);
    }
}

void cs_softmax_backward(int n, int k, const float *p, const float *dp, float *dz)
{
    for (int i = 0; i < n; i++) {
        const float *pi = p + (size_t)i * k, *gi = dp + (size_t)i * k;
        double dot = 0;
        for (int j = 0; j < k; j++) dot += (double)pi[j] * gi[j];
        for (int j = 0; j < k; j++) dz[(size_t)i * k + j] = pi[j] * (float)(gi[j] - dot);
    }
}
