/*
 * test.h - the smallest test harness that can fail.
 *
 * A test binary defines `static void test_xxx(void)` functions that use CHECK*,
 * runs them with RUN(test_xxx), and ends with `return test_summary("name");`.
 * A test case passes when none of its checks failed; the binary prints one line
 * "[name] N ok, M failed" and exits 1 on any failure. tests/run.sh adds the lines up.
 */
#ifndef CS_TEST_H
#define CS_TEST_H

#include <ftw.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int t_cases_ok, t_cases_failed, t_case_fails;
static const char *t_case_name = "";

#define CHECK(cond, ...)                                                                   \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            t_case_fails++;                                                                \
            fprintf(stderr, "FAIL %s (%s:%d): ", t_case_name, __FILE__, __LINE__);         \
            fprintf(stderr, __VA_ARGS__);                                                  \
            fputc('\n', stderr);                                                           \
        }                                                                                  \
    } while (0)

/* |a - b| <= tol, and neither is NaN. */
#define CHECK_NEAR(a, b, tol, what)                                                        \
    do {                                                                                   \
        double t_a_ = (a), t_b_ = (b);                                                     \
        CHECK(fabs(t_a_ - t_b_) <= (tol), "%s: %.9g vs %.9g (tol %g)", (what), t_a_, t_b_, \
              (double)(tol));                                                              \
    } while (0)

#define RUN(fn)                                                                            \
    do {                                                                                   \
        t_case_name = #fn;                                                                 \
        t_case_fails = 0;                                                                  \
        fn();                                                                              \
        if (t_case_fails) {                                                                \
            t_cases_failed++;                                                              \
            fprintf(stderr, "  %s: FAILED (%d checks)\n", #fn, t_case_fails);              \
        } else {                                                                           \
            t_cases_ok++;                                                                  \
            fprintf(stderr, "  %s: ok\n", #fn);                                            \
        }                                                                                  \
    } while (0)

static inline int test_summary(const char *name)
{
    printf("[%s] %d ok, %d failed\n", name, t_cases_ok, t_cases_failed);
    return t_cases_failed ? 1 : 0;
}

/* ---- scratch files ------------------------------------------------------------- */

static char t_scratch[512];

static inline int t_remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static inline void t_scratch_remove(void)
{
    if (t_scratch[0] && !getenv("CONVSCOPE_KEEP_TEST_DIR")) nftw(t_scratch, t_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* A fresh folder for this binary's files (under $TMPDIR or /tmp), removed with
 * everything in it when the binary exits; exits 99 (a setup error) when it cannot
 * be made. */
static inline const char *test_scratch_dir(const char *name)
{
    const char *base = getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(t_scratch, sizeof t_scratch, "%s/convscope-%s-XXXXXX", base, name);
    if (!mkdtemp(t_scratch)) {
        perror("setup: mkdtemp");
        exit(99);
    }
    atexit(t_scratch_remove);
    return t_scratch;
}

/* bytes of zeros (at least one), or the binary ends as a setup error (99). */
static inline void *alloc_or_die(size_t bytes)
{
    void *p = calloc(bytes ? bytes : 1, 1);
    if (!p) {
        perror("setup: calloc");
        exit(99);
    }
    return p;
}

/* "<scratch dir>/name" in one of eight rotating buffers (enough for one call's arguments). */
static inline const char *test_scratch_path(const char *name)
{
    static char paths[8][600];
    static int next;
    char *p = paths[next++ % 8];
    snprintf(p, sizeof paths[0], "%s/%s", t_scratch, name);
    return p;
}

/* The whole file (malloc'd, with a NUL after the last byte, so text reads as a
 * string), or NULL. void *: callers take it as bytes or as text. */
static inline void *test_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) buf[n] = 0;
    if (len) *len = buf ? (size_t)n : 0;
    return buf;
}

#endif
