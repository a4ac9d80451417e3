/*
 * exec.h - running a model: forward and backward passes over a batch.
 *
 * A cs_exec owns every buffer a pass writes: each node's output (act[i]), the
 * gradient of a scalar with respect to it (grad[i]), batch-norm caches, dropout
 * masks, the pre-softmax logits and a bounded im2col scratch. The model stays
 * read-only, so one model can serve many execs on many threads at once.
 *
 * A pass walks a plan: the steps computed once when the exec is made, each a node or
 * a fused block of nodes, in the model's (topological) order. After cs_exec_forward,
 * act[i] holds node i's output for the batch. After a backward pass, grad[i] holds
 * d(scalar)/d(act[i]) for the nodes it reached.
 */
#ifndef CS_EXEC_H
#define CS_EXEC_H

#include "layers.h"
#include "model.h"

typedef struct {
    float *mean, *inv_std; /* per channel, from the last training-mode forward */
    double *sums;          /* CS_BN_SUMS(c) doubles of work area for the passes */
    /* When the node starts a fused block (a training plan's step): each pooled value's
     * winning window position and normalised input, the gradient at the winners, and
     * 3c floats for the backward. */
    uint8_t *argmax;
    float *win_xhat, *win_grad, *grad_consts;
    double *moments; /* when the block sits on a conv trained with it (conv_block.h) */
} cs_bn_cache;

/* One step of a plan: a node on its own, or nodes first..last run as one block. */
typedef enum {
    CS_STEP_NODE,
    CS_STEP_BN_ACT_POOL,      /* batch norm -> LeakyReLU/ReLU -> max pool (bn_act_pool.c) */
    CS_STEP_CONV_BN_ACT_POOL, /* a conv with no activation of its own under such a block: the
                                 conv gathers the block's statistics as it writes its output,
                                 and takes its dy from the block chunk by chunk; a conv on the
                                 model's input with few taps is trained with the block without
                                 storing its output (conv_block.h) */
} cs_step_kind;

typedef struct {
    cs_step_kind kind;
    int first, last;
} cs_step;

typedef struct {
    int n;
    cs_step *steps;
} cs_plan;

typedef struct cs_exec {
    const cs_model *model;
    int max_batch, batch;
    int training; /* last forward used batch statistics and dropout */
    float **act;  /* [n_layers] outputs, max_batch * out size (a view shares its input's) */
    float **grad; /* [n_layers] gradients, each allocated when a backward first reaches it;
                     a backward that passes a conv/dense node with a fused activation
                     overwrites its grad with d/d(pre-activation); a view shares its input's */
    uint8_t *reached;   /* [n_layers] the backward under way has written grad[i] */
    float *fanin[CS_MAX_INPUTS]; /* a node's further gradients where its output fans out, added after */
    const float *input; /* borrowed from the last forward: keep it alive until backward */
    const float *extra_input[CS_MAX_MODEL_INPUTS - 1]; /* the other model inputs, likewise */
    int top_is_dz;      /* the top's gradient was seeded w.r.t. the logits (a softmax top's
                           backward passes it through) */
    float *logits;     /* pre-activation of the last node when it is softmax */
    cs_bn_cache *bn;   /* [n_layers], used by batch-norm nodes */
    uint8_t **mask;    /* [n_layers] dropout masks (1 keep) */
    float **state;     /* [n_layers] what a node keeps between its passes (its kind's state_floats) */
    cs_scratch scratch; /* im2col rows and partial gradients, per worker thread */
    struct cs_onednn_train **conv_train; /* [n_layers] a conv's passes through oneDNN (onednn_train.h),
                                            made on the node's first pass that may run them */
    uint8_t *conv_train_tried;           /* [n_layers] made or refused: asked once */
    float *work;        /* the largest work area a node's row asks for (cs_layer_ops.work_floats), or NULL */
    float *param_grad;  /* same layout as model->param_block, when training */
    float *input_grad;  /* d(scalar)/d(input) after a backward through every node, when enabled */
    int input_reached;  /* the backward under way has written input_grad */
    uint64_t rng_state; /* dropout */
    /* The plans, computed once: inference runs every node on its own (every output stays
     * readable for feature maps and Grad-CAM); training runs the fused blocks when
     * fusion is on (cs_exec_set_fusion), whose inner outputs are then not written, nor
     * the gradient of their inner nodes and of a conv right below. */
    cs_plan infer_plan, train_plan;
    int fused;
    int partial;        /* the last forward was a cs_exec_predict: only the top's output is written */
    int kept;           /* the last forward was a cs_exec_forward_above this node, else -1 */
    uint8_t *chained;   /* [n_layers] a cs_exec_predict ran node i inside a chain */
    float **predict_act; /* [n_layers] where a cs_exec_predict writes node i's output: act's
                            buffers, shared by outputs alive at different times
                            (predict_buffers.h); the top's is its own */
    double *profile;    /* NULL, or [2 * n_layers] seconds: forward of node i at [i],
                           backward at [n_layers + i], added up over passes (make bench) */
    int guided;         /* backward passes only the positive part of the gradient through
                           ReLU-like nodes (guided backpropagation, Springenberg et al. 2015;
                           cs_guided_clamp): set it around a backward, off for training */
    /* A prediction over a batch of small images runs as chunks, each worker in an exec of
     * its own (predict_chunks.h). */
    struct cs_exec *chunk_exec[CS_MAX_WORKERS];
    double *chunk_profile; /* the chunk execs' profiles while this one's is on */
    float *band_tmp[CS_MAX_WORKERS]; /* each worker's rows of a block run in bands (predict_bands.h) */
    size_t band_tmp_floats;
    int bands_off;         /* predictions run such blocks (and those split by channels, predict_split.h)
                              chain by chain (tests compare the two) */
    int in_chunk;          /* this exec runs one worker's chunks: never split again */
    int chunks_off;        /* predictions run layer by layer (tests compare the two ways) */
} cs_exec;

