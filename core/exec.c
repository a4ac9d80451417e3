/*
 * exec.c - forward and backward passes of a model over a batch.
 *
 * The exec owns every buffer a pass writes; the model is only read (except for the
 * moving batch-norm statistics in a training forward, which go to the model passed
 * as `update_bn`). Gradient buffers are allocated per layer the first time a
 * backward pass reaches them, so Grad-CAM on VGG16's last conv layer never pays
 * for the gradients of the early layers. Training passes with `fuse` set run each
 * batch norm -> activation -> max pool as one block (bn_act_pool.c), joined to the
 * conv below it; inference always runs layer by layer, so every activation stays
 * readable for feature maps and Grad-CAM.
 */
#include "exec.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "conv_block.h"
#include "layers.h"
#include "parallel.h"
#include "simd.h"

static size_t out_floats(const cs_exec *e, int i) { return (size_t)e->max_batch * cs_shape_size(e->model->layers[i].out); }

/* A flatten after another layer is a view of that layer's output (NHWC flattens to
 * the same order): its activation and gradient share that layer's buffers instead of
 * being copied (a copy of the whole batch each way, with the other cores idle). */
static int is_view(const cs_model *m, int i)
{
    return i > 0 && m->layers[i].kind == CS_FLATTEN;
}

cs_exec *cs_exec_new(const cs_model *m, int max_batch)
{
    cs_exec *e = calloc(1, sizeof *e);
    if (!e) return NULL;
    e->model = m;
    e->max_batch = max_batch;
    e->rng_state = 0x5eed;
    int L = m->n_layers;
    e->act = calloc((size_t)L, sizeof *e->act);
    e->grad = calloc((size_t)L, sizeof *e->grad);
    e->bn = calloc((size_t)L, sizeof *e->bn);
    e->mask = calloc((size_t)L, sizeof *e->mask);
    if (!e->act || !e->grad || !e->bn || !e->mask) goto fail;
    size_t col = 0;
    for (int i = 0; i < L; i++) {
        const cs_layer *l = &m->layers[i];
        if (is_view(m, i)) e->act[i] = e->act[i - 1]; /* the same floats in the same order */
        else if (!(e->act[i] = malloc(out_floats(e, i) * sizeof(float)))) goto fail;
        if (l->kind == CS_CONV2D) {
            cs_conv_geom g = cs_conv_geometry(l, max_batch);
            size_t need = cs_conv_chunk_rows(&g, (size_t)-1) * g.k * g.k * g.ic;
            if (need > col) col = need;
        }
    }
    const cs_layer *top = &m->layers[L - 1];
    if (top->kind == CS_DENSE && top->cfg.activation == CS_ACT_SOFTMAX &&
        !(e->logits = malloc(out_floats(e, L - 1) * sizeof(float))))
        goto fail;
    e->scratch.workers = cs_parallel_threads();
    e->scratch.col_floats = col;
    for (int w = 0; w < e->scratch.workers && col; w++)
        if (!(e->scratch.col[w] = malloc(col * sizeof(float)))) goto fail;
    return e;
fail:
    cs_exec_free(e);
    return NULL;
}

void cs_exec_free(cs_exec *e)
{
    if (!e) return;
    int L = e->model->n_layers;
    for (int i = 0; i < L; i++) {
        if (is_view(e->model, i)) continue;
        if (e->act) free(e->act[i]);
        if (e->grad) free(e->grad[i]);
        if (e->mask) free(e->mask[i]);
        if (e->bn) {
            free(e->bn[i].mean);
            free(e->bn[i].argmax);
            free(e->bn[i].win_grad);
            free(e->bn[i].win_xhat);
            free(e->bn[i].grad_consts);
            free(e->bn[i].moments);
        }
    }
    free(e->act);
    free(e->grad);
    free(e->mask);
    free(e->bn);
    free(e->logits);
    for (int w = 0; w < CS_MAX_WORKERS; w++) {
        free(e->scratch.col[w]);
        free(e->scratch.part[w]);
        free(e->scratch.dy[w]);
    }
    free(e->param_grad);
    free(e);
}

