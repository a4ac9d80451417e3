/*
 * onednn_bf16.h - a convolution or a dense layer of an inference pass in bf16, through
 * oneDNN (Debian's libdnnl).
 *
 * The kernel is stored in bf16 (fp32's 8-bit exponent with 8 bits of mantissa), the
 * input is converted to bf16 as the layer reads it, and products are accumulated in
 * fp32; bias, post-ops and the output stay fp32. oneDNN runs these on AMX tiles or
 * AVX512-BF16 dot products; on a CPU with neither it would emulate bf16 slowly with
 * plain AVX-512, so nothing here is made unless bf16_plan.h's cs_bf16_cpu() says the
 * CPU has one of the two.
 *
 * The work is spread over convscope's pool as onednn_conv.h spreads it (oneDNN on one
 * thread inside each part): a batch of images as runs of images, a single image as
 * bands of output rows for a convolution; a dense layer as slices of its outputs, each
 * slice with its own share of the kernel, so no two workers read the same weights.
 * Kernels are reordered into the layout oneDNN's primitive reads on the first run that
 * needs it, from the fp32 kernel given, which must stay alive and unchanged as long as
 * the object is used (as onednn_conv.h's).
 */
#ifndef CS_ONEDNN_BF16_H
#define CS_ONEDNN_BF16_H

#include <stddef.h>

#include "layers/conv_general.h"
#include "layers.h"
#include "onednn_conv.h"

typedef struct cs_bf16_op cs_bf16_op;

/* A convolution of geometry g (g->n ignored) with kernel w (kh, kw, ic/groups, oc),
 * bias b (NULL: none) and the post-ops (NULL: none). NULL with the reason in err when
 * oneDNN has no bf16 kernel for it on this CPU. */
cs_bf16_op *cs_bf16_conv_new(const cs_conv2d_geom *g, const float *w, const float *b, const cs_onednn_post *post,
                             char *err, size_t errlen);
/* A dense layer y (n, oc) = x (n, ic) w (ic, oc) + b, then the post-ops (an activation
 * only: no sum). NULL with the reason in err as above. */
cs_bf16_op *cs_bf16_dense_new(int ic, int oc, const float *w, const float *b, const cs_onednn_post *post, char *err,
                              size_t errlen);
void cs_bf16_op_free(cs_bf16_op *op);

/* Whether the post-ops apply an activation; whether they add an addend. */
int cs_bf16_op_activated(const cs_bf16_op *op);
int cs_bf16_op_sums(const cs_bf16_op *op);
/* The implementation oneDNN chose (e.g. "brgconv:avx512_core_amx_bf16"). */
const char *cs_bf16_op_impl(const cs_bf16_op *op);
/* Bytes of the bf16 kernels made so far. */
size_t cs_bf16_op_kernel_bytes(const cs_bf16_op *op);

/* y = the layer of x for n images (NHWC, or rows of a dense layer's inputs), with
 * addend added when the post-ops sum (NULL otherwise; never y). s lends each worker
 * its buffer (s->onednn[w], grown here). Thread-safe. 0, or -1 when a primitive or a
 * buffer could not be made (y then holds nothing usable: run the fp32 path). */
int cs_bf16_op_forward(cs_bf16_op *op, int n, const float *x, const float *addend, float *y, cs_scratch *s);

#endif
