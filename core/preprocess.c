/*
 * preprocess.c - model inputs from images: one pipeline (see preprocess.h), its
 * presets, its inference from the model, and its JSON.
 *
 * The values are computed before resampling (the filters are linear, so the order
 * only matters for rounding): that keeps the Fashion-MNIST path exactly what it was,
 * px / 255 then area averaging in float, and nearest resizing picks 8-bit pixels, so
 * VGG16's caffe input is Keras' bit for bit.
 */
#include "preprocess.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "model.h"

static const float TORCH_MEAN[3] = {0.485f, 0.456f, 0.406f}, TORCH_STD[3] = {0.229f, 0.224f, 0.225f};
static const char *const COLORS[] = {"gray", "rgb", "bgr"};
static const char *const RESIZES[] = {"area", "bilinear", "nearest"};
static const char *const FITS[] = {"stretch", "crop"};

static int fail(char *err, size_t errlen, const char *msg)
{
    cs_set_err(err, errlen, "%s", msg);
    return -1;
}

/* The one failure that is not the image's fault: the caller may retry. */
static int nomem(char *err, size_t errlen)
{
    fail(err, errlen, "out of memory");
    return -2;
}

/* ---- presets and inference ---- */

int cs_preprocess_preset(const char *mode, int channels, cs_preprocess *p, char *err, size_t errlen)
{
    if (channels != 1 && channels != 3) {
        cs_set_err(err, errlen, "the model takes images of %d channels: only 1 (gray) or 3 (colour) are supported",
                   channels);
        return -1;
    }
    memset(p, 0, sizeof *p);
    p->color = channels == 1 ? CS_COLOR_GRAY : CS_COLOR_RGB;
    p->resize = CS_RESIZE_AREA;
    p->fit = CS_FIT_STRETCH;
    p->crop = 1;
    p->scale = 1.0 / 255.0;
    for (int c = 0; c < 3; c++) p->mean[c] = 0, p->std[c] = 1;
    snprintf(p->source, sizeof p->source, "default");
    if (!strcmp(mode, "unit")) {
    } else if (!strcmp(mode, "raw")) {
        p->scale = 1;
    } else if (!strcmp(mode, "caffe") || !strcmp(mode, "tf") || !strcmp(mode, "torch")) {
        if (channels != 3) {
            cs_set_err(err, errlen, "mode '%s' is for colour models, this one takes gray images", mode);
            return -1;
        }
        p->resize = CS_RESIZE_NEAREST; /* Keras' load_img default */
        if (mode[0] == 'c') {
            p->color = CS_COLOR_BGR;
            p->scale = 1;
            p->mean[0] = CS_CAFFE_MEAN_B, p->mean[1] = CS_CAFFE_MEAN_G, p->mean[2] = CS_CAFFE_MEAN_R;
        } else if (mode[1] == 'f') {
            p->scale = 1.0 / 127.5;
            for (int c = 0; c < 3; c++) p->mean[c] = 1;
        } else {
            for (int c = 0; c < 3; c++) p->mean[c] = TORCH_MEAN[c], p->std[c] = TORCH_STD[c];
        }
    } else {
        cs_set_err(err, errlen, "unknown mode '%.32s': one of unit, raw, caffe, tf, torch", mode);
        return -1;
    }
    snprintf(p->mode, sizeof p->mode, "%s", mode);
    return 0;
}

