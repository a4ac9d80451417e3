/*
 * sanity.c - the cascading model-randomisation check (Adebayo et al., NeurIPS 2018;
 * see faith.h): the same explanation on a model whose nodes are re-initialised one
 * after another from the top, and how much of the trained model's map survives.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "faith.h"
#include "layer_ops.h"
#include "rng.h"

void cs_sanity_free(cs_sanity_result *r)
{
    for (int i = 0; r->heat && i < r->n; i++) free(r->heat[i]);
    free(r->heat);
    free(r->layer);
    free(r->rank_correlation);
    memset(r, 0, sizeof *r);
}

/* One step: explain the image on model m, keep the heat in step i. */
static int explain_step(const cs_model *m, const float *input, const float *black, const float *white,
                        const cs_explain_method *meth, const cs_explain_params *p, cs_sanity_result *out, int i,
                        char *err, size_t errlen)
{
    cs_explainer x;
    if (cs_explainer_init(&x, m, input, NULL, err, errlen) != 0) return -1;
    x.black = black;
    x.white = white;
    cs_explain_map map;
    int rc = cs_explain_run(&x, meth, p, &map, err, errlen);
    cs_explainer_free(&x);
    if (rc) return -1;
    if (i == 0) {
        out->h = map.h;
        out->w = map.w;
        out->class_index = map.class_index;
    }
    out->heat[i] = map.heat;
    map.heat = NULL;
    cs_explain_map_free(&map);
    out->rank_correlation[i] = i == 0 ? 1.0 : cs_spearman(out->heat[0], out->heat[i], out->h * out->w);
    return 0;
}

int cs_explain_sanity(const cs_model *m, const float *input, const float *black, const float *white,
                      const cs_explain_method *meth, const cs_explain_params *p, cs_sanity_result *out, char *err,
                      size_t errlen)
{
    memset(out, 0, sizeof *out);
    int steps = 1;
    for (int i = 0; i < m->n_layers; i++) steps += m->layers[i].n_params > 0;
    cs_model *c = cs_model_clone(m);
    out->layer = calloc((size_t)steps, sizeof *out->layer);
    out->rank_correlation = calloc((size_t)steps, sizeof(double));
    out->heat = calloc((size_t)steps, sizeof(float *));
    if (!c || !out->layer || !out->rank_correlation || !out->heat) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    out->n = steps;
    cs_explain_params q = *p;
    if (explain_step(c, input, black, white, meth, &q, out, 0, err, errlen) != 0) goto fail;
    /* Every later step explains the class the trained model's map explained. */
    q.class_index = out->class_index;
    cs_rng r;
    cs_rng_seed(&r, p->seed);
    int s = 1;
    for (int i = c->n_layers - 1; i >= 0; i--) {
        cs_layer *l = &c->layers[i];
        if (!l->n_params) continue;
        const cs_layer_ops *ops = cs_layer_ops_of(l->kind);
        if (ops->init) ops->init(l, &r);
        snprintf(out->layer[s], sizeof out->layer[s], "%s", l->name);
        if (explain_step(c, input, black, white, meth, &q, out, s, err, errlen) != 0) goto fail;
        s++;
    }
    cs_model_free(c);
    return 0;
fail:
    cs_model_free(c);
    cs_sanity_free(out);
    return -1;
}
