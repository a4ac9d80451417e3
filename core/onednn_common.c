/*
 * onednn_common.c - the per-shape primitives of a oneDNN op, its kernel copies and
 * the running of its work (onednn_common.h).
 *
 * Primitives are kept in a list (a layer sees a few shapes: the server's single images,
 * a batch and its last, shorter part) and never change once made, so workers run them
 * without a lock. Each is made with a user-managed scratchpad, which the caller's
 * per-worker buffer provides: a primitive that keeps its own scratchpad cannot run on
 * two threads at once, and two execs of one model do exactly that.
 *
 * oneDNN here is built on OpenMP; each thread that calls into it asks for a team of
 * one, so it never starts threads of its own (parallel.h owns the cores).
 */
#include "onednn_common.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parallel.h"

#define ALIGN CS_ONEDNN_ALIGN
#define MAX_PARTS CS_MAX_WORKERS

static dnnl_engine_t engine;
static pthread_once_t engine_once = PTHREAD_ONCE_INIT;

static void make_engine(void)
{
    if (dnnl_engine_create(&engine, dnnl_cpu, 0) != dnnl_success) engine = NULL;
}

dnnl_engine_t cs_onednn_engine(void)
{
    pthread_once(&engine_once, make_engine);
    return engine;
}

const char *cs_onednn_impl(const_dnnl_primitive_desc_t pd)
{
    const char *impl = NULL;
    if (!pd || dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) != dnnl_success) return NULL;
    return impl;
}

int cs_onednn_reference(const char *impl)
{
    return strncmp(impl, "ref", 3) == 0 || strstr(impl, ":any") || strstr(impl, ":ref");
}

int cs_onednn_slice_first(const cs_onednn_op *op, int k) { return (int)((long)op->g.oc * k / op->parts); }

size_t cs_onednn_round_up(size_t v) { return (v + ALIGN - 1) / ALIGN * ALIGN; }

dnnl_primitive_t cs_onednn_reorder_new(const dnnl_memory_desc_t *from, const dnnl_memory_desc_t *to)
{
    dnnl_primitive_desc_t pd;
    dnnl_primitive_t p = NULL;
    if (dnnl_reorder_primitive_desc_create(&pd, from, engine, to, engine, NULL) != dnnl_success) return NULL;
    if (dnnl_primitive_create(&p, pd) != dnnl_success) p = NULL;
    dnnl_primitive_desc_destroy(pd);
    return p;
}

static int run_reorder(dnnl_primitive_t r, dnnl_memory_t from, dnnl_memory_t to, dnnl_stream_t st)
{
    dnnl_exec_arg_t a[2] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
    return dnnl_primitive_execute(r, st, 2, a) == dnnl_success ? 0 : -1;
}

int cs_onednn_reorder_run(dnnl_primitive_t r, const dnnl_memory_desc_t *from_md, const void *from,
                          const dnnl_memory_desc_t *to_md, void *to, dnnl_stream_t st)
{
    dnnl_memory_t a = cs_onednn_memory(0, from_md, from, st), b = a ? cs_onednn_memory(1, to_md, to, st) : NULL;
    const int ok = b && run_reorder(r, a, b, st) == 0 && dnnl_stream_wait(st) == dnnl_success;
    return ok ? 0 : -1;
}

/* ---- describing ---- */

dnnl_primitive_attr_t cs_onednn_scratchpad_attr(void)
{
    dnnl_primitive_attr_t attr = NULL;
    if (dnnl_primitive_attr_create(&attr) != dnnl_success) return NULL;
    if (dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user) != dnnl_success) {
        dnnl_primitive_attr_destroy(attr);
        return NULL;
    }
    return attr;
}

