/*
 * test_fast_conv.c - the inference fast paths (core/fast_plan.c, onednn_conv.c)
 * against the plain kernels that training runs.
 *
 * Every conv kind and window the fast path takes runs as a one-node model through an
 * exec three ways: plain (fast paths off), oneDNN's direct convolution, and the
 * choice inference makes (Winograd for the wide 3x3 layers). Batches of 1 (bands of
 * output rows over the workers), 2 (fewer images than workers) and 7 (runs of images,
 * the last one shorter), on 1 and 3 workers; 17 for the small layers.
 *
 * Tolerance, per output: |fast - plain| <= tol * M, with M = sum |x w| + |b| over the
 * products that make the output (computed here in double): the scale of the rounding
 * errors any float32 summation order makes. tol is 1e-6 for direct convolutions (a
 * float32 dot product in another order is within K * 2^-24 * M, and blocked sums stay
 * far below that: 3.5e-7 M measured here) and 1e-5 for Winograd, whose transforms add
 * and subtract values several times the output before they cancel (oneDNN's F(2x2,3x3)
 * and F(4x4,3x3) measured here: up to 1e-6 M).
 *
 * Then the rules of the plan: a fast forward feeds Grad-CAM the same heatmap, execs
 * that keep parameter gradients never take it, and new parameters are picked up after
 * cs_model_params_changed. Last, predictions: a net with every kind of chain (conv,
 * batch norm, residual add, ReLU, leaky ReLU, ReLU6) run by cs_exec_predict against
 * the plain forward.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "exec.h"
#include "fast_plan.h"
#include "gradcam.h"
#include "graph_net.h"
#include "layer_ops.h"
#include "layers/conv_general.h"
#include "layers/kernels.h"
#include "parallel.h"
#include "rng.h"
#include "simd.h"
#include "test.h"

#define TOL_DIRECT 1e-6
#define TOL_WINOGRAD 1e-5

typedef struct {
    const char *name;
    cs_layer_kind kind;
    int ih, iw, ic, filters; /* filters: conv2d and separable; depthwise: the multiplier */
    int kh, kw, sh, sw, dh, dw;
    int same;     /* 'same' padding (TensorFlow's), the simple Conv2D path when square */
    int pads[4];  /* explicit top, left, bottom, right when not 'same' (all 0: 'valid') */
    int groups;   /* Conv2D */
    int relu;
} conv_case;

static const conv_case CASES[] = {
    {"3x3 same (VGG)", CS_CONV2D, 12, 11, 16, 24, 3, 3, 1, 1, 1, 1, 1, {0}, 1, 1},
    {"3x3 valid (the notebook's)", CS_CONV2D, 13, 13, 32, 64, 3, 3, 1, 1, 1, 1, 0, {0}, 1, 0},
    {"3x3 same stride 2", CS_CONV2D, 13, 10, 8, 16, 3, 3, 2, 2, 1, 1, 1, {0}, 1, 0},
    {"5x5 valid stride 2, leftover rows", CS_CONV2D, 14, 12, 5, 7, 5, 5, 2, 2, 1, 1, 0, {0}, 1, 1},
    {"1x1", CS_CONV2D, 9, 7, 24, 40, 1, 1, 1, 1, 1, 1, 0, {0}, 1, 0},
    {"7x7 stride 2 pad 3 (ResNet)", CS_CONV2D, 20, 18, 3, 16, 7, 7, 2, 2, 1, 1, 0, {3, 3, 3, 3}, 1, 1},
    {"asymmetric pads", CS_CONV2D, 10, 9, 6, 10, 3, 3, 1, 1, 1, 1, 0, {2, 0, 1, 3}, 1, 0},
    {"3x1 stride 1x2", CS_CONV2D, 11, 12, 4, 8, 3, 1, 1, 2, 1, 1, 0, {1, 0, 1, 0}, 1, 1},
    {"dilation 2", CS_CONV2D, 13, 13, 5, 9, 3, 3, 1, 1, 2, 2, 0, {2, 2, 2, 2}, 1, 0},
    {"groups 2", CS_CONV2D, 10, 10, 8, 12, 3, 3, 1, 1, 1, 1, 0, {1, 1, 1, 1}, 2, 1},
    {"depthwise as groups (MobileNetV2)", CS_CONV2D, 12, 12, 32, 32, 3, 3, 2, 2, 1, 1, 0, {1, 1, 1, 1}, 32, 0},
    {"DepthwiseConv2D multiplier 2", CS_DEPTHWISE_CONV2D, 9, 11, 6, 2, 3, 3, 1, 1, 1, 1, 1, {0}, 1, 1},
    {"SeparableConv2D", CS_SEPARABLE_CONV2D, 10, 9, 8, 12, 3, 3, 1, 1, 1, 1, 1, {0}, 1, 1},
    {"3x3 wide (Winograd)", CS_CONV2D, 16, 13, 64, 64, 3, 3, 1, 1, 1, 1, 1, {0}, 1, 1},
    {"3x3 wide, 10x9 (Winograd)", CS_CONV2D, 10, 9, 64, 72, 3, 3, 1, 1, 1, 1, 1, {0}, 1, 0},
    {"3x3 128->256 (Winograd A)", CS_CONV2D, 24, 24, 128, 256, 3, 3, 1, 1, 1, 1, 1, {0}, 1, 1},
    {"3x3 256->256 (Winograd B)", CS_CONV2D, 20, 20, 256, 256, 3, 3, 1, 1, 1, 1, 1, {0}, 1, 1},
};
#define N_CASES ((int)(sizeof CASES / sizeof CASES[0]))

