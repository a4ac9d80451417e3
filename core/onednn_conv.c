/*
 * onednn_conv.c - one convolution of an inference pass through oneDNN's C API.
 *
 * A primitive is made per shape of work: `n` whole images, or output rows
 * [oy0, oy1) of one image (a band). A band reads the input rows its windows reach and
 * takes the padding that falls inside it, so the bands of one image are independent
 * convolutions over contiguous pieces of the input and output, which NHWC rows are.
 * Primitives are kept in a list (a layer sees a few shapes: the server's single images,
 * a batch and its last, shorter part) and never change once made, so workers run them
 * without a lock. Each is made with a user-managed scratchpad, which the caller's
 * per-worker buffer provides: a primitive that keeps its own scratchpad cannot run on
 * two threads at once, and two execs of one model do exactly that.
 *
 * oneDNN here is built on OpenMP; each thread that calls into it asks for a team of
 * one, so it never starts threads of its own (parallel.h owns the cores).
 */
#include "onednn_conv.h"

#include <dnnl.h>
#include <omp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parallel.h"

#define ALIGN 64
#define MAX_BANDS CS_MAX_WORKERS

/* A kernel in a layout some primitive reads. */
typedef struct kernel_copy {
    struct kernel_copy *next;
    dnnl_memory_desc_t md;
    void *data;
    size_t bytes;
} kernel_copy;

/* One primitive and the shape of work it does. */
typedef struct shape {
    struct shape *next;
    int n, oy0, oy1; /* images; output rows (the whole height unless a band) */
    int iy0;         /* first input row it reads */
    dnnl_primitive_t conv, to_conv, from_conv; /* reorders into and out of the conv's layouts, or NULL */
    dnnl_memory_desc_t src_user, dst_user, src_md, dst_md, pad_md, bias_md, kernel_md;
    size_t pad_bytes, src_bytes, dst_bytes; /* the worker buffer: scratchpad, then src and dst copies */
    const kernel_copy *_Atomic kernel;      /* reordered on the first run (under the lock) */
    int act_after; /* the primitive cannot apply the activation: it is applied to the output after */
} shape;

struct cs_onednn_conv {
    cs_conv2d_geom g;
    const float *w, *b;
    cs_onednn_post post;
    cs_onednn_alg alg;
    int bands; /* a single image is always split into this many bands of rows */
    int ldo;   /* the kernel's stride from one input channel to the next: oc, or more for a part */
    /* A single image whose kernel outweighs its output runs as parts of its output
     * channels instead (each a conv of its own), one per thread: each thread then reads
     * its share of the kernel, not all of it. */
    int oc_parts;
    struct cs_onednn_conv *part[MAX_BANDS];
    int part_oc0[MAX_BANDS + 1];
    char impl[64];
    pthread_mutex_t lock; /* making shapes and kernel copies */
    shape *_Atomic shapes;
    const shape *first; /* the first shape made: the kernel layout the others try first */
    kernel_copy *kernels;
};

static dnnl_engine_t engine;
static pthread_once_t engine_once = PTHREAD_ONCE_INIT;

static void make_engine(void)
{
    if (dnnl_engine_create(&engine, dnnl_cpu, 0) != dnnl_success) engine = NULL;
}

int cs_onednn_usable(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return 0;
#else
    return 0;
#endif
    pthread_once(&engine_once, make_engine);
    return engine != NULL;
}

static size_t round_up(size_t v) { return (v + ALIGN - 1) / ALIGN * ALIGN; }

/* The kernel as convscope stores it, (kh, kw, ic/groups, oc) row-major, in oneDNN's
 * terms: weights (oc, ic, kh, kw), or (groups, oc/groups, ic/groups, kh, kw), by strides. */
static int user_kernel_md(const cs_conv2d_geom *g, int ldo, dnnl_memory_desc_t *md)
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

static int any_kernel_md(const cs_conv2d_geom *g, dnnl_memory_desc_t *md)
{
    const int G = g->groups;
    if (G == 1) {
        dnnl_dims_t d = {g->oc, g->ic, g->kh, g->kw};
        return dnnl_memory_desc_init_by_tag(md, 4, d, dnnl_f32, dnnl_format_tag_any) == dnnl_success ? 0 : -1;
    }
    dnnl_dims_t d = {G, g->oc / G, g->ic / G, g->kh, g->kw};
    return dnnl_memory_desc_init_by_tag(md, 5, d, dnnl_f32, dnnl_format_tag_any) == dnnl_success ? 0 : -1;
}

