/*
 * test_predict_bands.c - inverted residual blocks run band by band in predictions
 * (core/predict_bands.c) against the same blocks chain by chain, against the plain
 * kernels, and with the prediction's shared buffers against every node's own.
 *
 * The net has two blocks whose wide tensor (64x64x96) is too large for a core's cache:
 * one with a stride-1 depthwise conv and a residual add, one with a stride-2 depthwise
 * conv whose project conv has no batch norm (as ONNX exports fold them), so the last
 * stage is a conv on its own rather than a chain.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "exec.h"
#include "fast_plan.h"
#include "graph_net.h"
#include "layers/kernels.h"
#include "parallel.h"
#include "predict_bands.h"
#include "rng.h"
#include "test.h"


/* Every output buffer of e filled with NaN. */
static void poison(cs_exec *e, const cs_model *m, int n)
{
    for (int i = 0; i < m->n_layers; i++) memset(e->act[i], 0xff, (size_t)n * cs_shape_size(m->layers[i].out) * sizeof(float));
}

static int expand_at, strided_at;

static cs_model *mobile_net(void)
{
    const int ONE = GRAPH_NET_ONE;
    cs_model *m = cs_model_new("mobile", (cs_shape){64, 64, 3});
    cs_layer_config stem = {.filters = 16, .kernel = 3, .stride = 1, .pad_same = 1, .he_normal = 1};
    cs_layer_config expand = {.filters = 96, .kernel = 1, .stride = 1, .he_normal = 1};
    cs_layer_config dw = {.filters = 96, .kernel = 3, .stride = 1, .pad_same = 1, .groups = 96, .he_normal = 1};
    cs_layer_config dw2 = dw, project = {.filters = 16, .kernel = 1, .stride = 1, .he_normal = 1};
    cs_layer_config project24 = {.filters = 24, .kernel = 1, .stride = 1, .he_normal = 1};
    cs_layer_config bn = {.momentum = 0.99f, .epsilon = 1e-3f}, none = {0};
    cs_layer_config relu6 = {.actf = CS_ACTF_CLIP, .act_a = 0, .act_b = 6};
    cs_layer_config dense = {.units = 7, .activation = CS_ACT_SOFTMAX};
    dw2.stride = 2;
    int x = add_node(m, "stem", CS_CONV2D, &stem, CS_MODEL_INPUT, ONE);
    x = add_node(m, "stem_bn", CS_BATCHNORM, &bn, x, ONE);
    const int in = add_node(m, "stem_relu6", CS_ACTIVATION, &relu6, x, ONE);
    expand_at = x = add_node(m, "a_expand", CS_CONV2D, &expand, in, ONE);
    x = add_node(m, "a_expand_bn", CS_BATCHNORM, &bn, x, ONE);
    x = add_node(m, "a_expand_relu6", CS_ACTIVATION, &relu6, x, ONE);
    x = add_node(m, "a_dw", CS_CONV2D, &dw, x, ONE);
    x = add_node(m, "a_dw_bn", CS_BATCHNORM, &bn, x, ONE);
    x = add_node(m, "a_dw_relu6", CS_ACTIVATION, &relu6, x, ONE);
    x = add_node(m, "a_project", CS_CONV2D, &project, x, ONE);
    x = add_node(m, "a_project_bn", CS_BATCHNORM, &bn, x, ONE);
    x = add_node(m, "a_add", CS_ADD, &none, x, in);
    strided_at = x = add_node(m, "b_expand", CS_CONV2D, &expand, x, ONE);
    x = add_node(m, "b_expand_bn", CS_BATCHNORM, &bn, x, ONE);
    x = add_node(m, "b_expand_relu6", CS_ACTIVATION, &relu6, x, ONE);
    x = add_node(m, "b_dw", CS_CONV2D, &dw2, x, ONE);
    x = add_node(m, "b_dw_relu6", CS_ACTIVATION, &relu6, x, ONE);
    x = add_node(m, "b_project", CS_CONV2D, &project24, x, ONE);
    x = add_node(m, "pool", CS_GLOBAL_AVGPOOL, &none, x, ONE);
    add_node(m, "dense", CS_DENSE, &dense, x, ONE);
    finish_net(m, 8, 37);
    return m;
}

