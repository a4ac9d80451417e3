/*
 * model.c - building models: nodes, shapes, the parameter block.
 *
 * A model is built in two steps: nodes are appended (each one's output shape is
 * inferred by its kind's row of the layer table from its inputs' shapes, and
 * checked), then cs_model_finish lays every parameter tensor out in one contiguous
 * block, in node order, the order the model file and the Keras weight files use.
 */
#include "model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bf16_plan.h"
#include "cam_sums.h"
#include "fast_plan.h"
#include "layer_ops.h"
#include "rng.h"

const char *const CS_FMNIST_CLASSES[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                           "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

size_t cs_shape_size(cs_shape s) { return (size_t)s.h * s.w * s.c; }

cs_model *cs_model_new(const char *arch, cs_shape input)
{
    cs_model *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    snprintf(m->arch, sizeof m->arch, "%s", arch);
    m->input = input;
    m->meta.test_accuracy = -1;
    return m;
}

cs_param *cs_layer_add_param(cs_layer *l, const char *name, int ndim, const int *dims, int trainable)
{
    cs_param *p = &l->params[l->n_params++];
    snprintf(p->name, sizeof p->name, "%s", name);
    p->ndim = ndim;
    p->size = 1;
    for (int i = 0; i < ndim; i++) {
        p->dims[i] = dims[i];
        p->size *= (size_t)dims[i];
    }
    p->trainable = trainable;
    return p;
}

cs_shape cs_model_node_shape(const cs_model *m, int node)
{
    if (node >= 0) return m->layers[node].out;
    return node == CS_MODEL_INPUT ? m->input : m->extra_inputs[CS_MODEL_INPUT - 1 - node];
}

int cs_model_add_input(cs_model *m, cs_shape s)
{
    if (m->n_extra_inputs >= CS_MAX_MODEL_INPUTS - 1) return -1;
    m->extra_inputs[m->n_extra_inputs++] = s;
    return m->n_extra_inputs;
}

int cs_model_add_node(cs_model *m, const char *name, cs_layer_kind kind, const cs_layer_config *cfg,
                      const int *inputs, int n_inputs, char *err, size_t errlen)
{
    const cs_layer_ops *ops = cs_layer_ops_of(kind);
    if (!ops) {
        snprintf(err, errlen, "%s: unknown layer kind %d", name, (int)kind);
        return -1;
    }
    if (n_inputs < 1 || n_inputs > CS_MAX_INPUTS) {
        snprintf(err, errlen, "%s: %d inputs (a node takes 1 to %d)", name, n_inputs, CS_MAX_INPUTS);
        return -1;
    }
    cs_layer l;
    memset(&l, 0, sizeof l);
    snprintf(l.name, sizeof l.name, "%s", name);
    l.kind = kind;
    l.cfg = *cfg;
    l.n_inputs = n_inputs;
    cs_shape in[CS_MAX_INPUTS];
    for (int k = 0; k < n_inputs; k++) {
        /* Only earlier nodes: the stored order stays one the nodes can run in. */
        if (inputs[k] < CS_MODEL_INPUT_K(m->n_extra_inputs) || inputs[k] >= m->n_layers) {
            snprintf(err, errlen, "%s: input %d is not an earlier node", name, inputs[k]);
            return -1;
        }
        l.inputs[k] = inputs[k];
        in[k] = cs_model_node_shape(m, inputs[k]);
    }
    l.in = in[0];
    if (ops->infer(&l, in, err, errlen) != 0) return -1;
    cs_layer *grown = realloc(m->layers, (size_t)(m->n_layers + 1) * sizeof *grown);
    if (!grown) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    m->layers = grown;
    m->layers[m->n_layers] = l;
    return m->n_layers++;
}

int cs_model_add(cs_model *m, const char *name, cs_layer_kind kind, const cs_layer_config *cfg, char *err,
                 size_t errlen)
{
    int prev = m->n_layers - 1; /* the model's input for the first node */
    return cs_model_add_node(m, name, kind, cfg, &prev, 1, err, errlen);
}

int cs_model_finish(cs_model *m)
{
    size_t total = 0;
    for (int i = 0; i < m->n_layers; i++)
        for (int j = 0; j < m->layers[i].n_params; j++) total += m->layers[i].params[j].size;
    free(m->param_block);
    m->param_block = calloc(total ? total : 1, sizeof(float));
    if (!m->param_block) return -1;
    m->n_param_floats = total;
    float *p = m->param_block;
    for (int i = 0; i < m->n_layers; i++) {
        cs_layer *l = &m->layers[i];
        for (int j = 0; j < l->n_params; j++) {
            l->params[j].data = p;
            p += l->params[j].size;
        }
        l->n_consumers = 0;
        /* Parameters that start as constants, not draws (a batch norm is the identity). */
        const cs_layer_ops *ops = cs_layer_ops_of(l->kind);
        if ((ops->flags & CS_OP_CONSTANT_INIT) && ops->init) ops->init(l, NULL);
    }
    for (int i = 0; i < m->n_layers; i++)
        for (int k = 0; k < m->layers[i].n_inputs; k++)
            if (m->layers[i].inputs[k] >= 0) m->layers[m->layers[i].inputs[k]].n_consumers++;
    cs_preprocess_infer(m, &m->preprocess);
    return 0;
}

static void free_strings(char **s, int n)
{
    if (!s) return;
    for (int i = 0; i < n; i++) free(s[i]);
    free(s);
}

void cs_model_free(cs_model *m)
{
    if (!m) return;
    cs_fast_plans_free(m->fast);
    cs_bf16_plan_free(m->bf16);
    cs_cam_sums_free(m->cam_sums);
    free(m->layers);
    free(m->param_block);
    free_strings(m->class_names, m->n_classes);
    free_strings(m->class_ids, m->n_classes);
    free(m->meta.history);
    free(m);
}

int cs_model_set_classes(cs_model *m, int n, const char *const *names)
{
    char **copy = calloc((size_t)n, sizeof *copy);
    if (!copy) return -1;
    for (int i = 0; i < n; i++)
        if (!(copy[i] = strdup(names[i]))) {
            free_strings(copy, n);
            return -1;
        }
    free_strings(m->class_names, m->n_classes);
    free_strings(m->class_ids, m->n_classes);
    m->class_ids = NULL;
    m->class_names = copy;
    m->n_classes = n;
    return 0;
}

void cs_model_init_weights(cs_model *m, uint64_t seed)
{
    cs_rng r;
    cs_rng_seed(&r, seed);
    for (int i = 0; i < m->n_layers; i++) {
        const cs_layer_ops *ops = cs_layer_ops_of(m->layers[i].kind);
        if (ops->init) ops->init(&m->layers[i], &r);
    }
    cs_model_params_changed(m);
}

void cs_model_params_changed(cs_model *m) { m->params_version++; }

int cs_model_find_layer(const cs_model *m, const char *name)
{
    for (int i = 0; i < m->n_layers; i++)
        if (strcmp(m->layers[i].name, name) == 0) return i;
    return -1;
}

size_t cs_layer_param_count(const cs_layer *l)
{
    size_t n = 0;
    for (int j = 0; j < l->n_params; j++) n += l->params[j].size;
    return n;
}

size_t cs_layer_trainable_count(const cs_layer *l)
{
    size_t n = 0;
    for (int j = 0; j < l->n_params; j++)
        if (l->params[j].trainable) n += l->params[j].size;
    return n;
}

size_t cs_model_param_count(const cs_model *m) { return m->n_param_floats; }

int cs_model_last_conv_activation(const cs_model *m)
{
    for (int i = m->n_layers - 1; i >= 0; i--) {
        const cs_layer *l = &m->layers[i];
        if (l->out.h <= 1 && l->out.w <= 1) continue;
        if (cs_layer_ops_of(l->kind)->flags & CS_OP_ACTIVATION) return i;
        if (l->kind == CS_CONV2D && l->cfg.activation != CS_ACT_LINEAR) return i;
    }
    /* No activation of its own anywhere: the last node that still has height and width. */
    for (int i = m->n_layers - 1; i >= 0; i--)
        if (m->layers[i].out.h > 1 || m->layers[i].out.w > 1) return i;
    return -1;
}

static char **copy_strings(char **s, int n)
{
    if (!s) return NULL;
    char **c = calloc((size_t)n, sizeof *c);
    if (!c) return NULL;
    for (int i = 0; i < n; i++) c[i] = strdup(s[i]);
    return c;
}

cs_model *cs_model_clone(const cs_model *src)
{
    cs_model *m = cs_model_new(src->arch, src->input);
    if (!m) return NULL;
    m->n_extra_inputs = src->n_extra_inputs;
    memcpy(m->extra_inputs, src->extra_inputs, sizeof m->extra_inputs);
    m->layers = malloc((size_t)src->n_layers * sizeof *m->layers);
    if (!m->layers && src->n_layers) goto fail;
    memcpy(m->layers, src->layers, (size_t)src->n_layers * sizeof *m->layers);
    m->n_layers = src->n_layers;
    if (cs_model_finish(m) != 0) goto fail;
    memcpy(m->param_block, src->param_block, src->n_param_floats * sizeof(float));
    m->n_classes = src->n_classes;
    m->class_names = copy_strings(src->class_names, src->n_classes);
    m->class_ids = copy_strings(src->class_ids, src->n_classes);
    m->preprocess = src->preprocess;
    m->meta = src->meta;
    m->meta.history = NULL;
    if (src->meta.n_history) {
        m->meta.history = malloc((size_t)src->meta.n_history * sizeof *m->meta.history);
        if (!m->meta.history) goto fail;
        memcpy(m->meta.history, src->meta.history, (size_t)src->meta.n_history * sizeof *m->meta.history);
    }
    return m;
fail:
    cs_model_free(m);
    return NULL;
}

/* DESIGN §1: the seed notebook's network, with its Keras layer names. */
cs_model *cs_model_build_fmnist(void)
{
    cs_model *m = cs_model_new("fmnist", (cs_shape){28, 28, 1});
    if (!m) return NULL;
    char err[160];
    const float l1 = 1e-5f, l2 = 1e-4f;
    cs_layer_config conv1 = {.filters = 32, .kernel = 3, .stride = 1, .he_normal = 1, .l1 = l1, .l2 = l2};
    cs_layer_config conv2 = conv1;
    conv2.filters = 64;
    cs_layer_config bn = {.momentum = 0.99f, .epsilon = 1e-3f};
    cs_layer_config leaky = {.alpha = 0.3f};
    cs_layer_config pool = {.pool = 2};
    cs_layer_config none = {0};
    cs_layer_config dense1 = {.units = 64, .he_normal = 1, .l1 = l1, .l2 = l2};
    cs_layer_config drop = {.rate = 0.4f};
    cs_layer_config dense2 = {.units = 10, .activation = CS_ACT_SOFTMAX};
    int ok = cs_model_add(m, "conv2d_1", CS_CONV2D, &conv1, err, sizeof err) >= 0 &&
             cs_model_add(m, "batch_normalization_1", CS_BATCHNORM, &bn, err, sizeof err) >= 0 &&
             cs_model_add(m, "leaky_re_lu_1", CS_LEAKY_RELU, &leaky, err, sizeof err) >= 0 &&
             cs_model_add(m, "max_pooling2d_1", CS_MAXPOOL, &pool, err, sizeof err) >= 0 &&
             cs_model_add(m, "conv2d_2", CS_CONV2D, &conv2, err, sizeof err) >= 0 &&
             cs_model_add(m, "batch_normalization_2", CS_BATCHNORM, &bn, err, sizeof err) >= 0 &&
             cs_model_add(m, "leaky_re_lu_2", CS_LEAKY_RELU, &leaky, err, sizeof err) >= 0 &&
             cs_model_add(m, "max_pooling2d_2", CS_MAXPOOL, &pool, err, sizeof err) >= 0 &&
             cs_model_add(m, "flatten_1", CS_FLATTEN, &none, err, sizeof err) >= 0 &&
             cs_model_add(m, "dense_1", CS_DENSE, &dense1, err, sizeof err) >= 0 &&
             cs_model_add(m, "batch_normalization_3", CS_BATCHNORM, &bn, err, sizeof err) >= 0 &&
             cs_model_add(m, "leaky_re_lu_3", CS_LEAKY_RELU, &leaky, err, sizeof err) >= 0 &&
             cs_model_add(m, "dropout_1", CS_DROPOUT, &drop, err, sizeof err) >= 0 &&
             cs_model_add(m, "dense_2", CS_DENSE, &dense2, err, sizeof err) >= 0 && cs_model_finish(m) == 0 &&
             cs_model_set_classes(m, 10, CS_FMNIST_CLASSES) == 0;
    if (!ok) {
        cs_model_free(m);
        return NULL;
    }
    return m;
}
