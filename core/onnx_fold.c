/*
 * onnx_fold.c - constant folding of an ONNX graph: the shape arithmetic exporters
 * write around Flatten and Reshape becomes constants, and what no output needs goes.
 *
 * One pass in topological order gives every value what is known of it: its shape
 * (dims that are numbers, or symbols for dims only known to be equal to another, such
 * as the batch), and for small constants its contents. An int64 value's elements may
 * themselves be symbols: Shape of a [batch, 3, 5, 5] tensor is [batch, 3, 5, 5], so
 * `x.view(x.size(0), -1)` gives the Reshape the shape [batch, -1], which is [0, 75]
 * (0 copies the input's dim). Nodes whose outputs are all constants are removed and
 * their outputs that are still used become initializers; then nodes no graph output
 * depends on, and initializers nothing reads, are removed too.
 *
 * Symbols are positive ids; a dim stores a symbol as its negation. A symbol that
 * arises from arithmetic the pass does not follow is fresh, equal to nothing, so the
 * pass never concludes two dims are equal unless they are.
 */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "onnx_reader.h"
#include "onnx_reader_priv.h"

/* Largest value (in elements) the pass computes; shape arithmetic is far smaller,
 * and leaving a large computation to the engine costs nothing. */
#define FOLD_MAX_ELEMS ((int64_t)1 << 20)
#define MAXD CS_ONNX_MAX_DIMS

typedef struct {
    int rank;           /* -1: shape unknown */
    int64_t dims[MAXD]; /* >= 0 a number, < 0 the symbol -dims[k] */
    int known;          /* the contents are known (then every dim is a number) */
    int dtype;          /* CS_ONNX_FLOAT or CS_ONNX_INT64 when known */
    int64_t count;
    float *f;
    int64_t *i;
    int64_t *sym;       /* INT64 only, NULL when has_sym is 0: sym[k] > 0 means element
                           k is that symbol and i[k] means nothing */
    int has_sym;
    int owned;          /* f, i, sym were allocated here (else borrowed) */
    int producer;       /* index of the node that outputs it, -1 for inputs and initializers */
} fval;

typedef struct {
    cs_onnx_graph *g;
    onnx_map names; /* value name -> index in vals */
    fval *vals;
    int n_vals;
    int64_t next_sym;
    const cs_onnx_node *node; /* the node being evaluated, for messages */
    char *err;
    size_t errlen;
} fold_ctx;

static int fv_const(const fval *v)
{
    return v && v->known && !v->has_sym;
}

static int64_t fresh(fold_ctx *c)
{
    return -c->next_sym++;
}

static int oom(fold_ctx *c)
{
    cs_set_err(c->err, c->errlen, "out of memory folding node '%s'", c->node ? c->node->name : "");
    return -1;
}

static void fv_release(fval *v)
{
    if (v->owned) {
        free(v->f);
        free(v->i);
        free(v->sym);
    }
    v->f = NULL;
    v->i = NULL;
    v->sym = NULL;
    v->known = v->has_sym = v->owned = 0;
}

/* Forgets what is known of v beyond who produces it. */
static void fv_unknown(fval *v)
{
    int producer = v->producer;
    fv_release(v);
    memset(v, 0, sizeof *v);
    v->rank = -1;
    v->producer = producer;
}

/* Gives v freshly allocated contents of `count` elements; shape set by the caller. */
static int fv_alloc(fold_ctx *c, fval *v, int dtype, int64_t count, int with_sym)
{
    fv_release(v);
    size_t n = count > 0 ? (size_t)count : 1;
    v->dtype = dtype;
    v->count = count;
    v->owned = 1;
    if (dtype == CS_ONNX_FLOAT) v->f = calloc(n, sizeof *v->f);
    else v->i = calloc(n, sizeof *v->i);
    if (with_sym) v->sym = calloc(n, sizeof *v->sym);
    if ((dtype == CS_ONNX_FLOAT ? !v->f : !v->i) || (with_sym && !v->sym)) {
        fv_release(v);
        return oom(c);
    }
    v->known = 1;
    return 0;
}

/* out takes r's shape and contents (r is left empty); out keeps its producer. */
static void fv_take(fval *out, fval *r)
{
    int producer = out->producer;
    fv_release(out);
    *out = *r;
    out->producer = producer;
    memset(r, 0, sizeof *r);
}

/* out takes in's shape and borrows its contents. */
static void fv_alias(fval *out, const fval *in)
{
    int producer = out->producer;
    fv_release(out);
    *out = *in;
    out->owned = 0;
    out->producer = producer;
}

static int64_t elem_count(const int64_t *dims, int rank)
{
    int64_t n = 1;
    for (int k = 0; k < rank; k++)
        if (dims[k] < 0 || __builtin_mul_overflow(n, dims[k], &n)) return -1;
    return n;
}

/* Product of dims[from..to): a number, the one symbol when the rest multiply to 1,
 * or a fresh symbol. */
static int64_t dim_prod(fold_ctx *c, const int64_t *dims, int from, int to)
{
    int64_t p = 1, sym = 0;
    int n_sym = 0;
    for (int k = from; k < to; k++) {
        if (dims[k] < 0) {
            n_sym++;
            sym = dims[k];
        } else if (__builtin_mul_overflow(p, dims[k], &p)) {
            return fresh(c);
        }
    }
    if (!n_sym) return p;
    if (n_sym == 1 && p == 1) return sym;
    return p == 0 ? 0 : fresh(c);
}

/* An int64 input that must be a constant list of at most `max` values (axes, pads,
 * starts...). The number of values, or -1 when unknown. */
static int const_ints(const fval *v, int64_t *out, int max)
{
    if (!fv_const(v) || v->dtype != CS_ONNX_INT64 || v->count > max || v->rank > 1) return -1;
    for (int64_t k = 0; k < v->count; k++) out[k] = v->i[k];
    return (int)v->count;
}

/* Axes from the `axes` attribute (older opsets) or from input `idx` (newer). -1 when
 * neither says; -2 when the input exists but is not constant. */
static int axes_of(const cs_onnx_node *n, fval **in, int idx, int64_t *axes)
{
    if (idx < n->n_inputs && in[idx]) {
        int k = const_ints(in[idx], axes, MAXD);
        return k < 0 ? -2 : k;
    }
    const int64_t *a;
    int k = cs_onnx_attr_ints(n, "axes", &a);
    if (k < 0) return -1;
    if (k > MAXD) return -2;
    memcpy(axes, a, (size_t)k * sizeof *a);
    return k;
}

static int norm_axis(int64_t a, int rank)
{
    if (a < 0) a += rank;
    return a >= 0 && a < rank ? (int)a : -1;
}

/* ---- shape inference ----------------------------------------------------------- */

/* rank -1 (unknown) is passed on as it is. */
static void set_shape(fval *v, const int64_t *dims, int rank)
{
    v->rank = rank < 0 ? -1 : rank;
    if (rank > 0) memcpy(v->dims, dims, (size_t)rank * sizeof *dims);
}

/* Two dims that must be equal (Concat's other axes): the number when one is known. */
static int64_t same_dim(fold_ctx *c, int64_t a, int64_t b)
{
    if (a == b) return a;
    if (a >= 0 && b < 0) return a;
    if (b >= 0 && a < 0) return b;
    return fresh(c);
}

static int64_t bcast_dim(fold_ctx *c, int64_t a, int64_t b)
{
    if (a == b) return a;
    if (a == 1) return b;
    if (b == 1) return a;
    if (a < 0 && b > 1) return b; /* a symbol that broadcasts against b must be b (or 1) */
    if (b < 0 && a > 1) return a;
    return fresh(c);
}

/* Multidirectional (numpy) broadcast of the known shapes in[0..n); -1 when unknown. */
static int bcast_shape(fold_ctx *c, fval **in, int n, int64_t *dims)
{
    int rank = 0;
    for (int k = 0; k < n; k++) {
        if (!in[k] || in[k]->rank < 0) return -1;
        if (in[k]->rank > rank) rank = in[k]->rank;
    }
    for (int d = 0; d < rank; d++) {
        int64_t v = 1;
        for (int k = 0; k < n; k++) {
            int off = d - (rank - in[k]->rank);
            if (off >= 0) v = bcast_dim(c, v, in[k]->dims[off]);
        }
        dims[d] = v;
    }
    return rank;
}