dnnl_primitive_attr_t cs_onednn_attr(const cs_onednn_op *op, int post_ops)
{
    dnnl_primitive_attr_t attr = cs_onednn_scratchpad_attr();
    dnnl_post_ops_t po = NULL;
    const cs_onednn_post *post = &op->post;
    const int act = post_ops && post->act != CS_ONEDNN_LINEAR, sum = post_ops && post->sum;
    int ok = attr != NULL;
    if (ok && (sum || act)) {
        ok = dnnl_post_ops_create(&po) == dnnl_success;
        if (ok && sum) ok = dnnl_post_ops_append_sum(po, 1.0f) == dnnl_success;
        if (ok && act)
            ok = dnnl_post_ops_append_eltwise(po, 1.0f, post->act == CS_ONEDNN_RELU ? dnnl_eltwise_relu : dnnl_eltwise_clip,
                                              post->alpha, post->beta) == dnnl_success;
        ok = ok && dnnl_primitive_attr_set_post_ops(attr, po) == dnnl_success;
    }
    if (po) dnnl_post_ops_destroy(po);
    if (!ok && attr) {
        dnnl_primitive_attr_destroy(attr);
        attr = NULL;
    }
    return attr;
}

dnnl_primitive_desc_t cs_onednn_primitive_desc(const cs_onednn_op *op, const_dnnl_op_desc_t desc)
{
    dnnl_primitive_attr_t attr = cs_onednn_attr(op, 1);
    dnnl_primitive_desc_t pd = NULL;
    if (attr && dnnl_primitive_desc_create(&pd, desc, attr, engine, NULL) != dnnl_success) pd = NULL;
    if (attr) dnnl_primitive_attr_destroy(attr);
    return pd;
}

void cs_onednn_band_rows(const cs_conv2d_geom *g, int oy0, int oy1, int *iy0, int *iy1, int *pt, int *pb)
{
    const int first = oy0 * g->sh - g->pt, last = (oy1 - 1) * g->sh - g->pt + (g->kh - 1) * g->dh;
    *iy0 = first > 0 ? first : 0;
    /* The last band keeps the rows below its windows (a 'valid' stride leaves some):
     * whole images are read at the images' own stride. */
    *iy1 = oy1 == g->oh || last + 1 > g->ih ? g->ih : last + 1;
    *pt = first < 0 ? -first : 0, *pb = last >= g->ih ? last + 1 - g->ih : 0;
}

int cs_onednn_conv_desc(const cs_onednn_op *op, cs_onednn_shape *s, dnnl_alg_kind_t alg, dnnl_data_type_t dt,
                        dnnl_format_tag_t tag, const dnnl_memory_desc_t *kernel, dnnl_convolution_desc_t *cd)
{
    const cs_conv2d_geom *g = &op->g;
    const int G = g->groups;
    dnnl_dims_t sd = {s->n, g->ic, s->ih, g->iw}, dd = {s->n, g->oc, s->oy1 - s->oy0, g->ow}, bd = {g->oc};
    dnnl_dims_t kd4 = {g->oc, g->ic, g->kh, g->kw}, kd5 = {G, g->oc / G, g->ic / G, g->kh, g->kw};
    dnnl_memory_desc_t src, dst, kernel_any;
    const int pr = (g->ow - 1) * g->sw + (g->kw - 1) * g->dw + 1 - g->iw - g->pl;
    if (dnnl_memory_desc_init_by_tag(&s->src_user, 4, sd, dnnl_f32, dnnl_nhwc) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&s->dst_user, 4, dd, dnnl_f32, dnnl_nhwc) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&src, 4, sd, dt, tag) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&dst, 4, dd, dnnl_f32, tag) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&s->bias_md, 1, bd, dnnl_f32, dnnl_x) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&kernel_any, G == 1 ? 4 : 5, G == 1 ? kd4 : kd5, dt, dnnl_format_tag_any) !=
            dnnl_success)
        return -1;
    dnnl_dims_t strides = {g->sh, g->sw}, dil = {g->dh - 1, g->dw - 1}, padl = {s->pt, g->pl},
                padr = {s->pb, pr > 0 ? pr : 0};
    const dnnl_status_t st = dnnl_dilated_convolution_forward_desc_init(
        cd, dnnl_forward_inference, alg, &src, kernel ? kernel : &kernel_any, op->b ? &s->bias_md : NULL, &dst,
        strides, dil, padl, padr);
    return st == dnnl_success ? 0 : -1;
}

/* ---- kernel copies ---- */

