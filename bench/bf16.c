/*
 * bench/bf16.c - what inference in bf16 (core/bf16_plan.h) costs in accuracy and what
 * it gains in time, against fp32 on the same model in the same run:
 *   - the notebook network (models/fmnist.csm) on the 10,000 Fashion-MNIST test images:
 *     top-1 agreement with fp32, each precision's accuracy, images/s in batches of 128;
 *   - VGG16 (the ONNX file make bench-ort exports, torchvision's VGG16 with seeded
 *     random weights) on the images the benchmarks feed it (bench/ort_bench.mjs's
 *     pseudo-random input, the exporter's NAME.input.npy, and 8 more of the first
 *     kind under other seeds): the largest |p_bf16 - p_fp32| over the 1000 softmax
 *     probabilities, top-1 and top-5 agreement (the same five classes), and the
 *     forward time of one image in both precisions, in turns (medians; best beside).
 * On a CPU without AVX512-BF16 and AMX-BF16 it says so and measures nothing.
 * Usage: build/bench/bf16 [--data DIR] [--model FILE] [--vgg16 FILE.onnx] [--runs N] [--threads N]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bf16_plan.h"
#include "blas.h"
#include "clock.h"
#include "dataset.h"
#include "exec.h"
#include "model_load.h"
#include "npy.h"
#include "parallel.h"

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void *alloc_or_die(size_t bytes)
{
    void *p = calloc(bytes ? bytes : 1, 1);
    if (!p) {
        fprintf(stderr, "bf16: out of memory\n");
        exit(1);
    }
    return p;
}

static void set_precision(cs_model *m, cs_precision p)
{
    char err[300];
    if (cs_model_set_precision(m, p, err, sizeof err) != 0) {
        fprintf(stderr, "bf16: %s\n", err);
        exit(1);
    }
}

/* Top-1 classes of the whole test set, batches of 128; returns the seconds taken. */
static double classify(cs_model *m, const cs_dataset *d, int *top)
{
    const int batch = 128, px = d->h * d->w;
    float *x = alloc_or_die((size_t)batch * px * sizeof *x);
    cs_exec *e = cs_exec_new(m, batch);
    if (!e) exit(1);
    double t = 0;
    for (int at = 0; at < d->n; at += batch) {
        const int k = d->n - at < batch ? d->n - at : batch;
        for (int i = 0; i < k; i++) cs_dataset_image_float(d, at + i, x + (size_t)i * px);
        const double t0 = cs_now();
        if (cs_exec_predict(e, x, k) != 0) exit(1);
        t += cs_now() - t0;
        const float *p = e->act[m->n_layers - 1];
        for (int i = 0; i < k; i++) top[at + i] = cs_argmax(p + (size_t)i * m->n_classes, m->n_classes);
    }
    cs_exec_free(e);
    free(x);
    return t;
}

static void notebook(const char *path, const char *data)
{
    char err[512];
    cs_model *m = cs_model_load_any(path, err, sizeof err);
    cs_dataset d;
    if (!m || cs_dataset_load(data, "test", &d, err, sizeof err) != 0) {
        printf("bf16 fmnist: skipped (%s)\n", err);
        cs_model_free(m);
        return;
    }
    int *t32 = alloc_or_die((size_t)d.n * sizeof *t32), *t16 = alloc_or_die((size_t)d.n * sizeof *t16);
    double s32 = 1e30, s16 = 1e30;
    for (int round = 0; round < 3; round++) { /* in turns; the fastest of each counts */
        set_precision(m, CS_PRECISION_FP32);
        double s = classify(m, &d, t32);
        if (s < s32) s32 = s;
        set_precision(m, CS_PRECISION_BF16);
        s = classify(m, &d, t16);
        if (s < s16) s16 = s;
    }
    int same = 0, r32 = 0, r16 = 0;
    for (int i = 0; i < d.n; i++) {
        same += t32[i] == t16[i];
        r32 += t32[i] == d.labels[i];
        r16 += t16[i] == d.labels[i];
    }
    printf("bf16 fmnist, %d test images: top-1 agreement with fp32 %.4f (%d differ), accuracy fp32 %.4f, bf16 %.4f; "
           "batches of 128 on %d threads: fp32 %.0f images/s, bf16 %.0f images/s (bf16 / fp32 time %.2f)\n",
           d.n, (double)same / d.n, d.n - same, (double)r32 / d.n, (double)r16 / d.n, cs_parallel_threads(),
           d.n / s32, d.n / s16, s16 / s32);
    free(t32);
    free(t16);
    cs_dataset_free(&d);
    cs_model_free(m);
}

