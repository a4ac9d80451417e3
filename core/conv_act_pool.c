/*
 * conv_act_pool.c - conv, activation and max pool in one pass (conv_act_pool.h).
 *
 * A pooled output of one block of 32 (or 16) channels holds its window's conv outputs
 * in registers: for every tap, one broadcast input value per window position times two
 * vectors of the kernel's row, so a 2x2 window keeps eight independent chains of
 * multiply-adds in flight (the two FMA ports' worth).
 */
#include "conv_act_pool.h"

#include <string.h>

#include "parallel.h"
#include "simd.h"

int cs_conv_act_pool_fits(const cs_conv2d_geom *g, int pool, const cs_onednn_post *act)
{
    if (!cs_cpu_avx512() || pool < 1 || act->sum) return 0;
    if (g->sh != 1 || g->sw != 1 || g->dh != 1 || g->dw != 1 || g->groups != 1 || g->pt || g->pl || g->pb || g->pr)
        return 0;
    return g->kh * g->kw * g->ic <= CS_CAP_MAX_TAPS && g->oc % 16 == 0 && g->oh >= pool && g->ow >= pool;
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

CS_AVX512 static inline __m512 activate(const cs_onednn_post *a, __m512 v)
{
    if (a->act == CS_ONEDNN_RELU) {
        const __mmask16 neg = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_LT_OQ);
        return _mm512_mask_mul_ps(v, neg, v, _mm512_set1_ps(a->alpha));
    }
    if (a->act == CS_ONEDNN_CLIP)
        return _mm512_min_ps(_mm512_max_ps(v, _mm512_set1_ps(a->alpha)), _mm512_set1_ps(a->beta));
    return v;
}

/* The 2x2 window at p (its top-left input), channels [c, c + 32). */
CS_AVX512 static void window2_32(const cs_conv_act_pool *k, const float *p, int c, float *out)
{
    const int taps = k->g.kh * k->g.kw * k->g.ic, oc = k->g.oc, step = k->g.ic, row = k->g.iw * k->g.ic;
    const float *q[4] = {p, p + step, p + row, p + row + step};
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
    __m512 m0 = activate(&k->act, a[0][0]), m1 = activate(&k->act, a[0][1]);
    for (int i = 1; i < 4; i++) {
        m0 = _mm512_max_ps(m0, activate(&k->act, a[i][0]));
        m1 = _mm512_max_ps(m1, activate(&k->act, a[i][1]));
    }
    _mm512_storeu_ps(out + c, m0);
    _mm512_storeu_ps(out + c + 16, m1);
}

/* Any window, channels [c, c + 16): one position at a time. */
CS_AVX512 static void window_16(const cs_conv_act_pool *k, const float *p, int c, float *out)
{
    const int taps = k->g.kh * k->g.kw * k->g.ic, oc = k->g.oc, step = k->g.ic, row = k->g.iw * k->g.ic;
    __m512 m = _mm512_setzero_ps();
    for (int dy = 0; dy < k->pool; dy++)
        for (int dx = 0; dx < k->pool; dx++) {
            const float *q = p + dy * row + dx * step;
            __m512 a = _mm512_loadu_ps(k->b + c);
            for (int t = 0; t < taps; t++)
                a = _mm512_fmadd_ps(_mm512_set1_ps(q[k->off[t]]), _mm512_loadu_ps(k->w + (size_t)t * oc + c), a);
            a = activate(&k->act, a);
            m = dy || dx ? _mm512_max_ps(m, a) : a;
        }
    _mm512_storeu_ps(out + c, m);
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
    const int P = k->pool, oc = g->oc;
    for (long r = begin; r < end; r++) {
        const long img = r / k->ph;
        const int py = (int)(r % k->ph);
        const float *x = j->x + img * in_image;
        float *y = j->y + ((size_t)img * k->ph + py) * k->pw * oc;
        for (int px = 0; px < k->pw; px++) {
            const float *p = x + ((size_t)py * P * g->iw + (size_t)px * P) * g->ic;
            float *out = y + (size_t)px * oc;
            int c = 0;
            if (P == 2)
                for (; c + 32 <= oc; c += 32) window2_32(k, p, c, out);
            for (; c < oc; c += 16) window_16(k, p, c, out);
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
