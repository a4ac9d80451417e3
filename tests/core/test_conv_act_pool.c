/*
 * test_conv_act_pool.c - the one-pass conv -> batch norm -> activation (-> max pool) of
 * predictions (core/conv_act_pool.c) against a double-precision reference computed here
 * from the model's parameters, with and without a pool, 'valid' and 'same', strides 1
 * and 2, and against the plain kernels node by node; which chains take it; and predictions over a batch as chunks (core/predict_chunks.c) against the
 * same batch layer by layer.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "exec.h"
#include "fast_plan.h"
#include "graph_net.h"
#include "layers/conv_general.h"
#include "layers/kernels.h"
#include "parallel.h"
#include "predict_chunks.h"
#include "rng.h"
#include "simd.h"
#include "test.h"



/* The notebook network's first block: 28x28x1, 3x3 conv to 32 'valid', batch norm,
 * leaky ReLU 0.1, 2x2 max pool (the top). */
static cs_model *gray_block(void)
{
    cs_model *m = cs_model_new("gray", (cs_shape){28, 28, 1});
    cs_layer_config conv = {.filters = 32, .kernel = 3, .stride = 1, .he_normal = 1};
    cs_layer_config bn = {.momentum = 0.99f, .epsilon = 1e-3f}, leaky = {.alpha = 0.1f}, pool = {.pool = 2};
    int x = add_node(m, "conv", CS_CONV2D, &conv, CS_MODEL_INPUT, GRAPH_NET_ONE);
    x = add_node(m, "bn", CS_BATCHNORM, &bn, x, GRAPH_NET_ONE);
    x = add_node(m, "leaky", CS_LEAKY_RELU, &leaky, x, GRAPH_NET_ONE);
    add_node(m, "pool", CS_MAXPOOL, &pool, x, GRAPH_NET_ONE);
    finish_net(m, 3, 17);
    return m;
}

/* RGB of an odd size, 48 channels (a block of 32 and one of 16), ReLU6, a 3x3 pool
 * that leaves rows and columns over, then a softmax classifier. */
static cs_model *rgb_net(int same_padding)
{
    cs_model *m = cs_model_new("rgb", (cs_shape){17, 19, 3});
    cs_layer_config conv = {.filters = 48, .kernel = 3, .stride = 1, .pad_same = same_padding, .he_normal = 1};
    cs_layer_config bn = {.momentum = 0.99f, .epsilon = 1e-3f}, none = {0};
    cs_layer_config relu6 = {.actf = CS_ACTF_CLIP, .act_a = 0, .act_b = 6}, pool = {.pool = 3};
    cs_layer_config dense = {.units = 4, .activation = CS_ACT_SOFTMAX};
    int x = add_node(m, "conv", CS_CONV2D, &conv, CS_MODEL_INPUT, GRAPH_NET_ONE);
    x = add_node(m, "bn", CS_BATCHNORM, &bn, x, GRAPH_NET_ONE);
    x = add_node(m, "relu6", CS_ACTIVATION, &relu6, x, GRAPH_NET_ONE);
    x = add_node(m, "pool", CS_MAXPOOL, &pool, x, GRAPH_NET_ONE);
    x = add_node(m, "flatten", CS_FLATTEN, &none, x, GRAPH_NET_ONE);
    add_node(m, "dense", CS_DENSE, &dense, x, GRAPH_NET_ONE);
    finish_net(m, 4, 19);
    return m;
}

static float *random_images(const cs_model *m, int n, uint64_t seed)
{
    const size_t count = (size_t)n * cs_shape_size(m->input);
    float *x = malloc(count * sizeof *x);
    cs_rng g;
    cs_rng_seed(&g, seed);
    for (size_t i = 0; x && i < count; i++) x[i] = (float)(4 * cs_rng_uniform(&g) - 2);
    return x;
}

/* The output of node 2 (no pool) or 3 (a pool) for image x, in double precision from the
 * parameters: the conv (node 0, its stride and padding), batch norm (1) in inference,
 * the activation (2), the pool (3) when `pooled`. */
