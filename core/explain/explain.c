/*
 * explain.c - the table of explanation methods, their parameters, and what every
 * method shares: the explainer (the image and its prediction), batched passes, the
 * heat, blurring and resizing.
 */
#include "explain.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "gradcam.h"
#include "image.h"
#include "preprocess.h"

/* CAMs first, then input attributions; the order lists and pages show them in. */
static const cs_explain_method *const METHODS[] = {
    &cs_explain_gradcam,       &cs_explain_gradcampp,     &cs_explain_xgradcam,
    &cs_explain_hirescam,      &cs_explain_layercam,      &cs_explain_scorecam,
    &cs_explain_eigencam,      &cs_explain_ablationcam,   &cs_explain_gradient,
    &cs_explain_gradient_x_input, &cs_explain_smoothgrad, &cs_explain_integrated_gradients,
    &cs_explain_guided_backprop, &cs_explain_guided_gradcam, &cs_explain_occlusion,
};
#define N_METHODS ((int)(sizeof METHODS / sizeof METHODS[0]))

/* What a batched exec may hold, every image's activations and gradients together: 256 MB. */
#define BATCH_BUDGET_FLOATS ((size_t)64 << 20)
#define BATCH_MAX 64

int cs_explain_count(void) { return N_METHODS; }

const cs_explain_method *cs_explain_find(const char *name)
{
    for (int i = 0; i < N_METHODS; i++)
        if (name && strcmp(METHODS[i]->name, name) == 0) return METHODS[i];
    return NULL;
}

const cs_explain_method *cs_explain_method_at(int i) { return i >= 0 && i < N_METHODS ? METHODS[i] : NULL; }

void cs_explain_params_default(cs_explain_params *p)
{
    memset(p, 0, sizeof *p);
    p->layer = -1;
    p->class_index = -1;
    p->score_kind = CS_SCORE_LOGIT;
    p->samples = 25;
    p->noise = 0.15f;
    p->steps = 64;
    p->baseline = CS_BASELINE_BLACK;
    p->seed = 1;
}

int cs_cam_layer(const cs_model *m, int layer, char *err, size_t errlen)
{
    const int top = m->n_layers - 1;
    if (layer < 0) layer = cs_model_last_conv_activation(m);
    if (layer < 0) {
        snprintf(err, errlen, "model %s has no spatial node for a class-activation map", m->arch);
        return -1;
    }
    if (layer >= top) {
        snprintf(err, errlen, "node %d is not a hidden node of %s", layer, m->arch);
        return -1;
    }
    const cs_layer *l = &m->layers[layer];
    if (l->out.h < 2 && l->out.w < 2) {
        snprintf(err, errlen, "layer %s has no spatial output (%dx%dx%d): a class-activation map needs a feature map",
                 l->name, l->out.h, l->out.w, l->out.c);
        return -1;
    }
    return layer;
}

