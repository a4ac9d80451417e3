/*
 * conv_general.c - the general 2-D convolution through im2col per group and sgemm.
 *
 * An im2col row of group g is the receptive field of one output position over the
 * group's input channels, in (ky, kx, c) order: the rows of the kernel's column block
 * [g*ocg, (g+1)*ocg). So each group is one product
 *     y[rows, group g's outputs] = col_g [rows x kh*kw*icg] * w[:, group g's outputs]
 * read and written in place through the leading dimension oc, and the output lands in
 * NHWC with no reshuffling. Backward is the two transposed products, dw_g += col_g^T dy_g
 * and col = dy_g w_g^T, whose rows col2im adds back onto dx. As in conv.c, rows go in
 * chunks that fit the caller's scratch, so memory stays bounded whatever the image,
 * and the chunks are spread over the parallel pool. Depthwise layers go to depthwise.c.
 */
#include "conv_general.h"

#include <cblas.h>
#include <limits.h>
#include <string.h>

#include "error.h"
#include "parallel.h"

int cs_conv2d_out_size(int in, int k, int stride, int dilation, int pad_begin, int pad_end)
{
    if (in < 1 || k < 1 || stride < 1 || dilation < 1 || pad_begin < 0 || pad_end < 0) return -1;
    const long long span = (long long)in + pad_begin + pad_end - ((long long)(k - 1) * dilation + 1);
    if (span < 0) return -1;
    const long long out = span / stride + 1;
    return out <= INT_MAX ? (int)out : -1;
}

void cs_conv2d_same_pads(int in, int k, int stride, int dilation, int upper, int *pad_begin, int *pad_end)
{
    long long total = 0;
    if (in >= 1 && k >= 1 && stride >= 1 && dilation >= 1) {
        const long long out = ((long long)in + stride - 1) / stride, span = (long long)(k - 1) * dilation + 1;
        total = (out - 1) * stride + span - in;
        if (total < 0) total = 0;
        if (total > INT_MAX) total = INT_MAX;
    }
    const int small = (int)(total / 2), big = (int)(total - small);
    *pad_begin = upper ? small : big;
    *pad_end = upper ? big : small;
}

