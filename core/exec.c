/*
 * exec.c - forward and backward passes of a model over a batch, as a walk over a plan.
 *
 * The exec owns every buffer a pass writes; the model is only read (except for the
 * moving batch-norm statistics in a training forward, which go to the model passed
 * as `update_bn`). What each node computes is its kind's row of the layer table
 * (layer_ops.h); this file only walks the steps, hands each node its buffers, and
 * runs the fused training blocks, which span several nodes.
 *
 * Gradient buffers are allocated per node the first time a backward pass reaches
 * them, so Grad-CAM on VGG16's last conv layer never pays for the gradients of the
 * early layers. Where a node's output feeds several nodes, the first gradient to
 * arrive is written into its buffer and the others are added to it.
 */
#include "exec.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bf16_plan.h"
#include "clock.h"
#include "conv_block.h"
#include "fast_plan.h"
#include "layer_ops.h"
#include "layers.h"
#include "onednn_train.h"
#include "parallel.h"
#include "predict_bands.h"
#include "predict_buffers.h"
#include "predict_chunks.h"
#include "predict_split.h"
#include "simd.h"

static size_t out_floats(const cs_exec *e, int i) { return (size_t)e->max_batch * cs_shape_size(e->model->layers[i].out); }

/* A node whose kind passes its input through unchanged (a flatten) is a view of that
 * input: the same floats in the same order (NHWC flattens to the same order), so its
 * output and gradient share the input's buffers instead of being copied. Only where
 * the input has no other reader, whose gradient would then land in the same place. */
static int is_view(const cs_model *m, int i)
{
    const cs_layer *l = &m->layers[i];
    int in = l->inputs[0];
    return (cs_layer_ops_of(l->kind)->flags & CS_OP_VIEW) && l->n_inputs == 1 && in >= 0 &&
           m->layers[in].n_consumers == 1;
}

static const float *node_value(const cs_exec *e, int j)
{
    if (j >= 0) return e->act[j];
    return j == CS_MODEL_INPUT ? e->input : e->extra_input[CS_MODEL_INPUT - 1 - j];
}

static float *grad_buffer(cs_exec *e, int i)
{
    if (!e->grad[i])
        e->grad[i] = is_view(e->model, i) ? grad_buffer(e, e->model->layers[i].inputs[0])
                                          : cs_floats_new(out_floats(e, i));
    return e->grad[i];
}

float *cs_floats_new(size_t n)
{
    const size_t line = 64, bytes = (n ? n : 1) * sizeof(float);
    if (bytes / sizeof(float) != (n ? n : 1) || bytes > SIZE_MAX - line) return NULL;
    return aligned_alloc(line, (bytes + line - 1) / line * line);
}

/* ---- the plan ---- */

/* Node i runs alone in every plan unless these say it starts a block. */
static int single_reader(const cs_model *m, int i, int reader)
{
    const cs_layer *r = &m->layers[reader];
    return m->layers[i].n_consumers == 1 && r->n_inputs == 1 && r->inputs[0] == i;
}

/* Nodes i, i+1, i+2 are batch norm -> LeakyReLU/ReLU -> max pool, each read only by the next,
 * the pool a square window at a stride of its size without padding (cfg.pool set). */
static int bn_act_pool_at(const cs_model *m, int i)
{
    if (i + 2 >= m->n_layers) return 0;
    const cs_layer *l = m->layers + i;
    return l[0].kind == CS_BATCHNORM && (l[1].kind == CS_LEAKY_RELU || l[1].kind == CS_RELU) &&
           l[2].kind == CS_MAXPOOL && l[2].cfg.pool > 0 && single_reader(m, i, i + 1) &&
           single_reader(m, i + 1, i + 2);
}

/* Node c is a conv with no activation of its own, read only by the block at c + 1. */
static int conv_under_block(const cs_model *m, int c)
{
    const cs_layer *l = &m->layers[c];
    return l->kind == CS_CONV2D && cs_conv2d_layer_simple(l) && l->cfg.activation == CS_ACT_LINEAR &&
           bn_act_pool_at(m, c + 1) && single_reader(m, c, c + 1);
}

static int plan_build(const cs_model *m, int fuse, cs_plan *p)
{
    free(p->steps);
    p->n = 0;
    p->steps = malloc((size_t)(m->n_layers ? m->n_layers : 1) * sizeof *p->steps);
    if (!p->steps) return -1;
    for (int i = 0; i < m->n_layers;) {
        cs_step s = {CS_STEP_NODE, i, i};
        if (fuse && conv_under_block(m, i)) s = (cs_step){CS_STEP_CONV_BN_ACT_POOL, i, i + 3};
        else if (fuse && bn_act_pool_at(m, i)) s = (cs_step){CS_STEP_BN_ACT_POOL, i, i + 2};
        p->steps[p->n++] = s;
        i = s.last + 1;
    }
    return 0;
}

/* ---- making and freeing ---- */

static size_t scratch_floats(const cs_model *m, int max_batch)
{
    size_t col = 0;
    for (int i = 0; i < m->n_layers; i++) {
        const cs_layer_ops *ops = cs_layer_ops_of(m->layers[i].kind);
        size_t need = ops->scratch_floats ? ops->scratch_floats(&m->layers[i], max_batch) : 0;
        if (need > col) col = need;
    }
    return col;
}