/* The benchmarks' pseudo-random input (ort_bench.mjs's, NCHW there) under a seed, NHWC. */
static void bench_input(const cs_model *m, unsigned state, float *x)
{
    const int h = m->input.h, w = m->input.w, c = m->input.c;
    for (int ch = 0; ch < c; ch++)
        for (int y = 0; y < h; y++)
            for (int xx = 0; xx < w; xx++) {
                state = state * 1103515245u + 12345u;
                x[((size_t)y * w + xx) * c + ch] = (float)((state / 4294967296.0 - 0.5) * 3.46);
            }
}

/* Softmax probabilities of the top node's values (already probabilities after a softmax). */
static void probabilities(const cs_model *m, const float *v, double *p)
{
    const int k = m->n_classes;
    if (m->layers[m->n_layers - 1].kind == CS_SOFTMAX) {
        for (int i = 0; i < k; i++) p[i] = v[i];
        return;
    }
    double top = v[0], sum = 0;
    for (int i = 1; i < k; i++) top = v[i] > top ? v[i] : top;
    for (int i = 0; i < k; i++) sum += p[i] = exp(v[i] - top);
    for (int i = 0; i < k; i++) p[i] /= sum;
}

static void top5(const double *p, int k, int *out)
{
    for (int r = 0; r < 5; r++) {
        int best = -1;
        for (int j = 0; j < k; j++) {
            int taken = 0;
            for (int q = 0; q < r; q++) taken |= out[q] == j;
            if (!taken && (best < 0 || p[j] > p[best])) best = j;
        }
        out[r] = best;
    }
}

