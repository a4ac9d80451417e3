/*
 * onednn_train.c - a convolution's training passes through oneDNN (onednn_train.h).
 *
 * A shape is a number of images, the size of one run. Its three primitives (forward,
 * gradient of the input, gradient of the kernel) are made when a pass first needs
 * them; the backward ones take the forward's descriptor as their hint, as oneDNN asks.
 * Activations are NHWC on every side, so only the kernel and its gradient are reordered.
 *
 * A worker's buffer (s->onednn[w]) holds the primitive's scratchpad, then the kernel
 * gradient in oneDNN's layout. Past those, at the same offset in every buffer, is the
 * slot where run r leaves its kernel and bias gradients in the caller's layout: slot r
 * lives in buffer r, and only the worker running run r writes it, so the runs' sums
 * are added up in order after the pool is done.
 */
#include "onednn_train.h"

#include <omp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onednn_common.h"
#include "parallel.h"

#define ALIGN CS_ONEDNN_ALIGN

typedef struct shape {
    struct shape *next;
    int n;
    dnnl_memory_desc_t src, dst;
    dnnl_primitive_desc_t fwd_pd;
    dnnl_primitive_t fwd, bwd_data, bwd_weights;
    /* The kernel's layout each primitive reads (or writes, the kernel gradient) */
    dnnl_memory_desc_t w_fwd, w_data, dw, pad_fwd, pad_data, pad_weights;
    dnnl_primitive_t to_fwd, to_data, dw_back; /* reorders from and to the caller's layout, or NULL */
    float *k_fwd, *k_data;                     /* the kernel in w_fwd and w_data, when reordered */
} shape;

struct cs_onednn_train {
    cs_conv2d_geom g;
    dnnl_memory_desc_t user_w, w_any, bias; /* the kernel as the caller stores it; any layout */
    size_t w_floats;
    shape *shapes;
    char impl[96];
};

static atomic_int disabled;

void cs_onednn_train_enable(int on) { atomic_store(&disabled, !on); }

int cs_onednn_train_takes(int n, const cs_scratch *s)
{
    return !atomic_load(&disabled) && n >= cs_onednn_parts(s);
}

const char *cs_onednn_train_impl(const cs_onednn_train *t) { return t->impl; }

static void note_impl(cs_onednn_train *t, dnnl_primitive_desc_t pd)
{
    const char *impl = cs_onednn_impl(pd);
    if (!impl || strstr(t->impl, impl)) return;
    const size_t len = strlen(t->impl);
    snprintf(t->impl + len, sizeof t->impl - len, "%s%s", len ? " " : "", impl);
}

/* ---- shapes ---- */

/* A primitive from its op descriptor (hint: the forward's, for the backward ones);
 * NULL when oneDNN refuses or has only its reference code. */
static dnnl_primitive_t make_primitive(cs_onednn_train *t, const_dnnl_op_desc_t desc, const_dnnl_primitive_desc_t hint,
                                       dnnl_primitive_desc_t *keep)
{
    dnnl_primitive_attr_t attr = cs_onednn_scratchpad_attr();
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_t p = NULL;
    if (attr && dnnl_primitive_desc_create(&pd, desc, attr, cs_onednn_engine(), hint) != dnnl_success) pd = NULL;
    if (attr) dnnl_primitive_attr_destroy(attr);
    const char *impl = cs_onednn_impl(pd);
    if (impl && !cs_onednn_reference(impl) && dnnl_primitive_create(&p, pd) != dnnl_success) p = NULL;
    if (p) note_impl(t, pd);
    if (p && keep) *keep = pd;
    else if (pd) dnnl_primitive_desc_destroy(pd);
    return p;
}

static const dnnl_memory_desc_t *query(const_dnnl_primitive_desc_t pd, dnnl_query_t what)
{
    return dnnl_primitive_desc_query_md(pd, what, 0);
}

