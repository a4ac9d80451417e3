/*
 * explain_compare.c - several explanations of one prediction side by side, each with
 * its faithfulness numbers: one PNG grid (a row per method: the image, the heatmap,
 * the overlay; a colour scale under them) or JSON.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "draw.h"
#include "draw_grid.h"
#include "explain_api.h"
#include "handlers.h"
#include "params.h"
#include "reply.h"

#define MAX_METHODS 32
#define GAP 4
#define BAR 12

/* The grid: for each method, the image, its heatmap and its overlay, tile_w across. */
static cs_image *grid(const cs_explain_req *r, const cs_explain_map *maps, int n, float alpha, int tile_w)
{
    const cs_model *m = r->m;
    const cs_image *orig = &r->in.img;
    const cs_image **tiles = calloc((size_t)n * 3, sizeof *tiles);
    cs_image base = {0}, *img = NULL, *first = NULL;
    if (!tiles || cs_overlay_base(m, orig, r->x, &base) != CS_IMG_OK) goto out;
    /* The tiles take the aspect of what the model read (a centre crop with some models). */
    int tile_h = (int)((double)tile_w * base.h / base.w + 0.5);
    if (tile_h < 1) tile_h = 1;
    cs_image small = {0};
    if (cs_image_resize_bilinear(&base, tile_w, tile_h, &small) != CS_IMG_OK) goto out;
    if (!(first = cs_image_new(tile_w, tile_h, small.c))) {
        cs_image_free(&small);
        goto out;
    }
    memcpy(first->px, small.px, (size_t)tile_w * tile_h * small.c);
    cs_image_free(&small);
    for (int i = 0; i < n; i++) {
        tiles[3 * i] = first;
        tiles[3 * i + 1] = cs_draw_heatmap(maps[i].heat, maps[i].h, maps[i].w, tile_w, tile_h);
        tiles[3 * i + 2] = cs_draw_gradcam_overlay(&base, maps[i].heat, maps[i].h, maps[i].w, alpha, tile_w, tile_h);
        if (!tiles[3 * i + 1] || !tiles[3 * i + 2]) goto out;
    }
    img = cs_draw_tile_grid(tiles, n, 3, tile_w, tile_h, GAP, BAR);
out:
    for (int i = 0; tiles && i < n; i++) {
        cs_image_destroy((cs_image *)tiles[3 * i + 1]);
        cs_image_destroy((cs_image *)tiles[3 * i + 2]);
    }
    free(tiles);
    cs_image_destroy(first);
    cs_image_free(&base);
    return img;
}

/* Up to 255 characters of a comma list, one entry per method. */
static void list_header(cs_reply *rep, const char *name, const cs_explain_method *const *meths,
                        const cs_faith_result *fr, int n, int which)
{
    char v[256] = "";
    for (int i = 0; i < n; i++) {
        size_t len = strlen(v);
        if (which == 0) snprintf(v + len, sizeof v - len, "%s%s", i ? "," : "", meths[i]->name);
        else snprintf(v + len, sizeof v - len, "%s%.4f", i ? "," : "", which == 1 ? fr[i].deletion_auc : fr[i].insertion_auc);
    }
    cs_reply_header(rep, name, v);
}

/* POST /v1/models/{model}/explain/compare  image/png | image/jpeg | multipart
 * [methods=a,b,..., the method parameters, format=png|json, alpha, size, sample, curve_steps, road_noise] */
void cs_h_explain_compare(cs_req *req, cs_reply *rep)
{
    static const char *const formats[] = {"png", "json", NULL};
    const cs_explain_method *meths[MAX_METHODS];
    cs_explain_map maps[MAX_METHODS];
    cs_faith_result fr[MAX_METHODS];
    int n = 0, done = 0, format;
    double alpha;
    long size;
    memset(maps, 0, sizeof maps);
    memset(fr, 0, sizeof fr);
    cs_explain_req r;
    if (!cs_explain_req_model(req, rep, &r)) goto out;
    const cs_model *m = r.m;
    cs_explain_params p;
    cs_faith_params fp;
    if (!(n = cs_explain_methods_or_reply(req, rep, meths, MAX_METHODS)) ||
        !cs_explain_params_or_reply(req, rep, m, meths, n, &p) ||
        !cs_param_choice(req, rep, "format", formats, 0, &format) ||
        !cs_param_float(req, rep, "alpha", cs_explain_default_alpha(m), 0, 10, &alpha) ||
        !cs_param_int(req, rep, "size", m->input.c == 1 ? 140 : 224, 8, 1024, &size) ||
        !cs_faith_params_or_reply(req, rep, m, &p, &fp) || !cs_explain_req_image(req, rep, &r, meths, n, &p))
        goto out;
    char err[300];
    double t0 = cs_now();
    for (; done < n; done++) {
        int rc = cs_explain_run(&r.ex, meths[done], &p, &maps[done], err, sizeof err);
        if (rc != 0) {
            if (rc == -2) cs_reply_nomem(rep, meths[done]->name);
            else cs_reply_error(rep, 400, "bad_parameter", "%s: %s", meths[done]->name, err);
            goto out;
        }
        if (cs_faith_evaluate(&r.ex, &maps[done], &fp, CS_FAITH_ALL, &fr[done], err, sizeof err) != 0) {
            done++;
            cs_reply_internal(rep, err);
            goto out;
        }
    }
    cs_req_stage_add(req, CS_STAGE_BACKWARD, t0);
    if (format == 1) {
        json_t *list = json_array();
        for (int i = 0; i < n; i++) {
            json_t *one = cs_explain_map_json(m, &maps[i]);
            json_object_del(one, "map"); /* the heatmaps are what a comparison shows */
            json_object_set_new(one, "scores", cs_faith_json(&fr[i]));
            json_array_append_new(list, one);
        }
        const int c = maps[0].class_index;
        json_t *doc = json_pack("{s:s,s:i,s:i,s:s,s:f,s:o}", "model", r.served->name, "version", r.v->version,
                                "class_index", c, "label", m->class_names ? m->class_names[c] : "", "probability",
                                (double)r.ex.out[c], "methods", list);
        if (r.in.sample) json_object_set_new(doc, "sample", json_string(r.in.sample));
        cs_reply_json(rep, 200, doc);
        goto out;
    }
    t0 = cs_now();
    cs_image *img = grid(&r, maps, n, (float)alpha, (int)size);
    cs_req_stage_add(req, CS_STAGE_DRAW, t0);
    if (cs_reply_image(req, rep, img, "cannot draw the comparison") != 0) goto out;
    list_header(rep, "X-Methods", meths, fr, n, 0);
    list_header(rep, "X-Deletion-AUC", meths, fr, n, 1);
    list_header(rep, "X-Insertion-AUC", meths, fr, n, 2);
out:
    for (int i = 0; i < done; i++) {
        cs_explain_map_free(&maps[i]);
        cs_faith_free(&fr[i]);
    }
    cs_explain_req_close(&r);
}
