/*
 * explain.h - explanations of one prediction, and numbers that say how far to trust them.
 *
 * Two families of maps, one table of methods (one file per method, in METHODS of
 * explain.c, the way layer kinds have their table):
 *   - class-activation maps (CAM) on a spatial node A (h x w x k) of any model: a weight
 *     per channel, or per position, from the gradients of the class score or from
 *     masked or ablated forwards, combined with A; ReLU. The map has the node's size.
 *   - attributions on the input: one value per input value (the input's shape), and a
 *     map with one value per pixel.
 * Every map also comes as `heat`: max(map, 0) divided by its maximum, the 0..1 picture
 * the drawing functions take and the ranking the faithfulness numbers use.
 *
 * The score of a class is its logit (the pre-softmax value, the default) or its
 * softmax probability, as for Grad-CAM (gradcam.h). Methods that perturb the image
 * (Score-CAM, occlusion, the baselines of Integrated Gradients, the faithfulness
 * numbers) remove a pixel by making it black: its input value is the model's value of
 * a black pixel (cs_explainer's `black`, 0 for inputs scaled to 0..1, minus the
 * ImageNet mean for VGG16's caffe preprocessing).
 *
 * Masked, occluded and perturbed images run through the model in batches (an exec
 * whose max_batch is the explainer's `batch`), which is what makes Score-CAM, occlusion
 * and the curves affordable.
 *
 * Nothing here knows of HTTP; the explainer is not thread-safe (one per thread), the
 * model is only read.
 */
#ifndef CS_EXPLAIN_H
#define CS_EXPLAIN_H

#include <stddef.h>
#include <stdint.h>

#include "exec.h"
#include "gradcam.h" /* the score kinds */
#include "model.h"

typedef enum { CS_EXPLAIN_CAM, CS_EXPLAIN_PIXEL } cs_explain_family;

/* Integrated Gradients' starting point. */
typedef enum { CS_BASELINE_BLACK, CS_BASELINE_BLUR, CS_BASELINE_NOISE, CS_BASELINE_COUNT } cs_explain_baseline;

/* What a method reads (cs_explain_method.params), so callers can list and check them. */
enum {
    CS_EP_LAYER = 1 << 0,
    CS_EP_CLASS = 1 << 1,
    CS_EP_SCORE = 1 << 2,
    CS_EP_SAMPLES = 1 << 3,
    CS_EP_NOISE = 1 << 4,
    CS_EP_STEPS = 1 << 5,
    CS_EP_BASELINE = 1 << 6,
    CS_EP_BLUR = 1 << 7,
    CS_EP_PATCH = 1 << 8,
    CS_EP_STRIDE = 1 << 9,
    CS_EP_BATCH = 1 << 10,
    CS_EP_SEED = 1 << 11,
};

/* Limits cs_explain_params_check enforces. */
#define CS_EXPLAIN_MAX_SAMPLES 1000
#define CS_EXPLAIN_MAX_STEPS 4096
#define CS_EXPLAIN_MAX_NOISE 10.0f
#define CS_EXPLAIN_MAX_BLUR 100.0f
#define CS_EXPLAIN_MAX_BATCH 256

/* cs_explain_params_default gives the defaults (in brackets). Zero in patch, stride,
 * blur_sigma and batch, and -1 in layer and class, mean "chosen for this model and
 * image" when a method runs; every other field must be in range. */
typedef struct {
    int layer;          /* CAM: the node; -1 = cs_model_last_conv_activation */
    int class_index;    /* -1 = the predicted class */
    int score_kind;     /* CS_SCORE_LOGIT (default) or CS_SCORE_PROBABILITY (gradcam.h) */
    int samples;        /* SmoothGrad: noisy copies (25) */
    float noise;        /* SmoothGrad: noise standard deviation / (max - min of the input) (0.15) */
    int steps;          /* Integrated Gradients: points on the path (64) */
    int baseline;       /* Integrated Gradients: cs_explain_baseline (black) */
    float blur_sigma;   /* blur baseline and insertion's start: Gaussian sigma in pixels
                           (0: max(1, 5 * width / 224), RISE's 5 at 224) */
    int patch, stride;  /* occlusion: square patch side and step in pixels (0: min(h, w) / 7
                           and half the patch, at least 1) */
    int batch;          /* images per batched pass (0: as many as 256 MB of activations hold, at most 64) */
    uint64_t seed;      /* SmoothGrad's noise, the noise baseline, ROAD's noise, re-initialisation */
} cs_explain_params;

void cs_explain_params_default(cs_explain_params *p);