/* Output length of a convolution or pooling window along one axis. */
static int64_t window_out(fold_ctx *c, int64_t in, int64_t k, int64_t stride, int64_t dil, int64_t pb, int64_t pe,
                          const char *auto_pad, int ceil_mode)
{
    if (in < 0 || stride <= 0 || dil <= 0 || k <= 0 || pb < 0 || pe < 0) return fresh(c);
    if (!strcmp(auto_pad, "SAME_UPPER") || !strcmp(auto_pad, "SAME_LOWER")) return in / stride + (in % stride != 0);
    if (!strcmp(auto_pad, "VALID")) pb = pe = 0;
    /* room = in + pb + pe - ((k - 1) * dil + 1): how far the window can move. */
    int64_t span, end, room, last;
    if (__builtin_mul_overflow(k - 1, dil, &span) || __builtin_add_overflow(in, pb, &end) ||
        __builtin_add_overflow(end, pe, &room) || __builtin_sub_overflow(room, span, &room) || room < 1)
        return fresh(c);
    room--;
    int64_t out = room / stride + (ceil_mode && room % stride) + 1;
    /* With ceil_mode the last window must start inside the input or its left padding
     * (PyTorch's rule, which ONNX Runtime follows). */
    if (ceil_mode && (__builtin_mul_overflow(out - 1, stride, &last) || last >= end)) out--;
    return out;
}

/* Conv, ConvTranspose and the pools: [N, C, spatial...]. */
static int infer_window(fold_ctx *c, const cs_onnx_node *n, fval **in, fval *out, int kind)
{
    enum { CONV, CONVT, POOL };
    const fval *x = in[0];
    if (!x || x->rank < 3) return 0;
    int sp = x->rank - 2;
    const fval *w = n->n_inputs > 1 ? in[1] : NULL;
    int64_t k[MAXD], s[MAXD], d[MAXD], p[2 * MAXD], op[MAXD];
    const int64_t *a;
    int na = cs_onnx_attr_ints(n, "kernel_shape", &a);
    if (na == sp) memcpy(k, a, (size_t)sp * sizeof *k);
    else if (kind != POOL && w && w->rank == x->rank) {
        for (int j = 0; j < sp; j++) k[j] = w->dims[2 + j];
    } else
        return 0;
    for (int j = 0; j < sp; j++) s[j] = d[j] = 1, op[j] = 0, p[j] = p[sp + j] = 0;
    if ((na = cs_onnx_attr_ints(n, "strides", &a)) == sp) memcpy(s, a, (size_t)sp * sizeof *s);
    if ((na = cs_onnx_attr_ints(n, "dilations", &a)) == sp) memcpy(d, a, (size_t)sp * sizeof *d);
    if ((na = cs_onnx_attr_ints(n, "pads", &a)) == 2 * sp) memcpy(p, a, (size_t)(2 * sp) * sizeof *p);
    if ((na = cs_onnx_attr_ints(n, "output_padding", &a)) == sp) memcpy(op, a, (size_t)sp * sizeof *op);
    const char *auto_pad = cs_onnx_attr_string(n, "auto_pad", "NOTSET");
    int ceil_mode = (int)cs_onnx_attr_int(n, "ceil_mode", 0);

    out->rank = x->rank;
    out->dims[0] = x->dims[0];
    if (kind == POOL) {
        out->dims[1] = x->dims[1];
    } else {
        int64_t group = cs_onnx_attr_int(n, "group", 1);
        if (!w || w->rank != x->rank) out->dims[1] = fresh(c);
        else if (kind == CONV) out->dims[1] = w->dims[0];
        else if (w->dims[1] < 0 || group <= 0 || __builtin_mul_overflow(w->dims[1], group, &out->dims[1]))
            out->dims[1] = fresh(c);
    }
    const int64_t *os;
    int n_os = kind == CONVT ? cs_onnx_attr_ints(n, "output_shape", &os) : -1;
    for (int j = 0; j < sp; j++) {
        int64_t in_d = x->dims[2 + j];
        if (kind != CONVT) {
            out->dims[2 + j] = window_out(c, in_d, k[j], s[j], d[j], p[j], p[sp + j], auto_pad, ceil_mode);
        } else if (n_os == sp) {
            out->dims[2 + j] = os[j];
        } else if (in_d < 1 || s[j] <= 0 || d[j] <= 0 || k[j] <= 0) {
            out->dims[2 + j] = fresh(c);
        } else if (!strcmp(auto_pad, "SAME_UPPER") || !strcmp(auto_pad, "SAME_LOWER")) {
            if (__builtin_mul_overflow(in_d, s[j], &out->dims[2 + j])) out->dims[2 + j] = fresh(c);
        } else {
            /* stride * (in - 1) + output_padding + (k - 1) * dilation + 1 - pads */
            int64_t v, t;
            int bad = __builtin_mul_overflow(s[j], in_d - 1, &v) | __builtin_mul_overflow(k[j] - 1, d[j], &t) |
                      __builtin_add_overflow(v, t, &v) | __builtin_add_overflow(v, op[j], &v) |
                      __builtin_add_overflow(v, 1, &v) | __builtin_sub_overflow(v, p[j], &v) |
                      __builtin_sub_overflow(v, p[sp + j], &v);
            out->dims[2 + j] = !bad && v >= 0 ? v : fresh(c);
        }
    }
    return 0;
}

static int infer_global_pool(const fval *x, fval *out)
{
    if (!x || x->rank < 2) return 0;
    out->rank = x->rank;
    out->dims[0] = x->dims[0];
    out->dims[1] = x->dims[1];
    for (int j = 2; j < x->rank; j++) out->dims[j] = 1;
    return 0;
}

static int infer_gemm(const cs_onnx_node *n, fval **in, fval *out)
{
    const fval *a = in[0], *b = n->n_inputs > 1 ? in[1] : NULL;
    if (!a || !b || a->rank != 2 || b->rank != 2) return 0;
    int ta = cs_onnx_attr_int(n, "transA", 0) != 0, tb = cs_onnx_attr_int(n, "transB", 0) != 0;
    out->rank = 2;
    out->dims[0] = a->dims[ta ? 1 : 0];
    out->dims[1] = b->dims[tb ? 0 : 1];
    return 0;
}

static int infer_matmul(fold_ctx *c, fval **in, fval *out)
{
    const fval *a = in[0], *b = in[1];
    if (!a || !b || a->rank < 1 || b->rank < 1) return 0;
    int64_t ad[MAXD + 1], bd[MAXD + 1];
    int ar = a->rank, br = b->rank;
    memcpy(ad, a->dims, (size_t)ar * sizeof *ad);
    memcpy(bd, b->dims, (size_t)br * sizeof *bd);
    if (ar == 1) ad[1] = ad[0], ad[0] = 1, ar = 2;
    if (br == 1) bd[1] = 1, br = 2;
    int rank = ar > br ? ar : br;
    if (rank > MAXD) return 0;
    for (int d = 0; d < rank - 2; d++) {
        int oa = d - (rank - ar), ob = d - (rank - br);
        out->dims[d] = bcast_dim(c, oa >= 0 ? ad[oa] : 1, ob >= 0 ? bd[ob] : 1);
    }
    int r = rank - 2;
    if (a->rank > 1) out->dims[r++] = ad[ar - 2];
    if (b->rank > 1) out->dims[r++] = bd[br - 1];
    out->rank = r;
    return 0;
}

static int infer_transpose(const cs_onnx_node *n, const fval *x, fval *out)
{
    if (!x || x->rank < 0) return 0;
    const int64_t *perm;
    int np = cs_onnx_attr_ints(n, "perm", &perm);
    if (np >= 0 && np != x->rank) return 0;
    out->rank = x->rank;
    for (int j = 0; j < x->rank; j++) {
        int src = np < 0 ? x->rank - 1 - j : norm_axis(perm[j], x->rank);
        if (src < 0) {
            out->rank = -1;
            return 0;
        }
        out->dims[j] = x->dims[src];
    }
    return 0;
}