int cs_exec_enable_param_grads(cs_exec *e)
{
    if (e->param_grad) return 0;
    e->param_grad = calloc(e->model->n_param_floats ? e->model->n_param_floats : 1, sizeof(float));
    if (!e->param_grad) return -1;
    /* Workers other than the caller add conv weight gradients into their own area. */
    size_t most = 0;
    for (int i = 0; i < e->model->n_layers; i++)
        if (e->model->layers[i].kind == CS_CONV2D && cs_layer_param_count(&e->model->layers[i]) > most)
            most = cs_layer_param_count(&e->model->layers[i]);
    for (int w = 1; w < e->scratch.workers && most; w++)
        if (!(e->scratch.part[w] = malloc(most * sizeof(float)))) return -1;
    e->scratch.part_floats = most;
    /* Chunks of a conv's dy produced on demand by the fused block above it. */
    size_t dy = CS_DY_CHUNK_FLOATS;
    for (int i = 0; i < e->model->n_layers; i++)
        if ((size_t)e->model->layers[i].out.c > dy) dy = (size_t)e->model->layers[i].out.c;
    for (int w = 0; w < e->scratch.workers; w++)
        if (!(e->scratch.dy[w] = malloc(dy * sizeof(float)))) return -1;
    e->scratch.dy_floats = dy;
    return 0;
}

void cs_exec_seed_dropout(cs_exec *e, uint64_t seed) { e->rng_state = seed; }

/* Per-layer training caches, allocated on the first training pass. */
static int ensure_train_buffers(cs_exec *e, int i)
{
    const cs_layer *l = &e->model->layers[i];
    if (l->kind == CS_BATCHNORM && !e->bn[i].mean) {
        int c = l->out.c;
        e->bn[i].mean = malloc((size_t)2 * c * sizeof(float));
        if (!e->bn[i].mean) return -1;
        e->bn[i].inv_std = e->bn[i].mean + c;
    }
    if (l->kind == CS_DROPOUT && !e->mask[i] && !(e->mask[i] = malloc(out_floats(e, i)))) return -1;
    return 0;
}

/* The fused block's own buffers, sized by its pooled output (layer i + 2). */
static int ensure_block_buffers(cs_exec *e, int i)
{
    cs_bn_cache *bc = &e->bn[i];
    if (bc->argmax) return 0;
    bc->argmax = malloc(out_floats(e, i + 2));
    bc->win_grad = malloc(out_floats(e, i + 2) * sizeof(float));
    bc->win_xhat = malloc(out_floats(e, i + 2) * sizeof(float));
    bc->grad_consts = malloc((size_t)3 * e->model->layers[i].out.c * sizeof(float));
    return bc->argmax && bc->win_grad && bc->win_xhat && bc->grad_consts ? 0 : -1;
}

/* Layers i, i+1, i+2 form a batch norm -> LeakyReLU/ReLU -> max pool block. */
static int fused_block_at(const cs_exec *e, int i)
{
    const cs_model *m = e->model;
    if (!e->fuse || !e->training || i + 2 >= m->n_layers) return 0;
    const cs_layer *l = m->layers + i;
    return l[0].kind == CS_BATCHNORM && (l[1].kind == CS_LEAKY_RELU || l[1].kind == CS_RELU) &&
           l[2].kind == CS_MAXPOOL;
}

static cs_bn_act_pool fused_block(const cs_exec *e, int i)
{
    const cs_layer *l = e->model->layers + i;
    return (cs_bn_act_pool){.n = e->batch, .h = l->out.h, .w = l->out.w, .c = l->out.c, .p = l[2].cfg.pool,
                            .alpha = l[1].kind == CS_LEAKY_RELU ? l[1].cfg.alpha : 0.0f,
                            .gamma = l->params[0].data, .beta = l->params[1].data, .eps = l->cfg.epsilon};
}

/* The fused block at bn sits right on a conv with no activation of its own: the conv
 * gathers the block's batch statistics as it writes its output, and takes its dy from
 * the block chunk by chunk in backward. */
static int conv_feeds_block(const cs_exec *e, int bn)
{
    const cs_layer *below = bn ? &e->model->layers[bn - 1] : NULL;
    return below && below->kind == CS_CONV2D && below->cfg.activation == CS_ACT_LINEAR && fused_block_at(e, bn);
}