int cs_onednn_conv_kernel_md(const cs_conv2d_geom *g, int ldo, dnnl_memory_desc_t *md)
{
    const int G = g->groups, icg = g->ic / G, ocg = g->oc / G;
    const dnnl_dim_t row = (dnnl_dim_t)icg * ldo;
    if (G == 1) {
        dnnl_dims_t d = {g->oc, icg, g->kh, g->kw}, s = {1, ldo, g->kw * row, row};
        return dnnl_memory_desc_init_by_strides(md, 4, d, dnnl_f32, s) == dnnl_success ? 0 : -1;
    }
    dnnl_dims_t d = {G, ocg, icg, g->kh, g->kw}, s = {ocg, 1, g->oc, g->kw * row, row};
    return dnnl_memory_desc_init_by_strides(md, 5, d, dnnl_f32, s) == dnnl_success ? 0 : -1;
}

/* The fp32 kernel of slice k as the caller stores it, in oneDNN's terms: a conv's
 * (kh, kw, ic/groups, oc) as weights (oc, ic, kh, kw) or (groups, oc/groups, ic/groups,
 * kh, kw) by strides; a dense slice's columns of (ic, oc) as (slice outputs, ic). */
static int user_kernel_md(const cs_onednn_op *op, int k, dnnl_memory_desc_t *md, const float **at)
{
    const cs_conv2d_geom *g = &op->g;
    if (op->slices) {
        const int o0 = cs_onednn_slice_first(op, k);
        dnnl_dims_t d = {cs_onednn_slice_first(op, k + 1) - o0, g->ic}, s = {1, g->oc};
        *at = op->w + o0;
        return dnnl_memory_desc_init_by_strides(md, 2, d, dnnl_f32, s) == dnnl_success ? 0 : -1;
    }
    *at = op->w;
    return cs_onednn_conv_kernel_md(g, op->ldo, md);
}

/* Slice k's kernel in layout md, reordered from the caller's on first need. Under op->lock. */
static const cs_onednn_kernel *kernel_in(cs_onednn_op *op, int k, const dnnl_memory_desc_t *md)
{
    for (cs_onednn_kernel *c = op->kernels; c; c = c->next)
        if (c->slice == k && dnnl_memory_desc_equal(&c->md, md)) return c;
    dnnl_memory_desc_t user;
    const float *w;
    if (user_kernel_md(op, k, &user, &w) != 0) return NULL;
    cs_onednn_kernel *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->slice = k;
    c->md = *md;
    c->bytes = dnnl_memory_desc_get_size(md);
    c->data = aligned_alloc(ALIGN, cs_onednn_round_up(c->bytes));
    dnnl_primitive_t r = c->data ? cs_onednn_reorder_new(&user, md) : NULL;
    dnnl_stream_t st = r ? cs_onednn_worker_stream() : NULL;
    int ok = st && cs_onednn_reorder_run(r, &user, w, md, c->data, st) == 0;
    if (r) dnnl_primitive_destroy(r);
    if (!ok) {
        free(c->data);
        free(c);
        return NULL;
    }
    c->next = op->kernels;
    op->kernels = c;
    return c;
}

int cs_onednn_op_kernel(cs_onednn_op *op, cs_onednn_shape *s)
{
    if (atomic_load(&s->kernel)) return 0;
    pthread_mutex_lock(&op->lock);
    if (!atomic_load(&s->kernel)) atomic_store(&s->kernel, kernel_in(op, s->slice, &s->kernel_md));
    pthread_mutex_unlock(&op->lock);
    return atomic_load(&s->kernel) ? 0 : -1;
}

size_t cs_onednn_op_kernel_bytes(const cs_onednn_op *op)
{
    size_t total = 0;
    for (const cs_onednn_kernel *k = op->kernels; k; k = k->next) total += k->bytes;
    return total;
}

/* ---- shapes ---- */

static void shape_free(cs_onednn_shape *s)
{
    if (!s) return;
    if (s->prim) dnnl_primitive_destroy(s->prim);
    if (s->to_prim) dnnl_primitive_destroy(s->to_prim);
    if (s->from_prim) dnnl_primitive_destroy(s->from_prim);
    free(s);
}

/* Makes the shape for n images and output rows [oy0, oy1) (a conv), or for n rows
 * and slice k (a dense layer). Under op->lock. */
