/*
 * onednn_bf16.c - bf16 convolutions and dense layers through oneDNN's C API
 * (onednn_bf16.h).
 *
 * A primitive is made per shape of work, as onednn_conv.c makes them: `n` images, the
 * output rows [oy0, oy1) of one image (a band of a convolution), or the outputs of one
 * slice of a dense layer. Each part of the work first converts the fp32 input it reads
 * to bf16 in its worker's buffer (a oneDNN reorder: round to nearest even), then runs
 * the primitive on it. Shapes are kept in a list that readers walk without a lock;
 * each primitive takes a user-managed scratchpad from the worker's buffer, so two
 * execs of one model may run it at once.
 */
#include "onednn_bf16.h"

#include <dnnl.h>
#include <omp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parallel.h"

#define ALIGN 64
#define MAX_PARTS CS_MAX_WORKERS

/* A kernel (of one slice) in a layout some primitive reads, in bf16. */
typedef struct kernel_copy {
    struct kernel_copy *next;
    int slice;
    dnnl_memory_desc_t md;
    void *data;
    size_t bytes;
} kernel_copy;

/* One primitive and the shape of work it does. */
typedef struct shape {
    struct shape *next;
    int n, oy0, oy1, slice; /* images; output rows (a conv's band); a dense layer's slice */
    int iy0;                /* first input row it reads */
    dnnl_primitive_t prim, to_bf16; /* the layer; the reorder of its input to bf16 */
    dnnl_memory_desc_t src_f32, src_md, dst_md, pad_md, bias_md, kernel_md;
    size_t pad_bytes, src_bytes, dst_bytes; /* the worker buffer: scratchpad, bf16 input, a slice's output */
    const kernel_copy *_Atomic kernel;      /* reordered on the first run (under the lock) */
} shape;

struct cs_bf16_op {
    int dense;
    cs_conv2d_geom g; /* a dense layer: ic and oc, 1x1 */
    const float *w, *b;
    cs_onednn_post post;
    int parts; /* bands of a single image (conv), or slices of the outputs (dense) */
    char impl[64];
    pthread_mutex_t lock; /* making shapes and kernel copies */
    shape *_Atomic shapes;
    kernel_copy *kernels;
};

static dnnl_engine_t engine;
static pthread_once_t engine_once = PTHREAD_ONCE_INIT;

static void make_engine(void)
{
    if (dnnl_engine_create(&engine, dnnl_cpu, 0) != dnnl_success) engine = NULL;
}

static size_t round_up(size_t v) { return (v + ALIGN - 1) / ALIGN * ALIGN; }

/* Slice k of a dense layer's outputs: [first, end). */
static int slice_first(const cs_bf16_op *op, int k) { return (int)((long)op->g.oc * k / op->parts); }

/* The fp32 kernel of slice k as the caller stores it, in oneDNN's terms: a conv's
 * (kh, kw, ic/groups, oc) as weights (oc, ic, kh, kw) or (groups, oc/groups, ic/groups,
 * kh, kw) by strides; a dense slice's columns of (ic, oc) as (slice outputs, ic). */
static int user_kernel_md(const cs_bf16_op *op, int k, dnnl_memory_desc_t *md, const float **at)
{
    const cs_conv2d_geom *g = &op->g;
    if (op->dense) {
        const int o0 = slice_first(op, k);
        dnnl_dims_t d = {slice_first(op, k + 1) - o0, g->ic}, s = {1, g->oc};
        *at = op->w + o0;
        return dnnl_memory_desc_init_by_strides(md, 2, d, dnnl_f32, s) == dnnl_success ? 0 : -1;
    }
    *at = op->w;
    const int G = g->groups, icg = g->ic / G, ocg = g->oc / G;
    const dnnl_dim_t row = (dnnl_dim_t)icg * g->oc;
    if (G == 1) {
        dnnl_dims_t d = {g->oc, icg, g->kh, g->kw}, s = {1, g->oc, g->kw * row, row};
        return dnnl_memory_desc_init_by_strides(md, 4, d, dnnl_f32, s) == dnnl_success ? 0 : -1;
    }
    dnnl_dims_t d = {G, ocg, icg, g->kh, g->kw}, s = {ocg, 1, g->oc, g->kw * row, row};
    return dnnl_memory_desc_init_by_strides(md, 5, d, dnnl_f32, s) == dnnl_success ? 0 : -1;
}