const char *cs_explain_params_check(const cs_model *m, const cs_explain_method *meth, const cs_explain_params *p,
                                    char *err, size_t errlen)
{
    const unsigned use = meth->params;
    const int k = m->layers[m->n_layers - 1].out.c, h = m->input.h, w = m->input.w;
    if ((use & CS_EP_LAYER) && (p->layer < -1 || p->layer >= m->n_layers || cs_cam_layer(m, p->layer, err, errlen) < 0)) {
        if (p->layer < -1 || p->layer >= m->n_layers) snprintf(err, errlen, "layer %d is not a node of the model", p->layer);
        return "layer";
    }
    if (p->class_index < -1 || p->class_index >= k) {
        snprintf(err, errlen, "class must be from 0 to %d, got %d", k - 1, p->class_index);
        return "class";
    }
    if (p->score_kind != CS_SCORE_LOGIT && p->score_kind != CS_SCORE_PROBABILITY) {
        snprintf(err, errlen, "score must be logit or probability");
        return "score";
    }
    if ((use & CS_EP_SAMPLES) && (p->samples < 1 || p->samples > CS_EXPLAIN_MAX_SAMPLES)) {
        snprintf(err, errlen, "samples must be from 1 to %d, got %d", CS_EXPLAIN_MAX_SAMPLES, p->samples);
        return "samples";
    }
    if ((use & CS_EP_NOISE) && !(p->noise >= 0 && p->noise <= CS_EXPLAIN_MAX_NOISE)) {
        snprintf(err, errlen, "noise must be a number from 0 to %g, got %g", (double)CS_EXPLAIN_MAX_NOISE,
                 (double)p->noise);
        return "noise";
    }
    if ((use & CS_EP_STEPS) && (p->steps < 1 || p->steps > CS_EXPLAIN_MAX_STEPS)) {
        snprintf(err, errlen, "steps must be from 1 to %d, got %d", CS_EXPLAIN_MAX_STEPS, p->steps);
        return "steps";
    }
    if ((use & CS_EP_BASELINE) && (p->baseline < 0 || p->baseline >= CS_BASELINE_COUNT)) {
        snprintf(err, errlen, "baseline must be black, blur or noise");
        return "baseline";
    }
    if (!(p->blur_sigma >= 0 && p->blur_sigma <= CS_EXPLAIN_MAX_BLUR)) {
        snprintf(err, errlen, "blur_sigma must be a number from 0 to %g pixels, got %g", (double)CS_EXPLAIN_MAX_BLUR,
                 (double)p->blur_sigma);
        return "blur_sigma";
    }
    if ((use & CS_EP_PATCH) && (p->patch < 0 || p->patch > (h < w ? h : w))) {
        snprintf(err, errlen, "patch must be from 1 to %d (the image is %dx%d), got %d", h < w ? h : w, w, h, p->patch);
        return "patch";
    }
    if ((use & CS_EP_STRIDE) && (p->stride < 0 || p->stride > (h > w ? h : w))) {
        snprintf(err, errlen, "stride must be from 1 to %d (the image is %dx%d), got %d", h > w ? h : w, w, h,
                 p->stride);
        return "stride";
    }
    if (p->batch < 0 || p->batch > CS_EXPLAIN_MAX_BATCH) {
        snprintf(err, errlen, "batch must be from 1 to %d, got %d", CS_EXPLAIN_MAX_BATCH, p->batch);
        return "batch";
    }
    return NULL;
}

/* ---- the explainer ---------------------------------------------------------------- */

int cs_explain_input_range(const cs_model *m, float *black, float *white)
{
    const int c = m->input.c;
    float *buf = malloc(cs_shape_size(m->input) * sizeof(float));
    cs_image img = {0};
    char err[200];
    int rc = -1;
    if (!buf || cs_image_alloc(&img, 1, 1, 3) != CS_IMG_OK) goto out;
    for (int v = 0; v < 2; v++) {
        memset(img.px, v ? 255 : 0, 3);
        if (cs_preprocess_model(m, &img, buf, err, sizeof err) != 0) goto out;
        memcpy(v ? white : black, buf, (size_t)c * sizeof(float));
    }
    rc = 0;
out:
    free(buf);
    cs_image_free(&img);
    return rc;
}

int cs_explainer_init(cs_explainer *x, const cs_model *m, const float *input, cs_exec *e, char *err, size_t errlen)
{
    return cs_explainer_init_above(x, m, input, e, -1, err, errlen);
}

int cs_explainer_init_above(cs_explainer *x, const cs_model *m, const float *input, cs_exec *e, int keep, char *err,
                            size_t errlen)
{
    memset(x, 0, sizeof *x);
    if (m->n_extra_inputs) {
        snprintf(err, errlen, "model %s takes %d inputs: explanations take models of one input", m->arch,
                 m->n_extra_inputs + 1);
        return -1;
    }
    x->model = m;
    x->x = input;
    x->n_classes = m->layers[m->n_layers - 1].out.c;
    if (!e) {
        if (!(e = cs_exec_new(m, 1))) goto nomem;
        x->own_e = 1;
    }
    x->e = e;
    x->out = malloc(2 * (size_t)x->n_classes * sizeof(float));
    if (!x->out || (keep >= 0 ? cs_exec_forward_above(e, input, 1, keep) : cs_exec_forward(e, input, 1, 0, NULL)) != 0)
        goto nomem;
    x->logits = x->out + x->n_classes;
    const int top = m->n_layers - 1;
    memcpy(x->out, e->act[top], (size_t)x->n_classes * sizeof(float));
    const float *z = cs_exec_logits(e);
    memcpy(x->logits, z ? z : e->act[top], (size_t)x->n_classes * sizeof(float));
    x->predicted = cs_argmax(x->out, x->n_classes);
    return 0;
nomem:
    snprintf(err, errlen, "out of memory");
    cs_explainer_free(x);
    return -2;
}

