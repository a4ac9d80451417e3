/*
 * atlas_jobs.c - the channel atlas of a layer, as a job: for each of its first N
 * channels the test images that excite it most (value, position and the input patch
 * behind it) and its feature visualisation. POST .../layers/{layer}/atlas starts it (or
 * answers at once when made before), GET reads it, GET .../atlas/{channel}.png draws a
 * channel's feature visualisation.
 *
 * Atlases are cached in memory per (parameters' checksum, version, layer and every
 * setting): the JSON text, and each channel's optimised input for the pictures; the
 * least recently used goes first.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "atlas.h"
#include "clock.h"
#include "data.h"
#include "handlers.h"
#include "input.h"
#include "insight.h"
#include "jobs.h"
#include "params.h"
#include "reply.h"

#define SLOTS 4

typedef struct {
    char key[256];
    unsigned long used;
    char *text;
    size_t len;
    int channels, h, w, c;
    float lo[3], hi[3];
    int bgr;
    float *images; /* [channels][h * w * c], the model's input space */
} slot;

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static slot g_slots[SLOTS];
static unsigned long g_clock;

typedef struct {
    cs_model_ref ref;
    int node, channels, top, images, steps, fourier;
    long seed;
    const cs_dataset *d; /* NULL when the model does not take the data set's images */
    char why[300];       /* then why */
    char key[256];
    cs_job *job;
    long done, total;
} atlas_task;

static slot *find(const char *key)
{
    for (int i = 0; i < SLOTS; i++)
        if (g_slots[i].text && !strcmp(g_slots[i].key, key)) {
            g_slots[i].used = ++g_clock;
            return &g_slots[i];
        }
    return NULL;
}

static void put(const atlas_task *t, char *text, float *images, const cs_featvis_config *cfg)
{
    pthread_mutex_lock(&g_lock);
    slot *s = find(t->key);
    if (!s) {
        s = &g_slots[0];
        for (int i = 1; i < SLOTS; i++)
            if (g_slots[i].used < s->used) s = &g_slots[i];
    }
    free(s->text);
    free(s->images);
    cs_fmt(s->key, sizeof s->key, "%s", t->key);
    s->text = text;
    s->len = strlen(text);
    s->images = images;
    s->channels = t->channels;
    s->h = t->ref.m->input.h, s->w = t->ref.m->input.w, s->c = t->ref.m->input.c;
    memcpy(s->lo, cfg->lo, sizeof s->lo);
    memcpy(s->hi, cfg->hi, sizeof s->hi);
    s->bgr = !strcmp(t->ref.m->arch, "vgg16");
    s->used = ++g_clock;
    pthread_mutex_unlock(&g_lock);
}

static void task_free(void *p)
{
    atlas_task *t = p;
    cs_model_ref_release(&t->ref);
    free(t);
}

static int on_progress(void *user, long done, long total)
{
    atlas_task *t = user;
    (void)total;
    cs_job_progress(t->job, t->done + done, t->total);
    return cs_job_cancelled(t->job);
}

static json_t *hit_json(const cs_atlas_hit *h)
{
    return json_pack("{s:i,s:f,s:f,s:i,s:i,s:[i,i,i,i]}", "index", h->image, "value", (double)h->value, "mean",
                     (double)h->mean, "y", h->y, "x", h->x, "patch", h->box[0], h->box[1], h->box[2], h->box[3]);
}

