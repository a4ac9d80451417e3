/*
 * batchnorm.c - batch normalisation over the channel axis, as Keras 2 does it.
 *
 * Training normalises with the batch's mean and biased variance; the moving
 * variance is updated with the unbiased one (n / (n - 1)), as Keras' TensorFlow
 * backend does. Sums are taken in float over short blocks of rows (so they
 * vectorise) and added up in double: a channel of a 128-image batch of conv1 has
 * 86,528 values, enough for a float sum to drift. Rows are spread over the workers,
 * each with its own partial sums.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "layers.h"
#include "simd.h"

#define BN_BLOCK 64

typedef struct {
    size_t rows;
    int c;
    const float *x, *dy, *gamma, *beta, *a, *b, *m1, *m2;
    float *y, *dx;
    const float *mean;
    double *sums; /* [parts][2c] */
    cs_bn_stats *stats;
} bn_job;

static void stats_merge(int c, double *count, double *mean, double *m2, double nb, const double *mb,
                        const double *qb);

/* Running per-channel statistics of rows seen so far: count, mean, and M2 (sum of
 * squared deviations). Each block of BN_BLOCK rows (small enough to stay in L1) gets
 * its own mean and M2 in float, and blocks are merged in double with Chan et al.'s
 * pairwise update, which stays exact where E[x^2] - E[x]^2 would cancel. */
CS_CLONES static void stats_add(const float *x, size_t rows, int c, double *count, double *mean, double *m2)
{
    float bm[c], bq[c];
    double bmd[c], bqd[c];
    for (size_t r0 = 0; r0 < rows; r0 += BN_BLOCK) {
        size_t r1 = r0 + BN_BLOCK < rows ? r0 + BN_BLOCK : rows;
        const float inv = 1.0f / (float)(r1 - r0);
        memset(bm, 0, sizeof bm);
        memset(bq, 0, sizeof bq);
        for (size_t r = r0; r < r1; r++)
            for (int k = 0; k < c; k++) bm[k] += x[r * c + k];
        for (int k = 0; k < c; k++) bm[k] *= inv;
        for (size_t r = r0; r < r1; r++)
            for (int k = 0; k < c; k++) {
                float d = x[r * c + k] - bm[k];
                bq[k] += d * d;
            }
        for (int k = 0; k < c; k++) bmd[k] = bm[k], bqd[k] = bq[k];
        stats_merge(c, count, mean, m2, (double)(r1 - r0), bmd, bqd);
    }
}

static void stats_merge(int c, double *count, double *mean, double *m2, double nb, const double *mb,
                        const double *qb)
{
    if (nb == 0) return;
    const double n = *count, tot = n + nb;
    for (int k = 0; k < c; k++) {
        double delta = mb[k] - mean[k];
        mean[k] += delta * nb / tot;
        m2[k] += qb[k] + delta * delta * n * nb / tot;
    }
    *count = tot;
}

static void stats_finish(int c, double count, const double *mean, const double *m2, float eps, float *mean_out,
                        float *inv_std, float *moving_mean, float *moving_var, float momentum)
{
    for (int k = 0; k < c; k++) {
        mean_out[k] = (float)mean[k];
        double var = m2[k] / count;
        inv_std[k] = (float)(1.0 / sqrt(var + eps));
        if (moving_mean) {
            double unbiased = count > 1 ? var * count / (count - 1) : var;
            moving_mean[k] = moving_mean[k] * momentum + mean_out[k] * (1 - momentum);
            moving_var[k] = (float)(moving_var[k] * momentum + unbiased * (1 - momentum));
        }
    }
}

/* sums[0..c) += dy, sums[c..2c) += dy * xhat, with xhat recomputed from the input
 * (cheaper than keeping a copy of it: the input is kept anyway) */
