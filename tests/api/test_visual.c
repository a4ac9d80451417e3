/*
 * test_visual.c - filter grids (layout, ETag and 304, parameters, non-conv layers),
 * feature-map grids (layout, not blank, non-spatial layers) and dataset routes.
 */
#include "harness.h"

static srv_t S;

static void get_png(const char *method, const char *path, int w, int h, int c)
{
    resp_t r = http_ex(&S, method, path, "", 0, NULL);
    cs_image img;
    char ct[64];
    CHECK(r.status == 200, "%s: %ld %s", path, r.status, r.body);
    CHECK(resp_header(&r, "Content-Type", ct, sizeof ct) && !strcmp(ct, "image/png"), "type %s", ct);
    CHECK(resp_png(&r, &img), "%s: a PNG", path);
    CHECK(img.w == w && img.h == h && img.c == c, "%s: %dx%dx%d, want %dx%dx%d", path, img.w, img.h, img.c, w, h, c);
    CHECK(image_levels(&img) > 2, "%s: not blank (%d levels)", path, image_levels(&img));
    cs_image_free(&img);
    resp_free(&r);
}

/* The notebook's picture: 15 filters of conv2d_1, 5 columns x 3 rows, 3x3 at scale 20,
 * 2-pixel gaps: 5*60 + 6*2 = 312 wide, 3*60 + 4*2 = 188 high. */
static void test_filters_default_grid(void)
{
    get_png("GET", "/v1/models/fmnist/layers/conv2d_1/filters.png", 312, 188, 1);
}

static void test_filters_params(void)
{
    /* conv2d_2: 64 filters over 32 channels; 8 filters of channel 31, 4 columns, scale 10. */
    get_png("GET", "/v1/models/fmnist/layers/conv2d_2/filters.png?count=8&cols=4&channel=31&scale=10", 4 * 30 + 5 * 2,
            2 * 30 + 3 * 2, 1);
    get_png("GET", "/v1/models/fmnist/layers/0/filters.png?count=32&cols=8&norm=filter", 8 * 60 + 9 * 2,
            4 * 60 + 5 * 2, 1);
    const char *bad[] = {"count=0", "count=33", "channel=1", "cols=0", "scale=100", "norm=global"};
    for (int i = 0; i < 6; i++) {
        char path[200];
        snprintf(path, sizeof path, "/v1/models/fmnist/layers/conv2d_1/filters.png?%s", bad[i]);
        resp_t r = http(&S, "GET", path);
        CHECK(r.status == 400 && is_error(&r, "bad_parameter"), "%s: %ld", bad[i], r.status);
        resp_free(&r);
    }
}

static void test_filters_etag_304(void)
{
    resp_t r = http(&S, "GET", "/v1/models/fmnist/layers/conv2d_1/filters.png");
    char etag[128], etag2[128];
    CHECK(resp_header(&r, "ETag", etag, sizeof etag) != NULL, "ETag");
    resp_free(&r);
    r = http_if_none_match(&S, "/v1/models/fmnist/layers/conv2d_1/filters.png", etag);
    CHECK(r.status == 304 && r.len == 0, "304: %ld", r.status);
    resp_free(&r);
    /* Another query, another tag. */
    r = http_if_none_match(&S, "/v1/models/fmnist/layers/conv2d_1/filters.png?count=4", etag);
    CHECK(r.status == 200 && resp_header(&r, "ETag", etag2, sizeof etag2) && strcmp(etag, etag2), "different tag");
    resp_free(&r);
}

static void test_filters_errors(void)
{
    resp_t r = http(&S, "GET", "/v1/models/fmnist/layers/dense_1/filters.png");
    CHECK(r.status == 400 && is_error(&r, "not_conv_layer") && strstr(r.body, "conv2d_1"), "%ld %s", r.status, r.body);
    resp_free(&r);
    r = http(&S, "GET", "/v1/models/fmnist/layers/conv9/filters.png");
    CHECK(r.status == 404 && is_error(&r, "not_found"), "unknown layer: %ld", r.status);
    resp_free(&r);
    r = http(&S, "GET", "/v1/models/nope/layers/conv2d_1/filters.png");
    CHECK(r.status == 404 && is_error(&r, "not_found"), "unknown model: %ld", r.status);
    resp_free(&r);
    r = http(&S, "GET", "/v1/models/vgg16/layers/block1_conv1/filters.png");
    CHECK(r.status == 503 && is_error(&r, "model_unavailable"), "vgg16: %ld", r.status);
    resp_free(&r);
}

