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

/* Rows per range: enough multiply-adds that waking a worker pays (16 grains). */
static long grain(long cost_per_row) { return cs_parallel_grain(cost_per_row / 16 + 1, 1); }

void cs_dense_forward(int n, int in, int out, const float *x, const float *w, const float *b, float *y)
{
    for (int i = 0; i < n; i++) memcpy(y + (size_t)i * out, b, (size_t)out * sizeof(float));
    if (n == 1) {
        cblas_sgemv(CblasRowMajor, CblasTrans, in, out, 1.0f, w, out, x, 1, 1.0f, y, 1);
        return;
    }
    dense_job j = {.n = n, .in = in, .out = out, .x = x, .w = w, .y = y};
    cs_parallel_run(n, grain((long)in * out), 0, forward_range, &j);
}

void cs_dense_backward(int n, int in, int out, const float *x, const float *w, const float *dy, float *dx, float *dw,
                       float *db)
{
    if (db)
        for (int i = 0; i < n; i++)
            for (int o = 0; o < out; o++) db[o] += dy[(size_t)i * out + o];
    if (n == 1) {
        if (dw) cblas_sger(CblasRowMajor, in, out, 1.0f, x, 1, dy, 1, dw, out);
        if (dx) cblas_sgemv(CblasRowMajor, CblasNoTrans, in, out, 1.0f, w, out, dy, 1, 0.0f, dx, 1);
        return;
    }
    dense_job j = {.n = n, .in = in, .out = out, .x = x, .w = w, .dy = dy, .dx = dx, .dw = dw};
    if (dw) cs_parallel_run(in, grain((long)n * out), 0, weight_grad_range, &j);
    if (dx) cs_parallel_run(n, grain((long)in * out), 0, input_grad_range, &j);
}
