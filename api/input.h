/*
 * input.h - what image handlers share: the {model} lookup, the images of a request
 * (uploads or ?sample=split:index), and their conversion to the model's input.
 *
 * Each *_or_reply function returns its result, or NULL / 0 after writing the error
 * reply (404 unknown model, 503 unavailable or out of memory, 400 no image or too
 * many, 415 not an image, 422 corrupt, too large or too costly to decode).
 *
 * Images are decoded one at a time: cs_images_or_reply checks every upload's header
 * against the per-image and per-request pixel limits before anything is decoded,
 * and cs_image_at_or_reply then decodes image i in place of the one before, so a
 * request holds one decoded upload however many it sent.
 */
#ifndef CS_API_INPUT_H
#define CS_API_INPUT_H

#include "http.h"
#include "image.h"
#include "registry.h"
#include "upload.h"

typedef struct {
    int n;              /* images in the request */
    cs_image img;       /* image `at` (gray or RGB, owned), after cs_image_at_or_reply */
    int at;             /* index of img, -1 before the first */
    int label;          /* the sample's true class, -1 for uploads */
    const char *sample; /* the ?sample= spec, or NULL */
    double decode_left; /* seconds of decoding the request may still spend */
} cs_input_set;

/* A reference to the current version of {model}; release with cs_version_release. */
cs_model_version *cs_model_or_reply(cs_req *req, cs_reply *rep, cs_served_model **served);
/* The request's images (at most max_images): counted, their headers read and their
 * declared sizes checked against --max-pixels each and --max-request-pixels in
 * total; a ?sample= image is read. Nothing is decoded yet. 1, or 0 after a reply. */
int cs_images_or_reply(cs_req *req, cs_reply *rep, int max_images, cs_input_set *in);
/* Decodes image i (0 <= i < in->n) into in->img, freeing the image before it, within
 * what is left of the request's decoding time (--decode-seconds, spent by decoding
 * alone: not by the model's work between images). in->img, or NULL after a reply
 * (which names the image when there are several). */
const cs_image *cs_image_at_or_reply(cs_req *req, cs_reply *rep, cs_input_set *in, int i);
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
