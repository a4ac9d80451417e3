/*
 * cam_xgradcam.c - XGrad-CAM (Fu et al., BMVC 2020): gradients weighted by the
 * activation's share of its channel,
 *   w_k = sum_ij (A_ij^k / sum_ab A_ab^k) dS/dA_ij^k,  L = ReLU(sum_k w_k A^k);
 * a channel whose activations sum to zero gets weight 0.
 */
#include <stdio.h>
#include <stdlib.h>

#include "explain.h"

static int xgradcam_run(cs_explainer *x, const cs_explain_params *p, cs_explain_map *out, char *err, size_t errlen)
{
    const float *a, *g;
    if (cs_cam_gradients(x, p, out, &a, &g, err, errlen) != 0) return -1;
    const int hw = out->h * out->w, k = x->model->layers[out->layer].out.c;
    double *asum = calloc((size_t)k, sizeof(double)), *ga = calloc((size_t)k, sizeof(double));
    float *w = malloc((size_t)k * sizeof(float));
    int rc = -1;
    if (asum && ga && w) {
        for (int i = 0; i < hw; i++)
            for (int j = 0; j < k; j++) {
                asum[j] += a[(size_t)i * k + j];
                ga[j] += (double)a[(size_t)i * k + j] * g[(size_t)i * k + j];
            }
        for (int j = 0; j < k; j++) w[j] = asum[j] != 0 ? (float)(ga[j] / asum[j]) : 0.0f;
        rc = cs_cam_combine(a, w, hw, k, out);
    }
    if (rc) snprintf(err, errlen, "out of memory");
    free(asum);
    free(ga);
    free(w);
    return rc;
}

const cs_explain_method cs_explain_xgradcam = {
    .name = "xgradcam",
    .title = "XGrad-CAM",
    .paper = "Fu et al., Axiom-based Grad-CAM: Towards Accurate Visualization and Explanation of CNNs, BMVC 2020",
    .family = CS_EXPLAIN_CAM,
    .params = CS_EP_LAYER | CS_EP_CLASS | CS_EP_SCORE,
    .run = xgradcam_run,
};
