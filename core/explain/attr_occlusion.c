/*
 * attr_occlusion.c - occlusion sensitivity (Zeiler and Fergus, ECCV 2014): a black
 * square of `patch` pixels slides over the image at `stride`; each position's drop in
 * the class score, S(x) - S(occluded), is shared by the pixels it covered, and a
 * pixel's value is the mean over the positions that covered it (0 where none did),
 *   positions: every (y, x) multiple of stride with the patch inside the image,
 * as Captum's Occlusion places them. Every channel of a pixel gets its value. The
 * occluded images run in batches.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "explain.h"

static int occlusion_run(cs_explainer *x, const cs_explain_params *p, cs_explain_map *out, char *err, size_t errlen)
{
    const cs_model *m = x->model;
    const int H = m->input.h, W = m->input.w, C = m->input.c, P = p->patch, S = p->stride;
    const int ny = (H - P) / S + 1, nx = (W - P) / S + 1, npos = ny * nx;
    const size_t n = cs_shape_size(m->input);
    cs_exec *eb = cs_explainer_batch_exec(x, p);
    const int B = x->batch;
    float *imgs = eb ? malloc((size_t)B * n * sizeof(float)) : NULL, *scores = malloc((size_t)B * sizeof(float));
    double *sum = calloc((size_t)H * W, sizeof(double));
    int *cover = calloc((size_t)H * W, sizeof(int));
    int rc = -1;
    if (!imgs || !scores || !sum || !cover || !(out->attr = malloc(n * sizeof(float))) ||
        !(out->map = malloc((size_t)H * W * sizeof(float))))
        goto out;
    const float s0 = p->score_kind == CS_SCORE_LOGIT ? x->logits[p->class_index] : x->out[p->class_index];
    for (int q0 = 0; q0 < npos; q0 += B) {
        int b = npos - q0 < B ? npos - q0 : B;
        for (int t = 0; t < b; t++) {
            float *img = imgs + (size_t)t * n;
            int y0 = (q0 + t) / nx * S, x0 = (q0 + t) % nx * S;
            memcpy(img, x->x, n * sizeof(float));
            for (int y = y0; y < y0 + P; y++)
                for (int xx = x0; xx < x0 + P; xx++)
                    for (int c = 0; c < C; c++) img[((size_t)y * W + xx) * C + c] = cs_explainer_black(x, c);
        }
        if (cs_explainer_scores(x, p, imgs, b, p->class_index, p->score_kind, scores, out) != 0) goto out;
        for (int t = 0; t < b; t++) {
            int y0 = (q0 + t) / nx * S, x0 = (q0 + t) % nx * S;
            for (int y = y0; y < y0 + P; y++)
                for (int xx = x0; xx < x0 + P; xx++) {
                    sum[y * W + xx] += s0 - scores[t];
                    cover[y * W + xx]++;
                }
        }
    }
    for (int i = 0; i < H * W; i++) {
        out->map[i] = cover[i] ? (float)(sum[i] / cover[i]) : 0.0f;
        for (int c = 0; c < C; c++) out->attr[(size_t)i * C + c] = out->map[i];
    }
    rc = 0;
out:
    if (rc) snprintf(err, errlen, "out of memory");
    free(imgs);
    free(scores);
    free(sum);
    free(cover);
    return rc;
}

const cs_explain_method cs_explain_occlusion = {
    .name = "occlusion",
    .title = "Occlusion",
    .paper = "Zeiler and Fergus, Visualizing and Understanding Convolutional Networks, ECCV 2014",
    .family = CS_EXPLAIN_PIXEL,
    .params = CS_EP_CLASS | CS_EP_SCORE | CS_EP_PATCH | CS_EP_STRIDE | CS_EP_BATCH,
    .run = occlusion_run,
};
