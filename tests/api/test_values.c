/*
 * test_values.c - the numbers behind the pictures, checked against the same model
 * file run in this process with the statistics taken in double: a node's output for
 * an image (a dense layer's values, each channel's range, mean and deviation, the
 * order by strength), the feature-map grid on one shared scale and strongest first
 * (pixel for pixel), a layer's weight histograms (every count against the edges it
 * reports), and each node's settings and tensor shapes in the summary.
 */
#include "dataset.h"
#include "exec.h"
#include "harness.h"

static srv_t S;
static cs_model *M;     /* the served model, read from its file here */
static cs_dataset TEST; /* Fashion-MNIST's test split */
static int have_data;

/* Node `layer`'s output for test image `index`, computed here; malloc'd, n floats. */
static float *reference_output(const char *layer, int index, size_t *n)
{
    int li = cs_model_find_layer(M, layer);
    cs_exec *e = cs_exec_new(M, 1);
    float x[28 * 28];
    cs_dataset_image_float(&TEST, index, x);
    float *out = NULL;
    if (li >= 0 && e && cs_exec_forward_upto(e, x, 1, li) == 0) {
        *n = cs_shape_size(M->layers[li].out);
        out = malloc(*n * sizeof *out);
        if (out) memcpy(out, e->act[li], *n * sizeof *out);
    }
    cs_exec_free(e);
    return out;
}

static double num_at(json_t *a, size_t i)
{
    return json_number_value(json_array_get(a, i));
}

/* |a - b| within 1e-5 of the larger magnitude (the answer carries 7 digits). */
static int close7(double a, double b)
{
    double m = fabs(a) > fabs(b) ? fabs(a) : fabs(b);
    return fabs(a - b) <= 1e-5 * (m > 1 ? m : 1);
}

static void test_dense_values(void)
{
    size_t n = 0;
    float *ref = reference_output("dense_1", 18, &n);
    CHECK(ref && n == 64, "reference: %zu values", n);
    resp_t r = http_ex(&S, "POST", "/v1/models/fmnist/layers/dense_1/activations?sample=test:18", "", 0, NULL);
    json_t *j = resp_json(&r);
    CHECK(r.status == 200 && j, "%ld %s", r.status, r.body);
    json_t *vals = json_object_get(j, "values"), *shape = json_object_get(j, "shape");
    CHECK(json_array_size(vals) == 64, "64 values");
    CHECK(json_integer_value(json_array_get(shape, 2)) == 64 && !json_is_true(json_object_get(j, "spatial")),
          "shape [1, 1, 64], not spatial");
    int same = ref && json_array_size(vals) == 64;
    double lo = ref ? ref[0] : 0, hi = lo, sum = 0;
    for (size_t i = 0; same && i < 64; i++) {
        same &= close7(num_at(vals, i), ref[i]);
        lo = ref[i] < lo ? ref[i] : lo, hi = ref[i] > hi ? ref[i] : hi, sum += ref[i];
    }
    CHECK(same, "every value as computed here");
    double mean = sum / 64, ss = 0;
    for (size_t i = 0; ref && i < 64; i++) ss += (ref[i] - mean) * (ref[i] - mean);
    CHECK(close7(json_number_value(json_object_get(j, "min")), lo) &&
              close7(json_number_value(json_object_get(j, "max")), hi) &&
              close7(json_number_value(json_object_get(j, "mean")), mean) &&
              close7(json_number_value(json_object_get(j, "std")), sqrt(ss / 64)),
          "the layer's min, max, mean and std");
    /* A flat node's channel is one number: its min, max and mean are that number. */
    json_t *ch = json_object_get(j, "channels");
    CHECK(ref && close7(num_at(json_object_get(ch, "min"), 5), ref[5]) &&
              close7(num_at(json_object_get(ch, "max"), 5), ref[5]) &&
              close7(num_at(json_object_get(ch, "mean"), 5), ref[5]) && num_at(json_object_get(ch, "std"), 5) == 0,
          "channel 5 of a flat node");
    CHECK(json_object_get(j, "order") == NULL, "no order unless asked");
    char v[16];
    CHECK(resp_header(&r, "X-Model-Version", v, sizeof v) && atoi(v) >= 1, "the version that computed it");
    json_decref(j);
    resp_free(&r);
    free(ref);
}

