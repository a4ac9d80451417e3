/*
 * explain.c (api) - one explanation of one prediction: any method of the table
 * (core/explain/), as an overlay, a bare heatmap, or JSON with the raw map, the
 * parameters as run, and on request the faithfulness numbers and the randomisation
 * check.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "explain_api.h"
#include "handlers.h"
#include "params.h"
#include "reply.h"

static const char *const NO_YES[] = {"false", "true", NULL};

/* POST /v1/models/{model}/explain?method=M  image/png | image/jpeg | multipart
 * [layer, class, score, samples, noise, steps, baseline, blur_sigma, patch, stride, batch, seed,
 *  format=overlay|heatmap|json, alpha, size, sample, metrics, sanity, curve_steps, road_noise] */
void cs_h_explain(cs_req *req, cs_reply *rep)
{
    static const char *const formats[] = {"overlay", "heatmap", "json", NULL};
    cs_explain_req r;
    cs_explain_map map = {0};
    int format, metrics, sanity;
    double alpha;
    long size;
    if (!cs_explain_req_model(req, rep, &r)) goto out;
    const cs_model *m = r.m;
    const cs_explain_method *meth = cs_explain_method_or_reply(req, rep);
    cs_explain_params p;
    cs_faith_params fp;
    if (!meth || !cs_explain_params_or_reply(req, rep, m, &meth, 1, &p) ||
        !cs_param_choice(req, rep, "format", formats, 0, &format) ||
        !cs_param_float(req, rep, "alpha", cs_explain_default_alpha(m), 0, 10, &alpha) ||
        !cs_param_int(req, rep, "size", 0, 1, 4096, &size) ||
        !cs_param_choice(req, rep, "metrics", NO_YES, 0, &metrics) ||
        !cs_param_choice(req, rep, "sanity", NO_YES, 0, &sanity) || !cs_faith_params_or_reply(req, rep, m, &p, &fp))
        goto out;
    if (format != 2 && (metrics || sanity)) {
        cs_reply_error(rep, 400, "bad_parameter", "metrics and sanity come with format=json");
        goto out;
    }
    if (!cs_explain_req_image(req, rep, &r, &meth, 1, &p)) goto out;
    char err[300];
    double t0 = cs_now();
    int rc = cs_explain_run(&r.ex, meth, &p, &map, err, sizeof err);
    if (rc != 0) {
        if (rc == -2) cs_reply_nomem(rep, err);
        else cs_reply_error(rep, 400, "bad_parameter", "%s", err);
        goto out;
    }
    cs_req_stage_add(req, CS_STAGE_BACKWARD, t0);
    if (format == 2) {
        json_t *doc = json_pack("{s:s,s:i}", "model", r.served->name, "version", r.v->version);
        json_object_update_new(doc, cs_explain_map_json(m, &map));
        if (r.in.sample) json_object_set_new(doc, "sample", json_string(r.in.sample));
        if (metrics) {
            cs_faith_result fr;
            if (cs_faith_evaluate(&r.ex, &map, &fp, CS_FAITH_ALL, &fr, err, sizeof err) != 0) {
                json_decref(doc);
                cs_reply_internal(rep, err);
                goto out;
            }
            json_object_set_new(doc, "metrics", cs_faith_json(&fr));
            cs_faith_free(&fr);
        }
        if (sanity) {
            cs_sanity_result sr;
            if (cs_explain_sanity(m, r.x, r.black, r.white, meth, &p, &sr, err, sizeof err) != 0) {
                json_decref(doc);
                cs_reply_internal(rep, err);
                goto out;
            }
            json_object_set_new(doc, "sanity", cs_sanity_json(&sr));
            cs_sanity_free(&sr);
        }
        cs_reply_json(rep, 200, doc);
        goto out;
    }
    t0 = cs_now();
    cs_image *img = cs_explain_draw(&r, &map, format, (float)alpha, (int)size);
    cs_req_stage_add(req, CS_STAGE_DRAW, t0);
    if (cs_reply_image(req, rep, img, "cannot draw the explanation") != 0) goto out;
    char hdr[160];
    cs_reply_header(rep, "X-Method", meth->name);
    snprintf(hdr, sizeof hdr, "%d", map.class_index);
    cs_reply_header(rep, "X-Class-Index", hdr);
    /* Header values must be plain ASCII text: labels are. */
    snprintf(hdr, sizeof hdr, "%s", m->class_names ? m->class_names[map.class_index] : "");
    for (char *c = hdr; *c; c++)
        if (!isprint((unsigned char)*c)) *c = '_';
    cs_reply_header(rep, "X-Class-Label", hdr);
    cs_reply_header(rep, "X-All-Zero", map.all_zero ? "true" : "false");
    /* As the gradcam route: a flat map is no evidence; the explained scores and the version. */
    cs_reply_header(rep, "X-Flat", map.flat ? "true" : "false");
    snprintf(hdr, sizeof hdr, "%.9g", (double)map.logit);
    cs_reply_header(rep, "X-Logit", hdr);
    snprintf(hdr, sizeof hdr, "%.9g", (double)map.probability);
    cs_reply_header(rep, "X-Probability", hdr);
    snprintf(hdr, sizeof hdr, "%d", r.v->version);
    cs_reply_header(rep, "X-Model-Version", hdr);
out:
    cs_explain_map_free(&map);
    cs_explain_req_close(&r);
}
