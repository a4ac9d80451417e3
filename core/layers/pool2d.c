/*
 * pool2d.c - max and average pooling with any window, stride, dilation and padding.
 *
 * Windows are clipped to the input, so padded positions are never read: for max
 * pooling they count as -inf, for average pooling only in the divisor. Loops run over
 * the channels innermost (contiguous in NHWC), so they vectorise. Forwards spread
 * output rows over the workers; backwards spread images, since windows that overlap
 * add into the same input positions (and write dx directly where windows tile).
 *
 * At the end, the AveragePooling2D row of the layer table (configuration in
 * pool_layer.c); MaxPooling2D's is max_pooling2d.c.
 */
#include <limits.h>
#include <string.h>

#include "kernels.h"
#include "parallel.h"
#include "pool_layer.h"
#include "simd.h"

/* Channels per block in the max-pool backward's record of which channels already
 * gave their gradient away (a fixed array: no allocation, whatever c is). */
#define CBLOCK 256

int cs_pool2d_out_size(int in, int k, int stride, int pad_begin, int pad_end, int ceil_mode)
{
    if (in < 1 || k < 1 || stride < 1 || pad_begin < 0 || pad_end < 0) return 0;
    long span = (long)in + pad_begin + pad_end - k;
    if (span < 0) return 0;
    long out = (ceil_mode ? (span + stride - 1) / stride : span / stride) + 1;
    if (ceil_mode && (out - 1) * stride >= (long)in + pad_begin) out--;
    return out > INT_MAX ? 0 : (int)out;
}

/* One axis of window o: its taps start + j*d (j < k) that fall in the input, as
 * [lo, hi) in steps of d, `inside` of them; and how many fall in the padded input
 * (the count_include_pad divisor: a ceil-mode window that overhangs the end padding
 * counts only its taps inside it). */
typedef struct {
    int lo, hi, d, inside, padded;
} span;

static span window(int o, int stride, int d, int pad_begin, int pad_end, int k, int in)
{
    const long start = (long)o * stride - pad_begin, last = start + (long)(k - 1) * d;
    const long lo = start >= 0 ? start : start + (-start + d - 1) / d * d, hi = last < in ? last + 1 : in;
    const long room = (long)in + pad_end - start, padded = room > 0 ? (room + d - 1) / d : 0;
    span s = {.lo = (int)lo, .hi = (int)(hi > lo ? hi : lo), .d = d};
    s.inside = hi > lo ? (int)((hi - lo + d - 1) / d) : 0;
    s.padded = (int)(padded < k ? padded : k);
    return s;
}

static inline int dilation(int d)
{
    return d > 1 ? d : 1;
}

static inline span window_y(const cs_pool2d_geom *g, int oy)
{
    return window(oy, g->sh, dilation(g->dh), g->pt, g->pb, g->kh, g->ih);
}

static inline span window_x(const cs_pool2d_geom *g, int ox)
{
    return window(ox, g->sw, dilation(g->dw), g->pl, g->pr, g->kw, g->iw);
}

const char *cs_pool2d_check(const cs_pool2d_geom *g)
{
    if (g->n < 1 || g->ih < 1 || g->iw < 1 || g->c < 1 || g->oh < 1 || g->ow < 1)
        return "pool: sizes must be positive";
    if (g->kh < 1 || g->kw < 1 || g->sh < 1 || g->sw < 1 || g->dh < 0 || g->dw < 0)
        return "pool: window, stride and dilation must be positive";
    if (g->pt < 0 || g->pl < 0 || g->pb < 0 || g->pr < 0) return "pool: padding must not be negative";
    for (int oy = 0; oy < g->oh; oy++)
        if (!window_y(g, oy).inside) return "pool: a window holds no input row";
    for (int ox = 0; ox < g->ow; ox++)
        if (!window_x(g, ox).inside) return "pool: a window holds no input column";
    return NULL;
}

typedef struct {
    const cs_pool2d_geom *g;
    const float *x, *y, *dy;
    float *out, *dx;
    int tiles; /* the windows tile the input: each position in exactly one */
} pool_job;

/* Undilated windows side by side (stride = window) that reach the input's far edges
 * (the first window always starts at or before 0): every input position lies in
 * exactly one, so a backward can write dx instead of zeroing it and adding into it. */
