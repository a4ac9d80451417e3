/*
 * test_gradcam.c - POST /v1/models/{model}/gradcam: the notebook's overlay of test
 * image 18, heatmaps, JSON values in 0..1 with a maximum of 1 (or flagged all zero),
 * a blank image's flat map flagged (JSON and X-Flat), class by index and label, both
 * score kinds, and the 400s (non-spatial layer, unknown class, bad format).
 */
#include "harness.h"

static srv_t S;

static json_t *gradcam_json(const char *query, int n_images)
{
    char path[256];
    snprintf(path, sizeof path, "/v1/models/fmnist/gradcam?format=json&%s", query);
    resp_t r = http_ex(&S, "POST", path, "", 0, NULL);
    json_t *j = resp_json(&r);
    CHECK(r.status == 200, "%s: %ld %s", query, r.status, r.body);
    json_t *res = json_object_get(j, "results");
    CHECK(json_array_size(res) == (size_t)n_images, "%zu results", json_array_size(res));
    for (size_t i = 0; i < json_array_size(res); i++) {
        json_t *one = json_array_get(res, i);
        json_t *heat = json_object_get(one, "heatmap");
        double mx = -1, mn = 2;
        size_t rows = json_array_size(heat), cols = json_array_size(json_array_get(heat, 0));
        for (size_t y = 0; y < rows; y++)
            for (size_t x = 0; x < json_array_size(json_array_get(heat, y)); x++) {
                double v = json_number_value(json_array_get(json_array_get(heat, y), x));
                if (v > mx) mx = v;
                if (v < mn) mn = v;
            }
        int all_zero = json_is_true(json_object_get(one, "all_zero"));
        int flat = json_is_true(json_object_get(one, "flat"));
        CHECK(mn >= 0 && mx <= 1, "values in 0..1 (%g..%g)", mn, mx);
        CHECK(json_is_boolean(json_object_get(one, "flat")), "a flat flag");
        /* Flat: the map's own spread is within 0.1 % of its maximum (all zero is flat too). */
        CHECK(flat == (all_zero || mx - mn <= 1e-3 * mx), "flat %d for values %g..%g", flat, mn, mx);
        CHECK(all_zero ? mx == 0 : fabs(mx - 1) < 1e-6, "max 1 unless flagged all zero (max %g, flag %d)", mx, all_zero);
        CHECK((int)json_integer_value(json_object_get(one, "height")) == (int)rows &&
                  (int)json_integer_value(json_object_get(one, "width")) == (int)cols,
              "height x width rows");
    }
    resp_free(&r);
    return j;
}

/* The notebook: test image 18 (a Bag), layer leaky_re_lu_2 (11x11), overlay at 540x540. */
static void test_overlay_of_test_18(void)
{
    resp_t r = http_ex(&S, "POST", "/v1/models/fmnist/gradcam?sample=test:18", "", 0, NULL);
    cs_image img;
    char cls[32], zero[16];
    CHECK(r.status == 200 && resp_png(&r, &img), "%ld %s", r.status, r.status == 200 ? "" : r.body);
    CHECK(img.w == 540 && img.h == 540 && img.c == 3, "540x540 RGB, got %dx%dx%d", img.w, img.h, img.c);
    CHECK(image_levels(&img) > 16, "not blank");
    CHECK(resp_header(&r, "X-Class-Index", cls, sizeof cls) != NULL, "class header");
    CHECK(resp_header(&r, "X-All-Zero", zero, sizeof zero) != NULL, "all-zero header");
    CHECK(resp_header(&r, "X-Flat", zero, sizeof zero) && !strcmp(zero, "false"), "the bag's map is not flat");
    char num[64];
    CHECK(resp_header(&r, "X-Model-Version", num, sizeof num) && atoi(num) >= 1, "version header");
    CHECK(resp_header(&r, "X-Probability", num, sizeof num) && atof(num) > 0.5 && atof(num) <= 1,
          "the explained class's probability (the bag is sure): %s", num);
    CHECK(resp_header(&r, "X-Logit", num, sizeof num) && atof(num) > 0, "its logit");
    cs_image_free(&img);
    resp_free(&r);
}

static void test_heatmap_and_size(void)
{
    resp_t r = http_ex(&S, "POST", "/v1/models/fmnist/gradcam?sample=test:18&format=heatmap&size=100", "", 0, NULL);
    cs_image img;
    CHECK(r.status == 200 && resp_png(&r, &img) && img.w == 100 && img.h == 100 && img.c == 3, "heatmap 100x100");
    cs_image_free(&img);
    resp_free(&r);
    r = http_post_file(&S, "/v1/models/fmnist/gradcam?alpha=0.3&size=64", PHOTO("coffee.png"), "image/png");
    CHECK(r.status == 200 && resp_png(&r, &img) && img.w == 64 && img.h == 64, "photo overlay");
    cs_image_free(&img);
    resp_free(&r);
}