int cs_conv2d_check(const cs_conv2d_geom *g, char *err, size_t errlen)
{
    if (!g) {
        cs_set_err(err, errlen, "conv2d: no geometry");
        return -1;
    }
    if (g->n < 1 || g->ih < 1 || g->iw < 1 || g->ic < 1 || g->oc < 1) {
        cs_set_err(err, errlen, "conv2d: sizes must be positive (batch %d, input %dx%dx%d, %d output channels)", g->n,
                   g->ih, g->iw, g->ic, g->oc);
        return -1;
    }
    if (g->kh < 1 || g->kw < 1 || g->sh < 1 || g->sw < 1 || g->dh < 1 || g->dw < 1) {
        cs_set_err(err, errlen, "conv2d: kernel %dx%d, strides %d,%d and dilations %d,%d must be at least 1", g->kh,
                   g->kw, g->sh, g->sw, g->dh, g->dw);
        return -1;
    }
    if (g->pt < 0 || g->pl < 0 || g->pb < 0 || g->pr < 0) {
        cs_set_err(err, errlen, "conv2d: negative padding (%d, %d, %d, %d)", g->pt, g->pl, g->pb, g->pr);
        return -1;
    }
    if (g->groups < 1 || g->ic % g->groups || g->oc % g->groups) {
        cs_set_err(err, errlen, "conv2d: %d groups do not divide %d input and %d output channels", g->groups, g->ic,
                   g->oc);
        return -1;
    }
    /* Index arithmetic runs in int: every padded extent, window span and stride step
     * stays far below INT_MAX. */
    const long long limit = INT_MAX / 4;
    if ((long long)g->ih + g->pt + g->pb > limit || (long long)g->iw + g->pl + g->pr > limit ||
        (long long)(g->kh - 1) * g->dh + 1 > limit || (long long)(g->kw - 1) * g->dw + 1 > limit ||
        g->sh > limit || g->sw > limit) {
        cs_set_err(err, errlen, "conv2d: padded input, dilated kernel or stride too large");
        return -1;
    }
    const int oh = cs_conv2d_out_size(g->ih, g->kh, g->sh, g->dh, g->pt, g->pb),
              ow = cs_conv2d_out_size(g->iw, g->kw, g->sw, g->dw, g->pl, g->pr);
    if (oh < 1 || ow < 1) {
        cs_set_err(err, errlen, "conv2d: a %dx%d kernel (dilation %d,%d) does not fit the padded %dx%d input", g->kh,
                   g->kw, g->dh, g->dw, g->ih + g->pt + g->pb, g->iw + g->pl + g->pr);
        return -1;
    }
    if (g->oh != oh || g->ow != ow) {
        cs_set_err(err, errlen, "conv2d: output %dx%d, but the kernel, strides, dilations and pads give %dx%d", g->oh,
                   g->ow, oh, ow);
        return -1;
    }
    /* sgemm takes int sizes; offsets are computed in size_t. */
    const long long kdim = (long long)g->kh * g->kw * (g->ic / g->groups);
    const long long in_floats = (long long)g->ih * g->iw * g->ic, out_floats = (long long)oh * ow * g->oc;
    if (kdim * g->oc > INT_MAX || in_floats > INT_MAX || out_floats > INT_MAX ||
        (double)g->n * (in_floats > out_floats ? in_floats : out_floats) > (double)LONG_MAX / 8) {
        cs_set_err(err, errlen, "conv2d: too large (kernel %lld x %d, image %lld floats in, %lld out)", kdim, g->oc,
                   in_floats, out_floats);
        return -1;
    }
    return 0;
}

void cs_conv2d_kernel_from_oihw(const cs_conv2d_geom *g, const float *oihw, float *hwio)
{
    const int icg = g->ic / g->groups, taps = g->kh * g->kw;
    for (int o = 0; o < g->oc; o++)
        for (int c = 0; c < icg; c++)
            for (int t = 0; t < taps; t++)
                hwio[((size_t)t * icg + c) * g->oc + o] = oihw[((size_t)o * icg + c) * taps + t];
}

void cs_conv2d_kernel_to_oihw(const cs_conv2d_geom *g, const float *hwio, float *oihw)
{
    const int icg = g->ic / g->groups, taps = g->kh * g->kw;
    for (int o = 0; o < g->oc; o++)
        for (int c = 0; c < icg; c++)
            for (int t = 0; t < taps; t++)
                oihw[((size_t)o * icg + c) * taps + t] = hwio[((size_t)t * icg + c) * g->oc + o];
}

static int is_depthwise(const cs_conv2d_geom *g)
{
    return g->ic == g->groups;
}

/* 1x1, stride 1, no padding: output row r reads input row r only, so the input itself
 * is the im2col matrix (group g's columns start at g*icg, leading dimension ic). */
static int is_pointwise(const cs_conv2d_geom *g)
{
    return g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 && !g->pt && !g->pl && !g->pb && !g->pr;
}

/* Length of an im2col row: the receptive field over one group's channels. */
static size_t kdim_of(const cs_conv2d_geom *g)
{
    return (size_t)g->kh * g->kw * (g->ic / g->groups);
}

static size_t total_rows(const cs_conv2d_geom *g)
{
    return (size_t)g->n * g->oh * g->ow;
}

/* Rows of the chunk im2col writes and sgemm reads back from cache (layers.h says why
 * about 1 MB, and why not fewer than CS_COL_MIN_ROWS rows). Sized as if the chunk held
 * every group's columns: each group's im2col reads the chunk's receptive fields again,
 * and they have to be still in cache, not streamed from memory once per group. */
