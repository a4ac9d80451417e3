/*
 * pad.c - constant padding of rows, columns and channels (and cropping, for negative
 * pads).
 *
 * Both directions gather: each output row is the fill value with a run of the input
 * in it, and each row of the input gradient is a run of dy with zeros around it, so
 * negative pads need no case of their own and rows spread over the workers freely.
 *
 * At the end, the ZeroPadding2D row of the layer table: rows and columns added
 * (cfg.pads: top, left, bottom, right; negative ones crop, as ONNX Pad allows) and
 * filled with cfg.pad_value (zero for Keras).
 */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "kernels.h"
#include "layer_ops.h"
#include "parallel.h"

typedef struct {
    const cs_pad_geom *g;
    int oh, ow, oc;
    /* Columns [ox0, ox1) of an output row hold input columns [ox0 - left, ...);
     * channels [cy0, cy1) of such a position hold input channels [cy0 - cbegin, ...). */
    int ox0, ox1, cy0, cy1;
    const float *src;
    float *dst;
} pad_job;

static int max_i(int a, int b) { return a > b ? a : b; }
static int min_i(int a, int b) { return a < b ? a : b; }

static void fill(float *p, long count, float v)
{
    for (long i = 0; i < count; i++) p[i] = v;
}

static pad_job plan(const cs_pad_geom *g)
{
    pad_job j = {.g = g, .oh = g->h + g->top + g->bottom, .ow = g->w + g->left + g->right,
                 .oc = g->c + g->cbegin + g->cend};
    j.ox0 = max_i(0, g->left);
    j.ox1 = min_i(j.ow, g->left + g->w);
    j.cy0 = max_i(0, g->cbegin);
    j.cy1 = min_i(j.oc, g->cbegin + g->c);
    return j;
}

const char *cs_pad_check(const cs_pad_geom *g)
{
    if (g->n < 1 || g->h < 1 || g->w < 1 || g->c < 1) return "pad: input sizes must be positive";
    const long oh = (long)g->h + g->top + g->bottom, ow = (long)g->w + g->left + g->right,
               oc = (long)g->c + g->cbegin + g->cend;
    if (oh < 1 || ow < 1 || oc < 1) return "pad: negative padding removes the whole input";
    if (oh > INT_MAX || ow > INT_MAX || oc > INT_MAX) return "pad: output too large";
    return NULL;
}

static void forward_range(void *ctx, long begin, long end, int worker)
{
    (void)worker;
    const pad_job *j = ctx;
    const cs_pad_geom *g = j->g;
    const int oc = j->oc, c = g->c, cl = j->cy1 - j->cy0;
    const float v = g->value;
    for (long row = begin; row < end; row++) {
        const int b = (int)(row / j->oh), iy = (int)(row % j->oh) - g->top;
        float *y = j->dst + (size_t)row * j->ow * oc;
        if (iy < 0 || iy >= g->h || j->ox0 >= j->ox1 || cl <= 0) {
            fill(y, (long)j->ow * oc, v);
            continue;
        }
        const float *x = j->src + (((size_t)b * g->h + iy) * g->w + (j->ox0 - g->left)) * c;
        fill(y, (long)j->ox0 * oc, v);
        if (cl == c && oc == c) {
            memcpy(y + (size_t)j->ox0 * oc, x, (size_t)(j->ox1 - j->ox0) * c * sizeof(float));
        } else {
            for (int ox = j->ox0; ox < j->ox1; ox++) {
                float *p = y + (size_t)ox * oc;
                fill(p, j->cy0, v);
                memcpy(p + j->cy0, x + (size_t)(ox - j->ox0) * c + (j->cy0 - g->cbegin), (size_t)cl * sizeof(float));
                fill(p + j->cy1, oc - j->cy1, v);
            }
        }
        fill(y + (size_t)j->ox1 * oc, (long)(j->ow - j->ox1) * oc, v);
    }
}

void cs_pad_forward(const cs_pad_geom *g, const float *x, float *y)
{
    pad_job j = plan(g);
    j.src = x;
    j.dst = y;
    cs_parallel_run((long)g->n * j.oh, cs_parallel_grain((long)j.ow * j.oc, 1), 0, forward_range, &j);
}

static void backward_range(void *ctx, long begin, long end, int worker)
{
    (void)worker;
    const pad_job *j = ctx;
    const cs_pad_geom *g = j->g;
    const int oc = j->oc, c = g->c, cl = j->cy1 - j->cy0;
    /* Input columns [ix0, ix1) and channels [ci0, ci0 + cl) are in the output. */
    const int ix0 = j->ox0 - g->left, ix1 = j->ox1 - g->left, ci0 = j->cy0 - g->cbegin;
    for (long row = begin; row < end; row++) {
        const int b = (int)(row / g->h), oy = (int)(row % g->h) + g->top;
        float *dx = j->dst + (size_t)row * g->w * c;
        if (oy < 0 || oy >= j->oh || ix0 >= ix1 || cl <= 0) {
            memset(dx, 0, (size_t)g->w * c * sizeof(float));
            continue;
        }
        const float *dy = j->src + (((size_t)b * j->oh + oy) * j->ow + j->ox0) * oc;
        memset(dx, 0, (size_t)ix0 * c * sizeof(float));
        if (cl == c && oc == c) {
            memcpy(dx + (size_t)ix0 * c, dy, (size_t)(ix1 - ix0) * c * sizeof(float));
        } else {
            for (int ix = ix0; ix < ix1; ix++) {
                float *p = dx + (size_t)ix * c;
                memset(p, 0, (size_t)ci0 * sizeof(float));
                memcpy(p + ci0, dy + (size_t)(ix - ix0) * oc + j->cy0, (size_t)cl * sizeof(float));
                memset(p + ci0 + cl, 0, (size_t)(c - ci0 - cl) * sizeof(float));
            }
        }
        memset(dx + (size_t)ix1 * c, 0, (size_t)(g->w - ix1) * c * sizeof(float));
    }
}

