/*
 * onednn_conv.h - one convolution of an inference pass through oneDNN (Debian's libdnnl).
 *
 * oneDNN's convolutions (its "brgconv" direct kernels, its Winograd F(4x4,3x3) and
 * F(2x2,3x3) kernels, its depthwise kernels) run the whole width of AVX-512 or AVX2 on
 * every window: 'same' and explicit padding, strides, dilations and channel groups.
 * A cs_onednn_conv is one layer's convolution in convscope's layouts (NHWC activations,
 * kernel (kh, kw, ic/groups, oc)), with oneDNN's primitives built for it on first use
 * and kept: a primitive is made for a shape of work (a number of images, or a band of
 * output rows of one image) and its kernel reordered once into the layout it reads.
 *
 * The work is spread over convscope's own pool (parallel.h) with oneDNN itself on one
 * thread inside each part, as OpenBLAS is: a batch splits into runs of images, a single
 * image into bands of output rows (each band a convolution of its own, with the band's
 * share of the padding), so no second set of threads ever competes for the cores and a
 * server's request threads, limited to one part each, run one each.
 *
 * Inference only: with a kernel that changes every step, training and gradients run
 * onednn_train.h's passes.
 */
#ifndef CS_ONEDNN_CONV_H
#define CS_ONEDNN_CONV_H

#include <stddef.h>

#include "layers/conv_general.h"
#include "layers.h"

typedef struct cs_onednn_conv cs_onednn_conv;

typedef enum {
    CS_ONEDNN_DIRECT,   /* direct convolution, on the NHWC tensors where they lie */
    CS_ONEDNN_WINOGRAD, /* Winograd (3x3 stride 1 only): oneDNN's blocked layout, reordered in and out */
} cs_onednn_alg;

/* What the convolution does to its output before it stores it ("post-ops"), in this
 * order: add the tensor the caller passes as `addend` (a residual connection), then
 * an elementwise function. */
typedef enum {
    CS_ONEDNN_LINEAR,
    CS_ONEDNN_RELU, /* x > 0 ? x : alpha x (alpha 0: ReLU; else leaky ReLU) */
    CS_ONEDNN_CLIP, /* min(max(x, alpha), beta) (ReLU6: 0, 6) */
} cs_onednn_act;

typedef struct {
    int sum; /* add the addend */
    cs_onednn_act act;
    float alpha, beta;
} cs_onednn_post;

/* The convolution of geometry g (g->n is ignored: any batch runs) with kernel w
 * (kh, kw, ic/groups, oc) and bias b (NULL: none), then the post-ops (NULL: none).
 * w and b are read when a primitive is first made, so they must stay alive and
 * unchanged as long as the object is used. NULL, with the reason in err, when oneDNN
 * offers only its slow reference code for it or the CPU has neither AVX-512 nor AVX2
 * (the caller's own kernels are then the better choice). */
cs_onednn_conv *cs_onednn_conv_new(const cs_conv2d_geom *g, const float *w, const float *b, const cs_onednn_post *post,
                                   cs_onednn_alg alg, char *err, size_t errlen);
void cs_onednn_conv_free(cs_onednn_conv *c);
/* A direct conv computing a slice of c's channels [lo, hi) on one thread (multiples of 16
 * but the last), reading c's kernel and bias where they are (they must outlive it):
 * - CS_SLICE_OUTPUTS: output channels lo..hi-1 (a depthwise conv's are its input's
 *   too), from all of c's inputs, with c's post-ops;
 * - CS_SLICE_INPUTS, a 1x1 conv without activation: the part of every output that
 *   input channels lo..hi-1 contribute, with c's bias and sum when `first`, neither
 *   otherwise (the parts add up to c's output).
 * NULL, with the reason in err, when c's shape takes no such slice or oneDNN refuses. */
typedef enum { CS_SLICE_OUTPUTS, CS_SLICE_INPUTS } cs_onednn_slice_kind;
cs_onednn_conv *cs_onednn_conv_slice(const cs_onednn_conv *c, cs_onednn_slice_kind kind, int lo, int hi, int first,
                                     char *err, size_t errlen);
/* Whether the post-ops apply an elementwise function; whether they add an addend. */
int cs_onednn_conv_activated(const cs_onednn_conv *c);
int cs_onednn_conv_sums(const cs_onednn_conv *c);
/* How many parts of its output channels a single image runs as (one per thread), or 0
 * when it runs as bands of rows. */
int cs_onednn_conv_channel_parts(const cs_onednn_conv *c);
/* How many threads a single image keeps busy: its channel parts, else its bands. */
int cs_onednn_conv_image_parts(const cs_onednn_conv *c);
/* Its geometry (n is 1: any batch runs). */
const cs_conv2d_geom *cs_onednn_conv_geom(const cs_onednn_conv *c);
/* The implementation oneDNN chose (e.g. "brgconv:avx512_core"). */
const char *cs_onednn_conv_impl(const cs_onednn_conv *c);
/* Bytes of oneDNN's copies of the kernel (the reordered layouts), for memory budgets. */
size_t cs_onednn_conv_kernel_bytes(const cs_onednn_conv *c);

/* y (n, oh, ow, oc) = conv(x (n, ih, iw, ic)) and the post-ops, spread over the pool;
 * addend (the output's shape) is what a sum post-op adds, NULL otherwise (it may not
 * be y). s lends each worker its buffer (s->onednn[w], grown here when a primitive
 * needs more). Thread-safe: execs running at once share the object. 0, or -1 when a
 * primitive or a buffer could not be made (y then holds nothing usable: run the plain
 * kernels). */
int cs_onednn_conv_forward(cs_onednn_conv *c, int n, const float *x, const float *addend, float *y, cs_scratch *s);

/* Rows of one image at a time, for a caller that runs several convs band by band so
 * that what one writes the next reads from cache (predict_bands.h).
 * The input rows [*iy0, *iy1) that output rows [oy0, oy1) read. */
void cs_onednn_conv_band_input(const cs_onednn_conv *c, int oy0, int oy1, int *iy0, int *iy1);
/* Makes what output rows [oy0, oy1) of one image need (the primitive, the kernel's copy,
 * room in s's worker buffers): before cs_onednn_conv_rows runs them on the pool, which
 * does not change s. 0, or -1 (out of memory, or oneDNN refused). */
int cs_onednn_conv_rows_prepare(cs_onednn_conv *c, int oy0, int oy1, cs_scratch *s);
/* Output rows [oy0, oy1) of one image into y (its row oy0 first), reading x from input
 * row *iy0 of cs_onednn_conv_band_input, and the addend at y's rows when the post-ops
 * sum; on the calling thread with worker w's buffer. Prepared first; 0, or -1. */
int cs_onednn_conv_rows(const cs_onednn_conv *c, int oy0, int oy1, const float *x, const float *addend, float *y,
                        cs_scratch *s, int worker);

/* Whether Winograd F(4x4,3x3)'s transformed kernel for g fits in a core's cache (1 MiB). */
int cs_onednn_winograd_kernel_small(const cs_conv2d_geom *g);

/* Whether oneDNN runs its vector kernels on this CPU (AVX2 or AVX-512). */
int cs_onednn_usable(void);

#endif
