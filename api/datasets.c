/*
 * datasets.c - the Fashion-MNIST splits (loaded once, on first use) and their routes.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "data.h"
#include "handlers.h"
#include "model.h"
#include "params.h"
#include "reply.h"

typedef struct {
    const char *name;
    int loaded;
    cs_dataset d;
} split_slot;

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static split_slot g_splits[2] = {{"train", 0, {0}}, {"test", 0, {0}}};

const cs_dataset *cs_data_get(const char *split, char *err, size_t errlen)
{
    split_slot *s = NULL;
    for (int i = 0; i < 2; i++)
        if (split && strcmp(split, g_splits[i].name) == 0) s = &g_splits[i];
    if (!s) {
        cs_fmt(err, errlen, "split must be train or test");
        return NULL;
    }
    /* Loading takes a moment; holding the lock makes a second caller wait for it
     * rather than read the files twice. Once loaded the data never changes. */
    pthread_mutex_lock(&g_lock);
    if (!s->loaded) {
        char why[300];
        if (cs_dataset_load(cs_api.data_dir, s->name, &s->d, why, sizeof why) == 0) s->loaded = 1;
        else cs_fmt(err, errlen, "Fashion-MNIST %s split unavailable in %s: %s", s->name, cs_api.data_dir, why);
    }
    pthread_mutex_unlock(&g_lock);
    return s->loaded ? &s->d : NULL;
}

void cs_data_free_all(void)
{
    pthread_mutex_lock(&g_lock);
    for (int i = 0; i < 2; i++) {
        if (g_splits[i].loaded) cs_dataset_free(&g_splits[i].d);
        g_splits[i].loaded = 0;
    }
    pthread_mutex_unlock(&g_lock);
}

int cs_data_sample(const char *spec, cs_image *img, int *label, char *err, size_t errlen)
{
    char split[16];
    const char *colon = strchr(spec, ':');
    long index;
    if (!colon || colon == spec || (size_t)(colon - spec) >= sizeof split || !cs_parse_long(colon + 1, &index)) {
        cs_fmt(err, errlen, "sample must look like test:18 or train:0, got '%.64s'", spec);
        return 400;
    }
    memcpy(split, spec, (size_t)(colon - spec));
    split[colon - spec] = 0;
    if (strcmp(split, "train") && strcmp(split, "test")) {
        cs_fmt(err, errlen, "sample split must be train or test, got '%.16s'", split);
        return 400;
    }
    const cs_dataset *d = cs_data_get(split, err, errlen);
    if (!d) return 503;
    if (index < 0 || index >= d->n) {
        cs_fmt(err, errlen, "sample index must be from 0 to %d for the %s split", d->n - 1, split);
        return 400;
    }
    if (cs_image_alloc(img, d->w, d->h, 1) != CS_IMG_OK) {
        cs_fmt(err, errlen, "out of memory");
        return -1;
    }
    memcpy(img->px, d->images + (size_t)index * d->w * d->h, (size_t)d->w * d->h);
    if (label) *label = d->labels[index];
    return 0;
}

/* GET /v1/datasets/fashion-mnist  [split, offset, limit] */
void cs_h_dataset_info(cs_req *req, cs_reply *rep)
{
    char err[400];
    const char *split = cs_req_query(req, "split");
    if (split) {
        if (strcmp(split, "train") && strcmp(split, "test")) {
            cs_reply_error(rep, 400, "bad_parameter", "split must be train or test, got '%.32s'", split);
            return;
        }
        const cs_dataset *d = cs_data_get(split, err, sizeof err);
        if (!d) {
            cs_reply_error(rep, 503, "data_unavailable", "%s", err);
            return;
        }
        long offset, limit;
        if (!cs_param_int(req, rep, "offset", 0, 0, d->n - 1, &offset)) return;
        if (!cs_param_int(req, rep, "limit", 25, 1, 1000, &limit)) return;
        if (offset + limit > d->n) limit = d->n - offset;
        json_t *items = json_array();
        for (long i = offset; i < offset + limit; i++) {
            int lab = d->labels[i];
            char link[96];
            snprintf(link, sizeof link, "/v1/datasets/fashion-mnist/%s/%ld.png", split, i);
            json_array_append_new(items, json_pack("{s:I,s:i,s:s,s:s}", "index", (json_int_t)i, "label", lab,
                                                   "class", CS_FMNIST_CLASSES[lab], "image", link));
        }
        cs_reply_json(rep, 200, json_pack("{s:s,s:s,s:I,s:I,s:i,s:o}", "dataset", "fashion-mnist", "split", split,
                                          "offset", (json_int_t)offset, "limit", (json_int_t)limit, "total", d->n,
                                          "items", items));
        return;
    }
    json_t *classes = json_array();
    for (int i = 0; i < 10; i++) json_array_append_new(classes, json_string(CS_FMNIST_CLASSES[i]));
    json_t *splits = json_object();
    const char *names[2] = {"train", "test"};
    for (int i = 0; i < 2; i++) {
        const cs_dataset *d = cs_data_get(names[i], err, sizeof err);
        if (!d) {
            json_decref(classes);
            json_decref(splits);
            cs_reply_error(rep, 503, "data_unavailable", "%s", err);
            return;
        }
        json_object_set_new(splits, names[i], json_pack("{s:i,s:i,s:i}", "size", d->n, "height", d->h, "width", d->w));
    }
    cs_reply_json(rep, 200, json_pack("{s:s,s:o,s:o}", "dataset", "fashion-mnist", "splits", splits, "classes", classes));
}

/* GET /v1/datasets/fashion-mnist/{split}/{index}.png  [scale] */
void cs_h_dataset_image(cs_req *req, cs_reply *rep)
{
    const char *split = cs_req_param(req, "split"), *idx = cs_req_param(req, "index");
    if (strcmp(split, "train") && strcmp(split, "test")) {
        cs_reply_not_found(rep, "split", split);
        return;
    }
    long scale;
    if (!cs_param_int(req, rep, "scale", 1, 1, 32, &scale)) return;
    char spec[300], err[400];
    snprintf(spec, sizeof spec, "%s:%.256s", split, idx);
    cs_image img, big;
    int st = cs_data_sample(spec, &img, NULL, err, sizeof err);
    if (st == 400) { /* the index is part of the path: out of range is "no such image" */
        cs_reply_error(rep, 404, "not_found", "no image %.64s in the %s split (%s)", idx, split, err);
        return;
    }
    if (st == -1) {
        cs_reply_nomem(rep, "cannot copy the image");
        return;
    }
    if (st) {
        cs_reply_error(rep, st, st == 503 ? "data_unavailable" : "internal", "%s", err);
        return;
    }
    double t0 = cs_now();
    uint8_t *png = NULL;
    size_t len = 0;
    int rc = CS_IMG_OK;
    if (scale > 1) {
        rc = cs_image_resize_nearest(&img, img.w * (int)scale, img.h * (int)scale, &big);
        cs_image_free(&img);
        img = big;
    }
    if (rc == CS_IMG_OK) rc = cs_image_encode_png(&img, &png, &len);
    cs_image_free(&img);
    cs_req_stage_add(req, CS_STAGE_ENCODE, t0);
    if (rc != CS_IMG_OK) { /* a valid image that cannot be encoded: memory */
        cs_reply_nomem(rep, "cannot encode the image");
        return;
    }
    cs_reply_png(rep, png, len);
    /* Dataset images never change. */
    cs_reply_header(rep, "Cache-Control", "public, max-age=86400");
}