static int tiles(const cs_pool2d_geom *g)
{
    return dilation(g->dh) == 1 && dilation(g->dw) == 1 && g->sh == g->kh && g->sw == g->kw &&
           (long)(g->oh - 1) * g->sh - g->pt + g->kh >= g->ih && (long)(g->ow - 1) * g->sw - g->pl + g->kw >= g->iw;
}

static inline size_t pixel(const cs_pool2d_geom *g, int b, int y, int x)
{
    return (((size_t)b * g->ih + y) * g->iw + x) * g->c;
}

CS_CLONES static void max_forward_range(void *ctx, long begin, long end, int worker)
{
    (void)worker;
    const pool_job *job = ctx;
    const cs_pool2d_geom *g = job->g;
    const int c = g->c;
    for (long row = begin; row < end; row++) {
        const int b = (int)(row / g->oh), oy = (int)(row % g->oh);
        const span sy = window_y(g, oy);
        for (int ox = 0; ox < g->ow; ox++) {
            const span sx = window_x(g, ox);
            float *out = job->out + ((size_t)row * g->ow + ox) * c;
            memcpy(out, job->x + pixel(g, b, sy.lo, sx.lo), (size_t)c * sizeof(float));
            for (int iy = sy.lo; iy < sy.hi; iy += sy.d)
                for (int ix = sx.lo; ix < sx.hi; ix += sx.d) {
                    const float *in = job->x + pixel(g, b, iy, ix);
                    for (int k = 0; k < c; k++) out[k] = in[k] > out[k] ? in[k] : out[k];
                }
        }
    }
}

void cs_maxpool2d_forward(const cs_pool2d_geom *g, const float *x, float *y)
{
    pool_job job = {.g = g, .x = x, .out = y};
    long work = (long)g->ow * g->kh * g->kw * g->c;
    cs_parallel_run((long)g->n * g->oh, cs_parallel_grain(work, 1), 0, max_forward_range, &job);
}

CS_CLONES static void max_backward_range(void *ctx, long begin, long end, int worker)
{
    (void)worker;
    const pool_job *job = ctx;
    const cs_pool2d_geom *g = job->g;
    const int c = g->c;
    float taken[CBLOCK];
    for (long b = begin; b < end; b++) {
        if (!job->tiles) memset(job->dx + pixel(g, (int)b, 0, 0), 0, (size_t)g->ih * g->iw * c * sizeof(float));
        for (int oy = 0; oy < g->oh; oy++) {
            const span sy = window_y(g, oy);
            for (int ox = 0; ox < g->ow; ox++) {
                const span sx = window_x(g, ox);
                const size_t o = (((size_t)b * g->oh + oy) * g->ow + ox) * c;
                for (int c0 = 0; c0 < c; c0 += CBLOCK) {
                    const int cn = c - c0 < CBLOCK ? c - c0 : CBLOCK;
                    const float *yo = job->y + o + c0, *dyo = job->dy + o + c0;
                    memset(taken, 0, (size_t)cn * sizeof(float));
                    /* Branch-free: a position takes the gradient where it equals the
                     * maximum and no earlier position of the window did. */
                    for (int iy = sy.lo; iy < sy.hi; iy += sy.d)
                        for (int ix = sx.lo; ix < sx.hi; ix += sx.d) {
                            const size_t i = pixel(g, (int)b, iy, ix) + c0;
                            const float *xi = job->x + i;
                            float *dxi = job->dx + i;
                            if (job->tiles) {
                                for (int k = 0; k < cn; k++) {
                                    const int hit = xi[k] == yo[k] && taken[k] == 0.0f;
                                    dxi[k] = hit ? dyo[k] : 0.0f;
                                    taken[k] += hit ? 1.0f : 0.0f;
                                }
                            } else {
                                for (int k = 0; k < cn; k++) {
                                    const int hit = xi[k] == yo[k] && taken[k] == 0.0f;
                                    dxi[k] += hit ? dyo[k] : 0.0f;
                                    taken[k] += hit ? 1.0f : 0.0f;
                                }
                            }
                        }
                }
            }
        }
    }
}

void cs_maxpool2d_backward(const cs_pool2d_geom *g, const float *x, const float *y, const float *dy, float *dx)
{
    if (!dx) return;
    pool_job job = {.g = g, .x = x, .y = y, .dy = dy, .dx = dx, .tiles = tiles(g)};
    long work = (long)g->oh * g->ow * g->kh * g->kw * g->c;
    cs_parallel_run(g->n, cs_parallel_grain(work, 1), 0, max_backward_range, &job);
}

