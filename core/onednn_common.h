/*
 * onednn_common.h - what the layers run through oneDNN share (onednn_conv.c in fp32,
 * onednn_bf16.c in bf16): an op that keeps one primitive per shape of work, the
 * copies of its kernel those primitives read, and the spreading of its work over
 * convscope's pool.
 *
 * A shape is `n` images, the output rows [oy0, oy1) of one image (a band of a
 * convolution), or the outputs of one slice of a dense layer. A band reads the input
 * rows its windows reach and takes the padding that falls inside it, so the bands of
 * one image are independent convolutions over contiguous pieces of the input and
 * output, which NHWC rows are. Each kind of op says how its primitive is described
 * (cs_onednn_op's describe); this module makes, keeps, runs and frees them.
 *
 * Internal to those two files: it speaks oneDNN's types, which their own headers keep
 * to themselves.
 */
#ifndef CS_ONEDNN_COMMON_H
#define CS_ONEDNN_COMMON_H

#include <dnnl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

#include "onednn_conv.h" /* cs_onednn_post */

#define CS_ONEDNN_ALIGN 64

/* A kernel (of one slice) in a layout some primitive reads. */
typedef struct cs_onednn_kernel {
    struct cs_onednn_kernel *next;
    int slice;
    dnnl_memory_desc_t md;
    void *data;
    size_t bytes;
} cs_onednn_kernel;

/* One primitive and the shape of work it does. */
typedef struct cs_onednn_shape {
    struct cs_onednn_shape *next;
    int n, oy0, oy1, slice; /* images; output rows (a band); a dense layer's slice */
    int iy0, ih, pt, pb;    /* a band's first input row, its rows and the padding above and below */
    dnnl_primitive_t prim, to_prim, from_prim; /* reorders into and out of the primitive's layouts, or NULL */
    /* The caller's layouts (fp32, NHWC or rows), and the primitive's own */
    dnnl_memory_desc_t src_user, dst_user, src_md, dst_md, pad_md, bias_md, kernel_md;
    size_t pad_bytes, src_bytes, dst_bytes; /* the worker buffer: scratchpad, then src and dst copies */
    const cs_onednn_kernel *_Atomic kernel; /* reordered on the first run (under the lock) */
    /* The primitive cannot apply the post-ops (Winograd takes neither the residual sum nor
     * a leaky ReLU or a clip): the addend and the activation are applied to its output after. */
    int post_after;
} cs_onednn_shape;

typedef struct cs_onednn_op cs_onednn_op;

/* The primitive descriptor for shape s (its n, rows or slice and band are set), with
 * s->src_user, s->dst_user, s->bias_md and s->post_after set; NULL with the reason in
 * why when oneDNN has nothing worth running for it. Called under op->lock. */
typedef dnnl_primitive_desc_t (*cs_onednn_describe)(const cs_onednn_op *op, cs_onednn_shape *s, char *why,
                                                    size_t whylen);

/* The first member of each kind's own object. The caller sets the fields down to
 * `describe`, then calls cs_onednn_op_start. */
struct cs_onednn_op {
    cs_conv2d_geom g; /* g.n is ignored; a dense layer: ic and oc, 1x1 */
    const float *w, *b;
    int ldo; /* a conv kernel's stride from one input channel to the next: g.oc (0 says so), or more for a part */
    cs_onednn_post post;
    int parts;  /* bands of a single image (a conv), or slices of the outputs (a dense layer) */
    int slices; /* a dense layer: the parts are slices of its outputs */
    cs_onednn_describe describe;
    char impl[64]; /* the implementation oneDNN chose for the first shape */
    pthread_mutex_t lock; /* making shapes and kernel copies */
    cs_onednn_shape *_Atomic shapes;
    const cs_onednn_shape *first; /* the first shape made */
    cs_onednn_kernel *kernels;
};

/* oneDNN's CPU engine, made once; NULL when oneDNN has none. */
dnnl_engine_t cs_onednn_engine(void);
/* The calling thread's stream, which oneDNN then runs on alone (a team of one): what
 * each worker of a spread pass runs its primitives on. The thread keeps it (it is
 * destroyed when the thread ends); NULL when oneDNN fails. (onednn_thread.c) */
dnnl_stream_t cs_onednn_worker_stream(void);
/* The calling thread's memory object of layout md in argument slot `slot` (0 to
 * CS_ONEDNN_SLOTS - 1), pointed at data: the thread keeps it for the next pass that
 * needs it. The arguments of one execution take distinct slots. NULL when oneDNN fails. */
#define CS_ONEDNN_SLOTS 8
dnnl_memory_t cs_onednn_memory(int slot, const dnnl_memory_desc_t *md, const void *data, dnnl_stream_t st);
/* Whether oneDNN may run a conv of geometry g: the CPU has its vector kernels and g is
 * a geometry conv_general.h computes; 0 with the reason in err otherwise. */
int cs_onednn_conv_possible(const cs_conv2d_geom *g, char *err, size_t errlen);
/* The implementation a primitive descriptor names (e.g. "brgconv:avx512_core"), or NULL. */
const char *cs_onednn_impl(const_dnnl_primitive_desc_t pd);
/* Whether impl is oneDNN's reference code, far slower than convscope's own kernels. */
int cs_onednn_reference(const char *impl);
/* The first output of slice k of a dense layer's outputs (slice k is [first(k), first(k + 1))). */
int cs_onednn_slice_first(const cs_onednn_op *op, int k);

