/*
 * activation.c - the elementwise activations, forward and backward.
 *
 * One loop per kind, chosen outside the loop. Piecewise-linear kinds are written as
 * selects, which vectorise. Sigmoid-shaped kinds go through e = exp(-|x|) <= 1, from
 * which sigmoid(x), 1 - sigmoid(x) and sigmoid'(x) = e / (1 + e)^2 all follow without
 * overflow or cancellation; GELU uses erfc for the same reason (1 + erf(x) cancels for
 * negative x). Derivatives at kinks are PyTorch's (see kernels.h).
 */
#include <math.h>

#include "kernels.h"
#include "parallel.h"
#include "simd.h"

#define SQRT_2_OVER_PI 0.7978845608028654f /* sqrt(2 / pi) */
#define INV_SQRT_2PI 0.3989422804014327f   /* 1 / sqrt(2 pi) */
#define GELU_KAPPA 0.044715f

typedef struct {
    const cs_actf_params *p;
    const float *x, *y, *dy;
    float *out;
} actf_job;

/* sigmoid(x) from e = exp(-|x|). */
static inline float sigmoid_pos(float x, float e)
{
    float r = 1.0f / (1.0f + e);
    return x >= 0 ? r : e * r;
}

CS_CLONES static void forward_range(void *ctx, long begin, long end, int worker)
{
    (void)worker;
    const actf_job *j = ctx;
    const float a = j->p->a, b = j->p->b, *x = j->x;
    float *y = j->out;
    switch (j->p->kind) {
    case CS_ACTF_RELU:
        for (long i = begin; i < end; i++) y[i] = x[i] > 0 ? x[i] : 0.0f;
        break;
    case CS_ACTF_CLIP:
        for (long i = begin; i < end; i++) {
            float v = x[i] < a ? a : x[i];
            y[i] = v > b ? b : v;
        }
        break;
    case CS_ACTF_LEAKY:
        for (long i = begin; i < end; i++) y[i] = x[i] * (x[i] > 0 ? 1.0f : a);
        break;
    case CS_ACTF_ELU:
        for (long i = begin; i < end; i++) y[i] = x[i] > 0 ? x[i] : a * expm1f(x[i]);
        break;
    case CS_ACTF_SIGMOID:
        for (long i = begin; i < end; i++) y[i] = sigmoid_pos(x[i], expf(-fabsf(x[i])));
        break;
    case CS_ACTF_TANH:
        for (long i = begin; i < end; i++) y[i] = tanhf(x[i]);
        break;
    case CS_ACTF_SWISH:
        for (long i = begin; i < end; i++) y[i] = x[i] * sigmoid_pos(x[i], expf(-fabsf(x[i])));
        break;
    case CS_ACTF_HARD_SIGMOID:
        for (long i = begin; i < end; i++) {
            float v = a * x[i] + b;
            v = v < 0 ? 0.0f : v;
            y[i] = v > 1 ? 1.0f : v;
        }
        break;
    case CS_ACTF_HARD_SWISH:
        for (long i = begin; i < end; i++) {
            float v = x[i] + 3.0f;
            v = v < 0 ? 0.0f : v;
            v = v > 6 ? 6.0f : v;
            y[i] = x[i] * v / 6.0f;
        }
        break;
    case CS_ACTF_GELU:
        for (long i = begin; i < end; i++) y[i] = 0.5f * x[i] * erfcf(-x[i] * (float)M_SQRT1_2);
        break;
    case CS_ACTF_GELU_TANH:
        /* 0.5 (1 + tanh(u)) = sigmoid(2u). */
        for (long i = begin; i < end; i++) {
            float v = x[i], u2 = 2.0f * SQRT_2_OVER_PI * (v + GELU_KAPPA * v * v * v);
            y[i] = v * sigmoid_pos(u2, expf(-fabsf(u2)));
        }
        break;
    case CS_ACTF_SOFTPLUS:
        for (long i = begin; i < end; i++) y[i] = (x[i] > 0 ? x[i] : 0.0f) + log1pf(expf(-fabsf(x[i])));
        break;
    }
}

