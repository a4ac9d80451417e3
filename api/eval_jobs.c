/*
 * eval_jobs.c - evaluation of a model version over a data set split, as a job:
 * POST /v1/models/{model}/evaluation starts it (or answers at once from the cache),
 * GET .../evaluation reads the result, GET .../evaluation/confusion.png draws it.
 *
 * Results are cached in memory per (parameters' checksum, version, split, images):
 * a version's parameters never change, so an entry never goes stale; the least
 * recently used entry goes when the cache is full. The cache keeps the JSON text
 * (answered as it is) and the counts and predictions (for the picture and for the
 * comparison of two versions), under one mutex, copied out to readers.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "data.h"
#include "draw_matrix.h"
#include "handlers.h"
#include "insight.h"
#include "jobs.h"
#include "params.h"
#include "reply.h"
#include "versions.h"

#define EVAL_BINS 10
#define CELL_IMAGES 12 /* images listed per confusion cell, most confident first */
#define CACHE_SLOTS 8

/* ---- the model named by a request ---- */

int cs_model_ref_get(cs_req *req, cs_reply *rep, long version, cs_model_ref *r)
{
    memset(r, 0, sizeof *r);
    const char *name = cs_req_param(req, "model");
    cs_served_model *s = cs_registry_find(name);
    if (!s) {
        cs_reply_not_found(rep, "model", name);
        return 0;
    }
    r->served = s;
    char reason[512];
    cs_model_version *v = cs_served_acquire(s, reason, sizeof reason);
    if (v && (version == 0 || version == v->version)) {
        r->ref = v;
        r->m = v->model;
        r->version = v->version;
        r->crc = v->crc;
        return 1;
    }
    cs_version_release(v);
    if (version == 0) {
        cs_reply_error(rep, 503, "model_unavailable", "model '%s' is unavailable: %s", name, reason);
        cs_reply_header(rep, "Retry-After", "5");
        return 0;
    }
    char err[400];
    r->own = s->store[0] ? cs_versions_load(s->store, (int)version, err, sizeof err) : NULL;
    if (!r->own) {
        if (!s->store[0]) cs_fmt(err, sizeof err, "model '%s' keeps no versions", name);
        cs_reply_error(rep, 404, "not_found", "version %ld of '%s': %s", version, name, err);
        return 0;
    }
    r->m = r->own;
    r->version = (int)version;
    r->crc = cs_model_crc(r->own);
    return 1;
}

int cs_model_ref_or_reply(cs_req *req, cs_reply *rep, cs_model_ref *r)
{
    long version;
    if (!cs_param_int(req, rep, "version", 0, 1, 100000000, &version)) return 0;
    return cs_model_ref_get(req, rep, version, r);
}

void cs_model_ref_release(cs_model_ref *r)
{
    cs_version_release(r->ref);
    cs_model_free(r->own);
    memset(r, 0, sizeof *r);
}

const cs_dataset *cs_split_or_reply(cs_req *req, cs_reply *rep, const char **split, int *images)
{
    static const char *const splits[] = {"test", "train", NULL};
    int which;
    long limit;
    if (!cs_param_choice(req, rep, "split", splits, 0, &which) ||
        !cs_param_int(req, rep, "limit", 0, 0, 1000000, &limit))
        return NULL;
    char err[400];
    const cs_dataset *d = cs_data_get(splits[which], err, sizeof err);
    if (!d) {
        cs_reply_error(rep, 503, "data_unavailable", "%s", err);
        return NULL;
    }
    *split = splits[which];
    *images = limit > 0 && limit < d->n ? (int)limit : d->n;
    return d;
}

/* ---- the cache ---- */

typedef struct {
    uint32_t crc;
    int version, n;
    char split[8];
    unsigned long used; /* last use, for eviction */
    char *text;         /* the JSON answer */
    size_t len;
    cs_eval ev;
} cache_slot;

static pthread_mutex_t g_cache_lock = PTHREAD_MUTEX_INITIALIZER;
static cache_slot g_cache[CACHE_SLOTS];
static unsigned long g_clock;

