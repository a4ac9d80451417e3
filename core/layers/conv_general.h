/*
 * conv_general.h - the 2-D convolution of ONNX Conv and Keras Conv2D/DepthwiseConv2D:
 * rectangular kernels, a stride and a dilation per axis, asymmetric zero padding and
 * channel groups.
 *
 * Layouts: activations NHWC float32 (n images); kernel (kh, kw, ic/groups, oc)
 * row-major; output channel o belongs to group o / (oc/groups) and reads input
 * channels [g*ic/groups, (g+1)*ic/groups). For depthwise layers (groups == ic,
 * oc = ic*mult) that is Keras' DepthwiseConv2D kernel (kh, kw, ic, mult) in its own
 * memory order. An ONNX weight (oc, ic/groups, kh, kw) is this layout transposed.
 *
 * Like layers.h: pure functions over caller-owned buffers, never allocating;
 * backward overwrites dx and ADDS into dw/db (a caller zeroes them once per batch).
 * Depthwise layers (ic/groups == 1) run direct kernels vectorised over channels
 * (depthwise.c), and so does a layer over a single input channel (ic == groups == 1,
 * its outputs a multiplier of that channel); every other layer runs im2col per group
 * + sgemm, in chunks of rows
 * bounded by the scratch and spread over the parallel pool. 1x1 stride-1 unpadded
 * layers skip im2col: their input rows are already the matrix sgemm needs.
 */
#ifndef CS_CONV_GENERAL_H
#define CS_CONV_GENERAL_H

#include <stddef.h>

#include "layers.h"

typedef struct {
    int n, ih, iw, ic, oh, ow, oc;
    int kh, kw, sh, sw, dh, dw; /* kernel, stride, dilation */
    int pt, pl, pb, pr;         /* zero padding top, left, bottom, right (may be asymmetric) */
    int groups;
} cs_conv2d_geom;

/* Output size along one axis, or -1 when the window does not fit (or an argument is
 * out of range: in, k, stride, dilation < 1 or a negative pad). */
int cs_conv2d_out_size(int in, int k, int stride, int dilation, int pad_begin, int pad_end);
/* ONNX auto_pad SAME_UPPER (upper = 1: the odd pixel at the end, as Keras and
 * TensorFlow 'same') and SAME_LOWER (upper = 0: at the beginning): the pads that make
 * out = ceil(in / stride). */
void cs_conv2d_same_pads(int in, int k, int stride, int dilation, int upper, int *pad_begin, int *pad_end);

/* 0 when the geometry is one these kernels compute (sizes positive, groups dividing
 * both channel counts, oh/ow what the kernel, stride, dilation and pads give, the
 * kernel small enough for int indices); else -1 with the reason in err. */
int cs_conv2d_check(const cs_conv2d_geom *g, char *err, size_t errlen);

/* The kernel between ONNX's (and PyTorch's) layout (oc, ic/groups, kh, kw) and this
 * one (kh, kw, ic/groups, oc), for a geometry that passed cs_conv2d_check; the two
 * arrays must not overlap. */
void cs_conv2d_kernel_from_oihw(const cs_conv2d_geom *g, const float *oihw, float *hwio);
void cs_conv2d_kernel_to_oihw(const cs_conv2d_geom *g, const float *hwio, float *oihw);

/* Floats of per-worker scratch (s->col[w], col_floats) that forward and backward
 * work best with: room for a chunk of im2col rows, 0 for layers that need none
 * (depthwise, 1x1 stride 1 unpadded). Less still works down to cs_conv2d_min_scratch_floats
 * (one im2col row), in more, smaller chunks. */
size_t cs_conv2d_scratch_floats(const cs_conv2d_geom *g);
size_t cs_conv2d_min_scratch_floats(const cs_conv2d_geom *g);
/* Floats of per-worker partial dw + db (s->part[w] for workers w > 0, part_floats)
 * a parallel backward of dw or db needs: kh*kw*(ic/groups)*oc + oc. With less, the
 * weight gradient is summed on one thread. */
size_t cs_conv2d_part_floats(const cs_conv2d_geom *g);

/* y (n, oh, ow, oc) = conv(x (n, ih, iw, ic), w (kh, kw, ic/groups, oc)) + b (oc);
 * b may be NULL (no bias).
 * Returns 0, or -1 (y untouched) when cs_conv2d_check fails, a buffer is NULL or the
 * scratch has less than cs_conv2d_min_scratch_floats for a worker. Thread-safe for
 * distinct scratch. */
int cs_conv2d_forward(const cs_conv2d_geom *g, const float *x, const float *w, const float *b, float *y,
                      const cs_scratch *s);
/* From dy (n, oh, ow, oc) = d(scalar)/dy: dx (n, ih, iw, ic, overwritten), dw and db
 * (added to); each may be NULL.
 * Returns 0, or -1 (nothing written) as cs_conv2d_forward. */
int cs_conv2d_backward(const cs_conv2d_geom *g, const float *x, const float *w, const float *dy, float *dx, float *dw,
                       float *db, const cs_scratch *s);

/* The depthwise kernels (depthwise.c), for geometries with ic/groups == 1 that passed
 * cs_conv2d_check; cs_conv2d_forward/backward dispatch to them. They need no col
 * scratch; the backward sums dw/db of workers w > 0 in s->part[w] when it is large
 * enough. */
void cs_depthwise_forward(const cs_conv2d_geom *g, const float *x, const float *w, const float *b, float *y,
                          const cs_scratch *s);
void cs_depthwise_backward(const cs_conv2d_geom *g, const float *x, const float *w, const float *dy, float *dx,
                           float *dw, float *db, const cs_scratch *s);

#endif
