/*
 * values.c - the numbers behind the pictures: what a node gives for an image (each
 * channel's statistics, the order of its channels by strength, and a flat node's
 * values) and what a layer's weights hold (a histogram of each tensor).
 *
 * The feature-map grid (visual.c) draws with the same statistics: its shared scale is
 * this answer's min and max, its order=mean|max this answer's order.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handlers.h"
#include "input.h"
#include "params.h"
#include "reply.h"
#include "stats.h"

/* A float, or null when it is not a number JSON can carry. */
static json_t *num(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

/* min, max, mean, std of a summary (null when it has no finite value) and the count of
 * values left out. */
static void summary_into(json_t *o, const cs_summary *s)
{
    json_object_set_new(o, "min", s->n ? num(s->min) : json_null());
    json_object_set_new(o, "max", s->n ? num(s->max) : json_null());
    json_object_set_new(o, "mean", s->n ? num(s->mean) : json_null());
    json_object_set_new(o, "std", s->n ? num(s->std) : json_null());
    json_object_set_new(o, "nonfinite", json_integer((json_int_t)s->nonfinite));
}

static json_t *shape_json(cs_shape s)
{
    return json_pack("[i,i,i]", s.h, s.w, s.c);
}

/* order=: cs_channel_key's values, in its order. */
static const char *const k_orders[] = {"index", "mean", "max", NULL};

/* POST /v1/models/{model}/layers/{layer}/activations  image/png | image/jpeg | multipart
 * [sample, order=index|mean|max] */
void cs_h_activations(cs_req *req, cs_reply *rep)
{
    cs_model_version *v = cs_model_or_reply(req, rep, NULL);
    if (!v) return;
    const cs_model *m = v->model;
    cs_input_set in = {0};
    cs_exec *e = NULL;
    float *x = NULL;
    cs_summary *ch = NULL;
    int *order = NULL;
    int key;
    int li = cs_layer_or_reply(req, rep, m, cs_req_param(req, "layer"));
    if (li < 0 || !cs_param_choice(req, rep, "order", k_orders, CS_ORDER_INDEX, &key)) goto out;
    const cs_layer *l = &m->layers[li];
    if (!cs_images_or_reply(req, rep, 1, &in)) goto out;
    const cs_image *upload = cs_image_at_or_reply(req, rep, &in, 0);
    x = upload ? cs_tensor_or_reply(req, rep, m, upload) : NULL;
    if (!x) goto out;
    cs_input_free(&in);
    const int c = l->out.c;
    const size_t hw = (size_t)l->out.h * l->out.w;
    e = cs_version_exec_get(v);
    ch = malloc((size_t)c * sizeof *ch);
    order = malloc((size_t)c * sizeof *order);
    if (!e || !ch || !order) {
        cs_reply_nomem(rep, "cannot answer");
        goto out;
    }
    double t0 = cs_now();
    if (cs_exec_forward_upto(e, x, 1, li) != 0) {
        cs_reply_nomem(rep, "cannot answer");
        goto out;
    }
    cs_req_stage_add(req, CS_STAGE_FORWARD, t0);
    const float *y = e->act[li];
    cs_summary all;
    cs_summarise(y, hw * (size_t)c, &all);
    cs_channel_stats(y, hw, c, ch);
    if (cs_channel_order(ch, c, (cs_channel_key)key, order) != 0) {
        cs_reply_nomem(rep, "cannot answer");
        goto out;
    }
    json_t *mins = json_array(), *maxs = json_array(), *means = json_array(), *stds = json_array();
    for (int k = 0; k < c; k++) {
        const cs_summary *s = &ch[k];
        json_array_append_new(mins, s->n ? num(s->min) : json_null());
        json_array_append_new(maxs, s->n ? num(s->max) : json_null());
        json_array_append_new(means, s->n ? num(s->mean) : json_null());
        json_array_append_new(stds, s->n ? num(s->std) : json_null());
    }
    json_t *doc = json_pack("{s:s,s:i,s:s,s:i,s:s,s:o,s:b,s:{s:o,s:o,s:o,s:o}}", "model", cs_req_param(req, "model"),
                            "version", v->version, "layer", l->name, "index", li, "type",
                            cs_layer_kind_name(l->kind), "shape", shape_json(l->out), "spatial",
                            l->out.h > 1 || l->out.w > 1, "channels", "min", mins, "max", maxs, "mean", means, "std",
                            stds);
    if (!doc) {
        cs_reply_nomem(rep, "cannot answer");
        goto out;
    }
    summary_into(doc, &all);
    if (key != CS_ORDER_INDEX) {
        json_t *a = json_array();
        for (int k = 0; k < c; k++) json_array_append_new(a, json_integer(order[k]));
        json_object_set_new(doc, "order", a);
    }
    /* A flat node (a dense layer, a pooled vector) is short enough to send whole. */
    if (hw == 1) {
        json_t *vals = json_array();
        for (int k = 0; k < c; k++) json_array_append_new(vals, num(y[k]));
        json_object_set_new(doc, "values", vals);
    }
    char hdr[16];
    snprintf(hdr, sizeof hdr, "%d", v->version);
    cs_reply_header(rep, "X-Model-Version", hdr);
    cs_reply_json(rep, 200, doc);
out:
    free(order);
    free(ch);
    free(x);
    cs_version_exec_put(v, e);
    cs_input_free(&in);
    cs_version_release(v);
}

/* GET /v1/models/{model}/layers/{layer}/weights  [bins] */
void cs_h_weights(cs_req *req, cs_reply *rep)
{
    cs_model_version *v = cs_model_or_reply(req, rep, NULL);
    if (!v) return;
    const cs_model *m = v->model;
    uint64_t *counts = NULL;
    double *edges = NULL;
    json_t *tensors = NULL;
    long bins;
    int li = cs_layer_or_reply(req, rep, m, cs_req_param(req, "layer"));
    if (li < 0 || !cs_param_int(req, rep, "bins", 30, 1, 1000, &bins)) goto out;
    const cs_layer *l = &m->layers[li];
    /* Weights change only with the version: a browser asking again gets 304. */
    char etag[128];
    snprintf(etag, sizeof etag, "\"%s-w%08x-%d-%ld\"", m->arch, v->crc, li, bins);
    if (cs_reply_etag(req, rep, etag)) goto out;
    counts = malloc((size_t)bins * sizeof *counts);
    edges = malloc((size_t)(bins + 1) * sizeof *edges);
    tensors = json_array();
    if (!counts || !edges || !tensors) {
        cs_reply_nomem(rep, "cannot answer");
        goto out;
    }
    for (int j = 0; j < l->n_params; j++) {
        const cs_param *p = &l->params[j];
        cs_summary s;
        cs_summarise(p->data, p->size, &s);
        json_t *shape = json_array(), *ec = json_array(), *cc = json_array();
        /* A tensor of no finite value has no range to count in. */
        if (s.n && cs_histogram(p->data, p->size, (int)bins, s.min, s.max, counts, edges) == 0) {
            for (long b = 0; b <= bins; b++) json_array_append_new(ec, json_real(edges[b]));
            for (long b = 0; b < bins; b++) json_array_append_new(cc, json_integer((json_int_t)counts[b]));
        }
        for (int d = 0; d < p->ndim; d++) json_array_append_new(shape, json_integer(p->dims[d]));
        json_t *t = json_pack("{s:s,s:o,s:I,s:b,s:o,s:o}", "name", p->name, "shape", shape, "size",
                              (json_int_t)p->size, "trainable", p->trainable, "edges", ec, "counts", cc);
        if (t) summary_into(t, &s);
        json_array_append_new(tensors, t);
    }
    json_t *doc = json_pack("{s:s,s:i,s:s,s:i,s:s,s:i,s:O}", "model", cs_req_param(req, "model"), "version",
                            v->version, "layer", l->name, "index", li, "type", cs_layer_kind_name(l->kind), "bins",
                            (int)bins, "tensors", tensors);
    if (!doc) cs_reply_nomem(rep, "cannot answer");
    else cs_reply_json(rep, 200, doc);
out:
    json_decref(tensors);
    free(counts);
    free(edges);
    cs_version_release(v);
}