/* Layer 0 is a conv of few taps under a fused block: trained with it without storing
 * its output (conv_block.c); g and b are set for it. */
static int conv_block_at(const cs_exec *e, int i, cs_conv_geom *g, cs_bn_act_pool *b)
{
    if (i != 0 || !conv_feeds_block(e, 1)) return 0;
    *g = cs_conv_geometry(&e->model->layers[0], e->batch);
    *b = fused_block(e, 1);
    return cs_conv_block_ok(g, b, &e->scratch);
}

/* Forward through layers 0..3 that way. */
static int forward_conv_block(cs_exec *e, const float *input, const cs_conv_geom *g, const cs_bn_act_pool *b,
                              cs_model *update_bn)
{
    const cs_layer *conv = &e->model->layers[0], *bnl = conv + 1;
    cs_bn_cache *bc = &e->bn[1];
    if (ensure_train_buffers(e, 1) != 0 || ensure_block_buffers(e, 1) != 0) return -1;
    /* The moments, then the work space of both passes (allocated here, where a failure
     * can be reported, for the backward too). */
    if (!bc->moments &&
        !(bc->moments = malloc((cs_conv_block_moment_count(g) + cs_conv_block_work_count(g, e->scratch.workers)) *
                               sizeof(double))))
        return -1;
    double *work = bc->moments + cs_conv_block_moment_count(g);
    const cs_layer *ul = update_bn ? &update_bn->layers[1] : NULL;
    double t0 = e->profile ? cs_now() : 0;
    cs_conv_block_moments(g, input, &e->scratch, bc->moments, work);
    cs_conv_block_stats(g, conv->params[0].data, conv->params[1].data, bc->moments, bnl->cfg.epsilon, bc->mean,
                        bc->inv_std, ul ? ul->params[2].data : NULL, ul ? ul->params[3].data : NULL,
                        bnl->cfg.momentum);
    double t1 = e->profile ? cs_now() : 0;
    cs_conv_block_forward(g, input, conv->params[0].data, conv->params[1].data, b, bc->mean, bc->inv_std, e->act[3],
                          bc->argmax, bc->win_xhat, &e->scratch);
    if (e->profile) { /* the sums and statistics count as the conv's, the rest as the block's */
        e->profile[0] += t1 - t0;
        e->profile[1] += cs_now() - t1;
    }
    return 0;
}

