/*
 * batch_normalization.c - Keras BatchNormalization over the last (channel) axis:
 * batch statistics in training (moving averages updated in the model being trained),
 * the moving averages in inference. Kernels in batchnorm.c.
 */
#include "layer_ops.h"

#include <stdio.h>

static int bn_infer(cs_layer *l, const cs_shape *in, char *err, size_t errlen)
{
    (void)err, (void)errlen;
    int d[1] = {in->c};
    if (l->cfg.momentum == 0) l->cfg.momentum = 0.99f;
    if (l->cfg.epsilon == 0) l->cfg.epsilon = 1e-3f;
    l->out = *in;
    cs_layer_add_param(l, "gamma", 1, d, 1);
    cs_layer_add_param(l, "beta", 1, d, 1);
    cs_layer_add_param(l, "moving_mean", 1, d, 0);
    cs_layer_add_param(l, "moving_variance", 1, d, 0);
    return 0;
}

static int bn_to_json(const cs_layer *l, json_t *o)
{
    return cs_json_set_float(o, "momentum", l->cfg.momentum) || cs_json_set_float(o, "epsilon", l->cfg.epsilon) ? -1
                                                                                                                 : 0;
}

static int bn_from_json(json_t *o, cs_layer_config *cfg, char *err, size_t errlen)
{
    return cs_json_get_float(o, "momentum", &cfg->momentum, err, errlen) ||
                   cs_json_get_float(o, "epsilon", &cfg->epsilon, err, errlen)
               ? -1
               : 0;
}

/* A fresh batch norm is the identity: gamma 1, beta 0, moving mean 0, moving variance 1. */
static void bn_init(cs_layer *l, cs_rng *r)
{
    (void)r;
    for (int c = 0; c < l->out.c; c++) {
        l->params[0].data[c] = 1.0f;
        l->params[1].data[c] = 0.0f;
        l->params[2].data[c] = 0.0f;
        l->params[3].data[c] = 1.0f;
    }
}

static void bn_forward(const cs_node_pass *p)
{
    const cs_layer *l = p->l;
    const size_t rows = (size_t)p->n * l->out.h * l->out.w;
    if (p->training) {
        cs_bn_cache *bc = &p->e->bn[p->node];
        const cs_layer *ul = p->update ? &p->update->layers[p->node] : NULL;
        cs_bn_forward_train(rows, l->out.c, p->x[0], l->params[0].data, l->params[1].data, l->cfg.epsilon, p->y,
                            bc->mean, bc->inv_std, ul ? ul->params[2].data : NULL, ul ? ul->params[3].data : NULL,
                            l->cfg.momentum, bc->sums);
    } else {
        cs_bn_forward_infer(rows, l->out.c, p->x[0], l->params[0].data, l->params[1].data, l->params[2].data,
                            l->params[3].data, l->cfg.epsilon, p->y);
    }
}

static void bn_backward(const cs_node_pass *p)
{
    const cs_layer *l = p->l;
    const size_t rows = (size_t)p->n * l->out.h * l->out.w;
    float *dgamma = cs_exec_param_grad(p->e, &l->params[0]), *dbeta = cs_exec_param_grad(p->e, &l->params[1]);
    cs_bn_cache *bc = &p->e->bn[p->node];
    if (p->training)
        cs_bn_backward_train(rows, l->out.c, p->x[0], p->dy, l->params[0].data, bc->mean, bc->inv_std, p->dx[0],
                             dgamma, dbeta, bc->sums);
    else
        cs_bn_backward_infer(rows, l->out.c, p->x[0], p->dy, l->params[0].data, l->params[2].data,
                             l->params[3].data, l->cfg.epsilon, p->dx[0], dgamma, dbeta);
}

const cs_layer_ops cs_batchnorm_ops = {
    .keras = "BatchNormalization",
    .onnx = "BatchNormalization",
    .flags = CS_OP_CONSTANT_INIT,
    .infer = bn_infer,
    .config_to_json = bn_to_json,
    .config_from_json = bn_from_json,
    .init = bn_init,
    .forward = bn_forward,
    .backward = bn_backward,
};
