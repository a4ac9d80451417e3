/*
 * job_snapshots.c - a training job's model seen after every epoch: the filters of its
 * first convolution and the epoch's test accuracy, so the page can show how the filters
 * take shape while it trains. A job asks for them with "snapshots": true;
 * GET /v1/jobs/{id}/snapshots lists them, GET .../snapshots/{epoch}/filters.png draws one
 * as the filters route draws the served model's (one min-max over the whole layer).
 *
 * Kept here per job id for the last SNAP_JOBS jobs that asked (the kernels are small: 288
 * floats an epoch for the notebook's network); the job's thread adds under the lock,
 * requests read under it.
 */
#include "job_snapshots.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "draw.h"
#include "handlers.h"
#include "params.h"
#include "reply.h"

#define SNAP_JOBS 8

typedef struct {
    char id[24];
    char layer[CS_NAME_MAX];
    int node, kh, kw, cin, cout;
    unsigned long started; /* for eviction */
    int n;                 /* epochs kept */
    int *epoch;
    float *test_accuracy;
    float *kernels; /* n * kh * kw * cin * cout */
} job_snaps;

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static job_snaps g_snaps[SNAP_JOBS];
static unsigned long g_clock;

static job_snaps *find(const char *id)
{
    for (int i = 0; i < SNAP_JOBS; i++)
        if (g_snaps[i].id[0] && !strcmp(g_snaps[i].id, id)) return &g_snaps[i];
    return NULL;
}

static size_t kernel_floats(const job_snaps *s)
{
    return (size_t)s->kh * s->kw * s->cin * s->cout;
}

int cs_snapshots_begin(const char *job_id, const cs_model *m)
{
    int node = -1;
    for (int i = 0; i < m->n_layers && node < 0; i++)
        if (m->layers[i].n_params && m->layers[i].params[0].ndim == 4) node = i;
    if (node < 0) return -1;
    pthread_mutex_lock(&g_lock);
    job_snaps *s = &g_snaps[0];
    for (int i = 0; i < SNAP_JOBS; i++)
        if (!g_snaps[i].id[0] || g_snaps[i].started < s->started) s = &g_snaps[i];
    free(s->epoch);
    free(s->test_accuracy);
    free(s->kernels);
    memset(s, 0, sizeof *s);
    const int *d = m->layers[node].params[0].dims;
    cs_fmt(s->id, sizeof s->id, "%s", job_id);
    cs_fmt(s->layer, sizeof s->layer, "%s", m->layers[node].name);
    s->node = node, s->kh = d[0], s->kw = d[1], s->cin = d[2], s->cout = d[3];
    s->started = ++g_clock;
    pthread_mutex_unlock(&g_lock);
    return 0;
}

void cs_snapshots_take(const char *job_id, const cs_model *m, const cs_epoch_record *r)
{
    pthread_mutex_lock(&g_lock);
    job_snaps *s = find(job_id);
    if (s) {
        const size_t k = kernel_floats(s);
        int *e = realloc(s->epoch, sizeof *e * (size_t)(s->n + 1));
        if (e) s->epoch = e;
        float *a = e ? realloc(s->test_accuracy, sizeof *a * (size_t)(s->n + 1)) : NULL;
        if (a) s->test_accuracy = a;
        float *w = a ? realloc(s->kernels, sizeof *w * k * (size_t)(s->n + 1)) : NULL;
        if (w) { /* a failed allocation skips this epoch: the others stay */
            s->kernels = w;
            memcpy(w + k * s->n, m->layers[s->node].params[0].data, k * sizeof *w);
            s->epoch[s->n] = r->epoch;
            s->test_accuracy[s->n] = r->test_accuracy;
            s->n++;
        }
    }
    pthread_mutex_unlock(&g_lock);
}

/* GET /v1/jobs/{id}/snapshots */
void cs_h_job_snapshots(cs_req *req, cs_reply *rep)
{
    const char *id = cs_req_param(req, "id");
    pthread_mutex_lock(&g_lock);
    job_snaps *s = find(id);
    json_t *doc = NULL;
    if (s) {
        json_t *list = json_array();
        for (int i = 0; i < s->n; i++) {
            char url[128];
            cs_fmt(url, sizeof url, "/v1/jobs/%s/snapshots/%d/filters.png", s->id, s->epoch[i]);
            json_array_append_new(list, json_pack("{s:i,s:o,s:s}", "epoch", s->epoch[i], "test_accuracy",
                                                  s->test_accuracy[i] >= 0 ? json_real(s->test_accuracy[i]) : json_null(),
                                                  "filters", url));
        }
        doc = json_pack("{s:s,s:s,s:{s:i,s:i,s:i},s:o}", "job", s->id, "layer", s->layer, "filters", "count", s->cout,
                        "size", s->kh, "channels", s->cin, "epochs", list);
    }
    pthread_mutex_unlock(&g_lock);
    if (doc) cs_reply_json(rep, 200, doc);
    else cs_reply_error(rep, 404, "not_found", "job '%.32s' kept no snapshots (start it with \"snapshots\": true)", id);
}

/* GET /v1/jobs/{id}/snapshots/{epoch}/filters.png  [count, cols, channel, scale] */
void cs_h_job_snapshot_png(cs_req *req, cs_reply *rep)
{
    const char *id = cs_req_param(req, "id"), *es = cs_req_param(req, "epoch");
    long epoch, count, cols, channel, scale;
    cs_image *img = NULL;
    int found = 0;
    pthread_mutex_lock(&g_lock);
    job_snaps *s = find(id);
    int at = -1;
    for (int i = 0; s && cs_parse_long(es, &epoch) && i < s->n; i++)
        if (s->epoch[i] == epoch) at = i;
    if (at >= 0) {
        found = 1;
        if (cs_param_int(req, rep, "count", s->cout < 15 ? s->cout : 15, 1, s->cout, &count) &&
            cs_param_int(req, rep, "cols", 5, 1, 64, &cols) &&
            cs_param_int(req, rep, "channel", 0, 0, s->cin - 1, &channel) &&
            cs_param_int(req, rep, "scale", s->kh < 60 ? 60 / s->kh : 1, 1, 64, &scale)) {
            const size_t k = kernel_floats(s);
            const float *w = s->kernels + k * at;
            float lo = w[0], hi = w[0];
            for (size_t i = 1; i < k; i++) lo = w[i] < lo ? w[i] : lo, hi = w[i] > hi ? w[i] : hi;
            cs_tiles t = {w + channel, (int)count, s->kh, s->kw, 1, 1, (ptrdiff_t)s->kw * s->cin * s->cout,
                          (ptrdiff_t)s->cin * s->cout, 0};
            img = cs_draw_tiles(&t, (int)cols, (int)scale, 0, lo, hi, 2);
            found = 2;
        }
    }
    pthread_mutex_unlock(&g_lock);
    if (!found) cs_reply_error(rep, 404, "not_found", "job '%.32s' has no snapshot of epoch '%.16s'", id, es);
    else if (found == 2) cs_reply_image(req, rep, img, "filters");
}