static cache_slot *cache_find(uint32_t crc, int version, const char *split, int n)
{
    for (int i = 0; i < CACHE_SLOTS; i++) {
        cache_slot *c = &g_cache[i];
        if (c->text && c->crc == crc && c->version == version && c->n == n && !strcmp(c->split, split)) {
            c->used = ++g_clock;
            return c;
        }
    }
    return NULL;
}

/* Takes ownership of text and ev. */
static void cache_put(uint32_t crc, int version, const char *split, char *text, cs_eval *ev)
{
    pthread_mutex_lock(&g_cache_lock);
    cache_slot *c = cache_find(crc, version, split, ev->n);
    if (!c) {
        c = &g_cache[0];
        for (int i = 1; i < CACHE_SLOTS; i++)
            if (g_cache[i].used < c->used) c = &g_cache[i];
    }
    free(c->text);
    cs_eval_free(&c->ev);
    c->crc = crc;
    c->version = version;
    c->n = ev->n;
    cs_fmt(c->split, sizeof c->split, "%s", split);
    c->text = text;
    c->len = strlen(text);
    c->ev = *ev;
    c->used = ++g_clock;
    memset(ev, 0, sizeof *ev);
    pthread_mutex_unlock(&g_cache_lock);
}

int cs_eval_cached(uint32_t crc, int version, const char *split, int images, cs_eval_summary *out)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&g_cache_lock);
    cache_slot *c = cache_find(crc, version, split, images);
    int ok = 0;
    if (c) {
        int k = c->ev.k, n = c->ev.n;
        out->confusion = malloc((size_t)k * k * sizeof *out->confusion);
        out->pred = malloc(((size_t)n + 1) * sizeof *out->pred);
        if (out->confusion && out->pred) {
            memcpy(out->confusion, c->ev.confusion, (size_t)k * k * sizeof *out->confusion);
            memcpy(out->pred, c->ev.pred, (size_t)n * sizeof *out->pred);
            out->k = k;
            out->n = n;
            out->accuracy = n ? (double)c->ev.topk[0] / n : 0;
            ok = 1;
        }
    }
    pthread_mutex_unlock(&g_cache_lock);
    if (!ok) cs_eval_summary_free(out);
    return ok;
}

void cs_eval_summary_free(cs_eval_summary *s)
{
    free(s->confusion);
    free(s->pred);
    memset(s, 0, sizeof *s);
}

/* The cached answer copied into the reply; 0 when not cached. */
static int reply_cached(cs_reply *rep, int status, uint32_t crc, int version, const char *split, int n)
{
    pthread_mutex_lock(&g_cache_lock);
    cache_slot *c = cache_find(crc, version, split, n);
    if (c) cs_reply_bytes(rep, status, "application/json", c->text, c->len);
    pthread_mutex_unlock(&g_cache_lock);
    return c != NULL;
}

/* ---- the answer ---- */

static const char *class_name(const cs_model *m, int c)
{
    return c < m->n_classes && m->class_names ? m->class_names[c] : "";
}