cs_exec *cs_exec_new(const cs_model *m, int max_batch)
{
    if (m->n_layers < 1) return NULL; /* nothing to run */
    cs_exec *e = calloc(1, sizeof *e);
    if (!e) return NULL;
    e->model = m;
    e->max_batch = max_batch;
    e->rng_state = 0x5eed;
    e->kept = -1;
    int L = m->n_layers;
    e->act = calloc((size_t)L, sizeof *e->act);
    e->grad = calloc((size_t)L, sizeof *e->grad);
    e->reached = calloc((size_t)L, 1);
    e->bn = calloc((size_t)L, sizeof *e->bn);
    e->mask = calloc((size_t)L, sizeof *e->mask);
    e->state = calloc((size_t)L, sizeof *e->state);
    e->chained = calloc((size_t)L, 1);
    e->conv_train = calloc((size_t)L, sizeof *e->conv_train);
    e->conv_train_tried = calloc((size_t)L, 1);
    if (!e->act || !e->grad || !e->reached || !e->bn || !e->mask || !e->state || !e->chained || !e->conv_train ||
        !e->conv_train_tried)
        goto fail;
    for (int i = 0; i < L; i++) {
        const cs_layer *l = &m->layers[i];
        if (is_view(m, i)) e->act[i] = e->act[l->inputs[0]];
        else if (!(e->act[i] = cs_floats_new(out_floats(e, i)))) goto fail;
        if (l->kind == CS_BATCHNORM) {
            int c = l->out.c;
            cs_bn_cache *bc = &e->bn[i];
            if (!(bc->mean = malloc((size_t)2 * c * sizeof(float))) ||
                !(bc->sums = malloc(CS_BN_SUMS(c) * sizeof(double))))
                goto fail;
            bc->inv_std = bc->mean + c;
        }
        if (l->kind == CS_DROPOUT && !(e->mask[i] = malloc(out_floats(e, i)))) goto fail;
        const cs_layer_ops *ops = cs_layer_ops_of(l->kind);
        size_t st = ops->state_floats ? ops->state_floats(l, max_batch) : 0;
        if (st && !(e->state[i] = malloc(st * sizeof(float)))) goto fail;
    }
    const cs_layer *top = &m->layers[L - 1];
    if ((top->kind == CS_DENSE || top->kind == CS_CONV2D) && top->cfg.activation == CS_ACT_SOFTMAX &&
        !(e->logits = malloc(out_floats(e, L - 1) * sizeof(float))))
        goto fail;
    size_t work = 0;
    for (int i = 0; i < L; i++) {
        const cs_layer_ops *ops = cs_layer_ops_of(m->layers[i].kind);
        size_t need = ops->work_floats ? ops->work_floats(&m->layers[i], max_batch) : 0;
        if (need > work) work = need;
    }
    if (work && !(e->work = cs_floats_new(work))) goto fail;
    /* The top's gradient is where every backward starts: always there. */
    if (!grad_buffer(e, L - 1)) goto fail;
    e->scratch.workers = cs_parallel_threads();
    e->scratch.col_floats = scratch_floats(m, max_batch);
    for (int w = 0; w < e->scratch.workers && e->scratch.col_floats; w++)
        if (!(e->scratch.col[w] = cs_floats_new(e->scratch.col_floats))) goto fail;
    if (plan_build(m, 0, &e->infer_plan) != 0 || plan_build(m, 0, &e->train_plan) != 0) goto fail;
    if (!(e->predict_act = malloc((size_t)L * sizeof *e->predict_act)) ||
        cs_predict_buffers(m, e->act, e->predict_act) != 0)
        goto fail;
    return e;
fail:
    cs_exec_free(e);
    return NULL;
}

static size_t exec_bytes(const cs_model *m, int max_batch)
{
    size_t floats = scratch_floats(m, max_batch) * (size_t)cs_parallel_threads();
    for (int i = 0; i < m->n_layers; i++) {
        const cs_layer *l = &m->layers[i];
        size_t out = (size_t)max_batch * cs_shape_size(l->out);
        const cs_layer_ops *ops = cs_layer_ops_of(l->kind);
        floats += 2 * out + (ops->state_floats ? ops->state_floats(l, max_batch) : 0);
        if (l->kind == CS_BATCHNORM) floats += 2 * (size_t)l->out.c + 2 * CS_BN_SUMS(l->out.c);
        if (l->kind == CS_DROPOUT) floats += out / 4 + 1;
        /* A conv's passes through oneDNN (onednn_train.c): the kernel copies of two
         * shapes, and each worker's kernel gradient, slot and (about as large) scratchpad. */
        if (l->kind == CS_CONV2D) floats += (4 + 3 * (size_t)cs_parallel_threads()) * cs_layer_param_count(l);
    }
    return floats * sizeof(float) + sizeof(cs_exec);
}

size_t cs_exec_bytes_bound(const cs_model *m, int max_batch)
{
    /* and the execs each worker runs its chunks of a prediction in, and the rows of
     * blocks run in bands */
    const int chunk = cs_predict_chunk_size(m);
    return exec_bytes(m, max_batch) + (chunk ? (size_t)cs_parallel_threads() * exec_bytes(m, chunk) : 0) +
           cs_predict_bands_bytes_bound(m);
}

