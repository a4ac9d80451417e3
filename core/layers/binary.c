/*
 * binary.c - elementwise add, subtract, multiply and divide with broadcasting.
 *
 * The forward describes each input by a stride per output dimension (0 where it is
 * broadcast), drops dimensions of size 1 and merges neighbours that both inputs walk
 * contiguously, so the innermost loop runs as long as possible with each input
 * either contiguous or one repeated value: same shapes become one flat loop, a
 * (1, 1, c) input a loop over c per pixel, a scalar a flat loop against a constant.
 *
 * The backward of an input broadcast along some dimensions sums over them. Each task
 * owns a block of the input's gradient and sums everything that flows into it, in
 * double and without scratch, so tasks never share an output value.
 *
 * At the end, the Add, Subtract and Multiply rows of the layer table: Keras' merge
 * layers, whose inputs here may also broadcast (as ONNX's Add, Sub and Mul do).
 */
#include <stdio.h>
#include <string.h>

#include "kernels.h"
#include "layer_ops.h"
#include "parallel.h"
#include "simd.h"

#define CHUNK 16384L /* innermost elements per forward task */
#define CBLOCK 256   /* channels per backward task */

/* ---- the forward walk ----------------------------------------------------------- */

typedef struct {
    int nd;
    long size[4];      /* output dimensions left after dropping and merging */
    long sa[4], sb[4]; /* the inputs' strides along them; innermost 0 or 1 */
} walk;

/* Strides of a contiguous (d0, d1, d2, d3) tensor, 0 along its dimensions of size 1. */
static void strides_of(const int d[4], long s[4])
{
    long stride = 1;
    for (int i = 3; i >= 0; i--) {
        s[i] = d[i] == 1 ? 0 : stride;
        stride *= d[i];
    }
}

static walk make_walk(const int out[4], const int ad[4], const int bd[4])
{
    long sa[4], sb[4];
    strides_of(ad, sa);
    strides_of(bd, sb);
    walk p = {0};
    for (int i = 0; i < 4; i++) {
        if (out[i] == 1) continue;
        const int d = p.nd - 1;
        if (p.nd > 0 && p.sa[d] == sa[i] * out[i] && p.sb[d] == sb[i] * out[i]) {
            p.size[d] *= out[i];
            p.sa[d] = sa[i];
            p.sb[d] = sb[i];
        } else {
            p.size[p.nd] = out[i];
            p.sa[p.nd] = sa[i];
            p.sb[p.nd] = sb[i];
            p.nd++;
        }
    }
    if (!p.nd) p.size[p.nd++] = 1;
    return p;
}

/* y[i] = EXPR(A, B) over one run, for each of the four stride patterns. */
#define RUN_LOOPS(EXPR)                                                                       \
    do {                                                                                     \
        if (ia && ib) {                                                                      \
            for (long i = 0; i < len; i++) {                                                 \
                const float A = a[i], B = b[i];                                              \
                y[i] = EXPR;                                                                 \
            }                                                                                \
        } else if (ia) {                                                                     \
            const float B = b[0];                                                            \
            for (long i = 0; i < len; i++) {                                                 \
                const float A = a[i];                                                        \
                y[i] = EXPR;                                                                 \
            }                                                                                \
        } else if (ib) {                                                                     \
            const float A = a[0];                                                            \
            for (long i = 0; i < len; i++) {                                                 \
                const float B = b[i];                                                        \
                y[i] = EXPR;                                                                 \
            }                                                                                \
        } else {                                                                             \
            const float A = a[0], B = b[0], v = EXPR;                                        \
            for (long i = 0; i < len; i++) y[i] = v;                                         \
        }                                                                                    \
    } while (0)

CS_CLONES static void run(cs_binop op, long ia, long ib, long len, const float *a, const float *b, float *y)
{
    switch (op) {
    case CS_BIN_ADD: RUN_LOOPS(A + B); break;
    case CS_BIN_SUB: RUN_LOOPS(A - B); break;
    case CS_BIN_MUL: RUN_LOOPS(A * B); break;
    case CS_BIN_DIV: RUN_LOOPS(A / B); break;
    }
}

