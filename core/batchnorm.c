/*
 * batchnorm.c - batch normalisation over the channel axis, as Keras 2 does it.
 *
 * Training normalises with the batch's mean and biased variance; the moving
 * variance is updated with the unbiased one (n / (n - 1)), as Keras' TensorFlow
 * backend does. Sums are accumulated in double: a channel of a 128-image batch of
 * conv1 has 86,528 values, enough for float sums to drift.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "layers.h"

#define BN_BLOCK 64

void cs_bn_forward_train(size_t rows, int c, const float *x, const float *gamma, const float *beta, float eps,
                         float *y, float *mean, float *inv_std, float *xhat, float *moving_mean, float *moving_var,
                         float momentum)
{
    double *sum = calloc((size_t)c * 2, sizeof(double)), *sq = sum + c;
    float part[c];
    if (!sum) return;
    /* Float partial sums over blocks of rows (vectorised), added up in double. */
    for (size_t r0 = 0; r0 < rows; r0 += BN_BLOCK) {
        size_t r1 = r0 + BN_BLOCK < rows ? r0 + BN_BLOCK : rows;
        memset(part, 0, sizeof part);
        for (size_t r = r0; r < r1; r++)
            for (int j = 0; j < c; j++) part[j] += x[r * c + j];
        for (int j = 0; j < c; j++) sum[j] += part[j];
    }
    for (int j = 0; j < c; j++) mean[j] = (float)(sum[j] / rows);
    for (size_t r0 = 0; r0 < rows; r0 += BN_BLOCK) {
        size_t r1 = r0 + BN_BLOCK < rows ? r0 + BN_BLOCK : rows;
        memset(part, 0, sizeof part);
        for (size_t r = r0; r < r1; r++)
            for (int j = 0; j < c; j++) {
                float d = x[r * c + j] - mean[j];
                part[j] += d * d;
            }
        for (int j = 0; j < c; j++) sq[j] += part[j];
    }
    for (int j = 0; j < c; j++) {
        double var = sq[j] / rows;
        inv_std[j] = (float)(1.0 / sqrt(var + eps));
        if (moving_mean) {
            double unbiased = rows > 1 ? var * rows / (rows - 1) : var;
            moving_mean[j] = moving_mean[j] * momentum + mean[j] * (1 - momentum);
            moving_var[j] = (float)(moving_var[j] * momentum + unbiased * (1 - momentum));
        }
    }
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * c;
        float *hr = xhat + r * c, *yr = y + r * c;
        for (int j = 0; j < c; j++) {
            hr[j] = (xr[j] - mean[j]) * inv_std[j];
            yr[j] = gamma[j] * hr[j] + beta[j];
        }
    }
    free(sum);
}

void cs_bn_forward_infer(size_t rows, int c, const float *x, const float *gamma, const float *beta,
                         const float *moving_mean, const float *moving_var, float eps, float *y)
{
    /* Fold into one scale and shift per channel. */
    float scale[c], shift[c];
    for (int j = 0; j < c; j++) {
        scale[j] = gamma[j] / sqrtf(moving_var[j] + eps);
        shift[j] = beta[j] - moving_mean[j] * scale[j];
    }
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * c;
        float *yr = y + r * c;
        for (int j = 0; j < c; j++) yr[j] = xr[j] * scale[j] + shift[j];
    }
}

void cs_bn_backward_train(size_t rows, int c, const float *dy, const float *gamma, const float *inv_std,
                          const float *xhat, float *dx, float *dgamma, float *dbeta)
{
    double *sdy = calloc((size_t)c * 2, sizeof(double)), *sdyx = sdy + c;
    float p1[c], p2[c];
    if (!sdy) return;
    for (size_t r0 = 0; r0 < rows; r0 += BN_BLOCK) {
        size_t r1 = r0 + BN_BLOCK < rows ? r0 + BN_BLOCK : rows;
        memset(p1, 0, sizeof p1);
        memset(p2, 0, sizeof p2);
        for (size_t r = r0; r < r1; r++)
            for (int j = 0; j < c; j++) {
                p1[j] += dy[r * c + j];
                p2[j] += dy[r * c + j] * xhat[r * c + j];
            }
        for (int j = 0; j < c; j++) {
            sdy[j] += p1[j];
            sdyx[j] += p2[j];
        }
    }
    if (dgamma)
        for (int j = 0; j < c; j++) {
            dgamma[j] += (float)sdyx[j];
            dbeta[j] += (float)sdy[j];
        }
    /* dx = gamma * inv_std / N * (N dy - sum(dy) - xhat * sum(dy * xhat)) */
    float a[c], mdy[c], mdyx[c];
    for (int j = 0; j < c; j++) {
        a[j] = gamma[j] * inv_std[j];
        mdy[j] = (float)(sdy[j] / rows);
        mdyx[j] = (float)(sdyx[j] / rows);
    }
    for (size_t r = 0; r < rows; r++) {
        const float *d = dy + r * c, *h = xhat + r * c;
        float *o = dx + r * c;
        for (int j = 0; j < c; j++) o[j] = a[j] * (d[j] - mdy[j] - h[j] * mdyx[j]);
    }
    free(sdy);
}

void cs_bn_backward_infer(size_t rows, int c, const float *x, const float *dy, const float *gamma,
                          const float *moving_mean, const float *moving_var, float eps, float *dx, float *dgamma,
                          float *dbeta)
{
    float inv[c];
    for (int j = 0; j < c; j++) inv[j] = 1.0f / sqrtf(moving_var[j] + eps);
    for (size_t r = 0; r < rows; r++)
        for (int j = 0; j < c; j++) {
            float d = dy[r * c + j];
            if (dx) dx[r * c + j] = d * gamma[j] * inv[j];
            if (dgamma) {
                dgamma[j] += d * (x[r * c + j] - moving_mean[j]) * inv[j];
                dbeta[j] += d;
            }
        }
}
