/*
 * input.h - what image handlers share: the {model} lookup, the images of a request
 * (uploads or ?sample=split:index), and their conversion to the model's input.
 *
 * Each *_or_reply function returns its result, or NULL / 0 after writing the error
 * reply (404 unknown model, 503 unavailable, 400 no image, 415 not an image, 422
 * corrupt or too large).
 */
#ifndef CS_API_INPUT_H
#define CS_API_INPUT_H

#include "http.h"
#include "image.h"
#include "registry.h"
#include "upload.h"

typedef struct {
    int n;
    cs_image img[CS_UPLOAD_MAX_FILES]; /* decoded, gray or RGB, owned */
    int label;                         /* the sample's true class, -1 for uploads */
    const char *sample;                /* the ?sample= spec, or NULL */
} cs_input_set;

/* A reference to the current version of {model}; release with cs_version_release. */
cs_model_version *cs_model_or_reply(cs_req *req, cs_reply *rep, cs_served_model **served);
/* Decodes every image of the request (at most max_images). 1, or 0 after a reply. */
int cs_images_or_reply(cs_req *req, cs_reply *rep, int max_images, cs_input_set *in);
void cs_input_free(cs_input_set *in);
/* Model input for one image: malloc'd floats of the model's input shape, or NULL after a reply. */
float *cs_tensor_or_reply(cs_req *req, cs_reply *rep, const cs_model *m, const cs_image *img);
/* Index of {layer} in m (a Keras name or a number), or -1 after a 404 reply. */
int cs_layer_or_reply(const cs_req *req, cs_reply *rep, const cs_model *m, const char *name);

/* ?class=: an index, a label (any case) or a WordNet id. The class, -1 when absent (the
 * predicted one), or -2 after a 400 reply. */
int cs_class_or_reply(const cs_req *req, cs_reply *rep, const cs_model *m);
/* The picture heat is laid over: the network's own view for a one-channel model (its
 * input x at the input's size, turned back into pixels, as the notebook draws it), the
 * part of the uploaded photo orig the model read for colour models (all of it, or its
 * centre crop). CS_IMG_OK, or CS_IMG_NOMEM. */
int cs_overlay_base(const cs_model *m, const cs_image *orig, const float *x, cs_image *base);

#endif
