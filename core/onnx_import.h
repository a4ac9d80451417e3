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
#include <stdint.h>

#include "model.h"
#include "onnx_reader.h"

/* The node name an ONNX node gets: its name with the leading '/' dropped and the
 * others turned into '.' ("/layer3/relu2/Relu" is "layer3.relu2.Relu"), so that it
 * fits one segment of a URL; size bytes at most. */
void cs_onnx_node_name(const char *onnx, char *out, size_t size);

/* 1 when ONNX op type `op` (default domain) becomes nodes of the layer table (some of
 * its attributes or shapes may still be refused), 0 when it is not supported. */
int cs_onnx_op_supported(const char *op);

/* The model in the ONNX file at path, its architecture called `arch`; NULL with err. */
cs_model *cs_onnx_import(const char *path, const char *arch, char *err, size_t errlen);
/* The same from len bytes in memory. */
cs_model *cs_onnx_import_buffer(const void *buf, size_t len, const char *arch, char *err, size_t errlen);

/* ---- running a graph as it is (`convscope run`, the conformance tests) ----
 *
 * Any graph of float tensors of rank 1 to 4 whose first dim is the batch: its inputs
 * become the model's inputs (in the file's order), its outputs are read from the nodes
 * that compute them, and no softmax is added. A tensor of rank 4 (N, C, H, W) is held
 * as (H, W, C) per item, (N, C, L) as (1, L, C), (N, C) as (1, 1, C) and (N) as
 * (1, 1, 1); cs_onnx_layout (onnx_tensor.h) says how to move its values between the
 * two orders. */

/* How a tensor of ONNX's layout sits in the core's. */
typedef struct {
    int rank;      /* ONNX rank, the batch included (1 to 4) */
    cs_shape item; /* the core's shape of one item */
    /* Rank 2 holding a feature map (flat_h, flat_w, flat_c) flattened in ONNX's
     * (c, h, w) order, which the core keeps in its (h, w, c) order; 0 when not. */
    int flat_h, flat_w, flat_c;
    int channels_last; /* rank 4 is (N, H, W, C) as the core holds it (a model that is not ONNX) */
} cs_onnx_layout;

typedef struct {
    char *name; /* the ONNX value, owned */
    int node;   /* the node that computes it, or CS_MODEL_INPUT_K(k) for model input k */
    cs_onnx_layout layout;
} cs_onnx_io;

typedef struct {
    int n_inputs;        /* the model's inputs: inputs[k] is CS_MODEL_INPUT_K(k) */
    cs_onnx_io *inputs;
    int n_outputs;       /* every graph output, in the file's order */
    cs_onnx_io *outputs;
    int64_t batch;       /* the batch the file declares, -1 when symbolic */
} cs_onnx_signature;

/* A value for a graph input, given before import. */
typedef struct {
    const char *name;
    const cs_onnx_tensor *value;
} cs_onnx_binding;

/* The graph in the ONNX file at path as a model to run (see above), with its inputs
 * and outputs in *sig (freed by cs_onnx_signature_free, also after a failure). Of the
 * bindings, those for a graph input that only parameters read (a weight, a bias, a
 * shape, Clip's bounds, Pad's pads: an input after the first of every op but the
 * elementwise ones) become constants of the model, as if the file held them as
 * initializers; the rest are left to the caller to feed. NULL with err naming the
 * node and the op or attribute that is not supported. */
cs_model *cs_onnx_import_run(const char *path, const cs_onnx_binding *bind, int n_bind, cs_onnx_signature *sig,
                             char *err, size_t errlen);
void cs_onnx_signature_free(cs_onnx_signature *sig);

#endif
