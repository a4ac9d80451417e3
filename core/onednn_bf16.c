/*
 * onednn_bf16.c - bf16 convolutions and dense layers through oneDNN's C API
 * (onednn_bf16.h).
 *
 * Its shapes (onednn_common.h: images, bands of a convolution's rows, slices of a
 * dense layer's outputs) read bf16: each part of the work first converts the fp32
 * input it reads to bf16 in its worker's buffer (a oneDNN reorder: round to nearest
 * even), then runs the primitive on it. A dense slice writes its outputs to the
 * buffer, and they go from there to the slice's columns of the output.
 */
#include "onednn_bf16.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onednn_common.h"
#include "parallel.h"

struct cs_bf16_op {
    cs_onednn_op op; /* a dense layer: op.slices */
};

/* Slice s->slice of a dense layer over s->n rows; NULL when oneDNN refuses. */
static dnnl_primitive_desc_t describe_dense(const cs_onednn_op *op, cs_onednn_shape *s)
{
    const int outs = cs_onednn_slice_first(op, s->slice + 1) - cs_onednn_slice_first(op, s->slice);
    dnnl_dims_t sd = {s->n, op->g.ic}, dd = {s->n, outs}, kd = {outs, op->g.ic}, bd = {outs};
    dnnl_memory_desc_t src, kernel_any;
    if (dnnl_memory_desc_init_by_tag(&s->src_user, 2, sd, dnnl_f32, dnnl_nc) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&src, 2, sd, dnnl_bf16, dnnl_nc) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&s->dst_user, 2, dd, dnnl_f32, dnnl_nc) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&s->bias_md, 1, bd, dnnl_f32, dnnl_x) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&kernel_any, 2, kd, dnnl_bf16, dnnl_format_tag_any) != dnnl_success)
        return NULL;
    dnnl_inner_product_desc_t ipd;
    if (dnnl_inner_product_forward_desc_init(&ipd, dnnl_forward_inference, &src, &kernel_any,
                                             op->b ? &s->bias_md : NULL, &s->dst_user) != dnnl_success)
        return NULL;
    return cs_onednn_primitive_desc(op, &ipd);
}

/* A direct convolution over shape s's band, reading bf16 NHWC; NULL when oneDNN refuses. */
static dnnl_primitive_desc_t describe_conv(const cs_onednn_op *op, cs_onednn_shape *s)
{
    dnnl_convolution_desc_t cd;
    if (cs_onednn_conv_desc(op, s, dnnl_convolution_direct, dnnl_bf16, dnnl_nhwc, NULL, &cd) != 0) return NULL;
    return cs_onednn_primitive_desc(op, &cd);
}

/* The primitive descriptor for shape s; NULL, with the reason in why, when oneDNN
 * has no bf16 kernel for it on this CPU. */
static dnnl_primitive_desc_t describe(const cs_onednn_op *op, cs_onednn_shape *s, char *why, size_t whylen)
{
    dnnl_primitive_desc_t pd = op->slices ? describe_dense(op, s) : describe_conv(op, s);
    const char *impl = cs_onednn_impl(pd);
    /* Reference code, or bf16 emulated on plain AVX-512, is slower than fp32. */
    if (!impl)
        snprintf(why, whylen, "oneDNN has no bf16 %s for it", op->slices ? "inner product" : "convolution");
    else if (cs_onednn_reference(impl) || !strstr(impl, "bf16"))
        snprintf(why, whylen, "oneDNN offers only %s for it in bf16", impl);
    else
        return pd;
    if (pd) dnnl_primitive_desc_destroy(pd);
    return NULL;
}

static cs_bf16_op *op_new(int slices, const cs_conv2d_geom *g, const float *w, const float *b,
                          const cs_onednn_post *post, int parts, char *err, size_t errlen)
{
    cs_bf16_op *bf = calloc(1, sizeof *bf);
    if (!bf) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    cs_onednn_op *op = &bf->op;
    op->g = *g;
    op->w = w, op->b = b;
    if (post) op->post = *post;
    op->parts = parts;
    op->slices = slices;
    op->describe = describe;
    if (cs_onednn_op_start(op, err, errlen) != 0) {
        cs_bf16_op_free(bf);
        return NULL;
    }
    return bf;
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

void cs_bf16_op_free(cs_bf16_op *bf)
{
    if (!bf) return;
    cs_onednn_op_clear(&bf->op);
    free(bf);
}

int cs_bf16_op_activated(const cs_bf16_op *bf) { return bf->op.post.act != CS_ONEDNN_LINEAR; }
int cs_bf16_op_sums(const cs_bf16_op *bf) { return bf->op.post.sum; }
const char *cs_bf16_op_impl(const cs_bf16_op *bf) { return bf->op.impl; }
size_t cs_bf16_op_kernel_bytes(const cs_bf16_op *bf) { return cs_onednn_op_kernel_bytes(&bf->op); }

int cs_bf16_op_forward(cs_bf16_op *bf, int n, const float *x, const float *addend, float *y, cs_scratch *s)
{
    return cs_onednn_op_forward(&bf->op, n, x, addend, y, s);
}