/* max_batch: the largest batch this exec will run. The im2col scratch is bounded
 * (conv layers are computed in row chunks), so memory is activations plus a
 * constant. Returns NULL when out of memory. */
cs_exec *cs_exec_new(const cs_model *m, int max_batch);

/* n floats on a cache line's boundary (free() releases them), or NULL. The tensors the
 * vector kernels read and write: malloc puts a large block 16 bytes past a page's
 * start, and then every 64-byte load of it spans two cache lines. */
float *cs_floats_new(size_t n);
void cs_exec_free(cs_exec *e);
/* Bytes an exec of this model may come to hold for batches of max_batch: every
 * output and gradient, the scratch, the batch-norm and dropout state. An upper bound
 * for budgets, not a measurement. */
size_t cs_exec_bytes_bound(const cs_model *m, int max_batch);
/* Allocate the parameter gradients (needed for training, not for Grad-CAM). */
int cs_exec_enable_param_grads(cs_exec *e);
/* Allocate the input gradient: a backward through every node (stop -1) then leaves
 * d(scalar)/d(input) in e->input_grad (saliency, attributions). 0, or -1. */
int cs_exec_enable_input_grad(cs_exec *e);
/* Training passes run the fused blocks (on) or every node on its own (off, the
 * default); allocates the blocks' buffers. 0, or -1 when out of memory. */
int cs_exec_set_fusion(cs_exec *e, int on);
void cs_exec_seed_dropout(cs_exec *e, uint64_t seed);

/* Forward the batch (n images, NHWC, model->input shape each) through all nodes.
 * training=1: batch statistics (moving averages updated in `update_bn`, which may be
 * NULL for a read-only model) and dropout; training=0: inference. Every pass returns
 * 0, or -1 when a buffer could not be allocated (nothing is then half-written that a
 * later pass relies on) or the model takes several inputs (cs_exec_forward_inputs). */
int cs_exec_forward(cs_exec *e, const float *input, int n, int training, cs_model *update_bn);
/* The same for a model of several inputs: inputs[k] is model input k (n images of its
 * shape each, NHWC), model->n_extra_inputs + 1 of them. No gradient reaches inputs
 * other than the first. */