static void test_json_values(void)
{
    json_t *j = gradcam_json("sample=test:18", 1);
    json_t *one = json_array_get(json_object_get(j, "results"), 0);
    CHECK(!strcmp(json_string_value(json_object_get(one, "layer")), "leaky_re_lu_2"), "default layer");
    CHECK(json_integer_value(json_object_get(one, "height")) == 11, "11x11");
    CHECK(!strcmp(json_string_value(json_object_get(one, "score_kind")), "logit"), "logit by default");
    json_decref(j);
    j = gradcam_json("sample=test:18&score=probability&layer=leaky_re_lu_1", 1);
    one = json_array_get(json_object_get(j, "results"), 0);
    CHECK(json_integer_value(json_object_get(one, "height")) == 26, "26x26 for layer 2");
    CHECK(!strcmp(json_string_value(json_object_get(one, "score_kind")), "probability"), "probability");
    CHECK_NEAR(json_number_value(json_object_get(one, "score")), json_number_value(json_object_get(one, "probability")),
               1e-6, "score is the probability");
    json_decref(j);
}

/* A blank (all black) image: every position of leaky_re_lu_2 sees the same zeros, so the
 * map is one constant (1.0 after the division by its maximum). It must be flagged flat,
 * in JSON and in the X-Flat header, and the bag's map must not be. */
static void test_blank_image_is_flat(void)
{
    cs_image black;
    uint8_t *png = NULL;
    size_t len = 0;
    CHECK(cs_image_alloc(&black, 28, 28, 1) == CS_IMG_OK, "image");
    memset(black.px, 0, 28 * 28);
    CHECK(cs_image_encode_png(&black, &png, &len) == 0, "encode");
    req_opts o = {.content_type = "image/png"};
    resp_t r = http_ex(&S, "POST", "/v1/models/fmnist/gradcam?format=json", png, len, &o);
    json_t *j = resp_json(&r);
    json_t *one = json_array_get(json_object_get(j, "results"), 0);
    json_t *heat = json_object_get(one, "heatmap");
    /* Constant up to the rounding of the convs' arithmetic (a Winograd conv rounds each
     * position of its tiles its own way). */
    double first = json_number_value(json_array_get(json_array_get(heat, 0), 0)), lo = 1, hi = 0;
    int cells = 0;
    for (size_t y = 0; y < json_array_size(heat); y++)
        for (size_t x = 0; x < json_array_size(json_array_get(heat, y)); x++, cells++) {
            const double v = json_number_value(json_array_get(json_array_get(heat, y), x));
            lo = v < lo ? v : lo, hi = v > hi ? v : hi;
        }
    CHECK(r.status == 200 && cells == 11 * 11 && hi == 1.0 && lo >= 1 - 1e-5, "a blank image gives 1.0 everywhere to 1e-5 "
          "(first %.9g, lowest %.9g)", first, lo);
    CHECK(json_is_true(json_object_get(one, "flat")) && json_is_false(json_object_get(one, "all_zero")),
          "flagged flat, not all zero");
    json_decref(j);
    resp_free(&r);
    char v[16];
    r = http_ex(&S, "POST", "/v1/models/fmnist/gradcam?format=heatmap", png, len, &o);
    CHECK(r.status == 200 && resp_header(&r, "X-Flat", v, sizeof v) && !strcmp(v, "true"), "X-Flat: true");
    CHECK(resp_header(&r, "X-All-Zero", v, sizeof v) && !strcmp(v, "false"), "X-All-Zero stays false");
    resp_free(&r);
    j = gradcam_json("sample=test:18", 1);
    CHECK(json_is_false(json_object_get(json_array_get(json_object_get(j, "results"), 0), "flat")), "the bag is not flat");
    json_decref(j);
    free(png);
    cs_image_free(&black);
}

static void test_class_by_index_and_label(void)
{
    json_t *a = gradcam_json("sample=test:18&class=3", 1);
    json_t *b = gradcam_json("sample=test:18&class=dress", 1);
    json_t *ra = json_array_get(json_object_get(a, "results"), 0), *rb = json_array_get(json_object_get(b, "results"), 0);
    CHECK(json_integer_value(json_object_get(ra, "class_index")) == 3, "index 3");
    CHECK(!strcmp(json_string_value(json_object_get(rb, "label")), "Dress"), "label Dress");
    CHECK_NEAR(json_number_value(json_object_get(ra, "score")), json_number_value(json_object_get(rb, "score")), 1e-6,
               "same class, same score");
    json_decref(a);
    json_decref(b);
}

