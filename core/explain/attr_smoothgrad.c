/*
 * attr_smoothgrad.c - SmoothGrad (Smilkov et al., 2017): the gradient averaged over
 * noisy copies of the image,
 *   attr = (1 / n) sum_s dS/dx (x + e_s),  e_s ~ N(0, sigma^2),  sigma = noise (max x - min x),
 * with the noise drawn from cs_rng seeded with `seed`: copy after copy, input value
 * after input value. A pixel's map value is its largest absolute attribution.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "explain.h"
#include "rng.h"

static int smoothgrad_run(cs_explainer *x, const cs_explain_params *p, cs_explain_map *out, char *err,
                          size_t errlen)
{
    const cs_model *m = x->model;
    const size_t n = cs_shape_size(m->input);
    cs_exec *eb = cs_explainer_batch_exec(x, p);
    const int B = x->batch;
    float *imgs = eb ? malloc((size_t)B * n * sizeof(float)) : NULL, *grads = malloc((size_t)B * n * sizeof(float));
    double *sum = calloc(n, sizeof(double));
    int rc = -1;
    if (!imgs || !grads || !sum || !(out->attr = malloc(n * sizeof(float)))) goto out;
    float lo = x->x[0], hi = x->x[0];
    for (size_t i = 1; i < n; i++) {
        if (x->x[i] < lo) lo = x->x[i];
        if (x->x[i] > hi) hi = x->x[i];
    }
    const double sigma = (double)p->noise * (hi - lo);
    cs_rng r;
    cs_rng_seed(&r, p->seed);
    for (int s0 = 0; s0 < p->samples; s0 += B) {
        int b = p->samples - s0 < B ? p->samples - s0 : B;
        for (int t = 0; t < b; t++)
            for (size_t i = 0; i < n; i++) imgs[(size_t)t * n + i] = (float)(x->x[i] + sigma * cs_rng_normal(&r));
        if (cs_explainer_gradients(x, p, imgs, b, p->class_index, p->score_kind, 0, grads, out) != 0) goto out;
        for (int t = 0; t < b; t++)
            for (size_t i = 0; i < n; i++) sum[i] += grads[(size_t)t * n + i];
    }
    for (size_t i = 0; i < n; i++) out->attr[i] = (float)(sum[i] / p->samples);
    rc = cs_attr_map_max_abs(m, out);
out:
    if (rc) snprintf(err, errlen, "out of memory");
    free(imgs);
    free(grads);
    free(sum);
    return rc;
}

const cs_explain_method cs_explain_smoothgrad = {
    .name = "smoothgrad",
    .title = "SmoothGrad",
    .paper = "Smilkov et al., SmoothGrad: removing noise by adding noise, arXiv:1706.03825, 2017",
    .family = CS_EXPLAIN_PIXEL,
    .params = CS_EP_CLASS | CS_EP_SCORE | CS_EP_SAMPLES | CS_EP_NOISE | CS_EP_BATCH | CS_EP_SEED,
    .run = smoothgrad_run,
};
