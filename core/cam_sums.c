/*
 * cam_sums.c - Grad-CAM's channel weights from a dense kernel's channel sums (cam_sums.h).
 */
#include "cam_sums.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "layer_ops.h"
#include "layers.h"
#include "layers/kernel_layer.h"
#include "layers/pool_layer.h"
#include "parallel.h"
#include "simd.h"

struct cs_cam_sums {
    uint64_t params_version; /* the model's when they were made */
    int n;
    float **s;     /* [n]: dense node i's sums, C x units (row c: channel c), or NULL */
    size_t *count; /* [n]: their floats */
};

static atomic_int g_enabled = 1;
/* Guards every model's sums: held long only while a dense node's sums are made. */
static pthread_mutex_t sums_lock = PTHREAD_MUTEX_INITIALIZER;

void cs_cam_sums_set_enabled(int on) { atomic_store(&g_enabled, on != 0); }

void cs_cam_sums_free(struct cs_cam_sums *s)
{
    if (!s) return;
    for (int i = 0; s->s && i < s->n; i++) free(s->s[i]);
    free(s->s);
    free(s->count);
    free(s);
}

/* The one node reading node i, if exactly one does. */
static int only_reader(const cs_model *m, int i, int *reader)
{
    if (i < 0 || m->layers[i].n_consumers != 1) return 0;
    for (int r = i + 1; r < m->n_layers; r++)
        for (int k = 0; k < m->layers[r].n_inputs; k++)
            if (m->layers[r].inputs[k] == i) {
                *reader = r;
                return 1;
            }
    return 0;
}

/* Whether the window at the end of an axis lies inside the input. */
static int last_window_inside(int out, int in, int k, int stride, int dilation)
{
    return (long)(out - 1) * stride + (long)(k - 1) * (dilation > 1 ? dilation : 1) + 1 <= in;
}

/* An average pool whose every window divides by the input positions it holds hands
 * each pooled gradient out in shares that add up to it, as a max pool hands it whole
 * to one position; padded zeros in the divisor (count_include_pad on windows that
 * reach into the padding) would keep a part. */
static int avgpool_keeps_sums(const cs_layer *l)
{
    const cs_pool2d_geom g = cs_pool_layer_geom(l, 1);
    if (!g.count_include_pad) return 1;
    return !g.pt && !g.pl && last_window_inside(g.oh, g.ih, g.kh, g.sh, g.dh) &&
           last_window_inside(g.ow, g.iw, g.kw, g.sw, g.dw);
}

int cs_cam_sums_dense(const cs_model *m, int layer)
{
    if (layer < 0 || layer >= m->n_layers) return -1;
    const int c = m->layers[layer].out.c;
    int at = layer, r, flat = 0;
    while (only_reader(m, at, &r)) {
        const cs_layer *l = &m->layers[r];
        if (l->n_inputs != 1) return -1;
        if (l->kind == CS_DENSE) return flat && c > 0 && l->in.c % c == 0 ? r : -1;
        const int pool = l->kind == CS_MAXPOOL || (l->kind == CS_AVGPOOL && avgpool_keeps_sums(l));
        if (l->kind == CS_FLATTEN && !flat) flat = 1;
        else if (l->kind != CS_DROPOUT && !(pool && !flat)) return -1;
        at = r;
    }
    return -1;
}

typedef struct {
    const float *w;
    float *s;
    int c, q, units;
} sums_job;

/* Channels begin..end: each row of S summed over the q positions in double, a block
 * of columns at a time (the kernel's rows of a channel lie c rows apart). */
CS_CLONES static void sums_range(void *ctx, long begin, long end, int worker)
{
    (void)worker;
    enum { BLOCK = 512 };
    const sums_job *j = ctx;
    double acc[BLOCK];
    for (long c = begin; c < end; c++)
        for (int j0 = 0; j0 < j->units; j0 += BLOCK) {
            const int nj = j->units - j0 < BLOCK ? j->units - j0 : BLOCK;
            memset(acc, 0, (size_t)nj * sizeof(double));
            for (int q = 0; q < j->q; q++) {
                const float *row = j->w + ((size_t)q * j->c + c) * j->units + j0;
                for (int k = 0; k < nj; k++) acc[k] += row[k];
            }
            float *out = j->s + (size_t)c * j->units + j0;
            for (int k = 0; k < nj; k++) out[k] = (float)acc[k];
        }
}