static void forward_layer(cs_exec *e, int i, const float *x, int n, int training, cs_model *update_bn)
{
    const cs_layer *l = &e->model->layers[i];
    float *y = e->act[i];
    const size_t count = (size_t)n * cs_shape_size(l->out), rows = (size_t)n * l->out.h * l->out.w;
    switch (l->kind) {
    case CS_CONV2D:
    case CS_DENSE: {
        int softmax = l->cfg.activation == CS_ACT_SOFTMAX;
        float *z = softmax ? e->logits : y;
        if (l->kind == CS_CONV2D && conv_feeds_block(e, i + 1)) {
            cs_conv_geom g = cs_conv_geometry(l, n);
            cs_bn_stats st;
            const cs_layer *bnl = l + 1, *ul = update_bn ? &update_bn->layers[i + 1] : NULL;
            float *mm = ul ? ul->params[2].data : NULL, *mv = ul ? ul->params[3].data : NULL;
            if (ensure_train_buffers(e, i + 1) != 0) return;
            if (cs_bn_stats_init(&st, l->out.c) == 0) {
                cs_conv_forward_stats(&g, x, l->params[0].data, l->params[1].data, z, &e->scratch, &st);
                cs_bn_stats_finish(&st, bnl->cfg.epsilon, e->bn[i + 1].mean, e->bn[i + 1].inv_std, mm, mv,
                                   bnl->cfg.momentum);
            } else { /* no memory for the per-worker sums: the same statistics in a pass of their own */
                cs_conv_forward(&g, x, l->params[0].data, l->params[1].data, z, &e->scratch);
                cs_bn_batch_stats(rows, l->out.c, z, bnl->cfg.epsilon, e->bn[i + 1].mean, e->bn[i + 1].inv_std, mm,
                                  mv, bnl->cfg.momentum);
            }
        } else if (l->kind == CS_CONV2D) {
            cs_conv_geom g = cs_conv_geometry(l, n);
            cs_conv_forward(&g, x, l->params[0].data, l->params[1].data, z, &e->scratch);
        } else {
            cs_dense_forward(n, l->in.c, l->out.c, x, l->params[0].data, l->params[1].data, z);
        }
        if (l->cfg.activation == CS_ACT_RELU) cs_relu_forward(count, y, y);
        if (softmax) cs_softmax_forward((int)rows, l->out.c, z, y);
        break;
    }
    case CS_BATCHNORM:
        if (training) {
            cs_layer *ul = update_bn ? &update_bn->layers[i] : NULL;
            cs_bn_forward_train(rows, l->out.c, x, l->params[0].data, l->params[1].data, l->cfg.epsilon, y,
                                e->bn[i].mean, e->bn[i].inv_std, ul ? ul->params[2].data : NULL,
                                ul ? ul->params[3].data : NULL, l->cfg.momentum);
        } else {
            cs_bn_forward_infer(rows, l->out.c, x, l->params[0].data, l->params[1].data, l->params[2].data,
                                l->params[3].data, l->cfg.epsilon, y);
        }
        break;
    case CS_LEAKY_RELU: cs_leaky_forward(count, l->cfg.alpha, x, y); break;
    case CS_RELU: cs_relu_forward(count, x, y); break;
    case CS_MAXPOOL: cs_maxpool_forward(n, l->in.h, l->in.w, l->in.c, l->cfg.pool, x, y); break;
    case CS_FLATTEN:
        if (y != x) memcpy(y, x, count * sizeof(float)); /* a view of its input (is_view) unless first */
        break;
    case CS_DROPOUT:
        if (training && l->cfg.rate > 0) cs_dropout_forward(count, l->cfg.rate, x, y, e->mask[i], &e->rng_state);
        else memcpy(y, x, count * sizeof(float));
        break;
    }
}

static void forward_range(cs_exec *e, const float *input, int n, int upto, int training, cs_model *update_bn)
{
    e->batch = n;
    e->training = training;
    e->input = input;
    e->top_is_dz = 0;
    for (int i = 0; i <= upto; i++) {
        if (training && ensure_train_buffers(e, i) != 0) return;
        cs_conv_geom g;
        cs_bn_act_pool b;
        if (i + 3 <= upto && conv_block_at(e, i, &g, &b)) {
            if (forward_conv_block(e, input, &g, &b, update_bn) != 0) return;
            i += 3;
            continue;
        }
        double t0 = e->profile ? cs_now() : 0;
        if (i + 2 <= upto && fused_block_at(e, i)) {
            if (ensure_block_buffers(e, i) != 0) return;
            cs_bn_act_pool b = fused_block(e, i);
            cs_layer *ul = update_bn ? &update_bn->layers[i] : NULL;
            cs_bn_cache *bc = &e->bn[i];
            if (conv_feeds_block(e, i)) /* the statistics came with the conv's output */
                cs_bn_act_pool_apply(&b, e->act[i - 1], bc->mean, bc->inv_std, e->act[i + 2], bc->argmax,
                                     bc->win_xhat);
            else
                cs_bn_act_pool_forward(&b, i ? e->act[i - 1] : input, bc->mean, bc->inv_std,
                                       ul ? ul->params[2].data : NULL, ul ? ul->params[3].data : NULL,
                                       e->model->layers[i].cfg.momentum, e->act[i + 2], bc->argmax, bc->win_xhat);
            if (e->profile) e->profile[i] += cs_now() - t0;
            i += 2;
            continue;
        }
        forward_layer(e, i, i ? e->act[i - 1] : input, n, training, update_bn);
        if (e->profile) e->profile[i] += cs_now() - t0;
    }
}

void cs_exec_forward(cs_exec *e, const float *input, int n, int training, cs_model *update_bn)
{
    forward_range(e, input, n, e->model->n_layers - 1, training, update_bn);
}