typedef struct {
    double key;
    int index;
} keyed;

static int by_key(const void *a, const void *b)
{
    const keyed *x = a, *y = b;
    if (x->key != y->key) return x->key > y->key ? -1 : 1;
    return x->index - y->index;
}

/* leaky_re_lu_2 (11x11x64) for test image 18: each channel's statistics, and the
 * channels by mean and by maximum, largest first. */
static void test_channel_stats_and_order(void)
{
    size_t n = 0;
    float *ref = reference_output("leaky_re_lu_2", 18, &n);
    CHECK(ref && n == 11 * 11 * 64, "reference");
    if (!ref) return;
    double mean[64] = {0}, mx[64], mn[64], sd[64] = {0};
    for (int c = 0; c < 64; c++) mx[c] = -INFINITY, mn[c] = INFINITY;
    for (size_t p = 0; p < 121; p++)
        for (int c = 0; c < 64; c++) {
            double y = ref[p * 64 + c];
            mean[c] += y / 121, mx[c] = y > mx[c] ? y : mx[c], mn[c] = y < mn[c] ? y : mn[c];
        }
    for (size_t p = 0; p < 121; p++)
        for (int c = 0; c < 64; c++) sd[c] += (ref[p * 64 + c] - mean[c]) * (ref[p * 64 + c] - mean[c]) / 121;
    const char *keys[] = {"mean", "max"};
    for (int k = 0; k < 2; k++) {
        char path[160];
        snprintf(path, sizeof path, "/v1/models/fmnist/layers/leaky_re_lu_2/activations?sample=test:18&order=%s",
                 keys[k]);
        resp_t r = http_ex(&S, "POST", path, "", 0, NULL);
        json_t *j = resp_json(&r);
        CHECK(r.status == 200 && j, "%s: %ld %s", keys[k], r.status, r.body);
        json_t *ch = json_object_get(j, "channels"), *order = json_object_get(j, "order");
        int ok = json_array_size(json_object_get(ch, "mean")) == 64;
        for (int c = 0; ok && c < 64; c++)
            ok = close7(num_at(json_object_get(ch, "mean"), c), mean[c]) &&
                 close7(num_at(json_object_get(ch, "max"), c), mx[c]) &&
                 close7(num_at(json_object_get(ch, "min"), c), mn[c]) &&
                 close7(num_at(json_object_get(ch, "std"), c), sqrt(sd[c]));
        CHECK(ok, "each channel's min, max, mean and std as computed here");
        keyed want[64];
        for (int c = 0; c < 64; c++) want[c] = (keyed){k == 0 ? mean[c] : mx[c], c};
        qsort(want, 64, sizeof *want, by_key);
        int same = json_array_size(order) == 64;
        for (int c = 0; same && c < 64; c++) same = json_integer_value(json_array_get(order, c)) == want[c].index;
        CHECK(same, "channels by %s, largest first: first %lld, want %d", keys[k],
              (long long)json_integer_value(json_array_get(order, 0)), want[0].index);
        CHECK(json_object_get(j, "values") == NULL && json_is_true(json_object_get(j, "spatial")),
              "a spatial node sends statistics, not its 7744 values");
        json_decref(j);
        resp_free(&r);
    }
    free(ref);
}

/* The grid on the layer's one scale, strongest channels first: four 11x11 tiles at
 * scale 1 in one row; tile k is channel order[k], and its pixel is
 * min(255, floor(256 (v - lo) / (hi - lo))) with lo, hi the layer's range. */
