/*
 * conv_act_pool.c - conv, activation and max pool in one pass (conv_act_pool.h).
 *
 * Without a pool, eight neighbouring outputs along a row are held in registers for a
 * block of 32 channels: for every tap, one broadcast input value per position times two
 * vectors of the kernel's row, sixteen independent chains of multiply-adds. The windows'
 * step along the row (stride x channels) is a constant in the code for the common
 * cases, so each broadcast addresses off one pointer. A group reaching into the padding
 * runs the same way from a zero-padded copy of its input rows (a strip); one left over
 * at a row's end, from copies of its windows. Under a 2x2 pool the four outputs of a
 * window are held at once (eight chains) and only their max is stored; other pools
 * take a position at a time.
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

/* A group of eight positions at a row's edge runs from a strip: kh input rows of
 * STRIP_WIDE(g) positions each, zero where it reaches past the image (strip_copy). */
#define STRIP_WIDE(g) (7 * (g)->sw + (g)->kw)
#define STRIP_MAX_FLOATS 4096
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
            for (int ci = 0; ci < g->ic; ci++) {
                k->off[t] = (ky * g->iw + kx) * g->ic + ci;
                k->strip_off[t++] = (ky * STRIP_WIDE(g) + kx) * g->ic + ci;
            }
    k->strips = pool == 1 && (size_t)g->kh * STRIP_WIDE(g) * g->ic <= STRIP_MAX_FLOATS;
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

/* The conv outputs of a 2x2 pool's window (q: each position's window's top-left input
 * value, off: each tap's offset from it), channels [c, c + 16 * nv) (nv 1 or 2),
 * activated, their max into out[0]. Eight chains of multiply-adds for 32 channels, the
 * two FMA ports' worth. */
CS_AVX512 static inline __attribute__((always_inline)) void four(const cs_conv_act_pool *k, const float *const *q,
                                                                 const int *off, int c, int nv, float *const *out)
{
    const int taps = k->g.kh * k->g.kw * k->g.ic, oc = k->g.oc;
    __m512 a[4][2];
    for (int v = 0; v < nv; v++) {
        const __m512 bias = _mm512_loadu_ps(k->b + c + 16 * v);
        for (int i = 0; i < 4; i++) a[i][v] = bias;
    }
    for (int t = 0; t < taps; t++) {
        const float *wt = k->w + (size_t)t * oc + c;
        const int o = off[t];
        __m512 w[2];
        for (int v = 0; v < nv; v++) w[v] = _mm512_loadu_ps(wt + 16 * v);
        for (int i = 0; i < 4; i++) {
            const __m512 s = _mm512_set1_ps(q[i][o]);
            for (int v = 0; v < nv; v++) a[i][v] = _mm512_fmadd_ps(s, w[v], a[i][v]);
        }
    }
    const act_consts ac = act_of(&k->act);
    for (int v = 0; v < nv; v++) {
        for (int i = 0; i < 4; i++) a[i][v] = activate(&ac, a[i][v]);
        _mm512_storeu_ps(out[0] + c + 16 * v, _mm512_max_ps(_mm512_max_ps(a[0][v], a[1][v]), _mm512_max_ps(a[2][v], a[3][v])));
    }
}

/* Conv outputs at eight positions along a row, channels [c, c + 16 * nv) (nv 1 or 2),
 * activated, each into out[i]: position i's window starts at base + i * step (step a
 * constant where it is inlined, so that each broadcast addresses off one register).
 * Sixteen chains of multiply-adds for 32 channels. */
CS_AVX512 static inline __attribute__((always_inline)) void eight(const cs_conv_act_pool *k, const float *base,
                                                                  int step, const int *off, int c, int nv,
                                                                  float *const *out)
{
    const int taps = k->g.kh * k->g.kw * k->g.ic, oc = k->g.oc;
    __m512 a[8][2];
    for (int v = 0; v < nv; v++) {
        const __m512 bias = _mm512_loadu_ps(k->b + c + 16 * v);
        for (int i = 0; i < 8; i++) a[i][v] = bias;
    }
    for (int t = 0; t < taps; t++) {
        const float *wt = k->w + (size_t)t * oc + c, *p = base + off[t];
        __m512 w[2];
        for (int v = 0; v < nv; v++) w[v] = _mm512_loadu_ps(wt + 16 * v);
        for (int i = 0; i < 8; i++) {
            const __m512 s = _mm512_set1_ps(p[i * step]);
            for (int v = 0; v < nv; v++) a[i][v] = _mm512_fmadd_ps(s, w[v], a[i][v]);
        }
    }
    const act_consts ac = act_of(&k->act);
    for (int v = 0; v < nv; v++)
        for (int i = 0; i < 8; i++) _mm512_storeu_ps(out[i] + c + 16 * v, activate(&ac, a[i][v]));
}

