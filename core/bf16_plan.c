/*
 * bf16_plan.c - a model's precision and its bf16 layers (bf16_plan.h).
 */
#include "bf16_plan.h"

#include <dnnl.h>
#include <dnnl_debug.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fast_plan.h"
#include "layers/conv_window.h"
#include "layers/kernel_layer.h"
#include "onednn_bf16.h"

/* ---- precision and the CPU ---- */

const char *cs_precision_name(cs_precision p) { return p == CS_PRECISION_BF16 ? "bf16" : "fp32"; }

int cs_precision_parse(const char *s, cs_precision *out, char *err, size_t errlen)
{
    if (s && strcmp(s, "fp32") == 0) *out = CS_PRECISION_FP32;
    else if (s && strcmp(s, "bf16") == 0) *out = CS_PRECISION_BF16;
    else {
        snprintf(err, errlen, "precision '%s' is not fp32 or bf16", s ? s : "");
        return -1;
    }
    return 0;
}

static atomic_int g_forced = -1;
static int g_detected;
static pthread_once_t detect_once = PTHREAD_ONCE_INIT;

/* As oneDNN sees the CPU: the instructions its kernels will use (ONEDNN_MAX_CPU_ISA
 * may hold them back). Each ISA's value has the bits of those below it. */
static void detect(void)
{
    const unsigned isa = (unsigned)dnnl_get_effective_cpu_isa();
    if ((isa & dnnl_cpu_isa_avx512_core_bf16) == dnnl_cpu_isa_avx512_core_bf16) g_detected |= CS_BF16_AVX512;
    if ((isa & dnnl_cpu_isa_avx512_core_amx) == dnnl_cpu_isa_avx512_core_amx) g_detected |= CS_BF16_AMX;
}

int cs_bf16_cpu(void)
{
    int forced = atomic_load(&g_forced);
    if (forced >= 0) return forced;
    pthread_once(&detect_once, detect);
    return g_detected;
}

void cs_bf16_force_cpu(int mask) { atomic_store(&g_forced, mask < 0 ? -1 : mask & (CS_BF16_AVX512 | CS_BF16_AMX)); }

const char *cs_bf16_unit(char *why, size_t len)
{
    const int bits = cs_bf16_cpu();
    if (bits & CS_BF16_AMX) return "AMX-BF16";
    if (bits & CS_BF16_AVX512) return "AVX512-BF16";
    if (why)
        snprintf(why, len,
                 "this CPU has neither AVX512-BF16 nor AMX-BF16 (oneDNN runs %s%s here), where bf16 would be "
                 "emulated more slowly than fp32 runs",
                 dnnl_cpu_isa2str(dnnl_get_effective_cpu_isa()), atomic_load(&g_forced) >= 0 ? ", held back" : "");
    return NULL;
}

int cs_model_set_precision(cs_model *m, cs_precision p, char *why, size_t len)
{
    m->precision = CS_PRECISION_FP32;
    if (p != CS_PRECISION_BF16) return 0;
    char cpu[300];
    if (!cs_bf16_unit(cpu, sizeof cpu)) {
        snprintf(why, len, "bf16 refused: %s", cpu);
        return -1;
    }
    m->precision = CS_PRECISION_BF16;
    return 0;
}

/* ---- the plan ---- */

/* A node's bf16 layer, or a chain's: the layer with the chain folded in. */
typedef struct {
    cs_bf16_op *op;
    float *folded[2]; /* a chain's kernel and bias with its batch norm folded in */
    int last, addend; /* a chain: its last node, and the node its residual add adds */
} bf16_node;

struct cs_bf16_plan {
    uint64_t params_version;
    int n;
    bf16_node *node;  /* [n] */
    bf16_node *chain; /* [n]: the chain starting at node i (op NULL: none) */
    char impl[64];
};

static pthread_mutex_t plan_lock = PTHREAD_MUTEX_INITIALIZER;

static void node_free(bf16_node *b)
{
    cs_bf16_op_free(b->op);
    free(b->folded[0]);
    free(b->folded[1]);
}

void cs_bf16_plan_free(cs_bf16_plan *p)
{
    if (!p) return;
    for (int i = 0; i < p->n; i++) {
        if (p->node) node_free(&p->node[i]);
        if (p->chain) node_free(&p->chain[i]);
    }
    free(p->node);
    free(p->chain);
    free(p);
}

/* The layer of node l (a Conv2D or a Dense node) with kernel w, bias b and post-ops
 * post, or NULL (the node then runs in fp32). */
static cs_bf16_op *layer_op(const cs_layer *l, const float *w, const float *b, const cs_onednn_post *post)
{
    char err[200];
    if (l->kind == CS_DENSE) return cs_bf16_dense_new(l->in.c, l->out.c, w, b, post, err, sizeof err);
    cs_conv2d_geom g = cs_conv2d_layer_geom(l, 1);
    return cs_bf16_conv_new(&g, w, b, post, err, sizeof err);
}

