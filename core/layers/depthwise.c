/*
 * depthwise.c - direct kernels for depthwise convolutions (ic/groups == 1: every input
 * channel c feeds its own `mult` outputs c*mult .. c*mult + mult-1).
 *
 * im2col would be a waste here: each im2col row would feed a product of one column.
 * In NHWC the channels of a pixel are consecutive and so are the kernel's outputs of
 * one tap, so each output pixel is a sum over its taps of elementwise products of two
 * vectors of channels, computed a block of channels at a time with the sums in vector
 * registers. The backward is the same shape: the input gradient of a pixel gathers,
 * over the taps that reach it, dy times the kernel (no col2im, no atomics: every dx
 * pixel is written once, by one worker), and the kernel gradient of a tap sums x times
 * dy along an output row before adding to dw.
 */
#include <string.h>

#include "conv_general.h"
#include "parallel.h"
#include "simd.h"

/* Taps one kernel call sums; longer kernels are summed in pieces. */
#define MAX_TAPS 64
/* Output pixels the interior forward computes at once: each kernel vector loaded
 * serves all of them. */
#define PIXELS 4

/* Eight channels as one value: a ymm register under AVX2 and AVX-512 (CS_WIDE_CLONES
 * compiles each function for both and for the baseline, where it is two xmm). The
 * sums are named variables of this type rather than float arrays: GCC vectorises
 * loops over a float array but keeps the array on the stack, storing it back after
 * every tap. A 64-byte type would fill AVX-512's registers, but GCC compiles it for
 * AVX2 through the stack, so only the hottest kernel has a 64-byte version, taken on
 * CPUs with AVX-512 (simd.h). */
typedef float vf __attribute__((vector_size(32), aligned(4), may_alias));
#define VL 8
#define LOAD_AS(V, p) (*(const V *)(p))
#define STORE_AS(V, p, v) (*(V *)(p) = (v))
#define LOAD(p) LOAD_AS(vf, p)
#define STORE(p, v) STORE_AS(vf, p, v)
#define START(init, c) ((init) ? LOAD((init) + (c)) : (vf){0})

/* out[c] = init[c] (0 when init is NULL; init may be out) + the sum over the T taps of
 * x[xoff[t] + c] * w[woff[t] + c], for the C channels of one pixel. */
CS_WIDE_CLONES CS_CONTRACT static void taps_dot(int C, int T, const float *x, const long *xoff, const float *w,
                                                const long *woff, const float *init, float *out)
{
    int c = 0;
    for (; c + 4 * VL <= C; c += 4 * VL) {
        vf a0 = START(init, c), a1 = START(init, c + VL), a2 = START(init, c + 2 * VL), a3 = START(init, c + 3 * VL);
        for (int t = 0; t < T; t++) {
            const float *xp = x + xoff[t] + c, *wp = w + woff[t] + c;
            a0 += LOAD(xp) * LOAD(wp);
            a1 += LOAD(xp + VL) * LOAD(wp + VL);
            a2 += LOAD(xp + 2 * VL) * LOAD(wp + 2 * VL);
            a3 += LOAD(xp + 3 * VL) * LOAD(wp + 3 * VL);
        }
        STORE(out + c, a0), STORE(out + c + VL, a1), STORE(out + c + 2 * VL, a2), STORE(out + c + 3 * VL, a3);
    }
    for (; c + VL <= C; c += VL) {
        vf a = START(init, c);
        for (int t = 0; t < T; t++) a += LOAD(x + xoff[t] + c) * LOAD(w + woff[t] + c);
        STORE(out + c, a);
    }
    for (; c < C; c++) {
        float a = init ? init[c] : 0.0f;
        for (int t = 0; t < T; t++) a += x[xoff[t] + c] * w[woff[t] + c];
        out[c] = a;
    }
}