static dnnl_primitive_t make_reorder(const dnnl_memory_desc_t *from, const dnnl_memory_desc_t *to)
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

/* Slice k's kernel in layout md, converted from the fp32 kernel on first need. Under op->lock. */
static const kernel_copy *kernel_in(cs_bf16_op *op, int k, const dnnl_memory_desc_t *md)
{
    for (kernel_copy *c = op->kernels; c; c = c->next)
        if (c->slice == k && dnnl_memory_desc_equal(&c->md, md)) return c;
    dnnl_memory_desc_t user;
    const float *w;
    if (user_kernel_md(op, k, &user, &w) != 0) return NULL;
    kernel_copy *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->slice = k;
    c->md = *md;
    c->bytes = dnnl_memory_desc_get_size(md);
    c->data = aligned_alloc(ALIGN, round_up(c->bytes));
    dnnl_primitive_t r = c->data ? make_reorder(&user, md) : NULL;
    dnnl_memory_t from = NULL, to = NULL;
    dnnl_stream_t st = NULL;
    int ok = r && dnnl_memory_create(&from, &user, engine, (void *)w) == dnnl_success &&
             dnnl_memory_create(&to, md, engine, c->data) == dnnl_success &&
             dnnl_stream_create(&st, engine, dnnl_stream_default_flags) == dnnl_success &&
             run_reorder(r, from, to, st) == 0 && dnnl_stream_wait(st) == dnnl_success;
    if (st) dnnl_stream_destroy(st);
    if (from) dnnl_memory_destroy(from);
    if (to) dnnl_memory_destroy(to);
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

static void shape_free(shape *s)
{
    if (!s) return;
    if (s->prim) dnnl_primitive_destroy(s->prim);
    if (s->to_bf16) dnnl_primitive_destroy(s->to_bf16);
    free(s);
}

/* The attributes every primitive here takes: the caller's scratchpad, the post-ops. */
static dnnl_primitive_attr_t make_attr(const cs_onednn_post *post)
{
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    int ok = dnnl_primitive_attr_create(&attr) == dnnl_success &&
             dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user) == dnnl_success;
    if (ok && (post->sum || post->act != CS_ONEDNN_LINEAR)) {
        ok = dnnl_post_ops_create(&po) == dnnl_success;
        if (ok && post->sum) ok = dnnl_post_ops_append_sum(po, 1.0f) == dnnl_success;
        if (ok && post->act != CS_ONEDNN_LINEAR)
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

/* The primitive descriptor of a conv over n images of input rows [iy0, iy0 + ih)
 * padded by pt above and pb below, giving oh output rows; NULL when oneDNN refuses. */
static dnnl_primitive_desc_t describe_conv(const cs_bf16_op *op, int n, int ih, int pt, int pb, int oh, shape *s)
{
    const cs_conv2d_geom *g = &op->g;
    dnnl_dims_t sd = {n, g->ic, ih, g->iw}, dd = {n, g->oc, oh, g->ow}, bd = {g->oc};
    dnnl_memory_desc_t kernel_any;
    const int G = g->groups;
    dnnl_dims_t kd4 = {g->oc, g->ic, g->kh, g->kw}, kd5 = {G, g->oc / G, g->ic / G, g->kh, g->kw};
    const int pr = (g->ow - 1) * g->sw + (g->kw - 1) * g->dw + 1 - g->iw - g->pl;
    if (dnnl_memory_desc_init_by_tag(&s->src_f32, 4, sd, dnnl_f32, dnnl_nhwc) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&s->src_md, 4, sd, dnnl_bf16, dnnl_nhwc) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&s->dst_md, 4, dd, dnnl_f32, dnnl_nhwc) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&s->bias_md, 1, bd, dnnl_f32, dnnl_x) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&kernel_any, G == 1 ? 4 : 5, G == 1 ? kd4 : kd5, dnnl_bf16,
                                     dnnl_format_tag_any) != dnnl_success)
        return NULL;
    dnnl_convolution_desc_t cd;
    dnnl_dims_t strides = {g->sh, g->sw}, dil = {g->dh - 1, g->dw - 1}, padl = {pt, g->pl},
                padr = {pb, pr > 0 ? pr : 0};
    if (dnnl_dilated_convolution_forward_desc_init(&cd, dnnl_forward_inference, dnnl_convolution_direct, &s->src_md,
                                                   &kernel_any, op->b ? &s->bias_md : NULL, &s->dst_md, strides, dil,
                                                   padl, padr) != dnnl_success)
        return NULL;
    dnnl_primitive_attr_t attr = make_attr(&op->post);
    dnnl_primitive_desc_t pd = NULL;
    if (attr && dnnl_primitive_desc_create(&pd, &cd, attr, engine, NULL) != dnnl_success) pd = NULL;
    if (attr) dnnl_primitive_attr_destroy(attr);
    return pd;
}

