/*
 * test_predict.c - POST /v1/models/{model}/predict: raw PNG and JPEG bodies, multipart
 * with several images, ?sample=, top_k, and every way an upload can be wrong (no image,
 * text, truncated JPEG, a PNG declaring 100000x100000 pixels, 100 MB bodies with and
 * without Content-Length), unknown and unavailable models.
 */
#include <zlib.h>

#include "harness.h"

static srv_t S;
#define MAX_UPLOAD 4000000

static json_t *predict_ok(resp_t *r, int n_images)
{
    json_t *j = resp_json(r);
    CHECK(r->status == 200, "status %ld: %s", r->status, r->body);
    json_t *p = json_object_get(j, "predictions");
    CHECK(json_array_size(p) == (size_t)n_images, "%zu predictions", json_array_size(p));
    for (size_t i = 0; i < json_array_size(p); i++) {
        json_t *probs = json_object_get(json_array_get(p, i), "probabilities");
        double sum = 0;
        for (size_t k = 0; k < json_array_size(probs); k++) sum += json_number_value(json_array_get(probs, k));
        CHECK(json_array_size(probs) == 10 && fabs(sum - 1) < 1e-3, "10 probabilities summing to 1 (%g)", sum);
    }
    return j;
}

static int top_index(json_t *j, int image)
{
    json_t *top = json_object_get(json_array_get(json_object_get(j, "predictions"), (size_t)image), "top");
    return (int)json_integer_value(json_object_get(json_array_get(top, 0), "index"));
}

static void test_sample_shape(void)
{
    resp_t r = http_ex(&S, "POST", "/v1/models/fmnist/predict?sample=test:18", "", 0, NULL);
    json_t *j = predict_ok(&r, 1);
    CHECK(!strcmp(json_string_value(json_object_get(j, "model")), "fmnist"), "model");
    CHECK(json_integer_value(json_object_get(j, "version")) >= 1, "version");
    json_t *top = json_object_get(json_array_get(json_object_get(j, "predictions"), 0), "top");
    CHECK(json_array_size(top) == 3, "top_k defaults to 3");
    json_t *t0 = json_array_get(top, 0);
    CHECK(json_is_integer(json_object_get(t0, "index")) && json_is_string(json_object_get(t0, "label")) &&
              json_is_number(json_object_get(t0, "probability")),
          "index, label, probability");
    double p0 = json_number_value(json_object_get(t0, "probability")),
           p1 = json_number_value(json_object_get(json_array_get(top, 1), "probability"));
    CHECK(p0 >= p1, "sorted");
    CHECK(!strcmp(json_string_value(json_object_get(json_object_get(j, "truth"), "label")), "Bag"), "test 18 is a Bag");
    json_decref(j);
    resp_free(&r);
}

static void test_top_k(void)
{
    resp_t r = http_ex(&S, "POST", "/v1/models/fmnist/predict?sample=test:0&top_k=10", "", 0, NULL);
    json_t *j = predict_ok(&r, 1);
    CHECK(json_array_size(json_object_get(json_array_get(json_object_get(j, "predictions"), 0), "top")) == 10, "10");
    json_decref(j);
    resp_free(&r);
    const char *bad[] = {"0", "11", "x", "3.5", ""};
    for (int i = 0; i < 5; i++) {
        char path[128];
        snprintf(path, sizeof path, "/v1/models/fmnist/predict?sample=test:0&top_k=%s", bad[i]);
        r = http_ex(&S, "POST", path, "", 0, NULL);
        CHECK(r.status == 400 && is_error(&r, "bad_parameter"), "top_k=%s: %ld", bad[i], r.status);
        resp_free(&r);
    }
}

