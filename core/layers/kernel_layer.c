/*
 * kernel_layer.c - the parts of Conv2D and Dense that are the same (kernel_layer.h).
 */
#include "kernel_layer.h"

#include <stdio.h>
#include <string.h>

static const char *const ACTIVATIONS[] = {[CS_ACT_LINEAR] = "linear", [CS_ACT_RELU] = "relu",
                                          [CS_ACT_SOFTMAX] = "softmax"};

void cs_kernel_layer_params(cs_layer *l, int ndim, const int *kernel_dims)
{
    int bias_dims[1] = {kernel_dims[ndim - 1]};
    cs_param *k = cs_layer_add_param(l, "kernel", ndim, kernel_dims, 1);
    cs_layer_add_param(l, "bias", 1, bias_dims, 1);
    k->l1 = l->cfg.l1;
    k->l2 = l->cfg.l2;
}

int cs_kernel_layer_to_json(const cs_layer *l, json_t *o)
{
    const cs_layer_config *c = &l->cfg;
    return json_object_set_new(o, "activation", json_string(ACTIVATIONS[c->activation])) ||
                   json_object_set_new(o, "kernel_initializer",
                                       json_string(c->he_normal ? "he_normal" : "glorot_uniform")) ||
                   cs_json_set_float(o, "l1", c->l1) || cs_json_set_float(o, "l2", c->l2)
               ? -1
               : 0;
}

int cs_kernel_layer_from_json(json_t *o, cs_layer_config *cfg, char *err, size_t errlen)
{
    const char *act = cs_json_get_str(o, "activation", err, errlen);
    if (!act) return -1;
    int found = 0;
    for (int a = 0; a < (int)(sizeof ACTIVATIONS / sizeof ACTIVATIONS[0]); a++)
        if (strcmp(act, ACTIVATIONS[a]) == 0) {
            cfg->activation = (cs_activation)a;
            found = 1;
        }
    if (!found) {
        snprintf(err, errlen, "activation '%s' is not linear, relu or softmax", act);
        return -1;
    }
    const char *init = cs_json_get_str(o, "kernel_initializer", err, errlen);
    if (!init) return -1;
    cfg->he_normal = strcmp(init, "he_normal") == 0;
    if (!cfg->he_normal && strcmp(init, "glorot_uniform") != 0) {
        snprintf(err, errlen, "kernel_initializer '%s' is not he_normal or glorot_uniform", init);
        return -1;
    }
    return cs_json_get_float(o, "l1", &cfg->l1, err, errlen) || cs_json_get_float(o, "l2", &cfg->l2, err, errlen)
               ? -1
               : 0;
}

static int is_top(const cs_node_pass *p) { return p->node == p->e->model->n_layers - 1; }

float *cs_kernel_layer_preact(const cs_node_pass *p)
{
    return p->l->cfg.activation == CS_ACT_SOFTMAX && is_top(p) && p->e->logits ? p->e->logits : p->y;
}

void cs_kernel_layer_activate(const cs_node_pass *p, const float *z)
{
    const cs_layer *l = p->l;
    const size_t rows = (size_t)p->n * l->out.h * l->out.w;
    if (l->cfg.activation == CS_ACT_RELU) cs_relu_forward(rows * l->out.c, z, p->y);
    else if (l->cfg.activation == CS_ACT_SOFTMAX) cs_softmax_forward((int)rows, l->out.c, z, p->y);
}

void cs_kernel_layer_deactivate(const cs_node_pass *p)
{
    const cs_layer *l = p->l;
    const size_t rows = (size_t)p->n * l->out.h * l->out.w;
    if (l->cfg.activation == CS_ACT_RELU) {
        cs_guided_clamp(p);
        cs_relu_backward(rows * l->out.c, p->y, p->dy, p->dy);
    }
    else if (l->cfg.activation == CS_ACT_SOFTMAX && !(is_top(p) && p->e->top_is_dz))
        cs_softmax_backward((int)rows, l->out.c, p->y, p->dy, p->dy);
}
