/*
 * preprocess.c - model inputs from images (see preprocess.h).
 *
 * The VGG16 path copies Keras' load_img + preprocess_input bit for bit, because
 * its ImageNet weights were trained on exactly that; the Fashion-MNIST path has
 * no Keras counterpart for photos, so it favours quality (area averaging, float
 * all the way, no rounding to 8 bits in between).
 */
#include "preprocess.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(char *err, size_t errlen, const char *msg)
{
    if (err && errlen)
        snprintf(err, errlen, "%s", msg);
    return -1;
}

/* The one failure that is not the image's fault: the caller may retry. */
static int nomem(char *err, size_t errlen)
{
    fail(err, errlen, "out of memory");
    return -2;
}

static int check_args(const cs_image *img, int out_h, int out_w, const float *out, char *err,
                      size_t errlen)
{
    if (!img || !img->px || img->w <= 0 || img->h <= 0 || (img->c != 1 && img->c != 3))
        return fail(err, errlen, "invalid image");
    if (out_h <= 0 || out_w <= 0 || !out)
        return fail(err, errlen, "invalid output size");
    return 0;
}

int cs_preprocess_gray01(const cs_image *img, int out_h, int out_w, float *out, char *err,
                         size_t errlen)
{
    if (check_args(img, out_h, out_w, out, err, errlen))
        return -1;
    cs_image gray;
    if (cs_image_to_gray(img, &gray) != CS_IMG_OK)
        return nomem(err, errlen);
    size_t n = (size_t)gray.w * (size_t)gray.h;
    float *plane = malloc(n * sizeof *plane);
    if (!plane) {
        cs_image_free(&gray);
        return nomem(err, errlen);
    }
    for (size_t i = 0; i < n; i++)
        plane[i] = gray.px[i] / 255.f;
    if (gray.w == out_w && gray.h == out_h)
        memcpy(out, plane, n * sizeof *out);
    else /* area when shrinking both ways, bilinear otherwise */
        cs_resize_area_f32(plane, gray.h, gray.w, out, out_h, out_w);
    free(plane);
    cs_image_free(&gray);
    return 0;
}

int cs_preprocess_caffe(const cs_image *img, int out_h, int out_w, float *out, char *err,
                        size_t errlen)
{
    if (check_args(img, out_h, out_w, out, err, errlen))
        return -1;
    cs_image rgb, small;
    if (cs_image_to_rgb(img, &rgb) != CS_IMG_OK)
        return nomem(err, errlen);
    int rc = cs_image_resize_nearest(&rgb, out_w, out_h, &small);
    cs_image_free(&rgb);
    if (rc != CS_IMG_OK)
        return nomem(err, errlen);
    size_t n = (size_t)out_w * (size_t)out_h;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *p = small.px + 3 * i;
        out[3 * i + 0] = (float)p[2] - CS_CAFFE_MEAN_B;
        out[3 * i + 1] = (float)p[1] - CS_CAFFE_MEAN_G;
        out[3 * i + 2] = (float)p[0] - CS_CAFFE_MEAN_R;
    }
    cs_image_free(&small);
    return 0;
}

int cs_preprocess_rgb01(const cs_image *img, int out_h, int out_w, float *out, char *err, size_t errlen)
{
    if (check_args(img, out_h, out_w, out, err, errlen))
        return -1;
    cs_image rgb;
    if (cs_image_to_rgb(img, &rgb) != CS_IMG_OK)
        return nomem(err, errlen);
    size_t n = (size_t)rgb.w * (size_t)rgb.h, m = (size_t)out_w * (size_t)out_h;
    float *plane = malloc(n * sizeof *plane), *small = malloc(m * sizeof *small);
    if (!plane || !small) {
        free(plane);
        free(small);
        cs_image_free(&rgb);
        return nomem(err, errlen);
    }
    for (int c = 0; c < 3; c++) { /* each channel resized as a plane of its own */
        for (size_t i = 0; i < n; i++)
            plane[i] = rgb.px[3 * i + c] / 255.f;
        if (rgb.w == out_w && rgb.h == out_h)
            memcpy(small, plane, n * sizeof *small);
        else
            cs_resize_area_f32(plane, rgb.h, rgb.w, small, out_h, out_w);
        for (size_t i = 0; i < m; i++)
            out[3 * i + c] = small[i];
    }
    free(plane);
    free(small);
    cs_image_free(&rgb);
    return 0;
}

int cs_preprocess_image(const char *arch, const cs_image *img, int out_h, int out_w, int out_c, float *out,
                        char *err, size_t errlen)
{
    if (arch && strcmp(arch, "vgg16") == 0)
        return cs_preprocess_caffe(img, out_h, out_w, out, err, errlen);
    if (out_c == 3)
        return cs_preprocess_rgb01(img, out_h, out_w, out, err, errlen);
    if (out_c != 1)
        return fail(err, errlen, "the model takes images of neither 1 nor 3 channels");
    return cs_preprocess_gray01(img, out_h, out_w, out, err, errlen);
}
