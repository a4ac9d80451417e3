/*
 * onnx_export.c - convscope models as ONNX files (onnx_export.h), with the protobuf-c
 * code generated from ONNX's own onnx.proto.
 *
 * One pass over the nodes in their order (an order they can run in, as ONNX wants).
 * Each node's output gets an ONNX value: a 4-D (N, C, H, W) tensor, or a 2-D (N, F)
 * one for vectors (a dense layer's, a flatten's); an op that needs the other form gets
 * a Reshape or a Flatten in front. Everything the message points to lives in one
 * arena of allocations, freed once the message is packed; weights that keep their
 * layout (biases, batch-norm statistics) point into the model itself.
 *
 * A flatten of a feature map: the core orders the features (h, w, c), ONNX's Flatten
 * of NCHW (c, h, w). When everything that reads the flattened vector is a dense layer
 * (through elementwise ops that do not care about the order), the ONNX graph is the
 * one a PyTorch export would have: a plain Flatten, and the dense kernels' rows
 * permuted to (c, h, w). Otherwise a Transpose to NHWC before the Flatten keeps the
 * core's order.
 */
#include "onnx_export.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "layers/conv_general.h"
#include "layers/kernels.h"
#include "onnx.pb-c.h"

#define OPSET_BASE 13
#define NORM_EPS 1e-7f /* the Normalization row's floor on the standard deviation */

/* An ONNX value standing for a node's output. */
typedef struct {
    const char *name;
    int rank;         /* 4: (N, C, H, W); 2: (N, F) */
    int fh, fw, fc;   /* a flattened (fh, fw, fc) map in ONNX's (c, h, w) order; fc 0 when not */
} value;

typedef struct {
    const cs_model *m;
    void **arena;
    size_t n_arena, cap_arena;
    Onnx__NodeProto **nodes;
    size_t n_nodes, cap_nodes;
    Onnx__TensorProto **inits;
    size_t n_inits, cap_inits;
    value *vals; /* one per model node */
    value input;
    int opset;
    int failed;
    char *err;
    size_t errlen;
} exporter;

static int fail(exporter *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(exporter *x, const char *fmt, ...)
{
    if (x->failed) return -1;
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cs_set_err(x->err, x->errlen, "ONNX export: %s", msg);
    x->failed = 1;
    return -1;
}

/* ---- the arena ------------------------------------------------------------------- */

static int grow(exporter *x, void **arr, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap) return 0;
    size_t c = *cap ? 2 * *cap : 64;
    void *g = realloc(*arr, c * elem);
    if (!g) return fail(x, "out of memory");
    *arr = g;
    *cap = c;
    return 0;
}

static void *alloc(exporter *x, size_t size)
{
    if (grow(x, (void **)&x->arena, &x->cap_arena, x->n_arena, sizeof *x->arena)) return NULL;
    void *p = calloc(1, size ? size : 1);
    if (!p) {
        fail(x, "out of memory");
        return NULL;
    }
    x->arena[x->n_arena++] = p;
    return p;
}

