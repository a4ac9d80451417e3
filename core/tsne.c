/*
 * tsne.c - t-SNE (van der Maaten and Hinton 2008) with the Barnes-Hut approximation
 * of the repulsive forces (van der Maaten 2014, "Accelerating t-SNE using tree-based
 * algorithms"): affinities from the nearest neighbours at a chosen perplexity, then
 * gradient descent with momentum, gains and early exaggeration, as bhtsne does.
 *
 * Debian ships no C library for it (only R's Rtsne wraps bhtsne), hence this file; its
 * gradient is checked against the exact one in tests/core/test_embed.c.
 *
 * Distances are squared Euclidean in the input space (as scikit-learn's); inputs of
 * more than 50 values are first reduced to their 50 principal components. With theta
 * 0 every pair is summed directly (exact t-SNE).
 */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "embed.h"
#include "rng.h"

#define PCA_FIRST 50
#define MAX_DIMS 3
#define MAX_DEPTH 40

void cs_tsne_config_default(cs_tsne_config *c)
{
    memset(c, 0, sizeof *c);
    c->dims = 2;
    c->perplexity = 30;
    c->theta = 0.5;
    c->iterations = 1000;
    c->exaggeration_iters = 250;
    c->seed = 1;
}

void cs_tsne_p_free(cs_tsne_p *p)
{
    free(p->row);
    free(p->col);
    free(p->p);
    memset(p, 0, sizeof *p);
}

/* ---- affinities ---- */

/* Keeps the k smallest distances seen (a max-heap on dist). */
static void heap_push(double *dist, int *idx, int *size, int k, double d, int j)
{
    if (*size < k) {
        int c = (*size)++;
        while (c > 0 && dist[(c - 1) / 2] < d) {
            dist[c] = dist[(c - 1) / 2];
            idx[c] = idx[(c - 1) / 2];
            c = (c - 1) / 2;
        }
        dist[c] = d;
        idx[c] = j;
        return;
    }
    if (d >= dist[0]) return;
    int c = 0;
    for (;;) {
        int l = 2 * c + 1, r = l + 1, big = c;
        double bd = d;
        if (l < k && dist[l] > bd) big = l, bd = dist[l];
        if (r < k && dist[r] > bd) big = r;
        if (big == c) break;
        dist[c] = dist[big];
        idx[c] = idx[big];
        c = big;
    }
    dist[c] = d;
    idx[c] = j;
}

/* p_j|i over the k neighbours of a point, at the precision whose perplexity is
 * `perplexity` (binary search on beta, as bhtsne). */
static void conditional(const double *dist, int k, double perplexity, double *p)
{
    double beta = 1, lo = -DBL_MAX, hi = DBL_MAX, target = log(perplexity), dmin = DBL_MAX;
    for (int j = 0; j < k; j++)
        if (dist[j] < dmin) dmin = dist[j];
    for (int it = 0; it < 200; it++) {
        double sum = 0, h = 0;
        for (int j = 0; j < k; j++) {
            p[j] = exp(-beta * (dist[j] - dmin));
            sum += p[j];
        }
        for (int j = 0; j < k; j++) h += beta * (dist[j] - dmin) * p[j];
        h = h / sum + log(sum);
        if (fabs(h - target) < 1e-5) break;
        if (h > target) {
            lo = beta;
            beta = hi == DBL_MAX ? beta * 2 : (beta + hi) / 2;
        } else {
            hi = beta;
            beta = lo == -DBL_MAX ? beta / 2 : (beta + lo) / 2;
        }
    }
    double sum = 0;
    for (int j = 0; j < k; j++) sum += p[j];
    for (int j = 0; j < k; j++) p[j] /= sum;
}

typedef struct {
    int i, j;
    double v;
} triple;

static int by_row_col(const void *a, const void *b)
{
    const triple *x = a, *y = b;
    return x->i != y->i ? (x->i < y->i ? -1 : 1) : x->j != y->j ? (x->j < y->j ? -1 : 1) : 0;
}

