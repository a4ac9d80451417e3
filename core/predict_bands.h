/*
 * predict_bands.h - an inverted residual block of a prediction (1x1 expand conv,
 * depthwise conv, 1x1 project conv) run band by band.
 *
 * MobileNetV2's blocks widen their 16-32 channels six times for the depthwise conv and
 * narrow them after: at 112x112 the wide tensor is 4.8 MB, which the expand conv writes
 * to memory and the depthwise conv reads back. Run as bands of the depthwise conv's
 * output rows, the expand conv writes only the rows the next band reads (a window that
 * slides down the image: the rows two bands share are kept, not computed again) and
 * the project conv reads the depthwise rows just written, so the wide tensors stay in
 * the core's cache and only the narrow ones go to memory. Each of the three is a chain
 * of fast_plan.h: the conv with its batch norm and activation, and for the last the
 * residual add. The bands of one image may be split over the workers (each part then
 * computes the expand rows at its top edge again).
 *
 * The first conv need not be a 1x1 one: a network's stem (MobileNetV2's 3x3 stride-2
 * conv to 32 channels at 112x112, then a depthwise and a project conv) runs the same
 * way, the stem's rows computed from the image as the bands need them, by oneDNN or by
 * the one-pass conv of few input channels (conv_act_pool.h).
 */
#ifndef CS_PREDICT_BANDS_H
#define CS_PREDICT_BANDS_H

#include "exec.h"
#include "fast_plan.h"

enum { CS_BAND_EXPAND, CS_BAND_DEPTHWISE, CS_BAND_PROJECT, CS_BAND_STAGES };

/* A stage: a chain's conv (or a node's own, when nothing follows it to fold in). */
typedef struct {
    cs_onednn_conv *conv; /* borrowed from the plan */
    const cs_conv_act_pool *pooled; /* or, for the first stage only, the one-pass conv (no pool) */
    int first, last;      /* its first and last node */
    int addend;           /* the node its residual add adds, when the conv's post-ops sum */
} cs_fast_stage;

typedef struct cs_fast_bands {
    cs_fast_stage stage[CS_BAND_STAGES];
    int rows; /* depthwise output rows per band */
} cs_fast_bands;

/* Whether three stages make such a block (a conv, then a depthwise one that reads its
 * output, then a 1x1 stride-1 one that reads the depthwise one's, only the last
 * adding): 0, or the bytes of the block's wide tensor (the first conv's output) for one
 * image. */
size_t cs_fast_block_wide_bytes(const cs_fast_stage stage[CS_BAND_STAGES]);
/* Whether a block is worth running in bands (its wide tensor too large for the cache);
 * fills b with its stages and the band height. */
int cs_fast_bands_fit(const cs_fast_stage stage[CS_BAND_STAGES], cs_fast_bands *b);
/* Below this many bytes of wide tensor an image's block stays in a core's cache anyway. */
#define CS_BAND_WIDE_BYTES ((size_t)1024 * 1024)

/* Bytes an exec of m may come to hold for the bands' rows (each worker's), for budgets:
 * 0 when m has no depthwise conv. */
size_t cs_predict_bands_bytes_bound(const cs_model *m);

/* Whether a conv is 1x1, stride 1, without padding or groups. */
int cs_fast_pointwise(const cs_conv2d_geom *g);

/* Runs the block on e's batch: x is the expand conv's input, addend what the project
 * chain adds (NULL when it does not), y the project chain's last output. 0, or -1
 * (out of memory, or oneDNN refused a band: nothing is half-written that the nodes run
 * one by one would not write again). */
int cs_predict_bands(cs_exec *e, const cs_fast_bands *b, const float *x, const float *addend, float *y);

/* Grows each worker's room for a block's rows (e->band_tmp) to hold floats. 0, or -1. */
int cs_predict_block_tmp(cs_exec *e, size_t floats);

#endif
