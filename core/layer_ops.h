/*
 * layer_ops.h - the table of layer kinds: one row per kind, one file per row.
 *
 * A row says everything the rest of the core needs to know of a kind: its name in
 * files (the Keras class name) and the ONNX op it comes from, how its configuration
 * reads and writes as JSON, its output shape and parameter tensors given its inputs,
 * how fresh parameters are drawn, and its forward and backward passes. Model
 * building, model files and the executor look kinds up here and never switch over
 * them; adding a kind is one file under core/layers/ and one entry in layer_ops.c's TABLE.
 *
 * Forward and backward work on caller-owned buffers and never allocate: whatever a
 * kind keeps between the two (batch statistics, dropout masks) is allocated by the
 * executor when the exec is made (exec.h).
 */
#ifndef CS_LAYER_OPS_H
#define CS_LAYER_OPS_H

#include <jansson.h>
#include <stddef.h>

#include "exec.h"
#include "model.h"
#include "rng.h"

/* What one node's pass sees. */
typedef struct {
    cs_exec *e;
    int node;
    const cs_layer *l;
    int n;                           /* images in the batch */
    int training;                    /* batch statistics and dropout */
    cs_model *update;                /* training forward: where moving statistics go, or NULL */
    const float *x[CS_MAX_INPUTS];   /* the inputs' values */
    float *y;                        /* the output's values */
    float *dy;                       /* backward: d/d(output); a kind may overwrite it */
    float *dx[CS_MAX_INPUTS];        /* backward: d/d(input), overwritten; NULL when not wanted */
    float *state;                    /* the node's own buffer (state_floats), or NULL */
    float *work;                     /* the exec's work area: at least what the row's work_floats
                                        asked for (NULL when no node asked) */
} cs_node_pass;

enum {
    CS_OP_ACTIVATION = 1, /* an elementwise activation: a Grad-CAM target by default */
    CS_OP_VIEW = 2,       /* the output is the input's floats unchanged (shares its buffers) */
    CS_OP_CONSTANT_INIT = 4, /* init draws nothing: it also runs when the model is allocated */
};

typedef struct {
    const char *keras; /* Keras class name: the kind's name in model files and summaries */
    const char *onnx;  /* the ONNX op type it is imported from, or NULL */
    int flags;
    /* Checks the configuration (filling defaults), sets l->out from the inputs' shapes
     * and declares the parameter tensors with cs_layer_add_param. 0, or -1 with err. */
    int (*infer)(cs_layer *l, const cs_shape *in, char *err, size_t errlen);
    /* The configuration fields that mean something for the kind, Keras' names where
     * Keras has one; NULL when the kind has none. 0, or -1 (no memory). */
    int (*config_to_json)(const cs_layer *l, json_t *o);
    /* Reads them back into cfg; NULL when none. 0, or -1 with err naming the field. */
    int (*config_from_json)(json_t *o, cs_layer_config *cfg, char *err, size_t errlen);
    /* Fresh parameters (Keras' initialisers); NULL when the kind has none. */
    void (*init)(cs_layer *l, cs_rng *r);
    void (*forward)(const cs_node_pass *p);
    /* Writes dx for the inputs that want it and adds parameter gradients (when the exec
     * has them, cs_exec_param_grad). */
    void (*backward)(const cs_node_pass *p);
    /* Optional sizes, in floats, for a batch of max_batch: per-worker scratch the passes
     * use (cs_scratch.col), per-worker partial parameter gradients (cs_scratch.part),
     * and a buffer of the node's own kept between forward and backward (p->state). */
    size_t (*scratch_floats)(const cs_layer *l, int max_batch);
    size_t (*part_floats)(const cs_layer *l);
    size_t (*state_floats)(const cs_layer *l, int max_batch);
    /* Floats of work area the passes of node l need for a batch of max_batch; the exec
     * allocates the largest any node asks for once and lends it to every pass (the
     * passes of one exec never overlap). NULL when the kind needs none. */
    size_t (*work_floats)(const cs_layer *l, int max_batch);
} cs_layer_ops;

const cs_layer_ops *cs_layer_ops_of(cs_layer_kind k);
/* A node's configuration as its kind writes it to model files (config_to_json; {} for
 * a kind with none): a new object the caller owns, or NULL when out of memory. */
json_t *cs_layer_config_json(const cs_layer *l);
/* The kind whose Keras class name is s; 0, or -1 when none. */
int cs_layer_kind_from_name(const char *s, cs_layer_kind *out);

/* Helpers the rows share. */
/* infer for kinds whose output has the shape of their (first) input. */
int cs_infer_same_shape(cs_layer *l, const cs_shape *in, char *err, size_t errlen);
/* The gradient area of a parameter in the exec, or NULL when it keeps none. */
float *cs_exec_param_grad(const cs_exec *e, const cs_param *p);
/* Keras' kernel initialisers: he_normal (truncated normal) or glorot_uniform, from the
 * kernel's fan-in and fan-out; the bias (params[1]) zeroed. */
void cs_init_kernel(cs_layer *l, int fan_in, int fan_out, cs_rng *r);
/* Configuration fields in JSON; the getters write "has no integer 'key'"-style
 * messages. */
json_t *cs_json_float(float v);
int cs_json_set_float(json_t *o, const char *key, float v);
int cs_json_get_int(json_t *o, const char *key, int lo, int hi, int *out, char *err, size_t errlen);
int cs_json_get_float(json_t *o, const char *key, float *out, char *err, size_t errlen);
const char *cs_json_get_str(json_t *o, const char *key, char *err, size_t errlen);
/* An optional "axis" that must be the channels (-1, or 3 counting the batch axis), the
 * only axis kinds that name one support. 0, or -1 with err. */
int cs_json_channel_axis(json_t *o, char *err, size_t errlen);

/* Guided backpropagation (exec.h's `guided`): a ReLU-like row (ReLU, LeakyReLU, the
 * Activation rows relu, leaky_relu and relu6/clip, a fused relu) calls this on its dy
 * before its own derivative, so only positive gradients pass down: dx = f'(x) max(dy, 0).
 * Does nothing when the exec is not guided. */
void cs_guided_clamp(const cs_node_pass *p);

/* A Conv2D node that conv.c's kernels take (square window, one stride, no dilation,
 * no groups, 'valid' or 'same'): the training plan fuses only these. */
int cs_conv2d_layer_simple(const cs_layer *l);

/* The rows (core/layers/). */
extern const cs_layer_ops cs_conv2d_ops, cs_batchnorm_ops, cs_leaky_relu_ops, cs_relu_ops, cs_maxpool_ops,
    cs_flatten_ops, cs_dense_ops, cs_dropout_ops, cs_depthwise_conv2d_ops, cs_separable_conv2d_ops;
extern const cs_layer_ops cs_avgpool_ops, cs_global_avgpool_ops, cs_global_maxpool_ops, cs_activation_ops,
    cs_softmax_ops, cs_add_ops, cs_subtract_ops, cs_multiply_ops, cs_concatenate_ops, cs_zero_padding2d_ops,
    cs_rescaling_ops, cs_normalization_ops;

#endif
