/*
 * conv_block.c - a first conv with a short receptive field, trained together with the
 * batch norm -> LeakyReLU/ReLU -> max pool block above it, without ever storing the
 * conv's output.
 *
 * conv2d_1's output (26x26x32 per image, 11 MB per batch) was written once and read
 * twice per step (the block's forward, and its input gradient in backward): passes
 * bound by this machine's memory, not by their arithmetic. But the conv is linear in
 * its receptive fields (patches) P_p of k*k*ic values:
 *
 *   y_pc = sum_t w_tc P_pt + b_c,
 *
 * so everything the block needs from all of y follows from two sums over the
 * patches, s_t = sum_p P_pt and the Gram matrix G_tu = sum_p P_pt P_pu (k*k*ic = 9
 * values: 9 + 81 doubles):
 *   - the batch statistics: mean_c = b_c + w_c.s / N and
 *     N var_c = w_c^T (G - s s^T / N) w_c;
 *   - in backward, with batch norm's input gradient
 *     dy_pc = scale_c (g_pc - mdy_c - xhat_pc mdyx_c), g being nonzero only at each
 *     window's winner, the weight gradient sum_p P_pt dy_pc equals
 *     scale_c (W_tc - mdy_c s_t - mdyx_c inv_c ((G w_c)_t + s_t (b_c - mean_c))),
 *     where W_tc = sum over windows of P_winner,t g_c reads only the patches of the
 *     winners; the bias gradient likewise. The same pass over the windows computes g
 *     and batch norm's own sums, so g is never stored either.
 * The forward computes the conv window by window in registers (AVX-512, 3x3 over one
 * channel) or a band of rows at a time into the worker's scratch (in L1), and applies
 * the block to it at once. All of these sums run in double; the
 * statistics equal the ones gathered from y up to float rounding (y itself is rounded
 * to float in the other path), and tests compare the two.
 */
#include <stdlib.h>
#include <string.h>

#include "conv_block.h"
#include "simd.h"

int cs_conv_block_ok(const cs_conv_geom *g, const cs_bn_act_pool *b, const cs_scratch *s)
{
    const size_t kdim = (size_t)g->k * g->k * g->ic;
    return kdim <= CS_CONV_BLOCK_MAX_TAPS && cs_conv_valid_stride1(g) && b->h == g->oh && b->w == g->ow &&
           b->c == g->oc && b->p >= 1 && b->p * b->p <= 255 && s->col_floats >= (size_t)b->p * g->ow * g->oc &&
           s->col_floats >= kdim * g->oh * g->ow && s->col_floats >= (kdim + 2) * g->oc &&
           cs_conv_uses_im2col(g) == 0;
}

size_t cs_conv_block_moment_count(const cs_conv_geom *g)
{
    const size_t kdim = (size_t)g->k * g->k * g->ic;
    return kdim + kdim * kdim;
}

/* Per worker: the moments, or the backward's sums ((kdim + 2) x oc). */
size_t cs_conv_block_work_count(const cs_conv_geom *g, int workers)
{
    const size_t kdim = (size_t)g->k * g->k * g->ic, m = cs_conv_block_moment_count(g), w = (kdim + 2) * g->oc;
    return (size_t)workers * (m > w ? m : w);
}


/* The corner of the patch of conv output position (oy, ox) of image img of x. */
static inline const float *patch_corner(const cs_conv_geom *g, const float *x, long img, int oy, int ox)
{
    return x + (((size_t)img * g->ih + oy) * g->iw + ox) * g->ic;
}

/* Offsets of the p*p positions of a pool window from its first, in the conv's input
 * (a patch corner moves as its output position does). */
static void window_offsets(const cs_conv_geom *g, int p, int *qoff)
{
    for (int q = 0; q < p * p; q++) qoff[q] = ((q / p) * g->iw + q % p) * g->ic;
}

/* ---- the patches' sums ---- */

typedef struct {
    const cs_conv_geom *g;
    const float *x;
    const cs_scratch *s;
    double *parts; /* [workers][moments] */
} moments_job;

/* sum[t] += sum_p taps[t][p] and gram[t][u] += sum_p taps[t][p] taps[u][p] (u <= t)
 * over pos positions, in double (products of floats are exact in double): eight
 * positions at a time, every pair's eight lanes summed apart, so that the loop is
 * vector operations with no dependence between neighbouring pairs. (One dsyrk per
 * image spent most of its time packing a 10 x 676 matrix.) */