void cs_preprocess_infer(const cs_model *m, cs_preprocess *p)
{
    int c = m->input.c == 1 ? 1 : 3; /* other counts are refused when an image is applied */
    if (!strcmp(m->arch, "vgg16") && c == 3) {
        cs_preprocess_preset("caffe", 3, p, NULL, 0);
        snprintf(p->source, sizeof p->source, "model");
        snprintf(p->why, sizeof p->why, "Keras' VGG16 takes caffe-mode input");
        return;
    }
    cs_preprocess_preset("unit", c, p, NULL, 0);
    for (int i = 0; i < m->n_layers; i++) {
        const cs_layer *l = &m->layers[i];
        if (l->n_inputs != 1 || l->inputs[0] != CS_MODEL_INPUT) continue;
        if (l->kind == CS_RESCALING || l->kind == CS_NORMALIZATION) {
            cs_preprocess_preset("raw", c, p, NULL, 0);
            snprintf(p->source, sizeof p->source, "inferred");
            snprintf(p->why, sizeof p->why, "%s node '%.40s' reads the input", cs_layer_kind_name(l->kind), l->name);
            return;
        }
    }
}

/* ---- JSON ---- */

static int pick(const char *s, const char *const *names, int n, int *out)
{
    for (int i = 0; i < n; i++)
        if (s && !strcmp(s, names[i])) {
            *out = i;
            return 0;
        }
    return -1;
}

/* One number for every channel, or one per channel. */
static int channel_values(json_t *v, int channels, const char *key, float *out, int positive, char *err,
                          size_t errlen)
{
    double got[3] = {0, 0, 0};
    if (json_is_number(v)) {
        for (int c = 0; c < 3; c++) got[c] = json_number_value(v);
    } else if (json_is_array(v) && (int)json_array_size(v) == channels) {
        for (int c = 0; c < channels; c++) {
            json_t *e = json_array_get(v, (size_t)c);
            if (!json_is_number(e)) return fail(err, errlen, "preprocessing: a value of 'mean' or 'std' is not a number");
            got[c] = json_number_value(e);
        }
        for (int c = channels; c < 3; c++) got[c] = got[0];
    } else {
        cs_set_err(err, errlen, "preprocessing: '%s' must be a number or a list of %d numbers (one per channel)", key,
                   channels);
        return -1;
    }
    for (int c = 0; c < 3; c++) {
        if (!isfinite(got[c]) || fabs(got[c]) > 1e6 || (positive && !(got[c] > 0))) {
            cs_set_err(err, errlen, "preprocessing: '%s' must be finite%s", key, positive ? " and above 0" : "");
            return -1;
        }
        out[c] = (float)got[c];
    }
    return 0;
}

