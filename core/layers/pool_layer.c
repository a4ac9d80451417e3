/*
 * pool_layer.c - the configuration of the pooling rows (pool_layer.h).
 */
#include "pool_layer.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

#define MAX_DIM (1 << 24)

/* One axis: the padding before and after that 'same' gives (TensorFlow: the output is
 * ceil(in / stride), and the odd padded pixel goes at the end). */
static void same_pads(int in, int k, int stride, int dilation, int *begin, int *end)
{
    const long extent = (long)(k - 1) * dilation + 1, out = ((long)in + stride - 1) / stride;
    long total = (out - 1) * stride + extent - in;
    if (total < 0) total = 0;
    *begin = (int)(total / 2);
    *end = (int)(total - total / 2);
}

cs_pool2d_geom cs_pool_layer_geom(const cs_layer *l, int n)
{
    const cs_layer_config *c = &l->cfg;
    cs_pool2d_geom g = {.n = n, .ih = l->in.h, .iw = l->in.w, .c = l->in.c, .oh = l->out.h, .ow = l->out.w,
                        .kh = c->kernel, .kw = c->kernel_w, .sh = c->stride, .sw = c->stride_w,
                        .dh = c->dilation, .dw = c->dilation_w, .count_include_pad = c->count_include_pad};
    if (c->pad_same) {
        same_pads(g.ih, g.kh, g.sh, g.dh, &g.pt, &g.pb);
        same_pads(g.iw, g.kw, g.sw, g.dw, &g.pl, &g.pr);
    } else if (c->pad_explicit) {
        g.pt = c->pads[0], g.pl = c->pads[1], g.pb = c->pads[2], g.pr = c->pads[3];
    }
    return g;
}

/* Output length of one axis, 0 when no window fits. */
static int out_size(int in, int k, int stride, int dilation, int pb, int pe, int ceil_mode)
{
    const long extent = (long)(k - 1) * dilation + 1;
    if (extent > (long)in + pb + pe) return 0;
    return cs_pool2d_out_size(in, (int)extent, stride, pb, pe, ceil_mode);
}

static int in_range(int v) { return v >= 1 && v <= MAX_DIM; }

int cs_pool_layer_infer(cs_layer *l, const cs_shape *in, char *err, size_t errlen)
{
    cs_layer_config *c = &l->cfg;
    const int avg = l->kind == CS_AVGPOOL;
    if (!c->kernel) c->kernel = c->pool > 0 ? c->pool : 2;
    if (!c->kernel_w) c->kernel_w = c->kernel;
    if (!c->stride) {
        c->stride = c->kernel;
        if (!c->stride_w) c->stride_w = c->kernel_w;
    } else if (!c->stride_w) {
        c->stride_w = c->stride;
    }
    if (!c->dilation) c->dilation = 1;
    if (!c->dilation_w) c->dilation_w = c->dilation;
    if (!in_range(c->kernel) || !in_range(c->kernel_w)) {
        snprintf(err, errlen, "%s: pool_size %dx%d is not 1 to %d", l->name, c->kernel, c->kernel_w, MAX_DIM);
        return -1;
    }
    if (!in_range(c->stride) || !in_range(c->stride_w)) {
        snprintf(err, errlen, "%s: strides %dx%d are not 1 to %d", l->name, c->stride, c->stride_w, MAX_DIM);
        return -1;
    }
    if (!in_range(c->dilation) || !in_range(c->dilation_w)) {
        snprintf(err, errlen, "%s: dilation %dx%d is not 1 to %d", l->name, c->dilation, c->dilation_w, MAX_DIM);
        return -1;
    }
    if (c->pad_same && c->pad_explicit) {
        snprintf(err, errlen, "%s: padding is both 'same' and explicit pads", l->name);
        return -1;
    }
    if (c->pad_same && c->ceil_mode) {
        snprintf(err, errlen, "%s: ceil_mode applies to 'valid' or explicit padding, not 'same'", l->name);
        return -1;
    }
    for (int k = 0; c->pad_explicit && k < 4; k++)
        if (c->pads[k] < 0 || c->pads[k] > MAX_DIM) {
            snprintf(err, errlen, "%s: pads [%d, %d, %d, %d] are not 0 to %d", l->name, c->pads[0], c->pads[1],
                     c->pads[2], c->pads[3], MAX_DIM);
            return -1;
        }
    if (!avg && c->count_include_pad) {
        snprintf(err, errlen, "%s: count_include_pad applies to average pools only", l->name);
        return -1;
    }
    c->ceil_mode = c->ceil_mode != 0;
    c->count_include_pad = c->count_include_pad != 0;
    l->out = (cs_shape){1, 1, in->c};
    cs_pool2d_geom g = cs_pool_layer_geom(l, 1);
    g.oh = out_size(in->h, g.kh, g.sh, g.dh, g.pt, g.pb, c->ceil_mode);
    g.ow = out_size(in->w, g.kw, g.sw, g.dw, g.pl, g.pr, c->ceil_mode);
    if (g.oh < 1 || g.ow < 1) {
        snprintf(err, errlen, "%s: input %dx%d (padded %dx%d) is smaller than the %dx%d pool window%s", l->name,
                 in->h, in->w, in->h + g.pt + g.pb, in->w + g.pl + g.pr, c->kernel, c->kernel_w,
                 c->dilation > 1 || c->dilation_w > 1 ? " (dilated)" : "");
        return -1;
    }
    const char *why = cs_pool2d_check(&g);
    if (why) {
        snprintf(err, errlen, "%s: %s (input %dx%d, pads [%d, %d, %d, %d])", l->name, why, in->h, in->w, g.pt, g.pl,
                 g.pb, g.pr);
        return -1;
    }
    l->out = (cs_shape){g.oh, g.ow, in->c};
    const int fast = !avg && g.kh == g.kw && g.sh == g.kh && g.sw == g.kw && g.dh == 1 && g.dw == 1 && !g.pt &&
                     !g.pl && !g.pb && !g.pr && g.oh == in->h / g.kh && g.ow == in->w / g.kw;
    c->pool = fast ? c->kernel : 0;
    return 0;
}