CS_WIDE_CLONES static void add_moments(const float *taps, size_t pos, int kdim, double *sum, double *gram)
{
    enum { L = 8 };
    double lane_sum[CS_CONV_BLOCK_MAX_TAPS][L] = {{0}}, lane_gram[CS_CONV_BLOCK_MAX_TAPS * CS_CONV_BLOCK_MAX_TAPS][L];
    for (int i = 0; i < kdim * kdim; i++)
        for (int l = 0; l < L; l++) lane_gram[i][l] = 0;
    size_t p0 = 0;
    for (; p0 + L <= pos; p0 += L) {
        double a[CS_CONV_BLOCK_MAX_TAPS][L];
        for (int t = 0; t < kdim; t++)
            for (int l = 0; l < L; l++) a[t][l] = taps[(size_t)t * pos + p0 + l];
        for (int t = 0; t < kdim; t++) {
            for (int l = 0; l < L; l++) lane_sum[t][l] += a[t][l];
            for (int u = 0; u <= t; u++)
                for (int l = 0; l < L; l++) lane_gram[t * kdim + u][l] += a[t][l] * a[u][l];
        }
    }
    for (int t = 0; t < kdim; t++) {
        double st = 0;
        for (int l = 0; l < L; l++) st += lane_sum[t][l];
        for (size_t p = p0; p < pos; p++) st += taps[(size_t)t * pos + p];
        sum[t] += st;
        for (int u = 0; u <= t; u++) {
            double g = 0;
            for (int l = 0; l < L; l++) g += lane_gram[t * kdim + u][l];
            for (size_t p = p0; p < pos; p++) g += (double)taps[(size_t)t * pos + p] * taps[(size_t)u * pos + p];
            gram[t * kdim + u] += g;
        }
    }
}

/* Per image: the patches' taps as kdim rows of oh*ow values in the worker's scratch,
 * then their sums. */
static void moments_range(void *ctx, long begin, long end, int worker)
{
    const moments_job *j = ctx;
    const cs_conv_geom *g = j->g;
    int off[CS_CONV_BLOCK_MAX_TAPS];
    const int kdim = cs_conv_tap_offsets(g, off);
    const size_t pos = (size_t)g->oh * g->ow;
    float *taps = j->s->col[worker];
    double *sum = j->parts + (size_t)worker * (kdim + kdim * kdim), *gram = sum + kdim;
    for (long img = begin; img < end; img++) {
        const float *xi = j->x + (size_t)img * g->ih * g->iw * g->ic;
        for (int t = 0; t < kdim; t++) {
            float *row = taps + (size_t)t * pos;
            for (int oy = 0; oy < g->oh; oy++, row += g->ow) {
                const float *src = xi + (size_t)oy * g->iw * g->ic + off[t];
                if (g->ic == 1) memcpy(row, src, (size_t)g->ow * sizeof(float));
                else
                    for (int ox = 0; ox < g->ow; ox++) row[ox] = src[(size_t)ox * g->ic];
            }
        }
        add_moments(taps, pos, kdim, sum, gram);
    }
}

void cs_conv_block_moments(const cs_conv_geom *g, const float *x, const cs_scratch *s, double *moments,
                           double *parts)
{
    const size_t m = cs_conv_block_moment_count(g);
    const int kdim = g->k * g->k * g->ic;
    memset(moments, 0, m * sizeof(double));
    memset(parts, 0, (size_t)s->workers * m * sizeof(double));
    moments_job j = {.g = g, .x = x, .s = s, .parts = parts};
    cs_parallel_run(g->n, 1, s->workers, moments_range, &j);
    for (int w = 0; w < s->workers; w++)
        for (size_t i = 0; i < m; i++) moments[i] += parts[(size_t)w * m + i];
    double *gram = moments + kdim; /* only the lower triangle was summed */
    for (int t = 0; t < kdim; t++)
        for (int u = t + 1; u < kdim; u++) gram[t * kdim + u] = gram[u * kdim + t];
}

