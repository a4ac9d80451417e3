/*
 * vgg16.c - Keras applications.VGG16 (with the top), its ImageNet weights and classes.
 *
 * The architecture is a table fed to the ordinary builder, so VGG16 runs through the
 * same layers as every other model. Layer names are Keras' own, which is what the
 * weights file is keyed by. Keras' layer list starts with input_1 (layer 0) and ours
 * has no input layer, so every Keras index is one more than ours: the notebook's
 * feature-map layers [2, 5, 9, 13, 17] are our 1, 4, 8, 12, 16 (block1_conv2,
 * block2_conv2, block3_conv3, block4_conv3, block5_conv3); refer to them by name.
 *
 * Weights come from the Keras HDF5 file (keras_h5.c), read straight into the model;
 * class names and WordNet ids from imagenet_class_index.json (jansson).
 */
#include "vgg16.h"

#include "error.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "keras_h5.h"

const char *const CS_VGG16_NOTEBOOK_LAYERS[5] = {"block1_conv2", "block2_conv2", "block3_conv3",
                                                 "block4_conv3", "block5_conv3"};

/* One row per layer: kind, name, and the one number that varies (filters, units). */
static const struct vgg16_spec {
    cs_layer_kind kind;
    const char *name;
    int size;
    cs_activation act;
} VGG16[] = {
    {CS_CONV2D, "block1_conv1", 64, CS_ACT_RELU},   {CS_CONV2D, "block1_conv2", 64, CS_ACT_RELU},
    {CS_MAXPOOL, "block1_pool", 2, 0},
    {CS_CONV2D, "block2_conv1", 128, CS_ACT_RELU},  {CS_CONV2D, "block2_conv2", 128, CS_ACT_RELU},
    {CS_MAXPOOL, "block2_pool", 2, 0},
    {CS_CONV2D, "block3_conv1", 256, CS_ACT_RELU},  {CS_CONV2D, "block3_conv2", 256, CS_ACT_RELU},
    {CS_CONV2D, "block3_conv3", 256, CS_ACT_RELU},  {CS_MAXPOOL, "block3_pool", 2, 0},
    {CS_CONV2D, "block4_conv1", 512, CS_ACT_RELU},  {CS_CONV2D, "block4_conv2", 512, CS_ACT_RELU},
    {CS_CONV2D, "block4_conv3", 512, CS_ACT_RELU},  {CS_MAXPOOL, "block4_pool", 2, 0},
    {CS_CONV2D, "block5_conv1", 512, CS_ACT_RELU},  {CS_CONV2D, "block5_conv2", 512, CS_ACT_RELU},
    {CS_CONV2D, "block5_conv3", 512, CS_ACT_RELU},  {CS_MAXPOOL, "block5_pool", 2, 0},
    {CS_FLATTEN, "flatten", 0, 0},
    {CS_DENSE, "fc1", 4096, CS_ACT_RELU},           {CS_DENSE, "fc2", 4096, CS_ACT_RELU},
    {CS_DENSE, "predictions", 1000, CS_ACT_SOFTMAX},
};

cs_model *cs_model_build_vgg16(void)
{
    cs_model *m = cs_model_new("vgg16", (cs_shape){224, 224, 3});
    if (!m)
        return NULL;
    char err[160];
    for (size_t i = 0; i < sizeof VGG16 / sizeof VGG16[0]; i++) {
        const struct vgg16_spec *s = &VGG16[i];
        /* he_normal = 0: Keras' VGG16 leaves the default glorot_uniform initialiser. */
        cs_layer_config cfg = {.activation = s->act};
        if (s->kind == CS_CONV2D) {
            cfg.filters = s->size;
            cfg.kernel = 3;
            cfg.stride = 1;
            cfg.pad_same = 1;
        } else if (s->kind == CS_MAXPOOL) {
            cfg.pool = s->size;
        } else if (s->kind == CS_DENSE) {
            cfg.units = s->size;
        }
        if (cs_model_add(m, s->name, s->kind, &cfg, err, sizeof err) < 0) {
            cs_model_free(m);
            return NULL;
        }
    }
    if (cs_model_finish(m) != 0) {
        cs_model_free(m);
        return NULL;
    }
    return m;
}