static void reference(const cs_model *m, const float *x, int pooled, double *y)
{
    const cs_layer *conv = &m->layers[0], *bn = &m->layers[1], *act = &m->layers[2];
    const int ih = m->input.h, iw = m->input.w, ic = m->input.c, k = conv->cfg.kernel, oc = conv->out.c;
    const int S = conv->cfg.stride ? conv->cfg.stride : 1, P = pooled ? m->layers[3].cfg.pool : 1;
    const int ph = pooled ? m->layers[3].out.h : conv->out.h, pw = pooled ? m->layers[3].out.w : conv->out.w;
    int pt = 0, pl = 0, end;
    if (conv->cfg.pad_same) {
        cs_conv2d_same_pads(ih, k, S, 1, 1, &pt, &end);
        cs_conv2d_same_pads(iw, k, S, 1, 1, &pl, &end);
    }
    const float *w = conv->params[0].data, *b = conv->params[1].data;
    for (int py = 0; py < ph; py++)
        for (int px = 0; px < pw; px++)
            for (int o = 0; o < oc; o++) {
                double best = -INFINITY;
                for (int dy = 0; dy < P; dy++)
                    for (int dx = 0; dx < P; dx++) {
                        const int oy = py * P + dy, ox = px * P + dx;
                        double s = b[o];
                        for (int ky = 0; ky < k; ky++)
                            for (int kx = 0; kx < k; kx++) {
                                const int iy = oy * S - pt + ky, ix = ox * S - pl + kx;
                                if (iy < 0 || iy >= ih || ix < 0 || ix >= iw) continue;
                                for (int c = 0; c < ic; c++)
                                    s += (double)x[(iy * iw + ix) * ic + c] * w[((ky * k + kx) * ic + c) * oc + o];
                            }
                        s = (s - bn->params[2].data[o]) / sqrt((double)bn->params[3].data[o] + bn->cfg.epsilon) *
                                bn->params[0].data[o] +
                            bn->params[1].data[o];
                        if (act->kind == CS_LEAKY_RELU) s = s > 0 ? s : s * act->cfg.alpha;
                        else s = s < act->cfg.act_a ? act->cfg.act_a : s > act->cfg.act_b ? act->cfg.act_b : s;
                        if (s > best) best = s;
                    }
                y[((size_t)py * pw + px) * oc + o] = best;
            }
}

/* A network's first conv without a pool above it: 3x3 'same' on an odd size, 48 channels,
 * batch norm and ReLU6 (the top). 41 columns at stride 2 make 21 outputs a row: a group
 * of eight at the left edge, one inside and five left over (three ways a row runs).
 * With 8 input channels instead, too many taps for the pass. */
static cs_model *stem_strided(int channels, int stride)
{
    cs_model *m = cs_model_new("stem", (cs_shape){17, 41, channels});
    cs_layer_config conv = {.filters = 48, .kernel = 3, .stride = stride, .pad_same = 1, .he_normal = 1};
    cs_layer_config bn = {.momentum = 0.99f, .epsilon = 1e-3f};
    cs_layer_config relu6 = {.actf = CS_ACTF_CLIP, .act_a = 0, .act_b = 6};
    int x = add_node(m, "conv", CS_CONV2D, &conv, CS_MODEL_INPUT, GRAPH_NET_ONE);
    x = add_node(m, "bn", CS_BATCHNORM, &bn, x, GRAPH_NET_ONE);
    add_node(m, "relu6", CS_ACTIVATION, &relu6, x, GRAPH_NET_ONE);
    finish_net(m, 6, 23);
    return m;
}

static cs_model *stem(int channels) { return stem_strided(channels, 2); }