typedef struct {
    cs_binop op;
    walk p;
    long len, chunks; /* innermost length, and tasks per innermost run */
    const float *a, *b;
    float *y;
} walk_job;

static void walk_range(void *ctx, long begin, long end, int worker)
{
    (void)worker;
    const walk_job *j = ctx;
    const walk *p = &j->p;
    const int last = p->nd - 1;
    const long ia = p->sa[last], ib = p->sb[last];
    for (long t = begin; t < end; t++) {
        const long row = t / j->chunks, start = t % j->chunks * CHUNK;
        const long len = j->len - start < CHUNK ? j->len - start : CHUNK;
        long oa = 0, ob = 0, r = row;
        for (int d = last - 1; d >= 0; d--) {
            const long i = r % p->size[d];
            r /= p->size[d];
            oa += i * p->sa[d];
            ob += i * p->sb[d];
        }
        run(j->op, ia, ib, len, j->a + oa + start * ia, j->b + ob + start * ib, j->y + row * j->len + start);
    }
}

/* y (out) = a (ad) op b (bd), with broadcasting. */
static void elementwise(cs_binop op, const int out[4], const int ad[4], const float *a, const int bd[4],
                        const float *b, float *y)
{
    walk_job j = {.op = op, .p = make_walk(out, ad, bd), .a = a, .b = b, .y = y};
    j.len = j.p.size[j.p.nd - 1];
    j.chunks = (j.len + CHUNK - 1) / CHUNK;
    long rows = 1;
    for (int d = 0; d < j.p.nd - 1; d++) rows *= j.p.size[d];
    const long per_task = j.len < CHUNK ? j.len : CHUNK;
    cs_parallel_run(rows * j.chunks, cs_parallel_grain(per_task, 1), 0, walk_range, &j);
}

const char *cs_binary_check(const cs_binary_geom *g)
{
    if (g->op != CS_BIN_ADD && g->op != CS_BIN_SUB && g->op != CS_BIN_MUL && g->op != CS_BIN_DIV)
        return "binary: unknown operation";
    const int out[4] = {g->n, g->h, g->w, g->c}, a[4] = {g->an, g->ah, g->aw, g->ac},
              b[4] = {g->bn, g->bh, g->bw, g->bc};
    for (int i = 0; i < 4; i++)
        if (out[i] < 1) return "binary: sizes must be positive";
    for (int i = 0; i < 4; i++)
        if ((a[i] != out[i] && a[i] != 1) || (b[i] != out[i] && b[i] != 1))
            return "binary: each input dimension must be the output's or 1";
    return NULL;
}

void cs_binary_forward(const cs_binary_geom *g, const float *a, const float *b, float *y)
{
    const int out[4] = {g->n, g->h, g->w, g->c}, ad[4] = {g->an, g->ah, g->aw, g->ac},
              bd[4] = {g->bn, g->bh, g->bw, g->bc};
    elementwise(g->op, out, ad, a, bd, b, y);
}

/* ---- the backward's sums ----------------------------------------------------------- */

typedef struct {
    const cs_binary_geom *g;
    int which;         /* 0: gradient of a, 1: of b */
    int xd[4];         /* that input's dimensions */
    long sa[4], sb[4]; /* strides of a and b (0 along broadcast dimensions) */
    long cblocks;      /* channel blocks per position of the input */
    const float *a, *b, *dy;
    float *dx;
} sum_job;

/* acc[k] += EXPR over the channels of one output position: channel k0 + k into acc[k]
 * when the input has the channels, else all c channels into acc[0]. EXPR reads D(kk),
 * A(kk), B(kk): dy and the inputs' values at channel kk. */
