/*
 * fast_plan.c - per-model choice of the inference fast paths (fast_plan.h).
 */
#include "fast_plan.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "layer_ops.h"
#include "predict_bands.h"
#include "predict_split.h"
#include "layers/kernels.h"

struct cs_fast_plan {
    uint64_t params_version; /* the model's when it was made */
    int threads;             /* the pool's then: convs split single images by it */
    cs_fast_mode mode;
    int n;
    cs_fast_node *node;          /* [n] */
    const cs_fast_node **active; /* [n]: &node[i], or NULL where node i has no fast path */
    cs_fast_chain **chain;       /* [n]: the chain starting at node i, or NULL */
    cs_fast_bands **bands;       /* [n]: the block run in bands starting at node i, or NULL */
    cs_fast_split **split;       /* [n]: the block split by channels starting at node i, or NULL */
};

/* The plans of one model, by mode: switching modes (tests, benchmarks) keeps them. */
struct cs_fast_plans {
    cs_fast_plan *plan[CS_FAST_AUTO + 1];
};

static atomic_int g_mode = CS_FAST_AUTO;
/* Guards every model's plan pointer: taken once per pass, held long only while a plan is made. */
static pthread_mutex_t plan_lock = PTHREAD_MUTEX_INITIALIZER;

void cs_fast_set_mode(cs_fast_mode mode) { atomic_store(&g_mode, (int)mode); }
cs_fast_mode cs_fast_get_mode(void) { return (cs_fast_mode)atomic_load(&g_mode); }

static void node_free(cs_fast_node *f)
{
    for (int k = 0; k < CS_FAST_CONVS; k++) cs_onednn_conv_free(f->conv[k]);
    free(f->folded[0]);
    free(f->folded[1]);
    free(f->pooled);
}

static void plan_free(cs_fast_plan *p)
{
    if (!p) return;
    for (int i = 0; i < p->n; i++) {
        if (p->node) node_free(&p->node[i]);
        if (p->chain && p->chain[i]) {
            node_free(&p->chain[i]->node);
            free(p->chain[i]);
        }
        if (p->bands) free(p->bands[i]);
        if (p->split) cs_fast_split_free(p->split[i]);
    }
    free(p->bands);
    free(p->split);
    free(p->node);
    free(p->active);
    free(p->chain);
    free(p);
}

/* ---- chains ---- */

/* The one node reading node i, if exactly one does. */
static int only_reader(const cs_model *m, int i, int *reader)
{
    if (m->layers[i].n_consumers != 1) return 0;
    for (int r = i + 1; r < m->n_layers; r++)
        for (int k = 0; k < m->layers[r].n_inputs; k++)
            if (m->layers[r].inputs[k] == i) {
                *reader = r;
                return 1;
            }
    return 0;
}

/* Each node from first to last is the only reader of the one before it and follows it. */
static int in_a_row(const cs_model *m, int first, int last)
{
    for (int i = first, r; i < last; i = r)
        if (!only_reader(m, i, &r) || r != i + 1) return 0;
    return 1;
}

/* Node i as a stage of a block run in bands: its chain (a one-pass conv's too, which
 * only a first stage may be), or its own fast conv. */
static int stage_at(const cs_fast_plan *p, int i, cs_fast_stage *st)
{
    const cs_fast_chain *ch = p->chain[i];
    memset(st, 0, sizeof *st);
    st->first = i;
    if (ch) {
        st->conv = ch->node.pooled ? NULL : ch->node.conv[0], st->last = ch->last, st->addend = ch->addend;
        if (ch->node.pooled && ch->node.pooled->pool == 1) st->pooled = ch->node.pooled;
    } else {
        st->conv = p->node[i].conv[0] && !p->node[i].conv[1] ? p->node[i].conv[0] : NULL, st->last = i;
    }
    return st->conv || st->pooled;
}

static int same_shape(cs_shape a, cs_shape b) { return a.h == b.h && a.w == b.w && a.c == b.c; }

/* The activation node r as a post-op, if it is one oneDNN applies. */
static int activation_post(const cs_layer *r, cs_onednn_post *post)
{
    if (r->n_inputs != 1) return 0;
    if (r->kind == CS_RELU) {
        post->act = CS_ONEDNN_RELU, post->alpha = 0;
        return 1;
    }
    if (r->kind == CS_LEAKY_RELU) {
        post->act = CS_ONEDNN_RELU, post->alpha = r->cfg.alpha;
        return 1;
    }
    if (r->kind != CS_ACTIVATION) return 0;
    switch ((cs_actf)r->cfg.actf) {
    case CS_ACTF_RELU: post->act = CS_ONEDNN_RELU, post->alpha = 0; return 1;
    case CS_ACTF_LEAKY: post->act = CS_ONEDNN_RELU, post->alpha = r->cfg.act_a; return 1;
    case CS_ACTF_CLIP: post->act = CS_ONEDNN_CLIP, post->alpha = r->cfg.act_a, post->beta = r->cfg.act_b; return 1;
    default: return 0;
    }
}

