/*
 * cam_gradcampp.c - Grad-CAM++ (Chattopadhay et al., WACV 2018): positive gradients
 * weighted per position by the paper's closed form for an exponential of the score,
 *   alpha_ij^k = g^2 / (2 g^2 + (sum_ab A_ab^k) g^3),  g = dS/dA_ij^k,
 *   w_k = sum_ij alpha_ij^k ReLU(g),  L = ReLU(sum_k w_k A^k).
 * The exponential's own factor exp(S) scales every weight alike and is left out. A
 * position whose denominator is zero (g = 0) gets alpha 0; no epsilon is added (one
 * would swamp the small gradients of a logit).
 */
#include <stdio.h>
#include <stdlib.h>

#include "explain.h"

static int gradcampp_run(cs_explainer *x, const cs_explain_params *p, cs_explain_map *out, char *err, size_t errlen)
{
    const float *a, *g;
    if (cs_cam_gradients(x, p, out, &a, &g, err, errlen) != 0) return -1;
    const int hw = out->h * out->w, k = x->model->layers[out->layer].out.c;
    double *asum = calloc((size_t)k, sizeof(double)), *wsum = calloc((size_t)k, sizeof(double));
    float *w = malloc((size_t)k * sizeof(float));
    int rc = -1;
    if (asum && wsum && w) {
        for (int i = 0; i < hw; i++)
            for (int j = 0; j < k; j++) asum[j] += a[(size_t)i * k + j];
        for (int i = 0; i < hw; i++)
            for (int j = 0; j < k; j++) {
                double gi = g[(size_t)i * k + j], g2 = gi * gi, den = 2 * g2 + asum[j] * g2 * gi;
                if (den != 0 && gi > 0) wsum[j] += g2 / den * gi;
            }
        for (int j = 0; j < k; j++) w[j] = (float)wsum[j];
        rc = cs_cam_combine(a, w, hw, k, out);
    }
    if (rc) snprintf(err, errlen, "out of memory");
    free(asum);
    free(wsum);
    free(w);
    return rc;
}

const cs_explain_method cs_explain_gradcampp = {
    .name = "gradcampp",
    .title = "Grad-CAM++",
    .paper = "Chattopadhay et al., Grad-CAM++: Generalized Gradient-based Visual Explanations for Deep "
             "Convolutional Networks, WACV 2018",
    .family = CS_EXPLAIN_CAM,
    .params = CS_EP_LAYER | CS_EP_CLASS | CS_EP_SCORE,
    .run = gradcampp_run,
};