static int infer_pad(fold_ctx *c, const cs_onnx_node *n, fval **in, fval *out)
{
    const fval *x = in[0];
    if (!x || x->rank < 0) return 0;
    int64_t pads[2 * MAXD], axes[MAXD];
    int np = n->n_inputs > 1 && in[1] ? const_ints(in[1], pads, 2 * MAXD) : -1;
    if (np < 0) {
        const int64_t *a;
        np = cs_onnx_attr_ints(n, "pads", &a); /* before opset 11 */
        if (np < 0 || np > 2 * MAXD) return 0;
        memcpy(pads, a, (size_t)np * sizeof *a);
    }
    int na = x->rank;
    if (n->n_inputs > 3 && in[3]) {
        if ((na = const_ints(in[3], axes, MAXD)) < 0) return 0;
    } else {
        for (int j = 0; j < na; j++) axes[j] = j;
    }
    if (np != 2 * na) return 0;
    set_shape(out, x->dims, x->rank);
    for (int j = 0; j < na; j++) {
        int ax = norm_axis(axes[j], x->rank);
        if (ax < 0) {
            out->rank = -1;
            return 0;
        }
        int64_t d = x->dims[ax], add, r;
        if (__builtin_add_overflow(pads[j], pads[na + j], &add)) out->dims[ax] = fresh(c);
        else if (d < 0) out->dims[ax] = add ? fresh(c) : d;
        else out->dims[ax] = !__builtin_add_overflow(d, add, &r) && r >= 0 ? r : fresh(c);
    }
    return 0;
}

static int infer_resize(fold_ctx *c, const cs_onnx_node *n, fval **in, fval *out)
{
    const fval *x = in[0];
    if (!x || x->rank < 0 || cs_onnx_attr_find(n, "axes")) return 0;
    int64_t sizes[MAXD];
    int is_upsample = !strcmp(n->op_type, "Upsample");
    const fval *scales = n->n_inputs > (is_upsample ? 1 : 2) ? in[is_upsample ? 1 : 2] : NULL;
    if (!is_upsample && n->n_inputs > 3 && in[3] && const_ints(in[3], sizes, MAXD) == x->rank) {
        out->rank = x->rank;
        memcpy(out->dims, sizes, (size_t)x->rank * sizeof *sizes);
        return 0;
    }
    if (!fv_const(scales) || scales->dtype != CS_ONNX_FLOAT || scales->count != x->rank) return 0;
    out->rank = x->rank;
    for (int j = 0; j < x->rank; j++) {
        float s = scales->f[j];
        if (x->dims[j] < 0) out->dims[j] = s == 1.0f ? x->dims[j] : fresh(c);
        else {
            double v = floor((double)x->dims[j] * s);
            out->dims[j] = v >= 0 && v < 1e15 ? (int64_t)v : fresh(c);
        }
    }
    return 0;
}

static int infer_reduce(fold_ctx *c, const cs_onnx_node *n, fval **in, fval *out)
{
    (void)c;
    const fval *x = in[0];
    if (!x || x->rank < 0) return 0;
    int64_t axes[MAXD];
    int keep = cs_onnx_attr_int(n, "keepdims", 1) != 0;
    int na;
    if (!strcmp(n->op_type, "ArgMax") || !strcmp(n->op_type, "ArgMin")) {
        axes[0] = cs_onnx_attr_int(n, "axis", 0);
        na = 1;
    } else {
        na = axes_of(n, in, 1, axes);
        if (na == -2) return 0;
        if (na <= 0) {
            if (cs_onnx_attr_int(n, "noop_with_empty_axes", 0)) {
                set_shape(out, x->dims, x->rank);
                return 0;
            }
            na = x->rank;
            for (int j = 0; j < na; j++) axes[j] = j;
        }
    }
    int red[MAXD] = {0};
    for (int j = 0; j < na; j++) {
        int ax = norm_axis(axes[j], x->rank);
        if (ax < 0) return 0;
        red[ax] = 1;
    }
    int r = 0;
    for (int j = 0; j < x->rank; j++) {
        if (!red[j]) out->dims[r++] = x->dims[j];
        else if (keep) out->dims[r++] = 1;
    }
    out->rank = r;
    return 0;
}

static int infer_split(fold_ctx *c, const cs_onnx_node *n, fval **in, fval **outs)
{
    const fval *x = in[0];
    if (!x || x->rank < 0) return 0;
    int ax = norm_axis(cs_onnx_attr_int(n, "axis", 0), x->rank);
    if (ax < 0 || n->n_outputs < 1 || n->n_outputs > 4096) return 0;
    int64_t *sizes = calloc((size_t)n->n_outputs, sizeof *sizes);
    if (!sizes) return oom(c);
    int ok = 0;
    const int64_t *a;
    if (n->n_inputs > 1 && in[1]) {
        ok = fv_const(in[1]) && in[1]->dtype == CS_ONNX_INT64 && in[1]->count == n->n_outputs;
        if (ok) memcpy(sizes, in[1]->i, (size_t)n->n_outputs * sizeof *sizes);
    } else if (cs_onnx_attr_ints(n, "split", &a) == n->n_outputs) {
        memcpy(sizes, a, (size_t)n->n_outputs * sizeof *sizes);
        ok = 1;
    } else if (x->dims[ax] >= 0) {
        /* Equal parts, the last one smaller when the dim does not divide (opset 18). */
        int64_t d = x->dims[ax], part = d / n->n_outputs + (d % n->n_outputs != 0);
        for (int o = 0; o < n->n_outputs; o++) {
            sizes[o] = d < part ? (d > 0 ? d : 0) : part;
            d -= sizes[o];
        }
        ok = 1;
    }
    for (int o = 0; ok && o < n->n_outputs; o++) {
        if (!outs[o]) continue;
        outs[o]->rank = x->rank;
        memcpy(outs[o]->dims, x->dims, sizeof x->dims);
        outs[o]->dims[ax] = sizes[o] >= 0 ? sizes[o] : fresh(c);
    }
    free(sizes);
    return 0;
}

static int infer_expand(fold_ctx *c, fval **in, fval *out)
{
    const fval *x = in[0];
    if (!x || x->rank < 0 || !in[1] || !in[1]->known || in[1]->dtype != CS_ONNX_INT64 || in[1]->count > MAXD)
        return 0;
    fval s = {.rank = (int)in[1]->count};
    for (int j = 0; j < s.rank; j++) s.dims[j] = in[1]->has_sym && in[1]->sym[j] ? -in[1]->sym[j] : in[1]->i[j];
    fval *pair[2] = {(fval *)x, &s};
    int64_t dims[MAXD];
    int r = bcast_shape(c, pair, 2, dims);
    if (r < 0) return 0;
    out->rank = r;
    memcpy(out->dims, dims, sizeof dims);
    return 0;
}

static int infer_tile(fold_ctx *c, fval **in, fval *out)
{
    const fval *x = in[0];
    int64_t rep[MAXD];
    if (!x || x->rank < 0 || const_ints(in[1], rep, MAXD) != x->rank) return 0;
    out->rank = x->rank;
    for (int j = 0; j < x->rank; j++) {
        int64_t d = x->dims[j];
        out->dims[j] = rep[j] == 1 ? d : d >= 0 && rep[j] >= 0 && !__builtin_mul_overflow(d, rep[j], &d) ? d : fresh(c);
    }
    return 0;
}

/* ---- constant evaluation ------------------------------------------------------- */

