/*
 * projector_jobs.c - the embedding projector: the activations of a node (default the
 * last hidden dense layer) over a data set split, laid out in 2-D or 3-D by PCA or
 * t-SNE, as a job. POST /v1/models/{model}/projector starts it (or answers at once
 * when the same layout was made before); GET reads it. Each point carries its image
 * index, label and prediction.
 *
 * Layouts are cached in memory, per (parameters' checksum, version and every setting
 * of the layout), as the JSON text answered; the least recently used goes first.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "embed.h"
#include "handlers.h"
#include "input.h"
#include "insight.h"
#include "jobs.h"
#include "params.h"
#include "reply.h"

#define SLOTS 6

typedef struct {
    char key[256];
    unsigned long used;
    char *text;
    size_t len;
} slot;

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static slot g_slots[SLOTS];
static unsigned long g_clock;

typedef struct {
    cs_model_ref ref;
    const cs_dataset *d;
    const char *split;
    int images, node, method, dims;
    cs_tsne_config tsne;
    char key[256];
    cs_job *job;
    int stage; /* 0 activations, 1 layout: each half of the progress */
} layout_task;

static const char *const k_methods[] = {"pca", "tsne", NULL};

static int reply_cached(cs_reply *rep, const char *key)
{
    int found = 0;
    pthread_mutex_lock(&g_lock);
    for (int i = 0; i < SLOTS && !found; i++)
        if (g_slots[i].text && !strcmp(g_slots[i].key, key)) {
            g_slots[i].used = ++g_clock;
            cs_reply_bytes(rep, 200, "application/json", g_slots[i].text, g_slots[i].len);
            found = 1;
        }
    pthread_mutex_unlock(&g_lock);
    return found;
}

static void cache_put(const char *key, char *text)
{
    pthread_mutex_lock(&g_lock);
    slot *s = &g_slots[0];
    for (int i = 0; i < SLOTS; i++) {
        if (g_slots[i].text && !strcmp(g_slots[i].key, key)) {
            s = &g_slots[i];
            break;
        }
        if (g_slots[i].used < s->used) s = &g_slots[i];
    }
    free(s->text);
    cs_fmt(s->key, sizeof s->key, "%s", key);
    s->text = text;
    s->len = strlen(text);
    s->used = ++g_clock;
    pthread_mutex_unlock(&g_lock);
}

static void task_free(void *p)
{
    layout_task *t = p;
    cs_model_ref_release(&t->ref);
    free(t);
}

static int on_progress(void *user, long done, long total)
{
    layout_task *t = user;
    /* Two stages in one bar: the activations, then the layout. */
    cs_job_progress(t->job, t->stage * 1000 + (total ? done * 1000 / total : 0), 2000);
    return cs_job_cancelled(t->job);
}

static json_t *layout_run(cs_job *job, void *ctx, char *err, size_t errlen)
{
    layout_task *t = ctx;
    t->job = job;
    double t0 = cs_now();
    float *a = NULL, *y = NULL;
    int dim, *pred = malloc((size_t)t->images * sizeof *pred);
    double var[3] = {0};
    json_t *res = NULL;
    if (!pred) {
        cs_fmt(err, errlen, "out of memory");
        return NULL;
    }
    int rc = cs_node_activations(t->ref.m, t->d, t->images, t->node, on_progress, t, &a, &dim, pred, err, errlen);
    if (rc == 0 && !(y = malloc((size_t)t->images * t->dims * sizeof *y))) {
        cs_fmt(err, errlen, "out of memory");
        rc = -1;
    }
    t->stage = 1;
    if (rc == 0 && t->method == 0) rc = cs_pca(a, t->images, dim, t->dims, y, var, err, errlen);
    if (rc == 0 && t->method == 1) rc = cs_tsne(a, t->images, dim, &t->tsne, on_progress, t, y, err, errlen);
    if (rc == 0) {
        json_t *pts = json_array(), *labels = json_array(), *preds = json_array();
        for (int i = 0; i < t->images; i++) {
            json_t *p = json_array();
            for (int k = 0; k < t->dims; k++) json_array_append_new(p, json_real(y[(size_t)i * t->dims + k]));
            json_array_append_new(pts, p);
            json_array_append_new(labels, json_integer(t->d->labels[i]));
            json_array_append_new(preds, json_integer(pred[i]));
        }
        const cs_model *m = t->ref.m;
        json_t *classes = json_array();
        for (int c = 0; c < m->n_classes; c++) json_array_append_new(classes, json_string(m->class_names[c]));
        json_t *doc = json_pack("{s:s,s:i,s:s,s:i,s:s,s:i,s:s,s:i,s:o,s:o,s:o,s:o,s:f}", "model", t->ref.served->name,
                                "version", t->ref.version, "node", m->layers[t->node].name, "values", dim, "split",
                                t->split, "images", t->images, "method", k_methods[t->method], "dims", t->dims, "classes",
                                classes, "points", pts, "labels", labels, "predictions", preds, "seconds",
                                cs_now() - t0);
        /* A point's image is its index in the split: points[i] is image i. */
        if (t->method == 0) json_object_set_new(doc, "variance", json_pack("[f,f,f]", var[0], var[1], var[2]));
        else
            json_object_set_new(doc, "tsne", json_pack("{s:f,s:f,s:i,s:I}", "perplexity", t->tsne.perplexity, "theta",
                                                       t->tsne.theta, "iterations", t->tsne.iterations, "seed",
                                                       (json_int_t)t->tsne.seed));
        char *text = json_dumps(doc, JSON_COMPACT | JSON_REAL_PRECISION(6));
        json_decref(doc);
        if (text) {
            cache_put(t->key, text);
            char url[300];
            cs_fmt(url, sizeof url, "/v1/models/%s/projector?%s", t->ref.served->name, strchr(t->key, '?') + 1);
            res = json_pack("{s:s,s:i,s:s}", "node", m->layers[t->node].name, "images", t->images, "url", url);
        } else {
            cs_fmt(err, errlen, "out of memory");
        }
    }
    free(a);
    free(y);
    free(pred);
    return res;
}

