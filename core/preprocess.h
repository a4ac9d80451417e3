/*
 * preprocess.h - from a decoded upload (cs_image) to the float input a model expects,
 * as one described pipeline:
 *
 *   1. fit:    "stretch" takes the whole picture; "crop" keeps the aspect and takes the
 *              centred region of the model's aspect (`crop` of the shorter side: 0.875
 *              is torchvision's Resize(256) + CenterCrop(224));
 *   2. colour: "gray" (PIL "L" luma), "rgb", or "bgr" (gray pictures are replicated);
 *   3. values: x = (px * scale - mean[c]) / std[c] for pixel px in 0..255, computed in
 *              double and rounded once, c counted in the model's channel order (after
 *              the colour step: caffe's means are B, G, R);
 *   4. resize: "nearest" (PIL NEAREST on the 8-bit picture, as Keras' load_img),
 *              "bilinear" (half-pixel centres, no antialiasing, on the float values) or
 *              "area" (the mean of the covered area when shrinking, bilinear when
 *              enlarging, on the float values); no resampling when the size matches.
 *
 * Keras' preprocess_input modes are presets: caffe (BGR, minus the ImageNet mean, no
 * scaling), tf (x / 127.5 - 1), torch (x / 255, ImageNet mean and std per channel).
 * The notebook's networks keep what they always had: Fashion-MNIST gray / 255 with
 * area resizing, VGG16 caffe with nearest resizing (Keras' load_img default).
 */
#ifndef CS_PREPROCESS_H
#define CS_PREPROCESS_H

#include <jansson.h>
#include <stddef.h>

#include "image.h"

/* Keras' ImageNet mean for caffe mode, in B, G, R order. */
#define CS_CAFFE_MEAN_B 103.939f
#define CS_CAFFE_MEAN_G 116.779f
#define CS_CAFFE_MEAN_R 123.68f

typedef enum { CS_COLOR_GRAY, CS_COLOR_RGB, CS_COLOR_BGR } cs_color_mode;
typedef enum { CS_RESIZE_AREA, CS_RESIZE_BILINEAR, CS_RESIZE_NEAREST } cs_resize_filter;
typedef enum { CS_FIT_STRETCH, CS_FIT_CROP } cs_fit_mode;

typedef struct {
    char mode[16];       /* the preset it started from: "unit" (0..1), "raw" (0..255), "caffe",
                            "tf", "torch"; "custom" once scale, mean or std are given */
    cs_color_mode color;
    cs_resize_filter resize;
    cs_fit_mode fit;
    float crop;          /* fit crop: share of the shorter side kept, (0, 1] */
    double scale;        /* applied to 0..255 pixels first */
    float mean[3], std[3]; /* per model channel; gray uses [0] */
    char source[16];     /* "default", "inferred", "model" (the network's own), "sidecar" */
    char why[96];        /* what an inference was based on, "" otherwise */
} cs_preprocess;

struct cs_model;

/* A preset by name ("unit", "raw", "caffe", "tf", "torch") for a model of `channels`
 * input channels (1 or 3): colour gray for 1, RGB for 3 (BGR for caffe), area
 * resizing, stretch. 0, or -1 with err (unknown name, caffe/tf/torch on gray...). */
int cs_preprocess_preset(const char *mode, int channels, cs_preprocess *p, char *err, size_t errlen);

/* What a model gets when nothing says otherwise: "unit" by its channel count; "raw"
 * when a Rescaling or Normalization node reads the input (the network scales the
 * pixels itself); caffe for VGG16. Sets source and why. */
void cs_preprocess_infer(const struct cs_model *m, cs_preprocess *p);

/* Reads a sidecar's "preprocessing" object over *p (which holds the model's inferred
 * pipeline): mode, color, resize, fit, crop, scale, mean, std (one number or one per
 * channel), size ([h, w], must be the model's input). Unknown keys are refused.
 * channels, h, w: the model's input. 0, or -1 with err naming the field. */
int cs_preprocess_from_json(json_t *o, int channels, int h, int w, cs_preprocess *p, char *err, size_t errlen);

/* The pipeline as JSON: mode, color, resize, fit, crop, scale, mean, std (channels
 * values), size, source, why. NULL when out of memory. */
json_t *cs_preprocess_to_json(const cs_preprocess *p, int channels, int h, int w);

/* One line for a header: "mode=unit; color=gray; size=28x28; fit=stretch; resize=area;
 * scale=0.00392157; mean=0; std=1; source=default". */
void cs_preprocess_describe(const cs_preprocess *p, int channels, int h, int w, char *buf, size_t len);

/* Runs the pipeline on one image into out (NHWC floats, caller-allocated,
 * out_h * out_w * out_c; out_c must be 1 for gray, 3 for rgb/bgr). 0, -1 with a reason
 * in err for a bad image or size, -2 when out of memory. */
int cs_preprocess_apply(const cs_preprocess *p, const cs_image *img, int out_h, int out_w, int out_c, float *out,
                        char *err, size_t errlen);

/* Step 1 alone: the part of img the pipeline reads for an out_h x out_w input, as a
 * new image in *dst (cs_image_free; a copy of img when the fit takes all of it), so
 * pictures can be drawn over what the model saw. CS_IMG_OK or CS_IMG_NOMEM. */
int cs_preprocess_region(const cs_preprocess *p, const cs_image *img, int out_h, int out_w, cs_image *dst);

/* The model's own pipeline (m->preprocess) into m's input shape. */
int cs_preprocess_model(const struct cs_model *m, const cs_image *img, float *out, char *err, size_t errlen);

/* Step 3 alone for n gray pixels already at the model's size (Fashion-MNIST's images
 * for training): out[i] = (px[i] * scale - mean[0]) / std[0]. */
void cs_preprocess_pixels(const cs_preprocess *p, const uint8_t *px, size_t n, float *out);

/* By architecture name, for callers without the model: "vgg16" caffe, anything else
 * unit by out_c (the pipelines the notebook's networks and ONNX imports had before
 * the model carried its own). */
int cs_preprocess_image(const char *arch, const cs_image *img, int out_h, int out_w, int out_c, float *out,
                        char *err, size_t errlen);

/* The presets on their own: gray / 255 with area resizing; RGB / 255 likewise; Keras
 * caffe after load_img (PIL nearest, BGR, minus the ImageNet mean). */
int cs_preprocess_gray01(const cs_image *img, int out_h, int out_w, float *out, char *err, size_t errlen);
int cs_preprocess_rgb01(const cs_image *img, int out_h, int out_w, float *out, char *err, size_t errlen);
int cs_preprocess_caffe(const cs_image *img, int out_h, int out_w, float *out, char *err, size_t errlen);

#endif