static cs_model *build(const conv_case *c)
{
    cs_layer_config cfg = {.kernel = c->kh, .kernel_w = c->kw == c->kh ? 0 : c->kw, .stride = c->sh,
                           .stride_w = c->sw == c->sh ? 0 : c->sw, .dilation = c->dh, .dilation_w = c->dw,
                           .pad_same = c->same, .groups = c->groups, .he_normal = 1,
                           .activation = c->relu ? CS_ACT_RELU : CS_ACT_LINEAR};
    if (cfg.dilation == 1 && cfg.dilation_w == 1) cfg.dilation = cfg.dilation_w = 0;
    if (c->kind == CS_DEPTHWISE_CONV2D) cfg.depth_multiplier = c->filters;
    else cfg.filters = c->filters;
    if (!c->same && (c->pads[0] || c->pads[1] || c->pads[2] || c->pads[3])) {
        cfg.pad_explicit = 1;
        memcpy(cfg.pads, c->pads, sizeof cfg.pads);
    }
    char err[256];
    cs_model *m = cs_model_new("fast", (cs_shape){c->ih, c->iw, c->ic});
    if (!m || cs_model_add(m, "conv", c->kind, &cfg, err, sizeof err) < 0 || cs_model_finish(m) != 0) {
        fprintf(stderr, "setup: %s: %s\n", c->name, err);
        exit(99);
    }
    cs_rng r;
    cs_rng_seed(&r, 11);
    for (size_t i = 0; i < m->n_param_floats; i++) m->param_block[i] = (float)(cs_rng_uniform(&r) - 0.5);
    cs_model_params_changed(m);
    return m;
}

/* The node's convolutions as conv_general.h geometries (one, or a separable conv's two). */
static int geoms(const conv_case *c, const cs_layer *l, int n, cs_conv2d_geom *g)
{
    const int mult = c->kind == CS_DEPTHWISE_CONV2D ? c->filters : 1;
    const int mid = c->kind == CS_CONV2D ? c->filters : c->ic * mult;
    const int groups = c->kind == CS_CONV2D ? c->groups : c->ic;
    g[0] = (cs_conv2d_geom){.n = n, .ih = c->ih, .iw = c->iw, .ic = c->ic, .oh = l->out.h, .ow = l->out.w,
                            .oc = mid, .kh = c->kh, .kw = c->kw, .sh = c->sh, .sw = c->sw, .dh = c->dh,
                            .dw = c->dw, .groups = groups};
    if (c->same) {
        cs_conv2d_same_pads(c->ih, c->kh, c->sh, c->dh, 1, &g[0].pt, &g[0].pb);
        cs_conv2d_same_pads(c->iw, c->kw, c->sw, c->dw, 1, &g[0].pl, &g[0].pr);
    } else {
        g[0].pt = c->pads[0], g[0].pl = c->pads[1], g[0].pb = c->pads[2], g[0].pr = c->pads[3];
    }
    if (c->kind != CS_SEPARABLE_CONV2D) return 1;
    g[1] = (cs_conv2d_geom){.n = n, .ih = l->out.h, .iw = l->out.w, .ic = mid, .oh = l->out.h, .ow = l->out.w,
                            .oc = c->filters, .kh = 1, .kw = 1, .sh = 1, .sw = 1, .dh = 1, .dw = 1, .groups = 1};
    return 2;
}