/* The chain above the conv at c: an inference batch norm, then an add of a tensor
 * computed before c (same shape), then an activation, each the only reader of the one
 * before (any of them may be missing, not all). Fills fuse (scale and shift into ss,
 * 2 * channels floats, unless ss is NULL); returns the last node, or c when there is
 * no chain. */
static int chain_at(const cs_model *m, int c, cs_fast_fuse *fuse, float *ss, int *addend)
{
    const cs_layer *l = &m->layers[c];
    int at = c, r;
    memset(fuse, 0, sizeof *fuse);
    if (l->cfg.activation != CS_ACT_LINEAR) return c;
    if (only_reader(m, at, &r) && m->layers[r].kind == CS_BATCHNORM && m->layers[r].n_inputs == 1) {
        const cs_layer *bn = &m->layers[r];
        const float *gamma = bn->params[0].data, *beta = bn->params[1].data, *mean = bn->params[2].data,
                    *var = bn->params[3].data;
        for (int k = 0; ss && k < l->out.c; k++) { /* as cs_bn_forward_infer folds it */
            ss[k] = gamma[k] / sqrtf(var[k] + bn->cfg.epsilon);
            ss[l->out.c + k] = beta[k] - mean[k] * ss[k];
        }
        if (ss) fuse->scale = ss, fuse->shift = ss + l->out.c;
        at = r;
    }
    if (only_reader(m, at, &r) && m->layers[r].kind == CS_ADD && m->layers[r].n_inputs == 2) {
        const int *in = m->layers[r].inputs, other = in[0] == at ? in[1] : in[0];
        if (in[0] != in[1] && other < c && same_shape(cs_model_node_shape(m, other), l->out) &&
            same_shape(m->layers[r].out, l->out)) {
            fuse->post.sum = 1;
            *addend = other;
            at = r;
        }
    }
    if (only_reader(m, at, &r) && activation_post(&m->layers[r], &fuse->post)) at = r;
    return at;
}

static cs_fast_plan *plan_make(const cs_model *m, cs_fast_mode mode)
{
    cs_fast_plan *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->params_version = m->params_version;
    p->threads = cs_parallel_threads();
    p->mode = mode;
    p->n = m->n_layers;
    p->node = calloc((size_t)m->n_layers, sizeof *p->node);
    p->active = calloc((size_t)m->n_layers, sizeof *p->active);
    p->chain = calloc((size_t)m->n_layers, sizeof *p->chain);
    p->bands = calloc((size_t)m->n_layers, sizeof *p->bands);
    p->split = calloc((size_t)m->n_layers, sizeof *p->split);
    if (!p->node || !p->active || !p->chain || !p->bands || !p->split) {
        plan_free(p);
        return NULL;
    }
    for (int i = 0; i < m->n_layers; i++) {
        const cs_layer *l = &m->layers[i];
        const cs_layer_ops *ops = cs_layer_ops_of(l->kind);
        if (!ops->fast) continue;
        ops->fast(l, NULL, &p->node[i]);
        for (int k = 0; k < CS_FAST_CONVS; k++)
            if (p->node[i].conv[k]) p->active[i] = &p->node[i];
        if (!p->active[i] || (l->kind != CS_CONV2D && l->kind != CS_DEPTHWISE_CONV2D)) continue;
        cs_fast_fuse fuse;
        float *ss = malloc(2 * (size_t)l->out.c * sizeof *ss);
        int addend = 0, last = ss ? chain_at(m, i, &fuse, ss, &addend) : i, pool = -1;
        /* A conv on few channels runs with its chain in one pass (conv_act_pool.h), with
         * the max pool that alone reads the chain's activation (no add: the prediction's
         * buffers count on chains of at most three links). */
        if (last > i && !fuse.post.sum && fuse.post.act != CS_ONEDNN_LINEAR) {
            if (only_reader(m, last, &pool) && m->layers[pool].kind == CS_MAXPOOL && m->layers[pool].n_inputs == 1 &&
                m->layers[pool].cfg.pool > 0)
                fuse.pool = m->layers[pool].cfg.pool;
            else
                fuse.pool = 1, pool = last; /* the same pass without a pool */
        }
        cs_fast_chain *ch = last > i ? calloc(1, sizeof *ch) : NULL;
        if (ch) {
            ops->fast(l, &fuse, &ch->node);
            ch->last = ch->node.pooled ? pool : last, ch->addend = addend;
            if (ch->node.conv[0] || ch->node.pooled) p->chain[i] = ch;
            else node_free(&ch->node), free(ch);
        }
        free(ss);
    }
    /* Three convs that follow one another with their chains, each the only reader of
     * the one before and their nodes in a row (no other node runs between them, so a
     * prediction may write the last one's output at the first one's step), may run
     * band by band, or split by channels. */
    for (int i = 0; i < m->n_layers; i++) {
        cs_fast_stage st[CS_BAND_STAGES];
        cs_fast_bands b;
        int at = i, ok = 1;
        for (int k = 0; k < CS_BAND_STAGES && ok; k++) {
            ok = stage_at(p, at, &st[k]) && in_a_row(m, st[k].first, st[k].last);
            if (ok && k + 1 < CS_BAND_STAGES) ok = only_reader(m, st[k].last, &at) && at == st[k].last + 1;
        }
        if (ok && cs_fast_bands_fit(st, &b) && (p->bands[i] = malloc(sizeof b))) *p->bands[i] = b;
        else if (ok) p->split[i] = cs_fast_split_make(st, p->threads);
    }
    return p;
}

