/*
 * test_predict_buffers.c - a prediction that writes outputs into buffers other nodes
 * are done with (core/predict_buffers.c) computes what it computes in buffers of
 * their own, bit for bit.
 *
 * The net has what makes sharing buffers go wrong if lifetimes are miscounted: a
 * residual addend read five nodes after it was written (inside a chain, at the
 * chain's first node), an output read by two nodes, a concatenation, a view (a
 * flatten), chains of every length and a softmax on top (its logits stay readable).
 * Each prediction runs twice, once with the shared buffers and once with every node's
 * own, on the plain kernels and on the fast paths with their chains, single images
 * and a batch, 1 and 3 workers.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "exec.h"
#include "fast_plan.h"
#include "graph_net.h"
#include "layers/kernels.h"
#include "parallel.h"
#include "predict_buffers.h"
#include "rng.h"
#include "test.h"

static cs_model *branchy_model(void)
{
    cs_model *m = cs_model_new("branchy", (cs_shape){12, 12, 3});
    const int ONE = GRAPH_NET_ONE;
    cs_layer_config same16 = {.filters = 16, .kernel = 3, .stride = 1, .pad_same = 1, .he_normal = 1};
    cs_layer_config expand = {.filters = 48, .kernel = 1, .stride = 1, .he_normal = 1};
    cs_layer_config dw = {.filters = 48, .kernel = 3, .stride = 1, .pad_same = 1, .groups = 48, .he_normal = 1};
    cs_layer_config project = {.filters = 16, .kernel = 1, .stride = 1, .he_normal = 1};
    cs_layer_config bn = {.momentum = 0.99f, .epsilon = 1e-3f}, none = {0};
    cs_layer_config relu6 = {.actf = CS_ACTF_CLIP, .act_a = 0, .act_b = 6};
    cs_layer_config pool = {.pool = 2}, dense = {.units = 5, .activation = CS_ACT_SOFTMAX};
    int x = add_node(m, "conv1", CS_CONV2D, &same16, CS_MODEL_INPUT, ONE);
    x = add_node(m, "bn1", CS_BATCHNORM, &bn, x, ONE);
    const int a = add_node(m, "relu1", CS_RELU, &none, x, ONE); /* the addend below */
    x = add_node(m, "expand", CS_CONV2D, &expand, a, ONE);
    x = add_node(m, "relu6_e", CS_ACTIVATION, &relu6, x, ONE);
    x = add_node(m, "dw", CS_CONV2D, &dw, x, ONE);
    x = add_node(m, "relu6_d", CS_ACTIVATION, &relu6, x, ONE);
    x = add_node(m, "project", CS_CONV2D, &project, x, ONE);
    x = add_node(m, "bn_p", CS_BATCHNORM, &bn, x, ONE);
    const int sum = add_node(m, "add", CS_ADD, &none, x, a); /* read by two nodes */
    const int l = add_node(m, "left", CS_CONV2D, &same16, sum, ONE);
    const int r = add_node(m, "right", CS_CONV2D, &project, sum, ONE);
    x = add_node(m, "cat", CS_CONCATENATE, &none, l, r);
    x = add_node(m, "pool", CS_MAXPOOL, &pool, x, ONE);
    x = add_node(m, "flatten", CS_FLATTEN, &none, x, ONE);
    add_node(m, "dense", CS_DENSE, &dense, x, ONE);
    finish_net(m, 5, 29);
    return m;
}