/* ---- JSON ---- */

/* An integer, or [a, b] when the two differ. */
static json_t *int_or_pair(int a, int b) { return a == b ? json_integer(a) : json_pack("[ii]", a, b); }

static int set(json_t *o, const char *key, json_t *v) { return json_object_set_new(o, key, v); }

int cs_pool_layer_to_json(const cs_layer *l, json_t *o)
{
    const cs_layer_config *c = &l->cfg;
    if (set(o, "pool_size", int_or_pair(c->kernel, c->kernel_w))) return -1;
    const int strided = c->stride != c->kernel || c->stride_w != c->kernel_w;
    if (strided && set(o, "strides", int_or_pair(c->stride, c->stride_w))) return -1;
    if (c->pad_same && set(o, "padding", json_string("same"))) return -1;
    if (c->pad_explicit && set(o, "pads", json_pack("[iiii]", c->pads[0], c->pads[1], c->pads[2], c->pads[3])))
        return -1;
    if (c->ceil_mode && set(o, "ceil_mode", json_true())) return -1;
    if (c->count_include_pad && set(o, "count_include_pad", json_true())) return -1;
    if ((c->dilation != 1 || c->dilation_w != 1) && set(o, "dilation", int_or_pair(c->dilation, c->dilation_w)))
        return -1;
    return 0;
}

/* o[key] as an integer or a list of two, each lo..hi, into a and b. Absent (or null
 * when null_ok) leaves them and returns 0 when not required. */
static int get_pair(json_t *o, const char *key, int required, int lo, int hi, int *a, int *b, char *err,
                    size_t errlen)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) {
        if (required) snprintf(err, errlen, "has no '%s'", key);
        return required ? -1 : 0;
    }
    json_int_t x[2];
    if (json_is_integer(v)) {
        x[0] = x[1] = json_integer_value(v);
    } else if (json_is_array(v) && json_array_size(v) == 2 && json_is_integer(json_array_get(v, 0)) &&
               json_is_integer(json_array_get(v, 1))) {
        x[0] = json_integer_value(json_array_get(v, 0));
        x[1] = json_integer_value(json_array_get(v, 1));
    } else {
        snprintf(err, errlen, "'%s' is not an integer or a list of two integers", key);
        return -1;
    }
    for (int k = 0; k < 2; k++)
        if (x[k] < lo || x[k] > hi) {
            snprintf(err, errlen, "'%s' has %lld, outside %d..%d", key, (long long)x[k], lo, hi);
            return -1;
        }
    *a = (int)x[0];
    *b = (int)x[1];
    return 0;
}

/* An optional true/false (absent: false). */
static int get_flag(json_t *o, const char *key, int *out, char *err, size_t errlen)
{
    json_t *v = json_object_get(o, key);
    if (!v) return 0;
    if (!json_is_boolean(v)) {
        snprintf(err, errlen, "'%s' is not true or false", key);
        return -1;
    }
    *out = json_is_true(v);
    return 0;
}

int cs_pool_layer_from_json(json_t *o, cs_layer_config *cfg, char *err, size_t errlen)
{
    if (get_pair(o, "pool_size", 1, 1, MAX_DIM, &cfg->kernel, &cfg->kernel_w, err, errlen) ||
        get_pair(o, "strides", 0, 1, MAX_DIM, &cfg->stride, &cfg->stride_w, err, errlen) ||
        get_pair(o, "dilation", 0, 1, MAX_DIM, &cfg->dilation, &cfg->dilation_w, err, errlen) ||
        get_flag(o, "ceil_mode", &cfg->ceil_mode, err, errlen) ||
        get_flag(o, "count_include_pad", &cfg->count_include_pad, err, errlen))
        return -1;
    json_t *pad = json_object_get(o, "padding");
    if (pad) {
        const char *s = json_string_value(pad);
        if (!s || (strcmp(s, "same") != 0 && strcmp(s, "valid") != 0)) {
            snprintf(err, errlen, "'padding' is not \"valid\" or \"same\"");
            return -1;
        }
        cfg->pad_same = strcmp(s, "same") == 0;
    }
    json_t *pads = json_object_get(o, "pads");
    if (pads) {
        if (!json_is_array(pads) || json_array_size(pads) != 4) {
            snprintf(err, errlen, "'pads' is not a list of four integers (top, left, bottom, right)");
            return -1;
        }
        for (int k = 0; k < 4; k++) {
            json_t *v = json_array_get(pads, (size_t)k);
            if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > MAX_DIM) {
                snprintf(err, errlen, "'pads' entry %d is not an integer 0..%d", k, MAX_DIM);
                return -1;
            }
            cfg->pads[k] = (int)json_integer_value(v);
        }
        if (cfg->pad_same) {
            snprintf(err, errlen, "has both 'pads' and padding \"same\"");
            return -1;
        }
        cfg->pad_explicit = 1;
    }
    return 0;
}
