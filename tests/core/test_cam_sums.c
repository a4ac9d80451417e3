/*
 * test_cam_sums.c - Grad-CAM's channel weights from a dense kernel's channel sums
 * (cam_sums.h) against the full backward, on small VGG-like nets with random weights.
 *
 * The reference: the backward down to the Grad-CAM node, each channel's gradient
 * summed over the positions in double. The shortcut's weights and maps are held to
 * 1e-5 of the scale of the sums they stand for, M_c = (1 / hw) sum_q sum_j
 * |W[q C + c][j] g[j]| (g the gradient at the dense layer's pre-activation, W its
 * kernel): any float32 summation of those terms rounds within a small multiple of
 * 6e-8 M_c.
 */
#include "test.h"

#include "cam_sums.h"
#include "exec.h"
#include "explain/explain.h"
#include "gradcam.h"
#include "model.h"
#include "rng.h"

#define TOL 1e-5

typedef struct {
    const char *name;
    cs_layer_kind kind;
    cs_layer_config cfg;
} spec;

static const cs_layer_config CONV8 = {.filters = 8, .kernel = 3, .stride = 1, .pad_same = 1,
                                      .activation = CS_ACT_RELU, .he_normal = 1};
static const cs_layer_config CONV6 = {.filters = 6, .kernel = 3, .stride = 1, .pad_same = 1,
                                      .activation = CS_ACT_RELU, .he_normal = 1};

static cs_model *build(const char *arch, int side, const spec *s, int n)
{
    char err[256];
    cs_model *m = cs_model_new(arch, (cs_shape){side, side, 3});
    for (int i = 0; m && i < n; i++)
        if (cs_model_add(m, s[i].name, s[i].kind, &s[i].cfg, err, sizeof err) < 0) {
            fprintf(stderr, "setup %s: %s\n", arch, err);
            exit(99);
        }
    if (!m || cs_model_finish(m) != 0) exit(99);
    cs_model_init_weights(m, 11);
    /* Biases too, so that not every unit of a dense layer is alive or dead alike. */
    cs_rng r;
    cs_rng_seed(&r, 3);
    for (int i = 0; i < m->n_layers; i++)
        if ((m->layers[i].kind == CS_CONV2D || m->layers[i].kind == CS_DENSE) && m->layers[i].n_params > 1) {
            cs_param *b = &m->layers[i].params[1];
            for (size_t k = 0; k < b->size; k++) b->data[k] = (float)(cs_rng_uniform(&r) - 0.5) * 0.2f;
        }
    return m;
}

static float *image(const cs_model *m, uint64_t seed)
{
    size_t n = cs_shape_size(m->input);
    float *x = malloc(n * sizeof *x);
    if (!x) exit(99);
    cs_rng r;
    cs_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) x[i] = (float)(cs_rng_uniform(&r) * 2 - 1);
    return x;
}

/* The reference weights at `layer` (C doubles) by the full backward, and the scale
 * M_c of the sums the shortcut replaces (when the node reaches a dense one through
 * pools and a flatten; else 0). */
static void reference(cs_model *m, const float *x, int layer, int cls, int kind, double *alpha, double *scale)
{
    const cs_shape a = m->layers[layer].out;
    const int hw = a.h * a.w;
    cs_exec *e = cs_exec_new(m, 1);
    if (!e || cs_exec_forward(e, x, 1, 0, NULL) != 0) exit(99);
    cs_exec_seed_class(e, &cls, kind);
    if (cs_exec_backward(e, layer) != 0) exit(99);
    for (int c = 0; c < a.c; c++) {
        alpha[c] = scale[c] = 0;
        for (int p = 0; p < hw; p++) alpha[c] += e->grad[layer][(size_t)p * a.c + c];
        alpha[c] /= hw;
    }
    const int d = cs_cam_sums_dense(m, layer);
    if (d >= 0) {
        /* The full backward went through the dense node: its grad now holds d/d(pre-activation). */
        const cs_layer *l = &m->layers[d];
        const float *w = l->params[0].data, *g = e->grad[d];
        const int units = l->out.c, q = l->in.c / a.c;
        for (int c = 0; c < a.c; c++) {
            for (int p = 0; p < q; p++)
                for (int j = 0; j < units; j++) scale[c] += fabs((double)w[((size_t)p * a.c + c) * units + j] * g[j]);
            scale[c] /= hw;
        }
    }
    cs_exec_free(e);
}

