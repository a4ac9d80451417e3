/*
 * blas.c - choosing OpenBLAS kernels that fit the CPU, and checking they compute.
 *
 * Debian's OpenBLAS 0.3.21 is built for many CPUs and picks its kernels when the
 * library is loaded, before main(). On Intel cores newer than it knows it falls back
 * to the SSE3 "Prescott" kernels, five to six times slower than the AVX2/AVX-512
 * ones the CPU can run. The choice can only be overridden through OPENBLAS_CORETYPE
 * at load time, so cs_blas_init sets it and re-executes the program once. A value the
 * user already set is always respected. An environment marker stops a second
 * re-execution should OpenBLAS ignore the value.
 *
 * Library code: nothing is printed; the caller reports a -1.
 */
#include "blas.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define CS_BLAS_REEXEC_ENV "CONVSCOPE_BLAS_REEXEC"

int cs_blas_core_is_generic(const char *core)
{
    /* Kernels older than AVX2, which OpenBLAS also uses as fallbacks for CPUs it
     * does not identify. */
    static const char *const old[] = {
        "prescott", "katmai",  "coppermine", "northwood", "core2",        "penryn",
        "dunnington", "nehalem", "sandybridge", "atom",   "banias",       "barcelona",
        "opteron",  "opteron_sse3", "bobcat",  "generic",  "unknown",
    };
    if (!core || !*core)
        return 1;
    for (size_t i = 0; i < sizeof old / sizeof old[0]; i++)
        if (strcasecmp(core, old[i]) == 0)
            return 1;
    return 0;
}

const char *cs_blas_pick_coretype(const char *core, int has_avx512f, int has_avx2_fma)
{
    if (!cs_blas_core_is_generic(core))
        return NULL;
    if (has_avx512f)
        return "SkylakeX";
    if (has_avx2_fma)
        return "Haswell";
    return NULL;
}

/* What the running CPU can execute, as far as the kernel choice is concerned. */
static void cpu_features(int *avx512f, int *avx2_fma)
{
    *avx512f = *avx2_fma = 0;
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    *avx2_fma = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    *avx512f = *avx2_fma && __builtin_cpu_supports("avx512f");
#endif
}

/* Re-executes the program with OPENBLAS_CORETYPE=core. Returns only on failure,
 * after undoing the environment changes. */
static void reexec_with(const char *core, char **argv)
{
    if (!argv || !argv[0])
        return;
    if (setenv("OPENBLAS_CORETYPE", core, 1) != 0)
        return;
    if (setenv(CS_BLAS_REEXEC_ENV, "1", 1) != 0) {
        unsetenv("OPENBLAS_CORETYPE");
        return;
    }
    cs_exec_self(argv);
    unsetenv("OPENBLAS_CORETYPE");
    unsetenv(CS_BLAS_REEXEC_ENV);
}

void cs_exec_self(char **argv)
{
    /* /proc/self/exe names the running binary even when argv[0] is a bare name
     * found through PATH or a relative path from another directory. Its resolved
     * target is executed rather than the link itself: under tools such as valgrind
     * the link is the tool, while readlink reports the program. */
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        execv(exe, argv);
    }
    execv("/proc/self/exe", argv);
}

/* One small product of awkward sizes (not multiples of any vector width, so the
 * edge kernels run too) against a plain double-precision loop. */
static int check_sgemm(void)
{
    enum { M = 37, N = 41, K = 29 };
    static float a[M * K], b[K * N], c[M * N];
    for (int i = 0; i < M; i++)
        for (int k = 0; k < K; k++)
            a[i * K + k] = (float)((i * 7 + k * 3) % 13 - 6) * 0.125f + 0.01f * (float)k;
    for (int k = 0; k < K; k++)
        for (int j = 0; j < N; j++)
            b[k * N + j] = (float)((k * 5 + j * 11) % 17 - 8) * 0.0625f - 0.02f * (float)j;
    for (int i = 0; i < M * N; i++)
        c[i] = 1.0f;
    /* beta = 0.5 checks that C is read as well as written. */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, a, K, b, N, 0.5f, c, N);
    for (int i = 0; i < M; i++) {
        for (int j = 0; j < N; j++) {
            double ref = 0.5, mag = 0.5;
            for (int k = 0; k < K; k++) {
                double p = (double)a[i * K + k] * (double)b[k * N + j];
                ref += p;
                mag += fabs(p);
            }
            double got = c[i * N + j];
            /* Relative to the magnitude of the terms: a sum that cancels to near zero
             * carries the rounding error of its terms, not of its result. */
            if (!(fabs(got - ref) <= 1e-4 * mag))
                return -1;
        }
    }
    return 0;
}

int cs_blas_init(int argc, char **argv)
{
    (void)argc;
    const char *preset = getenv("OPENBLAS_CORETYPE");
    int reexecuted = getenv(CS_BLAS_REEXEC_ENV) != NULL;
    /* The marker has done its job once this process runs; children the program
     * starts inherit OPENBLAS_CORETYPE, which they respect, not the marker. */
    if (reexecuted)
        unsetenv(CS_BLAS_REEXEC_ENV);
    if ((!preset || !*preset) && !reexecuted) {
        int avx512f, avx2_fma;
        cpu_features(&avx512f, &avx2_fma);
        const char *want = cs_blas_pick_coretype(openblas_get_corename(), avx512f, avx2_fma);
        if (want)
            reexec_with(want, argv); /* returns only when exec failed: go on as we are */
    }
    /* convscope spreads each layer over the cores itself (parallel.h) and a server
     * runs requests side by side; OpenBLAS threads on top of that only spin against
     * ours for the same cores, so every product runs on its caller's thread. */
    openblas_set_num_threads(1);
    return check_sgemm();
}

const char *cs_blas_core(void)
{
    return openblas_get_corename();
}

void cs_blas_set_threads(int n)
{
    if (n < 1)
        n = 1;
    openblas_set_num_threads(n);
}

int cs_blas_threads(void)
{
    return openblas_get_num_threads();
}
