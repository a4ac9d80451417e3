/*
 * test_onednn_train.c - a convolution's training passes through oneDNN
 * (core/onednn_train.c) against the double-precision definition (conv_reference.h),
 * and a network's parameter gradients with them against its plain kernels.
 *
 * The geometries are the layers of the networks it runs (3x3 'same' on 16 channels,
 * the stem on one channel, strided 'same' with the odd pixel of padding at the end,
 * 1x1 strided shortcuts) and others it takes (a rectangular dilated kernel with
 * asymmetric pads and channel groups, a 'valid' layer). Each runs on one worker and
 * on three, with batches that split unevenly, so the last run is a shape of its own.
 */
#include <stdlib.h>

#include "../../bench/train_nets.h"
#include "blas.h"
#include "exec.h"
#include "onednn_conv.h"
#include "onednn_train.h"
#include "parallel.h"
#include "test.h"

#include "conv_reference.h"

#define POOL 3

static cs_scratch scratch_of(int workers)
{
    cs_scratch s = {.workers = workers};
    return s;
}

static void scratch_free(cs_scratch *s)
{
    for (int w = 0; w < CS_MAX_WORKERS; w++) free(s->onednn[w]);
}

static cs_conv2d_geom geom(int n, int ih, int iw, int ic, int oc, int kh, int kw, int sh, int sw, int dh, int dw,
                           int pt, int pl, int pb, int pr, int groups)
{
    cs_conv2d_geom g = {.n = n, .ih = ih, .iw = iw, .ic = ic, .oc = oc, .kh = kh, .kw = kw, .sh = sh, .sw = sw,
                        .dh = dh, .dw = dw, .pt = pt, .pl = pl, .pb = pb, .pr = pr, .groups = groups};
    g.oh = cs_conv2d_out_size(ih, kh, sh, dh, pt, pb);
    g.ow = cs_conv2d_out_size(iw, kw, sw, dw, pl, pr);
    return g;
}

static const char *const CASES[] = {
    "3x3 same, 16 -> 16",
    "stem: 3x3 same on one channel",
    "3x3 stride 2, padding at the end only",
    "1x1 stride 2 shortcut",
    "3x5 dilated, asymmetric pads, 2 groups",
    "3x3 valid",
};
#define N_CASES ((int)(sizeof CASES / sizeof CASES[0]))

static cs_conv2d_geom case_geom(int k)
{
    switch (k) {
    case 0: return geom(5, 14, 14, 16, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1);
    case 1: return geom(4, 28, 28, 1, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1);
    case 2: return geom(4, 16, 16, 8, 24, 3, 3, 2, 2, 1, 1, 0, 0, 1, 1, 1);
    case 3: return geom(7, 9, 9, 16, 32, 1, 1, 2, 2, 1, 1, 0, 0, 0, 0, 1);
    case 4: return geom(3, 11, 13, 6, 10, 3, 5, 1, 2, 2, 1, 2, 1, 0, 3, 2);
    default: return geom(5, 10, 10, 8, 8, 3, 3, 1, 1, 1, 1, 0, 0, 0, 0, 1);
    }
}

/* Every pass of one geometry on `workers` against the reference; dw and db start at
 * 0.5 and must come out as 0.5 plus the gradient. */
static void check_case(int k, int workers)
{
    const cs_conv2d_geom g = case_geom(k);
    const char *what = CASES[k];
    char err[200] = "";
    cs_onednn_train *t = cs_onednn_train_new(&g, err, sizeof err);
    CHECK(t != NULL, "%s: refused: %s", what, err);
    if (!t) return;
    cs_rng r;
    cs_rng_seed(&r, 7 + k);
    const size_t nx = in_floats(&g), ny = out_floats(&g), nw = w_floats(&g);
    float *x = random_floats(&r, nx), *w = random_floats(&r, nw), *b = random_floats(&r, g.oc);
    float *dy = random_floats(&r, ny), *y = alloc_or_die(ny * sizeof(float));
    float *dx = alloc_or_die(nx * sizeof(float)), *dw = alloc_or_die(nw * sizeof(float));
    float *db = alloc_or_die(g.oc * sizeof(float)), *dw2 = alloc_or_die(nw * sizeof(float));
    float *dx2 = alloc_or_die(nx * sizeof(float));
    double *ry = alloc_or_die(ny * sizeof(double)), *rdx = alloc_or_die(nx * sizeof(double));
    double *rdw = alloc_or_die(nw * sizeof(double)), *rdb = alloc_or_die(g.oc * sizeof(double));
    ref_forward(&g, x, w, b, ry);
    ref_backward(&g, x, w, dy, rdx, rdw, rdb);
    for (size_t i = 0; i < nw; i++) rdw[i] += 0.5, dw[i] = 0.5f;
    for (int o = 0; o < g.oc; o++) rdb[o] += 0.5, db[o] = 0.5f;
    cs_scratch s = scratch_of(workers);
    CHECK(cs_onednn_train_forward(t, g.n, x, w, b, y, &s) == 0, "%s: forward failed", what);
    CHECK(rel_diff(y, ry, ny) < 1e-5, "%s, %d workers: y off by %g", what, workers, rel_diff(y, ry, ny));
    CHECK(cs_onednn_train_backward(t, g.n, x, w, dy, dx, dw, db, &s) == 0, "%s: backward failed", what);
    CHECK(rel_diff(dx, rdx, nx) < 1e-5, "%s, %d workers: dx off by %g", what, workers, rel_diff(dx, rdx, nx));
    CHECK(rel_diff(dw, rdw, nw) < 1e-5, "%s, %d workers: dw off by %g", what, workers, rel_diff(dw, rdw, nw));
    CHECK(rel_diff(db, rdb, g.oc) < 1e-5, "%s, %d workers: db off by %g", what, workers, rel_diff(db, rdb, g.oc));
    /* The kernel gradient alone, then the input's alone: the same sums, bit for bit,
     * as the pass that made both (and so as each other run of it). */
    for (size_t i = 0; i < nw; i++) dw2[i] = 0.5f;
    CHECK(cs_onednn_train_backward(t, g.n, x, w, dy, NULL, dw2, NULL, &s) == 0, "%s: dw alone failed", what);
    CHECK(!memcmp(dw, dw2, nw * sizeof(float)), "%s, %d workers: dw alone differs", what, workers);
    CHECK(cs_onednn_train_backward(t, g.n, x, w, dy, dx2, NULL, NULL, &s) == 0, "%s: dx alone failed", what);
    CHECK(!memcmp(dx, dx2, nx * sizeof(float)), "%s, %d workers: dx alone differs", what, workers);
    scratch_free(&s);
    cs_onednn_train_free(t);
    free(x), free(w), free(b), free(dy), free(y), free(dx), free(dw), free(db), free(dw2), free(dx2);
    free(ry), free(rdx), free(rdw), free(rdb);
}

