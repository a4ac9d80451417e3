/*
 * fast_plan.h - the faster implementations an inference pass runs, chosen per node
 * once per model.
 *
 * Inference passes (no batch statistics, no parameter gradients) may run a node's
 * forward through another implementation than the plain kernels that training uses:
 * today oneDNN's convolutions (onednn_conv.h) for the conv kinds. The choice is the
 * kind's (its layer_ops row's `fast` entry, by the shape of its window); it is made
 * the first time an inference pass runs on a model and kept with the model, with the
 * kernels oneDNN reordered for it, so every exec of the model shares one copy.
 *
 * A pass that will read only the model's output (cs_exec_predict) also runs chains:
 * a conv with the batch norm, residual add and activation that read it alone, as one
 * convolution (the batch norm folded into its kernel and bias, the add and the
 * activation applied as the output is stored), without writing the outputs inside.
 *
 * Gradients always come from the plain kernels: training passes and execs that keep
 * parameter gradients (training, gradient checks) never take a fast path, and a
 * backward pass after a fast forward (Grad-CAM) differentiates the same function the
 * plain forward computes. tests/core/test_fast_conv.c compares every fast path with
 * the plain one.
 */
#ifndef CS_FAST_PLAN_H
#define CS_FAST_PLAN_H

#include "conv_act_pool.h"
#include "layers/conv_general.h"
#include "model.h"
#include "onednn_conv.h"

#define CS_FAST_CONVS 2

/* A node's fast path: its convolutions (a separable conv has two, depthwise then
 * pointwise), NULL where the plain kernel runs. */
typedef struct cs_fast_node {
    cs_onednn_conv *conv[CS_FAST_CONVS];
    float *folded[2]; /* a chain's kernel and bias with its batch norm folded in (the conv reads them) */
    cs_conv_act_pool *pooled; /* a chain on few channels in one pass, to its max pool if any (instead of conv[0]) */
} cs_fast_node;

/* What a chain asks of the conv that starts it, besides the conv itself. */
typedef struct cs_fast_fuse {
    const float *scale, *shift; /* a batch norm above it: y = conv * scale + shift per channel, or NULL */
    cs_onednn_post post;        /* the residual add (sum) and the activation */
    int pool;                   /* the one-pass conv's pool above the activation (its window and stride; 1:
                                   none), or 0: no one-pass conv */
} cs_fast_fuse;

/* A chain: the conv at its first node computes every node up to `last` at once. */
typedef struct {
    cs_fast_node node; /* the conv, with the chain folded in */
    int last;          /* the last node: the only output written */
    int addend;        /* the node (or model input) the residual add adds, when node.conv post-op sums */
} cs_fast_chain;

typedef enum {
    CS_FAST_OFF,    /* plain kernels everywhere */
    CS_FAST_DIRECT, /* oneDNN's direct convolutions, no Winograd */
    CS_FAST_AUTO,   /* per shape: Winograd where it pays, else direct (the default) */
} cs_fast_mode;

/* Process-wide, for tests and benchmarks that compare the paths: set it between
 * passes, never during one (the models' choices are made again on their next pass). */
void cs_fast_set_mode(cs_fast_mode mode);
cs_fast_mode cs_fast_get_mode(void);

typedef struct cs_fast_plan cs_fast_plan;

/* The plan of model m (one entry per node), made on the first call and again when
 * the mode, the model's parameters (cs_model_params_changed) or the pool's number of
 * threads changed; NULL when
 * the mode is off or it could not be made (the plain kernels then run). Passes of
 * several threads may share it; it is remade only between passes. */
const cs_fast_plan *cs_fast_plan_get(const cs_model *m);
/* Node i's fast path in the plan, or NULL. */
const cs_fast_node *cs_fast_plan_node(const cs_fast_plan *p, int i);
/* The chain that starts at node i, or NULL. */
const cs_fast_chain *cs_fast_plan_chain(const cs_fast_plan *p, int i);
/* The inverted residual block that starts at node i, run band by band in predictions
 * (predict_bands.h), or NULL. */
const struct cs_fast_bands *cs_fast_plan_bands(const cs_fast_plan *p, int i);
/* The inverted residual block that starts at node i, split by its wide channels over
 * the workers for a single image (predict_split.h), or NULL. */
const struct cs_fast_split *cs_fast_plan_split(const cs_fast_plan *p, int i);
/* Bytes the plan keeps beside the model (the reordered kernels). */
size_t cs_fast_plan_bytes(const cs_fast_plan *p);
/* At most what a plan of m may come to keep, for memory budgets before one is made:
 * each conv kernel reordered (4x its size where Winograd may take it), twice where the
 * conv starts a chain (predictions and full passes read different copies), and once
 * more for a 1x1 or depthwise conv's slices (predict_split.h). */
size_t cs_fast_plan_bytes_bound(const cs_model *m);
/* A model's plans, one per mode made so far (cs_model_free frees them). */
struct cs_fast_plans;
void cs_fast_plans_free(struct cs_fast_plans *p);

/* The choice the conv kinds make for convolution k of a node, of geometry g (kernel
 * w, bias b, then the post-ops), into f: oneDNN's Winograd for 3x3 stride-1 layers
 * with enough channels, else its direct convolution, else none (the plain kernel)
 * when oneDNN offers nothing faster for it. With fuse, the kernel (its last dimension the outputs) and the bias
 * (NULL: none) are first folded with the batch norm into f->folded. */
void cs_fast_conv(cs_fast_node *f, int k, const cs_conv2d_geom *g, const cs_param *kernel, const cs_param *bias,
                  const cs_onednn_post *post, const cs_fast_fuse *fuse);

/* The chain above node c (a conv, or any node with no activation of its own): its
 * last node, or c when there is none; fuse and addend as a chain's (ss: room for 2 *
 * channels floats of folded batch norm, or NULL). Other plans of inference layers
 * (bf16_plan.h) fuse the same chains. */
int cs_fast_chain_at(const cs_model *m, int c, cs_fast_fuse *fuse, float *ss, int *addend);

#endif