int cs_preprocess_from_json(json_t *o, int channels, int h, int w, cs_preprocess *p, char *err, size_t errlen)
{
    if (!json_is_object(o)) return fail(err, errlen, "preprocessing: expected an object");
    cs_preprocess q = *p;
    const char *key;
    json_t *v;
    /* The mode first: a preset the other keys then adjust. */
    json_t *mode = json_object_get(o, "mode");
    if (mode) {
        if (!json_is_string(mode)) return fail(err, errlen, "preprocessing: 'mode' must be a string");
        char why[200];
        if (cs_preprocess_preset(json_string_value(mode), channels, &q, why, sizeof why) != 0) {
            cs_set_err(err, errlen, "preprocessing: %s", why);
            return -1;
        }
    }
    int custom = 0;
    json_object_foreach(o, key, v) {
        int idx;
        if (!strcmp(key, "mode")) continue;
        if (!strcmp(key, "color") || !strcmp(key, "resize") || !strcmp(key, "fit")) {
            const char *s = json_string_value(v);
            int ok = key[0] == 'c'   ? pick(s, COLORS, 3, &idx) == 0
                     : key[0] == 'r' ? pick(s, RESIZES, 3, &idx) == 0
                                     : pick(s, FITS, 2, &idx) == 0;
            if (!ok) {
                cs_set_err(err, errlen, "preprocessing: '%s' must be %s", key,
                           key[0] == 'c'   ? "gray, rgb or bgr"
                           : key[0] == 'r' ? "nearest, bilinear or area"
                                           : "stretch or crop");
                return -1;
            }
            if (key[0] == 'c') q.color = (cs_color_mode)idx;
            else if (key[0] == 'r') q.resize = (cs_resize_filter)idx;
            else q.fit = (cs_fit_mode)idx;
        } else if (!strcmp(key, "crop")) {
            double f = json_number_value(v);
            if (!json_is_number(v) || !(f > 0.05 && f <= 1))
                return fail(err, errlen, "preprocessing: 'crop' must be a number above 0.05 and at most 1");
            q.crop = (float)f;
            q.fit = CS_FIT_CROP;
        } else if (!strcmp(key, "scale")) {
            double s = json_number_value(v);
            if (!json_is_number(v) || !isfinite(s) || s == 0 || fabs(s) > 1e6)
                return fail(err, errlen, "preprocessing: 'scale' must be a number other than 0");
            q.scale = s;
            custom = 1;
        } else if (!strcmp(key, "mean") || !strcmp(key, "std")) {
            if (channel_values(v, channels, key, key[0] == 'm' ? q.mean : q.std, key[0] == 's', err, errlen) != 0)
                return -1;
            custom = 1;
        } else if (!strcmp(key, "size")) {
            json_t *a = json_array_get(v, 0), *b = json_array_get(v, 1);
            if (json_array_size(v) != 2 || !json_is_integer(a) || !json_is_integer(b))
                return fail(err, errlen, "preprocessing: 'size' must be [height, width]");
            if (json_integer_value(a) != h || json_integer_value(b) != w) {
                cs_set_err(err, errlen, "preprocessing: 'size' is %lldx%lld but the model takes %dx%d images",
                           (long long)json_integer_value(a), (long long)json_integer_value(b), h, w);
                return -1;
            }
        } else {
            cs_set_err(err, errlen,
                       "preprocessing: unknown key '%.40s' (mode, color, resize, fit, crop, scale, mean, std, size)",
                       key);
            return -1;
        }
    }
    if ((q.color == CS_COLOR_GRAY) != (channels == 1)) {
        cs_set_err(err, errlen, "preprocessing: color '%s' does not fit a model of %d input channel%s",
                   COLORS[q.color], channels, channels == 1 ? "" : "s");
        return -1;
    }
    if (custom) snprintf(q.mode, sizeof q.mode, "custom");
    snprintf(q.source, sizeof q.source, "sidecar");
    q.why[0] = 0;
    *p = q;
    return 0;
}

json_t *cs_preprocess_to_json(const cs_preprocess *p, int channels, int h, int w)
{
    int n = channels == 1 ? 1 : 3;
    json_t *mean = json_array(), *std = json_array();
    for (int c = 0; c < n; c++) {
        json_array_append_new(mean, json_real(p->mean[c]));
        json_array_append_new(std, json_real(p->std[c]));
    }
    json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:f,s:f,s:o,s:o,s:[i,i],s:s}", "mode", p->mode, "color", COLORS[p->color],
                          "resize", RESIZES[p->resize], "fit", FITS[p->fit], "crop", (double)p->crop, "scale",
                          p->scale, "mean", mean, "std", std, "size", h, w, "source", p->source);
    if (o && p->why[0]) json_object_set_new(o, "why", json_string(p->why));
    return o;
}

static void list_values(const float *v, int n, char *buf, size_t len)
{
    size_t at = 0;
    buf[0] = 0;
    for (int c = 0; c < n && at < len; c++) {
        int k = snprintf(buf + at, len - at, "%s%.6g", c ? "," : "", (double)v[c]);
        if (k < 0) break;
        at += (size_t)k;
    }
}

void cs_preprocess_describe(const cs_preprocess *p, int channels, int h, int w, char *buf, size_t len)
{
    int n = channels == 1 ? 1 : 3;
    char mean[64], std[64], crop[32] = "";
    list_values(p->mean, n, mean, sizeof mean);
    list_values(p->std, n, std, sizeof std);
    if (p->fit == CS_FIT_CROP && p->crop < 1) snprintf(crop, sizeof crop, "; crop=%.4g", (double)p->crop);
    snprintf(buf, len, "mode=%s; color=%s; size=%dx%d; fit=%s%s; resize=%s; scale=%.6g; mean=%s; std=%s; source=%s",
             p->mode, COLORS[p->color], h, w, FITS[p->fit], crop, RESIZES[p->resize], p->scale, mean, std, p->source);
}

