/*
 * activation.c - the elementwise activations, forward and backward.
 *
 * One loop per kind, chosen outside the loop. Piecewise-linear kinds are written as
 * selects, which vectorise. Sigmoid-shaped kinds go through e = exp(-|x|) <= 1, from
 * which sigmoid(x), 1 - sigmoid(x) and sigmoid'(x) = e / (1 + e)^2 all follow without
 * overflow or cancellation; GELU uses erfc for the same reason (1 + erf(x) cancels for
 * negative x). Derivatives at kinks are PyTorch's (see kernels.h).
 *
 * At the end, the Activation row of the layer table: any of these functions as a
 * node, named in files as Keras names them.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "kernels.h"
#include "layer_ops.h"
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

/* ---- Activation ------------------------------------------------------------------- */

/* The defaults of the constants (a configuration leaves them zero): Keras' leaky_relu
 * slope 0.2 and elu alpha 1, and Keras 3's hard sigmoid relu6(x + 3) / 6. Clip has
 * no default: its bounds are taken as they are. */
#define LEAKY_SLOPE 0.2f
#define HARD_SIGMOID_A (1.0f / 6.0f)
#define HARD_SIGMOID_B 0.5f

static const struct {
    const char *name;
    cs_actf kind;
} ACT_NAMES[] = {
    {"relu", CS_ACTF_RELU},       {"relu6", CS_ACTF_CLIP},       {"clip", CS_ACTF_CLIP},
    {"leaky_relu", CS_ACTF_LEAKY}, {"elu", CS_ACTF_ELU},         {"sigmoid", CS_ACTF_SIGMOID},
    {"tanh", CS_ACTF_TANH},       {"swish", CS_ACTF_SWISH},      {"silu", CS_ACTF_SWISH},
    {"hard_sigmoid", CS_ACTF_HARD_SIGMOID}, {"hard_swish", CS_ACTF_HARD_SWISH}, {"hard_silu", CS_ACTF_HARD_SWISH},
    {"gelu", CS_ACTF_GELU},       {"softplus", CS_ACTF_SOFTPLUS},
};
#define N_ACT_NAMES (sizeof ACT_NAMES / sizeof ACT_NAMES[0])

static int activation_infer(cs_layer *l, const cs_shape *in, char *err, size_t errlen)
{
    cs_layer_config *c = &l->cfg;
    if (c->actf < 0 || c->actf >= CS_ACTF_COUNT) {
        snprintf(err, errlen, "%s: activation function %d is not one this build knows", l->name, c->actf);
        return -1;
    }
    if (c->actf == CS_ACTF_LEAKY && c->act_a == 0) c->act_a = LEAKY_SLOPE;
    if (c->actf == CS_ACTF_ELU && c->act_a == 0) c->act_a = 1.0f;
    if (c->actf == CS_ACTF_HARD_SIGMOID && c->act_a == 0 && c->act_b == 0)
        c->act_a = HARD_SIGMOID_A, c->act_b = HARD_SIGMOID_B;
    if (!isfinite(c->act_a) || !isfinite(c->act_b)) {
        snprintf(err, errlen, "%s: activation constants %g and %g are not finite", l->name, (double)c->act_a,
                 (double)c->act_b);
        return -1;
    }
    if (c->actf == CS_ACTF_CLIP && c->act_a > c->act_b) {
        snprintf(err, errlen, "%s: clip's min %g is above its max %g", l->name, (double)c->act_a, (double)c->act_b);
        return -1;
    }
    l->out = *in;
    return 0;
}

static int set_float_unless(json_t *o, const char *key, float v, float dflt)
{
    return v == dflt ? 0 : cs_json_set_float(o, key, v);
}

static int activation_to_json(const cs_layer *l, json_t *o)
{
    const cs_layer_config *c = &l->cfg;
    const float a = c->act_a, b = c->act_b;
    const char *name = "relu";
    int rc = 0;
    switch ((cs_actf)c->actf) {
    case CS_ACTF_RELU: name = "relu"; break;
    case CS_ACTF_CLIP:
        name = a == 0 && b == 6 ? "relu6" : "clip";
        if (name[0] == 'c') rc = cs_json_set_float(o, "min", a) || cs_json_set_float(o, "max", b);
        break;
    case CS_ACTF_LEAKY:
        name = "leaky_relu";
        rc = set_float_unless(o, "negative_slope", a, LEAKY_SLOPE);
        break;
    case CS_ACTF_ELU:
        name = "elu";
        rc = set_float_unless(o, "alpha", a, 1.0f);
        break;
    case CS_ACTF_SIGMOID: name = "sigmoid"; break;
    case CS_ACTF_TANH: name = "tanh"; break;
    case CS_ACTF_SWISH: name = "swish"; break;
    case CS_ACTF_HARD_SIGMOID:
        name = "hard_sigmoid";
        if (a != HARD_SIGMOID_A || b != HARD_SIGMOID_B)
            rc = cs_json_set_float(o, "alpha", a) || cs_json_set_float(o, "beta", b);
        break;
    case CS_ACTF_HARD_SWISH: name = "hard_swish"; break;
    case CS_ACTF_GELU: name = "gelu"; break;
    case CS_ACTF_GELU_TANH:
        name = "gelu";
        rc = json_object_set_new(o, "approximate", json_true());
        break;
    case CS_ACTF_SOFTPLUS: name = "softplus"; break;
    }
    return rc || json_object_set_new(o, "activation", json_string(name)) ? -1 : 0;
}

