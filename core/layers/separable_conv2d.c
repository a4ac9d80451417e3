/*
 * separable_conv2d.c - Keras SeparableConv2D: a depthwise conv over the window
 * (depthwise_kernel (kh, kw, ic, multiplier), no bias) and then a 1x1 conv to the
 * filters (pointwise_kernel (1, 1, ic * multiplier, filters), a bias), with a fused
 * activation. The depthwise output and its gradient live in the node's own state.
 */
#include "conv_window.h"
#include "fast_plan.h"
#include "kernel_layer.h"

#include <stdio.h>

#define MAX_DIM (1 << 24)

static int multiplier(const cs_layer *l) { return l->cfg.depth_multiplier > 0 ? l->cfg.depth_multiplier : 1; }

static cs_conv2d_geom depthwise_geom(const cs_layer *l, int n)
{
    return cs_conv_window_geom(l, l->in.c, l->in.c * multiplier(l), l->in.c, n);
}

static cs_conv2d_geom pointwise_geom(const cs_layer *l, int n)
{
    int mid = l->in.c * multiplier(l);
    return (cs_conv2d_geom){.n = n, .ih = l->out.h, .iw = l->out.w, .ic = mid, .oh = l->out.h, .ow = l->out.w,
                            .oc = l->out.c, .kh = 1, .kw = 1, .sh = 1, .sw = 1, .dh = 1, .dw = 1, .groups = 1};
}

static int separable_infer(cs_layer *l, const cs_shape *in, char *err, size_t errlen)
{
    if (multiplier(l) > MAX_DIM / in->c) {
        snprintf(err, errlen, "%s: depth_multiplier %d is too large", l->name, multiplier(l));
        return -1;
    }
    cs_conv2d_geom g;
    if (cs_conv_window_infer(l, in, in->c * multiplier(l), in->c, &g, err, errlen) != 0) return -1;
    l->out.c = l->cfg.filters;
    if (l->cfg.filters <= 0) {
        snprintf(err, errlen, "%s: a separable conv needs filters", l->name);
        return -1;
    }
    int dk[4] = {g.kh, g.kw, in->c, multiplier(l)}, pk[4] = {1, 1, in->c * multiplier(l), l->cfg.filters};
    int bd[1] = {l->cfg.filters};
    cs_param *d = cs_layer_add_param(l, "depthwise_kernel", 4, dk, 1);
    cs_param *p = cs_layer_add_param(l, "pointwise_kernel", 4, pk, 1);
    cs_layer_add_param(l, "bias", 1, bd, 1);
    d->l1 = p->l1 = l->cfg.l1;
    d->l2 = p->l2 = l->cfg.l2;
    return 0;
}

static int separable_to_json(const cs_layer *l, json_t *o)
{
    return json_object_set_new(o, "filters", json_integer(l->cfg.filters)) || cs_conv_window_to_json(l, o) ||
                   json_object_set_new(o, "depth_multiplier", json_integer(multiplier(l))) ||
                   cs_kernel_layer_to_json(l, o)
               ? -1
               : 0;
}

static int separable_from_json(json_t *o, cs_layer_config *cfg, char *err, size_t errlen)
{
    return cs_json_get_int(o, "filters", 1, MAX_DIM, &cfg->filters, err, errlen) ||
                   cs_conv_window_from_json(o, cfg, err, errlen) ||
                   cs_json_get_int(o, "depth_multiplier", 1, MAX_DIM, &cfg->depth_multiplier, err, errlen) ||
                   cs_kernel_layer_from_json(o, cfg, err, errlen)
               ? -1
               : 0;
}

/* Both kernels drawn as Keras draws them (the bias stays zero): each from its own fans. */
static void separable_init(cs_layer *l, cs_rng *r)
{
    const cs_param *d = &l->params[0];
    int recept = d->dims[0] * d->dims[1], mid = l->in.c * multiplier(l);
    cs_layer pointwise = *l; /* the second kernel first in a copy, so cs_init_kernel sees it as params[0] */
    pointwise.params[0] = l->params[1];
    pointwise.n_params = 1;
    cs_layer depthwise = *l;
    depthwise.n_params = 1;
    cs_init_kernel(&depthwise, recept, recept * multiplier(l), r);
    cs_init_kernel(&pointwise, mid, l->out.c, r);
    for (size_t i = 0; i < l->params[2].size; i++) l->params[2].data[i] = 0;
}

