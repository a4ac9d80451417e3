/*
 * keras_model.c - Keras full-model files as convscope models (keras_model.h).
 *
 * Three steps. The architecture's JSON is translated layer by layer, in the order the
 * config lists the layers (Keras writes them in an order they can run in), each Keras
 * layer name mapped to the node computing its output. Each layer with weights records
 * which Keras weights it expects, in Keras' own order (trainable ones first: kernel,
 * bias; gamma, beta, moving_mean, moving_variance), and which node parameter each one
 * fills. The model is then allocated, and the weights are read straight into it:
 * Keras 2 files by position within the layer's group (as Keras' own loader does,
 * weight_names in order), Keras 3 files from vars/0..n of the group Keras names
 * after the layer's class. Every shape is checked against the architecture.
 *
 * The layouts need no conversion: Keras stores conv kernels (kh, kw, in, out),
 * depthwise kernels (kh, kw, in, multiplier) and dense kernels (in, out), which are
 * the core's layouts, and its Flatten is channels-last, which is the core's order.
 */
#include "keras_model.h"

#include <errno.h>
#include <hdf5.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zip.h>

#include "error.h"
#include "keras_h5_priv.h"
#include "layer_ops.h"
#include "layers/kernels.h"

#define MAX_DIM (1 << 24)
#define MAX_WEIGHTS 6
/* Limits on what is read from an archive before anything is parsed. */
#define MAX_CONFIG_BYTES ((size_t)64 << 20)
#define MAX_WEIGHTS_BYTES ((size_t)4 << 30)
#define MAX_PARAMS ((size_t)1 << 30) /* 4 GiB of floats; VGG16 has 138 million */

/* ---- the translation's state ------------------------------------------------------ */

/* One Keras layer: where its weights go. */
typedef struct {
    const char *name; /* the Keras layer name (borrowed from the JSON) */
    const char *cls;  /* its class_name */
    int node;         /* the node holding its weights, or -1 */
    int n_w;          /* weights Keras stores for it, in Keras' order */
    int n_optional;   /* of which the last n_optional may be absent (Normalization's count) */
    int param[MAX_WEIGHTS]; /* the node parameter each weight fills, -1: read past */
    int kernel_2d;    /* a Dense over a feature map, run as a 1x1 Conv2D: its kernel is (in, out) in files */
} klayer;

/* A Keras layer's output: the node computing it, and its rank in Keras (4 for a
 * feature map (batch, h, w, c), 2 for a vector (batch, features)). */
typedef struct {
    const char *name;
    int node, rank;
} kvalue;

typedef struct {
    cs_model *m;
    int major; /* Keras 2 or 3 */
    klayer *layers;
    int n_layers;
    kvalue *vals;
    int n_vals;
    const klayer *at; /* the layer being translated, for messages */
    char *err;
    size_t errlen;
} kbuild;

