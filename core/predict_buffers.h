/*
 * predict_buffers.h - where a prediction writes each node's output.
 *
 * A full forward pass keeps every node's output (feature maps and Grad-CAM read
 * them), so each node has a buffer of its own and a pass walks through as many
 * megabytes as the network has activations: MobileNetV2's come to about 25 MB for
 * one image, far more than a core's cache, and every layer then writes to memory
 * that was not in it. A prediction (cs_exec_predict) reads only the model's output,
 * so a node may write where an output nobody reads any more lay: the few buffers a
 * prediction cycles through stay in cache, as they do in engines that plan their
 * memory (ONNX Runtime's arena).
 *
 * The table borrows the exec's own buffers (no memory of its own): node i writes to
 * the buffer of an earlier node whose output is no longer read, if one is large
 * enough, else to its own. Two nodes share a buffer only if the times their outputs
 * are alive do not overlap, counted so that the chains of fast_plan.h (a conv that
 * writes its chain's last output at its own step, reading its input and the residual
 * addend then) and their fallback, the nodes one by one, are both safe.
 */
#ifndef CS_PREDICT_BUFFERS_H
#define CS_PREDICT_BUFFERS_H

#include "model.h"

/* Fills out[i] (n_layers entries) from act, the exec's buffers of max_batch images
 * (a view's is its input's, and stays so in out): the buffer node i writes in a
 * prediction. The top node, and the softmax's input when the top is a softmax (the
 * logits), keep their own. 0, or -1 when out of memory. */
int cs_predict_buffers(const cs_model *m, float *const *act, float **out);

#endif
