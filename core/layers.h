/*
 * layers.h - the numerical kernels of each layer kind, forward and backward.
 *
 * Pure functions over caller-owned buffers: they never allocate. Shapes are
 * per-sample (h, w, c), tensors are NHWC, n is the batch. Backward functions take
 * dy = d(scalar)/d(output) and write dx = d(scalar)/d(input) (overwriting) and
 * ADD parameter gradients into dw/db (so a caller zeroes them once per batch).
 */
#ifndef CS_LAYERS_H
#define CS_LAYERS_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include "parallel.h"

/* Convolution geometry, derived from a conv layer. */
typedef struct {
    int n;                /* batch */
    int ih, iw, ic;       /* input */
    int oh, ow, oc;       /* output */
    int k, stride, pad_t, pad_l;
} cs_conv_geom;

/* Scratch a pass lends the kernels: one area per worker thread of the parallel pool
 * (parallel.h), so ranges of one layer run at once without sharing buffers. */
typedef struct {
    int workers;
    float *col[CS_MAX_WORKERS]; /* im2col rows (or another kernel's worker-local scratch), col_floats each */
    size_t col_floats;
    float *part[CS_MAX_WORKERS]; /* workers > 0: partial parameter gradients, part_floats each */
    size_t part_floats;
    float *dy[CS_MAX_WORKERS]; /* dy chunks of cs_conv_backward_from, dy_floats each */
    size_t dy_floats;
    void *onednn[CS_MAX_WORKERS]; /* oneDNN's scratchpads and reordered tensors (onednn_conv.h), */
    size_t onednn_bytes;          /* onednn_bytes each, grown by the passes that need them */
} cs_scratch;

/* im2col is written and read back in chunks of rows. A chunk of about 1 MB stays in
 * the core's L2 cache between im2col writing it and sgemm reading it, which halves a
 * training step against one im2col of the whole batch (that goes out to memory and
 * back); it also bounds the memory of a pass however large the image (VGG16's first
 * layers would need 115 MB each). Chunks keep at least CS_COL_MIN_ROWS rows so that
 * sgemm does not repack a large kernel (VGG16's deep layers) for a handful of rows. */
#define CS_COL_CHUNK_FLOATS ((size_t)256 * 1024)
#define CS_COL_MIN_ROWS 512

/* Batch-norm statistics being gathered (see cs_bn_stats_init below). */
typedef struct {
    int c;
    double *sums; /* [CS_MAX_WORKERS][2c]: mean, M2 */
    double rows[CS_MAX_WORKERS];
} cs_bn_stats;
/* Doubles of the work area every batch-norm pass below takes as `sums`: a mean and a
 * second moment per channel for each worker. The caller owns it (an exec allocates one
 * per batch-norm node), so no pass allocates or can fail half-way. */
#define CS_BN_SUMS(c) ((size_t)CS_MAX_WORKERS * 2 * (size_t)(c))

cs_conv_geom cs_conv_geometry(const cs_layer *l, int n);
/* Stride 1 without padding: output (y, x) reads the k x k input square at (y, x), whose
 * k rows are each k*ic consecutive floats (the layers the direct kernels take). */
int cs_conv_valid_stride1(const cs_conv_geom *g);
/* Offsets into the input (or dx) of the receptive-field corners of output rows
 * [r0, r0 + n), then repeats of the last one up to `size` entries (a short last group
 * of a kernel computes those again and drops them). */
void cs_conv_corners(const cs_conv_geom *g, size_t r0, size_t n, size_t size, size_t *off);
/* Offsets of a receptive field's k*k*ic values from its corner, in (ky, kx, c) order:
 * the kernel's rows. Returns how many. */
int cs_conv_tap_offsets(const cs_conv_geom *g, int *off);
/* Rows of one im2col chunk, at most what fits in `col_floats` floats (at least 1). */
size_t cs_conv_chunk_rows(const cs_conv_geom *g, size_t col_floats);

/* y = conv(x, w) + b; rows are processed in chunks that fit the scratch, spread
 * over the workers. */
void cs_conv_forward(const cs_conv_geom *g, const float *x, const float *w, const float *b, float *y,
                     const cs_scratch *s);
/* Output rows [r0, r0 + rows) into y (rows x oc) on the calling thread; col: im2col
 * scratch for cs_conv_chunk_rows() rows (unused by layers the direct kernels take). */
void cs_conv_forward_rows(const cs_conv_geom *g, const float *x, const float *w, const float *b, size_t r0, size_t rows,
                          float *y, float *col);
/* The same, adding the output's batch statistics into `stats` chunk by chunk while
 * each chunk is in cache (for a batch norm right above). */