void cs_exec_forward_upto(cs_exec *e, const float *input, int n, int upto)
{
    forward_range(e, input, n, upto, 0, NULL);
}

static float *grad_buffer(cs_exec *e, int i)
{
    if (!e->grad[i])
        e->grad[i] = is_view(e->model, i) ? grad_buffer(e, i - 1) : malloc(out_floats(e, i) * sizeof(float));
    return e->grad[i];
}

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
    float *dz = grad_buffer(e, top);
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

void cs_exec_seed_class(cs_exec *e, const int *classes, int score_kind)
{
    const cs_model *m = e->model;
    int top = m->n_layers - 1, k = m->layers[top].out.c, n = e->batch;
    int softmax = m->layers[top].cfg.activation == CS_ACT_SOFTMAX;
    const float *p = e->act[top];
    float *g = grad_buffer(e, top);
    for (int i = 0; i < n; i++) {
        float *gi = g + (size_t)i * k;
        const float *pi = p + (size_t)i * k;
        int c = classes[i];
        for (int j = 0; j < k; j++) {
            if (!softmax || score_kind == 0) gi[j] = j == c; /* d logit_c / d z */
            else gi[j] = pi[c] * ((j == c) - pi[j]);       /* d p_c / d z */
        }
    }
    e->top_is_dz = softmax;
}

static float *pgrad(cs_exec *e, const cs_param *p)
{
    return e->param_grad ? e->param_grad + (p->data - e->model->param_block) : NULL;
}

static void backward_layer(cs_exec *e, int i)
{
    const cs_layer *l = &e->model->layers[i];
    const int n = e->batch;
    const size_t count = (size_t)n * cs_shape_size(l->out), rows = (size_t)n * l->out.h * l->out.w;
    const float *x = i ? e->act[i - 1] : e->input;
    float *dy = e->grad[i];
    float *dx = i ? grad_buffer(e, i - 1) : NULL;
    switch (l->kind) {
    case CS_CONV2D:
    case CS_DENSE: {
        /* First through the fused activation, in place: grad[i] becomes d/dz. */
        if (l->cfg.activation == CS_ACT_RELU) cs_relu_backward(count, e->act[i], dy, dy);
        else if (l->cfg.activation == CS_ACT_SOFTMAX && !(i == e->model->n_layers - 1 && e->top_is_dz))
            cs_softmax_backward((int)rows, l->out.c, e->act[i], dy, dy);
        float *dw = pgrad(e, &l->params[0]), *db = pgrad(e, &l->params[1]);
        if (l->kind == CS_CONV2D) {
            cs_conv_geom g = cs_conv_geometry(l, n);
            cs_conv_backward(&g, x, l->params[0].data, dy, dx, dw, db, &e->scratch);
        } else {
            cs_dense_backward(n, l->in.c, l->out.c, x, l->params[0].data, dy, dx, dw, db);
        }
        break;
    }
    case CS_BATCHNORM:
        if (e->training)
            cs_bn_backward_train(rows, l->out.c, x, dy, l->params[0].data, e->bn[i].mean, e->bn[i].inv_std, dx,
                                 pgrad(e, &l->params[0]), pgrad(e, &l->params[1]));
        else
            cs_bn_backward_infer(rows, l->out.c, x, dy, l->params[0].data, l->params[2].data, l->params[3].data,
                                 l->cfg.epsilon, dx, pgrad(e, &l->params[0]), pgrad(e, &l->params[1]));
        break;
    case CS_LEAKY_RELU: cs_leaky_backward(count, l->cfg.alpha, x, dy, dx); break;
    case CS_RELU: cs_relu_backward(count, e->act[i], dy, dx); break;
    case CS_MAXPOOL: cs_maxpool_backward(n, l->in.h, l->in.w, l->in.c, l->cfg.pool, x, e->act[i], dy, dx); break;
    case CS_FLATTEN:
        if (dx != dy) memcpy(dx, dy, count * sizeof(float));
        break;
    case CS_DROPOUT:
        if (e->training && l->cfg.rate > 0) cs_dropout_backward(count, l->cfg.rate, e->mask[i], dy, dx);
        else memcpy(dx, dy, count * sizeof(float));
        break;
    }
}

