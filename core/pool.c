/*
 * pool.c - max pooling with a p x p window and stride p.
 */
#include <string.h>

#include "layers.h"

void cs_maxpool_forward(int n, int ih, int iw, int c, int p, const float *x, float *y)
{
    const int oh = ih / p, ow = iw / p;
    for (int b = 0; b < n; b++)
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++) {
                float *out = y + (((size_t)b * oh + oy) * ow + ox) * c;
                const float *first = x + (((size_t)b * ih + oy * p) * iw + ox * p) * c;
                memcpy(out, first, (size_t)c * sizeof(float));
                for (int dy = 0; dy < p; dy++)
                    for (int dx = 0; dx < p; dx++) {
                        const float *in = x + (((size_t)b * ih + oy * p + dy) * iw + ox * p + dx) * c;
                        for (int j = 0; j < c; j++) out[j] = in[j] > out[j] ? in[j] : out[j];
                    }
            }
}

void cs_maxpool_backward(int n, int ih, int iw, int c, int p, const float *x, const float *y, const float *dy,
                         float *dx)
{
    const int oh = ih / p, ow = iw / p;
    /* Rows and columns past the last full window get no gradient. */
    memset(dx, 0, (size_t)n * ih * iw * c * sizeof(float));
    float taken[c];
    for (int b = 0; b < n; b++)
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++) {
                const size_t o = (((size_t)b * oh + oy) * ow + ox) * c;
                const float *yo = y + o, *dyo = dy + o;
                memset(taken, 0, sizeof taken);
                /* Channel-inner and branch-free: each window element takes the gradient
                 * when it is the maximum and no earlier element was. */
                for (int wy = 0; wy < p; wy++)
                    for (int wx = 0; wx < p; wx++) {
                        const size_t i = (((size_t)b * ih + oy * p + wy) * iw + ox * p + wx) * c;
                        const float *xi = x + i;
                        float *dxi = dx + i;
                        for (int j = 0; j < c; j++) {
                            float hit = xi[j] == yo[j] && taken[j] == 0.0f ? 1.0f : 0.0f;
                            dxi[j] = hit * dyo[j];
                            taken[j] += hit;
                        }
                    }
            }
}
