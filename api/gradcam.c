/*
 * gradcam.c (api) - Grad-CAM over HTTP: which part of the image made the network
 * choose a class, as an overlay, a bare heatmap, or the raw numbers in JSON.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "draw.h"
#include "gradcam.h"
#include "handlers.h"
#include "input.h"
#include "params.h"
#include "reply.h"

/* {class}: an index, a label (any case) or a WordNet id. -1 = predicted; -2 after a reply. */
static int class_or_reply(const cs_req *req, cs_reply *rep, const cs_model *m)
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

/* The picture the heat is laid over: the network's own view for Fashion-MNIST (the
 * 28x28 gray input, as the notebook draws it), the uploaded photo for colour models. */
static int overlay_base(const cs_model *m, const cs_image *orig, const float *x, cs_image *base)
{
    if (m->input.c != 1) return cs_image_to_rgb(orig, base);
    if (cs_image_alloc(base, m->input.w, m->input.h, 1) != CS_IMG_OK) return CS_IMG_NOMEM;
    for (int i = 0; i < m->input.w * m->input.h; i++) {
        float v = x[i] * 255.0f + 0.5f;
        base->px[i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
    }
    return CS_IMG_OK;
}

static json_t *heat_json(const cs_gradcam_result *r)
{
    json_t *rows = json_array();
    for (int y = 0; y < r->h; y++) {
        json_t *row = json_array();
        for (int x = 0; x < r->w; x++) json_array_append_new(row, cs_json_number(r->heatmap[y * r->w + x]));
        json_array_append_new(rows, row);
    }
    return rows;
}

/* POST /v1/models/{model}/gradcam  image/png | image/jpeg | multipart
 * [layer, class, score=logit|probability, alpha, size, format=overlay|heatmap|json, sample] */
void cs_h_gradcam(cs_req *req, cs_reply *rep)
{
    cs_served_model *s;
    cs_model_version *v = cs_model_or_reply(req, rep, &s);
    if (!v) return;
    const cs_model *m = v->model;
    int is_gray = m->input.c == 1;
    static const char *const scores[] = {"logit", "probability", NULL};
    static const char *const formats[] = {"overlay", "heatmap", "json", NULL};
    int score, format, cls, li;
    double alpha;
    long size;
    cs_input_set in = {0};
    cs_exec *e = NULL;
    float *x = NULL;
    cs_gradcam_result res = {0};
    const char *lname = cs_req_query(req, "layer");
    if (lname) {
        if ((li = cs_layer_or_reply(req, rep, m, lname)) < 0) goto out;
    } else if ((li = cs_model_last_conv_activation(m)) < 0) {
        cs_reply_error(rep, 400, "not_spatial", "model '%s' has no spatial layer for Grad-CAM", s->name);
        goto out;
    }
    if (!cs_param_choice(req, rep, "score", scores, CS_SCORE_LOGIT, &score) ||
        !cs_param_choice(req, rep, "format", formats, 0, &format) ||
        !cs_param_float(req, rep, "alpha", is_gray ? 0.7 : 0.4, 0, 10, &alpha) ||
        !cs_param_int(req, rep, "size", 0, 1, 4096, &size))
        goto out;
    if ((cls = class_or_reply(req, rep, m)) == -2) goto out;
    const cs_layer *l = &m->layers[li];
    if (l->out.h < 2 || l->out.w < 2) {
        cs_reply_error(rep, 400, "not_spatial",
                       "layer '%s' (%s) has a %dx%dx%d output: Grad-CAM needs a layer with height and width, "
                       "such as the last convolution's activation '%s'",
                       l->name, cs_layer_kind_name(l->kind), l->out.h, l->out.w, l->out.c,
                       cs_model_last_conv_activation(m) >= 0 ? m->layers[cs_model_last_conv_activation(m)].name : "");
        goto out;
    }
    if (!cs_images_or_reply(req, rep, format == 2 ? CS_UPLOAD_MAX_FILES : 1, &in)) goto out;
    e = cs_version_exec_get(v);
    json_t *results = json_array();
    if (!e || !results) {
        json_decref(results);
        cs_reply_nomem(rep, "cannot start the forward pass");
        goto out;
    }
    /* One image at a time; a picture (format overlay or heatmap) keeps its one image
     * for the drawing. */
    for (int i = 0; i < in.n; i++) {
        free(x);
        const cs_image *img = cs_image_at_or_reply(req, rep, &in, i);
        if (!img || !(x = cs_tensor_or_reply(req, rep, m, img))) {
            json_decref(results);
            goto out;
        }
        if (format == 2) cs_input_free(&in);
        char err[300];
        free(res.heatmap);
        res.heatmap = NULL;
        double t0 = cs_now();
        int rc = cs_gradcam(e, x, li, cls, score, &res, err, sizeof err);
        if (rc != 0) {
            json_decref(results);
            if (rc == -2) cs_reply_nomem(rep, "cannot compute Grad-CAM");
            else cs_reply_error(rep, 400, "not_spatial", "%s", err);
            goto out;
        }
        cs_req_stage_add(req, CS_STAGE_BACKWARD, t0);
        if (format != 2) break;
        json_array_append_new(
            results, json_pack("{s:i,s:s,s:o,s:s,s:o,s:o,s:s,s:i,s:i,s:o,s:b,s:b}", "class_index", res.class_index,
                               "label", m->class_names[res.class_index], "score", cs_json_number(res.score),
                               "score_kind", scores[score], "logit", cs_json_number(res.logit), "probability",
                               cs_json_number(res.probability), "layer", l->name, "height", res.h, "width", res.w,
                               "heatmap", heat_json(&res), "all_zero", res.all_zero, "flat", res.flat));
    }
    if (format == 2) {
        json_t *doc = json_pack("{s:s,s:i,s:o}", "model", s->name, "version", v->version, "results", results);
        if (in.sample) json_object_set_new(doc, "sample", json_string(in.sample));
        cs_reply_json(rep, 200, doc);
        goto out;
    }
    json_decref(results);
    /* Output size: `size` across (height keeps the aspect); by default 540 for the
     * 28x28 network (the notebook's display size) and the photo's own size otherwise. */
    const cs_image *orig = &in.img;
    int ow = size ? (int)size : is_gray ? 540 : orig->w;
    double ohd = is_gray ? ow : size ? (double)size * orig->h / orig->w + 0.5 : orig->h;
    if ((double)ow * ohd > (double)CS_DRAW_MAX_PIXELS) {
        cs_reply_error(rep, 400, "bad_parameter",
                       "the picture would be %dx%.0f pixels, above the limit of %lld: use a smaller size", ow, ohd,
                       (long long)CS_DRAW_MAX_PIXELS);
        goto out;
    }
    int oh = ohd < 1 ? 1 : (int)ohd;
    double t0 = cs_now();
    cs_image *img = NULL;
    if (format == 1) {
        img = cs_draw_heatmap(res.heatmap, res.h, res.w, ow, oh);
    } else {
        cs_image base = {0};
        if (overlay_base(m, orig, x, &base) == CS_IMG_OK)
            img = cs_draw_gradcam_overlay(&base, res.heatmap, res.h, res.w, (float)alpha, ow, oh);
        cs_image_free(&base);
    }
    cs_req_stage_add(req, CS_STAGE_DRAW, t0);
    if (cs_reply_image(req, rep, img, "cannot draw the Grad-CAM image") != 0) goto out;
    char hdr[160];
    snprintf(hdr, sizeof hdr, "%d", res.class_index);
    cs_reply_header(rep, "X-Class-Index", hdr);
    /* Header values must be plain ASCII text: labels are. */
    snprintf(hdr, sizeof hdr, "%s", m->class_names[res.class_index]);
    for (char *p = hdr; *p; p++)
        if (!isprint((unsigned char)*p)) *p = '_';
    cs_reply_header(rep, "X-Class-Label", hdr);
    cs_reply_header(rep, "X-All-Zero", res.all_zero ? "true" : "false");
    /* A flat map (all zero included) singles out no place: the picture is no evidence. */
    cs_reply_header(rep, "X-Flat", res.flat ? "true" : "false");
    /* The explained score and the version, so a picture needs no second call for them. */
    snprintf(hdr, sizeof hdr, "%.9g", (double)res.logit);
    cs_reply_header(rep, "X-Logit", hdr);
    snprintf(hdr, sizeof hdr, "%.9g", (double)res.probability);
    cs_reply_header(rep, "X-Probability", hdr);
    snprintf(hdr, sizeof hdr, "%d", v->version);
    cs_reply_header(rep, "X-Model-Version", hdr);
out:
    free(res.heatmap);
    free(x);
    cs_version_exec_put(v, e);
    cs_input_free(&in);
    cs_version_release(v);
}
