/*
 * gradcam.c - Grad-CAM heatmaps, the notebook's way: the Grad-CAM row of the
 * explanation methods (explain/cam_gradcam.c) on one image, in the shape the gradcam
 * route and the benches take.
 */
#include "gradcam.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "explain/explain.h"

int cs_gradcam(cs_exec *e, const float *input, int layer, int class_index, int score_kind,
               cs_gradcam_result *out, char *err, size_t errlen)
{
    const cs_model *m = e->model;
    memset(out, 0, sizeof *out);
    if (layer < 0 || layer >= m->n_layers - 1) {
        snprintf(err, errlen, "layer index %d is not a hidden layer of %s", layer, m->arch);
        return -1;
    }
    const int k = m->layers[m->n_layers - 1].out.c;
    if (class_index >= k) {
        snprintf(err, errlen, "class %d is out of range (the model has %d classes)", class_index, k);
        return -1;
    }
    cs_explainer x;
    int rc = cs_explainer_init_above(&x, m, input, e, layer, err, errlen);
    if (rc != 0) return rc;
    cs_explain_params p;
    cs_explain_params_default(&p);
    p.layer = layer;
    p.class_index = class_index;
    p.score_kind = score_kind;
    cs_explain_map map;
    rc = cs_explain_run(&x, &cs_explain_gradcam, &p, &map, err, errlen);
    cs_explainer_free(&x);
    if (rc != 0) return rc;
    out->class_index = map.class_index;
    out->probability = map.probability;
    out->logit = map.logit;
    out->score = map.score;
    out->layer = map.layer;
    out->h = map.h;
    out->w = map.w;
    out->heatmap = map.heat;
    out->all_zero = map.all_zero;
    out->flat = map.flat;
    map.heat = NULL;
    cs_explain_map_free(&map);
    return 0;
}
