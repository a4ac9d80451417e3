/*
 * onednn_conv.c - one convolution of an inference pass through oneDNN's C API.
 *
 * Its shapes (onednn_common.h: whole images, or bands of rows of one image) are
 * direct or Winograd convolutions in fp32 on the NHWC tensors; Winograd reads and
 * writes oneDNN's blocked layouts, which the common code reorders in and out.
 */
#include "onednn_conv.h"

#include <omp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onednn_common.h"
#include "parallel.h"

#define MAX_PARTS CS_MAX_WORKERS

struct cs_onednn_conv {
    cs_onednn_op op; /* first: the common code's hooks get it back as a cs_onednn_conv */
    cs_onednn_alg alg;
    /* A single image whose kernel outweighs its output runs as parts of its output
     * channels instead (each a conv of its own), one per thread: each thread then reads
     * its share of the kernel, not all of it. */
    int oc_parts;
    struct cs_onednn_conv *part[MAX_PARTS];
    int part_oc0[MAX_PARTS + 1];
    /* A Winograd conv of some of a layer's output channels keeps a dense copy of its
     * kernel columns: oneDNN's Winograd reorder reads no kernel with a row stride. */
    float *own_kernel;
    size_t own_kernel_bytes;
};

int cs_onednn_usable(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return 0;
#else
    return 0;
#endif
    return cs_onednn_engine() != NULL;
}

int cs_onednn_conv_possible(const cs_conv2d_geom *g, char *err, size_t errlen)
{
    char why[200];
    if (!cs_onednn_usable()) {
        snprintf(err, errlen, "oneDNN has no vector kernels for this CPU");
        return 0;
    }
    if (cs_conv2d_check(g, why, sizeof why) != 0) {
        snprintf(err, errlen, "%s", why);
        return 0;
    }
    return 1;
}

/* Winograd kernels of F(4x4,3x3) are 4x the size of the kernel: where they do not fit in
 * a core's cache, a small image is bound by reading them (VGG16's 14x14x512 layers ran
 * at half the speed of F(2x2,3x3), bench/conv_shapes), else F(4x4,3x3) is the faster. */
int cs_onednn_winograd_kernel_small(const cs_conv2d_geom *g)
{
    return 36L * g->ic * g->oc * (long)sizeof(float) <= 1L << 20;
}

static int prefers_4x3(const cs_conv2d_geom *g)
{
    return (long)g->oh * g->ow >= 28 * 28 || cs_onednn_winograd_kernel_small(g);
}

/* oneDNN's F(4x4,3x3) Winograd where it offers one (it lists F(2x2,3x3) first for some
 * shapes): it computes each image the same way whatever the number of images. NULL when
 * it has none. */
static dnnl_primitive_desc_t pick_winograd(const dnnl_convolution_desc_t *cd, const_dnnl_primitive_attr_t attr)
{
    dnnl_primitive_desc_iterator_t it;
    dnnl_primitive_desc_t pd = NULL;
    if (dnnl_primitive_desc_iterator_create(&it, cd, attr, cs_onednn_engine(), NULL) != dnnl_success) return NULL;
    do {
        dnnl_primitive_desc_t c = dnnl_primitive_desc_iterator_fetch(it);
        const char *impl = cs_onednn_impl(c);
        if (impl && strstr(impl, "wino_4x3")) {
            pd = c;
            break;
        }
        if (c) dnnl_primitive_desc_destroy(c);
    } while (dnnl_primitive_desc_iterator_next(it) == dnnl_success);
    dnnl_primitive_desc_iterator_destroy(it);
    return pd;
}

/* The primitive descriptor for shape s reading the kernel in layout `kernel` (NULL:
 * the one oneDNN prefers); NULL when oneDNN refuses. */