static size_t preferred_rows(const cs_conv2d_geom *g)
{
    size_t rows = CS_COL_CHUNK_FLOATS / (kdim_of(g) * g->groups);
    if (rows < CS_COL_MIN_ROWS) rows = CS_COL_MIN_ROWS;
    return rows < total_rows(g) ? rows : total_rows(g);
}

static int needs_col(const cs_conv2d_geom *g)
{
    return !is_depthwise(g) && !is_pointwise(g);
}

size_t cs_conv2d_scratch_floats(const cs_conv2d_geom *g)
{
    if (cs_conv2d_check(g, NULL, 0) || !needs_col(g)) return 0;
    return preferred_rows(g) * kdim_of(g);
}

size_t cs_conv2d_min_scratch_floats(const cs_conv2d_geom *g)
{
    if (cs_conv2d_check(g, NULL, 0) || !needs_col(g)) return 0;
    return kdim_of(g);
}

size_t cs_conv2d_part_floats(const cs_conv2d_geom *g)
{
    if (cs_conv2d_check(g, NULL, 0)) return 0;
    return kdim_of(g) * g->oc + g->oc;
}

/* The scratch can serve the workers a pass may use. */
static int scratch_ok(const cs_conv2d_geom *g, const cs_scratch *s)
{
    if (!s || s->workers < 1 || s->workers > CS_MAX_WORKERS) return 0;
    if (!needs_col(g)) return 1;
    if (s->col_floats < kdim_of(g)) return 0;
    for (int w = 0; w < s->workers; w++)
        if (!s->col[w]) return 0;
    return 1;
}

/* Packs kw blocks of n floats, `step` floats apart in src, into dst. A group's few
 * channels make blocks of a handful of floats, where a loop costs more than the copy:
 * with the size a constant each block is one or two moves. */
static inline void gather_blocks(float *restrict dst, const float *restrict src, int kw, int n, size_t step)
{
#define GATHER(N) for (int kx = 0; kx < kw; kx++) memcpy(dst + kx * (N), src + kx * step, (N) * sizeof(float))
    switch (n) {
    case 1: GATHER(1); break;
    case 2: GATHER(2); break;
    case 4: GATHER(4); break;
    case 8: GATHER(8); break;
    case 16: GATHER(16); break;
    default: GATHER(n);
    }
#undef GATHER
}

/* The adjoint: adds the blocks of src back at `step` floats apart in dst. */
static inline void scatter_add_blocks(float *restrict dst, const float *restrict src, int kw, int n, size_t step)
{
#define SCATTER(N)                                                                                                     \
    for (int kx = 0; kx < kw; kx++)                                                                                    \
        for (int c = 0; c < (N); c++) dst[kx * step + c] += src[kx * (N) + c]
    switch (n) {
    case 1: SCATTER(1); break;
    case 2: SCATTER(2); break;
    case 4: SCATTER(4); break;
    case 8: SCATTER(8); break;
    case 16: SCATTER(16); break;
    default: SCATTER(n);
    }
#undef SCATTER
}