void cs_conv_block_stats(const cs_conv_geom *g, const float *w, const float *b, const double *moments, float eps,
                         float *mean, float *inv_std, float *moving_mean, float *moving_var, float momentum,
                         double *sums)
{
    const int kdim = g->k * g->k * g->ic, oc = g->oc;
    const double n = (double)g->n * g->oh * g->ow, *sum = moments, *gram = moments + kdim;
    cs_bn_stats st;
    cs_bn_stats_init(&st, oc, sums);
    /* The patches' covariance times n: G - s s^T / n. */
    double cov[CS_CONV_BLOCK_MAX_TAPS * CS_CONV_BLOCK_MAX_TAPS];
    for (int t = 0; t < kdim; t++)
        for (int u = 0; u < kdim; u++) cov[t * kdim + u] = gram[t * kdim + u] - sum[t] * sum[u] / n;
    for (int c = 0; c < oc; c++) {
        double mc = 0, m2 = 0;
        for (int t = 0; t < kdim; t++) {
            const double wt = w[(size_t)t * oc + c];
            mc += wt * sum[t];
            double row = 0;
            for (int u = 0; u < kdim; u++) row += cov[t * kdim + u] * w[(size_t)u * oc + c];
            m2 += wt * row;
        }
        st.sums[c] = b[c] + mc / n;     /* mean */
        st.sums[oc + c] = m2 > 0 ? m2 : 0; /* M2: n times the (biased) variance */
    }
    st.rows[0] = n;
    cs_bn_stats_finish(&st, eps, mean, inv_std, moving_mean, moving_var, momentum);
}

/* ---- forward ---- */

typedef struct {
    const cs_conv_geom *g;
    const cs_bn_act_pool *b;
    const float *x, *w, *bias, *mean, *inv_std;
    float *pooled, *win_xhat;
    uint8_t *argmax;
    const cs_scratch *s;
} forward_job;

#if CS_HAVE_AVX512_KERNELS
#include "window_avx512.h"
/* A row of 2x2 windows over a 3x3 single-channel conv (the notebook's first layer) on
 * AVX-512: 16 channels at a time, their nine kernel taps held in registers along the
 * row, each window's four conv outputs computed in registers (bias, then the taps in
 * order with fused multiply-adds, as conv.c's direct kernel does: the same bits) and
 * pooled at once. */
CS_AVX512 static void conv_pool_row_avx512(const forward_job *j, long row)
{
    const cs_conv_geom *g = j->g;
    const int oc = g->oc, ph = j->b->h / 2, pw = j->b->w / 2, iw = g->iw;
    const long img = row / ph, oy = row % ph;
    const float *top = j->x + ((size_t)img * g->ih + 2 * oy) * iw; /* ic = 1 */
    for (int c0 = 0; c0 < oc; c0 += 16) {
        const float *wc0 = j->w + c0;
        const __m512 w0 = _mm512_loadu_ps(wc0), w1 = _mm512_loadu_ps(wc0 + oc), w2 = _mm512_loadu_ps(wc0 + 2 * oc),
                     w3 = _mm512_loadu_ps(wc0 + 3 * oc), w4 = _mm512_loadu_ps(wc0 + 4 * oc),
                     w5 = _mm512_loadu_ps(wc0 + 5 * oc), w6 = _mm512_loadu_ps(wc0 + 6 * oc),
                     w7 = _mm512_loadu_ps(wc0 + 7 * oc), w8 = _mm512_loadu_ps(wc0 + 8 * oc),
                     bias = _mm512_loadu_ps(j->bias + c0);
        const cs_window_consts k = {_mm512_loadu_ps(j->mean + c0), _mm512_loadu_ps(j->inv_std + c0),
                                    _mm512_loadu_ps(j->b->gamma + c0), _mm512_loadu_ps(j->b->beta + c0),
                                    _mm512_set1_ps(j->b->alpha)};
#define TAP(S, T, W) _mm512_fmadd_ps(_mm512_set1_ps((S)[T]), (W), acc)
#define CONV(OUT, S)                                                                                                   \
    do {                                                                                                               \
        const float *s_ = (S);                                                                                         \
        __m512 acc = bias;                                                                                             \
        acc = TAP(s_, 0, w0), acc = TAP(s_, 1, w1), acc = TAP(s_, 2, w2);                                              \
        acc = TAP(s_, iw, w3), acc = TAP(s_, iw + 1, w4), acc = TAP(s_, iw + 2, w5);                                   \
        acc = TAP(s_, 2 * iw, w6), acc = TAP(s_, 2 * iw + 1, w7), acc = TAP(s_, 2 * iw + 2, w8);                       \
        OUT = acc;                                                                                                     \
    } while (0)
        for (int ox = 0; ox < pw; ox++) {
            const float *s = top + 2 * ox;
            __m512 y0, y1, y2, y3;
            CONV(y0, s);
            CONV(y1, s + 1);
            CONV(y2, s + iw);
            CONV(y3, s + iw + 1);
            const size_t o = ((size_t)row * pw + ox) * oc + c0;
            cs_window4_avx512(&k, y0, y1, y2, y3, j->pooled + o, j->win_xhat + o, j->argmax + o);
        }
#undef CONV
#undef TAP
    }
}