/* Which chains the plan runs in one pass: to the pool where one reads the activation. */
static void test_which_chains_take_it(void)
{
    cs_fast_set_mode(CS_FAST_AUTO);
    enum { MODELS = 5 };
    cs_model *models[MODELS] = {gray_block(), rgb_net(0), rgb_net(1), stem(3), stem(8)};
    const int takes[MODELS] = {1, 1, 1, 1, 0}, last[MODELS] = {3, 3, 3, 2, 2};
    for (int k = 0; k < MODELS; k++) {
        const cs_fast_plan *p = cs_fast_plan_get(models[k]);
        const cs_fast_chain *ch = p ? cs_fast_plan_chain(p, 0) : NULL;
        CHECK(ch != NULL, "model %d: the conv starts a chain", k);
        if (!ch) continue;
        /* Without AVX-512 the pass never runs; a chain then ends at the activation. */
        const int want = takes[k] && cs_cpu_avx512();
        CHECK((ch->node.pooled != NULL) == want, "model %d: one pass %d, expected %d", k, ch->node.pooled != NULL, want);
        CHECK(ch->last == (want ? last[k] : 2), "model %d: the chain ends at node %d", k, ch->last);
    }
    for (int k = 0; k < MODELS; k++) cs_model_free(models[k]);
}

/* Model m's top (node 3 when pooled, else 2) against the double-precision reference,
 * predicted for batches of 1 and `batch` images on 1 and 2 threads. */
static void check_against_reference(cs_model *m, int pooled, int batch)
{
    cs_fast_set_mode(CS_FAST_AUTO);
    const int top = m->n_layers - 1;
    const size_t out = cs_shape_size(m->layers[top].out), in = cs_shape_size(m->input);
    double *want = malloc(out * sizeof *want);
    for (int threads = 1; threads <= 2; threads++)
        for (int n = 1; n <= batch; n += batch - 1) {
            cs_parallel_set_threads(threads);
            float *x = random_images(m, n, 40 + n);
            cs_exec *e = cs_exec_new(m, n);
            if (!x || !e || !want || cs_exec_predict(e, x, n) != 0) {
                CHECK(0, "setup");
                free(x), cs_exec_free(e);
                continue;
            }
            double worst = 0, scale = 0;
            for (int i = 0; i < n; i++) {
                reference(m, x + i * in, pooled, want);
                for (size_t j = 0; j < out; j++) {
                    worst = graph_net_worse(worst, e->act[top][i * out + j] - want[j]);
                    scale = fmax(scale, fabs(want[j]));
                }
            }
            /* 9 to 27 products in float: a few units of float's last place of the largest value. */
            CHECK(scale > 1 && !isnan(worst) && worst <= 1e-6 * scale, "%s, %d images, %d threads: off by %.3g (values "
                  "to %.3g)", pooled ? "pooled" : "no pool", n, threads, worst, scale);
            free(x);
            cs_exec_free(e);
            if (batch == 1) break;
        }
    free(want);
    cs_model_free(m);
}

/* The gray block (the top is the pool) and the stem (no pool; strides 2 and 1, padding,
 * a block of 16 channels past the 32). */
static void test_against_double_reference(void)
{
    check_against_reference(gray_block(), 1, 37);
    check_against_reference(stem(3), 0, 3);
    check_against_reference(stem_strided(3, 1), 0, 2);
}

/* The RGB net's probabilities through the one-pass chain against the plain kernels
 * node by node, and its pool's output against the reference. */
static void test_rgb_against_plain(void)
{
    cs_model *m = rgb_net(0);
    const int n = 9, top = m->n_layers - 1, k = m->layers[top].out.c;
    float *x = random_images(m, n, 77), *plain = malloc((size_t)n * k * sizeof *plain);
    cs_parallel_set_threads(2);
    cs_exec *e = cs_exec_new(m, n);
    cs_fast_set_mode(CS_FAST_OFF);
    if (!x || !plain || !e || cs_exec_predict(e, x, n) != 0) {
        CHECK(0, "setup");
    } else {
        memcpy(plain, e->act[top], (size_t)n * k * sizeof *plain);
        cs_fast_set_mode(CS_FAST_AUTO);
        CHECK(cs_exec_predict(e, x, n) == 0, "fast prediction");
        double worst = 0;
        for (int i = 0; i < n * k; i++) worst = graph_net_worse(worst, e->act[top][i] - plain[i]);
        CHECK(!isnan(worst) && worst <= 1e-5, "probabilities off by %.3g", worst);
        /* The pool's own output, from a full forward (every node written) on the fast path,
         * whose conv is oneDNN's: the reference checks the plain layout of the parameters. */
        const size_t out = cs_shape_size(m->layers[3].out), in = cs_shape_size(m->input);
        double *want = malloc(out * sizeof *want);
        CHECK(want && cs_exec_forward(e, x, n, 0, NULL) == 0, "forward");
        double off = 0, scale = 0;
        for (int i = 0; want && i < n; i++) {
            reference(m, x + i * in, 1, want);
            for (size_t j = 0; j < out; j++) {
                off = graph_net_worse(off, e->act[3][i * out + j] - want[j]);
                scale = fmax(scale, fabs(want[j]));
            }
        }
        CHECK(scale > 1 && !isnan(off) && off <= 1e-6 * scale, "pool output off by %.3g", off);
        free(want);
    }
    free(x), free(plain);
    cs_exec_free(e);
    cs_model_free(m);
}

