/*
 * test_predict_split.c - inverted residual blocks of single images split by their wide
 * channels over the workers (core/predict_split.c), against the same blocks chain by
 * chain and against the plain kernels; the slices of a conv they are made of.
 *
 * The net has two small blocks (16x16, a wide tensor of 192 and 200 channels, well
 * under the size that runs in bands): one with a stride-1 depthwise conv and a residual
 * add, one with a stride-2 depthwise conv, a project conv with no batch norm (a conv
 * on its own rather than a chain) and 200 wide channels, so that a part's share is not
 * a multiple of 16.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "exec.h"
#include "fast_plan.h"
#include "graph_net.h"
#include "layers/kernels.h"
#include "parallel.h"
#include "predict_split.h"
#include "rng.h"
#include "test.h"

static int first_at, second_at;

static cs_model *small_mobile_net(void) { return graph_net_mobile(16, 32, 192, 200, 48, 12, &first_at, &second_at); }

static void test_blocks_split(void)
{
    if (!cs_onednn_usable()) {
        printf("[predict_split] 1 skipped: oneDNN has no vector kernels for this CPU\n");
        return;
    }
    cs_fast_set_mode(CS_FAST_AUTO);
    cs_model *m = small_mobile_net();
    for (int threads = 1; threads <= 3; threads++) {
        cs_parallel_set_threads(threads);
        const cs_fast_plan *p = cs_fast_plan_get(m);
        int found = 0, bands = 0;
        for (int i = 0; i < m->n_layers; i++) found += cs_fast_plan_split(p, i) != NULL, bands += cs_fast_plan_bands(p, i) != NULL;
        const cs_fast_split *a = cs_fast_plan_split(p, first_at), *b = cs_fast_plan_split(p, second_at);
        if (threads == 1) {
            CHECK(found == 0, "1 thread: %d blocks split", found);
            continue;
        }
        CHECK(found == 2 && bands == 0 && a && b, "%d threads: %d blocks split, %d in bands", threads, found, bands);
        CHECK(a && a->parts == threads && b && b->parts == threads, "%d threads: parts %d, %d", threads, a ? a->parts : 0,
              b ? b->parts : 0);
        /* The first part carries the bias (and sum): the others only their channels' share. */
        if (b) {
            const cs_conv2d_geom *g0 = cs_onednn_conv_geom(b->slice[0][CS_BAND_PROJECT]),
                                 *gl = cs_onednn_conv_geom(b->slice[threads - 1][CS_BAND_PROJECT]);
            CHECK(g0->ic % 16 == 0 && g0->oc == 48 && gl->ic == 200 - (200 * (threads - 1) / threads) / 16 * 16,
                  "%d threads: project slices of %d and %d input channels", threads, g0->ic, gl->ic);
        }
        CHECK(a && cs_onednn_conv_sums(a->slice[0][CS_BAND_PROJECT]) && !cs_onednn_conv_sums(a->slice[1][CS_BAND_PROJECT]),
              "only the first part adds the residual");
    }
    cs_parallel_set_threads(2);
    cs_model_free(m);
}

static void test_slices_refused(void)
{
    if (!cs_onednn_usable()) return;
    cs_conv2d_geom g = {.n = 1, .ih = 8, .iw = 8, .ic = 64, .oh = 8, .ow = 8, .oc = 64, .kh = 3, .kw = 3, .sh = 1,
                        .sw = 1, .dh = 1, .dw = 1, .pt = 1, .pl = 1, .pb = 1, .pr = 1, .groups = 1};
    float *w = calloc((size_t)9 * 64 * 64, sizeof *w), b[64] = {0};
    char err[200];
    cs_onednn_conv *c = w ? cs_onednn_conv_new(&g, w, b, NULL, CS_ONEDNN_DIRECT, err, sizeof err) : NULL;
    CHECK(c != NULL, "a 3x3 conv: %s", c ? "made" : err);
    if (c) {
        CHECK(!cs_onednn_conv_slice(c, CS_SLICE_INPUTS, 0, 32, 1, err, sizeof err), "a 3x3 conv's inputs are not sliced");
        CHECK(!cs_onednn_conv_slice(c, CS_SLICE_OUTPUTS, 8, 32, 0, err, sizeof err), "slices start at multiples of 16");
        CHECK(!cs_onednn_conv_slice(c, CS_SLICE_OUTPUTS, 32, 80, 0, err, sizeof err), "slices end inside the channels");
        cs_onednn_conv *s = cs_onednn_conv_slice(c, CS_SLICE_OUTPUTS, 16, 48, 0, err, sizeof err);
        CHECK(s && cs_onednn_conv_geom(s)->oc == 32 && cs_onednn_conv_geom(s)->ic == 64, "an output slice: %s",
              s ? "made" : err);
        cs_onednn_conv_free(s);
    }
    cs_onednn_conv_free(c);
    free(w);
}

