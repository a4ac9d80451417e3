/*
 * gradcam.c - Grad-CAM heatmaps from the exec's activations and gradients.
 */
#include "gradcam.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cs_gradcam(cs_exec *e, const float *input, int layer, int class_index, int score_kind,
               cs_gradcam_result *out, char *err, size_t errlen)
{
    const cs_model *m = e->model;
    const int top = m->n_layers - 1;
    memset(out, 0, sizeof *out);
    if (layer < 0 || layer >= top) {
        snprintf(err, errlen, "layer index %d is not a hidden layer of %s", layer, m->arch);
        return -1;
    }
    const cs_layer *l = &m->layers[layer];
    if (l->out.h < 2 && l->out.w < 2) {
        snprintf(err, errlen, "layer %s has no spatial output (%dx%dx%d): Grad-CAM needs a feature map", l->name,
                 l->out.h, l->out.w, l->out.c);
        return -1;
    }
    const int k = m->layers[top].out.c;
    if (class_index >= k) {
        snprintf(err, errlen, "class %d is out of range (the model has %d classes)", class_index, k);
        return -1;
    }
    if (cs_exec_forward(e, input, 1, 0, NULL) != 0) {
        snprintf(err, errlen, "out of memory");
        return -2;
    }
    const float *p = e->act[top];
    int c = class_index >= 0 ? class_index : cs_argmax(p, k);
    out->class_index = c;
    out->probability = p[c];
    const float *logits = cs_exec_logits(e);
    out->logit = logits ? logits[c] : p[c];
    out->score = score_kind == CS_SCORE_PROBABILITY ? out->probability : out->logit;
    out->layer = layer;
    cs_exec_seed_class(e, &c, score_kind);
    if (cs_exec_backward(e, layer) != 0) {
        snprintf(err, errlen, "out of memory");
        return -2;
    }

    const int h = l->out.h, w = l->out.w, ch = l->out.c, hw = h * w;
    const float *a = e->act[layer], *g = e->grad[layer];
    float *weights = calloc((size_t)ch, sizeof(float));
    float *heat = malloc((size_t)hw * sizeof(float));
    if (!weights || !heat) {
        free(weights);
        free(heat);
        snprintf(err, errlen, "out of memory");
        return -2;
    }
    for (int i = 0; i < hw; i++)
        for (int j = 0; j < ch; j++) weights[j] += g[(size_t)i * ch + j];
    for (int j = 0; j < ch; j++) weights[j] /= hw;
    float mx = 0, mn = 0;
    for (int i = 0; i < hw; i++) {
        double s = 0;
        for (int j = 0; j < ch; j++) s += (double)weights[j] * a[(size_t)i * ch + j];
        float v = (float)(s / ch);
        heat[i] = v > 0 ? v : 0; /* ReLU: only what speaks for the class */
        if (heat[i] > mx) mx = heat[i];
        if (i == 0 || heat[i] < mn) mn = heat[i];
    }
    if (mx > 0)
        for (int i = 0; i < hw; i++) heat[i] /= mx;
    out->all_zero = !(mx > 0);
    out->flat = out->all_zero || mx - mn <= CS_GRADCAM_FLAT_SPREAD * mx;
    out->h = h;
    out->w = w;
    out->heatmap = heat;
    free(weights);
    return 0;
}
