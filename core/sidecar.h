/*
 * sidecar.h - what a model file does not say about itself, in a small JSON file next
 * to it (NAME.json beside NAME.onnx, NAME.h5, NAME.keras or NAME.csm):
 *
 *   {
 *     "labels": ["cat", "dog", ...],        one per class, or [wnid, label] pairs
 *     "labels_file": "classes.txt",          or a file in the same folder: one label a line
 *                                            ("n01440764 tench" lines keep the WordNet id),
 *                                            a JSON list, or a class index {"0": [wnid, label]}
 *     "preprocessing": {"mode": "torch", "resize": "bilinear", "fit": "crop", "crop": 0.875},
 *     "description": "free text",
 *     "precision": "bf16"                    inference in bf16 or fp32 (bf16_plan.h); what
 *                                            the service was told otherwise when not given
 *   }
 *
 * Every key is optional; an unknown key, a label count other than the model's classes
 * or a preprocessing field that does not fit the model is refused naming what is
 * wrong, so a typo is not silently ignored.
 */
#ifndef CS_SIDECAR_H
#define CS_SIDECAR_H

#include <stddef.h>

#include "model.h"

/* What applying a sidecar set. */
typedef struct {
    int labels;        /* class names were given */
    int preprocessing; /* the pipeline was given */
    char description[256];
    char precision[8]; /* "fp32" or "bf16" as the sidecar asks, "" when it says nothing
                          (the caller sets it: cs_model_set_precision) */
} cs_sidecar_info;

/* Applies the sidecar JSON text (len bytes) to m: class names (and WordNet ids) and
 * the preprocessing pipeline. dir: the folder a labels_file is read from (NULL: a
 * labels_file is refused). On failure m is unchanged. 0, or -1 with err. */
int cs_sidecar_apply(cs_model *m, const char *text, size_t len, const char *dir, cs_sidecar_info *info, char *err,
                     size_t errlen);

/* The same from the file at path (its folder is dir). 0 also when there is no such
 * file (info all zero); -1 with err when it exists and is wrong. */
int cs_sidecar_apply_file(cs_model *m, const char *path, cs_sidecar_info *info, char *err, size_t errlen);

/* Labels from text as a labels file or an upload's `labels` field holds them: a JSON
 * list (strings or [wnid, label] pairs), a JSON class index, or one label a line.
 * Fills names and ids (n strings each, ids[i] NULL when none; malloc'd, free with
 * cs_sidecar_free_labels). The count is *n. 0, or -1 with err. */
int cs_sidecar_parse_labels(const char *text, size_t len, char ***names, char ***ids, int *n, char *err,
                            size_t errlen);
void cs_sidecar_free_labels(char **names, char **ids, int n);

/* Sets m's classes from names and ids (ids may be NULL); n must be m's class count.
 * 0, or -1 with err. */
int cs_sidecar_set_labels(cs_model *m, char **names, char **ids, int n, char *err, size_t errlen);

#endif