/* y and M (sum |x w| + |b| per output) of one convolution, in double, from the definition. */
static void reference(const cs_conv2d_geom *g, const double *x, const float *w, const float *b, double *y, double *mag)
{
    const int icg = g->ic / g->groups, ocg = g->oc / g->groups;
    for (int n = 0; n < g->n; n++)
        for (int oy = 0; oy < g->oh; oy++)
            for (int ox = 0; ox < g->ow; ox++)
                for (int o = 0; o < g->oc; o++) {
                    const int grp = o / ocg;
                    double s = b ? b[o] : 0, a = b ? fabs(b[o]) : 0;
                    for (int ky = 0; ky < g->kh; ky++)
                        for (int kx = 0; kx < g->kw; kx++) {
                            const int iy = oy * g->sh - g->pt + ky * g->dh, ix = ox * g->sw - g->pl + kx * g->dw;
                            if (iy < 0 || iy >= g->ih || ix < 0 || ix >= g->iw) continue;
                            for (int i = 0; i < icg; i++) {
                                const double xv = x[(((size_t)n * g->ih + iy) * g->iw + ix) * g->ic + grp * icg + i];
                                const double wv = w[(((size_t)ky * g->kw + kx) * icg + i) * g->oc + o];
                                s += xv * wv;
                                a += fabs(xv * wv);
                            }
                        }
                    const size_t at = (((size_t)n * g->oh + oy) * g->ow + ox) * g->oc + o;
                    y[at] = s;
                    mag[at] = a;
                }
}

/* M of the node's output for n images of x. A separable conv's second product reads the
 * first's output: its M counts the first's M through |w| (bounds the errors carried in). */
static double *magnitudes(const conv_case *c, const cs_model *m, int n, const float *x)
{
    const cs_layer *l = &m->layers[0];
    cs_conv2d_geom g[2];
    const int k = geoms(c, l, n, g);
    size_t in = (size_t)n * cs_shape_size(m->input), mid = (size_t)n * g[0].oh * g[0].ow * g[0].oc;
    double *xd = alloc_or_die(in * sizeof(double)), *y = alloc_or_die(mid * sizeof(double));
    double *mag = alloc_or_die(mid * sizeof(double));
    for (size_t i = 0; i < in; i++) xd[i] = x[i];
    reference(&g[0], xd, l->params[0].data, k == 1 ? l->params[1].data : NULL, y, mag);
    if (k == 2) {
        size_t out = (size_t)n * cs_shape_size(l->out);
        double *y2 = alloc_or_die(out * sizeof(double)), *mag2 = alloc_or_die(out * sizeof(double));
        reference(&g[1], mag, l->params[1].data, l->params[2].data, y2, mag2); /* sum |w| M1 + |b| */
        free(mag);
        mag = mag2;
        free(y2);
    }
    free(xd);
    free(y);
    return mag;
}

/* The node's output under a mode, on `threads` workers. */
static float *run(cs_model *m, const float *x, int n, cs_fast_mode mode, int threads, const cs_fast_node **used)
{
    cs_fast_set_mode(mode);
    cs_parallel_set_threads(threads);
    cs_exec *e = cs_exec_new(m, n);
    size_t out = (size_t)n * cs_shape_size(m->layers[0].out);
    float *y = alloc_or_die(out * sizeof(float));
    if (!e || cs_exec_forward(e, x, n, 0, NULL) != 0) {
        fprintf(stderr, "setup: forward failed\n");
        exit(99);
    }
    memcpy(y, e->act[0], out * sizeof(float));
    if (used) *used = cs_fast_plan_node(cs_fast_plan_get(m), 0);
    cs_exec_free(e);
    return y;
}

