/*
 * kernels.h - the numerical kernels of the general layer kinds: pooling, global
 * pooling, elementwise activations, elementwise arithmetic with broadcasting,
 * channel concatenation, padding and per-channel affine maps.
 *
 * The conventions of layers.h hold: pure functions over caller-owned buffers that
 * never allocate; float32 NHWC tensors of n images with per-sample shape (h, w, c).
 * A backward takes dy = d(scalar)/d(output) and WRITES the input gradient dx
 * (overwriting; dx may be NULL when it is not needed), and ADDS parameter gradients
 * (dscale, dshift), so a caller zeroes those once per batch. Large calls spread over
 * the parallel pool (parallel.h). Geometry is checked by the _check functions (a
 * message, or NULL when the kernels may run); the kernels themselves trust it.
 * Buffers do not overlap unless a function says they may (activations run in place).
 *
 * Softmax over the last axis is cs_softmax_forward/cs_softmax_backward (layers.h),
 * with n*h*w rows of c values.
 */
#ifndef CS_LAYERS_KERNELS_H
#define CS_LAYERS_KERNELS_H

#include <stddef.h>

/* ---- pool2d.c: max and average pooling ------------------------------------------ */

/* Window (kh, kw) at stride (sh, sw) with dilation (dh, dw) over the input padded by
 * pt rows on top, pb at the bottom, pl columns on the left and pr on the right:
 * output window (oy, ox) takes input rows oy*sh - pt + j*dh for j < kh (columns
 * alike). */
typedef struct {
    int n;                 /* batch */
    int ih, iw, c;         /* input (ih, iw, c) per sample */
    int oh, ow;            /* output (oh, ow, c): cs_pool2d_out_size of each axis */
    int kh, kw;            /* window */
    int sh, sw;            /* stride */
    int pt, pl, pb, pr;    /* padding: top, left, bottom, right */
    int count_include_pad; /* average pool only: padded positions count in the divisor */
    int dh, dw;            /* dilation; 0 or 1: none */
} cs_pool2d_geom;

/* Output length of one axis, as PyTorch and ONNX compute it: floor((in + pads - k) /
 * stride) + 1, or with ceil_mode the ceiling, minus the last window when that one
 * would start in the end padding ((out - 1) * stride >= in + pad_begin). For a
 * dilated window pass its extent (k - 1) * dilation + 1 as k. 0 when no window fits
 * or an argument is out of range. */
int cs_pool2d_out_size(int in, int k, int stride, int pad_begin, int pad_end, int ceil_mode);

/* NULL when the kernels may run on g: positive sizes, windows and strides, padding
 * and dilation >= 0, and every window holding at least one input position (as sizes
 * from cs_pool2d_out_size do when the padding is smaller than the window and there
 * is no dilation). Else a message. */
const char *cs_pool2d_check(const cs_pool2d_geom *g);

/* y = the maximum of each window; padded positions never win (they count as -inf).
 * x (n, ih, iw, c)  y (n, oh, ow, c) */
void cs_maxpool2d_forward(const cs_pool2d_geom *g, const float *x, float *y);
/* Each window's gradient goes to its first maximum in row-major order (PyTorch's
 * choice); overlapping windows add up. y must be the forward's output for this x. */
void cs_maxpool2d_backward(const cs_pool2d_geom *g, const float *x, const float *y, const float *dy, float *dx);

/* y = the mean of each window. The divisor is the number of input positions in the
 * window, or with count_include_pad its positions in the padded input (ih + pt + pb
 * rows, iw + pl + pr columns): a ceil-mode window that runs past the end padding
 * counts only what lies inside it, as PyTorch and ONNX (opset 19) do. */
void cs_avgpool2d_forward(const cs_pool2d_geom *g, const float *x, float *y);
void cs_avgpool2d_backward(const cs_pool2d_geom *g, const float *dy, float *dx);

/* ---- global_pool.c: (h, w, c) -> (1, 1, c) -------------------------------------- */

/* x (n, h, w, c)  y (n, 1, 1, c): mean (summed in double) or maximum per channel. */
void cs_global_avgpool_forward(int n, int h, int w, int c, const float *x, float *y);
void cs_global_avgpool_backward(int n, int h, int w, int c, const float *dy, float *dx);
void cs_global_maxpool_forward(int n, int h, int w, int c, const float *x, float *y);
/* The gradient goes to each channel's first maximum; y is the forward's output. */
void cs_global_maxpool_backward(int n, int h, int w, int c, const float *x, const float *y, const float *dy,
                                float *dx);

/* ---- activation.c: elementwise activations --------------------------------------- */

typedef enum {
    CS_ACTF_RELU,         /* max(0, x) */
    CS_ACTF_CLIP,         /* min(max(x, a), b); ReLU6 is a = 0, b = 6 */
    CS_ACTF_LEAKY,        /* x > 0 ? x : a x */
    CS_ACTF_ELU,          /* x > 0 ? x : a (exp(x) - 1) */
    CS_ACTF_SIGMOID,      /* 1 / (1 + exp(-x)) */
    CS_ACTF_TANH,         /* tanh(x) */
    CS_ACTF_SWISH,        /* x sigmoid(x) (SiLU) */
    CS_ACTF_HARD_SIGMOID, /* max(0, min(1, a x + b)): ONNX a = 0.2, b = 0.5; PyTorch a = 1/6, b = 0.5 */
    CS_ACTF_HARD_SWISH,   /* x relu6(x + 3) / 6 */
    CS_ACTF_GELU,         /* x Phi(x), with the exact normal CDF (erf) */
    CS_ACTF_GELU_TANH,    /* 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */
    CS_ACTF_SOFTPLUS,     /* log(1 + exp(x)) */
} cs_actf;
#define CS_ACTF_COUNT (CS_ACTF_SOFTPLUS + 1)

