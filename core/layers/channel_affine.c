/*
 * channel_affine.c - y = x * scale[c] + shift[c], a per-channel affine map.
 *
 * The forward and the input gradient spread rows over the workers. The parameter
 * gradients are sums over every row: each task owns a block of channels and sums
 * all rows into a fixed array of double accumulators, so no task shares an output
 * and no scratch is needed.
 *
 * At the end, the Rescaling and Normalization rows of the layer table.
 */
#include <math.h>
#include <stdio.h>

#include "kernels.h"
#include "layer_ops.h"
#include "parallel.h"
#include "simd.h"

#define CBLOCK 256

typedef struct {
    size_t rows;
    int c;
    const float *x, *scale, *shift, *dy;
    float *out, *dscale, *dshift;
} affine_job;

CS_CLONES static void forward_range(void *ctx, long begin, long end, int worker)
{
    (void)worker;
    const affine_job *j = ctx;
    const int c = j->c;
    for (long r = begin; r < end; r++) {
        const float *x = j->x + (size_t)r * c;
        float *y = j->out + (size_t)r * c;
        for (int k = 0; k < c; k++) y[k] = x[k] * j->scale[k] + j->shift[k];
    }
}

void cs_channel_affine_forward(size_t rows, int c, const float *x, const float *scale, const float *shift, float *y)
{
    affine_job j = {.rows = rows, .c = c, .x = x, .scale = scale, .shift = shift, .out = y};
    cs_parallel_run((long)rows, cs_parallel_grain(c, 1), 0, forward_range, &j);
}

CS_CLONES static void input_grad_range(void *ctx, long begin, long end, int worker)
{
    (void)worker;
    const affine_job *j = ctx;
    const int c = j->c;
    for (long r = begin; r < end; r++) {
        const float *dy = j->dy + (size_t)r * c;
        float *dx = j->out + (size_t)r * c;
        for (int k = 0; k < c; k++) dx[k] = dy[k] * j->scale[k];
    }
}

CS_CLONES static void param_grad_range(void *ctx, long begin, long end, int worker)
{
    (void)worker;
    const affine_job *j = ctx;
    const int c = j->c;
    double ds[CBLOCK], dt[CBLOCK];
    for (long blk = begin; blk < end; blk++) {
        const int c0 = (int)blk * CBLOCK, cn = c - c0 < CBLOCK ? c - c0 : CBLOCK;
        for (int k = 0; k < cn; k++) ds[k] = dt[k] = 0;
        for (size_t r = 0; r < j->rows; r++) {
            const float *dy = j->dy + r * c + c0;
            if (j->dscale) {
                const float *x = j->x + r * c + c0;
                for (int k = 0; k < cn; k++) ds[k] += (double)dy[k] * x[k];
            }
            for (int k = 0; k < cn; k++) dt[k] += dy[k];
        }
        for (int k = 0; k < cn; k++) {
            if (j->dscale) j->dscale[c0 + k] += (float)ds[k];
            if (j->dshift) j->dshift[c0 + k] += (float)dt[k];
        }
    }
}

void cs_channel_affine_backward(size_t rows, int c, const float *x, const float *scale, const float *dy, float *dx,
                                float *dscale, float *dshift)
{
    affine_job j = {.rows = rows, .c = c, .x = x, .scale = scale, .dy = dy, .out = dx, .dscale = dscale,
                    .dshift = dshift};
    if (dx) cs_parallel_run((long)rows, cs_parallel_grain(c, 1), 0, input_grad_range, &j);
    if (dscale || dshift) {
        const long blocks = (c + CBLOCK - 1) / CBLOCK;
        cs_parallel_run(blocks, cs_parallel_grain((long)rows * CBLOCK, 1), 0, param_grad_range, &j);
    }
}

/* ---- Rescaling: y = x * scale + offset, two scalars ---------------------------------- */

/* A zero scale in a configuration is the default, 1. */
static int rescaling_infer(cs_layer *l, const cs_shape *in, char *err, size_t errlen)
{
    if (l->cfg.scale == 0) l->cfg.scale = 1.0f;
    if (!isfinite(l->cfg.scale) || !isfinite(l->cfg.offset)) {
        snprintf(err, errlen, "%s: scale %g and offset %g must be finite", l->name, (double)l->cfg.scale,
                 (double)l->cfg.offset);
        return -1;
    }
    l->out = *in;
    return 0;
}

static int rescaling_to_json(const cs_layer *l, json_t *o)
{
    return cs_json_set_float(o, "scale", l->cfg.scale) || cs_json_set_float(o, "offset", l->cfg.offset) ? -1 : 0;
}

static int rescaling_from_json(json_t *o, cs_layer_config *cfg, char *err, size_t errlen)
{
    if (json_is_array(json_object_get(o, "scale")) || json_is_array(json_object_get(o, "offset"))) {
        snprintf(err, errlen, "has a list for 'scale' or 'offset': only single numbers are supported");
        return -1;
    }
    if (cs_json_get_float(o, "scale", &cfg->scale, err, errlen)) return -1;
    if (json_object_get(o, "offset") && cs_json_get_float(o, "offset", &cfg->offset, err, errlen)) return -1;
    if (cfg->scale == 0 || !isfinite(cfg->scale) || !isfinite(cfg->offset)) {
        snprintf(err, errlen, "'scale' %g or 'offset' %g is 0 or too large for a float (the scale must not be 0)",
                 (double)cfg->scale, (double)cfg->offset);
        return -1;
    }
    return 0;
}