/* The divisor of the window (oy, ox) given its two spans. */
static inline float divisor(const cs_pool2d_geom *g, span sy, span sx)
{
    return (float)(g->count_include_pad ? (long)sy.padded * sx.padded : (long)sy.inside * sx.inside);
}

CS_CLONES static void avg_forward_range(void *ctx, long begin, long end, int worker)
{
    (void)worker;
    const pool_job *job = ctx;
    const cs_pool2d_geom *g = job->g;
    const int c = g->c;
    for (long row = begin; row < end; row++) {
        const int b = (int)(row / g->oh), oy = (int)(row % g->oh);
        const span sy = window_y(g, oy);
        for (int ox = 0; ox < g->ow; ox++) {
            const span sx = window_x(g, ox);
            const float d = divisor(g, sy, sx);
            float *out = job->out + ((size_t)row * g->ow + ox) * c;
            memset(out, 0, (size_t)c * sizeof(float));
            for (int iy = sy.lo; iy < sy.hi; iy += sy.d)
                for (int ix = sx.lo; ix < sx.hi; ix += sx.d) {
                    const float *in = job->x + pixel(g, b, iy, ix);
                    for (int k = 0; k < c; k++) out[k] += in[k];
                }
            for (int k = 0; k < c; k++) out[k] /= d;
        }
    }
}

void cs_avgpool2d_forward(const cs_pool2d_geom *g, const float *x, float *y)
{
    pool_job job = {.g = g, .x = x, .out = y};
    long work = (long)g->ow * g->kh * g->kw * g->c;
    cs_parallel_run((long)g->n * g->oh, cs_parallel_grain(work, 1), 0, avg_forward_range, &job);
}

CS_CLONES static void avg_backward_range(void *ctx, long begin, long end, int worker)
{
    (void)worker;
    const pool_job *job = ctx;
    const cs_pool2d_geom *g = job->g;
    const int c = g->c;
    for (long b = begin; b < end; b++) {
        if (!job->tiles) memset(job->dx + pixel(g, (int)b, 0, 0), 0, (size_t)g->ih * g->iw * c * sizeof(float));
        for (int oy = 0; oy < g->oh; oy++) {
            const span sy = window_y(g, oy);
            for (int ox = 0; ox < g->ow; ox++) {
                const span sx = window_x(g, ox);
                const float d = divisor(g, sy, sx);
                const float *dyo = job->dy + (((size_t)b * g->oh + oy) * g->ow + ox) * c;
                for (int iy = sy.lo; iy < sy.hi; iy += sy.d)
                    for (int ix = sx.lo; ix < sx.hi; ix += sx.d) {
                        float *dxi = job->dx + pixel(g, (int)b, iy, ix);
                        if (job->tiles)
                            for (int k = 0; k < c; k++) dxi[k] = dyo[k] / d;
                        else
                            for (int k = 0; k < c; k++) dxi[k] += dyo[k] / d;
                    }
            }
        }
    }
}

void cs_avgpool2d_backward(const cs_pool2d_geom *g, const float *dy, float *dx)
{
    if (!dx) return;
    pool_job job = {.g = g, .dy = dy, .dx = dx, .tiles = tiles(g)};
    long work = (long)g->oh * g->ow * g->kh * g->kw * g->c;
    cs_parallel_run(g->n, cs_parallel_grain(work, 1), 0, avg_backward_range, &job);
}

/* ---- AveragePooling2D (and ONNX AveragePool) ------------------------------------------ */

static void avgpool_forward(const cs_node_pass *p)
{
    cs_pool2d_geom g = cs_pool_layer_geom(p->l, p->n);
    cs_avgpool2d_forward(&g, p->x[0], p->y);
}

static void avgpool_backward(const cs_node_pass *p)
{
    cs_pool2d_geom g = cs_pool_layer_geom(p->l, p->n);
    cs_avgpool2d_backward(&g, p->dy, p->dx[0]);
}

const cs_layer_ops cs_avgpool_ops = {
    .keras = "AveragePooling2D",
    .onnx = "AveragePool",
    .infer = cs_pool_layer_infer,
    .config_to_json = cs_pool_layer_to_json,
    .config_from_json = cs_pool_layer_from_json,
    .forward = avgpool_forward,
    .backward = avgpool_backward,
};
