/*
 * onnx_import.c - ONNX graphs as convscope models (onnx_import.h).
 *
 * One pass over the reader's topologically sorted nodes. Each ONNX value name maps to
 * the node that computes it (or the model's input); ops that compute nothing
 * (Identity, Dropout, a Reshape that keeps the shape) only map their output to their
 * input. Weights are converted into buffers of the final layout as the nodes are
 * made and copied into the model's parameter block once it is allocated.
 */
#include "onnx_import.h"

#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layer_ops.h"
#include "layers/conv_general.h"
#include "layers/kernels.h"
#include "onnx_reader.h"

#define MAX_DIM (1 << 24)

typedef struct {
    const char *name; /* the ONNX value (borrowed from the graph) */
    int node;         /* the model node computing it, or CS_MODEL_INPUT_K(k) */
    /* Its ONNX rank, the batch included: 4 is (N, C, H, W) held as (H, W, C) per image,
     * 3 is (N, C, L) held as (1, L, C), 2 is (N, C) held as (1, 1, C), 1 is (N). */
    int rank;
    /* A feature map (h, w, c) flattened in ONNX's (c, h, w) order: a dense layer
     * reading it needs its rows reordered to the core's (h, w, c). */
    int flat_h, flat_w, flat_c;
} value_ref;

typedef struct {
    int node, param;
    float *data; /* the parameter's floats in the core's layout */
} pending;

typedef struct {
    const cs_onnx_graph *g;
    cs_model *m;
    value_ref *vals;
    int n_vals, cap_vals;
    pending *pend;
    int n_pend, cap_pend;
    const cs_onnx_node *node; /* being translated, for messages */
    int run;                  /* a graph run as it is: any inputs and outputs, no softmax added */
    int64_t batch;            /* the graph inputs' first dim, -1 when symbolic */
    char *err;
    size_t errlen;
} importer;

static int fail(importer *im, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (im->node) snprintf(im->err, im->errlen, "ONNX node '%s' (%s): %s", im->node->name, im->node->op_type, msg);
    else snprintf(im->err, im->errlen, "ONNX model: %s", msg);
    return -1;
}

/* ---- values ---- */

static value_ref *find_value(importer *im, const char *name)
{
    for (int i = im->n_vals - 1; i >= 0; i--)
        if (strcmp(im->vals[i].name, name) == 0) return &im->vals[i];
    return NULL;
}

static int set_value(importer *im, const char *name, value_ref v)
{
    v.name = name;
    if (im->n_vals == im->cap_vals) {
        int cap = im->cap_vals ? 2 * im->cap_vals : 64;
        value_ref *grown = realloc(im->vals, (size_t)cap * sizeof *grown);
        if (!grown) return fail(im, "out of memory");
        im->vals = grown;
        im->cap_vals = cap;
    }
    im->vals[im->n_vals++] = v;
    return 0;
}

/* The computed (not constant) value at input k of the current node. */
static value_ref *data_input(importer *im, int k)
{
    const cs_onnx_node *n = im->node;
    if (k >= n->n_inputs || !n->inputs[k][0]) {
        fail(im, "input %d is missing", k);
        return NULL;
    }
    value_ref *v = find_value(im, n->inputs[k]);
    if (!v) {
        if (cs_onnx_find_init(im->g, n->inputs[k]))
            fail(im, "input '%s' is a constant where a feature map is expected", n->inputs[k]);
        else
            fail(im, "input '%s' is not computed by any node before it", n->inputs[k]);
    }
    return v;
}

/* The constant at input k, or NULL (optional inputs: absent is not an error). */
static const cs_onnx_tensor *const_input(importer *im, int k)
{
    const cs_onnx_node *n = im->node;
    if (k >= n->n_inputs || !n->inputs[k][0]) return NULL;
    return cs_onnx_find_init(im->g, n->inputs[k]);
}

static const cs_onnx_tensor *float_const(importer *im, int k, const char *what)
{
    const cs_onnx_tensor *t = const_input(im, k);
    if (!t) {
        const cs_onnx_node *n = im->node;
        if (k < n->n_inputs && n->inputs[k][0])
            fail(im, "%s '%s' is not a constant (an initializer)", what, n->inputs[k]);
        else
            fail(im, "has no %s", what);
        return NULL;
    }
    if (t->elem_type != CS_ONNX_FLOAT || !t->f) {
        fail(im, "%s '%s' is not float", what, t->name);
        return NULL;
    }
    return t;
}

static cs_shape shape_of(importer *im, const value_ref *v) { return cs_model_node_shape(im->m, v->node); }

/* ---- nodes and weights ---- */

/* The ONNX node's name as a node name: PyTorch's scope paths ("/layer3/relu2/Relu")
 * read as dotted names ("layer3.relu2.Relu"), which a URL can carry in one path
 * segment; made to fit CS_NAME_MAX and kept unique. */
void cs_onnx_node_name(const char *onnx, char *out, size_t size)
{
    while (*onnx == '/') onnx++;
    size_t k = 0;
    for (; *onnx && k + 1 < size; onnx++) out[k++] = *onnx == '/' ? '.' : *onnx;
    out[k] = 0;
}

static void node_name(importer *im, char *out)
{
    char name[512];
    cs_onnx_node_name(im->node->name, name, sizeof name);
    size_t len = strlen(name);
    if (len == 0) snprintf(name, sizeof name, "%s", im->node->op_type), len = strlen(name);
    if (len < CS_NAME_MAX && cs_model_find_layer(im->m, name) < 0) {
        memcpy(out, name, len + 1);
        return;
    }
    /* The end of a long path name says most; a counter keeps it unique. */
    const char *tail = len > CS_NAME_MAX - 12 ? name + len - (CS_NAME_MAX - 12) : name;
    for (int k = 1;; k++) {
        snprintf(out, CS_NAME_MAX, "%s~%d", tail, k);
        if (cs_model_find_layer(im->m, out) < 0) return;
    }
}

/* A node of `kind` reading the given values; its output becomes the ONNX node's
 * first output. Returns the node index, or -1. */
static int add_node(importer *im, cs_layer_kind kind, const cs_layer_config *cfg, value_ref *const *in, int n_in)
{
    int inputs[CS_MAX_INPUTS];
    if (n_in > CS_MAX_INPUTS) return fail(im, "%d inputs (at most %d)", n_in, CS_MAX_INPUTS);
    for (int k = 0; k < n_in; k++) inputs[k] = in[k]->node;
    char name[CS_NAME_MAX], why[256];
    node_name(im, name);
    int i = cs_model_add_node(im->m, name, kind, cfg, inputs, n_in, why, sizeof why);
    size_t nl = strlen(name);
    /* The builder names the node first; the message already does. */
    if (i < 0) return fail(im, "%s", !strncmp(why, name, nl) && !strncmp(why + nl, ": ", 2) ? why + nl + 2 : why);
    /* Most ops keep the rank of their (first) input; the others set it after. */
    if (set_value(im, im->node->outputs[0], (value_ref){.node = i, .rank = in[0]->rank}) != 0) return -1;
    return i;
}

/* Takes ownership of data: parameter `param` of node `node`, in the core's layout. */
static int defer(importer *im, int node, int param, float *data)
{
    if (!data) return fail(im, "out of memory");
    if (im->n_pend == im->cap_pend) {
        int cap = im->cap_pend ? 2 * im->cap_pend : 64;
        pending *grown = realloc(im->pend, (size_t)cap * sizeof *grown);
        if (!grown) {
            free(data);
            return fail(im, "out of memory");
        }
        im->pend = grown;
        im->cap_pend = cap;
    }
    im->pend[im->n_pend++] = (pending){node, param, data};
    return 0;
}