static int winograd_chosen(const cs_fast_node *f)
{
    for (int k = 0; f && k < CS_FAST_CONVS; k++)
        if (f->conv[k] && strstr(cs_onednn_conv_impl(f->conv[k]), "wino")) return 1;
    return 0;
}

static void test_every_window_against_plain(void)
{
    if (!cs_onednn_usable()) {
        fprintf(stderr, "    (oneDNN has no vector kernels on this CPU: the fast paths are off, nothing to compare)\n");
        return;
    }
    const int batches[] = {1, 2, 7, 17}, threads[] = {1, 3};
    int winograd_seen = 0;
    for (int ci = 0; ci < N_CASES; ci++) {
        const conv_case *c = &CASES[ci];
        cs_model *m = build(c);
        for (int bi = 0; bi < 4; bi++) {
            const int n = batches[bi];
            if (n > 2 && (long)c->ic * c->filters > 128 * 128) continue; /* the wide ones: the double loop takes long */
            if (n > 7 && (long)c->ic * c->filters > 32 * 64) continue; /* 17: the small ones only */
            size_t in = (size_t)n * cs_shape_size(m->input), out = (size_t)n * cs_shape_size(m->layers[0].out);
            float *x = alloc_or_die(in * sizeof(float));
            cs_rng r;
            cs_rng_seed(&r, 100 + ci * 10 + bi);
            for (size_t i = 0; i < in; i++) x[i] = (float)(2 * cs_rng_uniform(&r) - 1);
            double *mag = magnitudes(c, m, n, x);
            float *plain = run(m, x, n, CS_FAST_OFF, 1, NULL);
            for (int ti = 0; ti < 2; ti++)
                for (int mode = CS_FAST_DIRECT; mode <= CS_FAST_AUTO; mode++) {
                    const cs_fast_node *f = NULL;
                    float *y = run(m, x, n, (cs_fast_mode)mode, threads[ti], &f);
                    CHECK(f != NULL, "%s: the fast path did not take it (mode %d)", c->name, mode);
                    const int wino = winograd_chosen(f);
                    winograd_seen |= wino;
                    CHECK(mode == CS_FAST_AUTO || !wino, "%s: Winograd in direct mode", c->name);
                    const double tol = wino ? TOL_WINOGRAD : TOL_DIRECT;
                    double worst = 0;
                    size_t at = 0;
                    for (size_t i = 0; i < out; i++) {
                        double e = fabs((double)y[i] - plain[i]) / (mag[i] > 0 ? mag[i] : 1);
                        if (!(e <= worst)) worst = e, at = i;
                    }
                    CHECK(worst <= tol, "%s, batch %d, %d workers, %s: |fast - plain| = %.2e M at %zu (%g vs %g)",
                          c->name, n, threads[ti], f && f->conv[0] ? cs_onednn_conv_impl(f->conv[0]) : "?", worst,
                          at, y[at], plain[at]);
                    free(y);
                }
            free(plain);
            free(mag);
            free(x);
        }
        cs_model_free(m);
    }
    CHECK(winograd_seen || !cs_cpu_avx512(), "Winograd never chosen for the wide 3x3 layers");
    cs_fast_set_mode(CS_FAST_AUTO);
    cs_parallel_set_threads(2);
}

