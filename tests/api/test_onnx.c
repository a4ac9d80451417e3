/*
 * test_onnx.c - ONNX models dropped into the models folder are served under their
 * file names with everything the notebook's model has: the listing and summary,
 * predictions on an uploaded photo, filters of a convolution, feature maps of a
 * spatial node and Grad-CAM on the default node and on a chosen one. A damaged file
 * is listed as unavailable with the reason, and the others keep serving.
 */
#include "harness.h"

static srv_t S;

static json_t *model_entry(json_t *list, const char *name)
{
    for (size_t i = 0; i < json_array_size(list); i++) {
        json_t *m = json_array_get(list, i);
        if (!strcmp(json_string_value(json_object_get(m, "name")), name)) return m;
    }
    return NULL;
}

static void test_listed(void)
{
    resp_t r = http(&S, "GET", "/v1/models");
    json_t *j = resp_json(&r), *list = json_object_get(j, "models");
    json_t *res = model_entry(list, "resnet"), *mob = model_entry(list, "mobilenetv2"), *bad = model_entry(list, "broken");
    CHECK(res && !strcmp(json_string_value(json_object_get(res, "status")), "ready"), "resnet ready");
    json_t *shape = json_object_get(res, "input_shape");
    CHECK(json_integer_value(json_array_get(shape, 0)) == 36 && json_integer_value(json_array_get(shape, 2)) == 3,
          "resnet input 36x36x3");
    CHECK(json_integer_value(json_object_get(res, "n_classes")) == 10, "10 classes");
    /* PyTorch counts 56,538: its export folds each batch norm (gamma and beta, 288
     * channels in all) into a bias of the conv below it, one vector per channel less. */
    CHECK(json_integer_value(json_object_get(res, "params")) == 56538 - 288, "resnet parameters: %lld",
          (long long)json_integer_value(json_object_get(res, "params")));
    CHECK(!strcmp(json_string_value(json_object_get(res, "gradcam_layer")), "layer3.relu2.Relu"),
          "default Grad-CAM node: the last spatial activation");
    CHECK(mob && !strcmp(json_string_value(json_object_get(mob, "status")), "ready"), "mobilenetv2 ready");
    const char *why = json_string_value(json_object_get(bad, "reason"));
    CHECK(bad && !strcmp(json_string_value(json_object_get(bad, "status")), "unavailable") && why &&
              strstr(why, "broken.onnx"),
          "a damaged file is unavailable with its reason: %s", why ? why : "(none)");
    json_t *fm = model_entry(list, "fmnist");
    CHECK(fm && !strcmp(json_string_value(json_object_get(fm, "status")), "ready"), "fmnist still ready");
    json_decref(j);
    resp_free(&r);
}

static void test_summary_is_a_graph(void)
{
    resp_t r = http(&S, "GET", "/v1/models/resnet");
    json_t *j = resp_json(&r), *layers = json_object_get(j, "layers");
    int adds = 0;
    for (size_t i = 0; i < json_array_size(layers); i++) {
        json_t *l = json_array_get(layers, i);
        if (!strcmp(json_string_value(json_object_get(l, "type")), "Add")) {
            adds++;
            CHECK(json_array_size(json_object_get(l, "inputs")) == 2, "an Add reads two nodes");
        }
    }
    CHECK(adds == 3, "three residual additions, got %d", adds);
    json_decref(j);
    resp_free(&r);
}

static void test_predict_photo(void)
{
    resp_t r = http_post_file(&S, "/v1/models/resnet/predict?top_k=3", PHOTO("chelsea.png"), "image/png");
    CHECK(r.status == 200, "predict: %ld %s", r.status, r.body);
    json_t *j = resp_json(&r);
    json_t *p = json_array_get(json_object_get(j, "predictions"), 0), *probs = json_object_get(p, "probabilities");
    double sum = 0;
    for (size_t i = 0; i < json_array_size(probs); i++) sum += json_number_value(json_array_get(probs, i));
    CHECK(json_array_size(probs) == 10 && fabs(sum - 1) < 1e-4, "10 probabilities summing to 1 (%g)", sum);
    CHECK(json_array_size(json_object_get(p, "top")) == 3, "top 3");
    json_decref(j);
    resp_free(&r);
}

static void test_visuals(void)
{
    cs_image img;
    resp_t r = http(&S, "GET", "/v1/models/mobilenetv2/layers/features.features.0.features.0.0.Conv/filters.png");
    CHECK(r.status == 200 && resp_png(&r, &img), "filters of the first conv: %ld %s", r.status,
          r.status == 200 ? "" : r.body);
    if (r.status == 200) cs_image_free(&img);
    resp_free(&r);
    r = http_post_file(&S, "/v1/models/resnet/layers/layer2.relu2.Relu/feature-maps.png", PHOTO("coffee.png"),
                       "image/png");
    CHECK(r.status == 200 && resp_png(&r, &img), "feature maps of a residual block: %ld", r.status);
    if (r.status == 200) cs_image_free(&img);
    resp_free(&r);
    r = http_post_file(&S, "/v1/models/resnet/gradcam?format=json", PHOTO("coffee.png"), "image/png");
    json_t *j = resp_json(&r), *res = json_array_get(json_object_get(j, "results"), 0);
    json_t *heat = json_object_get(res, "heatmap");
    CHECK(r.status == 200 && !strcmp(json_string_value(json_object_get(res, "layer")), "layer3.relu2.Relu") &&
              json_array_size(heat) == 9 && json_array_size(json_array_get(heat, 0)) == 9,
          "Grad-CAM on the default node, 9x9: %ld", r.status);
    json_decref(j);
    resp_free(&r);
    r = http_post_file(&S, "/v1/models/efficientnet/gradcam?layer=head.head.2.Mul", PHOTO("rocket.jpg"),
                       "image/jpeg");
    CHECK(r.status == 200 && resp_png(&r, &img), "Grad-CAM overlay on a chosen node: %ld %s", r.status,
          r.status == 200 ? "" : r.body);
    if (r.status == 200) cs_image_free(&img);
    resp_free(&r);
}

int main(void)
{
    /* A file of the right name and the wrong contents. */
    char dir[200], bad[260], list[800];
    if (!mkdtemp(tmp_template(dir, sizeof dir, "onnx"))) return 99;
    sfmt(bad, sizeof bad, "%s/broken.onnx", dir);
    FILE *f = fopen(bad, "w");
    if (!f) return 99;
    fputs("not an ONNX file", f);
    fclose(f);
    sfmt(list, sizeof list, "tests/data/models/resnet.onnx tests/data/models/mobilenetv2.onnx "
                            "tests/data/models/efficientnet.onnx %s", bad);
    srv_extra_models = list;
    srv_start(&S, NULL);
    RUN(test_listed);
    RUN(test_summary_is_a_graph);
    RUN(test_predict_photo);
    RUN(test_visuals);
    srv_stop(&S);
    unlink(bad);
    rmdir(dir);
    return test_summary("api_onnx");
}
