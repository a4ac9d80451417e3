/*
 * simd.h - compiling a hot loop for wider vectors than the baseline x86-64 build.
 *
 * The build targets every x86-64 CPU (SSE2). CS_CLONES compiles a function twice, for
 * AVX2+FMA (x86-64-v3) and for the baseline, and the loader picks one for the CPU it
 * runs on; CS_WIDE_CLONES adds AVX-512 (x86-64-v4), for kernels that need its 32
 * vector registers. CS_CONTRACT lets that function fuse multiplies and adds (different
 * rounding: only where no other code path must give the same bits).
 */
#ifndef CS_SIMD_H
#define CS_SIMD_H

/* Not under ThreadSanitizer: it instruments the clones' resolvers, which the loader
 * runs before the sanitizer's runtime is up (make check's build/tsan). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_THREAD__)
#define CS_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#define CS_WIDE_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#define CS_CONTRACT __attribute__((optimize("fp-contract=fast")))
#else
#define CS_CLONES
#define CS_WIDE_CLONES
#define CS_CONTRACT
#endif

/* Hand-written AVX-512 kernels (intrinsics) are compiled on x86-64 only, each function
 * marked CS_AVX512, and called only where cs_cpu_avx512() says this CPU runs them. */
#if defined(__x86_64__) && defined(__GNUC__)
#define CS_HAVE_AVX512_KERNELS 1
#define CS_AVX512 __attribute__((target("avx512f")))
static inline int cs_cpu_avx512(void)
{
    return __builtin_cpu_supports("avx512f") != 0;
}
#else
#define CS_HAVE_AVX512_KERNELS 0
static inline int cs_cpu_avx512(void)
{
    return 0;
}
#endif

#endif
