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
#include <string.h>

#include "layers.h"

typedef struct {
    int n, in, out;
    const float *x, *w, *dy;
    float *y, *dx, *dw;
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
 * than one). y[o0..o1) takes columns of w; dx[i0..i1) and dw take rows. */
static void gemv_forward_range(void *ctx, long begin, long end, int worker)
{
    (void)worker;
    const dense_job *j = ctx;
    cblas_sgemv(CblasRowMajor, CblasTrans, j->in, (int)(end - begin), 1.0f, j->w + begin, j->out, j->x, 1, 1.0f,
                j->y + begin, 1);
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

void cs_dense_forward(int n, int in, int out, const float *x, const float *w, const float *b, float *y)
{
    for (int i = 0; i < n; i++) memcpy(y + (size_t)i * out, b, (size_t)out * sizeof(float));
    dense_job j = {.n = n, .in = in, .out = out, .x = x, .w = w, .y = y};
    if (n == 1) cs_parallel_run(out, grain(in), 0, gemv_forward_range, &j);
    else cs_parallel_run(n, grain((long)in * out), 0, forward_range, &j);
}

void cs_dense_backward(int n, int in, int out, const float *x, const float *w, const float *dy, float *dx, float *dw,
                       float *db)
{
    if (db)
        for (int i = 0; i < n; i++)
            for (int o = 0; o < out; o++) db[o] += dy[(size_t)i * out + o];
    dense_job j = {.n = n, .in = in, .out = out, .x = x, .w = w, .dy = dy, .dx = dx, .dw = dw};
    if (dw) cs_parallel_run(in, grain((long)n * out), 0, n == 1 ? ger_range : weight_grad_range, &j);
    if (dx && n == 1) cs_parallel_run(in, grain(out), 0, gemv_input_grad_range, &j);
    else if (dx) cs_parallel_run(n, grain((long)in * out), 0, input_grad_range, &j);
}