static void test_feature_maps_shared_scale_and_order(void)
{
    size_t n = 0;
    float *ref = reference_output("leaky_re_lu_2", 18, &n);
    if (!ref) return;
    double mean[64] = {0}, lo = ref[0], hi = ref[0];
    for (size_t p = 0; p < 121; p++)
        for (int c = 0; c < 64; c++) {
            double y = ref[p * 64 + c];
            mean[c] += y, lo = y < lo ? y : lo, hi = y > hi ? y : hi;
        }
    keyed want[64];
    for (int c = 0; c < 64; c++) want[c] = (keyed){mean[c], c};
    qsort(want, 64, sizeof *want, by_key);
    resp_t r = http_ex(&S, "POST",
                       "/v1/models/fmnist/layers/leaky_re_lu_2/feature-maps.png?sample=test:18&count=4&cols=4&scale=1"
                       "&norm=layer&order=mean",
                       "", 0, NULL);
    cs_image img = {0};
    char h[64];
    CHECK(r.status == 200 && resp_png(&r, &img) && img.w == 4 * 11 + 5 * 2 && img.h == 11 + 4, "%ld: %dx%d",
          r.status, img.w, img.h);
    CHECK(resp_header(&r, "X-Scale", h, sizeof h) && !strcmp(h, "layer"), "X-Scale: layer");
    CHECK(resp_header(&r, "X-Scale-Min", h, sizeof h) && close7(atof(h), lo), "X-Scale-Min %s, want %g", h, lo);
    CHECK(resp_header(&r, "X-Scale-Max", h, sizeof h) && close7(atof(h), hi), "X-Scale-Max %s, want %g", h, hi);
    int worst = 0, top = 0;
    for (int k = 0; img.px && k < 4; k++)
        for (int y = 0; y < 11; y++)
            for (int x = 0; x < 11; x++) {
                double u = (ref[(size_t)(y * 11 + x) * 64 + want[k].index] - lo) / (hi - lo);
                int g = u <= 0 ? 0 : u >= 1 ? 255 : (int)floor(256 * u);
                g = g > 255 ? 255 : g;
                int got = img.px[(size_t)(2 + y) * img.w + 2 + k * 13 + x];
                int d = abs(got - g);
                worst = d > worst ? d : worst;
                top = got > top ? got : top;
            }
    CHECK(worst <= 1, "every pixel of the four strongest maps on the shared scale (off by %d)", worst);
    cs_image_free(&img);
    resp_free(&r);
    /* Each map on its own range (the default): every tile spans black to white. */
    r = http_ex(&S, "POST",
                "/v1/models/fmnist/layers/leaky_re_lu_2/feature-maps.png?sample=test:18&count=4&cols=4&scale=1"
                "&order=mean",
                "", 0, NULL);
    int spans = r.status == 200 && resp_png(&r, &img);
    for (int k = 0; spans && k < 4; k++) {
        int a = 255, b = 0;
        for (int y = 0; y < 11; y++)
            for (int x = 0; x < 11; x++) {
                int g = img.px[(size_t)(2 + y) * img.w + 2 + k * 13 + x];
                a = g < a ? g : a, b = g > b ? g : b;
            }
        spans = a == 0 && b == 255;
    }
    CHECK(spans, "norm=map: each tile from 0 to 255");
    CHECK(resp_header(&r, "X-Scale", h, sizeof h) && !strcmp(h, "map") && !resp_header(&r, "X-Scale-Min", h, sizeof h),
          "X-Scale: map, no range");
    cs_image_free(&img);
    resp_free(&r);
    free(ref);
}

