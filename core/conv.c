/*
 * conv.c - 2-D convolution through im2col and one cblas_sgemm per chunk.
 *
 * In NHWC with Keras' (kh, kw, in, out) kernels, an im2col row is the receptive field
 * of one output position in (ky, kx, c) order, which is exactly the kernel's row order,
 * so the output block [rows x out] = col [rows x k*k*in] * kernel [k*k*in x out] lands
 * already in NHWC. Rows are processed in chunks that fit the caller's scratch, so the
 * memory a pass needs stays bounded however large the image (VGG16's first layers
 * would otherwise need a 115 MB im2col each). Each chunk's output can feed a batch
 * norm's statistics while it is in cache, and in backward each chunk's dy can come
 * from the layer above as it is needed (cs_rows_source). Stride-1 'valid' layers skip
 * im2col and sgemm altogether: those with a very short receptive field (the first:
 * 3x3 over one channel) through the kernels below, longer ones through the AVX-512
 * kernels of conv_avx512.c on CPUs that have it.
 */
#include <cblas.h>
#include <math.h>
#include <stdatomic.h>
#include <string.h>

#include "conv_avx512.h"
#include "layers.h"
#include "simd.h"

cs_conv_geom cs_conv_geometry(const cs_layer *l, int n)
{
    cs_conv_geom g = {.n = n, .ih = l->in.h, .iw = l->in.w, .ic = l->in.c, .oh = l->out.h, .ow = l->out.w,
                      .oc = l->out.c, .k = l->cfg.kernel, .stride = l->cfg.stride};
    if (l->cfg.pad_same) {
        /* TensorFlow 'SAME': the odd pixel of padding goes at the bottom/right. */
        int ph = (g.oh - 1) * g.stride + g.k - g.ih, pw = (g.ow - 1) * g.stride + g.k - g.iw;
        g.pad_t = ph > 0 ? ph / 2 : 0;
        g.pad_l = pw > 0 ? pw / 2 : 0;
    }
    return g;
}

int cs_conv_valid_stride1(const cs_conv_geom *g)
{
    return g->stride == 1 && g->pad_t == 0 && g->pad_l == 0 && g->oh == g->ih - g->k + 1 && g->ow == g->iw - g->k + 1;
}

void cs_conv_corners(const cs_conv_geom *g, size_t r0, size_t n, size_t size, size_t *off)
{
    const size_t per_image = (size_t)g->oh * g->ow;
    int b = (int)(r0 / per_image), oy = (int)(r0 % per_image) / g->ow, ox = (int)(r0 % per_image) % g->ow;
    for (size_t r = 0; r < n; r++) {
        off[r] = (((size_t)b * g->ih + oy) * g->iw + ox) * g->ic;
        if (++ox == g->ow) { /* the next output position, without divisions */
            ox = 0;
            if (++oy == g->oh) oy = 0, b++;
        }
    }
    for (size_t r = n; r < size && n > 0; r++) off[r] = off[n - 1];
}

int cs_conv_tap_offsets(const cs_conv_geom *g, int *off)
{
    int j = 0;
    for (int ky = 0; ky < g->k; ky++)
        for (int kx = 0; kx < g->k; kx++)
            for (int c = 0; c < g->ic; c++) off[j++] = (ky * g->iw + kx) * g->ic + c;
    return j;
}

size_t cs_conv_chunk_rows(const cs_conv_geom *g, size_t col_floats)
{
    size_t kdim = (size_t)g->k * g->k * g->ic, total = (size_t)g->n * g->oh * g->ow;
    size_t rows = CS_COL_CHUNK_FLOATS / kdim;
    if (rows < CS_COL_MIN_ROWS) rows = CS_COL_MIN_ROWS;
    if (rows > col_floats / kdim) rows = col_floats / kdim;
    if (rows < 1) rows = 1;
    return rows < total ? rows : total;
}

