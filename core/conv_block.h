/*
 * conv_block.h - a first conv of few taps trained with the fused block above it
 * (batch norm -> LeakyReLU/ReLU -> max pool), its output never stored: the batch
 * statistics and the weight gradient come from sums over the conv's input patches
 * (conv_block.c says how).
 */
#ifndef CS_CONV_BLOCK_H
#define CS_CONV_BLOCK_H

#include "layers.h"

/* Receptive fields of up to this many values (k*k*ic). */
#define CS_CONV_BLOCK_MAX_TAPS 32

/* Whether conv g (n images) can be trained with block b this way with scratch s: a
 * stride-1 'valid' conv of few taps taken by a direct kernel, whose output is the
 * block's input. */
int cs_conv_block_ok(const cs_conv_geom *g, const cs_bn_act_pool *b, const cs_scratch *s);
/* Doubles of the patches' sums that the forward keeps for the backward. */
size_t cs_conv_block_moment_count(const cs_conv_geom *g);
/* Doubles of work space the two passes below need with `workers` workers. */
size_t cs_conv_block_work_count(const cs_conv_geom *g, int workers);
/* The patches' sums over the batch x. */
void cs_conv_block_moments(const cs_conv_geom *g, const float *x, const cs_scratch *s, double *moments,
                           double *work);
/* The batch statistics of the conv's output, from the sums: as cs_bn_stats_finish sets them. */
void cs_conv_block_stats(const cs_conv_geom *g, const float *w, const float *b, const double *moments, float eps,
                         float *mean, float *inv_std, float *moving_mean, float *moving_var, float momentum,
                         double *sums);
/* The block's forward (cs_bn_act_pool_apply) on the conv's output, computed a band of
 * rows at a time. */
void cs_conv_block_forward(const cs_conv_geom *g, const float *x, const float *w, const float *bias,
                           const cs_bn_act_pool *b, const float *mean, const float *inv_std, float *pooled,
                           uint8_t *argmax, float *win_xhat, const cs_scratch *s);
/* The block's and the conv's backward: adds the block's dgamma/dbeta and the conv's
 * weight and bias gradients (any may be NULL), and fills gr's constants of batch
 * norm's input gradient (gr->win_grad is not used). */
void cs_conv_block_backward(const cs_conv_geom *g, const float *x, const float *w, const float *b,
                            cs_bn_act_pool_grad *gr, const float *dpooled, const double *moments, float *dgamma,
                            float *dbeta, float *dw, float *db, const cs_scratch *s, double *work);

#endif