static char *str(exporter *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *str(exporter *x, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = n >= 0 ? alloc(x, (size_t)n + 1) : NULL;
    if (!s) return NULL;
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

/* ---- graph pieces --------------------------------------------------------------- */

/* A node of op type `op` named `name`, reading n_in values, writing `out`. */
static Onnx__NodeProto *node(exporter *x, const char *op, const char *name, const char *const *in, int n_in,
                             const char *out)
{
    Onnx__NodeProto *n = alloc(x, sizeof *n);
    char **ins = alloc(x, (size_t)n_in * sizeof *ins), **outs = alloc(x, sizeof *outs);
    if (!n || !ins || !outs || grow(x, (void **)&x->nodes, &x->cap_nodes, x->n_nodes, sizeof *x->nodes)) return NULL;
    onnx__node_proto__init(n);
    for (int k = 0; k < n_in; k++) ins[k] = (char *)in[k];
    outs[0] = (char *)out;
    n->n_input = (size_t)n_in;
    n->input = ins;
    n->n_output = 1;
    n->output = outs;
    n->name = (char *)name;
    n->op_type = (char *)op;
    x->nodes[x->n_nodes++] = n;
    return n;
}

static Onnx__AttributeProto *attr(exporter *x, Onnx__NodeProto *n, const char *name, Onnx__AttributeProto__AttributeType t)
{
    if (!n) return NULL;
    Onnx__AttributeProto *a = alloc(x, sizeof *a);
    Onnx__AttributeProto **list = alloc(x, (n->n_attribute + 1) * sizeof *list);
    if (!a || !list) return NULL;
    onnx__attribute_proto__init(a);
    a->name = (char *)name;
    a->has_type = 1;
    a->type = t;
    for (size_t k = 0; k < n->n_attribute; k++) list[k] = n->attribute[k];
    list[n->n_attribute++] = a;
    n->attribute = list;
    return a;
}

static void attr_int(exporter *x, Onnx__NodeProto *n, const char *name, int64_t v)
{
    Onnx__AttributeProto *a = attr(x, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    if (a) a->has_i = 1, a->i = v;
}

static void attr_float(exporter *x, Onnx__NodeProto *n, const char *name, float v)
{
    Onnx__AttributeProto *a = attr(x, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
    if (a) a->has_f = 1, a->f = v;
}

static void attr_ints(exporter *x, Onnx__NodeProto *n, const char *name, const int *v, int count)
{
    Onnx__AttributeProto *a = attr(x, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    int64_t *d = a ? alloc(x, (size_t)count * sizeof *d) : NULL;
    if (!d) return;
    for (int k = 0; k < count; k++) d[k] = v[k];
    a->n_ints = (size_t)count;
    a->ints = d;
}

/* An initializer; data is borrowed (the model's own floats, or the arena's). */
static const char *init(exporter *x, const char *name, int type, const int64_t *dims, int ndim, const void *data,
                        size_t bytes)
{
    Onnx__TensorProto *t = alloc(x, sizeof *t);
    int64_t *d = alloc(x, (size_t)(ndim ? ndim : 1) * sizeof *d);
    if (!t || !d || !name || grow(x, (void **)&x->inits, &x->cap_inits, x->n_inits, sizeof *x->inits)) return NULL;
    onnx__tensor_proto__init(t);
    if (ndim) memcpy(d, dims, (size_t)ndim * sizeof *d); /* a scalar has no dims (and dims may be NULL) */
    t->n_dims = (size_t)ndim;
    t->dims = d;
    t->has_data_type = 1;
    t->data_type = type;
    t->name = (char *)name;
    /* raw_data is little-endian, which is the machine's order here (x86-64, aarch64). */
    t->has_raw_data = 1;
    t->raw_data.len = bytes;
    t->raw_data.data = (uint8_t *)data;
    x->inits[x->n_inits++] = t;
    return name;
}

static const char *init_floats(exporter *x, const char *name, const int64_t *dims, int ndim, const float *data)
{
    size_t count = 1;
    for (int k = 0; k < ndim; k++) count *= (size_t)dims[k];
    return init(x, name, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, dims, ndim, data, count * sizeof(float));
}

/* A copy of count floats in the arena, to transform. */
static float *floats(exporter *x, size_t count) { return alloc(x, count * sizeof(float)); }

static const char *scalar(exporter *x, const char *name, float v)
{
    float *d = floats(x, 1);
    if (!d) return NULL;
    d[0] = v;
    return init_floats(x, name, NULL, 0, d);
}

static const char *int64s(exporter *x, const char *name, const int64_t *v, int count)
{
    int64_t *d = alloc(x, (size_t)count * sizeof *d), dims[1] = {count};
    if (!d) return NULL;
    memcpy(d, v, (size_t)count * sizeof *d);
    return init(x, name, ONNX__TENSOR_PROTO__DATA_TYPE__INT64, dims, 1, d, (size_t)count * sizeof *d);
}

/* ---- values --------------------------------------------------------------------- */

static value *value_of(exporter *x, int node) { return node == CS_MODEL_INPUT ? &x->input : &x->vals[node]; }

static cs_shape shape_of(exporter *x, int node) { return cs_model_node_shape(x->m, node); }

/* v as a 4-D value: a vector (N, F) reshaped to (N, F, 1, 1). */
static value as_4d(exporter *x, const value *v, int at)
{
    if (v->rank == 4) return *v;
    const char *out = str(x, "%s/4d", v->name), *sname = str(x, "%s/4d_shape", v->name);
    int64_t shape[4] = {0, shape_of(x, at).c, 1, 1};
    const char *in[2] = {v->name, int64s(x, sname, shape, 4)};
    node(x, "Reshape", out, in, 2, out);
    return (value){out, 4, 0, 0, 0};
}

/* v as a 2-D value: (N, C, 1, 1) flattened to (N, C). */
static value as_2d(exporter *x, const value *v)
{
    if (v->rank == 2) return *v;
    const char *out = str(x, "%s/2d", v->name);
    attr_int(x, node(x, "Flatten", out, &v->name, 1, out), "axis", 1);
    return (value){out, 2, 0, 0, 0};
}

/* ---- the kinds -------------------------------------------------------------------- */

/* The fused activation of a conv or dense node: the op after the kernel's, writing the
 * node's value. z is the kernel op's output. */
static void fused(exporter *x, const cs_layer *l, const char *z, const char *out)
{
    if (l->cfg.activation == CS_ACT_RELU) node(x, "Relu", str(x, "%s/relu", l->name), &z, 1, out);
    else if (l->cfg.activation == CS_ACT_SOFTMAX)
        attr_int(x, node(x, "Softmax", str(x, "%s/softmax", l->name), &z, 1, out), "axis", 1);
}

/* The node's own value name; a kernel op with a fused activation writes a pre-activation. */
static const char *kernel_out(exporter *x, const cs_layer *l)
{
    return l->cfg.activation == CS_ACT_LINEAR ? l->name : str(x, "%s/preact", l->name);
}

/* A Conv node: window, strides, dilations and pads of the conv geometry g. */
static void conv_op(exporter *x, const char *name, const char *in, const char *w, const char *b,
                    const cs_conv2d_geom *g, const char *out)
{
    const char *ins[3] = {in, w, b};
    Onnx__NodeProto *n = node(x, "Conv", name, ins, b ? 3 : 2, out);
    int ks[2] = {g->kh, g->kw}, st[2] = {g->sh, g->sw}, dl[2] = {g->dh, g->dw}, pads[4] = {g->pt, g->pl, g->pb, g->pr};
    attr_ints(x, n, "kernel_shape", ks, 2);
    attr_ints(x, n, "strides", st, 2);
    attr_ints(x, n, "dilations", dl, 2);
    attr_ints(x, n, "pads", pads, 4);
    attr_int(x, n, "group", g->groups);
}

/* The geometry of a conv kind's window over its input (pads made explicit). */
static cs_conv2d_geom window(const cs_layer *l, int ic, int oc, int groups)
{
    const cs_layer_config *c = &l->cfg;
    cs_conv2d_geom g = {.n = 1, .ih = l->in.h, .iw = l->in.w, .ic = ic, .oh = l->out.h, .ow = l->out.w, .oc = oc,
                        .groups = groups};
    g.kh = c->kernel;
    g.kw = c->kernel_w > 0 ? c->kernel_w : g.kh;
    g.sh = c->stride > 0 ? c->stride : 1;
    g.sw = c->stride_w > 0 ? c->stride_w : g.sh;
    g.dh = c->dilation > 0 ? c->dilation : 1;
    g.dw = c->dilation_w > 0 ? c->dilation_w : g.dh;
    if (c->pad_explicit) {
        g.pt = c->pads[0], g.pl = c->pads[1], g.pb = c->pads[2], g.pr = c->pads[3];
    } else if (c->pad_same) {
        cs_conv2d_same_pads(g.ih, g.kh, g.sh, g.dh, 1, &g.pt, &g.pb);
        cs_conv2d_same_pads(g.iw, g.kw, g.sw, g.dw, 1, &g.pl, &g.pr);
    }
    return g;
}

/* A kernel in the core's (kh, kw, in/groups, out) layout as ONNX's (out, in/groups, kh, kw). */
static const char *oihw(exporter *x, const char *name, const cs_conv2d_geom *g, const float *hwio)
{
    int64_t dims[4] = {g->oc, g->ic / g->groups, g->kh, g->kw};
    float *w = floats(x, (size_t)g->oc * (g->ic / g->groups) * g->kh * g->kw);
    if (!w) return NULL;
    cs_conv2d_kernel_to_oihw(g, hwio, w);
    return init_floats(x, name, dims, 4, w);
}

static const char *vector(exporter *x, const char *name, const float *data, int n)
{
    int64_t dims[1] = {n};
    return init_floats(x, name, dims, 1, data);
}

static void export_conv(exporter *x, const cs_layer *l, const value *in)
{
    int groups = l->kind == CS_DEPTHWISE_CONV2D ? l->in.c : l->cfg.groups > 1 ? l->cfg.groups : 1;
    cs_conv2d_geom g = window(l, l->in.c, l->out.c, groups);
    const char *w = oihw(x, str(x, "%s.kernel", l->name), &g, l->params[0].data);
    const char *b = vector(x, str(x, "%s.bias", l->name), l->params[1].data, l->out.c);
    const char *z = kernel_out(x, l);
    conv_op(x, l->name, in->name, w, b, &g, z);
    fused(x, l, z, l->name);
}

/* Depthwise over the window (no bias), then a 1x1 conv to the filters. */
static void export_separable(exporter *x, const cs_layer *l, const value *in)
{
    int mid = (int)l->params[0].dims[2] * l->params[0].dims[3];
    cs_conv2d_geom dw = window(l, l->in.c, mid, l->in.c);
    cs_conv2d_geom pw = {.n = 1, .ih = l->out.h, .iw = l->out.w, .ic = mid, .oh = l->out.h, .ow = l->out.w,
                         .oc = l->out.c, .kh = 1, .kw = 1, .sh = 1, .sw = 1, .dh = 1, .dw = 1, .groups = 1};
    const char *d = str(x, "%s/depthwise", l->name), *z = kernel_out(x, l);
    conv_op(x, d, in->name, oihw(x, str(x, "%s.depthwise_kernel", l->name), &dw, l->params[0].data), NULL, &dw, d);
    conv_op(x, l->name, d, oihw(x, str(x, "%s.pointwise_kernel", l->name), &pw, l->params[1].data),
            vector(x, str(x, "%s.bias", l->name), l->params[2].data, l->out.c), &pw, z);
    fused(x, l, z, l->name);
}

/* Gemm on the vector; rows of a flattened (c, h, w) map taken in that order. */
static void export_dense(exporter *x, const cs_layer *l, const value *in)
{
    value v = as_2d(x, in);
    const int rows = l->in.c, cols = l->out.c;
    float *k = floats(x, (size_t)rows * cols);
    if (!k) return;
    for (int r = 0; r < rows; r++) {
        /* ONNX feature r is (ch, y, x) = (r / (h w), ...); the core's row for it is (y, x, ch). */
        int src = r;
        if (in->fc) {
            int ch = r / (in->fh * in->fw), pix = r % (in->fh * in->fw);
            src = pix * in->fc + ch;
        }
        memcpy(k + (size_t)r * cols, l->params[0].data + (size_t)src * cols, (size_t)cols * sizeof(float));
    }
    int64_t dims[2] = {rows, cols};
    const char *ins[3] = {v.name, init_floats(x, str(x, "%s.kernel", l->name), dims, 2, k),
                          vector(x, str(x, "%s.bias", l->name), l->params[1].data, cols)};
    const char *z = kernel_out(x, l);
    node(x, "Gemm", l->name, ins, 3, z);
    fused(x, l, z, l->name);
}

static void batchnorm_op(exporter *x, const cs_layer *l, const value *in, const float *scale, const float *shift,
                         const float *mean, const float *var, float eps)
{
    const int c = l->out.c;
    const char *ins[5] = {in->name, vector(x, str(x, "%s.gamma", l->name), scale, c),
                          vector(x, str(x, "%s.beta", l->name), shift, c),
                          vector(x, str(x, "%s.moving_mean", l->name), mean, c),
                          vector(x, str(x, "%s.moving_variance", l->name), var, c)};
    Onnx__NodeProto *n = node(x, "BatchNormalization", l->name, ins, 5, l->name);
    attr_float(x, n, "epsilon", eps);
    if (l->kind == CS_BATCHNORM) attr_float(x, n, "momentum", l->cfg.momentum);
}

/* (x - mean) / max(sqrt(variance), 1e-7) as a batch norm with mean 0 and variance 1
 * whose scale and shift do the work (an epsilon of 1e-12 vanishes against 1 in float). */
static void export_normalization(exporter *x, const cs_layer *l, const value *in)
{
    const int c = l->out.c;
    float *s = floats(x, (size_t)c), *t = floats(x, (size_t)c), *zero = floats(x, (size_t)c), *one = floats(x, (size_t)c);
    if (!s || !t || !zero || !one) return;
    for (int k = 0; k < c; k++) {
        float sd = sqrtf(l->params[1].data[k]);
        s[k] = 1.0f / (sd > NORM_EPS ? sd : NORM_EPS);
        t[k] = -l->params[0].data[k] * s[k];
        one[k] = 1;
    }
    batchnorm_op(x, l, in, s, t, zero, one, 1e-12f);
}

static void export_activation(exporter *x, const cs_layer *l, const value *in)
{
    const cs_layer_config *c = &l->cfg;
    const char *name = l->name, *out = l->name;
    Onnx__NodeProto *n;
    switch ((cs_actf)c->actf) {
    case CS_ACTF_RELU: node(x, "Relu", name, &in->name, 1, out); return;
    case CS_ACTF_CLIP: {
        const char *ins[3] = {in->name, scalar(x, str(x, "%s.min", name), c->act_a),
                              scalar(x, str(x, "%s.max", name), c->act_b)};
        node(x, "Clip", name, ins, 3, out);
        return;
    }
    case CS_ACTF_LEAKY: attr_float(x, node(x, "LeakyRelu", name, &in->name, 1, out), "alpha", c->act_a); return;
    case CS_ACTF_ELU: attr_float(x, node(x, "Elu", name, &in->name, 1, out), "alpha", c->act_a); return;
    case CS_ACTF_SIGMOID: node(x, "Sigmoid", name, &in->name, 1, out); return;
    case CS_ACTF_TANH: node(x, "Tanh", name, &in->name, 1, out); return;
    case CS_ACTF_SWISH: {
        const char *s = str(x, "%s/sigmoid", name), *ins[2] = {in->name, s};
        node(x, "Sigmoid", s, &in->name, 1, s);
        node(x, "Mul", name, ins, 2, out);
        return;
    }
    case CS_ACTF_HARD_SIGMOID:
        n = node(x, "HardSigmoid", name, &in->name, 1, out);
        attr_float(x, n, "alpha", c->act_a);
        attr_float(x, n, "beta", c->act_b);
        return;
    case CS_ACTF_HARD_SWISH:
        if (x->opset < 14) x->opset = 14;
        node(x, "HardSwish", name, &in->name, 1, out);
        return;
    case CS_ACTF_GELU:
    case CS_ACTF_GELU_TANH:
        if (x->opset < 20) x->opset = 20;
        n = node(x, "Gelu", name, &in->name, 1, out);
        if (c->actf == CS_ACTF_GELU_TANH && n) {
            Onnx__AttributeProto *a = attr(x, n, "approximate", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING);
            if (a) a->has_s = 1, a->s.data = (uint8_t *)"tanh", a->s.len = 4;
        }
        return;
    case CS_ACTF_SOFTPLUS: node(x, "Softplus", name, &in->name, 1, out); return;
    }
    fail(x, "node %s: activation function %d has no ONNX form", name, c->actf);
}

static void export_pool(exporter *x, const cs_layer *l, const value *in)
{
    const cs_layer_config *c = &l->cfg;
    cs_conv2d_geom g = window(l, l->in.c, l->in.c, 1);
    if (g.kh <= 0) g.kh = g.kw = c->pool; /* the fast max pool keeps its window in pool */
    if (c->stride <= 0) g.sh = g.kh, g.sw = g.kw;
    if (c->pad_same) { /* recomputed for the final window and strides */
        cs_conv2d_same_pads(g.ih, g.kh, g.sh, g.dh, 1, &g.pt, &g.pb);
        cs_conv2d_same_pads(g.iw, g.kw, g.sw, g.dw, 1, &g.pl, &g.pr);
    }
    const int avg = l->kind == CS_AVGPOOL;
    Onnx__NodeProto *n = node(x, avg ? "AveragePool" : "MaxPool", l->name, &in->name, 1, l->name);
    int ks[2] = {g.kh, g.kw}, st[2] = {g.sh, g.sw}, dl[2] = {g.dh, g.dw}, pads[4] = {g.pt, g.pl, g.pb, g.pr};
    attr_ints(x, n, "kernel_shape", ks, 2);
    attr_ints(x, n, "strides", st, 2);
    attr_ints(x, n, "pads", pads, 4);
    if (g.dh != 1 || g.dw != 1) {
        if (avg && x->opset < 19) x->opset = 19; /* AveragePool's dilations */
        attr_ints(x, n, "dilations", dl, 2);
    }
    if (c->ceil_mode) attr_int(x, n, "ceil_mode", 1);
    if (avg) attr_int(x, n, "count_include_pad", c->count_include_pad);
}

static void export_pad(exporter *x, const cs_layer *l, const value *in)
{
    const int *p = l->cfg.pads;
    int64_t pads[8] = {0, 0, p[0], p[1], 0, 0, p[2], p[3]};
    const char *ins[3] = {in->name, int64s(x, str(x, "%s.pads", l->name), pads, 8),
                          scalar(x, str(x, "%s.value", l->name), l->cfg.pad_value)};
    attr(x, node(x, "Pad", l->name, ins, 3, l->name), "mode", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING);
    Onnx__NodeProto *n = x->nodes[x->n_nodes - 1];
    if (!x->failed) {
        Onnx__AttributeProto *a = n->attribute[0];
        a->has_s = 1, a->s.data = (uint8_t *)"constant", a->s.len = 8;
    }
}

static void export_rescaling(exporter *x, const cs_layer *l, const value *in)
{
    const float s = l->cfg.scale, t = l->cfg.offset;
    const char *cur = in->name;
    if (s == 1 && t == 0) {
        node(x, "Identity", l->name, &cur, 1, l->name);
        return;
    }
    if (s != 1) {
        const char *out = t == 0 ? l->name : str(x, "%s/scaled", l->name);
        const char *ins[2] = {cur, scalar(x, str(x, "%s.scale", l->name), s)};
        node(x, "Mul", t == 0 ? l->name : out, ins, 2, out);
        cur = out;
    }
    if (t != 0) {
        const char *ins[2] = {cur, scalar(x, str(x, "%s.offset", l->name), t)};
        node(x, "Add", l->name, ins, 2, l->name);
    }
}

/* Add, Sub, Mul, Concat over values brought to one rank. */
static void export_join(exporter *x, const cs_layer *l, const char *op)
{
    const char *ins[CS_MAX_INPUTS];
    int rank = 2;
    for (int k = 0; k < l->n_inputs; k++)
        if (value_of(x, l->inputs[k])->rank == 4 || value_of(x, l->inputs[k])->fc) rank = 4;
    for (int k = 0; k < l->n_inputs; k++) {
        value v = rank == 4 ? as_4d(x, value_of(x, l->inputs[k]), l->inputs[k]) : *value_of(x, l->inputs[k]);
        ins[k] = v.name;
    }
    Onnx__NodeProto *n = node(x, op, l->name, ins, l->n_inputs, l->name);
    if (!strcmp(op, "Concat")) attr_int(x, n, "axis", 1);
    x->vals[l - x->m->layers].rank = rank;
}

/* Whether everything reading node i's flattened output is a dense layer, through
 * elementwise nodes that do not care about the order (and none of them the model's
 * output). */
static int reaches_dense_only(const cs_model *m, int i, int depth)
{
    if (depth > 64 || i == m->n_layers - 1) return 0;
    int readers = 0;
    for (int j = i + 1; j < m->n_layers; j++) {
        const cs_layer *c = &m->layers[j];
        int reads = 0;
        for (int k = 0; k < c->n_inputs; k++) reads |= c->inputs[k] == i;
        if (!reads) continue;
        readers++;
        int elementwise = c->n_inputs == 1 && (c->kind == CS_RELU || c->kind == CS_LEAKY_RELU ||
                                               c->kind == CS_ACTIVATION || c->kind == CS_DROPOUT ||
                                               c->kind == CS_RESCALING);
        if (c->kind == CS_DENSE) continue;
        if (!elementwise || !reaches_dense_only(m, j, depth + 1)) return 0;
    }
    return readers > 0;
}

static void export_flatten(exporter *x, int i, const value *in)
{
    const cs_layer *l = &x->m->layers[i];
    value *v = &x->vals[i];
    cs_shape s = l->in;
    if (s.h * s.w == 1 || in->fc) { /* already one vector per image, in the right order */
        value w = as_2d(x, in);
        node(x, "Identity", l->name, &w.name, 1, l->name);
        v->fh = in->fh, v->fw = in->fw, v->fc = in->fc;
        return;
    }
    const char *src = in->name;
    if (reaches_dense_only(x->m, i, 0)) {
        v->fh = s.h, v->fw = s.w, v->fc = s.c;
    } else {
        const char *t = str(x, "%s/nhwc", l->name);
        int perm[4] = {0, 2, 3, 1};
        attr_ints(x, node(x, "Transpose", t, &src, 1, t), "perm", perm, 4);
        src = t;
    }
    attr_int(x, node(x, "Flatten", l->name, &src, 1, l->name), "axis", 1);
}

static void export_node(exporter *x, int i)
{
    const cs_layer *l = &x->m->layers[i];
    const value *in = value_of(x, l->inputs[0]);
    value *v = &x->vals[i];
    *v = (value){l->name, in->rank, 0, 0, 0};
    switch (l->kind) {
    case CS_CONV2D:
    case CS_DEPTHWISE_CONV2D: export_conv(x, l, in); break;
    case CS_SEPARABLE_CONV2D: export_separable(x, l, in); break;
    case CS_DENSE:
        export_dense(x, l, in);
        v->rank = 2;
        break;
    case CS_BATCHNORM:
        batchnorm_op(x, l, in, l->params[0].data, l->params[1].data, l->params[2].data, l->params[3].data,
                     l->cfg.epsilon);
        break;
    case CS_NORMALIZATION: export_normalization(x, l, in); break;
    case CS_RELU: node(x, "Relu", l->name, &in->name, 1, l->name); break;
    case CS_LEAKY_RELU: attr_float(x, node(x, "LeakyRelu", l->name, &in->name, 1, l->name), "alpha", l->cfg.alpha); break;
    case CS_ACTIVATION: export_activation(x, l, in); break;
    case CS_MAXPOOL:
    case CS_AVGPOOL: export_pool(x, l, in); break;
    case CS_GLOBAL_AVGPOOL: node(x, "GlobalAveragePool", l->name, &in->name, 1, l->name); break;
    case CS_GLOBAL_MAXPOOL: node(x, "GlobalMaxPool", l->name, &in->name, 1, l->name); break;
    case CS_FLATTEN:
        export_flatten(x, i, in);
        v->rank = 2;
        return;
    case CS_DROPOUT: *v = *in; return; /* the identity when serving */
    case CS_SOFTMAX: attr_int(x, node(x, "Softmax", l->name, &in->name, 1, l->name), "axis", 1); break;
    case CS_ADD: export_join(x, l, "Add"); return;
    case CS_SUBTRACT: export_join(x, l, "Sub"); return;
    case CS_MULTIPLY: export_join(x, l, "Mul"); return;
    case CS_CONCATENATE: export_join(x, l, "Concat"); return;
    case CS_ZERO_PADDING2D: export_pad(x, l, in); break;
    case CS_RESCALING: export_rescaling(x, l, in); break;
    default: fail(x, "node %s: the kind %s has no ONNX form", l->name, cs_layer_kind_name(l->kind)); return;
    }
    /* Elementwise kinds keep a flattened map's order. */
    int elementwise = l->kind == CS_RELU || l->kind == CS_LEAKY_RELU || l->kind == CS_ACTIVATION ||
                      l->kind == CS_RESCALING;
    if (elementwise) v->fh = in->fh, v->fw = in->fw, v->fc = in->fc;
}

/* ---- the model ------------------------------------------------------------------ */

static Onnx__ValueInfoProto *value_info(exporter *x, const char *name, const int64_t *dims, int ndim)
{
    Onnx__ValueInfoProto *vi = alloc(x, sizeof *vi);
    Onnx__TypeProto *tp = alloc(x, sizeof *tp);
    Onnx__TypeProto__Tensor *tt = alloc(x, sizeof *tt);
    Onnx__TensorShapeProto *sh = alloc(x, sizeof *sh);
    Onnx__TensorShapeProto__Dimension **d = alloc(x, (size_t)ndim * sizeof *d);
    if (!vi || !tp || !tt || !sh || !d) return NULL;
    onnx__value_info_proto__init(vi);
    onnx__type_proto__init(tp);
    onnx__type_proto__tensor__init(tt);
    onnx__tensor_shape_proto__init(sh);
    for (int k = 0; k < ndim; k++) {
        if (!(d[k] = alloc(x, sizeof *d[k]))) return NULL;
        onnx__tensor_shape_proto__dimension__init(d[k]);
        if (dims[k] < 0) {
            d[k]->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            d[k]->dim_param = "N";
        } else {
            d[k]->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            d[k]->dim_value = dims[k];
        }
    }
    sh->n_dim = (size_t)ndim;
    sh->dim = d;
    tt->has_elem_type = 1;
    tt->elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    tt->shape = sh;
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    tp->tensor_type = tt;
    vi->name = (char *)name;
    vi->type = tp;
    return vi;
}

static int pack(exporter *x, uint8_t **buf, size_t *len)
{
    const cs_model *m = x->m;
    if (m->n_extra_inputs > 0) return fail(x, "the model has %d inputs; one image input is exported", m->n_extra_inputs + 1);
    x->input = (value){cs_model_find_layer(m, "input") < 0 ? "input" : "input~", 4, 0, 0, 0};
    x->opset = OPSET_BASE;
    if (!(x->vals = calloc((size_t)m->n_layers, sizeof *x->vals))) return fail(x, "out of memory");
    for (int i = 0; i < m->n_layers && !x->failed; i++) export_node(x, i);
    if (x->failed) return -1;
    value out = as_2d(x, &x->vals[m->n_layers - 1]);
    const cs_layer *top = &m->layers[m->n_layers - 1];
    if (top->out.h != 1 || top->out.w != 1) return fail(x, "the output %s is not one vector per image", top->name);
    if (x->vals[m->n_layers - 1].fc) return fail(x, "the output %s is a flattened feature map", top->name);

    Onnx__GraphProto graph = ONNX__GRAPH_PROTO__INIT;
    Onnx__ModelProto model = ONNX__MODEL_PROTO__INIT;
    Onnx__OperatorSetIdProto opset = ONNX__OPERATOR_SET_ID_PROTO__INIT;
    Onnx__OperatorSetIdProto *opsets[1] = {&opset};
    int64_t in_dims[4] = {-1, m->input.c, m->input.h, m->input.w}, out_dims[2] = {-1, top->out.c};
    Onnx__ValueInfoProto *gin = value_info(x, x->input.name, in_dims, 4), *gout = value_info(x, out.name, out_dims, 2);
    if (x->failed || !gin || !gout) return fail(x, "out of memory");
    graph.name = (char *)m->arch;
    graph.n_node = x->n_nodes;
    graph.node = x->nodes;
    graph.n_initializer = x->n_inits;
    graph.initializer = x->inits;
    graph.n_input = 1;
    graph.input = &gin;
    graph.n_output = 1;
    graph.output = &gout;
    opset.domain = "";
    opset.has_version = 1;
    opset.version = x->opset;
    /* ONNX's IR version 8 goes with opsets up to 18, 9 with 19 and 20. */
    model.has_ir_version = 1;
    model.ir_version = x->opset <= 18 ? 8 : 9;
    model.n_opset_import = 1;
    model.opset_import = opsets;
    model.producer_name = "convscope";
    model.graph = &graph;
    size_t n = onnx__model_proto__get_packed_size(&model);
    *buf = malloc(n ? n : 1);
    if (!*buf) return fail(x, "out of memory for %zu bytes", n);
    *len = onnx__model_proto__pack(&model, *buf);
    return 0;
}

int cs_onnx_export_buffer(const cs_model *m, uint8_t **buf, size_t *len, char *err, size_t errlen)
{
    exporter x = {.m = m, .err = err, .errlen = errlen};
    *buf = NULL;
    *len = 0;
    int rc = m && m->n_layers > 0 ? pack(&x, buf, len) : fail(&x, "no model");
    for (size_t k = 0; k < x.n_arena; k++) free(x.arena[k]);
    free(x.arena);
    free(x.nodes);
    free(x.inits);
    free(x.vals);
    return rc;
}

/* ---- the file ------------------------------------------------------------------- */

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int cs_onnx_export(const cs_model *m, const char *path, char *err, size_t errlen)
{
    static atomic_uint counter;
    uint8_t *buf;
    size_t len;
    if (cs_onnx_export_buffer(m, &buf, &len, err, errlen) != 0) return -1;
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld.%u", path, (long)getpid(), atomic_fetch_add(&counter, 1));
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644), rc = -1;
    if (fd < 0) cs_set_err(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
    else if (write_all(fd, buf, len) != 0 || fsync(fd) != 0) cs_set_err(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
    else rc = 0;
    if (fd >= 0 && close(fd) != 0 && rc == 0) rc = -1, cs_set_err(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
    if (rc == 0 && rename(tmp, path) != 0) rc = -1, cs_set_err(err, errlen, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
    if (rc != 0 && fd >= 0) unlink(tmp);
    free(buf);
    return rc;
}
