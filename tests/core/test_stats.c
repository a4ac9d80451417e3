/*
 * test_stats.c - summaries of activations and weights (stats.h) against values worked
 * out by hand, numpy.histogram's conventions, and a double-precision reference over a
 * block of random floats.
 */
#include <math.h>

#include "rng.h"
#include "stats.h"
#include "test.h"

static void test_summary_by_hand(void)
{
    /* 1, 2, 3, 4, 10: mean 4, deviations -3 -2 -1 0 6, squares 9+4+1+0+36 = 50,
     * population variance 10. */
    const float x[] = {1, 2, 3, 4, 10};
    cs_summary s;
    cs_summarise(x, 5, &s);
    CHECK(s.min == 1 && s.max == 10 && s.n == 5 && s.nonfinite == 0, "min %g max %g n %zu", s.min, s.max, s.n);
    CHECK_NEAR(s.mean, 4.0, 1e-12, "mean");
    CHECK_NEAR(s.std, sqrt(10.0), 1e-12, "std");
    /* NaN and infinities are counted apart and change nothing else. */
    const float y[] = {NAN, 1, INFINITY, 2, 3, -INFINITY, 4, 10};
    cs_summary t;
    cs_summarise(y, 8, &t);
    CHECK(t.nonfinite == 3 && t.n == 5 && t.min == 1 && t.max == 10, "with NaN: n %zu nonfinite %zu", t.n,
          t.nonfinite);
    CHECK_NEAR(t.mean, 4.0, 1e-12, "mean without NaN");
    CHECK_NEAR(t.std, sqrt(10.0), 1e-12, "std without NaN");
    cs_summary e;
    cs_summarise(y, 1, &e);
    CHECK(e.n == 0 && e.nonfinite == 1 && e.min == 0 && e.max == 0 && e.mean == 0, "only NaN: zeros");
}

static void test_channel_stats_nhwc(void)
{
    /* 2x2 positions of 3 channels: channel 0 is 1,2,3,4; channel 1 is -1 everywhere;
     * channel 2 is 0, 0, 0, 8. */
    const float x[] = {1, -1, 0, 2, -1, 0, 3, -1, 0, 4, -1, 8};
    cs_summary s[3];
    cs_channel_stats(x, 4, 3, s);
    CHECK(s[0].min == 1 && s[0].max == 4 && s[0].n == 4, "channel 0 range");
    CHECK_NEAR(s[0].mean, 2.5, 1e-12, "channel 0 mean");
    CHECK_NEAR(s[0].std, sqrt(1.25), 1e-12, "channel 0 std"); /* (2.25+0.25+0.25+2.25)/4 */
    CHECK(s[1].min == -1 && s[1].max == -1 && s[1].mean == -1 && s[1].std == 0, "channel 1 constant");
    CHECK(s[2].min == 0 && s[2].max == 8, "channel 2 range");
    CHECK_NEAR(s[2].mean, 2.0, 1e-12, "channel 2 mean");
    CHECK_NEAR(s[2].std, sqrt(12.0), 1e-12, "channel 2 std"); /* (4+4+4+36)/4 */

    int order[3];
    CHECK(cs_channel_order(s, 3, CS_ORDER_INDEX, order) == 0 && order[0] == 0 && order[1] == 1 && order[2] == 2,
          "index order");
    /* means 2.5, -1, 2: 0, 2, 1; maxima 4, -1, 8: 2, 0, 1 */
    cs_channel_order(s, 3, CS_ORDER_MEAN, order);
    CHECK(order[0] == 0 && order[1] == 2 && order[2] == 1, "by mean: %d %d %d", order[0], order[1], order[2]);
    cs_channel_order(s, 3, CS_ORDER_MAX, order);
    CHECK(order[0] == 2 && order[1] == 0 && order[2] == 1, "by max: %d %d %d", order[0], order[1], order[2]);
}

static void test_order_ties_and_nan(void)
{
    /* One position of 5 channels: 1, NaN, 3, 1, 3. Ties keep the index order and the
     * channel with no finite value goes last. */
    const float x[] = {1, NAN, 3, 1, 3};
    cs_summary s[5];
    cs_channel_stats(x, 1, 5, s);
    CHECK(s[1].n == 0 && s[1].nonfinite == 1, "NaN channel has no values");
    int order[5];
    cs_channel_order(s, 5, CS_ORDER_MEAN, order);
    CHECK(order[0] == 2 && order[1] == 4 && order[2] == 0 && order[3] == 3 && order[4] == 1,
          "ties and NaN: %d %d %d %d %d", order[0], order[1], order[2], order[3], order[4]);
}