/* The body of taps_dot_pixels for vectors of type V (W floats) from channel c on, as
 * far as whole blocks of 2*W channels go: two vectors of channels by four pixels make
 * eight independent sums, enough to keep the FMA units busy, and each kernel vector
 * loaded serves four pixels. */
#define DOT_PIXELS(V, W)                                                                                               \
    for (; c + 2 * (W) <= C; c += 2 * (W)) {                                                                           \
        const V zero = {0}, b0 = bias ? LOAD_AS(V, bias + c) : zero, b1 = bias ? LOAD_AS(V, bias + c + (W)) : zero;   \
        V p0 = b0, p1 = b0, p2 = b0, p3 = b0, q0 = b1, q1 = b1, q2 = b1, q3 = b1;                                     \
        for (int t = 0; t < T; t++) {                                                                                  \
            const float *xp = x + xoff[t] + c, *wp = w + woff[t] + c;                                                 \
            const V w0 = LOAD_AS(V, wp), w1 = LOAD_AS(V, wp + (W));                                                   \
            p0 += LOAD_AS(V, xp) * w0, q0 += LOAD_AS(V, xp + (W)) * w1;                                               \
            p1 += LOAD_AS(V, xp + step) * w0, q1 += LOAD_AS(V, xp + step + (W)) * w1;                                 \
            p2 += LOAD_AS(V, xp + 2 * step) * w0, q2 += LOAD_AS(V, xp + 2 * step + (W)) * w1;                         \
            p3 += LOAD_AS(V, xp + 3 * step) * w0, q3 += LOAD_AS(V, xp + 3 * step + (W)) * w1;                         \
        }                                                                                                              \
        STORE_AS(V, out + c, p0), STORE_AS(V, out + c + (W), q0);                                                     \
        STORE_AS(V, out + ostep + c, p1), STORE_AS(V, out + ostep + c + (W), q1);                                     \
        STORE_AS(V, out + 2 * ostep + c, p2), STORE_AS(V, out + 2 * ostep + c + (W), q2);                             \
        STORE_AS(V, out + 3 * ostep + c, p3), STORE_AS(V, out + 3 * ostep + c + (W), q3);                             \
    }

#if CS_HAVE_AVX512_KERNELS
typedef float vf16 __attribute__((vector_size(64), aligned(4), may_alias));
/* Sixteen-float vectors, twice the work per instruction of the eight-float kernel.
 * Returns the channels done. */
CS_AVX512 CS_CONTRACT static int dot_pixels_avx512(int C, int T, const float *x, const long *xoff, long step,
                                                   const float *w, const long *woff, const float *bias, float *out,
                                                   long ostep)
{
    int c = 0;
    DOT_PIXELS(vf16, 16)
    return c;
}
#endif

CS_WIDE_CLONES CS_CONTRACT static int dot_pixels_vf(int c, int C, int T, const float *x, const long *xoff, long step,
                                                    const float *w, const long *woff, const float *bias, float *out,
                                                    long ostep)
{
    DOT_PIXELS(vf, VL)
    return c;
}

/* taps_dot for PIXELS output pixels whose inputs lie `step` floats apart (the
 * forward: stride * C) and whose outputs lie `ostep` apart (the forward: C), starting
 * from the bias (or 0). */
static void taps_dot_pixels(int C, int T, const float *x, const long *xoff, long step, const float *w,
                            const long *woff, const float *bias, float *out, long ostep)
{
    int c = 0;
#if CS_HAVE_AVX512_KERNELS
    if (cs_cpu_avx512()) c = dot_pixels_avx512(C, T, x, xoff, step, w, woff, bias, out, ostep);
#endif
    c = dot_pixels_vf(c, C, T, x, xoff, step, w, woff, bias, out, ostep);
    if (c < C) /* the last channels pixel by pixel */
        for (int p = 0; p < PIXELS; p++)
            taps_dot(C - c, T, x + p * step + c, xoff, w + c, woff, bias ? bias + c : NULL, out + p * ostep + c);
}