CS_CLONES static void grad_stats_range(void *ctx, long begin, long end, int worker)
{
    bn_job *j = ctx;
    const int c = j->c;
    double *s1 = j->sums + (size_t)worker * 2 * c, *s2 = s1 + c;
    float p1[c], p2[c];
    for (size_t r0 = (size_t)begin; r0 < (size_t)end; r0 += BN_BLOCK) {
        size_t r1 = r0 + BN_BLOCK < (size_t)end ? r0 + BN_BLOCK : (size_t)end;
        memset(p1, 0, sizeof p1);
        memset(p2, 0, sizeof p2);
        for (size_t r = r0; r < r1; r++)
            for (int k = 0; k < c; k++) {
                float h = (j->x[r * c + k] - j->mean[k]) * j->a[k];
                p1[k] += j->dy[r * c + k];
                p2[k] += j->dy[r * c + k] * h;
            }
        for (int k = 0; k < c; k++) s1[k] += p1[k], s2[k] += p2[k];
    }
}

void cs_bn_grad_consts(int c, size_t rows, double *sums, int parts, const float *gamma, const float *inv_std,
                       float *dgamma, float *dbeta, float *scale, float *mean_dy, float *mean_dyx)
{
    for (int p = 1; p < parts; p++)
        for (int k = 0; k < 2 * c; k++) sums[k] += sums[(size_t)p * 2 * c + k];
    if (dgamma)
        for (int k = 0; k < c; k++) {
            dgamma[k] += (float)sums[c + k];
            dbeta[k] += (float)sums[k];
        }
    /* dx = gamma * inv_std / N * (N dy - sum(dy) - xhat * sum(dy * xhat)) */
    for (int k = 0; k < c; k++) {
        scale[k] = gamma[k] * inv_std[k];
        mean_dy[k] = (float)(sums[k] / rows);
        mean_dyx[k] = (float)(sums[c + k] / rows);
    }
}

CS_CLONES static void normalise_range(void *ctx, long begin, long end, int worker)
{
    (void)worker;
    bn_job *j = ctx;
    const int c = j->c;
    for (size_t r = (size_t)begin; r < (size_t)end; r++)
        for (int k = 0; k < c; k++) {
            float h = (j->x[r * c + k] - j->mean[k]) * j->a[k];
            j->y[r * c + k] = j->gamma[k] * h + j->beta[k];
        }
}

void cs_bn_stats_init(cs_bn_stats *st, int c, double *sums)
{
    memset(st, 0, sizeof *st);
    st->c = c;
    st->sums = sums;
    memset(sums, 0, CS_BN_SUMS(c) * sizeof(double));
}

void cs_bn_stats_add_rows(cs_bn_stats *st, int worker, const float *x, size_t rows)
{
    double *mean = st->sums + (size_t)worker * 2 * st->c;
    stats_add(x, rows, st->c, &st->rows[worker], mean, mean + st->c);
}

void cs_bn_stats_finish(cs_bn_stats *st, float eps, float *mean, float *inv_std, float *moving_mean, float *moving_var,
                        float momentum)
{
    const int c = st->c;
    double *sums = st->sums, n = st->rows[0];
    for (int p = 1; p < CS_MAX_WORKERS; p++) {
        const double *ps = sums + (size_t)p * 2 * c;
        stats_merge(c, &n, sums, sums + c, st->rows[p], ps, ps + c);
    }
    stats_finish(c, n, sums, sums + c, eps, mean, inv_std, moving_mean, moving_var, momentum);
}

static void stats_range(void *ctx, long begin, long end, int worker)
{
    bn_job *j = ctx;
    cs_bn_stats_add_rows(j->stats, worker, j->x + (size_t)begin * j->c, (size_t)(end - begin));
}

void cs_bn_batch_stats(size_t rows, int c, const float *x, float eps, float *mean, float *inv_std,
                       float *moving_mean, float *moving_var, float momentum, double *sums)
{
    cs_bn_stats st;
    cs_bn_stats_init(&st, c, sums);
    bn_job j = {.rows = rows, .c = c, .x = x, .stats = &st};
    cs_parallel_run((long)rows, cs_parallel_grain(c, BN_BLOCK), 0, stats_range, &j);
    cs_bn_stats_finish(&st, eps, mean, inv_std, moving_mean, moving_var, momentum);
}

