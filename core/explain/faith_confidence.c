/*
 * faith_confidence.c - average drop and increase in confidence (Chattopadhay et al.,
 * Grad-CAM++, WACV 2018; see faith.h): the image seen through its heat.
 */
#include <stdlib.h>

#include "faith.h"

int cs_faith_confidence(cs_explainer *x, const cs_explain_map *map, const float *heat, const cs_faith_params *p,
                        cs_faith_result *out)
{
    const cs_model *m = x->model;
    const int hw = m->input.h * m->input.w, C = m->input.c;
    cs_explain_params ep;
    cs_explain_params_default(&ep);
    ep.batch = p->batch;
    float *img = malloc(cs_shape_size(m->input) * sizeof(float));
    if (!img) return -1;
    for (int i = 0; i < hw; i++)
        for (int c = 0; c < C; c++) {
            float bl = cs_explainer_black(x, c);
            img[(size_t)i * C + c] = bl + heat[i] * (x->x[(size_t)i * C + c] - bl);
        }
    cs_explain_map count = {0};
    int rc = cs_explainer_scores(x, &ep, img, 1, map->class_index, CS_SCORE_PROBABILITY, &out->masked_probability,
                                 &count);
    free(img);
    if (rc) return -1;
    const float y = x->out[map->class_index], o = out->masked_probability;
    out->drop = y > 0 ? (y > o ? (y - o) / y : 0.0) : 0.0;
    out->increase = o > y;
    out->forwards += count.forwards;
    return 0;
}
