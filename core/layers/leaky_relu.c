/*
 * leaky_relu.c - Keras LeakyReLU: x for x > 0, alpha x otherwise (alpha 0.3 by default).
 */
#include "layer_ops.h"

static int leaky_infer(cs_layer *l, const cs_shape *in, char *err, size_t errlen)
{
    (void)err, (void)errlen;
    if (l->cfg.alpha == 0) l->cfg.alpha = 0.3f;
    l->out = *in;
    return 0;
}

static int leaky_to_json(const cs_layer *l, json_t *o) { return cs_json_set_float(o, "alpha", l->cfg.alpha); }

static int leaky_from_json(json_t *o, cs_layer_config *cfg, char *err, size_t errlen)
{
    return cs_json_get_float(o, "alpha", &cfg->alpha, err, errlen);
}

static void leaky_forward(const cs_node_pass *p)
{
    cs_leaky_forward((size_t)p->n * cs_shape_size(p->l->out), p->l->cfg.alpha, p->x[0], p->y);
}

static void leaky_backward(const cs_node_pass *p)
{
    cs_guided_clamp(p);
    cs_leaky_backward((size_t)p->n * cs_shape_size(p->l->out), p->l->cfg.alpha, p->x[0], p->dy, p->dx[0]);
}

const cs_layer_ops cs_leaky_relu_ops = {
    .keras = "LeakyReLU",
    .onnx = "LeakyRelu",
    .flags = CS_OP_ACTIVATION,
    .infer = leaky_infer,
    .config_to_json = leaky_to_json,
    .config_from_json = leaky_from_json,
    .forward = leaky_forward,
    .backward = leaky_backward,
};
