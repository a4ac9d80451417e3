/*
 * gradcam.c (api) - Grad-CAM over HTTP: which part of the image made the network
 * choose a class, as an overlay, a bare heatmap, or the raw numbers in JSON.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "draw.h"
#include "gradcam.h"
#include "handlers.h"
#include "input.h"
#include "params.h"
#include "preprocess.h"
#include "reply.h"

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
    if ((cls = cs_class_or_reply(req, rep, m)) == -2) goto out;
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
        json_t *doc = json_pack("{s:s,s:i,s:o,s:o}", "model", s->name, "version", v->version, "results", results,
                                "preprocessing",
                                cs_preprocess_to_json(&m->preprocess, m->input.c, m->input.h, m->input.w));
        if (in.sample) json_object_set_new(doc, "sample", json_string(in.sample));
        cs_reply_json(rep, 200, doc);
        goto out;
    }
    json_decref(results);
    /* Output size: `size` across (height keeps the aspect); by default 540 for a gray
     * network (the notebook's display size for its 28x28 input) and the size of the
     * photo (or of the part the model read) otherwise. */
    double t0 = cs_now();
    cs_image *img = NULL;
    cs_image base = {0};
    if (cs_overlay_base(m, &in.img, x, &base) != CS_IMG_OK) {
        cs_reply_nomem(rep, "cannot draw the Grad-CAM image");
        goto out;
    }
    int ow = size ? (int)size : is_gray ? 540 : base.w;
    double ohd = size || is_gray ? (double)ow * base.h / base.w + 0.5 : base.h;
    if ((double)ow * ohd > (double)CS_DRAW_MAX_PIXELS) {
        cs_image_free(&base);
        cs_reply_error(rep, 400, "bad_parameter",
                       "the picture would be %dx%.0f pixels, above the limit of %lld: use a smaller size", ow, ohd,
                       (long long)CS_DRAW_MAX_PIXELS);
        goto out;
    }
    int oh = ohd < 1 ? 1 : (int)ohd;
    if (format == 1) img = cs_draw_heatmap(res.heatmap, res.h, res.w, ow, oh);
    else img = cs_draw_gradcam_overlay(&base, res.heatmap, res.h, res.w, (float)alpha, ow, oh);
    cs_image_free(&base);
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