static int fail(kbuild *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(kbuild *b, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (b->at) cs_set_err(b->err, b->errlen, "Keras layer '%.64s' (%.40s): %s", b->at->name, b->at->cls, msg);
    else cs_set_err(b->err, b->errlen, "Keras model: %s", msg);
    return -1;
}

static kvalue *find_value(kbuild *b, const char *name)
{
    for (int i = b->n_vals - 1; i >= 0; i--)
        if (strcmp(b->vals[i].name, name) == 0) return &b->vals[i];
    return NULL;
}

static int put_value(kbuild *b, const char *name, int node, int rank)
{
    kvalue *grown = realloc(b->vals, (size_t)(b->n_vals + 1) * sizeof *grown);
    if (!grown) return fail(b, "out of memory");
    b->vals = grown;
    b->vals[b->n_vals++] = (kvalue){name, node, rank};
    return 0;
}

/* The current layer's output is node `node` (of Keras rank `rank`). */
static int set_out(kbuild *b, int node, int rank) { return put_value(b, b->at->name, node, rank); }

static cs_shape shape_of(kbuild *b, int node) { return cs_model_node_shape(b->m, node); }

/* A node name not yet taken: `base`, else base~1, base~2, ... cut to fit. */
static void unique_name(const cs_model *m, const char *base, char out[CS_NAME_MAX])
{
    snprintf(out, CS_NAME_MAX, "%.63s", base);
    for (int k = 1; cs_model_find_layer(m, out) >= 0; k++) snprintf(out, CS_NAME_MAX, "%.50s~%d", base, k);
}

/* Appends a node; the builder's message names the node, which the prefix already does. */
static int add_named(kbuild *b, const char *name, cs_layer_kind kind, const cs_layer_config *c, const int *in,
                     int n_in)
{
    char why[300];
    int i = cs_model_add_node(b->m, name, kind, c, in, n_in, why, sizeof why);
    if (i >= 0) return i;
    size_t nl = strlen(name);
    fail(b, "%s", !strncmp(why, name, nl) && !strncmp(why + nl, ": ", 2) ? why + nl + 2 : why);
    return -1;
}

/* The node of the Keras layer itself, under its name. */
static int add(kbuild *b, cs_layer_kind kind, const cs_layer_config *c, const int *in, int n_in)
{
    return add_named(b, b->at->name, kind, c, in, n_in);
}

/* A second node after the layer's own (an activation it could not fuse): "<layer>.<what>". */
static int add_after(kbuild *b, const char *what, cs_layer_kind kind, const cs_layer_config *c, int in)
{
    char base[CS_NAME_MAX * 2], name[CS_NAME_MAX];
    snprintf(base, sizeof base, "%.40s.%.20s", b->at->name, what);
    unique_name(b->m, base, name);
    return add_named(b, name, kind, c, &in, 1);
}

/* The layer's weights: n Keras weights, the i-th into parameter param[i] of node. */
static void expect_weights(kbuild *b, int node, int n, const int *param)
{
    klayer *l = &b->layers[b->n_layers - 1];
    l->node = node;
    l->n_w = n;
    for (int i = 0; i < n; i++) l->param[i] = param[i];
}

/* ---- configuration fields ------------------------------------------------------------ */

static int is_absent(json_t *v) { return !v || json_is_null(v); }

/* A string field that must be absent, null or one of the given values. */
static int want_str(kbuild *b, json_t *cfg, const char *key, const char *ok1, const char *ok2)
{
    json_t *v = json_object_get(cfg, key);
    if (is_absent(v)) return 0;
    const char *s = json_string_value(v);
    if (s && (!strcmp(s, ok1) || (ok2 && !strcmp(s, ok2)))) return 0;
    if (!s) return fail(b, "field '%s' is not a string", key);
    return fail(b, "field '%s' is '%.40s'; only %s%s%s is supported", key, s, ok1, ok2 ? " or " : "", ok2 ? ok2 : "");
}

static int channels_last(kbuild *b, json_t *cfg) { return want_str(b, cfg, "data_format", "channels_last", NULL); }

/* A boolean field; absent or null is `def`. */
static int get_bool(kbuild *b, json_t *cfg, const char *key, int def, int *out)
{
    json_t *v = json_object_get(cfg, key);
    if (is_absent(v)) {
        *out = def;
        return 0;
    }
    if (!json_is_boolean(v)) return fail(b, "field '%s' is not true or false", key);
    *out = json_is_true(v);
    return 0;
}

/* A field that changes what the layer computes in a way convscope does not: it must
 * be absent, null, false, 0 or an empty list/object. */
static int want_unset(kbuild *b, json_t *cfg, const char *key)
{
    json_t *v = json_object_get(cfg, key);
    if (is_absent(v) || json_is_false(v) || (json_is_number(v) && json_number_value(v) == 0) ||
        (json_is_array(v) && json_array_size(v) == 0) || (json_is_object(v) && json_object_size(v) == 0))
        return 0;
    return fail(b, "field '%s' is set; it is not supported", key);
}

/* A number field; absent or null is def. */
static int get_num(kbuild *b, json_t *cfg, const char *key, double def, double *out)
{
    json_t *v = json_object_get(cfg, key);
    if (is_absent(v)) {
        *out = def;
        return 0;
    }
    if (!json_is_number(v)) return fail(b, "field '%s' is not a number", key);
    *out = json_number_value(v);
    if (!isfinite(*out) || fabs(*out) > 3e38) return fail(b, "field '%s' is out of range", key);
    return 0;
}

/* An 'axis' that must be the channels: -1, or the last axis counted from the batch. */
static int channel_axis(kbuild *b, json_t *cfg, int rank)
{
    json_t *v = json_object_get(cfg, "axis");
    if (json_is_array(v) && json_array_size(v) == 1) v = json_array_get(v, 0);
    if (is_absent(v) || (json_is_integer(v) && (json_integer_value(v) == -1 || json_integer_value(v) == rank - 1)))
        return 0;
    return fail(b, "field 'axis' is not -1 (the channels); only the channel axis is supported");
}

/* The row's reading of a configuration (its own checks and messages). */
static int row_config(kbuild *b, cs_layer_kind kind, json_t *o, cs_layer_config *c)
{
    char why[300];
    const cs_layer_ops *ops = cs_layer_ops_of(kind);
    if (ops->config_from_json && ops->config_from_json(o, c, why, sizeof why) != 0) return fail(b, "%s", why);
    return 0;
}

/* ---- initialisers and regularisers (for training from the file's architecture) --- */

static const char *class_of(json_t *v)
{
    if (json_is_string(v)) return json_string_value(v);
    return json_string_value(json_object_get(v, "class_name"));
}

/* Keras' HeNormal (or VarianceScaling with scale 2 over the fan-in) is he_normal;
 * anything else starts from glorot_uniform, Keras' default. */
static int is_he_normal(json_t *init)
{
    const char *c = class_of(init);
    if (!c) return 0;
    if (!strcmp(c, "HeNormal") || !strcmp(c, "he_normal")) return 1;
    json_t *cfg = json_object_get(init, "config");
    const char *mode = json_string_value(json_object_get(cfg, "mode"));
    return !strcmp(c, "VarianceScaling") && json_number_value(json_object_get(cfg, "scale")) == 2.0 && mode &&
           !strcmp(mode, "fan_in");
}

/* L1, L2 and L1L2 regularisers on the kernel, as training adds them. */
static void regulariser(json_t *reg, float *l1, float *l2)
{
    const char *c = class_of(reg);
    json_t *cfg = json_object_get(reg, "config");
    *l1 = *l2 = 0;
    if (!c) return;
    int both = !strcmp(c, "L1L2") || !strcmp(c, "l1_l2");
    if (both || !strcmp(c, "L1")) *l1 = (float)json_number_value(json_object_get(cfg, "l1"));
    if (both || !strcmp(c, "L2")) *l2 = (float)json_number_value(json_object_get(cfg, "l2"));
    if (!isfinite(*l1) || *l1 < 0) *l1 = 0;
    if (!isfinite(*l2) || *l2 < 0) *l2 = 0;
}

/* ---- activations ------------------------------------------------------------------ */

/* Reads Keras' activation name: what a conv or dense layer fuses (linear, relu,
 * softmax), or, in *post, an elementwise function for a node after it. */
static int activation_of(kbuild *b, json_t *cfg, cs_activation *fused, const char **post)
{
    json_t *v = json_object_get(cfg, "activation");
    *fused = CS_ACT_LINEAR;
    *post = NULL;
    if (is_absent(v)) return 0;
    const char *s = class_of(v);
    if (!s) return fail(b, "field 'activation' is not an activation's name");
    if (!strcmp(s, "linear")) return 0;
    if (!strcmp(s, "relu")) *fused = CS_ACT_RELU;
    else if (!strcmp(s, "softmax")) *fused = CS_ACT_SOFTMAX;
    else *post = s;
    return 0;
}

/* The Activation node for Keras' function `name` reading node `in`; under the layer's
 * own name when own, else after it. Returns the node, or -1. */
static int activation_node(kbuild *b, const char *name, int in, int own)
{
    cs_layer_config c = {0};
    cs_layer_kind kind = CS_ACTIVATION;
    if (!strcmp(name, "relu")) kind = CS_RELU;
    else if (!strcmp(name, "softmax")) kind = CS_SOFTMAX;
    else {
        json_t *o = json_pack("{ss}", "activation", name);
        if (!o) return fail(b, "out of memory");
        char why[300];
        int rc = cs_activation_ops.config_from_json(o, &c, why, sizeof why);
        json_decref(o);
        if (rc) return fail(b, "field 'activation': %s", why);
        /* Keras 2's hard_sigmoid is 0.2 x + 0.5, Keras 3's relu6(x + 3) / 6. */
        if (c.actf == CS_ACTF_HARD_SIGMOID && b->major < 3) c.act_a = 0.2f, c.act_b = 0.5f;
    }
    return own ? add(b, kind, &c, &in, 1) : add_after(b, name, kind, &c, in);
}

/* ---- the layer classes ------------------------------------------------------------ */

typedef int (*translate_fn)(kbuild *b, json_t *cfg, const kvalue *const *in, int n_in);

static int one_input(kbuild *b, int n_in)
{
    return n_in == 1 ? 0 : fail(b, "has %d inputs; this layer takes one", n_in);
}

/* Conv2D, Dense, DepthwiseConv2D and SeparableConv2D share these: the activation
 * (fused or a node after), use_bias, the initialiser and regulariser, and fields that
 * would change the result. Fills the row's JSON o. */
static int kernel_fields(kbuild *b, json_t *cfg, json_t *o, int *use_bias, const char **post)
{
    cs_activation fused;
    static const char *const names[] = {[CS_ACT_LINEAR] = "linear", [CS_ACT_RELU] = "relu", [CS_ACT_SOFTMAX] = "softmax"};
    float l1, l2;
    if (activation_of(b, cfg, &fused, post) || get_bool(b, cfg, "use_bias", 1, use_bias) ||
        want_unset(b, cfg, "lora_rank") || want_unset(b, cfg, "quantization_config"))
        return -1;
    const char *key = json_object_get(cfg, "depthwise_initializer") && !json_object_get(cfg, "kernel_initializer")
                          ? "depthwise_initializer"
                          : "kernel_initializer";
    const char *reg = json_object_get(cfg, "depthwise_regularizer") && !json_object_get(cfg, "kernel_regularizer")
                          ? "depthwise_regularizer"
                          : "kernel_regularizer";
    regulariser(json_object_get(cfg, reg), &l1, &l2);
    if (json_object_set_new(o, "activation", json_string(names[fused])) ||
        json_object_set_new(o, "kernel_initializer",
                            json_string(is_he_normal(json_object_get(cfg, key)) ? "he_normal" : "glorot_uniform")) ||
        cs_json_set_float(o, "l1", l1) || cs_json_set_float(o, "l2", l2))
        return fail(b, "out of memory");
    return 0;
}

/* The window fields Keras and the conv rows name alike. */
static int copy_fields(kbuild *b, json_t *cfg, json_t *o, const char *const *keys, int n)
{
    for (int k = 0; k < n; k++) {
        json_t *v = json_object_get(cfg, keys[k]);
        if (!is_absent(v) && json_object_set(o, keys[k], v)) return fail(b, "out of memory");
    }
    return 0;
}

/* The node after a kernel layer's own for an activation it does not fuse. */
static int finish_kernel(kbuild *b, int node, const char *post, int rank)
{
    if (post && (node = activation_node(b, post, node, 0)) < 0) return -1;
    return set_out(b, node, rank);
}

static int spatial(kbuild *b, const kvalue *x)
{
    return x->rank == 4 ? 0 : fail(b, "reads a vector where a feature map (batch, h, w, c) is expected");
}

static int conv_like(kbuild *b, json_t *cfg, const kvalue *const *in, int n_in, cs_layer_kind kind)
{
    static const char *const window[] = {"filters", "kernel_size", "strides", "padding", "dilation_rate",
                                         "groups", "depth_multiplier"};
    int use_bias;
    const char *post;
    if (one_input(b, n_in) || spatial(b, in[0]) || channels_last(b, cfg)) return -1;
    json_t *o = json_object();
    if (!o) return fail(b, "out of memory");
    cs_layer_config c = {0};
    int rc = copy_fields(b, cfg, o, window, kind == CS_CONV2D ? 6 : 7);
    if (!rc && kind == CS_DEPTHWISE_CONV2D) json_object_del(o, "filters");
    if (!rc && kind != CS_CONV2D && !json_object_get(o, "depth_multiplier"))
        rc = json_object_set_new(o, "depth_multiplier", json_integer(1)) ? fail(b, "out of memory") : 0;
    if (!rc) rc = kernel_fields(b, cfg, o, &use_bias, &post);
    if (!rc) rc = row_config(b, kind, o, &c);
    json_decref(o);
    if (rc) return -1;
    int node = add(b, kind, &c, &in[0]->node, 1);
    if (node < 0) return -1;
    if (kind == CS_SEPARABLE_CONV2D) {
        int p[3] = {0, 1, 2};
        expect_weights(b, node, use_bias ? 3 : 2, p);
    } else {
        int p[2] = {0, 1};
        expect_weights(b, node, use_bias ? 2 : 1, p);
    }
    return finish_kernel(b, node, post, 4);
}

static int t_conv2d(kbuild *b, json_t *cfg, const kvalue *const *in, int n_in)
{
    return conv_like(b, cfg, in, n_in, CS_CONV2D);
}

static int t_depthwise(kbuild *b, json_t *cfg, const kvalue *const *in, int n_in)
{
    return conv_like(b, cfg, in, n_in, CS_DEPTHWISE_CONV2D);
}

static int t_separable(kbuild *b, json_t *cfg, const kvalue *const *in, int n_in)
{
    return conv_like(b, cfg, in, n_in, CS_SEPARABLE_CONV2D);
}

/* Dense over a vector; over a feature map Keras applies it to the last axis at every
 * position, which is a 1x1 Conv2D with the same kernel. */
static int t_dense(kbuild *b, json_t *cfg, const kvalue *const *in, int n_in)
{
    int use_bias;
    const char *post;
    if (one_input(b, n_in)) return -1;
    json_t *units = json_object_get(cfg, "units");
    cs_shape s = shape_of(b, in[0]->node);
    int flat = in[0]->rank == 2;
    json_t *o = flat ? json_pack("{sO}", "units", units ? units : json_null())
                     : json_pack("{sOs[ii]s[ii]ss}", "filters", units ? units : json_null(), "kernel_size", 1, 1,
                                 "strides", 1, 1, "padding", "valid");
    if (!o) return fail(b, "out of memory");
    cs_layer_config c = {0};
    int rc = kernel_fields(b, cfg, o, &use_bias, &post);
    if (!rc) rc = row_config(b, flat ? CS_DENSE : CS_CONV2D, o, &c);
    json_decref(o);
    if (rc) return -1;
    if (flat && (s.h != 1 || s.w != 1)) return fail(b, "reads a %dx%dx%d feature map as a vector", s.h, s.w, s.c);
    int node = add(b, flat ? CS_DENSE : CS_CONV2D, &c, &in[0]->node, 1);
    if (node < 0) return -1;
    int p[2] = {0, 1};
    expect_weights(b, node, use_bias ? 2 : 1, p);
    b->layers[b->n_layers - 1].kernel_2d = !flat;
    return finish_kernel(b, node, post, in[0]->rank);
}

static int t_batchnorm(kbuild *b, json_t *cfg, const kvalue *const *in, int n_in)
{
    int center = 1, scale = 1;
    double momentum = 0, epsilon = 0;
    if (one_input(b, n_in) || channel_axis(b, cfg, in[0]->rank) || get_bool(b, cfg, "center", 1, &center) ||
        get_bool(b, cfg, "scale", 1, &scale) || get_num(b, cfg, "momentum", 0.99, &momentum) ||
        get_num(b, cfg, "epsilon", 1e-3, &epsilon) || want_unset(b, cfg, "renorm") ||
        want_unset(b, cfg, "virtual_batch_size") || want_unset(b, cfg, "adjustment"))
        return -1;
    if (!(epsilon > 0)) return fail(b, "field 'epsilon' is %g; it must be positive", epsilon);
    cs_layer_config c = {.momentum = (float)momentum, .epsilon = (float)epsilon};
    int node = add(b, CS_BATCHNORM, &c, &in[0]->node, 1);
    if (node < 0) return -1;
    /* Missing gamma stays 1 and missing beta 0, as the model starts them. */
    int p[4], n = 0;
    if (scale) p[n++] = 0;
    if (center) p[n++] = 1;
    p[n++] = 2;
    p[n++] = 3;
    expect_weights(b, node, n, p);
    return set_out(b, node, in[0]->rank);
}

static int t_activation(kbuild *b, json_t *cfg, const kvalue *const *in, int n_in)
{
    cs_activation fused;
    const char *post;
    if (one_input(b, n_in) || activation_of(b, cfg, &fused, &post)) return -1;
    const char *name = post ? post : fused == CS_ACT_RELU ? "relu" : fused == CS_ACT_SOFTMAX ? "softmax" : NULL;
    if (!name) return set_out(b, in[0]->node, in[0]->rank); /* linear: the identity */
    int node = activation_node(b, name, in[0]->node, 1);
    return node < 0 ? -1 : set_out(b, node, in[0]->rank);
}

/* ReLU(max_value, negative_slope, threshold): ReLU, ReLU6 (a clip), or a leaky ReLU. */
static int t_relu(kbuild *b, json_t *cfg, const kvalue *const *in, int n_in)
{
    double max_value = INFINITY, slope = 0, threshold = 0;
    if (one_input(b, n_in) || get_num(b, cfg, "max_value", INFINITY, &max_value) ||
        get_num(b, cfg, "negative_slope", 0, &slope) || get_num(b, cfg, "threshold", 0, &threshold))
        return -1;
    if (threshold != 0) return fail(b, "field 'threshold' is %g; only 0 is supported", threshold);
    if (isfinite(max_value) && slope != 0)
        return fail(b, "field 'negative_slope' is %g with a max_value; only one of the two is supported", slope);
    if (isfinite(max_value) && !(max_value > 0)) return fail(b, "field 'max_value' is %g; it must be positive", max_value);
    cs_layer_config c = {0};
    cs_layer_kind kind = CS_RELU;
    if (isfinite(max_value)) kind = CS_ACTIVATION, c.actf = CS_ACTF_CLIP, c.act_a = 0, c.act_b = (float)max_value;
    else if (slope != 0) kind = CS_LEAKY_RELU, c.alpha = (float)slope;
    int node = add(b, kind, &c, &in[0]->node, 1);
    return node < 0 ? -1 : set_out(b, node, in[0]->rank);
}

static int t_leaky(kbuild *b, json_t *cfg, const kvalue *const *in, int n_in)
{
    double alpha = 0;
    const char *key = json_object_get(cfg, "negative_slope") ? "negative_slope" : "alpha";
    if (one_input(b, n_in) || get_num(b, cfg, key, 0.3, &alpha)) return -1;
    cs_layer_config c = {.alpha = (float)alpha};
    cs_layer_kind kind = alpha == 0 ? CS_RELU : CS_LEAKY_RELU;
    int node = add(b, kind, &c, &in[0]->node, 1);
    return node < 0 ? -1 : set_out(b, node, in[0]->rank);
}

static int t_elu(kbuild *b, json_t *cfg, const kvalue *const *in, int n_in)
{
    double alpha = 1;
    if (one_input(b, n_in) || get_num(b, cfg, "alpha", 1.0, &alpha)) return -1;
    cs_layer_config c = {.actf = alpha == 0 ? CS_ACTF_RELU : CS_ACTF_ELU, .act_a = (float)alpha};
    int node = add(b, CS_ACTIVATION, &c, &in[0]->node, 1);
    return node < 0 ? -1 : set_out(b, node, in[0]->rank);
}

static int t_softmax(kbuild *b, json_t *cfg, const kvalue *const *in, int n_in)
{
    if (one_input(b, n_in) || channel_axis(b, cfg, in[0]->rank)) return -1;
    cs_layer_config c = {0};
    int node = add(b, CS_SOFTMAX, &c, &in[0]->node, 1);
    return node < 0 ? -1 : set_out(b, node, in[0]->rank);
}

static int pool(kbuild *b, json_t *cfg, const kvalue *const *in, int n_in, cs_layer_kind kind)
{
    static const char *const keys[] = {"pool_size", "strides", "padding"};
    if (one_input(b, n_in) || spatial(b, in[0]) || channels_last(b, cfg)) return -1;
    json_t *o = json_object();
    cs_layer_config c = {0};
    int rc = o ? copy_fields(b, cfg, o, keys, 3) : fail(b, "out of memory");
    if (!rc) rc = row_config(b, kind, o, &c);
    json_decref(o);
    int node = rc ? -1 : add(b, kind, &c, &in[0]->node, 1);
    return node < 0 ? -1 : set_out(b, node, 4);
}

static int t_maxpool(kbuild *b, json_t *cfg, const kvalue *const *in, int n_in)
{
    return pool(b, cfg, in, n_in, CS_MAXPOOL);
}

static int t_avgpool(kbuild *b, json_t *cfg, const kvalue *const *in, int n_in)
{
    return pool(b, cfg, in, n_in, CS_AVGPOOL);
}

static int global_pool(kbuild *b, json_t *cfg, const kvalue *const *in, int n_in, cs_layer_kind kind)
{
    int keepdims = 0;
    if (one_input(b, n_in) || spatial(b, in[0]) || channels_last(b, cfg) ||
        get_bool(b, cfg, "keepdims", 0, &keepdims))
        return -1;
    cs_layer_config c = {0};
    int node = add(b, kind, &c, &in[0]->node, 1);
    return node < 0 ? -1 : set_out(b, node, keepdims ? 4 : 2);
}

static int t_global_avgpool(kbuild *b, json_t *cfg, const kvalue *const *in, int n_in)
{
    return global_pool(b, cfg, in, n_in, CS_GLOBAL_AVGPOOL);
}

static int t_global_maxpool(kbuild *b, json_t *cfg, const kvalue *const *in, int n_in)
{
    return global_pool(b, cfg, in, n_in, CS_GLOBAL_MAXPOOL);
}

static int t_flatten(kbuild *b, json_t *cfg, const kvalue *const *in, int n_in)
{
    if (one_input(b, n_in) || channels_last(b, cfg)) return -1;
    cs_layer_config c = {0};
    int node = add(b, CS_FLATTEN, &c, &in[0]->node, 1);
    return node < 0 ? -1 : set_out(b, node, 2);
}

/* Reshape to a vector (a Flatten), or a vector to (1, 1, channels), which is the shape
 * it already has here (a Flatten node keeps it, under the layer's name). */
static int t_reshape(kbuild *b, json_t *cfg, const kvalue *const *in, int n_in)
{
    if (one_input(b, n_in)) return -1;
    json_t *t = json_object_get(cfg, "target_shape");
    cs_shape s = shape_of(b, in[0]->node);
    long long want[3] = {0}, size = (long long)cs_shape_size(s), prod = 1;
    size_t n = json_array_size(t);
    if (!json_is_array(t) || n < 1 || n > 3) return fail(b, "field 'target_shape' is not a list of 1 to 3 sizes");
    int unknown = -1;
    for (size_t k = 0; k < n; k++) {
        json_t *v = json_array_get(t, k);
        if (!json_is_integer(v) || json_integer_value(v) < -1 || json_integer_value(v) == 0 ||
            json_integer_value(v) > MAX_DIM)
            return fail(b, "field 'target_shape' has an entry that is not a size");
        want[k] = json_integer_value(v);
        if (want[k] == -1) {
            if (unknown >= 0) return fail(b, "field 'target_shape' has two -1 entries");
            unknown = (int)k;
        } else if ((prod *= want[k]) > size) {
            return fail(b, "field 'target_shape' does not hold the input's %lld values", size);
        }
    }
    if (unknown >= 0 && prod > 0 && size % prod == 0) want[unknown] = size / prod, prod = size;
    if (prod != size) return fail(b, "field 'target_shape' does not hold the input's %lld values", size);
    cs_layer_config c = {0};
    int node;
    if (n == 1) node = add(b, CS_FLATTEN, &c, &in[0]->node, 1);
    else if (n == 3 && want[0] == 1 && want[1] == 1 && s.h == 1 && s.w == 1) node = add(b, CS_FLATTEN, &c, &in[0]->node, 1);
    else if (n == 3 && want[0] == s.h && want[1] == s.w && want[2] == s.c && in[0]->rank == 4) node = in[0]->node;
    else return fail(b, "field 'target_shape': only a reshape to a vector, or of a vector to (1, 1, channels), is supported");
    return node < 0 ? -1 : set_out(b, node, (int)n + 1);
}

static int t_dropout(kbuild *b, json_t *cfg, const kvalue *const *in, int n_in)
{
    double rate = 0;
    if (one_input(b, n_in) || get_num(b, cfg, "rate", 0, &rate) || want_unset(b, cfg, "noise_shape")) return -1;
    if (rate < 0 || rate >= 1) return fail(b, "field 'rate' is %g; it must be 0 to below 1", rate);
    cs_layer_config c = {.rate = (float)rate};
    int node = add(b, CS_DROPOUT, &c, &in[0]->node, 1);
    return node < 0 ? -1 : set_out(b, node, in[0]->rank);
}

static int merge(kbuild *b, const kvalue *const *in, int n_in, cs_layer_kind kind, int exactly_two)
{
    if (n_in < 2 || (exactly_two && n_in != 2) || n_in > CS_MAX_INPUTS)
        return fail(b, "has %d inputs; it takes %s", n_in, exactly_two ? "two" : "2 to 16");
    int nodes[CS_MAX_INPUTS], rank = 2;
    for (int k = 0; k < n_in; k++) {
        nodes[k] = in[k]->node;
        if (in[k]->rank == 4) rank = 4;
    }
    cs_layer_config c = {0};
    int node = add(b, kind, &c, nodes, n_in);
    return node < 0 ? -1 : set_out(b, node, rank);
}

static int t_add(kbuild *b, json_t *cfg, const kvalue *const *in, int n_in)
{
    (void)cfg;
    return merge(b, in, n_in, CS_ADD, 0);
}

static int t_subtract(kbuild *b, json_t *cfg, const kvalue *const *in, int n_in)
{
    (void)cfg;
    return merge(b, in, n_in, CS_SUBTRACT, 1);
}

static int t_multiply(kbuild *b, json_t *cfg, const kvalue *const *in, int n_in)
{
    (void)cfg;
    return merge(b, in, n_in, CS_MULTIPLY, 0);
}

static int t_concatenate(kbuild *b, json_t *cfg, const kvalue *const *in, int n_in)
{
    for (int k = 1; k < n_in; k++)
        if (in[k]->rank != in[0]->rank) return fail(b, "joins a vector and a feature map");
    if (n_in >= 1 && channel_axis(b, cfg, in[0]->rank)) return -1;
    if (n_in < 1 || n_in > CS_MAX_INPUTS) return fail(b, "has %d inputs; it takes 1 to 16", n_in);
    int nodes[CS_MAX_INPUTS];
    for (int k = 0; k < n_in; k++) nodes[k] = in[k]->node;
    cs_layer_config c = {0};
    int node = add(b, CS_CONCATENATE, &c, nodes, n_in);
    return node < 0 ? -1 : set_out(b, node, in[0]->rank);
}

static int t_zero_padding(kbuild *b, json_t *cfg, const kvalue *const *in, int n_in)
{
    if (one_input(b, n_in) || spatial(b, in[0]) || channels_last(b, cfg)) return -1;
    json_t *pad = json_object_get(cfg, "padding");
    json_t *o = pad ? json_pack("{sO}", "padding", pad) : json_pack("{si}", "padding", 1);
    cs_layer_config c = {0};
    int rc = o ? row_config(b, CS_ZERO_PADDING2D, o, &c) : fail(b, "out of memory");
    json_decref(o);
    int node = rc ? -1 : add(b, CS_ZERO_PADDING2D, &c, &in[0]->node, 1);
    return node < 0 ? -1 : set_out(b, node, 4);
}

static int t_rescaling(kbuild *b, json_t *cfg, const kvalue *const *in, int n_in)
{
    if (one_input(b, n_in)) return -1;
    json_t *o = json_object();
    static const char *const keys[] = {"scale", "offset"};
    cs_layer_config c = {0};
    int rc = o ? copy_fields(b, cfg, o, keys, 2) : fail(b, "out of memory");
    if (!rc) rc = row_config(b, CS_RESCALING, o, &c);
    json_decref(o);
    int node = rc ? -1 : add(b, CS_RESCALING, &c, &in[0]->node, 1);
    return node < 0 ? -1 : set_out(b, node, in[0]->rank);
}

/* Normalization: statistics from the config (mean, variance given) or the weights. */
static int t_normalization(kbuild *b, json_t *cfg, const kvalue *const *in, int n_in)
{
    int invert;
    if (one_input(b, n_in) || channel_axis(b, cfg, in[0]->rank) || get_bool(b, cfg, "invert", 0, &invert)) return -1;
    if (invert) return fail(b, "field 'invert' is true; only normalising is supported");
    cs_layer_config c = {0};
    int node = add(b, CS_NORMALIZATION, &c, &in[0]->node, 1);
    if (node < 0) return -1;
    json_t *mean = json_object_get(cfg, "mean"), *var = json_object_get(cfg, "variance");
    if (is_absent(mean) != is_absent(var)) return fail(b, "field 'mean' and 'variance' must be given together");
    int p[3] = {0, 1, -1}; /* mean, variance, and Keras 2's sample count */
    expect_weights(b, node, is_absent(mean) ? 3 : 0, p);
    b->layers[b->n_layers - 1].n_optional = is_absent(mean) ? 1 : 0;
    return set_out(b, node, in[0]->rank);
}

static const struct {
    const char *cls;
    translate_fn fn;
} CLASSES[] = {
    {"Conv2D", t_conv2d},
    {"Convolution2D", t_conv2d},
    {"DepthwiseConv2D", t_depthwise},
    {"SeparableConv2D", t_separable},
    {"SeparableConvolution2D", t_separable},
    {"Dense", t_dense},
    {"BatchNormalization", t_batchnorm},
    {"Activation", t_activation},
    {"ReLU", t_relu},
    {"LeakyReLU", t_leaky},
    {"ELU", t_elu},
    {"Softmax", t_softmax},
    {"MaxPooling2D", t_maxpool},
    {"MaxPool2D", t_maxpool},
    {"AveragePooling2D", t_avgpool},
    {"AvgPool2D", t_avgpool},
    {"GlobalAveragePooling2D", t_global_avgpool},
    {"GlobalAvgPool2D", t_global_avgpool},
    {"GlobalMaxPooling2D", t_global_maxpool},
    {"GlobalMaxPool2D", t_global_maxpool},
    {"Flatten", t_flatten},
    {"Reshape", t_reshape},
    {"Dropout", t_dropout},
    {"Add", t_add},
    {"Subtract", t_subtract},
    {"Multiply", t_multiply},
    {"Concatenate", t_concatenate},
    {"ZeroPadding2D", t_zero_padding},
    {"Rescaling", t_rescaling},
    {"Normalization", t_normalization},
};
#define N_CLASSES (sizeof CLASSES / sizeof CLASSES[0])

/* ---- the model's structure ------------------------------------------------------------ */

/* A Keras shape with its batch dimension first: (batch, h, w, c) or (batch, n). */
static int input_shape(kbuild *b, json_t *v, int with_batch, cs_shape *s, int *rank)
{
    size_t n = json_array_size(v), first = with_batch ? 1 : 0;
    if (!json_is_array(v) || (n - first != 3 && n - first != 1) || n < first)
        return fail(b, "the input shape is not (height, width, channels) or (features)");
    long long d[3];
    for (size_t k = first; k < n; k++) {
        json_t *x = json_array_get(v, k);
        if (!json_is_integer(x)) return fail(b, "the input shape has an unknown size; convscope needs a fixed input size");
        d[k - first] = json_integer_value(x);
        if (d[k - first] < 1 || d[k - first] > MAX_DIM) return fail(b, "the input shape has a size out of range");
    }
    if (n - first == 3 && (double)d[0] * d[1] * d[2] > INT32_MAX) return fail(b, "the input is too large");
    *rank = (int)(n - first) + 1;
    *s = n - first == 3 ? (cs_shape){(int)d[0], (int)d[1], (int)d[2]} : (cs_shape){1, 1, (int)d[0]};
    return 0;
}

/* The shape an InputLayer (or a Sequential's first layer) declares. 1 when none. */
static int declared_shape(kbuild *b, json_t *cfg, cs_shape *s, int *rank)
{
    json_t *v;
    if ((v = json_object_get(cfg, "batch_input_shape")) && !json_is_null(v)) return input_shape(b, v, 1, s, rank);
    if ((v = json_object_get(cfg, "batch_shape")) && !json_is_null(v)) return input_shape(b, v, 1, s, rank);
    if ((v = json_object_get(cfg, "input_shape")) && !json_is_null(v)) return input_shape(b, v, 0, s, rank);
    return 1;
}

static int start_model(kbuild *b, const char *arch, cs_shape s)
{
    b->m = cs_model_new(arch, s);
    return b->m ? 0 : fail(b, "out of memory");
}

/* [name, node_index, tensor_index, ...] of a Keras 2 inbound node, or the
 * keras_history of a Keras 3 tensor: the layer whose output it is. */
static const char *history_layer(kbuild *b, json_t *h)
{
    json_t *name = json_array_get(h, 0), *node = json_array_get(h, 1), *tensor = json_array_get(h, 2);
    if (!json_is_array(h) || !json_is_string(name) || !json_is_integer(node) || !json_is_integer(tensor)) {
        fail(b, "field 'inbound_nodes' has an entry that is not [layer, node, tensor]");
        return NULL;
    }
    if (json_integer_value(tensor) != 0) {
        fail(b, "reads output %lld of layer '%.64s'; layers with several outputs are not supported",
             (long long)json_integer_value(tensor), json_string_value(name));
        return NULL;
    }
    if (json_integer_value(node) != 0) {
        fail(b, "reads call %lld of layer '%.64s'; shared layers (called more than once) are not supported",
             (long long)json_integer_value(node), json_string_value(name));
        return NULL;
    }
    return json_string_value(name);
}

/* Keras 3: every __keras_tensor__ in a call's args, in order. */
static int collect_tensors(kbuild *b, json_t *v, const char **names, int *n, int depth)
{
    if (depth > 8) return fail(b, "field 'inbound_nodes' is nested too deeply");
    if (json_is_array(v)) {
        for (size_t k = 0; k < json_array_size(v); k++)
            if (collect_tensors(b, json_array_get(v, k), names, n, depth + 1)) return -1;
        return 0;
    }
    const char *cls = json_string_value(json_object_get(v, "class_name"));
    if (!cls || strcmp(cls, "__keras_tensor__") != 0) return 0;
    const char *name = history_layer(b, json_object_get(json_object_get(v, "config"), "keras_history"));
    if (!name) return -1;
    if (*n >= CS_MAX_INPUTS) return fail(b, "has more than %d inputs", CS_MAX_INPUTS);
    names[(*n)++] = name;
    return 0;
}

/* Keyword arguments of a call that change nothing when serving. */
static int harmless_kwargs(kbuild *b, json_t *kw)
{
    const char *key;
    json_t *v;
    json_object_foreach(kw, key, v) {
        if (!strcmp(key, "training") || !strcmp(key, "mask")) continue;
        return fail(b, "is called with the argument '%.40s'; it is not supported", key);
    }
    return 0;
}

/* The names of the layers a Functional model's layer reads, from inbound_nodes. */
static int inbound(kbuild *b, json_t *layer, const char **names, int *n)
{
    json_t *nodes = json_object_get(layer, "inbound_nodes");
    *n = 0;
    if (!json_is_array(nodes)) return fail(b, "field 'inbound_nodes' is not a list");
    if (json_array_size(nodes) == 0) return 0;
    if (json_array_size(nodes) > 1)
        return fail(b, "is called %zu times; shared layers are not supported", json_array_size(nodes));
    json_t *call = json_array_get(nodes, 0);
    if (json_is_object(call)) { /* Keras 3: {"args": [...], "kwargs": {...}} */
        return harmless_kwargs(b, json_object_get(call, "kwargs")) ||
                       collect_tensors(b, json_object_get(call, "args"), names, n, 0)
                   ? -1
                   : 0;
    }
    if (!json_is_array(call)) return fail(b, "field 'inbound_nodes' is neither Keras 2's nor Keras 3's form");
    for (size_t k = 0; k < json_array_size(call); k++) { /* Keras 2: [[name, node, tensor, kwargs], ...] */
        json_t *e = json_array_get(call, k);
        const char *name = history_layer(b, e);
        if (!name) return -1;
        if (json_array_size(e) > 3 && harmless_kwargs(b, json_array_get(e, 3))) return -1;
        if (*n >= CS_MAX_INPUTS) return fail(b, "has more than %d inputs", CS_MAX_INPUTS);
        names[(*n)++] = name;
    }
    return 0;
}

static int translate(kbuild *b, json_t *layer, const char **names, int n_in)
{
    const kvalue *in[CS_MAX_INPUTS];
    for (int k = 0; k < n_in; k++) {
        in[k] = find_value(b, names[k]);
        if (!in[k]) return fail(b, "reads layer '%.64s', which no layer before it computes", names[k]);
    }
    json_t *cfg = json_object_get(layer, "config");
    for (size_t k = 0; k < N_CLASSES; k++)
        if (!strcmp(CLASSES[k].cls, b->at->cls)) return CLASSES[k].fn(b, cfg, in, n_in);
    if (!strcmp(b->at->cls, "Sequential") || !strcmp(b->at->cls, "Functional") || !strcmp(b->at->cls, "Model"))
        return fail(b, "a model inside the model is not supported; save the inner model's layers in one model");
    return fail(b, "the layer class '%.40s' is not supported", b->at->cls);
}

/* Records the next Keras layer (name and class) and makes it the current one. */
static int begin_layer(kbuild *b, json_t *layer, int index)
{
    klayer *grown = realloc(b->layers, (size_t)(b->n_layers + 1) * sizeof *grown);
    if (!grown) return fail(b, "out of memory");
    b->layers = grown;
    klayer *l = &b->layers[b->n_layers++];
    memset(l, 0, sizeof *l);
    l->node = -1;
    json_t *cfg = json_object_get(layer, "config");
    l->cls = json_string_value(json_object_get(layer, "class_name"));
    l->name = json_string_value(json_object_get(layer, "name"));
    if (!l->name) l->name = json_string_value(json_object_get(cfg, "name"));
    b->at = NULL;
    if (!l->cls || !json_is_object(cfg)) return fail(b, "layer %d has no class_name or config", index);
    if (!l->name || !l->name[0]) return fail(b, "layer %d (%.40s) has no name", index, l->cls);
    b->at = l;
    if (strlen(l->name) >= CS_NAME_MAX) return fail(b, "the name is longer than %d characters", CS_NAME_MAX - 1);
    for (int k = 0; k < b->n_layers - 1; k++)
        if (!strcmp(b->layers[k].name, l->name)) return fail(b, "a second layer has this name");
    return 0;
}

static int build_sequential(kbuild *b, json_t *cfg, const char *arch)
{
    json_t *layers = json_is_array(cfg) ? cfg : json_object_get(cfg, "layers");
    if (!json_is_array(layers) || json_array_size(layers) == 0) return fail(b, "the Sequential model has no layers");
    cs_shape s;
    int rank, r = 1;
    json_t *first = json_array_get(layers, 0);
    r = declared_shape(b, json_object_get(first, "config"), &s, &rank);
    if (r > 0 && json_is_object(cfg)) r = declared_shape(b, cfg, &s, &rank);
    if (r > 0 && json_is_object(cfg) && json_object_get(cfg, "build_input_shape"))
        r = input_shape(b, json_object_get(cfg, "build_input_shape"), 1, &s, &rank);
    if (r > 0 && json_object_get(json_object_get(first, "build_config"), "input_shape"))
        r = input_shape(b, json_object_get(json_object_get(first, "build_config"), "input_shape"), 1, &s, &rank);
    if (r > 0) return fail(b, "the Sequential model declares no input shape");
    if (r < 0 || start_model(b, arch, s)) return -1;
    /* The model's input has no layer name: "" (a layer's name is never empty). */
    const char *prev = "";
    if (put_value(b, prev, CS_MODEL_INPUT, rank)) return -1;
    for (size_t i = 0; i < json_array_size(layers); i++) {
        json_t *layer = json_array_get(layers, i);
        if (begin_layer(b, layer, (int)i)) return -1;
        if (!strcmp(b->at->cls, "InputLayer")) {
            if (i != 0) return fail(b, "an InputLayer after the first layer");
            if (set_out(b, CS_MODEL_INPUT, rank)) return -1;
        } else if (translate(b, layer, &prev, 1)) {
            return -1;
        }
        prev = b->at->name;
    }
    b->at = NULL;
    if (find_value(b, prev)->node != b->m->n_layers - 1) return fail(b, "the last layer computes nothing");
    return 0;
}

/* [name, 0, 0] or [[name, 0, 0]]: the one input or output of a Functional model. */
static const char *endpoint(kbuild *b, json_t *v, const char *what)
{
    if (json_is_array(v) && json_array_size(v) == 1 && json_is_array(json_array_get(v, 0))) v = json_array_get(v, 0);
    else if (json_is_array(v) && json_array_size(v) > 1 && json_is_array(json_array_get(v, 0))) {
        fail(b, "the model has %zu %ss; one is supported", json_array_size(v), what);
        return NULL;
    }
    const char *name = json_string_value(json_array_get(v, 0));
    if (!name) fail(b, "field '%s_layers' is not [layer, node, tensor]", what);
    return name;
}

static int build_functional(kbuild *b, json_t *cfg, const char *arch)
{
    json_t *layers = json_object_get(cfg, "layers");
    if (!json_is_array(layers) || json_array_size(layers) == 0) return fail(b, "the Functional model has no layers");
    const char *in_name = endpoint(b, json_object_get(cfg, "input_layers"), "input");
    const char *out_name = in_name ? endpoint(b, json_object_get(cfg, "output_layers"), "output") : NULL;
    if (!out_name) return -1;
    for (size_t i = 0; i < json_array_size(layers); i++) {
        json_t *layer = json_array_get(layers, i);
        if (begin_layer(b, layer, (int)i)) return -1;
        const char *names[CS_MAX_INPUTS];
        int n_in;
        if (!strcmp(b->at->cls, "InputLayer")) {
            cs_shape s;
            int rank, r;
            if (strcmp(b->at->name, in_name) != 0) return fail(b, "a second input; one input is supported");
            if ((r = declared_shape(b, json_object_get(layer, "config"), &s, &rank)) > 0)
                return fail(b, "declares no input shape");
            if (r < 0 || start_model(b, arch, s) || set_out(b, CS_MODEL_INPUT, rank)) return -1;
            continue;
        }
        if (!b->m) return fail(b, "comes before the model's InputLayer");
        if (inbound(b, layer, names, &n_in)) return -1;
        if (n_in == 0) return fail(b, "reads no layer");
        if (translate(b, layer, names, n_in)) return -1;
    }
    b->at = NULL;
    const kvalue *out = find_value(b, out_name);
    if (!out) return fail(b, "the output layer '%.64s' is not computed", out_name);
    if (out->node != b->m->n_layers - 1)
        return fail(b, "the output layer '%.64s' is not the last node computed (layers after it are not supported)",
                    out_name);
    return 0;
}

/* A softmax on top when the model ends in scores, so it serves probabilities. */
static int top_softmax(kbuild *b)
{
    cs_model *m = b->m;
    const cs_layer *top = &m->layers[m->n_layers - 1];
    if (top->out.h != 1 || top->out.w != 1)
        return fail(b, "the output is %dx%dx%d, not one vector of class scores per image", top->out.h, top->out.w,
                    top->out.c);
    int fused = (top->kind == CS_DENSE || top->kind == CS_CONV2D || top->kind == CS_DEPTHWISE_CONV2D ||
                 top->kind == CS_SEPARABLE_CONV2D) &&
                top->cfg.activation == CS_ACT_SOFTMAX;
    if (top->kind == CS_SOFTMAX || fused) return 0;
    char name[CS_NAME_MAX];
    unique_name(m, "softmax", name);
    int in = m->n_layers - 1;
    cs_layer_config c = {0};
    return add_named(b, name, CS_SOFTMAX, &c, &in, 1) < 0 ? -1 : 0;
}

/* Classes are numbered until labels come with the model. */
static int number_classes(cs_model *m)
{
    int k = m->layers[m->n_layers - 1].out.c, ok = 1;
    char **names = calloc((size_t)k, sizeof *names);
    if (!names) return -1;
    for (int c = 0; c < k && ok; c++) {
        names[c] = malloc(16);
        if (names[c]) snprintf(names[c], 16, "%d", c);
        else ok = 0;
    }
    if (ok) ok = cs_model_set_classes(m, k, (const char *const *)names) == 0;
    for (int c = 0; c < k; c++) free(names[c]);
    free(names);
    return ok ? 0 : -1;
}

/* Normalization statistics given in the config: one number or one per channel. */
static int config_stats(kbuild *b, json_t *root_layers)
{
    for (int i = 0; i < b->n_layers; i++) {
        klayer *l = &b->layers[i];
        if (strcmp(l->cls, "Normalization") != 0 || l->n_w) continue;
        b->at = l;
        json_t *cfg = json_object_get(json_array_get(root_layers, (size_t)i), "config");
        cs_layer *node = &b->m->layers[l->node];
        static const char *const keys[2] = {"mean", "variance"};
        for (int k = 0; k < 2; k++) {
            json_t *v = json_object_get(cfg, keys[k]);
            size_t n = json_is_array(v) ? json_array_size(v) : 1;
            if (json_is_array(v) && n == 1 && json_is_array(json_array_get(v, 0))) v = json_array_get(v, 0), n = json_array_size(v);
            if (n != 1 && n != (size_t)node->out.c)
                return fail(b, "field '%s' has %zu values for %d channels", keys[k], n, node->out.c);
            for (int c = 0; c < node->out.c; c++) {
                json_t *x = json_is_array(v) ? json_array_get(v, n == 1 ? 0 : (size_t)c) : v;
                if (!json_is_number(x)) return fail(b, "field '%s' is not a number or a list of numbers", keys[k]);
                node->params[k].data[c] = (float)json_number_value(x);
            }
        }
    }
    b->at = NULL;
    return 0;
}

static void build_free(kbuild *b)
{
    free(b->layers);
    free(b->vals);
    b->layers = NULL;
    b->vals = NULL;
}

/* The model's architecture from the parsed JSON (the root object Keras writes:
 * class_name and config). The kbuild keeps the per-layer weight plan. */
static int build(kbuild *b, json_t *root, const char *arch)
{
    const char *cls = json_string_value(json_object_get(root, "class_name"));
    json_t *cfg = json_object_get(root, "config");
    if (!cls || !cfg) return fail(b, "the configuration has no class_name and config");
    int rc;
    if (!strcmp(cls, "Sequential")) rc = build_sequential(b, cfg, arch);
    else if (!strcmp(cls, "Functional") || !strcmp(cls, "Model")) rc = build_functional(b, cfg, arch);
    else return fail(b, "the model class '%.40s' is not Sequential or Functional", cls);
    if (rc) return -1;
    if (b->m->n_layers == 0) return fail(b, "the model computes nothing from its input");
    if (top_softmax(b)) return -1;
    size_t params = 0;
    for (int i = 0; i < b->m->n_layers; i++) params += cs_layer_param_count(&b->m->layers[i]);
    if (params > MAX_PARAMS) return fail(b, "%zu parameters; convscope loads models of up to %zu", params, MAX_PARAMS);
    if (cs_model_finish(b->m) != 0) return fail(b, "out of memory for the parameters");
    json_t *layers = json_is_array(cfg) ? cfg : json_object_get(cfg, "layers");
    if (config_stats(b, layers)) return -1;
    if (number_classes(b->m)) return fail(b, "out of memory");
    return 0;
}

static json_t *parse_json(kbuild *b, const char *text, size_t len, const char *what)
{
    json_error_t je;
    json_t *root = json_loadb(text, len, 0, &je);
    if (!root) fail(b, "%s is not valid JSON: %s (line %d)", what, je.text, je.line);
    else if (!json_is_object(root)) {
        fail(b, "%s is not a JSON object", what);
        json_decref(root);
        root = NULL;
    }
    return root;
}

cs_model *cs_keras_model_from_json(const char *json, size_t len, int keras_major, const char *arch, char *err,
                                   size_t errlen)
{
    kbuild b = {.major = keras_major, .err = err, .errlen = errlen};
    json_t *root = parse_json(&b, json, len, "the model configuration");
    if (root && build(&b, root, arch) == 0) {
        json_decref(root);
        build_free(&b);
        return b.m;
    }
    json_decref(root);
    build_free(&b);
    cs_model_free(b.m);
    return NULL;
}

/* ---- weights --------------------------------------------------------------------- */

static void fmt_dims(char *buf, size_t len, int ndim, const long long *d)
{
    size_t o = (size_t)snprintf(buf, len, "(");
    for (int i = 0; i < ndim && o < len; i++) o += (size_t)snprintf(buf + o, len - o, "%s%lld", i ? ", " : "", d[i]);
    if (o < len) snprintf(buf + o, len - o, ndim == 1 ? ",)" : ")");
}

/* Reads dataset `name` of group g into parameter p (or only checks it exists when p
 * is NULL: a weight convscope has no use for). `what` names it in messages. */
static int read_weight(kbuild *b, hid_t g, const char *name, cs_param *p, int kernel_2d, const char *what)
{
    char h5[160];
    int rc = -1;
    hid_t ds = H5Dopen2(g, name, H5P_DEFAULT), sp = -1, ft = -1;
    if (ds < 0) return fail(b, "weight %s is missing from the file", what);
    if (!p) {
        H5Dclose(ds);
        return 0;
    }
    if ((sp = H5Dget_space(ds)) < 0 || (ft = H5Dget_type(ds)) < 0) {
        fail(b, "weight %s: %s", what, cs_h5_reason(h5));
        goto done;
    }
    if (H5Tget_class(ft) != H5T_FLOAT && H5Tget_class(ft) != H5T_INTEGER) {
        fail(b, "weight %s is not numeric", what);
        goto done;
    }
    int ndim = H5Sget_simple_extent_ndims(sp);
    hsize_t fd[H5S_MAX_RANK];
    if (ndim < 0 || ndim > H5S_MAX_RANK || H5Sget_simple_extent_dims(sp, fd, NULL) < 0) {
        fail(b, "weight %s: %s", what, cs_h5_reason(h5));
        goto done;
    }
    /* What Keras stores: the parameter's shape, or (in, out) for a Dense run as a 1x1 conv. */
    long long want[4], got[H5S_MAX_RANK];
    int wn = kernel_2d ? 2 : p->ndim;
    for (int d = 0; d < p->ndim; d++) want[d] = p->dims[d];
    if (kernel_2d) want[0] = p->dims[2], want[1] = p->dims[3];
    int same = ndim == wn;
    for (int d = 0; d < ndim; d++) {
        got[d] = (long long)fd[d];
        if (same) same = got[d] == want[d];
    }
    if (!same) {
        char fs[128], ms[128];
        fmt_dims(fs, sizeof fs, ndim, got);
        fmt_dims(ms, sizeof ms, wn, want);
        fail(b, "weight %s (%s) has shape %s in the file; the layer's configuration gives %s", what, p->name, fs, ms);
        goto done;
    }
    if (H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, p->data) < 0) {
        fail(b, "cannot read weight %s: %s", what, cs_h5_reason(h5));
        goto done;
    }
    rc = 0;
done:
    if (ft >= 0) H5Tclose(ft);
    if (sp >= 0) H5Sclose(sp);
    H5Dclose(ds);
    return rc;
}

