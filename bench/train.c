/*
 * train.c - `make bench`: the network core's speed on this machine.
 *
 * Prints the FMA peak (bench/fma_peak.h) and the sgemm peak (a 2048^3 product, best
 * of 5, measured here in the same run, before and after the training epoch: the higher
 * one counts, since other work on a shared machine can only lower either),
 * training throughput over one full epoch of Fashion-MNIST, the GFLOP/s that training
 * achieves as a fraction of those peaks, single-image inference latency (median, p99)
 * and batch-128 inference throughput (predictions: cs_exec_predict).
 */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blas.h"
#include "clock.h"
#include "exec.h"
#include "fma_peak.h"
#include "parallel.h"
#include "train.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double sgemm_peak(int threads)
{
    const int n = 2048;
    float *a = malloc(sizeof(float) * n * n), *b = malloc(sizeof(float) * n * n), *c = malloc(sizeof(float) * n * n);
    for (int i = 0; i < n * n; i++) a[i] = b[i] = (float)((i % 7) - 3) * 0.1f;
    cs_blas_set_threads(threads);
    double best = 1e30;
    for (int r = 0; r < 5; r++) {
        double t = cs_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c, n);
        t = cs_now() - t;
        if (t < best) best = t;
    }
    free(a), free(b), free(c);
    return 2.0 * n * n * n / best / 1e9;
}

/* Multiply-adds x2 of one forward pass of one image. */
static double forward_flops(const cs_model *m)
{
    double f = 0;
    for (int i = 0; i < m->n_layers; i++) {
        const cs_layer *l = &m->layers[i];
        if (l->kind == CS_CONV2D)
            f += 2.0 * l->out.h * l->out.w * l->out.c * l->cfg.kernel * l->cfg.kernel * l->in.c;
        else if (l->kind == CS_DENSE) f += 2.0 * l->in.c * l->out.c;
    }
    return f;
}

/* Training does the forward product, the weight-gradient product and the
 * input-gradient product of every layer but the first. */
static double training_flops(const cs_model *m)
{
    const cs_layer *first = &m->layers[0];
    double first_fwd = 2.0 * first->out.h * first->out.w * first->out.c * first->cfg.kernel * first->cfg.kernel *
                       first->in.c;
    return 3 * forward_flops(m) - first_fwd;
}

