/*
 * bench/vgg16.c - VGG16 forward and Grad-CAM latency against this machine's sgemm peak.
 *
 * Everything is measured in the same run, so the ratios hold on any machine:
 *   - FMA peak: the machine's multiply-add limit on every core (bench/fma_peak.h),
 *     and OpenBLAS's sgemm peak beside it (a 2048^3 product), best of a few;
 *   - VGG16 forward for one 224x224 image (random weights, no file needed): median
 *     latency, achieved GFLOP/s (counted from the layer shapes, about 31 GFLOP: the
 *     direct product's count, also for Winograd layers) and its fraction of the FMA
 *     peak (target >= 80 %), plain kernels (training's) and fast paths in turns;
 *   - Grad-CAM on block5_conv3: median latency and its ratio to the forward pass
 *     (target <= 1.1x), and beside it Grad-CAM through the full backward (its
 *     channel weights from every position's gradient, not fc1's channel sums:
 *     cam_sums.h);
 *   - peak resident memory of the process.
 * Medians are the figures; bests are shown beside them because other work on a
 * shared machine only ever slows a run down.
 * `--layers` adds a per-layer breakdown (time and GFLOP/s of each layer, measured as
 * differences of the best forwards that stop after it and before it), the first place to look when the
 * forward pass falls short.
 *
 * A missed target is reported, not fatal: the exit status is 0 unless something
 * could not run at all.
 */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "blas.h"
#include "cam_sums.h"
#include "clock.h"
#include "exec.h"
#include "explain/explain.h"
#include "fast_plan.h"
#include "fma_peak.h"
#include "keras_h5.h"
#include "gradcam.h"
#include "model.h"
#include "parallel.h"

#define RUNS 7

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Grad-CAM's part after its forward pass (the backward and the map), fc1's channel sums
 * and the full backward in turns, on the activations of one forward: prints the medians. */
static void gradcam_backward_half(cs_exec *e, const cs_model *m, const float *x, int layer)
{
    enum { ROUNDS = 21 };
    double t[2][ROUNDS];
    char err[256];
    cs_explainer ex;
    if (cs_explainer_init(&ex, m, x, e, err, sizeof err) != 0) return;
    cs_explain_params p;
    cs_explain_params_default(&p);
    p.layer = layer;
    for (int r = 0; r < ROUNDS; r++)
        for (int k = 0; k < 2; k++) {
            cs_explain_map map;
            cs_cam_sums_set_enabled(!k);
            double t0 = cs_now();
            int rc = cs_explain_run(&ex, &cs_explain_gradcam, &p, &map, err, sizeof err);
            t[k][r] = cs_now() - t0;
            if (rc == 0) cs_explain_map_free(&map);
        }
    cs_cam_sums_set_enabled(1);
    cs_explainer_free(&ex);
    double sums = median(t[0], ROUNDS), full = median(t[1], ROUNDS);
    printf("vgg16: grad-cam after its forward (backward and map), median of %d in turns: fc1's channel sums "
           "%.1f ms (best %.1f), full backward %.1f ms (best %.1f)\n",
           ROUNDS, 1e3 * sums, 1e3 * t[0][0], 1e3 * full, 1e3 * t[1][0]);
}

/* Multiply-adds x 2 of one layer for one image (conv and dense; the rest is noise). */
static double layer_flops(const cs_layer *l)
{
    if (l->kind == CS_CONV2D)
        return 2.0 * l->out.h * l->out.w * l->out.c * (double)l->cfg.kernel * l->cfg.kernel * l->in.c;
    if (l->kind == CS_DENSE)
        return 2.0 * (double)l->in.c * l->out.c;
    return 0;
}

/* OpenBLAS with every core: the machine's sgemm peak. convscope itself runs each
 * product on one thread and spreads layers over its own pool (parallel.h), so the
 * thread count is put back to what cs_blas_init chose. */
static double sgemm_peak(int n, int runs)
{
    int was = cs_blas_threads();
    cs_blas_set_threads((int)sysconf(_SC_NPROCESSORS_ONLN));
    float *a = malloc((size_t)n * n * sizeof(float)), *b = malloc((size_t)n * n * sizeof(float));
    float *c = malloc((size_t)n * n * sizeof(float));
    if (!a || !b || !c) {
        free(a), free(b), free(c);
        cs_blas_set_threads(was);
        return 0;
    }
    for (size_t i = 0; i < (size_t)n * n; i++) {
        a[i] = (float)(i % 17) * 0.01f - 0.08f;
        b[i] = (float)(i % 13) * 0.02f - 0.12f;
    }
    double best = 1e30;
    for (int r = 0; r < runs + 1; r++) { /* the first run warms up the threads */
        double t0 = cs_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        double t = cs_now() - t0;
        if (r > 0 && t < best)
            best = t;
    }
    free(a), free(b), free(c);
    cs_blas_set_threads(was);
    return 2.0 * n * n * (double)n / best / 1e9;
}

