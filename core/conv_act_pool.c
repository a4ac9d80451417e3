/*
 * conv_act_pool.c - conv, activation and max pool in one pass (conv_act_pool.h).
 *
 * Four conv outputs of one block of 32 channels are held in registers at once (a 2x2
 * pool's window, or four neighbours along a row when there is no pool): for every tap,
 * one broadcast input value per position times two vectors of the kernel's row, eight
 * independent chains of multiply-adds. Positions whose window reaches into the padding
 * take the slower path that checks each tap, as do positions left over at a row's end.
 */
#include "conv_act_pool.h"

#include <math.h>
#include <string.h>

#include "parallel.h"
#include "simd.h"

int cs_conv_act_pool_fits(const cs_conv2d_geom *g, int pool, const cs_onednn_post *act)
{
    if (!cs_cpu_avx512() || pool < 1 || act->sum || g->dh != 1 || g->dw != 1 || g->groups != 1) return 0;
    if (act->act == CS_ONEDNN_RELU && act->alpha > 1) return 0; /* max(v, v * slope) is not it */
    return g->ic <= CS_CAP_MAX_CHANNELS && g->kh * g->kw * g->ic <= CS_CAP_MAX_TAPS && g->oc % 16 == 0 &&
           g->oh >= pool && g->ow >= pool;
}

