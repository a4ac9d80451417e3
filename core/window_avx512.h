/*
 * window_avx512.h - one 2x2 window of the fused batch norm -> LeakyReLU/ReLU -> max
 * pool block, for 16 channels on AVX-512.
 *
 * The same float operations in the same order as the plain loop of bn_act_pool.c
 * (separate multiplies and adds, strict comparisons, the first maximum on ties), so
 * the same bits. Shared by the block on a stored input (bn_act_pool.c) and by the
 * first conv that computes its output in registers (conv_block.c). x86-64 only.
 */
#ifndef CS_WINDOW_AVX512_H
#define CS_WINDOW_AVX512_H

#include <immintrin.h>
#include <stdint.h>

#include "simd.h"

/* The activation's slope at v: 1 where v > 0, alpha elsewhere (LeakyReLU; 0 for ReLU). */
CS_AVX512 static inline __m512 cs_slope_avx512(__m512 v, __m512 alpha)
{
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_GT_OQ), alpha, _mm512_set1_ps(1.0f));
}

/* The batch-norm constants of 16 channels, and the activation's slope. */
typedef struct {
    __m512 mean, inv, gamma, beta, alpha;
} cs_window_consts;

/* The window's four inputs y0..y3 (in row order) -> its maximum, the normalised input
 * of the first element reaching it, and that element's position, stored at out, xhat
 * and won. */
CS_AVX512 __attribute__((always_inline)) static inline void
cs_window4_avx512(const cs_window_consts *k, __m512 y0, __m512 y1, __m512 y2, __m512 y3, float *out, float *xhat,
                  uint8_t *won)
{
#define NORMALISED(Y) _mm512_mul_ps(_mm512_sub_ps((Y), k->mean), k->inv)
#define SCALED(H) _mm512_add_ps(_mm512_mul_ps(k->gamma, (H)), k->beta)
#define ACTIVATED(V) _mm512_mul_ps((V), cs_slope_avx512((V), k->alpha))
    const __m512 h0 = NORMALISED(y0), h1 = NORMALISED(y1), h2 = NORMALISED(y2), h3 = NORMALISED(y3);
    const __m512 a1 = ACTIVATED(SCALED(h1)), a2 = ACTIVATED(SCALED(h2)), a3 = ACTIVATED(SCALED(h3));
    __m512 m = ACTIVATED(SCALED(h0)), hw = h0;
    __m512i at = _mm512_setzero_si512();
#undef NORMALISED
#undef SCALED
#undef ACTIVATED
#define CHALLENGE(A, H, POS)                                                                                           \
    do {                                                                                                               \
        const __mmask16 gt = _mm512_cmp_ps_mask((A), m, _CMP_GT_OQ);                                                    \
        at = _mm512_mask_mov_epi32(at, gt, _mm512_set1_epi32(POS));                                                    \
        hw = _mm512_mask_mov_ps(hw, gt, (H));                                                                          \
        m = _mm512_mask_mov_ps(m, gt, (A));                                                                            \
    } while (0)
    CHALLENGE(a1, h1, 1);
    CHALLENGE(a2, h2, 2);
    CHALLENGE(a3, h3, 3);
#undef CHALLENGE
    _mm512_storeu_ps(out, m);
    _mm512_storeu_ps(xhat, hw);
    _mm_storeu_si128((__m128i *)won, _mm512_cvtepi32_epi8(at));
}

#endif