/* With a channel multiplier: out[c*mult + m] = init + sum_t x[xoff[t] + c] * w[woff[t] + c*mult + m].
 * The sums run over the multiplier's outputs, a vector at a time: a single-channel
 * input (a first layer: groups == ic == 1) has all its outputs there. */
CS_WIDE_CLONES CS_CONTRACT static void taps_mult(int C, int mult, int T, const float *x, const long *xoff,
                                                 const float *w, const long *woff, const float *init, float *out)
{
    for (int c = 0; c < C; c++) {
        const float *in = init ? init + (size_t)c * mult : NULL;
        float *o = out + (size_t)c * mult;
        int m = 0;
        for (; m + 2 * VL <= mult; m += 2 * VL) {
            vf a0 = START(in, m), a1 = START(in, m + VL);
            for (int t = 0; t < T; t++) {
                const float xv = x[xoff[t] + c], *wp = w + woff[t] + (size_t)c * mult + m;
                a0 += xv * LOAD(wp), a1 += xv * LOAD(wp + VL);
            }
            STORE(o + m, a0), STORE(o + m + VL, a1);
        }
        for (; m < mult; m++) {
            float a = in ? in[m] : 0.0f;
            for (int t = 0; t < T; t++) a += x[xoff[t] + c] * w[woff[t] + (size_t)c * mult + m];
            o[m] = a;
        }
    }
}

/* The input-gradient side of taps_mult:
 * out[c] = init + sum_t sum_m dy[dyoff[t] + c*mult + m] * w[woff[t] + c*mult + m]. */
CS_WIDE_CLONES CS_CONTRACT static void taps_mult_reduce(int C, int mult, int T, const float *dy, const long *dyoff,
                                                        const float *w, const long *woff, const float *init,
                                                        float *out)
{
    for (int c = 0; c < C; c++) {
        vf a = {0};
        float tail = init ? init[c] : 0.0f;
        for (int t = 0; t < T; t++) {
            const float *d = dy + dyoff[t] + (size_t)c * mult, *wt = w + woff[t] + (size_t)c * mult;
            int m = 0;
            for (; m + VL <= mult; m += VL) a += LOAD(d + m) * LOAD(wt + m);
            for (; m < mult; m++) tail += d[m] * wt[m];
        }
        for (int i = 0; i < VL; i++) tail += a[i];
        out[c] = tail;
    }
}

/* taps_mult for PIXELS output pixels, inputs `step` floats apart and outputs `ostep`
 * apart, from the bias (or 0): four pixels by two vectors of outputs, as taps_dot_pixels. */
CS_WIDE_CLONES CS_CONTRACT static void taps_mult_pixels(int C, int mult, int T, const float *x, const long *xoff,
                                                        long step, const float *w, const long *woff,
                                                        const float *bias, float *out, long ostep)
{
    for (int c = 0; c < C; c++) {
        const size_t co = (size_t)c * mult;
        int m = 0;
        for (; m + 2 * VL <= mult; m += 2 * VL) {
            const vf b0 = START(bias ? bias + co : NULL, m), b1 = START(bias ? bias + co : NULL, m + VL);
            vf p0 = b0, p1 = b0, p2 = b0, p3 = b0, q0 = b1, q1 = b1, q2 = b1, q3 = b1;
            for (int t = 0; t < T; t++) {
                const float *xp = x + xoff[t] + c, *wp = w + woff[t] + co + m;
                const vf w0 = LOAD(wp), w1 = LOAD(wp + VL);
                const float x0 = xp[0], x1 = xp[step], x2 = xp[2 * step], x3 = xp[3 * step];
                p0 += x0 * w0, q0 += x0 * w1, p1 += x1 * w0, q1 += x1 * w1;
                p2 += x2 * w0, q2 += x2 * w1, p3 += x3 * w0, q3 += x3 * w1;
            }
            float *o = out + co + m;
            STORE(o, p0), STORE(o + VL, q0), STORE(o + ostep, p1), STORE(o + ostep + VL, q1);
            STORE(o + 2 * ostep, p2), STORE(o + 2 * ostep + VL, q2), STORE(o + 3 * ostep, p3);
            STORE(o + 3 * ostep + VL, q3);
        }
        for (; m < mult; m++) /* the multiplier's last outputs */
            for (int p = 0; p < PIXELS; p++) {
                float a = bias ? bias[co + m] : 0.0f;
                for (int t = 0; t < T; t++) a += x[xoff[t] + c + p * step] * w[woff[t] + co + m];
                out[p * ostep + co + m] = a;
            }
    }
}