int cs_explain_keep(const cs_model *m, const cs_explain_method *const *meths, int n, const cs_explain_params *p)
{
    for (int i = 0; i < n; i++)
        if (meths[i]->params & CS_EP_LAYER) {
            char err[8];
            return cs_cam_layer(m, p->layer, err, sizeof err); /* -1: the method will say why */
        }
    return m->n_layers - 1;
}

void cs_explainer_free(cs_explainer *x)
{
    if (x->own_e) cs_exec_free(x->e);
    cs_exec_free(x->eb);
    free(x->out);
    memset(x, 0, sizeof *x);
}

int cs_explainer_class(const cs_explainer *x, int class_index)
{
    return class_index >= 0 && class_index < x->n_classes ? class_index : x->predicted;
}

float cs_explainer_black(const cs_explainer *x, int ch) { return x->black ? x->black[ch] : 0.0f; }
float cs_explainer_white(const cs_explainer *x, int ch) { return x->white ? x->white[ch] : 1.0f; }

/* Floats one image takes in an exec: every node's output, its gradient, the input's. */
static size_t floats_per_image(const cs_model *m)
{
    size_t n = 3 * cs_shape_size(m->input);
    for (int i = 0; i < m->n_layers; i++) n += 2 * cs_shape_size(m->layers[i].out);
    return n;
}

cs_exec *cs_explainer_batch_exec(cs_explainer *x, const cs_explain_params *p)
{
    int want = p->batch;
    if (want <= 0) {
        size_t fit = BATCH_BUDGET_FLOATS / floats_per_image(x->model);
        want = fit < 1 ? 1 : fit > BATCH_MAX ? BATCH_MAX : (int)fit;
    }
    if (x->eb && x->batch == want) return x->eb;
    cs_exec_free(x->eb);
    x->batch = 0;
    if (!(x->eb = cs_exec_new(x->model, want))) return NULL;
    if (cs_exec_enable_input_grad(x->eb) != 0) {
        cs_exec_free(x->eb);
        return x->eb = NULL;
    }
    x->batch = want;
    return x->eb;
}

int cs_explainer_scores(cs_explainer *x, const cs_explain_params *p, const float *images, long n, int cls,
                        int score_kind, float *out, cs_explain_map *count)
{
    cs_exec *e = cs_explainer_batch_exec(x, p);
    if (!e) return -1;
    const cs_model *m = x->model;
    const size_t per = cs_shape_size(m->input);
    const int top = m->n_layers - 1, k = m->layers[top].out.c;
    for (long i = 0; i < n; i += x->batch) {
        int b = n - i < x->batch ? (int)(n - i) : x->batch;
        if (cs_exec_forward(e, images + (size_t)i * per, b, 0, NULL) != 0) return -1;
        const float *z = score_kind == CS_SCORE_LOGIT && cs_exec_logits(e) ? cs_exec_logits(e) : e->act[top];
        for (int j = 0; j < b; j++) out[i + j] = z[(size_t)j * k + cls];
    }
    if (count) count->forwards += n;
    return 0;
}

int cs_explainer_gradients(cs_explainer *x, const cs_explain_params *p, const float *images, long n, int cls,
                           int score_kind, int guided, float *grads, cs_explain_map *count)
{
    cs_exec *e = cs_explainer_batch_exec(x, p);
    if (!e) return -1;
    const size_t per = cs_shape_size(x->model->input);
    int classes[CS_EXPLAIN_MAX_BATCH];
    for (int j = 0; j < x->batch; j++) classes[j] = cls;
    int rc = 0;
    e->guided = guided;
    for (long i = 0; i < n && rc == 0; i += x->batch) {
        int b = n - i < x->batch ? (int)(n - i) : x->batch;
        if (cs_exec_forward(e, images + (size_t)i * per, b, 0, NULL) != 0) {
            rc = -1;
            break;
        }
        cs_exec_seed_class(e, classes, score_kind);
        if (cs_exec_backward(e, -1) != 0) rc = -1;
        else memcpy(grads + (size_t)i * per, e->input_grad, (size_t)b * per * sizeof(float));
    }
    e->guided = 0;
    if (count) {
        count->forwards += n;
        count->backwards += n;
    }
    return rc;
}

