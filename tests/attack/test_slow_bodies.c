/*
 * test_slow_bodies.c - uploads that arrive a byte at a time, or almost whole and then
 * stall, and an upload to a route that needs the token. Before the guard, bodies still
 * arriving counted as requests in flight (a few dozen dripping connections made every
 * other request get 429) and held their bytes for as long as they dripped (40 stalled
 * 15 MiB uploads held 679 MiB).
 *
 * Now: bodies arriving have their own places (--max-uploads, half per address) and a
 * byte budget (--upload-budget, reserved from Content-Length before the body is read);
 * a body below --min-body-rate is cut; the token is checked before a body is read. The
 * normal client, uploading small images meanwhile, keeps its latency, and the server's
 * memory stays under the budget plus a stated margin.
 */
#include "attack.h"

#define MAX_UPLOAD (8 << 20)
#define BUDGET (32 << 20)
#define MEMORY_MARGIN_KIB (24 << 10) /* above the budget: buffers, threads, the replies */

static const char *const g_env[] = {"CONVSCOPE_HEADER_TIMEOUT=2", "CONVSCOPE_MIN_BODY_RATE=1024",
                                    "CONVSCOPE_MAX_UPLOADS=16", "CONVSCOPE_UPLOAD_BUDGET=33554432", NULL};

static void test_dripping_bodies(void)
{
    srv_t S;
    const char *flags[] = {"--no-vgg16", "--max-in-flight", "16", NULL};
    attack_start(&S, flags, g_env);
    size_t png_len;
    char *png = small_png(&S, &png_len);
    double base = normal_baseline(&S, "/v1/models/fmnist/predict", png, png_len, "image/png");
    static normal_client nc;
    normal_start(&nc, &S, "/v1/models/fmnist/predict", png, png_len, "image/png", 0);

    /* Three times --max-in-flight uploads, one byte every half second. */
    enum { N = 48 };
    static slow_conn att[N];
    const char *head = "POST /v1/models/fmnist/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                       "Content-Length: 100000\r\n\r\n";
    for (int i = 0; i < N; i++) slow_open(&att[i], &S, "127.0.0.2", head, strlen(head));
    double end = now_s() + 6;
    while (now_s() < end) {
        usleep(500000);
        slow_drip(att, N, 'x');
        slow_poll(att, N);
    }
    normal_stop(&nc, "48 dripping uploads");
    CHECK_NORMAL(&nc, normal_bound(base, 0));
    int ended = 0, answered = 0;
    for (int i = 0; i < N; i++) ended += att[i].ended > 0, answered += att[i].answered;
    fprintf(stderr, "  attacker: %d uploads, %d ended within 6 s (%d answered at once)\n", N, ended,
            answered);
    CHECK(ended == N, "%d of %d dripping uploads still open after 6 s", N - ended, N);
    CHECK(metric_value(&S, "convscope_http_connections_cut_total{reason=\"slow_body\"}") >= 1, "cut for their rate");
    slow_close_all(att, N);
    free(png);
    srv_stop(&S);
}

/* Sends as much of each body as the server takes, without blocking on any one. */
static void push_bodies(slow_conn *cs, int n, const char *body, size_t len, size_t *sent, double seconds)
{
    double end = now_s() + seconds;
    int busy = 1;
    while (busy && now_s() < end) {
        busy = 0;
        for (int i = 0; i < n; i++) {
            if (cs[i].fd < 0 || cs[i].ended || sent[i] >= len) continue;
            ssize_t k = send(cs[i].fd, body + sent[i], len - sent[i], MSG_NOSIGNAL | MSG_DONTWAIT);
            if (k > 0) sent[i] += (size_t)k;
            else if (k < 0 && errno != EAGAIN) cs[i].ended = now_s();
            busy |= sent[i] < len && !cs[i].ended;
        }
        slow_poll(cs, n);
        usleep(1000);
    }
}