static int run_reorder(dnnl_primitive_t r, dnnl_memory_t from, dnnl_memory_t to, dnnl_stream_t st)
{
    dnnl_exec_arg_t a[2] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
    return dnnl_primitive_execute(r, st, 2, a) == dnnl_success ? 0 : -1;
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

/* The kernel in layout md, reordered from the user's on first need. Under c->lock. */
static const kernel_copy *kernel_in(cs_onednn_conv *c, const dnnl_memory_desc_t *md)
{
    for (kernel_copy *k = c->kernels; k; k = k->next)
        if (dnnl_memory_desc_equal(&k->md, md)) return k;
    dnnl_memory_desc_t user;
    if (user_kernel_md(&c->g, c->ldo, &user) != 0) return NULL;
    kernel_copy *k = calloc(1, sizeof *k);
    if (!k) return NULL;
    k->md = *md;
    k->bytes = dnnl_memory_desc_get_size(md);
    k->data = aligned_alloc(ALIGN, round_up(k->bytes));
    dnnl_primitive_t r = k->data ? make_reorder(&user, md) : NULL;
    dnnl_memory_t from = NULL, to = NULL;
    dnnl_stream_t st = NULL;
    int ok = r && dnnl_memory_create(&from, &user, engine, (void *)c->w) == dnnl_success &&
             dnnl_memory_create(&to, md, engine, k->data) == dnnl_success &&
             dnnl_stream_create(&st, engine, dnnl_stream_default_flags) == dnnl_success &&
             run_reorder(r, from, to, st) == 0 && dnnl_stream_wait(st) == dnnl_success;
    if (st) dnnl_stream_destroy(st);
    if (from) dnnl_memory_destroy(from);
    if (to) dnnl_memory_destroy(to);
    if (r) dnnl_primitive_destroy(r);
    if (!ok) {
        free(k->data);
        free(k);
        return NULL;
    }
    k->next = c->kernels;
    c->kernels = k;
    return k;
}

static void shape_free(shape *s)
{
    if (!s) return;
    if (s->conv) dnnl_primitive_destroy(s->conv);
    if (s->to_conv) dnnl_primitive_destroy(s->to_conv);
    if (s->from_conv) dnnl_primitive_destroy(s->from_conv);
    free(s);
}

/* Winograd kernels of F(4x4,3x3) are 4x the size of the kernel: where they do not fit in
 * a core's cache, a small image is bound by reading them (VGG16's 14x14x512 layers ran
 * at half the speed of F(2x2,3x3), bench/conv_shapes), else F(4x4,3x3) is the faster. */
static int prefers_4x3(const cs_conv2d_geom *g)
{
    return (long)g->oh * g->ow >= 28 * 28 || 36L * g->ic * g->oc * (long)sizeof(float) <= 1L << 20;
}

/* oneDNN's F(4x4,3x3) Winograd where it offers one (it lists F(2x2,3x3) first for some
 * shapes): it computes each image the same way whatever the number of images. NULL when
 * it has none. */
static dnnl_primitive_desc_t pick_winograd(const dnnl_convolution_desc_t *cd, const_dnnl_primitive_attr_t attr)
{
    dnnl_primitive_desc_iterator_t it;
    dnnl_primitive_desc_t pd = NULL;
    if (dnnl_primitive_desc_iterator_create(&it, cd, attr, engine, NULL) != dnnl_success) return NULL;
    do {
        dnnl_primitive_desc_t c = dnnl_primitive_desc_iterator_fetch(it);
        const char *impl = "";
        if (c && dnnl_primitive_desc_query(c, dnnl_query_impl_info_str, 0, &impl) == dnnl_success &&
            strstr(impl, "wino_4x3")) {
            pd = c;
            break;
        }
        if (c) dnnl_primitive_desc_destroy(c);
    } while (dnnl_primitive_desc_iterator_next(it) == dnnl_success);
    dnnl_primitive_desc_iterator_destroy(it);
    return pd;
}

/* The primitive descriptor for n images of input rows [iy0, iy0 + ih) padded by pt
 * above and pb below, giving output rows oh, reading the kernel in layout `kernel`
 * (NULL: the one oneDNN prefers); NULL when oneDNN refuses. */
static dnnl_primitive_desc_t describe(const cs_onednn_conv *c, int n, int ih, int pt, int pb, int oh,
                                      const dnnl_memory_desc_t *kernel, shape *s)
{
    const cs_conv2d_geom *g = &c->g;
    dnnl_dims_t sd = {n, g->ic, ih, g->iw}, dd = {n, g->oc, oh, g->ow}, bd = {g->oc};
    dnnl_memory_desc_t src_any, dst_any, kernel_any;
    const int wino = c->alg == CS_ONEDNN_WINOGRAD;
    const int pr = (g->ow - 1) * g->sw + (g->kw - 1) * g->dw + 1 - g->iw - g->pl;
    if (dnnl_memory_desc_init_by_tag(&s->src_user, 4, sd, dnnl_f32, dnnl_nhwc) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&s->dst_user, 4, dd, dnnl_f32, dnnl_nhwc) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&src_any, 4, sd, dnnl_f32, wino ? dnnl_format_tag_any : dnnl_nhwc) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&dst_any, 4, dd, dnnl_f32, wino ? dnnl_format_tag_any : dnnl_nhwc) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&s->bias_md, 1, bd, dnnl_f32, dnnl_x) != dnnl_success ||
        any_kernel_md(g, &kernel_any) != 0)
        return NULL;
    dnnl_convolution_desc_t cd;
    dnnl_dims_t strides = {g->sh, g->sw}, dil = {g->dh - 1, g->dw - 1}, padl = {pt, g->pl},
                padr = {pb, pr > 0 ? pr : 0};
    if (dnnl_dilated_convolution_forward_desc_init(&cd, dnnl_forward_inference,
                                                   wino ? dnnl_convolution_winograd : dnnl_convolution_direct, &src_any,
                                                   kernel ? kernel : &kernel_any, c->b ? &s->bias_md : NULL, &dst_any,
                                                   strides, dil,
                                                   padl, padr) != dnnl_success)
        return NULL;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    dnnl_primitive_desc_t pd = NULL;
    const cs_onednn_post *post = &c->post;
    /* oneDNN's Winograd takes a plain ReLU but not a leaky one or a clip: then the
     * activation is left to run_shape, on the rows the primitive has just written. */
    for (s->act_after = 0; s->act_after < 2 && !pd; s->act_after++) {
        const int act = post->act != CS_ONEDNN_LINEAR && !s->act_after;
        if (s->act_after && (!wino || post->act == CS_ONEDNN_LINEAR)) break;
        int ok = dnnl_primitive_attr_create(&attr) == dnnl_success &&
                 dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user) == dnnl_success;
        if (ok && (post->sum || act)) {
            ok = dnnl_post_ops_create(&po) == dnnl_success;
            if (ok && post->sum) ok = dnnl_post_ops_append_sum(po, 1.0f) == dnnl_success;
            if (ok && act)
                ok = dnnl_post_ops_append_eltwise(po, 1.0f,
                                                  post->act == CS_ONEDNN_RELU ? dnnl_eltwise_relu : dnnl_eltwise_clip,
                                                  post->alpha, post->beta) == dnnl_success;
            ok = ok && dnnl_primitive_attr_set_post_ops(attr, po) == dnnl_success;
        }
        if (ok) pd = wino && prefers_4x3(g) ? pick_winograd(&cd, attr) : NULL;
        if (ok && !pd && dnnl_primitive_desc_create(&pd, &cd, attr, engine, NULL) != dnnl_success) pd = NULL;
        if (po) dnnl_post_ops_destroy(po);
        if (attr) dnnl_primitive_attr_destroy(attr);
        po = NULL, attr = NULL;
        if (pd) return pd;
    }
    return NULL;
}