/* Fills col with rows [r0, r0 + nrows) of the im2col matrix. */
static void im2col(const cs_conv_geom *g, const float *x, size_t r0, size_t nrows, float *col)
{
    const int k = g->k, ic = g->ic, kic = k * ic;
    const size_t kdim = (size_t)k * kic, per_image = (size_t)g->oh * g->ow;
    int b = (int)(r0 / per_image), oy = (int)(r0 % per_image) / g->ow, ox = (int)(r0 % per_image) % g->ow;
    for (size_t r = 0; r < nrows; r++) {
        float *dst = col + r * kdim;
        const float *img = x + (size_t)b * g->ih * g->iw * ic;
        const int ix0 = ox * g->stride - g->pad_l, inside_x = ix0 >= 0 && ix0 + k <= g->iw;
        for (int ky = 0; ky < k; ky++, dst += kic) {
            int iy = oy * g->stride + ky - g->pad_t;
            if (iy < 0 || iy >= g->ih) {
                for (int j = 0; j < kic; j++) dst[j] = 0.0f;
                continue;
            }
            const float *line = img + (size_t)iy * g->iw * ic;
            if (inside_x) {
                /* In NHWC the k pixels of a kernel row are k*ic consecutive floats. */
                const float *src = line + (size_t)ix0 * ic;
                for (int j = 0; j < kic; j++) dst[j] = src[j];
                continue;
            }
            for (int kx = 0; kx < k; kx++) {
                int ix = ix0 + kx, in = ix >= 0 && ix < g->iw;
                for (int c = 0; c < ic; c++) dst[kx * ic + c] = in ? line[(size_t)ix * ic + c] : 0.0f;
            }
        }
        if (++ox == g->ow) { /* the next output position, without divisions */
            ox = 0;
            if (++oy == g->oh) oy = 0, b++;
        }
    }
}

/* The adjoint of im2col: adds each column entry back onto the input it came from. */
static void col2im_add(const cs_conv_geom *g, const float *col, size_t r0, size_t nrows, float *dx)
{
    const int k = g->k, ic = g->ic, kic = k * ic;
    const size_t kdim = (size_t)k * kic, per_image = (size_t)g->oh * g->ow;
    int b = (int)(r0 / per_image), oy = (int)(r0 % per_image) / g->ow, ox = (int)(r0 % per_image) % g->ow;
    for (size_t r = 0; r < nrows; r++) {
        const float *src = col + r * kdim;
        float *img = dx + (size_t)b * g->ih * g->iw * ic;
        const int ix0 = ox * g->stride - g->pad_l, inside_x = ix0 >= 0 && ix0 + k <= g->iw;
        for (int ky = 0; ky < k; ky++, src += kic) {
            int iy = oy * g->stride + ky - g->pad_t;
            if (iy < 0 || iy >= g->ih) continue;
            float *line = img + (size_t)iy * g->iw * ic;
            if (inside_x) { /* a kernel row is k*ic consecutive floats of the input */
                float *d = line + (size_t)ix0 * ic;
                for (int j = 0; j < kic; j++) d[j] += src[j];
                continue;
            }
            for (int kx = 0; kx < k; kx++) {
                int ix = ix0 + kx;
                if (ix < 0 || ix >= g->iw) continue;
                for (int c = 0; c < ic; c++) line[(size_t)ix * ic + c] += src[kx * ic + c];
            }
        }
        if (++ox == g->ow) {
            ox = 0;
            if (++oy == g->oh) oy = 0, b++;
        }
    }
}

/* With a short receptive field (the first layer: 3x3 over 1 or 3 channels) sgemm's
 * packing costs more than the product itself, so those layers multiply the im2col
 * rows by the kernel directly, vectorised over the output channels (AVX2+FMA where the
 * CPU has them: simd.h). */
#define SMALL_K 32
/* Rows of a direct-path chunk: about 64 KB of output, read back from L2 by the
 * statistics of a batch norm above. */
#define STATS_CHUNK_FLOATS ((size_t)16 * 1024)

/* y[r] += col[r] . w for `rows` rows of kdim values. Outputs are taken 32 at a time
 * so that their sums stay in registers across the kdim taps. */
CS_CLONES CS_CONTRACT static void small_k_forward(size_t rows, int kdim, int oc, const float *restrict col,
                                                  const float *restrict w, float *restrict y)
{
    for (size_t r = 0; r < rows; r++) {
        const float *c = col + r * kdim;
        float *yr = y + r * oc;
        int o0 = 0;
        for (; o0 + 32 <= oc; o0 += 32) {
            float acc[32];
            for (int o = 0; o < 32; o++) acc[o] = yr[o0 + o];
            for (int j = 0; j < kdim; j++) {
                const float cj = c[j], *wj = w + (size_t)j * oc + o0;
                for (int o = 0; o < 32; o++) acc[o] += cj * wj[o];
            }
            for (int o = 0; o < 32; o++) yr[o0 + o] = acc[o];
        }
        for (int j = 0; j < kdim && o0 < oc; j++)
            for (int o = o0; o < oc; o++) yr[o] += c[j] * w[(size_t)j * oc + o];
    }
}

