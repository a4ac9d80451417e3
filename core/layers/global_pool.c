/*
 * global_pool.c - global average and global max pooling: each channel of an image
 * reduced to one value.
 *
 * Channels are processed in blocks with a fixed array of accumulators, so the
 * average is summed in double (a 112x112 map has enough values for a float sum to
 * drift) without any scratch from the caller. Images are spread over the workers.
 *
 * At the end, the GlobalAveragePooling2D and GlobalMaxPooling2D rows of the layer
 * table: (h, w, c) to (1, 1, c), whether or not Keras' keepdims is set (a node's
 * shape is always three-dimensional).
 */
#include <string.h>

#include "kernels.h"
#include "layer_ops.h"
#include "parallel.h"
#include "simd.h"

#define CBLOCK 256

typedef struct {
    int hw, c;
    const float *x, *y, *dy;
    float *out, *dx;
} gpool_job;

CS_CLONES static void avg_forward_range(void *ctx, long begin, long end, int worker)
{
    (void)worker;
    const gpool_job *job = ctx;
    const int hw = job->hw, c = job->c;
    double acc[CBLOCK];
    for (long b = begin; b < end; b++) {
        const float *x = job->x + (size_t)b * hw * c;
        for (int c0 = 0; c0 < c; c0 += CBLOCK) {
            const int cn = c - c0 < CBLOCK ? c - c0 : CBLOCK;
            for (int k = 0; k < cn; k++) acc[k] = 0;
            for (int p = 0; p < hw; p++) {
                const float *xp = x + (size_t)p * c + c0;
                for (int k = 0; k < cn; k++) acc[k] += xp[k];
            }
            for (int k = 0; k < cn; k++) job->out[(size_t)b * c + c0 + k] = (float)(acc[k] / hw);
        }
    }
}

void cs_global_avgpool_forward(int n, int h, int w, int c, const float *x, float *y)
{
    gpool_job job = {.hw = h * w, .c = c, .x = x, .out = y};
    cs_parallel_run(n, cs_parallel_grain((long)h * w * c, 1), 0, avg_forward_range, &job);
}

CS_CLONES static void avg_backward_range(void *ctx, long begin, long end, int worker)
{
    (void)worker;
    const gpool_job *job = ctx;
    const int hw = job->hw, c = job->c;
    const float d = (float)hw;
    for (long b = begin; b < end; b++) {
        const float *dy = job->dy + (size_t)b * c;
        for (int p = 0; p < hw; p++) {
            float *dx = job->dx + ((size_t)b * hw + p) * c;
            for (int k = 0; k < c; k++) dx[k] = dy[k] / d;
        }
    }
}

void cs_global_avgpool_backward(int n, int h, int w, int c, const float *dy, float *dx)
{
    if (!dx) return;
    gpool_job job = {.hw = h * w, .c = c, .dy = dy, .dx = dx};
    cs_parallel_run(n, cs_parallel_grain((long)h * w * c, 1), 0, avg_backward_range, &job);
}

CS_CLONES static void max_forward_range(void *ctx, long begin, long end, int worker)
{
    (void)worker;
    const gpool_job *job = ctx;
    const int hw = job->hw, c = job->c;
    for (long b = begin; b < end; b++) {
        const float *x = job->x + (size_t)b * hw * c;
        float *out = job->out + (size_t)b * c;
        memcpy(out, x, (size_t)c * sizeof(float));
        for (int p = 1; p < hw; p++) {
            const float *xp = x + (size_t)p * c;
            for (int k = 0; k < c; k++) out[k] = xp[k] > out[k] ? xp[k] : out[k];
        }
    }
}

void cs_global_maxpool_forward(int n, int h, int w, int c, const float *x, float *y)
{
    gpool_job job = {.hw = h * w, .c = c, .x = x, .out = y};
    cs_parallel_run(n, cs_parallel_grain((long)h * w * c, 1), 0, max_forward_range, &job);
}

CS_CLONES static void max_backward_range(void *ctx, long begin, long end, int worker)
{
    (void)worker;
    const gpool_job *job = ctx;
    const int hw = job->hw, c = job->c;
    float taken[CBLOCK];
    for (long b = begin; b < end; b++) {
        for (int c0 = 0; c0 < c; c0 += CBLOCK) {
            const int cn = c - c0 < CBLOCK ? c - c0 : CBLOCK;
            const float *y = job->y + (size_t)b * c + c0, *dy = job->dy + (size_t)b * c + c0;
            memset(taken, 0, (size_t)cn * sizeof(float));
            /* Every position is written: the gradient at the first maximum, else 0. */
            for (int p = 0; p < hw; p++) {
                const size_t i = ((size_t)b * hw + p) * c + c0;
                const float *x = job->x + i;
                float *dx = job->dx + i;
                for (int k = 0; k < cn; k++) {
                    const int hit = x[k] == y[k] && taken[k] == 0.0f;
                    dx[k] = hit ? dy[k] : 0.0f;
                    taken[k] += hit ? 1.0f : 0.0f;
                }
            }
        }
    }
}

void cs_global_maxpool_backward(int n, int h, int w, int c, const float *x, const float *y, const float *dy,
                                float *dx)
{
    if (!dx) return;
    gpool_job job = {.hw = h * w, .c = c, .x = x, .y = y, .dy = dy, .dx = dx};
    cs_parallel_run(n, cs_parallel_grain((long)h * w * c, 1), 0, max_backward_range, &job);
}

/* ---- the rows ---------------------------------------------------------------------- */

static int global_pool_infer(cs_layer *l, const cs_shape *in, char *err, size_t errlen)
{
    (void)err, (void)errlen;
    l->out = (cs_shape){1, 1, in->c};
    return 0;
}

static void global_avgpool_forward(const cs_node_pass *p)
{
    const cs_shape s = p->l->in;
    cs_global_avgpool_forward(p->n, s.h, s.w, s.c, p->x[0], p->y);
}

static void global_avgpool_backward(const cs_node_pass *p)
{
    const cs_shape s = p->l->in;
    cs_global_avgpool_backward(p->n, s.h, s.w, s.c, p->dy, p->dx[0]);
}

static void global_maxpool_forward(const cs_node_pass *p)
{
    const cs_shape s = p->l->in;
    cs_global_maxpool_forward(p->n, s.h, s.w, s.c, p->x[0], p->y);
}

static void global_maxpool_backward(const cs_node_pass *p)
{
    const cs_shape s = p->l->in;
    cs_global_maxpool_backward(p->n, s.h, s.w, s.c, p->x[0], p->y, p->dy, p->dx[0]);
}

const cs_layer_ops cs_global_avgpool_ops = {
    .keras = "GlobalAveragePooling2D",
    .onnx = "GlobalAveragePool",
    .infer = global_pool_infer,
    .forward = global_avgpool_forward,
    .backward = global_avgpool_backward,
};

const cs_layer_ops cs_global_maxpool_ops = {
    .keras = "GlobalMaxPooling2D",
    .onnx = "GlobalMaxPool",
    .infer = global_pool_infer,
    .forward = global_maxpool_forward,
    .backward = global_maxpool_backward,
};