void cs_bn_forward_train(size_t rows, int c, const float *x, const float *gamma, const float *beta, float eps,
                         float *y, float *mean, float *inv_std, float *moving_mean, float *moving_var, float momentum, double *sums)
{
    cs_bn_batch_stats(rows, c, x, eps, mean, inv_std, moving_mean, moving_var, momentum, sums);
    bn_job j = {.rows = rows, .c = c, .x = x, .gamma = gamma, .beta = beta, .y = y, .mean = mean, .a = inv_std};
    cs_parallel_run((long)rows, cs_parallel_grain(c, BN_BLOCK), 0, normalise_range, &j);
}

CS_CLONES static void affine_range(void *ctx, long begin, long end, int worker)
{
    (void)worker;
    bn_job *j = ctx;
    const int c = j->c;
    for (size_t r = (size_t)begin; r < (size_t)end; r++)
        for (int k = 0; k < c; k++) j->y[r * c + k] = j->x[r * c + k] * j->a[k] + j->m1[k];
}

void cs_bn_forward_infer(size_t rows, int c, const float *x, const float *gamma, const float *beta,
                         const float *moving_mean, const float *moving_var, float eps, float *y)
{
    /* Folded into one scale and shift per channel. */
    float scale[c], shift[c];
    for (int k = 0; k < c; k++) {
        scale[k] = gamma[k] / sqrtf(moving_var[k] + eps);
        shift[k] = beta[k] - moving_mean[k] * scale[k];
    }
    bn_job j = {.c = c, .x = x, .y = y, .a = scale, .m1 = shift};
    cs_parallel_run((long)rows, cs_parallel_grain(c, BN_BLOCK), 0, affine_range, &j);
}

CS_CLONES static void input_grad_range(void *ctx, long begin, long end, int worker)
{
    (void)worker;
    bn_job *j = ctx;
    const int c = j->c;
    for (size_t r = (size_t)begin; r < (size_t)end; r++)
        for (int k = 0; k < c; k++) {
            float h = (j->x[r * c + k] - j->mean[k]) * j->b[k];
            j->dx[r * c + k] = j->a[k] * (j->dy[r * c + k] - j->m1[k] - h * j->m2[k]);
        }
}

void cs_bn_backward_train(size_t rows, int c, const float *x, const float *dy, const float *gamma, const float *mean,
                          const float *inv_std, float *dx, float *dgamma, float *dbeta, double *sums)
{
    const int parts = cs_parallel_threads();
    memset(sums, 0, (size_t)parts * 2 * c * sizeof(double));
    bn_job j = {.rows = rows, .c = c, .x = x, .dy = dy, .mean = mean, .a = inv_std, .dx = dx, .sums = sums};
    cs_parallel_run((long)rows, cs_parallel_grain(c, BN_BLOCK), parts, grad_stats_range, &j);
    float a[c], mdy[c], mdyx[c];
    cs_bn_grad_consts(c, rows, sums, parts, gamma, inv_std, dgamma, dbeta, a, mdy, mdyx);
    j.a = a, j.m1 = mdy, j.m2 = mdyx, j.b = inv_std;
    cs_parallel_run((long)rows, cs_parallel_grain(c, BN_BLOCK), parts, input_grad_range, &j);
}

void cs_bn_backward_infer(size_t rows, int c, const float *x, const float *dy, const float *gamma,
                          const float *moving_mean, const float *moving_var, float eps, float *dx, float *dgamma,
                          float *dbeta)
{
    float inv[c];
    for (int k = 0; k < c; k++) inv[k] = 1.0f / sqrtf(moving_var[k] + eps);
    for (size_t r = 0; r < rows; r++)
        for (int k = 0; k < c; k++) {
            float d = dy[r * c + k];
            if (dx) dx[r * c + k] = d * gamma[k] * inv[k];
            if (dgamma) {
                dgamma[k] += d * (x[r * c + k] - moving_mean[k]) * inv[k];
                dbeta[k] += d;
            }
        }
}
