/*
 * activations_of.c - a node's outputs over a data set, the points a projector shows.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "embed.h"
#include "exec.h"

int cs_embed_default_node(const cs_model *m)
{
    for (int i = m->n_layers - 2; i >= 0; i--)
        if (m->layers[i].kind == CS_DENSE) return i;
    return m->n_layers >= 2 ? m->n_layers - 2 : 0;
}

int cs_node_activations(const cs_model *m, const cs_dataset *d, int n, int node, cs_embed_progress_fn progress,
                        void *user, float **out, int *dim, int *pred, char *err, size_t errlen)
{
    *out = NULL;
    if (m->input.h != d->h || m->input.w != d->w || m->input.c != 1 || m->n_extra_inputs) {
        snprintf(err, errlen, "the model takes %dx%dx%d inputs, not the data set's %dx%d grayscale images",
                 m->input.h, m->input.w, m->input.c, d->h, d->w);
        return -1;
    }
    if (node < 0 || node >= m->n_layers) {
        snprintf(err, errlen, "no node %d", node);
        return -1;
    }
    if (n < 1 || n > d->n) n = d->n;
    const size_t per = cs_shape_size(m->layers[node].out), px = (size_t)d->h * d->w;
    const int bs = n < 200 ? n : 200;
    cs_exec *e = cs_exec_new(m, bs);
    float *x = malloc((size_t)bs * px * sizeof(float)), *a = malloc((size_t)n * per * sizeof(float));
    if (!e || !x || !a) {
        cs_exec_free(e);
        free(x);
        free(a);
        snprintf(err, errlen, "out of memory (%d images of %zu values)", n, per);
        return -1;
    }
    for (int s = 0; s < n; s += bs) {
        const int b = n - s < bs ? n - s : bs;
        /* The images as the model takes them (its own pipeline's values). */
        for (int i = 0; i < b; i++)
            cs_preprocess_pixels(&m->preprocess, d->images + (size_t)(s + i) * px, px, x + (size_t)i * px);
        if ((pred ? cs_exec_forward(e, x, b, 0, NULL) : cs_exec_forward_upto(e, x, b, node)) != 0) {
            snprintf(err, errlen, "out of memory");
            cs_exec_free(e);
            free(x);
            free(a);
            return -1;
        }
        memcpy(a + (size_t)s * per, e->act[node], (size_t)b * per * sizeof(float));
        const int top = m->n_layers - 1, k = m->layers[top].out.c;
        for (int i = 0; pred && i < b; i++) pred[s + i] = cs_argmax(e->act[top] + (size_t)i * k, k);
        if (progress && progress(user, s + b, n)) {
            cs_exec_free(e);
            free(x);
            free(a);
            return 1;
        }
    }
    cs_exec_free(e);
    free(x);
    *out = a;
    *dim = (int)per;
    return 0;
}
