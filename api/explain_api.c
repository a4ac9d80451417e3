/*
 * explain_api.c - what the explanation routes share: reading methods and parameters
 * from the query, the image being explained, drawing, and the JSON of maps, scores and
 * sanity checks.
 */
#include "explain_api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "draw.h"
#include "params.h"
#include "reply.h"

const cs_explain_method *cs_explain_method_or_reply(const cs_req *req, cs_reply *rep)
{
    const char *name = cs_req_query(req, "method");
    const cs_explain_method *meth = cs_explain_find(name);
    if (meth) return meth;
    char list[512] = "";
    for (int i = 0; i < cs_explain_count(); i++) {
        strncat(list, i ? ", " : "", sizeof list - strlen(list) - 1);
        strncat(list, cs_explain_method_at(i)->name, sizeof list - strlen(list) - 1);
    }
    if (!name) cs_reply_error(rep, 400, "bad_parameter", "method is required: one of %s", list);
    else cs_reply_error(rep, 400, "bad_parameter", "method must be one of %s, got '%.64s'", list, name);
    return NULL;
}

int cs_explain_methods_or_reply(const cs_req *req, cs_reply *rep, const cs_explain_method **out, int max)
{
    const char *list = cs_req_query(req, "methods");
    int n = 0;
    if (!list) {
        for (int i = 0; i < cs_explain_count() && n < max; i++) out[n++] = cs_explain_method_at(i);
        return n;
    }
    for (const char *s = list; *s;) {
        size_t len = strcspn(s, ",");
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)(len < sizeof name ? len : sizeof name - 1), s);
        const cs_explain_method *meth = cs_explain_find(name);
        if (!meth) {
            cs_reply_error(rep, 400, "bad_parameter", "methods: '%.64s' is not a method (see the method parameter)",
                           name);
            return 0;
        }
        int seen = 0;
        for (int i = 0; i < n; i++) seen |= out[i] == meth;
        if (!seen) {
            if (n == max) {
                cs_reply_error(rep, 400, "bad_parameter", "methods: at most %d", max);
                return 0;
            }
            out[n++] = meth;
        }
        s += len + (s[len] == ',');
    }
    if (!n) cs_reply_error(rep, 400, "bad_parameter", "methods must name at least one method");
    return n;
}

int cs_explain_params_or_reply(const cs_req *req, cs_reply *rep, const cs_model *m,
                               const cs_explain_method *const *meths, int n, cs_explain_params *p)
{
    static const char *const scores[] = {"logit", "probability", NULL};
    static const char *const baselines[] = {"black", "blur", "noise", NULL};
    cs_explain_params_default(p);
    long samples, steps, patch, stride, batch, seed;
    double noise, blur;
    int score, baseline;
    if (!cs_param_choice(req, rep, "score", scores, CS_SCORE_LOGIT, &score) ||
        !cs_param_int(req, rep, "samples", p->samples, 1, CS_EXPLAIN_MAX_SAMPLES, &samples) ||
        !cs_param_float(req, rep, "noise", p->noise, 0, CS_EXPLAIN_MAX_NOISE, &noise) ||
        !cs_param_int(req, rep, "steps", p->steps, 1, CS_EXPLAIN_MAX_STEPS, &steps) ||
        !cs_param_choice(req, rep, "baseline", baselines, CS_BASELINE_BLACK, &baseline) ||
        !cs_param_float(req, rep, "blur_sigma", 0, 0, CS_EXPLAIN_MAX_BLUR, &blur) ||
        !cs_param_int(req, rep, "patch", 0, 1, 4096, &patch) || !cs_param_int(req, rep, "stride", 0, 1, 4096, &stride) ||
        !cs_param_int(req, rep, "batch", 0, 1, CS_EXPLAIN_MAX_BATCH, &batch) ||
        !cs_param_int(req, rep, "seed", 1, 0, 9007199254740991L, &seed))
        return 0;
    p->score_kind = score;
    p->samples = (int)samples;
    p->noise = (float)noise;
    p->steps = (int)steps;
    p->baseline = baseline;
    p->blur_sigma = (float)blur;
    p->patch = (int)patch;
    p->stride = (int)stride;
    p->batch = (int)batch;
    p->seed = (uint64_t)seed;
    const char *lname = cs_req_query(req, "layer");
    if (lname && (p->layer = cs_layer_or_reply(req, rep, m, lname)) < 0) return 0;
    if ((p->class_index = cs_class_or_reply(req, rep, m)) == -2) return 0;
    char err[300];
    for (int i = 0; i < n; i++) {
        const char *bad = cs_explain_params_check(m, meths[i], p, err, sizeof err);
        if (bad) {
            cs_reply_error(rep, 400, strcmp(bad, "layer") ? "bad_parameter" : "not_spatial", "%s (method %s)", err,
                           meths[i]->name);
            return 0;
        }
    }
    return 1;
}

