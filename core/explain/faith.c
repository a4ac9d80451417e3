/*
 * faith.c - the faithfulness numbers of one map: the pixel ranking they share, and
 * the parts (faith_curves.c, faith_confidence.c, faith_road.c) run in turn.
 */
#include "faith.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"

void cs_faith_params_default(cs_faith_params *p)
{
    memset(p, 0, sizeof *p);
    p->road_noise = 0.01f;
    p->seed = 1;
}

void cs_faith_free(cs_faith_result *r)
{
    free(r->deletion);
    free(r->insertion);
    r->deletion = r->insertion = NULL;
}

typedef struct {
    float v;
    int i;
} pix;

/* Most relevant first; equal heat in raster order. */
static int by_heat(const void *a, const void *b)
{
    const pix *x = a, *y = b;
    return x->v > y->v ? -1 : x->v < y->v ? 1 : x->i - y->i;
}

int cs_faith_evaluate(cs_explainer *x, const cs_explain_map *map, const cs_faith_params *p, unsigned which,
                      cs_faith_result *out, char *err, size_t errlen)
{
    const cs_model *m = x->model;
    const int hw = m->input.h * m->input.w;
    memset(out, 0, sizeof *out);
    out->which = which;
    out->probability = x->out[map->class_index];
    double t0 = cs_now();
    float *heat = malloc((size_t)hw * sizeof(float));
    int *rank = malloc((size_t)hw * sizeof(int));
    pix *order = malloc((size_t)hw * sizeof(pix));
    int rc = -1;
    if (!heat || !rank || !order) goto out;
    cs_explain_heat_at_input(map, m, heat);
    for (int i = 0; i < hw; i++) order[i] = (pix){heat[i], i};
    qsort(order, (size_t)hw, sizeof *order, by_heat);
    for (int i = 0; i < hw; i++) rank[i] = order[i].i;
    if ((which & CS_FAITH_CURVES) && cs_faith_curves(x, map, rank, p, out) != 0) goto out;
    if ((which & CS_FAITH_CONFIDENCE) && cs_faith_confidence(x, map, heat, p, out) != 0) goto out;
    if ((which & CS_FAITH_ROAD) && cs_faith_road(x, map, rank, p, out) != 0) goto out;
    rc = 0;
out:
    if (rc) {
        snprintf(err, errlen, "out of memory");
        cs_faith_free(out);
    }
    out->seconds = cs_now() - t0;
    free(heat);
    free(rank);
    free(order);
    return rc;
}
