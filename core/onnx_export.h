/*
 * onnx_export.h - any convscope model written as an ONNX file.
 *
 * The ONNX model takes one input "input" of shape (N, C, H, W) (N symbolic) and gives
 * one output, the model's last node (its class probabilities), of shape (N, classes).
 * Each node becomes the ONNX op that computes the same thing (a conv kind a Conv, a
 * dense layer a Gemm, a fused activation an op after it, ...), named after the node
 * so the graph reads like the model; its weights are turned from the core's NHWC
 * layouts into ONNX's NCHW ones (conv kernels (out, in, kh, kw); the rows of a dense
 * layer that reads a flattened feature map put back into (c, h, w) order, which is the
 * order ONNX's Flatten gives them). The opset is the lowest that has every op the
 * model needs (13, or higher for hard-swish, dilated average pools and GELU).
 */
#ifndef CS_ONNX_EXPORT_H
#define CS_ONNX_EXPORT_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"

/* The ONNX bytes of m in a malloc'd buffer (*buf, *len; the caller frees it). 0, or
 * -1 with err (a kind with no ONNX form, out of memory). Thread-safe; m is only read. */
int cs_onnx_export_buffer(const cs_model *m, uint8_t **buf, size_t *len, char *err, size_t errlen);
/* The same written to path atomically (a temporary file beside it, fsync, rename). */
int cs_onnx_export(const cs_model *m, const char *path, char *err, size_t errlen);

#endif
