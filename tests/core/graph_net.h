/*
 * graph_net.h - building the graph nets the fast-path tests run: a node added by
 * name (a setup failure ends the binary with 99, as test.h's setup errors do), and a
 * net finished with random weights and batch norms whose statistics are not the
 * identity, so every fused batch norm changes what it passes on.
 */
#ifndef CS_TEST_GRAPH_NET_H
#define CS_TEST_GRAPH_NET_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exec.h"
#include "fast_plan.h"
#include "layers/kernels.h"
#include "model.h"
#include "parallel.h"
#include "rng.h"

/* The second input of a node that has one. */
#define GRAPH_NET_ONE (-100)

/* Node `name` of kind with inputs a and b (GRAPH_NET_ONE: a only); its index. */
static int add_node(cs_model *m, const char *name, cs_layer_kind kind, const cs_layer_config *cfg, int a, int b)
{
    char err[256];
    int in[2] = {a, b};
    int i = cs_model_add_node(m, name, kind, cfg, in, b == GRAPH_NET_ONE ? 1 : 2, err, sizeof err);
    if (i < 0) {
        fprintf(stderr, "setup: %s: %s\n", name, err);
        exit(99);
    }
    return i;
}

/* Finishes m with weights drawn from weight_seed and each batch norm's gamma, beta,
 * mean and variance drawn from bn_seed (gamma and variance in [0.5, 1.5), beta and
 * mean in [-0.5, 0.5)). */
static void finish_net(cs_model *m, uint64_t weight_seed, uint64_t bn_seed)
{
    if (cs_model_finish(m) != 0) exit(99);
    cs_model_init_weights(m, weight_seed);
    cs_rng r;
    cs_rng_seed(&r, bn_seed);
    for (int i = 0; i < m->n_layers; i++) {
        cs_layer *l = &m->layers[i];
        if (l->kind != CS_BATCHNORM) continue;
        for (int k = 0; k < l->out.c; k++) {
            l->params[0].data[k] = (float)(0.5 + cs_rng_uniform(&r));
            l->params[1].data[k] = (float)(cs_rng_uniform(&r) - 0.5);
            l->params[2].data[k] = (float)(cs_rng_uniform(&r) - 0.5);
            l->params[3].data[k] = (float)(0.5 + cs_rng_uniform(&r));
        }
    }
    cs_model_params_changed(m);
}

/* Every output buffer of e (for n images) filled with NaN: nothing an earlier pass
 * wrote may stand in for what the pass under test does not write. */
static inline void graph_net_poison(cs_exec *e, const cs_model *m, int n)
{
    for (int i = 0; i < m->n_layers; i++) memset(e->act[i], 0xff, (size_t)n * cs_shape_size(m->layers[i].out) * sizeof(float));
}

/* A MobileNetV2-like net on size x size x 3 images: a stem conv (stem channels, batch
 * norm, ReLU6), then two inverted residual blocks: *first (its expand conv's index), a
 * stride-1 depthwise conv on wide_a channels and a residual add; *second, a stride-2
 * depthwise conv on wide_b channels with no batch norm and a project conv to out_b
 * channels with none either (a conv on its own rather than a chain, as ONNX exports
 * fold them); a global average pool and a dense softmax of 7. Weights from seed. */
