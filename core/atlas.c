/*
 * atlas.c - the images that excite a channel most, the patch behind each, and the
 * feature visualisation of the channel (see atlas.h).
 *
 * Feature visualisation, one step: parameters -> (inverse DFT, 1/f scaled) -> colour
 * decorrelation -> sigmoid into the input's range -> a random affine transform (shift,
 * scale, rotation; bilinear) -> the model up to the node; the channel's mean is seeded
 * at the node (cs_exec_backward_from) and its gradient taken back through each of
 * those maps in turn (their adjoints written out here), then Adam climbs it.
 */
#include "atlas.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "preprocess.h"
#include "rng.h"

static void dims_of(const cs_model *m, int node, int *h, int *w, int *c)
{
    cs_shape s = m->layers[node].out;
    *h = s.h, *w = s.w, *c = s.c;
}

int cs_channel_means(cs_exec *e, const float *inputs, int n, int node, int c, float *out)
{
    const cs_model *m = e->model;
    int h, w, k;
    dims_of(m, node, &h, &w, &k);
    const size_t in = cs_shape_size(m->input), per = (size_t)h * w * k;
    for (int s = 0; s < n; s += e->max_batch) {
        int b = n - s < e->max_batch ? n - s : e->max_batch;
        if (cs_exec_forward_upto(e, inputs + (size_t)s * in, b, node) != 0) return -1;
        for (int i = 0; i < b; i++) {
            double sum = 0;
            const float *a = e->act[node] + (size_t)i * per;
            for (int p = 0; p < h * w; p++) sum += a[(size_t)p * k + c];
            out[s + i] = (float)(sum / (h * w));
        }
    }
    return 0;
}

/* ---- top images ---- */

int cs_atlas_patch(cs_exec *e, const float *input, int node, int y, int x, int c, int box[4])
{
    const cs_model *m = e->model;
    int h, w, k;
    dims_of(m, node, &h, &w, &k);
    if (!e->input_grad || y < 0 || y >= h || x < 0 || x >= w || c < 0 || c >= k) return -1;
    if (cs_exec_forward_upto(e, input, 1, node) != 0) return -1;
    float *g = cs_exec_node_grad(e, node);
    if (!g) return -1;
    memset(g, 0, (size_t)h * w * k * sizeof *g);
    g[((size_t)y * w + x) * k + c] = 1;
    if (cs_exec_backward_from(e, node, -1) != 0) return -1;
    const cs_shape is = m->input;
    int y0 = is.h, x0 = is.w, y1 = 0, x1 = 0;
    for (int yy = 0; yy < is.h; yy++)
        for (int xx = 0; xx < is.w; xx++)
            for (int ch = 0; ch < is.c; ch++)
                if (e->input_grad[((size_t)yy * is.w + xx) * is.c + ch] != 0) {
                    if (yy < y0) y0 = yy;
                    if (xx < x0) x0 = xx;
                    if (yy + 1 > y1) y1 = yy + 1;
                    if (xx + 1 > x1) x1 = xx + 1;
                }
    if (y1 == 0) y0 = 0, x0 = 0, y1 = is.h, x1 = is.w;
    box[0] = y0, box[1] = x0, box[2] = y1, box[3] = x1;
    return 0;
}

static void keep_best(cs_atlas_hit *list, int top, const cs_atlas_hit *h)
{
    if (h->value <= list[top - 1].value) return;
    int at = top - 1;
    while (at > 0 && list[at - 1].value < h->value) {
        list[at] = list[at - 1];
        at--;
    }
    list[at] = *h;
}