static void shape_free(shape *s)
{
    dnnl_primitive_t all[] = {s->fwd, s->bwd_data, s->bwd_weights, s->to_fwd, s->to_data, s->dw_back};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (all[i]) dnnl_primitive_destroy(all[i]);
    if (s->fwd_pd) dnnl_primitive_desc_destroy(s->fwd_pd);
    free(s->k_fwd);
    free(s->k_data);
    free(s);
}

/* The kernel (or its gradient) in layout md: a reorder from or to the caller's, and
 * a copy to reorder into when `copy`; nothing when md is the caller's layout. 0, or -1. */
static int kernel_layout(const cs_onednn_train *t, const dnnl_memory_desc_t *md, int from_user, dnnl_primitive_t *r,
                         float **copy)
{
    if (dnnl_memory_desc_equal(md, &t->user_w)) return 0;
    *r = from_user ? cs_onednn_reorder_new(&t->user_w, md) : cs_onednn_reorder_new(md, &t->user_w);
    if (!*r) return -1;
    if (!copy) return 0;
    *copy = aligned_alloc(ALIGN, cs_onednn_round_up(dnnl_memory_desc_get_size(md)));
    return *copy ? 0 : -1;
}

static void conv_args(const cs_conv2d_geom *g, dnnl_dims_t strides, dnnl_dims_t dil, dnnl_dims_t pl, dnnl_dims_t pr)
{
    strides[0] = g->sh, strides[1] = g->sw;
    dil[0] = g->dh - 1, dil[1] = g->dw - 1;
    pl[0] = g->pt, pl[1] = g->pl;
    pr[0] = g->pb, pr[1] = g->pr;
}

static shape *make_shape(cs_onednn_train *t, int n)
{
    const cs_conv2d_geom *g = &t->g;
    shape *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->n = n;
    dnnl_dims_t sd = {n, g->ic, g->ih, g->iw}, dd = {n, g->oc, g->oh, g->ow}, strides, dil, pl, pr;
    conv_args(g, strides, dil, pl, pr);
    dnnl_convolution_desc_t cd;
    if (dnnl_memory_desc_init_by_tag(&s->src, 4, sd, dnnl_f32, dnnl_nhwc) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&s->dst, 4, dd, dnnl_f32, dnnl_nhwc) != dnnl_success ||
        dnnl_dilated_convolution_forward_desc_init(&cd, dnnl_forward_training, dnnl_convolution_direct, &s->src, &t->w_any,
                                                   &t->bias, &s->dst, strides, dil, pl, pr) != dnnl_success ||
        !(s->fwd = make_primitive(t, &cd, NULL, &s->fwd_pd)))
        goto fail;
    s->w_fwd = *query(s->fwd_pd, dnnl_query_weights_md);
    s->pad_fwd = *query(s->fwd_pd, dnnl_query_scratchpad_md);
    if (kernel_layout(t, &s->w_fwd, 1, &s->to_fwd, &s->k_fwd) != 0) goto fail;
    return s;
fail:
    shape_free(s);
    return NULL;
}

/* The backward primitives of shape s: the input gradient's when `data`, the kernel's
 * when `weights`. 0, or -1. */