int cs_conv_act_pool_init(cs_conv_act_pool *k, const cs_conv2d_geom *g, int pool, const float *w, const float *b,
                          const cs_onednn_post *act)
{
    if (!cs_conv_act_pool_fits(g, pool, act) || !w || !b) return -1;
    memset(k, 0, sizeof *k);
    k->g = *g;
    k->pool = pool;
    k->ph = g->oh / pool, k->pw = g->ow / pool;
    k->w = w, k->b = b, k->act = *act;
    int t = 0;
    for (int ky = 0; ky < g->kh; ky++)
        for (int kx = 0; kx < g->kw; kx++)
            for (int ci = 0; ci < g->ic; ci++) k->off[t++] = (ky * g->iw + kx) * g->ic + ci;
    return 0;
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

/* The activation without a branch: min(max(max(v, v * slope), lo), hi), which is ReLU
 * and leaky ReLU (slope in [0, 1]), a clip (slope 1) and nothing (slope 1, no bounds). */
typedef struct {
    __m512 slope, lo, hi;
} act_consts;

CS_AVX512 static inline act_consts act_of(const cs_onednn_post *a)
{
    act_consts c = {_mm512_set1_ps(1), _mm512_set1_ps(-INFINITY), _mm512_set1_ps(INFINITY)};
    if (a->act == CS_ONEDNN_RELU) c.slope = _mm512_set1_ps(a->alpha);
    if (a->act == CS_ONEDNN_CLIP) c.lo = _mm512_set1_ps(a->alpha), c.hi = _mm512_set1_ps(a->beta);
    return c;
}

CS_AVX512 static inline __m512 activate(const act_consts *c, __m512 v)
{
    return _mm512_min_ps(_mm512_max_ps(_mm512_max_ps(v, _mm512_mul_ps(v, c->slope)), c->lo), c->hi);
}

/* Conv outputs at four positions whose windows lie inside the input (q: each window's
 * top-left input value), channels [c, c + 32), activated: with pooled set, their max (a
 * 2x2 window) into out[0], else each into out[i]. Eight chains of multiply-adds, the two
 * FMA ports' worth (eight positions ran no faster: the loads and stores around them are
 * the rest of the time). */
CS_AVX512 static void four_32(const cs_conv_act_pool *k, const float *const *q, int c, int pooled, float *const *out)
{
    const int taps = k->g.kh * k->g.kw * k->g.ic, oc = k->g.oc;
    __m512 a[4][2];
    const __m512 b0 = _mm512_loadu_ps(k->b + c), b1 = _mm512_loadu_ps(k->b + c + 16);
    for (int i = 0; i < 4; i++) a[i][0] = b0, a[i][1] = b1;
    for (int t = 0; t < taps; t++) {
        const float *wt = k->w + (size_t)t * oc + c;
        const __m512 w0 = _mm512_loadu_ps(wt), w1 = _mm512_loadu_ps(wt + 16);
        const int o = k->off[t];
        for (int i = 0; i < 4; i++) {
            const __m512 v = _mm512_set1_ps(q[i][o]);
            a[i][0] = _mm512_fmadd_ps(v, w0, a[i][0]);
            a[i][1] = _mm512_fmadd_ps(v, w1, a[i][1]);
        }
    }
    const act_consts ac = act_of(&k->act);
    for (int i = 0; i < 4; i++) a[i][0] = activate(&ac, a[i][0]), a[i][1] = activate(&ac, a[i][1]);
    if (pooled) {
        for (int v = 0; v < 2; v++)
            _mm512_storeu_ps(out[0] + c + 16 * v,
                             _mm512_max_ps(_mm512_max_ps(a[0][v], a[1][v]), _mm512_max_ps(a[2][v], a[3][v])));
        return;
    }
    for (int i = 0; i < 4; i++) {
        _mm512_storeu_ps(out[i] + c, a[i][0]);
        _mm512_storeu_ps(out[i] + c + 16, a[i][1]);
    }
}

/* The activated conv output at (oy, ox) of image x, channels [c, c + 16), any window
 * (taps in the padding read zero). */
CS_AVX512 static __m512 one_16(const cs_conv_act_pool *k, const float *x, int oy, int ox, int c)
{
    const cs_conv2d_geom *g = &k->g;
    __m512 a = _mm512_loadu_ps(k->b + c);
    const int iy0 = oy * g->sh - g->pt, ix0 = ox * g->sw - g->pl;
    for (int ky = 0, t = 0; ky < g->kh; ky++)
        for (int kx = 0; kx < g->kw; kx++, t += g->ic) {
            const int iy = iy0 + ky, ix = ix0 + kx;
            if (iy < 0 || iy >= g->ih || ix < 0 || ix >= g->iw) continue;
            const float *v = x + ((size_t)iy * g->iw + ix) * g->ic;
            for (int ci = 0; ci < g->ic; ci++)
                a = _mm512_fmadd_ps(_mm512_set1_ps(v[ci]), _mm512_loadu_ps(k->w + (size_t)(t + ci) * g->oc + c), a);
        }
    const act_consts ac = act_of(&k->act);
    return activate(&ac, a);
}

/* Whether the window of conv output (oy, ox) lies inside the input. */
static inline int inside(const cs_conv2d_geom *g, int oy, int ox)
{
    const int iy = oy * g->sh - g->pt, ix = ox * g->sw - g->pl;
    return iy >= 0 && ix >= 0 && iy + g->kh <= g->ih && ix + g->kw <= g->iw;
}

static inline const float *corner(const cs_conv2d_geom *g, const float *x, int oy, int ox)
{
    return x + ((size_t)(oy * g->sh - g->pt) * g->iw + (size_t)(ox * g->sw - g->pl)) * g->ic;
}

typedef struct {
    const cs_conv_act_pool *k;
    const float *x;
    float *y;
} job;

/* Pooled rows [begin, end) of the batch (image * ph + row). */
CS_AVX512 static void run_rows(void *ctx, long begin, long end, int worker)
{
    (void)worker;
    const job *j = ctx;
    const cs_conv_act_pool *k = j->k;
    const cs_conv2d_geom *g = &k->g;
    const size_t in_image = (size_t)g->ih * g->iw * g->ic;
    const int P = k->pool, oc = g->oc, wide = oc / 32 * 32;
    for (long r = begin; r < end; r++) {
        const long img = r / k->ph;
        const int py = (int)(r % k->ph);
        const float *x = j->x + img * in_image;
        float *y = j->y + ((size_t)img * k->ph + py) * k->pw * oc;
        for (int px = 0; px < k->pw;) {
            const int oy = py * P, ox = px * P;
            /* Four positions in registers: a 2x2 window, or four outputs of a row. The
             * channels past the last block of 32, a position at a time. */
            if (P == 1 && px + 4 <= k->pw && inside(g, oy, ox) && inside(g, oy, ox + 3)) {
                const float *q[4];
                float *out[4];
                for (int i = 0; i < 4; i++) q[i] = corner(g, x, oy, ox + i), out[i] = y + (size_t)(px + i) * oc;
                for (int c = 0; c < wide; c += 32) four_32(k, q, c, 0, out);
                for (int c = wide; c < oc; c += 16)
                    for (int i = 0; i < 4; i++) _mm512_storeu_ps(out[i] + c, one_16(k, x, oy, ox + i, c));
                px += 4;
                continue;
            }
            if (P == 2 && inside(g, oy, ox) && inside(g, oy + 1, ox + 1)) {
                const float *q[4] = {corner(g, x, oy, ox), corner(g, x, oy, ox + 1), corner(g, x, oy + 1, ox),
                                     corner(g, x, oy + 1, ox + 1)};
                float *const out[1] = {y + (size_t)px * oc};
                for (int c = 0; c < wide; c += 32) four_32(k, q, c, 1, out);
                for (int c = wide; c < oc; c += 16) {
                    __m512 m = one_16(k, x, oy, ox, c);
                    m = _mm512_max_ps(m, one_16(k, x, oy, ox + 1, c));
                    m = _mm512_max_ps(m, one_16(k, x, oy + 1, ox, c));
                    _mm512_storeu_ps(out[0] + c, _mm512_max_ps(m, one_16(k, x, oy + 1, ox + 1, c)));
                }
                px++;
                continue;
            }
            /* Any window, a position at a time (the padding, and pools of other sizes). */
            for (int c = 0; c < oc; c += 16) {
                __m512 m = one_16(k, x, oy, ox, c);
                for (int dy = 0; dy < P; dy++)
                    for (int dx = 0; dx < P; dx++)
                        if (dy || dx) m = _mm512_max_ps(m, one_16(k, x, oy + dy, ox + dx, c));
                _mm512_storeu_ps(y + (size_t)px * oc + c, m);
            }
            px++;
        }
    }
}

void cs_conv_act_pool_forward(const cs_conv_act_pool *k, int n, const float *x, float *y)
{
    job j = {k, x, y};
    const long per_row = (long)k->pw * k->pool * k->pool * k->g.kh * k->g.kw * k->g.ic * k->g.oc;
    cs_parallel_run((long)n * k->ph, cs_parallel_grain(per_row, 1), 0, run_rows, &j);
}
#else
void cs_conv_act_pool_forward(const cs_conv_act_pool *k, int n, const float *x, float *y)
{
    (void)k, (void)n, (void)x, (void)y; /* cs_conv_act_pool_fits said no */
}
#endif