static int count_ok(kbuild *b, const klayer *l, int n, const char *where)
{
    if (n <= l->n_w && n >= l->n_w - l->n_optional) return 0;
    return fail(b, "%s has %d weights; the layer's configuration gives %d", where, n, l->n_w);
}

/* Keras 2: model_weights/<layer> lists its weights in weight_names, in Keras' order. */
static int read_keras2(kbuild *b, hid_t root)
{
    char h5[160], msg[300];
    for (int i = 0; i < b->n_layers; i++) {
        klayer *l = &b->layers[i];
        b->at = l;
        if (!l->n_w) continue;
        if (H5Lexists(root, l->name, H5P_DEFAULT) <= 0) return fail(b, "model_weights has no group for this layer");
        hid_t g = H5Gopen2(root, l->name, H5P_DEFAULT);
        if (g < 0) return fail(b, "cannot open its weights: %s", cs_h5_reason(h5));
        cs_h5_strs names = {0, NULL};
        int rc = cs_h5_read_names(g, "weight_names", &names, msg, sizeof msg);
        if (rc > 0) rc = fail(b, "its group has no weight_names attribute");
        else if (rc < 0) rc = fail(b, "%s", msg);
        if (!rc) rc = count_ok(b, l, names.n, "its group in model_weights");
        cs_layer *node = &b->m->layers[l->node];
        for (int k = 0; !rc && k < names.n; k++)
            rc = read_weight(b, g, names.s[k], l->param[k] >= 0 ? &node->params[l->param[k]] : NULL, l->kernel_2d && k == 0,
                             names.s[k]);
        cs_h5_strs_free(&names);
        H5Gclose(g);
        if (rc) return -1;
    }
    b->at = NULL;
    return 0;
}

