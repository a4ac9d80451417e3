/*
 * cam_ablationcam.c - Ablation-CAM (Desai and Ramaswamy, WACV 2020): each channel is
 * weighted by how much the class score falls when that channel is set to zero,
 *   w_k = (S - S_k) / S,  S_k = the score with A^k = 0,  L = ReLU(sum_k w_k A^k)
 * (w = 0 when S = 0). Only the nodes above A run again, for a batch of ablated copies.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "explain.h"
#include "gradcam.h"

static int ablationcam_run(cs_explainer *x, const cs_explain_params *p, cs_explain_map *out, char *err,
                           size_t errlen)
{
    const float *a;
    if (cs_cam_activations(x, p, out, &a, err, errlen) != 0) return -1;
    const cs_model *m = x->model;
    const int layer = out->layer, hw = out->h * out->w, k = m->layers[layer].out.c;
    const int top = m->n_layers - 1, nk = m->layers[top].out.c;
    const size_t per_in = cs_shape_size(m->input);
    cs_exec *e1 = x->e, *eb = cs_explainer_batch_exec(x, p);
    float *wts = malloc((size_t)k * sizeof(float));
    float *inputs = eb ? malloc((size_t)x->batch * per_in * sizeof(float)) : NULL;
    if (!wts || !inputs) {
        free(wts);
        free(inputs);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (int b = 0; b < x->batch; b++) memcpy(inputs + (size_t)b * per_in, x->x, per_in * sizeof(float));
    /* The nodes up to A that the nodes above it read (A itself, and skip connections
     * around it): only these need the image's values in every copy. */
    uint8_t *read = calloc((size_t)layer + 1, 1);
    if (!read) {
        free(wts);
        free(inputs);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    read[layer] = 1;
    for (int i = layer + 1; i < m->n_layers; i++)
        for (int q = 0; q < m->layers[i].n_inputs; q++)
            if (m->layers[i].inputs[q] >= 0 && m->layers[i].inputs[q] <= layer) read[m->layers[i].inputs[q]] = 1;
    const float s = p->score_kind == CS_SCORE_LOGIT ? x->logits[p->class_index] : x->out[p->class_index];
    for (int j0 = 0; j0 < k; j0 += x->batch) {
        int b = k - j0 < x->batch ? k - j0 : x->batch;
        /* The nodes read from above hold the image's values in each copy; copy t has
         * channel j0 + t of A zeroed. */
        for (int i = 0; i <= layer; i++) {
            if (!read[i]) continue;
            size_t n = cs_shape_size(m->layers[i].out);
            for (int t = 0; t < b; t++) memcpy(eb->act[i] + (size_t)t * n, e1->act[i], n * sizeof(float));
        }
        for (int t = 0; t < b; t++) {
            float *at = eb->act[layer] + (size_t)t * hw * k;
            for (int i = 0; i < hw; i++) at[(size_t)i * k + j0 + t] = 0.0f;
        }
        if (cs_exec_forward_from(eb, inputs, b, layer + 1) != 0) {
            free(read);
            free(wts);
            free(inputs);
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        out->forwards += b;
        const float *zb = p->score_kind == CS_SCORE_LOGIT && cs_exec_logits(eb) ? cs_exec_logits(eb) : eb->act[top];
        for (int t = 0; t < b; t++) wts[j0 + t] = s != 0 ? (s - zb[(size_t)t * nk + p->class_index]) / s : 0.0f;
    }
    int rc = cs_cam_combine(a, wts, hw, k, out);
    if (rc) snprintf(err, errlen, "out of memory");
    free(read);
    free(wts);
    free(inputs);
    return rc;
}

const cs_explain_method cs_explain_ablationcam = {
    .name = "ablationcam",
    .title = "Ablation-CAM",
    .paper = "Desai and Ramaswamy, Ablation-CAM: Visual Explanations for Deep Convolutional Network via "
             "Gradient-free Localization, WACV 2020",
    .family = CS_EXPLAIN_CAM,
    .params = CS_EP_LAYER | CS_EP_CLASS | CS_EP_SCORE | CS_EP_BATCH,
    .run = ablationcam_run,
};
