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
    for (int i = 0; i < in->n; i++) cs_image_free(&in->img[i]);
    in->n = 0;
}

int cs_images_or_reply(cs_req *req, cs_reply *rep, int max_images, cs_input_set *in)
{
    memset(in, 0, sizeof *in);
    in->label = -1;
    const char *sample = cs_req_query(req, "sample");
    char err[400];
    if (sample) {
        if (req->n_files) {
            cs_reply_error(rep, 400, "bad_request", "send either an image or ?sample=, not both");
            return 0;
        }
        int st = cs_data_sample(sample, &in->img[0], &in->label, err, sizeof err);
        if (st) {
            cs_reply_error(rep, st, st == 400 ? "bad_parameter" : st == 503 ? "data_unavailable" : "internal", "%s",
                           err);
            return 0;
        }
        in->n = 1;
        in->sample = sample;
        return 1;
    }
    if (req->n_files == 0) {
        cs_reply_error(rep, 400, "no_image",
                       "no image: send it as the body (Content-Type image/png or image/jpeg), as the "
                       "multipart field 'image', or pick one with ?sample=test:18");
        return 0;
    }
    if (req->n_files > max_images) {
        cs_reply_error(rep, 400, "too_many_images", "this call takes at most %d image%s, got %d", max_images,
                       max_images == 1 ? "" : "s", req->n_files);
        return 0;
    }
    double t0 = cs_now();
    for (int i = 0; i < req->n_files; i++) {
        const cs_upload_file *f = &req->files[i];
        int rc = cs_image_decode(f->data, f->len, (size_t)cs_api.max_pixels, &in->img[i], err, sizeof err);
        if (rc != CS_IMG_OK) {
            char which[160] = "";
            if (req->n_files > 1 || f->filename[0])
                cs_fmt(which, sizeof which, " (image %d%s%.100s)", i + 1, f->filename[0] ? ", " : "", f->filename);
            int status = rc == CS_IMG_NOT_IMAGE ? 415 : rc == CS_IMG_NOMEM ? 500 : 422;
            const char *code = rc == CS_IMG_NOT_IMAGE  ? "unsupported_media_type"
                               : rc == CS_IMG_TOO_LARGE ? "image_too_large"
                               : rc == CS_IMG_CORRUPT   ? "corrupt_image"
                                                        : "internal";
            /* The decoder's own words already say "not a PNG or JPEG image". */
            if (rc == CS_IMG_NOT_IMAGE)
                cs_reply_error(rep, status, code, "%s%s", err, which);
            else
                cs_reply_error(rep, status, code, "cannot decode the image%s: %s", which, err);
            cs_input_free(in);
            cs_req_stage_add(req, CS_STAGE_DECODE, t0);
            return 0;
        }
        in->n = i + 1;
    }
    cs_req_stage_add(req, CS_STAGE_DECODE, t0);
    return 1;
}

float *cs_tensor_or_reply(cs_req *req, cs_reply *rep, const cs_model *m, const cs_image *img)
{
    double t0 = cs_now();
    float *x = malloc(cs_shape_size(m->input) * sizeof(float));
    char err[300];
    if (!x) {
        cs_reply_internal(rep, "out of memory");
        return NULL;
    }
    if (cs_preprocess_model(m, img, x, err, sizeof err) != 0) {
        free(x);
        cs_reply_error(rep, 422, "bad_image", "cannot prepare the image for %s: %s", m->arch, err);
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
