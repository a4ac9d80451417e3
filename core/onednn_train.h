/*
 * onednn_train.h - a convolution's passes for training and gradients through oneDNN:
 * the forward, the gradient of its input, and the gradients of its kernel and bias.
 *
 * convscope's own kernels run 'same'-padded, strided and 1x1 convs through im2col +
 * sgemm, which on the narrow layers of small networks (16-64 channels) leaves most of
 * the machine idle; oneDNN's direct kernels for the three passes run them at several
 * times the rate (README, "Training graph models").
 *
 * A batch is split into runs of images, one run per worker of convscope's pool, each
 * run one oneDNN primitive on one thread (as onednn_conv.h runs inference). The kernel
 * gradients of the runs are added up in the order of the runs, so a pass on the same
 * number of workers gives the same sums every time.
 *
 * Layouts as conv_general.h: activations NHWC, the kernel (kh, kw, ic/groups, oc). The
 * kernel changes with every step of training, so each pass reorders it into the
 * primitives' layout, and the kernel gradient back into the caller's.
 */
#ifndef CS_ONEDNN_TRAIN_H
#define CS_ONEDNN_TRAIN_H

#include <stddef.h>

#include "layers/conv_general.h"
#include "layers.h"

typedef struct cs_onednn_train cs_onednn_train;

/* The passes of geometry g (g->n is ignored: any batch runs). NULL, with the reason in
 * err, when the CPU has neither AVX-512 nor AVX2, oneDNN offers only its reference code
 * for the layer, or it is depthwise (ic/groups == 1 and more than one group: convscope's
 * own depthwise kernels run those). */
cs_onednn_train *cs_onednn_train_new(const cs_conv2d_geom *g, char *err, size_t errlen);
void cs_onednn_train_free(cs_onednn_train *t);
/* The implementations oneDNN chose for the passes made so far, e.g.
 * "brgconv:avx512_core jit:avx512_core jit:avx512_core". */
const char *cs_onednn_train_impl(const cs_onednn_train *t);

/* Whether a batch of n images runs here with the workers of s: one image at least for
 * each (a smaller batch runs better on the kernels that split an image's rows). */
int cs_onednn_train_takes(int n, const cs_scratch *s);

/* y (n, oh, ow, oc) = conv(x (n, ih, iw, ic), w) + b (oc). s lends
 * each worker its buffer (s->onednn[w], grown here). 0, or -1 when a primitive or a
 * buffer could not be made (y then holds nothing usable: run the plain kernels). */
int cs_onednn_train_forward(cs_onednn_train *t, int n, const float *x, const float *w, const float *b, float *y,
                            cs_scratch *s);
/* From dy (n, oh, ow, oc): dx (n, ih, iw, ic) overwritten, dw (the kernel's layout) and
 * db (oc) added to; each may be NULL when not wanted. 0, or -1 when a primitive or a
 * buffer could not be made: dw and db are then untouched (dx may be half written). */
int cs_onednn_train_backward(cs_onednn_train *t, int n, const float *x, const float *w, const float *dy, float *dx,
                             float *dw, float *db, cs_scratch *s);

/* Off: cs_onednn_train_takes says no to every batch, so the layers run their plain
 * kernels (the tests compare the two). On by default. */
void cs_onednn_train_enable(int on);

#endif