void cs_exec_free(cs_exec *e)
{
    if (!e) return;
    int L = e->model->n_layers;
    for (int i = 0; i < L; i++) {
        if (e->act && !is_view(e->model, i)) free(e->act[i]);
        if (e->grad && !is_view(e->model, i)) free(e->grad[i]);
        if (e->mask) free(e->mask[i]);
        if (e->state) free(e->state[i]);
        if (e->conv_train) cs_onednn_train_free(e->conv_train[i]);
        if (e->bn) {
            free(e->bn[i].mean);
            free(e->bn[i].sums);
            free(e->bn[i].argmax);
            free(e->bn[i].win_grad);
            free(e->bn[i].win_xhat);
            free(e->bn[i].grad_consts);
            free(e->bn[i].moments);
        }
    }
    free(e->act);
    free(e->grad);
    free(e->reached);
    free(e->chained);
    free(e->conv_train);
    free(e->conv_train_tried);
    free(e->predict_act);
    free(e->mask);
    free(e->state);
    free(e->bn);
    free(e->logits);
    free(e->work);
    for (int k = 0; k < CS_MAX_INPUTS; k++) free(e->fanin[k]);
    for (int w = 0; w < CS_MAX_WORKERS; w++) {
        free(e->scratch.col[w]);
        free(e->scratch.part[w]);
        free(e->scratch.dy[w]);
        free(e->scratch.onednn[w]);
    }
    free(e->infer_plan.steps);
    free(e->train_plan.steps);
    free(e->param_grad);
    free(e->input_grad);
    cs_predict_chunks_free(e);
    for (int w = 0; w < CS_MAX_WORKERS; w++) free(e->band_tmp[w]);
    free(e);
}

int cs_exec_enable_param_grads(cs_exec *e)
{
    if (e->param_grad) return 0;
    e->param_grad = calloc(e->model->n_param_floats ? e->model->n_param_floats : 1, sizeof(float));
    if (!e->param_grad) return -1;
    /* Workers other than the caller add conv weight gradients into their own area. */
    size_t most = 0;
    for (int i = 0; i < e->model->n_layers; i++) {
        const cs_layer_ops *ops = cs_layer_ops_of(e->model->layers[i].kind);
        size_t need = ops->part_floats ? ops->part_floats(&e->model->layers[i]) : 0;
        if (need > most) most = need;
    }
    for (int w = 1; w < e->scratch.workers && most; w++)
        if (!(e->scratch.part[w] = cs_floats_new(most))) return -1;
    e->scratch.part_floats = most;
    /* Chunks of a conv's dy produced on demand by the fused block above it. */
    size_t dy = CS_DY_CHUNK_FLOATS;
    for (int i = 0; i < e->model->n_layers; i++)
        if ((size_t)e->model->layers[i].out.c > dy) dy = (size_t)e->model->layers[i].out.c;
    for (int w = 0; w < e->scratch.workers; w++)
        if (!(e->scratch.dy[w] = cs_floats_new(dy))) return -1;
    e->scratch.dy_floats = dy;
    return 0;
}

void cs_exec_seed_dropout(cs_exec *e, uint64_t seed) { e->rng_state = seed; }

int cs_exec_enable_input_grad(cs_exec *e)
{
    if (!e->input_grad && !(e->input_grad = malloc((size_t)e->max_batch * cs_shape_size(e->model->input) * sizeof(float))))
        return -1;
    return 0;
}

/* A conv on the model's input, of few taps, under a fused block: trained with it
 * without storing its output (conv_block.c); g and b are set for it. Decided per pass:
 * it depends on the kernels the CPU and the process settings allow. */
static cs_bn_act_pool fused_block(const cs_exec *e, int bn);
static int conv_block_ok(const cs_exec *e, int conv, cs_conv_geom *g, cs_bn_act_pool *b)
{
    /* It computes no input gradient. */
    if (e->model->layers[conv].inputs[0] != CS_MODEL_INPUT || e->input_grad) return 0;
    *g = cs_conv_geometry(&e->model->layers[conv], e->batch);
    *b = fused_block(e, conv + 1);
    return cs_conv_block_ok(g, b, &e->scratch);
}

/* The fused blocks' buffers, sized by their pooled output (node bn + 2). */
int cs_exec_set_fusion(cs_exec *e, int on)
{
    const cs_model *m = e->model;
    if (plan_build(m, on, &e->train_plan) != 0) return -1;
    e->fused = on;
    for (int s = 0; s < e->train_plan.n; s++) {
        const cs_step *st = &e->train_plan.steps[s];
        if (st->kind == CS_STEP_NODE) continue;
        int bn = st->kind == CS_STEP_BN_ACT_POOL ? st->first : st->first + 1;
        cs_bn_cache *bc = &e->bn[bn];
        if (bc->argmax) continue;
        if (!(bc->argmax = malloc(out_floats(e, bn + 2))) ||
            !(bc->win_grad = malloc(out_floats(e, bn + 2) * sizeof(float))) ||
            !(bc->win_xhat = malloc(out_floats(e, bn + 2) * sizeof(float))) ||
            !(bc->grad_consts = malloc((size_t)3 * m->layers[bn].out.c * sizeof(float))))
            return -1;
        if (st->kind == CS_STEP_CONV_BN_ACT_POOL && m->layers[st->first].inputs[0] == CS_MODEL_INPUT) {
            /* The moments and the work space of both passes of the conv trained with
             * the block, for the largest batch. */
            cs_conv_geom g = cs_conv_geometry(&m->layers[st->first], e->max_batch);
            size_t need = cs_conv_block_moment_count(&g) + cs_conv_block_work_count(&g, e->scratch.workers);
            if (!(bc->moments = malloc(need * sizeof(double)))) return -1;
        }
    }
    return 0;
}