static inline cs_model *graph_net_mobile(int size, int stem, int wide_a, int wide_b, int out_b, uint64_t seed,
                                         int *first, int *second)
{
    const int ONE = GRAPH_NET_ONE;
    cs_model *m = cs_model_new("mobile", (cs_shape){size, size, 3});
    if (!m) exit(99);
    cs_layer_config conv = {.filters = stem, .kernel = 3, .stride = 1, .pad_same = 1, .he_normal = 1};
    cs_layer_config expand = {.filters = wide_a, .kernel = 1, .stride = 1, .he_normal = 1}, expand_b = expand;
    cs_layer_config dw = {.filters = wide_a, .kernel = 3, .stride = 1, .pad_same = 1, .groups = wide_a, .he_normal = 1};
    cs_layer_config dw_b = {.filters = wide_b, .kernel = 3, .stride = 2, .pad_same = 1, .groups = wide_b, .he_normal = 1};
    cs_layer_config project = {.filters = stem, .kernel = 1, .stride = 1, .he_normal = 1}, project_b = project;
    cs_layer_config bn = {.momentum = 0.99f, .epsilon = 1e-3f}, none = {0};
    cs_layer_config relu6 = {.actf = CS_ACTF_CLIP, .act_a = 0, .act_b = 6};
    cs_layer_config dense = {.units = 7, .activation = CS_ACT_SOFTMAX};
    expand_b.filters = wide_b, project_b.filters = out_b;
    int x = add_node(m, "stem", CS_CONV2D, &conv, CS_MODEL_INPUT, ONE);
    x = add_node(m, "stem_bn", CS_BATCHNORM, &bn, x, ONE);
    const int in = add_node(m, "stem_relu6", CS_ACTIVATION, &relu6, x, ONE);
    *first = x = add_node(m, "a_expand", CS_CONV2D, &expand, in, ONE);
    x = add_node(m, "a_expand_bn", CS_BATCHNORM, &bn, x, ONE);
    x = add_node(m, "a_expand_relu6", CS_ACTIVATION, &relu6, x, ONE);
    x = add_node(m, "a_dw", CS_CONV2D, &dw, x, ONE);
    x = add_node(m, "a_dw_bn", CS_BATCHNORM, &bn, x, ONE);
    x = add_node(m, "a_dw_relu6", CS_ACTIVATION, &relu6, x, ONE);
    x = add_node(m, "a_project", CS_CONV2D, &project, x, ONE);
    x = add_node(m, "a_project_bn", CS_BATCHNORM, &bn, x, ONE);
    x = add_node(m, "a_add", CS_ADD, &none, x, in);
    *second = x = add_node(m, "b_expand", CS_CONV2D, &expand_b, x, ONE);
    x = add_node(m, "b_expand_bn", CS_BATCHNORM, &bn, x, ONE);
    x = add_node(m, "b_expand_relu6", CS_ACTIVATION, &relu6, x, ONE);
    x = add_node(m, "b_dw", CS_CONV2D, &dw_b, x, ONE);
    x = add_node(m, "b_dw_relu6", CS_ACTIVATION, &relu6, x, ONE);
    x = add_node(m, "b_project", CS_CONV2D, &project_b, x, ONE);
    x = add_node(m, "pool", CS_GLOBAL_AVGPOOL, &none, x, ONE);
    add_node(m, "dense", CS_DENSE, &dense, x, ONE);
    finish_net(m, seed, seed + 29);
    return m;
}

/* n images of m's input with values drawn from seed in [-1, 1), and into plain their
 * logits by the plain kernels on one thread (the fast-path mode is left at plain). The
 * images (the caller frees them), or NULL. */
static inline float *graph_net_images_and_plain(cs_model *m, int n, uint64_t seed, float *plain)
{
    const size_t in = (size_t)n * cs_shape_size(m->input);
    float *x = malloc(in * sizeof *x);
    cs_rng g;
    cs_rng_seed(&g, seed);
    for (size_t i = 0; x && i < in; i++) x[i] = (float)(2 * cs_rng_uniform(&g) - 1);
    cs_fast_set_mode(CS_FAST_OFF);
    cs_parallel_set_threads(1);
    cs_exec *e = x ? cs_exec_new(m, n) : NULL;
    if (!e || cs_exec_predict(e, x, n) != 0) {
        free(x);
        x = NULL;
    } else
        memcpy(plain, cs_exec_logits(e), (size_t)n * m->layers[m->n_layers - 1].out.c * sizeof *plain);
    cs_exec_free(e);
    return x;
}

/* The larger of worst and |d|, NaN once either is NaN (fmax drops a NaN: a difference
 * that is not a number would pass for none). */
static inline double graph_net_worse(double worst, double d)
{
    return isnan(worst) || isnan(d) ? NAN : fmax(worst, fabs(d));
}

/* The largest |a[i] - b[i]| of count values, NaN when any is NaN. */
static inline double graph_net_gap(const float *a, const float *b, int count)
{
    double worst = 0;
    for (int i = 0; i < count; i++) worst = graph_net_worse(worst, (double)a[i] - b[i]);
    return worst;
}

/* e's prediction of x (n images) chain by chain into chains, then (every buffer
 * poisoned first) with the blocks run whole, in bands or split, into blocks; the
 * logits of each. 0, or -1 when a prediction failed. */
static inline int graph_net_chains_then_blocks(cs_exec *e, const cs_model *m, const float *x, int n, float *chains,
                                               float *blocks)
{
    const size_t bytes = (size_t)n * m->layers[m->n_layers - 1].out.c * sizeof(float);
    e->bands_off = 1;
    if (cs_exec_predict(e, x, n) != 0) return -1;
    memcpy(chains, cs_exec_logits(e), bytes);
    graph_net_poison(e, m, n);
    e->bands_off = 0;
    if (cs_exec_predict(e, x, n) != 0) return -1;
    memcpy(blocks, cs_exec_logits(e), bytes);
    return 0;
}

/* Whether a prediction's buffers keep an inverted residual block's outputs (nodes first
 * to last) apart from what the block reads while it writes them: its input and the
 * node its residual add adds (addend, or -1). */
static inline int graph_net_block_apart(const cs_exec *e, const cs_model *m, int first, int last, int addend)
{
    const int in = m->layers[first].inputs[0];
    for (int i = first; i <= last; i++)
        if ((in >= 0 && e->predict_act[i] == e->predict_act[in]) || (addend >= 0 && e->predict_act[i] == e->predict_act[addend]))
            return 0;
    return 1;
}

#endif
