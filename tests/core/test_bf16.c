/*
 * test_bf16.c - inference in bf16 (core/bf16_plan.c, onednn_bf16.c) against fp32.
 *
 * The bound: bf16 keeps 8 bits of significand, so rounding an input or a weight to it
 * is a relative error of at most 2^-8. A product x w computed from the rounded values
 * is then off by at most ((1 + 2^-8)^2 - 1) |x w| = (2^-7 + 2^-16) |x w|, and a sum of
 * them (accumulated in fp32) by that times M = sum |x w| + |b| over the products that
 * make the output, plus fp32's own rounding of the sum (below 1e-5 M for these sizes).
 * Each conv and dense output is checked against a double-precision reference of the
 * fp32 layer within (2^-7 + 2^-16 + 1e-5) M; ReLU and the folded batch norm of a
 * chain are 1-Lipschitz per channel, so the bound carries through them (scaled by
 * the batch norm's factor, folded into M here by using the folded kernel).
 *
 * Each case also checks that bf16 did run (its error is above fp32's rounding
 * somewhere) so an fp32 fallback cannot pass for it. Then the notebook network
 * (models/fmnist.csm): top-1 agreement with fp32 on the first 2000 Fashion-MNIST test
 * images at least 99.5 %; training and gradient passes of a bf16 model stay fp32 bit
 * for bit; a sidecar's "precision". On a CPU without AVX512-BF16 and AMX-BF16 only the
 * refusal runs, and the output says so.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bf16_plan.h"
#include "dataset.h"
#include "exec.h"
#include "model.h"
#include "model_file.h"
#include "parallel.h"
#include "rng.h"
#include "sidecar.h"
#include "test.h"

#define U_BF16 (1.0 / 256)                                 /* 2^-8: bf16's relative rounding error */
#define TOL_BF16 ((1 + U_BF16) * (1 + U_BF16) - 1 + 1e-5) /* per unit of M */
#define AGREEMENT 0.995

static int g_bf16; /* this CPU runs bf16 */

typedef struct {
    const char *name;
    int dense;
    int ih, iw, ic, oc, k, stride, same, groups;
    int relu;
} layer_case;

static const layer_case CASES[] = {
    {"conv 3x3 same ReLU (VGG)", 0, 14, 13, 16, 32, 3, 1, 1, 1, 1},
    {"conv 3x3 valid (the notebook's)", 0, 13, 13, 32, 64, 3, 1, 0, 1, 0},
    {"conv 3x3 same stride 2", 0, 11, 12, 8, 16, 3, 2, 1, 1, 0},
    {"conv 1x1", 0, 7, 9, 24, 40, 1, 1, 0, 1, 1},
    {"conv groups 2", 0, 10, 10, 8, 12, 3, 1, 1, 2, 1},
    {"conv 3x3 64->64 wide", 0, 16, 16, 64, 64, 3, 1, 1, 1, 1},
    {"dense 300->70", 1, 1, 1, 300, 70, 0, 0, 0, 1, 0},
    {"dense 1600->64 ReLU", 1, 1, 1, 1600, 64, 0, 0, 0, 1, 1},
    {"dense 64->10", 1, 1, 1, 64, 10, 0, 0, 0, 1, 0},
};
#define N_CASES ((int)(sizeof CASES / sizeof CASES[0]))

static cs_model *build(const layer_case *c)
{
    cs_layer_config cfg = {.he_normal = 1, .activation = c->relu ? CS_ACT_RELU : CS_ACT_LINEAR};
    if (c->dense) {
        cfg.units = c->oc;
    } else {
        cfg.filters = c->oc, cfg.kernel = c->k, cfg.stride = c->stride, cfg.pad_same = c->same;
        cfg.groups = c->groups;
    }
    char err[256];
    cs_model *m = cs_model_new("bf16", (cs_shape){c->ih, c->iw, c->ic});
    if (!m || cs_model_add(m, "layer", c->dense ? CS_DENSE : CS_CONV2D, &cfg, err, sizeof err) < 0 ||
        cs_model_finish(m) != 0) {
        fprintf(stderr, "setup: %s: %s\n", c->name, err);
        exit(99);
    }
    cs_rng r;
    cs_rng_seed(&r, 5);
    for (size_t i = 0; i < m->n_param_floats; i++) m->param_block[i] = (float)(cs_rng_uniform(&r) - 0.5);
    cs_model_params_changed(m);
    return m;
}

/* The layer's output and M for n images of x, in double, from the definition (a dense
 * layer is a 1x1 conv over a 1x1 image). */