static int make_backward(cs_onednn_train *t, shape *s, int data, int weights)
{
    const cs_conv2d_geom *g = &t->g;
    dnnl_dims_t strides, dil, pl, pr;
    conv_args(g, strides, dil, pl, pr);
    dnnl_convolution_desc_t cd;
    dnnl_primitive_desc_t pd = NULL;
    if (data && !s->bwd_data) {
        if (dnnl_dilated_convolution_backward_data_desc_init(&cd, dnnl_convolution_direct, &s->src, &t->w_any, &s->dst,
                                                             strides, dil, pl, pr) != dnnl_success ||
            !(s->bwd_data = make_primitive(t, &cd, s->fwd_pd, &pd)))
            return -1;
        s->w_data = *query(pd, dnnl_query_weights_md);
        s->pad_data = *query(pd, dnnl_query_scratchpad_md);
        dnnl_primitive_desc_destroy(pd);
        if (kernel_layout(t, &s->w_data, 1, &s->to_data, &s->k_data) != 0) return -1;
    }
    if (weights && !s->bwd_weights) {
        if (dnnl_dilated_convolution_backward_weights_desc_init(&cd, dnnl_convolution_direct, &s->src, &t->w_any, &t->bias,
                                                                &s->dst, strides, dil, pl, pr) != dnnl_success ||
            !(s->bwd_weights = make_primitive(t, &cd, s->fwd_pd, &pd)))
            return -1;
        s->dw = *query(pd, dnnl_query_diff_weights_md);
        s->pad_weights = *query(pd, dnnl_query_scratchpad_md);
        dnnl_primitive_desc_destroy(pd);
        if (kernel_layout(t, &s->dw, 0, &s->dw_back, NULL) != 0) return -1;
    }
    return 0;
}

static shape *shape_for(cs_onednn_train *t, int n)
{
    for (shape *s = t->shapes; s; s = s->next)
        if (s->n == n) return s;
    shape *s = make_shape(t, n);
    if (s) {
        s->next = t->shapes;
        t->shapes = s;
    }
    return s;
}

cs_onednn_train *cs_onednn_train_new(const cs_conv2d_geom *g, char *err, size_t errlen)
{
    if (!cs_onednn_conv_possible(g, err, errlen)) return NULL;
    if (g->groups > 1 && g->ic == g->groups) {
        snprintf(err, errlen, "depthwise: convscope's own kernels run it");
        return NULL;
    }
    cs_onednn_train *t = calloc(1, sizeof *t);
    if (!t) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    t->g = *g;
    t->g.n = 1;
    t->w_floats = (size_t)g->kh * g->kw * (g->ic / g->groups) * g->oc;
    const int G = g->groups;
    dnnl_dims_t bd = {g->oc}, kd4 = {g->oc, g->ic, g->kh, g->kw}, kd5 = {G, g->oc / G, g->ic / G, g->kh, g->kw};
    omp_set_num_threads(1);
    if (cs_onednn_conv_kernel_md(g, g->oc, &t->user_w) != 0 ||
        dnnl_memory_desc_init_by_tag(&t->w_any, G == 1 ? 4 : 5, G == 1 ? kd4 : kd5, dnnl_f32, dnnl_format_tag_any) !=
            dnnl_success ||
        dnnl_memory_desc_init_by_tag(&t->bias, 1, bd, dnnl_f32, dnnl_x) != dnnl_success) {
        snprintf(err, errlen, "oneDNN cannot describe the layer");
        cs_onednn_train_free(t);
        return NULL;
    }
    /* One image through every pass says whether oneDNN has real kernels for the layer. */
    shape *s = shape_for(t, 1);
    if (!s || make_backward(t, s, 1, 1) != 0) {
        snprintf(err, errlen, "oneDNN has only its reference code for the layer");
        cs_onednn_train_free(t);
        return NULL;
    }
    return t;
}

void cs_onednn_train_free(cs_onednn_train *t)
{
    if (!t) return;
    for (shape *s = t->shapes, *next; s; s = next) {
        next = s->next;
        shape_free(s);
    }
    free(t);
}

/* ---- running ---- */

typedef struct {
    cs_onednn_train *t;
    const float *x, *w, *b, *dy;
    float *y, *dx;
    int weights; /* the backward computes the kernel and bias gradients into the slots */
    cs_scratch *s;
    int chunk, runs;
    shape *full, *last; /* the last run may be shorter */
    size_t slot_at;     /* the slots' offset in the worker buffers */
    atomic_int failed;
} job;

static size_t bytes(const dnnl_memory_desc_t *md) { return cs_onednn_round_up(dnnl_memory_desc_get_size(md)); }

/* Runs primitive p with its arguments (NULL memories left out), the last one a
 * scratchpad of layout pad at buf. 0, or -1. */
