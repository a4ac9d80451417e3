/*
 * atlas.h - what each channel of a node responds to (as OpenAI Microscope shows it):
 * the data set images that excite it most, with the value and the patch of the input
 * that does it, and a feature visualisation, the input that maximises the channel,
 * found by gradient ascent with Lucid's regularisers (Olah et al. 2017, "Feature
 * Visualization"): a Fourier parametrisation scaled by 1/frequency, colours
 * decorrelated for RGB inputs, and random jitter, scale and rotation at every step so
 * the image must excite the channel robustly.
 *
 * A channel's excitation is the mean of its values over the node's height and width.
 */
#ifndef CS_ATLAS_H
#define CS_ATLAS_H

#include <stddef.h>
#include <stdint.h>

#include "dataset.h"
#include "exec.h"
#include "model.h"

typedef struct {
    float value;      /* the channel's largest value in the image */
    float mean;       /* its mean over positions (the excitation) */
    int image, y, x;  /* the image and the position of the largest value */
    int box[4];       /* the patch of the input behind that value: y0, x0, y1, x1 (exclusive) */
} cs_atlas_hit;

/* Progress (done of total); nonzero stops the work. */
typedef int (*cs_atlas_progress_fn)(void *user, long done, long total);

/* The top `top` images for every channel of node over the first `images` of d, by
 * largest value: hits[c * top + r], best first (value -1e30 when fewer images). The
 * model must take the split's images. 0, 1 stopped, or -1 with err. */
int cs_atlas_top(const cs_model *m, const cs_dataset *d, int images, int node, int top, cs_atlas_hit *hits,
                 cs_atlas_progress_fn progress, void *user, char *err, size_t errlen);

/* The input region that value (y, x, channel c) of node depends on for this input: the
 * bounding box of the non-zero input gradient (y0, x0, y1, x1, end exclusive); the whole
 * input when nothing is non-zero. e: max_batch >= 1, input gradient enabled. 0 or -1. */
int cs_atlas_patch(cs_exec *e, const float *input, int node, int y, int x, int c, int box[4]);

/* The excitation (channel mean) of channel c at node for each of n inputs. */
int cs_channel_means(cs_exec *e, const float *inputs, int n, int node, int c, float *out);

typedef struct {
    int steps;          /* 256 */
    float lr;           /* Adam's step on the parameters: 0.05 */
    int fourier;        /* 1: Fourier parametrisation (Lucid's fft_image), 0: pixels */
    float jitter;       /* random shift, in pixels, each way: 2 */
    float scale;        /* random scale in [1 - scale, 1 + scale]: 0.1 */
    float rotate;       /* random rotation in degrees, each way: 10 */
    float lo[3], hi[3]; /* each input channel's range (pixels map through a sigmoid into it) */
    uint64_t seed;
} cs_featvis_config;

/* Defaults for a model: input range 0..1 (gray or RGB), or Keras' caffe range for a
 * model named vgg16 (0..255 less the ImageNet mean, B, G, R). */
void cs_featvis_config_default(cs_featvis_config *c, const cs_model *m);

/* The input (model input shape, NHWC floats) that maximises channel c of node, and its
 * excitation measured on it as it is (no transforms) in *excitation. 0, 1 stopped, or
 * -1 with err. */
int cs_featvis(const cs_model *m, int node, int c, const cs_featvis_config *cfg, cs_atlas_progress_fn progress,
               void *user, float *image, float *excitation, char *err, size_t errlen);

#endif