static size_t param_size(importer *im, int node, int param) { return im->m->layers[node].params[param].size; }

/* A copy of a constant of exactly `count` floats (a bias, batch-norm statistics). */
static int defer_copy(importer *im, int node, int param, const cs_onnx_tensor *t, const char *what)
{
    size_t count = param_size(im, node, param);
    if ((size_t)t->count != count) return fail(im, "%s '%s' has %lld values, %zu expected", what, t->name,
                                               (long long)t->count, count);
    float *d = malloc(count * sizeof(float));
    if (d) memcpy(d, t->f, count * sizeof(float));
    return defer(im, node, param, d);
}

static int defer_zeros(importer *im, int node, int param)
{
    return defer(im, node, param, calloc(param_size(im, node, param), sizeof(float)));
}

/* ---- attributes ---- */

/* The height and width values of an INTS attribute of a spatial op: two values for
 * 2-D (N, C, H, W), one for 1-D (N, C, L), whose height is 1 (a = 1). */
static int attr_pair(importer *im, const char *name, int def, int nsp, int *a, int *b)
{
    const int64_t *v;
    int n = cs_onnx_attr_ints(im->node, name, &v);
    if (n < 0) {
        *a = nsp == 1 ? 1 : def;
        *b = def;
        return 0;
    }
    if (n != nsp) return fail(im, "attribute %s must be %d size%s for a %d-D op", name, nsp, nsp > 1 ? "s" : "", nsp);
    for (int k = 0; k < n; k++)
        if (v[k] < 1 || v[k] > MAX_DIM) return fail(im, "attribute %s has %lld, out of range", name, (long long)v[k]);
    *a = nsp == 1 ? 1 : (int)v[0];
    *b = (int)v[nsp - 1];
    return 0;
}

/* The spatial dims of a value a window op reads: 2 for (N, C, H, W), 1 for (N, C, L);
 * -1 with err for any other tensor. */
static int spatial_dims(importer *im, const value_ref *x)
{
    if (x->flat_c) return fail(im, "reads a flattened tensor where a feature map is expected");
    if (x->rank != 3 && x->rank != 4)
        return fail(im, "reads a rank-%d tensor: only (N, C, H, W) and (N, C, L) are supported", x->rank);
    return x->rank - 2;
}

/* An axis attribute counted from the front (a negative one from the back), or -1 when
 * it is outside the rank. */
static int norm_axis(int64_t axis, int rank)
{
    if (axis < 0) axis += rank;
    return axis >= 0 && axis < rank ? (int)axis : -1;
}

/* pads [top, left, bottom, right] from `pads` or `auto_pad`, for a window of
 * (kh, kw) strides (sh, sw) dilations (dh, dw) over (ih, iw). */
static int attr_pads(importer *im, int nsp, int ih, int iw, int kh, int kw, int sh, int sw, int dh, int dw, int *pads)
{
    const char *autopad = cs_onnx_attr_string(im->node, "auto_pad", "NOTSET");
    memset(pads, 0, 4 * sizeof *pads);
    if (strcmp(autopad, "SAME_UPPER") == 0 || strcmp(autopad, "SAME_LOWER") == 0) {
        int upper = autopad[5] == 'U';
        cs_conv2d_same_pads(ih, kh, sh, dh, upper, &pads[0], &pads[2]);
        cs_conv2d_same_pads(iw, kw, sw, dw, upper, &pads[1], &pads[3]);
        return 0;
    }
    if (strcmp(autopad, "VALID") == 0) return 0;
    if (strcmp(autopad, "NOTSET") != 0) return fail(im, "auto_pad '%s' is not supported", autopad);
    const int64_t *v;
    int n = cs_onnx_attr_ints(im->node, "pads", &v);
    if (n < 0) return 0;
    if (n != 2 * nsp) return fail(im, "pads must have %d values for a %d-D op, not %d", 2 * nsp, nsp, n);
    /* ONNX orders them (h begin, w begin, h end, w end): top, left, bottom, right; a
     * 1-D op's (begin, end) pad the width. */
    for (int k = 0; k < n; k++) {
        if (v[k] < 0 || v[k] > MAX_DIM) return fail(im, "pad %lld is not supported", (long long)v[k]);
        pads[nsp == 1 ? 1 + 2 * k : k] = (int)v[k];
    }
    return 0;
}

/* The value just made keeps the layout of x (an elementwise op of a flattened map). */
static void inherit_layout(importer *im, const value_ref *x)
{
    value_ref *v = &im->vals[im->n_vals - 1];
    v->flat_h = x->flat_h, v->flat_w = x->flat_w, v->flat_c = x->flat_c;
    v->rank = x->rank;
}

/* The value just made has this rank. */
static void set_rank(importer *im, int rank) { im->vals[im->n_vals - 1].rank = rank; }

static int spatial_input(importer *im, value_ref *x)
{
    if (x->flat_c) return fail(im, "reads a flattened tensor where a feature map is expected");
    return 0;
}

/* Inputs an elementwise op of several feature maps reads: one rank and one layout, so
 * that broadcasting the core's (h, w, c) is broadcasting ONNX's dims. */
static int same_layout(importer *im, value_ref *const *in, int n)
{
    for (int k = 1; k < n; k++) {
        if (in[k]->rank != in[0]->rank)
            return fail(im, "broadcasts a rank-%d tensor against a rank-%d one, which is not supported", in[k]->rank,
                        in[0]->rank);
        if (in[k]->flat_c != in[0]->flat_c || in[k]->flat_h != in[0]->flat_h || in[k]->flat_w != in[0]->flat_w)
            return fail(im, "mixes a flattened tensor with another layout");
    }
    return 0;
}

/* ---- the ops ---- */