/* ---- applying it ---- */

static int check_args(const cs_image *img, int out_h, int out_w, const float *out, char *err, size_t errlen)
{
    if (!img || !img->px || img->w <= 0 || img->h <= 0 || (img->c != 1 && img->c != 3))
        return fail(err, errlen, "invalid image");
    if (out_h <= 0 || out_w <= 0 || !out) return fail(err, errlen, "invalid output size");
    return 0;
}

/* The region of the picture the fit takes, as a new image (*dst; src itself when it
 * takes everything: then *own is 0). */
static int fit_region(const cs_preprocess *p, const cs_image *src, int out_h, int out_w, cs_image *dst, int *own)
{
    *own = 0;
    *dst = *src;
    if (p->fit != CS_FIT_CROP) return CS_IMG_OK;
    /* The largest region of the output's aspect, then `crop` of it, centred. */
    double aspect = (double)out_w / out_h, rw = src->w, rh = src->h;
    if (rw / rh > aspect) rw = rh * aspect;
    else rh = rw / aspect;
    int cw = (int)(rw * p->crop + 0.5), ch = (int)(rh * p->crop + 0.5);
    if (cw < 1) cw = 1;
    if (ch < 1) ch = 1;
    if (cw == src->w && ch == src->h) return CS_IMG_OK;
    int x0 = (src->w - cw) / 2, y0 = (src->h - ch) / 2;
    if (cs_image_alloc(dst, cw, ch, src->c) != CS_IMG_OK) return CS_IMG_NOMEM;
    for (int y = 0; y < ch; y++)
        memcpy(dst->px + (size_t)y * cw * src->c, src->px + ((size_t)(y0 + y) * src->w + x0) * src->c,
               (size_t)cw * src->c);
    *own = 1;
    return CS_IMG_OK;
}

int cs_preprocess_region(const cs_preprocess *p, const cs_image *img, int out_h, int out_w, cs_image *dst)
{
    cs_image r;
    int own;
    memset(dst, 0, sizeof *dst);
    if (!img || !img->px || out_h <= 0 || out_w <= 0) return CS_IMG_NOMEM;
    if (fit_region(p, img, out_h, out_w, &r, &own) != CS_IMG_OK) return CS_IMG_NOMEM;
    if (own) {
        *dst = r;
        return CS_IMG_OK;
    }
    if (cs_image_alloc(dst, img->w, img->h, img->c) != CS_IMG_OK) return CS_IMG_NOMEM;
    memcpy(dst->px, img->px, (size_t)img->w * img->h * img->c);
    return CS_IMG_OK;
}