/* One image being explained. */
typedef struct {
    const cs_model *model;
    const float *x;          /* the image, model input shape (borrowed) */
    const float *black;      /* per input channel: a black pixel's input value (NULL: 0) */
    const float *white;      /* per input channel: a white pixel's input value (NULL: 1) */
    cs_exec *e;              /* batch >= 1 exec (borrowed when given to init, else owned); it keeps
                                x's activations from init on: nothing else runs a forward on it */
    int own_e;
    cs_exec *eb;             /* batched passes, with input gradients (owned, made on first use) */
    int batch;               /* its max_batch */
    int predicted;           /* argmax of the model's output for x */
    float *out, *logits;     /* [classes] the output for x and its pre-softmax scores */
    int n_classes;
} cs_explainer;

/* The input values of a black and of a white pixel for m (c floats each), as the
 * model's preprocessing (preprocess.h, by its arch) makes them from an image. 0, or -1
 * (out of memory). */
int cs_explain_input_range(const cs_model *m, float *black, float *white);

/* Runs the image forward (the prediction every method starts from). e: an exec of the
 * model to use for single passes, or NULL to make one. 0, or -1 with err (-2 when out
 * of memory). */
int cs_explainer_init(cs_explainer *x, const cs_model *m, const float *input, cs_exec *e, char *err,
                      size_t errlen);
/* The same for class-activation maps of node `keep` alone (keep < 0: as above): the
 * forward writes what lies above keep (cs_exec_forward_above), so that the nodes below
 * it run fused as in a prediction. Methods that read below keep then fail with err. */
int cs_explainer_init_above(cs_explainer *x, const cs_model *m, const float *input, cs_exec *e, int keep, char *err,
                            size_t errlen);
void cs_explainer_free(cs_explainer *x);
/* The class a method explains for p->class_index: it, or the predicted class. */
int cs_explainer_class(const cs_explainer *x, int class_index);

/* One map, owned by the caller (cs_explain_map_free). */
struct cs_explain_method;
typedef struct {
    const struct cs_explain_method *method;
    int class_index;
    float score;             /* the differentiated value for x: the logit or the probability */
    float logit, probability;
    int score_kind;
    int layer;               /* CAM: the node; -1 for input attributions */
    int h, w;                /* the map's size: the node's (CAM) or the input's */
    float *map;              /* [h * w] the method's own values (CAMs after their ReLU) */
    float *heat;             /* [h * w] max(map, 0) / its maximum, in 0..1 */
    float *attr;             /* input attributions: [input size] one per input value; NULL for CAMs */
    int all_zero;            /* heat is all zero (nothing positive to show) */
    int flat;                /* every heat value within CS_GRADCAM_FLAT_SPREAD of the maximum (all
                                zero too): the map points at no place */
    int has_baseline;        /* Integrated Gradients: the score at its baseline, so that the sum of
                                attr can be held against score - baseline_score (completeness) */
    float baseline_score;
    long forwards, backwards; /* image passes the method took (a batch of n counts n) */
    int channel_sums;        /* Grad-CAM's channel weights came from the dense layer's channel sums
                                (cam_sums.h), its backward stopping above that layer */
    double seconds;
    cs_explain_params params; /* as run, defaults filled in */
} cs_explain_map;

void cs_explain_map_free(cs_explain_map *m);

typedef struct cs_explain_method {
    const char *name;   /* in URLs, files and the command line: "gradcam", "scorecam", ... */
    const char *title;  /* as the paper names it: "Grad-CAM++" */
    const char *paper;  /* authors, title, venue and year */
    cs_explain_family family;
    unsigned params;    /* the CS_EP_* fields it reads */
    /* Fills out->map (and out->attr for input attributions); explain.c fills the rest.
     * p has every default filled in. 0, or -1 with err. */
    int (*run)(cs_explainer *x, const cs_explain_params *p, cs_explain_map *out, char *err, size_t errlen);
} cs_explain_method;

/* The table: method i of cs_explain_count(), CAMs first; NULL past the end. */
int cs_explain_count(void);
const cs_explain_method *cs_explain_method_at(int i);
/* The method with that name, or NULL. */
const cs_explain_method *cs_explain_find(const char *name);

/* Checks p against the model and the method: the name of the first parameter out of
 * range ("layer", "class", "samples", "noise", "steps", "baseline", "blur_sigma",
 * "patch", "stride", "batch") with err saying why, or NULL when p is fine. */
const char *cs_explain_params_check(const cs_model *m, const cs_explain_method *meth, const cs_explain_params *p,
                                    char *err, size_t errlen);

/* Runs a method: checks the parameters, fills the defaults, computes the map and its
 * heat, counts passes and time. 0, -1 with err for a bad parameter, -2 when the
 * computation failed (out of memory; for Eigen-CAM also a failed eigensolver). */
int cs_explain_run(cs_explainer *x, const cs_explain_method *meth, const cs_explain_params *p, cs_explain_map *out,
                   char *err, size_t errlen);
/* The node an explainer that runs these n methods with p may forward above
 * (cs_explainer_init_above): the CAM node when one of them reads a layer (-1 when p's
 * is not one: the method then says why), else the top (the others run passes of their
 * own, cs_explainer_batch_exec). */
