/*
 * cam_sums.h - Grad-CAM's channel weights without the input gradient of the dense
 * layer above its node.
 *
 * Grad-CAM reads only each channel's mean gradient at its node A (h x w x C):
 *   alpha_c = (1 / hw) sum_p dS/dA[p][c].
 * When A reaches the first Dense above it through pools, a flatten and dropouts
 * alone (inference: the identity), each the only reader of the one below (VGG16:
 * block5_conv3 -> block5_pool -> flatten -> fc1; the ONNX export of torchvision's has
 * an average pool of 1x1 windows after block5_pool), every pooled value hands its whole
 * gradient to one position of the window below it (a max pool: its first maximum;
 * pool windows always hold an input position), or in shares that add up to it (an
 * average pool whose divisor counts only the input positions of the window: not one
 * that counts padded zeros), so the sum over A's positions of a channel equals
 * the sum over the flattened positions q of that channel, and with W the dense kernel
 * (rows in the flatten's order, q * C + c) and g the gradient at its pre-activation:
 *   sum_p dS/dA[p][c] = sum_q (W g)[q C + c] = sum_j S[c][j] g[j],
 *   S[c][j] = sum_q W[q C + c][j].
 * The backward then stops at the dense layer's output and a C x units product takes
 * the place of the dense layer's input gradient, which streams the whole kernel
 * (VGG16's fc1: 392 MiB, as long as its forward pass; S is 8 MiB).
 *
 * S is made the first time it is asked for, per dense node, and kept with the model
 * (as fast_plan.h keeps the reordered conv kernels); cs_model_params_changed makes
 * it stale, and it is made again on the next use. Like the fast plan, it is remade
 * only between passes.
 */
#ifndef CS_CAM_SUMS_H
#define CS_CAM_SUMS_H

#include <stddef.h>

#include "exec.h"
#include "model.h"

/* The dense node whose channel sums give Grad-CAM's weights at node `layer` (as
 * above), or -1 when the path up from layer is anything else. */
int cs_cam_sums_dense(const cs_model *m, int layer);

/* Grad-CAM's channel weights at `layer` (C floats into alpha, image 0 of the batch)
 * from the top's seeded gradient (cs_exec_seed_class) after an inference forward:
 * the backward down to the dense node's output, then S g. 0 when done (the nodes
 * below the dense one got no gradient), 1 when it does not apply (the path is not
 * the one above, a training pass, or the shortcut is off: nothing was run), -1 when
 * out of memory. */
int cs_cam_sums_weights(cs_exec *e, int layer, float *alpha);

/* Process-wide, for tests and benchmarks that compare with the full backward:
 * off, cs_cam_sums_weights always says 1. On by default. */
void cs_cam_sums_set_enabled(int on);

/* Bytes the sums of m come to when every dense node reached through a flatten has
 * them (for memory budgets before a model is served), and bytes kept now. */
size_t cs_cam_sums_bytes_bound(const cs_model *m);
size_t cs_cam_sums_bytes(const cs_model *m);

/* A model's sums (cs_model_free frees them). */
struct cs_cam_sums;
void cs_cam_sums_free(struct cs_cam_sums *s);

#endif