static int import_conv(importer *im)
{
    value_ref *x = data_input(im, 0);
    const cs_onnx_tensor *w = x ? float_const(im, 1, "weight") : NULL;
    int nsp = w ? spatial_dims(im, x) : -1;
    if (nsp < 0) return -1;
    cs_shape in = shape_of(im, x);
    if (w->ndim != nsp + 2)
        return fail(im, "weight '%s' is %d-D for a rank-%d input: only 1-D and 2-D convolutions are supported", w->name,
                    w->ndim, x->rank);
    /* A 1-D kernel (O, I, K) is the 2-D kernel (O, I, 1, K). */
    int64_t oc = w->dims[0], icg = w->dims[1], kh = nsp == 1 ? 1 : w->dims[2], kw = w->dims[nsp + 1];
    int64_t groups = cs_onnx_attr_int(im->node, "group", 1);
    if (groups < 1 || groups > in.c || icg * groups != in.c || oc % groups || oc > MAX_DIM)
        return fail(im, "weight %lldx%lldx%lldx%lld with %lld groups does not fit %d input channels", (long long)oc,
                    (long long)icg, (long long)kh, (long long)kw, (long long)groups, in.c);
    cs_layer_config c = {.filters = (int)oc, .activation = CS_ACT_LINEAR, .groups = (int)groups};
    if (kh < 1 || kh > MAX_DIM || kw < 1 || kw > MAX_DIM) return fail(im, "kernel %lldx%lld is not supported",
                                                                    (long long)kh, (long long)kw);
    int ks_h = 0, ks_w = 0;
    if (attr_pair(im, "kernel_shape", (int)kh, nsp, &ks_h, &ks_w)) return -1;
    if (ks_h != kh || (cs_onnx_attr_find(im->node, "kernel_shape") && ks_w != kw))
        return fail(im, "kernel_shape disagrees with the weight");
    if (attr_pair(im, "strides", 1, nsp, &c.stride, &c.stride_w) ||
        attr_pair(im, "dilations", 1, nsp, &c.dilation, &c.dilation_w))
        return -1;
    c.kernel = (int)kh;
    c.kernel_w = (int)kw;
    int pads[4];
    if (attr_pads(im, nsp, in.h, in.w, c.kernel, c.kernel_w, c.stride, c.stride_w, c.dilation, c.dilation_w, pads))
        return -1;
    /* Windows conv.c computes keep its kernels: square, one stride, no dilation or
     * groups, and no padding or TensorFlow's 'same' padding. */
    int simple = c.kernel == c.kernel_w && c.stride == c.stride_w && c.dilation == 1 && c.dilation_w == 1 &&
                 groups == 1;
    int same[4];
    cs_conv2d_same_pads(in.h, c.kernel, c.stride, 1, 1, &same[0], &same[2]);
    cs_conv2d_same_pads(in.w, c.kernel, c.stride, 1, 1, &same[1], &same[3]);
    if (simple && !pads[0] && !pads[1] && !pads[2] && !pads[3]) {
        c.kernel_w = c.stride_w = c.dilation = c.dilation_w = c.groups = 0;
    } else if (simple && !memcmp(pads, same, sizeof same)) {
        c.kernel_w = c.stride_w = c.dilation = c.dilation_w = c.groups = 0;
        c.pad_same = 1;
    } else {
        c.pad_explicit = 1;
        memcpy(c.pads, pads, sizeof pads);
    }
    int i = add_node(im, CS_CONV2D, &c, &x, 1);
    if (i < 0) return -1;
    cs_conv2d_geom g = {.ic = in.c, .oc = (int)oc, .kh = (int)kh, .kw = (int)kw, .groups = (int)groups};
    float *k = malloc(param_size(im, i, 0) * sizeof(float));
    if (k) cs_conv2d_kernel_from_oihw(&g, w->f, k);
    if (defer(im, i, 0, k)) return -1;
    const cs_onnx_tensor *b = const_input(im, 2);
    if (im->node->n_inputs > 2 && im->node->inputs[2][0] && !(b = float_const(im, 2, "bias"))) return -1;
    return b ? defer_copy(im, i, 1, b, "bias") : defer_zeros(im, i, 1);
}

static int import_batchnorm(importer *im)
{
    value_ref *x = data_input(im, 0);
    if (!x || spatial_input(im, x)) return -1;
    if (x->rank < 2) return fail(im, "reads a rank-%d tensor, which has no channels", x->rank);
    const cs_onnx_tensor *t[4];
    static const char *const what[4] = {"scale", "bias", "mean", "variance"};
    for (int k = 0; k < 4; k++)
        if (!(t[k] = float_const(im, k + 1, what[k]))) return -1;
    if (cs_onnx_attr_int(im->node, "training_mode", 0)) return fail(im, "training_mode is not supported");
    if (im->g->opset < 7 && !cs_onnx_attr_int(im->node, "is_test", 0))
        return fail(im, "training mode (is_test 0) is not supported");
    if (im->g->opset < 9 && !cs_onnx_attr_int(im->node, "spatial", 1)) return fail(im, "spatial 0 is not supported");
    cs_layer_config c = {.epsilon = cs_onnx_attr_float(im->node, "epsilon", 1e-5f),
                         .momentum = cs_onnx_attr_float(im->node, "momentum", 0.9f)};
    if (!(c.epsilon > 0)) return fail(im, "epsilon %g is not positive", (double)c.epsilon);
    int i = add_node(im, CS_BATCHNORM, &c, &x, 1);
    if (i < 0) return -1;
    for (int k = 0; k < 4; k++)
        if (defer_copy(im, i, k, t[k], what[k])) return -1;
    return 0;
}

static int import_activation(importer *im, int actf, float a, float b)
{
    value_ref *x = data_input(im, 0);
    if (!x) return -1;
    cs_layer_config c = {.actf = actf, .act_a = a, .act_b = b};
    if (actf == CS_ACTF_RELU) {
        if (add_node(im, CS_RELU, &c, &x, 1) < 0) return -1;
        inherit_layout(im, x);
        return 0;
    }
    if (add_node(im, CS_ACTIVATION, &c, &x, 1) < 0) return -1;
    inherit_layout(im, x);
    return 0;
}

/* A scalar bound of Clip (input k), or def when absent. */
static int clip_bound(importer *im, int k, float def, float *out)
{
    *out = def;
    if (k >= im->node->n_inputs || !im->node->inputs[k][0]) return 0;
    const cs_onnx_tensor *t = float_const(im, k, k == 1 ? "min" : "max");
    if (!t) return -1;
    if (t->count != 1) return fail(im, "bound '%s' is not a scalar", t->name);
    *out = t->f[0];
    return 0;
}

static int import_clip(importer *im)
{
    float lo, hi;
    if (im->g->opset < 11) { /* the bounds were attributes */
        lo = cs_onnx_attr_float(im->node, "min", -FLT_MAX);
        hi = cs_onnx_attr_float(im->node, "max", FLT_MAX);
    } else if (clip_bound(im, 1, -FLT_MAX, &lo) || clip_bound(im, 2, FLT_MAX, &hi)) {
        return -1;
    }
    if (lo == 0 && hi == FLT_MAX) return import_activation(im, CS_ACTF_RELU, 0, 0);
    return import_activation(im, CS_ACTF_CLIP, lo, hi);
}

static int import_leaky(importer *im)
{
    float alpha = cs_onnx_attr_float(im->node, "alpha", 0.01f);
    value_ref *x = data_input(im, 0);
    if (!x) return -1;
    if (alpha == 0) return import_activation(im, CS_ACTF_RELU, 0, 0);
    cs_layer_config c = {.alpha = alpha};
    if (add_node(im, CS_LEAKY_RELU, &c, &x, 1) < 0) return -1;
    inherit_layout(im, x);
    return 0;
}

static int import_gelu(importer *im)
{
    const char *approx = cs_onnx_attr_string(im->node, "approximate", "none");
    if (strcmp(approx, "none") && strcmp(approx, "tanh")) return fail(im, "approximate '%s' is not supported", approx);
    return import_activation(im, strcmp(approx, "tanh") == 0 ? CS_ACTF_GELU_TANH : CS_ACTF_GELU, 0, 0);
}

