/*
 * model_load.h - a model from any file convscope reads, by its extension: .onnx
 * (ONNX, onnx_import.h), anything else as a convscope model file (.csm).
 */
#ifndef CS_MODEL_LOAD_H
#define CS_MODEL_LOAD_H

#include <stddef.h>

#include "model.h"

/* The model in path; an imported one is named after the file (its name without the
 * folder and the extension). NULL with err. */
cs_model *cs_model_load_any(const char *path, char *err, size_t errlen);
/* 1 when path names a file format convscope imports (.onnx). */
int cs_model_is_import(const char *path);

#endif
