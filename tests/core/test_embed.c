/*
 * test_embed.c - PCA against power iteration in double precision on a covariance
 * computed here; t-SNE's affinities (symmetric, summing to 1, each point's perplexity
 * as asked), its gradient against the exact formula written out here (theta 0: to
 * 1e-9; Barnes-Hut at theta 0.5: within 2 % in L2), and a whole Barnes-Hut run against
 * an exact one on 300 points: the final KL divergence within 5 % of the exact run's,
 * and clusters kept apart; the bundled model's activations of dense_1.
 */
#include "embed.h"
#include "model_file.h"
#include "rng.h"
#include "test.h"

/* Three clusters in 10-D, 100 points each. */
static float *clusters(int n, int d, uint64_t seed, int *label)
{
    float *x = malloc((size_t)n * d * sizeof *x);
    cs_rng r;
    cs_rng_seed(&r, seed);
    for (int i = 0; i < n; i++) {
        label[i] = i % 3;
        for (int c = 0; c < d; c++) x[i * d + c] = (float)(cs_rng_normal(&r) + (c == label[i] ? 8 : 0));
    }
    return x;
}

static void test_pca_against_power_iteration(void)
{
    const int n = 500, d = 6;
    float *x = malloc(n * d * sizeof *x), *y = malloc(n * 2 * sizeof *y);
    cs_rng r;
    cs_rng_seed(&r, 5);
    for (int i = 0; i < n; i++) {
        double a = 3 * cs_rng_normal(&r), b = 1.5 * cs_rng_normal(&r);
        for (int c = 0; c < d; c++) x[i * d + c] = (float)(a * (c + 1) / 9.5 + b * (c % 2 ? 1 : -1) / 2.45 + 0.1 * cs_rng_normal(&r));
    }
    double var[2];
    char err[200];
    CHECK(cs_pca(x, n, d, 2, y, var, err, sizeof err) == 0, "pca: %s", err);
    /* The reference: covariance and power iteration in double. */
    double mean[6] = {0}, cov[36] = {0}, v[6] = {1, 1, 1, 1, 1, 1};
    for (int i = 0; i < n; i++)
        for (int c = 0; c < d; c++) mean[c] += x[i * d + c] / (double)n;
    for (int i = 0; i < n; i++)
        for (int a = 0; a < d; a++)
            for (int b = 0; b < d; b++) cov[a * d + b] += (x[i * d + a] - mean[a]) * (x[i * d + b] - mean[b]) / (n - 1);
    double lambda = 0;
    for (int it = 0; it < 500; it++) {
        double w[6] = {0}, norm = 0;
        for (int a = 0; a < d; a++)
            for (int b = 0; b < d; b++) w[a] += cov[a * d + b] * v[b];
        for (int a = 0; a < d; a++) norm += w[a] * w[a];
        norm = sqrt(norm);
        lambda = norm;
        for (int a = 0; a < d; a++) v[a] = w[a] / norm;
    }
    CHECK_NEAR(var[0], lambda, 1e-6 * lambda, "first variance");
    CHECK(var[1] < var[0] && var[1] > 0, "second variance %g", var[1]);
    int big = 0;
    for (int a = 1; a < d; a++)
        if (fabs(v[a]) > fabs(v[big])) big = a;
    double sign = v[big] > 0 ? 1 : -1, worst = 0;
    for (int i = 0; i < n; i++) {
        double s = 0;
        for (int a = 0; a < d; a++) s += (x[i * d + a] - mean[a]) * v[a] * sign;
        if (fabs(s - y[i * 2]) > worst) worst = fabs(s - y[i * 2]);
    }
    CHECK(worst < 1e-4, "projections on the first component agree: %g", worst);
    CHECK(cs_pca(x, 1, d, 2, y, var, err, sizeof err) == -1, "one point is refused");
    free(x);
    free(y);
}

