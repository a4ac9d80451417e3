/*
 * flatten.c - Keras Flatten: (h, w, c) to a vector in channels-last order, which is
 * the order the floats already have, so the executor makes it a view of its input.
 */
#include "layer_ops.h"

#include <string.h>

static int flatten_infer(cs_layer *l, const cs_shape *in, char *err, size_t errlen)
{
    (void)err, (void)errlen;
    l->out = (cs_shape){1, 1, (int)cs_shape_size(*in)};
    return 0;
}

/* Copies only where the executor could not make the output a view. */
static void flatten_forward(const cs_node_pass *p)
{
    if (p->y != p->x[0]) memcpy(p->y, p->x[0], (size_t)p->n * cs_shape_size(p->l->out) * sizeof(float));
}

static void flatten_backward(const cs_node_pass *p)
{
    if (p->dx[0] != p->dy) memcpy(p->dx[0], p->dy, (size_t)p->n * cs_shape_size(p->l->out) * sizeof(float));
}

const cs_layer_ops cs_flatten_ops = {
    .keras = "Flatten",
    .onnx = "Flatten",
    .flags = CS_OP_VIEW,
    .infer = flatten_infer,
    .forward = flatten_forward,
    .backward = flatten_backward,
};
