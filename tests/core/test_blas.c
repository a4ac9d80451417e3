/*
 * test_blas.c - OpenBLAS start-up: the kernel choice, a preset OPENBLAS_CORETYPE
 * being respected (checked in a re-executed copy of this binary, since OpenBLAS
 * reads the variable only when it loads), threads, and sgemm against a double loop.
 *
 * Run with "--child-core" the binary only initialises and prints what it sees.
 */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "blas.h"
#include "test.h"

static int init_rc = -2;

static int cpu_has_avx2(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

static void test_init(void)
{
    CHECK(init_rc == 0, "cs_blas_init returned %d", init_rc);
    const char *core = cs_blas_core();
    CHECK(core && *core, "core name");
    fprintf(stderr, "  OpenBLAS core: %s, %d threads\n", core ? core : "?", cs_blas_threads());
    if (cpu_has_avx2() && !getenv("OPENBLAS_CORETYPE"))
        CHECK(!cs_blas_core_is_generic(core), "AVX2 CPU runs generic kernels '%s'", core);
    CHECK(getenv("CONVSCOPE_BLAS_REEXEC") == NULL, "re-exec marker left in the environment");
}

static void test_pick(void)
{
    CHECK(cs_blas_core_is_generic("Prescott"), "Prescott");
    CHECK(cs_blas_core_is_generic("prescott"), "case");
    CHECK(cs_blas_core_is_generic("Sandybridge"), "Sandybridge");
    CHECK(cs_blas_core_is_generic("Core2"), "Core2");
    CHECK(cs_blas_core_is_generic(""), "empty");
    CHECK(cs_blas_core_is_generic(NULL), "NULL");
    CHECK(!cs_blas_core_is_generic("Haswell"), "Haswell");
    CHECK(!cs_blas_core_is_generic("SkylakeX"), "SkylakeX");
    CHECK(!cs_blas_core_is_generic("Zen"), "Zen");
    CHECK(!cs_blas_core_is_generic("CooperLake"), "CooperLake");

    const char *p = cs_blas_pick_coretype("Prescott", 1, 1);
    CHECK(p && strcmp(p, "SkylakeX") == 0, "Prescott on AVX-512 -> %s", p ? p : "NULL");
    p = cs_blas_pick_coretype("Prescott", 0, 1);
    CHECK(p && strcmp(p, "Haswell") == 0, "Prescott on AVX2 -> %s", p ? p : "NULL");
    p = cs_blas_pick_coretype("Nehalem", 0, 0);
    CHECK(p == NULL, "old CPU keeps its kernels");
    p = cs_blas_pick_coretype("Haswell", 1, 1);
    CHECK(p == NULL, "a recognised core is kept");
}

/* Runs this binary with --child-core under the given environment additions and
 * returns what it printed (static buffer), or "" on failure. */
static const char *run_child(const char *coretype, int with_marker)
{
    static char out[256];
    out[0] = 0;
    int fd[2];
    if (pipe(fd) != 0)
        return out;
    pid_t pid = fork();
    if (pid < 0) {
        close(fd[0]);
        close(fd[1]);
        return out;
    }
    if (pid == 0) {
        dup2(fd[1], 1);
        close(fd[0]);
        close(fd[1]);
        if (coretype)
            setenv("OPENBLAS_CORETYPE", coretype, 1);
        else
            unsetenv("OPENBLAS_CORETYPE");
        if (with_marker)
            setenv("CONVSCOPE_BLAS_REEXEC", "1", 1);
        else
            unsetenv("CONVSCOPE_BLAS_REEXEC");
        char *args[] = {"test_blas", "--child-core", NULL};
        cs_exec_self(args);
        _exit(127);
    }
    close(fd[1]);
    size_t len = 0;
    ssize_t r;
    while (len < sizeof out - 1 && (r = read(fd[0], out + len, sizeof out - 1 - len)) > 0)
        len += (size_t)r;
    out[len] = 0;
    close(fd[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        snprintf(out, sizeof out, "child failed (status %d)", status);
    return out;
}

static void test_preset_respected(void)
{
    if (cpu_has_avx2()) {
        const char *got = run_child("Haswell", 0);
        CHECK(strcmp(got, "core=Haswell rc=0 marker=0\n") == 0, "Haswell preset: child saw '%s'",
              got);
    }
    /* Even a slow preset is the user's choice: it must not be replaced. */
    const char *got = run_child("Prescott", 0);
    CHECK(strcmp(got, "core=Prescott rc=0 marker=0\n") == 0, "Prescott preset: child saw '%s'", got);
    /* With the marker set the process counts as re-executed already: it must start,
     * compute and clear the marker, whatever the core. */
    got = run_child(NULL, 1);
    CHECK(strncmp(got, "core=", 5) == 0 && strstr(got, "rc=0 marker=0\n"), "marker: child saw '%s'",
          got);
}

static void test_threads(void)
{
    int before = cs_blas_threads();
    cs_blas_set_threads(1);
    CHECK(cs_blas_threads() == 1, "threads %d after set 1", cs_blas_threads());
    cs_blas_set_threads(before);
    CHECK(cs_blas_threads() == before, "threads restored to %d: %d", before, cs_blas_threads());
}

/* C = A(op) * B(op) with all layouts the network uses, against a double loop. */
static void check_gemm(int m, int n, int k, int ta, int tb)
{
    float *a = malloc(sizeof(float) * (size_t)m * k), *b = malloc(sizeof(float) * (size_t)k * n);
    float *c = malloc(sizeof(float) * (size_t)m * n);
    unsigned s = (unsigned)(m * 131 + n * 17 + k);
    for (size_t i = 0; i < (size_t)m * k; i++) {
        s = s * 1103515245u + 12345u;
        a[i] = (float)((s >> 9) % 2001) / 1000.0f - 1.0f;
    }
    for (size_t i = 0; i < (size_t)k * n; i++) {
        s = s * 1103515245u + 12345u;
        b[i] = (float)((s >> 9) % 2001) / 1000.0f - 1.0f;
    }
    /* A is m x k (or stored k x m when transposed), B is k x n (or n x k). */
    int lda = ta ? m : k, ldb = tb ? k : n;
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n,
                k, 1.0f, a, lda, b, ldb, 0.0f, c, n);
    int bad = 0;
    double worst = 0;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double ref = 0, mag = 0;
            for (int p = 0; p < k; p++) {
                double x = ta ? a[(size_t)p * m + i] : a[(size_t)i * k + p];
                double y = tb ? b[(size_t)j * k + p] : b[(size_t)p * n + j];
                ref += x * y;
                mag += fabs(x * y);
            }
            double e = fabs(c[(size_t)i * n + j] - ref) / (mag > 0 ? mag : 1);
            if (e > worst)
                worst = e;
            bad += !(e <= 1e-5);
        }
    CHECK(bad == 0, "sgemm %dx%dx%d ta=%d tb=%d: %d wrong, worst relative error %g", m, n, k, ta,
          tb, bad, worst);
    free(a);
    free(b);
    free(c);
}

static void test_sgemm(void)
{
    static const int sizes[][3] = {{1, 1, 1}, {7, 3, 5}, {64, 64, 64}, {37, 41, 29}, {128, 32, 9},
                                   {200, 64, 288}, {513, 65, 257}};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        for (int t = 0; t < 4; t++)
            check_gemm(sizes[i][0], sizes[i][1], sizes[i][2], t & 1, t >> 1);
}

int main(int argc, char **argv)
{
    init_rc = cs_blas_init(argc, argv);
    if (argc > 1 && strcmp(argv[1], "--child-core") == 0) {
        printf("core=%s rc=%d marker=%d\n", cs_blas_core(), init_rc,
               getenv("CONVSCOPE_BLAS_REEXEC") != NULL);
        return 0;
    }
    RUN(test_init);
    RUN(test_pick);
    RUN(test_preset_respected);
    RUN(test_threads);
    RUN(test_sgemm);
    return test_summary("blas");
}