static void test_against_reference(void)
{
    if (!cs_onednn_usable()) {
        char err[200] = "";
        const cs_conv2d_geom g = case_geom(0);
        CHECK(cs_onednn_train_new(&g, err, sizeof err) == NULL && err[0], "no vector kernels: refused, with a reason");
        printf("  (this CPU has no AVX2: oneDNN's passes are refused)\n");
        return;
    }
    for (int k = 0; k < N_CASES; k++) {
        check_case(k, 1);
        check_case(k, POOL);
    }
}

static void test_refusals(void)
{
    char err[200] = "";
    cs_conv2d_geom dw = geom(2, 8, 8, 8, 8, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 8);
    CHECK(cs_onednn_train_new(&dw, err, sizeof err) == NULL && strstr(err, "depthwise"), "depthwise: %s", err);
    cs_conv2d_geom bad = case_geom(0);
    bad.oh++;
    CHECK(cs_onednn_train_new(&bad, err, sizeof err) == NULL && err[0], "an output size the window does not give");
    cs_scratch s = scratch_of(POOL);
    CHECK(cs_onednn_train_takes(POOL, &s) && !cs_onednn_train_takes(POOL - 1, &s),
          "a batch runs here only when each of the %d workers has an image", POOL);
    cs_onednn_train_enable(0);
    CHECK(!cs_onednn_train_takes(64, &s), "switched off");
    cs_onednn_train_enable(1);
}

/* One training step's parameter gradients of the small ResNet (every conv but the
 * depthwise kinds goes through oneDNN) against the same step on the plain kernels. */
static void test_network_gradients(void)
{
    char err[200] = "";
    cs_model *m = tn_build_resnet(err, sizeof err);
    if (!m) {
        fprintf(stderr, "setup: %s\n", err);
        exit(99);
    }
    enum { BATCH = 6 };
    cs_rng r;
    cs_rng_seed(&r, 3);
    float *img = random_floats(&r, (size_t)BATCH * 28 * 28);
    uint8_t labels[BATCH] = {1, 4, 9, 0, 4, 7};
    float *grads[2];
    int made = 0;
    const size_t np = cs_model_param_count(m);
    for (int on = 0; on < 2; on++) {
        cs_onednn_train_enable(on);
        cs_exec *e = cs_exec_new(m, BATCH);
        if (!e || cs_exec_enable_param_grads(e) != 0) {
            fprintf(stderr, "setup: exec\n");
            exit(99);
        }
        CHECK(cs_exec_forward(e, img, BATCH, 1, NULL) == 0, "forward");
        cs_exec_xent(e, labels, NULL);
        CHECK(cs_exec_backward(e, -1) == 0, "backward");
        grads[on] = alloc_or_die(np * sizeof(float));
        memcpy(grads[on], e->param_grad, np * sizeof(float));
        for (int i = 0; i < m->n_layers && on; i++) made += e->conv_train[i] != NULL;
        cs_exec_free(e);
    }
    cs_onednn_train_enable(1);
    CHECK(made == (cs_onednn_usable() ? 9 : 0), "%d of the 9 convs ran through oneDNN", made);
    for (int i = 0; i < m->n_layers; i++)
        for (int p = 0; p < m->layers[i].n_params; p++) {
            const cs_param *q = &m->layers[i].params[p];
            const size_t at = (size_t)(q->data - m->param_block), n = q->size;
            double *want = alloc_or_die(n * sizeof(double));
            for (size_t j = 0; j < n; j++) want[j] = grads[0][at + j];
            const double d = rel_diff(grads[1] + at, want, n);
            CHECK(d < 1e-4, "%s parameter %d: gradients differ by %g", m->layers[i].name, p, d);
            free(want);
        }
    free(grads[0]), free(grads[1]), free(img);
    cs_model_free(m);
}

int main(int argc, char **argv)
{
    if (cs_blas_init(argc, argv) != 0) return 1;
    cs_parallel_set_threads(POOL);
    RUN(test_against_reference);
    RUN(test_refusals);
    RUN(test_network_gradients);
    return test_summary("onednn_train");
}
