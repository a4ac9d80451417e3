/*
 * max_pooling2d.c - Keras MaxPooling2D with a square window and stride equal to it,
 * 'valid' (the ragged edge is dropped). Kernels in pool.c.
 */
#include "layer_ops.h"

#include <stdio.h>

#define MAX_DIM (1 << 24)

static int maxpool_infer(cs_layer *l, const cs_shape *in, char *err, size_t errlen)
{
    int p = l->cfg.pool > 0 ? l->cfg.pool : 2;
    l->cfg.pool = p;
    l->out = (cs_shape){in->h / p, in->w / p, in->c};
    if (l->out.h < 1 || l->out.w < 1) {
        snprintf(err, errlen, "%s: input %dx%d is smaller than the %dx%d pool", l->name, in->h, in->w, p, p);
        return -1;
    }
    return 0;
}

static int maxpool_to_json(const cs_layer *l, json_t *o)
{
    return json_object_set_new(o, "pool_size", json_integer(l->cfg.pool));
}

static int maxpool_from_json(json_t *o, cs_layer_config *cfg, char *err, size_t errlen)
{
    return cs_json_get_int(o, "pool_size", 1, MAX_DIM, &cfg->pool, err, errlen);
}

static void maxpool_forward(const cs_node_pass *p)
{
    const cs_layer *l = p->l;
    cs_maxpool_forward(p->n, l->in.h, l->in.w, l->in.c, l->cfg.pool, p->x[0], p->y);
}

static void maxpool_backward(const cs_node_pass *p)
{
    const cs_layer *l = p->l;
    cs_maxpool_backward(p->n, l->in.h, l->in.w, l->in.c, l->cfg.pool, p->x[0], p->y, p->dy, p->dx[0]);
}

const cs_layer_ops cs_maxpool_ops = {
    .keras = "MaxPooling2D",
    .onnx = "MaxPool",
    .infer = maxpool_infer,
    .config_to_json = maxpool_to_json,
    .config_from_json = maxpool_from_json,
    .forward = maxpool_forward,
    .backward = maxpool_backward,
};
