/*
 * model_load.h - a model from any file convscope reads, by its extension: .onnx
 * (ONNX, onnx_import.h), .h5 / .hdf5 and .keras (Keras full models, keras_model.h),
 * anything else as a convscope model file (.csm).
 */
#ifndef CS_MODEL_LOAD_H
#define CS_MODEL_LOAD_H

#include <stddef.h>

#include "model.h"

/* The model in path; an imported one is named after the file (its name without the
 * folder and the extension). A .h5 file must hold a whole Keras model
 * (model.save()); one with weights only is refused with a message saying so. NULL
 * with err. */
cs_model *cs_model_load_any(const char *path, char *err, size_t errlen);
/* The extension (".onnx", ".h5", ".hdf5", ".keras") when path names a file format
 * convscope imports, else NULL. A static string. */
const char *cs_model_import_ext(const char *path);
/* 1 when path names an ONNX file (.onnx). */
int cs_model_is_import(const char *path);

#endif