/* Keras 3 names a layer's weights after its class in snake case (Conv2D: conv2d,
 * BatchNormalization: batch_normalization), numbered in the order of the layers:
 * conv2d, conv2d_1, ... (saving_lib's naming.to_snake_case, two regular expressions
 * applied in turn). */
static void snake_case(const char *cls, char *out, size_t size)
{
    char a[128], c[256];
    size_t n = 0, o = 0;
    for (const char *p = cls; *p && n + 1 < sizeof a; p++)
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_') a[n++] = *p;
    a[n] = 0;
    /* (.)([A-Z][a-z]+) -> \1_\2, scanning left to right without overlaps. */
    char t[256];
    size_t m = 0;
    for (size_t i = 0; i < n && m + 3 < sizeof t;) {
        if (i + 2 < n && a[i + 1] >= 'A' && a[i + 1] <= 'Z' && a[i + 2] >= 'a' && a[i + 2] <= 'z') {
            t[m++] = a[i];
            t[m++] = '_';
            t[m++] = a[i + 1];
            i += 2;
            while (i < n && a[i] >= 'a' && a[i] <= 'z' && m + 1 < sizeof t) t[m++] = a[i++];
        } else {
            t[m++] = a[i++];
        }
    }
    t[m] = 0;
    /* ([a-z])([A-Z]) -> \1_\2, then lower case. */
    for (size_t i = 0; i < m && o + 3 < sizeof c;) {
        if (i + 1 < m && t[i] >= 'a' && t[i] <= 'z' && t[i + 1] >= 'A' && t[i + 1] <= 'Z') {
            c[o++] = t[i];
            c[o++] = '_';
            c[o++] = t[i + 1];
            i += 2;
        } else {
            c[o++] = t[i++];
        }
    }
    c[o] = 0;
    for (size_t i = 0; i < o; i++)
        if (c[i] >= 'A' && c[i] <= 'Z') c[i] = (char)(c[i] - 'A' + 'a');
    snprintf(out, size, "%s", c);
}