const cs_fast_plan *cs_fast_plan_get(const cs_model *m)
{
    const cs_fast_mode mode = cs_fast_get_mode();
    /* The plan is derived from the parameters, as a cache is: kept beside the model,
     * which stays read-only for its passes. */
    cs_model *cache = (cs_model *)m;
    if (mode == CS_FAST_OFF) return NULL;
    pthread_mutex_lock(&plan_lock);
    if (!cache->fast) cache->fast = calloc(1, sizeof *cache->fast);
    cs_fast_plan *p = NULL;
    if (cache->fast) {
        cs_fast_plan **slot = &cache->fast->plan[mode];
        if (*slot && ((*slot)->params_version != m->params_version || (*slot)->threads != cs_parallel_threads())) {
            plan_free(*slot);
            *slot = NULL;
        }
        if (!*slot) *slot = plan_make(m, mode);
        p = *slot;
    }
    pthread_mutex_unlock(&plan_lock);
    return p;
}

void cs_fast_plans_free(struct cs_fast_plans *p)
{
    if (!p) return;
    for (int k = 0; k <= CS_FAST_AUTO; k++) plan_free(p->plan[k]);
    free(p);
}

const cs_fast_bands *cs_fast_plan_bands(const cs_fast_plan *p, int i)
{
    return p && i >= 0 && i < p->n ? p->bands[i] : NULL;
}

const cs_fast_split *cs_fast_plan_split(const cs_fast_plan *p, int i)
{
    return p && i >= 0 && i < p->n ? p->split[i] : NULL;
}

const cs_fast_node *cs_fast_plan_node(const cs_fast_plan *p, int i)
{
    return p && i >= 0 && i < p->n ? p->active[i] : NULL;
}

const cs_fast_chain *cs_fast_plan_chain(const cs_fast_plan *p, int i)
{
    return p && i >= 0 && i < p->n ? p->chain[i] : NULL;
}

size_t cs_fast_plan_bytes(const cs_fast_plan *p)
{
    size_t total = 0;
    for (int i = 0; p && i < p->n; i++)
        for (int k = 0; k < CS_FAST_CONVS; k++) {
            if (p->node[i].conv[k]) total += cs_onednn_conv_kernel_bytes(p->node[i].conv[k]);
            if (p->chain[i] && p->chain[i]->node.conv[k])
                total += cs_onednn_conv_kernel_bytes(p->chain[i]->node.conv[k]);
        }
    for (int i = 0; p && i < p->n; i++) total += cs_fast_split_kernel_bytes(p->split[i]);
    return total;
}