static dnnl_primitive_desc_t describe_with(const cs_onednn_conv *c, cs_onednn_shape *s,
                                           const dnnl_memory_desc_t *kernel)
{
    const cs_onednn_op *op = &c->op;
    const int wino = c->alg == CS_ONEDNN_WINOGRAD;
    dnnl_convolution_desc_t cd;
    if (cs_onednn_conv_desc(op, s, wino ? dnnl_convolution_winograd : dnnl_convolution_direct, dnnl_f32,
                            wino ? dnnl_format_tag_any : dnnl_nhwc, kernel, &cd) != 0)
        return NULL;
    /* oneDNN's Winograd takes a plain ReLU but not a leaky one or a clip, nor the sum
     * (whose destination would be its own blocked copy, not the caller's output): then
     * the post-ops are left to the common code, on the rows the primitive has just
     * written. */
    for (s->post_after = wino && op->post.sum; s->post_after < 2; s->post_after++) {
        if (s->post_after && (!wino || (op->post.act == CS_ONEDNN_LINEAR && !op->post.sum))) break;
        dnnl_primitive_attr_t attr = cs_onednn_attr(op, !s->post_after);
        dnnl_primitive_desc_t pd = attr && wino && prefers_4x3(&op->g) ? pick_winograd(&cd, attr) : NULL;
        if (attr && !pd && dnnl_primitive_desc_create(&pd, &cd, attr, cs_onednn_engine(), NULL) != dnnl_success)
            pd = NULL;
        if (attr) dnnl_primitive_attr_destroy(attr);
        if (pd) return pd;
    }
    return NULL;
}

/* The primitive descriptor for shape s; NULL, with the reason in why, when oneDNN
 * refuses or offers only its reference code. */
static dnnl_primitive_desc_t describe(const cs_onednn_op *op, cs_onednn_shape *s, char *why, size_t whylen)
{
    const cs_onednn_conv *c = (const cs_onednn_conv *)op;
    /* The shapes of one layer read one copy of the kernel: the layout made for the
     * first (Winograd's transformed kernels are 4x the kernel's size). On some CPUs
     * Winograd's layout follows the shape (the blocking oneDNN picks for the tile
     * count and the caches): a batch's shape that cannot read it is refused, and the
     * batch runs as single images instead (cs_onednn_op_forward), which also computes
     * each image as it is computed alone. */
    dnnl_primitive_desc_t pd = describe_with(c, s, op->first ? &op->first->kernel_md : NULL);
    if (op->first) {
        const char *impl = cs_onednn_impl(pd);
        if (!pd || !impl || strcmp(impl, op->impl) != 0) {
            if (pd) dnnl_primitive_desc_destroy(pd);
            snprintf(why, whylen, "oneDNN reads this shape's kernel in another layout than the layer's first");
            return NULL;
        }
    }
    const char *impl = cs_onednn_impl(pd);
    if (!impl)
        snprintf(why, whylen, "oneDNN has no %s convolution for it", c->alg == CS_ONEDNN_WINOGRAD ? "Winograd" : "direct");
    else if (cs_onednn_reference(impl))
        snprintf(why, whylen, "oneDNN offers only %s for it", impl);
    else
        return pd;
    if (pd) dnnl_primitive_desc_destroy(pd);
    return NULL;
}

static cs_onednn_conv *conv_make(const cs_conv2d_geom *g, const float *w, int ldo, const float *b,
                                 const cs_onednn_post *post, cs_onednn_alg alg, int bands, char *err, size_t errlen)
{
    if (!cs_onednn_conv_possible(g, err, errlen)) return NULL;
    cs_onednn_conv *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->alg = alg;
    cs_onednn_op *op = &c->op;
    op->g = *g;
    op->w = w, op->b = b, op->ldo = ldo;
    if (post) op->post = *post;
    op->describe = describe;
    /* A single image always runs as the same bands (one per thread of the pool now),
     * whoever runs it and on how many threads: bands of other heights would make
     * primitives of their own, each with its own copy of the kernel (Winograd's are
     * 2-4x the kernel). Their primitives, made now, say whether oneDNN takes the layer;
     * the kernel is reordered on the first run (a conv that only one kind of pass
     * uses keeps only that copy). */
    op->parts = bands;
    /* Winograd's 4x4 tiles want bands of 8 rows or more; fewer bands then, down to one. */
    if (alg == CS_ONEDNN_WINOGRAD && op->parts > g->oh / 8) op->parts = g->oh / 8;
    if (op->parts > g->oh) op->parts = g->oh;
    if (cs_onednn_op_start(op, err, errlen) != 0) {
        cs_onednn_conv_free(c);
        return NULL;
    }
    return c;
}