int main(int argc, char **argv)
{
    if (cs_blas_init(argc, argv) != 0) return 1;
    /* The peak is what OpenBLAS reaches with every core; convscope itself runs each
     * product single-threaded and spreads the work over its own pool. */
    int threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    printf("convscope core benchmark (OpenBLAS %s, %d cores, pool of %d threads)\n", cs_blas_core(), threads,
           cs_parallel_threads());
    double peak = sgemm_peak(threads), peak1 = sgemm_peak(1), fma = fma_peak(threads, 3);
    printf("  FMA peak (%s):              %8.1f GFLOP/s (%d threads)\n", fma_peak_isa(), fma, threads);
    printf("  sgemm peak, 2048^3:                 %8.1f GFLOP/s (%d threads), %.1f GFLOP/s (1 thread)\n", peak,
           threads, peak1);
    cs_blas_set_threads(1);

    char err[256];
    cs_dataset train = {0}, test = {0};
    if (cs_dataset_load(CS_DEFAULT_DATA_DIR, "train", &train, err, sizeof err) != 0 ||
        cs_dataset_load(CS_DEFAULT_DATA_DIR, "test", &test, err, sizeof err) != 0) {
        fprintf(stderr, "bench: %s\n", err);
        return 1;
    }
    cs_model *m = cs_model_build_fmnist();
    cs_train_config cfg;
    cs_train_config_default(&cfg);
    cfg.epochs = 1;
    /* --layers: only the per-layer breakdown (quick to repeat while working on a kernel). */
    int layers_only = argc > 1 && strcmp(argv[1], "--layers") == 0;
    if (!layers_only && cs_train(m, &train, NULL, &cfg, NULL, NULL, NULL, err, sizeof err) != 0) {
        fprintf(stderr, "bench: %s\n", err);
        return 1;
    }
    if (!layers_only) {
        double epoch_s = m->meta.history[0].seconds, gflops = training_flops(m) * train.n / epoch_s / 1e9;
        double after = sgemm_peak(threads);
        cs_blas_set_threads(1);
        if (after > peak) peak = after;
        printf("  sgemm peak after the epoch:         %8.1f GFLOP/s (the higher of the two counts)\n", after);
        printf("  training, one epoch of %d images:  %8.2f s = %.0f images/s\n", train.n, epoch_s, train.n / epoch_s);
        double fma2 = fma_peak(threads, 3);
        if (fma2 > fma) fma = fma2;
        printf("  training arithmetic:                %8.1f GFLOP/s = %.0f%% of the sgemm peak, %.0f%% of the FMA peak "
               "(%.1f MFLOP per image)\n",
               gflops, 100 * gflops / peak, 100 * gflops / fma, training_flops(m) / 1e6);
    }

    /* Where a training step's time goes: 100 batches of cs_train itself, timed per
     * layer (forward with batch statistics, backward), then penalties and Adam. */
    {
        enum { STEPS = 100 };
        const int L = m->n_layers;
        double *prof = calloc((size_t)2 * L + 1, sizeof *prof);
        cs_model *pm = cs_model_build_fmnist();
        cs_train_config pc = cfg;
        pc.train_limit = STEPS * pc.batch_size;
        pc.profile = prof;
        double t = cs_now();
        if (!prof || !pm || cs_train(pm, &train, NULL, &pc, NULL, NULL, NULL, err, sizeof err) != 0) {
            fprintf(stderr, "bench: %s\n", prof && pm ? err : "out of memory");
            return 1;
        }
        t = (cs_now() - t) * 1e3 / STEPS;
        printf("  one training step of %d images, per layer (ms):\n", pc.batch_size);
        printf("    %-24s %8s %8s\n", "layer", "forward", "backward");
        for (int i = 0; i < L; i++)
            printf("    %-24s %8.2f %8.2f\n", m->layers[i].name, prof[i] * 1e3 / STEPS, prof[L + i] * 1e3 / STEPS);
        printf("    %-24s %8.2f\n", "penalties + Adam", prof[2 * L] * 1e3 / STEPS);
        /* Fused layers are timed as a whole, under the first layer of the fusion. */
        printf("    (each batch norm, activation and pool run as one block, timed under the batch norm; the first\n"
               "     conv and its block train together: forward, conv2d_1 is its input patches' sums and the\n"
               "     batch statistics, the block the conv itself with the block; backward, all under conv2d_1)\n");
        printf("    %-24s %8.2f (with shuffling and loading the batch)\n", "whole step", t);
        free(prof);
        cs_model_free(pm);
    }
    if (layers_only) return 0;

    /* Single-image latency, as a request thread of the server sees it: on its own
     * thread (--compute-threads 1), nothing split over the pool. */
    cs_parallel_limit_this_thread(1);
    cs_exec *e1 = cs_exec_new(m, 1);
    float x[784];
    enum { RUNS = 2000 };
    static double lat[RUNS];
    for (int i = 0; i < RUNS; i++) {
        cs_dataset_image_float(&test, i % test.n, x);
        double t = cs_now();
        cs_exec_predict(e1, x, 1);
        lat[i] = cs_now() - t;
    }
    qsort(lat, RUNS, sizeof lat[0], cmp_double);
    printf("  inference, 1 image (1 thread):      median %.3f ms, p99 %.3f ms\n", lat[RUNS / 2] * 1e3,
           lat[RUNS * 99 / 100] * 1e3);

    cs_parallel_limit_this_thread(0);
    cs_exec *e128 = cs_exec_new(m, 128);
    float *xb = malloc(sizeof(float) * 784 * 128);
    for (int i = 0; i < 128; i++) cs_dataset_image_float(&test, i, xb + i * 784);
    cs_exec_predict(e128, xb, 128);
    double t = cs_now();
    int reps = 50;
    for (int r = 0; r < reps; r++) cs_exec_predict(e128, xb, 128);
    t = cs_now() - t;
    printf("  inference, batches of 128:          %8.0f images/s\n", reps * 128 / t);
    free(xb);
    cs_exec_free(e1);
    cs_exec_free(e128);
    cs_model_free(m);
    cs_dataset_free(&train);
    cs_dataset_free(&test);
    return 0;
}