static void test_several_images_json(void)
{
    const char *files[] = {PHOTO("rocket.jpg"), PHOTO("chelsea.png"), NULL};
    req_opts o = {.files = files};
    resp_t r = http_ex(&S, "POST", "/v1/models/fmnist/gradcam?format=json", NULL, 0, &o);
    json_t *j = resp_json(&r);
    CHECK(r.status == 200 && json_array_size(json_object_get(j, "results")) == 2, "%ld", r.status);
    json_decref(j);
    resp_free(&r);
    r = http_ex(&S, "POST", "/v1/models/fmnist/gradcam", NULL, 0, &o);
    CHECK(r.status == 400 && is_error(&r, "too_many_images"), "one image per picture: %ld", r.status);
    resp_free(&r);
}

static void test_errors(void)
{
    struct {
        const char *query;
        int status;
        const char *code;
    } cases[] = {
        {"layer=dense_1", 400, "not_spatial"},       {"layer=flatten_1", 400, "not_spatial"},
        {"layer=nope", 404, "not_found"},            {"class=10", 400, "bad_parameter"},
        {"class=Sweater", 400, "bad_parameter"},     {"score=softmax", 400, "bad_parameter"},
        {"format=gif", 400, "bad_parameter"},        {"alpha=-1", 400, "bad_parameter"},
        {"size=0", 400, "bad_parameter"},            {"sample=test:123456", 400, "bad_parameter"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[200];
        snprintf(path, sizeof path, "/v1/models/fmnist/gradcam?sample=test:18&%s", cases[i].query);
        if (!strncmp(cases[i].query, "sample", 6)) snprintf(path, sizeof path, "/v1/models/fmnist/gradcam?%s", cases[i].query);
        resp_t r = http_ex(&S, "POST", path, "", 0, NULL);
        CHECK(r.status == cases[i].status && is_error(&r, cases[i].code), "%s: %ld %s", cases[i].query, r.status, r.body);
        if (!strcmp(cases[i].code, "not_spatial")) CHECK(strstr(r.body, "leaky_re_lu_2"), "says which layer works");
        resp_free(&r);
    }
    resp_t r = http_post_file(&S, "/v1/models/fmnist/gradcam", PHOTO("truncated.jpg"), "image/jpeg");
    CHECK(r.status == 422 && is_error(&r, "corrupt_image"), "truncated: %ld", r.status);
    resp_free(&r);
    req_opts t = {.content_type = "image/png"};
    r = http_ex(&S, "POST", "/v1/models/fmnist/gradcam", "GIF89a", 6, &t);
    CHECK(r.status == 415 && is_error(&r, "unsupported_media_type"), "gif: %ld", r.status);
    resp_free(&r);
    r = http_ex(&S, "POST", "/v1/models/fmnist/gradcam", "", 0, NULL);
    CHECK(r.status == 400 && is_error(&r, "no_image"), "none: %ld", r.status);
    resp_free(&r);
    r = http_ex(&S, "POST", "/v1/models/vgg16/gradcam?sample=test:1", "", 0, NULL);
    CHECK(r.status == 503 && is_error(&r, "model_unavailable"), "vgg16: %ld", r.status);
    resp_free(&r);
    r = http_ex(&S, "POST", "/v1/models/x/gradcam?sample=test:1", "", 0, NULL);
    CHECK(r.status == 404, "unknown model: %ld", r.status);
    resp_free(&r);
}

/* A 413 on this route too: the limit is generic. */
static void test_too_large(void)
{
    size_t n = 3u << 20;
    char *big = calloc(1, n);
    req_opts o = {.content_type = "image/png"};
    resp_t r = http_ex(&S, "POST", "/v1/models/fmnist/gradcam", big, n, &o);
    CHECK(r.status == 413 && is_error(&r, "payload_too_large"), "%ld", r.status);
    resp_free(&r);
    r = http_ex(&S, "POST", "/v1/models/fmnist/layers/conv2d_1/feature-maps.png", big, n, &o);
    CHECK(r.status == 413 && is_error(&r, "payload_too_large"), "feature maps: %ld", r.status);
    resp_free(&r);
    free(big);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_ALL);
    const char *flags[] = {"--no-vgg16", "--max-upload", "2000000", NULL};
    srv_start(&S, flags);
    RUN(test_overlay_of_test_18);
    RUN(test_heatmap_and_size);
    RUN(test_json_values);
    RUN(test_blank_image_is_flat);
    RUN(test_class_by_index_and_label);
    RUN(test_several_images_json);
    RUN(test_errors);
    RUN(test_too_large);
    srv_stop(&S);
    CHECK(S.exit_status == 0, "server exit %d", S.exit_status);
    curl_global_cleanup();
    return test_summary("api_gradcam");
}
