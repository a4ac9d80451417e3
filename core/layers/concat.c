/*
 * concat.c - concatenation along the channel axis.
 *
 * In NHWC each position's channels are contiguous, so the forward copies, per
 * position, each input's channels after the previous input's, and the backward
 * copies them back out. Positions are spread over the workers.
 *
 * At the end, the Concatenate row of the layer table (channels only).
 */
#include <stdio.h>
#include <string.h>

#include "kernels.h"
#include "layer_ops.h"
#include "parallel.h"

typedef struct {
    int k, total;
    const int *cs;
    const float *const *xs;
    float *y;
    const float *dy;
    float *const *dxs;
} concat_job;

static void forward_range(void *ctx, long begin, long end, int worker)
{
    (void)worker;
    const concat_job *j = ctx;
    for (int i = 0, at = 0; i < j->k; at += j->cs[i], i++) {
        const size_t ci = (size_t)j->cs[i];
        const float *x = j->xs[i];
        for (long r = begin; r < end; r++) memcpy(j->y + (size_t)r * j->total + at, x + r * ci, ci * sizeof(float));
    }
}

void cs_concat_forward(size_t rows, int k, const int *cs, const float *const *xs, float *y)
{
    concat_job j = {.k = k, .cs = cs, .xs = xs, .y = y};
    for (int i = 0; i < k; i++) j.total += cs[i];
    cs_parallel_run((long)rows, cs_parallel_grain(j.total, 1), 0, forward_range, &j);
}

static void backward_range(void *ctx, long begin, long end, int worker)
{
    (void)worker;
    const concat_job *j = ctx;
    for (int i = 0, at = 0; i < j->k; at += j->cs[i], i++) {
        const size_t ci = (size_t)j->cs[i];
        float *dx = j->dxs[i];
        if (!dx) continue;
        for (long r = begin; r < end; r++) memcpy(dx + r * ci, j->dy + (size_t)r * j->total + at, ci * sizeof(float));
    }
}

void cs_concat_backward(size_t rows, int k, const int *cs, const float *dy, float *const *dxs)
{
    if (!dxs) return;
    concat_job j = {.k = k, .cs = cs, .dy = dy, .dxs = dxs};
    for (int i = 0; i < k; i++) j.total += cs[i];
    cs_parallel_run((long)rows, cs_parallel_grain(j.total, 1), 0, backward_range, &j);
}

/* ---- Concatenate ------------------------------------------------------------------- */

static int concat_infer(cs_layer *l, const cs_shape *in, char *err, size_t errlen)
{
    long c = 0;
    for (int k = 0; k < l->n_inputs; k++) {
        if (in[k].h != in[0].h || in[k].w != in[0].w) {
            snprintf(err, errlen,
                     "%s: input %d is %dx%dx%d but input 0 is %dx%dx%d: concatenating channels needs the same "
                     "height and width",
                     l->name, k, in[k].h, in[k].w, in[k].c, in[0].h, in[0].w, in[0].c);
            return -1;
        }
        c += in[k].c;
    }
    if (c > (1L << 24)) {
        snprintf(err, errlen, "%s: %ld channels in all, more than %d", l->name, c, 1 << 24);
        return -1;
    }
    l->out = (cs_shape){in[0].h, in[0].w, (int)c};
    return 0;
}

static int concat_to_json(const cs_layer *l, json_t *o)
{
    (void)l;
    return json_object_set_new(o, "axis", json_integer(-1));
}

static int concat_from_json(json_t *o, cs_layer_config *cfg, char *err, size_t errlen)
{
    (void)cfg;
    return cs_json_channel_axis(o, err, errlen);
}

static void channels_of(const cs_node_pass *p, int *cs)
{
    for (int k = 0; k < p->l->n_inputs; k++) cs[k] = cs_model_node_shape(p->e->model, p->l->inputs[k]).c;
}

static void concat_forward(const cs_node_pass *p)
{
    int cs[CS_MAX_INPUTS];
    channels_of(p, cs);
    cs_concat_forward((size_t)p->n * p->l->out.h * p->l->out.w, p->l->n_inputs, cs, p->x, p->y);
}

static void concat_backward(const cs_node_pass *p)
{
    int cs[CS_MAX_INPUTS];
    channels_of(p, cs);
    cs_concat_backward((size_t)p->n * p->l->out.h * p->l->out.w, p->l->n_inputs, cs, p->dy, p->dx);
}

const cs_layer_ops cs_concatenate_ops = {
    .keras = "Concatenate",
    .onnx = "Concat",
    .infer = concat_infer,
    .config_to_json = concat_to_json,
    .config_from_json = concat_from_json,
    .forward = concat_forward,
    .backward = concat_backward,
};
