/*
 * insight.h - what the whole-data routes share (evaluation, version comparison): a
 * model named by {model} and ?version= (the served one, or a kept one read from its
 * store), and the evaluations cached per model version.
 */
#ifndef CS_API_INSIGHT_H
#define CS_API_INSIGHT_H

#include <jansson.h>
#include <stdint.h>

#include "dataset.h"
#include "eval.h"
#include "http.h"
#include "registry.h"

/* A model to look at: the served version (a reference) or a kept one (owned). */
typedef struct {
    cs_served_model *served;
    cs_model_version *ref; /* when it is the served version */
    cs_model *own;         /* when it was read from the store */
    const cs_model *m;
    int version;
    uint32_t crc;
} cs_model_ref;

/* {model} at version `version` (0: the one served). 1, or 0 after the reply (404
 * unknown model or version, 503 unavailable). */
int cs_model_ref_get(cs_req *req, cs_reply *rep, long version, cs_model_ref *r);
/* The same with the version from ?version= (400 when it is not a number). */
int cs_model_ref_or_reply(cs_req *req, cs_reply *rep, cs_model_ref *r);
void cs_model_ref_release(cs_model_ref *r);

/* ?split= (train or test, default test) and ?limit= (the first N images, 0: all): the
 * split and the number of images, or NULL after the reply (400, 503 data missing). */
const cs_dataset *cs_split_or_reply(cs_req *req, cs_reply *rep, const char **split, int *images);

/* One evaluation kept in the cache: what the routes read of it. */
typedef struct {
    int k, n;
    long *confusion;  /* [k * k], malloc'd copy */
    uint16_t *pred;   /* [n], malloc'd copy */
    double accuracy;
} cs_eval_summary;

/* The cached evaluation of (crc, version, split, images) copied out; 1, or 0 when it
 * is not cached. Free with cs_eval_summary_free. */
int cs_eval_cached(uint32_t crc, int version, const char *split, int images, cs_eval_summary *out);
void cs_eval_summary_free(cs_eval_summary *s);
/* Evaluates r's model over the split now, on the calling thread, and caches it (the
 * comparison of two versions needs both). 0, or -1 with err. */
int cs_eval_now(const cs_model_ref *r, const char *split, const cs_dataset *d, int images, char *err,
                size_t errlen);

#endif