size_t cs_fast_plan_bytes_bound(const cs_model *m)
{
    size_t total = 0;
    for (int i = 0; i < m->n_layers; i++) {
        const cs_layer *l = &m->layers[i];
        if (!cs_layer_ops_of(l->kind)->fast) continue;
        /* Winograd's 6x6 tiles of a 3x3 kernel are 4x its floats; a square 3x3 window
         * is all it takes (the bound need not know the rest). */
        const cs_param *k = &l->params[0];
        size_t bytes = k->size * sizeof(float) * (k->ndim == 4 && k->dims[0] == 3 && k->dims[1] == 3 ? 4 : 1);
        for (int p = 1; p < l->n_params; p++)
            if (l->params[p].ndim == 4) bytes += l->params[p].size * sizeof(float);
        cs_fast_fuse fuse;
        int addend = 0;
        const int sliced = k->ndim == 4 && ((k->dims[0] == 1 && k->dims[1] == 1) || l->cfg.groups > 1 ||
                                            l->kind == CS_DEPTHWISE_CONV2D);
        const int chained =
            (l->kind == CS_CONV2D || l->kind == CS_DEPTHWISE_CONV2D) && chain_at(m, i, &fuse, NULL, &addend) > i;
        bytes *= (size_t)(1 + chained + sliced);
        total += bytes + bytes / 8; /* and the blocks' padding */
    }
    return total;
}

/* ---- the choice per convolution ---- */

/* Winograd F(4x4,3x3) does 4x (F(2x2,3x3) 2.25x) fewer multiplications than the direct
 * 3x3 product but reorders the input and output to and from oneDNN's blocked layout,
 * and its transforms cost per channel: it pays from 32 input and 64 output channels on
 * every shape measured (bench/conv_shapes), and its tiles want 8 rows or more. */
static int winograd_fits(const cs_conv2d_geom *g)
{
    return g->kh == 3 && g->kw == 3 && g->sh == 1 && g->sw == 1 && g->dh == 1 && g->dw == 1 && g->groups == 1 &&
           g->ic >= 32 && g->oc >= 64 && g->ow >= 8 && g->oh >= 8;
}

static cs_onednn_conv *choose(const cs_conv2d_geom *g, const float *w, const float *b, const cs_onednn_post *post)
{
    const cs_fast_mode mode = cs_fast_get_mode();
    char err[200];
    if (mode == CS_FAST_OFF) return NULL;
    if (mode == CS_FAST_AUTO && winograd_fits(g)) {
        cs_onednn_conv *c = cs_onednn_conv_new(g, w, b, post, CS_ONEDNN_WINOGRAD, err, sizeof err);
        /* A single image runs as bands of 8 rows or more, or as parts of its output
         * channels (onednn_conv.c): where neither gives every thread a share and the
         * kernel is large, the direct kernel on every thread is the faster. */
        if (c && !cs_onednn_winograd_kernel_small(g) && cs_onednn_conv_image_parts(c) < cs_parallel_threads()) {
            cs_onednn_conv_free(c);
            c = NULL;
        }
        if (c) return c;
    }
    return cs_onednn_conv_new(g, w, b, post, CS_ONEDNN_DIRECT, err, sizeof err);
}

void cs_fast_conv(cs_fast_node *f, int k, const cs_conv2d_geom *g, const cs_param *kernel, const cs_param *bias,
                  const cs_onednn_post *post, const cs_fast_fuse *fuse)
{
    const float *w = kernel->data, *b = bias ? bias->data : NULL;
    cs_onednn_post mine = post ? *post : (cs_onednn_post){0};
    if (fuse) {
        const int oc = g->oc;
        float *fw = malloc(kernel->size * sizeof *fw), *fb = malloc((size_t)oc * sizeof *fb);
        if (!fw || !fb) {
            free(fw);
            free(fb);
            return;
        }
        for (size_t i = 0; i < kernel->size; i++) fw[i] = fuse->scale ? w[i] * fuse->scale[i % oc] : w[i];
        for (int o = 0; o < oc; o++)
            fb[o] = fuse->scale ? (b ? b[o] : 0.0f) * fuse->scale[o] + fuse->shift[o] : (b ? b[o] : 0.0f);
        f->folded[0] = fw, f->folded[1] = fb;
        w = fw, b = fb, mine = fuse->post;
        if (k == 0 && fuse->pool && cs_conv_act_pool_fits(g, fuse->pool, &mine) && (f->pooled = malloc(sizeof *f->pooled))) {
            if (cs_conv_act_pool_init(f->pooled, g, fuse->pool, w, b, &mine) == 0) return;
            free(f->pooled);
            f->pooled = NULL;
        }
    }
    f->conv[k] = choose(g, w, b, &mine);
}

int cs_fast_chain_at(const cs_model *m, int c, cs_fast_fuse *fuse, float *ss, int *addend)
{
    return chain_at(m, c, fuse, ss, addend);
}