/* ---- running a method ------------------------------------------------------------- */

void cs_explain_map_free(cs_explain_map *m)
{
    free(m->map);
    free(m->heat);
    free(m->attr);
    m->map = m->heat = m->attr = NULL;
}

float cs_explain_blur_sigma(const cs_model *m, const cs_explain_params *p)
{
    if (p->blur_sigma > 0) return p->blur_sigma;
    float s = 5.0f * (float)m->input.w / 224.0f;
    return s < 1 ? 1.0f : s;
}

int cs_explain_run(cs_explainer *x, const cs_explain_method *meth, const cs_explain_params *p, cs_explain_map *out,
                   char *err, size_t errlen)
{
    const cs_model *m = x->model;
    memset(out, 0, sizeof *out);
    if (cs_explain_params_check(m, meth, p, err, errlen)) return -1;
    cs_explain_params q = *p;
    const int h = m->input.h, w = m->input.w, side = h < w ? h : w;
    q.class_index = cs_explainer_class(x, p->class_index);
    if (meth->params & CS_EP_LAYER) q.layer = cs_cam_layer(m, p->layer, err, errlen);
    if (!q.patch) q.patch = side / 7 > 1 ? side / 7 : 1;
    if (!q.stride) q.stride = q.patch / 2 > 1 ? q.patch / 2 : 1;
    q.blur_sigma = cs_explain_blur_sigma(m, p);
    out->method = meth;
    out->params = q;
    out->class_index = q.class_index;
    out->score_kind = q.score_kind;
    out->layer = -1;
    out->logit = x->logits[q.class_index];
    out->probability = x->out[q.class_index];
    out->score = q.score_kind == CS_SCORE_PROBABILITY ? out->probability : out->logit;
    if (meth->family == CS_EXPLAIN_PIXEL) {
        out->h = h;
        out->w = w;
    }
    double t0 = cs_now();
    /* The parameters were checked: what fails now is memory (or, for Eigen-CAM, the
     * eigensolver), not the request. */
    if (meth->run(x, &q, out, err, errlen) != 0) {
        cs_explain_map_free(out);
        return -2;
    }
    const int n = out->h * out->w;
    if (!(out->heat = malloc((size_t)n * sizeof(float)))) {
        cs_explain_map_free(out);
        snprintf(err, errlen, "out of memory");
        return -2;
    }
    float mx = 0;
    for (int i = 0; i < n; i++) {
        float v = out->map[i] > 0 ? out->map[i] : 0.0f; /* also turns NaN into 0 */
        out->heat[i] = v;
        if (v > mx) mx = v;
    }
    if (mx > 0 && isfinite(mx))
        for (int i = 0; i < n; i++) out->heat[i] /= mx;
    else
        memset(out->heat, 0, (size_t)n * sizeof(float));
    out->all_zero = !(mx > 0 && isfinite(mx));
    float lo = 1;
    for (int i = 0; i < n; i++)
        if (out->heat[i] < lo) lo = out->heat[i];
    out->flat = out->all_zero || 1 - lo <= CS_GRADCAM_FLAT_SPREAD;
    out->seconds = cs_now() - t0;
    return 0;
}

/* ---- input attributions' maps ---- */

int cs_attr_map_max_abs(const cs_model *m, cs_explain_map *out)
{
    const int hw = m->input.h * m->input.w, c = m->input.c;
    if (!(out->map = malloc((size_t)hw * sizeof(float)))) return -1;
    for (int i = 0; i < hw; i++) {
        float v = 0;
        for (int ch = 0; ch < c; ch++) v = fmaxf(v, fabsf(out->attr[(size_t)i * c + ch]));
        out->map[i] = v;
    }
    return 0;
}

