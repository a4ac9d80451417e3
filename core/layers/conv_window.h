/*
 * conv_window.h - the window of the conv kinds (Conv2D, DepthwiseConv2D,
 * SeparableConv2D): kernel size, strides and dilations per axis, and 'valid', 'same'
 * or explicit (asymmetric) padding, from a node's configuration to the kernels'
 * geometry, and to and from JSON in Keras' names.
 */
#ifndef CS_CONV_WINDOW_H
#define CS_CONV_WINDOW_H

#include "conv_general.h"
#include "layer_ops.h"

/* Fills the defaults (a zero _w field takes the first; zero stride or dilation is 1),
 * checks the window against the input and sets the geometry for a batch of one
 * (out size, pads; channels ic -> oc in `groups` groups). 0, or -1 with err naming
 * the node. */
int cs_conv_window_infer(cs_layer *l, const cs_shape *in, int oc, int groups, cs_conv2d_geom *g, char *err,
                         size_t errlen);
/* The geometry of the node's window for a batch of n (after infer). */
cs_conv2d_geom cs_conv_window_geom(const cs_layer *l, int in_c, int oc, int groups, int n);
/* kernel_size, strides, dilation_rate (Keras' names; a number when both axes agree,
 * else a pair) and padding ("valid", "same" or "explicit" with pads [t, l, b, r]). */
int cs_conv_window_to_json(const cs_layer *l, json_t *o);
int cs_conv_window_from_json(json_t *o, cs_layer_config *cfg, char *err, size_t errlen);
/* A Conv2D node's window for a batch of n, whichever kernels its plain pass runs (conv2d.c). */
cs_conv2d_geom cs_conv2d_layer_geom(const cs_layer *l, int n);

#endif