int cs_preprocess_apply(const cs_preprocess *p, const cs_image *img, int out_h, int out_w, int out_c, float *out,
                        char *err, size_t errlen)
{
    if (check_args(img, out_h, out_w, out, err, errlen)) return -1;
    int gray = p->color == CS_COLOR_GRAY;
    if (out_c != (gray ? 1 : 3)) {
        if (out_c != 1 && out_c != 3) return fail(err, errlen, "the model takes images of neither 1 nor 3 channels");
        cs_set_err(err, errlen, "colour mode %s does not fit a model of %d channel%s", COLORS[p->color], out_c,
                   out_c == 1 ? "" : "s");
        return -1;
    }
    cs_image region, conv = {0}, small = {0};
    int own, rc = -2;
    float *plane = NULL, *res = NULL;
    if (fit_region(p, img, out_h, out_w, &region, &own) != CS_IMG_OK) return nomem(err, errlen);
    if ((gray ? cs_image_to_gray(&region, &conv) : cs_image_to_rgb(&region, &conv)) != CS_IMG_OK) goto done;
    const cs_image *src = &conv;
    /* Nearest picks pixels: done on the 8-bit picture, before the values. */
    if (p->resize == CS_RESIZE_NEAREST && (conv.w != out_w || conv.h != out_h)) {
        if (cs_image_resize_nearest(&conv, out_w, out_h, &small) != CS_IMG_OK) goto done;
        src = &small;
    }
    const int sc = src->c, resample = src->w != out_w || src->h != out_h;
    const size_t n = (size_t)src->w * src->h, m = (size_t)out_w * out_h;
    plane = malloc(n * sizeof *plane);
    res = resample ? malloc(m * sizeof *res) : NULL;
    if (!plane || (resample && !res)) goto done;
    for (int c = 0; c < out_c; c++) {
        /* Model channel c reads picture channel c, or the other end for BGR. */
        int from = p->color == CS_COLOR_BGR ? 2 - c : c;
        double mean = p->mean[c], std = p->std[c];
        for (size_t i = 0; i < n; i++)
            plane[i] = (float)(((double)src->px[i * sc + from] * p->scale - mean) / std);
        const float *done_plane = plane;
        if (resample) {
            if (p->resize == CS_RESIZE_BILINEAR) cs_resize_bilinear_f32(plane, src->h, src->w, res, out_h, out_w);
            else cs_resize_area_f32(plane, src->h, src->w, res, out_h, out_w);
            done_plane = res;
        }
        for (size_t i = 0; i < m; i++) out[i * out_c + c] = done_plane[i];
    }
    rc = 0;
done:
    free(plane);
    free(res);
    cs_image_free(&small);
    cs_image_free(&conv);
    if (own) cs_image_free(&region);
    return rc == 0 ? 0 : nomem(err, errlen);
}

int cs_preprocess_model(const cs_model *m, const cs_image *img, float *out, char *err, size_t errlen)
{
    return cs_preprocess_apply(&m->preprocess, img, m->input.h, m->input.w, m->input.c, out, err, errlen);
}

void cs_preprocess_pixels(const cs_preprocess *p, const uint8_t *px, size_t n, float *out)
{
    double mean = p->mean[0], std = p->std[0];
    for (size_t i = 0; i < n; i++) out[i] = (float)(((double)px[i] * p->scale - mean) / std);
}

/* ---- by name, and the presets on their own ---- */

static int run_preset(const char *mode, int channels, const cs_image *img, int out_h, int out_w, float *out, char *err,
                      size_t errlen)
{
    cs_preprocess p;
    if (cs_preprocess_preset(mode, channels, &p, err, errlen) != 0) return -1;
    return cs_preprocess_apply(&p, img, out_h, out_w, channels, out, err, errlen);
}

int cs_preprocess_image(const char *arch, const cs_image *img, int out_h, int out_w, int out_c, float *out,
                        char *err, size_t errlen)
{
    if (arch && strcmp(arch, "vgg16") == 0) return cs_preprocess_caffe(img, out_h, out_w, out, err, errlen);
    if (out_c != 1 && out_c != 3) return fail(err, errlen, "the model takes images of neither 1 nor 3 channels");
    return run_preset("unit", out_c, img, out_h, out_w, out, err, errlen);
}

int cs_preprocess_gray01(const cs_image *img, int out_h, int out_w, float *out, char *err, size_t errlen)
{
    return run_preset("unit", 1, img, out_h, out_w, out, err, errlen);
}

int cs_preprocess_rgb01(const cs_image *img, int out_h, int out_w, float *out, char *err, size_t errlen)
{
    return run_preset("unit", 3, img, out_h, out_w, out, err, errlen);
}

int cs_preprocess_caffe(const cs_image *img, int out_h, int out_w, float *out, char *err, size_t errlen)
{
    return run_preset("caffe", 3, img, out_h, out_w, out, err, errlen);
}
