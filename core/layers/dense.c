/*
 * dense.c - Keras Dense: y = x W + b on a flat input, with a fused activation.
 */
#include "kernel_layer.h"

#include <stdio.h>

#define MAX_DIM (1 << 24)

static int dense_infer(cs_layer *l, const cs_shape *in, char *err, size_t errlen)
{
    if (l->cfg.units <= 0) {
        snprintf(err, errlen, "%s: dense needs units", l->name);
        return -1;
    }
    if (in->h != 1 || in->w != 1) {
        snprintf(err, errlen, "%s: dense needs a flat input, got %dx%dx%d (add a Flatten)", l->name, in->h, in->w,
                 in->c);
        return -1;
    }
    l->out = (cs_shape){1, 1, l->cfg.units};
    int kd[2] = {in->c, l->cfg.units};
    cs_kernel_layer_params(l, 2, kd);
    return 0;
}

static int dense_to_json(const cs_layer *l, json_t *o)
{
    return json_object_set_new(o, "units", json_integer(l->cfg.units)) || cs_kernel_layer_to_json(l, o) ? -1 : 0;
}

static int dense_from_json(json_t *o, cs_layer_config *cfg, char *err, size_t errlen)
{
    return cs_json_get_int(o, "units", 1, MAX_DIM, &cfg->units, err, errlen) ||
                   cs_kernel_layer_from_json(o, cfg, err, errlen)
               ? -1
               : 0;
}

static void dense_init(cs_layer *l, cs_rng *r) { cs_init_kernel(l, l->in.c, l->out.c, r); }

static void dense_forward(const cs_node_pass *p)
{
    const cs_layer *l = p->l;
    float *z = cs_kernel_layer_preact(p);
    cs_dense_forward(p->n, l->in.c, l->out.c, p->x[0], l->params[0].data, l->params[1].data, z);
    cs_kernel_layer_activate(p, z);
}

static void dense_backward(const cs_node_pass *p)
{
    const cs_layer *l = p->l;
    cs_kernel_layer_deactivate(p);
    cs_dense_backward(p->n, l->in.c, l->out.c, p->x[0], l->params[0].data, p->dy, p->dx[0],
                      cs_exec_param_grad(p->e, &l->params[0]), cs_exec_param_grad(p->e, &l->params[1]));
}

const cs_layer_ops cs_dense_ops = {
    .keras = "Dense",
    .onnx = "Gemm",
    .infer = dense_infer,
    .config_to_json = dense_to_json,
    .config_from_json = dense_from_json,
    .init = dense_init,
    .forward = dense_forward,
    .backward = dense_backward,
};