/* A reorder between two layouts on the engine, or NULL; running one from the data at
 * `from` (layout from_md) into `to` (to_md) on stream st, waited for. 0, or -1. */
dnnl_primitive_t cs_onednn_reorder_new(const dnnl_memory_desc_t *from, const dnnl_memory_desc_t *to);
int cs_onednn_reorder_run(dnnl_primitive_t r, const dnnl_memory_desc_t *from_md, const void *from,
                          const dnnl_memory_desc_t *to_md, void *to, dnnl_stream_t st);
/* Attributes with the caller's scratchpad (each worker lends its own), or NULL. */
dnnl_primitive_attr_t cs_onednn_scratchpad_attr(void);
/* A conv kernel (kh, kw, ic/groups, oc) as the caller stores it, in oneDNN's terms: weights
 * (oc, ic, kh, kw), or (groups, oc/groups, ic/groups, kh, kw), by strides; ldo is the
 * stride from one input channel to the next (g->oc, or more for a part). 0, or -1. */
int cs_onednn_conv_kernel_md(const cs_conv2d_geom *g, int ldo, dnnl_memory_desc_t *md);
/* The attributes of op's primitives: the caller's scratchpad, and op's post-ops (its
 * sum and activation) unless post_ops is 0; NULL when oneDNN refuses. */
dnnl_primitive_attr_t cs_onednn_attr(const cs_onednn_op *op, int post_ops);
/* The primitive descriptor of an operation (a convolution's or an inner product's
 * descriptor) with cs_onednn_attr(op, 1); NULL when oneDNN refuses. */
dnnl_primitive_desc_t cs_onednn_primitive_desc(const cs_onednn_op *op, const_dnnl_op_desc_t desc);
/* The input rows [*iy0, *iy1) that output rows [oy0, oy1) of g read, and the padding
 * that falls in the band above (*pt) and below (*pb). */
void cs_onednn_band_rows(const cs_conv2d_geom *g, int oy0, int oy1, int *iy0, int *iy1, int *pt, int *pb);
/* A forward convolution of op's geometry over shape s's band (algorithm alg), reading
 * src and kernel in data type dt with src and dst in layout tag (dnnl_format_tag_any:
 * oneDNN's choice) and the kernel in layout `kernel` (NULL: oneDNN's choice), writing
 * fp32; s->src_user and s->dst_user are fp32 NHWC. 0, or -1 when oneDNN refuses. */
int cs_onednn_conv_desc(const cs_onednn_op *op, cs_onednn_shape *s, dnnl_alg_kind_t alg, dnnl_data_type_t dt,
                        dnnl_format_tag_t tag, const dnnl_memory_desc_t *kernel, dnnl_convolution_desc_t *cd);

/* Worker parts a forward of s's workers runs on (the pool's parts now). */
int cs_onednn_parts(const cs_scratch *s);
/* Whether a forward of n images with this addend into y may run: an addend when the
 * post-ops sum and only then, and not y itself. */
int cs_onednn_op_args(const cs_onednn_op *op, int n, const float *addend, const float *y);
/* The shape for n images and rows [oy0, oy1), or slice k, if it is made; NULL otherwise.
 * No lock: shapes are published whole. */
cs_onednn_shape *cs_onednn_op_shape(const cs_onednn_op *op, int n, int oy0, int oy1, int k);
/* The kernel copy shape s reads, made on its first run. 0, or -1 when out of memory. */
int cs_onednn_op_kernel(cs_onednn_op *op, cs_onednn_shape *s);
/* Bytes of a worker buffer that shape s needs (its scratchpad and copies). */
size_t cs_onednn_shape_bytes(const cs_onednn_shape *s);
/* v rounded up to CS_ONEDNN_ALIGN. */
size_t cs_onednn_round_up(size_t v);
/* Grows each of s's worker buffers to hold need bytes. 0, or -1 when out of memory. */
int cs_onednn_grow_buffers(cs_scratch *s, size_t need);
/* Runs shape s of op on x into y, with buf (a worker's buffer) and stream st; addend
 * (the part of the residual that y's part takes, or NULL) is added where op sums. 0, or -1. */
int cs_onednn_run_shape(const cs_onednn_op *op, const cs_onednn_shape *s, const float *x, const float *addend,
                        float *y, char *buf, dnnl_stream_t st);

/* Makes op's single-image shapes, one per part, which say whether oneDNN takes the
 * layer. 0, or -1 with the reason in err; either way cs_onednn_op_clear frees what
 * was made. */
int cs_onednn_op_start(cs_onednn_op *op, char *err, size_t errlen);
void cs_onednn_op_clear(cs_onednn_op *op);
/* Bytes of the kernel copies made so far. */
size_t cs_onednn_op_kernel_bytes(const cs_onednn_op *op);
/* y = the op of x for n images (or rows of a dense layer), spread over the pool; see
 * cs_onednn_conv_forward. */
int cs_onednn_op_forward(cs_onednn_op *op, int n, const float *x, const float *addend, float *y, cs_scratch *s);
/* Output rows [oy0, oy1) of one image of a convolution: made ready, then run on the
 * calling thread; see cs_onednn_conv_rows_prepare and cs_onednn_conv_rows. */
int cs_onednn_op_rows_prepare(cs_onednn_op *op, int oy0, int oy1, cs_scratch *s);
int cs_onednn_op_rows(const cs_onednn_op *op, int oy0, int oy1, const float *x, const float *addend, float *y,
                      cs_scratch *s, int worker);

#endif
