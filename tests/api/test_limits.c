/*
 * test_limits.c - what one request may make the service do: more images than a call
 * takes (too_many_images, not a malformed form), more pixels than a request may hold
 * (too_many_pixels, refused before any decoding), images decoded one at a time (the
 * server's peak memory for 16 large images is about one image's), a PNG whose IDAT
 * inflates far past its pixels, a JPEG of hundreds of scans, a feature-map grid too
 * large to draw, and a %00 in a query value.
 */
#include <zlib.h>

#include "harness.h"

static srv_t S;
static char big_png[512]; /* a flat 2048x2048 RGB PNG (4 Mpx, 12 MiB decoded) */
#define BIG_SIDE 2048

/* The server's peak resident memory so far (VmHWM), in bytes; -1 when unknown. */
static long long server_peak(const srv_t *s)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/status", (int)s->pid);
    FILE *f = fopen(path, "r"); /* /proc files have no size to read them by */
    char line[256];
    long long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6)) kb = atoll(line + 6);
    if (f) fclose(f);
    return kb < 0 ? -1 : kb * 1024;
}

static void write_big_png(const char *dir)
{
    cs_image img;
    if (cs_image_alloc(&img, BIG_SIDE, BIG_SIDE, 3) != CS_IMG_OK) exit(99);
    memset(img.px, 90, (size_t)BIG_SIDE * BIG_SIDE * 3);
    uint8_t *png;
    size_t len;
    if (cs_image_encode_png(&img, &png, &len) != CS_IMG_OK) exit(99);
    sfmt(big_png, sizeof big_png, "%s/big.png", dir);
    FILE *f = fopen(big_png, "wb");
    if (!f || fwrite(png, 1, len, f) != len || fclose(f) != 0) exit(99);
    free(png);
    cs_image_free(&img);
}

/* 17 `image` parts: the form is fine, there are just too many (before: "malformed
 * multipart/form-data body"). */
static void test_17_images_too_many(void)
{
    const char *files[18];
    for (int i = 0; i < 17; i++) files[i] = PHOTO("chelsea.png");
    files[17] = NULL;
    req_opts o = {.files = files};
    resp_t r = http_ex(&S, "POST", "/v1/models/fmnist/predict", NULL, 0, &o);
    CHECK(r.status == 400 && is_error(&r, "too_many_images") && strstr(r.body, "got 17"), "%ld %s", r.status, r.body);
    resp_free(&r);
    files[16] = NULL; /* 16 are fine */
    r = http_ex(&S, "POST", "/v1/models/fmnist/predict?top_k=1", NULL, 0, &o);
    json_t *j = resp_json(&r);
    CHECK(r.status == 200 && json_array_size(json_object_get(j, "predictions")) == 16, "16 images: %ld %.200s",
          r.status, r.body);
    json_decref(j);
    resp_free(&r);
}

/* 16 images of 4 Mpx are 67 Mpx, above the default 33.5 Mpx for one request: refused
 * as a whole, before any is decoded, naming the limit. */
static void test_request_pixel_budget(void)
{
    const char *files[17];
    for (int i = 0; i < 16; i++) files[i] = big_png;
    files[16] = NULL;
    req_opts o = {.files = files};
    resp_t r = http_ex(&S, "POST", "/v1/models/fmnist/predict", NULL, 0, &o);
    CHECK(r.status == 422 && is_error(&r, "too_many_pixels") && strstr(r.body, "--max-request-pixels"), "%ld %s",
          r.status, r.body);
    resp_free(&r);
    files[9] = NULL; /* 9 are still over; 8 are exactly the limit (8 x 4194304) */
    r = http_ex(&S, "POST", "/v1/models/fmnist/predict", NULL, 0, &o);
    CHECK(r.status == 422 && is_error(&r, "too_many_pixels"), "9 images of 4 Mpx: %ld", r.status);
    resp_free(&r);
    files[8] = NULL;
    r = http_ex(&S, "POST", "/v1/models/fmnist/predict", NULL, 0, &o);
    CHECK(r.status == 200, "8 images of 4 Mpx: %ld %.200s", r.status, r.body);
    resp_free(&r);
}