/* The same product without im2col, for 'valid' stride-1 layers (the Fashion-MNIST
 * network's first): each output row reads its taps straight from the input at fixed
 * offsets, and the bias starts the sums. Six output positions are computed at once:
 * one position alone is a chain of dependent multiply-adds per register and waits on
 * their latency (4x slower, measured); six give the FMA units independent work, and
 * their 6 x 32 sums still fit in AVX-512's registers. The sums are fused multiply-adds
 * in tap order whatever the optimisation level, the bits that the first-conv block's
 * AVX-512 kernel (conv_block.c) reproduces; on a CPU without FMA (before AVX2) fmaf is
 * a library call, slower but the same values. */
#define DIRECT_ROWS 6
CS_WIDE_CLONES CS_CONTRACT static void small_k_forward_direct(const cs_conv_geom *g, size_t r0, size_t rows,
                                                              const float *restrict x, const float *restrict w,
                                                              const float *restrict bias, float *restrict y)
{
    const int k = g->k, ic = g->ic, oc = g->oc, kdim = k * k * ic;
    int off[SMALL_K];
    cs_conv_tap_offsets(g, off);
    for (size_t r = 0; r < rows;) {
        /* The input corner of each of the next (up to) DIRECT_ROWS positions. A short
         * last group repeats its last position (sums not stored): a band of 52 rows left
         * to the scalar loop below cost as much as the other 48. */
        const int np = rows - r < DIRECT_ROWS ? (int)(rows - r) : DIRECT_ROWS;
        size_t off_p[DIRECT_ROWS];
        cs_conv_corners(g, r0 + r, (size_t)np, DIRECT_ROWS, off_p);
        const float *base[DIRECT_ROWS];
        for (int p = 0; p < DIRECT_ROWS; p++) base[p] = x + off_p[p];
        float *yr = y + r * oc; /* y holds rows r0.. */
        int o0 = 0;
        for (; o0 + 32 <= oc; o0 += 32) {
            float acc[DIRECT_ROWS][32];
            for (int p = 0; p < DIRECT_ROWS; p++)
                for (int o = 0; o < 32; o++) acc[p][o] = bias[o0 + o];
            for (int j = 0; j < kdim; j++) {
                const float *wj = w + (size_t)j * oc + o0;
                float xv[DIRECT_ROWS];
                for (int p = 0; p < DIRECT_ROWS; p++) xv[p] = base[p][off[j]];
                for (int p = 0; p < DIRECT_ROWS; p++) /* fused, whatever the optimisation level: */
                    for (int o = 0; o < 32; o++) acc[p][o] = fmaf(xv[p], wj[o], acc[p][o]);
        }
            for (int p = 0; p < np; p++) memcpy(yr + (size_t)p * oc + o0, acc[p], sizeof acc[p]);
        }
        for (int p = 0; p < np; p++) /* channels past a multiple of 32 */
            for (int o = o0; o < oc; o++) {
                float acc = bias[o];
                for (int j = 0; j < kdim; j++) acc = fmaf(base[p][off[j]], w[(size_t)j * oc + o], acc);
                yr[(size_t)p * oc + o] = acc;
            }
        r += np;
    }
}

/* dw += col^T dy over `rows` rows. For each tap and 32 outputs the sum over a block
 * of rows stays in registers, and the block of dy stays in L1 across the taps. */
CS_CLONES CS_CONTRACT static void small_k_weight_grad(size_t rows, int kdim, int oc, const float *restrict col,
                                                      const float *restrict dy, float *restrict dw)
{
    enum { BLOCK = 64 };
    for (size_t r0 = 0; r0 < rows; r0 += BLOCK) {
        const size_t r1 = r0 + BLOCK < rows ? r0 + BLOCK : rows;
        for (int j = 0; j < kdim; j++) {
            float *dwj = dw + (size_t)j * oc;
            int o0 = 0;
            for (; o0 + 32 <= oc; o0 += 32) {
                float acc[32] = {0};
                for (size_t r = r0; r < r1; r++) {
                    const float cj = col[r * kdim + j], *d = dy + r * oc + o0;
                    for (int o = 0; o < 32; o++) acc[o] += cj * d[o];
                }
                for (int o = 0; o < 32; o++) dwj[o0 + o] += acc[o];
            }
            for (size_t r = r0; r < r1 && o0 < oc; r++)
                for (int o = o0; o < oc; o++) dwj[o] += col[r * kdim + j] * dy[r * oc + o];
        }
    }
}

