/*
 * model_load.c - a model from any file convscope reads (model_load.h).
 */
#include "model_load.h"

#include <stdio.h>
#include <string.h>

#include "model_file.h"
#include "onnx_import.h"

static int has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n > k && strcasecmp(s + n - k, suffix) == 0;
}

int cs_model_is_import(const char *path) { return has_suffix(path, ".onnx"); }

cs_model *cs_model_load_any(const char *path, char *err, size_t errlen)
{
    if (!has_suffix(path, ".onnx")) return cs_model_load(path, err, errlen);
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    char arch[CS_NAME_MAX];
    snprintf(arch, sizeof arch, "%.*s", (int)(strlen(base) - strlen(".onnx")), base);
    cs_model *m = cs_onnx_import(path, arch, err, errlen);
    if (!m) {
        char why[512];
        snprintf(why, sizeof why, "%s", err);
        snprintf(err, errlen, "%s: %s", path, why);
    }
    return m;
}