static json_t *eval_json(const cs_model_ref *r, const char *split, const cs_dataset *d, const cs_eval *ev,
                         double seconds)
{
    const cs_model *m = r->m;
    const int k = ev->k, n = ev->n;
    json_t *confusion = json_array(), *per_class = json_array(), *classes = json_array();
    double mp = 0, mr = 0, mf = 0;
    for (int t = 0; t < k; t++) {
        json_t *row = json_array();
        for (int p = 0; p < k; p++) json_array_append_new(row, json_integer(ev->confusion[(size_t)t * k + p]));
        json_array_append_new(confusion, row);
        double pr, rc, f1;
        long support;
        cs_eval_class(ev, t, &pr, &rc, &f1, &support);
        mp += pr, mr += rc, mf += f1;
        json_array_append_new(classes, json_string(class_name(m, t)));
        json_array_append_new(per_class, json_pack("{s:i,s:s,s:f,s:f,s:f,s:I}", "class", t, "label",
                                                   class_name(m, t), "precision", pr, "recall", rc, "f1", f1,
                                                   "support", (json_int_t)support));
    }
    json_t *topk = json_array();
    for (int j = 0; j < CS_EVAL_TOPK && j < k; j++)
        json_array_append_new(topk, json_pack("{s:i,s:f}", "k", j + 1, "accuracy", n ? (double)ev->topk[j] / n : 0.0));
    json_t *bins = json_array();
    for (int b = 0; b < ev->cal.n_bins; b++)
        json_array_append_new(bins, json_pack("{s:f,s:f,s:I,s:f,s:f}", "lower", (double)b / ev->cal.n_bins, "upper",
                                              (double)(b + 1) / ev->cal.n_bins, "count", (json_int_t)ev->cal.count[b],
                                              "confidence", ev->cal.confidence[b], "accuracy", ev->cal.accuracy[b]));
    json_t *cells = json_array();
    int idx[CELL_IMAGES];
    for (int t = 0; t < k; t++)
        for (int p = 0; p < k; p++) {
            if (!ev->confusion[(size_t)t * k + p]) continue;
            long count = cs_eval_cell(ev, d->labels, t, p, idx, CELL_IMAGES);
            json_t *imgs = json_array();
            for (int i = 0; i < CELL_IMAGES && i < count; i++)
                json_array_append_new(imgs, json_pack("{s:i,s:f,s:f}", "index", idx[i], "confidence",
                                                      (double)ev->conf[idx[i]], "p_true", (double)ev->p_true[idx[i]]));
            json_array_append_new(cells, json_pack("{s:i,s:i,s:I,s:o}", "true", t, "predicted", p, "count",
                                                   (json_int_t)count, "images", imgs));
        }
    char crc[16];
    cs_fmt(crc, sizeof crc, "%08x", (unsigned)r->crc);
    return json_pack("{s:s,s:i,s:s,s:s,s:i,s:b,s:o,s:f,s:o,s:o,s:o,s:{s:f,s:f,s:f},s:{s:o,s:f},s:o,s:f}", "model",
                     r->served->name, "version", r->version, "checksum", crc, "split", split, "images", n, "subset",
                     n < d->n, "classes", classes, "accuracy", n ? (double)ev->topk[0] / n : 0.0, "top_k", topk,
                     "confusion", confusion, "per_class", per_class, "macro", "precision", k ? mp / k : 0,
                     "recall", k ? mr / k : 0, "f1", k ? mf / k : 0, "calibration", "bins", bins, "ece",
                     ev->cal.ece, "cells", cells, "seconds", seconds);
}

/* Evaluates, builds the answer and caches both. 0, 1 cancelled, -1 with err. */
static int evaluate(const cs_model_ref *r, const char *split, const cs_dataset *d, int images,
                    cs_eval_progress_fn progress, void *user, char *err, size_t errlen)
{
    cs_eval ev;
    double t0 = cs_now();
    int rc = cs_eval_run(r->m, d, images, EVAL_BINS, progress, user, &ev, err, errlen);
    if (rc != 0) return rc;
    json_t *doc = eval_json(r, split, d, &ev, cs_now() - t0);
    char *text = doc ? json_dumps(doc, JSON_COMPACT | JSON_REAL_PRECISION(7)) : NULL;
    json_decref(doc);
    if (!text) {
        cs_eval_free(&ev);
        cs_fmt(err, errlen, "out of memory");
        return -1;
    }
    cache_put(r->crc, r->version, split, text, &ev);
    return 0;
}

int cs_eval_now(const cs_model_ref *r, const char *split, const cs_dataset *d, int images, char *err, size_t errlen)
{
    return evaluate(r, split, d, images, NULL, NULL, err, errlen);
}

/* ---- the job ---- */

typedef struct {
    cs_model_ref ref;
    const char *split;
    const cs_dataset *d;
    int images;
    cs_job *job;
} eval_task;

static void eval_task_free(void *p)
{
    eval_task *t = p;
    cs_model_ref_release(&t->ref);
    free(t);
}

static int on_eval_progress(void *user, long done, long total)
{
    eval_task *t = user;
    cs_job_progress(t->job, done, total);
    return cs_job_cancelled(t->job);
}