static cs_onednn_shape *make_shape(cs_onednn_op *op, int n, int oy0, int oy1, int k, char *why, size_t whylen)
{
    cs_onednn_shape *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    s->n = n, s->oy0 = oy0, s->oy1 = oy1, s->slice = k;
    if (!op->slices) {
        int iy1;
        cs_onednn_band_rows(&op->g, oy0, oy1, &s->iy0, &iy1, &s->pt, &s->pb);
        s->ih = iy1 - s->iy0;
    }
    dnnl_primitive_desc_t pd = op->describe(op, s, why, whylen);
    const char *impl = cs_onednn_impl(pd);
    if (!impl) {
        if (pd) snprintf(why, whylen, "oneDNN names no implementation for it");
        goto fail;
    }
    if (!op->impl[0]) snprintf(op->impl, sizeof op->impl, "%s", impl);
    s->src_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
    s->dst_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
    s->pad_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    s->pad_bytes = cs_onednn_round_up(dnnl_memory_desc_get_size(&s->pad_md));
    s->kernel_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    if (!dnnl_memory_desc_equal(&s->src_md, &s->src_user)) {
        s->src_bytes = cs_onednn_round_up(dnnl_memory_desc_get_size(&s->src_md));
        if (!(s->to_prim = cs_onednn_reorder_new(&s->src_user, &s->src_md))) goto fail_reorder;
    }
    /* A slice writes its outputs to the worker's buffer, then into its columns of y. */
    if (op->slices) s->dst_bytes = cs_onednn_round_up(dnnl_memory_desc_get_size(&s->dst_user));
    if (!dnnl_memory_desc_equal(&s->dst_md, &s->dst_user)) {
        /* A sum post-op adds what the destination holds: the caller's tensor, not a
         * copy (the describer leaves the sum to after the reorder); a slice's
         * destination is already the copy in the buffer. */
        const int sums = op->post.sum && !s->post_after;
        if (sums || op->slices) {
            snprintf(why, whylen, "%s writes another layout than the output's%s", impl, sums ? ": no residual add" : "");
            goto fail;
        }
        s->dst_bytes = cs_onednn_round_up(dnnl_memory_desc_get_size(&s->dst_md));
        if (!(s->from_prim = cs_onednn_reorder_new(&s->dst_md, &s->dst_user))) goto fail_reorder;
    }
    if (dnnl_primitive_create(&s->prim, pd) != dnnl_success) {
        s->prim = NULL;
        snprintf(why, whylen, "oneDNN could not make the primitive");
        goto fail;
    }
    dnnl_primitive_desc_destroy(pd);
    return s;
fail_reorder:
    snprintf(why, whylen, "oneDNN cannot reorder to its layout");
fail:
    if (pd) dnnl_primitive_desc_destroy(pd);
    shape_free(s);
    return NULL;
}

/* The shape listed for n images and rows [oy0, oy1), or slice k: made, or refused
 * (no primitive); NULL when none was tried. */
static cs_onednn_shape *listed(const cs_onednn_op *op, int n, int oy0, int oy1, int k)
{
    for (cs_onednn_shape *s = atomic_load(&op->shapes); s; s = s->next)
        if (s->n == n && s->oy0 == oy0 && s->oy1 == oy1 && s->slice == k) return s;
    return NULL;
}

cs_onednn_shape *cs_onednn_op_shape(const cs_onednn_op *op, int n, int oy0, int oy1, int k)
{
    cs_onednn_shape *s = listed(op, n, oy0, oy1, k);
    return s && s->prim ? s : NULL;
}

/* The shape for n images and rows [oy0, oy1), or slice k: found, or made. One that
 * oneDNN refused is listed as refused, so that the passes after do not ask again. */
static cs_onednn_shape *shape_for(cs_onednn_op *op, int n, int oy0, int oy1, int k, char *why, size_t whylen)
{
    cs_onednn_shape *s = listed(op, n, oy0, oy1, k);
    if (!s) {
        pthread_mutex_lock(&op->lock);
        if (!(s = listed(op, n, oy0, oy1, k))) {
            s = make_shape(op, n, oy0, oy1, k, why, whylen);
            if (s && !op->first) op->first = s;
            if (!s && (s = calloc(1, sizeof *s))) s->n = n, s->oy0 = oy0, s->oy1 = oy1, s->slice = k;
            if (s) {
                s->next = atomic_load(&op->shapes);
                atomic_store(&op->shapes, s); /* published whole: readers walk the list without the lock */
            }
        }
        pthread_mutex_unlock(&op->lock);
    }
    if (s && !s->prim) {
        snprintf(why, whylen, "oneDNN refused this shape");
        return NULL;
    }
    return s;
}