static void reference(const layer_case *c, const cs_layer *l, int n, const float *x, double *y, double *mag)
{
    const int oh = l->out.h, ow = l->out.w, k = c->dense ? 1 : c->k, s = c->dense ? 1 : c->stride;
    const int icg = c->ic / c->groups, ocg = c->oc / c->groups;
    const int pt = c->same ? ((oh - 1) * s + k - c->ih) / 2 : 0, pl = c->same ? ((ow - 1) * s + k - c->iw) / 2 : 0;
    const float *w = l->params[0].data, *b = l->params[1].data;
    for (int i = 0; i < n; i++)
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++)
                for (int o = 0; o < c->oc; o++) {
                    const int grp = o / ocg;
                    double sum = b[o], a = fabs(b[o]);
                    for (int ky = 0; ky < k; ky++)
                        for (int kx = 0; kx < k; kx++) {
                            const int iy = oy * s - pt + ky, ix = ox * s - pl + kx;
                            if (iy < 0 || iy >= c->ih || ix < 0 || ix >= c->iw) continue;
                            for (int q = 0; q < icg; q++) {
                                const double xv = x[(((size_t)i * c->ih + iy) * c->iw + ix) * c->ic + grp * icg + q];
                                const double wv = w[(((size_t)ky * k + kx) * icg + q) * c->oc + o];
                                sum += xv * wv;
                                a += fabs(xv * wv);
                            }
                        }
                    const size_t at = (((size_t)i * oh + oy) * ow + ox) * c->oc + o;
                    y[at] = c->relu && sum < 0 ? 0 : sum;
                    mag[at] = a;
                }
}

/* Node 0's output for n images under the model's precision, on `threads` workers. */
static float *run(cs_model *m, const float *x, int n, int threads)
{
    cs_parallel_set_threads(threads);
    cs_exec *e = cs_exec_new(m, n);
    size_t out = (size_t)n * cs_shape_size(m->layers[0].out);
    float *y = alloc_or_die(out * sizeof(float));
    if (!e || cs_exec_forward(e, x, n, 0, NULL) != 0) {
        fprintf(stderr, "setup: forward failed\n");
        exit(99);
    }
    memcpy(y, e->act[0], out * sizeof(float));
    cs_exec_free(e);
    return y;
}

static void test_layers_within_bf16_bound(void)
{
    if (!g_bf16) {
        fprintf(stderr, "    (no bf16 on this CPU: layers not run in bf16)\n");
        return;
    }
    const int batches[] = {1, 3}, threads[] = {1, 2};
    for (int ci = 0; ci < N_CASES; ci++) {
        const layer_case *c = &CASES[ci];
        cs_model *m = build(c);
        char why[300];
        CHECK(cs_model_set_precision(m, CS_PRECISION_BF16, why, sizeof why) == 0, "%s: %s", c->name, why);
        for (int bi = 0; bi < 2; bi++) {
            const int n = batches[bi];
            size_t in = (size_t)n * cs_shape_size(m->input), out = (size_t)n * cs_shape_size(m->layers[0].out);
            float *x = alloc_or_die(in * sizeof(float));
            double *ref = alloc_or_die(out * sizeof(double)), *mag = alloc_or_die(out * sizeof(double));
            cs_rng r;
            cs_rng_seed(&r, 40 + ci * 3 + bi);
            for (size_t i = 0; i < in; i++) x[i] = (float)(2 * cs_rng_uniform(&r) - 1);
            reference(c, &m->layers[0], n, x, ref, mag);
            for (int ti = 0; ti < 2; ti++) {
                float *y = run(m, x, n, threads[ti]);
                const cs_bf16_plan *p = cs_bf16_plan_get(m);
                CHECK(cs_bf16_plan_nodes(p) == 1, "%s: the layer does not run in bf16", c->name);
                CHECK(strstr(cs_bf16_plan_impl(p), "bf16") != NULL, "%s: implementation '%s'", c->name,
                      cs_bf16_plan_impl(p));
                double worst = 0, largest = 0;
                size_t at = 0;
                for (size_t i = 0; i < out; i++) {
                    const double e = fabs(y[i] - ref[i]) / (mag[i] > 0 ? mag[i] : 1);
                    if (!(e <= worst)) worst = e, at = i;
                    if (e > largest) largest = e;
                }
                CHECK(worst <= TOL_BF16, "%s, batch %d, %d workers: |bf16 - exact| = %.2e M at %zu (%g vs %g)",
                      c->name, n, threads[ti], worst, at, y[at], ref[at]);
                /* fp32 would stay below 1e-6 M: above it, the inputs were rounded to bf16. */
                CHECK(largest > 1e-4, "%s: error %.2e M, as small as fp32's: did bf16 run?", c->name, largest);
                if (bi == 1 && ti == 1)
                    fprintf(stderr, "    %-32s largest error %.2e M (bound %.2e M), %s\n", c->name, worst, TOL_BF16,
                            cs_bf16_plan_impl(p));
                free(y);
            }
            free(x);
            free(ref);
            free(mag);
        }
        cs_model_free(m);
    }
    cs_parallel_set_threads(2);
}