/* ---- forward ---- */

static cs_bn_act_pool fused_block(const cs_exec *e, int bn)
{
    const cs_layer *l = e->model->layers + bn;
    return (cs_bn_act_pool){.n = e->batch, .h = l->out.h, .w = l->out.w, .c = l->out.c, .p = l[2].cfg.pool,
                            .alpha = l[1].kind == CS_LEAKY_RELU ? l[1].cfg.alpha : 0.0f,
                            .gamma = l->params[0].data, .beta = l->params[1].data, .eps = l->cfg.epsilon};
}

static float *moving(cs_model *update, int node, int which)
{
    return update ? update->layers[node].params[which].data : NULL;
}

static void forward_node(cs_exec *e, int i, cs_model *update_bn, const cs_fast_plan *fast, const cs_bf16_plan *bf16)
{
    const cs_layer *l = &e->model->layers[i];
    cs_node_pass p = {.e = e, .node = i, .l = l, .n = e->batch, .training = e->training, .update = update_bn,
                      .y = e->act[i], .state = e->state[i], .work = e->work, .fast = cs_fast_plan_node(fast, i)};
    for (int k = 0; k < l->n_inputs; k++) p.x[k] = node_value(e, l->inputs[k]);
    if (cs_bf16_node_forward(bf16, &p)) return;
    cs_layer_ops_of(l->kind)->forward(&p);
}

/* Batch norm -> activation -> pool at bn, on an input whose statistics are computed here. */
static void forward_bn_act_pool(cs_exec *e, int bn, cs_model *update_bn)
{
    const cs_layer *l = &e->model->layers[bn];
    cs_bn_cache *bc = &e->bn[bn];
    cs_bn_act_pool b = fused_block(e, bn);
    cs_bn_act_pool_forward(&b, node_value(e, l->inputs[0]), bc->mean, bc->inv_std, moving(update_bn, bn, 2),
                           moving(update_bn, bn, 3), l->cfg.momentum, e->act[bn + 2], bc->argmax, bc->win_xhat,
                           bc->sums);
}

/* The conv at c and the block above it. */
static void forward_conv_bn_act_pool(cs_exec *e, int c, cs_model *update_bn)
{
    const cs_layer *conv = &e->model->layers[c], *bnl = conv + 1;
    const int bn = c + 1;
    cs_bn_cache *bc = &e->bn[bn];
    float *mm = moving(update_bn, bn, 2), *mv = moving(update_bn, bn, 3);
    const float *w = conv->params[0].data, *bias = conv->params[1].data, *x = node_value(e, conv->inputs[0]);
    cs_conv_geom g;
    cs_bn_act_pool b;
    double t0 = e->profile ? cs_now() : 0;
    if (bc->moments && conv_block_ok(e, c, &g, &b)) { /* the conv's output is never stored */
        double *work = bc->moments + cs_conv_block_moment_count(&g);
        cs_conv_block_moments(&g, x, &e->scratch, bc->moments, work);
        cs_conv_block_stats(&g, w, bias, bc->moments, bnl->cfg.epsilon, bc->mean, bc->inv_std, mm, mv,
                            bnl->cfg.momentum, bc->sums);
        double t1 = e->profile ? cs_now() : 0;
        cs_conv_block_forward(&g, x, w, bias, &b, bc->mean, bc->inv_std, e->act[c + 3], bc->argmax, bc->win_xhat,
                              &e->scratch);
        if (e->profile) { /* the sums and statistics count as the conv's, the rest as the block's */
            e->profile[c] += t1 - t0;
            e->profile[bn] += cs_now() - t1;
        }
        return;
    }
    g = cs_conv_geometry(conv, e->batch);
    cs_bn_stats st;
    cs_bn_stats_init(&st, conv->out.c, bc->sums);
    cs_conv_forward_stats(&g, x, w, bias, e->act[c], &e->scratch, &st);
    cs_bn_stats_finish(&st, bnl->cfg.epsilon, bc->mean, bc->inv_std, mm, mv, bnl->cfg.momentum);
    double t1 = e->profile ? cs_now() : 0;
    b = fused_block(e, bn);
    cs_bn_act_pool_apply(&b, e->act[c], bc->mean, bc->inv_std, e->act[c + 3], bc->argmax, bc->win_xhat);
    if (e->profile) {
        e->profile[c] += t1 - t0;
        e->profile[bn] += cs_now() - t1;
    }
}

/* The other nodes of the chain c..last read only inside it: they are done (node
 * indices between c and the last that are not in it run as usual). */
static void mark_chained(cs_exec *e, int c, int last)
{
    for (int i = c, r; i != last; i = r) {
        r = i;
        for (int j = i + 1; j <= last && r == i; j++)
            for (int k = 0; k < e->model->layers[j].n_inputs; k++)
                if (e->model->layers[j].inputs[k] == i) r = j;
        if (r == i) break;
        e->chained[r] = 1;
    }
}

/* The chain at node c as one convolution into its last node's output; 0, or -1 when
 * it could not run (the nodes then run one by one). */
static int forward_chain(cs_exec *e, int c, const cs_fast_chain *ch)
{
    const cs_layer *l = &e->model->layers[c];
    if (ch->node.pooled) {
        cs_conv_act_pool_forward(ch->node.pooled, e->batch, node_value(e, l->inputs[0]), e->act[ch->last]);
        mark_chained(e, c, ch->last);
        return 0;
    }
    const float *addend = cs_onednn_conv_sums(ch->node.conv[0]) ? node_value(e, ch->addend) : NULL;
    if (cs_onednn_conv_forward(ch->node.conv[0], e->batch, node_value(e, l->inputs[0]), addend, e->act[ch->last],
                               &e->scratch) != 0)
        return -1;
    mark_chained(e, c, ch->last);
    return 0;
}