/* dw += the taps' x times dy, with a channel multiplier: out[c*mult + m] += sum over n
 * pixels of x[i*xs + c] * dy[i*ds + c*mult + m], summed in registers over the pixels. */
CS_WIDE_CLONES CS_CONTRACT static void strided_mult_dot(int C, int mult, int n, const float *x, long xs,
                                                        const float *dy, long ds, float *out)
{
    for (int c = 0; c < C; c++) {
        const size_t co = (size_t)c * mult;
        int m = 0;
        for (; m + 2 * VL <= mult; m += 2 * VL) {
            vf s0 = {0}, s1 = {0};
            for (int i = 0; i < n; i++) {
                const float xv = x[(size_t)i * xs + c], *dp = dy + (size_t)i * ds + co + m;
                s0 += xv * LOAD(dp), s1 += xv * LOAD(dp + VL);
            }
            STORE(out + co + m, LOAD(out + co + m) + s0), STORE(out + co + m + VL, LOAD(out + co + m + VL) + s1);
        }
        for (; m < mult; m++) {
            float s0 = 0;
            for (int i = 0; i < n; i++) s0 += x[(size_t)i * xs + c] * dy[(size_t)i * ds + co + m];
            out[co + m] += s0;
        }
    }
}

/* Sums taps into one pixel in pieces of MAX_TAPS, whatever the kernel size. */
typedef struct {
    int C, mult, reduce; /* reduce: the input gradient (outputs per input channel summed) */
    const float *src, *w, *init;
    float *out;
    int n;
    int wrote;
    long off[MAX_TAPS], woff[MAX_TAPS];
} tap_sum;

/* A pixel's sum: init (the bias, or NULL for 0) plus the taps that tap_add adds. */
static void tap_start(tap_sum *ts, int C, int mult, int reduce, const float *src, const float *w, const float *init,
                      float *out)
{
    ts->C = C, ts->mult = mult, ts->reduce = reduce;
    ts->src = src, ts->w = w, ts->init = init, ts->out = out;
    ts->n = ts->wrote = 0; /* the offset arrays are filled as taps come */
}

static void tap_flush(tap_sum *ts)
{
    const float *init = ts->wrote ? ts->out : ts->init;
    if (ts->reduce && ts->mult > 1)
        taps_mult_reduce(ts->C, ts->mult, ts->n, ts->src, ts->off, ts->w, ts->woff, init, ts->out);
    else if (ts->mult > 1) taps_mult(ts->C, ts->mult, ts->n, ts->src, ts->off, ts->w, ts->woff, init, ts->out);
    else taps_dot(ts->C, ts->n, ts->src, ts->off, ts->w, ts->woff, init, ts->out);
    ts->n = 0;
    ts->wrote = 1;
}

static void tap_add(tap_sum *ts, long off, long woff)
{
    ts->off[ts->n] = off;
    ts->woff[ts->n] = woff;
    if (++ts->n == MAX_TAPS) tap_flush(ts);
}

/* Writes the pixel: init plus the taps added (init alone when there were none). */
static void tap_finish(tap_sum *ts)
{
    if (ts->n || !ts->wrote) tap_flush(ts);
}

