/*
 * attr_guided_gradcam.c - Guided Grad-CAM (Selvaraju et al., ICCV 2017): guided
 * backpropagation multiplied, pixel by pixel, by the Grad-CAM map resized to the input
 * (bilinear) and divided by its maximum. A pixel's map value is its largest absolute
 * attribution; `layer` is Grad-CAM's node.
 */
#include <stdio.h>
#include <stdlib.h>

#include "explain.h"
#include "image.h"

static int guided_gradcam_run(cs_explainer *x, const cs_explain_params *p, cs_explain_map *out, char *err,
                              size_t errlen)
{
    const cs_model *m = x->model;
    const int H = m->input.h, W = m->input.w, C = m->input.c;
    cs_explain_map cam = {0};
    if (cs_explain_gradcam.run(x, p, &cam, err, errlen) != 0) return -1;
    out->layer = cam.layer;
    out->forwards += cam.forwards;
    out->backwards += cam.backwards;
    float *up = malloc((size_t)H * W * sizeof(float));
    int rc = -1;
    if (!up || !(out->attr = malloc(cs_shape_size(m->input) * sizeof(float))) ||
        cs_explainer_gradients(x, p, x->x, 1, p->class_index, p->score_kind, 1, out->attr, out) != 0)
        goto out;
    cs_resize_bilinear_f32(cam.map, cam.h, cam.w, up, H, W);
    float mx = 0;
    for (int i = 0; i < H * W; i++)
        if (up[i] > mx) mx = up[i];
    for (int i = 0; i < H * W; i++)
        for (int c = 0; c < C; c++) out->attr[(size_t)i * C + c] *= mx > 0 ? up[i] / mx : 0.0f;
    rc = cs_attr_map_max_abs(m, out);
out:
    if (rc) snprintf(err, errlen, "out of memory");
    free(up);
    cs_explain_map_free(&cam);
    return rc;
}

const cs_explain_method cs_explain_guided_gradcam = {
    .name = "guided_gradcam",
    .title = "Guided Grad-CAM",
    .paper = "Selvaraju et al., Grad-CAM: Visual Explanations from Deep Networks via Gradient-based "
             "Localization, ICCV 2017",
    .family = CS_EXPLAIN_PIXEL,
    .params = CS_EP_LAYER | CS_EP_CLASS | CS_EP_SCORE,
    .run = guided_gradcam_run,
};