static void test_stalled_big_bodies_memory(void)
{
    srv_t S;
    char max_upload[32];
    snprintf(max_upload, sizeof max_upload, "%d", MAX_UPLOAD);
    const char *flags[] = {"--no-vgg16", "--max-upload", max_upload, NULL};
    attack_start(&S, flags, g_env);
    size_t png_len;
    char *png = small_png(&S, &png_len);
    long rss0 = rss_kib(S.pid);
    CHECK(rss0 > 0, "the server's memory cannot be read");
    double base = normal_baseline(&S, "/v1/models/fmnist/predict", png, png_len, "image/png");
    static normal_client nc;
    normal_start(&nc, &S, "/v1/models/fmnist/predict", png, png_len, "image/png", 0);

    /* 40 uploads of 8 MiB from two addresses, all but their last byte, then silence. */
    enum { N = 40 };
    static slow_conn att[N];
    static size_t sent[N];
    char head[256];
    snprintf(head, sizeof head,
             "POST /v1/models/fmnist/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
             "Content-Length: %d\r\n\r\n",
             MAX_UPLOAD);
    for (int i = 0; i < N; i++) slow_open(&att[i], &S, i % 2 ? "127.0.0.2" : "127.0.0.3", head, strlen(head));
    char *body = calloc(1, MAX_UPLOAD);
    if (!body) exit(99);
    long rss_max = rss0;
    double t0 = now_s();
    push_bodies(att, N, body, MAX_UPLOAD - 1, sent, 8);
    /* The server reads what was sent as fast as it comes; watch its memory meanwhile. */
    while (now_s() - t0 < 10) {
        long rss = rss_kib(S.pid);
        if (rss > rss_max) rss_max = rss;
        slow_poll(att, N);
        usleep(50000);
    }
    normal_stop(&nc, "40 stalled 8 MiB uploads");
    CHECK_NORMAL(&nc, normal_bound(base, 0));
    int refused = 0, admitted = 0;
    for (int i = 0; i < N; i++) {
        /* A 503 sent before the body is read, then the connection closed (the client may
         * see the reset before it reads the 503). */
        if (att[i].ended && att[i].ended - att[i].opened < 2) refused++;
        if (sent[i] == MAX_UPLOAD - 1) admitted++;
    }
    long grew = rss_max - rss0;
    fprintf(stderr, "  attacker: %d uploads, %d sent whole but a byte, %d refused at once; server memory +%ld MiB "
            "(budget %d MiB + %d MiB)\n", N, admitted, refused, grew >> 10, BUDGET >> 20, MEMORY_MARGIN_KIB >> 10);
    CHECK(grew < (BUDGET >> 10) + MEMORY_MARGIN_KIB, "memory grew by %ld MiB", grew >> 10);
    CHECK(admitted <= BUDGET / MAX_UPLOAD, "%d bodies of %d MiB taken with a budget of %d MiB", admitted,
          MAX_UPLOAD >> 20, BUDGET >> 20);
    CHECK(refused + admitted == N, "%d refused at once, %d taken, of %d", refused, admitted, N);
    /* The stalled ones are cut for their rate, and give their bytes back. */
    CHECK(wait_metric(&S, "convscope_http_upload_bytes", 0, 20), "bytes held after the cuts: %g",
          metric_value(&S, "convscope_http_upload_bytes"));
    slow_close_all(att, N);
    free(body);
    free(png);
    srv_stop(&S);
}

static void test_token_before_the_body(void)
{
    srv_t S;
    const char *flags[] = {"--no-vgg16", "--token", "s3cret", NULL};
    attack_start(&S, flags, NULL);
    size_t len = 4 << 20;
    char *body = malloc(len);
    if (!body) exit(99);
    memset(body, ' ', len);
    body[0] = '{';
    body[len - 1] = '}';
    req_opts o = {.content_type = "application/json"};
    resp_t r = http_ex(&S, "POST", "/v1/models/fmnist/train", body, len, &o);
    CHECK(r.status == 401 && is_error(&r, "unauthorized"), "%ld %s", r.status, r.body);
    CHECK(r.uploaded < 1 << 20, "the body was sent although the token was missing: %.0f bytes", r.uploaded);
    fprintf(stderr, "  a 4 MiB body without the token: %ld after %.0f bytes sent\n", r.status, r.uploaded);
    resp_free(&r);
    free(body);
    srv_stop(&S);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_ALL);
    RUN(test_dripping_bodies);
    RUN(test_stalled_big_bodies_memory);
    RUN(test_token_before_the_body);
    curl_global_cleanup();
    return test_summary("attack_slow_bodies");
}
