/*
 * test_conv_parts.c - a single image through a conv whose kernel outweighs its output,
 * run as parts of its output channels, one per thread (core/onednn_conv.c), against the
 * plain kernels: with a residual add and an activation in its chain (the add gathered
 * into each part's output), for part widths that are and are not equal, and a batch
 * (which runs whole images instead).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "exec.h"
#include "fast_plan.h"
#include "graph_net.h"
#include "parallel.h"
#include "rng.h"
#include "test.h"

/* 7x7x(c) -> 3x3 conv to c -> batch norm -> add the input -> ReLU -> flatten -> softmax. */
static cs_model *late_block(int c)
{
    const int ONE = GRAPH_NET_ONE;
    cs_model *m = cs_model_new("late", (cs_shape){7, 7, c});
    cs_layer_config conv = {.filters = c, .kernel = 3, .stride = 1, .pad_same = 1, .he_normal = 1};
    cs_layer_config bn = {.momentum = 0.99f, .epsilon = 1e-3f}, none = {0}, dense = {.units = 5, .activation = CS_ACT_SOFTMAX};
    int x = add_node(m, "conv", CS_CONV2D, &conv, CS_MODEL_INPUT, ONE);
    x = add_node(m, "bn", CS_BATCHNORM, &bn, x, ONE);
    x = add_node(m, "add", CS_ADD, &none, x, CS_MODEL_INPUT);
    x = add_node(m, "relu", CS_RELU, &none, x, ONE);
    x = add_node(m, "flatten", CS_FLATTEN, &none, x, ONE);
    add_node(m, "dense", CS_DENSE, &dense, x, ONE);
    finish_net(m, 12, 13);
    return m;
}

static void test_parts_against_plain(void)
{
    if (!cs_onednn_usable()) {
        printf("[conv_parts] 1 skipped: oneDNN has no vector kernels for this CPU\n");
        return;
    }
    const int widths[2] = {128, 112}; /* 112 over 3 threads: parts of 32, 32 and 48 */
    for (int wi = 0; wi < 2; wi++)
        for (int threads = 2; threads <= 3; threads++)
            for (int n = 1; n <= 5; n += 4) {
                cs_parallel_set_threads(threads);
                cs_model *m = late_block(widths[wi]);
                const int top = m->n_layers - 1, k = m->layers[top].out.c;
                const size_t in = (size_t)n * cs_shape_size(m->input);
                float *x = malloc(in * sizeof *x), *want = malloc((size_t)n * k * sizeof *want);
                cs_rng g;
                cs_rng_seed(&g, 70 + n);
                for (size_t i = 0; x && i < in; i++) x[i] = (float)(2 * cs_rng_uniform(&g) - 1);
                cs_fast_set_mode(CS_FAST_OFF);
                cs_exec *e = cs_exec_new(m, n);
                if (!x || !want || !e || cs_exec_predict(e, x, n) != 0) {
                    CHECK(0, "setup");
                } else {
                    memcpy(want, cs_exec_logits(e), (size_t)n * k * sizeof *want);
                    /* A fresh exec whose buffers hold NaN: nothing left over from the plain pass. */
                    cs_exec_free(e);
                    e = cs_exec_new(m, n);
                    for (int i = 0; e && i < m->n_layers; i++)
                        memset(e->act[i], 0xff, (size_t)n * cs_shape_size(m->layers[i].out) * sizeof(float));
                    cs_fast_set_mode(CS_FAST_AUTO);
                    const cs_fast_chain *ch = cs_fast_plan_chain(cs_fast_plan_get(m), 0);
                    CHECK(ch && ch->last == 3 && cs_onednn_conv_channel_parts(ch->node.conv[0]) == threads,
                          "width %d, %d threads: the chain's conv runs in %d parts", widths[wi], threads,
                          ch ? cs_onednn_conv_channel_parts(ch->node.conv[0]) : -1);
                    CHECK(e && cs_exec_predict(e, x, n) == 0, "fast prediction");
                    double worst = 0, scale = 0;
                    for (int i = 0; e && i < n * k; i++) {
                        const double d = fabs(cs_exec_logits(e)[i] - want[i]);
                        if (!(d <= worst)) worst = d; /* a NaN stays */
                        scale = fmax(scale, fabs(want[i]));
                    }
                    CHECK(scale > 0.1 && worst <= 1e-5 * scale && !isnan(worst), "width %d, %d threads, %d images: off by %.3g",
                          widths[wi], threads, n, worst);
                }
                free(x), free(want);
                cs_exec_free(e);
                cs_model_free(m);
            }
    cs_parallel_set_threads(2);
}

int main(void)
{
    RUN(test_parts_against_plain);
    return test_summary("conv_parts");
}
