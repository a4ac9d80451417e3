/*
 * onnx_tensor.h - single tensors in ONNX's TensorProto format (the .pb files of ONNX's
 * test data and of `convscope run`) and NumPy .npy files, both as cs_onnx_tensor.
 *
 * Reading accepts FLOAT tensors, and INT64 and INT32 ones (as int64: shapes, pads);
 * other element types are refused with an error naming theirs. Writing writes FLOAT.
 */
#ifndef CS_ONNX_TENSOR_H
#define CS_ONNX_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "onnx_reader.h"

/* The tensor in a TensorProto file (its name is the file's, "" when it has none), or
 * in len bytes of one. 0, or -1 with err and *t empty. Free with cs_onnx_tensor_clear. */
int cs_onnx_tensor_read(const char *path, cs_onnx_tensor *t, char *err, size_t errlen);
int cs_onnx_tensor_read_buffer(const void *buf, size_t len, cs_onnx_tensor *t, char *err, size_t errlen);
/* Writes a FLOAT TensorProto named `name` of dims (ndim of them) holding their product
 * of floats. 0, or -1 with err. */
int cs_onnx_tensor_write(const char *path, const char *name, const float *data, int ndim, const int64_t *dims,
                         char *err, size_t errlen);

/* A .npy file (npy.h: float32, float64 and int64 arrays read as float) as a FLOAT
 * tensor named `name`. 0, or -1 with err. */
int cs_onnx_tensor_read_npy(const char *path, const char *name, cs_onnx_tensor *t, char *err, size_t errlen);
/* Reads .npy files by their extension, anything else as a TensorProto. */
int cs_onnx_tensor_read_any(const char *path, const char *name, cs_onnx_tensor *t, char *err, size_t errlen);

/* Frees what t holds and leaves it empty. */
void cs_onnx_tensor_clear(cs_onnx_tensor *t);

#endif
