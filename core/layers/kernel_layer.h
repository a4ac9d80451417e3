/*
 * kernel_layer.h - what Conv2D and Dense share: a kernel and a bias, Keras' kernel
 * regulariser and initialiser, and an activation fused into the layer as Keras'
 * `activation=` argument does (linear, relu or softmax).
 */
#ifndef CS_KERNEL_LAYER_H
#define CS_KERNEL_LAYER_H

#include "layer_ops.h"

/* Declares the kernel (its last dim is the number of outputs; it carries the l1_l2
 * regulariser) and one bias per output, as Keras orders them. */
void cs_kernel_layer_params(cs_layer *l, int ndim, const int *kernel_dims);
int cs_kernel_layer_to_json(const cs_layer *l, json_t *o);
int cs_kernel_layer_from_json(json_t *o, cs_layer_config *cfg, char *err, size_t errlen);
/* Where the forward writes the pre-activation: the exec's logits for a softmax top,
 * else the output itself (the activation then runs in place). */
float *cs_kernel_layer_preact(const cs_node_pass *p);
/* The fused activation, from the pre-activation z into p->y. */
void cs_kernel_layer_activate(const cs_node_pass *p, const float *z);
/* The node's fast convolution k (p->fast, fast_plan.h) from x into z and, when
 * `activate`, the fused activation from z into p->y (unless the convolution applied
 * it): 1 when it ran, 0 when there is none or it failed (the plain kernels then run). */
int cs_kernel_layer_fast(const cs_node_pass *p, int k, const float *x, float *z, int activate);
/* Backward through the fused activation, in place: p->dy becomes d/d(pre-activation). */
void cs_kernel_layer_deactivate(const cs_node_pass *p);

#endif
