/*
 * cam_gradcam.c - Grad-CAM (Selvaraju et al., ICCV 2017): each channel weighted by the
 * mean of its gradient over the positions,
 *   w_k = (1 / hw) sum_ij dS/dA_ij^k,  L = ReLU(sum_k w_k A^k).
 */
#include <stdio.h>
#include <stdlib.h>

#include "explain.h"

/* The channel means come from the dense layer's channel sums where the node reaches
 * it through max pools and a flatten (cam_sums.h), as VGG16's last conv does. */
static int gradcam_run(cs_explainer *x, const cs_explain_params *p, cs_explain_map *out, char *err, size_t errlen)
{
    const int layer = cs_cam_layer(x->model, p->layer, err, errlen);
    if (layer < 0) return -1;
    const int k = x->model->layers[layer].out.c;
    float *w = malloc((size_t)k * sizeof(float));
    const float *a;
    if (!w) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int rc = cs_cam_channel_means(x, p, out, &a, w, err, errlen);
    if (rc == 0 && (rc = cs_cam_combine(a, w, out->h * out->w, k, out)) != 0) snprintf(err, errlen, "out of memory");
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
