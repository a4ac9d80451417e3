/*
 * conv_window.c - the conv kinds' window (conv_window.h).
 */
#include "conv_window.h"

#include <stdio.h>
#include <string.h>

#define MAX_DIM (1 << 24)

static int or_first(int v, int first) { return v > 0 ? v : first; }
static int at_least_1(int v) { return v > 0 ? v : 1; }

static void normalise(cs_layer_config *c)
{
    c->stride = at_least_1(c->stride);
    c->dilation = at_least_1(c->dilation);
    c->kernel_w = or_first(c->kernel_w, c->kernel);
    c->stride_w = or_first(c->stride_w, c->stride);
    c->dilation_w = or_first(c->dilation_w, c->dilation);
}

cs_conv2d_geom cs_conv_window_geom(const cs_layer *l, int in_c, int oc, int groups, int n)
{
    const cs_layer_config *c = &l->cfg;
    cs_conv2d_geom g = {.n = n, .ih = l->in.h, .iw = l->in.w, .ic = in_c, .oh = l->out.h, .ow = l->out.w, .oc = oc,
                        .kh = c->kernel, .kw = c->kernel_w, .sh = c->stride, .sw = c->stride_w,
                        .dh = c->dilation, .dw = c->dilation_w, .groups = groups};
    if (c->pad_explicit) {
        g.pt = c->pads[0], g.pl = c->pads[1], g.pb = c->pads[2], g.pr = c->pads[3];
    } else if (c->pad_same) {
        cs_conv2d_same_pads(g.ih, g.kh, g.sh, g.dh, 1, &g.pt, &g.pb);
        cs_conv2d_same_pads(g.iw, g.kw, g.sw, g.dw, 1, &g.pl, &g.pr);
    }
    return g;
}

int cs_conv_window_infer(cs_layer *l, const cs_shape *in, int oc, int groups, cs_conv2d_geom *g, char *err,
                         size_t errlen)
{
    cs_layer_config *c = &l->cfg;
    normalise(c);
    if (c->kernel <= 0 || oc <= 0) {
        snprintf(err, errlen, "%s: a conv needs filters and a kernel size", l->name);
        return -1;
    }
    for (int k = 0; c->pad_explicit && k < 4; k++)
        if (c->pads[k] < 0 || c->pads[k] > MAX_DIM) {
            snprintf(err, errlen, "%s: padding %d is out of range", l->name, c->pads[k]);
            return -1;
        }
    *g = cs_conv_window_geom(l, in->c, oc, groups, 1);
    g->ih = in->h, g->iw = in->w;
    if (c->pad_same && !c->pad_explicit) {
        cs_conv2d_same_pads(g->ih, g->kh, g->sh, g->dh, 1, &g->pt, &g->pb);
        cs_conv2d_same_pads(g->iw, g->kw, g->sw, g->dw, 1, &g->pl, &g->pr);
    }
    g->oh = cs_conv2d_out_size(in->h, g->kh, g->sh, g->dh, g->pt, g->pb);
    g->ow = cs_conv2d_out_size(in->w, g->kw, g->sw, g->dw, g->pl, g->pr);
    if (g->oh < 1 || g->ow < 1) {
        snprintf(err, errlen, "%s: input %dx%d is smaller than the %dx%d kernel", l->name, in->h, in->w, g->kh, g->kw);
        return -1;
    }
    char why[160];
    if (cs_conv2d_check(g, why, sizeof why) != 0) {
        snprintf(err, errlen, "%s: %s", l->name, why);
        return -1;
    }
    l->out = (cs_shape){g->oh, g->ow, oc};
    return 0;
}

static json_t *pair(int a, int b) { return a == b ? json_integer(a) : json_pack("[ii]", a, b); }

int cs_conv_window_to_json(const cs_layer *l, json_t *o)
{
    const cs_layer_config *c = &l->cfg;
    int bad = json_object_set_new(o, "kernel_size", pair(c->kernel, or_first(c->kernel_w, c->kernel))) ||
              json_object_set_new(o, "strides", pair(c->stride, or_first(c->stride_w, c->stride))) ||
              json_object_set_new(o, "padding",
                                  json_string(c->pad_explicit ? "explicit" : c->pad_same ? "same" : "valid"));
    int d = at_least_1(c->dilation), dw = or_first(c->dilation_w, d);
    if (!bad && (d != 1 || dw != 1)) bad = json_object_set_new(o, "dilation_rate", pair(d, dw));
    if (!bad && c->pad_explicit)
        bad = json_object_set_new(o, "pads", json_pack("[iiii]", c->pads[0], c->pads[1], c->pads[2], c->pads[3]));
    return bad ? -1 : 0;
}

/* A number, or a pair [first, second]: Keras writes both. Absent: *a = def. */
static int get_pair(json_t *o, const char *key, int def, int *a, int *b, char *err, size_t errlen)
{
    json_t *v = json_object_get(o, key);
    if (!v) {
        *a = *b = def;
        return 0;
    }
    json_t *x = json_is_array(v) ? json_array_get(v, 0) : v, *y = json_is_array(v) ? json_array_get(v, 1) : v;
    if ((json_is_array(v) && json_array_size(v) != 2) || !json_is_integer(x) || !json_is_integer(y) ||
        json_integer_value(x) < 1 || json_integer_value(x) > MAX_DIM || json_integer_value(y) < 1 ||
        json_integer_value(y) > MAX_DIM) {
        snprintf(err, errlen, "'%s' is not a size or a pair of sizes", key);
        return -1;
    }
    *a = (int)json_integer_value(x);
    *b = (int)json_integer_value(y);
    return 0;
}

int cs_conv_window_from_json(json_t *o, cs_layer_config *cfg, char *err, size_t errlen)
{
    if (!json_object_get(o, "kernel_size")) {
        snprintf(err, errlen, "has no 'kernel_size'");
        return -1;
    }
    if (get_pair(o, "kernel_size", 1, &cfg->kernel, &cfg->kernel_w, err, errlen) ||
        get_pair(o, "strides", 1, &cfg->stride, &cfg->stride_w, err, errlen) ||
        get_pair(o, "dilation_rate", 1, &cfg->dilation, &cfg->dilation_w, err, errlen))
        return -1;
    const char *pad = cs_json_get_str(o, "padding", err, errlen);
    if (!pad) return -1;
    cfg->pad_same = strcmp(pad, "same") == 0;
    cfg->pad_explicit = strcmp(pad, "explicit") == 0;
    if (!cfg->pad_same && !cfg->pad_explicit && strcmp(pad, "valid") != 0) {
        snprintf(err, errlen, "padding '%s' is not valid, same or explicit", pad);
        return -1;
    }
    if (cfg->pad_explicit) {
        json_t *p = json_object_get(o, "pads");
        if (!json_is_array(p) || json_array_size(p) != 4) {
            snprintf(err, errlen, "explicit padding needs 'pads' [top, left, bottom, right]");
            return -1;
        }
        for (int k = 0; k < 4; k++) {
            json_t *x = json_array_get(p, (size_t)k);
            if (!json_is_integer(x) || json_integer_value(x) < 0 || json_integer_value(x) > MAX_DIM) {
                snprintf(err, errlen, "'pads' entry %d is not a size", k);
                return -1;
            }
            cfg->pads[k] = (int)json_integer_value(x);
        }
    }
    return 0;
}