/* With the budget raised, 16 images of 12 MiB each (decoded) pass through the server
 * one at a time: its peak memory grows by far less than the 192 MiB all of them
 * would take at once (before: every image was decoded before the first was used). */
static void test_one_image_at_a_time(void)
{
    srv_t M;
    /* A generous decoding time: what is measured here is memory, on any machine. */
    const char *flags[] = {"--max-request-pixels", "100000000", "--decode-seconds", "120", "--no-vgg16", "--threads", "1",
                           NULL};
    srv_start(&M, flags);
    const char *files[17];
    for (int i = 0; i < 16; i++) files[i] = big_png;
    files[16] = NULL;
    req_opts o = {.files = files};
    /* A first request brings in what every request uses (the exec, the model's pages). */
    resp_t r = http_ex(&M, "POST", "/v1/models/fmnist/predict", NULL, 0, &(req_opts){.files = (const char *[]){big_png, NULL}});
    CHECK(r.status == 200, "one big image: %ld", r.status);
    resp_free(&r);
    long long before = server_peak(&M);
    r = http_ex(&M, "POST", "/v1/models/fmnist/predict?top_k=1", NULL, 0, &o);
    long long after = server_peak(&M);
    json_t *j = resp_json(&r);
    CHECK(r.status == 200 && json_array_size(json_object_get(j, "predictions")) == 16, "16 big images: %ld %.200s",
          r.status, r.body);
    json_decref(j);
    resp_free(&r);
    CHECK(before > 0 && after > 0, "VmHWM readable (%lld, %lld)", before, after);
    double grew = (double)(after - before) / (1 << 20);
#ifndef __SANITIZE_ADDRESS__ /* AddressSanitizer keeps freed memory aside (its quarantine) */
    CHECK(grew < 96, "peak memory grew by %.0f MiB for 16 images of 12 MiB (all at once: 192 MiB)", grew);
#else
    (void)grew;
#endif
    srv_stop(&M);
}

/* 100x100 pixels whose IDAT carries 256 MiB of deflated zeros after them: answered at
 * once (the decoder stops at the last row; core/image tests count what it reads). */
static void test_png_bomb_answered(void)
{
    enum { W = 100, H = 100 };
    size_t raw = (size_t)H * (1 + 3 * W), extra = (size_t)256 << 20;
    z_stream z;
    memset(&z, 0, sizeof z);
    deflateInit(&z, 9);
    size_t cap = deflateBound(&z, (uLong)(raw + extra)) + 4096;
    uint8_t *zbuf = malloc(cap), *zeros = calloc(1, 1 << 20);
    z.next_out = zbuf;
    z.avail_out = (uInt)cap;
    for (size_t left = raw + extra; left;) {
        size_t k = left < (1u << 20) ? left : (1u << 20);
        z.next_in = zeros;
        z.avail_in = (uInt)k;
        deflate(&z, Z_NO_FLUSH);
        left -= k;
    }
    deflate(&z, Z_FINISH);
    size_t zlen = z.total_out;
    deflateEnd(&z);
    uint8_t *png = malloc(zlen + 64), *p = png;
    memcpy(p, "\x89PNG\r\n\x1a\n", 8);
    p += 8;
    const uint8_t ihdr[13] = {0, 0, 0, W, 0, 0, 0, H, 8, 2, 0, 0, 0};
    const struct {
        const char *type;
        const uint8_t *data;
        uint32_t n;
    } chunks[] = {{"IHDR", ihdr, 13}, {"IDAT", zbuf, (uint32_t)zlen}, {"IEND", NULL, 0}};
    for (int i = 0; i < 3; i++) {
        uint32_t n = chunks[i].n;
        p[0] = (uint8_t)(n >> 24), p[1] = (uint8_t)(n >> 16), p[2] = (uint8_t)(n >> 8), p[3] = (uint8_t)n;
        memcpy(p + 4, chunks[i].type, 4);
        if (n) memcpy(p + 8, chunks[i].data, n);
        uLong crc = crc32(0, p + 4, n + 4);
        p[8 + n] = (uint8_t)(crc >> 24), p[9 + n] = (uint8_t)(crc >> 16), p[10 + n] = (uint8_t)(crc >> 8),
               p[11 + n] = (uint8_t)crc;
        p += 12 + n;
    }
    req_opts o = {.content_type = "image/png"};
    resp_t r = http_ex(&S, "POST", "/v1/models/fmnist/predict", png, (size_t)(p - png), &o);
    CHECK(r.status == 200, "bomb of %zu bytes: %ld %s", (size_t)(p - png), r.status, r.body);
    resp_free(&r);
    free(png);
    free(zbuf);
    free(zeros);
}

