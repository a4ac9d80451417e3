/*
 * stats.c - summaries of float blocks (stats.h).
 */
#include "stats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void cs_summarise(const float *x, size_t n, cs_summary *out)
{
    memset(out, 0, sizeof *out);
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        if (!isfinite(v)) {
            out->nonfinite++;
            continue;
        }
        if (out->n == 0 || v < out->min) out->min = v;
        if (out->n == 0 || v > out->max) out->max = v;
        sum += v;
        out->n++;
    }
    if (!out->n) return;
    out->mean = sum / (double)out->n;
    /* A second pass about the mean: no cancellation between two large sums. */
    double ss = 0;
    for (size_t i = 0; i < n; i++)
        if (isfinite(x[i])) ss += ((double)x[i] - out->mean) * ((double)x[i] - out->mean);
    out->std = sqrt(ss / (double)out->n);
}

void cs_channel_stats(const float *x, size_t hw, int c, cs_summary *out)
{
    memset(out, 0, (size_t)c * sizeof *out);
    /* Positions outside, channels inside: the block is read in memory order. The mean
     * field holds the running sum until the end of the first pass. */
    for (size_t p = 0; p < hw; p++) {
        const float *row = x + p * (size_t)c;
        for (int ch = 0; ch < c; ch++) {
            cs_summary *s = &out[ch];
            float v = row[ch];
            if (!isfinite(v)) {
                s->nonfinite++;
                continue;
            }
            if (s->n == 0 || v < s->min) s->min = v;
            if (s->n == 0 || v > s->max) s->max = v;
            s->mean += v;
            s->n++;
        }
    }
    for (int ch = 0; ch < c; ch++)
        if (out[ch].n) out[ch].mean /= (double)out[ch].n;
    for (size_t p = 0; p < hw; p++) {
        const float *row = x + p * (size_t)c;
        for (int ch = 0; ch < c; ch++)
            if (isfinite(row[ch])) {
                double d = (double)row[ch] - out[ch].mean;
                out[ch].std += d * d;
            }
    }
    for (int ch = 0; ch < c; ch++) out[ch].std = out[ch].n ? sqrt(out[ch].std / (double)out[ch].n) : 0;
}

typedef struct {
    double key;
    int index, has;
} ranked;

static int by_key_desc(const void *a, const void *b)
{
    const ranked *x = a, *y = b;
    if (x->has != y->has) return y->has - x->has;
    if (x->has && x->key != y->key) return x->key > y->key ? -1 : 1;
    return x->index - y->index;
}

int cs_channel_order(const cs_summary *s, int c, cs_channel_key key, int *order)
{
    for (int ch = 0; ch < c; ch++) order[ch] = ch;
    if (key == CS_ORDER_INDEX || c < 2) return 0;
    ranked *r = malloc((size_t)c * sizeof *r);
    if (!r) return -1;
    for (int ch = 0; ch < c; ch++) r[ch] = (ranked){key == CS_ORDER_MEAN ? s[ch].mean : s[ch].max, ch, s[ch].n > 0};
    qsort(r, (size_t)c, sizeof *r, by_key_desc);
    for (int ch = 0; ch < c; ch++) order[ch] = r[ch].index;
    free(r);
    return 0;
}

int cs_histogram(const float *x, size_t n, int bins, double lo, double hi, uint64_t *counts, double *edges)
{
    if (bins < 1 || !isfinite(lo) || !isfinite(hi) || lo > hi) return -1;
    if (lo == hi) lo -= 0.5, hi += 0.5;
    const double width = hi - lo;
    /* The edges a value is compared with; the division only guesses the bin, the
     * comparison with these settles it (as numpy does), so counts and edges agree. */
#define EDGE(i) ((i) == bins ? hi : lo + width * (double)(i) / (double)bins)
    memset(counts, 0, (size_t)bins * sizeof *counts);
    for (size_t i = 0; i < n; i++) {
        double v = x[i];
        if (!isfinite(v) || v < lo || v > hi) continue;
        long b = (long)((v - lo) / width * bins);
        if (b >= bins) b = bins - 1;
        if (b < 0) b = 0;
        if (v < EDGE(b)) b--;
        else if (b < bins - 1 && v >= EDGE(b + 1)) b++;
        counts[b]++;
    }
    if (edges)
        for (int i = 0; i <= bins; i++) edges[i] = EDGE(i);
#undef EDGE
    return 0;
}