/* The dataset image as a PNG upload predicts exactly what the sample predicts. */
static void test_raw_png_matches_sample(void)
{
    resp_t img = http(&S, "GET", "/v1/datasets/fashion-mnist/test/18.png");
    CHECK(img.status == 200, "dataset png");
    req_opts o = {.content_type = "image/png"};
    resp_t a = http_ex(&S, "POST", "/v1/models/fmnist/predict", img.body, img.len, &o);
    resp_t b = http_ex(&S, "POST", "/v1/models/fmnist/predict?sample=test:18", "", 0, NULL);
    json_t *ja = predict_ok(&a, 1), *jb = predict_ok(&b, 1);
    json_t *pa = json_object_get(json_array_get(json_object_get(ja, "predictions"), 0), "probabilities");
    json_t *pb = json_object_get(json_array_get(json_object_get(jb, "predictions"), 0), "probabilities");
    for (int k = 0; k < 10; k++)
        CHECK_NEAR(json_number_value(json_array_get(pa, (size_t)k)), json_number_value(json_array_get(pb, (size_t)k)), 1e-6,
                   "same probabilities");
    json_decref(ja);
    json_decref(jb);
    resp_free(&a);
    resp_free(&b);
    resp_free(&img);
}

static void test_photos_png_and_jpeg(void)
{
    resp_t r = http_post_file(&S, "/v1/models/fmnist/predict", PHOTO("rocket.jpg"), "image/jpeg");
    json_decref(predict_ok(&r, 1));
    resp_free(&r);
    r = http_post_file(&S, "/v1/models/fmnist/predict", PHOTO("chelsea.png"), "image/png");
    json_decref(predict_ok(&r, 1));
    resp_free(&r);
    /* The format comes from the bytes, not from what the client says. */
    r = http_post_file(&S, "/v1/models/fmnist/predict", PHOTO("rocket.jpg"), "application/octet-stream");
    json_decref(predict_ok(&r, 1));
    resp_free(&r);
}

static void test_multipart_several_in_order(void)
{
    const char *files[] = {PHOTO("rocket.jpg"), PHOTO("chelsea.png"), PHOTO("coffee.png"), NULL};
    req_opts o = {.files = files};
    resp_t r = http_ex(&S, "POST", "/v1/models/fmnist/predict?top_k=1", NULL, 0, &o);
    json_t *j = predict_ok(&r, 3);
    for (int i = 0; i < 3; i++) {
        resp_t one = http_post_file(&S, "/v1/models/fmnist/predict?top_k=1", files[i], "image/png");
        json_t *jo = predict_ok(&one, 1);
        CHECK(top_index(jo, 0) == top_index(j, i), "image %d in upload order", i);
        json_decref(jo);
        resp_free(&one);
    }
    json_decref(j);
    resp_free(&r);
}

static void test_no_image_400(void)
{
    resp_t r = http_ex(&S, "POST", "/v1/models/fmnist/predict", "", 0, NULL);
    CHECK(r.status == 400 && is_error(&r, "no_image"), "%ld %s", r.status, r.body);
    resp_free(&r);
    /* A form without an `image` field. */
    const char *files[] = {PHOTO("rocket.jpg"), NULL};
    (void)files;
    const char form[] = "--XyZ\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nhello\r\n--XyZ--\r\n";
    req_opts o = {.content_type = "multipart/form-data; boundary=XyZ"};
    r = http_ex(&S, "POST", "/v1/models/fmnist/predict", form, sizeof form - 1, &o);
    CHECK(r.status == 400 && is_error(&r, "no_image"), "form without image: %ld %s", r.status, r.body);
    resp_free(&r);
}

static void test_bad_sample_400(void)
{
    const char *bad[] = {"test:10000", "test:-1", "valid:1", "test", "test:x"};
    for (int i = 0; i < 5; i++) {
        char path[128];
        snprintf(path, sizeof path, "/v1/models/fmnist/predict?sample=%s", bad[i]);
        resp_t r = http_ex(&S, "POST", path, "", 0, NULL);
        CHECK(r.status == 400 && is_error(&r, "bad_parameter"), "sample=%s: %ld", bad[i], r.status);
        resp_free(&r);
    }
    resp_t r = http_post_file(&S, "/v1/models/fmnist/predict?sample=test:1", PHOTO("rocket.jpg"), "image/jpeg");
    CHECK(r.status == 400 && is_error(&r, "bad_request"), "both: %ld", r.status);
    resp_free(&r);
}

