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

#include "model.h"
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

/* The larger of worst and |d|, NaN once either is NaN (fmax drops a NaN: a difference
 * that is not a number would pass for none). */
static inline double graph_net_worse(double worst, double d)
{
    return isnan(worst) || isnan(d) ? NAN : fmax(worst, fabs(d));
}

#endif