void cs_conv_forward_stats(const cs_conv_geom *g, const float *x, const float *w, const float *b, float *y,
                           const cs_scratch *s, cs_bn_stats *stats);
/* dx may be NULL (first layer: no input gradient needed); dw/db may be NULL (Grad-CAM).
 * With several workers and dw, the scratch needs part_floats >= k*k*ic*oc + oc. */
void cs_conv_backward(const cs_conv_geom *g, const float *x, const float *w, const float *dy, float *dx, float *dw,
                      float *db, const cs_scratch *s);

/* A producer of dy rows, for a conv backward that takes its dy chunk by chunk while
 * the chunk is in cache instead of reading a stored tensor: fill(ctx, r0, rows, out)
 * writes rows [r0, r0 + rows) (oc floats each) into out. */
typedef struct {
    void (*fill)(void *ctx, size_t r0, size_t rows, float *out);
    void *ctx;
} cs_rows_source;
/* cs_conv_backward with dy from a source; the scratch needs dy[worker] buffers of
 * dy_floats >= CS_DY_CHUNK_FLOATS (or one row). */
#define CS_DY_CHUNK_FLOATS ((size_t)64 * 1024)
void cs_conv_backward_from(const cs_conv_geom *g, const float *x, const float *w, const cs_rows_source *dy, float *dx,
                           float *dw, float *db, const cs_scratch *s);
/* Stride-1 'valid' layers run direct kernels: of conv.c's own for receptive fields of
 * up to 32 taps, on CPUs with AVX-512 for longer ones (conv_avx512.c); every other
 * layer runs im2col + sgemm. on = 1 sends every layer through im2col instead (tests
 * and benchmarks compare the two). Process-wide; set it between passes, not during
 * one. */
void cs_conv_force_im2col(int on);
int cs_conv_uses_im2col(const cs_conv_geom *g);

/* y = x w + b over n rows; x is n x in, w is in x out. */
void cs_dense_forward(int n, int in, int out, const float *x, const float *w, const float *b, float *y);
void cs_dense_backward(int n, int in, int out, const float *x, const float *w, const float *dy, float *dx, float *dw,
                       float *db);

/* Batch norm over the last axis, `rows` = n*h*w positions of c channels.
 * Training: batch mean and (biased) variance normalise; mean/inv_std are kept for
 * backward (which recomputes the normalised input from x); moving statistics (when
 * given) move by `momentum` toward the batch's, with the unbiased variance as Keras
 * does. Inference uses the moving statistics. */
void cs_bn_forward_train(size_t rows, int c, const float *x, const float *gamma, const float *beta, float eps,
                         float *y, float *mean, float *inv_std, float *moving_mean, float *moving_var, float momentum,
                         double *sums);
/* Batch statistics gathered piece by piece, for a pass that has the rows in cache
 * anyway (a conv writing them): each worker adds its rows (count, mean and M2 per
 * channel, merged exactly in double), then _finish merges the workers and sets mean,
 * inv_std and the moving statistics as cs_bn_forward_train does (the
 * struct is declared above, with the conv that fills one). */
void cs_bn_stats_init(cs_bn_stats *st, int c, double *sums);
void cs_bn_stats_add_rows(cs_bn_stats *st, int worker, const float *x, size_t rows);
void cs_bn_stats_finish(cs_bn_stats *st, float eps, float *mean, float *inv_std, float *moving_mean, float *moving_var,
                        float momentum);
/* The training-mode statistics alone: batch mean and 1/sqrt(var + eps) per channel,
 * moving statistics moved as above (when given). */
void cs_bn_batch_stats(size_t rows, int c, const float *x, float eps, float *mean, float *inv_std,
                       float *moving_mean, float *moving_var, float momentum, double *sums);
void cs_bn_forward_infer(size_t rows, int c, const float *x, const float *gamma, const float *beta,
                         const float *moving_mean, const float *moving_var, float eps, float *y);
void cs_bn_backward_train(size_t rows, int c, const float *x, const float *dy, const float *gamma, const float *mean,
                          const float *inv_std, float *dx, float *dgamma, float *dbeta, double *sums);
/* The rest of the training backward once the per-worker sums of dy and dy * xhat are
 * in (sums: [parts][2c], the first row receives the total): adds dgamma/dbeta (may be
 * NULL) and sets the constants of dx = scale * (dy - mean_dy - xhat * mean_dyx). The
 * fused block (bn_act_pool.c) finishes its backward with it too. */
void cs_bn_grad_consts(int c, size_t rows, double *sums, int parts, const float *gamma, const float *inv_std,
                       float *dgamma, float *dbeta, float *scale, float *mean_dy, float *mean_dyx);
