/*
 * model.c - building sequential models, shape inference, Keras initialisers.
 *
 * A model is built in two steps: layers are appended (each one's output shape is
 * inferred from the previous one and checked), then cs_model_finish lays every
 * parameter tensor out in one contiguous block, in layer order, the order the
 * model file and the Keras weight files use.
 */
#include "model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"

const char *const CS_FMNIST_CLASSES[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                           "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

size_t cs_shape_size(cs_shape s) { return (size_t)s.h * s.w * s.c; }

const char *cs_layer_kind_name(cs_layer_kind k)
{
    switch (k) {
    case CS_CONV2D: return "Conv2D";
    case CS_BATCHNORM: return "BatchNormalization";
    case CS_LEAKY_RELU: return "LeakyReLU";
    case CS_RELU: return "ReLU";
    case CS_MAXPOOL: return "MaxPooling2D";
    case CS_FLATTEN: return "Flatten";
    case CS_DENSE: return "Dense";
    case CS_DROPOUT: return "Dropout";
    }
    return "?";
}

cs_model *cs_model_new(const char *arch, cs_shape input)
{
    cs_model *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    snprintf(m->arch, sizeof m->arch, "%s", arch);
    m->input = input;
    m->meta.test_accuracy = -1;
    return m;
}

static void add_param(cs_layer *l, const char *name, int ndim, const int *dims, int trainable)
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
}

/* A conv or dense layer's weights, as Keras orders them: the kernel (its last dim is
 * the number of outputs, and it carries the l1_l2 regulariser), then one bias per output. */
static void add_kernel_and_bias(cs_layer *l, int ndim, const int *kernel_dims)
{
    int bias_dims[1] = {kernel_dims[ndim - 1]};
    add_param(l, "kernel", ndim, kernel_dims, 1);
    add_param(l, "bias", 1, bias_dims, 1);
    l->params[0].l1 = l->cfg.l1;
    l->params[0].l2 = l->cfg.l2;
}

int cs_model_add(cs_model *m, const char *name, cs_layer_kind kind, const cs_layer_config *cfg, char *err,
                 size_t errlen)
{
    cs_shape in = m->n_layers ? m->layers[m->n_layers - 1].out : m->input;
    cs_layer l;
    memset(&l, 0, sizeof l);
    snprintf(l.name, sizeof l.name, "%s", name);
    l.kind = kind;
    l.cfg = *cfg;
    l.in = in;
    l.out = in;
    switch (kind) {
    case CS_CONV2D: {
        int k = cfg->kernel, s = cfg->stride > 0 ? cfg->stride : 1;
        l.cfg.stride = s;
        if (k <= 0 || cfg->filters <= 0) {
            snprintf(err, errlen, "%s: conv2d needs filters and kernel size", name);
            return -1;
        }
        if (cfg->pad_same) {
            l.out.h = (in.h + s - 1) / s;
            l.out.w = (in.w + s - 1) / s;
        } else {
            l.out.h = (in.h - k) / s + 1;
            l.out.w = (in.w - k) / s + 1;
        }
        l.out.c = cfg->filters;
        if (in.h < (cfg->pad_same ? 1 : k) || in.w < (cfg->pad_same ? 1 : k)) {
            snprintf(err, errlen, "%s: input %dx%d is smaller than the %dx%d kernel", name, in.h, in.w, k, k);
            return -1;
        }
        int kd[4] = {k, k, in.c, cfg->filters};
        add_kernel_and_bias(&l, 4, kd);
        break;
    }
    case CS_DENSE: {
        if (cfg->units <= 0) {
            snprintf(err, errlen, "%s: dense needs units", name);
            return -1;
        }
        if (in.h != 1 || in.w != 1) {
            snprintf(err, errlen, "%s: dense needs a flat input, got %dx%dx%d (add a Flatten)", name, in.h, in.w,
                     in.c);
            return -1;
        }
        l.out = (cs_shape){1, 1, cfg->units};
        int kd[2] = {in.c, cfg->units};
        add_kernel_and_bias(&l, 2, kd);
        break;
    }
    case CS_BATCHNORM: {
        int d[1] = {in.c};
        if (l.cfg.momentum == 0) l.cfg.momentum = 0.99f;
        if (l.cfg.epsilon == 0) l.cfg.epsilon = 1e-3f;
        add_param(&l, "gamma", 1, d, 1);
        add_param(&l, "beta", 1, d, 1);
        add_param(&l, "moving_mean", 1, d, 0);
        add_param(&l, "moving_variance", 1, d, 0);
        break;
    }
    case CS_MAXPOOL: {
        int p = cfg->pool > 0 ? cfg->pool : 2;
        l.cfg.pool = p;
        l.out.h = in.h / p;
        l.out.w = in.w / p;
        if (l.out.h < 1 || l.out.w < 1) {
            snprintf(err, errlen, "%s: input %dx%d is smaller than the %dx%d pool", name, in.h, in.w, p, p);
            return -1;
        }
        break;
    }
    case CS_FLATTEN: l.out = (cs_shape){1, 1, (int)cs_shape_size(in)}; break;
    case CS_LEAKY_RELU:
        if (l.cfg.alpha == 0) l.cfg.alpha = 0.3f;
        break;
    case CS_RELU:
    case CS_DROPOUT: break;
    default: snprintf(err, errlen, "%s: unknown layer kind %d", name, (int)kind); return -1;
    }
    cs_layer *grown = realloc(m->layers, (size_t)(m->n_layers + 1) * sizeof *grown);
    if (!grown) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    m->layers = grown;
    m->layers[m->n_layers] = l;
    return m->n_layers++;
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
        /* A fresh batch norm is the identity: gamma 1, moving variance 1. */
        if (l->kind == CS_BATCHNORM)
            for (int c = 0; c < l->in.c; c++) l->params[0].data[c] = l->params[3].data[c] = 1.0f;
    }
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