/* Per layer, through the public API only: the best time of a forward that stops after
 * layer i, minus the best of the one that stops before it. Bests, because only they
 * are stable enough to subtract on a shared machine. */
static void layer_breakdown(cs_exec *e, const cs_model *m, const float *x)
{
    enum { TRIES = 5 };
    printf("  %-14s %8s %7s %8s\n", "layer", "ms", "GFLOP", "GFLOP/s");
    double prev = 0;
    for (int i = 0; i < m->n_layers; i++) {
        double best = 1e30;
        for (int r = 0; r < TRIES; r++) {
            double t0 = cs_now();
            cs_exec_forward_upto(e, x, 1, i);
            double t = cs_now() - t0;
            if (t < best)
                best = t;
        }
        double self = best - prev, fl = layer_flops(&m->layers[i]);
        prev = best;
        printf("  %-14s %8.2f %7.3f %8.1f\n", m->layers[i].name, 1e3 * self, fl / 1e9,
               fl > 0 && self > 0 ? fl / self / 1e9 : 0.0);
    }
}

/* bench/vgg16_server.sh needs a weights file in the Keras layout; the real one cannot
 * be downloaded here, so random weights of the right shapes stand in (speed and
 * memory do not depend on the values). */
static int write_weights(const char *path)
{
    char err[400];
    cs_model *m = cs_model_build_vgg16();
    if (!m) return 1;
    cs_model_init_weights(m, 1);
    int rc = cs_keras_h5_save(m, path, err, sizeof err);
    if (rc != 0) fprintf(stderr, "vgg16 bench: %s\n", err);
    cs_model_free(m);
    return rc != 0;
}

