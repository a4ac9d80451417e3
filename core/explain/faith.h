/*
 * faith.h - how far to trust a map: numbers that perturb the image along the map's
 * ranking of its pixels and watch the class probability, and the model-randomisation
 * sanity check.
 *
 * Pixels are ranked by the map's heat resized to the input (cs_explain_heat_at_input),
 * most relevant first, ties in raster order. A removed pixel becomes black (every
 * channel at the explainer's black value) unless a number says otherwise. The score
 * watched is the class probability (the model's output: the softmax when it ends in
 * one), of the map's class. Perturbed images run in batches (the explainer's batched
 * exec).
 *
 *   deletion, insertion (Petsiuk et al., RISE, BMVC 2018): remove the most relevant
 *     pixels a step at a time, from the image towards black (deletion, lower area is
 *     better), or put them back a step at a time into a blurred copy of the image
 *     (insertion, higher is better). Areas under the curves by the trapezoid rule over
 *     the fraction of pixels, from 0 to 1, as RISE's auc() computes them.
 *   average drop, increase in confidence (Chattopadhay et al., Grad-CAM++, WACV 2018):
 *     the image seen through the heat, black + heat (x - black); drop = max(0, p - o)/p,
 *     increase when o > p (o its probability, p the image's). Over N images: the mean
 *     drop and the share of increases, in percent.
 *   ROAD (Rong et al., A Consistent and Efficient Evaluation Strategy for Attribution
 *     Methods, ICML 2022): remove 10 %, 20 % ... 90 % of the pixels, the most relevant
 *     (MoRF) or the least relevant (LeRF) first, filling them by noisy linear
 *     imputation: each removed pixel is the weighted mean of its eight neighbours
 *     (1/6 beside, 1/12 diagonal), solved for all removed pixels at once as one banded
 *     symmetric positive definite system (LAPACK spbsv), plus Gaussian noise of
 *     road_noise times the channel's black-to-white range. Score: the mean over the
 *     fractions of (p_LeRF - p_MoRF) / 2, higher is better (pytorch-grad-cam's
 *     ROADCombined).
 */
#ifndef CS_EXPLAIN_FAITH_H
#define CS_EXPLAIN_FAITH_H

#include "explain.h"

#define CS_ROAD_POINTS 9 /* 10 % .. 90 % */

enum { CS_FAITH_CURVES = 1, CS_FAITH_CONFIDENCE = 2, CS_FAITH_ROAD = 4, CS_FAITH_ALL = 7 };

typedef struct {
    int curve_steps;  /* steps of the deletion and insertion curves (0: the image's height, so a
                         step is one row's worth of pixels, RISE's choice) */
    float blur_sigma; /* insertion's start (0: cs_explain_blur_sigma's default) */
    float road_noise; /* ROAD's imputation noise, as a fraction of the black-to-white range */
    uint64_t seed;    /* ROAD's noise */
    int batch;        /* images per batched pass (0: the explainer's choice) */
} cs_faith_params;

void cs_faith_params_default(cs_faith_params *p);

typedef struct {
    unsigned which;          /* the CS_FAITH_* parts computed */
    float probability;       /* of the class for the image */
    int n;                   /* points of each curve: point i has i / (n - 1) of the pixels changed */
    float *deletion, *insertion; /* [n] class probabilities (owned) */
    double deletion_auc, insertion_auc;
    float masked_probability; /* for black + heat (x - black) */
    double drop;             /* max(0, p - masked) / p, 0..1 */
    int increase;            /* masked > p */
    float road_fraction[CS_ROAD_POINTS], road_morf[CS_ROAD_POINTS], road_lerf[CS_ROAD_POINTS];
    double road;             /* mean of (lerf - morf) / 2 */
    long forwards;
    double seconds;
} cs_faith_result;

/* The chosen parts (CS_FAITH_*) for map, a map of the explainer's image. 0, or -1 with
 * err (out of memory). */
int cs_faith_evaluate(cs_explainer *x, const cs_explain_map *map, const cs_faith_params *p, unsigned which,
                      cs_faith_result *out, char *err, size_t errlen);
void cs_faith_free(cs_faith_result *r);

/* The parts, one file each (faith_curves.c, faith_confidence.c, faith_road.c); rank is
 * the pixel order (input h * w indices, most relevant first), heat the map at the
 * input's size. */
int cs_faith_curves(cs_explainer *x, const cs_explain_map *map, const int *rank, const cs_faith_params *p,
                    cs_faith_result *out);
int cs_faith_confidence(cs_explainer *x, const cs_explain_map *map, const float *heat, const cs_faith_params *p,
                        cs_faith_result *out);
int cs_faith_road(cs_explainer *x, const cs_explain_map *map, const int *rank, const cs_faith_params *p,
                  cs_faith_result *out);
/* Fills the removed pixels (removed[i] != 0, input h * w) of img (input shape) by
 * ROAD's noisy linear imputation. 0, or -1 (out of memory). */
int cs_road_impute(const cs_explainer *x, float *img, const uint8_t *removed, float noise, uint64_t seed);

/* ---- sanity.c: cascading model randomisation (Adebayo et al., Sanity Checks for
 * Saliency Maps, NeurIPS 2018) ------------------------------------------------------
 * On a clone of the model, the nodes with parameters are re-initialised one at a time
 * from the top down, cumulatively, each by its kind's own initialiser (layer_ops.h),
 * drawn from `seed`; after each, the method explains the same class of the same
 * image again, and its heat is compared with the trained model's by Spearman's rank
 * correlation. A map that barely changes while the model becomes random does not
 * explain the model. */
typedef struct {
    int n;                 /* steps: 0 = the trained model, then one per re-initialised node */
    int h, w;              /* every step's map size */
    char (*layer)[CS_NAME_MAX]; /* [n] the node re-initialised at that step ("" at step 0) */
    double *rank_correlation;   /* [n] Spearman's rho with step 0's heat (1 at step 0) */
    float **heat;          /* [n] each step's heat (h * w) */
    int class_index;
} cs_sanity_result;

/* black, white: as the explainer's (NULL: 0 and 1). 0, or -1 with err. */
int cs_explain_sanity(const cs_model *m, const float *input, const float *black, const float *white,
                      const cs_explain_method *meth, const cs_explain_params *p, cs_sanity_result *out, char *err,
                      size_t errlen);
void cs_sanity_free(cs_sanity_result *r);

#endif
