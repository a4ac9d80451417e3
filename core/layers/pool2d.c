/*
 * pool2d.c - max and average pooling with any window, stride and padding.
 *
 * Windows are clipped to the input, so padded positions are never read: for max
 * pooling they count as -inf, for average pooling only in the divisor. Loops run over
 * the channels innermost (contiguous in NHWC), so they vectorise. Forwards spread
 * output rows over the workers; backwards spread images, since windows that overlap
 * add into the same input positions (and write dx directly where windows tile).
 */
#include <limits.h>
#include <string.h>

#include "kernels.h"
#include "parallel.h"
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

const char *cs_pool2d_check(const cs_pool2d_geom *g)
{
    if (g->n < 1 || g->ih < 1 || g->iw < 1 || g->c < 1 || g->oh < 1 || g->ow < 1)
        return "pool: sizes must be positive";
    if (g->kh < 1 || g->kw < 1 || g->sh < 1 || g->sw < 1) return "pool: window and stride must be positive";
    if (g->pt < 0 || g->pl < 0 || g->pb < 0 || g->pr < 0) return "pool: padding must not be negative";
    if (g->pt >= g->kh || g->pl >= g->kw) return "pool: padding must be smaller than the window";
    if ((long)(g->oh - 1) * g->sh - g->pt >= g->ih || (long)(g->ow - 1) * g->sw - g->pl >= g->iw)
        return "pool: a window lies wholly in the padding";
    return NULL;
}

/* One axis of window o: the input positions [lo, hi) it covers, and its length
 * clipped to the padded input (the count_include_pad divisor). */
typedef struct {
    int lo, hi, padded;
} span;

static span window(int o, int stride, int pad_begin, int pad_end, int k, int in)
{
    int start = o * stride - pad_begin, end = start + k, limit = in + pad_end;
    span s = {start > 0 ? start : 0, end < in ? end : in, (end < limit ? end : limit) - start};
    return s;
}

typedef struct {
    const cs_pool2d_geom *g;
    const float *x, *y, *dy;
    float *out, *dx;
    int tiles; /* the windows tile the input: each position in exactly one */
} pool_job;

/* Windows side by side (stride = window) that reach the input's far edges (the first
 * window always starts at or before 0): every input position lies in exactly one,
 * so a backward can write dx instead of zeroing it and adding into it. */
static int tiles(const cs_pool2d_geom *g)
{
    return g->sh == g->kh && g->sw == g->kw && (long)(g->oh - 1) * g->sh - g->pt + g->kh >= g->ih &&
           (long)(g->ow - 1) * g->sw - g->pl + g->kw >= g->iw;
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
        const span sy = window(oy, g->sh, g->pt, g->pb, g->kh, g->ih);
        for (int ox = 0; ox < g->ow; ox++) {
            const span sx = window(ox, g->sw, g->pl, g->pr, g->kw, g->iw);
            float *out = job->out + ((size_t)row * g->ow + ox) * c;
            memcpy(out, job->x + pixel(g, b, sy.lo, sx.lo), (size_t)c * sizeof(float));
            for (int iy = sy.lo; iy < sy.hi; iy++)
                for (int ix = sx.lo; ix < sx.hi; ix++) {
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
            const span sy = window(oy, g->sh, g->pt, g->pb, g->kh, g->ih);
            for (int ox = 0; ox < g->ow; ox++) {
                const span sx = window(ox, g->sw, g->pl, g->pr, g->kw, g->iw);
                const size_t o = (((size_t)b * g->oh + oy) * g->ow + ox) * c;
                for (int c0 = 0; c0 < c; c0 += CBLOCK) {
                    const int cn = c - c0 < CBLOCK ? c - c0 : CBLOCK;
                    const float *yo = job->y + o + c0, *dyo = job->dy + o + c0;
                    memset(taken, 0, (size_t)cn * sizeof(float));
                    /* Branch-free: a position takes the gradient where it equals the
                     * maximum and no earlier position of the window did. */
                    for (int iy = sy.lo; iy < sy.hi; iy++)
                        for (int ix = sx.lo; ix < sx.hi; ix++) {
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
    if (g->count_include_pad) return (float)((long)sy.padded * sx.padded);
    return (float)((long)(sy.hi - sy.lo) * (sx.hi - sx.lo));
}

CS_CLONES static void avg_forward_range(void *ctx, long begin, long end, int worker)
{
    (void)worker;
    const pool_job *job = ctx;
    const cs_pool2d_geom *g = job->g;
    const int c = g->c;
    for (long row = begin; row < end; row++) {
        const int b = (int)(row / g->oh), oy = (int)(row % g->oh);
        const span sy = window(oy, g->sh, g->pt, g->pb, g->kh, g->ih);
        for (int ox = 0; ox < g->ow; ox++) {
            const span sx = window(ox, g->sw, g->pl, g->pr, g->kw, g->iw);
            const float d = divisor(g, sy, sx);
            float *out = job->out + ((size_t)row * g->ow + ox) * c;
            memset(out, 0, (size_t)c * sizeof(float));
            for (int iy = sy.lo; iy < sy.hi; iy++)
                for (int ix = sx.lo; ix < sx.hi; ix++) {
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
            const span sy = window(oy, g->sh, g->pt, g->pb, g->kh, g->ih);
            for (int ox = 0; ox < g->ow; ox++) {
                const span sx = window(ox, g->sw, g->pl, g->pr, g->kw, g->iw);
                const float d = divisor(g, sy, sx);
                const float *dyo = job->dy + (((size_t)b * g->oh + oy) * g->ow + ox) * c;
                for (int iy = sy.lo; iy < sy.hi; iy++)
                    for (int ix = sx.lo; ix < sx.hi; ix++) {
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