/* The shortcut's weights against the reference for every spatial node, class and
 * score; the nodes where it applies must be exactly `expect` (a mask of node indices).
 * Returns how many nodes it applied at. */
static int check_weights(cs_model *m, const float *x, unsigned expect)
{
    int applied = 0;
    for (int layer = 0; layer < m->n_layers - 1; layer++) {
        const cs_shape a = m->layers[layer].out;
        if (a.h < 2 && a.w < 2) continue;
        CHECK((cs_cam_sums_dense(m, layer) >= 0) == !!(expect & (1u << layer)), "%s node %s: shortcut %s", m->arch,
              m->layers[layer].name, cs_cam_sums_dense(m, layer) >= 0 ? "taken" : "not taken");
        for (int k = 0; k < 4; k++) {
            cs_exec *e = cs_exec_new(m, 1);
            if (!e || cs_exec_forward(e, x, 1, 0, NULL) != 0) exit(99);
            const int top = m->n_layers - 1;
            int cls = k < 2 ? cs_argmax(e->act[top], m->layers[top].out.c) : 3;
            int kind = k % 2 ? CS_SCORE_PROBABILITY : CS_SCORE_LOGIT;
            float w[64];
            double ref[64], scale[64];
            cs_exec_seed_class(e, &cls, kind);
            int rc = cs_cam_sums_weights(e, layer, w);
            CHECK(rc == (expect & (1u << layer) ? 0 : 1), "%s %s: cs_cam_sums_weights says %d", m->arch,
                  m->layers[layer].name, rc);
            if (rc == 0) {
                applied++;
                CHECK(!e->reached[layer], "%s %s: the backward went below the dense node", m->arch,
                      m->layers[layer].name);
                reference(m, x, layer, cls, kind, ref, scale);
                double worst = 0, big = 0;
                for (int c = 0; c < a.c; c++) {
                    CHECK(fabs(w[c] - ref[c]) <= TOL * scale[c] + 1e-30, "%s %s class %d score %d channel %d: %.9g vs %.9g (scale %.3g)",
                          m->arch, m->layers[layer].name, cls, kind, c, w[c], ref[c], scale[c]);
                    if (scale[c] > 0 && fabs(w[c] - ref[c]) / scale[c] > worst) worst = fabs(w[c] - ref[c]) / scale[c];
                    if (fabs(ref[c]) > big) big = fabs(ref[c]);
                }
                CHECK(big > 0, "%s %s: every reference weight is zero (nothing tested)", m->arch, m->layers[layer].name);
                if (k == 0) fprintf(stderr, "    %s %s: worst |w - ref| = %.2e M\n", m->arch, m->layers[layer].name, worst);
            }
            cs_exec_free(e);
        }
    }
    return applied;
}

/* Grad-CAM through cs_explain_run, shortcut on and off, against the map the reference
 * weights make: map values within the weights' bound times |A|, heat likewise. */