int cs_atlas_top(const cs_model *m, const cs_dataset *d, int images, int node, int top, cs_atlas_hit *hits,
                 cs_atlas_progress_fn progress, void *user, char *err, size_t errlen)
{
    if (m->input.h != d->h || m->input.w != d->w || m->input.c != 1 || m->n_extra_inputs) {
        snprintf(err, errlen, "the model takes %dx%dx%d inputs, not the data set's %dx%d grayscale images", m->input.h,
                 m->input.w, m->input.c, d->h, d->w);
        return -1;
    }
    if (node < 0 || node >= m->n_layers || top < 1) {
        snprintf(err, errlen, "no node %d, or no images asked for", node);
        return -1;
    }
    int h, w, k;
    dims_of(m, node, &h, &w, &k);
    const int n = images > 0 && images < d->n ? images : d->n, bs = n < 100 ? n : 100;
    const size_t px = (size_t)d->h * d->w, per = (size_t)h * w * k;
    for (int i = 0; i < k * top; i++) hits[i] = (cs_atlas_hit){.value = -1e30f, .image = -1};
    cs_exec *e = cs_exec_new(m, bs), *one = cs_exec_new(m, 1);
    float *x = malloc((size_t)bs * px * sizeof *x);
    int rc = -1;
    if (!e || !one || !x || cs_exec_enable_input_grad(one) != 0) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    for (int s = 0; s < n; s += bs) {
        int b = n - s < bs ? n - s : bs;
        /* The images as the model takes them (its own pipeline's values). */
        for (int i = 0; i < b; i++)
            cs_preprocess_pixels(&m->preprocess, d->images + (size_t)(s + i) * px, px, x + (size_t)i * px);
        if (cs_exec_forward_upto(e, x, b, node) != 0) {
            snprintf(err, errlen, "out of memory");
            goto done;
        }
        for (int i = 0; i < b; i++)
            for (int c = 0; c < k; c++) {
                const float *a = e->act[node] + (size_t)i * per + c;
                cs_atlas_hit best = {.value = a[0], .image = s + i};
                double sum = 0;
                for (int p = 0; p < h * w; p++) {
                    float v = a[(size_t)p * k];
                    sum += v;
                    if (v > best.value) best.value = v, best.y = p / w, best.x = p % w;
                }
                best.mean = (float)(sum / (h * w));
                keep_best(hits + (size_t)c * top, top, &best);
            }
        if (progress && progress(user, s + b, n + (long)k * top)) {
            rc = 1;
            goto done;
        }
    }
    /* The patch behind each kept value. */
    for (int c = 0; c < k; c++)
        for (int r = 0; r < top; r++) {
            cs_atlas_hit *hh = &hits[(size_t)c * top + r];
            if (hh->image < 0) continue;
            cs_preprocess_pixels(&m->preprocess, d->images + (size_t)hh->image * px, px, x);
            if (cs_atlas_patch(one, x, node, hh->y, hh->x, c, hh->box) != 0) {
                snprintf(err, errlen, "out of memory");
                goto done;
            }
        }
    rc = 0;
done:
    cs_exec_free(e);
    cs_exec_free(one);
    free(x);
    return rc;
}

/* ---- feature visualisation ---- */

void cs_featvis_config_default(cs_featvis_config *c, const cs_model *m)
{
    memset(c, 0, sizeof *c);
    c->steps = 256;
    c->lr = 0.05f;
    c->fourier = 1;
    c->jitter = 2;
    c->scale = 0.1f;
    c->rotate = 10;
    c->seed = 1;
    const int caffe = !strcmp(m->arch, "vgg16");
    const float mean[3] = {CS_CAFFE_MEAN_B, CS_CAFFE_MEAN_G, CS_CAFFE_MEAN_R};
    for (int k = 0; k < 3; k++) {
        c->lo[k] = caffe ? -mean[k] : 0;
        c->hi[k] = caffe ? 255 - mean[k] : 1;
    }
}

/* Lucid's square root of ImageNet's colour correlation (RGB), over its largest column
 * norm: decorrelated parameters become correlated colours. */
static const double k_color[3][3] = {{0.26, 0.09, 0.02}, {0.27, 0.00, -0.05}, {0.27, -0.09, 0.03}};
#define COLOR_NORM 0.4619524

typedef struct {
    int h, w, c;
    double *cy, *sy, *cx, *sx; /* cos and sin of 2 pi u y / h and 2 pi v x / w, [h*h], [w*w] */
    double *scale;             /* [h*w] 1 / max(frequency, 1 / max(h, w)) */
    double *gre, *gim;         /* [h*w] work: the half-transformed spectrum */
} dft;

