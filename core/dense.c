/*
 * dense.c - fully connected layers as one BLAS call each way.
 *
 * A single image is a matrix-vector product: OpenBLAS' sgemm with one row still packs
 * the whole kernel (VGG16's fc1 is 392 MiB) on every call, while sgemv streams it
 * once, so batch 1 goes through the level-2 routines. A batch is split over the cores
 * (OpenBLAS itself runs single-threaded, parallel.h): rows of the batch for y and dx,
 * rows of the kernel for dw.
 */
#include <cblas.h>
#include <stdlib.h>
#include <string.h>

#include "layers.h"

typedef struct {
    int n, in, out;
    const float *x, *w, *dy;
    float *y, *dx, *dw;
    int parts;      /* batch 1 forward: blocks of w's rows */
    float *partial; /* their sums but the first's: [parts - 1][out] */
} dense_job;

static void forward_range(void *ctx, long begin, long end, int worker)
{
    (void)worker;
    const dense_job *j = ctx;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)(end - begin), j->out, j->in, 1.0f,
                j->x + begin * j->in, j->in, j->w, j->out, 1.0f, j->y + begin * j->out, j->out);
}

static void weight_grad_range(void *ctx, long begin, long end, int worker)
{
    (void)worker;
    const dense_job *j = ctx;
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)(end - begin), j->out, j->n, 1.0f, j->x + begin,
                j->in, j->dy, j->out, 1.0f, j->dw + begin * j->out, j->out);
}

static void input_grad_range(void *ctx, long begin, long end, int worker)
{
    (void)worker;
    const dense_job *j = ctx;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)(end - begin), j->in, j->out, 1.0f,
                j->dy + begin * j->out, j->out, j->w, j->out, 0.0f, j->dx + begin * j->in, j->in);
}

/* Batch 1: matrix-vector products, split over the cores when the kernel is large
 * (VGG16's fc1 is 392 MiB: reading it is the whole cost, and two cores read faster
 * than one). y takes contiguous blocks of w's rows, one per part: the first part adds
 * into y, each other into its own partial sum, added to y after the join. (Columns of
 * w instead would have every part read a slice of every row, and the streams of two
 * cores cross on each page.) dx[i0..i1) and dw take rows. */
static void gemv_forward_range(void *ctx, long begin, long end, int worker)
{
    (void)worker;
    const dense_job *j = ctx;
    for (long part = begin; part < end; part++) {
        const long i0 = j->in * part / j->parts, i1 = j->in * (part + 1) / j->parts;
        float *to = part == 0 ? j->y : j->partial + (size_t)(part - 1) * j->out;
        cblas_sgemv(CblasRowMajor, CblasTrans, (int)(i1 - i0), j->out, 1.0f, j->w + i0 * j->out, j->out, j->x + i0, 1,
                    part == 0 ? 1.0f : 0.0f, to, 1);
    }
}

static void gemv_input_grad_range(void *ctx, long begin, long end, int worker)
{
    (void)worker;
    const dense_job *j = ctx;
    cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)(end - begin), j->out, 1.0f, j->w + begin * j->out, j->out, j->dy,
                1, 0.0f, j->dx + begin, 1);
}

static void ger_range(void *ctx, long begin, long end, int worker)
{
    (void)worker;
    const dense_job *j = ctx;
    cblas_sger(CblasRowMajor, (int)(end - begin), j->out, 1.0f, j->x + begin, 1, j->dy, 1, j->dw + begin * j->out,
               j->out);
}

/* Rows per range: enough multiply-adds that waking a worker pays (16 grains). */
static long grain(long cost_per_row) { return cs_parallel_grain(cost_per_row / 16 + 1, 1); }

/* Parts for `work` multiply-adds done a row at a time: as many as the pool has, as long
 * as each carries enough to pay for waking a worker. The rows are then split evenly
 * (a grain of one part's worth of rows left a 1000-output layer split 810 / 190). */
static int gemv_parts(long work)
{
    long parts = cs_parallel_parts(), most = work / (2 * CS_PARALLEL_MIN_WORK);
    if (parts > most) parts = most;
    return parts < 1 ? 1 : (int)parts;
}

void cs_dense_forward(int n, int in, int out, const float *x, const float *w, const float *b, float *y)
{
    for (int i = 0; i < n; i++) memcpy(y + (size_t)i * out, b, (size_t)out * sizeof(float));
    dense_job j = {.n = n, .in = in, .out = out, .x = x, .w = w, .y = y};
    if (n > 1) {
        cs_parallel_run(n, grain((long)in * out), 0, forward_range, &j);
        return;
    }
    j.parts = gemv_parts((long)in * out);
    if (j.parts > 1 && !(j.partial = malloc((size_t)(j.parts - 1) * out * sizeof(float)))) j.parts = 1;
    cs_parallel_run(j.parts, 1, j.parts, gemv_forward_range, &j);
    for (int p = 1; p < j.parts; p++)
        for (int o = 0; o < out; o++) y[o] += j.partial[(size_t)(p - 1) * out + o];
    free(j.partial);
}

void cs_dense_backward(int n, int in, int out, const float *x, const float *w, const float *dy, float *dx, float *dw,
                       float *db)
{
    if (db)
        for (int i = 0; i < n; i++)
            for (int o = 0; o < out; o++) db[o] += dy[(size_t)i * out + o];
    dense_job j = {.n = n, .in = in, .out = out, .x = x, .w = w, .dy = dy, .dx = dx, .dw = dw};
    if (dw && n == 1) {
        const int parts = gemv_parts((long)in * out);
        cs_parallel_run(in, (in + parts - 1) / parts, parts, ger_range, &j);
    } else if (dw)
        cs_parallel_run(in, grain((long)n * out), 0, weight_grad_range, &j);
    if (dx && n == 1) {
        const int parts = gemv_parts((long)in * out);
        cs_parallel_run(in, (in + parts - 1) / parts, parts, gemv_input_grad_range, &j);
    } else if (dx)
        cs_parallel_run(n, grain((long)in * out), 0, input_grad_range, &j);
}
