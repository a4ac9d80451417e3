/*
 * dropout.c - Keras Dropout: inverted dropout in training (kept values scaled by
 * 1/(1 - rate)), the identity when serving.
 */
#include "layer_ops.h"

#include <string.h>

static int dropout_to_json(const cs_layer *l, json_t *o) { return cs_json_set_float(o, "rate", l->cfg.rate); }

static int dropout_from_json(json_t *o, cs_layer_config *cfg, char *err, size_t errlen)
{
    return cs_json_get_float(o, "rate", &cfg->rate, err, errlen);
}

static void dropout_forward(const cs_node_pass *p)
{
    const size_t count = (size_t)p->n * cs_shape_size(p->l->out);
    if (p->training && p->l->cfg.rate > 0)
        cs_dropout_forward(count, p->l->cfg.rate, p->x[0], p->y, p->e->mask[p->node], &p->e->rng_state);
    else
        memcpy(p->y, p->x[0], count * sizeof(float));
}

static void dropout_backward(const cs_node_pass *p)
{
    const size_t count = (size_t)p->n * cs_shape_size(p->l->out);
    if (p->training && p->l->cfg.rate > 0) cs_dropout_backward(count, p->l->cfg.rate, p->e->mask[p->node], p->dy, p->dx[0]);
    else memcpy(p->dx[0], p->dy, count * sizeof(float));
}

const cs_layer_ops cs_dropout_ops = {
    .keras = "Dropout",
    .onnx = "Dropout",
    .infer = cs_infer_same_shape,
    .config_to_json = dropout_to_json,
    .config_from_json = dropout_from_json,
    .forward = dropout_forward,
    .backward = dropout_backward,
};
