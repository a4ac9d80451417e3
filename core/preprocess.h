/*
 * preprocess.h - from a decoded upload (cs_image) to the float input a model
 * expects, exactly as the seed's Keras pipeline prepares it.
 */
#ifndef CS_PREPROCESS_H
#define CS_PREPROCESS_H

#include <stddef.h>

#include "image.h"

/* Keras' ImageNet mean for caffe mode, in B, G, R order. */
#define CS_CAFFE_MEAN_B 103.939f
#define CS_CAFFE_MEAN_G 116.779f
#define CS_CAFFE_MEAN_R 123.68f

/*
 * Writes one image into out (NHWC floats, caller-allocated, out_h * out_w * out_c):
 *   arch "vgg16": cs_preprocess_caffe;
 *   any other model of one input channel ("fmnist"): cs_preprocess_gray01;
 *   any other of three: cs_preprocess_rgb01.
 * Returns 0, or -1 with a reason in err (-2 when out of memory; every function here).
 */
int cs_preprocess_image(const char *arch, const cs_image *img, int out_h, int out_w, int out_c, float *out,
                        char *err, size_t errlen);

/* RGB (gray replicated), each channel resized as cs_preprocess_gray01 resizes,
 * divided by 255: the input of a model trained on images scaled to 0..1. */
int cs_preprocess_rgb01(const cs_image *img, int out_h, int out_w, float *out, char *err, size_t errlen);

/* Gray (PIL "L" luma), resized to out_h x out_w (area averaging when shrinking a
 * photo, bilinear when enlarging; no resampling at all when the size already
 * matches, so a 28x28 gray image comes through unchanged), divided by 255. */
int cs_preprocess_gray01(const cs_image *img, int out_h, int out_w, float *out, char *err,
                         size_t errlen);

/* Keras preprocess_input(mode="caffe") after load_img(target_size=...): RGB (gray
 * replicated), resized with PIL NEAREST, channels reordered to B, G, R, ImageNet
 * mean subtracted, no scaling. out holds out_h * out_w * 3 floats. */
int cs_preprocess_caffe(const cs_image *img, int out_h, int out_w, float *out, char *err,
                        size_t errlen);

#endif