static int eval_constant(fold_ctx *c, const cs_onnx_node *n, fval *out)
{
    const cs_onnx_attr *a;
    if ((a = cs_onnx_attr_find(n, "value")) && a->type == CS_ONNX_ATTR_TENSOR) {
        const cs_onnx_tensor *t = a->t;
        fv_release(out);
        set_shape(out, t->dims, t->ndim);
        out->known = 1;
        out->dtype = t->elem_type;
        out->count = t->count;
        out->f = t->f;
        out->i = t->i;
        if (t->count && !out->f && !out->i) out->known = 0;
        return 0;
    }
    if ((a = cs_onnx_attr_find(n, "value_float")) && a->type == CS_ONNX_ATTR_FLOAT) {
        if (fv_alloc(c, out, CS_ONNX_FLOAT, 1, 0) < 0) return -1;
        out->f[0] = a->f;
        out->rank = 0;
    } else if ((a = cs_onnx_attr_find(n, "value_int")) && a->type == CS_ONNX_ATTR_INT) {
        if (fv_alloc(c, out, CS_ONNX_INT64, 1, 0) < 0) return -1;
        out->i[0] = a->i;
        out->rank = 0;
    } else if ((a = cs_onnx_attr_find(n, "value_floats")) && a->type == CS_ONNX_ATTR_FLOATS) {
        if (fv_alloc(c, out, CS_ONNX_FLOAT, a->n, 0) < 0) return -1;
        if (a->n) memcpy(out->f, a->floats, (size_t)a->n * sizeof *a->floats);
        out->rank = 1;
        out->dims[0] = a->n;
    } else if ((a = cs_onnx_attr_find(n, "value_ints")) && a->type == CS_ONNX_ATTR_INTS) {
        if (fv_alloc(c, out, CS_ONNX_INT64, a->n, 0) < 0) return -1;
        if (a->n) memcpy(out->i, a->ints, (size_t)a->n * sizeof *a->ints);
        out->rank = 1;
        out->dims[0] = a->n;
    }
    return 0;
}

/* Clamps a Shape/Slice bound as ONNX does for a positive step. */
static int64_t clamp_bound(int64_t v, int64_t d)
{
    if (v < 0) v = v < -d ? 0 : v + d;
    return v > d ? d : v;
}

static int eval_shape(fold_ctx *c, const cs_onnx_node *n, const fval *x, fval *out)
{
    if (!x || x->rank < 0) return 0;
    int64_t start = clamp_bound(cs_onnx_attr_int(n, "start", 0), x->rank);
    int64_t end = clamp_bound(cs_onnx_attr_int(n, "end", x->rank), x->rank);
    int64_t len = end > start ? end - start : 0;
    if (fv_alloc(c, out, CS_ONNX_INT64, len, 1) < 0) return -1;
    out->rank = 1;
    out->dims[0] = len;
    for (int64_t k = 0; k < len; k++) {
        int64_t d = x->dims[start + k];
        if (d >= 0) out->i[k] = d;
        else out->sym[k] = -d, out->has_sym = 1;
    }
    return 0;
}

static int eval_size(fold_ctx *c, const fval *x, fval *out)
{
    out->rank = 0;
    int64_t n = x && x->rank >= 0 ? elem_count(x->dims, x->rank) : -1;
    if (n < 0) return 0;
    if (fv_alloc(c, out, CS_ONNX_INT64, 1, 0) < 0) return -1;
    out->i[0] = n;
    return 0;
}

/* Copies element `from` of src to element `to` of dst (same dtype). */
static void copy_elem(fval *dst, int64_t to, const fval *src, int64_t from)
{
    if (src->dtype == CS_ONNX_FLOAT) {
        dst->f[to] = src->f[from];
    } else {
        dst->i[to] = src->i[from];
        if (src->has_sym && src->sym[from]) {
            dst->sym[to] = src->sym[from];
            dst->has_sym = 1;
        }
    }
}

static int eval_gather(fold_ctx *c, const cs_onnx_node *n, fval **in, fval *out)
{
    const fval *x = in[0], *idx = in[1];
    if (!x || !idx || x->rank < 1 || idx->rank < 0 || x->rank + idx->rank - 1 > MAXD) return 0;
    int ax = norm_axis(cs_onnx_attr_int(n, "axis", 0), x->rank);
    if (ax < 0) return 0;
    out->rank = x->rank + idx->rank - 1;
    memcpy(out->dims, x->dims, (size_t)ax * sizeof *x->dims);
    memcpy(out->dims + ax, idx->dims, (size_t)idx->rank * sizeof *idx->dims);
    memcpy(out->dims + ax + idx->rank, x->dims + ax + 1, (size_t)(x->rank - ax - 1) * sizeof *x->dims);
    if (!x->known || !fv_const(idx) || idx->dtype != CS_ONNX_INT64) return 0;
    int64_t total = elem_count(out->dims, out->rank);
    if (total < 0 || total > FOLD_MAX_ELEMS) return 0;
    int64_t outer = elem_count(x->dims, ax), inner = elem_count(x->dims + ax + 1, x->rank - ax - 1);
    int64_t axd = x->dims[ax];
    fval r = {0};
    if (fv_alloc(c, &r, x->dtype, total, x->has_sym) < 0) return -1;
    int64_t at = 0;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < idx->count; j++) {
            int64_t ix = idx->i[j];
            if (ix < -axd || ix >= axd) {
                fv_release(&r);
                cs_set_err(c->err, c->errlen, "node '%s' (Gather): index %lld is out of range for a dim of %lld",
                           n->name, (long long)ix, (long long)axd);
                return -1;
            }
            if (ix < 0) ix += axd;
            for (int64_t e = 0; e < inner; e++) copy_elem(&r, at++, x, (o * axd + ix) * inner + e);
        }
    set_shape(&r, out->dims, out->rank);
    fv_take(out, &r);
    return 0;
}

static int eval_unsqueeze(fold_ctx *c, const cs_onnx_node *n, fval **in, fval *out)
{
    (void)c;
    const fval *x = in[0];
    int64_t axes[MAXD];
    int na = axes_of(n, in, 1, axes);
    if (!x || x->rank < 0 || na < 0 || x->rank + na > MAXD) return 0;
    int r = x->rank + na, ins[MAXD] = {0};
    for (int j = 0; j < na; j++) {
        int ax = norm_axis(axes[j], r);
        if (ax < 0 || ins[ax]) return 0;
        ins[ax] = 1;
    }
    int64_t dims[MAXD];
    for (int j = 0, src = 0; j < r; j++) dims[j] = ins[j] ? 1 : x->dims[src++];
    if (x->known) fv_alias(out, x);
    set_shape(out, dims, r);
    return 0;
}

static int eval_squeeze(fold_ctx *c, const cs_onnx_node *n, fval **in, fval *out)
{
    (void)c;
    const fval *x = in[0];
    int64_t axes[MAXD];
    int na = axes_of(n, in, 1, axes);
    if (!x || x->rank < 0 || na == -2) return 0;
    int drop[MAXD] = {0};
    if (na < 0 || na == 0) {
        for (int j = 0; j < x->rank; j++) {
            if (x->dims[j] < 0) return 0; /* a symbol may or may not be 1 */
            drop[j] = x->dims[j] == 1;
        }
    } else {
        for (int j = 0; j < na; j++) {
            int ax = norm_axis(axes[j], x->rank);
            if (ax < 0) return 0;
            drop[ax] = 1;
        }
    }
    int64_t dims[MAXD];
    int r = 0;
    for (int j = 0; j < x->rank; j++)
        if (!drop[j]) dims[r++] = x->dims[j];
    if (x->known) fv_alias(out, x);
    set_shape(out, dims, r);
    return 0;
}