static void test_split_against_chains_and_plain(void)
{
    if (!cs_onednn_usable()) return;
    cs_model *m = small_mobile_net();
    const int top = m->n_layers - 1, k = m->layers[top].out.c;
    for (int n = 1; n <= 2; n++) {
        float *want = malloc((size_t)3 * n * k * sizeof *want), *x = want ? graph_net_images_and_plain(m, n, 70 + n, want) : NULL;
        if (!x) {
            CHECK(0, "setup");
            free(want);
            continue;
        }
        for (int threads = 2; threads <= 3; threads++) {
            cs_fast_set_mode(CS_FAST_AUTO);
            cs_parallel_set_threads(threads);
            cs_exec *e = cs_exec_new(m, n);
            if (!e) {
                CHECK(0, "exec");
                continue;
            }
            CHECK(graph_net_chains_then_blocks(e, m, x, n, want + n * k, want + 2 * n * k) == 0, "chain by chain, split");
            /* Fewer images than parts: the blocks were split, their inner nodes never run. */
            const int split = n < threads;
            CHECK(!split || (e->chained[second_at - 1] && e->chained[top - 2]),
                  "%d images, %d threads: the blocks' inner nodes were run on their own", n, threads);
            const double chains = graph_net_gap(want + 2 * n * k, want + n * k, n * k),
                         plain_off = graph_net_gap(want + 2 * n * k, want, n * k);
            double scale = 0;
            for (int i = 0; i < n * k; i++) scale = fmax(scale, fabs(want[i]));
            /* The project conv's sum in parts, added in another order. */
            CHECK(scale > 0.1 && !isnan(chains) && chains <= 1e-6 * scale,
                  "%d images, %d threads: split and chains differ by %.3g", n, threads, chains);
            CHECK(!isnan(plain_off) && plain_off <= 1e-4 * scale,
                  "%d images, %d threads: split and the plain kernels differ by %.3g", n, threads, plain_off);
            /* A worker short (a caller limited to one thread): conv by conv, the same logits. */
            graph_net_poison(e, m, n);
            const int was = cs_parallel_limit_this_thread(1);
            CHECK(cs_exec_predict(e, x, n) == 0, "one thread");
            cs_parallel_limit_this_thread(was);
            const double one = graph_net_gap(cs_exec_logits(e), want + n * k, n * k);
            CHECK(!isnan(one) && one <= 1e-6 * scale, "%d images, %d threads, limited to one: %.3g off", n, threads, one);
            const cs_fast_plan *p = cs_fast_plan_get(m);
            for (int b = 0; b < 2; b++) {
                const cs_fast_split *s = cs_fast_plan_split(p, b ? second_at : first_at);
                const cs_fast_stage *last = s ? &s->stage[CS_BAND_PROJECT] : NULL;
                CHECK(s && graph_net_block_apart(e, m, s->stage[0].first, last->last,
                                                  cs_onednn_conv_sums(last->conv) ? last->addend : -1),
                      "%d threads: block %d writes where it reads", threads, b);
            }
            CHECK(cs_fast_plan_bytes(p) <= cs_fast_plan_bytes_bound(m), "%d threads: the plan keeps %zu bytes, bound %zu",
                  threads, cs_fast_plan_bytes(p), cs_fast_plan_bytes_bound(m));
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
    RUN(test_blocks_split);
    RUN(test_slices_refused);
    RUN(test_split_against_chains_and_plain);
    return test_summary("predict_split");
}