/* Fills col (nrows x kdim) with rows [r0, r0 + nrows) of group grp's im2col matrix. */
static void im2col_group(const cs_conv2d_geom *g, int grp, const float *x, size_t r0, size_t nrows, float *col)
{
    const int icg = g->ic / g->groups, ic = g->ic, kw = g->kw, row_len = kw * icg;
    /* A kernel row inside the image is kw*ic consecutive floats when the taps touch
     * and the group is every channel. */
    const int contiguous = g->dw == 1 && icg == ic;
    const size_t kdim = kdim_of(g), per_image = (size_t)g->oh * g->ow, image = (size_t)g->ih * g->iw * ic;
    size_t b = r0 / per_image;
    int oy = (int)(r0 % per_image / g->ow), ox = (int)(r0 % per_image % g->ow);
    for (size_t r = 0; r < nrows; r++) {
        float *dst = col + r * kdim;
        const float *img = x + b * image + (size_t)grp * icg;
        const int ix0 = ox * g->sw - g->pl, inside_x = ix0 >= 0 && ix0 + (kw - 1) * g->dw < g->iw;
        for (int ky = 0; ky < g->kh; ky++, dst += row_len) {
            const int iy = oy * g->sh - g->pt + ky * g->dh;
            if (iy < 0 || iy >= g->ih) {
                for (int j = 0; j < row_len; j++) dst[j] = 0.0f;
                continue;
            }
            const float *line = img + (size_t)iy * g->iw * ic;
            if (inside_x && contiguous) {
                const float *src = line + (size_t)ix0 * ic;
                for (int j = 0; j < row_len; j++) dst[j] = src[j];
                continue;
            }
            if (inside_x) {
                gather_blocks(dst, line + (size_t)ix0 * ic, kw, icg, (size_t)g->dw * ic);
                continue;
            }
            for (int kx = 0; kx < kw; kx++) {
                const int ix = ix0 + kx * g->dw;
                float *d = dst + kx * icg;
                if (ix < 0 || ix >= g->iw) {
                    for (int c = 0; c < icg; c++) d[c] = 0.0f;
                    continue;
                }
                const float *src = line + (size_t)ix * ic;
                for (int c = 0; c < icg; c++) d[c] = src[c];
            }
        }
        if (++ox == g->ow) { /* the next output position, without divisions */
            ox = 0;
            if (++oy == g->oh) oy = 0, b++;
        }
    }
}

/* The adjoint of im2col_group: adds each entry of col back onto the input it came from. */
static void col2im_add_group(const cs_conv2d_geom *g, int grp, const float *col, size_t r0, size_t nrows, float *dx)
{
    const int icg = g->ic / g->groups, ic = g->ic, kw = g->kw, row_len = kw * icg;
    const int contiguous = g->dw == 1 && icg == ic;
    const size_t kdim = kdim_of(g), per_image = (size_t)g->oh * g->ow, image = (size_t)g->ih * g->iw * ic;
    size_t b = r0 / per_image;
    int oy = (int)(r0 % per_image / g->ow), ox = (int)(r0 % per_image % g->ow);
    for (size_t r = 0; r < nrows; r++) {
        const float *src = col + r * kdim;
        float *img = dx + b * image + (size_t)grp * icg;
        const int ix0 = ox * g->sw - g->pl, inside_x = ix0 >= 0 && ix0 + (kw - 1) * g->dw < g->iw;
        for (int ky = 0; ky < g->kh; ky++, src += row_len) {
            const int iy = oy * g->sh - g->pt + ky * g->dh;
            if (iy < 0 || iy >= g->ih) continue;
            float *line = img + (size_t)iy * g->iw * ic;
            if (inside_x && contiguous) {
                float *d = line + (size_t)ix0 * ic;
                for (int j = 0; j < row_len; j++) d[j] += src[j];
                continue;
            }
            if (inside_x) {
                scatter_add_blocks(line + (size_t)ix0 * ic, src, kw, icg, (size_t)g->dw * ic);
                continue;
            }
            for (int kx = 0; kx < kw; kx++) {
                const int ix = ix0 + kx * g->dw;
                if (ix < 0 || ix >= g->iw) continue;
                float *d = line + (size_t)ix * ic;
                const float *s = src + kx * icg;
                for (int c = 0; c < icg; c++) d[c] += s[c];
            }
        }
        if (++ox == g->ow) {
            ox = 0;
            if (++oy == g->oh) oy = 0, b++;
        }
    }
}

typedef struct {
    const cs_conv2d_geom *g;
    const float *x, *w, *b, *dy;
    float *y, *dx, *dw, *db;
    const cs_scratch *s;
    size_t chunk;   /* rows per im2col chunk */
    int partial;    /* backward: workers > 0 sum dw/db into s->part[worker] */
} job;

