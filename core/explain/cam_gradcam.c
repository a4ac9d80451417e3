/*
 * cam_gradcam.c - Grad-CAM (Selvaraju et al., ICCV 2017): each channel weighted by the
 * mean of its gradient over the positions,
 *   w_k = (1 / hw) sum_ij dS/dA_ij^k,  L = ReLU(sum_k w_k A^k).
 */
#include <stdio.h>
#include <stdlib.h>

#include "explain.h"

static int gradcam_run(cs_explainer *x, const cs_explain_params *p, cs_explain_map *out, char *err, size_t errlen)
{
    const float *a, *g;
    if (cs_cam_gradients(x, p, out, &a, &g, err, errlen) != 0) return -1;
    const int hw = out->h * out->w, k = x->model->layers[out->layer].out.c;
    double *sum = calloc((size_t)k, sizeof(double));
    float *w = malloc((size_t)k * sizeof(float));
    int rc = -1;
    if (sum && w) {
        for (int i = 0; i < hw; i++)
            for (int j = 0; j < k; j++) sum[j] += g[(size_t)i * k + j];
        for (int j = 0; j < k; j++) w[j] = (float)(sum[j] / hw);
        rc = cs_cam_combine(a, w, hw, k, out);
    }
    if (rc) snprintf(err, errlen, "out of memory");
    free(sum);
    free(w);
    return rc;
}

const cs_explain_method cs_explain_gradcam = {
    .name = "gradcam",
    .title = "Grad-CAM",
    .paper = "Selvaraju et al., Grad-CAM: Visual Explanations from Deep Networks via Gradient-based "
             "Localization, ICCV 2017",
    .family = CS_EXPLAIN_CAM,
    .params = CS_EP_LAYER | CS_EP_CLASS | CS_EP_SCORE,
    .run = gradcam_run,
};