static void test_activations_errors(void)
{
    struct {
        const char *method, *path;
        long status;
        const char *code;
    } cases[] = {
        {"POST", "/v1/models/fmnist/layers/nope/activations?sample=test:1", 404, "not_found"},
        {"POST", "/v1/models/nope/layers/dense_1/activations?sample=test:1", 404, "not_found"},
        {"POST", "/v1/models/fmnist/layers/dense_1/activations?sample=test:1&order=biggest", 400, "bad_parameter"},
        {"POST", "/v1/models/fmnist/layers/dense_1/activations", 400, "no_image"},
        {"POST", "/v1/models/vgg16/layers/fc1/activations?sample=test:1", 503, "model_unavailable"},
        {"POST", "/v1/models/fmnist/layers/leaky_re_lu_2/feature-maps.png?sample=test:1&norm=global", 400,
         "bad_parameter"},
        {"POST", "/v1/models/fmnist/layers/leaky_re_lu_2/feature-maps.png?sample=test:1&order=min", 400,
         "bad_parameter"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        resp_t r = http_ex(&S, cases[i].method, cases[i].path, "", 0, NULL);
        CHECK(r.status == cases[i].status && is_error(&r, cases[i].code), "%s: %ld %s", cases[i].path, r.status,
              r.body);
        resp_free(&r);
    }
    req_opts t = {.content_type = "image/jpeg"};
    resp_t r = http_ex(&S, "POST", "/v1/models/fmnist/layers/dense_1/activations", "hello", 5, &t);
    CHECK(r.status == 415, "text: %ld", r.status);
    resp_free(&r);
    r = http_post_file(&S, "/v1/models/fmnist/layers/dense_1/activations", PHOTO("truncated.jpg"), "image/jpeg");
    CHECK(r.status == 422, "truncated: %ld", r.status);
    resp_free(&r);
    size_t big_n = 3u << 20;
    char *big = calloc(1, big_n);
    req_opts png = {.content_type = "image/png"};
    r = http_ex(&S, "POST", "/v1/models/fmnist/layers/dense_1/activations", big, big_n, &png);
    CHECK(r.status == 413 && is_error(&r, "payload_too_large"), "3 MiB: %ld", r.status);
    resp_free(&r);
    free(big);
    /* A photo works as a sample does. */
    r = http_post_file(&S, "/v1/models/fmnist/layers/dense_2/activations", PHOTO("astronaut.png"), "image/png");
    json_t *j = resp_json(&r);
    double sum = 0;
    for (size_t i = 0; i < json_array_size(json_object_get(j, "values")); i++)
        sum += num_at(json_object_get(j, "values"), i);
    CHECK(r.status == 200 && json_array_size(json_object_get(j, "values")) == 10 && fabs(sum - 1) < 1e-5,
          "the softmax layer's values add up to 1: %g", sum);
    json_decref(j);
    resp_free(&r);
}

/* Each tensor's histogram: counts against the edges the answer gives, range, mean and
 * deviation against the model file read here. */
static void test_weight_histograms(void)
{
    int li = cs_model_find_layer(M, "conv2d_2");
    resp_t r = http(&S, "GET", "/v1/models/fmnist/layers/conv2d_2/weights?bins=7");
    json_t *j = resp_json(&r);
    CHECK(r.status == 200 && j, "%ld %s", r.status, r.body);
    json_t *ts = json_object_get(j, "tensors");
    CHECK(json_array_size(ts) == 2 && json_integer_value(json_object_get(j, "bins")) == 7, "kernel and bias");
    for (size_t t = 0; li >= 0 && t < json_array_size(ts) && t < 2; t++) {
        json_t *o = json_array_get(ts, t);
        const cs_param *p = &M->layers[li].params[t];
        CHECK(!strcmp(json_string_value(json_object_get(o, "name")), p->name), "tensor %zu is %s", t, p->name);
        CHECK(json_integer_value(json_object_get(o, "size")) == (json_int_t)p->size, "size");
        json_t *shape = json_object_get(o, "shape");
        int same = json_array_size(shape) == (size_t)p->ndim;
        for (int d = 0; same && d < p->ndim; d++) same = json_integer_value(json_array_get(shape, d)) == p->dims[d];
        CHECK(same, "%s shape", p->name);
        double lo = p->data[0], hi = lo, sum = 0, ss = 0;
        for (size_t i = 0; i < p->size; i++) lo = p->data[i] < lo ? p->data[i] : lo, hi = p->data[i] > hi ? p->data[i] : hi, sum += p->data[i];
        for (size_t i = 0; i < p->size; i++) ss += (p->data[i] - sum / p->size) * (p->data[i] - sum / p->size);
        CHECK(close7(json_number_value(json_object_get(o, "min")), lo) &&
                  close7(json_number_value(json_object_get(o, "max")), hi) &&
                  close7(json_number_value(json_object_get(o, "mean")), sum / p->size) &&
                  close7(json_number_value(json_object_get(o, "std")), sqrt(ss / p->size)),
              "%s: min, max, mean, std", p->name);
        /* The edges split [min, max] in 7 equal bins; every weight counted in the bin
         * its value falls in (the edges here are exact, the answer's have 7 digits). */
        json_t *edges = json_object_get(o, "edges"), *counts = json_object_get(o, "counts");
        CHECK(json_array_size(edges) == 8 && json_array_size(counts) == 7, "8 edges, 7 counts");
        long want[7] = {0}, total = 0;
        for (size_t i = 0; i < p->size; i++) {
            int b = 0;
            while (b < 6 && p->data[i] >= lo + (hi - lo) * (b + 1) / 7.0) b++;
            want[b]++;
        }
        int ok = 1;
        for (int b = 0; b < 7; b++) {
            ok &= json_integer_value(json_array_get(counts, b)) == want[b];
            ok &= close7(num_at(edges, b), lo + (hi - lo) * b / 7.0);
            total += (long)json_integer_value(json_array_get(counts, b));
        }
        CHECK(ok && total == (long)p->size, "%s: counts per bin (%ld counted)", p->name, total);
    }
    char etag[128] = "";
    resp_header(&r, "ETag", etag, sizeof etag);
    json_decref(j);
    resp_free(&r);
    r = http_if_none_match(&S, "/v1/models/fmnist/layers/conv2d_2/weights?bins=7", etag);
    CHECK(etag[0] && r.status == 304, "asked again: %ld", r.status);
    resp_free(&r);
    /* Moving statistics are tensors too, not trained; a layer of none has none. */
    r = http(&S, "GET", "/v1/models/fmnist/layers/batch_normalization_1/weights");
    j = resp_json(&r);
    ts = json_object_get(j, "tensors");
    CHECK(json_array_size(ts) == 4 && !json_is_true(json_object_get(json_array_get(ts, 2), "trainable")) &&
              json_array_size(json_object_get(json_array_get(ts, 0), "counts")) == 30,
          "batch norm: 4 tensors, 30 bins by default");
    json_decref(j);
    resp_free(&r);
    r = http(&S, "GET", "/v1/models/fmnist/layers/flatten_1/weights");
    j = resp_json(&r);
    CHECK(r.status == 200 && json_array_size(json_object_get(j, "tensors")) == 0, "flatten: no tensors");
    json_decref(j);
    resp_free(&r);
    const char *bad[] = {"bins=0", "bins=1001", "bins=x"};
    for (int i = 0; i < 3; i++) {
        char path[128];
        snprintf(path, sizeof path, "/v1/models/fmnist/layers/conv2d_1/weights?%s", bad[i]);
        r = http(&S, "GET", path);
        CHECK(r.status == 400 && is_error(&r, "bad_parameter"), "%s: %ld", bad[i], r.status);
        resp_free(&r);
    }
    r = http(&S, "GET", "/v1/models/fmnist/layers/conv9/weights");
    CHECK(r.status == 404 && is_error(&r, "not_found"), "unknown layer: %ld", r.status);
    resp_free(&r);
    r = http(&S, "GET", "/v1/models/vgg16/layers/fc1/weights");
    CHECK(r.status == 503 && is_error(&r, "model_unavailable"), "vgg16: %ld", r.status);
    resp_free(&r);
}

/* The summary gives every node's settings (its kind's configuration, as model files
 * keep it) and its tensors' shapes, which add up to its parameter count. */
static void test_summary_settings_and_shapes(void)
{
    resp_t r = http(&S, "GET", "/v1/models/fmnist");
    json_t *j = resp_json(&r), *layers = json_object_get(j, "layers");
    CHECK(r.status == 200 && json_array_size(layers) == 14, "%ld", r.status);
    for (size_t i = 0; i < json_array_size(layers); i++) {
        json_t *l = json_array_get(layers, i), *w = json_object_get(l, "weights");
        const char *name = json_string_value(json_object_get(l, "name"));
        CHECK(json_is_object(json_object_get(l, "config")) && json_is_array(w), "%s: config and weights", name);
        json_int_t total = 0;
        for (size_t k = 0; k < json_array_size(w); k++) {
            json_t *shape = json_object_get(json_array_get(w, k), "shape");
            json_int_t size = 1;
            for (size_t d = 0; d < json_array_size(shape); d++) size *= json_integer_value(json_array_get(shape, d));
            CHECK(size == json_integer_value(json_object_get(json_array_get(w, k), "size")), "%s: size is the shape's",
                  name);
            total += size;
        }
        CHECK(total == json_integer_value(json_object_get(l, "params")), "%s: tensors add up to its parameters", name);
    }
    json_t *conv = json_object_get(json_array_get(layers, 0), "config");
    CHECK(json_integer_value(json_object_get(conv, "filters")) == 32 &&
              json_integer_value(json_object_get(conv, "kernel_size")) == 3 &&
              json_integer_value(json_object_get(conv, "strides")) == 1 &&
              !strcmp(json_string_value(json_object_get(conv, "padding")), "valid"),
          "conv2d_1: 32 filters 3x3, stride 1, valid");
    json_t *k0 = json_object_get(json_array_get(json_object_get(json_array_get(layers, 0), "weights"), 0), "shape");
    CHECK(json_integer_value(json_array_get(k0, 0)) == 3 && json_integer_value(json_array_get(k0, 2)) == 1 &&
              json_integer_value(json_array_get(k0, 3)) == 32,
          "conv2d_1 kernel (3, 3, 1, 32)");
    CHECK_NEAR(json_number_value(json_object_get(json_object_get(json_array_get(layers, 2), "config"), "alpha")), 0.3,
               1e-7, "leaky_re_lu_1: slope 0.3");
    CHECK(json_integer_value(json_object_get(json_object_get(json_array_get(layers, 3), "config"), "pool_size")) == 2,
          "max_pooling2d_1: pool 2");
    CHECK_NEAR(json_number_value(json_object_get(json_object_get(json_array_get(layers, 12), "config"), "rate")), 0.4,
               1e-7, "dropout_1: rate 0.4");
    json_decref(j);
    resp_free(&r);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_ALL);
    char err[256] = "";
    M = cs_model_load(fixture_model(), err, sizeof err);
    have_data = cs_dataset_load(CS_DEFAULT_DATA_DIR, "test", &TEST, err, sizeof err) == 0;
    if (!M || !have_data) {
        fprintf(stderr, "setup: %s\n", err);
        return 99;
    }
    const char *flags[] = {"--no-vgg16", "--max-upload", "2000000", NULL};
    srv_start(&S, flags);
    RUN(test_dense_values);
    RUN(test_channel_stats_and_order);
    RUN(test_feature_maps_shared_scale_and_order);
    RUN(test_activations_errors);
    RUN(test_weight_histograms);
    RUN(test_summary_settings_and_shapes);
    srv_stop(&S);
    CHECK(S.exit_status == 0, "server exit %d", S.exit_status);
    cs_dataset_free(&TEST);
    cs_model_free(M);
    curl_global_cleanup();
    return test_summary("api_values");
}