static void forward_range(void *ctx, long begin, long end, int worker)
{
    const job *j = ctx;
    const cs_conv2d_geom *g = j->g;
    const int groups = g->groups, icg = g->ic / groups, ocg = g->oc / groups, oc = g->oc, kdim = (int)kdim_of(g);
    const int pointwise = is_pointwise(g);
    for (size_t r0 = (size_t)begin; r0 < (size_t)end; r0 += j->chunk) {
        const size_t rows = (size_t)end - r0 < j->chunk ? (size_t)end - r0 : j->chunk;
        float *y = j->y + r0 * oc;
        if (j->b)
            for (size_t r = 0; r < rows; r++) memcpy(y + r * oc, j->b, (size_t)oc * sizeof(float));
        for (int grp = 0; grp < groups; grp++) {
            const float *a = j->x + r0 * g->ic + (size_t)grp * icg;
            int lda = g->ic;
            if (!pointwise) {
                im2col_group(g, grp, j->x, r0, rows, j->s->col[worker]);
                a = j->s->col[worker];
                lda = kdim;
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, ocg, kdim, 1.0f, a, lda,
                        j->w + (size_t)grp * ocg, oc, j->b ? 1.0f : 0.0f, y + (size_t)grp * ocg, oc);
        }
    }
}

/* Rows per chunk: what fits the scratch, and no more than an even share per worker
 * (but not so few that waking a worker costs more than the rows). */
static size_t chunk_rows(const cs_conv2d_geom *g, const cs_scratch *s, int parts)
{
    const size_t total = total_rows(g), kdim = kdim_of(g);
    size_t share = (total + parts - 1) / parts;
    const size_t least = (size_t)cs_parallel_grain((long)(kdim * g->oc / 16), 1);
    if (share < least) share = least;
    if (!needs_col(g)) return share < total ? share : total;
    size_t chunk = preferred_rows(g);
    if (chunk > s->col_floats / kdim) chunk = s->col_floats / kdim;
    if (chunk >= share) return share < total ? share : total;
    /* Equal chunks, so that each worker's share is a whole number of them. */
    const size_t per = (share + chunk - 1) / chunk;
    return (share + per - 1) / per;
}

int cs_conv2d_forward(const cs_conv2d_geom *g, const float *x, const float *w, const float *b, float *y,
                      const cs_scratch *s)
{
    if (cs_conv2d_check(g, NULL, 0) || !x || !w || !y || !scratch_ok(g, s)) return -1;
    if (is_depthwise(g)) {
        cs_depthwise_forward(g, x, w, b, y, s);
        return 0;
    }
    job j = {.g = g, .x = x, .w = w, .b = b, .y = y, .s = s, .chunk = chunk_rows(g, s, s->workers)};
    cs_parallel_run((long)total_rows(g), (long)j.chunk, s->workers, forward_range, &j);
    return 0;
}