/* The same for slice k of a dense layer over n rows. */
static dnnl_primitive_desc_t describe_dense(const cs_bf16_op *op, int n, int k, shape *s)
{
    const int outs = slice_first(op, k + 1) - slice_first(op, k);
    dnnl_dims_t sd = {n, op->g.ic}, dd = {n, outs}, kd = {outs, op->g.ic}, bd = {outs};
    dnnl_memory_desc_t kernel_any;
    if (dnnl_memory_desc_init_by_tag(&s->src_f32, 2, sd, dnnl_f32, dnnl_nc) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&s->src_md, 2, sd, dnnl_bf16, dnnl_nc) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&s->dst_md, 2, dd, dnnl_f32, dnnl_nc) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&s->bias_md, 1, bd, dnnl_f32, dnnl_x) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&kernel_any, 2, kd, dnnl_bf16, dnnl_format_tag_any) != dnnl_success)
        return NULL;
    dnnl_inner_product_desc_t ipd;
    if (dnnl_inner_product_forward_desc_init(&ipd, dnnl_forward_inference, &s->src_md, &kernel_any,
                                             op->b ? &s->bias_md : NULL, &s->dst_md) != dnnl_success)
        return NULL;
    dnnl_primitive_attr_t attr = make_attr(&op->post);
    dnnl_primitive_desc_t pd = NULL;
    if (attr && dnnl_primitive_desc_create(&pd, &ipd, attr, engine, NULL) != dnnl_success) pd = NULL;
    if (attr) dnnl_primitive_attr_destroy(attr);
    return pd;
}

/* Makes the shape for n images and output rows [oy0, oy1) (a conv), or for n rows
 * and slice k (a dense layer). Under op->lock. */
static shape *make_shape(cs_bf16_op *op, int n, int oy0, int oy1, int k, char *why, size_t whylen)
{
    const cs_conv2d_geom *g = &op->g;
    shape *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    s->n = n, s->oy0 = oy0, s->oy1 = oy1, s->slice = k;
    dnnl_primitive_desc_t pd;
    if (op->dense) {
        pd = describe_dense(op, n, k, s);
    } else {
        /* The input rows the band's windows reach, and the padding that falls in it
         * (onednn_conv.c splits bands the same way). */
        const int first = oy0 * g->sh - g->pt, last = (oy1 - 1) * g->sh - g->pt + (g->kh - 1) * g->dh;
        s->iy0 = first > 0 ? first : 0;
        const int iy1 = oy1 == g->oh || last + 1 > g->ih ? g->ih : last + 1;
        const int pt = first < 0 ? -first : 0, pb = last >= g->ih ? last + 1 - g->ih : 0;
        pd = describe_conv(op, n, iy1 - s->iy0, pt, pb, oy1 - oy0, s);
    }
    const char *impl = "";
    if (!pd || dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) != dnnl_success) {
        snprintf(why, whylen, "oneDNN has no bf16 %s for it", op->dense ? "inner product" : "convolution");
        goto fail;
    }
    /* Reference code, or bf16 emulated on plain AVX-512, is slower than fp32. */
    if (strncmp(impl, "ref", 3) == 0 || strstr(impl, ":any") || strstr(impl, ":ref") || !strstr(impl, "bf16")) {
        snprintf(why, whylen, "oneDNN offers only %s for it in bf16", impl);
        goto fail;
    }
    if (!op->impl[0]) snprintf(op->impl, sizeof op->impl, "%s", impl);
    s->pad_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    s->pad_bytes = round_up(dnnl_memory_desc_get_size(&s->pad_md));
    s->kernel_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    s->src_bytes = round_up(dnnl_memory_desc_get_size(&s->src_md));
    if (op->dense) s->dst_bytes = round_up(dnnl_memory_desc_get_size(&s->dst_md));
    if (!(s->to_bf16 = make_reorder(&s->src_f32, &s->src_md))) {
        snprintf(why, whylen, "oneDNN cannot convert the input to bf16");
        goto fail;
    }
    if (dnnl_primitive_create(&s->prim, pd) != dnnl_success) {
        s->prim = NULL;
        snprintf(why, whylen, "oneDNN could not make the primitive");
        goto fail;
    }
    dnnl_primitive_desc_destroy(pd);
    return s;
