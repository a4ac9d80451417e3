/*
 * onnx_run.h - a model run on named tensors: what `convscope run` and the ONNX
 * conformance tests do.
 *
 * Tensors come and go in the layout of the file they came from (cs_onnx_layout,
 * onnx_import.h): an imported ONNX graph's as ONNX has them (NCHW), moved into the
 * core's NHWC at the boundary and back; a convscope or Keras model's channels last
 * as they are.
 */
#ifndef CS_ONNX_RUN_H
#define CS_ONNX_RUN_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include "onnx_import.h"
#include "onnx_reader.h"

/* The dims of n items of a layout (the batch first); returns how many. */
int cs_onnx_layout_dims(const cs_onnx_layout *l, int64_t n, int64_t *dims);
/* n items from the layout's order into the core's (NHWC), and back. */
void cs_onnx_layout_to_core(const cs_onnx_layout *l, int n, const float *src, float *core);
void cs_onnx_layout_from_core(const cs_onnx_layout *l, int n, const float *core, float *dst);

/* The signature of a model that is not an imported graph: its one input, named
 * "input", as (N, H, W, C), and its last node, named after it, as (N, C) when it is one
 * vector per item, else (N, H, W, C). 0, or -1 (no memory). */
int cs_model_signature(const cs_model *m, cs_onnx_signature *sig);

/* Runs m on in[0..n_in) (FLOAT tensors matched to sig's inputs by name, each input
 * given exactly once, all of one batch, shapes as the layouts say) and fills out[k]
 * with graph output k, then out[n_outputs + j] with node nodes[j]'s output for j <
 * n_nodes, as (N, C, H, W) for an ONNX graph (sig->inputs in ONNX layout), else
 * (N, H, W, C). Tensors in `in` that name no input are refused. The caller clears
 * out. 0, or -1 with err (a missing or unknown input, a shape or type that differs, no
 * memory). */
int cs_onnx_run(const cs_model *m, const cs_onnx_signature *sig, const cs_onnx_tensor *in, int n_in,
                const int *nodes, int n_nodes, cs_onnx_tensor *out, char *err, size_t errlen);

#endif