/* The input rows [iy0, iy1) output rows [oy0, oy1) read, and the padding that falls in
 * the band above (pt) and below (pb). */
static void band_rows(const cs_conv2d_geom *g, int oy0, int oy1, int *iy0, int *iy1, int *pt, int *pb)
{
    const int first = oy0 * g->sh - g->pt, last = (oy1 - 1) * g->sh - g->pt + (g->kh - 1) * g->dh;
    *iy0 = first > 0 ? first : 0;
    /* The last band keeps the rows below its windows (a 'valid' stride leaves some):
     * whole images are read at the images' own stride. */
    *iy1 = oy1 == g->oh || last + 1 > g->ih ? g->ih : last + 1;
    *pt = first < 0 ? -first : 0, *pb = last >= g->ih ? last + 1 - g->ih : 0;
}

void cs_onednn_conv_band_input(const cs_onednn_conv *c, int oy0, int oy1, int *iy0, int *iy1)
{
    int pt, pb;
    band_rows(&c->g, oy0, oy1, iy0, iy1, &pt, &pb);
}

/* Makes the shape for n images and output rows [oy0, oy1). Under c->lock. */
static shape *make_shape(cs_onednn_conv *c, int n, int oy0, int oy1, char *why, size_t whylen)
{
    const cs_conv2d_geom *g = &c->g;
    shape *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    s->n = n, s->oy0 = oy0, s->oy1 = oy1;
    int iy1, pt, pb;
    band_rows(g, oy0, oy1, &s->iy0, &iy1, &pt, &pb);
    /* The shapes of one layer read one copy of the kernel where oneDNN takes the layout
     * made for the first (Winograd's transformed kernels are 2-4x the kernel's size). */
    const char *impl = "";
    dnnl_primitive_desc_t pd = NULL;
    if (c->first) {
        pd = describe(c, n, iy1 - s->iy0, pt, pb, oy1 - oy0, &c->first->kernel_md, s);
        if (pd && (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) != dnnl_success ||
                   strcmp(impl, c->impl) != 0)) { /* another implementation: let it pick its layout */
            dnnl_primitive_desc_destroy(pd);
            pd = NULL;
        }
    }
    if (!pd) pd = describe(c, n, iy1 - s->iy0, pt, pb, oy1 - oy0, NULL, s);
    if (!pd || dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) != dnnl_success) {
        snprintf(why, whylen, "oneDNN has no %s convolution for it", c->alg == CS_ONEDNN_WINOGRAD ? "Winograd" : "direct");
        goto fail;
    }
    /* Its reference code is far slower than convscope's own kernels. */
    if (strncmp(impl, "ref", 3) == 0 || strstr(impl, ":any") || strstr(impl, ":ref")) {
        snprintf(why, whylen, "oneDNN offers only %s for it", impl);
        goto fail;
    }
    if (!c->impl[0]) snprintf(c->impl, sizeof c->impl, "%s", impl);
    s->src_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
    s->dst_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
    s->pad_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    s->pad_bytes = round_up(dnnl_memory_desc_get_size(&s->pad_md));
    s->kernel_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    if (!dnnl_memory_desc_equal(&s->src_md, &s->src_user)) {
        s->src_bytes = round_up(dnnl_memory_desc_get_size(&s->src_md));
        if (!(s->to_conv = make_reorder(&s->src_user, &s->src_md))) goto fail_reorder;
    }
    if (!dnnl_memory_desc_equal(&s->dst_md, &s->dst_user)) {
        /* A sum post-op adds what the destination holds: the caller's tensor, not a copy. */
        if (c->post.sum) {
            snprintf(why, whylen, "%s writes another layout than the output's: no residual add", impl);
            goto fail;
        }
        s->dst_bytes = round_up(dnnl_memory_desc_get_size(&s->dst_md));
        if (!(s->from_conv = make_reorder(&s->dst_md, &s->dst_user))) goto fail_reorder;
    }
    if (dnnl_primitive_create(&s->conv, pd) != dnnl_success) {
        s->conv = NULL;
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

/* The shape for n images and rows [oy0, oy1): found, or made. */
static shape *find_shape(const cs_onednn_conv *c, int n, int oy0, int oy1);

static shape *shape_for(cs_onednn_conv *c, int n, int oy0, int oy1, char *why, size_t whylen)
{
    shape *s = find_shape(c, n, oy0, oy1);
    if (s) return s;
    pthread_mutex_lock(&c->lock);
    s = find_shape(c, n, oy0, oy1);
    if (!s && (s = make_shape(c, n, oy0, oy1, why, whylen))) {
        if (!c->first) c->first = s;
        s->next = atomic_load(&c->shapes);
        atomic_store(&c->shapes, s); /* published whole: readers walk the list without the lock */
    }
    pthread_mutex_unlock(&c->lock);
    return s;
}

static cs_onednn_conv *conv_make(const cs_conv2d_geom *g, const float *w, int ldo, const float *b,
                                 const cs_onednn_post *post, cs_onednn_alg alg, int bands, char *err, size_t errlen);

/* Output channels in parts of a multiple of 16, one per thread, where the kernel of a
 * direct conv weighs more than one image's output (ResNet-18's and MobileNetV2's last
 * layers: bands of rows each read the whole kernel from memory, and two threads ran
 * them barely faster than one). */
static int split_channels(cs_onednn_conv *c, int threads, char *err, size_t errlen)
{
    const cs_conv2d_geom *g = &c->g;
    const double kernel = (double)g->kh * g->kw * g->ic * g->oc, out = (double)g->oh * g->ow * g->oc;
    if (threads < 2 || c->alg != CS_ONEDNN_DIRECT || g->groups != 1 || kernel <= out || g->oc < 32 * threads)
        return 0;
    if (threads > MAX_BANDS) threads = MAX_BANDS;
    for (int p = 0; p <= threads; p++) c->part_oc0[p] = (int)((long)g->oc * p / threads) / 16 * 16;
    c->part_oc0[threads] = g->oc;
    for (int p = 0; p < threads; p++) {
        cs_conv2d_geom pg = *g;
        const int oc0 = c->part_oc0[p];
        pg.oc = c->part_oc0[p + 1] - oc0;
        if (!(c->part[p] = conv_make(&pg, c->w + oc0, c->ldo, c->b ? c->b + oc0 : NULL, &c->post, c->alg, 1, err, errlen)))
            return -1;
    }
    c->oc_parts = threads;
    return 0;
}

cs_onednn_conv *cs_onednn_conv_new(const cs_conv2d_geom *g, const float *w, const float *b, const cs_onednn_post *post,
                                   cs_onednn_alg alg, char *err, size_t errlen)
{
    const int threads = cs_parallel_threads();
    cs_onednn_conv *c = conv_make(g, w, g->oc, b, post, alg, threads, err, errlen);
    if (c && split_channels(c, threads, err, errlen) != 0) {
        cs_onednn_conv_free(c);
        return NULL;
    }
    return c;
}

static cs_onednn_conv *conv_make(const cs_conv2d_geom *g, const float *w, int ldo, const float *b,
                                 const cs_onednn_post *post, cs_onednn_alg alg, int bands, char *err, size_t errlen)
{
    char why[200];
    if (!cs_onednn_usable()) {
        snprintf(err, errlen, "oneDNN has no vector kernels for this CPU");
        return NULL;
    }
    if (cs_conv2d_check(g, why, sizeof why) != 0) {
        snprintf(err, errlen, "%s", why);
        return NULL;
    }
    cs_onednn_conv *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->g = *g;
    c->g.n = 1;
    c->w = w, c->b = b, c->alg = alg, c->ldo = ldo;
    if (post) c->post = *post;
    pthread_mutex_init(&c->lock, NULL);
    /* A single image always runs as the same bands (one per thread of the pool now),
     * whoever runs it and on how many threads: bands of other heights would make
     * primitives of their own, each with its own copy of the kernel (Winograd's are
     * 2-4x the kernel). Their primitives, made now, say whether oneDNN takes the layer;
     * the kernel is reordered on the first run (a conv that only one kind of pass
     * uses keeps only that copy). */
    c->bands = bands;
    /* Winograd's 4x4 tiles want bands of 8 rows or more; fewer bands then, down to one. */
    if (alg == CS_ONEDNN_WINOGRAD && c->bands > g->oh / 8) c->bands = g->oh / 8;
    if (c->bands > MAX_BANDS) c->bands = MAX_BANDS;
    if (c->bands > g->oh) c->bands = g->oh;
    if (c->bands < 1) c->bands = 1;
    omp_set_num_threads(1);
    for (int b = 0; b < c->bands; b++)
        if (!shape_for(c, 1, (int)((long)g->oh * b / c->bands), (int)((long)g->oh * (b + 1) / c->bands), why,
                       sizeof why)) {
            snprintf(err, errlen, "%s", why);
            cs_onednn_conv_free(c);
            return NULL;
        }
    return c;
}

void cs_onednn_conv_free(cs_onednn_conv *c)
{
    if (!c) return;
    for (int p = 0; p < MAX_BANDS; p++) cs_onednn_conv_free(c->part[p]);
    for (shape *s = atomic_load(&c->shapes), *next; s; s = next) {
        next = s->next;
        shape_free(s);
    }
    for (kernel_copy *k = c->kernels, *next; k; k = next) {
        next = k->next;
        free(k->data);
        free(k);
    }
    pthread_mutex_destroy(&c->lock);
    free(c);
}

int cs_onednn_conv_activated(const cs_onednn_conv *c) { return c->post.act != CS_ONEDNN_LINEAR; }
int cs_onednn_conv_sums(const cs_onednn_conv *c) { return c->post.sum; }
const char *cs_onednn_conv_impl(const cs_onednn_conv *c) { return c->impl; }
const cs_conv2d_geom *cs_onednn_conv_geom(const cs_onednn_conv *c) { return &c->g; }
int cs_onednn_conv_channel_parts(const cs_onednn_conv *c) { return c->oc_parts; }

size_t cs_onednn_conv_kernel_bytes(const cs_onednn_conv *c)
{
    size_t total = 0;
    for (const kernel_copy *k = c->kernels; k; k = k->next) total += k->bytes;
    for (int p = 0; p < c->oc_parts; p++) total += cs_onednn_conv_kernel_bytes(c->part[p]);
    return total;
}

/* ---- running ---- */

typedef struct {
    const cs_onednn_conv *c;
    const float *x, *addend;
    float *y;
    cs_scratch *s;
    int chunk, chunks, bands; /* images per run, runs, bands per image */
    shape *full[MAX_BANDS], *last[MAX_BANDS]; /* the last run may be shorter */
    atomic_int failed;
} job;

/* The post-ops' activation, as oneDNN's eltwise relu (alpha: the slope below 0) and
 * clip (to [alpha, beta]) compute it. */
static void activate(const cs_onednn_post *post, float *y, size_t n)
{
    const float a = post->alpha, b = post->beta;
    if (post->act == CS_ONEDNN_RELU)
        for (size_t i = 0; i < n; i++) y[i] = y[i] > 0 ? y[i] : y[i] * a;
    else if (post->act == CS_ONEDNN_CLIP)
        for (size_t i = 0; i < n; i++) y[i] = y[i] < a ? a : y[i] > b ? b : y[i];
}

static int run_shape(const cs_onednn_conv *c, const shape *s, const float *x, float *y, char *buf,
                     dnnl_stream_t st)
{
    dnnl_memory_t src = NULL, dst = NULL, ker = NULL, bias = NULL, pad = NULL, src_c = NULL, dst_c = NULL;
    char *src_buf = buf + s->pad_bytes, *dst_buf = src_buf + s->src_bytes;
    int ok = dnnl_memory_create(&src, &s->src_user, engine, (void *)x) == dnnl_success &&
             dnnl_memory_create(&dst, &s->dst_user, engine, y) == dnnl_success &&
             dnnl_memory_create(&ker, &s->kernel->md, engine, s->kernel->data) == dnnl_success &&
             (!c->b || dnnl_memory_create(&bias, &s->bias_md, engine, (void *)c->b) == dnnl_success) &&
             (!s->pad_bytes || dnnl_memory_create(&pad, &s->pad_md, engine, buf) == dnnl_success) &&
             (!s->to_conv || dnnl_memory_create(&src_c, &s->src_md, engine, src_buf) == dnnl_success) &&
             (!s->from_conv || dnnl_memory_create(&dst_c, &s->dst_md, engine, dst_buf) == dnnl_success);
    if (ok && s->to_conv) ok = run_reorder(s->to_conv, src, src_c, st) == 0;
    if (ok) {
        dnnl_exec_arg_t a[5] = {{DNNL_ARG_SRC, src_c ? src_c : src},
                                {DNNL_ARG_WEIGHTS, ker},
                                {DNNL_ARG_DST, dst_c ? dst_c : dst}};
        int na = 3;
        if (bias) a[na++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, bias};
        if (pad) a[na++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, pad};
        ok = dnnl_primitive_execute(s->conv, st, na, a) == dnnl_success;
    }
    if (ok && s->from_conv) ok = run_reorder(s->from_conv, dst_c, dst, st) == 0;
    if (ok) ok = dnnl_stream_wait(st) == dnnl_success;
    if (ok && s->act_after)
        activate(&c->post, y, (size_t)s->n * (s->oy1 - s->oy0) * c->g.ow * c->g.oc);
    dnnl_memory_t all[] = {src, dst, ker, bias, pad, src_c, dst_c};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (all[i]) dnnl_memory_destroy(all[i]);
    return ok ? 0 : -1;
}

static void run_range(void *ctx, long begin, long end, int worker)
{
    job *j = ctx;
    const cs_conv2d_geom *g = &j->c->g;
    const size_t in_image = (size_t)g->ih * g->iw * g->ic, out_image = (size_t)g->oh * g->ow * g->oc;
    omp_set_num_threads(1);
    dnnl_stream_t st;
    if (dnnl_stream_create(&st, engine, dnnl_stream_default_flags) != dnnl_success) {
        atomic_store(&j->failed, 1);
        return;
    }
    for (long t = begin; t < end && !atomic_load(&j->failed); t++) {
        const int run = (int)(t / j->bands), band = (int)(t % j->bands);
        const shape *s = run == j->chunks - 1 ? j->last[band] : j->full[band];
        const size_t image = (size_t)run * j->chunk;
        const float *x = j->x + image * in_image + (size_t)s->iy0 * g->iw * g->ic;
        const size_t at = image * out_image + (size_t)s->oy0 * g->ow * g->oc;
        float *y = j->y + at;
        /* The sum post-op adds to what the destination holds: the addend, put there
         * piece by piece while it is about to be read. */
        if (j->addend) memcpy(y, j->addend + at, (size_t)s->n * (s->oy1 - s->oy0) * g->ow * g->oc * sizeof(float));
        if (run_shape(j->c, s, x, y, j->s->onednn[worker], st) != 0) atomic_store(&j->failed, 1);
    }
    dnnl_stream_destroy(st);
}

/* Each worker's buffer holds what the largest of the shapes needs. */
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

/* The shape's kernel copy, made on its first run. 0, or -1 when out of memory. */
static int ensure_kernel(cs_onednn_conv *c, shape *s)
{
    if (atomic_load(&s->kernel)) return 0;
    pthread_mutex_lock(&c->lock);
    if (!atomic_load(&s->kernel)) atomic_store(&s->kernel, kernel_in(c, &s->kernel_md));
    pthread_mutex_unlock(&c->lock);
    return atomic_load(&s->kernel) ? 0 : -1;
}

static shape *find_shape(const cs_onednn_conv *c, int n, int oy0, int oy1)
{
    for (shape *s = atomic_load(&c->shapes); s; s = s->next)
        if (s->n == n && s->oy0 == oy0 && s->oy1 == oy1) return s;
    return NULL;
}

int cs_onednn_conv_rows_prepare(cs_onednn_conv *c, int oy0, int oy1, cs_scratch *s)
{
    char why[200];
    omp_set_num_threads(1);
    shape *sh = shape_for(c, 1, oy0, oy1, why, sizeof why);
    if (!sh || ensure_kernel(c, sh) != 0) return -1;
    return grow_buffers(s, sh->pad_bytes + sh->src_bytes + sh->dst_bytes);
}

int cs_onednn_conv_rows(const cs_onednn_conv *c, int oy0, int oy1, const float *x, const float *addend, float *y,
                        cs_scratch *s, int worker)
{
    const shape *sh = find_shape(c, 1, oy0, oy1);
    if (!sh || !atomic_load(&sh->kernel) || sh->pad_bytes + sh->src_bytes + sh->dst_bytes > s->onednn_bytes) return -1;
    omp_set_num_threads(1);
    dnnl_stream_t st;
    if (dnnl_stream_create(&st, engine, dnnl_stream_default_flags) != dnnl_success) return -1;
    if (addend) memcpy(y, addend, (size_t)(oy1 - oy0) * c->g.ow * c->g.oc * sizeof(float));
    const int rc = run_shape(c, sh, x, y, s->onednn[worker], st);
    dnnl_stream_destroy(st);
    return rc;
}

typedef struct {
    const cs_onednn_conv *c;
    const float *x, *addend;
    float *y;
    cs_scratch *s;
    size_t temp_at; /* where a worker's buffer holds a part's output */
    atomic_int failed;
} part_job;

/* Tasks image * oc_parts + part: the part's channels into the buffer, then into y's. */
static void run_parts(void *ctx, long begin, long end, int worker)
{
    part_job *j = ctx;
    const cs_onednn_conv *c = j->c;
    const cs_conv2d_geom *g = &c->g;
    const size_t pixels = (size_t)g->oh * g->ow, in_image = (size_t)g->ih * g->iw * g->ic;
    omp_set_num_threads(1);
    dnnl_stream_t st;
    if (dnnl_stream_create(&st, engine, dnnl_stream_default_flags) != dnnl_success) {
        atomic_store(&j->failed, 1);
        return;
    }
    char *buf = j->s->onednn[worker];
    float *temp = (float *)(buf + j->temp_at);
    for (long t = begin; t < end && !atomic_load(&j->failed); t++) {
        const long image = t / c->oc_parts;
        const int p = (int)(t % c->oc_parts), oc0 = c->part_oc0[p], w = c->part_oc0[p + 1] - oc0;
        const cs_onednn_conv *part = c->part[p];
        const size_t at = (size_t)image * pixels * g->oc + oc0;
        if (j->addend) /* the sum post-op adds what its output holds */
            for (size_t q = 0; q < pixels; q++) memcpy(temp + q * w, j->addend + at + q * g->oc, (size_t)w * sizeof *temp);
        if (run_shape(part, find_shape(part, 1, 0, g->oh), j->x + image * in_image, temp, buf, st) != 0) {
            atomic_store(&j->failed, 1);
            break;
        }
        for (size_t q = 0; q < pixels; q++) memcpy(j->y + at + q * g->oc, temp + q * w, (size_t)w * sizeof *temp);
    }
    dnnl_stream_destroy(st);
}

static int forward_parts(cs_onednn_conv *c, int n, const float *x, const float *addend, float *y, cs_scratch *s)
{
    const cs_conv2d_geom *g = &c->g;
    size_t need = 0;
    for (int p = 0; p < c->oc_parts; p++) {
        shape *sh = find_shape(c->part[p], 1, 0, g->oh);
        if (!sh || ensure_kernel(c->part[p], sh) != 0) return -1;
        if (sh->pad_bytes + sh->src_bytes + sh->dst_bytes > need) need = sh->pad_bytes + sh->src_bytes + sh->dst_bytes;
    }
    part_job j = {.c = c, .x = x, .addend = addend, .y = y, .s = s, .temp_at = round_up(need)};
    const size_t widest = (size_t)(c->part_oc0[1] - c->part_oc0[0] + 16) * g->oh * g->ow * sizeof(float);
    if (grow_buffers(s, j.temp_at + round_up(widest)) != 0) return -1;
    cs_parallel_run((long)n * c->oc_parts, 1, c->oc_parts, run_parts, &j);
    return atomic_load(&j.failed) ? -1 : 0;
}

int cs_onednn_conv_forward(cs_onednn_conv *c, int n, const float *x, const float *addend, float *y, cs_scratch *s)
{
    if (n < 1 || !addend != !c->post.sum || (addend && addend == y)) return -1;
    const cs_conv2d_geom *g = &c->g;
    job j = {.c = c, .x = x, .addend = addend, .y = y, .s = s};
    int parts = cs_parallel_parts();
    if (parts > s->workers) parts = s->workers;
    if (parts > MAX_BANDS) parts = MAX_BANDS;
    if (parts < 1) parts = 1;
    /* Fewer images than threads: each image as parts of its channels, where the conv has them. */
    if (n < parts * 2 && parts == c->oc_parts) return forward_parts(c, n, x, addend, y, s);
    /* A batch as runs of images, one per part; fewer images than parts, or one: each
     * image as the conv's bands. */
    if (n >= parts && n > 1) {
        j.chunk = (n + parts - 1) / parts;
        j.bands = 1;
    } else {
        j.chunk = 1;
        j.bands = c->bands;
    }
    j.chunks = (n + j.chunk - 1) / j.chunk;
    const int tail = n - (j.chunks - 1) * j.chunk;
    char why[200];
    omp_set_num_threads(1);
    size_t need = 0;
    for (int b = 0; b < j.bands; b++) {
        const int oy0 = (int)((long)g->oh * b / j.bands), oy1 = (int)((long)g->oh * (b + 1) / j.bands);
        if (!(j.full[b] = shape_for(c, j.chunk, oy0, oy1, why, sizeof why)) ||
            !(j.last[b] = tail == j.chunk ? j.full[b] : shape_for(c, tail, oy0, oy1, why, sizeof why)))
            return -1;
        shape *both[2] = {j.full[b], j.last[b]};
        for (int k = 0; k < 2; k++) {
            size_t bytes = both[k]->pad_bytes + both[k]->src_bytes + both[k]->dst_bytes;
            if (bytes > need) need = bytes;
            if (ensure_kernel(c, both[k]) != 0) return -1;
        }
    }
    if (grow_buffers(s, need ? need : ALIGN) != 0) return -1;
    cs_parallel_run((long)j.chunks * j.bands, 1, parts, run_range, &j);
    return atomic_load(&j.failed) ? -1 : 0;
}