/* Band or slice k of `parts` for n images or rows (a conv's rows; a dense layer's slices). */
static cs_onednn_shape *part_shape(cs_onednn_op *op, int n, int k, int parts, char *why, size_t whylen)
{
    if (op->slices) return shape_for(op, n, 0, 1, k, why, whylen);
    const int oh = op->g.oh;
    return shape_for(op, n, (int)((long)oh * k / parts), (int)((long)oh * (k + 1) / parts), 0, why, whylen);
}

int cs_onednn_op_start(cs_onednn_op *op, char *err, size_t errlen)
{
    pthread_mutex_init(&op->lock, NULL);
    op->g.n = 1;
    if (!op->ldo) op->ldo = op->g.oc;
    if (op->parts > MAX_PARTS) op->parts = MAX_PARTS;
    if (op->parts < 1) op->parts = 1;
    if (!cs_onednn_engine()) {
        snprintf(err, errlen, "oneDNN has no CPU engine");
        return -1;
    }
    char why[200];
    omp_set_num_threads(1);
    for (int k = 0; k < op->parts; k++)
        if (!part_shape(op, 1, k, op->parts, why, sizeof why)) {
            snprintf(err, errlen, "%s", why);
            return -1;
        }
    return 0;
}

void cs_onednn_op_clear(cs_onednn_op *op)
{
    for (cs_onednn_shape *s = atomic_load(&op->shapes), *next; s; s = next) {
        next = s->next;
        shape_free(s);
    }
    for (cs_onednn_kernel *k = op->kernels, *next; k; k = next) {
        next = k->next;
        free(k->data);
        free(k);
    }
    op->shapes = NULL;
    op->kernels = NULL;
    pthread_mutex_destroy(&op->lock);
}

/* ---- running ---- */

typedef struct {
    const cs_onednn_op *op;
    const float *x, *addend;
    float *y;
    cs_scratch *s;
    int chunk, chunks, parts; /* images per run, runs, bands or slices per run */
    cs_onednn_shape *full[MAX_PARTS], *last[MAX_PARTS]; /* the last run may be shorter */
    atomic_int failed;
} job;

/* The post-ops' activation, as oneDNN's eltwise relu (alpha: the slope below 0) and
 * clip (to [alpha, beta]) compute it. */
/* The post-ops the primitive left: y = act(y + addend), addend NULL where op does not sum. */
static void post_ops(const cs_onednn_post *post, const float *restrict addend, float *restrict y, size_t n)
{
    const float a = post->alpha, b = post->beta;
    if (addend)
        for (size_t i = 0; i < n; i++) y[i] += addend[i];
    if (post->act == CS_ONEDNN_RELU)
        for (size_t i = 0; i < n; i++) y[i] = y[i] > 0 ? y[i] : y[i] * a;
    else if (post->act == CS_ONEDNN_CLIP)
        for (size_t i = 0; i < n; i++) y[i] = y[i] < a ? a : y[i] > b ? b : y[i];
}

/* Runs shape s on x into y through the worker's buffer buf: the input reordered into
 * the primitive's layout (or type) first where it reads another, the output reordered
 * back (and summed and activated where the primitive could not); a slice's output rows
 * go to y's columns from its first output. */