static void test_blocks_found(void)
{
    if (!cs_onednn_usable()) {
        printf("[predict_bands] 1 skipped: oneDNN has no vector kernels for this CPU\n");
        return;
    }
    cs_fast_set_mode(CS_FAST_AUTO);
    cs_model *m = mobile_net();
    const cs_fast_plan *p = cs_fast_plan_get(m);
    int found = 0;
    for (int i = 0; i < m->n_layers; i++) found += cs_fast_plan_bands(p, i) != NULL;
    const cs_fast_bands *a = cs_fast_plan_bands(p, expand_at), *b = cs_fast_plan_bands(p, strided_at);
    CHECK(found == 2 && a && b, "%d blocks found; at the expand convs: %d, %d", found, a != NULL, b != NULL);
    /* Several bands to an image, the residual add in the first, the conv alone last in the second. */
    CHECK(a && a->rows < 64 && a->stage[CS_BAND_PROJECT].last == strided_at - 1, "first block: %d rows a band",
          a ? a->rows : -1);
    CHECK(b && b->rows < 32 && b->stage[CS_BAND_PROJECT].last == b->stage[CS_BAND_PROJECT].first,
          "second block: %d rows a band", b ? b->rows : -1);
    cs_model_free(m);
}

static void test_bands_against_chains_and_plain(void)
{
    if (!cs_onednn_usable()) return;
    cs_model *m = mobile_net();
    const int top = m->n_layers - 1, k = m->layers[top].out.c;
    for (int n = 1; n <= 3; n += 2) {
        const size_t in = (size_t)n * cs_shape_size(m->input);
        float *x = malloc(in * sizeof *x), *want = malloc((size_t)3 * n * k * sizeof *want);
        cs_rng g;
        cs_rng_seed(&g, 50 + n);
        for (size_t i = 0; x && i < in; i++) x[i] = (float)(2 * cs_rng_uniform(&g) - 1);
        cs_fast_set_mode(CS_FAST_OFF);
        cs_parallel_set_threads(1);
        cs_exec *plain = cs_exec_new(m, n);
        if (!x || !want || !plain || cs_exec_predict(plain, x, n) != 0) {
            CHECK(0, "setup");
            free(x), free(want), cs_exec_free(plain);
            continue;
        }
        memcpy(want, cs_exec_logits(plain), (size_t)n * k * sizeof *want);
        cs_exec_free(plain);
        for (int threads = 1; threads <= 3; threads++) {
            cs_fast_set_mode(CS_FAST_AUTO);
            cs_parallel_set_threads(threads);
            cs_exec *e = cs_exec_new(m, n);
            if (!e) {
                CHECK(0, "exec");
                continue;
            }
            e->bands_off = 1;
            CHECK(cs_exec_predict(e, x, n) == 0, "chain by chain");
            memcpy(want + n * k, cs_exec_logits(e), (size_t)n * k * sizeof *want);
            poison(e, m, n); /* nothing the chains wrote may stand in for what the bands do not */
            e->bands_off = 0;
            CHECK(cs_exec_predict(e, x, n) == 0, "band by band");
            CHECK(e->chained[strided_at - 1] && e->chained[top - 2], "the blocks' inner nodes were not run on their own");
            memcpy(want + 2 * n * k, cs_exec_logits(e), (size_t)n * k * sizeof *want);
            /* Every node's own buffer: the shared ones change nothing. */
            float **table = e->predict_act;
            e->predict_act = e->act;
            CHECK(cs_exec_predict(e, x, n) == 0, "band by band, own buffers");
            e->predict_act = table;
            CHECK(memcmp(cs_exec_logits(e), want + 2 * n * k, (size_t)n * k * sizeof *want) == 0,
                  "%d images, %d threads: shared buffers change the logits", n, threads);
            double chains = 0, plain_off = 0, scale = 0;
            for (int i = 0; i < n * k; i++) {
                chains = graph_net_worse(chains, want[2 * n * k + i] - want[n * k + i]);
                plain_off = graph_net_worse(plain_off, want[2 * n * k + i] - want[i]);
                scale = fmax(scale, fabs(want[i]));
            }
            CHECK(scale > 0.1 && !isnan(chains) && chains <= 1e-6 * scale, "%d images, %d threads: bands and chains differ by %.3g", n,
                  threads, chains);
            CHECK(!isnan(plain_off) && plain_off <= 1e-4 * scale, "%d images, %d threads: bands and the plain kernels differ by %.3g", n,
                  threads, plain_off);
            cs_exec_free(e);
        }
        free(x), free(want);
    }
    cs_fast_set_mode(CS_FAST_AUTO);
    cs_parallel_set_threads(2);
    cs_model_free(m);
}

int main(void)
{
    RUN(test_blocks_found);
    RUN(test_bands_against_chains_and_plain);
    return test_summary("predict_bands");
}