static int dft_init(dft *f, int h, int w, int c)
{
    memset(f, 0, sizeof *f);
    f->h = h, f->w = w, f->c = c;
    f->cy = malloc(sizeof(double) * h * h), f->sy = malloc(sizeof(double) * h * h);
    f->cx = malloc(sizeof(double) * w * w), f->sx = malloc(sizeof(double) * w * w);
    f->scale = malloc(sizeof(double) * h * w);
    f->gre = malloc(sizeof(double) * h * w), f->gim = malloc(sizeof(double) * h * w);
    if (!f->cy || !f->sy || !f->cx || !f->sx || !f->scale || !f->gre || !f->gim) return -1;
    for (int u = 0; u < h; u++)
        for (int y = 0; y < h; y++) f->cy[u * h + y] = cos(2 * M_PI * u * y / h), f->sy[u * h + y] = sin(2 * M_PI * u * y / h);
    for (int v = 0; v < w; v++)
        for (int x = 0; x < w; x++) f->cx[v * w + x] = cos(2 * M_PI * v * x / w), f->sx[v * w + x] = sin(2 * M_PI * v * x / w);
    const double fmin = 1.0 / (h > w ? h : w);
    for (int u = 0; u < h; u++)
        for (int v = 0; v < w; v++) {
            double fy = (double)(u < h - u ? u : h - u) / h, fx = (double)(v < w - v ? v : w - v) / w;
            double fr = sqrt(fy * fy + fx * fx);
            f->scale[u * w + v] = 1 / (fr > fmin ? fr : fmin) / sqrt((double)h * w);
        }
    return 0;
}

static void dft_free(dft *f)
{
    free(f->cy), free(f->sy), free(f->cx), free(f->sx), free(f->scale), free(f->gre), free(f->gim);
}

/* t (h, w, c) = Re IDFT(scale * (re + i im)) per channel; re, im (c, h, w). */
static void dft_image(dft *f, const double *re, const double *im, double *t)
{
    const int h = f->h, w = f->w;
    for (int ch = 0; ch < f->c; ch++) {
        const double *R = re + (size_t)ch * h * w, *I = im + (size_t)ch * h * w;
        for (int u = 0; u < h; u++)
            for (int x = 0; x < w; x++) {
                double gr = 0, gi = 0;
                for (int v = 0; v < w; v++) {
                    double s = f->scale[u * w + v], c = f->cx[v * w + x], sn = f->sx[v * w + x];
                    gr += s * (R[u * w + v] * c - I[u * w + v] * sn);
                    gi += s * (R[u * w + v] * sn + I[u * w + v] * c);
                }
                f->gre[u * w + x] = gr, f->gim[u * w + x] = gi;
            }
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                double s = 0;
                for (int u = 0; u < h; u++) s += f->gre[u * w + x] * f->cy[u * h + y] - f->gim[u * w + x] * f->sy[u * h + y];
                t[((size_t)y * w + x) * f->c + ch] = s;
            }
    }
}

/* The adjoint: d/d(re, im) from d/dt. */
static void dft_adjoint(dft *f, const double *gt, double *gre_out, double *gim_out)
{
    const int h = f->h, w = f->w;
    for (int ch = 0; ch < f->c; ch++) {
        for (int u = 0; u < h; u++)
            for (int x = 0; x < w; x++) {
                double a = 0, b = 0;
                for (int y = 0; y < h; y++) {
                    double g = gt[((size_t)y * w + x) * f->c + ch];
                    a += g * f->cy[u * h + y];
                    b -= g * f->sy[u * h + y];
                }
                f->gre[u * w + x] = a, f->gim[u * w + x] = b;
            }
        double *R = gre_out + (size_t)ch * h * w, *I = gim_out + (size_t)ch * h * w;
        for (int u = 0; u < h; u++)
            for (int v = 0; v < w; v++) {
                double a = 0, b = 0, s = f->scale[u * w + v];
                for (int x = 0; x < w; x++) {
                    double c = f->cx[v * w + x], sn = f->sx[v * w + x];
                    a += f->gre[u * w + x] * c + f->gim[u * w + x] * sn;
                    b += -f->gre[u * w + x] * sn + f->gim[u * w + x] * c;
                }
                R[u * w + v] = s * a, I[u * w + v] = s * b;
            }
    }
}

/* An affine resampling: output (y, x) reads the source at a shifted, scaled, rotated
 * place, bilinearly; corners outside read `fill`. */