/* Dense node d's sums over the positions of its c channels, made on first use; NULL
 * when out of memory. */
static const float *sums_of(const cs_model *m, int d, int c)
{
    /* Derived from the parameters, as the fast plan is: kept beside the read-only model. */
    cs_model *cache = (cs_model *)m;
    const cs_layer *l = &m->layers[d];
    float *s = NULL;
    pthread_mutex_lock(&sums_lock);
    struct cs_cam_sums *k = cache->cam_sums;
    if (k && k->params_version != m->params_version) {
        cs_cam_sums_free(k);
        k = cache->cam_sums = NULL;
    }
    if (!k && (k = calloc(1, sizeof *k))) {
        k->params_version = m->params_version;
        k->n = m->n_layers;
        k->s = calloc((size_t)k->n, sizeof *k->s);
        k->count = calloc((size_t)k->n, sizeof *k->count);
        if (!k->s || !k->count) {
            cs_cam_sums_free(k);
            k = NULL;
        }
        cache->cam_sums = k;
    }
    if (k && !(s = k->s[d]) && (s = malloc((size_t)c * l->out.c * sizeof *s))) {
        sums_job job = {.w = l->params[0].data, .s = s, .c = c, .q = l->in.c / c, .units = l->out.c};
        cs_parallel_run(c, cs_parallel_grain((long)job.q * job.units, 1), 0, sums_range, &job);
        k->s[d] = s;
        k->count[d] = (size_t)c * l->out.c;
    }
    pthread_mutex_unlock(&sums_lock);
    return s;
}

int cs_cam_sums_weights(cs_exec *e, int layer, float *alpha)
{
    const cs_model *m = e->model;
    if (!atomic_load(&g_enabled) || e->training || e->partial || e->batch < 1) return 1;
    const int d = cs_cam_sums_dense(m, layer);
    if (d < 0) return 1;
    const cs_layer *l = &m->layers[d];
    const cs_shape a = m->layers[layer].out;
    const float *s = sums_of(m, d, a.c);
    if (!s || cs_exec_backward(e, d) != 0) return -1;
    if (!e->reached[d]) { /* no gradient reaches the dense node */
        memset(alpha, 0, (size_t)a.c * sizeof *alpha);
        return 0;
    }
    /* Through the dense node's own activation, as its backward would start. */
    cs_node_pass p = {.e = e, .node = d, .l = l, .n = e->batch, .y = e->act[d], .dy = e->grad[d],
                      .state = e->state[d], .work = e->work};
    cs_kernel_layer_deactivate(&p);
    /* alpha = S g: the shape of a dense layer's input gradient, with S as its kernel. */
    cs_dense_backward(1, a.c, l->out.c, NULL, s, e->grad[d], alpha, NULL, NULL);
    const float hw = (float)a.h * a.w;
    for (int k = 0; k < a.c; k++) alpha[k] /= hw;
    return 0;
}

size_t cs_cam_sums_bytes_bound(const cs_model *m)
{
    size_t total = 0;
    for (int i = 0; i < m->n_layers; i++) {
        const cs_layer *l = &m->layers[i];
        if (l->kind != CS_FLATTEN || l->n_inputs != 1) continue;
        int at = i, r;
        while (only_reader(m, at, &r) && m->layers[r].kind == CS_DROPOUT) at = r;
        if (only_reader(m, at, &r) && m->layers[r].kind == CS_DENSE)
            total += (size_t)cs_model_node_shape(m, l->inputs[0]).c * m->layers[r].out.c * sizeof(float);
    }
    return total;
}

size_t cs_cam_sums_bytes(const cs_model *m)
{
    size_t total = 0;
    pthread_mutex_lock(&sums_lock);
    const struct cs_cam_sums *k = m->cam_sums;
    for (int i = 0; k && k->params_version == m->params_version && i < k->n; i++)
        total += k->count[i] * sizeof(float);
    pthread_mutex_unlock(&sums_lock);
    return total;
}
