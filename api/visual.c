/*
 * visual.c - what a layer holds (filter grids) and what it sees (feature-map grids,
 * each map on its own scale or all on the layer's, in channel order or strongest
 * first).
 *
 * Filter grids depend only on the model version and the query, so they carry an ETag
 * built from the parameters' CRC and the resolved query: a browser that asks again
 * gets 304 until training publishes new weights.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "draw.h"
#include "handlers.h"
#include "input.h"
#include "params.h"
#include "reply.h"
#include "stats.h"

static uint32_t fnv1a(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

/* A grid of n tiles of h x w drawn `scale` times larger in `cols` columns must fit the
 * drawing limit; 1, or 0 after a 400 that says how big it would be. */
static int grid_fits_or_reply(cs_reply *rep, int n, int h, int w, int cols, int scale)
{
    long long gw, gh;
    cs_draw_tiles_size(n, h, w, cols, scale, 2, &gw, &gh);
    if (gw > 0 && gh > 0 && gw * gh <= CS_DRAW_MAX_PIXELS) return 1;
    cs_reply_error(rep, 400, "bad_parameter",
                   "the grid would be %lldx%lld pixels, above the limit of %lld: use a smaller scale, count or cols",
                   gw, gh, (long long)CS_DRAW_MAX_PIXELS);
    return 0;
}

/* GET /v1/models/{model}/layers/{layer}/filters.png  [count, cols, channel, scale, norm=layer|filter] */
void cs_h_filters(cs_req *req, cs_reply *rep)
{
    cs_model_version *v = cs_model_or_reply(req, rep, NULL);
    if (!v) return;
    const cs_model *m = v->model;
    int li = cs_layer_or_reply(req, rep, m, cs_req_param(req, "layer"));
    if (li < 0) goto out;
    const cs_layer *l = &m->layers[li];
    /* Every conv kind's first tensor is its (kh, kw, in, out) kernel (a depthwise one's
     * "out" is the channel multiplier). */
    if (l->n_params < 1 || l->params[0].ndim != 4) {
        char convs[512] = "";
        for (int i = 0; i < m->n_layers; i++)
            if (m->layers[i].n_params && m->layers[i].params[0].ndim == 4 &&
                strlen(convs) + strlen(m->layers[i].name) + 3 < sizeof convs) {
                strcat(convs, convs[0] ? ", " : "");
                strcat(convs, m->layers[i].name);
            }
        cs_reply_error(rep, 400, "not_conv_layer", "layer '%s' is a %s and has no filters; conv layers: %s",
                       l->name, cs_layer_kind_name(l->kind), convs);
        goto out;
    }
    const cs_param *k = &l->params[0];
    int kh = k->dims[0], kw = k->dims[1], cin = k->dims[2], cout = k->dims[3];
    long count, cols, channel, scale;
    int norm;
    static const char *const norms[] = {"layer", "filter", NULL};
    if (!cs_param_int(req, rep, "count", cout < 15 ? cout : 15, 1, cout, &count) ||
        !cs_param_int(req, rep, "cols", 5, 1, 64, &cols) ||
        !cs_param_int(req, rep, "channel", 0, 0, cin - 1, &channel) ||
        !cs_param_int(req, rep, "scale", kh < 60 ? 60 / kh : 1, 1, 64, &scale) ||
        !cs_param_choice(req, rep, "norm", norms, 0, &norm))
        goto out;
    if (!grid_fits_or_reply(rep, (int)count, kh, kw, (int)cols, (int)scale)) goto out;
    char etag[128], canon[256];
    snprintf(canon, sizeof canon, "%s|%ld|%ld|%ld|%ld|%d", l->name, count, cols, channel, scale, norm);
    snprintf(etag, sizeof etag, "\"%s-%08x-%08x\"", m->arch, v->crc, fnv1a(canon));
    if (cs_reply_etag(req, rep, etag)) goto out;

    double t0 = cs_now();
    /* The notebook normalises over the whole layer (every filter, every channel). */
    float lo = k->data[0], hi = k->data[0];
    for (size_t i = 1; i < k->size; i++) {
        if (k->data[i] < lo) lo = k->data[i];
        if (k->data[i] > hi) hi = k->data[i];
    }
    cs_tiles t = {k->data + channel, (int)count, kh, kw, 1, 1, (ptrdiff_t)kw * cin * cout, (ptrdiff_t)cin * cout, 0};
    cs_image *img = cs_draw_tiles(&t, (int)cols, (int)scale, norm == 1, lo, hi, 2);
    cs_req_stage_add(req, CS_STAGE_DRAW, t0);
    char hdr[32];
    snprintf(hdr, sizeof hdr, "%d", (int)count);
    cs_reply_header(rep, "X-Tiles", hdr);
    cs_reply_image(req, rep, img, "cannot draw the filters");
out:
    cs_version_release(v);
}

/* POST /v1/models/{model}/layers/{layer}/feature-maps.png  image/png | image/jpeg | multipart
 * [count, cols, scale, norm=map|layer, order=index|mean|max, sample] */
