/*
 * test_predict_bands.c - inverted residual blocks run band by band in predictions
 * (core/predict_bands.c) against the same blocks chain by chain, against the plain
 * kernels, and with the prediction's shared buffers against every node's own.
 *
 * The net has two blocks whose wide tensor (64x64x96) is too large for a core's cache:
 * one with a stride-1 depthwise conv and a residual add, one with a stride-2 depthwise
 * conv whose project conv has no batch norm (as ONNX exports fold them), so the last
 * stage is a conv on its own rather than a chain. Blocks whose first conv is a net's stem
 * (3x3 stride 2 on the image) run the same way.
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


static int expand_at, strided_at;

static cs_model *mobile_net(void) { return graph_net_mobile(64, 16, 96, 96, 24, 8, &expand_at, &strided_at); }

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

/* A net whose first block starts at its stem: 144x144 images of `channels`, a 3x3
 * stride-2 conv to 64 channels (72x72x64, too large for a core's cache) with batch norm
 * and ReLU6, a depthwise conv with the same, a project conv to 16, a classifier. On RGB
 * the stem is the one-pass conv of few channels (conv_act_pool.h) where the CPU runs it;
 * on 8 channels, oneDNN's. */
static cs_model *stem_net(int channels)
{
    const int ONE = GRAPH_NET_ONE;
    cs_model *m = cs_model_new("stem", (cs_shape){144, 144, channels});
    if (!m) exit(99);
    cs_layer_config stem = {.filters = 64, .kernel = 3, .stride = 2, .pad_same = 1, .he_normal = 1};
    cs_layer_config dw = {.filters = 64, .kernel = 3, .stride = 1, .pad_same = 1, .groups = 64, .he_normal = 1};
    cs_layer_config project = {.filters = 16, .kernel = 1, .stride = 1, .he_normal = 1};
    cs_layer_config bn = {.momentum = 0.99f, .epsilon = 1e-3f}, none = {0};
    cs_layer_config relu6 = {.actf = CS_ACTF_CLIP, .act_a = 0, .act_b = 6};
    cs_layer_config dense = {.units = 7, .activation = CS_ACT_SOFTMAX};
    int x = add_node(m, "stem", CS_CONV2D, &stem, CS_MODEL_INPUT, ONE);
    x = add_node(m, "stem_bn", CS_BATCHNORM, &bn, x, ONE);
    x = add_node(m, "stem_relu6", CS_ACTIVATION, &relu6, x, ONE);
    x = add_node(m, "dw", CS_CONV2D, &dw, x, ONE);
    x = add_node(m, "dw_bn", CS_BATCHNORM, &bn, x, ONE);
    x = add_node(m, "dw_relu6", CS_ACTIVATION, &relu6, x, ONE);
    x = add_node(m, "project", CS_CONV2D, &project, x, ONE);
    x = add_node(m, "project_bn", CS_BATCHNORM, &bn, x, ONE);
    x = add_node(m, "pool", CS_GLOBAL_AVGPOOL, &none, x, ONE);
    add_node(m, "dense", CS_DENSE, &dense, x, ONE);
    finish_net(m, 11 + channels, 40 + channels);
    return m;
}

static void test_stem_blocks_found(void)
{
    if (!cs_onednn_usable()) return;
    cs_fast_set_mode(CS_FAST_AUTO);
    for (int channels = 3; channels <= 8; channels += 5) {
        cs_model *m = stem_net(channels);
        const cs_fast_bands *b = cs_fast_plan_bands(cs_fast_plan_get(m), 0);
        CHECK(b && b->rows < 72 && b->stage[CS_BAND_PROJECT].last == 7, "%d channels: the stem starts a block", channels);
        /* The one-pass conv wherever the plan chose it for the stem's chain. */
        const cs_fast_chain *ch = cs_fast_plan_chain(cs_fast_plan_get(m), 0);
        CHECK(b && ch && (b->stage[0].pooled != NULL) == (ch->node.pooled != NULL) && (b->stage[0].conv != NULL) != (b->stage[0].pooled != NULL),
              "%d channels: the block's first stage is the stem's chain", channels);
        if (channels == 8) CHECK(b && b->stage[0].conv, "8 channels: oneDNN's stem");
        cs_model_free(m);
    }
}

/* m's predictions in bands against the same chain by chain and against the plain
 * kernels, for 1 and 3 images on 1 to 3 threads; the blocks starting at nodes
 * blocks[0..n_blocks) are run whole, and the prediction's buffers keep them apart from
 * what they read. */
static void check_against_chains_and_plain(cs_model *m, const int *blocks, int n_blocks)
{
    const int top = m->n_layers - 1, k = m->layers[top].out.c;
    for (int n = 1; n <= 3; n += 2) {
        float *want = malloc((size_t)3 * n * k * sizeof *want), *x = want ? graph_net_images_and_plain(m, n, 50 + n, want) : NULL;
        if (!x) {
            CHECK(0, "setup");
            free(want);
            continue;
        }
        for (int threads = 1; threads <= 3; threads++) {
            cs_fast_set_mode(CS_FAST_AUTO);
            cs_parallel_set_threads(threads);
            cs_exec *e = cs_exec_new(m, n);
            if (!e) {
                CHECK(0, "exec");
                continue;
            }
            CHECK(graph_net_chains_then_blocks(e, m, x, n, want + n * k, want + 2 * n * k) == 0, "chain by chain, band by band");
            for (int i = 0; i < n_blocks; i++) {
                const cs_fast_bands *b = cs_fast_plan_bands(cs_fast_plan_get(m), blocks[i]);
                const cs_fast_stage *last = b ? &b->stage[CS_BAND_PROJECT] : NULL;
                CHECK(b && e->chained[blocks[i] + 1] && e->chained[last->last], "block %d: its inner nodes were not run on their own", i);
                CHECK(b && graph_net_block_apart(e, m, blocks[i], last->last, cs_onednn_conv_sums(last->conv) ? last->addend : -1),
                      "block %d writes where it reads", i);
            }
            /* Every node's own buffer: the shared ones change nothing. */
            float **table = e->predict_act;
            e->predict_act = e->act;
            CHECK(cs_exec_predict(e, x, n) == 0, "band by band, own buffers");
            e->predict_act = table;
            CHECK(memcmp(cs_exec_logits(e), want + 2 * n * k, (size_t)n * k * sizeof *want) == 0,
                  "%d images, %d threads: shared buffers change the logits", n, threads);
            const double chains = graph_net_gap(want + 2 * n * k, want + n * k, n * k),
                         plain_off = graph_net_gap(want + 2 * n * k, want, n * k);
            double scale = 0;
            for (int i = 0; i < n * k; i++) scale = fmax(scale, fabs(want[i]));
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
}

static void test_bands_against_chains_and_plain(void)
{
    if (!cs_onednn_usable()) return;
    cs_model *m = mobile_net();
    const int blocks[2] = {expand_at, strided_at};
    check_against_chains_and_plain(m, blocks, 2);
    cs_model_free(m);
    for (int channels = 3; channels <= 8; channels += 5) {
        m = stem_net(channels);
        const int stem_block = 0;
        check_against_chains_and_plain(m, &stem_block, 1);
        cs_model_free(m);
    }
}

int main(void)
{
    RUN(test_blocks_found);
    RUN(test_stem_blocks_found);
    RUN(test_bands_against_chains_and_plain);
    return test_summary("predict_bands");
}