/* A small VGG-like net: Grad-CAM after a fast forward against Grad-CAM after a plain one. */
static void test_gradcam_after_fast_forward(void)
{
    if (!cs_onednn_usable()) return;
    char err[256];
    cs_model *m = cs_model_new("fastcam", (cs_shape){20, 20, 3});
    cs_layer_config c1 = {.filters = 64, .kernel = 3, .stride = 1, .pad_same = 1, .activation = CS_ACT_RELU,
                          .he_normal = 1};
    cs_layer_config c2 = c1, pool = {.pool = 2}, flat = {0}, dense = {.units = 5, .activation = CS_ACT_SOFTMAX};
    int ok = m && cs_model_add(m, "conv1", CS_CONV2D, &c1, err, sizeof err) >= 0 &&
             cs_model_add(m, "conv2", CS_CONV2D, &c2, err, sizeof err) >= 0 &&
             cs_model_add(m, "pool", CS_MAXPOOL, &pool, err, sizeof err) >= 0 &&
             cs_model_add(m, "flatten", CS_FLATTEN, &flat, err, sizeof err) >= 0 &&
             cs_model_add(m, "dense", CS_DENSE, &dense, err, sizeof err) >= 0 && cs_model_finish(m) == 0;
    if (!ok) {
        fprintf(stderr, "setup: %s\n", err);
        exit(99);
    }
    cs_model_init_weights(m, 5);
    float x[20 * 20 * 3];
    cs_rng r;
    cs_rng_seed(&r, 9);
    for (int i = 0; i < 20 * 20 * 3; i++) x[i] = (float)(cs_rng_uniform(&r) * 2 - 1);
    cs_gradcam_result res[2];
    for (int k = 0; k < 2; k++) {
        cs_fast_set_mode(k ? CS_FAST_AUTO : CS_FAST_OFF);
        cs_exec *e = cs_exec_new(m, 1);
        CHECK(e && cs_gradcam(e, x, 1, -1, CS_SCORE_LOGIT, &res[k], err, sizeof err) == 0, "grad-cam: %s", err);
        if (k) CHECK(cs_fast_plan_node(cs_fast_plan_get(m), 1) != NULL, "conv2 runs its plain kernel");
        cs_exec_free(e);
    }
    CHECK(res[0].class_index == res[1].class_index, "class %d vs %d", res[0].class_index, res[1].class_index);
    double worst = 0;
    for (int i = 0; i < res[0].h * res[0].w; i++)
        if (fabs(res[0].heatmap[i] - res[1].heatmap[i]) > worst) worst = fabs(res[0].heatmap[i] - res[1].heatmap[i]);
    CHECK(worst <= 1e-4, "heatmaps differ by %.2e", worst);
    free(res[0].heatmap);
    free(res[1].heatmap);
    cs_fast_set_mode(CS_FAST_AUTO);
    cs_model_free(m);
}

/* Training and gradient checks move the parameters between passes: an exec that keeps
 * parameter gradients runs the plain kernels, bit for bit; and after
 * cs_model_params_changed an inference pass sees the new parameters. */
static void test_plan_follows_parameters(void)
{
    if (!cs_onednn_usable()) return;
    const conv_case *c = &CASES[0];
    cs_model *m = build(c);
    const int n = 2;
    size_t in = (size_t)n * cs_shape_size(m->input), out = (size_t)n * cs_shape_size(m->layers[0].out);
    float *x = alloc_or_die(in * sizeof(float));
    for (size_t i = 0; i < in; i++) x[i] = (float)((i * 37) % 17) / 8.0f - 1.0f;
    float *plain = run(m, x, n, CS_FAST_OFF, 2, NULL);
    cs_fast_set_mode(CS_FAST_AUTO);
    cs_exec *e = cs_exec_new(m, n);
    CHECK(e && cs_exec_enable_param_grads(e) == 0, "exec");
    cs_exec_forward(e, x, n, 0, NULL);
    CHECK(!memcmp(e->act[0], plain, out * sizeof(float)), "an exec with parameter gradients took the fast path");
    cs_exec_free(e);
    free(plain);

    const cs_fast_node *f = NULL;
    float *before = run(m, x, n, CS_FAST_AUTO, 2, &f);
    CHECK(f != NULL, "no fast path");
    for (size_t i = 0; i < m->layers[0].params[0].size; i++) m->layers[0].params[0].data[i] *= -2.0f;
    cs_model_params_changed(m);
    float *after = run(m, x, n, CS_FAST_AUTO, 2, NULL), *want = run(m, x, n, CS_FAST_OFF, 2, NULL);
    double worst = 0, moved = 0;
    for (size_t i = 0; i < out; i++) {
        if (fabs(after[i] - want[i]) > worst) worst = fabs(after[i] - want[i]);
        moved += fabs(after[i] - before[i]);
    }
    CHECK(worst <= 1e-4 && moved > 1, "new parameters not seen: off by %.2e (moved %.2e)", worst, moved);
    free(before);
    free(after);
    free(want);
    free(x);
    cs_fast_set_mode(CS_FAST_AUTO);
    cs_model_free(m);
}