static int read_keras3(kbuild *b, hid_t f)
{
    char h5[160];
    typedef struct {
        char name[128];
        int used;
    } seen;
    seen *names = calloc((size_t)b->n_layers + 1, sizeof *names);
    int n_names = 0, rc = 0;
    if (!names) return fail(b, "out of memory");
    hid_t layers = H5Lexists(f, "layers", H5P_DEFAULT) > 0 ? H5Gopen2(f, "layers", H5P_DEFAULT) : -1;
    if (layers < 0 && H5Lexists(f, "_layer_checkpoint_dependencies", H5P_DEFAULT) > 0)
        layers = H5Gopen2(f, "_layer_checkpoint_dependencies", H5P_DEFAULT);
    for (int i = 0; !rc && i < b->n_layers; i++) {
        klayer *l = &b->layers[i];
        char base[128], path[160];
        snake_case(l->cls, base, sizeof base);
        int k = 0;
        while (k < n_names && strcmp(names[k].name, base) != 0) k++;
        if (k == n_names) {
            snprintf(names[n_names++].name, sizeof names[0].name, "%s", base);
            snprintf(path, sizeof path, "%s/vars", base);
        } else {
            snprintf(path, sizeof path, "%s_%d/vars", base, ++names[k].used);
        }
        b->at = l;
        if (!l->n_w) continue;
        if (layers < 0) {
            rc = fail(b, "model.weights.h5 has no 'layers' group");
            break;
        }
        /* path is "<group>/vars": the group first, then its vars. */
        char group[160];
        snprintf(group, sizeof group, "%.*s", (int)(strlen(path) - strlen("/vars")), path);
        hid_t lg = H5Lexists(layers, group, H5P_DEFAULT) > 0 ? H5Gopen2(layers, group, H5P_DEFAULT) : -1;
        hid_t g = lg >= 0 && H5Lexists(lg, "vars", H5P_DEFAULT) > 0 ? H5Gopen2(lg, "vars", H5P_DEFAULT) : -1;
        if (lg >= 0) H5Gclose(lg);
        H5G_info_t info;
        if (g < 0) {
            rc = fail(b, "model.weights.h5 has no group layers/%s for its weights", path);
        } else if (H5Gget_info(g, &info) < 0) {
            rc = fail(b, "cannot open layers/%s: %s", path, cs_h5_reason(h5));
        } else if (!(rc = count_ok(b, l, (int)info.nlinks, "its group in model.weights.h5"))) {
            cs_layer *node = &b->m->layers[l->node];
            for (int w = 0; !rc && w < (int)info.nlinks; w++) {
                char ds[16], what[200];
                snprintf(ds, sizeof ds, "%d", w);
                snprintf(what, sizeof what, "layers/%s/%d", path, w);
                rc = read_weight(b, g, ds, l->param[w] >= 0 ? &node->params[l->param[w]] : NULL, l->kernel_2d && w == 0,
                                 what);
            }
        }
        if (g >= 0) H5Gclose(g);
    }
    if (layers >= 0) H5Gclose(layers);
    free(names);
    if (!rc) b->at = NULL;
    return rc;
}

