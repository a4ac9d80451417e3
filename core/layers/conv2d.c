/*
 * conv2d.c - Keras Conv2D and ONNX Conv: filters over a window with a bias and a fused
 * activation. A square kernel with one stride, no dilation, no groups and 'valid' or
 * 'same' padding runs conv.c's kernels (im2col + sgemm, direct kernels for stride-1
 * 'valid' layers, the fused training blocks); any other window (rectangular,
 * dilated, asymmetric padding, channel groups) runs conv_general.c's.
 */
#include "conv_window.h"
#include "fast_plan.h"
#include "kernel_layer.h"
#include "onednn_train.h"

#include <stdio.h>
#include <string.h>

#define MAX_DIM (1 << 24)

int cs_conv2d_layer_simple(const cs_layer *l)
{
    const cs_layer_config *c = &l->cfg;
    return (c->kernel_w == 0 || c->kernel_w == c->kernel) && (c->stride_w == 0 || c->stride_w == c->stride) &&
           c->dilation <= 1 && c->dilation_w <= 1 && !c->pad_explicit && c->groups <= 1;
}

static int groups_of(const cs_layer *l) { return l->cfg.groups > 1 ? l->cfg.groups : 1; }

static cs_conv2d_geom general_geom(const cs_layer *l, int n)
{
    return cs_conv_window_geom(l, l->in.c, l->out.c, groups_of(l), n);
}

/* Any conv2d node's window as conv_general.h describes it (simple ones too). */
static cs_conv2d_geom any_geom(const cs_layer *l, int n)
{
    if (!cs_conv2d_layer_simple(l)) return general_geom(l, n);
    cs_conv_geom s = cs_conv_geometry(l, n);
    cs_conv2d_geom g = {.n = n, .ih = s.ih, .iw = s.iw, .ic = s.ic, .oh = s.oh, .ow = s.ow, .oc = s.oc, .kh = s.k,
                        .kw = s.k, .sh = s.stride, .sw = s.stride, .dh = 1, .dw = 1, .pt = s.pad_t, .pl = s.pad_l,
                        .groups = 1};
    g.pb = (g.oh - 1) * g.sh + g.kh - g.ih - g.pt;
    g.pr = (g.ow - 1) * g.sw + g.kw - g.iw - g.pl;
    if (g.pb < 0) g.pb = 0; /* 'valid' rows or columns no window reaches */
    if (g.pr < 0) g.pr = 0;
    return g;
}

static int conv2d_infer(cs_layer *l, const cs_shape *in, char *err, size_t errlen)
{
    cs_layer_config *cfg = &l->cfg;
    if (cfg->groups > 1 && (in->c % cfg->groups || cfg->filters % cfg->groups)) {
        snprintf(err, errlen, "%s: %d groups do not divide %d input and %d output channels", l->name, cfg->groups,
                 in->c, cfg->filters);
        return -1;
    }
    if (!cs_conv2d_layer_simple(l)) {
        cs_conv2d_geom g;
        if (cs_conv_window_infer(l, in, cfg->filters, groups_of(l), &g, err, errlen) != 0) return -1;
        int kd[4] = {g.kh, g.kw, in->c / g.groups, cfg->filters};
        cs_kernel_layer_params(l, 4, kd);
        return 0;
    }
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
    if (json_object_set_new(o, "filters", json_integer(c->filters)) || cs_conv_window_to_json(l, o) ||
        (groups_of(l) > 1 && json_object_set_new(o, "groups", json_integer(c->groups))))
        return -1;
    return cs_kernel_layer_to_json(l, o);
}

static int conv2d_from_json(json_t *o, cs_layer_config *cfg, char *err, size_t errlen)
{
    if (cs_json_get_int(o, "filters", 1, MAX_DIM, &cfg->filters, err, errlen) ||
        cs_conv_window_from_json(o, cfg, err, errlen))
        return -1;
    if (json_object_get(o, "groups") && cs_json_get_int(o, "groups", 1, MAX_DIM, &cfg->groups, err, errlen))
        return -1;
    /* A square window with one stride and no dilation is stored as today's files have it. */
    if (cfg->kernel_w == cfg->kernel) cfg->kernel_w = 0;
    if (cfg->stride_w == cfg->stride) cfg->stride_w = 0;
    if (cfg->dilation == 1 && cfg->dilation_w == 1) cfg->dilation = cfg->dilation_w = 0;
    return cs_kernel_layer_from_json(o, cfg, err, errlen);
}