static atomic_int im2col_forced;

void cs_conv_force_im2col(int on)
{
    atomic_store(&im2col_forced, on);
}

static int direct_ok(const cs_conv_geom *g)
{
    return !atomic_load(&im2col_forced) && g->k * g->k * g->ic <= SMALL_K && cs_conv_valid_stride1(g);
}

/* Longer receptive fields go to the AVX-512 kernels where they apply. */
static int wide_ok(const cs_conv_geom *g)
{
    return !atomic_load(&im2col_forced) && !direct_ok(g) && cs_conv_avx512_ok(g);
}

int cs_conv_uses_im2col(const cs_conv_geom *g)
{
    return !direct_ok(g) && !wide_ok(g);
}

/* dw += (the taps of x)^T dy and db += the sum of dy over `rows` output rows, for the
 * layers small_k_forward_direct computes, without im2col: the sums of nine taps for
 * 32 outputs stay in registers (AVX-512) over a block of rows, and each row's dy is
 * loaded once for all of them. Sums go to dw/db once per block, which also bounds how
 * many float additions a partial sum sees. */
#define WGRAD_TAPS 9
#define WGRAD_BLOCK 128
CS_WIDE_CLONES CS_CONTRACT static void small_k_weight_grad_direct(const cs_conv_geom *g, size_t r0, size_t rows,
                                                                  const float *restrict x, const float *restrict dy,
                                                                  float *restrict dw, float *restrict db)
{
    const int k = g->k, ic = g->ic, oc = g->oc, kdim = k * k * ic;
    int off[SMALL_K + WGRAD_TAPS] = {0}; /* past kdim: 0, a valid tap whose sums are dropped */
    cs_conv_tap_offsets(g, off);
    size_t off_r[WGRAD_BLOCK];
    const float *base[WGRAD_BLOCK];
    for (size_t rb = 0; rb < rows; rb += WGRAD_BLOCK) {
        const size_t n = rows - rb < WGRAD_BLOCK ? rows - rb : WGRAD_BLOCK;
        cs_conv_corners(g, r0 + rb, n, n, off_r);
        for (size_t r = 0; r < n; r++) base[r] = x + off_r[r];
        const float *dyb = dy + rb * oc;
        if (db)
            for (size_t r = 0; r < n; r++)
                for (int o = 0; o < oc; o++) db[o] += dyb[r * oc + o];
        for (int j0 = 0; j0 < kdim; j0 += WGRAD_TAPS) {
            const int nj = kdim - j0 < WGRAD_TAPS ? kdim - j0 : WGRAD_TAPS;
            int o0 = 0;
            for (; o0 + 32 <= oc; o0 += 32) {
                float acc[WGRAD_TAPS][32] = {{0}};
                for (size_t r = 0; r < n; r++) {
                    const float *d = dyb + r * oc + o0;
                    for (int t = 0; t < WGRAD_TAPS; t++) {
                        const float xv = base[r][off[j0 + t]];
                        for (int o = 0; o < 32; o++) acc[t][o] += xv * d[o];
                    }
                }
                for (int t = 0; t < nj; t++)
                    for (int o = 0; o < 32; o++) dw[(size_t)(j0 + t) * oc + o0 + o] += acc[t][o];
            }
            for (int t = 0; t < nj; t++) /* channels past a multiple of 32 */
                for (int o = o0; o < oc; o++) {
                    float acc = 0;
                    for (size_t r = 0; r < n; r++) acc += base[r][off[j0 + t]] * dyb[r * oc + o];
                    dw[(size_t)(j0 + t) * oc + o] += acc;
                }
        }
    }
}

typedef struct {
    const cs_conv_geom *g;
    const float *x, *w, *b, *dy;
    const cs_rows_source *src; /* backward: dy from here instead of from dy */
    cs_bn_stats *stats;        /* forward: the output's batch statistics, when wanted */
    float *y, *dx, *dw, *db;
    const cs_scratch *s;
    size_t chunk;
} conv_job;