static int execute(dnnl_primitive_t p, dnnl_stream_t st, const dnnl_memory_desc_t *pad, char *buf, int n,
                   const int *kinds, const dnnl_memory_desc_t *const *mds, void *const *data)
{
    dnnl_exec_arg_t a[6];
    int na = 0, ok = 1;
    for (int i = 0; i < n && ok; i++) {
        if (!data[i]) continue;
        ok = (a[na].memory = cs_onednn_memory(na, mds[i], data[i], st)) != NULL;
        a[na++].arg = kinds[i];
    }
    if (ok && dnnl_memory_desc_get_size(pad)) {
        ok = (a[na].memory = cs_onednn_memory(na, pad, buf, st)) != NULL;
        a[na++].arg = DNNL_ARG_SCRATCHPAD;
    }
    return ok && dnnl_primitive_execute(p, st, na, a) == dnnl_success && dnnl_stream_wait(st) == dnnl_success ? 0 : -1;
}

static int run_forward(const job *j, const shape *s, size_t image, char *buf, dnnl_stream_t st)
{
    const cs_onednn_train *t = j->t;
    const cs_conv2d_geom *g = &t->g;
    const int kinds[] = {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_BIAS, DNNL_ARG_DST};
    const dnnl_memory_desc_t *mds[] = {&s->src, &s->w_fwd, &t->bias, &s->dst};
    void *data[] = {(void *)(j->x + image * g->ih * g->iw * g->ic), s->k_fwd ? s->k_fwd : (void *)j->w,
                    (void *)j->b, j->y + image * g->oh * g->ow * g->oc};
    return execute(s->fwd, st, &s->pad_fwd, buf, 4, kinds, mds, data);
}

static int run_backward(const job *j, const shape *s, int run, size_t image, char *buf, dnnl_stream_t st)
{
    const cs_onednn_train *t = j->t;
    const cs_conv2d_geom *g = &t->g;
    void *x = (void *)(j->x + image * g->ih * g->iw * g->ic), *dy = (void *)(j->dy + image * g->oh * g->ow * g->oc);
    if (j->dx) {
        const int kinds[] = {DNNL_ARG_DIFF_DST, DNNL_ARG_WEIGHTS, DNNL_ARG_DIFF_SRC};
        const dnnl_memory_desc_t *mds[] = {&s->dst, &s->w_data, &s->src};
        void *data[] = {dy, s->k_data ? s->k_data : (void *)j->w, j->dx + image * g->ih * g->iw * g->ic};
        if (execute(s->bwd_data, st, &s->pad_data, buf, 3, kinds, mds, data) != 0) return -1;
    }
    if (!j->weights) return 0;
    float *slot = (float *)((char *)j->s->onednn[run] + j->slot_at);
    char *dw = buf + bytes(&s->pad_weights);
    const int kinds[] = {DNNL_ARG_SRC, DNNL_ARG_DIFF_DST, DNNL_ARG_DIFF_WEIGHTS, DNNL_ARG_DIFF_BIAS};
    const dnnl_memory_desc_t *mds[] = {&s->src, &s->dst, &s->dw, &t->bias};
    void *data[] = {x, dy, s->dw_back ? (void *)dw : slot, slot + t->w_floats};
    if (execute(s->bwd_weights, st, &s->pad_weights, buf, 4, kinds, mds, data) != 0) return -1;
    return s->dw_back ? cs_onednn_reorder_run(s->dw_back, &s->dw, dw, &t->user_w, slot, st) : 0;
}

static void run_range(void *ctx, long begin, long end, int worker)
{
    job *j = ctx;
    dnnl_stream_t st = cs_onednn_worker_stream();
    if (!st) {
        atomic_store(&j->failed, 1);
        return;
    }
    char *buf = j->s->onednn[worker];
    for (long r = begin; r < end && !atomic_load(&j->failed); r++) {
        const shape *s = r == j->runs - 1 ? j->last : j->full;
        const size_t image = (size_t)r * j->chunk;
        const int rc = j->dy ? run_backward(j, s, (int)r, image, buf, st) : run_forward(j, s, image, buf, st);
        if (rc != 0) atomic_store(&j->failed, 1);
    }
}