#else
#define conv_pool_row_avx512(j, row) (void)0
#endif

static int avx512_conv_pool_ok(const cs_conv_geom *g, const cs_bn_act_pool *b)
{
    return g->k == 3 && g->ic == 1 && b->p == 2 && g->oc % 16 == 0 && cs_cpu_avx512();
}

/* Each row of windows: the p conv rows it covers into the worker's scratch, then the
 * block over them while they are in L1 (or all in registers, above). */
static void forward_range(void *ctx, long begin, long end, int worker)
{
    const forward_job *j = ctx;
    const cs_conv_geom *g = j->g;
    const int p = j->b->p, oh = j->b->h / p;
    if (avx512_conv_pool_ok(g, j->b)) {
        for (long row = begin; row < end; row++) conv_pool_row_avx512(j, row);
        return;
    }
    float *band = j->s->col[worker];
    for (long row = begin; row < end; row++) {
        const long img = row / oh, oy = row % oh;
        const size_t r0 = ((size_t)img * g->oh + (size_t)oy * p) * g->ow;
        cs_conv_forward_rows(g, j->x, j->w, j->bias, r0, (size_t)p * g->ow, band, NULL);
        cs_bn_act_pool_apply_row(j->b, band, row, j->mean, j->inv_std, j->pooled, j->argmax, j->win_xhat);
    }
}

void cs_conv_block_forward(const cs_conv_geom *g, const float *x, const float *w, const float *bias,
                           const cs_bn_act_pool *b, const float *mean, const float *inv_std, float *pooled,
                           uint8_t *argmax, float *win_xhat, const cs_scratch *s)
{
    forward_job j = {.g = g, .b = b, .x = x, .w = w, .bias = bias, .mean = mean, .inv_std = inv_std,
                     .pooled = pooled, .win_xhat = win_xhat, .argmax = argmax, .s = s};
    const long rows = (long)g->n * (b->h / b->p);
    cs_parallel_run(rows, cs_parallel_grain((long)b->p * g->ow * g->oc * g->k * g->k * g->ic, 1), s->workers,
                    forward_range, &j);
}

/* ---- backward ---- */

typedef struct {
    const cs_conv_geom *g;
    const cs_bn_act_pool_grad *gr;
    const float *x, *dpooled;
    double *parts; /* [workers][(kdim + 2) * oc]: the winners' sums W, sum g, sum g * xhat */
    const cs_scratch *s;
} grad_job;

/* One image's sums into acc ((kdim + 2) x oc floats, zeroed): per window, the gradient
 * reaching batch norm's output at the winner, g = dpooled * (slope of the activation
 * there), with the block's two sums of g and g * xhat (cs_bn_act_pool_backward_begin
 * takes the same ones), and for each of the window's p*p positions, the g of the
 * channels it won times its patch. g itself is never stored. */