static void test_histogram_like_numpy(void)
{
    /* numpy.histogram([0, 1, 2, 3, 4], bins=4) -> [1, 1, 1, 2], edges 0 1 2 3 4: the
     * last bin holds its right edge. */
    const float x[] = {0, 1, 2, 3, 4};
    uint64_t c[4];
    double e[5];
    CHECK(cs_histogram(x, 5, 4, 0, 4, c, e) == 0, "histogram");
    CHECK(c[0] == 1 && c[1] == 1 && c[2] == 1 && c[3] == 2, "counts %llu %llu %llu %llu", (unsigned long long)c[0],
          (unsigned long long)c[1], (unsigned long long)c[2], (unsigned long long)c[3]);
    CHECK(e[0] == 0 && e[1] == 1 && e[2] == 2 && e[3] == 3 && e[4] == 4, "edges");
    /* A constant: numpy.histogram([5, 5, 5], bins=2) -> [0, 3] over [4.5, 5.5]; the value
     * sits on the middle edge, so it falls in the second bin. */
    const float k[] = {5, 5, 5};
    uint64_t c2[2];
    double e2[3];
    cs_histogram(k, 3, 2, 5, 5, c2, e2);
    CHECK(c2[0] == 0 && c2[1] == 3 && e2[0] == 4.5 && e2[1] == 5 && e2[2] == 5.5, "constant: %llu %llu",
          (unsigned long long)c2[0], (unsigned long long)c2[1]);
    /* Outside the range and NaN: not counted. */
    const float o[] = {-1, 0.5f, NAN, 2};
    uint64_t c3[1];
    cs_histogram(o, 4, 1, 0, 1, c3, NULL);
    CHECK(c3[0] == 1, "only 0.5 is in [0, 1]: %llu", (unsigned long long)c3[0]);
    CHECK(cs_histogram(o, 4, 0, 0, 1, c3, NULL) == -1 && cs_histogram(o, 4, 1, 1, 0, c3, NULL) == -1 &&
              cs_histogram(o, 4, 1, 0, INFINITY, c3, NULL) == -1,
          "bad bins or ranges refused");
}

/* Random floats: every value lies within the edges of its bin (checked by comparing,
 * not by the division the function guesses with), and the summary agrees with a
 * double-precision reference. */
static void test_histogram_edges_hold(void)
{
    enum { N = 20000, BINS = 37 };
    static float x[N];
    cs_rng r;
    cs_rng_seed(&r, 5);
    for (int i = 0; i < N; i++) x[i] = (float)(cs_rng_uniform(&r) * 0.3 - 0.1);
    cs_summary s;
    cs_summarise(x, N, &s);
    uint64_t c[BINS];
    double e[BINS + 1];
    CHECK(cs_histogram(x, N, BINS, s.min, s.max, c, e) == 0, "histogram");
    uint64_t want[BINS] = {0}, total = 0;
    for (int i = 0; i < N; i++) {
        int b = 0;
        while (b < BINS - 1 && (double)x[i] >= e[b + 1]) b++;
        want[b]++;
    }
    int same = 1;
    for (int b = 0; b < BINS; b++) same &= want[b] == c[b], total += c[b];
    CHECK(same && total == N, "every value in the bin its edges give (total %llu)", (unsigned long long)total);
    double sum = 0, ss = 0;
    float lo = x[0], hi = x[0];
    for (int i = 0; i < N; i++) sum += x[i], lo = x[i] < lo ? x[i] : lo, hi = x[i] > hi ? x[i] : hi;
    for (int i = 0; i < N; i++) ss += (x[i] - sum / N) * (x[i] - sum / N);
    CHECK(s.min == lo && s.max == hi, "range");
    CHECK_NEAR(s.mean, sum / N, 1e-12, "mean");
    CHECK_NEAR(s.std, sqrt(ss / N), 1e-12, "std");
    /* uniform on [-0.1, 0.2): std 0.3 / sqrt(12) */
    CHECK_NEAR(s.std, 0.3 / sqrt(12.0), 2e-3, "std of a uniform");
}

int main(void)
{
    RUN(test_summary_by_hand);
    RUN(test_channel_stats_nhwc);
    RUN(test_order_ties_and_nan);
    RUN(test_histogram_like_numpy);
    RUN(test_histogram_edges_hold);
    return test_summary("stats");
}