/* Backward through inference-mode batch norm (a fixed affine map), for Grad-CAM;
 * dgamma/dbeta may be NULL. */
void cs_bn_backward_infer(size_t rows, int c, const float *x, const float *dy, const float *gamma,
                          const float *moving_mean, const float *moving_var, float eps, float *dx, float *dgamma,
                          float *dbeta);

void cs_leaky_forward(size_t n, float alpha, const float *x, float *y);
void cs_leaky_backward(size_t n, float alpha, const float *x, const float *dy, float *dx);
void cs_relu_forward(size_t n, const float *x, float *y);
/* ReLU backward from its output: y > 0 exactly where x > 0. */
void cs_relu_backward(size_t n, const float *y, const float *dy, float *dx);

/* Max pool with a p x p window and stride p (Keras 'valid': the ragged edge is dropped). */
void cs_maxpool_forward(int n, int ih, int iw, int c, int p, const float *x, float *y);
/* The gradient goes to the first maximum of each window. */
void cs_maxpool_backward(int n, int ih, int iw, int c, int p, const float *x, const float *y, const float *dy,
                         float *dx);

/* Batch norm (training mode) -> LeakyReLU (alpha; 0 for ReLU) -> p x p max pool, as one
 * block over n images of h x w x c, for training (bn_act_pool.c). The forward writes
 * the pooled output, the batch statistics (mean/inv_std) and, per pooled value, the
 * window position that won (argmax, pooled size) with its normalised input (win_xhat,
 * pooled size: the backward's sums need no other value of x). With the same batch
 * statistics the values are the unfused layers' exactly (same float operations in the
 * same order); gradients agree to rounding. */
typedef struct {
    int n, h, w, c, p;
    float alpha;
    const float *gamma, *beta;
    float eps;
} cs_bn_act_pool;
void cs_bn_act_pool_forward(const cs_bn_act_pool *b, const float *x, float *mean, float *inv_std, float *moving_mean,
                            float *moving_var, float momentum, float *pooled, uint8_t *argmax, float *win_xhat,
                            double *sums);
/* The forward with the statistics already in mean/inv_std (cs_conv_forward_stats). */
void cs_bn_act_pool_apply(const cs_bn_act_pool *b, const float *x, const float *mean, const float *inv_std,
                          float *pooled, uint8_t *argmax, float *win_xhat);
/* One row of windows: pooled row `row` (image * h/p + window row) from the p input
 * rows it covers, which start at band (w*c floats each). */
void cs_bn_act_pool_apply_row(const cs_bn_act_pool *b, const float *band, long row, const float *mean,
                              const float *inv_std, float *pooled, uint8_t *argmax, float *win_xhat);

/* The backward in two steps: _begin adds dgamma/dbeta (may be NULL) and fills what the
 * input gradient needs; then cs_bn_act_pool_input_grad(gr, r0, rows, dx) writes dx for
 * any rows [r0, r0 + rows) of the block's input (h*w rows per image, c floats each),
 * on demand. cs_bn_act_pool_backward does both for the whole batch (dx may be NULL). */
typedef struct {
    const cs_bn_act_pool *b;
    const float *x, *mean, *inv_std; /* the forward's input and statistics */
    const uint8_t *argmax;           /* from the forward */
    const float *win_xhat;           /* from the forward */
    float *win_grad;                 /* pooled size: the gradient at each window's winner */
    float *scale, *mean_dy, *mean_dyx; /* c each, filled by _begin */
    double *sums;                    /* CS_BN_SUMS(c) doubles of work area */
} cs_bn_act_pool_grad;
void cs_bn_act_pool_backward_begin(cs_bn_act_pool_grad *gr, const float *dpooled, float *dgamma, float *dbeta);
void cs_bn_act_pool_input_grad(void *gr, size_t r0, size_t rows, float *dx);
void cs_bn_act_pool_backward(cs_bn_act_pool_grad *gr, const float *dpooled, float *dx, float *dgamma, float *dbeta);


/* Inverted dropout: keep with probability 1-rate, scale kept values by 1/(1-rate). */
void cs_dropout_forward(size_t n, float rate, const float *x, float *y, uint8_t *mask, uint64_t *rng_state);
void cs_dropout_backward(size_t n, float rate, const uint8_t *mask, const float *dy, float *dx);

/* Row-wise softmax of n rows of k logits (max subtracted first). */
void cs_softmax_forward(int n, int k, const float *z, float *p);
/* dz from dp through the softmax: dz = p * (dp - sum(dp * p)). */
void cs_softmax_backward(int n, int k, const float *p, const float *dp, float *dz);

#endif