/* Reads the layout's settings into t; 1, or 0 after the reply. */
static int settings_or_reply(cs_req *req, cs_reply *rep, layout_task *t)
{
    long limit_default = 2000, dims, seed, iters;
    double perplexity;
    if (!cs_model_ref_or_reply(req, rep, &t->ref)) return 0;
    if (!cs_param_choice(req, rep, "method", k_methods, 0, &t->method) ||
        !cs_param_int(req, rep, "dims", 2, 2, 3, &dims) ||
        !cs_param_float(req, rep, "perplexity", 30, 2, 100, &perplexity) ||
        !cs_param_int(req, rep, "seed", 1, 0, 2147483647, &seed) ||
        !cs_param_int(req, rep, "iterations", 1000, 10, 5000, &iters))
        return 0;
    if (!(t->d = cs_split_or_reply(req, rep, &t->split, &t->images))) return 0;
    if (!cs_req_query(req, "limit") && t->images > limit_default) t->images = (int)limit_default;
    const char *node = cs_req_query(req, "node");
    if (node) {
        char err[300];
        t->node = cs_model_find_layer(t->ref.m, node);
        long k;
        if (t->node < 0 && cs_parse_long(node, &k) && k >= 0 && k < t->ref.m->n_layers) t->node = (int)k;
        if (t->node < 0) {
            cs_fmt(err, sizeof err, "model '%s' has no node '%.64s'", t->ref.served->name, node);
            cs_reply_error(rep, 404, "not_found", "%s", err);
            return 0;
        }
    } else {
        t->node = cs_embed_default_node(t->ref.m);
    }
    size_t values = cs_shape_size(t->ref.m->layers[t->node].out);
    if (values > CS_PCA_MAX_DIM || (double)values * t->images > 2e8) {
        cs_reply_error(rep, 400, "too_large",
                       "node '%s' has %zu values per image: %d images of it are too many (at most %d values, "
                       "2e8 in all); pick a smaller node or fewer images",
                       t->ref.m->layers[t->node].name, values, t->images, CS_PCA_MAX_DIM);
        return 0;
    }
    if (t->method == 1 && t->images < 3 * perplexity + 2) {
        cs_reply_error(rep, 400, "bad_parameter", "t-SNE at perplexity %g needs more than %d images", perplexity,
                       (int)(3 * perplexity + 1));
        return 0;
    }
    t->dims = (int)dims;
    cs_tsne_config_default(&t->tsne);
    t->tsne.dims = t->dims;
    t->tsne.perplexity = perplexity;
    t->tsne.seed = (uint64_t)seed;
    t->tsne.iterations = (int)iters;
    if (t->tsne.exaggeration_iters > t->tsne.iterations / 4) t->tsne.exaggeration_iters = t->tsne.iterations / 4;
    cs_fmt(t->key, sizeof t->key, "%08x:%d?version=%d&node=%s&split=%s&limit=%d&method=%s&dims=%d", (unsigned)t->ref.crc,
           t->ref.version, t->ref.version, t->ref.m->layers[t->node].name, t->split, t->images, k_methods[t->method],
           t->dims);
    if (t->method == 1) {
        size_t len = strlen(t->key);
        cs_fmt(t->key + len, sizeof t->key - len, "&perplexity=%g&seed=%ld&iterations=%ld", perplexity, seed, iters);
    }
    return 1;
}

/* POST /v1/models/{model}/projector  [version, node, split, limit, method, dims, perplexity, seed, iterations] */
void cs_h_projector_start(cs_req *req, cs_reply *rep)
{
    layout_task *t = calloc(1, sizeof *t);
    if (!t) {
        cs_reply_nomem(rep, "cannot answer");
        return;
    }
    if (!settings_or_reply(req, rep, t) || reply_cached(rep, t->key)) {
        task_free(t);
        return;
    }
    char err[400];
    if (t->ref.m->input.h != t->d->h || t->ref.m->input.w != t->d->w || t->ref.m->input.c != 1) {
        cs_fmt(err, sizeof err, "the model takes %dx%dx%d inputs, not the data set's %dx%d grayscale images",
               t->ref.m->input.h, t->ref.m->input.w, t->ref.m->input.c, t->d->h, t->d->w);
        cs_reply_error(rep, 422, "not_projectable", "%s", err);
        task_free(t);
        return;
    }
    json_t *params = json_pack("{s:i,s:s,s:s,s:i,s:s,s:i}", "version", t->ref.version, "node",
                               t->ref.m->layers[t->node].name, "split", t->split, "images", t->images, "method",
                               k_methods[t->method], "dims", t->dims);
    cs_job_start_task(rep, "project", t->ref.served->name, params, layout_run, t, task_free);
}

/* GET /v1/models/{model}/projector  [the same] */
void cs_h_projector(cs_req *req, cs_reply *rep)
{
    layout_task t = {0};
    if (settings_or_reply(req, rep, &t) && !reply_cached(rep, t.key))
        cs_reply_error(rep, 404, "not_projected", "this layout has not been made: POST to this URL starts it");
    cs_model_ref_release(&t.ref);
}
