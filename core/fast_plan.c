/*
 * fast_plan.c - per-model choice of the inference fast paths (fast_plan.h).
 */
#include "fast_plan.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "layer_ops.h"

struct cs_fast_plan {
    uint64_t params_version; /* the model's when it was made */
    cs_fast_mode mode;
    int n;
    cs_fast_node *node; /* [n] */
    const cs_fast_node **active; /* [n]: &node[i], or NULL where node i has no fast path */
};

static atomic_int g_mode = CS_FAST_AUTO;
/* Guards every model's plan pointer: taken once per pass, held long only while a plan is made. */
static pthread_mutex_t plan_lock = PTHREAD_MUTEX_INITIALIZER;

void cs_fast_set_mode(cs_fast_mode mode) { atomic_store(&g_mode, (int)mode); }
cs_fast_mode cs_fast_get_mode(void) { return (cs_fast_mode)atomic_load(&g_mode); }

/* The plans of one model, by mode: switching modes (tests, benchmarks) keeps them. */
struct cs_fast_plans {
    cs_fast_plan *plan[CS_FAST_AUTO + 1];
};

static void plan_free(cs_fast_plan *p)
{
    if (!p) return;
    for (int i = 0; i < p->n; i++)
        for (int k = 0; k < CS_FAST_CONVS; k++) cs_onednn_conv_free(p->node[i].conv[k]);
    free(p->node);
    free(p->active);
    free(p);
}

static cs_fast_plan *plan_make(const cs_model *m, cs_fast_mode mode)
{
    cs_fast_plan *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->params_version = m->params_version;
    p->mode = mode;
    p->n = m->n_layers;
    p->node = calloc((size_t)m->n_layers, sizeof *p->node);
    p->active = calloc((size_t)m->n_layers, sizeof *p->active);
    if (!p->node || !p->active) {
        plan_free(p);
        return NULL;
    }
    for (int i = 0; i < m->n_layers; i++) {
        const cs_layer_ops *ops = cs_layer_ops_of(m->layers[i].kind);
        if (!ops->fast) continue;
        ops->fast(&m->layers[i], &p->node[i]);
        for (int k = 0; k < CS_FAST_CONVS; k++)
            if (p->node[i].conv[k]) p->active[i] = &p->node[i];
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
        if (*slot && (*slot)->params_version != m->params_version) {
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

const cs_fast_node *cs_fast_plan_node(const cs_fast_plan *p, int i)
{
    return p && i >= 0 && i < p->n ? p->active[i] : NULL;
}

size_t cs_fast_plan_bytes(const cs_fast_plan *p)
{
    size_t total = 0;
    for (int i = 0; p && i < p->n; i++)
        for (int k = 0; k < CS_FAST_CONVS; k++)
            if (p->node[i].conv[k]) total += cs_onednn_conv_kernel_bytes(p->node[i].conv[k]);
    return total;
}

/* Winograd F(4x4,3x3) does 2.25x fewer multiplications than the direct 3x3 product
 * but reorders the input and output to and from oneDNN's blocked layout, and its
 * transforms cost per channel: it pays with many channels on both sides. */
static int winograd_fits(const cs_conv2d_geom *g)
{
    return g->kh == 3 && g->kw == 3 && g->sh == 1 && g->sw == 1 && g->dh == 1 && g->dw == 1 && g->groups == 1 &&
           g->ic >= 64 && g->oc >= 64 && g->oh >= 8 && g->ow >= 8;
}

/* Stride-1 'valid' square windows (not 1x1) without groups or dilation are the layers
 * conv.c's direct kernels were written for (the notebook network's convs): on a few
 * images they beat oneDNN's, whose fixed cost per call is larger than these layers. */
static int plain_direct(const cs_conv2d_geom *g)
{
    return g->kh == g->kw && g->kh > 1 && g->sh == 1 && g->sw == 1 && g->dh == 1 && g->dw == 1 && g->groups == 1 &&
           !g->pt && !g->pl && !g->pb && !g->pr;
}
#define PLAIN_DIRECT_BATCH 16

static cs_onednn_conv *choose(const cs_conv2d_geom *g, const float *w, const float *b, int relu)
{
    const cs_fast_mode mode = cs_fast_get_mode();
    char err[200];
    if (mode == CS_FAST_OFF) return NULL;
    if (mode == CS_FAST_AUTO && winograd_fits(g)) {
        cs_onednn_conv *c = cs_onednn_conv_new(g, w, b, relu, CS_ONEDNN_WINOGRAD, err, sizeof err);
        if (c) return c;
    }
    return cs_onednn_conv_new(g, w, b, relu, CS_ONEDNN_DIRECT, err, sizeof err);
}

void cs_fast_conv(cs_fast_node *f, int k, const cs_conv2d_geom *g, const float *w, const float *b, int relu)
{
    if (!(f->conv[k] = choose(g, w, b, relu))) return;
    const int least = plain_direct(g) ? PLAIN_DIRECT_BATCH : 1;
    if (least > f->min_batch) f->min_batch = least;
}
