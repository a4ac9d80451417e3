/*
 * conv_act_pool.h - a convolution on few input channels, its activation and the max
 * pool above it if there is one, in one pass (predictions).
 *
 * A network's first conv reads one to four channels: a tap count too small for the
 * blocked GEMMs of oneDNN (the notebook network's 1 -> 32 conv ran at a third of a
 * core's FMA rate there, MobileNetV2's 3x3 stride-2 conv on RGB at half), and under a
 * pool its output, the largest tensor of such a network, is written only for the pool
 * to read it back. Here the conv outputs are computed in registers (the kernel and bias
 * with the batch norm folded in, then the activation, then the pool's max), so a pooled
 * conv's output is never stored.
 *
 * Takes a conv of at most CS_CAP_MAX_CHANNELS input channels and CS_CAP_MAX_TAPS taps
 * (kh * kw * ic), any stride and padding, no dilation or groups, a multiple of 16
 * output channels; under a pool whose stride is its square window, or none (pool 1);
 * AVX-512 only (cs_conv_act_pool_fits says).
 */
#ifndef CS_CONV_ACT_POOL_H
#define CS_CONV_ACT_POOL_H

#include "layers/conv_general.h"
#include "onednn_conv.h"

#define CS_CAP_MAX_TAPS 32
#define CS_CAP_MAX_CHANNELS 4

typedef struct {
    cs_conv2d_geom g;   /* the conv (g.n ignored) */
    int pool;           /* the pool's window and stride; 1: no pool */
    int ph, pw;         /* the pooled output */
    const float *w, *b; /* kernel (kh, kw, ic, oc) and bias, the batch norm folded in; borrowed */
    cs_onednn_post act; /* the activation (no sum) */
    int off[CS_CAP_MAX_TAPS]; /* each tap's offset in the input from its window's corner */
    int strip_off[CS_CAP_MAX_TAPS]; /* the same in a strip of a row's edge group (conv_act_pool.c) */
    int strips;                     /* edge groups run from strips (no pool, and a strip fits) */
} cs_conv_act_pool;

/* Whether this CPU and these shapes take the fused pass. */
int cs_conv_act_pool_fits(const cs_conv2d_geom *g, int pool, const cs_onednn_post *act);
/* Fills k (w and b stay the caller's); 0, or -1 when it does not fit. */
int cs_conv_act_pool_init(cs_conv_act_pool *k, const cs_conv2d_geom *g, int pool, const float *w, const float *b,
                          const cs_onednn_post *act);
/* y (n, ph, pw, oc) = maxpool(act(conv(x (n, ih, iw, ic)))), split over the threads. */
void cs_conv_act_pool_forward(const cs_conv_act_pool *k, int n, const float *x, float *y);
/* Pooled rows [r0, r1) of one image x into y (row r0 first), on the calling thread: for
 * a caller that runs the next conv on them band by band (predict_bands.h). */
void cs_conv_act_pool_rows(const cs_conv_act_pool *k, const float *x, int r0, int r1, float *y);

#endif
