/*
 * model_load.c - a model from any file convscope reads (model_load.h).
 */
#include "model_load.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "keras_model.h"
#include "model_file.h"
#include "onnx_import.h"

static int has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n > k && strcasecmp(s + n - k, suffix) == 0;
}

static const char *const IMPORTS[] = {".onnx", ".h5", ".hdf5", ".keras"};

const char *cs_model_import_ext(const char *path)
{
    for (size_t i = 0; i < sizeof IMPORTS / sizeof IMPORTS[0]; i++)
        if (has_suffix(path, IMPORTS[i])) return IMPORTS[i];
    return NULL;
}

int cs_model_is_import(const char *path) { return has_suffix(path, ".onnx"); }

cs_model *cs_model_load_any(const char *path, char *err, size_t errlen)
{
    const char *ext = cs_model_import_ext(path);
    if (!ext) return cs_model_load(path, err, errlen);
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    char arch[CS_NAME_MAX];
    snprintf(arch, sizeof arch, "%.*s", (int)(strlen(base) - strlen(ext)), base);
    cs_model *m = strcmp(ext, ".onnx") == 0 ? cs_onnx_import(path, arch, err, errlen)
                                            : cs_keras_model_load(path, arch, err, errlen);
    if (!m) {
        char why[512];
        snprintf(why, sizeof why, "%s", err);
        snprintf(err, errlen, "%s: %s", path, why);
    }
    return m;
}