/* Keras VarianceScaling with a truncated normal: draws beyond two standard deviations
 * are redrawn, and the stddev is divided by 0.8796... (the stddev of a unit normal
 * truncated to [-2, 2]) so the kept values have the intended spread. */
static void init_he_normal(float *w, size_t n, int fan_in, cs_rng *r)
{
    double sd = sqrt(2.0 / fan_in) / 0.87962566103423978;
    for (size_t i = 0; i < n; i++) {
        double z;
        do z = cs_rng_normal(r);
        while (z < -2.0 || z > 2.0);
        w[i] = (float)(z * sd);
    }
}

static void init_glorot_uniform(float *w, size_t n, int fan_in, int fan_out, cs_rng *r)
{
    double limit = sqrt(6.0 / (fan_in + fan_out));
    for (size_t i = 0; i < n; i++) w[i] = (float)((2.0 * cs_rng_uniform(r) - 1.0) * limit);
}

void cs_model_init_weights(cs_model *m, uint64_t seed)
{
    cs_rng r;
    cs_rng_seed(&r, seed);
    for (int i = 0; i < m->n_layers; i++) {
        cs_layer *l = &m->layers[i];
        if (l->kind == CS_CONV2D || l->kind == CS_DENSE) {
            cs_param *k = &l->params[0];
            int recept = l->kind == CS_CONV2D ? l->cfg.kernel * l->cfg.kernel : 1;
            int fan_in = recept * l->in.c, fan_out = recept * l->out.c;
            if (l->cfg.he_normal) init_he_normal(k->data, k->size, fan_in, &r);
            else init_glorot_uniform(k->data, k->size, fan_in, fan_out, &r);
            memset(l->params[1].data, 0, l->params[1].size * sizeof(float));
        } else if (l->kind == CS_BATCHNORM) {
            for (int c = 0; c < l->in.c; c++) {
                l->params[0].data[c] = 1.0f;
                l->params[1].data[c] = 0.0f;
                l->params[2].data[c] = 0.0f;
                l->params[3].data[c] = 1.0f;
            }
        }
    }
}

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
        if (l->kind == CS_LEAKY_RELU || l->kind == CS_RELU) return i;
        if (l->kind == CS_CONV2D && l->cfg.activation != CS_ACT_LINEAR) return i;
    }
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
    m->layers = malloc((size_t)src->n_layers * sizeof *m->layers);
    if (!m->layers && src->n_layers) goto fail;
    memcpy(m->layers, src->layers, (size_t)src->n_layers * sizeof *m->layers);
    m->n_layers = src->n_layers;
    if (cs_model_finish(m) != 0) goto fail;
    memcpy(m->param_block, src->param_block, src->n_param_floats * sizeof(float));
    m->n_classes = src->n_classes;
    m->class_names = copy_strings(src->class_names, src->n_classes);
    m->class_ids = copy_strings(src->class_ids, src->n_classes);
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
