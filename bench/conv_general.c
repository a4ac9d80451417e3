/*
 * bench/conv_general.c - the general convolution (core/layers/conv_general.c,
 * depthwise.c) on the layer shapes of MobileNetV2 and ResNeXt.
 *
 * For each layer: forward latency of one image and of a batch of 8, on one thread and
 * on the pool, and the backward of the batch (input, kernel and bias gradients), each
 * the median of several runs (best beside it: other work on a shared machine only
 * slows a run down), with the GFLOP/s that the multiply-adds give (2 per multiply-add;
 * the backward counts two products). A single-threaded 1024^3 sgemm gives this CPU's
 * scale. Random weights: no file needed.
 */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>

#include "blas.h"
#include "clock.h"
#include "layers/conv_general.h"
#include "parallel.h"

#define RUNS 15

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double sgemm_one_thread(void)
{
    const int n = 1024;
    float *a = malloc(sizeof(float) * n * n), *b = malloc(sizeof(float) * n * n), *c = malloc(sizeof(float) * n * n);
    if (!a || !b || !c) return 0;
    for (int i = 0; i < n * n; i++) a[i] = b[i] = (float)((i % 7) - 3) * 0.1f;
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

typedef struct {
    const char *name;
    int ih, iw, ic, oc, k, stride, groups;
} layer;

/* Padding as Keras 'same' (TensorFlow puts the odd pixel at the end). */
static cs_conv2d_geom geometry(const layer *l, int n)
{
    cs_conv2d_geom g = {.n = n, .ih = l->ih, .iw = l->iw, .ic = l->ic, .oc = l->oc, .kh = l->k, .kw = l->k,
                        .sh = l->stride, .sw = l->stride, .dh = 1, .dw = 1, .groups = l->groups};
    cs_conv2d_same_pads(g.ih, g.kh, g.sh, 1, 1, &g.pt, &g.pb);
    cs_conv2d_same_pads(g.iw, g.kw, g.sw, 1, 1, &g.pl, &g.pr);
    g.oh = cs_conv2d_out_size(g.ih, g.kh, g.sh, 1, g.pt, g.pb);
    g.ow = cs_conv2d_out_size(g.iw, g.kw, g.sw, 1, g.pl, g.pr);
    return g;
}

typedef struct {
    float *x, *w, *b, *y, *dy, *dx, *dw, *db;
    cs_scratch s;
} buffers;

static float *filled(size_t n)
{
    float *v = malloc((n ? n : 1) * sizeof(float));
    for (size_t i = 0; v && i < n; i++) v[i] = (float)((i * 2654435761u) % 1000) / 1000.0f - 0.5f;
    return v;
}

static int buffers_new(buffers *bf, const cs_conv2d_geom *g)
{
    const size_t in = (size_t)g->n * g->ih * g->iw * g->ic, out = (size_t)g->n * g->oh * g->ow * g->oc,
                 wn = (size_t)g->kh * g->kw * (g->ic / g->groups) * g->oc;
    *bf = (buffers){.x = filled(in), .w = filled(wn), .b = filled((size_t)g->oc), .y = filled(out),
                    .dy = filled(out), .dx = filled(in), .dw = filled(wn), .db = filled((size_t)g->oc)};
    bf->s.workers = cs_parallel_threads();
    bf->s.col_floats = cs_conv2d_scratch_floats(g);
    bf->s.part_floats = cs_conv2d_part_floats(g);
    int ok = bf->x && bf->w && bf->b && bf->y && bf->dy && bf->dx && bf->dw && bf->db;
    for (int w = 0; w < bf->s.workers; w++) {
        bf->s.col[w] = filled(bf->s.col_floats);
        if (w > 0) bf->s.part[w] = filled(bf->s.part_floats);
        ok = ok && bf->s.col[w] && (w == 0 || bf->s.part[w]);
    }
    return ok ? 0 : -1;
}

static void buffers_free(buffers *bf)
{
    free(bf->x), free(bf->w), free(bf->b), free(bf->y), free(bf->dy), free(bf->dx), free(bf->dw), free(bf->db);
    for (int w = 0; w < CS_MAX_WORKERS; w++) free(bf->s.col[w]), free(bf->s.part[w]);
}

/* Median and best seconds of RUNS calls (after one to warm the caches). */
static void timed(const cs_conv2d_geom *g, buffers *bf, int backward, double *median, double *best)
{
    double t[RUNS];
    for (int r = -1; r < RUNS; r++) {
        const double t0 = cs_now();
        if (backward) cs_conv2d_backward(g, bf->x, bf->w, bf->dy, bf->dx, bf->dw, bf->db, &bf->s);
        else cs_conv2d_forward(g, bf->x, bf->w, bf->b, bf->y, &bf->s);
        if (r >= 0) t[r] = cs_now() - t0;
    }
    qsort(t, RUNS, sizeof t[0], cmp_double);
    *median = t[RUNS / 2];
    *best = t[0];
}

static void report(const char *what, double flops, double median, double best)
{
    printf("    %-26s %8.3f ms (best %7.3f) %7.1f GFLOP/s\n", what, median * 1e3, best * 1e3, flops / median / 1e9);
}

static int bench_layer(const layer *l)
{
    char err[256];
    printf("  %s: %dx%dx%d -> %d, %dx%d stride %d, groups %d\n", l->name, l->ih, l->iw, l->ic, l->oc, l->k, l->k,
           l->stride, l->groups);
    const int batches[2] = {1, 8};
    for (int i = 0; i < 2; i++) {
        const cs_conv2d_geom g = geometry(l, batches[i]);
        if (cs_conv2d_check(&g, err, sizeof err) != 0) {
            fprintf(stderr, "bench: %s: %s\n", l->name, err);
            return -1;
        }
        buffers bf;
        if (buffers_new(&bf, &g) != 0) {
            fprintf(stderr, "bench: out of memory\n");
            buffers_free(&bf);
            return -1;
        }
        const double macs = (double)g.n * g.oh * g.ow * g.oc * g.kh * g.kw * (g.ic / g.groups);
        double med, best;
        char what[64];
        const int workers = bf.s.workers;
        bf.s.workers = 1;
        timed(&g, &bf, 0, &med, &best);
        snprintf(what, sizeof what, "forward, n %d, 1 thread", g.n);
        report(what, 2 * macs, med, best);
        if (workers > 1) {
            bf.s.workers = workers;
            timed(&g, &bf, 0, &med, &best);
            snprintf(what, sizeof what, "forward, n %d, %d threads", g.n, workers);
            report(what, 2 * macs, med, best);
        }
        if (g.n > 1) {
            timed(&g, &bf, 1, &med, &best);
            snprintf(what, sizeof what, "backward, n %d, %d threads", g.n, workers);
            report(what, 4 * macs, med, best);
        }
        buffers_free(&bf);
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (cs_blas_init(argc, argv) != 0) return 1;
    cs_blas_set_threads(1); /* each worker's sgemm runs alone: the pool splits the layer */
    printf("general convolution (OpenBLAS %s, pool of %d threads)\n", cs_blas_core(), cs_parallel_threads());
    printf("  sgemm 1024^3, 1 thread: %.1f GFLOP/s\n", sgemm_one_thread());
    static const layer layers[] = {
        /* MobileNetV2's expanded 112x112 block: its depthwise 3x3 with stride 2 (block 2)
         * and the same shape at stride 1. */
        {"depthwise 3x3, stride 2", 112, 112, 96, 96, 3, 2, 96},
        {"depthwise 3x3, stride 1", 112, 112, 96, 96, 3, 1, 96},
        /* MobileNetV2's 56x56 expansion: a pointwise 1x1 (no im2col). */
        {"pointwise 1x1", 56, 56, 24, 144, 1, 1, 1},
        /* ResNeXt-50's first 3x3: 32 groups of 4 channels. */
        {"grouped 3x3, 32 groups", 56, 56, 128, 128, 3, 1, 32},
        /* Two groups, as AlexNet's. */
        {"grouped 3x3, 2 groups", 27, 27, 96, 256, 3, 1, 2},
    };
    for (size_t i = 0; i < sizeof layers / sizeof layers[0]; i++)
        if (bench_layer(&layers[i]) != 0) return 1;
    return 0;
}