static cs_bn_act_pool_grad block_grad(cs_exec *e, int bn, const cs_bn_act_pool *b, const float *x)
{
    const int c = e->model->layers[bn].out.c;
    cs_bn_cache *bc = &e->bn[bn];
    return (cs_bn_act_pool_grad){.b = b, .x = x, .mean = bc->mean, .inv_std = bc->inv_std, .argmax = bc->argmax,
                                 .win_xhat = bc->win_xhat, .win_grad = bc->win_grad, .scale = bc->grad_consts,
                                 .mean_dy = bc->grad_consts + c, .mean_dyx = bc->grad_consts + 2 * c};
}

/* Backward through the fused block starting at layer bn. A conv right below it (with no
 * activation of its own) takes its dy from the block chunk by chunk, so the block's
 * input gradient is never stored. Returns the index of the last layer it went through. */
static int backward_fused_block(cs_exec *e, int bn, double t0)
{
    const cs_model *m = e->model;
    const cs_layer *l = &m->layers[bn];
    cs_bn_act_pool b = fused_block(e, bn);
    cs_bn_act_pool_grad gr = block_grad(e, bn, &b, bn ? e->act[bn - 1] : e->input);
    const float *dpooled = e->grad[bn + 2];
    float *dgamma = pgrad(e, &l->params[0]), *dbeta = pgrad(e, &l->params[1]);
    const cs_layer *below = bn ? &m->layers[bn - 1] : NULL;
    cs_conv_geom cg;
    cs_bn_act_pool cb;
    if (conv_block_at(e, bn - 1, &cg, &cb)) { /* the conv's output was never stored */
        float *dw = pgrad(e, &below->params[0]), *db = pgrad(e, &below->params[1]);
        cs_conv_block_backward(&cg, e->input, below->params[0].data, below->params[1].data, &gr, dpooled,
                               e->bn[bn].moments, dgamma, dbeta, dw, db, &e->scratch,
                               e->bn[bn].moments + cs_conv_block_moment_count(&cg));
        if (e->profile) e->profile[m->n_layers + bn - 1] += cs_now() - t0; /* the block's and the conv's */
        return bn - 1;
    }
    if (!conv_feeds_block(e, bn) || !e->scratch.dy_floats) {
        cs_bn_act_pool_backward(&gr, dpooled, bn ? grad_buffer(e, bn - 1) : NULL, dgamma, dbeta);
        if (e->profile) e->profile[m->n_layers + bn] += cs_now() - t0;
        return bn;
    }
    cs_bn_act_pool_backward_begin(&gr, dpooled, dgamma, dbeta);
    if (e->profile) {
        double t1 = cs_now();
        e->profile[m->n_layers + bn] += t1 - t0;
        t0 = t1;
    }
    const int conv = bn - 1;
    float *dw = pgrad(e, &below->params[0]), *db = pgrad(e, &below->params[1]);
    float *dx = conv ? grad_buffer(e, conv - 1) : NULL;
    if (dw || dx) {
        cs_conv_geom g = cs_conv_geometry(below, e->batch);
        cs_rows_source src = {cs_bn_act_pool_input_grad, &gr};
        cs_conv_backward_from(&g, conv ? e->act[conv - 1] : e->input, below->params[0].data, &src, dx, dw, db,
                              &e->scratch);
    }
    if (e->profile) e->profile[m->n_layers + conv] += cs_now() - t0;
    return conv;
}

void cs_exec_backward(cs_exec *e, int stop)
{
    if (e->param_grad) memset(e->param_grad, 0, e->model->n_param_floats * sizeof(float));
    for (int i = e->model->n_layers - 1; i > stop; i--) {
        /* Layer 0's only use is its parameter gradient. */
        if (i == 0 && !e->param_grad) break;
        double t0 = e->profile ? cs_now() : 0;
        if (i >= 2 && fused_block_at(e, i - 2)) {
            i = backward_fused_block(e, i - 2, t0);
            continue;
        }
        backward_layer(e, i);
        if (e->profile) e->profile[e->model->n_layers + i] += cs_now() - t0;
    }
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
