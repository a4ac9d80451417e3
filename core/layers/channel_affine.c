/*
 * channel_affine.c - y = x * scale[c] + shift[c], a per-channel affine map.
 *
 * The forward and the input gradient spread rows over the workers. The parameter
 * gradients are sums over every row: each task owns a block of channels and sums
 * all rows into a fixed array of double accumulators, so no task shares an output
 * and no scratch is needed.
 */
#include "kernels.h"
#include "parallel.h"
#include "simd.h"

#define CBLOCK 256

typedef struct {
    size_t rows;
    int c;
    const float *x, *scale, *shift, *dy;
    float *out, *dscale, *dshift;
} affine_job;

CS_CLONES static void forward_range(void *ctx, long begin, long end, int worker)
{
    (void)worker;
    const affine_job *j = ctx;
    const int c = j->c;
    for (long r = begin; r < end; r++) {
        const float *x = j->x + (size_t)r * c;
        float *y = j->out + (size_t)r * c;
        for (int k = 0; k < c; k++) y[k] = x[k] * j->scale[k] + j->shift[k];
    }
}

void cs_channel_affine_forward(size_t rows, int c, const float *x, const float *scale, const float *shift, float *y)
{
    affine_job j = {.rows = rows, .c = c, .x = x, .scale = scale, .shift = shift, .out = y};
    cs_parallel_run((long)rows, cs_parallel_grain(c, 1), 0, forward_range, &j);
}

CS_CLONES static void input_grad_range(void *ctx, long begin, long end, int worker)
{
    (void)worker;
    const affine_job *j = ctx;
    const int c = j->c;
    for (long r = begin; r < end; r++) {
        const float *dy = j->dy + (size_t)r * c;
        float *dx = j->out + (size_t)r * c;
        for (int k = 0; k < c; k++) dx[k] = dy[k] * j->scale[k];
    }
}

CS_CLONES static void param_grad_range(void *ctx, long begin, long end, int worker)
{
    (void)worker;
    const affine_job *j = ctx;
    const int c = j->c;
    double ds[CBLOCK], dt[CBLOCK];
    for (long blk = begin; blk < end; blk++) {
        const int c0 = (int)blk * CBLOCK, cn = c - c0 < CBLOCK ? c - c0 : CBLOCK;
        for (int k = 0; k < cn; k++) ds[k] = dt[k] = 0;
        for (size_t r = 0; r < j->rows; r++) {
            const float *dy = j->dy + r * c + c0;
            if (j->dscale) {
                const float *x = j->x + r * c + c0;
                for (int k = 0; k < cn; k++) ds[k] += (double)dy[k] * x[k];
            }
            for (int k = 0; k < cn; k++) dt[k] += dy[k];
        }
        for (int k = 0; k < cn; k++) {
            if (j->dscale) j->dscale[c0 + k] += (float)ds[k];
            if (j->dshift) j->dshift[c0 + k] += (float)dt[k];
        }
    }
}

void cs_channel_affine_backward(size_t rows, int c, const float *x, const float *scale, const float *dy, float *dx,
                                float *dscale, float *dshift)
{
    affine_job j = {.rows = rows, .c = c, .x = x, .scale = scale, .dy = dy, .out = dx, .dscale = dscale,
                    .dshift = dshift};
    if (dx) cs_parallel_run((long)rows, cs_parallel_grain(c, 1), 0, input_grad_range, &j);
    if (dscale || dshift) {
        const long blocks = (c + CBLOCK - 1) / CBLOCK;
        cs_parallel_run(blocks, cs_parallel_grain((long)rows * CBLOCK, 1), 0, param_grad_range, &j);
    }
}
