/*
 * test_vgg16.c - VGG16 through the same paths as Fashion-MNIST. The real weights
 * (528 MiB) cannot be downloaded here, so the test writes a file of the same Keras
 * layout with seeded random weights, and a 1000-class index, then checks shapes: 1000
 * probabilities with WordNet ids, Grad-CAM on block5_conv3 (14x14) at the photo's own
 * size, 64 feature maps of block1_conv2 in 8 columns, the summary's 138,357,544
 * parameters.
 */
#include "harness.h"
#include "keras_h5.h"
#include "model.h"

static srv_t S;
static char g_dir[200];

static void write_fixtures(void)
{
    if (!mkdtemp(tmp_template(g_dir, sizeof g_dir, "vgg"))) exit(99);
    cs_model *m = cs_model_build_vgg16();
    if (!m) exit(99);
    cs_model_init_weights(m, 1);
    char path[200], err[300];
    sfmt(path, sizeof path, "%s/weights.h5", g_dir);
    if (cs_keras_h5_save(m, path, err, sizeof err) != 0) {
        fprintf(stderr, "setup: cannot write %s: %s\n", path, err);
        exit(99);
    }
    cs_model_free(m);
    sfmt(path, sizeof path, "%s/classes.json", g_dir);
    FILE *f = fopen(path, "w");
    if (!f) exit(99);
    fputc('{', f);
    for (int i = 0; i < 1000; i++) fprintf(f, "%s\"%d\": [\"n%08d\", \"class_%d\"]", i ? ", " : "", i, i, i);
    fputs("}\n", f);
    fclose(f);
}

static void test_listed_ready(void)
{
    resp_t r = http(&S, "GET", "/v1/models");
    json_t *j = resp_json(&r);
    json_t *v = json_array_get(json_object_get(j, "models"), 1);
    CHECK(!strcmp(json_string_value(json_object_get(v, "status")), "ready"), "ready: %s", r.body);
    json_t *shape = json_object_get(v, "input_shape");
    CHECK(json_integer_value(json_array_get(shape, 0)) == 224 && json_integer_value(json_array_get(shape, 2)) == 3,
          "224x224x3");
    CHECK(json_integer_value(json_object_get(v, "n_classes")) == 1000, "1000 classes");
    CHECK(!strcmp(json_string_value(json_object_get(v, "gradcam_layer")), "block5_conv3"), "block5_conv3");
    json_decref(j);
    resp_free(&r);
}

static void test_model_summary(void)
{
    resp_t r = http(&S, "GET", "/v1/models/vgg16");
    json_t *j = resp_json(&r);
    CHECK(r.status == 200, "status %ld", r.status);
    CHECK(json_integer_value(json_object_get(j, "total_params")) == 138357544, "params %lld",
          (long long)json_integer_value(json_object_get(j, "total_params")));
    json_decref(j);
    resp_free(&r);
}

static void test_predict_with_wnid(void)
{
    resp_t r = http_post_file(&S, "/v1/models/vgg16/predict", PHOTO("rocket.jpg"), "image/jpeg");
    json_t *j = resp_json(&r);
    CHECK(r.status == 200, "status %ld %s", r.status, r.body);
    json_t *p = json_array_get(json_object_get(j, "predictions"), 0);
    CHECK(json_array_size(json_object_get(p, "probabilities")) == 1000, "1000 probabilities");
    json_t *top = json_object_get(p, "top");
    CHECK(json_array_size(top) == 3, "top 3");
    const char *wnid = json_string_value(json_object_get(json_array_get(top, 0), "wnid"));
    CHECK(wnid && wnid[0] == 'n' && strlen(wnid) == 9, "wnid %s", wnid ? wnid : "(none)");
    json_decref(j);
    resp_free(&r);
}

static void test_gradcam_photo_size(void)
{
    size_t len;
    char *data = test_read_file(PHOTO("rocket.jpg"), &len);
    cs_image photo;
    char err[200];
    CHECK(data && cs_image_decode(data, len, 0, &photo, err, sizeof err) == CS_IMG_OK, "decode the photo");
    free(data);
    resp_t r = http_post_file(&S, "/v1/models/vgg16/gradcam", PHOTO("rocket.jpg"), "image/jpeg");
    cs_image img;
    CHECK(r.status == 200 && resp_png(&r, &img), "overlay %ld", r.status);
    CHECK(img.w == photo.w && img.h == photo.h && img.c == 3, "the photo's size %dx%d, got %dx%d", photo.w, photo.h,
          img.w, img.h);
    cs_image_free(&img);
    cs_image_free(&photo);
    resp_free(&r);
    r = http_post_file(&S, "/v1/models/vgg16/gradcam?format=json", PHOTO("chelsea.png"), "image/png");
    json_t *j = resp_json(&r);
    json_t *one = json_array_get(json_object_get(j, "results"), 0);
    CHECK(r.status == 200 && json_integer_value(json_object_get(one, "height")) == 14 &&
              !strcmp(json_string_value(json_object_get(one, "layer")), "block5_conv3"),
          "14x14 on block5_conv3: %ld", r.status);
    json_decref(j);
    resp_free(&r);
}

static void test_feature_maps_and_filters(void)
{
    resp_t r = http_post_file(&S, "/v1/models/vgg16/layers/block1_conv2/feature-maps.png?count=64&cols=8",
                              PHOTO("chelsea.png"), "image/png");
    cs_image img;
    CHECK(r.status == 200 && resp_png(&r, &img), "maps %ld", r.status);
    CHECK(img.w == 8 * 224 + 9 * 2 && img.h == 8 * 224 + 9 * 2, "8x8 grid of 224x224, got %dx%d", img.w, img.h);
    cs_image_free(&img);
    resp_free(&r);
    r = http(&S, "GET", "/v1/models/vgg16/layers/block1_conv1/filters.png?channel=2");
    CHECK(r.status == 200 && resp_png(&r, &img) && img.w == 5 * 60 + 12, "filters %ld", r.status);
    cs_image_free(&img);
    resp_free(&r);
    r = http_post_file(&S, "/v1/models/vgg16/gradcam?layer=fc1", PHOTO("chelsea.png"), "image/png");
    CHECK(r.status == 400 && is_error(&r, "not_spatial"), "fc1: %ld", r.status);
    resp_free(&r);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_ALL);
    write_fixtures();
    char weights[200], classes[200];
    sfmt(weights, sizeof weights, "%s/weights.h5", g_dir);
    sfmt(classes, sizeof classes, "%s/classes.json", g_dir);
    const char *flags[] = {"--vgg16-weights", weights, "--imagenet-classes", classes, NULL};
    srv_start(&S, flags);
    RUN(test_listed_ready);
    RUN(test_model_summary);
    RUN(test_predict_with_wnid);
    RUN(test_gradcam_photo_size);
    RUN(test_feature_maps_and_filters);
    srv_stop(&S);
    CHECK(S.exit_status == 0, "server exit %d", S.exit_status);
    char cmd[128];
    sfmt(cmd, sizeof cmd, "rm -rf %s", g_dir);
    run_cmd(cmd);
    curl_global_cleanup();
    return test_summary("api_vgg16");
}