static int eval_concat(fold_ctx *c, const cs_onnx_node *n, fval **in, fval *out)
{
    int m = n->n_inputs;
    if (m < 1 || !in[0] || in[0]->rank < 1) return 0;
    int rank = in[0]->rank, ax = norm_axis(cs_onnx_attr_int(n, "axis", 0), rank);
    if (ax < 0) return 0;
    int64_t dims[MAXD];
    memcpy(dims, in[0]->dims, sizeof dims);
    int all_known = 1, any_sym = 0, dtype = in[0]->dtype;
    int64_t sum = 0;
    for (int k = 0; k < m; k++) {
        const fval *v = in[k];
        if (!v || v->rank != rank) return 0;
        int64_t d = v->dims[ax];
        if (d < 0 || sum < 0 || __builtin_add_overflow(sum, d, &sum)) sum = -1;
        for (int j = 0; j < rank; j++)
            if (j != ax) dims[j] = same_dim(c, dims[j], v->dims[j]);
        all_known &= v->known && v->dtype == dtype;
        any_sym |= v->known && v->has_sym;
    }
    dims[ax] = sum >= 0 ? sum : fresh(c);
    set_shape(out, dims, rank);
    if (!all_known) return 0;
    int64_t total = elem_count(dims, rank);
    if (total < 0 || total > FOLD_MAX_ELEMS) return 0;
    fval r = {0};
    if (fv_alloc(c, &r, dtype, total, any_sym) < 0) return -1;
    int64_t outer = elem_count(dims, ax), at = 0;
    for (int64_t o = 0; o < outer; o++)
        for (int k = 0; k < m; k++) {
            int64_t block = in[k]->dims[ax] * elem_count(in[k]->dims + ax + 1, rank - ax - 1);
            for (int64_t e = 0; e < block; e++) copy_elem(&r, at++, in[k], o * block + e);
        }
    set_shape(&r, dims, rank);
    fv_take(out, &r);
    return 0;
}

static int eval_slice(fold_ctx *c, const cs_onnx_node *n, fval **in, fval *out)
{
    const fval *x = in[0];
    if (!x || x->rank < 0 || n->n_inputs < 3) return 0;
    int64_t st[MAXD], en[MAXD], ax[MAXD], sp[MAXD];
    int ns = const_ints(in[1], st, MAXD), ne = const_ints(in[2], en, MAXD), na = ns, np = ns;
    if (ns < 0 || ne != ns) return 0;
    if (n->n_inputs > 3 && in[3]) na = const_ints(in[3], ax, MAXD);
    else for (int j = 0; j < ns; j++) ax[j] = j;
    if (n->n_inputs > 4 && in[4]) np = const_ints(in[4], sp, MAXD);
    else for (int j = 0; j < ns; j++) sp[j] = 1;
    if (na != ns || np != ns) return 0;
    int64_t start[MAXD], step[MAXD], dims[MAXD];
    for (int j = 0; j < x->rank; j++) start[j] = 0, step[j] = 1, dims[j] = x->dims[j];
    for (int j = 0; j < ns; j++) {
        int a = norm_axis(ax[j], x->rank);
        if (a < 0 || sp[j] == 0 || sp[j] == INT64_MIN) return 0;
        int64_t d = x->dims[a], s = st[j], e = en[j];
        if (d < 0) {
            /* Only the whole of a symbolic dim is known: [0, INT64_MAX) by 1. */
            dims[a] = s == 0 && sp[j] == 1 && e >= INT32_MAX ? d : fresh(c);
            continue;
        }
        if (sp[j] > 0) {
            s = clamp_bound(s, d);
            e = clamp_bound(e, d);
        } else {
            s = s < 0 ? (s < -d ? -1 : s + d) : (s > d - 1 ? d - 1 : s);
            e = e < 0 ? (e < -d ? -1 : e + d) : (e > d - 1 ? d - 1 : e);
        }
        /* s and e are within [-1, d] now, so their difference cannot overflow. */
        int64_t span = sp[j] > 0 ? e - s : s - e, by = sp[j] > 0 ? sp[j] : -sp[j];
        int64_t len = span > 0 ? span / by + (span % by != 0) : 0;
        start[a] = s, step[a] = sp[j], dims[a] = len;
    }
    set_shape(out, dims, x->rank);
    if (!x->known) return 0;
    int64_t total = elem_count(dims, x->rank);
    if (total < 0 || total > FOLD_MAX_ELEMS) return 0;
    fval r = {0};
    if (fv_alloc(c, &r, x->dtype, total, x->has_sym) < 0) return -1;
    int64_t stride[MAXD], pos[MAXD] = {0};
    int64_t acc = 1;
    for (int j = x->rank - 1; j >= 0; j--) stride[j] = acc, acc *= x->dims[j];
    for (int64_t k = 0; k < total; k++) {
        int64_t src = 0;
        for (int j = 0; j < x->rank; j++) src += (start[j] + pos[j] * step[j]) * stride[j];
        copy_elem(&r, k, x, src);
        for (int j = x->rank - 1; j >= 0; j--) {
            if (++pos[j] < dims[j]) break;
            pos[j] = 0;
        }
    }
    set_shape(&r, dims, x->rank);
    fv_take(out, &r);
    return 0;
}

static int cast_to_float(int to)
{
    return to == 1 || to == 10 || to == 11 || to == 16;
}

static int cast_to_int(int to)
{
    return (to >= 2 && to <= 7) || to == 9 || to == 12 || to == 13;
}

static int eval_cast(fold_ctx *c, const cs_onnx_node *n, const fval *x, fval *out)
{
    if (!x) return 0;
    set_shape(out, x->dims, x->rank);
    int to = (int)cs_onnx_attr_int(n, "to", 0);
    if (!x->known || x->count > FOLD_MAX_ELEMS) return 0;
    if (cast_to_float(to)) {
        if (x->has_sym) return 0;
        fval r = {0};
        if (fv_alloc(c, &r, CS_ONNX_FLOAT, x->count, 0) < 0) return -1;
        for (int64_t k = 0; k < x->count; k++) r.f[k] = x->dtype == CS_ONNX_FLOAT ? x->f[k] : (float)x->i[k];
        set_shape(&r, x->dims, x->rank);
        fv_take(out, &r);
    } else if (cast_to_int(to)) {
        fval r = {0};
        if (fv_alloc(c, &r, CS_ONNX_INT64, x->count, x->has_sym) < 0) return -1;
        for (int64_t k = 0; k < x->count; k++) {
            if (x->dtype == CS_ONNX_INT64) {
                copy_elem(&r, k, x, k);
                if (to == 9 && !(x->has_sym && x->sym[k])) r.i[k] = x->i[k] != 0;
                continue;
            }
            float v = x->f[k];
            if (!(v > -9.2e18f && v < 9.2e18f)) { /* NaN, infinities, out of range */
                fv_release(&r);
                return 0;
            }
            r.i[k] = to == 9 ? v != 0.0f : (int64_t)v;
        }
        set_shape(&r, x->dims, x->rank);
        fv_take(out, &r);
    }
    return 0;
}

/* Reshape's output dims from the input's shape and the (possibly symbolic) target. */
static int reshape_dims(fold_ctx *c, const fval *x, const fval *s, int allowzero, int64_t *dims)
{
    if (!x || x->rank < 0 || !s || !s->known || s->dtype != CS_ONNX_INT64 || s->rank != 1 || s->count > MAXD)
        return -1;
    int r = (int)s->count, infer = -1;
    for (int j = 0; j < r; j++) {
        if (s->has_sym && s->sym[j]) {
            dims[j] = -s->sym[j];
        } else if (s->i[j] == 0 && !allowzero) {
            if (j >= x->rank) return -1;
            dims[j] = x->dims[j];
        } else if (s->i[j] == -1 && infer < 0) {
            infer = j;
        } else if (s->i[j] < 0) {
            return -1;
        } else {
            dims[j] = s->i[j];
        }
    }
    if (infer >= 0) {
        /* The input's elements over the other output dims: symbols must cancel. */
        int64_t p_in = 1, p_out = 1, syms[MAXD];
        int n_syms = 0, ok = 1;
        for (int j = 0; j < x->rank; j++) {
            if (x->dims[j] < 0) syms[n_syms++] = x->dims[j];
            else if (__builtin_mul_overflow(p_in, x->dims[j], &p_in)) ok = 0;
        }
        for (int j = 0; j < r && ok; j++) {
            if (j == infer) continue;
            if (dims[j] >= 0) {
                if (__builtin_mul_overflow(p_out, dims[j], &p_out)) ok = 0;
                continue;
            }
            int found = 0;
            for (int k = 0; k < n_syms && !found; k++)
                if (syms[k] == dims[j]) syms[k] = syms[--n_syms], found = 1;
            ok = found;
        }
        dims[infer] = ok && !n_syms && p_out > 0 && p_in % p_out == 0 ? p_in / p_out : fresh(c);
    }
    return r;
}