/* Output channels [lo, hi) of c (a depthwise conv's are its input's too) as a conv of
 * their own, on one band, with c's post-ops and their share of its bias. */
static cs_onednn_conv *outputs_part(const cs_onednn_conv *c, int lo, int hi, char *err, size_t errlen)
{
    const cs_onednn_op *op = &c->op;
    cs_conv2d_geom g = op->g;
    if (g.groups > 1) g.ic = g.groups = hi - lo;
    g.oc = hi - lo;
    const float *w = op->w + lo;
    int ldo = op->ldo;
    float *copy = NULL;
    const size_t rows = (size_t)g.kh * g.kw * (g.ic / g.groups), bytes = rows * g.oc * sizeof *copy;
    if (c->alg == CS_ONEDNN_WINOGRAD) {
        if (!(copy = malloc(bytes))) {
            snprintf(err, errlen, "out of memory");
            return NULL;
        }
        for (size_t r = 0; r < rows; r++) memcpy(copy + r * g.oc, w + r * ldo, (size_t)g.oc * sizeof *copy);
        w = copy, ldo = g.oc;
    }
    cs_onednn_conv *part = conv_make(&g, w, ldo, op->b ? op->b + lo : NULL, &op->post, c->alg, 1, err, errlen);
    if (!part) {
        free(copy);
        return NULL;
    }
    part->own_kernel = copy;
    part->own_kernel_bytes = copy ? bytes : 0;
    return part;
}

static void parts_free(cs_onednn_conv *c)
{
    for (int p = 0; p < MAX_PARTS; p++) {
        cs_onednn_conv_free(c->part[p]);
        c->part[p] = NULL;
    }
    c->oc_parts = 0;
}

/* Output channels in parts of a multiple of 16, one per thread, where the kernel
 * weighs more than one image's output and a single image would otherwise not keep
 * every thread on its own share of it:
 * - a direct conv (ResNet-18's and MobileNetV2's last layers): bands of rows each read
 *   the whole kernel from memory, and two threads ran them barely faster than one;
 * - a Winograd conv whose image is too short for a band of 8 rows a thread (ResNet-18's
 *   14x14x256 and VGG16's 14x14x512 layers), which would leave threads idle.
 * A part oneDNN refuses leaves the conv whole. */
static void split_channels(cs_onednn_conv *c, int threads)
{
    const cs_onednn_op *op = &c->op;
    const cs_conv2d_geom *g = &op->g;
    const double kernel = (double)g->kh * g->kw * g->ic * g->oc, out = (double)g->oh * g->ow * g->oc;
    if (threads < 2 || g->groups != 1 || kernel <= out || g->oc < 32 * threads ||
        (c->alg == CS_ONEDNN_WINOGRAD && op->parts >= threads))
        return;
    if (threads > MAX_PARTS) threads = MAX_PARTS;
    for (int p = 0; p <= threads; p++) c->part_oc0[p] = (int)((long)g->oc * p / threads) / 16 * 16;
    c->part_oc0[threads] = g->oc;
    char why[200];
    for (int p = 0; p < threads; p++)
        if (!(c->part[p] = outputs_part(c, c->part_oc0[p], c->part_oc0[p + 1], why, sizeof why))) {
            parts_free(c);
            return;
        }
    c->oc_parts = threads;
}