typedef struct {
    double a, b, c, d, ty, tx; /* src_y = a y + b x + ty, src_x = c y + d x + tx */
} affine;

static affine random_affine(cs_rng *r, const cs_featvis_config *cfg, int h, int w)
{
    double s = 1 + cfg->scale * (2 * cs_rng_uniform(r) - 1);
    double th = cfg->rotate * M_PI / 180 * (2 * cs_rng_uniform(r) - 1);
    double dy = cfg->jitter * (2 * cs_rng_uniform(r) - 1), dx = cfg->jitter * (2 * cs_rng_uniform(r) - 1);
    double cy = (h - 1) / 2.0, cx = (w - 1) / 2.0, co = cos(th) / s, si = sin(th) / s;
    affine t = {co, -si, si, co, 0, 0};
    t.ty = cy - (co * cy - si * cx) + dy;
    t.tx = cx - (si * cy + co * cx) + dx;
    return t;
}

/* forward (adj 0): out = sample(src); adjoint (adj 1): gsrc += sample^T(gout). */
static void resample(const affine *t, int h, int w, int c, const double *src, double fill, float *out,
                     const float *gout, double *gsrc, int adj)
{
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            double sy = t->a * y + t->b * x + t->ty, sx = t->c * y + t->d * x + t->tx;
            int y0 = (int)floor(sy), x0 = (int)floor(sx);
            double fy = sy - y0, fx = sx - x0;
            const double wts[4] = {(1 - fy) * (1 - fx), (1 - fy) * fx, fy * (1 - fx), fy * fx};
            const int ys[4] = {y0, y0, y0 + 1, y0 + 1}, xs[4] = {x0, x0 + 1, x0, x0 + 1};
            for (int ch = 0; ch < c; ch++) {
                const size_t o = ((size_t)y * w + x) * c + ch;
                double v = 0;
                for (int q = 0; q < 4; q++) {
                    int in = ys[q] >= 0 && ys[q] < h && xs[q] >= 0 && xs[q] < w;
                    size_t i = ((size_t)ys[q] * w + xs[q]) * c + ch;
                    if (adj) {
                        if (in) gsrc[i] += wts[q] * gout[o];
                    } else {
                        v += wts[q] * (in ? src[i] : fill);
                    }
                }
                if (!adj) out[o] = (float)v;
            }
        }
}