#define D(kk) dy[kk]
#define A(kk) a[(kk) * ak]
#define B(kk) b[(kk) * bk]
#define SUM_LOOPS(EXPR)                                                                       \
    do {                                                                                     \
        if (per_channel) {                                                                   \
            for (int k = 0; k < cn; k++) {                                                   \
                const long kk = k0 + k;                                                      \
                acc[k] += (double)(EXPR);                                                    \
            }                                                                                \
        } else {                                                                             \
            double s = 0;                                                                    \
            for (long kk = 0; kk < c; kk++) s += (double)(EXPR);                             \
            acc[0] += s;                                                                     \
        }                                                                                    \
    } while (0)

CS_CLONES static void sum_position(cs_binop op, int which, int per_channel, long k0, int cn, long c,
                                   const float *dy, const float *a, long ak, const float *b, long bk, double *acc)
{
    switch (op) {
    case CS_BIN_ADD: SUM_LOOPS(D(kk)); break;
    case CS_BIN_SUB:
        if (which == 0) SUM_LOOPS(D(kk));
        else SUM_LOOPS(-D(kk));
        break;
    case CS_BIN_MUL:
        if (which == 0) SUM_LOOPS(D(kk) * B(kk));
        else SUM_LOOPS(D(kk) * A(kk));
        break;
    case CS_BIN_DIV:
        if (which == 0) SUM_LOOPS(D(kk) / B(kk));
        else SUM_LOOPS(-D(kk) * (A(kk) / B(kk)) / B(kk));
        break;
    }
}
#undef D
#undef A
#undef B

static void sum_range(void *ctx, long begin, long end, int worker)
{
    (void)worker;
    const sum_job *j = ctx;
    const cs_binary_geom *g = j->g;
    const int *xd = j->xd, per_channel = xd[3] == g->c;
    double acc[CBLOCK];
    for (long t = begin; t < end; t++) {
        const long pos = t / j->cblocks, k0 = t % j->cblocks * CBLOCK;
        const int cn = per_channel ? (g->c - k0 < CBLOCK ? (int)(g->c - k0) : CBLOCK) : 1;
        const int ix = (int)(pos % xd[2]), iy = (int)(pos / xd[2] % xd[1]), ib = (int)(pos / xd[2] / xd[1]);
        /* The output positions that flow into this one: all of a broadcast dimension. */
        const int b0 = xd[0] > 1 ? ib : 0, b1 = xd[0] > 1 ? ib + 1 : g->n;
        const int y0 = xd[1] > 1 ? iy : 0, y1 = xd[1] > 1 ? iy + 1 : g->h;
        const int x0 = xd[2] > 1 ? ix : 0, x1 = xd[2] > 1 ? ix + 1 : g->w;
        for (int k = 0; k < cn; k++) acc[k] = 0;
        for (int bb = b0; bb < b1; bb++)
            for (int yy = y0; yy < y1; yy++)
                for (int xx = x0; xx < x1; xx++) {
                    const size_t o = (((size_t)bb * g->h + yy) * g->w + xx) * g->c;
                    const float *a = j->a + bb * j->sa[0] + yy * j->sa[1] + xx * j->sa[2];
                    const float *b = j->b + bb * j->sb[0] + yy * j->sb[1] + xx * j->sb[2];
                    sum_position(g->op, j->which, per_channel, k0, cn, g->c, j->dy + o, a, j->sa[3], b, j->sb[3],
                                 acc);
                }
        float *dx = j->dx + (size_t)pos * xd[3] + k0;
        for (int k = 0; k < cn; k++) dx[k] = (float)acc[k];
    }
}

