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

#include <math.h>
#include <stdio.h>
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

#endif