void cs_pad_backward(const cs_pad_geom *g, const float *dy, float *dx)
{
    if (!dx) return;
    pad_job j = plan(g);
    j.src = dy;
    j.dst = dx;
    cs_parallel_run((long)g->n * g->h, cs_parallel_grain((long)g->w * g->c, 1), 0, backward_range, &j);
}

/* ---- ZeroPadding2D (and ONNX constant Pad) ---------------------------------------------- */

#define MAX_PAD (1 << 24)

static cs_pad_geom pad_geom(const cs_layer *l, int n)
{
    const int *p = l->cfg.pads;
    return (cs_pad_geom){.n = n, .h = l->in.h, .w = l->in.w, .c = l->in.c, .top = p[0], .left = p[1],
                         .bottom = p[2], .right = p[3], .value = l->cfg.pad_value};
}

static int pad_infer(cs_layer *l, const cs_shape *in, char *err, size_t errlen)
{
    const int *p = l->cfg.pads;
    for (int k = 0; k < 4; k++)
        if (p[k] < -MAX_PAD || p[k] > MAX_PAD) {
            snprintf(err, errlen, "%s: padding [%d, %d, %d, %d] (top, left, bottom, right) is outside %d..%d",
                     l->name, p[0], p[1], p[2], p[3], -MAX_PAD, MAX_PAD);
            return -1;
        }
    if (!isfinite(l->cfg.pad_value)) {
        snprintf(err, errlen, "%s: padding value is not finite", l->name);
        return -1;
    }
    cs_pad_geom g = pad_geom(l, 1);
    const char *why = cs_pad_check(&g);
    if (why) {
        snprintf(err, errlen, "%s: %s (input %dx%d, padding [%d, %d, %d, %d])", l->name, why, in->h, in->w, p[0],
                 p[1], p[2], p[3]);
        return -1;
    }
    l->out = (cs_shape){in->h + p[0] + p[2], in->w + p[1] + p[3], in->c};
    return 0;
}

/* Keras' form: [[top, bottom], [left, right]]. */
static int pad_to_json(const cs_layer *l, json_t *o)
{
    const int *p = l->cfg.pads;
    if (json_object_set_new(o, "padding", json_pack("[[ii][ii]]", p[0], p[2], p[1], p[3]))) return -1;
    return l->cfg.pad_value != 0 ? cs_json_set_float(o, "value", l->cfg.pad_value) : 0;
}

static int pad_int(json_t *v, json_int_t *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < -MAX_PAD || json_integer_value(v) > MAX_PAD) return -1;
    *out = json_integer_value(v);
    return 0;
}

/* As Keras reads it: n (all four sides), [rows, columns] (each on both sides), or
 * [[top, bottom], [left, right]]. */
static int pad_from_json(json_t *o, cs_layer_config *cfg, char *err, size_t errlen)
{
    json_t *v = json_object_get(o, "padding");
    json_int_t t = 0, b = 0, l = 0, r = 0;
    int ok = 0;
    if (json_is_integer(v)) {
        ok = pad_int(v, &t) == 0;
        b = l = r = t;
    } else if (json_is_array(v) && json_array_size(v) == 2) {
        json_t *rows = json_array_get(v, 0), *cols = json_array_get(v, 1);
        if (json_is_integer(rows) && json_is_integer(cols)) {
            ok = pad_int(rows, &t) == 0 && pad_int(cols, &l) == 0;
            b = t, r = l;
        } else if (json_is_array(rows) && json_array_size(rows) == 2 && json_is_array(cols) &&
                   json_array_size(cols) == 2) {
            ok = pad_int(json_array_get(rows, 0), &t) == 0 && pad_int(json_array_get(rows, 1), &b) == 0 &&
                 pad_int(json_array_get(cols, 0), &l) == 0 && pad_int(json_array_get(cols, 1), &r) == 0;
        }
    }
    if (!ok) {
        snprintf(err, errlen,
                 "'padding' is not an integer, [rows, columns] or [[top, bottom], [left, right]] of integers "
                 "%d..%d",
                 -MAX_PAD, MAX_PAD);
        return -1;
    }
    cfg->pads[0] = (int)t, cfg->pads[1] = (int)l, cfg->pads[2] = (int)b, cfg->pads[3] = (int)r;
    if (json_object_get(o, "value")) {
        if (cs_json_get_float(o, "value", &cfg->pad_value, err, errlen)) return -1;
        if (!isfinite(cfg->pad_value)) {
            snprintf(err, errlen, "'value' is too large for a float");
            return -1;
        }
    }
    return 0;
}

static void pad_forward(const cs_node_pass *p)
{
    cs_pad_geom g = pad_geom(p->l, p->n);
    cs_pad_forward(&g, p->x[0], p->y);
}

static void pad_backward(const cs_node_pass *p)
{
    cs_pad_geom g = pad_geom(p->l, p->n);
    cs_pad_backward(&g, p->dy, p->dx[0]);
}

const cs_layer_ops cs_zero_padding2d_ops = {
    .keras = "ZeroPadding2D",
    .onnx = "Pad",
    .infer = pad_infer,
    .config_to_json = pad_to_json,
    .config_from_json = pad_from_json,
    .forward = pad_forward,
    .backward = pad_backward,
};