/* Top-1 classes of n test images from index 0, in batches, under the model's precision. */
static int *classify(const cs_model *m, const cs_dataset *d, int n)
{
    const int batch = 100, px = d->h * d->w;
    int *top = alloc_or_die((size_t)n * sizeof *top);
    float *x = alloc_or_die((size_t)batch * px * sizeof *x);
    cs_exec *e = cs_exec_new(m, batch);
    if (!e) exit(99);
    for (int at = 0; at < n; at += batch) {
        const int k = n - at < batch ? n - at : batch;
        for (int i = 0; i < k; i++) cs_dataset_image_float(d, at + i, x + (size_t)i * px);
        if (cs_exec_predict(e, x, k) != 0) exit(99);
        const float *p = e->act[m->n_layers - 1];
        for (int i = 0; i < k; i++) top[at + i] = cs_argmax(p + (size_t)i * m->n_classes, m->n_classes);
    }
    cs_exec_free(e);
    free(x);
    return top;
}

static void test_notebook_network_agrees(void)
{
    if (!g_bf16) {
        fprintf(stderr, "    (no bf16 on this CPU: the notebook network not run in bf16)\n");
        return;
    }
    char err[400];
    cs_model *m = cs_model_load("models/fmnist.csm", err, sizeof err);
    cs_dataset d;
    CHECK(m != NULL, "models/fmnist.csm: %s", err);
    CHECK(cs_dataset_load(CS_DEFAULT_DATA_DIR, "test", &d, err, sizeof err) == 0, "%s", err);
    if (!m || t_case_fails) {
        cs_model_free(m);
        return;
    }
    const int n = 2000;
    int *fp32 = classify(m, &d, n);
    CHECK(cs_model_set_precision(m, CS_PRECISION_BF16, err, sizeof err) == 0, "%s", err);
    int *bf16 = classify(m, &d, n);
    /* Both convs and both dense layers, the first three with their batch norm and
     * activation as chains. */
    CHECK(cs_bf16_plan_nodes(cs_bf16_plan_get(m)) == 4, "%d nodes in bf16, not 4",
          cs_bf16_plan_nodes(cs_bf16_plan_get(m)));
    int same = 0, right32 = 0, right16 = 0;
    for (int i = 0; i < n; i++) {
        same += fp32[i] == bf16[i];
        right32 += fp32[i] == d.labels[i];
        right16 += bf16[i] == d.labels[i];
    }
    fprintf(stderr, "    notebook network, %d test images: top-1 agreement %.4f, accuracy fp32 %.4f, bf16 %.4f\n", n,
            (double)same / n, (double)right32 / n, (double)right16 / n);
    CHECK(same >= AGREEMENT * n, "top-1 agreement %d of %d, below %.3f", same, n, AGREEMENT);
    free(fp32);
    free(bf16);
    cs_dataset_free(&d);
    cs_model_free(m);
}

/* Training passes and passes that keep parameter gradients of a bf16 model are fp32's, bit for bit. */
static void test_training_stays_fp32(void)
{
    if (!g_bf16) {
        fprintf(stderr, "    (no bf16 on this CPU: nothing runs in bf16 to keep out of training)\n");
        return;
    }
    cs_model *m = build(&CASES[1]);
    const int n = 4;
    size_t in = (size_t)n * cs_shape_size(m->input), out = (size_t)n * cs_shape_size(m->layers[0].out);
    float *x = alloc_or_die(in * sizeof(float)), *y32 = alloc_or_die(out * sizeof(float));
    cs_rng r;
    cs_rng_seed(&r, 9);
    for (size_t i = 0; i < in; i++) x[i] = (float)cs_rng_uniform(&r);
    for (int pass = 0; pass < 2; pass++) {
        char why[300];
        cs_model_set_precision(m, pass ? CS_PRECISION_BF16 : CS_PRECISION_FP32, why, sizeof why);
        cs_exec *e = cs_exec_new(m, n);
        if (!e || cs_exec_enable_param_grads(e) != 0) exit(99);
        CHECK(cs_exec_forward(e, x, n, 0, NULL) == 0, "forward");
        if (pass == 0) memcpy(y32, e->act[0], out * sizeof(float));
        else CHECK(memcmp(y32, e->act[0], out * sizeof(float)) == 0, "a pass with parameter gradients ran bf16");
        cs_exec_free(e);
    }
    /* And an inference pass of the same model does run bf16. */
    float *y16 = run(m, x, n, 2);
    CHECK(memcmp(y32, y16, out * sizeof(float)) != 0, "inference of the bf16 model ran fp32");
    free(y16);
    free(x);
    free(y32);
    cs_model_free(m);
}

