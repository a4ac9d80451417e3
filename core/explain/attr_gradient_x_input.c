/*
 * attr_gradient_x_input.c - gradient x input (Shrikumar et al., 2016): each input value
 * times the gradient of the class score with respect to it; a pixel's map value is the
 * sum over its channels (signed: what speaks against the class is negative).
 */
#include <stdio.h>
#include <stdlib.h>

#include "explain.h"

static int gxi_run(cs_explainer *x, const cs_explain_params *p, cs_explain_map *out, char *err, size_t errlen)
{
    const cs_model *m = x->model;
    const size_t n = cs_shape_size(m->input);
    if (!(out->attr = malloc(n * sizeof(float))) ||
        cs_explainer_gradients(x, p, x->x, 1, p->class_index, p->score_kind, 0, out->attr, out) != 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++) out->attr[i] *= x->x[i];
    if (cs_attr_map_sum(m, out) != 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

const cs_explain_method cs_explain_gradient_x_input = {
    .name = "gradient_x_input",
    .title = "Gradient x input",
    .paper = "Shrikumar et al., Not Just a Black Box: Learning Important Features Through Propagating Activation "
             "Differences, arXiv:1605.01713, 2016",
    .family = CS_EXPLAIN_PIXEL,
    .params = CS_EP_CLASS | CS_EP_SCORE,
    .run = gxi_run,
};