static int eval_reshape(fold_ctx *c, const cs_onnx_node *n, fval **in, fval *out)
{
    int64_t dims[MAXD];
    int r = reshape_dims(c, in[0], n->n_inputs > 1 ? in[1] : NULL, (int)cs_onnx_attr_int(n, "allowzero", 0), dims);
    if (r < 0) return 0;
    if (in[0]->known && elem_count(dims, r) == in[0]->count) fv_alias(out, in[0]);
    set_shape(out, dims, r);
    return 0;
}

static int eval_flatten(fold_ctx *c, const cs_onnx_node *n, const fval *x, fval *out)
{
    if (!x || x->rank < 0) return 0;
    int64_t a = cs_onnx_attr_int(n, "axis", 1);
    if (a < 0) a += x->rank;
    if (a < 0 || a > x->rank) return 0;
    int64_t dims[2] = {dim_prod(c, x->dims, 0, (int)a), dim_prod(c, x->dims, (int)a, x->rank)};
    if (x->known) fv_alias(out, x);
    set_shape(out, dims, 2);
    return 0;
}

/* One int64 binary operation on a known pair; 0 when it cannot be folded. */
static int int_op(char op, int64_t a, int64_t b, int64_t *r)
{
    switch (op) {
    case '+': return !__builtin_add_overflow(a, b, r);
    case '-': return !__builtin_sub_overflow(a, b, r);
    case '*': return !__builtin_mul_overflow(a, b, r);
    case '/':
        if (b == 0 || (a == INT64_MIN && b == -1)) return 0;
        *r = a / b; /* ONNX integer Div truncates, as C does */
        return 1;
    }
    return 0;
}

static int eval_arith(fold_ctx *c, const cs_onnx_node *n, fval **in, fval *out)
{
    if (n->n_inputs != 2) return 0;
    int64_t dims[MAXD];
    int rank = bcast_shape(c, in, 2, dims);
    if (rank < 0) return 0;
    set_shape(out, dims, rank);
    const fval *a = in[0], *b = in[1];
    if (!a->known || !b->known || a->dtype != b->dtype) return 0;
    int64_t total = elem_count(dims, rank);
    if (total < 0 || total > FOLD_MAX_ELEMS) return 0;
    char op = n->op_type[0] == 'A' ? '+' : n->op_type[0] == 'S' ? '-' : n->op_type[0] == 'M' ? '*' : '/';
    int any_sym = a->has_sym || b->has_sym;
    fval r = {0};
    if (fv_alloc(c, &r, a->dtype, total, any_sym) < 0) return -1;
    int64_t sa[MAXD], sb[MAXD], pos[MAXD] = {0};
    int64_t acc_a = 1, acc_b = 1;
    for (int j = rank - 1; j >= 0; j--) {
        int ja = j - (rank - a->rank), jb = j - (rank - b->rank);
        sa[j] = ja >= 0 && a->dims[ja] != 1 ? acc_a : 0;
        sb[j] = jb >= 0 && b->dims[jb] != 1 ? acc_b : 0;
        if (ja >= 0) acc_a *= a->dims[ja];
        if (jb >= 0) acc_b *= b->dims[jb];
    }
    for (int64_t k = 0; k < total; k++) {
        int64_t ia = 0, ib = 0;
        for (int j = 0; j < rank; j++) ia += pos[j] * sa[j], ib += pos[j] * sb[j];
        if (a->dtype == CS_ONNX_FLOAT) {
            float x = a->f[ia], y = b->f[ib];
            r.f[k] = op == '+' ? x + y : op == '-' ? x - y : op == '*' ? x * y : x / y;
        } else {
            int64_t ya = a->has_sym ? a->sym[ia] : 0, yb = b->has_sym ? b->sym[ib] : 0;
            int64_t x = a->i[ia], y = b->i[ib];
            if (!ya && !yb) {
                if (!int_op(op, x, y, &r.i[k])) {
                    fv_release(&r);
                    return 0;
                }
            } else if (ya && !yb && ((op == '*' && y == 1) || (op == '/' && y == 1) || (op != '*' && op != '/' && y == 0))) {
                r.sym[k] = ya; /* x*1, x/1, x+0, x-0 */
            } else if (yb && !ya && ((op == '*' && x == 1) || (op == '+' && x == 0))) {
                r.sym[k] = yb;
            } else {
                r.sym[k] = -fresh(c);
            }
            if (any_sym) r.has_sym |= r.sym[k] != 0;
        }
        for (int j = rank - 1; j >= 0; j--) {
            if (++pos[j] < dims[j]) break;
            pos[j] = 0;
        }
    }
    set_shape(&r, dims, rank);
    fv_take(out, &r);
    return 0;
}

static int eval_constant_of_shape(fold_ctx *c, const cs_onnx_node *n, const fval *s, fval *out)
{
    if (!s || !s->known || s->dtype != CS_ONNX_INT64 || s->count > MAXD) return 0;
    int r = (int)s->count;
    int64_t dims[MAXD];
    for (int j = 0; j < r; j++) dims[j] = s->has_sym && s->sym[j] ? -s->sym[j] : s->i[j];
    set_shape(out, dims, r);
    int64_t total = elem_count(dims, r);
    if (s->has_sym || total < 0 || total > FOLD_MAX_ELEMS) return 0;
    const cs_onnx_tensor *t = cs_onnx_attr_tensor(n, "value");
    if (t && t->count != 1) return 0;
    int dtype = t ? t->elem_type : CS_ONNX_FLOAT;
    fval v = {0};
    if (fv_alloc(c, &v, dtype, total, 0) < 0) return -1;
    for (int64_t k = 0; k < total; k++) {
        if (dtype == CS_ONNX_FLOAT) v.f[k] = t ? t->f[0] : 0.0f;
        else v.i[k] = t->i[0];
    }
    set_shape(&v, dims, r);
    fv_take(out, &v);
    return 0;
}

/* ---- the pass ------------------------------------------------------------------ */

static int op_in(const char *op, const char *const *list)
{
    for (; *list; list++)
        if (!strcmp(op, *list)) return 1;
    return 0;
}

static const char *const same_shape_ops[] = {
    "Relu", "LeakyRelu", "PRelu", "Sigmoid", "Tanh", "Elu", "Selu", "Celu", "Softplus", "Softsign",
    "HardSigmoid", "HardSwish", "Mish", "Gelu", "Erf", "Abs", "Neg", "Exp", "Log", "Sqrt", "Reciprocal",
    "Floor", "Ceil", "Round", "Sign", "Clip", "Dropout", "BatchNormalization", "InstanceNormalization",
    "LayerNormalization", "GroupNormalization", "LRN", "Softmax", "LogSoftmax", "Hardmax", "Not", "Sin", "Cos",
    "LpNormalization", "MeanVarianceNormalization", "Shrink", "ThresholdedRelu", "IsNaN", "IsInf", NULL};
static const char *const broadcast_ops[] = {"Pow", "Mod", "Max", "Min", "Sum", "Mean", "Equal", "Less",
                                            "Greater", "LessOrEqual", "GreaterOrEqual", "And", "Or", "Xor",
                                            "Where", "BitShift", NULL};
static const char *const reduce_ops[] = {"ReduceMean", "ReduceMax", "ReduceMin", "ReduceSum", "ReduceProd",
                                         "ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp",
                                         "ReduceSumSquare", "ArgMax", "ArgMin", NULL};