/* The inverted residual block at node c run whole: band by band (b), or split by its
 * wide channels (s, when b is NULL); 0, or -1 when it could not run (its chains then
 * run one by one). */
static int forward_block(cs_exec *e, int c, const cs_fast_bands *b, const cs_fast_split *s)
{
    const cs_fast_stage *project = b ? &b->stage[CS_BAND_PROJECT] : &s->stage[CS_BAND_PROJECT];
    const float *x = node_value(e, e->model->layers[c].inputs[0]);
    const float *addend = cs_onednn_conv_sums(project->conv) ? node_value(e, project->addend) : NULL;
    float *y = e->act[project->last];
    if ((b ? cs_predict_bands(e, b, x, addend, y) : cs_predict_split(e, s, x, addend, y)) != 0) return -1;
    mark_chained(e, c, project->last);
    return 0;
}

/* The fused run that starts at node c (a bf16 chain, a block in bands or split, a
 * chain), when its last node is at most `limit`: run into that node's output (its
 * inner nodes unwritten). 0 when it ran, -1 when the node must run on its own. */
static int forward_fused(cs_exec *e, int c, int limit, const cs_fast_plan *fast, const cs_bf16_plan *bf16)
{
    const int bf16_last = cs_bf16_chain_last(bf16, c);
    if (bf16_last >= 0 && bf16_last <= limit && cs_bf16_chain_forward(bf16, e, c) >= 0) {
        mark_chained(e, c, bf16_last);
        return 0;
    }
    const cs_fast_bands *bands = e->bands_off ? NULL : cs_fast_plan_bands(fast, c);
    const cs_fast_split *split = e->bands_off ? NULL : cs_fast_plan_split(fast, c);
    if (bands || split) {
        const int last = bands ? bands->stage[CS_BAND_PROJECT].last : split->stage[CS_BAND_PROJECT].last;
        if (last <= limit && forward_block(e, c, bands, split) == 0) return 0;
    }
    const cs_fast_chain *ch = cs_fast_plan_chain(fast, c);
    return ch && ch->last <= limit ? forward_chain(e, c, ch) : -1;
}

/* An inference or training pass over the plan's steps from `from` to `upto`. With
 * fused_to >= 0 (inference only), runs that end at or below that node go fused
 * (forward_fused); predict: the outputs go to predict_act, and only the top's counts. */
static int forward_plan(cs_exec *e, const cs_plan *plan, const float *const *inputs, int n, int from, int upto,
                        int training, cs_model *update_bn, int fused_to, int predict)
{
    e->batch = n;
    e->training = training;
    e->partial = predict;
    e->kept = fused_to >= 0 && !predict ? fused_to : -1;
    e->input = inputs[0];
    for (int k = 0; k < e->model->n_extra_inputs; k++) e->extra_input[k] = inputs[k + 1];
    e->top_is_dz = 0;
    /* Inference in an exec that keeps no parameter gradients may take the fast paths;
     * a training pass moves the moving statistics it is given. */
    const cs_fast_plan *fast = !training && !e->param_grad ? cs_fast_plan_get(e->model) : NULL;
    /* and a model in bf16 runs its bf16 layers first (bf16_plan.h). */
    const cs_bf16_plan *bf16 = !training && !e->param_grad ? cs_bf16_plan_get(e->model) : NULL;
    if (training && update_bn) cs_model_params_changed(update_bn);
    /* A prediction writes where outputs nobody reads any more lay (act is swapped
     * back below: the top's buffer is the same in both). */
    float **own = e->act;
    if (fused_to >= 0) memset(e->chained, 0, (size_t)e->model->n_layers);
    if (predict) e->act = e->predict_act;
    for (int s = 0; s < plan->n && plan->steps[s].first <= upto; s++) {
        const cs_step *st = &plan->steps[s];
        if (st->first < from) continue;
        double t0 = e->profile ? cs_now() : 0;
        if (fused_to >= 0 && st->kind == CS_STEP_NODE) {
            if (e->chained[st->first]) continue;
            if (forward_fused(e, st->first, fused_to, fast, bf16) == 0) {
                if (e->profile) e->profile[st->first] += cs_now() - t0;
                continue;
            }
        }
        switch (st->kind) {
        case CS_STEP_NODE: forward_node(e, st->first, update_bn, fast, bf16); break;
        case CS_STEP_BN_ACT_POOL: forward_bn_act_pool(e, st->first, update_bn); break;
        case CS_STEP_CONV_BN_ACT_POOL: forward_conv_bn_act_pool(e, st->first, update_bn); continue;
        }
        if (e->profile) e->profile[st->first] += cs_now() - t0;
    }
    e->act = own;
    return 0;
}

int cs_exec_forward_inputs(cs_exec *e, const float *const *inputs, int n, int training, cs_model *update_bn)
{
    if (n < 1 || n > e->max_batch) return -1;
    return forward_plan(e, training ? &e->train_plan : &e->infer_plan, inputs, n, 0, e->model->n_layers - 1,
                        training, update_bn, -1, 0);
}

