/*
 * pad.c - constant padding of rows, columns and channels (and cropping, for negative
 * pads).
 *
 * Both directions gather: each output row is the fill value with a run of the input
 * in it, and each row of the input gradient is a run of dy with zeros around it, so
 * negative pads need no case of their own and rows spread over the workers freely.
 */
#include <limits.h>
#include <string.h>

#include "kernels.h"
#include "parallel.h"

typedef struct {
    const cs_pad_geom *g;
    int oh, ow, oc;
    /* Columns [ox0, ox1) of an output row hold input columns [ox0 - left, ...);
     * channels [cy0, cy1) of such a position hold input channels [cy0 - cbegin, ...). */
    int ox0, ox1, cy0, cy1;
    const float *src;
    float *dst;
} pad_job;

static int max_i(int a, int b) { return a > b ? a : b; }
static int min_i(int a, int b) { return a < b ? a : b; }

static void fill(float *p, long count, float v)
{
    for (long i = 0; i < count; i++) p[i] = v;
}

static pad_job plan(const cs_pad_geom *g)
{
    pad_job j = {.g = g, .oh = g->h + g->top + g->bottom, .ow = g->w + g->left + g->right,
                 .oc = g->c + g->cbegin + g->cend};
    j.ox0 = max_i(0, g->left);
    j.ox1 = min_i(j.ow, g->left + g->w);
    j.cy0 = max_i(0, g->cbegin);
    j.cy1 = min_i(j.oc, g->cbegin + g->c);
    return j;
}

const char *cs_pad_check(const cs_pad_geom *g)
{
    if (g->n < 1 || g->h < 1 || g->w < 1 || g->c < 1) return "pad: input sizes must be positive";
    const long oh = (long)g->h + g->top + g->bottom, ow = (long)g->w + g->left + g->right,
               oc = (long)g->c + g->cbegin + g->cend;
    if (oh < 1 || ow < 1 || oc < 1) return "pad: negative padding removes the whole input";
    if (oh > INT_MAX || ow > INT_MAX || oc > INT_MAX) return "pad: output too large";
    return NULL;
}

static void forward_range(void *ctx, long begin, long end, int worker)
{
    (void)worker;
    const pad_job *j = ctx;
    const cs_pad_geom *g = j->g;
    const int oc = j->oc, c = g->c, cl = j->cy1 - j->cy0;
    const float v = g->value;
    for (long row = begin; row < end; row++) {
        const int b = (int)(row / j->oh), iy = (int)(row % j->oh) - g->top;
        float *y = j->dst + (size_t)row * j->ow * oc;
        if (iy < 0 || iy >= g->h || j->ox0 >= j->ox1 || cl <= 0) {
            fill(y, (long)j->ow * oc, v);
            continue;
        }
        const float *x = j->src + (((size_t)b * g->h + iy) * g->w + (j->ox0 - g->left)) * c;
        fill(y, (long)j->ox0 * oc, v);
        if (cl == c && oc == c) {
            memcpy(y + (size_t)j->ox0 * oc, x, (size_t)(j->ox1 - j->ox0) * c * sizeof(float));
        } else {
            for (int ox = j->ox0; ox < j->ox1; ox++) {
                float *p = y + (size_t)ox * oc;
                fill(p, j->cy0, v);
                memcpy(p + j->cy0, x + (size_t)(ox - j->ox0) * c + (j->cy0 - g->cbegin), (size_t)cl * sizeof(float));
                fill(p + j->cy1, oc - j->cy1, v);
            }
        }
        fill(y + (size_t)j->ox1 * oc, (long)(j->ow - j->ox1) * oc, v);
    }
}

void cs_pad_forward(const cs_pad_geom *g, const float *x, float *y)
{
    pad_job j = plan(g);
    j.src = x;
    j.dst = y;
    cs_parallel_run((long)g->n * j.oh, cs_parallel_grain((long)j.ow * j.oc, 1), 0, forward_range, &j);
}

static void backward_range(void *ctx, long begin, long end, int worker)
{
    (void)worker;
    const pad_job *j = ctx;
    const cs_pad_geom *g = j->g;
    const int oc = j->oc, c = g->c, cl = j->cy1 - j->cy0;
    /* Input columns [ix0, ix1) and channels [ci0, ci0 + cl) are in the output. */
    const int ix0 = j->ox0 - g->left, ix1 = j->ox1 - g->left, ci0 = j->cy0 - g->cbegin;
    for (long row = begin; row < end; row++) {
        const int b = (int)(row / g->h), oy = (int)(row % g->h) + g->top;
        float *dx = j->dst + (size_t)row * g->w * c;
        if (oy < 0 || oy >= j->oh || ix0 >= ix1 || cl <= 0) {
            memset(dx, 0, (size_t)g->w * c * sizeof(float));
            continue;
        }
        const float *dy = j->src + (((size_t)b * j->oh + oy) * j->ow + j->ox0) * oc;
        memset(dx, 0, (size_t)ix0 * c * sizeof(float));
        if (cl == c && oc == c) {
            memcpy(dx + (size_t)ix0 * c, dy, (size_t)(ix1 - ix0) * c * sizeof(float));
        } else {
            for (int ix = ix0; ix < ix1; ix++) {
                float *p = dx + (size_t)ix * c;
                memset(p, 0, (size_t)ci0 * sizeof(float));
                memcpy(p + ci0, dy + (size_t)(ix - ix0) * oc + j->cy0, (size_t)cl * sizeof(float));
                memset(p + ci0 + cl, 0, (size_t)(c - ci0 - cl) * sizeof(float));
            }
        }
        memset(dx + (size_t)ix1 * c, 0, (size_t)(g->w - ix1) * c * sizeof(float));
    }
}

void cs_pad_backward(const cs_pad_geom *g, const float *dy, float *dx)
{
    if (!dx) return;
    pad_job j = plan(g);
    j.src = dy;
    j.dst = dx;
    cs_parallel_run((long)g->n * g->h, cs_parallel_grain((long)g->w * g->c, 1), 0, backward_range, &j);
}
