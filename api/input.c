/*
 * input.c - model lookup, image gathering and preprocessing shared by the image routes.
 */
#include "input.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api.h"
#include "data.h"
#include "params.h"
#include "preprocess.h"
#include "reply.h"

cs_model_version *cs_model_or_reply(cs_req *req, cs_reply *rep, cs_served_model **served)
{
    const char *name = cs_req_param(req, "model");
    cs_served_model *s = cs_registry_find(name);
    if (!s) {
        cs_reply_not_found(rep, "model", name);
        return NULL;
    }
    char reason[512];
    cs_model_version *v = cs_served_acquire(s, reason, sizeof reason);
    if (!v) {
        cs_reply_error(rep, 503, "model_unavailable", "model '%s' is unavailable: %s", name, reason);
        cs_reply_header(rep, "Retry-After", "5");
        return NULL;
    }
    if (served) *served = s;
    return v;
}

void cs_input_free(cs_input_set *in)
{
    cs_image_free(&in->img);
    in->at = -1;
}

/* " (image 3, cat.png)" when it helps to say which image of the request failed. */
static void which_image(const cs_req *req, int i, char *buf, size_t n)
{
    const cs_upload_file *f = &req->files[i];
    buf[0] = 0;
    if (req->n_files > 1 || f->filename[0])
        cs_fmt(buf, n, " (image %d%s%.100s)", i + 1, f->filename[0] ? ", " : "", f->filename);
}

/* The reply for a cs_image_* failure code. */
static void reply_image_error(const cs_req *req, cs_reply *rep, int i, int rc, const char *err)
{
    char which[160];
    which_image(req, i, which, sizeof which);
    switch (rc) {
    case CS_IMG_NOT_IMAGE:
        /* The decoder's own words already say "not a PNG or JPEG image". */
        cs_reply_error(rep, 415, "unsupported_media_type", "%s%s", err, which);
        break;
    case CS_IMG_NOMEM: cs_reply_nomem(rep, "cannot decode the image"); break;
    case CS_IMG_TOO_LARGE:
        cs_reply_error(rep, 422, "image_too_large", "cannot decode the image%s: %s (at most %ld pixels, --max-pixels)",
                       which, err, cs_api.max_pixels);
        break;
    case CS_IMG_TOO_COSTLY:
        cs_reply_error(rep, 422, "image_too_costly", "cannot decode the image%s: %s", which, err);
        break;
    default: cs_reply_error(rep, 422, "corrupt_image", "cannot decode the image%s: %s", which, err);
    }
}

int cs_images_or_reply(cs_req *req, cs_reply *rep, int max_images, cs_input_set *in)
{
    memset(in, 0, sizeof *in);
    in->label = -1;
    in->at = -1;
    const char *sample = cs_req_query(req, "sample");
    char err[400];
    int sent = req->n_files + req->n_files_over;
    if (sample) {
        if (sent) {
            cs_reply_error(rep, 400, "bad_request", "send either an image or ?sample=, not both");
            return 0;
        }
        int st = cs_data_sample(sample, &in->img, &in->label, err, sizeof err);
        if (st == -1) {
            cs_reply_nomem(rep, "cannot copy the sample");
            return 0;
        }
        if (st) {
            cs_reply_error(rep, st, st == 400 ? "bad_parameter" : st == 503 ? "data_unavailable" : "internal", "%s",
                           err);
            return 0;
        }
        in->n = 1;
        in->at = 0;
        in->sample = sample;
        return 1;
    }
    if (sent == 0) {
        cs_reply_error(rep, 400, "no_image",
                       "no image: send it as the body (Content-Type image/png or image/jpeg), as the "
                       "multipart field 'image', or pick one with ?sample=test:18");
        return 0;
    }
    if (sent > max_images) {
        cs_reply_error(rep, 400, "too_many_images", "this call takes at most %d image%s, got %d", max_images,
                       max_images == 1 ? "" : "s", sent);
        return 0;
    }
    /* Every header before any decoding: a request over its budget costs no decoding. */
    double t0 = cs_now();
    unsigned long long total = 0;
    for (int i = 0; i < req->n_files; i++) {
        const cs_upload_file *f = &req->files[i];
        int w, h;
        int rc = cs_image_probe(f->data, f->len, &w, &h, err, sizeof err);
        if (rc == CS_IMG_OK && (unsigned long long)w * (unsigned long long)h > (unsigned long long)cs_api.max_pixels) {
            cs_fmt(err, sizeof err, "%dx%d is %llu pixels", w, h, (unsigned long long)w * (unsigned long long)h);
            rc = CS_IMG_TOO_LARGE;
        }
        if (rc != CS_IMG_OK) {
            reply_image_error(req, rep, i, rc, err);
            cs_req_stage_add(req, CS_STAGE_DECODE, t0);
            return 0;
        }
        total += (unsigned long long)w * (unsigned long long)h;
    }
    cs_req_stage_add(req, CS_STAGE_DECODE, t0);
    if (total > (unsigned long long)cs_api.max_request_pixels) {
        cs_reply_error(rep, 422, "too_many_pixels",
                       "the %d images hold %llu pixels together, above the limit of %ld for one request "
                       "(--max-request-pixels): send them in several requests",
                       req->n_files, total, cs_api.max_request_pixels);
        return 0;
    }
    in->n = req->n_files;
    in->decode_left = cs_api.decode_seconds - (cs_now() - t0);
    return 1;
}