static void test_text_is_415(void)
{
    const char text[] = "this is a text file, not an image\n";
    req_opts o = {.content_type = "image/png"};
    resp_t r = http_ex(&S, "POST", "/v1/models/fmnist/predict", text, sizeof text - 1, &o);
    CHECK(r.status == 415 && is_error(&r, "unsupported_media_type"), "%ld %s", r.status, r.body);
    /* Said once: the message used to repeat itself ("...image: not a PNG or JPEG image"). */
    const char *once = strstr(r.body, "not a PNG or JPEG image");
    CHECK(once && !strstr(once + 1, "not a PNG or JPEG image"), "said once: %s", r.body);
    resp_free(&r);
}

static void test_truncated_jpeg_422(void)
{
    resp_t r = http_post_file(&S, "/v1/models/fmnist/predict", PHOTO("truncated.jpg"), "image/jpeg");
    CHECK(r.status == 422 && is_error(&r, "corrupt_image"), "%ld %s", r.status, r.body);
    resp_free(&r);
    const char *files[] = {PHOTO("rocket.jpg"), PHOTO("truncated.jpg"), NULL};
    req_opts o = {.files = files};
    r = http_ex(&S, "POST", "/v1/models/fmnist/predict", NULL, 0, &o);
    CHECK(r.status == 422 && strstr(r.body, "image 2"), "names the bad part: %s", r.body);
    resp_free(&r);
}

static void put_chunk(uint8_t **p, const char *type, const uint8_t *data, uint32_t n)
{
    uint8_t *q = *p;
    q[0] = (uint8_t)(n >> 24), q[1] = (uint8_t)(n >> 16), q[2] = (uint8_t)(n >> 8), q[3] = (uint8_t)n;
    memcpy(q + 4, type, 4);
    if (n) memcpy(q + 8, data, n); /* IEND has no data (and data is NULL) */
    uLong crc = crc32(0, q + 4, n + 4);
    q[8 + n] = (uint8_t)(crc >> 24), q[9 + n] = (uint8_t)(crc >> 16), q[10 + n] = (uint8_t)(crc >> 8),
           q[11 + n] = (uint8_t)crc;
    *p = q + 12 + n;
}

static void test_huge_declared_png_422(void)
{
    uint8_t buf[256], *p = buf;
    memcpy(p, "\x89PNG\r\n\x1a\n", 8);
    p += 8;
    uint8_t ihdr[13] = {0, 1, 0x86, 0xa0, 0, 1, 0x86, 0xa0, 8, 0, 0, 0, 0}; /* 100000 x 100000 gray */
    put_chunk(&p, "IHDR", ihdr, 13);
    uint8_t idat[16];
    uLongf n = sizeof idat;
    uint8_t row[2] = {0, 0};
    compress(idat, &n, row, 2);
    put_chunk(&p, "IDAT", idat, (uint32_t)n);
    put_chunk(&p, "IEND", NULL, 0);
    req_opts o = {.content_type = "image/png"};
    resp_t r = http_ex(&S, "POST", "/v1/models/fmnist/predict", buf, (size_t)(p - buf), &o);
    CHECK(r.status == 422 && is_error(&r, "image_too_large"), "%ld %s", r.status, r.body);
    resp_free(&r);
}