/* The notebook: layers 2 and 6 for test image 4, 32 maps in 4 rows of 8. 26x26 maps
 * at scale 4: 8*104 + 9*2 = 850 by 4*104 + 5*2 = 426; 11x11 at scale 10: 8*110+18 = 898. */
static void test_feature_maps(void)
{
    get_png("POST", "/v1/models/fmnist/layers/leaky_re_lu_1/feature-maps.png?sample=test:4", 850, 426, 1);
    get_png("POST", "/v1/models/fmnist/layers/leaky_re_lu_2/feature-maps.png?sample=test:4", 898, 4 * 110 + 10, 1);
    get_png("POST", "/v1/models/fmnist/layers/conv2d_2/feature-maps.png?sample=test:4&count=64&cols=16&scale=2",
            16 * 22 + 17 * 2, 4 * 22 + 5 * 2, 1);
    resp_t r = http_post_file(&S, "/v1/models/fmnist/layers/leaky_re_lu_1/feature-maps.png?count=8&scale=1",
                              PHOTO("astronaut.png"), "image/png");
    cs_image img;
    CHECK(r.status == 200 && resp_png(&r, &img) && img.w == 8 * 26 + 18 && img.h == 26 + 4, "photo upload %ld",
          r.status);
    cs_image_free(&img);
    resp_free(&r);
}

static void test_feature_maps_errors(void)
{
    resp_t r = http_ex(&S, "POST", "/v1/models/fmnist/layers/dense_1/feature-maps.png?sample=test:4", "", 0, NULL);
    CHECK(r.status == 400 && is_error(&r, "not_spatial"), "%ld %s", r.status, r.body);
    resp_free(&r);
    r = http_ex(&S, "POST", "/v1/models/fmnist/layers/nope/feature-maps.png?sample=test:4", "", 0, NULL);
    CHECK(r.status == 404, "unknown layer %ld", r.status);
    resp_free(&r);
    r = http_ex(&S, "POST", "/v1/models/fmnist/layers/conv2d_1/feature-maps.png", "", 0, NULL);
    CHECK(r.status == 400 && is_error(&r, "no_image"), "no image %ld", r.status);
    resp_free(&r);
    const char *files[] = {PHOTO("rocket.jpg"), PHOTO("chelsea.png"), NULL};
    req_opts o = {.files = files};
    r = http_ex(&S, "POST", "/v1/models/fmnist/layers/conv2d_1/feature-maps.png", NULL, 0, &o);
    CHECK(r.status == 400 && is_error(&r, "too_many_images"), "two images %ld", r.status);
    resp_free(&r);
    r = http_ex(&S, "POST", "/v1/models/vgg16/layers/block1_conv1/feature-maps.png?sample=test:4", "", 0, NULL);
    CHECK(r.status == 503 && is_error(&r, "model_unavailable"), "vgg16 %ld", r.status);
    resp_free(&r);
    r = http_post_file(&S, "/v1/models/fmnist/layers/conv2d_1/feature-maps.png", PHOTO("truncated.jpg"), "image/jpeg");
    CHECK(r.status == 422, "truncated %ld", r.status);
    resp_free(&r);
    req_opts t = {.content_type = "image/jpeg"};
    r = http_ex(&S, "POST", "/v1/models/fmnist/layers/conv2d_1/feature-maps.png", "hello", 5, &t);
    CHECK(r.status == 415, "text %ld", r.status);
    resp_free(&r);
}