int cs_exec_forward_inputs(cs_exec *e, const float *const *inputs, int n, int training, cs_model *update_bn);
/* Inference forward of the batch for its output alone: after it only the top's output
 * (act[n_layers - 1]) and cs_exec_logits are meaningful. Chains of nodes then run as
 * one step (fast_plan.h: a conv with the batch norm, residual add and activation that
 * read it alone) without writing their inner nodes' outputs, and a backward pass is
 * refused until the next cs_exec_forward. What predictions and evaluations run.
 * 0, or -1 as cs_exec_forward. */
int cs_exec_predict(cs_exec *e, const float *input, int n);
/* Inference forward for what lies above node `keep`: the fused runs of a prediction
 * that end at keep or below it run as cs_exec_predict runs them, without writing
 * their inner nodes' outputs; every other node, keep and all above it, is written as
 * by cs_exec_forward (inner nodes are read only inside their run, so every node
 * above keep finds its inputs). A backward may then stop at keep or above it, and
 * cs_exec_forward_from start above it; below, they are refused until the next full
 * forward. What a class-activation map of node keep runs (gradcam.h). 0, or -1 as
 * cs_exec_forward. */
int cs_exec_forward_above(cs_exec *e, const float *input, int n, int keep);
/* Forward only as far as node `upto` (inclusive), inference mode. */
int cs_exec_forward_upto(cs_exec *e, const float *input, int n, int upto);
/* Inference forward of nodes from..last only: act[] of every node before `from` must
 * already hold the batch of n (a caller may change one of them first, to see what the
 * nodes above make of it); input holds the n images, for nodes above that read it.
 * -1 after a cs_exec_predict, which may have left some of them unwritten. */
int cs_exec_forward_from(cs_exec *e, const float *input, int n, int from);

/* Softmax cross-entropy loss of the last (softmax) layer against integer labels,
 * mean over the batch; its gradient w.r.t. the logits is written into the exec so
 * that cs_exec_backward can start from it. Returns the loss (without penalties);
 * `correct` receives the number of argmax hits (may be NULL). */
float cs_exec_xent(cs_exec *e, const uint8_t *labels, int *correct);

/* The pre-softmax scores of the last forward when the model ends in a softmax, else NULL. */
const float *cs_exec_logits(const cs_exec *e);

/* Seed the gradient of a class score for every image in the batch:
 * kind 0 = logit (pre-softmax), 1 = probability (softmax output, as the notebook). */
void cs_exec_seed_class(cs_exec *e, const int *classes, int score_kind);

/* Back-propagate from the seeded top down to the output of node `stop` (grad[stop]
 * holds the whole gradient after it, summed over every path where outputs fan out).
 * stop = -1 goes through every node; with param grads enabled, parameter gradients
 * are accumulated (zeroed first). -1 after a cs_exec_predict, which left inner outputs
 * unwritten. */
int cs_exec_backward(cs_exec *e, int stop);

/* The gradient buffer of node's output (n images of its shape), allocated when first
 * asked for; NULL when out of memory. Write d(scalar)/d(output of node) there, then
 * call cs_exec_backward_from to take it down from that node (a channel's mean, a
 * neuron: feature visualisation and receptive fields). Borrowed: the exec owns it. */
float *cs_exec_node_grad(cs_exec *e, int node);
/* Back-propagate from node's output, whose gradient the caller wrote into
 * cs_exec_node_grad(e, node), down to `stop` as cs_exec_backward does (stop -1 with the
 * input gradient enabled leaves d(scalar)/d(input) in e->input_grad). Nodes above
 * `node` take no part. Returns 0, or -1 (out of memory, no seeded gradient, stop not
 * below node, or a fused training pass). */
int cs_exec_backward_from(cs_exec *e, int node, int stop);

/* The l1_l2 penalty of the model's kernels, added to the loss; with grads, its
 * gradient is added to e->param_grad. */
float cs_model_penalty(const cs_model *m, float *param_grad);

/* Index of the largest value in a row of n floats. */
int cs_argmax(const float *v, int n);

#endif