/* ---- chains (cs_exec_predict) ---- */

/* The notebook's blocks, a residual block with batch norms and ReLUs, a grouped conv
 * under a ReLU6, and a leaky ReLU over a stride-2 conv: every link a chain takes. */
static cs_model *chain_model(int *expect_chains)
{
    cs_model *m = cs_model_new("chains", (cs_shape){18, 18, 3});
    const int ONE = GRAPH_NET_ONE;
    /* 64 channels and more than 8x8: the 3x3 convs are the Winograd kind */
    cs_layer_config valid = {.filters = 64, .kernel = 3, .stride = 1, .he_normal = 1};
    cs_layer_config same = {.filters = 64, .kernel = 3, .stride = 1, .pad_same = 1, .he_normal = 1};
    cs_layer_config bn = {.momentum = 0.99f, .epsilon = 1e-3f}, leaky = {.alpha = 0.3f}, none = {0};
    cs_layer_config grouped = {.filters = 64, .kernel = 3, .stride = 1, .pad_same = 1, .groups = 64, .he_normal = 1};
    cs_layer_config relu6 = {.actf = CS_ACTF_CLIP, .act_a = 0, .act_b = 6};
    cs_layer_config down = {.filters = 24, .kernel = 3, .stride = 2, .pad_same = 1, .he_normal = 1};
    cs_layer_config pool = {.pool = 2}, dense = {.units = 7, .activation = CS_ACT_SOFTMAX};
    int x = add_node(m, "conv1", CS_CONV2D, &valid, CS_MODEL_INPUT, ONE); /* 16x16x64 */
    x = add_node(m, "bn1", CS_BATCHNORM, &bn, x, ONE);
    int a = add_node(m, "act1", CS_LEAKY_RELU, &leaky, x, ONE); /* chain 1: conv, bn, leaky */
    x = add_node(m, "conv2", CS_CONV2D, &same, a, ONE);
    x = add_node(m, "bn2", CS_BATCHNORM, &bn, x, ONE);
    x = add_node(m, "relu2", CS_RELU, &none, x, ONE); /* chain 2: conv, bn, relu */
    x = add_node(m, "conv3", CS_CONV2D, &same, x, ONE);
    x = add_node(m, "bn3", CS_BATCHNORM, &bn, x, ONE);
    x = add_node(m, "add3", CS_ADD, &none, x, a);
    x = add_node(m, "relu3", CS_RELU, &none, x, ONE); /* chain 3: conv, bn, add, relu */
    x = add_node(m, "dw4", CS_CONV2D, &grouped, x, ONE);
    x = add_node(m, "relu6_4", CS_ACTIVATION, &relu6, x, ONE); /* chain 4: grouped conv, clip */
    x = add_node(m, "conv5", CS_CONV2D, &down, x, ONE);
    x = add_node(m, "act5", CS_LEAKY_RELU, &leaky, x, ONE); /* chain 5: stride 2, leaky */
    x = add_node(m, "pool", CS_MAXPOOL, &pool, x, ONE);
    x = add_node(m, "flatten", CS_FLATTEN, &none, x, ONE);
    add_node(m, "dense", CS_DENSE, &dense, x, ONE);
    finish_net(m, 3, 17);
    *expect_chains = 5;
    return m;
}