static json_t *eval_task_run(cs_job *job, void *ctx, char *err, size_t errlen)
{
    eval_task *t = ctx;
    t->job = job;
    cs_job_progress(job, 0, t->images);
    if (evaluate(&t->ref, t->split, t->d, t->images, on_eval_progress, t, err, errlen) != 0) return NULL;
    cs_eval_summary s;
    if (!cs_eval_cached(t->ref.crc, t->ref.version, t->split, t->images, &s)) {
        cs_fmt(err, errlen, "the result left the cache before it was read");
        return NULL;
    }
    char url[200];
    cs_fmt(url, sizeof url, "/v1/models/%s/evaluation?version=%d&split=%s&limit=%d", t->ref.served->name,
           t->ref.version, t->split, t->images);
    json_t *res = json_pack("{s:i,s:s,s:i,s:f,s:s}", "version", t->ref.version, "split", t->split, "images",
                            t->images, "accuracy", s.accuracy, "url", url);
    cs_eval_summary_free(&s);
    return res;
}

/* POST /v1/models/{model}/evaluation  [version, split, limit]
 * -> 200 with the result when this version was evaluated before, else 202 + the job */
void cs_h_evaluation_start(cs_req *req, cs_reply *rep)
{
    eval_task *t = calloc(1, sizeof *t);
    if (!t) {
        cs_reply_nomem(rep, "cannot answer");
        return;
    }
    if (!cs_model_ref_or_reply(req, rep, &t->ref) || !(t->d = cs_split_or_reply(req, rep, &t->split, &t->images))) {
        eval_task_free(t);
        return;
    }
    if (reply_cached(rep, 200, t->ref.crc, t->ref.version, t->split, t->images)) {
        eval_task_free(t);
        return;
    }
    char err[400];
    if (cs_eval_check(t->ref.m, t->d, err, sizeof err) != 0) {
        cs_reply_error(rep, 422, "not_evaluable", "%s", err);
        eval_task_free(t);
        return;
    }
    json_t *params = json_pack("{s:i,s:s,s:i}", "version", t->ref.version, "split", t->split, "images", t->images);
    cs_job_start_task(rep, "evaluate", t->ref.served->name, params, eval_task_run, t, eval_task_free);
}

/* GET /v1/models/{model}/evaluation  [version, split, limit] */
void cs_h_evaluation(cs_req *req, cs_reply *rep)
{
    cs_model_ref r;
    const char *split;
    int images;
    if (!cs_model_ref_or_reply(req, rep, &r)) return;
    if (cs_split_or_reply(req, rep, &split, &images) &&
        !reply_cached(rep, 200, r.crc, r.version, split, images))
        cs_reply_error(rep, 404, "not_evaluated",
                       "version %d of '%s' has not been evaluated on %d %s images: POST to this URL starts it",
                       r.version, r.served->name, images, split);
    cs_model_ref_release(&r);
}

/* GET /v1/models/{model}/evaluation/confusion.png  [version, split, limit, cell] */
void cs_h_evaluation_png(cs_req *req, cs_reply *rep)
{
    cs_model_ref r;
    const char *split;
    int images;
    long cell;
    if (!cs_model_ref_or_reply(req, rep, &r)) return;
    cs_eval_summary s;
    if (cs_split_or_reply(req, rep, &split, &images) && cs_param_int(req, rep, "cell", 40, 8, 200, &cell)) {
        if (!cs_eval_cached(r.crc, r.version, split, images, &s)) {
            cs_reply_error(rep, 404, "not_evaluated",
                           "version %d of '%s' has not been evaluated on %d %s images: POST .../evaluation starts it",
                           r.version, r.served->name, images, split);
        } else {
            cs_image *img = cs_draw_count_matrix(s.confusion, s.k, s.k, (int)cell);
            if (!img && (long long)s.k * (cell + 1) + 1 > 4096)
                cs_reply_error(rep, 400, "too_large", "%d classes in cells of %ld pixels exceed 4096 pixels", s.k, cell);
            else
                cs_reply_image(req, rep, img, "confusion matrix");
            cs_eval_summary_free(&s);
        }
    }
    cs_model_ref_release(&r);
}