/* The chain at node i (whose own layer runs in bf16) into ch, when there is one. */
static void make_chain(const cs_model *m, int i, bf16_node *ch)
{
    const cs_layer *l = &m->layers[i];
    const int oc = l->out.c;
    const size_t size = l->params[0].size;
    float *ss = malloc(2 * (size_t)oc * sizeof *ss);
    cs_fast_fuse fuse;
    int addend = 0, last = ss ? cs_fast_chain_at(m, i, &fuse, ss, &addend) : i;
    float *fw = last > i ? malloc(size * sizeof *fw) : NULL, *fb = fw ? malloc((size_t)oc * sizeof *fb) : NULL;
    if (fb && !(l->kind == CS_DENSE && fuse.post.sum)) {
        const float *w = l->params[0].data, *b = l->params[1].data;
        for (size_t k = 0; k < size; k++) fw[k] = fuse.scale ? w[k] * fuse.scale[k % oc] : w[k];
        for (int o = 0; o < oc; o++) fb[o] = fuse.scale ? b[o] * fuse.scale[o] + fuse.shift[o] : b[o];
        ch->op = layer_op(l, fw, fb, &fuse.post);
    }
    if (ch->op) {
        ch->folded[0] = fw, ch->folded[1] = fb;
        ch->last = last, ch->addend = addend;
    } else {
        free(fw);
        free(fb);
    }
    free(ss);
}

static cs_bf16_plan *plan_make(const cs_model *m)
{
    cs_bf16_plan *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->params_version = m->params_version;
    p->n = m->n_layers;
    p->node = calloc((size_t)m->n_layers, sizeof *p->node);
    p->chain = calloc((size_t)m->n_layers, sizeof *p->chain);
    if (!p->node || !p->chain) {
        cs_bf16_plan_free(p);
        return NULL;
    }
    for (int i = 0; i < m->n_layers; i++) {
        const cs_layer *l = &m->layers[i];
        if (l->kind != CS_CONV2D && l->kind != CS_DENSE) continue;
        cs_onednn_post post = {.act = l->cfg.activation == CS_ACT_RELU ? CS_ONEDNN_RELU : CS_ONEDNN_LINEAR};
        if (!(p->node[i].op = layer_op(l, l->params[0].data, l->params[1].data, &post))) continue;
        if (!p->impl[0]) snprintf(p->impl, sizeof p->impl, "%s", cs_bf16_op_impl(p->node[i].op));
        if (l->cfg.activation == CS_ACT_LINEAR) make_chain(m, i, &p->chain[i]);
    }
    return p;
}

const cs_bf16_plan *cs_bf16_plan_get(const cs_model *m)
{
    if (m->precision != CS_PRECISION_BF16 || !cs_bf16_unit(NULL, 0)) return NULL;
    /* Derived from the parameters, as a cache is: kept beside the read-only model. */
    cs_model *cache = (cs_model *)m;
    pthread_mutex_lock(&plan_lock);
    if (cache->bf16 && cache->bf16->params_version != m->params_version) {
        cs_bf16_plan_free(cache->bf16);
        cache->bf16 = NULL;
    }
    if (!cache->bf16) cache->bf16 = plan_make(m);
    const cs_bf16_plan *p = cache->bf16;
    pthread_mutex_unlock(&plan_lock);
    return p;
}

int cs_bf16_plan_nodes(const cs_bf16_plan *p)
{
    int count = 0;
    for (int i = 0; p && i < p->n; i++) count += p->node[i].op != NULL;
    return count;
}

size_t cs_bf16_plan_bytes(const cs_bf16_plan *p)
{
    size_t total = 0;
    for (int i = 0; p && i < p->n; i++) {
        if (p->node[i].op) total += cs_bf16_op_kernel_bytes(p->node[i].op);
        if (p->chain[i].op) total += cs_bf16_op_kernel_bytes(p->chain[i].op);
    }
    return total;
}

const char *cs_bf16_plan_impl(const cs_bf16_plan *p) { return p ? p->impl : ""; }

/* ---- passes ---- */

int cs_bf16_node_forward(const cs_bf16_plan *p, const cs_node_pass *pass)
{
    cs_bf16_op *op = p && pass->node >= 0 && pass->node < p->n ? p->node[pass->node].op : NULL;
    if (!op) return 0;
    float *z = cs_kernel_layer_preact(pass);
    if (cs_bf16_op_forward(op, pass->n, pass->x[0], NULL, z, &pass->e->scratch) != 0) return 0;
    if (!cs_bf16_op_activated(op)) cs_kernel_layer_activate(pass, z);
    return 1;
}

static const float *value_of(const cs_exec *e, int j)
{
    if (j >= 0) return e->act[j];
    return j == CS_MODEL_INPUT ? e->input : e->extra_input[CS_MODEL_INPUT - 1 - j];
}

/* The chain starting at node c, or NULL. */
static const bf16_node *chain_at(const cs_bf16_plan *p, int c)
{
    const bf16_node *ch = p && c >= 0 && c < p->n ? &p->chain[c] : NULL;
    return ch && ch->op ? ch : NULL;
}

int cs_bf16_chain_last(const cs_bf16_plan *p, int c)
{
    const bf16_node *ch = chain_at(p, c);
    return ch ? ch->last : -1;
}

int cs_bf16_chain_forward(const cs_bf16_plan *p, cs_exec *e, int c)
{
    const bf16_node *ch = chain_at(p, c);
    if (!ch) return -1;
    const float *x = value_of(e, e->model->layers[c].inputs[0]);
    const float *addend = cs_bf16_op_sums(ch->op) ? value_of(e, ch->addend) : NULL;
    if (cs_bf16_op_forward(ch->op, e->batch, x, addend, e->act[ch->last], &e->scratch) != 0) return -1;
    return ch->last;
}