int cs_attr_map_sum(const cs_model *m, cs_explain_map *out)
{
    const int hw = m->input.h * m->input.w, c = m->input.c;
    if (!(out->map = malloc((size_t)hw * sizeof(float)))) return -1;
    for (int i = 0; i < hw; i++) {
        double v = 0;
        for (int ch = 0; ch < c; ch++) v += out->attr[(size_t)i * c + ch];
        out->map[i] = (float)v;
    }
    return 0;
}

/* ---- images ----------------------------------------------------------------------- */

void cs_explain_heat_at_input(const cs_explain_map *map, const cs_model *m, float *out)
{
    if (map->h == m->input.h && map->w == m->input.w) memcpy(out, map->heat, (size_t)map->h * map->w * sizeof(float));
    else cs_resize_bilinear_f32(map->heat, map->h, map->w, out, m->input.h, m->input.w);
}

/* Mirrored index (reflect-101, as OpenCV's default border: ... 2 1 | 0 1 2 ...). */
static int mirror(int i, int n)
{
    if (n == 1) return 0;
    while (i < 0 || i >= n) i = i < 0 ? -i : 2 * n - 2 - i;
    return i;
}

int cs_explain_blur(const float *in, int h, int w, int c, float sigma, float *out)
{
    int r = (int)ceilf(3 * sigma);
    if (r < 1) r = 1;
    float kern[2 * 3 * (int)CS_EXPLAIN_MAX_BLUR + 3];
    double sum = 0;
    for (int i = -r; i <= r; i++) sum += kern[i + r] = expf(-0.5f * (float)(i * i) / (sigma * sigma));
    for (int i = 0; i <= 2 * r; i++) kern[i] = (float)(kern[i] / sum);
    float *rows = malloc((size_t)h * w * c * sizeof(float));
    if (!rows) return -1;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int ch = 0; ch < c; ch++) {
                float s = 0;
                for (int i = -r; i <= r; i++) s += kern[i + r] * in[((size_t)y * w + mirror(x + i, w)) * c + ch];
                rows[((size_t)y * w + x) * c + ch] = s;
            }
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int ch = 0; ch < c; ch++) {
                float s = 0;
                for (int i = -r; i <= r; i++) s += kern[i + r] * rows[((size_t)mirror(y + i, h) * w + x) * c + ch];
                out[((size_t)y * w + x) * c + ch] = s;
            }
    free(rows);
    return 0;
}

/* ---- ranks ------------------------------------------------------------------------ */

typedef struct {
    float v;
    int i;
} ranked;

static int by_value(const void *a, const void *b)
{
    const ranked *x = a, *y = b;
    return x->v < y->v ? -1 : x->v > y->v ? 1 : x->i - y->i;
}

/* Ranks 1..n with ties at their mean rank; -1 when out of memory. */
static int ranks_of(const float *v, int n, double *r)
{
    ranked *s = malloc((size_t)n * sizeof *s);
    if (!s) return -1;
    for (int i = 0; i < n; i++) s[i] = (ranked){isnan(v[i]) ? 0.0f : v[i], i};
    qsort(s, (size_t)n, sizeof *s, by_value);
    for (int i = 0; i < n;) {
        int j = i;
        while (j + 1 < n && s[j + 1].v == s[i].v) j++;
        double mean = (i + j) / 2.0 + 1;
        for (int t = i; t <= j; t++) r[s[t].i] = mean;
        i = j + 1;
    }
    free(s);
    return 0;
}

double cs_spearman(const float *a, const float *b, int n)
{
    double *ra = malloc(2 * (size_t)n * sizeof(double));
    if (!ra || n < 2) {
        free(ra);
        return 0;
    }
    double *rb = ra + n;
    if (ranks_of(a, n, ra) || ranks_of(b, n, rb)) {
        free(ra);
        return 0;
    }
    double ma = 0, mb = 0, sab = 0, saa = 0, sbb = 0;
    for (int i = 0; i < n; i++) ma += ra[i], mb += rb[i];
    ma /= n, mb /= n;
    for (int i = 0; i < n; i++) {
        double da = ra[i] - ma, db = rb[i] - mb;
        sab += da * db, saa += da * da, sbb += db * db;
    }
    free(ra);
    return saa > 0 && sbb > 0 ? sab / sqrt(saa * sbb) : 0;
}