int cs_exec_predict(cs_exec *e, const float *input, int n)
{
    if (n < 1 || n > e->max_batch || e->model->n_extra_inputs) return -1;
    const int rc = cs_predict_chunks(e, input, n);
    if (rc <= 0) return rc;
    const int top = e->model->n_layers - 1;
    return forward_plan(e, &e->infer_plan, &input, n, 0, top, 0, NULL, e->param_grad ? -1 : top, !e->param_grad);
}

int cs_exec_forward(cs_exec *e, const float *input, int n, int training, cs_model *update_bn)
{
    if (e->model->n_extra_inputs) return -1; /* cs_exec_forward_inputs */
    return cs_exec_forward_inputs(e, &input, n, training, update_bn);
}

int cs_exec_forward_upto(cs_exec *e, const float *input, int n, int upto)
{
    if (n < 1 || n > e->max_batch || upto < 0 || upto >= e->model->n_layers || e->model->n_extra_inputs) return -1;
    return forward_plan(e, &e->infer_plan, &input, n, 0, upto, 0, NULL, -1, 0);
}

int cs_exec_forward_above(cs_exec *e, const float *input, int n, int keep)
{
    if (n < 1 || n > e->max_batch || keep < 0 || keep >= e->model->n_layers || e->model->n_extra_inputs) return -1;
    return forward_plan(e, &e->infer_plan, &input, n, 0, e->model->n_layers - 1, 0, NULL, keep, 0);
}

int cs_exec_forward_from(cs_exec *e, const float *input, int n, int from)
{
    if (n < 1 || n > e->max_batch || from < 0 || from >= e->model->n_layers || e->model->n_extra_inputs) return -1;
    /* The nodes below must hold what the nodes from `from` up read: a prediction left
     * some unwritten, a forward above node k those inside fused runs up to k. */
    if (e->partial || from <= e->kept) return -1;
    /* The inference plan runs every node on its own: each step starts at a node. */
    return forward_plan(e, &e->infer_plan, &input, n, from, e->model->n_layers - 1, 0, NULL, -1, 0);
}

/* ---- seeding the top ---- */

int cs_argmax(const float *v, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[best]) best = i;
    return best;
}

float cs_exec_xent(cs_exec *e, const uint8_t *labels, int *correct)
{
    const cs_model *m = e->model;
    int top = m->n_layers - 1, k = m->layers[top].out.c, n = e->batch, hits = 0;
    const float *p = e->act[top];
    float *dz = e->grad[top];
    double loss = 0;
    for (int i = 0; i < n; i++) {
        const float *pi = p + (size_t)i * k;
        /* Keras clips probabilities to [1e-7, 1 - 1e-7] before the log. */
        float pl = pi[labels[i]];
        loss -= log(pl < 1e-7f ? 1e-7f : pl);
        hits += cs_argmax(pi, k) == labels[i];
        for (int j = 0; j < k; j++) dz[(size_t)i * k + j] = (pi[j] - (j == labels[i])) / n;
    }
    e->top_is_dz = 1;
    if (correct) *correct = hits;
    return (float)(loss / n);
}

/* The top ends in a softmax: fused into it, or a Softmax node of its own. */
static int top_is_softmax(const cs_model *m)
{
    const cs_layer *top = &m->layers[m->n_layers - 1];
    return top->kind == CS_SOFTMAX ||
           ((top->kind == CS_DENSE || top->kind == CS_CONV2D) && top->cfg.activation == CS_ACT_SOFTMAX);
}

const float *cs_exec_logits(const cs_exec *e)
{
    const cs_layer *top = &e->model->layers[e->model->n_layers - 1];
    if (top->kind == CS_SOFTMAX) return node_value(e, top->inputs[0]);
    return e->logits;
}

void cs_exec_seed_class(cs_exec *e, const int *classes, int score_kind)
{
    const cs_model *m = e->model;
    int top = m->n_layers - 1, k = m->layers[top].out.c, n = e->batch;
    int softmax = top_is_softmax(m);
    const float *p = e->act[top];
    float *g = e->grad[top];
    for (int i = 0; i < n; i++) {
        float *gi = g + (size_t)i * k;
        const float *pi = p + (size_t)i * k;
        int c = classes[i];
        /* 1 - p_c as the sum of the other probabilities: when p_c rounds to nearly 1,
         * 1.0f - p_c keeps hardly a digit of it. */
        float rest = 0;
        for (int j = 0; j < k; j++) rest += j == c ? 0.0f : pi[j];
        for (int j = 0; j < k; j++) {
            if (!softmax || score_kind == 0) gi[j] = j == c; /* d logit_c / d z */
            else gi[j] = pi[c] * (j == c ? rest : -pi[j]);  /* d p_c / d z */
        }
    }
    e->top_is_dz = softmax;
}

float *cs_exec_param_grad(const cs_exec *e, const cs_param *p)
{
    return e->param_grad ? e->param_grad + (p->data - e->model->param_block) : NULL;
}

/* ---- backward ---- */

/* Where one reader of node j puts its gradient: j's own buffer when nothing has
 * arrived there yet in this pass, else fan-in area k (added to j's buffer by
 * add_fanin). NULL when no one needs it: the model's input (unless its gradient was
 * asked for), its other inputs, or a node at or below
 * `stop` other than stop itself. -2 in *slot on a failed allocation. */