static void backward_range(void *ctx, long begin, long end, int worker)
{
    const job *j = ctx;
    const cs_conv2d_geom *g = j->g;
    const int groups = g->groups, icg = g->ic / groups, ocg = g->oc / groups, oc = g->oc, ic = g->ic;
    const int kdim = (int)kdim_of(g), pointwise = is_pointwise(g);
    float *dw = j->dw, *db = j->db, *col = j->s->col[worker];
    if (worker > 0 && j->partial) {
        float *part = j->s->part[worker];
        dw = dw ? part : NULL;
        db = db ? part + (size_t)kdim * oc : NULL;
    }
    if (j->dx && !pointwise) { /* the range is whole images: col2im adds into them only */
        const size_t per_image = (size_t)g->oh * g->ow, image = (size_t)g->ih * g->iw * ic;
        memset(j->dx + (size_t)begin / per_image * image, 0,
               ((size_t)end - (size_t)begin) / per_image * image * sizeof(float));
    }
    for (size_t r0 = (size_t)begin; r0 < (size_t)end; r0 += j->chunk) {
        const size_t rows = (size_t)end - r0 < j->chunk ? (size_t)end - r0 : j->chunk;
        const float *dy = j->dy + r0 * oc;
        if (db) {
            /* Each chunk sums its rows first: fewer additions into the running total. */
            for (int o = 0; o < oc; o++) {
                float acc = 0;
                for (size_t r = 0; r < rows; r++) acc += dy[r * oc + o];
                db[o] += acc;
            }
        }
        for (int grp = 0; grp < groups; grp++) {
            const float *dyg = dy + (size_t)grp * ocg, *wg = j->w + (size_t)grp * ocg;
            if (dw) {
                const float *a = j->x + r0 * ic + (size_t)grp * icg;
                int lda = ic;
                if (!pointwise) {
                    im2col_group(g, grp, j->x, r0, rows, col);
                    a = col;
                    lda = kdim;
                }
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, kdim, ocg, (int)rows, 1.0f, a, lda, dyg, oc, 1.0f,
                            dw + (size_t)grp * ocg, oc);
            }
            if (!j->dx) continue;
            if (pointwise) { /* each output row is the gradient of its own input row */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, icg, ocg, 1.0f, dyg, oc, wg, oc, 0.0f,
                            j->dx + r0 * ic + (size_t)grp * icg, ic);
                continue;
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, kdim, ocg, 1.0f, dyg, oc, wg, oc, 0.0f, col,
                        kdim);
            col2im_add_group(g, grp, col, r0, rows, j->dx);
        }
    }
}

int cs_conv2d_backward(const cs_conv2d_geom *g, const float *x, const float *w, const float *dy, float *dx, float *dw,
                       float *db, const cs_scratch *s)
{
    if (cs_conv2d_check(g, NULL, 0) || !x || !w || !dy || !scratch_ok(g, s)) return -1;
    if (is_depthwise(g)) {
        cs_depthwise_backward(g, x, w, dy, dx, dw, db, s);
        return 0;
    }
    if (!dx && !dw && !db) return 0;
    const size_t kdim = kdim_of(g), per_image = (size_t)g->oh * g->ow, part = kdim * g->oc + g->oc;
    job j = {.g = g, .x = x, .w = w, .dy = dy, .dx = dx, .dw = dw, .db = db, .s = s};
    /* col2im adds into overlapping receptive fields, so with dx the ranges are whole
     * images and no two workers add into the same part of dx. */
    const int whole_images = dx && !is_pointwise(g);
    int parts = s->workers;
    if ((dw || db) && s->part_floats < part) parts = 1;
    if (whole_images && parts > g->n) parts = g->n;
    if ((double)total_rows(g) * kdim * g->oc < 16.0 * CS_PARALLEL_MIN_WORK) parts = 1;
    for (int p = 1; p < parts; p++) {
        if ((dw || db) && !s->part[p]) parts = p; /* workers with no area of their own stay idle */
    }
    j.partial = parts > 1 && (dw || db);
    /* Zeroed here, not in the workers: a range may end up run by the caller alone. */
    if (j.partial)
        for (int p = 1; p < parts; p++) memset(s->part[p], 0, part * sizeof(float));
    if (whole_images) { /* chunks within one worker's images */
        cs_conv2d_geom share = *g;
        share.n = (g->n + parts - 1) / parts;
        j.chunk = chunk_rows(&share, s, 1);
    } else {
        j.chunk = chunk_rows(g, s, parts);
    }
    const long grain = whole_images ? (long)per_image : (long)j.chunk;
    cs_parallel_run((long)total_rows(g), grain, parts, backward_range, &j);
    if (j.partial)
        for (int p = 1; p < parts; p++) {
            const float *pw = s->part[p];
            if (dw)
                for (size_t i = 0; i < kdim * g->oc; i++) dw[i] += pw[i];
            if (db)
                for (int o = 0; o < g->oc; o++) db[o] += pw[kdim * g->oc + o];
        }
    return 0;
}
