/*
 * depthwise_conv2d.c - Keras DepthwiseConv2D: each input channel convolved with its
 * own depth_multiplier filters (the kernel (kh, kw, ic, multiplier) is Keras'
 * depthwise_kernel), a bias per output and a fused activation. An ONNX Conv with
 * groups equal to its input channels imports as a grouped Conv2D, which runs the
 * same depthwise kernels.
 */
#include "conv_window.h"
#include "fast_plan.h"
#include "kernel_layer.h"

#include <stdio.h>

#define MAX_DIM (1 << 24)

static int multiplier(const cs_layer *l) { return l->cfg.depth_multiplier > 0 ? l->cfg.depth_multiplier : 1; }

static cs_conv2d_geom geom(const cs_layer *l, int n)
{
    return cs_conv_window_geom(l, l->in.c, l->in.c * multiplier(l), l->in.c, n);
}

static int depthwise_infer(cs_layer *l, const cs_shape *in, char *err, size_t errlen)
{
    if (multiplier(l) > MAX_DIM / in->c) {
        snprintf(err, errlen, "%s: depth_multiplier %d is too large", l->name, multiplier(l));
        return -1;
    }
    cs_conv2d_geom g;
    if (cs_conv_window_infer(l, in, in->c * multiplier(l), in->c, &g, err, errlen) != 0) return -1;
    int kd[4] = {g.kh, g.kw, in->c, multiplier(l)}, bd[1] = {in->c * multiplier(l)};
    cs_param *k = cs_layer_add_param(l, "depthwise_kernel", 4, kd, 1);
    k->l1 = l->cfg.l1;
    k->l2 = l->cfg.l2;
    cs_layer_add_param(l, "bias", 1, bd, 1);
    return 0;
}

static int depthwise_to_json(const cs_layer *l, json_t *o)
{
    return cs_conv_window_to_json(l, o) || json_object_set_new(o, "depth_multiplier", json_integer(multiplier(l))) ||
                   cs_kernel_layer_to_json(l, o)
               ? -1
               : 0;
}

static int depthwise_from_json(json_t *o, cs_layer_config *cfg, char *err, size_t errlen)
{
    return cs_conv_window_from_json(o, cfg, err, errlen) ||
                   cs_json_get_int(o, "depth_multiplier", 1, MAX_DIM, &cfg->depth_multiplier, err, errlen) ||
                   cs_kernel_layer_from_json(o, cfg, err, errlen)
               ? -1
               : 0;
}

/* Keras' fans for a depthwise kernel: the receptive field, in one channel. */
static void depthwise_init(cs_layer *l, cs_rng *r)
{
    const cs_param *k = &l->params[0];
    int recept = k->dims[0] * k->dims[1];
    cs_init_kernel(l, recept, recept * multiplier(l), r);
}

static void depthwise_forward(const cs_node_pass *p)
{
    float *z = cs_kernel_layer_preact(p);
    if (cs_kernel_layer_fast(p, 0, p->x[0], z, 1)) return;
    cs_conv2d_geom g = geom(p->l, p->n);
    cs_conv2d_forward(&g, p->x[0], p->l->params[0].data, p->l->params[1].data, z, &p->e->scratch);
    cs_kernel_layer_activate(p, z);
}

static void depthwise_backward(const cs_node_pass *p)
{
    const cs_layer *l = p->l;
    cs_kernel_layer_deactivate(p);
    cs_conv2d_geom g = geom(l, p->n);
    cs_conv2d_backward(&g, p->x[0], l->params[0].data, p->dy, p->dx[0], cs_exec_param_grad(p->e, &l->params[0]),
                       cs_exec_param_grad(p->e, &l->params[1]), &p->e->scratch);
}

static void depthwise_fast(const cs_layer *l, const cs_fast_fuse *fuse, cs_fast_node *f)
{
    if (l->cfg.activation == CS_ACT_SOFTMAX && fuse) return;
    cs_conv2d_geom g = geom(l, 1);
    cs_onednn_post post = {.act = l->cfg.activation == CS_ACT_RELU ? CS_ONEDNN_RELU : CS_ONEDNN_LINEAR};
    cs_fast_conv(f, 0, &g, &l->params[0], &l->params[1], &post, fuse);
}

static size_t depthwise_scratch(const cs_layer *l, int max_batch)
{
    cs_conv2d_geom g = geom(l, max_batch);
    return cs_conv2d_scratch_floats(&g);
}

static size_t depthwise_part(const cs_layer *l)
{
    cs_conv2d_geom g = geom(l, 1);
    return cs_conv2d_part_floats(&g);
}

const cs_layer_ops cs_depthwise_conv2d_ops = {
    .keras = "DepthwiseConv2D",
    .infer = depthwise_infer,
    .config_to_json = depthwise_to_json,
    .config_from_json = depthwise_from_json,
    .init = depthwise_init,
    .forward = depthwise_forward,
    .backward = depthwise_backward,
    .scratch_floats = depthwise_scratch,
    .part_floats = depthwise_part,
    .fast = depthwise_fast,
};