static int floor_div(int a, int b)
{
    return a >= 0 ? a / b : -((-a + b - 1) / b);
}

static int ceil_div(int a, int b)
{
    return a >= 0 ? (a + b - 1) / b : -(-a / b);
}

/* Outputs i in [*lo, *hi) whose input i*stride - pad + tap lies in [0, in). */
static void output_span(int in, int out, int stride, int pad, int tap, int *lo, int *hi)
{
    int a = ceil_div(pad - tap, stride), b = floor_div(in - 1 + pad - tap, stride) + 1;
    *lo = a < 0 ? 0 : a > out ? out : a;
    *hi = b < *lo ? *lo : b > out ? out : b;
}

typedef struct {
    const cs_conv2d_geom *g;
    const float *x, *w, *b, *dy;
    float *y, *dx, *dw, *db;
    const cs_scratch *s;
    int partial; /* backward: workers > 0 sum dw/db into s->part[worker] */
} dw_job;

/* Output rows [begin, end) of the n*oh rows. */
static void forward_rows(void *ctx, long begin, long end, int worker)
{
    (void)worker;
    const dw_job *j = ctx;
    const cs_conv2d_geom *g = j->g;
    const int C = g->ic, oc = g->oc, mult = oc / C;
    const size_t image = (size_t)g->ih * g->iw * C;
    /* Output pixels whose every tap lies inside the image along x. */
    int in_lo, in_hi;
    output_span(g->iw - (g->kw - 1) * g->dw, g->ow, g->sw, g->pl, 0, &in_lo, &in_hi);
    if (g->iw - (g->kw - 1) * g->dw < 1) in_lo = in_hi = 0;
    for (long r = begin; r < end; r++) {
        const int oy = (int)(r % g->oh);
        const float *img = j->x + (size_t)(r / g->oh) * image;
        float *yrow = j->y + (size_t)r * g->ow * oc;
        /* Taps whose row lies inside the image. */
        int ky0 = ceil_div(g->pt - oy * g->sh, g->dh);
        int ky1 = floor_div(g->ih - 1 + g->pt - oy * g->sh, g->dh) + 1;
        if (ky0 < 0) ky0 = 0;
        if (ky1 > g->kh) ky1 = g->kh;
        const int nt = ky1 > ky0 ? (ky1 - ky0) * g->kw : 0;
        /* Interior pixels: the same tap offsets from each pixel's left corner. */
        int lo = in_lo, hi = in_hi;
        if (nt > MAX_TAPS || nt == 0) lo = hi = 0;
        long xoff[MAX_TAPS], woff[MAX_TAPS];
        if (hi > lo) {
            int t = 0;
            for (int ky = ky0; ky < ky1; ky++)
                for (int kx = 0; kx < g->kw; kx++, t++) {
                    const int iy = oy * g->sh - g->pt + ky * g->dh;
                    xoff[t] = ((long)iy * g->iw + (long)kx * g->dw) * C;
                    woff[t] = (long)(ky * g->kw + kx) * oc;
                }
            int ox = lo;
            const long step = (long)g->sw * C;
            for (; ox + PIXELS <= hi; ox += PIXELS) {
                const float *xp = img + (size_t)(ox * g->sw - g->pl) * C;
                if (mult == 1) taps_dot_pixels(C, nt, xp, xoff, step, j->w, woff, j->b, yrow + (size_t)ox * oc, oc);
                else taps_mult_pixels(C, mult, nt, xp, xoff, step, j->w, woff, j->b, yrow + (size_t)ox * oc, oc);
            }
            for (; ox < hi; ox++) {
                const float *xp = img + (size_t)(ox * g->sw - g->pl) * C;
                if (mult == 1) taps_dot(C, nt, xp, xoff, j->w, woff, j->b, yrow + (size_t)ox * oc);
                else taps_mult(C, mult, nt, xp, xoff, j->w, woff, j->b, yrow + (size_t)ox * oc);
            }
        }
        for (int ox = 0; ox < g->ow; ox++) {
            if (ox == lo && hi > lo) {
                ox = hi - 1;
                continue;
            }
            tap_sum ts;
            tap_start(&ts, C, mult, 0, img, j->w, j->b, yrow + (size_t)ox * oc);
            for (int ky = ky0; ky < ky1; ky++) {
                const int iy = oy * g->sh - g->pt + ky * g->dh;
                for (int kx = 0; kx < g->kw; kx++) {
                    const int ix = ox * g->sw - g->pl + kx * g->dw;
                    if (ix < 0 || ix >= g->iw) continue;
                    tap_add(&ts, ((long)iy * g->iw + ix) * C, (long)(ky * g->kw + kx) * oc);
                }
            }
            tap_finish(&ts);
        }
    }
}

