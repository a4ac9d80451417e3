/*
 * explain_eval.c - the faithfulness table of several methods over N dataset images, as
 * a background job (jobs.h: progress, cancel): for each image its prediction is
 * explained by each method and scored; the job's result is the mean of every number
 * per method.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data.h"
#include "explain_api.h"
#include "handlers.h"
#include "jobs.h"
#include "params.h"
#include "preprocess.h"
#include "reply.h"

#define MAX_METHODS 32

typedef struct {
    cs_model_version *v;
    const cs_explain_method *meths[MAX_METHODS];
    int n;
    cs_explain_params p;
    cs_faith_params fp;
    char split[8];
    long offset, count;
} eval_ctx;

typedef struct {
    double deletion, insertion, drop, increase, road, seconds;
    long images;
} totals;

static void eval_free(void *arg)
{
    eval_ctx *c = arg;
    cs_version_release(c->v);
    free(c);
}

/* Dataset image i as the model's input. 0, or -1 with err. */
static int dataset_input(const cs_model *m, const cs_dataset *d, long i, float *x, char *err, size_t errlen)
{
    cs_image img = {0};
    if (cs_image_alloc(&img, d->w, d->h, 1) != CS_IMG_OK) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    memcpy(img.px, d->images + (size_t)i * d->w * d->h, (size_t)d->w * d->h);
    int rc = cs_preprocess_model(m, &img, x, err, errlen);
    cs_image_free(&img);
    return rc;
}

static json_t *eval_run(cs_job *job, void *arg, char *err, size_t errlen)
{
    eval_ctx *c = arg;
    const cs_model *m = c->v->model;
    const cs_dataset *d = cs_data_get(c->split, err, errlen);
    if (!d) return NULL;
    float *x = malloc(cs_shape_size(m->input) * sizeof(float));
    float *range = malloc(2 * (size_t)m->input.c * sizeof(float));
    totals *t = calloc((size_t)c->n, sizeof *t);
    long correct = 0, done = 0;
    json_t *result = NULL;
    if (!x || !range || !t || cs_explain_input_range(m, range, range + m->input.c) != 0) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    const long total = c->count * c->n;
    cs_job_progress(job, 0, total);
    for (long i = c->offset; i < c->offset + c->count; i++) {
        cs_explainer ex;
        if (dataset_input(m, d, i, x, err, errlen) != 0 || cs_explainer_init(&ex, m, x, NULL, err, errlen) != 0)
            goto out;
        ex.black = range;
        ex.white = range + m->input.c;
        correct += ex.predicted == d->labels[i];
        for (int k = 0; k < c->n; k++) {
            if (cs_job_cancelled(job)) {
                cs_explainer_free(&ex);
                goto out;
            }
            cs_explain_map map;
            cs_faith_result fr;
            if (cs_explain_run(&ex, c->meths[k], &c->p, &map, err, errlen) != 0) {
                cs_explainer_free(&ex);
                goto out;
            }
            int rc = cs_faith_evaluate(&ex, &map, &c->fp, CS_FAITH_ALL, &fr, err, errlen);
            if (rc == 0) {
                t[k].deletion += fr.deletion_auc;
                t[k].insertion += fr.insertion_auc;
                t[k].drop += fr.drop;
                t[k].increase += fr.increase;
                t[k].road += fr.road;
                t[k].seconds += map.seconds;
                t[k].images++;
                cs_faith_free(&fr);
            }
            cs_explain_map_free(&map);
            if (rc != 0) {
                cs_explainer_free(&ex);
                goto out;
            }
            cs_job_progress(job, ++done, total);
        }
        cs_explainer_free(&ex);
    }
    json_t *table = json_array();
    for (int k = 0; k < c->n; k++) {
        double n = t[k].images ? (double)t[k].images : 1;
        json_array_append_new(
            table, json_pack("{s:s,s:s,s:f,s:f,s:f,s:f,s:f,s:f,s:I}", "method", c->meths[k]->name, "title",
                             c->meths[k]->title, "deletion_auc", t[k].deletion / n, "insertion_auc",
                             t[k].insertion / n, "average_drop_pct", 100 * t[k].drop / n, "increase_pct",
                             100 * t[k].increase / n, "road", t[k].road / n, "seconds_per_image", t[k].seconds / n,
                             "images", (json_int_t)t[k].images));
    }
    result = json_pack("{s:s,s:I,s:I,s:f,s:o,s:s}", "split", c->split, "offset", (json_int_t)c->offset, "images",
                       (json_int_t)c->count, "accuracy", (double)correct / (double)c->count, "table", table, "better",
                       "deletion_auc lower; insertion_auc, road higher; average_drop_pct lower; increase_pct higher");
out:
    free(x);
    free(range);
    free(t);
    return result;
}

/* POST /v1/models/{model}/explain/evaluate  [methods, split=test|train, offset, count, the method
 * parameters, curve_steps, road_noise]  -> 202 + Location /v1/jobs/{id} */
void cs_h_explain_evaluate(cs_req *req, cs_reply *rep)
{
    static const char *const splits[] = {"test", "train", NULL};
    cs_served_model *s;
    cs_model_version *v = cs_model_or_reply(req, rep, &s);
    if (!v) return;
    eval_ctx *c = calloc(1, sizeof *c);
    if (!c) {
        cs_version_release(v);
        cs_reply_nomem(rep, "cannot answer");
        return;
    }
    c->v = v;
    const cs_model *m = v->model;
    int split;
    char err[400];
    const cs_dataset *d = NULL;
    if (!(c->n = cs_explain_methods_or_reply(req, rep, c->meths, MAX_METHODS)) ||
        !cs_explain_params_or_reply(req, rep, m, c->meths, c->n, &c->p) ||
        !cs_faith_params_or_reply(req, rep, m, &c->p, &c->fp) ||
        !cs_param_choice(req, rep, "split", splits, 0, &split))
        goto fail;
    if (!(d = cs_data_get(splits[split], err, sizeof err))) {
        cs_reply_error(rep, 503, "data_unavailable", "%s", err);
        goto fail;
    }
    if (!cs_param_int(req, rep, "offset", 0, 0, d->n - 1, &c->offset) ||
        !cs_param_int(req, rep, "count", 100, 1, d->n - c->offset, &c->count))
        goto fail;
    snprintf(c->split, sizeof c->split, "%s", splits[split]);
    json_t *names = json_array();
    for (int k = 0; k < c->n; k++) json_array_append_new(names, json_string(c->meths[k]->name));
    json_t *params = json_pack("{s:o,s:s,s:I,s:I,s:s,s:I}", "methods", names, "split", c->split, "offset",
                               (json_int_t)c->offset, "count", (json_int_t)c->count, "score",
                               c->p.score_kind ? "probability" : "logit", "seed", (json_int_t)c->p.seed);
    cs_job_start_task(rep, "explain-evaluate", s->name, params, eval_run, c, eval_free);
    return;
fail:
    eval_free(c);
}