/* ---- containers ----------------------------------------------------------------- */

static const unsigned char HDF5_SIGNATURE[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};

/* The Keras version an HDF5 file's root says it was written by (2 when it says none). */
static int file_major(hid_t f)
{
    char msg[200];
    cs_h5_strs v = {0, NULL};
    int major = 2;
    if (cs_h5_read_names(f, "keras_version", &v, msg, sizeof msg) == 0 && v.n == 1 && v.s[0][0] >= '1' &&
        v.s[0][0] <= '9')
        major = v.s[0][0] - '0';
    cs_h5_strs_free(&v);
    return major;
}

/* A Keras 2 full-model HDF5 file, open. Under the HDF5 lock. */
static cs_model *from_h5(hid_t f, const char *arch, kbuild *b)
{
    char msg[300];
    cs_h5_strs cfg = {0, NULL};
    int r = cs_h5_read_names(f, "model_config", &cfg, msg, sizeof msg);
    if (r > 0) {
        fail(b, "the file has no model_config attribute: it holds weights only (model.save_weights()), not a whole "
                "model; save it with model.save(), or import the weights into the notebook's network with "
                "`convscope import`");
        goto done;
    }
    if (r < 0 || cfg.n != 1) {
        fail(b, "cannot read model_config: %s", r < 0 ? msg : "not one string");
        goto done;
    }
    if (H5Lexists(f, "model_weights", H5P_DEFAULT) <= 0) {
        fail(b, "the file has no model_weights group");
        goto done;
    }
    b->major = file_major(f);
    /* The layers' names are borrowed from the JSON: it lives until the weights are read. */
    json_t *root = parse_json(b, cfg.s[0], strlen(cfg.s[0]), "model_config");
    hid_t mw = -1;
    r = !root || build(b, root, arch) != 0 ? -1 : 0;
    if (r == 0 && (mw = H5Gopen2(f, "model_weights", H5P_DEFAULT)) < 0)
        r = fail(b, "cannot open model_weights: %s", cs_h5_reason(msg));
    if (r == 0) r = read_keras2(b, mw);
    if (mw >= 0) H5Gclose(mw);
    json_decref(root);
    if (r) goto done;
    cs_h5_strs_free(&cfg);
    return b->m;
done:
    cs_h5_strs_free(&cfg);
    cs_model_free(b->m);
    b->m = NULL;
    return NULL;
}