int cs_onednn_run_shape(const cs_onednn_op *op, const cs_onednn_shape *s, const float *x, const float *addend,
                        float *y, char *buf, dnnl_stream_t st)
{
    const size_t outputs = (size_t)s->n * (s->oy1 - s->oy0) * op->g.ow * op->g.oc;
    /* The sum post-op adds to what the destination holds: the addend, put there while
     * it is about to be read. */
    if (addend && !s->post_after) memcpy(y, addend, outputs * sizeof(float));
    dnnl_memory_t src, dst, ker, bias = NULL, pad = NULL, src_c = NULL, dst_c = NULL;
    char *src_buf = buf + s->pad_bytes, *dst_buf = src_buf + s->src_bytes;
    const int o0 = op->slices ? cs_onednn_slice_first(op, s->slice) : 0;
    const int outs = op->slices ? cs_onednn_slice_first(op, s->slice + 1) - o0 : 0;
    int ok = (src = cs_onednn_memory(0, &s->src_user, x, st)) &&
             (dst = cs_onednn_memory(1, &s->dst_user, op->slices ? (void *)dst_buf : y, st)) &&
             (ker = cs_onednn_memory(2, &s->kernel->md, s->kernel->data, st)) &&
             (!op->b || (bias = cs_onednn_memory(3, &s->bias_md, op->b + o0, st))) &&
             (!s->pad_bytes || (pad = cs_onednn_memory(4, &s->pad_md, buf, st))) &&
             (!s->to_prim || (src_c = cs_onednn_memory(5, &s->src_md, src_buf, st))) &&
             (!s->from_prim || (dst_c = cs_onednn_memory(6, &s->dst_md, dst_buf, st)));
    if (ok && s->to_prim) ok = run_reorder(s->to_prim, src, src_c, st) == 0;
    if (ok) {
        dnnl_exec_arg_t a[5] = {{DNNL_ARG_SRC, src_c ? src_c : src},
                                {DNNL_ARG_WEIGHTS, ker},
                                {DNNL_ARG_DST, dst_c ? dst_c : dst}};
        int na = 3;
        if (bias) a[na++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, bias};
        if (pad) a[na++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, pad};
        ok = dnnl_primitive_execute(s->prim, st, na, a) == dnnl_success;
    }
    if (ok && s->from_prim) ok = run_reorder(s->from_prim, dst_c, dst, st) == 0;
    if (ok) ok = dnnl_stream_wait(st) == dnnl_success;
    if (ok && s->post_after) post_ops(&op->post, addend, y, outputs);
    if (ok && op->slices) {
        const float *from = (const float *)dst_buf;
        for (int r = 0; r < s->n; r++)
            memcpy(y + (size_t)r * op->g.oc + o0, from + (size_t)r * outs, (size_t)outs * sizeof(float));
    }
    return ok ? 0 : -1;
}

static void run_range(void *ctx, long begin, long end, int worker)
{
    job *j = ctx;
    const cs_conv2d_geom *g = &j->op->g;
    const size_t in_image = (size_t)g->ih * g->iw * g->ic, out_image = (size_t)g->oh * g->ow * g->oc;
    dnnl_stream_t st = cs_onednn_worker_stream();
    if (!st) {
        atomic_store(&j->failed, 1);
        return;
    }
    for (long t = begin; t < end && !atomic_load(&j->failed); t++) {
        const int run = (int)(t / j->parts), part = (int)(t % j->parts);
        const cs_onednn_shape *s = run == j->chunks - 1 ? j->last[part] : j->full[part];
        const size_t image = (size_t)run * j->chunk;
        /* (A dense layer's slices all start at row 0 of a single run.) */
        const float *x = j->x + image * in_image + (size_t)s->iy0 * g->iw * g->ic;
        const size_t at = image * out_image + (size_t)s->oy0 * g->ow * g->oc;
        if (cs_onednn_run_shape(j->op, s, x, j->addend ? j->addend + at : NULL, j->y + at, j->s->onednn[worker], st) != 0)
            atomic_store(&j->failed, 1);
    }
}

/* Each worker's buffer holds what the largest of the shapes needs. */
int cs_onednn_grow_buffers(cs_scratch *s, size_t need)
{
    if (need <= s->onednn_bytes) return 0;
    for (int w = 0; w < s->workers; w++) {
        free(s->onednn[w]);
        s->onednn[w] = NULL;
    }
    s->onednn_bytes = 0;
    for (int w = 0; w < s->workers; w++)
        if (!(s->onednn[w] = aligned_alloc(ALIGN, cs_onednn_round_up(need)))) return -1;
    s->onednn_bytes = cs_onednn_round_up(need);
    return 0;
}