static int import_pool(importer *im, cs_layer_kind kind)
{
    value_ref *x = data_input(im, 0);
    int nsp = x ? spatial_dims(im, x) : -1;
    if (nsp < 0) return -1;
    cs_shape in = shape_of(im, x);
    if (cs_onnx_attr_int(im->node, "storage_order", 0)) return fail(im, "storage_order 1 is not supported");
    if (!cs_onnx_attr_find(im->node, "kernel_shape")) return fail(im, "has no kernel_shape");
    cs_layer_config c = {.ceil_mode = (int)cs_onnx_attr_int(im->node, "ceil_mode", 0),
                         .count_include_pad = (int)cs_onnx_attr_int(im->node, "count_include_pad", 0)};
    if (attr_pair(im, "kernel_shape", 1, nsp, &c.kernel, &c.kernel_w) ||
        attr_pair(im, "strides", 1, nsp, &c.stride, &c.stride_w) ||
        attr_pair(im, "dilations", 1, nsp, &c.dilation, &c.dilation_w))
        return -1;
    int pads[4];
    if (attr_pads(im, nsp, in.h, in.w, c.kernel, c.kernel_w, c.stride, c.stride_w, c.dilation, c.dilation_w, pads))
        return -1;
    if (kind == CS_MAXPOOL && c.kernel == c.kernel_w && c.stride == c.kernel && c.stride_w == c.kernel &&
        c.dilation == 1 && c.dilation_w == 1 && !pads[0] && !pads[1] && !pads[2] && !pads[3] &&
        (!c.ceil_mode || (in.h % c.kernel == 0 && in.w % c.kernel == 0))) {
        cs_layer_config simple = {.pool = c.kernel};
        return add_node(im, kind, &simple, &x, 1) < 0 ? -1 : 0;
    }
    c.pad_explicit = pads[0] || pads[1] || pads[2] || pads[3];
    memcpy(c.pads, pads, sizeof pads);
    return add_node(im, kind, &c, &x, 1) < 0 ? -1 : 0;
}

static int import_global_pool(importer *im, cs_layer_kind kind)
{
    value_ref *x = data_input(im, 0);
    if (!x || spatial_dims(im, x) < 0) return -1;
    cs_layer_config c = {0};
    return add_node(im, kind, &c, &x, 1) < 0 ? -1 : 0;
}

/* ReduceMean over every spatial axis is a global average pool; without kept dims
 * its result is (N, C). */
static int import_reduce_mean(importer *im)
{
    value_ref *x = data_input(im, 0);
    int nsp = x ? spatial_dims(im, x) : -1;
    if (nsp < 0) return -1;
    const int64_t *axes;
    int n = cs_onnx_attr_ints(im->node, "axes", &axes);
    const cs_onnx_tensor *t = n < 0 ? const_input(im, 1) : NULL;
    if (t && t->elem_type == CS_ONNX_INT64) n = (int)t->count, axes = t->i;
    int seen = 0;
    for (int k = 0; k < n; k++) {
        int a = norm_axis(axes[k], x->rank);
        if (a >= 2) seen |= 1 << a;
        else seen = -1;
    }
    if (n != nsp || seen != ((1 << x->rank) - 4)) return fail(im, "only a mean over the spatial axes is supported");
    int keep = (int)cs_onnx_attr_int(im->node, "keepdims", 1);
    if (import_global_pool(im, CS_GLOBAL_AVGPOOL)) return -1;
    if (!keep) set_rank(im, 2);
    return 0;
}

/* Flatten from axis 1, or a Reshape to (batch, features): the core's flatten, with
 * the (c, h, w) order ONNX gives the features remembered for a dense layer above. */
static int flatten(importer *im, value_ref *x)
{
    cs_shape in = shape_of(im, x);
    cs_layer_config c = {0};
    int i = add_node(im, CS_FLATTEN, &c, &x, 1);
    if (i < 0) return -1;
    value_ref *v = &im->vals[im->n_vals - 1];
    v->rank = 2;
    if (in.h * in.w > 1 && in.c > 1) v->flat_h = in.h, v->flat_w = in.w, v->flat_c = in.c;
    return 0;
}

/* The output is x's floats as (batch, features): x itself when its order is already
 * ONNX's, else a flatten. */
static int as_vector(importer *im, value_ref *x)
{
    if (x->flat_c || x->rank <= 2 || shape_of(im, x).h * shape_of(im, x).w == 1) {
        value_ref v = *x;
        v.rank = 2;
        return set_value(im, im->node->outputs[0], v);
    }
    return flatten(im, x);
}

static int import_flatten(importer *im)
{
    value_ref *x = data_input(im, 0);
    if (!x) return -1;
    int64_t axis = cs_onnx_attr_int(im->node, "axis", 1);
    if (axis < 0) axis += x->rank;
    if (axis != 1) return fail(im, "only axis 1 (one vector per image) is supported");
    return as_vector(im, x);
}

static int import_reshape(importer *im)
{
    value_ref *x = data_input(im, 0);
    const cs_onnx_tensor *s = x ? const_input(im, 1) : NULL;
    if (!x) return -1;
    if (!s || s->elem_type != CS_ONNX_INT64)
        return fail(im, "the target shape is not a constant (its shape arithmetic could not be folded)");
    cs_shape in = shape_of(im, x);
    int64_t size = (int64_t)cs_shape_size(in);
    /* (batch, features): batch as 0 (copy), -1 or 1, features as the size or -1. */
    /* A batch of 1 is the batch when the inputs' batch is 1 or left open. */
    int batch_ok = s->count > 0 && (s->i[0] == 0 || s->i[0] == -1 || (s->i[0] == 1 && im->batch <= 1));
    if (s->count == 2 && batch_ok && (s->i[1] == size || s->i[1] == -1) && !(s->i[0] == -1 && s->i[1] == -1))
        return as_vector(im, x);
    /* The same 4-D shape again. */
    if (s->count == 4 && x->rank == 4 && batch_ok && s->i[1] == in.c && s->i[2] == in.h && s->i[3] == in.w &&
        !x->flat_c)
        return set_value(im, im->node->outputs[0], *x);
    /* A vector (N, C) as (N, C, 1, 1) (x.view(n, c, 1, 1), squeeze-and-excitation): its
     * floats are already a 1x1 map of C channels. */
    if (s->count == 4 && x->rank == 2 && batch_ok && s->i[1] == in.c && s->i[2] == 1 && s->i[3] == 1 && !x->flat_c) {
        value_ref v = *x;
        v.rank = 4;
        return set_value(im, im->node->outputs[0], v);
    }
    return fail(im, "reshape to a shape other than (batch, %lld) is not supported", (long long)size);
}

/* Gemm (A B^T or A B, times alpha, plus beta C) and MatMul with a constant B: a dense
 * layer. Rows of a flattened (c, h, w) feature map are put in (h, w, c) order. */