CS_CLONES static void backward_range(void *ctx, long begin, long end, int worker)
{
    (void)worker;
    const actf_job *j = ctx;
    const float a = j->p->a, b = j->p->b, *x = j->x, *y = j->y, *dy = j->dy;
    float *dx = j->out;
    switch (j->p->kind) {
    case CS_ACTF_RELU:
        for (long i = begin; i < end; i++) dx[i] = x[i] > 0 ? dy[i] : 0.0f;
        break;
    case CS_ACTF_CLIP:
        for (long i = begin; i < end; i++) dx[i] = x[i] > a && x[i] < b ? dy[i] : 0.0f;
        break;
    case CS_ACTF_LEAKY:
        for (long i = begin; i < end; i++) dx[i] = dy[i] * (x[i] > 0 ? 1.0f : a);
        break;
    case CS_ACTF_ELU:
        for (long i = begin; i < end; i++) dx[i] = x[i] > 0 ? dy[i] : dy[i] * a * expf(x[i]);
        break;
    case CS_ACTF_SIGMOID:
        for (long i = begin; i < end; i++) {
            float e = expf(-fabsf(x[i])), r = 1.0f / (1.0f + e);
            dx[i] = dy[i] * (e * r * r);
        }
        break;
    case CS_ACTF_TANH:
        for (long i = begin; i < end; i++) dx[i] = dy[i] * (1.0f - y[i] * y[i]);
        break;
    case CS_ACTF_SWISH:
        /* (x s)' = s + x s (1 - s). */
        for (long i = begin; i < end; i++) {
            float v = x[i], e = expf(-fabsf(v)), r = 1.0f / (1.0f + e);
            dx[i] = dy[i] * (sigmoid_pos(v, e) + v * (e * r * r));
        }
        break;
    case CS_ACTF_HARD_SIGMOID:
        for (long i = begin; i < end; i++) {
            float v = a * x[i] + b;
            dx[i] = v > 0 && v < 1 ? dy[i] * a : 0.0f;
        }
        break;
    case CS_ACTF_HARD_SWISH:
        for (long i = begin; i < end; i++) {
            float v = x[i], d = v <= -3.0f ? 0.0f : (v < 3.0f ? v / 3.0f + 0.5f : 1.0f);
            dx[i] = dy[i] * d;
        }
        break;
    case CS_ACTF_GELU:
        /* Phi(x) + x phi(x). */
        for (long i = begin; i < end; i++) {
            float v = x[i];
            float cdf = 0.5f * erfcf(-v * (float)M_SQRT1_2), pdf = INV_SQRT_2PI * expf(-0.5f * v * v);
            dx[i] = dy[i] * (cdf + v * pdf);
        }
        break;
    case CS_ACTF_GELU_TANH:
        /* y = x s(2u): y' = s + 2 x s (1 - s) u', u' = sqrt(2/pi) (1 + 3 kappa x^2). */
        for (long i = begin; i < end; i++) {
            float v = x[i], u2 = 2.0f * SQRT_2_OVER_PI * (v + GELU_KAPPA * v * v * v);
            float e = expf(-fabsf(u2)), r = 1.0f / (1.0f + e);
            float du = SQRT_2_OVER_PI * (1.0f + 3.0f * GELU_KAPPA * v * v);
            dx[i] = dy[i] * (sigmoid_pos(u2, e) + 2.0f * v * (e * r * r) * du);
        }
        break;
    case CS_ACTF_SOFTPLUS:
        for (long i = begin; i < end; i++) dx[i] = dy[i] * sigmoid_pos(x[i], expf(-fabsf(x[i])));
        break;
    }
}

/* Elementwise operations per value: the selects cost about one, a libm call some tens. */
static long cost_of(cs_actf kind)
{
    return kind == CS_ACTF_RELU || kind == CS_ACTF_CLIP || kind == CS_ACTF_LEAKY || kind == CS_ACTF_HARD_SIGMOID ||
                   kind == CS_ACTF_HARD_SWISH
               ? 1
               : 20;
}

void cs_actf_forward(const cs_actf_params *p, size_t count, const float *x, float *y)
{
    actf_job j = {.p = p, .x = x, .out = y};
    cs_parallel_run((long)count, cs_parallel_grain(cost_of(p->kind), 64), 0, forward_range, &j);
}

void cs_actf_backward(const cs_actf_params *p, size_t count, const float *x, const float *y, const float *dy,
                      float *dx)
{
    if (!dx) return;
    actf_job j = {.p = p, .x = x, .y = y, .dy = dy, .out = dx};
    cs_parallel_run((long)count, cs_parallel_grain(cost_of(p->kind), 64), 0, backward_range, &j);
}