/* dC/dy_i = 4 sum_j (p_ij - q_ij) (y_i - y_j) / (1 + |y_i - y_j|^2), with P dense. */
static void exact_gradient(const cs_tsne_p *p, const double *y, int n, double *g)
{
    double *P = calloc((size_t)n * n, sizeof *P), z = 0;
    for (int i = 0; i < n; i++)
        for (int a = p->row[i]; a < p->row[i + 1]; a++) P[i * n + p->col[a]] = p->p[a];
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            if (i != j) z += 1 / (1 + (y[2 * i] - y[2 * j]) * (y[2 * i] - y[2 * j]) + (y[2 * i + 1] - y[2 * j + 1]) * (y[2 * i + 1] - y[2 * j + 1]));
    for (int i = 0; i < n; i++) {
        g[2 * i] = g[2 * i + 1] = 0;
        for (int j = 0; j < n; j++) {
            if (i == j) continue;
            double dx = y[2 * i] - y[2 * j], dy = y[2 * i + 1] - y[2 * j + 1], w = 1 / (1 + dx * dx + dy * dy);
            g[2 * i] += 4 * (P[i * n + j] - w / z) * dx * w;
            g[2 * i + 1] += 4 * (P[i * n + j] - w / z) * dy * w;
        }
    }
    free(P);
}

static void test_affinities_and_gradient(void)
{
    const int n = 300, d = 10;
    int label[300];
    float *x = clusters(n, d, 7, label);
    cs_tsne_p p;
    char err[200];
    CHECK(cs_tsne_affinities(x, n, d, 20, 0, &p, err, sizeof err) == 0, "%s", err);
    double total = 0, asym = 0;
    for (int i = 0; i < n; i++)
        for (int a = p.row[i]; a < p.row[i + 1]; a++) {
            total += p.p[a];
            int j = p.col[a];
            double back = -1;
            for (int b = p.row[j]; b < p.row[j + 1]; b++)
                if (p.col[b] == i) back = p.p[b];
            asym += fabs(back - p.p[a]);
        }
    CHECK_NEAR(total, 1, 1e-9, "P sums to 1");
    CHECK(asym < 1e-15, "P is symmetric (%g)", asym);
    cs_tsne_p_free(&p);

    /* Every neighbour: P exact, for the gradient check. */
    CHECK(cs_tsne_affinities(x, n, d, 20, n - 1, &p, err, sizeof err) == 0, "%s", err);
    double *y = malloc(n * 2 * sizeof *y), *g = malloc(n * 2 * sizeof *g), *ge = malloc(n * 2 * sizeof *ge);
    cs_rng r;
    cs_rng_seed(&r, 9);
    for (int i = 0; i < 2 * n; i++) y[i] = 3 * cs_rng_normal(&r) + (i % 2 ? label[i / 2] * 4 : 0);
    exact_gradient(&p, y, n, ge);
    double norm = 0, diff0 = 0, diff5 = 0;
    cs_tsne_gradient(&p, y, 2, 0, 1, g);
    for (int i = 0; i < 2 * n; i++) norm += ge[i] * ge[i], diff0 += (g[i] - ge[i]) * (g[i] - ge[i]);
    double kl_bh = cs_tsne_gradient(&p, y, 2, 0.5, 1, g);
    for (int i = 0; i < 2 * n; i++) diff5 += (g[i] - ge[i]) * (g[i] - ge[i]);
    CHECK(sqrt(diff0 / norm) < 1e-9, "theta 0 is the exact gradient: %g", sqrt(diff0 / norm));
    CHECK(sqrt(diff5 / norm) < 0.02, "Barnes-Hut at theta 0.5 within 2 %%: %g", sqrt(diff5 / norm));
    double kl = cs_tsne_kl(&p, y, 2);
    CHECK(fabs(kl_bh - kl) < 0.02 * kl, "its KL estimate %g vs %g", kl_bh, kl);
    fprintf(stderr, "  gradient error at theta 0.5: %.4f\n", sqrt(diff5 / norm));
    cs_tsne_p_free(&p);
    free(x);
    free(y);
    free(g);
    free(ge);
}

/* Fraction of points whose nearest neighbour in y has the same label. */
static double nn_agreement(const float *y, const int *label, int n)
{
    int same = 0;
    for (int i = 0; i < n; i++) {
        int best = -1;
        double bd = 1e300;
        for (int j = 0; j < n; j++) {
            if (j == i) continue;
            double d2 = (y[2 * i] - y[2 * j]) * (y[2 * i] - y[2 * j]) + (y[2 * i + 1] - y[2 * j + 1]) * (y[2 * i + 1] - y[2 * j + 1]);
            if (d2 < bd) bd = d2, best = j;
        }
        same += label[best] == label[i];
    }
    return (double)same / n;
}

static int stop_now(void *user, long done, long total)
{
    (void)total;
    *(long *)user = done;
    return 1;
}