static int eval_node(fold_ctx *c, const cs_onnx_node *n, fval **in, fval **outs)
{
    const char *op = n->op_type;
    fval *out = outs[0];
    if (n->n_outputs < 1 || !out) return 0;
    if (!strcmp(op, "Constant")) return eval_constant(c, n, out);
    if (!strcmp(op, "Identity")) {
        if (in[0]) fv_alias(out, in[0]);
        return 0;
    }
    if (!strcmp(op, "Shape")) return eval_shape(c, n, in[0], out);
    if (!strcmp(op, "Size")) return eval_size(c, in[0], out);
    if (!strcmp(op, "Gather") && n->n_inputs == 2) return eval_gather(c, n, in, out);
    if (!strcmp(op, "Unsqueeze")) return eval_unsqueeze(c, n, in, out);
    if (!strcmp(op, "Squeeze")) return eval_squeeze(c, n, in, out);
    if (!strcmp(op, "Concat")) return eval_concat(c, n, in, out);
    if (!strcmp(op, "Slice")) return eval_slice(c, n, in, out);
    if (!strcmp(op, "Cast")) return eval_cast(c, n, in[0], out);
    if (!strcmp(op, "Reshape")) return eval_reshape(c, n, in, out);
    if (!strcmp(op, "Flatten")) return eval_flatten(c, n, in[0], out);
    if (!strcmp(op, "Add") || !strcmp(op, "Sub") || !strcmp(op, "Mul") || !strcmp(op, "Div"))
        return eval_arith(c, n, in, out);
    if (!strcmp(op, "ConstantOfShape")) return eval_constant_of_shape(c, n, in[0], out);

    /* Shapes only. */
    if (op_in(op, same_shape_ops)) {
        if (!in[0]) return 0;
        for (int o = 0; o < n->n_outputs; o++) {
            if (!outs[o]) continue;
            if (o == 0 || !strcmp(op, "Dropout")) set_shape(outs[o], in[0]->dims, in[0]->rank);
        }
        return 0;
    }
    if (op_in(op, broadcast_ops)) {
        int64_t dims[MAXD];
        int r = bcast_shape(c, in, n->n_inputs, dims);
        if (r >= 0) set_shape(out, dims, r);
        return 0;
    }
    if (!strcmp(op, "Conv")) return infer_window(c, n, in, out, 0);
    if (!strcmp(op, "ConvTranspose")) return infer_window(c, n, in, out, 1);
    if (!strcmp(op, "MaxPool") || !strcmp(op, "AveragePool") || !strcmp(op, "LpPool")) {
        int rc = infer_window(c, n, in, out, 2);
        if (rc == 0 && n->n_outputs > 1 && outs[1]) set_shape(outs[1], out->dims, out->rank);
        return rc;
    }
    if (!strcmp(op, "GlobalAveragePool") || !strcmp(op, "GlobalMaxPool") || !strcmp(op, "GlobalLpPool"))
        return infer_global_pool(in[0], out);
    if (!strcmp(op, "Gemm")) return infer_gemm(n, in, out);
    if (!strcmp(op, "MatMul") && n->n_inputs == 2) return infer_matmul(c, in, out);
    if (!strcmp(op, "Transpose")) return infer_transpose(n, in[0], out);
    if (!strcmp(op, "Pad")) return infer_pad(c, n, in, out);
    if (!strcmp(op, "Resize") || !strcmp(op, "Upsample")) return infer_resize(c, n, in, out);
    if (op_in(op, reduce_ops)) return infer_reduce(c, n, in, out);
    if (!strcmp(op, "Split")) return infer_split(c, n, in, outs);
    if (!strcmp(op, "Expand") && n->n_inputs == 2) return infer_expand(c, in, out);
    if (!strcmp(op, "Tile") && n->n_inputs == 2) return infer_tile(c, in, out);
    return 0;
}

static fval *val_of(fold_ctx *c, const char *name)
{
    int k = *name ? onnx_map_get(&c->names, name) : -1;
    return k >= 0 ? &c->vals[k] : NULL;
}

static int setup(fold_ctx *c)
{
    cs_onnx_graph *g = c->g;
    size_t n_vals = (size_t)g->n_inputs + (size_t)g->n_inits;
    for (int k = 0; k < g->n_nodes; k++) n_vals += (size_t)g->nodes[k].n_outputs;
    c->vals = calloc(n_vals + 1, sizeof *c->vals);
    if (!c->vals || onnx_map_init(&c->names, n_vals) < 0) return oom(c);
    for (int k = 0; k < g->n_inputs; k++) {
        const cs_onnx_value *in = &g->inputs[k];
        fval *v = &c->vals[c->n_vals];
        v->producer = -1;
        v->rank = in->ndim;
        for (int j = 0; j < in->ndim; j++) v->dims[j] = in->dims[j] >= 0 ? in->dims[j] : fresh(c);
        if (onnx_map_put(&c->names, in->name, c->n_vals++) < 0) return oom(c);
    }
    for (int k = 0; k < g->n_inits; k++) {
        const cs_onnx_tensor *t = &g->inits[k];
        fval *v = &c->vals[c->n_vals];
        v->producer = -1;
        set_shape(v, t->dims, t->ndim);
        v->known = 1;
        v->dtype = t->elem_type;
        v->count = t->count;
        v->f = t->f;
        v->i = t->i;
        if (onnx_map_put(&c->names, t->name, c->n_vals++) < 0) return oom(c);
    }
    for (int k = 0; k < g->n_nodes; k++)
        for (int o = 0; o < g->nodes[k].n_outputs; o++) {
            const char *nm = g->nodes[k].outputs[o];
            if (!*nm) continue;
            c->vals[c->n_vals].rank = -1;
            c->vals[c->n_vals].producer = k;
            if (onnx_map_put(&c->names, nm, c->n_vals++) < 0) return oom(c);
        }
    return 0;
}

static int run_pass(fold_ctx *c)
{
    cs_onnx_graph *g = c->g;
    int max_io = 1;
    for (int k = 0; k < g->n_nodes; k++) {
        if (g->nodes[k].n_inputs > max_io) max_io = g->nodes[k].n_inputs;
        if (g->nodes[k].n_outputs > max_io) max_io = g->nodes[k].n_outputs;
    }
    fval **in = calloc((size_t)max_io + 5, sizeof *in), **outs = calloc((size_t)max_io + 1, sizeof *outs);
    if (!in || !outs) {
        free(in);
        free(outs);
        return oom(c);
    }
    int rc = 0;
    for (int k = 0; k < g->n_nodes && rc == 0; k++) {
        const cs_onnx_node *n = &g->nodes[k];
        c->node = n;
        /* Missing optional inputs read as NULL, past the end too (in has 5 spare). */
        memset(in, 0, ((size_t)max_io + 5) * sizeof *in);
        for (int i = 0; i < n->n_inputs; i++) in[i] = val_of(c, n->inputs[i]);
        for (int o = 0; o < n->n_outputs; o++) outs[o] = val_of(c, n->outputs[o]);
        if (n->n_inputs > 0 && !in[0] && strcmp(n->op_type, "Constant")) continue;
        rc = eval_node(c, n, in, outs);
        /* Anything the pass could not fully make sense of stays unknown. */
        for (int o = 0; o < n->n_outputs; o++) {
            fval *v = outs[o];
            if (v && (v->rank > MAXD || (v->known && (v->rank < 0 || elem_count(v->dims, v->rank) != v->count))))
                fv_unknown(v);
        }
    }
    free(in);
    free(outs);
    return rc;
}

/* A name not yet used by any value in the graph: base, else base_1, base_2, ... */
static char *unique_name(fold_ctx *c, const char *base)
{
    size_t len = strlen(base) + 24;
    char *nm = malloc(len);
    if (!nm) return NULL;
    snprintf(nm, len, "%s", base);
    for (int k = 1; onnx_map_get(&c->names, nm) != -1; k++) snprintf(nm, len, "%s_%d", base, k);
    return nm;
}