int cs_faith_params_or_reply(const cs_req *req, cs_reply *rep, const cs_model *m, const cs_explain_params *ep,
                             cs_faith_params *fp)
{
    cs_faith_params_default(fp);
    long steps;
    double noise;
    const long pixels = (long)m->input.h * m->input.w;
    if (!cs_param_int(req, rep, "curve_steps", 0, 1, pixels, &steps) ||
        !cs_param_float(req, rep, "road_noise", fp->road_noise, 0, 1, &noise))
        return 0;
    fp->curve_steps = (int)steps;
    fp->road_noise = (float)noise;
    fp->seed = ep->seed;
    fp->batch = ep->batch;
    fp->blur_sigma = ep->blur_sigma;
    return 1;
}

/* ---- the image ---------------------------------------------------------------------- */

int cs_explain_req_model(cs_req *req, cs_reply *rep, cs_explain_req *r)
{
    memset(r, 0, sizeof *r);
    if (!(r->v = cs_model_or_reply(req, rep, &r->served))) return 0;
    r->m = r->v->model;
    return 1;
}

int cs_explain_req_image(cs_req *req, cs_reply *rep, cs_explain_req *r, const cs_explain_method *const *meths, int n,
                         const cs_explain_params *p)
{
    const cs_model *m = r->m;
    char err[300];
    if (!cs_images_or_reply(req, rep, 1, &r->in)) return 0;
    const cs_image *img = cs_image_at_or_reply(req, rep, &r->in, 0);
    if (!img || !(r->x = cs_tensor_or_reply(req, rep, m, img))) return 0;
    r->black = malloc(2 * (size_t)m->input.c * sizeof(float));
    if (!r->black || cs_explain_input_range(m, r->black, r->black + m->input.c) != 0 ||
        !(r->e = cs_version_exec_get(r->v))) {
        cs_reply_nomem(rep, "cannot answer");
        return 0;
    }
    r->white = r->black + m->input.c;
    double t0 = cs_now();
    int rc = cs_explainer_init_above(&r->ex, m, r->x, r->e, cs_explain_keep(m, meths, n, p), err, sizeof err);
    if (rc != 0) {
        if (rc == -2) cs_reply_nomem(rep, "cannot run the model");
        else cs_reply_internal(rep, err);
        return 0;
    }
    cs_req_stage_add(req, CS_STAGE_FORWARD, t0);
    r->ex.black = r->black;
    r->ex.white = r->white;
    r->ready = 1;
    return 1;
}

void cs_explain_req_close(cs_explain_req *r)
{
    if (r->ready) cs_explainer_free(&r->ex);
    if (r->e) cs_version_exec_put(r->v, r->e);
    free(r->x);
    free(r->black);
    cs_input_free(&r->in);
    if (r->v) cs_version_release(r->v);
    memset(r, 0, sizeof *r);
}

/* ---- pictures ----------------------------------------------------------------------- */

float cs_explain_default_alpha(const cs_model *m) { return m->input.c == 1 ? 0.7f : 0.4f; }

/* As the gradcam route: 540 across for a one-channel model (the notebook's display
 * size), the photo's own width otherwise. */
cs_image *cs_explain_draw(const cs_explain_req *r, const cs_explain_map *map, int format, float alpha, int size)
{
    const cs_model *m = r->m;
    const cs_image *orig = &r->in.img;
    const int gray = m->input.c == 1;
    /* The picture drawn over is the part of the photo the model read (a centre crop
     * with some models): its aspect is the picture's. */
    cs_image base = {0};
    cs_image *img = NULL;
    if (cs_overlay_base(m, orig, r->x, &base) != CS_IMG_OK) return NULL;
    int ow = size ? size : gray ? 540 : base.w;
    int oh = (int)((double)ow * base.h / base.w + 0.5);
    if (oh < 1) oh = 1;
    if (format == 1) img = cs_draw_heatmap(map->heat, map->h, map->w, ow, oh);
    else img = cs_draw_gradcam_overlay(&base, map->heat, map->h, map->w, alpha, ow, oh);
    cs_image_free(&base);
    return img;
}

/* ---- JSON --------------------------------------------------------------------------- */

json_t *cs_rows_json(const float *v, int h, int w)
{
    json_t *rows = json_array();
    for (int y = 0; y < h; y++) {
        json_t *row = json_array();
        for (int x = 0; x < w; x++) json_array_append_new(row, json_real(v[(size_t)y * w + x]));
        json_array_append_new(rows, row);
    }
    return rows;
}

static json_t *floats_json(const float *v, int n)
{
    json_t *a = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(a, json_real(v[i]));
    return a;
}

json_t *cs_explain_method_json(const cs_explain_method *meth)
{
    return json_pack("{s:s,s:s,s:s,s:s}", "name", meth->name, "title", meth->title, "paper", meth->paper, "family",
                     meth->family == CS_EXPLAIN_CAM ? "cam" : "input");
}

