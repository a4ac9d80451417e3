/*
 * cam_scorecam.c - Score-CAM (Wang et al., CVPR Workshops 2020): no gradients; each
 * channel is weighted by the class score of the image seen through that channel,
 *   H^k = s(Up(A^k)),  s(M) = (M - min M) / (max M - min M),
 *   S_k = score of the class for black + H^k (x - black)  (X o H^k in the paper),
 *   w = softmax over k of S_k,  L = ReLU(sum_k w_k A^k).
 * Up is bilinear with half-pixel centres (align_corners=False, the authors' code). A
 * channel whose map is constant has no s(); it is left out of the softmax (weight 0),
 * as in the authors' code. One masked forward per channel: they run in batches.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "explain.h"
#include "image.h"

static int scorecam_run(cs_explainer *x, const cs_explain_params *p, cs_explain_map *out, char *err, size_t errlen)
{
    const float *a;
    if (cs_cam_activations(x, p, out, &a, err, errlen) != 0) return -1;
    const cs_model *m = x->model;
    const int h = out->h, w = out->w, hw = h * w, k = m->layers[out->layer].out.c;
    const int H = m->input.h, W = m->input.w, C = m->input.c, HW = H * W;
    const size_t per = (size_t)HW * C;
    /* The activations move on at the next pass: keep a copy. */
    float *act = malloc((size_t)hw * k * sizeof(float)), *plane = malloc((size_t)hw * sizeof(float));
    float *up = malloc((size_t)HW * sizeof(float)), *scores = malloc((size_t)k * sizeof(float));
    float *wts = calloc((size_t)k, sizeof(float));
    int *chan = malloc((size_t)k * sizeof(int));
    cs_exec *eb = cs_explainer_batch_exec(x, p);
    float *imgs = eb ? malloc((size_t)x->batch * per * sizeof(float)) : NULL;
    int rc = -1;
    if (!act || !plane || !up || !scores || !wts || !chan || !imgs) goto out;
    memcpy(act, a, (size_t)hw * k * sizeof(float));
    int used = 0;
    for (int j0 = 0; j0 < k;) {
        int b = 0, first = used;
        for (; j0 < k && b < x->batch; j0++) {
            for (int i = 0; i < hw; i++) plane[i] = act[(size_t)i * k + j0];
            cs_resize_bilinear_f32(plane, h, w, up, H, W);
            float lo = up[0], hi = up[0];
            for (int i = 1; i < HW; i++) {
                if (up[i] < lo) lo = up[i];
                if (up[i] > hi) hi = up[i];
            }
            if (!(hi > lo)) continue;
            float *img = imgs + (size_t)b * per;
            for (int i = 0; i < HW; i++) {
                float s = (up[i] - lo) / (hi - lo);
                for (int c = 0; c < C; c++) {
                    float bl = cs_explainer_black(x, c);
                    img[(size_t)i * C + c] = bl + s * (x->x[(size_t)i * C + c] - bl);
                }
            }
            chan[used++] = j0;
            b++;
        }
        if (b && cs_explainer_scores(x, p, imgs, b, p->class_index, p->score_kind, scores + first, out) != 0) goto out;
    }
    if (used) {
        float mx = scores[0];
        for (int u = 1; u < used; u++)
            if (scores[u] > mx) mx = scores[u];
        double z = 0;
        for (int u = 0; u < used; u++) z += exp((double)scores[u] - mx);
        for (int u = 0; u < used; u++) wts[chan[u]] = (float)(exp((double)scores[u] - mx) / z);
    }
    rc = cs_cam_combine(act, wts, hw, k, out);
out:
    if (rc) snprintf(err, errlen, "out of memory");
    free(act);
    free(plane);
    free(up);
    free(scores);
    free(wts);
    free(chan);
    free(imgs);
    return rc;
}

const cs_explain_method cs_explain_scorecam = {
    .name = "scorecam",
    .title = "Score-CAM",
    .paper = "Wang et al., Score-CAM: Score-Weighted Visual Explanations for Convolutional Neural Networks, "
             "CVPR Workshops 2020",
    .family = CS_EXPLAIN_CAM,
    .params = CS_EP_LAYER | CS_EP_CLASS | CS_EP_SCORE | CS_EP_BATCH,
    .run = scorecam_run,
};
