/*
 * layer_ops.c - what the rows of the layer table share: Keras' kernel initialisers,
 * configuration fields in JSON, and the lookups of a kind by index and by name.
 */
#include "layer_ops.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const cs_layer_ops *const TABLE[CS_KIND_COUNT] = {
    [CS_CONV2D] = &cs_conv2d_ops,   [CS_BATCHNORM] = &cs_batchnorm_ops, [CS_LEAKY_RELU] = &cs_leaky_relu_ops,
    [CS_RELU] = &cs_relu_ops,       [CS_MAXPOOL] = &cs_maxpool_ops,     [CS_FLATTEN] = &cs_flatten_ops,
    [CS_DENSE] = &cs_dense_ops,     [CS_DROPOUT] = &cs_dropout_ops,
    [CS_DEPTHWISE_CONV2D] = &cs_depthwise_conv2d_ops, [CS_SEPARABLE_CONV2D] = &cs_separable_conv2d_ops,
    [CS_AVGPOOL] = &cs_avgpool_ops,
    [CS_GLOBAL_AVGPOOL] = &cs_global_avgpool_ops,
    [CS_GLOBAL_MAXPOOL] = &cs_global_maxpool_ops,
    [CS_ACTIVATION] = &cs_activation_ops,
    [CS_SOFTMAX] = &cs_softmax_ops,
    [CS_ADD] = &cs_add_ops,
    [CS_SUBTRACT] = &cs_subtract_ops,
    [CS_MULTIPLY] = &cs_multiply_ops,
    [CS_CONCATENATE] = &cs_concatenate_ops,
    [CS_ZERO_PADDING2D] = &cs_zero_padding2d_ops,
    [CS_RESCALING] = &cs_rescaling_ops,
    [CS_NORMALIZATION] = &cs_normalization_ops,
};

const cs_layer_ops *cs_layer_ops_of(cs_layer_kind k) { return k >= 0 && k < CS_KIND_COUNT ? TABLE[k] : NULL; }

json_t *cs_layer_config_json(const cs_layer *l)
{
    const cs_layer_ops *ops = cs_layer_ops_of(l->kind);
    json_t *o = json_object();
    if (o && ops && ops->config_to_json && ops->config_to_json(l, o) != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

int cs_layer_kind_from_name(const char *s, cs_layer_kind *out)
{
    for (int k = 0; k < CS_KIND_COUNT; k++)
        if (TABLE[k] && strcmp(s, TABLE[k]->keras) == 0) {
            *out = (cs_layer_kind)k;
            return 0;
        }
    return -1;
}

const char *cs_layer_kind_name(cs_layer_kind k)
{
    const cs_layer_ops *ops = cs_layer_ops_of(k);
    return ops ? ops->keras : "?";
}

void cs_guided_clamp(const cs_node_pass *p)
{
    if (!p->e->guided) return;
    float *dy = p->dy;
    const size_t n = (size_t)p->n * cs_shape_size(p->l->out);
    for (size_t i = 0; i < n; i++) dy[i] = dy[i] > 0 ? dy[i] : 0.0f;
}

int cs_infer_same_shape(cs_layer *l, const cs_shape *in, char *err, size_t errlen)
{
    (void)err, (void)errlen;
    l->out = *in;
    return 0;
}

/* Keras VarianceScaling with a truncated normal: draws beyond two standard deviations
 * are redrawn, and the stddev is divided by 0.8796... (the stddev of a unit normal
 * truncated to [-2, 2]) so the kept values have the intended spread. */
static void init_he_normal(float *w, size_t n, int fan_in, cs_rng *r)
{
    double sd = sqrt(2.0 / fan_in) / 0.87962566103423978;
    for (size_t i = 0; i < n; i++) {
        double z;
        do z = cs_rng_normal(r);
        while (z < -2.0 || z > 2.0);
        w[i] = (float)(z * sd);
    }
}

static void init_glorot_uniform(float *w, size_t n, int fan_in, int fan_out, cs_rng *r)
{
    double limit = sqrt(6.0 / (fan_in + fan_out));
    for (size_t i = 0; i < n; i++) w[i] = (float)((2.0 * cs_rng_uniform(r) - 1.0) * limit);
}

void cs_init_kernel(cs_layer *l, int fan_in, int fan_out, cs_rng *r)
{
    cs_param *k = &l->params[0];
    if (l->cfg.he_normal) init_he_normal(k->data, k->size, fan_in, r);
    else init_glorot_uniform(k->data, k->size, fan_in, fan_out, r);
    if (l->n_params > 1) memset(l->params[1].data, 0, l->params[1].size * sizeof(float));
}

/* A float as the shortest decimal that reads back to the same float, so a file says
 * 0.3 rather than 0.300000012 and still round-trips exactly. Non-finite values (a
 * diverged loss) have no JSON form: null. */
json_t *cs_json_float(float f)
{
    if (!isfinite(f)) return json_null();
    char buf[32];
    for (int prec = 6; prec <= 9; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, (double)f);
        if (strtof(buf, NULL) == f) break;
    }
    return json_real(strtod(buf, NULL));
}

int cs_json_set_float(json_t *o, const char *key, float f) { return json_object_set_new(o, key, cs_json_float(f)); }

int cs_json_get_int(json_t *o, const char *key, int lo, int hi, int *out, char *err, size_t errlen)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_integer(v)) {
        snprintf(err, errlen, "has no integer '%s'", key);
        return -1;
    }
    json_int_t x = json_integer_value(v);
    if (x < lo || x > hi) {
        snprintf(err, errlen, "'%s' is %lld, outside %d..%d", key, (long long)x, lo, hi);
        return -1;
    }
    *out = (int)x;
    return 0;
}

int cs_json_get_float(json_t *o, const char *key, float *out, char *err, size_t errlen)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_number(v)) {
        snprintf(err, errlen, "has no number '%s'", key);
        return -1;
    }
    *out = (float)json_number_value(v);
    return 0;
}

const char *cs_json_get_str(json_t *o, const char *key, char *err, size_t errlen)
{
    const char *s = json_string_value(json_object_get(o, key));
    if (!s) snprintf(err, errlen, "has no string '%s'", key);
    return s;
}

int cs_json_channel_axis(json_t *o, char *err, size_t errlen)
{
    json_t *v = json_object_get(o, "axis");
    if (!v || (json_is_integer(v) && (json_integer_value(v) == -1 || json_integer_value(v) == 3))) return 0;
    snprintf(err, errlen, "'axis' is not -1: only the channel axis is supported");
    return -1;
}
