/*
 * predict.c - classification of uploaded images (or a dataset sample).
 */
#include <stdlib.h>

#include "handlers.h"
#include "input.h"
#include "params.h"
#include "preprocess.h"
#include "reply.h"

/* Top k of n probabilities, largest first (k is small: a partial selection). */
static void top_k(const float *p, int n, int k, int *idx)
{
    for (int j = 0; j < k; j++) {
        int best = -1;
        for (int i = 0; i < n; i++) {
            int taken = 0;
            for (int t = 0; t < j; t++) taken |= idx[t] == i;
            if (!taken && (best < 0 || p[i] > p[best])) best = i;
        }
        idx[j] = best;
    }
}

static json_t *class_json(const cs_model *m, int c, double prob)
{
    json_t *o = json_pack("{s:i,s:s,s:o}", "index", c, "label", m->class_names[c], "probability", cs_json_number(prob));
    if (o && m->class_ids && m->class_ids[c]) json_object_set_new(o, "wnid", json_string(m->class_ids[c]));
    return o;
}

/* POST /v1/models/{model}/predict  image/png | image/jpeg | multipart (image, several)  [top_k, sample] */
void cs_h_predict(cs_req *req, cs_reply *rep)
{
    cs_model_version *v = cs_model_or_reply(req, rep, NULL);
    if (!v) return;
    const cs_model *m = v->model;
    long k;
    cs_input_set in;
    if (!cs_param_int(req, rep, "top_k", m->n_classes < 3 ? m->n_classes : 3, 1, m->n_classes, &k) ||
        !cs_images_or_reply(req, rep, CS_UPLOAD_MAX_FILES, &in)) {
        cs_version_release(v);
        return;
    }
    cs_exec *e = cs_version_exec_get(v);
    int idx[1000];
    json_t *preds = json_array();
    if (!e || !preds) {
        cs_reply_nomem(rep, "cannot start the forward pass");
        json_decref(preds);
        preds = NULL;
    }
    /* One image at a time: decoded, preprocessed, classified, freed. */
    for (int i = 0; preds && i < in.n; i++) {
        const cs_image *img = cs_image_at_or_reply(req, rep, &in, i);
        float *x = img ? cs_tensor_or_reply(req, rep, m, img) : NULL;
        if (!x) {
            json_decref(preds);
            preds = NULL;
            break;
        }
        cs_input_free(&in);
        double t0 = cs_now();
        int rc = cs_exec_predict(e, x, 1);
        cs_req_stage_add(req, CS_STAGE_FORWARD, t0);
        free(x);
        if (rc != 0) {
            cs_reply_nomem(rep, "cannot run the model");
            json_decref(preds);
            preds = NULL;
            break;
        }
        const float *p = e->act[m->n_layers - 1];
        top_k(p, m->n_classes, (int)(k < 1000 ? k : 1000), idx);
        json_t *top = json_array(), *all = json_array();
        for (int j = 0; j < k && j < 1000; j++) json_array_append_new(top, class_json(m, idx[j], p[idx[j]]));
        for (int c = 0; c < m->n_classes; c++) json_array_append_new(all, cs_json_number(p[c]));
        json_array_append_new(preds, json_pack("{s:o,s:o}", "top", top, "probabilities", all));
    }
    if (preds) {
        json_t *doc = json_pack("{s:s,s:i,s:o,s:o}", "model", cs_req_param(req, "model"), "version", v->version,
                                "predictions", preds, "preprocessing",
                                cs_preprocess_to_json(&m->preprocess, m->input.c, m->input.h, m->input.w));
        if (in.sample) {
            json_object_set_new(doc, "sample", json_string(in.sample));
            /* The dataset's own label, in Fashion-MNIST's classes whatever the model. */
            json_object_set_new(doc, "truth",
                                json_pack("{s:i,s:s}", "index", in.label, "label", CS_FMNIST_CLASSES[in.label]));
        }
        cs_reply_json(rep, 200, doc);
    }
    cs_version_exec_put(v, e);
    cs_input_free(&in);
    cs_version_release(v);
}