/* eight() over every channel, its step a constant for the common strides and channel
 * counts (the windows' step along a row is stride x channels). */
#define EIGHT_ALL(STEP)                                                                                                \
    do {                                                                                                               \
        for (int c = 0; c < wide; c += 32) eight(k, base, STEP, off, c, 2, out);                                       \
        if (wide < oc) eight(k, base, STEP, off, wide, 1, out);                                                        \
    } while (0)
CS_AVX512 static void eight_all(const cs_conv_act_pool *k, const float *base, int step, const int *off, float *const *out)
{
    const int oc = k->g.oc, wide = oc / 32 * 32;
    switch (step) {
    case 1: EIGHT_ALL(1); break;
    case 2: EIGHT_ALL(2); break;
    case 3: EIGHT_ALL(3); break;
    case 4: EIGHT_ALL(4); break;
    case 6: EIGHT_ALL(6); break;
    case 8: EIGHT_ALL(8); break;
    case CS_CAP_MAX_TAPS: EIGHT_ALL(CS_CAP_MAX_TAPS); break;
    default: EIGHT_ALL(step); break;
    }
}

/* The activated conv output at (oy, ox) of image x, channels [c, c + 16), any window
 * (taps in the padding read zero): pools of other sizes than 2. */
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

/* A window copied by window_copy: tap t at t. */
static const int TAP_ORDER[CS_CAP_MAX_TAPS] = {0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15,
                                              16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31};

/* The window of conv output (oy, ox) copied in tap order, zero where it reaches into the
 * padding: a window at an edge then runs as one inside does, its offsets 0, 1, 2... */
static void window_copy(const cs_conv2d_geom *g, const float *x, int oy, int ox, float *win)
{
    const int iy0 = oy * g->sh - g->pt, ix0 = ox * g->sw - g->pl;
    for (int ky = 0; ky < g->kh; ky++)
        for (int kx = 0; kx < g->kw; kx++, win += g->ic) {
            const int iy = iy0 + ky, ix = ix0 + kx;
            const int in = iy >= 0 && iy < g->ih && ix >= 0 && ix < g->iw;
            for (int ci = 0; ci < g->ic; ci++) win[ci] = in ? x[((size_t)iy * g->iw + ix) * g->ic + ci] : 0.0f;
        }
}

/* The strip of the eight positions along row oy from column ox: a group at an edge then
 * runs from it as one inside runs from the image, with the same step. */
static void strip_copy(const cs_conv2d_geom *g, const float *x, int oy, int ox, float *strip)
{
    const int wide = STRIP_WIDE(g), ix0 = ox * g->sw - g->pl, lo = ix0 >= 0 ? 0 : -ix0 < wide ? -ix0 : wide;
    const int hi = g->iw - ix0 < wide ? g->iw - ix0 : wide;
    const size_t ic = (size_t)g->ic;
    for (int ky = 0; ky < g->kh; ky++, strip += wide * ic) {
        const int iy = oy * g->sh - g->pt + ky;
        if (iy < 0 || iy >= g->ih || hi <= lo) {
            memset(strip, 0, wide * ic * sizeof *strip);
            continue;
        }
        memset(strip, 0, lo * ic * sizeof *strip);
        memcpy(strip + lo * ic, x + ((size_t)iy * g->iw + ix0 + lo) * ic, (size_t)(hi - lo) * ic * sizeof *strip);
        memset(strip + hi * ic, 0, (size_t)(wide - hi) * ic * sizeof *strip);
    }
}

typedef struct {
    const cs_conv_act_pool *k;
    const float *x;
    float *y;
} job;

/* Pooled row py of image x into y (the last group of a row without a pool repeats its
 * last position, writing the same values twice). */