void cs_conv_forward_rows(const cs_conv_geom *g, const float *x, const float *w, const float *b, size_t r0, size_t rows,
                          float *y, float *col)
{
    const int kdim = g->k * g->k * g->ic, oc = g->oc;
    if (direct_ok(g)) {
        small_k_forward_direct(g, r0, rows, x, w, b, y);
        return;
    }
    if (wide_ok(g)) {
        cs_conv_avx512_forward(g, r0, rows, x, w, b, y);
        return;
    }
    for (size_t r = 0; r < rows; r++) memcpy(y + r * oc, b, (size_t)oc * sizeof(float));
    im2col(g, x, r0, rows, col);
    if (kdim <= SMALL_K) small_k_forward(rows, kdim, oc, col, w, y);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, oc, kdim, 1.0f, col, kdim, w, oc, 1.0f, y,
                    oc);
}

static void forward_range(void *ctx, long begin, long end, int worker)
{
    const conv_job *j = ctx;
    const cs_conv_geom *g = j->g;
    /* The direct path needs no scratch, only chunks small enough that the statistics
     * read them back from cache. */
    const size_t chunk =
        cs_conv_uses_im2col(g) ? j->chunk : (STATS_CHUNK_FLOATS / g->oc / DIRECT_ROWS + 1) * DIRECT_ROWS;
    for (size_t r0 = (size_t)begin; r0 < (size_t)end; r0 += chunk) {
        size_t rows = (size_t)end - r0 < chunk ? (size_t)end - r0 : chunk;
        float *y = j->y + r0 * g->oc;
        cs_conv_forward_rows(g, j->x, j->w, j->b, r0, rows, y, j->s->col[worker]);
        if (j->stats) cs_bn_stats_add_rows(j->stats, worker, y, rows);
    }
}

/* Rows per chunk: what fits the scratch, and no more than an even share per worker
 * (but not so few that waking a worker costs more than the rows). */
static size_t chunk_rows(const cs_conv_geom *g, const cs_scratch *s)
{
    size_t total = (size_t)g->n * g->oh * g->ow, share = (total + s->workers - 1) / s->workers;
    size_t least = (size_t)cs_parallel_grain((long)g->k * g->k * g->ic * g->oc / 16, 1);
    size_t chunk = cs_conv_chunk_rows(g, s->col_floats);
    if (share < least) share = least;
    if (chunk >= share) return share;
    /* Equal chunks, so that each worker's share is a whole number of them (ranges
     * fall on multiples of the chunk: 29127-row chunks split 86528 rows 1:2). */
    size_t per = (share + chunk - 1) / chunk;
    return (share + per - 1) / per;
}

void cs_conv_forward_stats(const cs_conv_geom *g, const float *x, const float *w, const float *b, float *y,
                           const cs_scratch *s, cs_bn_stats *stats)
{
    conv_job j = {.g = g, .x = x, .w = w, .b = b, .y = y, .s = s, .stats = stats, .chunk = chunk_rows(g, s)};
    cs_parallel_run((long)g->n * g->oh * g->ow, (long)j.chunk, s->workers, forward_range, &j);
}

void cs_conv_forward(const cs_conv_geom *g, const float *x, const float *w, const float *b, float *y,
                     const cs_scratch *s)
{
    cs_conv_forward_stats(g, x, w, b, y, s, NULL);
}

/* One chunk of the backward: adds into dw/db and dx (any may be NULL). */
static void backward_rows(const cs_conv_geom *g, const float *x, const float *w, const float *dy, size_t r0,
                           size_t rows, float *dx, float *dw, float *db, float *col, int wide)
{
    const int kdim = g->k * g->k * g->ic, oc = g->oc;
    if (wide) {
        if (db)
            for (size_t r = 0; r < rows; r++)
                for (int o = 0; o < oc; o++) db[o] += dy[r * oc + o];
        if (dw) cs_conv_avx512_weight_grad(g, r0, rows, x, dy, dw);
        if (dx) cs_conv_avx512_input_grad(g, r0, rows, col, dy, dx); /* col: the transposed kernel */
        return;
    }
    const int direct = dw && direct_ok(g);
    if (direct) small_k_weight_grad_direct(g, r0, rows, x, dy, dw, db);
    else if (db)
        for (size_t r = 0; r < rows; r++)
            for (int o = 0; o < oc; o++) db[o] += dy[r * oc + o];
    if (dw && !direct) {
        im2col(g, x, r0, rows, col);
        if (kdim <= SMALL_K) small_k_weight_grad(rows, kdim, oc, col, dy, dw);
        else
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, kdim, oc, (int)rows, 1.0f, col, kdim, dy, oc, 1.0f,
                        dw, oc);
    }
    if (dx) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, kdim, oc, 1.0f, dy, oc, w, oc, 0.0f, col,
                    kdim);
        col2im_add(g, col, r0, rows, dx);
    }
}