int cs_tsne_affinities(const float *x, int n, int d, double perplexity, int neighbours, cs_tsne_p *out, char *err,
                       size_t errlen)
{
    memset(out, 0, sizeof *out);
    int k = neighbours > 0 ? neighbours : (int)(3 * perplexity);
    if (k > n - 1) k = n - 1;
    if (n < 2 || k < 1 || !(perplexity > 0) || perplexity > k) {
        snprintf(err, errlen, "t-SNE of %d points at perplexity %g needs more points than the perplexity (and 2 or more)",
                 n, perplexity);
        return -1;
    }
    double *dist = malloc((size_t)k * sizeof *dist), *p = malloc((size_t)k * sizeof *p);
    int *idx = malloc((size_t)k * sizeof *idx);
    triple *t = malloc((size_t)n * k * 2 * sizeof *t);
    if (!dist || !p || !idx || !t) goto nomem;
    size_t nt = 0;
    for (int i = 0; i < n; i++) {
        int size = 0;
        const float *xi = x + (size_t)i * d;
        for (int j = 0; j < n; j++) {
            if (j == i) continue;
            const float *xj = x + (size_t)j * d;
            float s = 0;
            for (int c = 0; c < d; c++) s += (xi[c] - xj[c]) * (xi[c] - xj[c]);
            heap_push(dist, idx, &size, k, s, j);
        }
        conditional(dist, k, perplexity, p);
        for (int a = 0; a < k; a++) {
            double v = p[a] / (2.0 * n);
            t[nt++] = (triple){i, idx[a], v};
            t[nt++] = (triple){idx[a], i, v};
        }
    }
    qsort(t, nt, sizeof *t, by_row_col);
    out->n = n;
    out->row = calloc((size_t)n + 1, sizeof *out->row);
    out->col = malloc(nt * sizeof *out->col);
    out->p = malloc(nt * sizeof *out->p);
    if (!out->row || !out->col || !out->p) goto nomem;
    size_t m = 0;
    for (size_t a = 0; a < nt; a++) {
        if (m && out->col[m - 1] == t[a].j && a > 0 && t[a - 1].i == t[a].i) {
            out->p[m - 1] += t[a].v; /* j was a neighbour of i and i of j */
            continue;
        }
        out->col[m] = t[a].j;
        out->p[m] = t[a].v;
        out->row[t[a].i + 1]++;
        m++;
    }
    for (int i = 0; i < n; i++) out->row[i + 1] += out->row[i];
    free(dist);
    free(p);
    free(idx);
    free(t);
    return 0;
nomem:
    free(dist);
    free(p);
    free(idx);
    free(t);
    cs_tsne_p_free(out);
    snprintf(err, errlen, "out of memory (t-SNE of %d points, %d neighbours each)", n, k);
    return -1;
}

/* ---- the tree ---- */

typedef struct {
    double com[MAX_DIMS], center[MAX_DIMS];
    double half;  /* half the cell's width */
    int count;    /* points inside */
    int child;    /* first of 2^dims children, or -1 for a leaf */
    int point;    /* a leaf's point, or -1 when empty */
} cell;

typedef struct {
    cell *c;
    int n, cap, dims;
} tree;

static int new_cell(tree *t, const double *center, double half)
{
    if (t->n == t->cap) {
        int cap = t->cap ? 2 * t->cap : 1024;
        cell *c = realloc(t->c, (size_t)cap * sizeof *c);
        if (!c) return -1;
        t->c = c;
        t->cap = cap;
    }
    cell *c = &t->c[t->n];
    memset(c, 0, sizeof *c);
    memcpy(c->center, center, sizeof(double) * (size_t)t->dims);
    c->half = half;
    c->child = -1;
    c->point = -1;
    return t->n++;
}

static int which_child(const cell *c, const double *y, int dims)
{
    int q = 0;
    for (int k = 0; k < dims; k++) q |= (y[k] > c->center[k]) << k;
    return q;
}

static int split(tree *t, int ci)
{
    const int kids = 1 << t->dims;
    int first = -1;
    for (int q = 0; q < kids; q++) {
        double center[MAX_DIMS];
        const double h = t->c[ci].half / 2;
        for (int k = 0; k < t->dims; k++) center[k] = t->c[ci].center[k] + ((q >> k) & 1 ? h : -h);
        int id = new_cell(t, center, h);
        if (id < 0) return -1;
        if (q == 0) first = id;
    }
    t->c[ci].child = first;
    return 0;
}