CS_WIDE_CLONES static void winners_of_image(const cs_conv_geom *g, const cs_bn_act_pool_grad *gr,
                                            const float *dpooled, const float *xin, long img, const int *off,
                                            int kdim, float *restrict acc)
{
    const cs_bn_act_pool *b = gr->b;
    const int p = b->p, oh = b->h / p, ow = b->w / p, oc = g->oc;
    float *s1 = acc + (size_t)kdim * oc, *s2 = s1 + oc, gw[oc], gq[oc];
    int qoff[p * p];
    window_offsets(g, p, qoff);
    for (int oy = 0; oy < oh; oy++)
        for (int ox = 0; ox < ow; ox++) {
            const size_t o = (((size_t)img * oh + oy) * ow + ox) * oc;
            const uint8_t *won = gr->argmax + o;
            const float *dy = dpooled + o, *xh = gr->win_xhat + o;
            for (int c = 0; c < oc; c++) {
                const float v = b->gamma[c] * xh[c] + b->beta[c];
                gw[c] = dy[c] * (v > 0 ? 1.0f : b->alpha);
                s1[c] += gw[c];
                s2[c] += gw[c] * xh[c];
            }
            const float *window = patch_corner(g, xin, img, oy * p, ox * p);
            for (int q = 0; q < p * p; q++) {
                const float *corner = window + qoff[q];
                for (int c = 0; c < oc; c++) gq[c] = won[c] == q ? gw[c] : 0.0f;
                for (int t = 0; t < kdim; t++) {
                    const float v = corner[off[t]];
                    float *at = acc + (size_t)t * oc;
                    for (int c = 0; c < oc; c++) at[c] += v * gq[c];
                }
            }
        }
}

#if CS_HAVE_AVX512_KERNELS
/* The same for up to WIN_TAPS taps and a multiple of 16 channels on AVX-512: 16
 * channels at a time, every sum in registers across the image (one image's windows
 * add few enough floats to stay exact to float rounding). */
#define WIN_TAPS 9
CS_AVX512 static void winners_of_image_avx512(const cs_conv_geom *g, const cs_bn_act_pool_grad *gr,
                                              const float *dpooled, const float *xin, long img, const int *off,
                                              int kdim, float *acc)
{
    const cs_bn_act_pool *b = gr->b;
    const int p = b->p, oh = b->h / p, ow = b->w / p, oc = g->oc;
    int o9[WIN_TAPS], qoff[p * p]; /* taps past kdim read tap 0; their sums are dropped */
    for (int t = 0; t < WIN_TAPS; t++) o9[t] = off[t < kdim ? t : 0];
    window_offsets(g, p, qoff);
    const __m512 alpha = _mm512_set1_ps(b->alpha), zero = _mm512_setzero_ps();
    for (int c0 = 0; c0 < oc; c0 += 16) {
        const __m512 gamma = _mm512_loadu_ps(b->gamma + c0), beta = _mm512_loadu_ps(b->beta + c0);
        __m512 a0 = zero, a1 = zero, a2 = zero, a3 = zero, a4 = zero, a5 = zero, a6 = zero, a7 = zero, a8 = zero,
               s1 = zero, s2 = zero;
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++) {
                const size_t o = (((size_t)img * oh + oy) * ow + ox) * oc + c0;
                const __m512i won = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(gr->argmax + o)));
                const __m512 xh = _mm512_loadu_ps(gr->win_xhat + o);
                const __m512 v = _mm512_add_ps(_mm512_mul_ps(gamma, xh), beta);
                const __m512 gv = _mm512_mul_ps(_mm512_loadu_ps(dpooled + o), cs_slope_avx512(v, alpha));
                s1 = _mm512_add_ps(s1, gv);
                s2 = _mm512_add_ps(s2, _mm512_mul_ps(gv, xh));
                const float *window = patch_corner(g, xin, img, oy * p, ox * p);
                for (int q = 0; q < p * p; q++) {
                    const float *x = window + qoff[q];
                    const __m512 gq = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(won, _mm512_set1_epi32(q)), gv);
                    a0 = _mm512_fmadd_ps(_mm512_set1_ps(x[o9[0]]), gq, a0);
                    a1 = _mm512_fmadd_ps(_mm512_set1_ps(x[o9[1]]), gq, a1);
                    a2 = _mm512_fmadd_ps(_mm512_set1_ps(x[o9[2]]), gq, a2);
                    a3 = _mm512_fmadd_ps(_mm512_set1_ps(x[o9[3]]), gq, a3);
                    a4 = _mm512_fmadd_ps(_mm512_set1_ps(x[o9[4]]), gq, a4);
                    a5 = _mm512_fmadd_ps(_mm512_set1_ps(x[o9[5]]), gq, a5);
                    a6 = _mm512_fmadd_ps(_mm512_set1_ps(x[o9[6]]), gq, a6);
                    a7 = _mm512_fmadd_ps(_mm512_set1_ps(x[o9[7]]), gq, a7);
                    a8 = _mm512_fmadd_ps(_mm512_set1_ps(x[o9[8]]), gq, a8);
                }
            }
        const __m512 sums[WIN_TAPS] = {a0, a1, a2, a3, a4, a5, a6, a7, a8};
        for (int t = 0; t < kdim; t++) _mm512_storeu_ps(acc + (size_t)t * oc + c0, sums[t]);
        _mm512_storeu_ps(acc + (size_t)kdim * oc + c0, s1);
        _mm512_storeu_ps(acc + (size_t)(kdim + 1) * oc + c0, s2);
    }
}