/* The batch as runs of images, one per part, with their shapes and their kernels in the
 * layouts the pass reads; the worker buffers grown to what it needs. 0, or -1. */
static int plan(job *j, int n, int backward)
{
    cs_onednn_train *t = j->t;
    const int parts = cs_onednn_parts(j->s);
    j->chunk = (n + parts - 1) / parts;
    j->runs = (n + j->chunk - 1) / j->chunk;
    const int tail = n - (j->runs - 1) * j->chunk;
    omp_set_num_threads(1);
    if (!(j->full = shape_for(t, j->chunk)) || !(j->last = tail == j->chunk ? j->full : shape_for(t, tail)))
        return -1;
    dnnl_stream_t st = cs_onednn_worker_stream();
    if (!st) return -1;
    size_t need = ALIGN;
    int ok = 1;
    shape *both[2] = {j->full, j->last};
    for (int k = 0; k < (j->last == j->full ? 1 : 2) && ok; k++) {
        shape *s = both[k];
        if (!backward) {
            ok = !s->to_fwd || cs_onednn_reorder_run(s->to_fwd, &t->user_w, j->w, &s->w_fwd, s->k_fwd, st) == 0;
            if (bytes(&s->pad_fwd) > need) need = bytes(&s->pad_fwd);
            continue;
        }
        ok = make_backward(t, s, j->dx != NULL, j->weights) == 0;
        if (ok && j->dx) {
            ok = !s->to_data || cs_onednn_reorder_run(s->to_data, &t->user_w, j->w, &s->w_data, s->k_data, st) == 0;
            if (bytes(&s->pad_data) > need) need = bytes(&s->pad_data);
        }
        if (ok && j->weights && bytes(&s->pad_weights) + bytes(&s->dw) > need)
            need = bytes(&s->pad_weights) + bytes(&s->dw);
    }
    j->slot_at = need;
    if (j->weights) need += cs_onednn_round_up((t->w_floats + (size_t)t->g.oc) * sizeof(float));
    return ok && cs_onednn_grow_buffers(j->s, need) == 0 ? 0 : -1;
}

int cs_onednn_train_forward(cs_onednn_train *t, int n, const float *x, const float *w, const float *b, float *y,
                            cs_scratch *s)
{
    if (n < 1 || !x || !w || !b || !y) return -1;
    job j = {.t = t, .x = x, .w = w, .b = b, .y = y, .s = s};
    if (plan(&j, n, 0) != 0) return -1;
    cs_parallel_run(j.runs, 1, j.runs, run_range, &j);
    return atomic_load(&j.failed) ? -1 : 0;
}

int cs_onednn_train_backward(cs_onednn_train *t, int n, const float *x, const float *w, const float *dy, float *dx,
                             float *dw, float *db, cs_scratch *s)
{
    if (n < 1 || !x || !w || !dy) return -1;
    if (!dx && !dw && !db) return 0;
    job j = {.t = t, .x = x, .w = w, .dy = dy, .dx = dx, .weights = dw || db, .s = s};
    if (plan(&j, n, 1) != 0) return -1;
    cs_parallel_run(j.runs, 1, j.runs, run_range, &j);
    if (atomic_load(&j.failed)) return -1;
    for (int r = 0; r < j.runs && j.weights; r++) {
        const float *slot = (const float *)((const char *)s->onednn[r] + j.slot_at);
        if (dw)
            for (size_t i = 0; i < t->w_floats; i++) dw[i] += slot[i];
        if (db)
            for (int o = 0; o < t->g.oc; o++) db[o] += slot[t->w_floats + o];
    }
    return 0;
}
