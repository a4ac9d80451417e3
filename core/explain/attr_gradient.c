/*
 * attr_gradient.c - gradient saliency (Simonyan et al., ICLR Workshops 2014): the
 * gradient of the class score with respect to every input value; a pixel's map value
 * is its largest absolute gradient over the channels.
 */
#include <stdio.h>
#include <stdlib.h>

#include "explain.h"

static int gradient_run(cs_explainer *x, const cs_explain_params *p, cs_explain_map *out, char *err, size_t errlen)
{
    const cs_model *m = x->model;
    if (!(out->attr = malloc(cs_shape_size(m->input) * sizeof(float))) ||
        cs_explainer_gradients(x, p, x->x, 1, p->class_index, p->score_kind, 0, out->attr, out) != 0 ||
        cs_attr_map_max_abs(m, out) != 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

const cs_explain_method cs_explain_gradient = {
    .name = "gradient",
    .title = "Gradient saliency",
    .paper = "Simonyan et al., Deep Inside Convolutional Networks: Visualising Image Classification Models and "
             "Saliency Maps, ICLR Workshops 2014",
    .family = CS_EXPLAIN_PIXEL,
    .params = CS_EP_CLASS | CS_EP_SCORE,
    .run = gradient_run,
};
