/*
 * softmax.c - Keras Softmax (and ONNX Softmax) over the channels: each position's c
 * values of an (h, w, c) output sum to 1. Kernels in activations.c; rows (positions)
 * are spread over the workers.
 *
 * As the model's top, it is where the executor seeds gradients: a cross-entropy loss
 * or a class score seeded with respect to the logits (e->top_is_dz) already is the
 * gradient of the softmax's input, and the backward passes it through.
 */
#include <string.h>

#include "layer_ops.h"
#include "parallel.h"

static int softmax_to_json(const cs_layer *l, json_t *o)
{
    (void)l;
    return json_object_set_new(o, "axis", json_integer(-1));
}

static int softmax_from_json(json_t *o, cs_layer_config *cfg, char *err, size_t errlen)
{
    (void)cfg;
    return cs_json_channel_axis(o, err, errlen);
}

typedef struct {
    int c;
    const float *x, *y, *dy;
    float *out;
} softmax_job;

static void forward_range(void *ctx, long begin, long end, int worker)
{
    (void)worker;
    const softmax_job *j = ctx;
    const size_t at = (size_t)begin * j->c;
    cs_softmax_forward((int)(end - begin), j->c, j->x + at, j->out + at);
}

static void backward_range(void *ctx, long begin, long end, int worker)
{
    (void)worker;
    const softmax_job *j = ctx;
    const size_t at = (size_t)begin * j->c;
    cs_softmax_backward((int)(end - begin), j->c, j->y + at, j->dy + at, j->out + at);
}

/* Exponentials cost some tens of operations each. */
static long grain(int c) { return cs_parallel_grain(20L * c, 1); }

static void softmax_forward(const cs_node_pass *p)
{
    const cs_shape s = p->l->out;
    softmax_job j = {.c = s.c, .x = p->x[0], .out = p->y};
    cs_parallel_run((long)p->n * s.h * s.w, grain(s.c), 0, forward_range, &j);
}

static void softmax_backward(const cs_node_pass *p)
{
    const cs_shape s = p->l->out;
    if (!p->dx[0]) return;
    const size_t rows = (size_t)p->n * s.h * s.w;
    if (p->node == p->e->model->n_layers - 1 && p->e->top_is_dz) {
        memcpy(p->dx[0], p->dy, rows * s.c * sizeof(float));
        return;
    }
    softmax_job j = {.c = s.c, .y = p->y, .dy = p->dy, .out = p->dx[0]};
    cs_parallel_run((long)rows, grain(s.c), 0, backward_range, &j);
}

const cs_layer_ops cs_softmax_ops = {
    .keras = "Softmax",
    .onnx = "Softmax",
    .infer = cs_infer_same_shape,
    .config_to_json = softmax_to_json,
    .config_from_json = softmax_from_json,
    .forward = softmax_forward,
    .backward = softmax_backward,
};