fail:
    if (pd) dnnl_primitive_desc_destroy(pd);
    shape_free(s);
    return NULL;
}

static shape *shape_for(cs_bf16_op *op, int n, int oy0, int oy1, int k, char *why, size_t whylen)
{
    for (shape *s = atomic_load(&op->shapes); s; s = s->next)
        if (s->n == n && s->oy0 == oy0 && s->oy1 == oy1 && s->slice == k) return s;
    pthread_mutex_lock(&op->lock);
    shape *s;
    for (s = atomic_load(&op->shapes); s; s = s->next)
        if (s->n == n && s->oy0 == oy0 && s->oy1 == oy1 && s->slice == k) break;
    if (!s && (s = make_shape(op, n, oy0, oy1, k, why, whylen))) {
        s->next = atomic_load(&op->shapes);
        atomic_store(&op->shapes, s); /* published whole: readers walk the list without the lock */
    }
    pthread_mutex_unlock(&op->lock);
    return s;
}

/* Band or slice k of `parts` for a single image or row (a conv's rows; a dense layer's slices). */
static shape *part_shape(cs_bf16_op *op, int n, int k, int parts, char *why, size_t whylen)
{
    if (op->dense) return shape_for(op, n, 0, 1, k, why, whylen);
    const int oh = op->g.oh;
    return shape_for(op, n, (int)((long)oh * k / parts), (int)((long)oh * (k + 1) / parts), 0, why, whylen);
}

static cs_bf16_op *op_new(int dense, const cs_conv2d_geom *g, const float *w, const float *b,
                          const cs_onednn_post *post, int parts, char *err, size_t errlen)
{
    pthread_once(&engine_once, make_engine);
    if (!engine) {
        snprintf(err, errlen, "oneDNN has no CPU engine");
        return NULL;
    }
    cs_bf16_op *op = calloc(1, sizeof *op);
    if (!op) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    op->dense = dense;
    op->g = *g;
    op->g.n = 1;
    op->w = w, op->b = b;
    if (post) op->post = *post;
    op->parts = parts < 1 ? 1 : parts > MAX_PARTS ? MAX_PARTS : parts;
    pthread_mutex_init(&op->lock, NULL);
    /* The single-image primitives, made now, say whether oneDNN takes the layer. */
    char why[200];
    omp_set_num_threads(1);
    for (int k = 0; k < op->parts; k++)
        if (!part_shape(op, 1, k, op->parts, why, sizeof why)) {
            snprintf(err, errlen, "%s", why);
            cs_bf16_op_free(op);
            return NULL;
        }
    return op;
}

cs_bf16_op *cs_bf16_conv_new(const cs_conv2d_geom *g, const float *w, const float *b, const cs_onednn_post *post,
                             char *err, size_t errlen)
{
    char why[200];
    if (cs_conv2d_check(g, why, sizeof why) != 0) {
        snprintf(err, errlen, "%s", why);
        return NULL;
    }
    /* A single image always runs as the same bands, one per thread of the pool now
     * (see onednn_conv.c: bands of other heights would each need their own primitive). */
    int bands = cs_parallel_threads();
    if (bands > g->oh) bands = g->oh;
    return op_new(0, g, w, b, post, bands, err, errlen);
}

cs_bf16_op *cs_bf16_dense_new(int ic, int oc, const float *w, const float *b, const cs_onednn_post *post, char *err,
                              size_t errlen)
{
    if (ic < 1 || oc < 1) {
        snprintf(err, errlen, "a dense layer needs inputs and outputs");
        return NULL;
    }
    if (post && post->sum) {
        snprintf(err, errlen, "a dense layer adds no addend");
        return NULL;
    }
    cs_conv2d_geom g = {.n = 1, .ih = 1, .iw = 1, .ic = ic, .oh = 1, .ow = 1, .oc = oc, .kh = 1, .kw = 1,
                        .sh = 1, .sw = 1, .dh = 1, .dw = 1, .groups = 1};
    /* Slices of at least 16 outputs, the width of oneDNN's blocks of outputs. */
    int slices = cs_parallel_threads();
    if (slices > oc / 16) slices = oc / 16;
    return op_new(1, &g, w, b, post, slices, err, errlen);
}