const cs_image *cs_image_at_or_reply(cs_req *req, cs_reply *rep, cs_input_set *in, int i)
{
    if (i == in->at) return &in->img;
    cs_image_free(&in->img);
    in->at = -1;
    if (in->sample || i < 0 || i >= in->n) { /* a sample is read once, as image 0 */
        cs_reply_internal(rep, "no such image in the request");
        return NULL;
    }
    const cs_upload_file *f = &req->files[i];
    char err[400];
    double t0 = cs_now();
    cs_image_limits lim = {.max_pixels = (size_t)cs_api.max_pixels, .max_seconds = in->decode_left};
    int rc = lim.max_seconds > 0 ? cs_image_decode_limited(f->data, f->len, &lim, &in->img, NULL, err, sizeof err)
                                 : CS_IMG_TOO_COSTLY;
    in->decode_left -= cs_now() - t0;
    cs_req_stage_add(req, CS_STAGE_DECODE, t0);
    if (rc == CS_IMG_TOO_COSTLY && lim.max_seconds <= 0)
        cs_fmt(err, sizeof err, "the request's images took longer to decode than allowed");
    if (rc == CS_IMG_TOO_COSTLY)
        cs_fmt(err + strlen(err), sizeof err - strlen(err), " (%.3g s for the images of one request, "
               "--decode-seconds)", cs_api.decode_seconds);
    if (rc != CS_IMG_OK) {
        reply_image_error(req, rep, i, rc, err);
        return NULL;
    }
    in->at = i;
    return &in->img;
}

float *cs_tensor_or_reply(cs_req *req, cs_reply *rep, const cs_model *m, const cs_image *img)
{
    double t0 = cs_now();
    float *x = malloc(cs_shape_size(m->input) * sizeof(float));
    char err[300];
    if (!x) {
        cs_reply_nomem(rep, "cannot prepare the image");
        return NULL;
    }
    int rc = cs_preprocess_model(m, img, x, err, sizeof err);
    if (rc != 0) {
        free(x);
        if (rc == -2) cs_reply_nomem(rep, "cannot prepare the image");
        else cs_reply_error(rep, 422, "bad_image", "cannot prepare the image for %s: %s", m->arch, err);
        return NULL;
    }
    cs_req_stage_add(req, CS_STAGE_DECODE, t0);
    /* Every answer computed from an image says how the image was turned into input. */
    int said = 0;
    for (int i = 0; i < rep->n_headers; i++) said |= !strcmp(rep->header_names[i], "X-Preprocessing");
    if (!said) {
        char how[256];
        cs_preprocess_describe(&m->preprocess, m->input.c, m->input.h, m->input.w, how, sizeof how);
        cs_reply_header(rep, "X-Preprocessing", how);
    }
    return x;
}

int cs_layer_or_reply(const cs_req *req, cs_reply *rep, const cs_model *m, const char *name)
{
    (void)req;
    int i = cs_model_find_layer(m, name);
    long idx;
    if (i < 0 && cs_parse_long(name, &idx) && idx >= 0 && idx < m->n_layers) i = (int)idx;
    if (i < 0) cs_reply_error(rep, 404, "not_found", "model '%s' has no layer named '%.64s'", m->arch, name);
    return i;
}

int cs_class_or_reply(const cs_req *req, cs_reply *rep, const cs_model *m)
{
    const char *c = cs_req_query(req, "class");
    if (!c) return -1;
    long idx;
    if (cs_parse_long(c, &idx)) {
        if (idx >= 0 && idx < m->n_classes) return (int)idx;
        cs_reply_error(rep, 400, "bad_parameter", "class must be from 0 to %d or a label, got %ld", m->n_classes - 1,
                       idx);
        return -2;
    }
    for (int i = 0; i < m->n_classes; i++)
        if (!strcasecmp(c, m->class_names[i]) || (m->class_ids && m->class_ids[i] && !strcmp(c, m->class_ids[i])))
            return i;
    cs_reply_error(rep, 400, "bad_parameter", "class '%.64s' is not a class of this model (see GET /v1/models)", c);
    return -2;
}

int cs_overlay_base(const cs_model *m, const cs_image *orig, const float *x, cs_image *base)
{
    const cs_preprocess *p = &m->preprocess;
    if (m->input.c != 1) {
        cs_image region;
        int rc = cs_preprocess_region(p, orig, m->input.h, m->input.w, &region);
        if (rc != CS_IMG_OK) return rc;
        rc = cs_image_to_rgb(&region, base);
        cs_image_free(&region);
        return rc;
    }
    /* The input's values turned back into pixels by the model's own pipeline. */
    if (cs_image_alloc(base, m->input.w, m->input.h, 1) != CS_IMG_OK) return CS_IMG_NOMEM;
    for (int i = 0; i < m->input.w * m->input.h; i++) {
        double v = ((double)x[i] * p->std[0] + p->mean[0]) / p->scale + 0.5;
        base->px[i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
    }
    return CS_IMG_OK;
}