static void sum_into(const cs_binary_geom *g, int which, const int xd[4], const float *a, const float *b,
                     const float *dy, float *dx)
{
    const int ad[4] = {g->an, g->ah, g->aw, g->ac}, bd[4] = {g->bn, g->bh, g->bw, g->bc};
    sum_job j = {.g = g, .which = which, .a = a, .b = b, .dy = dy, .dx = dx};
    memcpy(j.xd, xd, sizeof j.xd);
    strides_of(ad, j.sa);
    strides_of(bd, j.sb);
    j.cblocks = xd[3] == g->c ? (g->c + CBLOCK - 1) / CBLOCK : 1;
    const long positions = (long)xd[0] * xd[1] * xd[2], tasks = positions * j.cblocks;
    const long total = (long)g->n * g->h * g->w * g->c;
    cs_parallel_run(tasks, cs_parallel_grain(total / tasks + 1, 1), 0, sum_range, &j);
}

/* The gradient of input `which` (dimensions xd). Where that input has the output's
 * shape, add and subtract pass dy through and the others are one elementwise op;
 * everything else sums. */
static void input_grad(const cs_binary_geom *g, int which, const float *a, const float *b, const float *dy,
                       float *dx)
{
    const int out[4] = {g->n, g->h, g->w, g->c}, ad[4] = {g->an, g->ah, g->aw, g->ac},
              bd[4] = {g->bn, g->bh, g->bw, g->bc};
    const int *xd = which ? bd : ad, *od = which ? ad : bd;
    const float *other = which ? a : b;
    const size_t total = (size_t)g->n * g->h * g->w * g->c;
    if (!memcmp(xd, out, sizeof out)) {
        if (g->op == CS_BIN_ADD || (g->op == CS_BIN_SUB && which == 0)) {
            memcpy(dx, dy, total * sizeof(float));
            return;
        }
        if (g->op == CS_BIN_SUB) {
            const float minus[1] = {-1.0f};
            const int scalar[4] = {1, 1, 1, 1};
            elementwise(CS_BIN_MUL, out, out, dy, scalar, minus, dx);
            return;
        }
        if (g->op == CS_BIN_MUL || which == 0) { /* dy * b, dy * a, dy / b */
            elementwise(g->op, out, out, dy, od, other, dx);
            return;
        }
    }
    sum_into(g, which, xd, a, b, dy, dx);
}

void cs_binary_backward(const cs_binary_geom *g, const float *a, const float *b, const float *dy, float *da,
                        float *db)
{
    if (da) input_grad(g, 0, a, b, dy, da);
    if (db) input_grad(g, 1, a, b, dy, db);
}

/* ---- Add, Subtract, Multiply ---------------------------------------------------------- */

/* Inputs fold pairwise, in order: y = x0 op x1, then y = y op x2, and so on. Each
 * input's shape (per image) broadcasts: every dimension is the output's or 1. */

static cs_binop op_of(cs_layer_kind k) { return k == CS_ADD ? CS_BIN_ADD : k == CS_SUBTRACT ? CS_BIN_SUB : CS_BIN_MUL; }

static cs_binary_geom geom_of(cs_binop op, int n, cs_shape out, cs_shape a, cs_shape b)
{
    return (cs_binary_geom){.op = op, .n = n, .h = out.h, .w = out.w, .c = out.c, .an = n, .ah = a.h, .aw = a.w,
                            .ac = a.c, .bn = n, .bh = b.h, .bw = b.w, .bc = b.c};
}

static int dim_of(cs_shape s, int d) { return d == 0 ? s.h : d == 1 ? s.w : s.c; }

static int binary_infer(cs_layer *l, const cs_shape *in, char *err, size_t errlen)
{
    const int most = l->kind == CS_SUBTRACT ? 2 : CS_MAX_INPUTS;
    if (l->n_inputs < 2 || l->n_inputs > most) {
        if (most == 2) snprintf(err, errlen, "%s: Subtract takes 2 inputs, not %d", l->name, l->n_inputs);
        else snprintf(err, errlen, "%s: %s takes 2 to %d inputs, not %d", l->name, cs_layer_kind_name(l->kind), most,
                      l->n_inputs);
        return -1;
    }
    int out[3] = {1, 1, 1};
    for (int d = 0; d < 3; d++)
        for (int j = 0; j < l->n_inputs; j++) {
            const int v = dim_of(in[j], d);
            for (int k = 0; k < j; k++) {
                const int u = dim_of(in[k], d);
                if (u != v && u != 1 && v != 1) {
                    snprintf(err, errlen,
                             "%s: input %d (%dx%dx%d) and input %d (%dx%dx%d) do not broadcast: each dimension "
                             "must be the same or 1",
                             l->name, k, in[k].h, in[k].w, in[k].c, j, in[j].h, in[j].w, in[j].c);
                    return -1;
                }
            }
            if (v > out[d]) out[d] = v;
        }
    l->out = (cs_shape){out[0], out[1], out[2]};
    return 0;
}