static void test_predict_runs_chains(void)
{
    if (!cs_onednn_usable()) return;
    int expect;
    cs_model *m = chain_model(&expect);
    const int top = m->n_layers - 1, k = m->layers[top].out.c;
    for (int bi = 0; bi < 2; bi++) {
        const int n = bi ? 17 : 1;
        size_t in = (size_t)n * cs_shape_size(m->input);
        float *x = alloc_or_die(in * sizeof(float));
        cs_rng r;
        cs_rng_seed(&r, 23 + bi);
        for (size_t i = 0; i < in; i++) x[i] = (float)(2 * cs_rng_uniform(&r) - 1);
        cs_fast_set_mode(CS_FAST_OFF);
        cs_exec *plain = cs_exec_new(m, n);
        CHECK(plain && cs_exec_forward(plain, x, n, 0, NULL) == 0, "plain forward");
        for (int threads = 1; threads <= 3; threads += 2) {
            cs_parallel_set_threads(threads);
            cs_fast_set_mode(CS_FAST_AUTO);
            cs_exec *e = cs_exec_new(m, n);
            CHECK(e && cs_exec_predict(e, x, n) == 0, "predict");
            int chains = 0;
            for (int i = 0; i < m->n_layers; i++) chains += cs_fast_plan_chain(cs_fast_plan_get(m), i) != NULL;
            CHECK(chains == expect, "%d chains found, %d expected", chains, expect);
            /* The residual block's second conv is Winograd's, which leaves the sum and
             * the ReLU to after its output is reordered. */
            const cs_fast_chain *res = cs_fast_plan_chain(cs_fast_plan_get(m), 6);
            CHECK(res && winograd_chosen(&res->node) && cs_onednn_conv_sums(res->node.conv[0]),
                  "the residual conv runs Winograd with the sum");
            const int ran = e->chained[2] + e->chained[5] + e->chained[9] + e->chained[11] + e->chained[13];
            CHECK(ran == 5, "batch %d: %d chains ran", n, ran);
            double worst = 0, scale = 0;
            const float *zp = cs_exec_logits(plain), *ze = cs_exec_logits(e);
            for (size_t i = 0; i < (size_t)n * k; i++) {
                if (fabs(ze[i] - zp[i]) > worst) worst = fabs(ze[i] - zp[i]);
                if (fabs(zp[i]) > scale) scale = fabs(zp[i]);
            }
            /* Five convs deep, batch norms folded into the kernels: float32 rounding in
             * another order, within a part in 10^5 of the logits (6e-7 measured). */
            CHECK(worst <= 1e-5 * scale, "batch %d, %d workers: logits differ by %.2e (scale %.2e)", n, threads, worst,
                  scale);
            for (size_t i = 0; i < (size_t)n * k; i++)
                if (cs_argmax(e->act[top] + i / k * k, k) != cs_argmax(plain->act[top] + i / k * k, k)) {
                    CHECK(0, "a different class");
                    break;
                }
            /* Inner outputs were not written: no backward from there. */
            int cls[17] = {0};
            cs_exec_seed_class(e, cls, 0);
            CHECK(cs_exec_backward(e, -1) == -1, "backward after predict refused");
            CHECK(cs_exec_forward(e, x, n, 0, NULL) == 0, "forward");
            cs_exec_seed_class(e, cls, 0);
            CHECK(cs_exec_backward(e, -1) == 0, "backward after a full forward");
            cs_exec_free(e);
        }
        cs_exec_free(plain);
        free(x);
    }
    cs_fast_set_mode(CS_FAST_AUTO);
    cs_parallel_set_threads(2);
    cs_model_free(m);
}

/* The memory budget's bound holds what a plan keeps after every kind of pass, on any
 * number of workers and batches. */
static void test_plan_memory_within_bound(void)
{
    if (!cs_onednn_usable()) return;
    int expect;
    cs_model *m = chain_model(&expect);
    float *x = alloc_or_die((size_t)5 * cs_shape_size(m->input) * sizeof(float));
    for (int threads = 1; threads <= 3; threads += 2)
        for (int n = 1; n <= 5; n += 4) {
            cs_parallel_set_threads(threads);
            cs_exec *e = cs_exec_new(m, n);
            CHECK(e && cs_exec_predict(e, x, n) == 0 && cs_exec_forward(e, x, n, 0, NULL) == 0, "passes");
            cs_exec_free(e);
        }
    size_t kept = cs_fast_plan_bytes(cs_fast_plan_get(m)), bound = cs_fast_plan_bytes_bound(m);
    CHECK(kept > 0 && kept <= bound, "the plan keeps %zu bytes, the bound says %zu", kept, bound);
    cs_parallel_set_threads(2);
    free(x);
    cs_model_free(m);
}

int main(int argc, char **argv)
{
    if (cs_blas_init(argc, argv) != 0) return 99;
    RUN(test_every_window_against_plain);
    RUN(test_gradcam_after_fast_forward);
    RUN(test_plan_follows_parameters);
    RUN(test_predict_runs_chains);
    RUN(test_plan_memory_within_bound);
    return test_summary("fast_conv");
}