static void check_maps(cs_model *m, const float *x, int layer, int expect_sums)
{
    char err[256];
    const cs_shape a = m->layers[layer].out;
    const int hw = a.h * a.w;
    for (int k = 0; k < 4; k++) {
        cs_explain_params p;
        cs_explain_params_default(&p);
        p.layer = layer;
        p.class_index = k < 2 ? -1 : 2;
        p.score_kind = k % 2 ? CS_SCORE_PROBABILITY : CS_SCORE_LOGIT;
        cs_explainer ex;
        cs_explain_map map[2];
        if (cs_explainer_init(&ex, m, x, NULL, err, sizeof err) != 0) exit(99);
        for (int off = 0; off < 2; off++) {
            cs_cam_sums_set_enabled(!off);
            CHECK(cs_explain_run(&ex, &cs_explain_gradcam, &p, &map[off], err, sizeof err) == 0, "run: %s", err);
        }
        cs_cam_sums_set_enabled(1);
        CHECK(map[0].channel_sums == expect_sums, "%s: channel_sums %d, expected %d", m->arch, map[0].channel_sums,
              expect_sums);
        CHECK(!map[1].channel_sums, "%s: channel sums taken while off", m->arch);
        CHECK(map[0].backwards == 1 && map[0].forwards == 1, "%s: %ld forwards, %ld backwards", m->arch,
              map[0].forwards, map[0].backwards);
        double ref[64], scale[64];
        reference(m, x, layer, map[0].class_index, p.score_kind, ref, scale);
        const float *act = ex.e->act[layer];
        double mx = 0, bound_mx = 0;
        double *want = malloc((size_t)hw * sizeof *want), *bound = malloc((size_t)hw * sizeof *bound);
        if (!want || !bound) exit(99);
        for (int i = 0; i < hw; i++) {
            double s = 0, b = 0;
            for (int c = 0; c < a.c; c++) {
                s += ref[c] * act[(size_t)i * a.c + c];
                b += (TOL * scale[c] + 1e-6 * fabs(ref[c])) * fabs(act[(size_t)i * a.c + c]);
            }
            want[i] = s > 0 ? s : 0;
            bound[i] = b + 1e-6 * want[i];
            if (want[i] > mx) mx = want[i], bound_mx = bound[i];
        }
        CHECK(mx > 0, "%s: the reference map is all zero (nothing tested)", m->arch);
        for (int v = 0; v < 2; v++)
            for (int i = 0; i < hw; i++) {
                CHECK(fabs(map[v].map[i] - want[i]) <= bound[i], "%s %s map[%d]: %.9g vs %.9g (bound %.3g)", m->arch,
                      v ? "full" : "sums", i, map[v].map[i], want[i], bound[i]);
                /* heat = map / max: off by the map's error and the max's, relative to the max. */
                double hb = (bound[i] + bound_mx) / mx * 1.01 + 1e-7;
                if (mx > 0)
                    CHECK(fabs(map[v].heat[i] - want[i] / mx) <= hb, "%s %s heat[%d]: %.9g vs %.9g (bound %.3g)",
                          m->arch, v ? "full" : "sums", i, map[v].heat[i], want[i] / mx, hb);
            }
        free(want);
        free(bound);
        cs_explain_map_free(&map[0]);
        cs_explain_map_free(&map[1]);
        cs_explainer_free(&ex);
    }
}

/* conv relu -> conv relu -> max pool -> flatten -> dense relu -> dense softmax. */
static void test_vgg_like(void)
{
    const spec s[] = {
        {"conv1", CS_CONV2D, CONV8},
        {"conv2", CS_CONV2D, CONV6},
        {"pool", CS_MAXPOOL, {.pool = 2}},
        {"flatten", CS_FLATTEN, {0}},
        {"fc1", CS_DENSE, {.units = 24, .activation = CS_ACT_RELU}},
        {"predictions", CS_DENSE, {.units = 5, .activation = CS_ACT_SOFTMAX}},
    };
    cs_model *m = build("vgglike", 12, s, 6);
    float *x = image(m, 1);
    /* conv2 and the pool reach fc1 through pools and the flatten; conv1 does not. */
    CHECK(check_weights(m, x, 1u << 1 | 1u << 2) == 8, "shortcut not applied at conv2 and the pool");
    check_maps(m, x, 1, 1);
    check_maps(m, x, 0, 0);
    CHECK(cs_cam_sums_bytes(m) == (size_t)6 * 24 * sizeof(float), "sums kept: %zu bytes", cs_cam_sums_bytes(m));
    CHECK(cs_cam_sums_bytes_bound(m) == (size_t)6 * 24 * sizeof(float), "bound %zu", cs_cam_sums_bytes_bound(m));
    /* Through cs_gradcam (the route and the benches): the same heat as the full backward. */
    cs_gradcam_result r[2];
    char err[256];
    for (int off = 0; off < 2; off++) {
        cs_cam_sums_set_enabled(!off);
        cs_exec *e = cs_exec_new(m, 1);
        CHECK(e && cs_gradcam(e, x, 1, -1, CS_SCORE_LOGIT, &r[off], err, sizeof err) == 0, "gradcam: %s", err);
        cs_exec_free(e);
    }
    cs_cam_sums_set_enabled(1);
    double worst = 0;
    for (int i = 0; i < r[0].h * r[0].w; i++)
        if (fabs(r[0].heatmap[i] - r[1].heatmap[i]) > worst) worst = fabs(r[0].heatmap[i] - r[1].heatmap[i]);
    CHECK(worst <= 1e-5, "cs_gradcam heat: sums against full backward %.2e", worst);
    free(r[0].heatmap);
    free(r[1].heatmap);
    free(x);
    cs_model_free(m);
}