int main(int argc, char **argv)
{
    if (cs_blas_init(argc, argv) != 0) {
        fprintf(stderr, "vgg16 bench: OpenBLAS computes wrong results\n");
        return 1;
    }
    if (argc > 2 && !strcmp(argv[1], "--write-weights")) return write_weights(argv[2]);
    int breakdown = argc > 1 && !strcmp(argv[1], "--layers");
    double load[1] = {0};
    getloadavg(load, 1);
    /* Other work on the CPUs shows up in every figure below; say so. */
    printf("vgg16: OpenBLAS core %s, %ld cores, pool of %d threads, load average %.2f before the run\n",
           cs_blas_core(), sysconf(_SC_NPROCESSORS_ONLN), cs_parallel_threads(), load[0]);

    const int cores = (int)sysconf(_SC_NPROCESSORS_ONLN);
    double peak = sgemm_peak(2048, 3), fma = fma_peak(cores, 3);

    double t0 = cs_now();
    cs_model *m = cs_model_build_vgg16();
    if (!m) {
        fprintf(stderr, "vgg16 bench: cannot build VGG16 (out of memory?)\n");
        return 1;
    }
    cs_model_init_weights(m, 1);
    double t_build = cs_now() - t0;
    cs_exec *e = cs_exec_new(m, 1);
    if (!e) {
        fprintf(stderr, "vgg16 bench: cannot allocate an exec\n");
        cs_model_free(m);
        return 1;
    }
    double flops = 0;
    for (int i = 0; i < m->n_layers; i++)
        flops += layer_flops(&m->layers[i]);

    size_t in = cs_shape_size(m->input);
    float *x = malloc(in * sizeof(float));
    for (size_t i = 0; i < in; i++) /* caffe-preprocessed range: BGR minus the mean */
        x[i] = (float)((i * 2654435761u) % 256) - 120.0f;

    double tf[RUNS], tg[RUNS], tp[RUNS], tb[RUNS], rg[RUNS], rb[RUNS];
    int layer = cs_model_find_layer(m, "block5_conv3");
    char err[256] = "";
    cs_gradcam_result res;
    /* Warm-up: page faults, OpenBLAS buffers, the gradient buffers Grad-CAM allocates. */
    cs_exec_forward(e, x, 1, 0, NULL);
    memset(&res, 0, sizeof res);
    t0 = cs_now();
    int rc = cs_gradcam(e, x, layer, -1, CS_SCORE_LOGIT, &res, err, sizeof err);
    const double first_gradcam = cs_now() - t0; /* and the making of fc1's channel sums */
    free(res.heatmap);
    if (rc != 0) {
        fprintf(stderr, "vgg16 bench: grad-cam failed: %s\n", err);
        return 1;
    }
    /* Forward passes and Grad-CAMs taken in turns, so that both see the same share of
     * a machine that other work is using: their ratio is what the bar is about. */
    cs_fast_set_mode(CS_FAST_OFF);
    cs_exec_forward(e, x, 1, 0, NULL);
    cs_fast_set_mode(CS_FAST_AUTO);
    for (int r = 0; r < RUNS; r++) {
        cs_fast_set_mode(CS_FAST_OFF); /* the plain kernels, for the ratio */
        t0 = cs_now();
        cs_exec_forward(e, x, 1, 0, NULL);
        tp[r] = cs_now() - t0;
        cs_fast_set_mode(CS_FAST_AUTO);
        t0 = cs_now();
        cs_exec_forward(e, x, 1, 0, NULL);
        tf[r] = cs_now() - t0;
        memset(&res, 0, sizeof res);
        t0 = cs_now();
        cs_gradcam(e, x, layer, -1, CS_SCORE_LOGIT, &res, err, sizeof err);
        tg[r] = cs_now() - t0;
        free(res.heatmap);
        cs_cam_sums_set_enabled(0);
        memset(&res, 0, sizeof res);
        t0 = cs_now();
        cs_gradcam(e, x, layer, -1, CS_SCORE_LOGIT, &res, err, sizeof err);
        tb[r] = cs_now() - t0;
        free(res.heatmap);
        cs_cam_sums_set_enabled(1);
        /* Each round's own ratios: the machine's load moves less within a round. */
        rg[r] = tg[r] / tf[r];
        rb[r] = tb[r] / tf[r];
    }
    /* The peak again after the passes: on a shared machine the better of the two is
     * the closer estimate of what the CPUs can do. */
    double peak2 = sgemm_peak(2048, 3), fma2 = fma_peak(cores, 3);
    if (peak2 > peak)
        peak = peak2;
    if (fma2 > fma)
        fma = fma2;
    printf("vgg16: FMA peak (%s) %.1f GFLOP/s on %d cores, sgemm 2048^3 peak %.1f (best of 3, before and after)\n",
           fma_peak_isa(), fma, cores, peak);

    double fwd = median(tf, RUNS), fwd_best = tf[0], gflops = flops / fwd / 1e9, plain = median(tp, RUNS);
    printf("vgg16: build + init %.2f s; forward %.1f ms (median of %d, best %.1f), %.2f GFLOP, %.1f GFLOP/s = "
           "%.0f%% of FMA peak, best %.0f%% (target >= 80%%: %s); plain kernels %.1f ms = %.2fx\n",
           t_build, 1e3 * fwd, RUNS, 1e3 * fwd_best, flops / 1e9, gflops, 100 * gflops / fma,
           100 * flops / fwd_best / 1e9 / fma, gflops >= 0.8 * fma ? "met" : "MISSED", 1e3 * plain, plain / fwd);
    double gc = median(tg, RUNS);
    printf("vgg16: grad-cam block5_conv3 %.1f ms (median of %d, best %.1f) = %.2fx forward (target <= 1.1x: %s)\n",
           1e3 * gc, RUNS, 1e3 * tg[0], gc / fwd, gc <= 1.1 * fwd ? "met" : "MISSED");
    double full = median(tb, RUNS);
    printf("vgg16: grad-cam through the full backward %.1f ms (median of %d, best %.1f) = %.2fx forward; "
           "the first grad-cam, which makes fc1's channel sums, %.1f ms\n",
           1e3 * full, RUNS, 1e3 * tb[0], full / fwd, 1e3 * first_gradcam);
    printf("vgg16: grad-cam / forward within each round, median of %d: %.3fx (full backward %.3fx)\n", RUNS,
           median(rg, RUNS), median(rb, RUNS));

    gradcam_backward_half(e, m, x, layer);
    if (breakdown)
        layer_breakdown(e, m, x);

    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("vgg16: peak RSS %.0f MiB (weights %.0f MiB)\n", ru.ru_maxrss / 1024.0,
           m->n_param_floats * 4.0 / 1048576.0);

    free(x);
    cs_exec_free(e);
    cs_model_free(m);
    return 0;
}