static float *grad_target(cs_exec *e, int j, int stop, int k, int *slot)
{
    *slot = -1;
    if (j < CS_MODEL_INPUT) return NULL; /* inputs other than the first take no gradient */
    if (j == CS_MODEL_INPUT) { /* only when asked for, and only by a pass down to the input */
        if (!e->input_grad || stop >= 0) return NULL;
        if (!e->input_reached) {
            e->input_reached = 1;
            return e->input_grad;
        }
    } else if (j < stop) {
        return NULL;
    } else if (!e->reached[j]) {
        float *g = grad_buffer(e, j);
        if (!g) *slot = -2;
        else e->reached[j] = 1;
        return g;
    }
    if (!e->fanin[k]) {
        size_t most = (size_t)e->max_batch * cs_shape_size(e->model->input);
        for (int i = 0; i < e->model->n_layers; i++)
            if (out_floats(e, i) > most) most = out_floats(e, i);
        if (!(e->fanin[k] = cs_floats_new(most))) {
            *slot = -2;
            return NULL;
        }
    }
    *slot = k;
    return e->fanin[k];
}

static void add_fanin(cs_exec *e, int j, int k)
{
    size_t count = (size_t)e->batch * cs_shape_size(cs_model_node_shape(e->model, j));
    float *g = j == CS_MODEL_INPUT ? e->input_grad : e->grad[j];
    const float *f = e->fanin[k];
    for (size_t i = 0; i < count; i++) g[i] += f[i];
}

static int backward_node(cs_exec *e, int i, int stop)
{
    const cs_layer *l = &e->model->layers[i];
    cs_node_pass p = {.e = e, .node = i, .l = l, .n = e->batch, .training = e->training, .y = e->act[i],
                      .dy = e->grad[i], .state = e->state[i], .work = e->work};
    int slots[CS_MAX_INPUTS], wanted = 0;
    for (int k = 0; k < l->n_inputs; k++) {
        p.x[k] = node_value(e, l->inputs[k]);
        p.dx[k] = grad_target(e, l->inputs[k], stop, k, &slots[k]);
        if (slots[k] == -2) return -1;
        wanted |= p.dx[k] != NULL;
    }
    /* A node's only use may be its parameter gradients. */
    if (!wanted && !(e->param_grad && l->n_params)) return 0;
    cs_layer_ops_of(l->kind)->backward(&p);
    for (int k = 0; k < l->n_inputs; k++)
        if (slots[k] >= 0) add_fanin(e, l->inputs[k], k);
    return 0;
}

static cs_bn_act_pool_grad block_grad(cs_exec *e, int bn, const cs_bn_act_pool *b, const float *x)
{
    const int c = e->model->layers[bn].out.c;
    cs_bn_cache *bc = &e->bn[bn];
    return (cs_bn_act_pool_grad){.b = b, .x = x, .mean = bc->mean, .inv_std = bc->inv_std, .argmax = bc->argmax,
                                 .win_xhat = bc->win_xhat, .win_grad = bc->win_grad, .scale = bc->grad_consts,
                                 .mean_dy = bc->grad_consts + c, .mean_dyx = bc->grad_consts + 2 * c,
                                 .sums = bc->sums};
}

/* Backward through the block at bn into the gradient of its input. */
static int backward_bn_act_pool(cs_exec *e, int bn, int stop)
{
    const cs_layer *l = &e->model->layers[bn];
    cs_bn_act_pool b = fused_block(e, bn);
    cs_bn_act_pool_grad gr = block_grad(e, bn, &b, node_value(e, l->inputs[0]));
    int slot;
    float *dx = grad_target(e, l->inputs[0], stop, 0, &slot);
    if (slot == -2) return -1;
    cs_bn_act_pool_backward(&gr, e->grad[bn + 2], dx, cs_exec_param_grad(e, &l->params[0]),
                            cs_exec_param_grad(e, &l->params[1]));
    if (slot >= 0) add_fanin(e, l->inputs[0], slot);
    return 0;
}

/* Backward through the block at c + 1 and the conv at c: the conv takes its dy from
 * the block chunk by chunk, so the block's input gradient is never stored. */
static int backward_conv_bn_act_pool(cs_exec *e, int c, int stop)
{
    const cs_model *m = e->model;
    const int bn = c + 1, L = m->n_layers;
    const cs_layer *conv = &m->layers[c], *bnl = conv + 1;
    const float *x = node_value(e, conv->inputs[0]);
    double t0 = e->profile ? cs_now() : 0;
    float *dgamma = cs_exec_param_grad(e, &bnl->params[0]), *dbeta = cs_exec_param_grad(e, &bnl->params[1]);
    float *dw = cs_exec_param_grad(e, &conv->params[0]), *db = cs_exec_param_grad(e, &conv->params[1]);
    cs_conv_geom cg;
    cs_bn_act_pool cb;
    if (e->bn[bn].moments && conv_block_ok(e, c, &cg, &cb)) { /* the conv's output was never stored */
        cs_bn_act_pool_grad gr = block_grad(e, bn, &cb, e->act[c]);
        cs_conv_block_backward(&cg, x, conv->params[0].data, conv->params[1].data, &gr, e->grad[c + 3],
                               e->bn[bn].moments, dgamma, dbeta, dw, db, &e->scratch,
                               e->bn[bn].moments + cs_conv_block_moment_count(&cg));
        if (e->profile) e->profile[L + c] += cs_now() - t0; /* the block's and the conv's */
        return 0;
    }
    cs_bn_act_pool b = fused_block(e, bn);
    cs_bn_act_pool_grad gr = block_grad(e, bn, &b, e->act[c]);
    int slot;
    float *dx = grad_target(e, conv->inputs[0], stop, 0, &slot);
    if (slot == -2) return -1;
    if (!e->scratch.dy_floats) { /* no chunk buffers (no parameter gradients): the plain way */
        float *dconv = grad_buffer(e, c);
        if (!dconv) return -1;
        cs_bn_act_pool_backward(&gr, e->grad[c + 3], dconv, dgamma, dbeta);
        cs_conv_geom g = cs_conv_geometry(conv, e->batch);
        if (dx || dw) cs_conv_backward(&g, x, conv->params[0].data, dconv, dx, dw, db, &e->scratch);
    } else {
        cs_bn_act_pool_backward_begin(&gr, e->grad[c + 3], dgamma, dbeta);
        if (e->profile) {
            double t1 = cs_now();
            e->profile[L + bn] += t1 - t0;
            t0 = t1;
        }
        if (dw || dx) {
            cs_conv_geom g = cs_conv_geometry(conv, e->batch);
            cs_rows_source src = {cs_bn_act_pool_input_grad, &gr};
            cs_conv_backward_from(&g, x, conv->params[0].data, &src, dx, dw, db, &e->scratch);
        }
    }
    if (slot >= 0) add_fanin(e, conv->inputs[0], slot);
    if (e->profile) e->profile[L + c] += cs_now() - t0;
    return 0;
}