void cs_depthwise_forward(const cs_conv2d_geom *g, const float *x, const float *w, const float *b, float *y,
                          const cs_scratch *s)
{
    dw_job j = {.g = g, .x = x, .w = w, .b = b, .y = y, .s = s};
    const long grain = cs_parallel_grain((long)g->ow * g->oc * g->kh * g->kw, 1);
    cs_parallel_run((long)g->n * g->oh, grain, s->workers, forward_rows, &j);
}

/* out[c] += the sum over n pixels of a[i*as + c] * b[i*bs + c], for C channels; each
 * block of channels is summed in registers before it is added to out. */
CS_WIDE_CLONES CS_CONTRACT static void strided_dot(int C, int n, const float *a, long as, const float *b, long bs,
                                                   float *out)
{
    int c = 0;
    for (; c + 4 * VL <= C; c += 4 * VL) {
        vf s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0};
        for (int i = 0; i < n; i++) {
            const float *ap = a + (size_t)i * as + c, *bp = b + (size_t)i * bs + c;
            s0 += LOAD(ap) * LOAD(bp);
            s1 += LOAD(ap + VL) * LOAD(bp + VL);
            s2 += LOAD(ap + 2 * VL) * LOAD(bp + 2 * VL);
            s3 += LOAD(ap + 3 * VL) * LOAD(bp + 3 * VL);
        }
        STORE(out + c, LOAD(out + c) + s0), STORE(out + c + VL, LOAD(out + c + VL) + s1);
        STORE(out + c + 2 * VL, LOAD(out + c + 2 * VL) + s2), STORE(out + c + 3 * VL, LOAD(out + c + 3 * VL) + s3);
    }
    for (; c + VL <= C; c += VL) {
        vf s0 = {0};
        for (int i = 0; i < n; i++) s0 += LOAD(a + (size_t)i * as + c) * LOAD(b + (size_t)i * bs + c);
        STORE(out + c, LOAD(out + c) + s0);
    }
    for (; c < C; c++) {
        float s0 = 0;
        for (int i = 0; i < n; i++) s0 += a[(size_t)i * as + c] * b[(size_t)i * bs + c];
        out[c] += s0;
    }
}

/* out[o] += the sum of n rows of oc floats, each block of channels summed in registers first. */
CS_WIDE_CLONES static void row_sum(int oc, int n, const float *rows, float *out)
{
    int c = 0;
    for (; c + 2 * VL <= oc; c += 2 * VL) {
        vf s0 = {0}, s1 = {0};
        for (int i = 0; i < n; i++) s0 += LOAD(rows + (size_t)i * oc + c), s1 += LOAD(rows + (size_t)i * oc + c + VL);
        STORE(out + c, LOAD(out + c) + s0), STORE(out + c + VL, LOAD(out + c + VL) + s1);
    }
    for (; c < oc; c++) {
        float s0 = 0;
        for (int i = 0; i < n; i++) s0 += rows[(size_t)i * oc + c];
        out[c] += s0;
    }
}

