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
 * Gradients always come from the plain kernels: training passes and execs that keep
 * parameter gradients (training, gradient checks) never take a fast path, and a
 * backward pass after a fast forward (Grad-CAM) differentiates the same function the
 * plain forward computes. tests/core/test_fast_conv.c compares every fast path with
 * the plain one.
 */
#ifndef CS_FAST_PLAN_H
#define CS_FAST_PLAN_H

#include "layers/conv_general.h"
#include "model.h"
#include "onednn_conv.h"

#define CS_FAST_CONVS 2

/* A node's fast path: its convolutions (a separable conv has two, depthwise then
 * pointwise), NULL where the plain kernel runs, for batches of at least min_batch
 * images (smaller ones run the plain kernels). */
typedef struct cs_fast_node {
    cs_onednn_conv *conv[CS_FAST_CONVS];
    int min_batch;
} cs_fast_node;

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
 * the mode or the model's parameters changed (cs_model_params_changed); NULL when
 * the mode is off or it could not be made (the plain kernels then run). Passes of
 * several threads may share it; it is remade only between passes. */
const cs_fast_plan *cs_fast_plan_get(const cs_model *m);
/* Node i's fast path in the plan, or NULL. */
const cs_fast_node *cs_fast_plan_node(const cs_fast_plan *p, int i);
/* Bytes the plan keeps beside the model (the reordered kernels). */
size_t cs_fast_plan_bytes(const cs_fast_plan *p);
/* A model's plans, one per mode made so far (cs_model_free frees them). */
struct cs_fast_plans;
void cs_fast_plans_free(struct cs_fast_plans *p);

/* The choice the conv kinds make for convolution k of a node, of geometry g (kernel
 * w, bias b, ReLU fused when relu), into f: oneDNN's Winograd for 3x3 stride-1 layers
 * with enough channels, else its direct convolution, else none (the plain kernel)
 * when oneDNN offers nothing faster for it; f->min_batch rises to the batch from
 * which it pays. */
void cs_fast_conv(cs_fast_node *f, int k, const cs_conv2d_geom *g, const float *w, const float *b, int relu);

#endif
