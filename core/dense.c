/*
 * dense.c - fully connected layers as one cblas_sgemm each way.
 */
#include <cblas.h>
#include <string.h>

#include "layers.h"

void cs_dense_forward(int n, int in, int out, const float *x, const float *w, const float *b, float *y)
{
    for (int i = 0; i < n; i++) memcpy(y + (size_t)i * out, b, (size_t)out * sizeof(float));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, out, in, 1.0f, x, in, w, out, 1.0f, y, out);
}

void cs_dense_backward(int n, int in, int out, const float *x, const float *w, const float *dy, float *dx, float *dw,
                       float *db)
{
    if (db)
        for (int i = 0; i < n; i++)
            for (int o = 0; o < out; o++) db[o] += dy[(size_t)i * out + o];
    if (dw) cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, in, out, n, 1.0f, x, in, dy, out, 1.0f, dw, out);
    if (dx) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, in, out, 1.0f, dy, out, w, out, 0.0f, dx, in);
}