static void test_barnes_hut_against_exact_run(void)
{
    const int n = 300, d = 10;
    int label[300];
    float *x = clusters(n, d, 11, label);
    float *yb = malloc(n * 2 * sizeof *yb), *ye = malloc(n * 2 * sizeof *ye);
    cs_tsne_config c;
    cs_tsne_config_default(&c);
    c.perplexity = 20;
    c.iterations = 500;
    c.neighbours = n - 1; /* the same P for both */
    char err[200];
    CHECK(cs_tsne(x, n, d, &c, NULL, NULL, yb, err, sizeof err) == 0, "%s", err);
    c.theta = 0;
    CHECK(cs_tsne(x, n, d, &c, NULL, NULL, ye, err, sizeof err) == 0, "%s", err);
    cs_tsne_p p;
    cs_tsne_affinities(x, n, d, 20, n - 1, &p, err, sizeof err);
    double yd[600], ydb[600];
    for (int i = 0; i < 2 * n; i++) yd[i] = ye[i], ydb[i] = yb[i];
    double kle = cs_tsne_kl(&p, yd, 2), klb = cs_tsne_kl(&p, ydb, 2);
    fprintf(stderr, "  KL exact %.4f, Barnes-Hut %.4f\n", kle, klb);
    CHECK(fabs(klb - kle) < 0.05 * kle, "final KL within 5 %%: %g vs %g", klb, kle);
    CHECK(nn_agreement(yb, label, n) > 0.99 && nn_agreement(ye, label, n) > 0.99, "clusters kept apart");
    /* Same seed, same layout. */
    float *again = malloc(n * 2 * sizeof *again);
    c.theta = 0.5;
    cs_tsne(x, n, d, &c, NULL, NULL, again, err, sizeof err);
    CHECK(!memcmp(again, yb, n * 2 * sizeof *yb), "seeded: the same layout again");
    /* 3-D and cancelling. */
    float *y3 = malloc(n * 3 * sizeof *y3);
    c.dims = 3;
    c.iterations = 300;
    CHECK(cs_tsne(x, n, d, &c, NULL, NULL, y3, err, sizeof err) == 0, "3-D: %s", err);
    double sp = 0;
    for (int i = 0; i < n; i++) sp += fabs(y3[i * 3 + 2]);
    CHECK(sp > 0 && isfinite(sp), "the third axis is used");
    long at = 0;
    CHECK(cs_tsne(x, n, d, &c, stop_now, &at, y3, err, sizeof err) == 1 && at == 10, "stopped after 10 iterations");
    c.dims = 4;
    CHECK(cs_tsne(x, n, d, &c, NULL, NULL, y3, err, sizeof err) == -1, "4-D refused");
    cs_tsne_p_free(&p);
    free(x);
    free(yb);
    free(ye);
    free(again);
    free(y3);
}

static void test_bundled_model_activations(void)
{
    char err[300];
    cs_model *m = cs_model_load("models/fmnist.csm", err, sizeof err);
    cs_dataset d;
    if (!m || cs_dataset_load(CS_DEFAULT_DATA_DIR, "test", &d, err, sizeof err) != 0) {
        CHECK(0, "model and test set: %s", err);
        cs_model_free(m);
        return;
    }
    int node = cs_embed_default_node(m);
    CHECK(node >= 0 && !strcmp(m->layers[node].name, "dense_1"), "the last hidden dense layer: %s",
          node >= 0 ? m->layers[node].name : "-");
    float *a;
    int dim;
    int pred[500], right = 0;
    CHECK(cs_node_activations(m, &d, 500, node, NULL, NULL, &a, &dim, pred, err, sizeof err) == 0 && dim == 64, "%s",
          err);
    for (int i = 0; i < 500; i++) right += pred[i] == d.labels[i];
    CHECK(right > 400, "predictions alongside: %d of 500 right", right);
    float *y = malloc(500 * 2 * sizeof *y);
    CHECK(cs_pca(a, 500, dim, 2, y, NULL, err, sizeof err) == 0, "pca of dense_1: %s", err);
    free(y);
    free(a);
    cs_dataset_free(&d);
    cs_model_free(m);
}

int main(void)
{
    RUN(test_pca_against_power_iteration);
    RUN(test_affinities_and_gradient);
    RUN(test_barnes_hut_against_exact_run);
    RUN(test_bundled_model_activations);
    return test_summary("embed");
}