static int insert(tree *t, const double *y, int i, int depth_cap)
{
    int ci = 0, depth = 0;
    const int dims = t->dims;
    const double *yi = y + (size_t)i * dims;
    for (;;) {
        cell *c = &t->c[ci];
        for (int k = 0; k < dims; k++) c->com[k] = (c->com[k] * c->count + yi[k]) / (c->count + 1);
        c->count++;
        if (c->child < 0) {
            if (c->count == 1) {
                c->point = i;
                return 0;
            }
            if (depth >= depth_cap) return 0; /* (nearly) coincident points share the leaf */
            int old = c->point;
            if (split(t, ci) != 0) return -1;
            c = &t->c[ci];
            c->point = -1;
            if (old >= 0) { /* the point that was here goes one level down */
                const double *yo = y + (size_t)old * dims;
                int q = c->child + which_child(c, yo, dims);
                cell *k = &t->c[q];
                memcpy(k->com, yo, sizeof(double) * (size_t)dims);
                k->count = 1;
                k->point = old;
            }
        }
        ci = t->c[ci].child + which_child(&t->c[ci], yi, dims);
        depth++;
    }
}

/* Repulsion on point i: sums q (into *z) and q^2 (y_i - y_j) (into f). */
static void repulse(const tree *t, int ci, const double *yi, int i, double theta2, int dims, double *z, double *f)
{
    const cell *c = &t->c[ci];
    if (c->count == 0 || (c->child < 0 && c->point == i && c->count == 1)) return;
    double diff[MAX_DIMS], d2 = 0;
    for (int k = 0; k < dims; k++) {
        diff[k] = yi[k] - c->com[k];
        d2 += diff[k] * diff[k];
    }
    const double w = 2 * c->half;
    if (c->child < 0 || w * w < theta2 * d2) {
        int cnt = c->count - (c->child < 0 && c->point == i); /* a shared leaf holding i */
        double q = 1 / (1 + d2);
        *z += cnt * q;
        for (int k = 0; k < dims; k++) f[k] += cnt * q * q * diff[k];
        return;
    }
    for (int q = 0; q < (1 << dims); q++) repulse(t, c->child + q, yi, i, theta2, dims, z, f);
}

/* ---- gradient and cost ---- */

double cs_tsne_kl(const cs_tsne_p *p, const double *y, int dims)
{
    const int n = p->n;
    double z = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            if (i == j) continue;
            double d2 = 0;
            for (int k = 0; k < dims; k++) d2 += (y[i * dims + k] - y[j * dims + k]) * (y[i * dims + k] - y[j * dims + k]);
            z += 1 / (1 + d2);
        }
    double kl = 0;
    for (int i = 0; i < n; i++)
        for (int a = p->row[i]; a < p->row[i + 1]; a++) {
            int j = p->col[a];
            double d2 = 0;
            for (int k = 0; k < dims; k++) d2 += (y[i * dims + k] - y[j * dims + k]) * (y[i * dims + k] - y[j * dims + k]);
            double q = 1 / (1 + d2) / z;
            if (p->p[a] > 0) kl += p->p[a] * log(p->p[a] / (q > DBL_MIN ? q : DBL_MIN));
        }
    return kl;
}

double cs_tsne_gradient(const cs_tsne_p *p, const double *y, int dims, double theta, double exaggeration,
                        double *grad)
{
    const int n = p->n;
    double z = 0;
    double *rep = calloc((size_t)n * dims, sizeof *rep);
    tree t = {.dims = dims};
    if (!rep) return NAN;
    if (theta > 0) {
        double lo[MAX_DIMS], hi[MAX_DIMS], center[MAX_DIMS] = {0}, half = 0;
        for (int k = 0; k < dims; k++) lo[k] = DBL_MAX, hi[k] = -DBL_MAX;
        for (int i = 0; i < n; i++)
            for (int k = 0; k < dims; k++) {
                double v = y[(size_t)i * dims + k];
                if (v < lo[k]) lo[k] = v;
                if (v > hi[k]) hi[k] = v;
            }
        for (int k = 0; k < dims; k++) {
            center[k] = (lo[k] + hi[k]) / 2;
            if ((hi[k] - lo[k]) / 2 > half) half = (hi[k] - lo[k]) / 2;
        }
        half = half * (1 + 1e-9) + 1e-12;
        int ok = new_cell(&t, center, half) == 0;
        for (int i = 0; i < n && ok; i++) ok = insert(&t, y, i, MAX_DEPTH) == 0;
        if (!ok) {
            free(t.c);
            free(rep);
            return NAN;
        }
        for (int i = 0; i < n; i++) repulse(&t, 0, y + (size_t)i * dims, i, theta * theta, dims, &z, rep + (size_t)i * dims);
        free(t.c);
    } else {
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) {
                if (i == j) continue;
                double diff[MAX_DIMS], d2 = 0;
                for (int k = 0; k < dims; k++) {
                    diff[k] = y[(size_t)i * dims + k] - y[(size_t)j * dims + k];
                    d2 += diff[k] * diff[k];
                }
                double q = 1 / (1 + d2);
                z += q;
                for (int k = 0; k < dims; k++) rep[(size_t)i * dims + k] += q * q * diff[k];
            }
    }
    double kl = 0;
    for (int i = 0; i < n; i++) {
        double att[MAX_DIMS] = {0};
        for (int a = p->row[i]; a < p->row[i + 1]; a++) {
            int j = p->col[a];
            double diff[MAX_DIMS], d2 = 0;
            for (int k = 0; k < dims; k++) {
                diff[k] = y[(size_t)i * dims + k] - y[(size_t)j * dims + k];
                d2 += diff[k] * diff[k];
            }
            double q = 1 / (1 + d2);
            for (int k = 0; k < dims; k++) att[k] += exaggeration * p->p[a] * q * diff[k];
            if (p->p[a] > 0) kl += p->p[a] * log(p->p[a] * z / q);
        }
        for (int k = 0; k < dims; k++) grad[(size_t)i * dims + k] = 4 * (att[k] - rep[(size_t)i * dims + k] / z);
    }
    free(rep);
    return kl;
}

