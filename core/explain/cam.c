/*
 * cam.c - what the class-activation maps share: the node's activations A and the
 * gradient of the class score with respect to them, and the weighted sum of A's
 * channels with its ReLU.
 */
#include <stdio.h>
#include <stdlib.h>

#include "explain.h"

#include "cam_sums.h"

static int prepare(cs_explainer *x, const cs_explain_params *p, cs_explain_map *out, char *err, size_t errlen)
{
    const cs_model *m = x->model;
    int layer = cs_cam_layer(m, p->layer, err, errlen);
    if (layer < 0) return -1;
    if (layer < x->e->kept) { /* cs_explainer_init_above: the nodes below were not all written */
        snprintf(err, errlen, "node %d lies below the node %d this explainer was made for", layer, x->e->kept);
        return -1;
    }
    out->layer = layer;
    out->h = m->layers[layer].out.h;
    out->w = m->layers[layer].out.w;
    out->forwards++; /* the explainer's own, which x->e still holds */
    return layer;
}

int cs_cam_activations(cs_explainer *x, const cs_explain_params *p, cs_explain_map *out, const float **a,
                       char *err, size_t errlen)
{
    int layer = prepare(x, p, out, err, errlen);
    if (layer < 0) return -1;
    *a = x->e->act[layer];
    return 0;
}

/* The full backward from the seeded class score down to the node. */
static int gradients_at(cs_explainer *x, int layer, cs_explain_map *out, const float **a, const float **g,
                        char *err, size_t errlen)
{
    if (cs_exec_backward(x->e, layer) != 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    out->backwards++;
    *a = x->e->act[layer];
    *g = x->e->grad[layer];
    return 0;
}

int cs_cam_gradients(cs_explainer *x, const cs_explain_params *p, cs_explain_map *out, const float **a,
                     const float **g, char *err, size_t errlen)
{
    int layer = prepare(x, p, out, err, errlen);
    if (layer < 0) return -1;
    cs_exec_seed_class(x->e, &p->class_index, p->score_kind);
    return gradients_at(x, layer, out, a, g, err, errlen);
}

int cs_cam_channel_means(cs_explainer *x, const cs_explain_params *p, cs_explain_map *out, const float **a,
                         float *w, char *err, size_t errlen)
{
    int layer = prepare(x, p, out, err, errlen);
    if (layer < 0) return -1;
    cs_exec_seed_class(x->e, &p->class_index, p->score_kind);
    int rc = cs_cam_sums_weights(x->e, layer, w);
    if (rc < 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (rc == 0) {
        out->backwards++;
        out->channel_sums = 1;
        *a = x->e->act[layer];
        return 0;
    }
    const float *g;
    if (gradients_at(x, layer, out, a, &g, err, errlen) != 0) return -1;
    const int hw = out->h * out->w, k = x->model->layers[layer].out.c;
    double *sum = calloc((size_t)k, sizeof(double));
    if (!sum) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (int i = 0; i < hw; i++)
        for (int j = 0; j < k; j++) sum[j] += g[(size_t)i * k + j];
    for (int j = 0; j < k; j++) w[j] = (float)(sum[j] / hw);
    free(sum);
    return 0;
}

int cs_cam_combine(const float *a, const float *w, int hw, int k, cs_explain_map *out)
{
    if (!(out->map = malloc((size_t)hw * sizeof(float)))) return -1;
    for (int i = 0; i < hw; i++) {
        double s = 0;
        for (int j = 0; j < k; j++) s += (double)w[j] * a[(size_t)i * k + j];
        out->map[i] = s > 0 ? (float)s : 0.0f; /* ReLU: only what speaks for the class */
    }
    return 0;
}
