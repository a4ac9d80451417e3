/*
 * test_conv_parts.c - a single image through a conv whose kernel outweighs its output,
 * run as parts of its output channels, one per thread (core/onednn_conv.c), against the
 * plain kernels: with a residual add and an activation in its chain (the add gathered
 * into each part's output), for part widths that are and are not equal, and a batch
 * (which runs whole images instead). At 7x7 the conv is a direct one; at 14x14 it is
 * Winograd's, whose image is too short for a band of 8 rows a thread (and which adds
 * the residual and activates after its primitive, not in it).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "exec.h"
#include "fast_plan.h"
#include "graph_net.h"
#include "parallel.h"
#include "rng.h"
#include "simd.h"
#include "test.h"

/* side x side x c -> 3x3 conv to c -> batch norm -> add the input -> ReLU -> flatten -> softmax. */
static cs_model *late_block(int side, int c)
{
    const int ONE = GRAPH_NET_ONE;
    cs_model *m = cs_model_new("late", (cs_shape){side, side, c});
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

/* One case: the fast pass of n images on `threads` threads against the plain one. */
static void check_case(int side, int width, int threads, int n)
{
    cs_parallel_set_threads(threads);
    cs_model *m = late_block(side, width);
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
        const cs_onednn_conv *conv = ch ? ch->node.conv[0] : NULL;
        CHECK(ch && ch->last == 3 && conv && cs_onednn_conv_channel_parts(conv) == threads,
              "%dx%d, width %d, %d threads: the chain's conv runs in %d parts", side, side, width, threads,
              conv ? cs_onednn_conv_channel_parts(conv) : -1);
        const int wino = conv && strstr(cs_onednn_conv_impl(conv), "wino") != NULL;
        CHECK(wino == (side >= 8 && cs_cpu_avx512()), "%dx%d, width %d: %s", side, side, width,
              conv ? cs_onednn_conv_impl(conv) : "no conv");
        CHECK(e && cs_exec_predict(e, x, n) == 0, "fast prediction");
        double worst = 0, scale = 0;
        for (int i = 0; e && i < n * k; i++) {
            const double d = fabs(cs_exec_logits(e)[i] - want[i]);
            if (!(d <= worst)) worst = d; /* a NaN stays */
            scale = fmax(scale, fabs(want[i]));
        }
        CHECK(scale > 0.1 && worst <= 1e-5 * scale && !isnan(worst), "%dx%d, width %d, %d threads, %d images: off by %.3g",
              side, side, width, threads, n, worst);
    }
    free(x), free(want);
    cs_exec_free(e);
    cs_model_free(m);
}

static void test_parts_against_plain(void)
{
    if (!cs_onednn_usable()) {
        printf("[conv_parts] 1 skipped: oneDNN has no vector kernels for this CPU\n");
        return;
    }
    const int widths[2] = {128, 112}; /* 112 over 3 threads: parts of 32, 32 and 48 */
    for (int side = 7; side <= 14; side += 7)
        for (int wi = 0; wi < 2; wi++)
            for (int threads = 2; threads <= 3; threads++)
                for (int n = 1; n <= 5; n += 4) check_case(side, widths[wi], threads, n);
    cs_parallel_set_threads(2);
}

int main(void)
{
    RUN(test_parts_against_plain);
    return test_summary("conv_parts");
}