CS_AVX512 static void one_row(const cs_conv_act_pool *k, const float *x, int py, float *y)
{
    const cs_conv2d_geom *g = &k->g;
    const int P = k->pool, oc = g->oc, wide = oc / 32 * 32;
    float win[8][CS_CAP_MAX_TAPS], strip[STRIP_MAX_FLOATS];
    for (int px = 0; px < k->pw;) {
        if (P > 2) { /* any window, a position at a time */
            for (int c = 0; c < oc; c += 16) {
                __m512 m = one_16(k, x, py * P, px * P, c);
                for (int dy = 0; dy < P; dy++)
                    for (int dx = 0; dx < P; dx++)
                        if (dy || dx) m = _mm512_max_ps(m, one_16(k, x, py * P + dy, px * P + dx, c));
                _mm512_storeu_ps(y + (size_t)px * oc + c, m);
            }
            px++;
            continue;
        }
        if (P == 1) {
            const int n = k->pw - px < 8 ? k->pw - px : 8;
            float *out[8];
            for (int i = 0; i < 8; i++) out[i] = y + (size_t)(px + (i < n ? i : n - 1)) * oc;
            if (n == 8 && inside(g, py, px) && inside(g, py, px + 7)) {
                eight_all(k, corner(g, x, py, px), g->sw * g->ic, k->off, out);
            } else if (n == 8 && k->strips) {
                strip_copy(g, x, py, px, strip);
                eight_all(k, strip, g->sw * g->ic, k->strip_off, out);
            } else { /* the windows copied, the last repeated where the row ends */
                for (int i = 0; i < 8; i++) window_copy(g, x, py, px + (i < n ? i : n - 1), win[i]);
                eight_all(k, win[0], CS_CAP_MAX_TAPS, TAP_ORDER, out);
            }
            px += 8;
            continue;
        }
        const float *q[4];
        float *out[1] = {y + (size_t)px * oc};
        const int all_inside = inside(g, 2 * py, 2 * px) && inside(g, 2 * py + 1, 2 * px + 1);
        for (int i = 0; i < 4; i++) {
            const int oy = 2 * py + i / 2, ox = 2 * px + i % 2;
            if (all_inside) {
                q[i] = corner(g, x, oy, ox);
            } else {
                window_copy(g, x, oy, ox, win[i]);
                q[i] = win[i];
            }
        }
        const int *off = all_inside ? k->off : TAP_ORDER;
        for (int c = 0; c < wide; c += 32) four(k, q, off, c, 2, out);
        if (wide < oc) four(k, q, off, wide, 1, out);
        px++;
    }
}

/* Pooled rows [begin, end) of the batch (image * ph + row). */
CS_AVX512 static void run_rows(void *ctx, long begin, long end, int worker)
{
    (void)worker;
    const job *j = ctx;
    const cs_conv_act_pool *k = j->k;
    const size_t in_image = (size_t)k->g.ih * k->g.iw * k->g.ic, out_row = (size_t)k->pw * k->g.oc;
    for (long r = begin; r < end; r++)
        one_row(k, j->x + r / k->ph * in_image, (int)(r % k->ph), j->y + (size_t)r * out_row);
}

void cs_conv_act_pool_forward(const cs_conv_act_pool *k, int n, const float *x, float *y)
{
    job j = {k, x, y};
    const long per_row = (long)k->pw * k->pool * k->pool * k->g.kh * k->g.kw * k->g.ic * k->g.oc;
    cs_parallel_run((long)n * k->ph, cs_parallel_grain(per_row, 1), 0, run_rows, &j);
}

void cs_conv_act_pool_rows(const cs_conv_act_pool *k, const float *x, int r0, int r1, float *y)
{
    for (int r = r0; r < r1; r++) one_row(k, x, r, y + (size_t)(r - r0) * k->pw * k->g.oc);
}
#else
void cs_conv_act_pool_forward(const cs_conv_act_pool *k, int n, const float *x, float *y)
{
    (void)k, (void)n, (void)x, (void)y; /* cs_conv_act_pool_fits said no */
}

void cs_conv_act_pool_rows(const cs_conv_act_pool *k, const float *x, int r0, int r1, float *y)
{
    (void)k, (void)x, (void)r0, (void)r1, (void)y;
}
#endif