int cs_explain_keep(const cs_model *m, const cs_explain_method *const *meths, int n, const cs_explain_params *p);

/* ---- what the methods share (explain.c, cam.c) ---------------------------------- */

/* The exec for batched passes, of p->batch images (or as many as the budget allows):
 * made on first use, with input gradients. NULL when out of memory. */
cs_exec *cs_explainer_batch_exec(cs_explainer *x, const cs_explain_params *p);
/* The model's output for n images (input shape each), in batches: out[i] = the class's
 * score of image i (kind: CS_SCORE_LOGIT or CS_SCORE_PROBABILITY; a model without a
 * softmax top gives its output for both). 0, or -1 (out of memory). */
int cs_explainer_scores(cs_explainer *x, const cs_explain_params *p, const float *images, long n, int cls,
                        int score_kind, float *out, cs_explain_map *count);
/* d(score of cls)/d(input) for n images, in batches, into grads (n input sizes); with
 * guided set, through guided backpropagation. 0, or -1 (out of memory). */
int cs_explainer_gradients(cs_explainer *x, const cs_explain_params *p, const float *images, long n, int cls,
                           int score_kind, int guided, float *grads, cs_explain_map *count);
/* The input values of a black and of a white pixel in channel ch. */
float cs_explainer_black(const cs_explainer *x, int ch);
float cs_explainer_white(const cs_explainer *x, int ch);
/* A Gaussian blur of one image in the input shape (each channel): a kernel of radius
 * ceil(3 sigma) pixels, edges mirrored (reflect-101). out may be in. 0, or -1 (no memory). */
int cs_explain_blur(const float *in, int h, int w, int c, float sigma, float *out);
/* The blur sigma p asks for, or the default for this model. */
float cs_explain_blur_sigma(const cs_model *m, const cs_explain_params *p);
/* The heat resized to the input's height and width (bilinear, as cv2 INTER_LINEAR),
 * into out (input h * w floats). */
void cs_explain_heat_at_input(const cs_explain_map *map, const cs_model *m, float *out);

/* An input attribution's map from out->attr: a pixel's largest absolute value over its
 * channels, or the sum of its channels. 0, or -1 (no memory). */
int cs_attr_map_max_abs(const cs_model *m, cs_explain_map *out);
int cs_attr_map_sum(const cs_model *m, cs_explain_map *out);
/* Integrated Gradients' baseline of that kind (cs_explain_baseline) for x, into b
 * (input size). 0, or -1 (no memory). */
int cs_explain_baseline_image(cs_explainer *x, const cs_explain_params *p, int kind, float *b);

/* CAM building blocks: check the node, forward x, back-propagate the class score to
 * the node; *a and *g point into the exec (h * w * k each, NHWC) until its next pass.
 * Fills out's class, scores, layer and size. 0, or -1 with err. */
int cs_cam_gradients(cs_explainer *x, const cs_explain_params *p, cs_explain_map *out, const float **a,
                     const float **g, char *err, size_t errlen);
/* Each channel's mean gradient at the node (k floats into w, k = the node's channels),
 * as Grad-CAM weighs them: from the dense layer's channel sums when the node reaches it
 * through max pools and a flatten alone (cam_sums.h; out->channel_sums set), else from
 * the full gradient. *a as cs_cam_gradients'. 0, or -1 with err. */
int cs_cam_channel_means(cs_explainer *x, const cs_explain_params *p, cs_explain_map *out, const float **a,
                         float *w, char *err, size_t errlen);
/* Forward only (Score-, Eigen- and Ablation-CAM need no gradient). */
int cs_cam_activations(cs_explainer *x, const cs_explain_params *p, cs_explain_map *out, const float **a,
                       char *err, size_t errlen);
/* out->map = ReLU(sum_k w[k] a[., k]) over the out->h * out->w positions. 0, or -1 (no memory). */
int cs_cam_combine(const float *a, const float *w, int hw, int k, cs_explain_map *out);
/* The node CAM methods explain for p (the default when p->layer < 0), or -1 with err. */
int cs_cam_layer(const cs_model *m, int layer, char *err, size_t errlen);

/* Spearman's rank correlation of two maps of n values (ties get their mean rank), in
 * double; 0 when either map is constant. */
double cs_spearman(const float *a, const float *b, int n);

/* The methods (one file each). */
extern const cs_explain_method cs_explain_gradcam, cs_explain_gradcampp, cs_explain_xgradcam, cs_explain_hirescam,
    cs_explain_layercam, cs_explain_scorecam, cs_explain_eigencam, cs_explain_ablationcam;
extern const cs_explain_method cs_explain_gradient, cs_explain_gradient_x_input, cs_explain_smoothgrad,
    cs_explain_integrated_gradients, cs_explain_guided_backprop, cs_explain_guided_gradcam, cs_explain_occlusion;

#endif