/* Two max pools in a row, then a flatten, a dropout and fc1. */
static void test_two_pools_and_dropout(void)
{
    const spec s[] = {
        {"conv1", CS_CONV2D, CONV8},
        {"conv2", CS_CONV2D, CONV6},
        {"pool1", CS_MAXPOOL, {.pool = 2}},
        {"pool2", CS_MAXPOOL, {.pool = 2}},
        {"flatten", CS_FLATTEN, {0}},
        {"drop", CS_DROPOUT, {.rate = 0.5f}},
        {"fc1", CS_DENSE, {.units = 20, .activation = CS_ACT_RELU}},
        {"predictions", CS_DENSE, {.units = 5, .activation = CS_ACT_SOFTMAX}},
    };
    cs_model *m = build("twopools", 16, s, 8);
    float *x = image(m, 2);
    CHECK(check_weights(m, x, 1u << 1 | 1u << 2 | 1u << 3) == 12, "shortcut not applied");
    check_maps(m, x, 1, 1);
    free(x);
    cs_model_free(m);
}

/* Overlapping windows of the general max pool (3x3 at stride 2, 'same': positions in
 * two windows, and ties between them), dropouts on both sides of the flatten, fc1
 * without an activation of its own, then separate ReLU and Softmax nodes. */
static void test_general_pool_and_separate_activations(void)
{
    const spec s[] = {
        {"conv1", CS_CONV2D, CONV8},
        {"conv2", CS_CONV2D, CONV6},
        {"pool", CS_MAXPOOL, {.kernel = 3, .stride = 2, .pad_same = 1}},
        {"drop1", CS_DROPOUT, {.rate = 0.25f}},
        {"flatten", CS_FLATTEN, {0}},
        {"drop2", CS_DROPOUT, {.rate = 0.5f}},
        {"fc1", CS_DENSE, {.units = 20}},
        {"relu", CS_RELU, {0}},
        {"logits", CS_DENSE, {.units = 5}},
        {"softmax", CS_SOFTMAX, {0}},
    };
    cs_model *m = build("overlap", 11, s, 10);
    float *x = image(m, 3);
    CHECK(m->layers[2].cfg.pool == 0, "the pool took the square kernel");
    CHECK(check_weights(m, x, 1u << 1 | 1u << 2 | 1u << 3) == 12, "shortcut not applied");
    check_maps(m, x, 1, 1);
    free(x);
    cs_model_free(m);
}

/* Average pools whose divisors count only input positions: plain 2x2 windows,
 * overlapping 'same' windows (the border ones hold fewer positions), and a max pool
 * then 1x1 windows at stride 1 (torchvision's VGG16 in ONNX). */
