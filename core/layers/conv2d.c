/*
 * conv2d.c - Keras Conv2D: a square kernel, one stride, 'same' or 'valid' padding,
 * with a bias and a fused activation. The kernels are conv.c's (im2col + sgemm, and
 * direct kernels for stride-1 'valid' layers).
 */
#include "kernel_layer.h"

#include <stdio.h>
#include <string.h>

#define MAX_DIM (1 << 24)

static int conv2d_infer(cs_layer *l, const cs_shape *in, char *err, size_t errlen)
{
    cs_layer_config *cfg = &l->cfg;
    int k = cfg->kernel, s = cfg->stride > 0 ? cfg->stride : 1;
    cfg->stride = s;
    if (k <= 0 || cfg->filters <= 0) {
        snprintf(err, errlen, "%s: conv2d needs filters and kernel size", l->name);
        return -1;
    }
    if (in->h < (cfg->pad_same ? 1 : k) || in->w < (cfg->pad_same ? 1 : k)) {
        snprintf(err, errlen, "%s: input %dx%d is smaller than the %dx%d kernel", l->name, in->h, in->w, k, k);
        return -1;
    }
    if (cfg->pad_same) {
        l->out.h = (in->h + s - 1) / s;
        l->out.w = (in->w + s - 1) / s;
    } else {
        l->out.h = (in->h - k) / s + 1;
        l->out.w = (in->w - k) / s + 1;
    }
    l->out.c = cfg->filters;
    int kd[4] = {k, k, in->c, cfg->filters};
    cs_kernel_layer_params(l, 4, kd);
    return 0;
}

static int conv2d_to_json(const cs_layer *l, json_t *o)
{
    const cs_layer_config *c = &l->cfg;
    return json_object_set_new(o, "filters", json_integer(c->filters)) ||
                   json_object_set_new(o, "kernel_size", json_integer(c->kernel)) ||
                   json_object_set_new(o, "strides", json_integer(c->stride)) ||
                   json_object_set_new(o, "padding", json_string(c->pad_same ? "same" : "valid")) ||
                   cs_kernel_layer_to_json(l, o)
               ? -1
               : 0;
}

static int conv2d_from_json(json_t *o, cs_layer_config *cfg, char *err, size_t errlen)
{
    if (cs_json_get_int(o, "filters", 1, MAX_DIM, &cfg->filters, err, errlen) ||
        cs_json_get_int(o, "kernel_size", 1, MAX_DIM, &cfg->kernel, err, errlen) ||
        cs_json_get_int(o, "strides", 1, MAX_DIM, &cfg->stride, err, errlen))
        return -1;
    const char *pad = cs_json_get_str(o, "padding", err, errlen);
    if (!pad) return -1;
    if (strcmp(pad, "same") != 0 && strcmp(pad, "valid") != 0) {
        snprintf(err, errlen, "padding '%s' is neither same nor valid", pad);
        return -1;
    }
    cfg->pad_same = strcmp(pad, "same") == 0;
    return cs_kernel_layer_from_json(o, cfg, err, errlen);
}

static void conv2d_init(cs_layer *l, cs_rng *r)
{
    int recept = l->cfg.kernel * l->cfg.kernel;
    cs_init_kernel(l, recept * l->in.c, recept * l->out.c, r);
}

static void conv2d_forward(const cs_node_pass *p)
{
    const cs_layer *l = p->l;
    float *z = cs_kernel_layer_preact(p);
    cs_conv_geom g = cs_conv_geometry(l, p->n);
    cs_conv_forward(&g, p->x[0], l->params[0].data, l->params[1].data, z, &p->e->scratch);
    cs_kernel_layer_activate(p, z);
}

static void conv2d_backward(const cs_node_pass *p)
{
    const cs_layer *l = p->l;
    cs_kernel_layer_deactivate(p);
    cs_conv_geom g = cs_conv_geometry(l, p->n);
    cs_conv_backward(&g, p->x[0], l->params[0].data, p->dy, p->dx[0], cs_exec_param_grad(p->e, &l->params[0]),
                     cs_exec_param_grad(p->e, &l->params[1]), &p->e->scratch);
}

const cs_layer_ops cs_conv2d_ops = {
    .keras = "Conv2D",
    .onnx = "Conv",
    .infer = conv2d_infer,
    .config_to_json = conv2d_to_json,
    .config_from_json = conv2d_from_json,
    .init = conv2d_init,
    .forward = conv2d_forward,
    .backward = conv2d_backward,
};