size_t cs_onednn_shape_bytes(const cs_onednn_shape *s) { return s->pad_bytes + s->src_bytes + s->dst_bytes; }

int cs_onednn_parts(const cs_scratch *s)
{
    int parts = cs_parallel_parts();
    if (parts > s->workers) parts = s->workers;
    if (parts > MAX_PARTS) parts = MAX_PARTS;
    return parts < 1 ? 1 : parts;
}

int cs_onednn_op_args(const cs_onednn_op *op, int n, const float *addend, const float *y)
{
    return n >= 1 && !addend == !op->post.sum && !(addend && addend == y);
}

/* The runs of `chunk` images of n, each as `parts` bands or slices (1: whole), with
 * their shapes and kernel copies; *need grown to the largest worker buffer they take.
 * 0, or -1 when a shape cannot be made or its kernel copied. */
static int plan_runs(cs_onednn_op *op, int n, int chunk, int parts, job *j, size_t *need)
{
    j->chunk = chunk;
    j->parts = parts;
    j->chunks = (n + chunk - 1) / chunk;
    const int tail = n - (j->chunks - 1) * chunk;
    char why[200];
    for (int k = 0; k < j->parts; k++) {
        if (!(j->full[k] = part_shape(op, chunk, k, j->parts, why, sizeof why)) ||
            !(j->last[k] = tail == chunk ? j->full[k] : part_shape(op, tail, k, j->parts, why, sizeof why)))
            return -1;
        cs_onednn_shape *both[2] = {j->full[k], j->last[k]};
        for (int b = 0; b < 2; b++) {
            if (cs_onednn_shape_bytes(both[b]) > *need) *need = cs_onednn_shape_bytes(both[b]);
            if (cs_onednn_op_kernel(op, both[b]) != 0) return -1; /* out of memory */
        }
    }
    return 0;
}

int cs_onednn_op_forward(cs_onednn_op *op, int n, const float *x, const float *addend, float *y, cs_scratch *s)
{
    if (!cs_onednn_op_args(op, n, addend, y)) return -1;
    job j = {.op = op, .x = x, .addend = addend, .y = y, .s = s};
    const int parts = cs_onednn_parts(s);
    /* A conv's batch as runs of images, one per part; fewer images than parts, or one:
     * each image as the conv's bands. A dense layer always as its slices, over every
     * row at once. */
    const int runs_of_images = !op->slices && n >= parts && n > 1;
    size_t need = 0;
    omp_set_num_threads(1);
    /* A batch whose shape cannot read the layer's kernel runs as single images, each
     * as its bands: the shapes a single image takes. */
    if (runs_of_images ? plan_runs(op, n, (n + parts - 1) / parts, 1, &j, &need) != 0 &&
                             plan_runs(op, n, 1, op->parts, &j, &need) != 0
                       : plan_runs(op, n, op->slices ? n : 1, op->parts, &j, &need) != 0)
        return -1;
    if (cs_onednn_grow_buffers(s, need ? need : ALIGN) != 0) return -1;
    cs_parallel_run((long)j.chunks * j.parts, 1, parts, run_range, &j);
    return atomic_load(&j.failed) ? -1 : 0;
}

int cs_onednn_op_rows_prepare(cs_onednn_op *op, int oy0, int oy1, cs_scratch *s)
{
    char why[200];
    omp_set_num_threads(1);
    cs_onednn_shape *sh = shape_for(op, 1, oy0, oy1, 0, why, sizeof why);
    if (!sh || cs_onednn_op_kernel(op, sh) != 0) return -1;
    return cs_onednn_grow_buffers(s, cs_onednn_shape_bytes(sh));
}

int cs_onednn_op_rows(const cs_onednn_op *op, int oy0, int oy1, const float *x, const float *addend, float *y,
                      cs_scratch *s, int worker)
{
    const cs_onednn_shape *sh = cs_onednn_op_shape(op, 1, oy0, oy1, 0);
    if (!sh || !atomic_load(&sh->kernel) || cs_onednn_shape_bytes(sh) > s->onednn_bytes) return -1;
    dnnl_stream_t st = cs_onednn_worker_stream();
    return st ? cs_onednn_run_shape(op, sh, x, addend, y, s->onednn[worker], st) : -1;
}
