/*
 * conv_avx512.h - direct convolution kernels for stride-1 'valid' layers
 * (AVX-512).
 *
 * conv.c picks these over im2col + sgemm where cs_conv_avx512_ok() says so.
 * Rows are output positions in NHWC order, as in conv.c; each function covers
 * rows [r0, r0 + rows) of the whole batch.
 */
#ifndef CS_CONV_AVX512_H
#define CS_CONV_AVX512_H

#include <stddef.h>

#include "layers.h"

/* Whether the CPU has AVX-512 and the layer is stride 1 without padding. */
int cs_conv_avx512_ok(const cs_conv_geom *g);
/* y rows = conv(x, w) + bias (overwritten). */
void cs_conv_avx512_forward(const cs_conv_geom *g, size_t r0, size_t rows, const float *x, const float *w,
                            const float *bias, float *y);
/* dw += the weight gradient of rows whose dy starts at dy. */
void cs_conv_avx512_weight_grad(const cs_conv_geom *g, size_t r0, size_t rows, const float *x, const float *dy,
                                float *dw);
/* wt = the kernel as the input gradient reads it: per kernel row, [out][k*in].
 */
void cs_conv_avx512_transpose(const cs_conv_geom *g, const float *w, float *wt);
/* dx += the input gradient of rows whose dy starts at dy, from the transposed
 * kernel. */
void cs_conv_avx512_input_grad(const cs_conv_geom *g, size_t r0, size_t rows, const float *wt, const float *dy,
                               float *dx);

#endif
