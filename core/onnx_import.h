/*
 * onnx_import.h - an ONNX model file as a convscope model.
 *
 * The file is read, validated and constant-folded by onnx_reader.h; each ONNX node
 * then becomes a node of the layer table's kinds, its weights turned once from ONNX's
 * NCHW layouts into the core's NHWC ones (conv kernels (kh, kw, in, out), dense
 * kernels (in, out) with the rows of a flattened feature map in (h, w, c) order).
 * The model takes one image of (C, H, W) known sizes (the batch may be symbolic) and
 * ends in class scores; a model whose output is not already a softmax gets a Softmax
 * node on top, so it serves probabilities and its logits stay readable below it.
 * Anything that cannot be honoured exactly (an op, an attribute, a layout) is refused
 * with an error naming the ONNX node, never approximated.
 */
#ifndef CS_ONNX_IMPORT_H
#define CS_ONNX_IMPORT_H

#include <stddef.h>

#include "model.h"

/* The node name an ONNX node gets: its name with the leading '/' dropped and the
 * others turned into '.' ("/layer3/relu2/Relu" is "layer3.relu2.Relu"), so that it
 * fits one segment of a URL; size bytes at most. */
void cs_onnx_node_name(const char *onnx, char *out, size_t size);

/* The model in the ONNX file at path, its architecture called `arch`; NULL with err. */
cs_model *cs_onnx_import(const char *path, const char *arch, char *err, size_t errlen);
/* The same from len bytes in memory. */
cs_model *cs_onnx_import_buffer(const void *buf, size_t len, const char *arch, char *err, size_t errlen);

#endif