void cs_bf16_op_free(cs_bf16_op *op)
{
    if (!op) return;
    for (shape *s = atomic_load(&op->shapes), *next; s; s = next) {
        next = s->next;
        shape_free(s);
    }
    for (kernel_copy *k = op->kernels, *next; k; k = next) {
        next = k->next;
        free(k->data);
        free(k);
    }
    pthread_mutex_destroy(&op->lock);
    free(op);
}

int cs_bf16_op_activated(const cs_bf16_op *op) { return op->post.act != CS_ONEDNN_LINEAR; }
int cs_bf16_op_sums(const cs_bf16_op *op) { return op->post.sum; }
const char *cs_bf16_op_impl(const cs_bf16_op *op) { return op->impl; }

size_t cs_bf16_op_kernel_bytes(const cs_bf16_op *op)
{
    size_t total = 0;
    for (const kernel_copy *k = op->kernels; k; k = k->next) total += k->bytes;
    return total;
}

/* ---- running ---- */

typedef struct {
    const cs_bf16_op *op;
    const float *x, *addend;
    float *y;
    cs_scratch *s;
    int chunk, chunks, parts; /* images per run, runs, bands or slices per run */
    shape *full[MAX_PARTS], *last[MAX_PARTS]; /* the last run may be shorter */
    atomic_int failed;
} job;

/* Converts x (the shape's fp32 input) to bf16 in the worker's buffer and runs the
 * primitive into y (a slice: into the buffer, whose rows go to y's columns from o0). */
static int run_shape(const cs_bf16_op *op, const shape *s, const float *x, float *y, char *buf, dnnl_stream_t st)
{
    dnnl_memory_t src = NULL, src16 = NULL, dst = NULL, ker = NULL, bias = NULL, pad = NULL;
    char *src_buf = buf + s->pad_bytes, *dst_buf = src_buf + s->src_bytes;
    const int o0 = op->dense ? slice_first(op, s->slice) : 0;
    const int outs = op->dense ? slice_first(op, s->slice + 1) - o0 : 0;
    int ok = dnnl_memory_create(&src, &s->src_f32, engine, (void *)x) == dnnl_success &&
             dnnl_memory_create(&src16, &s->src_md, engine, src_buf) == dnnl_success &&
             dnnl_memory_create(&dst, &s->dst_md, engine, op->dense ? (void *)dst_buf : y) == dnnl_success &&
             dnnl_memory_create(&ker, &s->kernel->md, engine, s->kernel->data) == dnnl_success &&
             (!op->b || dnnl_memory_create(&bias, &s->bias_md, engine, (void *)(op->b + o0)) == dnnl_success) &&
             (!s->pad_bytes || dnnl_memory_create(&pad, &s->pad_md, engine, buf) == dnnl_success);
    if (ok) ok = run_reorder(s->to_bf16, src, src16, st) == 0;
    if (ok) {
        dnnl_exec_arg_t a[5] = {{DNNL_ARG_SRC, src16}, {DNNL_ARG_WEIGHTS, ker}, {DNNL_ARG_DST, dst}};
        int na = 3;
        if (bias) a[na++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, bias};
        if (pad) a[na++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, pad};
        ok = dnnl_primitive_execute(s->prim, st, na, a) == dnnl_success;
    }
    if (ok) ok = dnnl_stream_wait(st) == dnnl_success;
    if (ok && op->dense) {
        const float *from = (const float *)dst_buf;
        for (int r = 0; r < s->n; r++)
            memcpy(y + (size_t)r * op->g.oc + o0, from + (size_t)r * outs, (size_t)outs * sizeof(float));
    }
    dnnl_memory_t all[] = {src, src16, dst, ker, bias, pad};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (all[i]) dnnl_memory_destroy(all[i]);
    return ok ? 0 : -1;
}

