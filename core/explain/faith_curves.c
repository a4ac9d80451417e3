/*
 * faith_curves.c - deletion and insertion curves and their areas (Petsiuk et al.,
 * RISE, BMVC 2018; see faith.h).
 */
#include <stdlib.h>
#include <string.h>

#include "faith.h"

/* RISE's auc(): the trapezoid rule over n points spread evenly on [0, 1]. */
static double area(const float *c, int n)
{
    double s = 0;
    for (int i = 0; i < n; i++) s += c[i];
    return (s - c[0] / 2.0 - c[n - 1] / 2.0) / (n - 1);
}

int cs_faith_curves(cs_explainer *x, const cs_explain_map *map, const int *rank, const cs_faith_params *p,
                    cs_faith_result *out)
{
    const cs_model *m = x->model;
    const int H = m->input.h, W = m->input.w, C = m->input.c, hw = H * W;
    const size_t per = cs_shape_size(m->input);
    int steps = p->curve_steps > 0 ? p->curve_steps : H;
    if (steps > hw) steps = hw;
    const int n = steps + 1, step = (hw + steps - 1) / steps;
    cs_explain_params ep;
    cs_explain_params_default(&ep);
    ep.batch = p->batch;
    ep.blur_sigma = p->blur_sigma;
    if (!cs_explainer_batch_exec(x, &ep)) return -1;
    const int B = x->batch;
    float *imgs = malloc((size_t)B * per * sizeof(float)), *blur = malloc(per * sizeof(float));
    out->deletion = malloc((size_t)n * sizeof(float));
    out->insertion = malloc((size_t)n * sizeof(float));
    cs_explain_map count = {0};
    int rc = -1;
    if (!imgs || !blur || !out->deletion || !out->insertion ||
        cs_explain_blur(x->x, H, W, C, cs_explain_blur_sigma(m, &ep), blur) != 0)
        goto out;
    for (int curve = 0; curve < 2; curve++) {
        /* Deletion: the image, its top pixels turned black; insertion: the blurred image,
         * its top pixels put back. */
        const float *start = curve == 0 ? x->x : blur;
        float *dst = curve == 0 ? out->deletion : out->insertion;
        for (int i0 = 0; i0 < n; i0 += B) {
            int b = n - i0 < B ? n - i0 : B;
            for (int t = 0; t < b; t++) {
                float *img = imgs + (size_t)t * per;
                long changed = (long)(i0 + t) * step;
                if (changed > hw) changed = hw;
                memcpy(img, start, per * sizeof(float));
                for (long r = 0; r < changed; r++)
                    for (int c = 0; c < C; c++) {
                        size_t at = (size_t)rank[r] * C + c;
                        img[at] = curve == 0 ? cs_explainer_black(x, c) : x->x[at];
                    }
            }
            if (cs_explainer_scores(x, &ep, imgs, b, map->class_index, CS_SCORE_PROBABILITY, dst + i0, &count) != 0)
                goto out;
        }
    }
    out->n = n;
    out->deletion_auc = area(out->deletion, n);
    out->insertion_auc = area(out->insertion, n);
    out->forwards += count.forwards;
    rc = 0;
out:
    free(imgs);
    free(blur);
    return rc;
}
