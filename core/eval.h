/*
 * eval.h - a model over a whole data set split: confusion matrix, per-class precision,
 * recall and F1, top-k accuracy, calibration (reliability bins, expected calibration
 * error) and every image's prediction, so mistakes can be listed most confident first
 * and two versions compared image by image.
 *
 * Calibration follows Guo et al. 2017 ("On Calibration of Modern Neural Networks"):
 * the confidence of an image is its top probability; images fall into n_bins equal
 * bins of confidence over [0, 1] (bin b holds (b/B, (b+1)/B], the first also 0);
 * ECE = sum over bins of (bin count / N) * |accuracy of the bin - mean confidence|.
 */
#ifndef CS_EVAL_H
#define CS_EVAL_H

#include <stddef.h>
#include <stdint.h>

#include "dataset.h"
#include "model.h"

#define CS_EVAL_TOPK 5   /* top-1 .. top-5 accuracy */
#define CS_EVAL_MAX_BINS 100

typedef struct {
    int n_bins;
    long count[CS_EVAL_MAX_BINS];
    double confidence[CS_EVAL_MAX_BINS]; /* mean top probability in the bin (0 when empty) */
    double accuracy[CS_EVAL_MAX_BINS];   /* fraction right in the bin (0 when empty) */
    double ece;
} cs_calibration;

typedef struct {
    int k;            /* classes (the model's outputs) */
    int n;            /* images evaluated: the first n of the split */
    long *confusion;  /* [k * k]: row = true class, column = predicted */
    uint16_t *pred;   /* [n] predicted class */
    float *conf;      /* [n] its probability */
    float *p_true;    /* [n] probability of the true class */
    long topk[CS_EVAL_TOPK]; /* images whose true class is among the top j + 1 */
    cs_calibration cal;
} cs_eval;

/* Progress after each batch; a nonzero return stops the evaluation (cancelled). */
typedef int (*cs_eval_progress_fn)(void *user, long done, long total);

/* 0 when m can be evaluated on d, else -1 with the reason. */
int cs_eval_check(const cs_model *m, const cs_dataset *d, char *err, size_t errlen);

/* Runs m over the first `limit` images of d (0: all) in inference mode. The model must
 * take the split's images (h x w x 1) and have at least 10 outputs. Returns 0, 1 when
 * the progress function stopped it, or -1 with err (out is then empty). */
int cs_eval_run(const cs_model *m, const cs_dataset *d, int limit, int n_bins, cs_eval_progress_fn progress,
                void *user, cs_eval *out, char *err, size_t errlen);
void cs_eval_free(cs_eval *e);

/* Precision, recall and F1 of class c (0 where undefined: nothing predicted as c, no
 * image of c), and its support (images of c). */
void cs_eval_class(const cs_eval *e, int c, double *precision, double *recall, double *f1, long *support);

/* The reliability bins and ECE of n predictions (confidence, right or not). */
void cs_calibrate(const float *conf, const uint8_t *correct, int n, int n_bins, cs_calibration *out);

/* The images of the cell (true t, predicted p), most confident first: up to max indices
 * into idx; returns how many the cell holds in all. */
long cs_eval_cell(const cs_eval *e, const uint8_t *labels, int t, int p, int *idx, int max);

#endif