static void test_average_pools(void)
{
    const spec plain[] = {
        {"conv1", CS_CONV2D, CONV8},
        {"conv2", CS_CONV2D, CONV6},
        {"pool", CS_AVGPOOL, {.kernel = 2}},
        {"flatten", CS_FLATTEN, {0}},
        {"fc1", CS_DENSE, {.units = 16, .activation = CS_ACT_RELU}},
        {"predictions", CS_DENSE, {.units = 5, .activation = CS_ACT_SOFTMAX}},
    };
    cs_model *m = build("avgplain", 12, plain, 6);
    float *x = image(m, 7);
    CHECK(check_weights(m, x, 1u << 1 | 1u << 2) == 8, "shortcut not applied through the average pool");
    check_maps(m, x, 1, 1);
    free(x);
    cs_model_free(m);

    const spec same[] = {
        {"conv1", CS_CONV2D, CONV8},
        {"conv2", CS_CONV2D, CONV6},
        {"pool", CS_AVGPOOL, {.kernel = 3, .stride = 2, .pad_same = 1}},
        {"flatten", CS_FLATTEN, {0}},
        {"fc1", CS_DENSE, {.units = 16, .activation = CS_ACT_RELU}},
        {"predictions", CS_DENSE, {.units = 5, .activation = CS_ACT_SOFTMAX}},
    };
    m = build("avgsame", 11, same, 6);
    x = image(m, 8);
    CHECK(check_weights(m, x, 1u << 1 | 1u << 2) == 8, "shortcut not applied through overlapping windows");
    check_maps(m, x, 1, 1);
    free(x);
    cs_model_free(m);

    const spec vgg[] = {
        {"conv1", CS_CONV2D, CONV8},
        {"conv2", CS_CONV2D, CONV6},
        {"pool", CS_MAXPOOL, {.pool = 2}},
        {"avgpool", CS_AVGPOOL, {.kernel = 1, .stride = 1, .count_include_pad = 1}},
        {"flatten", CS_FLATTEN, {0}},
        {"fc1", CS_DENSE, {.units = 16, .activation = CS_ACT_RELU}},
        {"predictions", CS_DENSE, {.units = 5, .activation = CS_ACT_SOFTMAX}},
    };
    m = build("maxthenavg", 12, vgg, 7);
    x = image(m, 9);
    CHECK(check_weights(m, x, 1u << 1 | 1u << 2 | 1u << 3) == 12, "shortcut not applied through both pools");
    check_maps(m, x, 1, 1);
    free(x);
    cs_model_free(m);
}

/* A conv between the node and the dense layer, an average pool counting padded zeros, a second reader of
 * the node: the full backward, with the same maps. */