int cs_imagenet_load_classes(cs_model *m, const char *path, char *err, size_t errlen)
{
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    if (!root) {
        if (je.line < 0)
            cs_set_err(err, errlen, "cannot read class index %s: %s", path, je.text);
        else
            cs_set_err(err, errlen, "class index %s: line %d: %s", path, je.line, je.text);
        return -1;
    }
    int rc = -1;
    int n = json_is_object(root) ? (int)json_object_size(root) : 0;
    const char **names = calloc((size_t)n + 1, sizeof *names);
    char **ids = calloc((size_t)n + 1, sizeof *ids);
    if (!names || !ids) {
        cs_set_err(err, errlen, "out of memory reading %s", path);
        goto done;
    }
    if (n == 0) {
        cs_set_err(err, errlen, "class index %s: expected an object {\"0\": [wnid, label], ...}", path);
        goto done;
    }
    /* Keys are "0".."n-1"; any order in the file, every index exactly once. */
    for (int i = 0; i < n; i++) {
        char key[16];
        snprintf(key, sizeof key, "%d", i);
        json_t *e = json_object_get(root, key);
        if (!e) {
            cs_set_err(err, errlen, "class index %s: class %d is missing (%d entries)", path, i, n);
            goto done;
        }
        json_t *wnid = json_array_get(e, 0), *label = json_array_get(e, 1);
        if (!json_is_array(e) || !json_is_string(wnid) || !json_is_string(label)) {
            cs_set_err(err, errlen, "class index %s: class %d is not [wnid, label]", path, i);
            goto done;
        }
        names[i] = json_string_value(label);
        if (!(ids[i] = strdup(json_string_value(wnid)))) {
            cs_set_err(err, errlen, "out of memory reading %s", path);
            goto done;
        }
    }
    if (cs_model_set_classes(m, n, names) != 0) {
        cs_set_err(err, errlen, "out of memory reading %s", path);
        goto done;
    }
    m->class_ids = ids; /* the model owns them now */
    ids = NULL;
    rc = 0;
done:
    if (ids)
        for (int i = 0; i < n; i++)
            free(ids[i]);
    free(ids);
    free(names);
    json_decref(root);
    return rc;
}

cs_model *cs_vgg16_load(const char *weights_path, const char *class_index_path, char *err, size_t errlen)
{
    char why[512];
    struct stat st;
    if (!weights_path || !weights_path[0]) {
        cs_set_err(err, errlen, "VGG16 weights: no path given (%s)", CS_VGG16_WEIGHTS_FILE);
        return NULL;
    }
    if (stat(weights_path, &st) != 0) {
        cs_set_err(err, errlen, "VGG16 weights not found at %s (%s)", weights_path, strerror(errno));
        return NULL;
    }
    if (!class_index_path || !class_index_path[0]) {
        cs_set_err(err, errlen, "ImageNet class index: no path given (imagenet_class_index.json)");
        return NULL;
    }
    if (stat(class_index_path, &st) != 0) {
        cs_set_err(err, errlen, "ImageNet class index not found at %s (%s)", class_index_path, strerror(errno));
        return NULL;
    }
    cs_model *m = cs_model_build_vgg16();
    if (!m) {
        cs_set_err(err, errlen, "VGG16: out of memory for %.0f MiB of weights", 138357544.0 * 4 / 1048576);
        return NULL;
    }
    if (cs_keras_h5_load(m, weights_path, why, sizeof why) != 0) {
        cs_set_err(err, errlen, "VGG16 weights at %s: %s", weights_path, why);
        goto fail;
    }
    if (cs_imagenet_load_classes(m, class_index_path, err, errlen) != 0)
        goto fail;
    int units = m->layers[m->n_layers - 1].out.c;
    if (m->n_classes != units) {
        cs_set_err(err, errlen, "ImageNet class index %s has %d classes, VGG16 predicts %d", class_index_path,
                m->n_classes, units);
        goto fail;
    }
    return m;
fail:
    cs_model_free(m);
    return NULL;
}

/* Appends one candidate to the "tried" list, separated by ", ". */
static void note_tried(char *tried, size_t len, const char *path)
{
    if (!tried || !len)
        return;
    size_t o = strlen(tried);
    if (o + 1 < len)
        snprintf(tried + o, len - o, "%s%s", o ? ", " : "", path);
}

/* A candidate that names a folder means the standard file name inside it. */
static int try_candidate(const char *base, int is_dir, char *found, size_t len, char *tried, size_t tried_len)
{
    char path[4096];
    struct stat st;
    if (is_dir)
        snprintf(path, sizeof path, "%s/%s", base, CS_VGG16_WEIGHTS_FILE);
    else
        snprintf(path, sizeof path, "%s", base);
    if (!is_dir && stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        snprintf(path, sizeof path, "%s/%s", base, CS_VGG16_WEIGHTS_FILE);
    note_tried(tried, tried_len, path);
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
        return -1;
    snprintf(found, len, "%s", path);
    return 0;
}

int cs_vgg16_find_weights(const char *flag_path, const char *models_dir, char *found, size_t len, char *tried,
                          size_t tried_len)
{
    if (tried && tried_len)
        tried[0] = 0;
    if (found && len)
        found[0] = 0;
    if (flag_path && flag_path[0] && try_candidate(flag_path, 0, found, len, tried, tried_len) == 0)
        return 0;
    if (models_dir && models_dir[0] && try_candidate(models_dir, 1, found, len, tried, tried_len) == 0)
        return 0;
    const char *home = getenv("HOME");
    if (home && home[0]) {
        char dir[4096];
        snprintf(dir, sizeof dir, "%s/.keras/models", home);
        if (try_candidate(dir, 1, found, len, tried, tried_len) == 0)
            return 0;
    }
    return -1;
}