static cs_shape input_shape(const cs_node_pass *p, int k) { return cs_model_node_shape(p->e->model, p->l->inputs[k]); }

static void binary_forward(const cs_node_pass *p)
{
    const cs_layer *l = p->l;
    const cs_binop op = op_of(l->kind);
    cs_binary_geom g = geom_of(op, p->n, l->out, input_shape(p, 0), input_shape(p, 1));
    cs_binary_forward(&g, p->x[0], p->x[1], p->y);
    for (int k = 2; k < l->n_inputs; k++) {
        g = geom_of(op, p->n, l->out, l->out, input_shape(p, k));
        cs_binary_forward(&g, p->y, p->x[k], p->y);
    }
}

/* dx = dy summed over the dimensions input k was broadcast along (the gradient of
 * any sum that input k takes part in). */
static void pass_sum(const cs_node_pass *p, int k, const float *dy)
{
    cs_binary_geom g = geom_of(CS_BIN_ADD, p->n, p->l->out, input_shape(p, k), p->l->out);
    cs_binary_backward(&g, p->x[k], dy, dy, p->dx[k], NULL);
}

static void add_backward(const cs_node_pass *p)
{
    for (int k = 0; k < p->l->n_inputs; k++)
        if (p->dx[k]) pass_sum(p, k, p->dy);
}

/* Two inputs: the kernel's backward. More (Add's are all sums): for each input, dy
 * times the product of the other inputs, built in the work area, then summed over
 * that input's broadcast dimensions. */
static void binary_backward(const cs_node_pass *p)
{
    const cs_layer *l = p->l;
    const cs_binop op = op_of(l->kind);
    if (l->n_inputs == 2) {
        cs_binary_geom g = geom_of(op, p->n, l->out, input_shape(p, 0), input_shape(p, 1));
        cs_binary_backward(&g, p->x[0], p->x[1], p->dy, p->dx[0], p->dx[1]);
        return;
    }
    for (int j = 0; j < l->n_inputs; j++) {
        if (!p->dx[j]) continue;
        const float *prod = p->dy;
        for (int k = 0; k < l->n_inputs; k++) {
            if (k == j) continue;
            cs_binary_geom g = geom_of(CS_BIN_MUL, p->n, l->out, l->out, input_shape(p, k));
            cs_binary_forward(&g, prod, p->x[k], p->work);
            prod = p->work;
        }
        pass_sum(p, j, p->work);
    }
}

static size_t multiply_work(const cs_layer *l, int max_batch)
{
    return l->n_inputs > 2 ? (size_t)max_batch * cs_shape_size(l->out) : 0;
}

const cs_layer_ops cs_add_ops = {
    .keras = "Add",
    .onnx = "Add",
    .infer = binary_infer,
    .forward = binary_forward,
    .backward = add_backward,
};

const cs_layer_ops cs_subtract_ops = {
    .keras = "Subtract",
    .onnx = "Sub",
    .infer = binary_infer,
    .forward = binary_forward,
    .backward = binary_backward,
};

const cs_layer_ops cs_multiply_ops = {
    .keras = "Multiply",
    .onnx = "Mul",
    .infer = binary_infer,
    .forward = binary_forward,
    .backward = binary_backward,
    .work_floats = multiply_work,
};