static int add_init_from(fold_ctx *c, const char *name, const fval *v)
{
    cs_onnx_tensor t = {0};
    t.elem_type = v->dtype;
    t.ndim = v->rank;
    memcpy(t.dims, v->dims, (size_t)v->rank * sizeof *v->dims);
    t.count = v->count;
    t.name = onnx_strdup(name);
    if (!t.name) return oom(c);
    if (v->count) {
        size_t bytes = (size_t)v->count * (v->dtype == CS_ONNX_FLOAT ? sizeof(float) : sizeof(int64_t));
        void *d = malloc(bytes);
        if (!d) {
            onnx_tensor_clear(&t);
            return oom(c);
        }
        memcpy(d, v->dtype == CS_ONNX_FLOAT ? (void *)v->f : (void *)v->i, bytes);
        if (v->dtype == CS_ONNX_FLOAT) t.f = d;
        else t.i = d;
    }
    if (onnx_graph_add_init(c->g, &t) < 0) {
        onnx_tensor_clear(&t);
        return oom(c);
    }
    return 0;
}

/* A Reshape whose target mixes numbers with symbols gets a constant target: a
 * symbol equal to the input's dim at the same place becomes 0 (copy), and -1 becomes
 * the number it stands for when that is known. */
static int rewrite_reshape(fold_ctx *c, cs_onnx_node *n)
{
    if (n->n_inputs < 2 || n->n_outputs < 1) return 0;
    const fval *x = val_of(c, n->inputs[0]), *s = val_of(c, n->inputs[1]), *y = val_of(c, n->outputs[0]);
    if (!x || !s || !s->known || !s->has_sym || s->rank != 1 || s->count > MAXD || !y || y->rank != s->count ||
        cs_onnx_attr_int(n, "allowzero", 0))
        return 0;
    fval t = {.rank = 1, .dims = {s->count}};
    if (fv_alloc(c, &t, CS_ONNX_INT64, s->count, 0) < 0) return -1;
    for (int j = 0; j < s->count; j++) {
        if (s->sym[j]) {
            if (j >= x->rank || x->dims[j] != -s->sym[j]) {
                fv_release(&t);
                return 0;
            }
            t.i[j] = 0;
        } else {
            t.i[j] = s->i[j] == -1 && y->dims[j] >= 0 ? y->dims[j] : s->i[j];
        }
    }
    size_t len = strlen(n->name) + 8;
    char *base = malloc(len), *nm = NULL;
    if (base) snprintf(base, len, "%s_shape", n->name);
    if (base) nm = unique_name(c, base);
    free(base);
    int rc = nm ? add_init_from(c, nm, &t) : oom(c);
    fv_release(&t);
    if (rc < 0 || onnx_map_put(&c->names, nm, -2) < 0) { /* taken; no value of the pass */
        free(nm);
        return rc < 0 ? rc : oom(c);
    }
    free(n->inputs[1]);
    n->inputs[1] = nm;
    return 0;
}

int cs_onnx_fold(cs_onnx_graph *g, char *err, size_t errlen)
{
    fold_ctx c = {.g = g, .next_sym = 1, .err = err, .errlen = errlen};
    int nn = g->n_nodes, rc = -1;
    char *state = NULL; /* per node: 0 dead, 1 live, 2 folded */
    onnx_map inits = {0}, used = {0};
    if (setup(&c) < 0 || run_pass(&c) < 0) goto out;
    c.node = NULL;

    state = calloc((size_t)nn + 1, 1);
    if (!state) goto oom;
    for (int k = 0; k < nn; k++) {
        const cs_onnx_node *n = &g->nodes[k];
        int all_const = n->n_outputs > 0;
        for (int o = 0; o < n->n_outputs; o++)
            if (*n->outputs[o] && !fv_const(val_of(&c, n->outputs[o]))) all_const = 0;
        if (all_const) state[k] = 2;
    }
    for (int k = 0; k < nn; k++)
        if (state[k] != 2 && !strcmp(g->nodes[k].op_type, "Reshape") && rewrite_reshape(&c, &g->nodes[k]) < 0)
            goto out;

    /* Liveness backwards from the graph outputs, through nodes that stay. */
    if (onnx_map_init(&used, (size_t)nn + (size_t)g->n_outputs) < 0) goto oom;
    for (int k = 0; k < g->n_outputs; k++)
        if (onnx_map_put(&used, g->outputs[k].name, 1) < 0) goto oom;
    for (int k = nn - 1; k >= 0; k--) {
        const cs_onnx_node *n = &g->nodes[k];
        if (state[k] == 2) continue;
        for (int o = 0; o < n->n_outputs; o++)
            if (*n->outputs[o] && onnx_map_get(&used, n->outputs[o]) >= 0) state[k] = 1;
        if (state[k] != 1) continue;
        for (int i = 0; i < n->n_inputs; i++)
            if (*n->inputs[i] && onnx_map_put(&used, n->inputs[i], 1) < 0) goto oom;
    }

    /* Clip's bounds are inputs since opset 11; the engine needs them as numbers:
     * initializers, or constants about to become initializers. */
    for (int k = 0; k < nn; k++) {
        const cs_onnx_node *n = &g->nodes[k];
        if (state[k] != 1 || strcmp(n->op_type, "Clip")) continue;
        for (int i = 1; i < n->n_inputs && i < 3; i++) {
            const fval *v = val_of(&c, n->inputs[i]);
            if (*n->inputs[i] && !(fv_const(v) && (v->producer < 0 || state[v->producer] == 2))) {
                cs_set_err(err, errlen, "node '%s' (Clip): its %s bound '%s' is not a constant", n->name,
                           i == 1 ? "min" : "max", n->inputs[i]);
                goto out;
            }
        }
    }

    /* Constants that nodes which stay (or the graph's outputs) read become initializers. */
    if (onnx_map_init(&inits, (size_t)g->n_inits + 16) < 0) goto oom;
    for (int k = 0; k < g->n_inits; k++)
        if (onnx_map_put(&inits, g->inits[k].name, k) < 0) goto oom;
    for (int k = 0; k <= nn; k++) {
        const cs_onnx_node *n = k < nn ? &g->nodes[k] : NULL;
        if (n && state[k] != 1) continue;
        int m = n ? n->n_inputs : g->n_outputs;
        for (int i = 0; i < m; i++) {
            const char *nm = n ? n->inputs[i] : g->outputs[i].name;
            const fval *v = val_of(&c, nm);
            if (!*nm || !fv_const(v) || v->producer < 0 || state[v->producer] != 2 || onnx_map_get(&inits, nm) >= 0)
                continue;
            if (add_init_from(&c, nm, v) < 0) goto out;
            if (onnx_map_put(&inits, g->inits[g->n_inits - 1].name, g->n_inits - 1) < 0) goto oom;
        }
    }
    /* The keys of `inits` point into g->inits, whose names stay put until the end. */

    /* Drop folded and dead nodes, then initializers nothing reads. */
    int kept = 0;
    for (int k = 0; k < nn; k++) {
        if (state[k] == 1) g->nodes[kept++] = g->nodes[k];
        else onnx_node_clear(&g->nodes[k]);
    }
    g->n_nodes = kept;
    onnx_map_free(&used);
    if (onnx_map_init(&used, (size_t)kept + (size_t)g->n_outputs) < 0) goto oom;
    for (int k = 0; k < g->n_outputs; k++)
        if (onnx_map_put(&used, g->outputs[k].name, 1) < 0) goto oom;
    for (int k = 0; k < kept; k++)
        for (int i = 0; i < g->nodes[k].n_inputs; i++)
            if (*g->nodes[k].inputs[i] && onnx_map_put(&used, g->nodes[k].inputs[i], 1) < 0) goto oom;
    onnx_map_free(&inits); /* its keys are about to move */
    int kept_inits = 0;
    for (int k = 0; k < g->n_inits; k++) {
        if (onnx_map_get(&used, g->inits[k].name) >= 0) g->inits[kept_inits++] = g->inits[k];
        else onnx_tensor_clear(&g->inits[k]);
    }
    g->n_inits = kept_inits;
    rc = 0;
    goto out;
oom:
    oom(&c);
out:
    for (int k = 0; k < c.n_vals; k++) fv_release(&c.vals[k]);
    free(c.vals);
    onnx_map_free(&c.names);
    onnx_map_free(&inits);
    onnx_map_free(&used);
    free(state);
    return rc;
}
