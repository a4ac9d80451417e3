/*
 * concat.c - concatenation along the channel axis.
 *
 * In NHWC each position's channels are contiguous, so the forward copies, per
 * position, each input's channels after the previous input's, and the backward
 * copies them back out. Positions are spread over the workers.
 */
#include <string.h>

#include "kernels.h"
#include "parallel.h"

typedef struct {
    int k, total;
    const int *cs;
    const float *const *xs;
    float *y;
    const float *dy;
    float *const *dxs;
} concat_job;

static void forward_range(void *ctx, long begin, long end, int worker)
{
    (void)worker;
    const concat_job *j = ctx;
    for (int i = 0, at = 0; i < j->k; at += j->cs[i], i++) {
        const size_t ci = (size_t)j->cs[i];
        const float *x = j->xs[i];
        for (long r = begin; r < end; r++) memcpy(j->y + (size_t)r * j->total + at, x + r * ci, ci * sizeof(float));
    }
}

void cs_concat_forward(size_t rows, int k, const int *cs, const float *const *xs, float *y)
{
    concat_job j = {.k = k, .cs = cs, .xs = xs, .y = y};
    for (int i = 0; i < k; i++) j.total += cs[i];
    cs_parallel_run((long)rows, cs_parallel_grain(j.total, 1), 0, forward_range, &j);
}

static void backward_range(void *ctx, long begin, long end, int worker)
{
    (void)worker;
    const concat_job *j = ctx;
    for (int i = 0, at = 0; i < j->k; at += j->cs[i], i++) {
        const size_t ci = (size_t)j->cs[i];
        float *dx = j->dxs[i];
        if (!dx) continue;
        for (long r = begin; r < end; r++) memcpy(dx + r * ci, j->dy + (size_t)r * j->total + at, ci * sizeof(float));
    }
}

void cs_concat_backward(size_t rows, int k, const int *cs, const float *dy, float *const *dxs)
{
    if (!dxs) return;
    concat_job j = {.k = k, .cs = cs, .dy = dy, .dxs = dxs};
    for (int i = 0; i < k; i++) j.total += cs[i];
    cs_parallel_run((long)rows, cs_parallel_grain(j.total, 1), 0, backward_range, &j);
}
