/*
 * stats.h - summaries of float blocks: the statistics of an activation's channels, an
 * order of channels by how strongly they respond, and histograms of weights.
 *
 * Non-finite values (a diverged model's NaN or infinity) are counted apart and left
 * out of every other figure, so one NaN does not hide what the rest of a block holds.
 * Functions only read their inputs; all are safe to call from many threads at once.
 */
#ifndef CS_STATS_H
#define CS_STATS_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    float min, max;   /* over the finite values; 0 when there are none */
    double mean, std; /* mean and population standard deviation of the finite values */
    size_t n;         /* finite values */
    size_t nonfinite; /* NaN and infinities, left out of the figures above */
} cs_summary;

/* The summary of n floats. */
void cs_summarise(const float *x, size_t n, cs_summary *out);

/* One summary per channel of an NHWC block of one image: x is hw positions of c
 * channels (x[pos * c + ch]); out has c entries. */
void cs_channel_stats(const float *x, size_t hw, int c, cs_summary *out);

typedef enum {
    CS_ORDER_INDEX, /* 0, 1, 2, ... */
    CS_ORDER_MEAN,  /* the largest mean first */
    CS_ORDER_MAX,   /* the largest maximum first */
} cs_channel_key;

/* The channels' numbers in the order `key` gives (ties keep their index order;
 * channels without a finite value come last): order has c entries. 0, or -1 when out
 * of memory (order is then 0, 1, 2, ...). */
int cs_channel_order(const cs_summary *s, int c, cs_channel_key key, int *order);

/*
 * numpy.histogram of the finite values among n floats with `bins` equal bins over
 * [lo, hi] (each bin half-open [edge i, edge i + 1) but the last, which holds hi too);
 * values outside are not counted. When lo == hi the range is [lo - 0.5, hi + 0.5],
 * as numpy does. edges (bins + 1 entries, may be NULL) receives the bin edges a value
 * was compared with: a value counted in bin i is >= edges[i] and < edges[i + 1] (or
 * == edges[bins] for the last). 0, or -1 when bins < 1 or lo > hi or either is not
 * finite (nothing written).
 */
int cs_histogram(const float *x, size_t n, int bins, double lo, double hi, uint64_t *counts, double *edges);

#endif