/* The whole tensor as one channel: the scalars are that channel's scale and shift. */
static void rescaling_forward(const cs_node_pass *p)
{
    const size_t count = (size_t)p->n * cs_shape_size(p->l->out);
    cs_channel_affine_forward(count, 1, p->x[0], &p->l->cfg.scale, &p->l->cfg.offset, p->y);
}

static void rescaling_backward(const cs_node_pass *p)
{
    const size_t count = (size_t)p->n * cs_shape_size(p->l->out);
    cs_channel_affine_backward(count, 1, p->x[0], &p->l->cfg.scale, p->dy, p->dx[0], NULL, NULL);
}

const cs_layer_ops cs_rescaling_ops = {
    .keras = "Rescaling",
    .infer = rescaling_infer,
    .config_to_json = rescaling_to_json,
    .config_from_json = rescaling_from_json,
    .forward = rescaling_forward,
    .backward = rescaling_backward,
};

/* ---- Normalization: y = (x - mean) / max(sqrt(variance), 1e-7) per channel ----------- */

/* Keras 3's formula, operation for operation (its epsilon is the backend's, 1e-7), so
 * outputs match Keras' to the bit. The statistics are the non-trainable weights
 * "mean" and "variance", Keras' names; a fresh layer has mean 0 and variance 1. */
#define NORM_EPS 1e-7f

static int normalization_infer(cs_layer *l, const cs_shape *in, char *err, size_t errlen)
{
    (void)err, (void)errlen;
    const int d[1] = {in->c};
    l->out = *in;
    cs_layer_add_param(l, "mean", 1, d, 0);
    cs_layer_add_param(l, "variance", 1, d, 0);
    return 0;
}

static void normalization_init(cs_layer *l, cs_rng *r)
{
    (void)r;
    for (int k = 0; k < l->out.c; k++) {
        l->params[0].data[k] = 0.0f;
        l->params[1].data[k] = 1.0f;
    }
}

static int normalization_to_json(const cs_layer *l, json_t *o)
{
    (void)l;
    return json_object_set_new(o, "axis", json_integer(-1));
}

/* Keras' configuration may carry the statistics (given when the layer was made) and
 * an inverse mode; the weights hold them here, and only the forward mode exists. */
static int normalization_from_json(json_t *o, cs_layer_config *cfg, char *err, size_t errlen)
{
    (void)cfg;
    if (cs_json_channel_axis(o, err, errlen)) return -1;
    if (json_is_true(json_object_get(o, "invert"))) {
        snprintf(err, errlen, "'invert' is true: only the forward normalisation is supported");
        return -1;
    }
    const char *keys[2] = {"mean", "variance"};
    for (int k = 0; k < 2; k++) {
        json_t *v = json_object_get(o, keys[k]);
        if (v && !json_is_null(v)) {
            snprintf(err, errlen, "has '%s' in its configuration: it is read from the weights", keys[k]);
            return -1;
        }
    }
    return 0;
}

typedef struct {
    int c;
    const float *x, *mean, *var;
    float *out;
} norm_job;

/* The divisor; a negative variance gives NaN, as in Keras (the comparison keeps it). */
static inline float norm_div(float var)
{
    const float s = sqrtf(var);
    return s < NORM_EPS ? NORM_EPS : s;
}

CS_CLONES static void norm_forward_range(void *ctx, long begin, long end, int worker)
{
    (void)worker;
    const norm_job *j = ctx;
    const int c = j->c;
    for (long r = begin; r < end; r++) {
        const float *x = j->x + (size_t)r * c;
        float *y = j->out + (size_t)r * c;
        for (int k = 0; k < c; k++) y[k] = (x[k] - j->mean[k]) / norm_div(j->var[k]);
    }
}

/* dx = dy / divisor: j->x is dy here. */
CS_CLONES static void norm_backward_range(void *ctx, long begin, long end, int worker)
{
    (void)worker;
    const norm_job *j = ctx;
    const int c = j->c;
    for (long r = begin; r < end; r++) {
        const float *dy = j->x + (size_t)r * c;
        float *dx = j->out + (size_t)r * c;
        for (int k = 0; k < c; k++) dx[k] = dy[k] / norm_div(j->var[k]);
    }
}

static void normalization_forward(const cs_node_pass *p)
{
    const cs_layer *l = p->l;
    norm_job j = {.c = l->out.c, .x = p->x[0], .mean = l->params[0].data, .var = l->params[1].data, .out = p->y};
    cs_parallel_run((long)p->n * l->out.h * l->out.w, cs_parallel_grain(4L * l->out.c, 1), 0, norm_forward_range, &j);
}

static void normalization_backward(const cs_node_pass *p)
{
    const cs_layer *l = p->l;
    if (!p->dx[0]) return;
    norm_job j = {.c = l->out.c, .x = p->dy, .var = l->params[1].data, .out = p->dx[0]};
    cs_parallel_run((long)p->n * l->out.h * l->out.w, cs_parallel_grain(4L * l->out.c, 1), 0, norm_backward_range,
                    &j);
}

const cs_layer_ops cs_normalization_ops = {
    .keras = "Normalization",
    .flags = CS_OP_CONSTANT_INIT,
    .infer = normalization_infer,
    .config_to_json = normalization_to_json,
    .config_from_json = normalization_from_json,
    .init = normalization_init,
    .forward = normalization_forward,
    .backward = normalization_backward,
};