/* 100 MB with a Content-Length: refused from the header, before the body is read. */
static void test_100mb_413_unread(void)
{
    size_t n = 100u << 20;
    char *big = calloc(1, n);
    req_opts o = {.content_type = "image/png", .timeout_s = 20};
    resp_t r = http_ex(&S, "POST", "/v1/models/fmnist/predict", big, n, &o);
    CHECK(r.status == 413 && is_error(&r, "payload_too_large"), "%ld %s", r.status, r.body);
    CHECK(r.uploaded < 8e6, "the body was not sent (Expect: 100-continue answered 413): %.0f bytes", r.uploaded);
    resp_free(&r);
    /* Without Expect the client sends at once; the server answers 413 and closes without
     * reading on. Whether the client still reads that 413 or first sees the reset of
     * its unfinished upload depends on timing, so either is accepted; what matters is
     * that the server did not take the 100 MB. */
    req_opts o2 = {.content_type = "image/png", .timeout_s = 20, .no_expect = 1};
    r = http_ex(&S, "POST", "/v1/models/fmnist/predict", big, n, &o2);
    CHECK((r.status == 413 && is_error(&r, "payload_too_large")) ||
              (r.status == 0 && (r.curl == CURLE_SEND_ERROR || r.curl == CURLE_RECV_ERROR)),
          "no Expect: %ld (curl %d)", r.status, (int)r.curl);
    CHECK(r.uploaded < 50e6, "not read to the end: %.0f bytes", r.uploaded);
    resp_free(&r);
    free(big);
}

/* Chunked: no length up front, counted while streaming. */
static void test_chunked_over_limit_413(void)
{
    size_t n = MAX_UPLOAD + 500000;
    char *big = calloc(1, n);
    req_opts o = {.content_type = "image/png", .chunked = 1, .timeout_s = 20};
    resp_t r = http_ex(&S, "POST", "/v1/models/fmnist/predict", big, n, &o);
    CHECK(r.status == 413 && is_error(&r, "payload_too_large"), "%ld (curl %d) %s", r.status, (int)r.curl, r.body);
    resp_free(&r);
    free(big);
    /* Still serving. */
    r = http_ex(&S, "POST", "/v1/models/fmnist/predict?sample=test:2", "", 0, NULL);
    CHECK(r.status == 200, "after: %ld", r.status);
    resp_free(&r);
}

static void test_unknown_model_404_and_vgg16_503(void)
{
    resp_t r = http_ex(&S, "POST", "/v1/models/resnet/predict?sample=test:0", "", 0, NULL);
    CHECK(r.status == 404 && is_error(&r, "not_found"), "%ld %s", r.status, r.body);
    resp_free(&r);
    r = http_post_file(&S, "/v1/models/vgg16/predict", PHOTO("rocket.jpg"), "image/jpeg");
    char ra[16];
    CHECK(r.status == 503 && is_error(&r, "model_unavailable") && strstr(r.body, "--vgg16-weights"), "%ld %s",
          r.status, r.body);
    CHECK(resp_header(&r, "Retry-After", ra, sizeof ra) != NULL, "Retry-After");
    resp_free(&r);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_ALL);
    char max[32];
    snprintf(max, sizeof max, "%d", MAX_UPLOAD);
    const char *flags[] = {"--max-upload", max, "--vgg16-weights", "/nonexistent/vgg16.h5", NULL};
    srv_start(&S, flags);
    RUN(test_sample_shape);
    RUN(test_top_k);
    RUN(test_raw_png_matches_sample);
    RUN(test_photos_png_and_jpeg);
    RUN(test_multipart_several_in_order);
    RUN(test_no_image_400);
    RUN(test_bad_sample_400);
    RUN(test_text_is_415);
    RUN(test_truncated_jpeg_422);
    RUN(test_huge_declared_png_422);
    RUN(test_100mb_413_unread);
    RUN(test_chunked_over_limit_413);
    RUN(test_unknown_model_404_and_vgg16_503);
    srv_stop(&S);
    CHECK(S.exit_status == 0, "server exit %d", S.exit_status);
    curl_global_cleanup();
    return test_summary("api_predict");
}