static size_t mid_floats(const cs_layer *l, int n) { return (size_t)n * l->out.h * l->out.w * l->in.c * multiplier(l); }

static void separable_forward(const cs_node_pass *p)
{
    const cs_layer *l = p->l;
    float *z = cs_kernel_layer_preact(p);
    cs_conv2d_geom dg = depthwise_geom(l, p->n), pg = pointwise_geom(l, p->n);
    if (!cs_kernel_layer_fast(p, 0, p->x[0], p->state, 0))
        cs_conv2d_forward(&dg, p->x[0], l->params[0].data, NULL, p->state, &p->e->scratch);
    if (cs_kernel_layer_fast(p, 1, p->state, z, 1)) return;
    cs_conv2d_forward(&pg, p->state, l->params[1].data, l->params[2].data, z, &p->e->scratch);
    cs_kernel_layer_activate(p, z);
}

static void separable_backward(const cs_node_pass *p)
{
    const cs_layer *l = p->l;
    cs_kernel_layer_deactivate(p);
    cs_conv2d_geom dg = depthwise_geom(l, p->n), pg = pointwise_geom(l, p->n);
    float *dmid = p->state + mid_floats(l, p->e->max_batch);
    cs_conv2d_backward(&pg, p->state, l->params[1].data, p->dy, dmid, cs_exec_param_grad(p->e, &l->params[1]),
                       cs_exec_param_grad(p->e, &l->params[2]), &p->e->scratch);
    cs_conv2d_backward(&dg, p->x[0], l->params[0].data, dmid, p->dx[0], cs_exec_param_grad(p->e, &l->params[0]), NULL,
                       &p->e->scratch);
}

static size_t separable_scratch(const cs_layer *l, int max_batch)
{
    cs_conv2d_geom dg = depthwise_geom(l, max_batch), pg = pointwise_geom(l, max_batch);
    size_t a = cs_conv2d_scratch_floats(&dg), b = cs_conv2d_scratch_floats(&pg);
    return a > b ? a : b;
}

static size_t separable_part(const cs_layer *l)
{
    cs_conv2d_geom dg = depthwise_geom(l, 1), pg = pointwise_geom(l, 1);
    size_t a = cs_conv2d_part_floats(&dg), b = cs_conv2d_part_floats(&pg);
    return a > b ? a : b;
}

/* Never the start of a chain (the fast plan chains single convolutions). */
static void separable_fast(const cs_layer *l, const cs_fast_fuse *fuse, cs_fast_node *f)
{
    if (fuse) return;
    cs_conv2d_geom dg = depthwise_geom(l, 1), pg = pointwise_geom(l, 1);
    cs_onednn_post post = {.act = l->cfg.activation == CS_ACT_RELU ? CS_ONEDNN_RELU : CS_ONEDNN_LINEAR};
    cs_fast_conv(f, 0, &dg, &l->params[0], NULL, NULL, NULL);
    cs_fast_conv(f, 1, &pg, &l->params[1], &l->params[2], &post, NULL);
}

/* The depthwise output, then its gradient. */
static size_t separable_state(const cs_layer *l, int max_batch) { return 2 * mid_floats(l, max_batch); }

const cs_layer_ops cs_separable_conv2d_ops = {
    .keras = "SeparableConv2D",
    .infer = separable_infer,
    .config_to_json = separable_to_json,
    .config_from_json = separable_from_json,
    .init = separable_init,
    .forward = separable_forward,
    .backward = separable_backward,
    .scratch_floats = separable_scratch,
    .part_floats = separable_part,
    .state_floats = separable_state,
    .fast = separable_fast,
};
