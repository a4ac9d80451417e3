/*
 * relu.c - Keras ReLU: max(x, 0).
 */
#include "layer_ops.h"

static void relu_forward(const cs_node_pass *p)
{
    cs_relu_forward((size_t)p->n * cs_shape_size(p->l->out), p->x[0], p->y);
}

/* From the output: y > 0 exactly where x > 0. */
static void relu_backward(const cs_node_pass *p)
{
    cs_guided_clamp(p);
    cs_relu_backward((size_t)p->n * cs_shape_size(p->l->out), p->y, p->dy, p->dx[0]);
}

const cs_layer_ops cs_relu_ops = {
    .keras = "ReLU",
    .onnx = "Relu",
    .flags = CS_OP_ACTIVATION,
    .infer = cs_infer_same_shape,
    .forward = relu_forward,
    .backward = relu_backward,
};