/* dw and db from output rows [begin, end). */
static void weight_grad_rows(void *ctx, long begin, long end, int worker)
{
    const dw_job *j = ctx;
    const cs_conv2d_geom *g = j->g;
    const int C = g->ic, oc = g->oc, mult = oc / C;
    const size_t image = (size_t)g->ih * g->iw * C;
    float *dw = j->dw, *db = j->db;
    if (worker > 0 && j->partial) {
        float *part = j->s->part[worker];
        dw = dw ? part : NULL;
        db = db ? part + (size_t)g->kh * g->kw * oc : NULL;
    }
    for (long r = begin; r < end; r++) {
        const int oy = (int)(r % g->oh);
        const float *img = j->x + (size_t)(r / g->oh) * image, *dyrow = j->dy + (size_t)r * g->ow * oc;
        if (db) row_sum(oc, g->ow, dyrow, db);
        if (!dw) continue;
        for (int ky = 0; ky < g->kh; ky++) {
            const int iy = oy * g->sh - g->pt + ky * g->dh;
            if (iy < 0 || iy >= g->ih) continue;
            for (int kx = 0; kx < g->kw; kx++) {
                int lo, hi;
                output_span(g->iw, g->ow, g->sw, g->pl, kx * g->dw, &lo, &hi);
                if (hi <= lo) continue;
                const float *xs = img + ((size_t)iy * g->iw + (size_t)(lo * g->sw - g->pl + kx * g->dw)) * C;
                const float *ds = dyrow + (size_t)lo * oc;
                float *dwt = dw + (size_t)(ky * g->kw + kx) * oc;
                if (mult == 1) {
                    strided_dot(C, hi - lo, xs, (long)g->sw * C, ds, oc, dwt);
                    continue;
                }
                strided_mult_dot(C, mult, hi - lo, xs, (long)g->sw * C, ds, oc, dwt);
            }
        }
    }
}

/* dx of one input pixel, tap by tap with every bound checked (image borders, and
 * layers with a channel multiplier). */
static void input_grad_pixel(const cs_conv2d_geom *g, const float *dyimg, const float *w, int iy, int ix, float *out)
{
    const int C = g->ic, oc = g->oc;
    tap_sum ts;
    tap_start(&ts, C, oc / C, 1, dyimg, w, NULL, out);
    for (int ky = 0; ky < g->kh; ky++) {
        const int ty = iy + g->pt - ky * g->dh; /* oy * sh, when a whole number of strides */
        if (ty < 0) break;
        if (ty % g->sh || ty / g->sh >= g->oh) continue;
        for (int kx = 0; kx < g->kw; kx++) {
            const int tx = ix + g->pl - kx * g->dw;
            if (tx < 0) break;
            if (tx % g->sw || tx / g->sw >= g->ow) continue;
            tap_add(&ts, ((long)(ty / g->sh) * g->ow + tx / g->sw) * oc, (long)(ky * g->kw + kx) * oc);
        }
    }
    tap_finish(&ts);
}

/* dx for input rows [begin, end) of the n*ih rows: each pixel gathers dy times the
 * kernel over the output positions whose taps reach it. With a stride s, the input
 * pixels ix = res + j*s of one residue res are reached by the same taps, from output
 * positions j + q (q fixed per tap): inside the image, that is the forward's interior
 * sum with dy as the input, and runs through the same kernel. */
