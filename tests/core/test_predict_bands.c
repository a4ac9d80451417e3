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

static void test_bands_against_chains_and_plain(void)
{
    if (!cs_onednn_usable()) return;
    cs_model *m = mobile_net();
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
            CHECK(e->chained[strided_at - 1] && e->chained[top - 2], "the blocks' inner nodes were not run on their own");
            const cs_fast_bands *a = cs_fast_plan_bands(cs_fast_plan_get(m), expand_at),
                                *b = cs_fast_plan_bands(cs_fast_plan_get(m), strided_at);
            CHECK(a && b && graph_net_block_apart(e, m, expand_at, a->stage[CS_BAND_PROJECT].last, a->stage[CS_BAND_PROJECT].addend) &&
                      graph_net_block_apart(e, m, strided_at, b->stage[CS_BAND_PROJECT].last, -1),
                  "a block writes where it reads");
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
    cs_model_free(m);
}

int main(void)
{
    RUN(test_blocks_found);
    RUN(test_bands_against_chains_and_plain);
    return test_summary("predict_bands");
}