/* 379 scans, each walking every block again: refused as too costly (422). */
static void test_many_scans_jpeg_422(void)
{
    resp_t r = http_post_file(&S, "/v1/models/fmnist/predict", PHOTO("many-scans.jpg"), "image/jpeg");
    CHECK(r.status == 422 && is_error(&r, "image_too_costly") && strstr(r.body, "scans"), "%ld %s", r.status, r.body);
    resp_free(&r);
}

/* A grid too large to draw is the client's choice of cols and scale: 400, not 500. */
static void test_feature_map_grid_too_large_400(void)
{
    resp_t r = http_ex(&S, "POST", "/v1/models/fmnist/layers/leaky_re_lu_1/feature-maps.png?sample=test:4&cols=8&scale=64",
                       "", 0, NULL);
    CHECK(r.status == 400 && is_error(&r, "bad_parameter") && strstr(r.body, "pixels"), "%ld %s", r.status, r.body);
    resp_free(&r);
    r = http_ex(&S, "POST", "/v1/models/fmnist/layers/leaky_re_lu_1/feature-maps.png?sample=test:4&cols=8&scale=8",
                "", 0, NULL);
    CHECK(r.status == 200, "scale 8: %ld", r.status);
    resp_free(&r);
}

/* A part's file name is echoed in the error: bytes that are not UTF-8 become '?' (before:
 * jansson refused the message and the reply was an empty 500). */
static void test_file_name_not_utf8(void)
{
    const char form[] = "--b0undary\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a\xff\xfe.png\"\r\n"
                        "Content-Type: image/png\r\n\r\nnot an image at all\r\n--b0undary--\r\n";
    req_opts o = {.content_type = "multipart/form-data; boundary=b0undary"};
    resp_t r = http_ex(&S, "POST", "/v1/models/fmnist/predict", form, sizeof form - 1, &o);
    CHECK(r.status == 415 && is_error(&r, "unsupported_media_type") && strstr(r.body, "a??.png"), "%ld %s", r.status,
          r.body);
    resp_free(&r);
}

/* %00 would cut the value short ("test:1" of "test:1%00junk"): refused, on every route. */
static void test_nul_in_query_400(void)
{
    const char *paths[] = {"/v1/models/fmnist/predict?sample=test:1%00junk", "/v1/datasets/fashion-mnist?split=te%00st",
                           "/v1/models/fmnist/predict?top%00_k=1&sample=test:1"};
    const char *methods[] = {"POST", "GET", "POST"};
    for (int i = 0; i < 3; i++) {
        resp_t r = http_ex(&S, methods[i], paths[i], "", 0, NULL);
        CHECK(r.status == 400 && is_error(&r, "bad_parameter") && strstr(r.body, "NUL"), "%s: %ld %s", paths[i],
              r.status, r.body);
        resp_free(&r);
    }
    resp_t r = http_ex(&S, "POST", "/v1/models/fmnist/predict?sample=test%3A1", "", 0, NULL);
    CHECK(r.status == 200, "other escapes still decode: %ld", r.status);
    resp_free(&r);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_ALL);
    write_big_png(test_scratch_dir("limits"));
    const char *flags[] = {"--no-vgg16", "--decode-seconds", "120", NULL}; /* no test here races the clock */
    srv_start(&S, flags);
    RUN(test_17_images_too_many);
    RUN(test_request_pixel_budget);
    RUN(test_png_bomb_answered);
    RUN(test_many_scans_jpeg_422);
    RUN(test_feature_map_grid_too_large_400);
    RUN(test_nul_in_query_400);
    RUN(test_file_name_not_utf8);
    srv_stop(&S);
    CHECK(S.exit_status == 0, "server exit %d", S.exit_status);
    RUN(test_one_image_at_a_time);
    curl_global_cleanup();
    return test_summary("api_limits");
}