/* The kind and its constants a, b (unused ones are ignored). */
typedef struct {
    cs_actf kind;
    float a, b;
} cs_actf_params;

/* y = f(x) over count values; y may be x (in place). Sigmoid-like functions are
 * computed from exp(-|x|), so no intermediate overflows for large |x|. */
void cs_actf_forward(const cs_actf_params *p, size_t count, const float *x, float *y);
/* dx = dy f'(x), with x the forward's input and y its output (both needed: each kind
 * reads the one that gives the more accurate derivative); dx may be dy (in place).
 * At kinks the derivative is PyTorch's: relu'(0) = 0, leaky'(0) = a, elu'(0) = a;
 * clip passes the gradient strictly inside (a, b) only (hardtanh/relu6, unlike
 * torch.clamp, which also passes it at a and b); hard sigmoid strictly inside its
 * ramp; hard swish 0 up to -3, x/3 + 1/2 strictly between -3 and 3, 1 from 3 on
 * (PyTorch's current kernels; its CPU kernel before 2025 gave x/3 + 1/2 at -3, and
 * at 3 too on its scalar path). */
void cs_actf_backward(const cs_actf_params *p, size_t count, const float *x, const float *y, const float *dy,
                      float *dx);

/* ---- binary.c: elementwise arithmetic with broadcasting -------------------------- */

typedef enum { CS_BIN_ADD, CS_BIN_SUB, CS_BIN_MUL, CS_BIN_DIV } cs_binop;

/* y = a op b. Each input dimension equals the output's or is 1 (numpy broadcasting
 * over n, h, w, c): a (1, 1, c) input scales each channel, a batch of 1 is a constant
 * shared by every image. */
typedef struct {
    cs_binop op;
    int n, h, w, c;     /* output (n, h, w, c) */
    int an, ah, aw, ac; /* input a: each the output's size or 1 */
    int bn, bh, bw, bc; /* input b: likewise */
} cs_binary_geom;

/* NULL when g is valid (positive sizes, each input dimension the output's or 1), or a
 * message. */
const char *cs_binary_check(const cs_binary_geom *g);
/* a (an, ah, aw, ac)  b (bn, bh, bw, bc)  y (n, h, w, c). Division follows IEEE (x/0
 * is inf or NaN). y may be a when a has the output's shape (each value of a is read
 * only for the same position of y), so inputs can be folded into y one by one. */
void cs_binary_forward(const cs_binary_geom *g, const float *a, const float *b, float *y);
/* da (a's shape) and db (b's shape) are written: the gradient summed (in double) over
 * the dimensions the input was broadcast along. Either may be NULL; a and b are the
 * forward's inputs, always given. */
void cs_binary_backward(const cs_binary_geom *g, const float *a, const float *b, const float *dy, float *da,
                        float *db);

/* ---- concat.c: concatenation along channels -------------------------------------- */

/* k inputs of rows = n*h*w positions, input i with cs[i] channels; y has the sum of
 * the cs[i] channels per position, input 0's first.
 * xs[i] (rows, cs[i])  y (rows, sum cs) */
void cs_concat_forward(size_t rows, int k, const int *cs, const float *const *xs, float *y);
/* Splits dy back into the inputs' gradients; any dxs[i] may be NULL (so may dxs). */
void cs_concat_backward(size_t rows, int k, const int *cs, const float *dy, float *const *dxs);

/* ---- pad.c: constant padding ------------------------------------------------------ */

/* Output (h + top + bottom, w + left + right, c + cbegin + cend): the input placed at
 * (top, left, cbegin), `value` everywhere else. A negative pad removes rows, columns
 * or channels instead (as ONNX Pad allows). */
typedef struct {
    int n, h, w, c;                /* input */
    int top, left, bottom, right;  /* rows and columns added on each side */
    int cbegin, cend;              /* channels added before and after */
    float value;
} cs_pad_geom;

/* NULL when g is valid (positive input and output sizes), or a message. */
const char *cs_pad_check(const cs_pad_geom *g);
/* x (n, h, w, c)  y (n, h + top + bottom, w + left + right, c + cbegin + cend) */
void cs_pad_forward(const cs_pad_geom *g, const float *x, float *y);
/* dx = dy cropped back to the input (0 where a negative pad removed the input). */
void cs_pad_backward(const cs_pad_geom *g, const float *dy, float *dx);

/* ---- channel_affine.c: y = x * scale[c] + shift[c] --------------------------------- */

/* A fixed or learnt per-channel affine map (Keras Rescaling runs it with the whole
 * tensor as one channel; Normalization computes Keras' own formula in its row).
 * x, y (rows = n*h*w, c)  scale, shift (c) */
void cs_channel_affine_forward(size_t rows, int c, const float *x, const float *scale, const float *shift, float *y);
/* dx = dy * scale; dscale += sum over rows of dy * x, dshift += sum of dy (summed in
 * double). Any of dx, dscale, dshift may be NULL; x is read only for dscale. */
void cs_channel_affine_backward(size_t rows, int c, const float *x, const float *scale, const float *dy, float *dx,
                                float *dscale, float *dshift);

#endif