cs_onednn_conv *cs_onednn_conv_slice(const cs_onednn_conv *c, cs_onednn_slice_kind kind, int lo, int hi, int first,
                                     char *err, size_t errlen)
{
    const cs_onednn_op *op = &c->op;
    const cs_conv2d_geom *g = &op->g;
    cs_conv2d_geom sg = *g;
    const int depthwise = g->groups > 1 && g->groups == g->ic && g->groups == g->oc;
    const int width = kind == CS_SLICE_OUTPUTS ? g->oc : g->ic;
    if (lo < 0 || hi > width || lo >= hi || lo % 16 || (hi < width && hi % 16) || c->alg != CS_ONEDNN_DIRECT ||
        (g->groups > 1 && !depthwise) ||
        (kind == CS_SLICE_INPUTS && (depthwise || g->kh != 1 || g->kw != 1 || op->post.act != CS_ONEDNN_LINEAR))) {
        snprintf(err, errlen, "no slice [%d, %d) of this conv's %s channels", lo, hi,
                 kind == CS_SLICE_OUTPUTS ? "output" : "input");
        return NULL;
    }
    if (kind == CS_SLICE_OUTPUTS) return outputs_part(c, lo, hi, err, errlen);
    /* A 1x1 kernel's rows are its input channels, op->ldo floats apart. */
    sg.ic = hi - lo;
    const cs_onednn_post none = {0};
    return conv_make(&sg, op->w + (size_t)lo * op->ldo, op->ldo, first ? op->b : NULL, first ? &op->post : &none,
                     c->alg, 1, err, errlen);
}

cs_onednn_conv *cs_onednn_conv_new(const cs_conv2d_geom *g, const float *w, const float *b, const cs_onednn_post *post,
                                   cs_onednn_alg alg, char *err, size_t errlen)
{
    const int threads = cs_parallel_threads();
    cs_onednn_conv *c = conv_make(g, w, g->oc, b, post, alg, threads, err, errlen);
    if (c) split_channels(c, threads);
    return c;
}

void cs_onednn_conv_free(cs_onednn_conv *c)
{
    if (!c) return;
    parts_free(c);
    free(c->own_kernel);
    cs_onednn_op_clear(&c->op);
    free(c);
}

int cs_onednn_conv_activated(const cs_onednn_conv *c) { return c->op.post.act != CS_ONEDNN_LINEAR; }
int cs_onednn_conv_sums(const cs_onednn_conv *c) { return c->op.post.sum; }
const char *cs_onednn_conv_impl(const cs_onednn_conv *c) { return c->op.impl; }
const cs_conv2d_geom *cs_onednn_conv_geom(const cs_onednn_conv *c) { return &c->op.g; }
int cs_onednn_conv_channel_parts(const cs_onednn_conv *c) { return c->oc_parts; }
int cs_onednn_conv_image_parts(const cs_onednn_conv *c) { return c->oc_parts ? c->oc_parts : c->op.parts; }

size_t cs_onednn_conv_kernel_bytes(const cs_onednn_conv *c)
{
    size_t total = cs_onednn_op_kernel_bytes(&c->op) + c->own_kernel_bytes;
    for (int p = 0; p < c->oc_parts; p++) total += cs_onednn_conv_kernel_bytes(c->part[p]);
    return total;
}

/* ---- a single image as parts of its output channels ---- */

typedef struct {
    const cs_onednn_conv *c;
    const float *x, *addend;
    float *y;
    cs_scratch *s;
    size_t temp_at, addend_at; /* where a worker's buffer holds a part's output and its addend */
    atomic_int failed;
} part_job;

