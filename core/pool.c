/*
 * pool.c - max pooling with a p x p window and stride p.
 *
 * Work is spread over output rows (image, oy), so a single large image splits too.
 */
#include <string.h>

#include "layers.h"

typedef struct {
    int ih, iw, c, p;
    const float *x, *y, *dy;
    float *out, *dx;
} pool_job;

static void forward_range(void *ctx, long begin, long end, int worker)
{
    (void)worker;
    const pool_job *job = ctx;
    const int ih = job->ih, iw = job->iw, c = job->c, p = job->p, oh = ih / p, ow = iw / p;
    const float *x = job->x;
    for (long row = begin; row < end; row++) {
        const int b = (int)(row / oh), oy = (int)(row % oh);
        for (int ox = 0; ox < ow; ox++) {
            float *out = job->out + (((size_t)b * oh + oy) * ow + ox) * c;
            memcpy(out, x + (((size_t)b * ih + oy * p) * iw + ox * p) * c, (size_t)c * sizeof(float));
            for (int wy = 0; wy < p; wy++)
                for (int wx = 0; wx < p; wx++) {
                    const float *in = x + (((size_t)b * ih + oy * p + wy) * iw + ox * p + wx) * c;
                    for (int k = 0; k < c; k++) out[k] = in[k] > out[k] ? in[k] : out[k];
                }
        }
    }
}

void cs_maxpool_forward(int n, int ih, int iw, int c, int p, const float *x, float *y)
{
    pool_job job = {.ih = ih, .iw = iw, .c = c, .p = p, .x = x, .out = y};
    cs_parallel_run((long)n * (ih / p), cs_parallel_grain((long)(iw / p) * c * p * p, 1), 0, forward_range, &job);
}

static void backward_range(void *ctx, long begin, long end, int worker)
{
    (void)worker;
    const pool_job *job = ctx;
    const int ih = job->ih, iw = job->iw, c = job->c, p = job->p, oh = ih / p, ow = iw / p;
    float taken[c];
    for (long row = begin; row < end; row++) {
        const int b = (int)(row / oh), oy = (int)(row % oh);
        for (int ox = 0; ox < ow; ox++) {
            const size_t o = (((size_t)b * oh + oy) * ow + ox) * c;
            const float *yo = job->y + o, *dyo = job->dy + o;
            memset(taken, 0, sizeof taken);
            /* Channel-inner and branch-free: each window element takes the gradient
             * when it is the maximum and no earlier element was. */
            for (int wy = 0; wy < p; wy++)
                for (int wx = 0; wx < p; wx++) {
                    const size_t i = (((size_t)b * ih + oy * p + wy) * iw + ox * p + wx) * c;
                    const float *xi = job->x + i;
                    float *dxi = job->dx + i;
                    for (int k = 0; k < c; k++) {
                        float hit = xi[k] == yo[k] && taken[k] == 0.0f ? 1.0f : 0.0f;
                        dxi[k] = hit * dyo[k];
                        taken[k] += hit;
                    }
                }
        }
    }
}

void cs_maxpool_backward(int n, int ih, int iw, int c, int p, const float *x, const float *y, const float *dy,
                         float *dx)
{
    /* Every window writes all of its elements (the gradient or 0); only rows and
     * columns past the last full window need zeroing, and only when there are some. */
    if (ih % p || iw % p) memset(dx, 0, (size_t)n * ih * iw * c * sizeof(float));
    pool_job job = {.ih = ih, .iw = iw, .c = c, .p = p, .x = x, .y = y, .dy = dy, .dx = dx};
    cs_parallel_run((long)n * (ih / p), cs_parallel_grain((long)(iw / p) * c * p * p, 1), 0, backward_range, &job);
}
