/*
 * attr_guided_backprop.c - guided backpropagation (Springenberg et al., ICLR Workshops
 * 2015): the gradient of the class score with respect to the input, where every
 * ReLU-like node passes back only positive gradients, dx = f'(x) max(dy, 0) (the
 * exec's `guided` flag, honoured by the ReLU, LeakyReLU and Activation rows and by
 * fused relus). A pixel's map value is its largest absolute attribution.
 */
#include <stdio.h>
#include <stdlib.h>

#include "explain.h"

static int guided_run(cs_explainer *x, const cs_explain_params *p, cs_explain_map *out, char *err, size_t errlen)
{
    const cs_model *m = x->model;
    if (!(out->attr = malloc(cs_shape_size(m->input) * sizeof(float))) ||
        cs_explainer_gradients(x, p, x->x, 1, p->class_index, p->score_kind, 1, out->attr, out) != 0 ||
        cs_attr_map_max_abs(m, out) != 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

const cs_explain_method cs_explain_guided_backprop = {
    .name = "guided_backprop",
    .title = "Guided backpropagation",
    .paper = "Springenberg et al., Striving for Simplicity: The All Convolutional Net, ICLR Workshops 2015",
    .family = CS_EXPLAIN_PIXEL,
    .params = CS_EP_CLASS | CS_EP_SCORE,
    .run = guided_run,
};