/* An HDF5 file image in memory, opened read-only (libhdf5 copies it). */
static hid_t open_image(const void *buf, size_t len, const char *name)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0) return -1;
    hid_t f = -1;
    if (H5Pset_fapl_core(fapl, 1 << 20, 0) >= 0 && H5Pset_file_image(fapl, (void *)buf, len) >= 0)
        f = H5Fopen(name, H5F_ACC_RDONLY, fapl);
    H5Pclose(fapl);
    return f;
}

static cs_model *h5_image(const void *buf, size_t len, const char *arch, kbuild *b)
{
    char h5[160];
    cs_h5_lock();
    hid_t f = open_image(buf, len, "model.h5");
    cs_model *m = NULL;
    if (f < 0) fail(b, "not a readable HDF5 file: %s", cs_h5_reason(h5));
    else m = from_h5(f, arch, b);
    if (f >= 0) H5Fclose(f);
    cs_h5_unlock();
    return m;
}

/* One entry of the archive into memory (at most max bytes). NULL with err; 1 in
 * *absent when the archive has no such entry. */
static char *zip_entry(kbuild *b, zip_t *z, const char *name, size_t max, size_t *len, int *absent)
{
    zip_stat_t st;
    zip_stat_init(&st);
    *absent = 0;
    if (zip_stat(z, name, 0, &st) != 0) {
        *absent = 1;
        return NULL;
    }
    if (!(st.valid & ZIP_STAT_SIZE) || st.size > max) {
        fail(b, "%s in the archive is larger than %zu bytes", name, max);
        return NULL;
    }
    char *data = malloc((size_t)st.size + 1);
    zip_file_t *zf = data ? zip_fopen(z, name, 0) : NULL;
    if (!data || !zf) {
        fail(b, "cannot read %s from the archive: %s", name, data ? zip_strerror(z) : "out of memory");
        free(data);
        return NULL;
    }
    zip_int64_t got = 0, r = 0;
    while ((zip_uint64_t)got < st.size && (r = zip_fread(zf, data + got, st.size - (zip_uint64_t)got)) > 0) got += r;
    /* A last read at the end checks the entry's CRC. */
    char extra;
    if (r >= 0 && (zip_uint64_t)got == st.size) r = zip_fread(zf, &extra, 1);
    if (r < 0 || (zip_uint64_t)got != st.size) {
        fail(b, "cannot read %s from the archive: %s", name, zip_file_strerror(zf));
        zip_fclose(zf);
        free(data);
        return NULL;
    }
    zip_fclose(zf);
    data[got] = 0;
    *len = (size_t)got;
    return data;
}

