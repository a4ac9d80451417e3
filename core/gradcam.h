/*
 * gradcam.h - Grad-CAM (Selvaraju et al.) as the seed notebook computes it.
 *
 * For one image: forward; seed d(score)/d(top) for the chosen class, where score is
 * the logit (default) or the softmax probability (the notebook); back-propagate to
 * the chosen layer's output A (h x w x k); channel weights = mean of the gradient
 * over h and w; heatmap = weighted sum of the channels of A; ReLU; divide by the max.
 * It is the Grad-CAM row of the explanation methods (explain/cam_gradcam.c).
 * A heatmap that is all zero after the ReLU stays zero and is flagged; so is a flat one
 * (every value the same, e.g. all 1.0 for a blank image): it points at no place.
 */
#ifndef CS_GRADCAM_H
#define CS_GRADCAM_H

#include "exec.h"

enum { CS_SCORE_LOGIT = 0, CS_SCORE_PROBABILITY = 1 };

typedef struct {
    int class_index;
    float score;        /* the differentiated value */
    float logit, probability;
    int layer;
    int h, w;
    float *heatmap;     /* h*w values in 0..1, owned (free()) */
    int all_zero;
    int flat;           /* every value within CS_GRADCAM_FLAT_SPREAD of the maximum (all zero too) */
} cs_gradcam_result;

/* A map whose values all lie within this fraction of its maximum draws as one colour. */
#define CS_GRADCAM_FLAT_SPREAD 1e-3f

/* e must have max_batch >= 1; input is one image in the model's input shape.
 * class_index < 0 means the predicted class. Returns 0, -1 when the layer has no
 * spatial output or the class is out of range (err says why), -2 when out of memory. */
int cs_gradcam(cs_exec *e, const float *input, int layer, int class_index, int score_kind,
               cs_gradcam_result *out, char *err, size_t errlen);

#endif