static json_t *atlas_run(cs_job *job, void *ctx, char *err, size_t errlen)
{
    atlas_task *t = ctx;
    t->job = job;
    const cs_model *m = t->ref.m;
    const int k = m->layers[t->node].out.c, top = t->top;
    const size_t px = cs_shape_size(m->input);
    double t0 = cs_now();
    cs_atlas_hit *hits = t->d ? malloc(sizeof *hits * (size_t)k * top) : NULL;
    float *images = malloc(sizeof(float) * px * (size_t)t->channels), *ex = malloc(sizeof(float) * (size_t)t->channels);
    json_t *res = NULL;
    if ((t->d && !hits) || !images || !ex) {
        cs_fmt(err, errlen, "out of memory");
        goto done;
    }
    /* Progress: the images (one each, and one per kept patch), then the steps. */
    t->total = (t->d ? t->images + (long)k * top : 0) + (long)t->channels * t->steps;
    if (t->d && cs_atlas_top(m, t->d, t->images, t->node, top, hits, on_progress, t, err, errlen) != 0) goto done;
    t->done = t->d ? t->images + (long)k * top : 0;
    cs_featvis_config cfg;
    cs_featvis_config_default(&cfg, m);
    cfg.steps = t->steps;
    cfg.fourier = t->fourier;
    for (int c = 0; c < t->channels; c++) {
        cfg.seed = (uint64_t)t->seed + (uint64_t)c;
        if (cs_featvis(m, t->node, c, &cfg, on_progress, t, images + px * c, &ex[c], err, errlen) != 0) goto done;
        t->done += t->steps;
    }
    json_t *chans = json_array();
    for (int c = 0; c < t->channels; c++) {
        json_t *o = json_pack("{s:i,s:f}", "channel", c, "excitation", (double)ex[c]);
        if (t->d) {
            json_t *list = json_array();
            for (int r = 0; r < top; r++)
                if (hits[(size_t)c * top + r].image >= 0) json_array_append_new(list, hit_json(&hits[(size_t)c * top + r]));
            json_object_set_new(o, "top", list);
        }
        char png[300];
        cs_fmt(png, sizeof png, "/v1/models/%s/layers/%s/atlas/%d.png?%s", t->ref.served->name, m->layers[t->node].name, c,
               strchr(t->key, '?') + 1);
        json_object_set_new(o, "image", json_string(png));
        json_array_append_new(chans, o);
    }
    const cs_shape s = m->layers[t->node].out;
    json_t *doc = json_pack("{s:s,s:i,s:s,s:[i,i,i],s:i,s:i,s:o,s:o,s:{s:i,s:b,s:I},s:o,s:f}", "model",
                            t->ref.served->name, "version", t->ref.version, "layer", m->layers[t->node].name,
                            "output_shape", s.h, s.w, s.c, "channels_total", k, "top", top, "images",
                            t->d ? json_integer(t->images) : json_null(), "split",
                            t->d ? json_string("test") : json_null(), "featvis", "steps", t->steps, "fourier",
                            t->fourier, "seed", (json_int_t)t->seed, "channels", chans, "seconds", cs_now() - t0);
    if (!t->d) json_object_set_new(doc, "top_unavailable", json_string(t->why));
    char *text = json_dumps(doc, JSON_COMPACT | JSON_REAL_PRECISION(6));
    json_decref(doc);
    if (!text) {
        cs_fmt(err, errlen, "out of memory");
        goto done;
    }
    put(t, text, images, &cfg);
    images = NULL;
    char url[300];
    cs_fmt(url, sizeof url, "/v1/models/%s/layers/%s/atlas?%s", t->ref.served->name, m->layers[t->node].name,
           strchr(t->key, '?') + 1);
    res = json_pack("{s:s,s:i,s:s}", "layer", m->layers[t->node].name, "channels", t->channels, "url", url);
done:
    free(hits);
    free(images);
    free(ex);
    return res;
}

/* The atlas's settings into t: 1, or 0 after the reply. */
static int settings_or_reply(cs_req *req, cs_reply *rep, atlas_task *t)
{
    long channels, top, limit, steps, fourier, seed;
    if (!cs_model_ref_or_reply(req, rep, &t->ref)) return 0;
    t->node = cs_layer_or_reply(req, rep, t->ref.m, cs_req_param(req, "layer"));
    if (t->node < 0) return 0;
    const int k = t->ref.m->layers[t->node].out.c;
    if (!cs_param_int(req, rep, "channels", k < 16 ? k : 16, 1, k, &channels) ||
        !cs_param_int(req, rep, "top", 9, 1, 32, &top) || !cs_param_int(req, rep, "limit", 0, 0, 1000000, &limit) ||
        !cs_param_int(req, rep, "steps", 256, 1, 2048, &steps) || !cs_param_int(req, rep, "fourier", 1, 0, 1, &fourier) ||
        !cs_param_int(req, rep, "seed", 1, 0, 2147483647, &seed))
        return 0;
    if (t->ref.m->input.c != 1 && t->ref.m->input.c != 3) {
        cs_reply_error(rep, 422, "not_drawable", "the model's input has %d channels: feature visualisation draws gray "
                       "or RGB inputs", t->ref.m->input.c);
        return 0;
    }
    t->channels = (int)channels, t->top = (int)top, t->steps = (int)steps, t->fourier = (int)fourier, t->seed = seed;
    char err[300];
    const cs_dataset *d = cs_data_get("test", err, sizeof err);
    const cs_model *m = t->ref.m;
    if (!d) cs_fmt(t->why, sizeof t->why, "%s", err);
    else if (m->input.h != d->h || m->input.w != d->w || m->input.c != 1 || m->n_extra_inputs)
        cs_fmt(t->why, sizeof t->why, "the model takes %dx%dx%d inputs, not the data set's %dx%d grayscale images",
               m->input.h, m->input.w, m->input.c, d->h, d->w);
    else t->d = d;
    t->images = t->d ? (limit > 0 && limit < d->n ? (int)limit : d->n) : 0;
    cs_fmt(t->key, sizeof t->key, "%08x:%d:%d?version=%d&channels=%d&top=%d&limit=%d&steps=%d&fourier=%d&seed=%ld",
           (unsigned)t->ref.crc, t->ref.version, t->node, t->ref.version, t->channels, t->top, t->images, t->steps,
           t->fourier, seed);
    return 1;
}

