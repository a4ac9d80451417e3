/*
 * conv.c - 2-D convolution through im2col and one cblas_sgemm per chunk.
 *
 * In NHWC with Keras' (kh, kw, in, out) kernels, an im2col row is the receptive field
 * of one output position in (ky, kx, c) order, which is exactly the kernel's row order,
 * so the output block [rows x out] = col [rows x k*k*in] * kernel [k*k*in x out] lands
 * already in NHWC. Rows are processed in chunks that fit the caller's scratch, so the
 * memory a pass needs stays bounded however large the image (VGG16's first layers
 * would otherwise need a 115 MB im2col each).
 */
#include <cblas.h>
#include <string.h>

#include "layers.h"

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
    for (size_t r = 0; r < nrows; r++) {
        size_t row = r0 + r;
        int b = (int)(row / per_image), rem = (int)(row % per_image);
        int oy = rem / g->ow, ox = rem % g->ow;
        float *dst = col + r * kdim;
        const float *img = x + (size_t)b * g->ih * g->iw * ic;
        const int ix0 = ox * g->stride - g->pad_l;
        const int inside_x = ix0 >= 0 && ix0 + k <= g->iw;
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
    }
}

/* The adjoint of im2col: adds each column entry back onto the input it came from. */
static void col2im_add(const cs_conv_geom *g, const float *col, size_t r0, size_t nrows, float *dx)
{
    const int k = g->k, ic = g->ic;
    const size_t kdim = (size_t)k * k * ic, per_image = (size_t)g->oh * g->ow;
    for (size_t r = 0; r < nrows; r++) {
        size_t row = r0 + r;
        int b = (int)(row / per_image), rem = (int)(row % per_image);
        int oy = rem / g->ow, ox = rem % g->ow;
        const float *src = col + r * kdim;
        float *img = dx + (size_t)b * g->ih * g->iw * ic;
        for (int ky = 0; ky < k; ky++) {
            int iy = oy * g->stride + ky - g->pad_t;
            for (int kx = 0; kx < k; kx++, src += ic) {
                int ix = ox * g->stride + kx - g->pad_l;
                if (iy < 0 || iy >= g->ih || ix < 0 || ix >= g->iw) continue;
                float *d = img + ((size_t)iy * g->iw + ix) * ic;
                for (int c = 0; c < ic; c++) d[c] += src[c];
            }
        }
    }
}

typedef struct {
    const cs_conv_geom *g;
    const float *x, *w, *b, *dy;
    float *y, *dx, *dw, *db;
    const cs_scratch *s;
    size_t chunk;
} conv_job;

static void forward_range(void *ctx, long begin, long end, int worker)
{
    const conv_job *j = ctx;
    const cs_conv_geom *g = j->g;
    const int kdim = g->k * g->k * g->ic, oc = g->oc;
    float *col = j->s->col[worker];
    for (size_t r0 = (size_t)begin; r0 < (size_t)end; r0 += j->chunk) {
        size_t rows = (size_t)end - r0 < j->chunk ? (size_t)end - r0 : j->chunk;
        float *yc = j->y + r0 * oc;
        for (size_t r = 0; r < rows; r++) memcpy(yc + r * oc, j->b, (size_t)oc * sizeof(float));
        im2col(g, j->x, r0, rows, col);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, oc, kdim, 1.0f, col, kdim, j->w, oc, 1.0f,
                    yc, oc);
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
    return chunk < share ? chunk : share;
}

void cs_conv_forward(const cs_conv_geom *g, const float *x, const float *w, const float *b, float *y,
                     const cs_scratch *s)
{
    conv_job j = {.g = g, .x = x, .w = w, .b = b, .y = y, .s = s, .chunk = chunk_rows(g, s)};
    cs_parallel_run((long)g->n * g->oh * g->ow, (long)j.chunk, s->workers, forward_range, &j);
}

static void backward_range(void *ctx, long begin, long end, int worker)
{
    const conv_job *j = ctx;
    const cs_conv_geom *g = j->g;
    const int kdim = g->k * g->k * g->ic, oc = g->oc;
    float *col = j->s->col[worker], *dw = j->dw, *db = j->db;
    if (worker > 0 && dw) {
        /* Other workers' weight gradients go to their own (zeroed) area, added up afterwards. */
        dw = j->s->part[worker];
        db = dw + (size_t)kdim * oc;
    }
    for (size_t r0 = (size_t)begin; r0 < (size_t)end; r0 += j->chunk) {
        size_t rows = (size_t)end - r0 < j->chunk ? (size_t)end - r0 : j->chunk;
        const float *dyc = j->dy + r0 * oc;
        if (db)
            for (size_t r = 0; r < rows; r++)
                for (int o = 0; o < oc; o++) db[o] += dyc[r * oc + o];
        if (dw) {
            im2col(g, j->x, r0, rows, col);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, kdim, oc, (int)rows, 1.0f, col, kdim, dyc, oc,
                        1.0f, dw, oc);
        }
        if (j->dx) {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, kdim, oc, 1.0f, dyc, oc, j->w, oc, 0.0f,
                        col, kdim);
            col2im_add(g, col, r0, rows, j->dx);
        }
    }
}

void cs_conv_backward(const cs_conv_geom *g, const float *x, const float *w, const float *dy, float *dx, float *dw,
                      float *db, const cs_scratch *s)
{
    const size_t per_image = (size_t)g->oh * g->ow, kdim = (size_t)g->k * g->k * g->ic;
    conv_job j = {.g = g, .x = x, .w = w, .dy = dy, .dx = dx, .dw = dw, .db = db, .s = s};
    if (dx) memset(dx, 0, (size_t)g->n * g->ih * g->iw * g->ic * sizeof(float));
    /* Ranges are whole images, so no two workers add into the same part of dx. */
    int parts = s->workers;
    if (dw && s->part_floats < kdim * g->oc + g->oc) parts = 1;
    if (g->n < 2 || (long)g->n * per_image * kdim * g->oc < 16 * CS_PARALLEL_MIN_WORK) parts = 1;
    /* Zeroed here, not in the workers: a range may end up run by the caller alone. */
    if (dw)
        for (int p = 1; p < parts; p++) memset(s->part[p], 0, (kdim * g->oc + g->oc) * sizeof(float));
    cs_conv_geom one = *g;
    one.n = (g->n + parts - 1) / parts;
    j.chunk = cs_conv_chunk_rows(&one, s->col_floats);
    cs_parallel_run((long)(g->n * per_image), (long)per_image, parts, backward_range, &j);
    if (dw)
        for (int p = 1; p < parts; p++) {
            const float *pw = s->part[p];
            for (size_t i = 0; i < kdim * g->oc; i++) dw[i] += pw[i];
            for (int o = 0; o < g->oc; o++) db[o] += pw[kdim * g->oc + o];
        }
}