/* A batch as chunks gives what the same batch gives layer by layer, for a batch with a
 * short last chunk, on 1 and 2 threads, with oneDNN's direct convs and with every fast
 * path; chunks are in fact used (not in the plain mode). */
static void test_chunks_change_nothing(void)
{
    cs_model *m = rgb_net(0);
    const int n = 45, top = m->n_layers - 1, k = m->layers[top].out.c;
    CHECK(cs_predict_chunk_size(m) >= 4, "chunks of %d images", cs_predict_chunk_size(m));
    const cs_fast_mode modes[2] = {CS_FAST_DIRECT, CS_FAST_AUTO};
    float *x = random_images(m, n, 91), *whole = malloc((size_t)2 * n * k * sizeof *whole);
    for (int mi = 0; mi < 2; mi++)
        for (int threads = 1; threads <= 2; threads++) {
            cs_fast_set_mode(modes[mi]);
            cs_parallel_set_threads(threads);
            cs_exec *e = cs_exec_new(m, n);
            if (!x || !whole || !e) {
                CHECK(0, "setup");
                cs_exec_free(e);
                continue;
            }
            e->chunks_off = 1;
            CHECK(cs_exec_predict(e, x, n) == 0, "layer by layer");
            memcpy(whole, e->act[top], (size_t)n * k * sizeof *whole);
            memcpy(whole + n * k, cs_exec_logits(e), (size_t)n * k * sizeof *whole);
            for (int i = 0; i < m->n_layers; i++) /* NaN: nothing left over may pass for the chunks' output */
                memset(e->act[i], 0xff, (size_t)n * cs_shape_size(m->layers[i].out) * sizeof(float));
            e->chunks_off = 0;
            CHECK(cs_exec_predict(e, x, n) == 0, "as chunks");
            CHECK(e->chunk_exec[0] != NULL, "mode %d, %d threads: chunks ran", mi, threads);
            double worst = 0;
            for (int i = 0; i < n * k; i++) worst = graph_net_worse(worst, e->act[top][i] - whole[i]);
            CHECK(!isnan(worst) && worst <= 1e-6, "mode %d, %d threads: off by %.3g", mi, threads, worst);
            /* The logits too (the softmax is fused into the dense layer). */
            const float *z = cs_exec_logits(e);
            worst = 0;
            for (int i = 0; i < n * k; i++) worst = graph_net_worse(worst, z[i] - whole[n * k + i]);
            CHECK(!isnan(worst) && worst <= 1e-5, "mode %d, %d threads: logits off by %.3g", mi, threads, worst);
            cs_exec_free(e);
        }
    cs_fast_set_mode(CS_FAST_OFF);
    cs_exec *e = cs_exec_new(m, n);
    CHECK(e && x && cs_exec_predict(e, x, n) == 0 && !e->chunk_exec[0], "the plain mode runs no chunks");
    cs_exec_free(e);
    cs_fast_set_mode(CS_FAST_AUTO);
    free(x), free(whole);
    cs_model_free(m);
}

int main(void)
{
    RUN(test_which_chains_take_it);
    RUN(test_against_double_reference);
    RUN(test_rgb_against_plain);
    RUN(test_chunks_change_nothing);
    return test_summary("conv_act_pool");
}
