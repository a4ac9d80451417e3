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
    size_t kdim = (size_t)g->k * g->k * g->ic, rows = col_floats / kdim;
    size_t total = (size_t)g->n * g->oh * g->ow;
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

void cs_conv_forward(const cs_conv_geom *g, const float *x, const float *w, const float *b, float *y, float *col,
                     size_t col_floats)
{
    const int kdim = g->k * g->k * g->ic, oc = g->oc;
    const size_t total = (size_t)g->n * g->oh * g->ow, chunk = cs_conv_chunk_rows(g, col_floats);
    for (size_t r0 = 0; r0 < total; r0 += chunk) {
        size_t rows = total - r0 < chunk ? total - r0 : chunk;
        float *yc = y + r0 * oc;
        for (size_t r = 0; r < rows; r++) memcpy(yc + r * oc, b, (size_t)oc * sizeof(float));
        im2col(g, x, r0, rows, col);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, oc, kdim, 1.0f, col, kdim, w, oc, 1.0f,
                    yc, oc);
    }
}

void cs_conv_backward(const cs_conv_geom *g, const float *x, const float *w, const float *dy, float *dx, float *dw,
                      float *db, float *col, size_t col_floats)
{
    const int kdim = g->k * g->k * g->ic, oc = g->oc;
    const size_t total = (size_t)g->n * g->oh * g->ow, chunk = cs_conv_chunk_rows(g, col_floats);
    if (db)
        for (size_t r = 0; r < total; r++)
            for (int o = 0; o < oc; o++) db[o] += dy[r * oc + o];
    if (dx) memset(dx, 0, (size_t)g->n * g->ih * g->iw * g->ic * sizeof(float));
    for (size_t r0 = 0; r0 < total; r0 += chunk) {
        size_t rows = total - r0 < chunk ? total - r0 : chunk;
        const float *dyc = dy + r0 * oc;
        if (dw) {
            im2col(g, x, r0, rows, col);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, kdim, oc, (int)rows, 1.0f, col, kdim, dyc, oc,
                        1.0f, dw, oc);
        }
        if (dx) {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, kdim, oc, 1.0f, dyc, oc, w, oc, 0.0f,
                        col, kdim);
            col2im_add(g, col, r0, rows, dx);
        }
    }
}
