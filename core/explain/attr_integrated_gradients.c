/*
 * attr_integrated_gradients.c - Integrated Gradients (Sundararajan et al., ICML 2017):
 * the gradient integrated along the straight path from a baseline b to the image,
 *   attr = (x - b) (1 / m) sum_j dS/dx (b + a_j (x - b)),  a_j = (j + 1/2) / m,  j < m
 * (the midpoint rule with m = steps). Completeness: the attributions add up to
 * S(x) - S(b), up to the rule's error, which the map reports (baseline_score).
 * Baselines: black (every pixel black), blur (the image blurred with blur_sigma), or
 * noise (each input value uniform between its channel's black and white, seeded).
 * A pixel's map value is the sum over its channels.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "explain.h"
#include "rng.h"

/* The baseline for p into b (input size). 0, or -1 (no memory). */
int cs_explain_baseline_image(cs_explainer *x, const cs_explain_params *p, int kind, float *b)
{
    const cs_model *m = x->model;
    const int hw = m->input.h * m->input.w, c = m->input.c;
    if (kind == CS_BASELINE_BLUR) return cs_explain_blur(x->x, m->input.h, m->input.w, c, cs_explain_blur_sigma(m, p), b);
    cs_rng r;
    cs_rng_seed(&r, p->seed);
    for (int i = 0; i < hw; i++)
        for (int ch = 0; ch < c; ch++) {
            float lo = cs_explainer_black(x, ch), hi = cs_explainer_white(x, ch);
            b[(size_t)i * c + ch] = kind == CS_BASELINE_NOISE ? lo + (float)cs_rng_uniform(&r) * (hi - lo) : lo;
        }
    return 0;
}

static int ig_run(cs_explainer *x, const cs_explain_params *p, cs_explain_map *out, char *err, size_t errlen)
{
    const cs_model *m = x->model;
    const size_t n = cs_shape_size(m->input);
    cs_exec *eb = cs_explainer_batch_exec(x, p);
    const int B = x->batch;
    float *imgs = eb ? malloc((size_t)B * n * sizeof(float)) : NULL, *grads = malloc((size_t)B * n * sizeof(float));
    float *base = malloc(n * sizeof(float));
    double *sum = calloc(n, sizeof(double));
    int rc = -1;
    if (!imgs || !grads || !base || !sum || !(out->attr = malloc(n * sizeof(float))) ||
        cs_explain_baseline_image(x, p, p->baseline, base) != 0)
        goto out;
    for (int j0 = 0; j0 < p->steps; j0 += B) {
        int b = p->steps - j0 < B ? p->steps - j0 : B;
        for (int t = 0; t < b; t++) {
            float alpha = (float)((j0 + t + 0.5) / p->steps);
            for (size_t i = 0; i < n; i++) imgs[(size_t)t * n + i] = base[i] + alpha * (x->x[i] - base[i]);
        }
        if (cs_explainer_gradients(x, p, imgs, b, p->class_index, p->score_kind, 0, grads, out) != 0) goto out;
        for (int t = 0; t < b; t++)
            for (size_t i = 0; i < n; i++) sum[i] += grads[(size_t)t * n + i];
    }
    for (size_t i = 0; i < n; i++) out->attr[i] = (float)((x->x[i] - base[i]) * (sum[i] / p->steps));
    if (cs_explainer_scores(x, p, base, 1, p->class_index, p->score_kind, &out->baseline_score, out) != 0) goto out;
    out->has_baseline = 1;
    rc = cs_attr_map_sum(m, out);
out:
    if (rc) snprintf(err, errlen, "out of memory");
    free(imgs);
    free(grads);
    free(base);
    free(sum);
    return rc;
}

const cs_explain_method cs_explain_integrated_gradients = {
    .name = "integrated_gradients",
    .title = "Integrated Gradients",
    .paper = "Sundararajan et al., Axiomatic Attribution for Deep Networks, ICML 2017",
    .family = CS_EXPLAIN_PIXEL,
    .params = CS_EP_CLASS | CS_EP_SCORE | CS_EP_STEPS | CS_EP_BASELINE | CS_EP_BLUR | CS_EP_BATCH | CS_EP_SEED,
    .run = ig_run,
};
