/*
 * model_versions.c - a trainable model's kept versions over HTTP: the list with each
 * run's record, serving a kept version again (rollback), and the comparison of two
 * versions on the test set (accuracy, per-class deltas, images whose prediction
 * changed).
 */
#include <stdlib.h>
#include <string.h>

#include "handlers.h"
#include "insight.h"
#include "params.h"
#include "reply.h"
#include "versions.h"

#define CHANGED_LISTED 200 /* images whose prediction changed, listed at most */

/* The {model} that keeps versions, or NULL after a 404 / 409 reply. */
static cs_served_model *store_or_reply(cs_req *req, cs_reply *rep)
{
    const char *name = cs_req_param(req, "model");
    cs_served_model *s = cs_registry_find(name);
    if (!s) {
        cs_reply_not_found(rep, "model", name);
        return NULL;
    }
    if (!s->store[0]) {
        cs_reply_error(rep, 409, "no_versions", "model '%s' keeps no versions: only trainable models do", name);
        return NULL;
    }
    return s;
}

static int served_number(cs_served_model *s)
{
    char reason[8];
    int version, training;
    cs_served_state(s, reason, sizeof reason, &version, &training);
    return version;
}

/* GET /v1/models/{model}/versions */
void cs_h_versions(cs_req *req, cs_reply *rep)
{
    cs_served_model *s = store_or_reply(req, rep);
    if (!s) return;
    int served = served_number(s);
    json_t *list = cs_versions_list(s->store);
    size_t i;
    json_t *r;
    json_array_foreach(list, i, r) {
        json_object_set_new(r, "served", json_boolean(json_integer_value(json_object_get(r, "version")) == served));
    }
    cs_reply_json(rep, 200, json_pack("{s:s,s:o,s:i,s:o}", "model", s->name, "served",
                                      served ? json_integer(served) : json_null(), "keep", s->keep, "versions", list));
}

/* POST /v1/models/{model}/versions/{version}/serve  -> 200 with the version now served */
void cs_h_version_serve(cs_req *req, cs_reply *rep)
{
    cs_served_model *s = store_or_reply(req, rep);
    if (!s) return;
    long n;
    const char *v = cs_req_param(req, "version");
    if (!cs_parse_long(v, &n) || n < 1 || n > 100000000) {
        cs_reply_error(rep, 400, "bad_parameter", "version must be a positive integer, got '%.32s'", v);
        return;
    }
    char err[500];
    int st = cs_served_rollback(s, (int)n, err, sizeof err);
    if (st) {
        cs_reply_error(rep, st, st == 404 ? "not_found" : st == 409 ? "no_versions" : "internal", "version %ld of '%s': %s",
                       n, s->name, err);
        return;
    }
    json_t *rec = cs_versions_get(s->store, (int)n);
    cs_reply_json(rep, 200, json_pack("{s:s,s:i,s:o}", "model", s->name, "served", served_number(s), "record",
                                      rec ? rec : json_null()));
}

/* Both versions' predictions on the split, evaluated now when not cached. 1, or 0
 * after the reply. */
static int summary_or_reply(cs_reply *rep, const cs_model_ref *r, const char *split, const cs_dataset *d, int images,
                            cs_eval_summary *out)
{
    char err[400];
    if (cs_eval_cached(r->crc, r->version, split, images, out)) return 1;
    if (cs_eval_check(r->m, d, err, sizeof err) != 0) {
        cs_reply_error(rep, 422, "not_evaluable", "%s", err);
        return 0;
    }
    if (cs_eval_now(r, split, d, images, err, sizeof err) != 0 || !cs_eval_cached(r->crc, r->version, split, images, out)) {
        cs_reply_internal(rep, err);
        return 0;
    }
    return 1;
}

static json_t *class_figures(const cs_eval_summary *s, int c)
{
    cs_eval ev = {.k = s->k, .n = s->n, .confusion = s->confusion};
    double p, r, f1;
    long support;
    cs_eval_class(&ev, c, &p, &r, &f1, &support);
    return json_pack("{s:f,s:f,s:f}", "precision", p, "recall", r, "f1", f1);
}

static double figure(json_t *o, const char *key)
{
    return json_number_value(json_object_get(o, key));
}

/* GET /v1/models/{model}/versions/compare  [a, b, split, limit] */
void cs_h_versions_compare(cs_req *req, cs_reply *rep)
{
    long a, b;
    if (!store_or_reply(req, rep) || !cs_param_int(req, rep, "a", 0, 1, 100000000, &a) ||
        !cs_param_int(req, rep, "b", 0, 1, 100000000, &b))
        return;
    if (!a || !b) {
        cs_reply_error(rep, 400, "bad_parameter", "name the two versions: ?a=N&b=M");
        return;
    }
    const char *split;
    int images;
    const cs_dataset *d = cs_split_or_reply(req, rep, &split, &images);
    if (!d) return;
    cs_model_ref ra, rb;
    if (!cs_model_ref_get(req, rep, a, &ra)) return;
    if (!cs_model_ref_get(req, rep, b, &rb)) {
        cs_model_ref_release(&ra);
        return;
    }
    cs_eval_summary sa = {0}, sb = {0};
    if (summary_or_reply(rep, &ra, split, d, images, &sa) && summary_or_reply(rep, &rb, split, d, images, &sb)) {
        json_t *classes = json_array(), *changed = json_array();
        for (int c = 0; c < sa.k && c < sb.k; c++) {
            json_t *fa = class_figures(&sa, c), *fb = class_figures(&sb, c);
            const char *label = c < ra.m->n_classes ? ra.m->class_names[c] : "";
            json_array_append_new(classes,
                                  json_pack("{s:i,s:s,s:o,s:o,s:{s:f,s:f,s:f}}", "class", c, "label", label, "a", fa,
                                            "b", fb, "delta", "precision", figure(fb, "precision") - figure(fa, "precision"),
                                            "recall", figure(fb, "recall") - figure(fa, "recall"), "f1",
                                            figure(fb, "f1") - figure(fa, "f1")));
        }
        long n_changed = 0, fixed = 0, broken = 0;
        for (int i = 0; i < sa.n && i < sb.n; i++) {
            if (sa.pred[i] == sb.pred[i]) continue;
            int t = d->labels[i];
            n_changed++;
            fixed += sb.pred[i] == t;
            broken += sa.pred[i] == t;
            if (n_changed <= CHANGED_LISTED)
                json_array_append_new(changed, json_pack("{s:i,s:i,s:i,s:i}", "index", i, "label", t, "a",
                                                         (int)sa.pred[i], "b", (int)sb.pred[i]));
        }
        cs_reply_json(rep, 200,
                      json_pack("{s:s,s:s,s:i,s:{s:i,s:f},s:{s:i,s:f},s:f,s:o,s:I,s:I,s:I,s:o}", "model",
                                ra.served->name, "split", split, "images", sa.n, "a", "version", ra.version, "accuracy",
                                sa.accuracy, "b", "version", rb.version, "accuracy", sb.accuracy, "accuracy_delta",
                                sb.accuracy - sa.accuracy, "per_class", classes, "changed_count", (json_int_t)n_changed,
                                "fixed", (json_int_t)fixed, "broken", (json_int_t)broken, "changed", changed));
    }
    cs_eval_summary_free(&sa);
    cs_eval_summary_free(&sb);
    cs_model_ref_release(&ra);
    cs_model_ref_release(&rb);
}