void cs_h_feature_maps(cs_req *req, cs_reply *rep)
{
    cs_model_version *v = cs_model_or_reply(req, rep, NULL);
    if (!v) return;
    const cs_model *m = v->model;
    cs_input_set in = {0};
    cs_exec *e = NULL;
    float *x = NULL, *picked = NULL;
    cs_summary *stats = NULL;
    int *order = NULL;
    int li = cs_layer_or_reply(req, rep, m, cs_req_param(req, "layer"));
    if (li < 0) goto out;
    const cs_layer *l = &m->layers[li];
    if (l->out.h < 2 || l->out.w < 2) {
        cs_reply_error(rep, 400, "not_spatial", "layer '%s' (%s) has a %dx%dx%d output: no maps to draw; pick a layer "
                       "before the flatten", l->name, cs_layer_kind_name(l->kind), l->out.h, l->out.w, l->out.c);
        goto out;
    }
    long count, cols, scale;
    int ch = l->out.c, norm, key;
    static const char *const norms[] = {"map", "layer", NULL};
    static const char *const orders[] = {"index", "mean", "max", NULL}; /* cs_channel_key */
    if (!cs_param_int(req, rep, "count", ch < 32 ? ch : 32, 1, ch, &count) ||
        !cs_param_int(req, rep, "cols", 8, 1, 64, &cols) ||
        !cs_param_int(req, rep, "scale", l->out.h < 112 ? 112 / l->out.h : 1, 1, 64, &scale) ||
        !cs_param_choice(req, rep, "norm", norms, 0, &norm) ||
        !cs_param_choice(req, rep, "order", orders, CS_ORDER_INDEX, &key))
        goto out;
    if (!grid_fits_or_reply(rep, (int)count, l->out.h, l->out.w, (int)cols, (int)scale)) goto out;
    if (!cs_images_or_reply(req, rep, 1, &in)) goto out;
    const cs_image *upload = cs_image_at_or_reply(req, rep, &in, 0);
    x = upload ? cs_tensor_or_reply(req, rep, m, upload) : NULL;
    if (!x) goto out;
    cs_input_free(&in);
    e = cs_version_exec_get(v);
    const size_t hw = (size_t)l->out.h * l->out.w;
    stats = malloc((size_t)ch * sizeof *stats);
    order = malloc((size_t)ch * sizeof *order);
    if (!e || !stats || !order) {
        cs_reply_nomem(rep, "cannot start the forward pass");
        goto out;
    }
    double t0 = cs_now();
    if (cs_exec_forward_upto(e, x, 1, li) != 0) {
        cs_reply_nomem(rep, "cannot run the model");
        goto out;
    }
    cs_req_stage_add(req, CS_STAGE_FORWARD, t0);
    t0 = cs_now();
    /* The statistics and order the activations route reports for the same image. */
    cs_channel_stats(e->act[li], hw, ch, stats);
    if (cs_channel_order(stats, ch, (cs_channel_key)key, order) != 0) {
        cs_reply_nomem(rep, "cannot answer");
        goto out;
    }
    cs_tiles t = {e->act[li], (int)count, l->out.h, l->out.w, 1, 1, (ptrdiff_t)l->out.w * ch, ch, 0};
    if (key != CS_ORDER_INDEX) {
        /* The chosen channels side by side, as maps of their own. */
        picked = malloc((size_t)count * hw * sizeof *picked);
        if (!picked) {
            cs_reply_nomem(rep, "cannot answer");
            goto out;
        }
        for (long k = 0; k < count; k++)
            for (size_t p = 0; p < hw; p++) picked[(size_t)k * hw + p] = e->act[li][p * (size_t)ch + (size_t)order[k]];
        t = (cs_tiles){picked, (int)count, l->out.h, l->out.w, 1, (ptrdiff_t)hw, l->out.w, 1, 0};
    }
    /* map: each map by its own range, as imshow does; layer: one range, the smallest
     * and largest value of any channel of the layer for this image, so maps compare. */
    float lo = 0, hi = 0;
    int seen = 0;
    for (int k = 0; k < ch; k++)
        if (stats[k].n) {
            if (!seen || stats[k].min < lo) lo = stats[k].min;
            if (!seen || stats[k].max > hi) hi = stats[k].max;
            seen = 1;
        }
    cs_image *img = cs_draw_tiles(&t, (int)cols, (int)scale, norm == 0, lo, hi, 2);
    cs_req_stage_add(req, CS_STAGE_DRAW, t0);
    char hdr[64];
    snprintf(hdr, sizeof hdr, "%s", norm == 0 ? "map" : "layer");
    cs_reply_header(rep, "X-Scale", hdr);
    if (norm == 1) {
        snprintf(hdr, sizeof hdr, "%.9g", (double)lo);
        cs_reply_header(rep, "X-Scale-Min", hdr);
        snprintf(hdr, sizeof hdr, "%.9g", (double)hi);
        cs_reply_header(rep, "X-Scale-Max", hdr);
    }
    cs_reply_image(req, rep, img, "cannot draw the feature maps");
out:
    free(picked);
    free(order);
    free(stats);
    free(x);
    cs_version_exec_put(v, e);
    cs_input_free(&in);
    cs_version_release(v);
}
