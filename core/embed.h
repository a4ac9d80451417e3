/*
 * embed.h - points in many dimensions laid out in 2-D or 3-D for a person to look at:
 * PCA (the covariance's eigenvectors, from LAPACK's dsyevd in OpenBLAS) and t-SNE
 * (van der Maaten and Hinton 2008), exact for small sets and Barnes-Hut (van der
 * Maaten 2014) for large ones; and the activations of a node over a data set, the
 * points a projector shows.
 *
 * Shapes: x is (n, d) row-major floats; an embedding is (n, dims) row-major.
 */
#ifndef CS_EMBED_H
#define CS_EMBED_H

#include <stddef.h>
#include <stdint.h>

#include "dataset.h"
#include "model.h"

/* Progress (done of total); a nonzero return stops the work (cancelled). */
typedef int (*cs_embed_progress_fn)(void *user, long done, long total);

/* The first `dims` principal components of x: y (n, dims) the centred points projected
 * on them, var[dims] their variances (may be NULL). Each component's sign makes its
 * largest loading positive, so the result does not depend on LAPACK's choice. d is at
 * most CS_PCA_MAX_DIM. 0, or -1 with err. */
#define CS_PCA_MAX_DIM 4096
int cs_pca(const float *x, int n, int d, int dims, float *y, double *var, char *err, size_t errlen);

typedef struct {
    int dims;           /* 2 or 3 */
    double perplexity;  /* 30 */
    double theta;       /* Barnes-Hut opening angle: 0 exact (every pair), 0.5 usual */
    int iterations;     /* 1000 */
    int exaggeration_iters; /* 250 iterations with P times 12 */
    double learning_rate;   /* 0: n / 12 (at least 50), as openTSNE and scikit-learn choose */
    uint64_t seed;      /* the starting layout: N(0, 1e-4) from this seed */
    int neighbours;     /* 0: 3 * perplexity nearest neighbours (Barnes-Hut); n - 1 makes P exact */
} cs_tsne_config;

void cs_tsne_config_default(cs_tsne_config *c);

/* t-SNE of x (n, d) into y (n, c->dims). Returns 0, 1 when stopped by progress, or -1
 * with err. */
int cs_tsne(const float *x, int n, int d, const cs_tsne_config *c, cs_embed_progress_fn progress, void *user,
            float *y, char *err, size_t errlen);

/* The pieces, for tests: the symmetric affinities of x as sparse rows (row i's
 * neighbours col[row[i] .. row[i+1]), values p summing to 1 over all entries). */
typedef struct {
    int n;
    int *row, *col;
    double *p;
} cs_tsne_p;
int cs_tsne_affinities(const float *x, int n, int d, double perplexity, int neighbours, cs_tsne_p *out, char *err,
                       size_t errlen);
void cs_tsne_p_free(cs_tsne_p *p);
/* The gradient of KL(P || Q) at y (n, dims) into grad, by Barnes-Hut at theta (0:
 * every pair), with P multiplied by exaggeration. Returns KL(P || Q) when exact (theta
 * 0), else its Barnes-Hut estimate. */
double cs_tsne_gradient(const cs_tsne_p *p, const double *y, int dims, double theta, double exaggeration,
                        double *grad);
/* KL(P || Q) at y, computed over every pair. */
double cs_tsne_kl(const cs_tsne_p *p, const double *y, int dims);

/* The default node of a projector: the last dense node below the top (the last hidden
 * dense layer), else the node just below the top. */
int cs_embed_default_node(const cs_model *m);
/* The outputs of `node` for the first n images of d: out (n, size of the node's output)
 * malloc'd; with pred (n entries, may be NULL) also each image's predicted class (the
 * whole model then runs). 0, 1 when stopped by progress, or -1 with err. */
int cs_node_activations(const cs_model *m, const cs_dataset *d, int n, int node, cs_embed_progress_fn progress,
                        void *user, float **out, int *dim, int *pred, char *err, size_t errlen);

#endif