static int reply_cached(cs_reply *rep, const char *key)
{
    pthread_mutex_lock(&g_lock);
    slot *s = find(key);
    if (s) cs_reply_bytes(rep, 200, "application/json", s->text, s->len);
    pthread_mutex_unlock(&g_lock);
    return s != NULL;
}

/* POST /v1/models/{model}/layers/{layer}/atlas  [version, channels, top, limit, steps, fourier, seed] */
void cs_h_atlas_start(cs_req *req, cs_reply *rep)
{
    atlas_task *t = calloc(1, sizeof *t);
    if (!t) {
        cs_reply_nomem(rep, "cannot answer");
        return;
    }
    if (!settings_or_reply(req, rep, t) || reply_cached(rep, t->key)) {
        task_free(t);
        return;
    }
    json_t *params = json_pack("{s:i,s:s,s:i,s:i,s:i,s:i}", "version", t->ref.version, "layer",
                               t->ref.m->layers[t->node].name, "channels", t->channels, "top", t->top, "images",
                               t->images, "steps", t->steps);
    cs_job_start_task(rep, "atlas", t->ref.served->name, params, atlas_run, t, task_free);
}

/* GET /v1/models/{model}/layers/{layer}/atlas  [the same] */
void cs_h_atlas(cs_req *req, cs_reply *rep)
{
    atlas_task t = {0};
    if (settings_or_reply(req, rep, &t) && !reply_cached(rep, t.key))
        cs_reply_error(rep, 404, "not_made", "this atlas has not been made: POST to this URL starts it");
    cs_model_ref_release(&t.ref);
}

/* GET /v1/models/{model}/layers/{layer}/atlas/{channel}.png  [the same, scale] */
void cs_h_atlas_png(cs_req *req, cs_reply *rep)
{
    atlas_task t = {0};
    long ch, scale;
    if (!settings_or_reply(req, rep, &t) || !cs_param_int(req, rep, "scale", 1, 1, 32, &scale)) {
        cs_model_ref_release(&t.ref);
        return;
    }
    const char *cs = cs_req_param(req, "channel");
    if (!cs_parse_long(cs, &ch) || ch < 0 || ch >= t.channels) {
        cs_reply_error(rep, 404, "not_found", "channel '%.16s' is not among the atlas's first %d", cs, t.channels);
        cs_model_ref_release(&t.ref);
        return;
    }
    cs_image *img = NULL;
    pthread_mutex_lock(&g_lock);
    slot *s = find(t.key);
    if (s) {
        img = cs_image_new(s->w * (int)scale, s->h * (int)scale, s->c);
        const float *src = s->images + (size_t)ch * s->h * s->w * s->c;
        for (int y = 0; img && y < img->h; y++)
            for (int x = 0; x < img->w; x++)
                for (int c = 0; c < s->c; c++) {
                    /* Caffe inputs are B, G, R: shown as R, G, B. */
                    int from = s->bgr && s->c == 3 ? 2 - c : c;
                    float v = src[((size_t)(y / scale) * s->w + x / scale) * s->c + from];
                    float u = (v - s->lo[from]) / (s->hi[from] - s->lo[from]);
                    img->px[((size_t)y * img->w + x) * s->c + c] = (uint8_t)(u <= 0 ? 0 : u >= 1 ? 255 : u * 255 + 0.5f);
                }
    }
    pthread_mutex_unlock(&g_lock);
    if (!s) cs_reply_error(rep, 404, "not_made", "this atlas has not been made: POST .../atlas starts it");
    else cs_reply_image(req, rep, img, "feature visualisation");
    cs_model_ref_release(&t.ref);
}