/* o[key] as a finite float into *out; absent leaves *out unless required. */
static int get_const(json_t *o, const char *key, int required, float *out, char *err, size_t errlen)
{
    if (!required && !json_object_get(o, key)) return 0;
    if (cs_json_get_float(o, key, out, err, errlen) != 0) return -1;
    if (!isfinite(*out)) {
        snprintf(err, errlen, "'%s' is too large for a float", key);
        return -1;
    }
    return 0;
}

static int activation_from_json(json_t *o, cs_layer_config *cfg, char *err, size_t errlen)
{
    const char *name = cs_json_get_str(o, "activation", err, errlen);
    if (!name) return -1;
    size_t i = 0;
    while (i < N_ACT_NAMES && strcmp(name, ACT_NAMES[i].name) != 0) i++;
    if (i == N_ACT_NAMES) {
        if (strcmp(name, "softmax") == 0)
            snprintf(err, errlen, "activation 'softmax' is not elementwise: it is a Softmax node");
        else
            snprintf(err, errlen,
                     "activation '%.40s' is not relu, relu6, clip, leaky_relu, elu, sigmoid, tanh, swish, silu, "
                     "hard_sigmoid, hard_swish, hard_silu, gelu or softplus",
                     name);
        return -1;
    }
    cfg->actf = ACT_NAMES[i].kind;
    switch (ACT_NAMES[i].kind) {
    case CS_ACTF_CLIP:
        if (strcmp(name, "relu6") == 0) {
            cfg->act_a = 0, cfg->act_b = 6;
            return 0;
        }
        return get_const(o, "min", 1, &cfg->act_a, err, errlen) || get_const(o, "max", 1, &cfg->act_b, err, errlen)
                   ? -1
                   : 0;
    case CS_ACTF_LEAKY:
        cfg->act_a = LEAKY_SLOPE;
        if (get_const(o, "negative_slope", 0, &cfg->act_a, err, errlen)) return -1;
        if (cfg->act_a == 0) cfg->actf = CS_ACTF_RELU; /* a zero slope would read as the default */
        return 0;
    case CS_ACTF_ELU:
        cfg->act_a = 1.0f;
        if (get_const(o, "alpha", 0, &cfg->act_a, err, errlen)) return -1;
        if (cfg->act_a == 0) cfg->actf = CS_ACTF_RELU; /* likewise: elu with alpha 0 is relu */
        return 0;
    case CS_ACTF_HARD_SIGMOID:
        cfg->act_a = HARD_SIGMOID_A, cfg->act_b = HARD_SIGMOID_B;
        if (get_const(o, "alpha", 0, &cfg->act_a, err, errlen) || get_const(o, "beta", 0, &cfg->act_b, err, errlen))
            return -1;
        if (cfg->act_a == 0 && cfg->act_b == 0) {
            snprintf(err, errlen, "hard_sigmoid with 'alpha' and 'beta' 0 is the constant 0");
            return -1;
        }
        return 0;
    case CS_ACTF_GELU: {
        json_t *v = json_object_get(o, "approximate");
        if (v && !json_is_boolean(v)) {
            snprintf(err, errlen, "'approximate' is not true or false");
            return -1;
        }
        if (json_is_true(v)) cfg->actf = CS_ACTF_GELU_TANH;
        return 0;
    }
    default: return 0;
    }
}

static void activation_forward(const cs_node_pass *p)
{
    const cs_actf_params f = {(cs_actf)p->l->cfg.actf, p->l->cfg.act_a, p->l->cfg.act_b};
    cs_actf_forward(&f, (size_t)p->n * cs_shape_size(p->l->out), p->x[0], p->y);
}

static void activation_backward(const cs_node_pass *p)
{
    const cs_actf_params f = {(cs_actf)p->l->cfg.actf, p->l->cfg.act_a, p->l->cfg.act_b};
    if (f.kind == CS_ACTF_RELU || f.kind == CS_ACTF_LEAKY || f.kind == CS_ACTF_CLIP) cs_guided_clamp(p);
    cs_actf_backward(&f, (size_t)p->n * cs_shape_size(p->l->out), p->x[0], p->y, p->dy, p->dx[0]);
}

const cs_layer_ops cs_activation_ops = {
    .keras = "Activation",
    .flags = CS_OP_ACTIVATION,
    .infer = activation_infer,
    .config_to_json = activation_to_json,
    .config_from_json = activation_from_json,
    .forward = activation_forward,
    .backward = activation_backward,
};
