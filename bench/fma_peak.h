/*
 * fma_peak.h - this machine's float32 multiply-add limit, measured: the yardstick
 * the benchmarks give their GFLOP/s against.
 *
 * Each thread runs chains of fused multiply-adds on independent registers, as many as
 * hide the instruction's latency, in the widest vectors the CPU has (checked when the
 * program runs: AVX-512, else AVX2+FMA, else SSE multiplies and adds). All threads run
 * at once, one per core the process may use, for a fixed time; the best of a few
 * tries counts, since other work on a shared machine can only lower it. No memory is
 * touched: nothing a convolution does can go faster than this.
 *
 * Header-only (static functions): each bench is one file.
 */
#ifndef CS_BENCH_FMA_PEAK_H
#define CS_BENCH_FMA_PEAK_H

#include <pthread.h>
#include <stdio.h>

#include "clock.h"
#include "simd.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

/* 12 accumulators: two FMA ports x four cycles of latency, with room to spare. Each
 * starts from its own value: equal chains would be computed once. */
#define FMA_PEAK_CHAIN(T, SET1, FMA, ADD, REDUCE, LANES)                                                        \
    T a0 = SET1(1.0f), a1 = SET1(1.01f), a2 = SET1(1.02f), a3 = SET1(1.03f), a4 = SET1(1.04f), a5 = SET1(1.05f),  \
      a6 = SET1(1.06f), a7 = SET1(1.07f), a8 = SET1(1.08f), a9 = SET1(1.09f), a10 = SET1(1.1f), a11 = SET1(1.11f);  \
    const T m = SET1(0.999999f), c = SET1(1e-7f);                                                              \
    for (long i = 0; i < iters; i++) {                                                                         \
        a0 = FMA(a0, m, c), a1 = FMA(a1, m, c), a2 = FMA(a2, m, c), a3 = FMA(a3, m, c);                        \
        a4 = FMA(a4, m, c), a5 = FMA(a5, m, c), a6 = FMA(a6, m, c), a7 = FMA(a7, m, c);                        \
        a8 = FMA(a8, m, c), a9 = FMA(a9, m, c), a10 = FMA(a10, m, c), a11 = FMA(a11, m, c);                    \
    }                                                                                                          \
    T s = ADD(ADD(ADD(a0, a1), ADD(a2, a3)), ADD(ADD(a4, a5), ADD(a6, a7)));                                   \
    s = ADD(s, ADD(ADD(a8, a9), ADD(a10, a11)));                                                               \
    *flops = 2.0 * 12 * LANES * (double)iters;                                                                  \
    return REDUCE(s)

__attribute__((target("avx512f"))) static float fma_peak_avx512(long iters, double *flops)
{
    FMA_PEAK_CHAIN(__m512, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_add_ps, _mm512_reduce_add_ps, 16);
}

__attribute__((target("avx2,fma"))) static float fma_peak_reduce256(__m256 v)
{
    float l[8];
    _mm256_storeu_ps(l, v);
    return l[0] + l[1] + l[2] + l[3] + l[4] + l[5] + l[6] + l[7];
}

__attribute__((target("avx2,fma"))) static float fma_peak_avx2(long iters, double *flops)
{
    FMA_PEAK_CHAIN(__m256, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_add_ps, fma_peak_reduce256, 8);
}

/* No FMA: a multiply and an add count as the two operations a multiply-add is. */
static inline __m128 fma_peak_muladd(__m128 a, __m128 m, __m128 c) { return _mm_add_ps(_mm_mul_ps(a, m), c); }
static float fma_peak_reduce128(__m128 v)
{
    float l[4];
    _mm_storeu_ps(l, v);
    return l[0] + l[1] + l[2] + l[3];
}
static float fma_peak_sse(long iters, double *flops)
{
    FMA_PEAK_CHAIN(__m128, _mm_set1_ps, fma_peak_muladd, _mm_add_ps, fma_peak_reduce128, 4);
}

static const char *fma_peak_isa(void)
{
    return cs_cpu_avx512() ? "AVX-512" : __builtin_cpu_supports("fma") ? "AVX2+FMA" : "SSE";
}

static float fma_peak_run(long iters, double *flops)
{
    if (cs_cpu_avx512()) return fma_peak_avx512(iters, flops);
    if (__builtin_cpu_supports("fma")) return fma_peak_avx2(iters, flops);
    return fma_peak_sse(iters, flops);
}
#else
static const char *fma_peak_isa(void) { return "scalar"; }
static float fma_peak_run(long iters, double *flops)
{
    float a[12] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, s = 0;
    for (long i = 0; i < iters; i++)
        for (int k = 0; k < 12; k++) a[k] = a[k] * 0.999999f + 1e-7f;
    for (int k = 0; k < 12; k++) s += a[k];
    *flops = 24.0 * (double)iters;
    return s;
}
#endif

typedef struct {
    long iters;
    double seconds, flops;
    volatile float sink;
} fma_peak_job;

static void *fma_peak_thread(void *arg)
{
    fma_peak_job *j = arg;
    double t0 = cs_now();
    j->sink = fma_peak_run(j->iters, &j->flops);
    j->seconds = cs_now() - t0;
    return NULL;
}

/* GFLOP/s of `threads` threads running at once (each ~0.1 s), best of `tries`. */
static double fma_peak(int threads, int tries)
{
    enum { MAX_THREADS = 64 };
    if (threads < 1) threads = 1;
    if (threads > MAX_THREADS) threads = MAX_THREADS;
    /* How many iterations take about 0.1 s on one thread. */
    fma_peak_job probe = {.iters = 1000000};
    fma_peak_thread(&probe);
    long iters = (long)(probe.iters * 0.1 / (probe.seconds > 1e-6 ? probe.seconds : 1e-6));
    double best = 0;
    for (int t = 0; t < tries; t++) {
        fma_peak_job jobs[MAX_THREADS];
        pthread_t tid[MAX_THREADS];
        int started = 0;
        for (int k = 0; k < threads; k++) {
            jobs[k] = (fma_peak_job){.iters = iters};
            if (pthread_create(&tid[k], NULL, fma_peak_thread, &jobs[k]) == 0) started++;
            else break;
        }
        double flops = 0, slowest = 0;
        for (int k = 0; k < started; k++) {
            pthread_join(tid[k], NULL);
            flops += jobs[k].flops;
            if (jobs[k].seconds > slowest) slowest = jobs[k].seconds;
        }
        /* All threads' work over the time the slowest took: what the cores did together. */
        double rate = slowest > 0 ? flops / slowest / 1e9 : 0;
        if (rate > best) best = rate;
    }
    return best;
}

#endif
