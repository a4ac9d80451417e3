/*
 * test_many_images.c - memory amplification: one request of 16 images, each of the
 * largest size --max-pixels allows (4096x4096), a few kilobytes each as a flat PNG,
 * tens of megabytes each decoded. Before the fix --max-pixels bounded each image alone
 * and every image of a request was decoded before any was used: such a request held
 * 16 decoded images and their model inputs at once, on every compute worker, and
 * several of them at once took the server's memory by the gigabyte.
 *
 * Now a request's images are counted against --max-request-pixels (twice --max-pixels)
 * from their headers before anything is decoded (422 too_many_pixels), and the images
 * of a request that fits are decoded and used one at a time. Two attacks, each from
 * eight connections of two other addresses sending back to back while the normal
 * client uploads a small PNG for predictions (measured from the moment the server
 * shows the attack at work), with the server's memory sampled throughout:
 *   - 16 images of 4096x4096: refused from their headers; the normal client keeps its
 *     latency (p99 under 100 ms, or ten times its p99 alone on a busy machine), and
 *     memory grows by no more than the bodies in flight and a margin;
 *   - 2 images of 4096x4096, the most one request may hold: decoded, one at a time.
 *     Memory grows by at most one decoded image per compute worker (about 10 bytes a
 *     pixel: the decoded image, its gray copy, a float plane; README) and a margin. The
 *     normal client waits for the images being decoded when it arrives, not for the
 *     queue (attack.h's bound with the work of one attacking request).
 */
#include "attack.h"
#include "bombs.h"

#define SIDE 4096
#define CONNS 8
#define SECONDS 5.0
#define MARGIN_KIB (32 << 10) /* bodies in flight (tens of KiB each), replies, buffers */
#define BYTES_PER_PIXEL 10

/* A multipart/form-data body of n `image` parts holding the same PNG. */
static char *multipart(const uint8_t *png, size_t len, int n, size_t *out_len)
{
    static const char *b = "convscope-attack-boundary";
    size_t cap = (size_t)n * (len + 256) + 64, at = 0;
    char *p = malloc(cap);
    if (!p) exit(99);
    for (int i = 0; i < n; i++) {
        at += (size_t)snprintf(p + at, cap - at,
                               "--%s\r\nContent-Disposition: form-data; name=\"image\"; filename=\"%d.png\"\r\n"
                               "Content-Type: image/png\r\n\r\n", b, i);
        memcpy(p + at, png, len);
        at += len;
        at += (size_t)snprintf(p + at, cap - at, "\r\n");
    }
    at += (size_t)snprintf(p + at, cap - at, "--%s--\r\n", b);
    *out_len = at;
    return p;
}

static const char *const k_type = "multipart/form-data; boundary=convscope-attack-boundary";

static void test_sixteen_largest_images(void)
{
    srv_t S;
    const char *flags[] = {"--no-vgg16", NULL};
    attack_start(&S, flags, NULL);
    size_t png_len, len;
    uint8_t *png = png_flat(SIDE, SIDE, &png_len);
    char *body = multipart(png, png_len, 16, &len);
    req_opts o = {.content_type = k_type, .timeout_s = 120};
    resp_t r = http_ex(&S, "POST", "/v1/models/fmnist/predict", body, len, &o);
    fprintf(stderr, "  one request of 16 images of %dx%d (%zu bytes): %ld in %.2f s\n", SIDE, SIDE, len, r.status,
            r.seconds);
    CHECK(r.status == 422 && is_error(&r, "too_many_pixels"), "%ld %.200s", r.status, r.body);
    resp_free(&r);

    static normal_client nc;
    upload_attack att;
    upload_attack_result res;
    upload_attack_run(&S, &nc, &att, body, len, k_type, CONNS, SECONDS, 8 * MARGIN_KIB, &res);
    CHECK_NORMAL(&nc, normal_bound(res.base_p99, 0));
    CHECK(res.answered >= CONNS, "the server answered only %d attacking requests while the normal client was "
          "measured", res.answered);
    CHECK(att.ok == 0, "%d requests of 16 images of %dx%d answered 200", att.ok, SIDE, SIDE);
    CHECK(res.grew_kib < MARGIN_KIB, "memory grew by %ld MiB (bound %d MiB)", res.grew_kib >> 10, MARGIN_KIB >> 10);
    free(body);
    free(png);
    srv_stop(&S);
}

static void test_requests_at_the_pixel_budget(void)
{
    srv_t S;
    const char *flags[] = {"--no-vgg16", NULL};
    attack_start(&S, flags, NULL);
    double workers = metric_value(&S, "convscope_compute_workers{state=\"all\"}");
    CHECK(workers >= 1, "the compute workers cannot be read");
    size_t png_len, len;
    uint8_t *png = png_flat(SIDE, SIDE, &png_len);
    char *body = multipart(png, png_len, 2, &len);
    const char *series = "{method=\"POST\",route=\"/v1/models/{model}/predict\"}";
    char run_name[200], n_name[200];
    snprintf(run_name, sizeof run_name, "convscope_compute_run_seconds_total%s", series);
    snprintf(n_name, sizeof n_name, "convscope_compute_requests_total%s", series);
    /* One such request alone: what the server spends on it. */
    double run0 = metric_value(&S, run_name), n0 = metric_value(&S, n_name);
    req_opts o = {.content_type = k_type, .timeout_s = 120};
    resp_t r = http_ex(&S, "POST", "/v1/models/fmnist/predict", body, len, &o);
    double job = metric_value(&S, run_name) - run0;
    fprintf(stderr, "  one request of 2 images of %dx%d: %ld in %.2f s, %.0f ms of a worker\n", SIDE, SIDE, r.status,
            r.seconds, job * 1e3);
    CHECK(r.status == 200, "%ld %.200s", r.status, r.body);
    CHECK(metric_value(&S, n_name) == n0 + 1, "one request run");
    resp_free(&r);

    static normal_client nc;
    upload_attack att;
    upload_attack_result res;
    long bound = (long)workers * ((long)SIDE * SIDE * BYTES_PER_PIXEL >> 10) + MARGIN_KIB;
    /* Twice as long: the normal client's requests wait for decoding here, a few a second. */
    upload_attack_run(&S, &nc, &att, body, len, k_type, CONNS, 2 * SECONDS, 4 * bound, &res);
    CHECK_NORMAL(&nc, normal_bound(res.base_p99, job));
    CHECK(res.answered >= 1, "the server answered no attacking request while the normal client was measured");
    CHECK(att.refused == 0 || att.first_refusal == 503, "refused with %ld", att.first_refusal);
    CHECK(res.grew_kib < bound, "memory grew by %ld MiB (bound %ld MiB: %.0f workers)", res.grew_kib >> 10,
          bound >> 10, workers);
    free(body);
    free(png);
    srv_stop(&S);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_ALL);
    RUN(test_sixteen_largest_images);
    RUN(test_requests_at_the_pixel_budget);
    curl_global_cleanup();
    return test_summary("attack_many_images");
}