/* metadata.json's keras_version, major number; 3 when it says none. */
static int archive_major(kbuild *b, zip_t *z)
{
    size_t len;
    int absent, major = 3;
    char *meta = zip_entry(b, z, "metadata.json", 1 << 20, &len, &absent);
    json_t *o = meta ? json_loadb(meta, len, 0, NULL) : NULL;
    const char *v = json_string_value(json_object_get(o, "keras_version"));
    if (v && v[0] >= '1' && v[0] <= '9') major = v[0] - '0';
    json_decref(o);
    free(meta);
    b->err[0] = 0;
    return major;
}

static cs_model *from_archive(const void *buf, size_t len, const char *arch, kbuild *b)
{
    zip_error_t ze;
    zip_error_init(&ze);
    zip_source_t *src = zip_source_buffer_create(buf, len, 0, &ze);
    zip_t *z = src ? zip_open_from_source(src, ZIP_RDONLY | ZIP_CHECKCONS, &ze) : NULL;
    char *config = NULL, *weights = NULL;
    size_t config_len = 0, weights_len = 0;
    int absent;
    cs_model *m = NULL;
    if (!z) {
        fail(b, "not a readable .keras archive (zip): %s", zip_error_strerror(&ze));
        if (src) zip_source_free(src);
        zip_error_fini(&ze);
        return NULL;
    }
    zip_error_fini(&ze);
    b->major = archive_major(b, z);
    config = zip_entry(b, z, "config.json", MAX_CONFIG_BYTES, &config_len, &absent);
    if (!config) {
        if (absent) fail(b, "the archive has no config.json");
        goto done;
    }
    weights = zip_entry(b, z, "model.weights.h5", MAX_WEIGHTS_BYTES, &weights_len, &absent);
    if (!weights) {
        if (absent && zip_name_locate(z, "model.weights.npz", 0) >= 0)
            fail(b, "the archive keeps its weights as model.weights.npz; only model.weights.h5 is read");
        else if (absent) fail(b, "the archive has no model.weights.h5");
        goto done;
    }
    json_t *root = parse_json(b, config, config_len, "config.json");
    if (!root || build(b, root, arch) != 0) {
        json_decref(root);
        goto done;
    }
    char h5[160];
    cs_h5_lock();
    hid_t f = open_image(weights, weights_len, "model.weights.h5");
    int rc = f < 0 ? fail(b, "model.weights.h5 is not a readable HDF5 file: %s", cs_h5_reason(h5)) : read_keras3(b, f);
    if (f >= 0) H5Fclose(f);
    cs_h5_unlock();
    json_decref(root);
    if (rc == 0) m = b->m, b->m = NULL;
done:
    cs_model_free(b->m);
    b->m = NULL;
    free(config);
    free(weights);
    zip_discard(z);
    return m;
}

static cs_model *load_buffer(const void *buf, size_t len, const char *arch, kbuild *b)
{
    const unsigned char *p = buf;
    if (len >= 4 && p[0] == 'P' && p[1] == 'K') return from_archive(buf, len, arch, b);
    if (len >= 8 && !memcmp(p, HDF5_SIGNATURE, 8)) return h5_image(buf, len, arch, b);
    fail(b, "neither a .keras archive (zip) nor a Keras HDF5 file");
    return NULL;
}

cs_model *cs_keras_model_load_buffer(const void *buf, size_t len, const char *arch, char *err, size_t errlen)
{
    kbuild b = {.major = 3, .err = err, .errlen = errlen};
    cs_model *m = buf ? load_buffer(buf, len, arch, &b) : NULL;
    if (!buf) fail(&b, "no data");
    build_free(&b);
    return m;
}

cs_model *cs_keras_model_load(const char *path, const char *arch, char *err, size_t errlen)
{
    kbuild b = {.major = 3, .err = err, .errlen = errlen};
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        cs_set_err(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    unsigned char head[8] = {0};
    size_t got = fread(head, 1, sizeof head, fp);
    cs_model *m = NULL;
    if (got == sizeof head && !memcmp(head, HDF5_SIGNATURE, 8)) {
        /* HDF5 is read in place (a VGG16-sized file is never held twice). */
        fclose(fp);
        char h5[160];
        cs_h5_lock();
        hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
        if (f < 0) fail(&b, "cannot open %s: %s", path, cs_h5_reason(h5));
        else m = from_h5(f, arch, &b);
        if (f >= 0) H5Fclose(f);
        cs_h5_unlock();
    } else {
        struct stat st;
        char *buf = NULL;
        if (fstat(fileno(fp), &st) != 0 || !S_ISREG(st.st_mode) || (size_t)st.st_size > MAX_WEIGHTS_BYTES + MAX_CONFIG_BYTES)
            fail(&b, "%s is not a regular file of a readable size", path);
        else if (!(buf = malloc((size_t)st.st_size + 1)))
            fail(&b, "out of memory reading %s", path);
        else if (fseek(fp, 0, SEEK_SET) != 0 || fread(buf, 1, (size_t)st.st_size, fp) != (size_t)st.st_size)
            fail(&b, "cannot read %s", path);
        else
            m = load_buffer(buf, (size_t)st.st_size, arch, &b);
        free(buf);
        fclose(fp);
    }
    build_free(&b);
    return m;
}

int cs_keras_h5_is_model(const char *path)
{
    FILE *fp = fopen(path, "rb");
    unsigned char head[8] = {0};
    size_t got = fp ? fread(head, 1, sizeof head, fp) : 0;
    if (fp) fclose(fp);
    if (got != sizeof head || memcmp(head, HDF5_SIGNATURE, 8) != 0) return 0;
    cs_h5_lock();
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    int yes = f >= 0 && H5Aexists(f, "model_config") > 0;
    if (f >= 0) H5Fclose(f);
    cs_h5_unlock();
    return yes;
}