#else
#define winners_of_image_avx512 winners_of_image
#define WIN_TAPS 0
#endif

static int avx512_winners_ok(const cs_conv_geom *g, int kdim)
{
    return kdim <= WIN_TAPS && g->oc % 16 == 0 && cs_cpu_avx512();
}

/* Per image in float in the worker's scratch, then into the worker's double sums. */
static void winners_range(void *ctx, long begin, long end, int worker)
{
    const grad_job *j = ctx;
    const cs_conv_geom *g = j->g;
    int off[CS_CONV_BLOCK_MAX_TAPS];
    const int kdim = cs_conv_tap_offsets(g, off), fast = avx512_winners_ok(g, kdim);
    const size_t m = (size_t)(kdim + 2) * g->oc;
    float *acc = j->s->col[worker];
    double *part = j->parts + (size_t)worker * m;
    for (long img = begin; img < end; img++) {
        if (fast) winners_of_image_avx512(g, j->gr, j->dpooled, j->x, img, off, kdim, acc); /* stores every sum */
        else {
            memset(acc, 0, m * sizeof(float));
            winners_of_image(g, j->gr, j->dpooled, j->x, img, off, kdim, acc);
        }
        for (size_t i = 0; i < m; i++) part[i] += acc[i];
    }
}

void cs_conv_block_backward(const cs_conv_geom *g, const float *x, const float *w, const float *b,
                            cs_bn_act_pool_grad *gr, const float *dpooled, const double *moments, float *dgamma,
                            float *dbeta, float *dw, float *db, const cs_scratch *s, double *parts)
{
    const int kdim = g->k * g->k * g->ic, oc = g->oc;
    const size_t m = (size_t)(kdim + 2) * oc;
    memset(parts, 0, (size_t)s->workers * m * sizeof(double));
    grad_job j = {.g = g, .gr = gr, .x = x, .dpooled = dpooled, .parts = parts, .s = s};
    cs_parallel_run(g->n, 1, s->workers, winners_range, &j);
    for (int wk = 1; wk < s->workers; wk++)
        for (size_t i = 0; i < m; i++) parts[i] += parts[(size_t)wk * m + i];
    const double n = (double)g->n * g->oh * g->ow, *sum = moments, *gram = moments + kdim;
    /* Batch norm's part first: its parameter gradients and the constants of its input
     * gradient, from the two sums. */
    cs_bn_grad_consts(oc, (size_t)n, parts + (size_t)kdim * oc, 1, gr->b->gamma, gr->inv_std, dgamma, dbeta,
                      gr->scale, gr->mean_dy, gr->mean_dyx);
    const double *win = parts, *gsum = parts + (size_t)kdim * oc;
    for (int c = 0; c < oc; c++) {
        const double scale = gr->scale[c], mdy = gr->mean_dy[c], k = (double)gr->mean_dyx[c] * gr->inv_std[c],
                     shift = (double)b[c] - gr->mean[c];
        /* sum_p y_pc - n mean_c, and each tap's sum_p P_pt (y_pc - mean_c) */
        double ysum = n * shift;
        for (int t = 0; t < kdim; t++) ysum += sum[t] * w[(size_t)t * oc + c];
        for (int t = 0; t < kdim; t++) {
            double py = sum[t] * shift;
            for (int u = 0; u < kdim; u++) py += gram[t * kdim + u] * w[(size_t)u * oc + c];
            if (dw) dw[(size_t)t * oc + c] += (float)(scale * (win[(size_t)t * oc + c] - mdy * sum[t] - k * py));
        }
        if (db) db[c] += (float)(scale * (gsum[c] - mdy * n - k * ysum));
    }
}
