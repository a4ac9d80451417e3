/*
 * predict_split.h - an inverted residual block of a single image (1x1 expand conv,
 * depthwise conv, 1x1 project conv) split over the workers by its wide channels.
 *
 * MobileNetV2's blocks at 14x14 and 7x7 are a few tens of microseconds of work a conv
 * on each thread; run conv by conv, each of the three ends waiting for the slowest
 * thread, and rows or channels one thread wrote are read by the other. A depthwise conv
 * keeps its channels apart, so worker k can run the whole block on its own share of the
 * wide channels: the expand conv's outputs of that share, the depthwise conv on them,
 * and the project conv's sum over them (a 1x1 conv is a sum over its input channels).
 * The workers meet once, at the end, where the partial sums are added: the first
 * worker's carries the bias and the residual add, the others' only their share. No
 * work is done twice and each worker's wide tensors stay in its own cache.
 *
 * Larger blocks run in bands instead (predict_bands.h); batches of several images
 * split the images over the workers.
 */
#ifndef CS_PREDICT_SPLIT_H
#define CS_PREDICT_SPLIT_H

#include "predict_bands.h"

enum { CS_SPLIT_MAX_PARTS = 8 };

typedef struct cs_fast_split {
    cs_fast_stage stage[CS_BAND_STAGES]; /* the block's chains (their convs are the whole layers) */
    int parts;
    /* Part k's slices of the three convs: wide channels [lo(k), lo(k+1)). Owned. */
    cs_onednn_conv *slice[CS_SPLIT_MAX_PARTS][CS_BAND_STAGES];
} cs_fast_split;

/* The block split in `threads` parts, where it is one (cs_fast_block_wide_bytes), on
 * a small image, its wide tensor under CS_BAND_WIDE_BYTES and its project conv without
 * an activation; NULL otherwise (or when oneDNN refuses a slice). */
cs_fast_split *cs_fast_split_make(const cs_fast_stage stage[CS_BAND_STAGES], int threads);
void cs_fast_split_free(cs_fast_split *s);
/* Bytes of the slices' kernel copies, for memory budgets. */
size_t cs_fast_split_kernel_bytes(const cs_fast_split *s);

/* Runs the block on e's batch (fewer images than parts, and as many workers free as
 * parts): x is the expand conv's input, addend what the project chain adds (NULL when
 * it does not), y the project chain's last output. 0, or -1 (the pool has fewer
 * workers free, out of memory, or oneDNN refused: y is then to be computed conv by
 * conv). */
int cs_predict_split(cs_exec *e, const cs_fast_split *s, const float *x, const float *addend, float *y);

#endif