json_t *cs_explain_params_json(const cs_model *m, const cs_explain_map *map)
{
    static const char *const baselines[] = {"black", "blur", "noise"};
    const cs_explain_params *p = &map->params;
    const unsigned use = map->method->params;
    json_t *o = json_object();
    if (use & CS_EP_LAYER) json_object_set_new(o, "layer", json_string(m->layers[map->layer].name));
    if (use & CS_EP_CLASS) json_object_set_new(o, "class", json_integer(map->class_index));
    if (use & CS_EP_SCORE) json_object_set_new(o, "score", json_string(p->score_kind ? "probability" : "logit"));
    if (use & CS_EP_SAMPLES) json_object_set_new(o, "samples", json_integer(p->samples));
    if (use & CS_EP_NOISE) json_object_set_new(o, "noise", json_real(p->noise));
    if (use & CS_EP_STEPS) json_object_set_new(o, "steps", json_integer(p->steps));
    if (use & CS_EP_BASELINE) json_object_set_new(o, "baseline", json_string(baselines[p->baseline]));
    if ((use & CS_EP_BLUR) && p->baseline == CS_BASELINE_BLUR) json_object_set_new(o, "blur_sigma", json_real(p->blur_sigma));
    if (use & CS_EP_PATCH) json_object_set_new(o, "patch", json_integer(p->patch));
    if (use & CS_EP_STRIDE) json_object_set_new(o, "stride", json_integer(p->stride));
    if (use & CS_EP_SEED) json_object_set_new(o, "seed", json_integer((json_int_t)p->seed));
    return o;
}

json_t *cs_explain_map_json(const cs_model *m, const cs_explain_map *map)
{
    json_t *o = json_pack("{s:o,s:o,s:i,s:s,s:f,s:s,s:f,s:f,s:o,s:i,s:i,s:o,s:o,s:b,s:{s:I,s:I},s:f}", "method",
                          cs_explain_method_json(map->method), "params", cs_explain_params_json(m, map),
                          "class_index", map->class_index, "label",
                          m->class_names ? m->class_names[map->class_index] : "", "score", (double)map->score,
                          "score_kind", map->score_kind ? "probability" : "logit", "logit", (double)map->logit,
                          "probability", (double)map->probability, "layer",
                          map->layer >= 0 ? json_string(m->layers[map->layer].name) : json_null(), "height", map->h,
                          "width", map->w, "map", cs_rows_json(map->map, map->h, map->w), "heatmap",
                          cs_rows_json(map->heat, map->h, map->w), "all_zero", map->all_zero, "passes", "forwards",
                          (json_int_t)map->forwards, "backwards", (json_int_t)map->backwards, "seconds",
                          map->seconds);
    json_object_set_new(o, "flat", json_boolean(map->flat));
    if (map->has_baseline) {
        double sum = 0;
        for (size_t i = 0; i < cs_shape_size(m->input); i++) sum += map->attr[i];
        json_object_set_new(o, "completeness",
                            json_pack("{s:f,s:f,s:f}", "attribution_sum", sum, "baseline_score",
                                      (double)map->baseline_score, "score_minus_baseline",
                                      (double)map->score - map->baseline_score));
    }
    return o;
}

json_t *cs_faith_json(const cs_faith_result *r)
{
    json_t *o = json_pack("{s:f}", "probability", (double)r->probability);
    if (r->which & CS_FAITH_CURVES) {
        json_object_set_new(o, "deletion_auc", json_real(r->deletion_auc));
        json_object_set_new(o, "insertion_auc", json_real(r->insertion_auc));
        json_object_set_new(o, "deletion", floats_json(r->deletion, r->n));
        json_object_set_new(o, "insertion", floats_json(r->insertion, r->n));
    }
    if (r->which & CS_FAITH_CONFIDENCE) {
        json_object_set_new(o, "masked_probability", json_real(r->masked_probability));
        json_object_set_new(o, "drop", json_real(r->drop));
        json_object_set_new(o, "increase", json_boolean(r->increase));
    }
    if (r->which & CS_FAITH_ROAD) {
        json_object_set_new(o, "road", json_real(r->road));
        json_object_set_new(o, "road_fractions", floats_json(r->road_fraction, CS_ROAD_POINTS));
        json_object_set_new(o, "road_morf", floats_json(r->road_morf, CS_ROAD_POINTS));
        json_object_set_new(o, "road_lerf", floats_json(r->road_lerf, CS_ROAD_POINTS));
    }
    json_object_set_new(o, "seconds", json_real(r->seconds));
    return o;
}

json_t *cs_sanity_json(const cs_sanity_result *r)
{
    json_t *steps = json_array();
    for (int i = 0; i < r->n; i++)
        json_array_append_new(steps, json_pack("{s:o,s:f,s:o}", "randomised", i ? json_string(r->layer[i]) : json_null(),
                                               "rank_correlation", r->rank_correlation[i], "heatmap",
                                               cs_rows_json(r->heat[i], r->h, r->w)));
    return json_pack("{s:s,s:i,s:o}", "check", "cascading model randomisation (Adebayo et al., NeurIPS 2018)",
                     "class_index", r->class_index, "steps", steps);
}
