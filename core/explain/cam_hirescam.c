/*
 * cam_hirescam.c - HiResCAM (Draelos and Carin, 2020): the gradient multiplies the
 * activation position by position instead of being averaged first,
 *   L_ij = ReLU(sum_k dS/dA_ij^k A_ij^k).
 */
#include <stdio.h>
#include <stdlib.h>

#include "explain.h"

static int hirescam_run(cs_explainer *x, const cs_explain_params *p, cs_explain_map *out, char *err, size_t errlen)
{
    const float *a, *g;
    if (cs_cam_gradients(x, p, out, &a, &g, err, errlen) != 0) return -1;
    const int hw = out->h * out->w, k = x->model->layers[out->layer].out.c;
    if (!(out->map = malloc((size_t)hw * sizeof(float)))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (int i = 0; i < hw; i++) {
        double s = 0;
        for (int j = 0; j < k; j++) s += (double)g[(size_t)i * k + j] * a[(size_t)i * k + j];
        out->map[i] = s > 0 ? (float)s : 0.0f;
    }
    return 0;
}

const cs_explain_method cs_explain_hirescam = {
    .name = "hirescam",
    .title = "HiResCAM",
    .paper = "Draelos and Carin, Use HiResCAM instead of Grad-CAM for faithful explanations of convolutional "
             "neural networks, arXiv:2011.08891, 2020",
    .family = CS_EXPLAIN_CAM,
    .params = CS_EP_LAYER | CS_EP_CLASS | CS_EP_SCORE,
    .run = hirescam_run,
};
