/*
 * projector.c - `make bench`: the embedding projector on the whole Fashion-MNIST test
 * set (10,000 images) with the bundled model: the activations of its last hidden dense
 * layer, PCA to 2-D and 3-D, and Barnes-Hut t-SNE to 2-D (perplexity 30, theta 0.5,
 * 1000 iterations), each timed.
 */
#include <stdio.h>
#include <stdlib.h>

#include "blas.h"
#include "clock.h"
#include "embed.h"
#include "model_file.h"

int main(int argc, char **argv)
{
    cs_blas_init(argc, argv);
    char err[300];
    cs_model *m = cs_model_load("models/fmnist.csm", err, sizeof err);
    cs_dataset d;
    if (!m || cs_dataset_load(CS_DEFAULT_DATA_DIR, "test", &d, err, sizeof err) != 0) {
        fprintf(stderr, "bench: %s\n", err);
        return 1;
    }
    const int n = d.n, node = cs_embed_default_node(m);
    float *a, *y = malloc((size_t)n * 3 * sizeof *y);
    int dim, *pred = malloc((size_t)n * sizeof *pred);
    double t0 = cs_now();
    if (!y || !pred || cs_node_activations(m, &d, n, node, NULL, NULL, &a, &dim, pred, err, sizeof err) != 0) {
        fprintf(stderr, "bench: %s\n", err);
        return 1;
    }
    double t1 = cs_now();
    int rc = cs_pca(a, n, dim, 2, y, NULL, err, sizeof err) | cs_pca(a, n, dim, 3, y, NULL, err, sizeof err);
    double t2 = cs_now();
    cs_tsne_config c;
    cs_tsne_config_default(&c);
    rc |= cs_tsne(a, n, dim, &c, NULL, NULL, y, err, sizeof err);
    double t3 = cs_now();
    if (rc) {
        fprintf(stderr, "bench: %s\n", err);
        return 1;
    }
    printf("convscope projector benchmark (%d test images, node %s of %d values)\n", n, m->layers[node].name, dim);
    printf("  activations and predictions:        %8.2f s\n", t1 - t0);
    printf("  PCA to 2-D and to 3-D:              %8.2f s\n", t2 - t1);
    printf("  t-SNE to 2-D (Barnes-Hut, 1000 it): %8.2f s\n", t3 - t2);
    printf("  projector of the test set in all:   %8.2f s\n", t3 - t0);
    free(a);
    free(y);
    free(pred);
    cs_dataset_free(&d);
    cs_model_free(m);
    return 0;
}