/* Tasks image * oc_parts + part: the part's channels into the buffer, then into y's. */
static void run_parts(void *ctx, long begin, long end, int worker)
{
    part_job *j = ctx;
    const cs_onednn_conv *c = j->c;
    const cs_conv2d_geom *g = &c->op.g;
    const size_t pixels = (size_t)g->oh * g->ow, in_image = (size_t)g->ih * g->iw * g->ic;
    dnnl_stream_t st = cs_onednn_worker_stream();
    if (!st) {
        atomic_store(&j->failed, 1);
        return;
    }
    char *buf = j->s->onednn[worker];
    float *temp = (float *)(buf + j->temp_at), *add = j->addend ? (float *)(buf + j->addend_at) : NULL;
    for (long t = begin; t < end && !atomic_load(&j->failed); t++) {
        const long image = t / c->oc_parts;
        const int p = (int)(t % c->oc_parts), oc0 = c->part_oc0[p], w = c->part_oc0[p + 1] - oc0;
        const cs_onednn_op *part = &c->part[p]->op;
        const size_t at = (size_t)image * pixels * g->oc + oc0;
        if (add)
            for (size_t q = 0; q < pixels; q++) memcpy(add + q * w, j->addend + at + q * g->oc, (size_t)w * sizeof *add);
        if (cs_onednn_run_shape(part, cs_onednn_op_shape(part, 1, 0, g->oh, 0), j->x + image * in_image, add, temp,
                                buf, st) != 0) {
            atomic_store(&j->failed, 1);
            break;
        }
        for (size_t q = 0; q < pixels; q++) memcpy(j->y + at + q * g->oc, temp + q * w, (size_t)w * sizeof *temp);
    }
}

static int forward_parts(cs_onednn_conv *c, int n, const float *x, const float *addend, float *y, cs_scratch *s)
{
    const cs_conv2d_geom *g = &c->op.g;
    size_t need = 0;
    for (int p = 0; p < c->oc_parts; p++) {
        cs_onednn_shape *sh = cs_onednn_op_shape(&c->part[p]->op, 1, 0, g->oh, 0);
        if (!sh || cs_onednn_op_kernel(&c->part[p]->op, sh) != 0) return -1;
        if (cs_onednn_shape_bytes(sh) > need) need = cs_onednn_shape_bytes(sh);
    }
    const size_t widest = cs_onednn_round_up((size_t)(c->part_oc0[1] - c->part_oc0[0] + 16) * g->oh * g->ow * sizeof(float));
    part_job j = {.c = c, .x = x, .addend = addend, .y = y, .s = s, .temp_at = cs_onednn_round_up(need)};
    j.addend_at = j.temp_at + widest;
    if (cs_onednn_grow_buffers(s, j.addend_at + (addend ? widest : 0)) != 0) return -1;
    cs_parallel_run((long)n * c->oc_parts, 1, c->oc_parts, run_parts, &j);
    return atomic_load(&j.failed) ? -1 : 0;
}

int cs_onednn_conv_forward(cs_onednn_conv *c, int n, const float *x, const float *addend, float *y, cs_scratch *s)
{
    if (!cs_onednn_op_args(&c->op, n, addend, y)) return -1;
    /* Fewer images than threads: each image as parts of its channels, where the conv has them. */
    const int parts = cs_onednn_parts(s);
    if (n < parts * 2 && parts == c->oc_parts) return forward_parts(c, n, x, addend, y, s);
    return cs_onednn_op_forward(&c->op, n, x, addend, y, s);
}

void cs_onednn_conv_band_input(const cs_onednn_conv *c, int oy0, int oy1, int *iy0, int *iy1)
{
    int pt, pb;
    cs_onednn_band_rows(&c->op.g, oy0, oy1, iy0, iy1, &pt, &pb);
}

int cs_onednn_conv_rows_prepare(cs_onednn_conv *c, int oy0, int oy1, cs_scratch *s)
{
    return cs_onednn_op_rows_prepare(&c->op, oy0, oy1, s);
}

int cs_onednn_conv_rows(const cs_onednn_conv *c, int oy0, int oy1, const float *x, const float *addend, float *y,
                        cs_scratch *s, int worker)
{
    return cs_onednn_op_rows(&c->op, oy0, oy1, x, addend, y, s, worker);
}