static void backward_range(void *ctx, long begin, long end, int worker)
{
    const conv_job *j = ctx;
    const cs_conv_geom *g = j->g;
    const int kdim = g->k * g->k * g->ic, oc = g->oc;
    float *dw = j->dw, *db = j->db;
    if (worker > 0 && dw) {
        /* Other workers' weight gradients go to their own (zeroed) area, added up afterwards. */
        dw = j->s->part[worker];
        db = dw + (size_t)kdim * oc;
    }
    if (j->dx) { /* this range's own images (ranges are whole images), zeroed in parallel */
        const size_t per_image = (size_t)g->oh * g->ow, in_image = (size_t)g->ih * g->iw * g->ic;
        memset(j->dx + (size_t)begin / per_image * in_image, 0,
               ((size_t)end - (size_t)begin) / per_image * in_image * sizeof(float));
    }
    /* The input gradient's transposed kernel goes to the worker's im2col scratch,
     * which the direct kernels leave unused. */
    const int wide = wide_ok(g) && j->s->col_floats >= (size_t)kdim * oc;
    if (wide && j->dx) cs_conv_avx512_transpose(g, j->w, j->s->col[worker]);
    for (size_t r0 = (size_t)begin; r0 < (size_t)end; r0 += j->chunk) {
        size_t rows = (size_t)end - r0 < j->chunk ? (size_t)end - r0 : j->chunk;
        const float *dyc = j->dy + r0 * oc;
        if (j->src) {
            j->src->fill(j->src->ctx, r0, rows, j->s->dy[worker]);
            dyc = j->s->dy[worker];
        }
        backward_rows(g, j->x, j->w, dyc, r0, rows, j->dx, dw, db, j->s->col[worker], wide);
    }
}

static void backward(const cs_conv_geom *g, const float *x, const float *w, const float *dy,
                     const cs_rows_source *src, float *dx, float *dw, float *db, const cs_scratch *s)
{
    const size_t per_image = (size_t)g->oh * g->ow, kdim = (size_t)g->k * g->k * g->ic;
    conv_job j = {.g = g, .x = x, .w = w, .dy = dy, .src = src, .dx = dx, .dw = dw, .db = db, .s = s};
    /* Ranges are whole images, so no two workers add into the same part of dx (each
     * zeroes its own part first). */
    int parts = s->workers;
    if (dw && s->part_floats < kdim * g->oc + g->oc) parts = 1;
    if (g->n < 2 || (long)g->n * per_image * kdim * g->oc < 16 * CS_PARALLEL_MIN_WORK) parts = 1;
    /* Zeroed here, not in the workers: a range may end up run by the caller alone. */
    if (dw)
        for (int p = 1; p < parts; p++) memset(s->part[p], 0, (kdim * g->oc + g->oc) * sizeof(float));
    cs_conv_geom one = *g;
    one.n = (g->n + parts - 1) / parts;
    j.chunk = cs_conv_chunk_rows(&one, s->col_floats);
    /* A produced dy is used while it is in cache: chunks no larger than its buffer. */
    if (src && j.chunk > s->dy_floats / g->oc) j.chunk = s->dy_floats / g->oc ? s->dy_floats / g->oc : 1;
    cs_parallel_run((long)(g->n * per_image), (long)per_image, parts, backward_range, &j);
    if (dw)
        for (int p = 1; p < parts; p++) {
            const float *pw = s->part[p];
            for (size_t i = 0; i < kdim * g->oc; i++) dw[i] += pw[i];
            for (int o = 0; o < g->oc; o++) db[o] += pw[kdim * g->oc + o];
        }
}

void cs_conv_backward(const cs_conv_geom *g, const float *x, const float *w, const float *dy, float *dx, float *dw,
                      float *db, const cs_scratch *s)
{
    backward(g, x, w, dy, NULL, dx, dw, db, s);
}

void cs_conv_backward_from(const cs_conv_geom *g, const float *x, const float *w, const cs_rows_source *dy, float *dx,
                           float *dw, float *db, const cs_scratch *s)
{
    backward(g, x, w, NULL, dy, dx, dw, db, s);
}