/* The walk down from the seeded node `from` (the top, or any node whose grad the
 * caller wrote) to `stop`. */
static int backward_walk(cs_exec *e, int from, int stop)
{
    const cs_model *m = e->model;
    const cs_plan *plan = e->training ? &e->train_plan : &e->infer_plan;
    /* The nodes passed read their outputs and their inputs' (forward_plan). */
    if (e->partial || stop < e->kept) return -1;
    if (e->param_grad) memset(e->param_grad, 0, m->n_param_floats * sizeof(float));
    memset(e->reached, 0, (size_t)m->n_layers);
    e->reached[from] = 1; /* seeded */
    e->input_reached = 0;
    for (int s = plan->n - 1; s >= 0; s--) {
        const cs_step *st = &plan->steps[s];
        if (st->last <= stop) break;
        /* Nothing above reached this step's output: no gradient flows through it. */
        if (!e->reached[st->last]) continue;
        double t0 = e->profile ? cs_now() : 0;
        int rc = 0;
        switch (st->kind) {
        case CS_STEP_NODE: rc = backward_node(e, st->first, stop); break;
        case CS_STEP_BN_ACT_POOL: rc = backward_bn_act_pool(e, st->first, stop); break;
        case CS_STEP_CONV_BN_ACT_POOL:
            if (backward_conv_bn_act_pool(e, st->first, stop) != 0) return -1;
            continue;
        }
        if (rc != 0) return -1;
        if (e->profile) e->profile[m->n_layers + st->first] += cs_now() - t0;
    }
    return 0;
}

int cs_exec_backward(cs_exec *e, int stop)
{
    return backward_walk(e, e->model->n_layers - 1, stop);
}

float *cs_exec_node_grad(cs_exec *e, int node)
{
    if (node < 0 || node >= e->model->n_layers) return NULL;
    return grad_buffer(e, node);
}

int cs_exec_backward_from(cs_exec *e, int node, int stop)
{
    if (node < 0 || node >= e->model->n_layers || stop >= node || !e->grad[node]) return -1;
    /* A fused training step hides its inner nodes' gradients: seed inference passes only. */
    if (e->training && e->fused) return -1;
    return backward_walk(e, node, stop);
}

/* sum |w| and sum w^2 of n floats, and g += l1 sign(w) + 2 l2 w when g is given. The
 * sums run in 16 float lanes over blocks of 1024 (so they vectorise; a plain running
 * sum may not be reordered), each block added in double. */
CS_CLONES static void penalty_of(const float *w, size_t n, float l1, float l2, float *g, double *s1, double *s2)
{
    enum { LANES = 16, BLOCK = 1024 };
    for (size_t b0 = 0; b0 < n; b0 += BLOCK) {
        const size_t b1 = b0 + BLOCK < n ? b0 + BLOCK : n;
        float a1[LANES] = {0}, a2[LANES] = {0};
        size_t k = b0;
        for (; k + LANES <= b1; k += LANES)
            for (int l = 0; l < LANES; l++) a1[l] += fabsf(w[k + l]), a2[l] += w[k + l] * w[k + l];
        for (; k < b1; k++) a1[0] += fabsf(w[k]), a2[0] += w[k] * w[k];
        for (int l = 0; l < LANES; l++) *s1 += a1[l], *s2 += a2[l];
    }
    if (g)
        for (size_t k = 0; k < n; k++) g[k] += l1 * (float)((w[k] > 0) - (w[k] < 0)) + 2 * l2 * w[k];
}

float cs_model_penalty(const cs_model *m, float *param_grad)
{
    double total = 0;
    for (int i = 0; i < m->n_layers; i++)
        for (int j = 0; j < m->layers[i].n_params; j++) {
            const cs_param *p = &m->layers[i].params[j];
            if (p->l1 == 0 && p->l2 == 0) continue;
            double s1 = 0, s2 = 0;
            penalty_of(p->data, p->size, p->l1, p->l2, param_grad ? param_grad + (p->data - m->param_block) : NULL,
                       &s1, &s2);
            total += p->l1 * s1 + p->l2 * s2;
        }
    return (float)total;
}