static void test_other_paths_take_the_full_backward(void)
{
    const spec conv[] = {
        {"conv1", CS_CONV2D, CONV8},
        {"pool", CS_MAXPOOL, {.pool = 2}},
        {"conv2", CS_CONV2D, CONV6},
        {"flatten", CS_FLATTEN, {0}},
        {"fc1", CS_DENSE, {.units = 16, .activation = CS_ACT_RELU}},
        {"predictions", CS_DENSE, {.units = 5, .activation = CS_ACT_SOFTMAX}},
    };
    cs_model *m = build("convpath", 12, conv, 6);
    float *x = image(m, 4);
    /* conv1 -> pool -> conv2: only conv2 (and nothing below it) reaches fc1 alone. */
    CHECK(check_weights(m, x, 1u << 2) == 4, "conv2's shortcut");
    check_maps(m, x, 0, 0);
    check_maps(m, x, 1, 0);
    free(x);
    cs_model_free(m);

    /* Padded zeros in the divisor keep a share of each border window's gradient. */
    const spec avg[] = {
        {"conv1", CS_CONV2D, CONV8},
        {"conv2", CS_CONV2D, CONV6},
        {"pool", CS_AVGPOOL, {.kernel = 3, .stride = 2, .pad_explicit = 1, .pads = {1, 1, 1, 1}, .count_include_pad = 1}},
        {"flatten", CS_FLATTEN, {0}},
        {"fc1", CS_DENSE, {.units = 16, .activation = CS_ACT_RELU}},
        {"predictions", CS_DENSE, {.units = 5, .activation = CS_ACT_SOFTMAX}},
    };
    m = build("avgpadded", 12, avg, 6);
    x = image(m, 5);
    CHECK(check_weights(m, x, 1u << 2) == 4, "the average pool's own output still reaches fc1 alone");
    check_maps(m, x, 1, 0);
    free(x);
    cs_model_free(m);

    /* conv2 read by the pool and by a global average pool, the two joined above the
     * flatten: fc1's input gradient reaches conv2 both ways. */
    char err[256];
    m = cs_model_new("tworeaders", (cs_shape){12, 12, 3});
    cs_layer_config none = {0}, fc = {.units = 16, .activation = CS_ACT_RELU},
                    top = {.units = 5, .activation = CS_ACT_SOFTMAX}, pool = {.pool = 2};
    int c2 = -1, p = -1, f = -1, gap = -1, cat[2];
    int ok = m && cs_model_add(m, "conv1", CS_CONV2D, &CONV8, err, sizeof err) >= 0 &&
             (c2 = cs_model_add(m, "conv2", CS_CONV2D, &CONV6, err, sizeof err)) >= 0 &&
             (p = cs_model_add(m, "pool", CS_MAXPOOL, &pool, err, sizeof err)) >= 0 &&
             (f = cs_model_add(m, "flatten", CS_FLATTEN, &none, err, sizeof err)) >= 0 &&
             (gap = cs_model_add_node(m, "gap", CS_GLOBAL_AVGPOOL, &none, &c2, 1, err, sizeof err)) >= 0;
    cat[0] = f, cat[1] = gap;
    ok = ok && cs_model_add_node(m, "concat", CS_CONCATENATE, &none, cat, 2, err, sizeof err) >= 0 &&
         cs_model_add(m, "fc1", CS_DENSE, &fc, err, sizeof err) >= 0 &&
         cs_model_add(m, "predictions", CS_DENSE, &top, err, sizeof err) >= 0 && cs_model_finish(m) == 0;
    if (!ok) {
        fprintf(stderr, "setup: %s\n", err);
        exit(99);
    }
    cs_model_init_weights(m, 6);
    x = image(m, 6);
    CHECK(check_weights(m, x, 0) == 0, "a shortcut through a concatenation");
    check_maps(m, x, c2, 0);
    CHECK(cs_cam_sums_bytes_bound(m) == 0, "bound %zu for no dense node behind a flatten alone",
          cs_cam_sums_bytes_bound(m));
    free(x);
    cs_model_free(m);
}

/* After cs_model_params_changed the sums are made from the new kernel. */
static void test_sums_follow_parameters(void)
{
    const spec s[] = {
        {"conv1", CS_CONV2D, CONV8},
        {"conv2", CS_CONV2D, CONV6},
        {"pool", CS_MAXPOOL, {.pool = 2}},
        {"flatten", CS_FLATTEN, {0}},
        {"fc1", CS_DENSE, {.units = 24, .activation = CS_ACT_RELU}},
        {"predictions", CS_DENSE, {.units = 5, .activation = CS_ACT_SOFTMAX}},
    };
    cs_model *m = build("params", 12, s, 6);
    float *x = image(m, 7);
    CHECK(check_weights(m, x, 1u << 1 | 1u << 2) == 8, "before");
    CHECK(cs_cam_sums_bytes(m) > 0, "no sums kept");
    /* fc1's kernel changes: each channel's rows move by their own amount. */
    cs_param *k = &m->layers[4].params[0];
    for (size_t i = 0; i < k->size; i++) k->data[i] = k->data[i] * -1.5f + (float)((i * 7) % 13) * 0.01f;
    cs_model_params_changed(m);
    CHECK(cs_cam_sums_bytes(m) == 0, "stale sums counted");
    CHECK(check_weights(m, x, 1u << 1 | 1u << 2) == 8, "after");
    free(x);
    cs_model_free(m);
}

int main(void)
{
    RUN(test_vgg_like);
    RUN(test_two_pools_and_dropout);
    RUN(test_general_pool_and_separate_activations);
    RUN(test_average_pools);
    RUN(test_other_paths_take_the_full_backward);
    RUN(test_sums_follow_parameters);
    return test_summary("cam_sums");
}