static void vgg16(const char *path, int runs)
{
    char err[512];
    if (access(path, R_OK) != 0) {
        printf("bf16 vgg16: skipped (no %s: make bench-ort exports it)\n", path);
        return;
    }
    cs_model *m = cs_model_load_any(path, err, sizeof err);
    if (!m || m->n_classes < 5) {
        printf("bf16 vgg16: skipped (%s)\n", m ? "fewer than 5 classes" : err);
        cs_model_free(m);
        return;
    }
    enum { IMAGES = 10 };
    const size_t in = cs_shape_size(m->input);
    const int k = m->n_classes;
    float *x = alloc_or_die(IMAGES * in * sizeof *x);
    double *p = alloc_or_die(2 * (size_t)k * sizeof *p);
    int n = 0;
    bench_input(m, 12345, x + in * n++);
    char npy[1024];
    snprintf(npy, sizeof npy, "%.*s.input.npy", (int)(strlen(path) - 5), path);
    cs_npy file = {0};
    if (cs_npy_read(npy, &file, err, sizeof err) == 0 && file.ndim == 4 && file.dims[1] == m->input.c &&
        file.dims[2] == m->input.h && file.dims[3] == m->input.w) { /* NCHW there */
        for (int c = 0; c < m->input.c; c++)
            for (size_t yx = 0; yx < (size_t)m->input.h * m->input.w; yx++)
                x[in * n + yx * m->input.c + c] = file.data[(size_t)c * m->input.h * m->input.w + yx];
        n++;
    }
    cs_npy_free(&file);
    for (unsigned seed = 1; n < IMAGES; seed++) bench_input(m, 12345 + 7919 * seed, x + in * n++);
    cs_exec *e = cs_exec_new(m, 1);
    if (!e) exit(1);
    double worst = 0, largest = 0;
    int same1 = 0, same5 = 0;
    for (int i = 0; i < n; i++) {
        for (int q = 0; q < 2; q++) {
            set_precision(m, q ? CS_PRECISION_BF16 : CS_PRECISION_FP32);
            if (cs_exec_predict(e, x + in * i, 1) != 0) exit(1);
            probabilities(m, e->act[m->n_layers - 1], p + (size_t)q * k);
        }
        int a[5], b[5];
        top5(p, k, a);
        top5(p + k, k, b);
        for (int j = 0; j < k; j++) worst = fmax(worst, fabs(p[j] - p[k + j]));
        largest = fmax(largest, p[a[0]]);
        same1 += a[0] == b[0];
        int all = 1;
        for (int r = 0; r < 5; r++) {
            int found = 0;
            for (int q = 0; q < 5; q++) found |= a[r] == b[q];
            all &= found;
        }
        same5 += all;
    }
    /* Forward time of one image, the precisions in turns after a warm-up. */
    double *t = alloc_or_die(2 * (size_t)runs * sizeof *t);
    for (int q = 0; q < 2; q++) {
        set_precision(m, q ? CS_PRECISION_BF16 : CS_PRECISION_FP32);
        for (int r = 0; r < 2; r++) cs_exec_predict(e, x, 1);
    }
    for (int r = 0; r < runs; r++)
        for (int q = 0; q < 2; q++) {
            set_precision(m, q ? CS_PRECISION_BF16 : CS_PRECISION_FP32);
            const double t0 = cs_now();
            cs_exec_predict(e, x, 1);
            t[q * runs + r] = cs_now() - t0;
        }
    qsort(t, (size_t)runs, sizeof *t, cmp);
    qsort(t + runs, (size_t)runs, sizeof *t, cmp);
    const double m32 = t[runs / 2], m16 = t[runs + runs / 2];
    printf("bf16 vgg16, %d images: max |p_bf16 - p_fp32| %.2e (largest fp32 probability %.4f), top-1 agreement %d/%d, top-5 agreement %d/%d; "
           "forward on %d threads: fp32 %.1f ms (best %.1f), bf16 %.1f ms (best %.1f), fp32 / bf16 = %.2fx\n",
           n, worst, largest, same1, n, same5, n, cs_parallel_threads(), 1e3 * m32, 1e3 * t[0], 1e3 * m16, 1e3 * t[runs],
           m32 / m16);
    free(t);
    cs_exec_free(e);
    free(p);
    free(x);
    cs_model_free(m);
}

int main(int argc, char **argv)
{
    if (cs_blas_init(argc, argv) != 0) return 1;
    const char *data = CS_DEFAULT_DATA_DIR, *model = "models/fmnist.csm", *vgg = "build/bench-models/vgg16.onnx";
    int runs = 10, threads = 2;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v && !strcmp(a, "--data")) data = v;
        else if (v && !strcmp(a, "--model")) model = v;
        else if (v && !strcmp(a, "--vgg16")) vgg = v;
        else if (v && !strcmp(a, "--runs") && (runs = atoi(v)) >= 1) (void)0;
        else if (v && !strcmp(a, "--threads") && (threads = atoi(v)) >= 1) (void)0;
        else {
            fprintf(stderr, "usage: bf16 [--data DIR] [--model FILE] [--vgg16 FILE.onnx] [--runs N] [--threads N]\n");
            return 2;
        }
        i++;
    }
    char why[300];
    const char *unit = cs_bf16_unit(why, sizeof why);
    if (!unit) {
        printf("bf16: not measured: %s\n", why);
        return 0;
    }
    cs_parallel_set_threads(threads);
    printf("bf16 runs on %s here\n", unit);
    notebook(model, data);
    vgg16(vgg, runs);
    return 0;
}