static void run_range(void *ctx, long begin, long end, int worker)
{
    job *j = ctx;
    const cs_conv2d_geom *g = &j->op->g;
    const size_t in_image = (size_t)g->ih * g->iw * g->ic, out_image = (size_t)g->oh * g->ow * g->oc;
    omp_set_num_threads(1);
    dnnl_stream_t st;
    if (dnnl_stream_create(&st, engine, dnnl_stream_default_flags) != dnnl_success) {
        atomic_store(&j->failed, 1);
        return;
    }
    for (long t = begin; t < end && !atomic_load(&j->failed); t++) {
        const int run = (int)(t / j->parts), part = (int)(t % j->parts);
        const shape *s = run == j->chunks - 1 ? j->last[part] : j->full[part];
        const size_t image = (size_t)run * j->chunk;
        const float *x = j->x + image * in_image + (size_t)s->iy0 * g->iw * g->ic;
        const size_t at = image * out_image + (j->op->dense ? 0 : (size_t)s->oy0 * g->ow * g->oc);
        float *y = j->y + at;
        /* The sum post-op adds to what the destination holds: the addend, put there
         * piece by piece while it is about to be read. */
        if (j->addend) memcpy(y, j->addend + at, (size_t)s->n * (s->oy1 - s->oy0) * g->ow * g->oc * sizeof(float));
        if (run_shape(j->op, s, x, y, j->s->onednn[worker], st) != 0) atomic_store(&j->failed, 1);
    }
    dnnl_stream_destroy(st);
}

/* Each worker's buffer holds what the largest of the shapes needs (as onednn_conv.c
 * grows the same buffers). */
static int grow_buffers(cs_scratch *s, size_t need)
{
    if (need <= s->onednn_bytes) return 0;
    for (int w = 0; w < s->workers; w++) {
        free(s->onednn[w]);
        s->onednn[w] = NULL;
    }
    s->onednn_bytes = 0;
    for (int w = 0; w < s->workers; w++)
        if (!(s->onednn[w] = aligned_alloc(ALIGN, round_up(need)))) return -1;
    s->onednn_bytes = round_up(need);
    return 0;
}

int cs_bf16_op_forward(cs_bf16_op *op, int n, const float *x, const float *addend, float *y, cs_scratch *s)
{
    if (n < 1 || !addend != !op->post.sum || (addend && addend == y)) return -1;
    job j = {.op = op, .x = x, .addend = addend, .y = y, .s = s};
    int parts = cs_parallel_parts();
    if (parts > s->workers) parts = s->workers;
    if (parts > MAX_PARTS) parts = MAX_PARTS;
    if (parts < 1) parts = 1;
    /* A conv's batch as runs of images, one per part; a single image as its bands. A
     * dense layer always as its slices, over every row at once. */
    if (!op->dense && n >= parts && n > 1) {
        j.chunk = (n + parts - 1) / parts;
        j.parts = 1;
    } else {
        j.chunk = op->dense ? n : 1;
        j.parts = op->parts;
    }
    j.chunks = (n + j.chunk - 1) / j.chunk;
    const int tail = n - (j.chunks - 1) * j.chunk;
    char why[200];
    omp_set_num_threads(1);
    size_t need = 0;
    for (int k = 0; k < j.parts; k++) {
        if (!(j.full[k] = part_shape(op, j.chunk, k, j.parts, why, sizeof why)) ||
            !(j.last[k] = tail == j.chunk ? j.full[k] : part_shape(op, tail, k, j.parts, why, sizeof why)))
            return -1;
        shape *both[2] = {j.full[k], j.last[k]};
        for (int b = 0; b < 2; b++) {
            size_t bytes = both[b]->pad_bytes + both[b]->src_bytes + both[b]->dst_bytes;
            if (bytes > need) need = bytes;
            if (!atomic_load(&both[b]->kernel)) {
                pthread_mutex_lock(&op->lock);
                if (!atomic_load(&both[b]->kernel))
                    atomic_store(&both[b]->kernel, kernel_in(op, both[b]->slice, &both[b]->kernel_md));
                pthread_mutex_unlock(&op->lock);
                if (!atomic_load(&both[b]->kernel)) return -1; /* out of memory */
            }
        }
    }
    if (grow_buffers(s, need ? need : ALIGN) != 0) return -1;
    cs_parallel_run((long)j.chunks * j.parts, 1, parts, run_range, &j);
    return atomic_load(&j.failed) ? -1 : 0;
}