int cs_featvis(const cs_model *m, int node, int c, const cs_featvis_config *cfg, cs_atlas_progress_fn progress,
               void *user, float *image, float *excitation, char *err, size_t errlen)
{
    int h, w, k;
    if (node < 0 || node >= m->n_layers || m->n_extra_inputs) {
        snprintf(err, errlen, "no node %d", node);
        return -1;
    }
    dims_of(m, node, &h, &w, &k);
    if (c < 0 || c >= k) {
        snprintf(err, errlen, "node '%s' has channels 0 to %d, not %d", m->layers[node].name, k - 1, c);
        return -1;
    }
    const int H = m->input.h, W = m->input.w, C = m->input.c;
    if (C != 1 && C != 3) {
        snprintf(err, errlen, "feature visualisation draws gray or RGB inputs, not %d channels", C);
        return -1;
    }
    const size_t n_px = (size_t)H * W * C;
    const size_t n_par = cfg->fourier ? 2 * n_px : n_px;
    const int bgr = !strcmp(m->arch, "vgg16");
    double *par = calloc(n_par, sizeof *par), *gpar = calloc(n_par, sizeof *gpar);
    double *am = calloc(n_par, sizeof *am), *av = calloc(n_par, sizeof *av);
    double *t = malloc(n_px * sizeof *t), *u = malloc(n_px * sizeof *u), *v = malloc(n_px * sizeof *v);
    double *gv = malloc(n_px * sizeof *gv), *gt = malloc(n_px * sizeof *gt);
    float *xin = malloc(n_px * sizeof *xin);
    cs_exec *e = cs_exec_new(m, 1);
    dft f = {0};
    int rc = -1;
    if (!par || !gpar || !am || !av || !t || !u || !v || !gv || !gt || !xin || !e || cs_exec_enable_input_grad(e) != 0 ||
        (cfg->fourier && dft_init(&f, H, W, C) != 0)) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    cs_rng r;
    cs_rng_seed(&r, cfg->seed);
    for (size_t i = 0; i < n_par; i++) par[i] = 0.01 * cs_rng_normal(&r);
    double fill = 0;
    for (int ch = 0; ch < C; ch++) fill += (cfg->lo[ch] + cfg->hi[ch]) / 2 / C;
    const double b1 = 0.9, b2 = 0.999, eps = 1e-8;
    for (int step = 0; step <= cfg->steps; step++) {
        const int last = step == cfg->steps; /* the final image, measured as it is */
        if (cfg->fourier) dft_image(&f, par, par + n_px, t);
        else
            for (size_t i = 0; i < n_px; i++) t[i] = par[i];
        /* Decorrelated colours (RGB; a caffe model reads them as B, G, R). */
        for (size_t p = 0; p < n_px; p += C) {
            if (C == 3) {
                for (int i = 0; i < 3; i++) {
                    double s = 0;
                    for (int j = 0; j < 3; j++) s += k_color[i][j] / COLOR_NORM * t[p + j];
                    u[p + (bgr ? 2 - i : i)] = s;
                }
            } else {
                u[p] = t[p];
            }
            for (int ch = 0; ch < C; ch++) v[p + ch] = cfg->lo[ch] + (cfg->hi[ch] - cfg->lo[ch]) / (1 + exp(-u[p + ch]));
        }
        if (last) {
            for (size_t i = 0; i < n_px; i++) image[i] = (float)v[i];
            break;
        }
        affine tr = random_affine(&r, cfg, H, W);
        resample(&tr, H, W, C, v, fill, xin, NULL, NULL, 0);
        if (cs_exec_forward_upto(e, xin, 1, node) != 0) {
            snprintf(err, errlen, "out of memory");
            goto done;
        }
        float *g = cs_exec_node_grad(e, node);
        if (!g) {
            snprintf(err, errlen, "out of memory");
            goto done;
        }
        memset(g, 0, (size_t)h * w * k * sizeof *g);
        for (int p = 0; p < h * w; p++) g[(size_t)p * k + c] = 1.0f / (h * w);
        if (cs_exec_backward_from(e, node, -1) != 0) {
            snprintf(err, errlen, "out of memory");
            goto done;
        }
        memset(gv, 0, n_px * sizeof *gv);
        resample(&tr, H, W, C, NULL, 0, NULL, e->input_grad, gv, 1);
        for (size_t p = 0; p < n_px; p += C) {
            double gu[3];
            for (int ch = 0; ch < C; ch++) {
                double s = (v[p + ch] - cfg->lo[ch]) / (cfg->hi[ch] - cfg->lo[ch]);
                gu[ch] = gv[p + ch] * (cfg->hi[ch] - cfg->lo[ch]) * s * (1 - s);
            }
            if (C == 3) {
                for (int j = 0; j < 3; j++) {
                    double s = 0;
                    for (int i = 0; i < 3; i++) s += k_color[i][j] / COLOR_NORM * gu[bgr ? 2 - i : i];
                    gt[p + j] = s;
                }
            } else {
                gt[p] = gu[0];
            }
        }
        if (cfg->fourier) dft_adjoint(&f, gt, gpar, gpar + n_px);
        else
            memcpy(gpar, gt, n_px * sizeof *gpar);
        /* Adam, climbing. */
        const double c1 = 1 - pow(b1, step + 1), c2 = 1 - pow(b2, step + 1);
        for (size_t i = 0; i < n_par; i++) {
            am[i] = b1 * am[i] + (1 - b1) * gpar[i];
            av[i] = b2 * av[i] + (1 - b2) * gpar[i] * gpar[i];
            par[i] += cfg->lr * (am[i] / c1) / (sqrt(av[i] / c2) + eps);
        }
        if (progress && step % 8 == 7 && progress(user, step + 1, cfg->steps)) {
            rc = 1;
            goto done;
        }
    }
    if (cs_channel_means(e, image, 1, node, c, excitation) != 0) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    rc = 0;
done:
    cs_exec_free(e);
    if (cfg->fourier) dft_free(&f);
    free(par), free(gpar), free(am), free(av), free(t), free(u), free(v), free(gv), free(gt), free(xin);
    return rc;
}