static void input_grad_rows(void *ctx, long begin, long end, int worker)
{
    (void)worker;
    const dw_job *j = ctx;
    const cs_conv2d_geom *g = j->g;
    const int C = g->ic, oc = g->oc, mult = oc / C, sw = g->sw;
    const size_t dy_image = (size_t)g->oh * g->ow * oc;
    for (long r = begin; r < end; r++) {
        const int iy = (int)(r % g->ih);
        const float *dyimg = j->dy + (size_t)(r / g->ih) * dy_image;
        float *dxrow = j->dx + (size_t)r * g->iw * C;
        for (int res = 0; res < sw && res < g->iw; res++) {
            const int count = (g->iw - res + sw - 1) / sw; /* pixels res, res + sw, ... */
            long off[MAX_TAPS], woff[MAX_TAPS];
            int T = 0, qmin = 0, qmax = 0, fits = mult == 1;
            for (int ky = 0; ky < g->kh && fits; ky++) {
                const int ty = iy + g->pt - ky * g->dh;
                if (ty < 0) break;
                if (ty % g->sh || ty / g->sh >= g->oh) continue;
                for (int kx = 0; kx < g->kw; kx++) {
                    const int v = res + g->pl - kx * g->dw; /* (ox - j) * sw */
                    if (v % sw) continue;
                    if (T == MAX_TAPS) {
                        fits = 0;
                        break;
                    }
                    const int q = v / sw;
                    if (T == 0 || q < qmin) qmin = q;
                    if (T == 0 || q > qmax) qmax = q;
                    off[T] = ((long)(ty / g->sh) * g->ow + q) * C;
                    woff[T++] = (long)(ky * g->kw + kx) * oc;
                }
            }
            /* Pixels j in [lo, hi) have every tap's j + q inside [0, ow). */
            int lo = -qmin > 0 ? -qmin : 0, hi = g->ow - qmax < count ? g->ow - qmax : count;
            if (!fits || T == 0 || hi < lo) lo = hi = 0;
            int jj = lo;
            for (; jj + PIXELS <= hi; jj += PIXELS)
                taps_dot_pixels(C, T, dyimg + (size_t)jj * C, off, C, j->w, woff, NULL,
                                dxrow + (size_t)(res + jj * sw) * C, (long)sw * C);
            for (; jj < hi; jj++)
                taps_dot(C, T, dyimg + (size_t)jj * C, off, j->w, woff, NULL, dxrow + (size_t)(res + jj * sw) * C);
            for (int p = 0; p < count; p++) {
                if (p == lo && hi > lo) {
                    p = hi - 1;
                    continue;
                }
                input_grad_pixel(g, dyimg, j->w, iy, res + p * sw, dxrow + (size_t)(res + p * sw) * C);
            }
        }
    }
}

void cs_depthwise_backward(const cs_conv2d_geom *g, const float *x, const float *w, const float *dy, float *dx,
                           float *dw, float *db, const cs_scratch *s)
{
    dw_job j = {.g = g, .x = x, .w = w, .dy = dy, .dx = dx, .dw = dw, .db = db, .s = s};
    const long taps = (long)g->kh * g->kw;
    if (dx) {
        const long grain = cs_parallel_grain((long)g->iw * g->oc * taps, 1);
        cs_parallel_run((long)g->n * g->ih, grain, s->workers, input_grad_rows, &j);
    }
    if (!dw && !db) return;
    const size_t part = (size_t)taps * g->oc + g->oc;
    int parts = s->workers;
    if (s->part_floats < part) parts = 1;
    for (int p = 1; p < parts; p++)
        if (!s->part[p]) parts = p;
    const long rows = (long)g->n * g->oh, grain = cs_parallel_grain((long)g->ow * g->oc * taps, 1);
    if ((rows + grain - 1) / grain < 2) parts = 1;
    j.partial = parts > 1;
    for (int p = 1; p < parts; p++) memset(s->part[p], 0, part * sizeof(float));
    cs_parallel_run(rows, grain, parts, weight_grad_rows, &j);
    for (int p = 1; p < parts; p++) {
        const float *pw = s->part[p];
        if (dw)
            for (size_t i = 0; i < (size_t)taps * g->oc; i++) dw[i] += pw[i];
        if (db)
            for (int o = 0; o < g->oc; o++) db[o] += pw[(size_t)taps * g->oc + o];
    }
}
