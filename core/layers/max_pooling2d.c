/*
 * max_pooling2d.c - Keras MaxPooling2D (and ONNX MaxPool): any window, strides,
 * dilation and padding (pool_layer.h). A square window at a stride of its size
 * without padding, the common case, runs pool.c's kernels; every other pool
 * pool2d.c's. Both give the same maxima, and the gradient goes to the first maximum
 * of each window in both.
 */
#include "pool_layer.h"

static void maxpool_forward(const cs_node_pass *p)
{
    const cs_layer *l = p->l;
    if (l->cfg.pool > 0) {
        cs_maxpool_forward(p->n, l->in.h, l->in.w, l->in.c, l->cfg.pool, p->x[0], p->y);
        return;
    }
    cs_pool2d_geom g = cs_pool_layer_geom(l, p->n);
    cs_maxpool2d_forward(&g, p->x[0], p->y);
}

static void maxpool_backward(const cs_node_pass *p)
{
    const cs_layer *l = p->l;
    if (!p->dx[0]) return;
    if (l->cfg.pool > 0) {
        cs_maxpool_backward(p->n, l->in.h, l->in.w, l->in.c, l->cfg.pool, p->x[0], p->y, p->dy, p->dx[0]);
        return;
    }
    cs_pool2d_geom g = cs_pool_layer_geom(l, p->n);
    cs_maxpool2d_backward(&g, p->x[0], p->y, p->dy, p->dx[0]);
}

const cs_layer_ops cs_maxpool_ops = {
    .keras = "MaxPooling2D",
    .onnx = "MaxPool",
    .infer = cs_pool_layer_infer,
    .config_to_json = cs_pool_layer_to_json,
    .config_from_json = cs_pool_layer_from_json,
    .forward = maxpool_forward,
    .backward = maxpool_backward,
};