static int import_dense(importer *im, int gemm)
{
    value_ref *x = data_input(im, 0);
    const cs_onnx_tensor *w = x ? float_const(im, 1, "weight") : NULL;
    if (!w) return -1;
    cs_shape in = shape_of(im, x);
    if (x->rank != 2) return fail(im, "reads a rank-%d tensor: only (batch, features) is supported", x->rank);
    int trans_b = gemm ? (int)cs_onnx_attr_int(im->node, "transB", 0) : 0;
    float alpha = gemm ? cs_onnx_attr_float(im->node, "alpha", 1) : 1, beta = gemm ? cs_onnx_attr_float(im->node, "beta", 1) : 1;
    if (gemm && cs_onnx_attr_int(im->node, "transA", 0)) return fail(im, "transA is not supported");
    if (w->ndim != 2) return fail(im, "weight '%s' is not 2-D", w->name);
    int64_t rows = trans_b ? w->dims[1] : w->dims[0], cols = trans_b ? w->dims[0] : w->dims[1];
    int features = (int)cs_shape_size(in);
    if (rows != features || cols < 1 || cols > MAX_DIM)
        return fail(im, "weight %lldx%lld does not fit %d input features", (long long)w->dims[0],
                    (long long)w->dims[1], features);
    cs_layer_config c = {.units = (int)cols, .activation = CS_ACT_LINEAR};
    int i = add_node(im, CS_DENSE, &c, &x, 1);
    if (i < 0) return -1;
    set_rank(im, 2);
    float *k = malloc((size_t)rows * cols * sizeof(float));
    if (!k) return defer(im, i, 0, NULL);
    for (int64_t r = 0; r < rows; r++) {
        /* The core's row r is (y, x, ch); ONNX numbers that feature ch * h * w + y * w + x. */
        int64_t src = r;
        if (x->flat_c) {
            int64_t ch = r % x->flat_c, pix = r / x->flat_c;
            src = ch * x->flat_h * x->flat_w + pix;
        }
        for (int64_t o = 0; o < cols; o++)
            k[r * cols + o] = alpha * (trans_b ? w->f[o * rows + src] : w->f[src * cols + o]);
    }
    if (defer(im, i, 0, k)) return -1;
    const cs_onnx_tensor *b = gemm ? const_input(im, 2) : NULL;
    if (gemm && im->node->n_inputs > 2 && im->node->inputs[2][0] && !(b = float_const(im, 2, "bias"))) return -1;
    if (!b) return defer_zeros(im, i, 1);
    /* C broadcasts to (batch, outputs): one value per output, or one for all. */
    int per_image = b->ndim < 2 || b->dims[0] == 1;
    if (!per_image || (b->count != cols && b->count != 1))
        return fail(im, "bias '%s' of %lld values is not one per output (%lld) or one for all", b->name,
                    (long long)b->count, (long long)cols);
    float *bb = malloc((size_t)cols * sizeof(float));
    for (int64_t o = 0; bb && o < cols; o++) bb[o] = beta * b->f[b->count == 1 ? 0 : o];
    return defer(im, i, 1, bb);
}

/* How many nodes read a value. */
static int readers(const cs_onnx_graph *g, const char *value)
{
    int n = 0;
    for (int i = 0; i < g->n_nodes; i++)
        for (int k = 0; k < g->nodes[i].n_inputs; k++) n += strcmp(g->nodes[i].inputs[k], value) == 0;
    for (int k = 0; k < g->n_outputs; k++) n += strcmp(g->outputs[k].name, value) == 0;
    return n;
}

static pending *pending_of(importer *im, int node, int param)
{
    for (int k = im->n_pend - 1; k >= 0; k--)
        if (im->pend[k].node == node && im->pend[k].param == param) return &im->pend[k];
    return NULL;
}

/* x (op) constant: a scalar becomes a Rescaling; a per-output constant added to a
 * dense or conv layer read by nothing else goes into its bias. */
static int binary_with_constant(importer *im, const char *op, value_ref *x, const cs_onnx_tensor *t, int x_first)
{
    if (t->elem_type != CS_ONNX_FLOAT || !t->f) return fail(im, "constant '%s' is not float", t->name);
    const cs_layer *l = x->node >= 0 ? &im->m->layers[x->node] : NULL;
    if (t->ndim > x->rank) return fail(im, "the constant '%s' has more dims than the tensor it meets", t->name);
    /* Lined up with x's dims from the back, every dim of t but the channels' is 1. */
    int per_channel = x->rank >= 2 && !x->flat_c;
    for (int d = 0; d < t->ndim; d++)
        if (x->rank - t->ndim + d != 1 && t->dims[d] != 1) per_channel = 0;
    if (t->count == 1) {
        float v = t->f[0];
        cs_layer_config c = {.scale = 1, .offset = 0};
        if (!strcmp(op, "Add")) c.offset = v;
        else if (!strcmp(op, "Mul")) c.scale = v;
        else if (!strcmp(op, "Sub")) c.scale = x_first ? 1 : -1, c.offset = x_first ? -v : v;
        else if (!strcmp(op, "Div") && x_first && v != 0) c.scale = 1 / v;
        else return fail(im, "%s with this constant is not supported", op);
        if (add_node(im, CS_RESCALING, &c, &x, 1) < 0) return -1;
        inherit_layout(im, x);
        return 0;
    }
    if (!strcmp(op, "Add") && l && (l->kind == CS_DENSE || l->kind == CS_CONV2D) && l->cfg.activation == CS_ACT_LINEAR &&
        per_channel && t->count == l->out.c && readers(im->g, im->node->inputs[x_first ? 0 : 1]) == 1) {
        pending *b = pending_of(im, x->node, 1);
        if (b)
            for (int o = 0; o < l->out.c; o++) b->data[o] += t->f[o];
        return b ? set_value(im, im->node->outputs[0], *x) : fail(im, "internal: no bias to add to");
    }
    return fail(im, "%s with the constant '%s' of %lld values is not supported", op, t->name, (long long)t->count);
}

/* Before opset 7, Add, Sub, Mul and Div broadcast only when told to, B from the
 * position `axis` of A: numpy's rule where B lines up with A's last dims. */
static int legacy_broadcast(importer *im, int rank_a, int rank_b)
{
    if (im->g->opset >= 7 || !cs_onnx_attr_find(im->node, "axis")) return 0;
    int64_t axis = cs_onnx_attr_int(im->node, "axis", 0);
    if (axis < 0) axis += rank_a;
    if (axis != rank_a - rank_b) return fail(im, "broadcasting from axis %lld is not supported", (long long)axis);
    return 0;
}

static int import_binary(importer *im, cs_layer_kind kind)
{
    const char *op = im->node->op_type;
    if (im->node->n_inputs != 2) return fail(im, "needs two inputs");
    const cs_onnx_tensor *t0 = const_input(im, 0), *t1 = const_input(im, 1);
    if (t0 && t1) return fail(im, "both inputs are constants (not folded)");
    if (t0 || t1) {
        value_ref *x = data_input(im, t0 ? 1 : 0);
        const cs_onnx_tensor *t = t0 ? t0 : t1;
        if (!x || (t1 && legacy_broadcast(im, x->rank, t->ndim))) return -1;
        return binary_with_constant(im, op, x, t, t1 != NULL);
    }
    if (kind == CS_KIND_COUNT) return fail(im, "%s of two feature maps is not supported", op);
    value_ref *in[2] = {data_input(im, 0), data_input(im, 1)};
    if (!in[0] || !in[1] || legacy_broadcast(im, in[0]->rank, in[1]->rank) || same_layout(im, in, 2)) return -1;
    cs_layer_config c = {0};
    if (add_node(im, kind, &c, in, 2) < 0) return -1;
    inherit_layout(im, in[0]);
    return 0;
}

static int import_concat(importer *im)
{
    int64_t axis = cs_onnx_attr_int(im->node, "axis", 1);
    if (im->node->n_inputs < 1 || im->node->n_inputs > CS_MAX_INPUTS)
        return fail(im, "%d inputs (1 to %d supported)", im->node->n_inputs, CS_MAX_INPUTS);
    value_ref *in[CS_MAX_INPUTS];
    for (int k = 0; k < im->node->n_inputs; k++)
        if (!(in[k] = data_input(im, k)) || spatial_input(im, in[k])) return -1;
    if (same_layout(im, in, im->node->n_inputs)) return -1;
    if (in[0]->rank < 2 || norm_axis(axis, in[0]->rank) != 1)
        return fail(im, "only concatenation along the channels (axis 1) is supported");
    cs_layer_config c = {0};
    return add_node(im, CS_CONCATENATE, &c, in, im->node->n_inputs) < 0 ? -1 : 0;
}

