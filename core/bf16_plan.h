/*
 * bf16_plan.h - a model's inference in bf16: its precision, whether the CPU can run
 * it, and the bf16 layers kept with the model.
 *
 * A model's precision is fp32 (the default) or bf16. In bf16, inference passes (no
 * batch statistics, no parameter gradients: cs_exec_predict, cs_exec_forward in
 * inference mode and its _upto/_from variants) run the Conv2D and Dense nodes through
 * onednn_bf16.h: kernels stored in bf16, inputs converted to bf16 at the layer,
 * products accumulated and outputs written in fp32. Chains (fast_plan.h: a conv or a
 * dense node with the batch norm, residual add and activation that read it alone)
 * run as one bf16 layer in cs_exec_predict. Every other node, training, parameter and
 * input gradients and the backward passes of Grad-CAM stay fp32; a backward pass after
 * a bf16 forward differentiates the fp32 function at the values the bf16 forward
 * wrote.
 *
 * bf16 keeps fp32's exponent and 8 of its 24 bits of significand: rounding an input
 * or a weight to it changes it by a relative error of at most 2^-8, so each product
 * moves by at most (1 + 2^-8)^2 - 1 of |x w| and a dot product by that times the sum
 * of |x_i w_i| (plus fp32's own rounding of the sum). tests/core/test_bf16.c holds the
 * layers to that bound.
 *
 * Only a CPU with AVX512-BF16 or AMX-BF16 runs it, as oneDNN sees the CPU (its
 * ONEDNN_MAX_CPU_ISA setting included); elsewhere oneDNN would emulate bf16 with
 * plain AVX-512 more slowly than fp32 runs, so bf16 is refused there with the reason.
 */
#ifndef CS_BF16_PLAN_H
#define CS_BF16_PLAN_H

#include <stddef.h>

#include "layer_ops.h"
#include "model.h"

typedef enum { CS_PRECISION_FP32, CS_PRECISION_BF16 } cs_precision;

/* "fp32" or "bf16". */
const char *cs_precision_name(cs_precision p);
/* From "fp32" or "bf16": 0, or -1 with err. */
int cs_precision_parse(const char *s, cs_precision *out, char *err, size_t errlen);

/* What the CPU offers for bf16, as bits. */
enum { CS_BF16_AVX512 = 1, CS_BF16_AMX = 2 };
/* The bits oneDNN will use on this CPU. */
int cs_bf16_cpu(void);
/* Pretend the CPU offers only `mask` (tests: a CPU without bf16 is mask 0); -1 goes
 * back to what it does offer. Between passes only. */
void cs_bf16_force_cpu(int mask);
/* A short name of what runs bf16 here ("AMX-BF16", "AVX512-BF16"), or NULL when
 * nothing does; why (when not NULL) then says so in a sentence. */
const char *cs_bf16_unit(char *why, size_t len);

/* Sets the precision of m's inference passes (between passes only; the bf16 layers
 * are made on the first pass). 0; or -1 with why when bf16 was asked for and this CPU
 * cannot run it: m then stays in fp32. */
int cs_model_set_precision(cs_model *m, cs_precision p, char *why, size_t len);

typedef struct cs_bf16_plan cs_bf16_plan;

/* The bf16 layers of m, made on the first call and again when the parameters changed
 * (cs_model_params_changed); NULL when m runs in fp32, the CPU cannot run bf16 (as
 * forced) or they could not be made. Several threads' passes may share it. */
const cs_bf16_plan *cs_bf16_plan_get(const cs_model *m);
void cs_bf16_plan_free(cs_bf16_plan *p);
/* Nodes of the plan that run in bf16 (chains count their first node), of m's. */
int cs_bf16_plan_nodes(const cs_bf16_plan *p);
/* Bytes of bf16 kernels the plan keeps. */
size_t cs_bf16_plan_bytes(const cs_bf16_plan *p);
/* The implementation oneDNN chose for the plan's first layer, or "". */
const char *cs_bf16_plan_impl(const cs_bf16_plan *p);

/* A node's forward in bf16 when the plan has it (p may be NULL): 1 when it ran, 0
 * when the fp32 forward must run. */
int cs_bf16_node_forward(const cs_bf16_plan *p, const cs_node_pass *pass);
/* The chain starting at node c in bf16 into its last node's output, for
 * cs_exec_predict: that last node, or -1 when there is none or it could not run. */
int cs_bf16_chain_forward(const cs_bf16_plan *p, cs_exec *e, int c);
/* The last node of the chain starting at node c, or -1 when there is none (p may be NULL). */
int cs_bf16_chain_last(const cs_bf16_plan *p, int c);

#endif