/* ---- the descent ---- */

int cs_tsne(const float *x, int n, int d, const cs_tsne_config *c, cs_embed_progress_fn progress, void *user, float *y,
            char *err, size_t errlen)
{
    const int dims = c->dims;
    if (dims < 2 || dims > 3 || c->iterations < 1) {
        snprintf(err, errlen, "t-SNE lays points out in 2 or 3 dimensions, with 1 iteration or more");
        return -1;
    }
    float *reduced = NULL;
    if (d > PCA_FIRST && n > PCA_FIRST) {
        if (!(reduced = malloc((size_t)n * PCA_FIRST * sizeof *reduced))) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        if (cs_pca(x, n, d, PCA_FIRST, reduced, NULL, err, errlen) != 0) {
            free(reduced);
            return -1;
        }
        x = reduced;
        d = PCA_FIRST;
    }
    cs_tsne_p p;
    int rc = cs_tsne_affinities(x, n, d, c->perplexity, c->neighbours, &p, err, errlen);
    free(reduced);
    if (rc != 0) return -1;
    const size_t len = (size_t)n * dims;
    double *yy = malloc(len * sizeof *yy), *g = malloc(len * sizeof *g), *up = calloc(len, sizeof *up),
           *gain = malloc(len * sizeof *gain);
    rc = -1;
    if (!yy || !g || !up || !gain) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    cs_rng r;
    cs_rng_seed(&r, c->seed);
    for (size_t a = 0; a < len; a++) {
        yy[a] = 1e-4 * cs_rng_normal(&r);
        gain[a] = 1;
    }
    const double exag = 12;
    const double lr = c->learning_rate > 0 ? c->learning_rate : (n / exag / 4 > 50 ? n / exag / 4 : 50);
    for (int it = 0; it < c->iterations; it++) {
        const int early = it < c->exaggeration_iters;
        if (isnan(cs_tsne_gradient(&p, yy, dims, c->theta, early ? exag : 1, g))) {
            snprintf(err, errlen, "out of memory");
            goto done;
        }
        const double momentum = early ? 0.5 : 0.8;
        for (size_t a = 0; a < len; a++) {
            gain[a] = (g[a] > 0) != (up[a] > 0) ? gain[a] + 0.2 : gain[a] * 0.8;
            if (gain[a] < 0.01) gain[a] = 0.01;
            up[a] = momentum * up[a] - lr * gain[a] * g[a];
            yy[a] += up[a];
        }
        for (int k = 0; k < dims; k++) { /* keep the layout centred */
            double mean = 0;
            for (int i = 0; i < n; i++) mean += yy[(size_t)i * dims + k];
            mean /= n;
            for (int i = 0; i < n; i++) yy[(size_t)i * dims + k] -= mean;
        }
        if (progress && (it % 10 == 9 || it == c->iterations - 1) && progress(user, it + 1, c->iterations)) {
            rc = 1;
            goto done;
        }
    }
    for (size_t a = 0; a < len; a++) y[a] = (float)yy[a];
    rc = 0;
done:
    cs_tsne_p_free(&p);
    free(yy);
    free(g);
    free(up);
    free(gain);
    return rc;
}