static int import_pad(importer *im)
{
    value_ref *x = data_input(im, 0);
    const cs_onnx_tensor *p = x ? const_input(im, 1) : NULL;
    int nsp = x ? spatial_dims(im, x) : -1;
    if (nsp < 0) return -1;
    const char *mode = cs_onnx_attr_string(im->node, "mode", "constant");
    if (strcmp(mode, "constant")) return fail(im, "mode '%s' is not supported (only constant)", mode);
    int r = x->rank, np = -1;
    const int64_t *pv = NULL;
    if (im->g->opset < 11) np = cs_onnx_attr_ints(im->node, "pads", &pv); /* an attribute before opset 11 */
    else if (p && p->elem_type == CS_ONNX_INT64) np = (int)p->count, pv = p->i;
    if (np != 2 * r) return fail(im, "pads must be a constant of %d values (each dim's begin, then each end)", 2 * r);
    if (im->node->n_inputs > 3 && im->node->inputs[3][0]) return fail(im, "axes are not supported");
    if (pv[0] || pv[1] || pv[r] || pv[r + 1]) return fail(im, "padding the batch or the channels is not supported");
    /* top, left, bottom, right; a 1-D tensor's (N, C, L) pads only its width. */
    cs_layer_config c = {.pads = {nsp == 2 ? (int)pv[2] : 0, (int)pv[r - 1], nsp == 2 ? (int)pv[r + 2] : 0,
                                  (int)pv[2 * r - 1]}};
    for (int k = 0; k < 4; k++)
        if (c.pads[k] < 0 || c.pads[k] > MAX_DIM) return fail(im, "pad %d is not supported", c.pads[k]);
    const cs_onnx_tensor *v = const_input(im, 2);
    if (im->node->n_inputs > 2 && im->node->inputs[2][0] && !(v = float_const(im, 2, "constant_value"))) return -1;
    c.pad_value = im->g->opset < 11 ? cs_onnx_attr_float(im->node, "value", 0) : v ? v->f[0] : 0;
    return add_node(im, CS_ZERO_PADDING2D, &c, &x, 1) < 0 ? -1 : 0;
}

static int import_softmax(importer *im)
{
    value_ref *x = data_input(im, 0);
    if (!x) return -1;
    cs_shape in = shape_of(im, x);
    int64_t axis = cs_onnx_attr_int(im->node, "axis", im->g->opset >= 13 ? -1 : 1);
    /* From opset 13 the softmax runs along one axis; before, over all the dims from
     * `axis` on as one vector. The core's runs along the channels (axis 1), which is
     * both when nothing follows the channels but ones. */
    int a = norm_axis(axis, x->rank);
    int ok = x->rank >= 2 && a == 1 && (im->g->opset >= 13 || in.h * in.w == 1);
    if (!ok) return fail(im, "softmax over axis %lld of a rank-%d tensor is not supported", (long long)axis, x->rank);
    if (x->flat_c) return fail(im, "softmax over a flattened feature map is not supported");
    cs_layer_config c = {0};
    return add_node(im, CS_SOFTMAX, &c, &x, 1) < 0 ? -1 : 0;
}

/* Nodes that compute nothing: the output is the input. */
static int import_alias(importer *im)
{
    value_ref *x = data_input(im, 0);
    return x ? set_value(im, im->node->outputs[0], *x) : -1;
}

/* Dropout at inference is the identity; in training mode (opset 12's input, or
 * is_test 0 before opset 7) it draws a mask, which is not supported. */
static int import_dropout(importer *im)
{
    if (im->g->opset < 7 && !cs_onnx_attr_int(im->node, "is_test", 0))
        return fail(im, "training mode (is_test 0) is not supported");
    if (im->node->n_inputs > 2 && im->node->inputs[2][0]) {
        const cs_onnx_tensor *t = const_input(im, 2);
        if (!t) return fail(im, "training_mode '%s' is not a constant", im->node->inputs[2]);
        if (t->count != 1 || (t->i ? t->i[0] != 0 : t->f[0] != 0)) return fail(im, "training mode is not supported");
    }
    return import_alias(im);
}

/* Sum of feature maps: an Add of them (one input: the input itself). */
static int import_sum(importer *im)
{
    int n = im->node->n_inputs;
    if (n < 1 || n > CS_MAX_INPUTS) return fail(im, "%d inputs (1 to %d supported)", n, CS_MAX_INPUTS);
    if (n == 1) return import_alias(im);
    value_ref *in[CS_MAX_INPUTS];
    for (int k = 0; k < n; k++)
        if (!(in[k] = data_input(im, k))) return -1;
    if (same_layout(im, in, n)) return -1;
    cs_layer_config c = {0};
    if (add_node(im, CS_ADD, &c, in, n) < 0) return -1;
    inherit_layout(im, in[0]);
    return 0;
}

/* -x: a Rescaling by -1. */
static int import_neg(importer *im)
{
    value_ref *x = data_input(im, 0);
    if (!x) return -1;
    cs_layer_config c = {.scale = -1, .offset = 0};
    if (add_node(im, CS_RESCALING, &c, &x, 1) < 0) return -1;
    inherit_layout(im, x);
    return 0;
}

/* The ops, each by the function that imports it. */
static int op_relu(importer *im) { return import_activation(im, CS_ACTF_RELU, 0, 0); }
static int op_sigmoid(importer *im) { return import_activation(im, CS_ACTF_SIGMOID, 0, 0); }
static int op_tanh(importer *im) { return import_activation(im, CS_ACTF_TANH, 0, 0); }
static int op_elu(importer *im) { return import_activation(im, CS_ACTF_ELU, cs_onnx_attr_float(im->node, "alpha", 1), 0); }
static int op_hard_sigmoid(importer *im)
{
    return import_activation(im, CS_ACTF_HARD_SIGMOID, cs_onnx_attr_float(im->node, "alpha", 0.2f),
                             cs_onnx_attr_float(im->node, "beta", 0.5f));
}
static int op_hard_swish(importer *im) { return import_activation(im, CS_ACTF_HARD_SWISH, 0, 0); }
static int op_softplus(importer *im) { return import_activation(im, CS_ACTF_SOFTPLUS, 0, 0); }
static int op_maxpool(importer *im) { return import_pool(im, CS_MAXPOOL); }
static int op_avgpool(importer *im) { return import_pool(im, CS_AVGPOOL); }
static int op_global_avgpool(importer *im) { return import_global_pool(im, CS_GLOBAL_AVGPOOL); }
static int op_global_maxpool(importer *im) { return import_global_pool(im, CS_GLOBAL_MAXPOOL); }
static int op_gemm(importer *im) { return import_dense(im, 1); }
static int op_matmul(importer *im) { return import_dense(im, 0); }
static int op_add(importer *im) { return import_binary(im, CS_ADD); }
static int op_sub(importer *im) { return import_binary(im, CS_SUBTRACT); }
static int op_mul(importer *im) { return import_binary(im, CS_MULTIPLY); }
static int op_div(importer *im) { return import_binary(im, CS_KIND_COUNT); } /* constants only */