/* A CPU without AVX512-BF16 and AMX-BF16, simulated: bf16 is refused with the reason,
 * the model stays fp32 and runs fp32. */
static void test_refused_without_bf16(void)
{
    cs_model *m = build(&CASES[0]);
    const int n = 2;
    size_t in = (size_t)n * cs_shape_size(m->input), out = (size_t)n * cs_shape_size(m->layers[0].out);
    float *x = alloc_or_die(in * sizeof(float));
    for (size_t i = 0; i < in; i++) x[i] = (float)(i % 7) / 7;
    float *y32 = run(m, x, n, 2);
    if (g_bf16) { /* made in bf16 first: forcing the CPU's bits off must stop it too */
        char why[300];
        CHECK(cs_model_set_precision(m, CS_PRECISION_BF16, why, sizeof why) == 0, "%s", why);
        float *y16 = run(m, x, n, 2);
        CHECK(memcmp(y16, y32, out * sizeof(float)) != 0, "bf16 made no difference");
        free(y16);
    }
    cs_bf16_force_cpu(0);
    char why[300] = "";
    CHECK(cs_bf16_unit(why, sizeof why) == NULL, "a unit without bf16 bits");
    float *y = run(m, x, n, 2);
    CHECK(memcmp(y, y32, out * sizeof(float)) == 0, "a bf16 model ran bf16 on a CPU without it");
    free(y);
    CHECK(cs_model_set_precision(m, CS_PRECISION_BF16, why, sizeof why) == -1, "bf16 accepted without the CPU");
    CHECK(strstr(why, "neither AVX512-BF16 nor AMX-BF16") != NULL && strstr(why, "fp32") != NULL,
          "the reason: '%s'", why);
    CHECK(m->precision == CS_PRECISION_FP32, "the model did not stay fp32");
    CHECK(cs_bf16_plan_get(m) == NULL, "a bf16 plan without bf16");
    CHECK(cs_model_set_precision(m, CS_PRECISION_FP32, why, sizeof why) == 0, "fp32 refused");
    cs_bf16_force_cpu(CS_BF16_AVX512);
    CHECK(!strcmp(cs_bf16_unit(NULL, 0), "AVX512-BF16"), "AVX512-BF16 alone");
    cs_bf16_force_cpu(-1);
    free(x);
    free(y32);
    cs_model_free(m);
}

static void test_sidecar_precision(void)
{
    cs_model *m = build(&CASES[6]);
    cs_sidecar_info info;
    char err[300];
    const char *ok = "{\"precision\": \"bf16\"}", *none = "{\"description\": \"x\"}", *bad = "{\"precision\": \"fp16\"}";
    CHECK(cs_sidecar_apply(m, ok, strlen(ok), NULL, &info, err, sizeof err) == 0, "%s", err);
    CHECK(!strcmp(info.precision, "bf16"), "precision '%s'", info.precision);
    CHECK(m->precision == CS_PRECISION_FP32, "the sidecar set the precision itself");
    CHECK(cs_sidecar_apply(m, none, strlen(none), NULL, &info, err, sizeof err) == 0, "%s", err);
    CHECK(info.precision[0] == 0, "precision '%s' from a sidecar without one", info.precision);
    CHECK(cs_sidecar_apply(m, bad, strlen(bad), NULL, &info, err, sizeof err) == -1, "fp16 accepted");
    CHECK(strstr(err, "precision") != NULL, "the error: '%s'", err);
    cs_precision p;
    CHECK(cs_precision_parse("bf16", &p, err, sizeof err) == 0 && p == CS_PRECISION_BF16, "bf16");
    CHECK(cs_precision_parse("fp32", &p, err, sizeof err) == 0 && p == CS_PRECISION_FP32, "fp32");
    CHECK(cs_precision_parse("BF16", &p, err, sizeof err) == -1, "BF16 accepted");
    cs_model_free(m);
}

int main(void)
{
    char why[300] = "";
    const char *unit = cs_bf16_unit(why, sizeof why);
    g_bf16 = unit != NULL;
    if (unit) fprintf(stderr, "bf16 runs on %s here: every case runs\n", unit);
    else fprintf(stderr, "%s: only the refusal and the sidecar run\n", why);
    RUN(test_layers_within_bf16_bound);
    RUN(test_notebook_network_agrees);
    RUN(test_training_stays_fp32);
    RUN(test_refused_without_bf16);
    RUN(test_sidecar_precision);
    return test_summary("bf16");
}