static void test_dataset_info_and_labels(void)
{
    resp_t r = http(&S, "GET", "/v1/datasets/fashion-mnist");
    json_t *j = resp_json(&r);
    CHECK(r.status == 200, "status %ld", r.status);
    CHECK(json_integer_value(json_object_get(json_object_get(json_object_get(j, "splits"), "train"), "size")) == 60000,
          "train size");
    CHECK(json_integer_value(json_object_get(json_object_get(json_object_get(j, "splits"), "test"), "size")) == 10000,
          "test size");
    CHECK(json_array_size(json_object_get(j, "classes")) == 10, "classes");
    json_decref(j);
    resp_free(&r);
    /* The notebook's first look: 25 training images with their classes. */
    r = http(&S, "GET", "/v1/datasets/fashion-mnist?split=train&offset=0&limit=25");
    j = resp_json(&r);
    json_t *items = json_object_get(j, "items");
    CHECK(json_array_size(items) == 25, "25 items");
    CHECK(!strcmp(json_string_value(json_object_get(json_array_get(items, 0), "class")), "Ankle boot"),
          "train 0 is an ankle boot");
    json_decref(j);
    resp_free(&r);
    const char *bad[] = {"split=valid", "split=test&limit=0", "split=test&offset=10000", "split=test&limit=x"};
    for (int i = 0; i < 4; i++) {
        char path[128];
        snprintf(path, sizeof path, "/v1/datasets/fashion-mnist?%s", bad[i]);
        r = http(&S, "GET", path);
        CHECK(r.status == 400 && is_error(&r, NULL), "%s: %ld", bad[i], r.status);
        resp_free(&r);
    }
}

static void test_dataset_image(void)
{
    get_png("GET", "/v1/datasets/fashion-mnist/test/18.png", 28, 28, 1);
    get_png("GET", "/v1/datasets/fashion-mnist/train/0.png?scale=10", 280, 280, 1);
    const char *bad[] = {"/v1/datasets/fashion-mnist/test/10000.png", "/v1/datasets/fashion-mnist/valid/1.png",
                         "/v1/datasets/fashion-mnist/test/x.png", "/v1/datasets/fashion-mnist/test/-1.png"};
    for (int i = 0; i < 4; i++) {
        resp_t r = http(&S, "GET", bad[i]);
        CHECK(r.status == 404 && is_error(&r, "not_found"), "%s: %ld", bad[i], r.status);
        resp_free(&r);
    }
    resp_t r = http(&S, "GET", "/v1/datasets/fashion-mnist/test/1.png?scale=0");
    CHECK(r.status == 400, "scale=0: %ld", r.status);
    resp_free(&r);
}

static void test_dataset_missing_503(void)
{
    srv_t L;
    const char *flags[] = {"--data", "/nonexistent/fashion-mnist", "--no-vgg16", NULL};
    srv_start(&L, flags);
    resp_t r = http(&L, "GET", "/v1/datasets/fashion-mnist");
    CHECK(r.status == 503 && is_error(&r, "data_unavailable"), "%ld %s", r.status, r.body);
    resp_free(&r);
    r = http(&L, "GET", "/v1/datasets/fashion-mnist/test/1.png");
    CHECK(r.status == 503 && is_error(&r, "data_unavailable"), "image: %ld", r.status);
    resp_free(&r);
    r = http_ex(&L, "POST", "/v1/models/fmnist/predict?sample=test:1", "", 0, NULL);
    CHECK(r.status == 503 && is_error(&r, "data_unavailable"), "sample: %ld", r.status);
    resp_free(&r);
    r = http_ex(&L, "POST", "/v1/models/fmnist/train", "{}", 2, NULL);
    CHECK(r.status == 503 && is_error(&r, "data_unavailable"), "train: %ld", r.status);
    resp_free(&r);
    srv_stop(&L);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_ALL);
    const char *flags[] = {"--no-vgg16", NULL};
    srv_start(&S, flags);
    RUN(test_filters_default_grid);
    RUN(test_filters_params);
    RUN(test_filters_etag_304);
    RUN(test_filters_errors);
    RUN(test_feature_maps);
    RUN(test_feature_maps_errors);
    RUN(test_dataset_info_and_labels);
    RUN(test_dataset_image);
    srv_stop(&S);
    CHECK(S.exit_status == 0, "server exit %d", S.exit_status);
    RUN(test_dataset_missing_503);
    curl_global_cleanup();
    return test_summary("api_visual");
}
