/*
 * pool_layer.h - what MaxPooling2D and AveragePooling2D share: the window, strides,
 * dilation and padding of the configuration, checked and with defaults filled in,
 * written and read as JSON, and turned into the kernels' geometry (kernels.h).
 *
 * Configuration (model.h): window kernel x kernel_w (a zero kernel takes cfg.pool,
 * then 2), strides stride x stride_w (zero: the window), dilation x dilation_w
 * (zero: 1), padding 'valid', 'same' (TensorFlow's: the odd pixel at the bottom and
 * right, padded positions left out of maxima and means) or explicit pads (top, left,
 * bottom, right), ceil_mode, and count_include_pad for average pools.
 */
#ifndef CS_POOL_LAYER_H
#define CS_POOL_LAYER_H

#include "kernels.h"
#include "layer_ops.h"

/* infer for both pools: fills the defaults into l->cfg, sets l->out, and sets
 * cfg.pool to the window for a max pool the fast path (pool.c) computes exactly
 * (square, stride = window, no padding or dilation), else 0. */
int cs_pool_layer_infer(cs_layer *l, const cs_shape *in, char *err, size_t errlen);
/* The kernels' geometry of node l (after infer) for a batch of n. */
cs_pool2d_geom cs_pool_layer_geom(const cs_layer *l, int n);
/* Keras' keys (pool_size, strides, padding) and convscope's (pads, ceil_mode,
 * count_include_pad, dilation), each written only where it differs from the default,
 * so a 2x2 pool is {"pool_size": 2}. */
int cs_pool_layer_to_json(const cs_layer *l, json_t *o);
int cs_pool_layer_from_json(json_t *o, cs_layer_config *cfg, char *err, size_t errlen);

#endif