static void test_shared_buffers_change_nothing(void)
{
    cs_model *m = branchy_model();
    const int L = m->n_layers, top = L - 1, k = m->layers[top].out.c;
    const cs_fast_mode modes[2] = {CS_FAST_OFF, CS_FAST_AUTO};
    for (int mi = 0; mi < 2; mi++)
        for (int n = 1; n <= 5; n += 4)
            for (int threads = 1; threads <= 3; threads += 2) {
                cs_fast_set_mode(modes[mi]);
                cs_parallel_set_threads(threads);
                const size_t in = (size_t)n * cs_shape_size(m->input);
                float *x = malloc(in * sizeof *x), *want = malloc((size_t)2 * n * k * sizeof *want);
                cs_exec *e = cs_exec_new(m, n);
                if (!x || !want || !e) {
                    CHECK(0, "setup");
                    free(x), free(want), cs_exec_free(e);
                    continue;
                }
                cs_rng g;
                cs_rng_seed(&g, 31 + n);
                for (size_t i = 0; i < in; i++) x[i] = (float)(2 * cs_rng_uniform(&g) - 1);
                /* Buffers are in fact shared (the table is not every node's own), and
                 * the top and its logits are not. */
                int shared = 0;
                for (int i = 0; i < L; i++) shared += e->predict_act[i] != e->act[i];
                CHECK(shared >= 4, "only %d nodes write elsewhere", shared);
                CHECK(e->predict_act[top] == e->act[top], "the top keeps its buffer");
                /* Every node's own buffer first, then the shared ones (each pass
                 * overwrites the other's leftovers). */
                float **table = e->predict_act;
                e->predict_act = e->act;
                CHECK(cs_exec_predict(e, x, n) == 0, "predict, own buffers");
                memcpy(want, e->act[top], (size_t)n * k * sizeof *want);
                memcpy(want + (size_t)n * k, cs_exec_logits(e), (size_t)n * k * sizeof *want);
                e->predict_act = table;
                CHECK(cs_exec_predict(e, x, n) == 0, "predict, shared buffers");
                CHECK(memcmp(want, e->act[top], (size_t)n * k * sizeof *want) == 0,
                      "mode %d, batch %d, %d workers: probabilities differ", mi, n, threads);
                CHECK(memcmp(want + (size_t)n * k, cs_exec_logits(e), (size_t)n * k * sizeof *want) == 0,
                      "mode %d, batch %d, %d workers: logits differ", mi, n, threads);
                /* Against a full forward: the same function (plain kernels: the same bits). */
                CHECK(cs_exec_forward(e, x, n, 0, NULL) == 0, "forward");
                double worst = 0, scale = 0;
                for (size_t i = 0; i < (size_t)n * k; i++) {
                    const double d = fabs(cs_exec_logits(e)[i] - want[(size_t)n * k + i]);
                    if (d > worst) worst = d;
                    if (fabs(want[(size_t)n * k + i]) > scale) scale = fabs(want[(size_t)n * k + i]);
                }
                if (modes[mi] == CS_FAST_OFF) CHECK(worst == 0, "plain: predict and forward differ by %.2e", worst);
                else CHECK(worst <= 1e-5 * scale, "fast: predict and forward differ by %.2e (scale %.2e)", worst, scale);
                cs_exec_free(e);
                free(x);
                free(want);
            }
    cs_fast_set_mode(CS_FAST_AUTO);
    cs_parallel_set_threads(2);
    cs_model_free(m);
}

/* Lifetimes by hand on a plain line of nodes: pool0 -> pool1 -> ... -> pool12 ->
 * flatten -> dense. Every link a pool, no chain or block can run, yet a node may only
 * write where an output at least eleven steps up lay. */
static void test_a_line_reuses_far_back(void)
{
    cs_model *m = cs_model_new("line", (cs_shape){32, 32, 4});
    cs_layer_config pool = {.pool = 1}, dense = {.units = 3};
    const int ONE = GRAPH_NET_ONE;
    int x = CS_MODEL_INPUT;
    for (int i = 0; i < 13; i++) {
        char name[16];
        snprintf(name, sizeof name, "pool%d", i);
        x = add_node(m, name, CS_MAXPOOL, &pool, x, ONE);
    }
    x = add_node(m, "flatten", CS_FLATTEN, &(cs_layer_config){0}, x, ONE);
    add_node(m, "dense", CS_DENSE, &dense, x, ONE);
    if (cs_model_finish(m) != 0) exit(99);
    float *act[15], *out[15];
    static float bufs[15][1];
    for (int i = 0; i < 15; i++) act[i] = bufs[i];
    act[13] = act[12]; /* the flatten is a view of pool12 */
    CHECK(cs_predict_buffers(m, act, out) == 0, "table");
    /* Node i is alive from i - 9 (a block run whole could start there) to i + 1 (its
     * reader): pool0..9 are all alive at 0; pool10 starts at 1, when nothing has ended
     * (pool0 lives to 1); pool11 starts at 2, when pool0's buffer is free, pool12 (with
     * the flatten, read by the dense at 14) at 3, when pool1's is. */
    int own = 1;
    for (int i = 0; i <= 10; i++) own &= out[i] == act[i];
    CHECK(own, "pool0..10 their own");
    CHECK(out[11] == act[0], "pool11 takes pool0's");
    CHECK(out[12] == act[1] && out[13] == act[1], "pool12 and its view take pool1's");
    CHECK(out[14] == act[14], "the top its own");
    cs_model_free(m);
}

int main(int argc, char **argv)
{
    if (cs_blas_init(argc, argv) != 0) return 99;
    RUN(test_shared_buffers_change_nothing);
    RUN(test_a_line_reuses_far_back);
    return test_summary("predict_buffers");
}
