/*
 * cam_layercam.c - Layer-CAM (Jiang et al., IEEE TIP 2021): each activation weighted
 * by its own positive gradient,
 *   L_ij = ReLU(sum_k ReLU(dS/dA_ij^k) A_ij^k),
 * which keeps fine detail on shallow nodes where Grad-CAM's averages blur it.
 */
#include <stdio.h>
#include <stdlib.h>

#include "explain.h"

static int layercam_run(cs_explainer *x, const cs_explain_params *p, cs_explain_map *out, char *err, size_t errlen)
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
        for (int j = 0; j < k; j++) {
            float gi = g[(size_t)i * k + j];
            if (gi > 0) s += (double)gi * a[(size_t)i * k + j];
        }
        out->map[i] = s > 0 ? (float)s : 0.0f;
    }
    return 0;
}

const cs_explain_method cs_explain_layercam = {
    .name = "layercam",
    .title = "Layer-CAM",
    .paper = "Jiang et al., LayerCAM: Exploring Hierarchical Class Activation Maps for Localization, "
             "IEEE Transactions on Image Processing 2021",
    .family = CS_EXPLAIN_CAM,
    .params = CS_EP_LAYER | CS_EP_CLASS | CS_EP_SCORE,
    .run = layercam_run,
};