static void conv2d_init(cs_layer *l, cs_rng *r)
{
    const cs_param *k = &l->params[0];
    int recept = k->dims[0] * k->dims[1];
    cs_init_kernel(l, recept * k->dims[2], recept * l->out.c / groups_of(l), r);
}

/* The node's passes through oneDNN (onednn_train.h) when they take this batch, made
 * on the first pass that may run them; NULL when oneDNN does not take the layer. */
static cs_onednn_train *onednn_passes(const cs_node_pass *p)
{
    cs_exec *e = p->e;
    if (!cs_onednn_train_takes(p->n, &e->scratch)) return NULL;
    if (!e->conv_train_tried[p->node]) {
        e->conv_train_tried[p->node] = 1;
        cs_conv2d_geom g = any_geom(p->l, 1);
        char why[200];
        e->conv_train[p->node] = cs_onednn_train_new(&g, why, sizeof why);
    }
    return e->conv_train[p->node];
}

static void conv2d_forward(const cs_node_pass *p)
{
    const cs_layer *l = p->l;
    float *z = cs_kernel_layer_preact(p);
    if (cs_kernel_layer_fast(p, 0, p->x[0], z, 1)) return;
    cs_onednn_train *t = onednn_passes(p);
    if (t && cs_onednn_train_forward(t, p->n, p->x[0], l->params[0].data, l->params[1].data, z, &p->e->scratch) == 0) {
        cs_kernel_layer_activate(p, z);
        return;
    }
    if (cs_conv2d_layer_simple(l)) {
        cs_conv_geom g = cs_conv_geometry(l, p->n);
        cs_conv_forward(&g, p->x[0], l->params[0].data, l->params[1].data, z, &p->e->scratch);
    } else {
        cs_conv2d_geom g = general_geom(l, p->n);
        cs_conv2d_forward(&g, p->x[0], l->params[0].data, l->params[1].data, z, &p->e->scratch);
    }
    cs_kernel_layer_activate(p, z);
}

static void conv2d_backward(const cs_node_pass *p)
{
    const cs_layer *l = p->l;
    cs_kernel_layer_deactivate(p);
    float *dw = cs_exec_param_grad(p->e, &l->params[0]), *db = cs_exec_param_grad(p->e, &l->params[1]);
    cs_onednn_train *t = onednn_passes(p);
    if (t && cs_onednn_train_backward(t, p->n, p->x[0], l->params[0].data, p->dy, p->dx[0], dw, db, &p->e->scratch) == 0)
        return;
    if (cs_conv2d_layer_simple(l)) {
        cs_conv_geom g = cs_conv_geometry(l, p->n);
        cs_conv_backward(&g, p->x[0], l->params[0].data, p->dy, p->dx[0], dw, db, &p->e->scratch);
    } else {
        cs_conv2d_geom g = general_geom(l, p->n);
        cs_conv2d_backward(&g, p->x[0], l->params[0].data, p->dy, p->dx[0], dw, db, &p->e->scratch);
    }
}

static void conv2d_fast(const cs_layer *l, const cs_fast_fuse *fuse, cs_fast_node *f)
{
    if (l->cfg.activation == CS_ACT_SOFTMAX && fuse) return;
    cs_conv2d_geom g = any_geom(l, 1);
    cs_onednn_post post = {.act = l->cfg.activation == CS_ACT_RELU ? CS_ONEDNN_RELU : CS_ONEDNN_LINEAR};
    cs_fast_conv(f, 0, &g, &l->params[0], &l->params[1], &post, fuse);
}

static size_t conv2d_scratch(const cs_layer *l, int max_batch)
{
    if (!cs_conv2d_layer_simple(l)) {
        cs_conv2d_geom g = general_geom(l, max_batch);
        return cs_conv2d_scratch_floats(&g);
    }
    cs_conv_geom g = cs_conv_geometry(l, max_batch);
    return cs_conv_chunk_rows(&g, (size_t)-1) * g.k * g.k * g.ic;
}

static size_t conv2d_part(const cs_layer *l)
{
    if (!cs_conv2d_layer_simple(l)) {
        cs_conv2d_geom g = general_geom(l, 1);
        return cs_conv2d_part_floats(&g);
    }
    return cs_layer_param_count(l);
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
    .scratch_floats = conv2d_scratch,
    .part_floats = conv2d_part,
    .fast = conv2d_fast,
};

cs_conv2d_geom cs_conv2d_layer_geom(const cs_layer *l, int n) { return any_geom(l, n); }