static const struct {
    const char *op;
    int (*import)(importer *im);
} OPS[] = {
    {"Conv", import_conv},
    {"BatchNormalization", import_batchnorm},
    {"Relu", op_relu},
    {"LeakyRelu", import_leaky},
    {"Clip", import_clip},
    {"Sigmoid", op_sigmoid},
    {"Tanh", op_tanh},
    {"Elu", op_elu},
    {"HardSigmoid", op_hard_sigmoid},
    {"HardSwish", op_hard_swish},
    {"Softplus", op_softplus},
    {"Gelu", import_gelu},
    {"MaxPool", op_maxpool},
    {"AveragePool", op_avgpool},
    {"GlobalAveragePool", op_global_avgpool},
    {"GlobalMaxPool", op_global_maxpool},
    {"ReduceMean", import_reduce_mean},
    {"Flatten", import_flatten},
    {"Reshape", import_reshape},
    {"Gemm", op_gemm},
    {"MatMul", op_matmul},
    {"Add", op_add},
    {"Sub", op_sub},
    {"Mul", op_mul},
    {"Div", op_div},
    {"Concat", import_concat},
    {"Pad", import_pad},
    {"Softmax", import_softmax},
    {"Sum", import_sum},
    {"Neg", import_neg},
    {"Dropout", import_dropout},
    {"Identity", import_alias},
};

int cs_onnx_op_supported(const char *op)
{
    for (size_t k = 0; k < sizeof OPS / sizeof OPS[0]; k++)
        if (!strcmp(op, OPS[k].op)) return 1;
    return 0;
}

static int import_node(importer *im)
{
    const char *op = im->node->op_type;
    if (im->node->n_outputs < 1 || !im->node->outputs[0][0]) return fail(im, "has no output");
    for (int k = 1; k < im->node->n_outputs; k++)
        if (im->node->outputs[k][0] && strcmp(op, "Dropout") && strcmp(op, "BatchNormalization") &&
            strcmp(op, "MaxPool"))
            return fail(im, "a second output is not supported");
    for (int k = 1; k < im->node->n_outputs; k++)
        if (im->node->outputs[k][0] && readers(im->g, im->node->outputs[k]))
            return fail(im, "its output '%s' is used, which is not supported", im->node->outputs[k]);
    for (size_t k = 0; k < sizeof OPS / sizeof OPS[0]; k++)
        if (!strcmp(op, OPS[k].op)) return OPS[k].import(im);
    return fail(im, "the op '%s' is not supported", op);
}

/* ---- the model ---- */

static int model_input(importer *im, const char *arch)
{
    const cs_onnx_graph *g = im->g;
    if (g->n_inputs != 1) return fail(im, "%d graph inputs; one image input is supported", g->n_inputs);
    if (g->n_outputs != 1) return fail(im, "%d graph outputs; one output (the class scores) is supported", g->n_outputs);
    const cs_onnx_value *v = &g->inputs[0];
    if (v->elem_type != CS_ONNX_FLOAT) return fail(im, "input '%s' is %s, not FLOAT", v->name, cs_onnx_type_name(v->elem_type));
    if (v->ndim != 4 || v->dims[0] == 0 || v->dims[0] > 1)
        return fail(im, "input '%s' must be (batch, channels, height, width)", v->name);
    for (int d = 1; d < 4; d++)
        if (v->dims[d] < 1 || v->dims[d] > MAX_DIM)
            return fail(im, "input '%s' needs known channels, height and width (dim %d is %lld)", v->name, d,
                        (long long)v->dims[d]);
    if (v->dims[1] * v->dims[2] * v->dims[3] > INT32_MAX) return fail(im, "input '%s' is too large", v->name);
    im->m = cs_model_new(arch, (cs_shape){(int)v->dims[2], (int)v->dims[3], (int)v->dims[1]});
    if (!im->m) return fail(im, "out of memory");
    return set_value(im, v->name, (value_ref){.node = CS_MODEL_INPUT, .rank = 4});
}

/* The core's shape of one item of a graph input of rank 1 to 4 (the batch first). */
static int io_shape(importer *im, const cs_onnx_value *v, cs_shape *s)
{
    if (v->elem_type != CS_ONNX_FLOAT)
        return fail(im, "input '%s' is %s, not FLOAT", v->name, cs_onnx_type_name(v->elem_type));
    if (v->ndim < 1 || v->ndim > 4)
        return fail(im, "input '%s' has %d dims; 1 to 4 (the batch first) are supported", v->name, v->ndim);
    int64_t d[4] = {1, 1, 1, 1}, size = 1;
    for (int k = 1; k < v->ndim; k++) {
        if (v->dims[k] < 1 || v->dims[k] > MAX_DIM)
            return fail(im, "input '%s' needs known sizes after the batch (dim %d is %lld)", v->name, k,
                        (long long)v->dims[k]);
        d[k] = v->dims[k];
        size *= d[k];
    }
    if (size > INT32_MAX) return fail(im, "input '%s' is too large", v->name);
    /* (N, C, H, W) is (H, W, C); (N, C, L) is (1, L, C); (N, C) is (1, 1, C). */
    *s = v->ndim == 4 ? (cs_shape){(int)d[2], (int)d[3], (int)d[1]}
                      : (cs_shape){1, v->ndim == 3 ? (int)d[2] : 1, (int)d[1]};
    return 0;
}

/* Every graph input of a run is a model input, in the file's order; they share the
 * batch (their first dim). */
static int run_inputs(importer *im, const char *arch)
{
    const cs_onnx_graph *g = im->g;
    if (g->n_inputs > CS_MAX_MODEL_INPUTS)
        return fail(im, "%d graph inputs; at most %d are supported", g->n_inputs, CS_MAX_MODEL_INPUTS);
    im->batch = -1;
    for (int k = 0; k < g->n_inputs; k++) {
        const cs_onnx_value *v = &g->inputs[k];
        cs_shape s;
        if (io_shape(im, v, &s)) return -1;
        int64_t b = v->dims[0] > 0 ? v->dims[0] : -1;
        if (b > 0 && im->batch > 0 && b != im->batch)
            return fail(im, "input '%s' has %lld as its first (batch) dim where '%s' has %lld: the inputs must share "
                        "their batch", v->name, (long long)b, g->inputs[0].name, (long long)im->batch);
        if (b > 0) im->batch = b;
        if (k == 0 && !(im->m = cs_model_new(arch, s))) return fail(im, "out of memory");
        if (k > 0 && cs_model_add_input(im->m, s) != k) return fail(im, "too many inputs");
        if (set_value(im, v->name, (value_ref){.node = CS_MODEL_INPUT_K(k), .rank = v->ndim})) return -1;
    }
    if (g->n_inputs == 0) return fail(im, "the graph has no input");
    return 0;
}

/* A softmax on top when the graph ends in scores, so the model serves probabilities. */
static int top_softmax(importer *im)
{
    cs_model *m = im->m;
    const value_ref *out = find_value(im, im->g->outputs[0].name);
    if (!out) return fail(im, "the output '%s' is not computed", im->g->outputs[0].name);
    if (out->node != m->n_layers - 1) return fail(im, "the output '%s' is not computed by the last node", out->name);
    const cs_layer *top = &m->layers[m->n_layers - 1];
    if (top->out.h != 1 || top->out.w != 1) return fail(im, "the output '%s' is not one vector of scores per image", out->name);
    if (top->kind == CS_SOFTMAX) return 0;
    int in = m->n_layers - 1;
    char why[256];
    cs_layer_config c = {0};
    if (cs_model_add_node(m, "softmax", CS_SOFTMAX, &c, &in, 1, why, sizeof why) < 0) return fail(im, "%s", why);
    return 0;
}

