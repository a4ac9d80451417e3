/*
 * dense.c - fully connected layers as one BLAS call each way.
 *
 * A single image is a matrix-vector product: OpenBLAS' sgemm with one row still packs
 * the whole kernel (VGG16's fc1 is 392 MiB) on every call, while sgemv streams it
 * once, so batch 1 goes through the level-2 routines.
 */
#include <cblas.h>
#include <string.h>

#include "layers.h"

void cs_dense_forward(int n, int in, int out, const float *x, const float *w, const float *b, float *y)
{
    for (int i = 0; i < n; i++) memcpy(y + (size_t)i * out, b, (size_t)out * sizeof(float));
    if (n == 1) cblas_sgemv(CblasRowMajor, CblasTrans, in, out, 1.0f, w, out, x, 1, 1.0f, y, 1);
    else cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, out, in, 1.0f, x, in, w, out, 1.0f, y, out);
}

void cs_dense_backward(int n, int in, int out, const float *x, const float *w, const float *dy, float *dx, float *dw,
                       float *db)
{
    if (db)
        for (int i = 0; i < n; i++)
            for (int o = 0; o < out; o++) db[o] += dy[(size_t)i * out + o];
    if (dw) {
        if (n == 1) cblas_sger(CblasRowMajor, in, out, 1.0f, x, 1, dy, 1, dw, out);
        else cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, in, out, n, 1.0f, x, in, dy, out, 1.0f, dw, out);
    }
    if (dx) {
        if (n == 1) cblas_sgemv(CblasRowMajor, CblasNoTrans, in, out, 1.0f, w, out, dy, 1, 0.0f, dx, 1);
        else cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, in, out, 1.0f, dy, out, w, out, 0.0f, dx, in);
    }
}