static int io_of(importer *im, const value_ref *v, cs_onnx_io *io)
{
    io->name = malloc(strlen(v->name) + 1);
    if (!io->name) return fail(im, "out of memory");
    strcpy(io->name, v->name);
    io->node = v->node;
    io->layout = (cs_onnx_layout){.rank = v->rank, .item = cs_model_node_shape(im->m, v->node), .flat_h = v->flat_h,
                                  .flat_w = v->flat_w, .flat_c = v->flat_c};
    return 0;
}

/* The graph's inputs and outputs as the model holds them. */
static int run_signature(importer *im, cs_onnx_signature *sig)
{
    const cs_onnx_graph *g = im->g;
    sig->batch = im->batch;
    sig->inputs = calloc((size_t)g->n_inputs, sizeof *sig->inputs);
    sig->outputs = calloc((size_t)(g->n_outputs ? g->n_outputs : 1), sizeof *sig->outputs);
    if (!sig->inputs || !sig->outputs) return fail(im, "out of memory");
    for (int k = 0; k < g->n_inputs; k++) {
        if (io_of(im, find_value(im, g->inputs[k].name), &sig->inputs[k])) return -1;
        sig->n_inputs++;
    }
    for (int k = 0; k < g->n_outputs; k++) {
        const char *name = g->outputs[k].name;
        const value_ref *v = find_value(im, name);
        if (!v && cs_onnx_find_init(g, name)) return fail(im, "the output '%s' is a constant", name);
        if (!v) return fail(im, "the output '%s' is not computed", name);
        if (io_of(im, v, &sig->outputs[k])) return -1;
        sig->n_outputs++;
    }
    return 0;
}

static cs_model *import_graph(const cs_onnx_graph *g, const char *arch, cs_onnx_signature *sig, char *err,
                              size_t errlen)
{
    importer im = {.g = g, .run = sig != NULL, .batch = -1, .err = err, .errlen = errlen};
    err[0] = 0;
    int rc = im.run ? run_inputs(&im, arch) : model_input(&im, arch);
    for (int i = 0; rc == 0 && i < g->n_nodes; i++) {
        im.node = &g->nodes[i];
        rc = import_node(&im);
    }
    im.node = NULL;
    if (rc == 0) rc = im.run ? run_signature(&im, sig) : top_softmax(&im);
    if (rc == 0 && cs_model_finish(im.m) != 0) rc = fail(&im, "out of memory for the parameters");
    for (int k = 0; k < im.n_pend; k++) {
        if (rc == 0) {
            cs_param *p = &im.m->layers[im.pend[k].node].params[im.pend[k].param];
            memcpy(p->data, im.pend[k].data, p->size * sizeof(float));
        }
        free(im.pend[k].data);
    }
    free(im.pend);
    free(im.vals);
    if (rc != 0) {
        cs_model_free(im.m);
        return NULL;
    }
    if (im.run) return im.m;
    /* Classes are numbered until labels come with the model. */
    int k = im.m->layers[im.m->n_layers - 1].out.c;
    char **names = malloc((size_t)k * sizeof *names);
    int ok = names != NULL;
    for (int c = 0; ok && c < k; c++) {
        names[c] = malloc(16);
        if (names[c]) snprintf(names[c], 16, "%d", c);
        else ok = 0, k = c;
    }
    if (!ok || cs_model_set_classes(im.m, k, (const char *const *)names) != 0) {
        snprintf(err, errlen, "ONNX model: out of memory");
        cs_model_free(im.m);
        im.m = NULL;
    }
    for (int c = 0; names && c < k; c++) free(names[c]);
    free(names);
    return im.m;
}

cs_model *cs_onnx_import_buffer(const void *buf, size_t len, const char *arch, char *err, size_t errlen)
{
    cs_onnx_graph *g = cs_onnx_read_buffer(buf, len, err, errlen);
    if (!g) return NULL;
    cs_model *m = import_graph(g, arch, NULL, err, errlen);
    cs_onnx_graph_free(g);
    return m;
}

cs_model *cs_onnx_import(const char *path, const char *arch, char *err, size_t errlen)
{
    cs_onnx_graph *g = cs_onnx_read(path, err, errlen);
    if (!g) return NULL;
    cs_model *m = import_graph(g, arch, NULL, err, errlen);
    cs_onnx_graph_free(g);
    return m;
}

/* ---- running a graph as it is ---- */

/* Ops whose every input is a tensor computed alike (no input is a parameter). */
static int all_inputs_data(const char *op)
{
    static const char *const ops[] = {"Add", "Sub", "Mul", "Div", "Sum", "Mean", "Max", "Min", "Concat", "Pow",
                                      "Equal", "Greater", "Less", "And", "Or", "Xor", "Where"};
    for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++)
        if (!strcmp(op, ops[k])) return 1;
    return 0;
}

/* The graph input `name` is read only as a parameter: by nodes, at an input after
 * the first of an op that has parameters there, and is no graph output. */
static int parameter_only(const cs_onnx_graph *g, const char *name)
{
    int reads = 0;
    for (int k = 0; k < g->n_outputs; k++)
        if (!strcmp(g->outputs[k].name, name)) return 0;
    for (int i = 0; i < g->n_nodes; i++)
        for (int k = 0; k < g->nodes[i].n_inputs; k++) {
            if (strcmp(g->nodes[i].inputs[k], name)) continue;
            if (k == 0 || all_inputs_data(g->nodes[i].op_type)) return 0;
            reads++;
        }
    return reads > 0;
}

void cs_onnx_signature_free(cs_onnx_signature *sig)
{
    if (!sig) return;
    for (int k = 0; k < sig->n_inputs; k++) free(sig->inputs[k].name);
    for (int k = 0; k < sig->n_outputs; k++) free(sig->outputs[k].name);
    free(sig->inputs);
    free(sig->outputs);
    memset(sig, 0, sizeof *sig);
}

cs_model *cs_onnx_import_run(const char *path, const cs_onnx_binding *bind, int n_bind, cs_onnx_signature *sig,
                             char *err, size_t errlen)
{
    memset(sig, 0, sizeof *sig);
    cs_onnx_graph *g = cs_onnx_parse(path, err, errlen);
    if (!g) return NULL;
    char why[512];
    for (int k = 0; k < n_bind; k++) {
        int known = 0;
        for (int j = 0; j < g->n_inputs; j++) known |= !strcmp(g->inputs[j].name, bind[k].name);
        if (!known) {
            char names[256] = "";
            for (int j = 0; j < g->n_inputs; j++)
                snprintf(names + strlen(names), sizeof names - strlen(names), "%s'%s'", j ? ", " : "",
                         g->inputs[j].name);
            snprintf(err, errlen, "the model has no input '%s' (its inputs: %s)", bind[k].name, names);
            cs_onnx_graph_free(g);
            return NULL;
        }
        if (!parameter_only(g, bind[k].name)) continue;
        if (cs_onnx_bind_input(g, bind[k].name, bind[k].value, why, sizeof why) < 0) {
            snprintf(err, errlen, "ONNX model: %s", why);
            cs_onnx_graph_free(g);
            return NULL;
        }
    }
    cs_model *m = NULL;
    if (cs_onnx_fold(g, err, errlen) == 0) {
        const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
        char arch[CS_NAME_MAX];
        snprintf(arch, sizeof arch, "%.*s", (int)strcspn(base, "."), base);
        m = import_graph(g, arch, sig, err, errlen);
    }
    if (!m) cs_onnx_signature_free(sig);
    cs_onnx_graph_free(g);
    return m;
}
