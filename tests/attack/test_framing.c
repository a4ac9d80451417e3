/*
 * test_framing.c - request heads that two HTTP parsers may read differently (the
 * stuff of request smuggling through a proxy), and a flood of them. libmicrohttpd
 * 0.9.75 took them all: a second, different Content-Length (and served the request
 * hidden behind the first one's body), Content-Length with Transfer-Encoding on a
 * connection it kept open, a space before the colon, no Host or two, a bare CR or a
 * NUL inside a header.
 *
 * Each must now get 400 and its connection closed, with nothing after it on the
 * connection answered; well-formed heads (HTTP/1.0 without Host, a repeated equal
 * Content-Length, pipelined requests) still work. Meanwhile a flood of bad heads from
 * another address leaves the normal client's latency and the server's memory alone.
 */
#include "attack.h"

#define MEMORY_BOUND_KIB (16 << 10)

typedef struct {
    char data[8192];
    size_t len;
    int eof; /* the server closed the connection */
} exchange_t;

/* Sends raw bytes and reads until the server closes or has been quiet for `quiet` s. */
static void exchange(const srv_t *s, const char *from, const void *raw, size_t len, double quiet, exchange_t *x)
{
    memset(x, 0, sizeof *x);
    int fd = raw_connect(s, from, 0);
    if (fd < 0 || raw_send(fd, raw, len) != 0) {
        x->eof = 1;
        if (fd >= 0) close(fd);
        return;
    }
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, (int)(quiet * 1000)) <= 0) break;
        ssize_t k = recv(fd, x->data + x->len, sizeof x->data - 1 - x->len, 0);
        if (k <= 0) {
            x->eof = 1;
            break;
        }
        x->len += (size_t)k;
        if (x->len == sizeof x->data - 1) break;
    }
    x->data[x->len] = 0;
    close(fd);
}

/* Status lines in what the server sent. */
static int responses(const exchange_t *x)
{
    int n = 0;
    for (const char *p = x->data; (p = strstr(p, "HTTP/1.1 ")); p++) n += p == x->data || p[-1] == '\n';
    return n;
}

#define RAW(s) s, sizeof s - 1

static const struct {
    const char *what;
    const char *raw;
    size_t len;
} bad_heads[] = {
    {"two different Content-Lengths, a request hidden behind",
     RAW("GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 37\r\n\r\n"
         "GET /v1/smuggled HTTP/1.1\r\nHost: x\r\n\r\n")},
    {"Content-Length and Transfer-Encoding",
     RAW("POST /v1/models/fmnist/predict?sample=test:0 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
         "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n")},
    {"Transfer-Encoding other than chunked",
     RAW("POST /v1/models/fmnist/predict?sample=test:0 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
         "0\r\n\r\n")},
    {"a space before the colon", RAW("GET /healthz HTTP/1.1\r\nHost : x\r\n\r\n")},
    {"a space before another header's colon", RAW("GET /healthz HTTP/1.1\r\nHost: x\r\nAccept : */*\r\n\r\n")},
    {"no Host", RAW("GET /healthz HTTP/1.1\r\nAccept: */*\r\n\r\n")},
    {"two Hosts", RAW("GET /healthz HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n")},
    {"a bare CR in a value", RAW("GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\rX-B: b\r\n\r\n")},
    {"a NUL in a value", RAW("GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n")},
    {"a NUL in the target", RAW("GET /healthz\0/x HTTP/1.1\r\nHost: x\r\n\r\n")},
    {"lines ended by a bare LF", RAW("GET /healthz HTTP/1.1\nHost: x\n\n")},
    {"a folded header line", RAW("GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n")},
    {"an ESC in the target", RAW("GET /v1/x\x1b[31m HTTP/1.1\r\nHost: x\r\n\r\n")},
    {"two spaces before the target", RAW("GET  /healthz HTTP/1.1\r\nHost: x\r\n\r\n")},
};
#define N_BAD (int)(sizeof bad_heads / sizeof bad_heads[0])

static srv_t S;

static void test_malformed_heads_refused_and_closed(void)
{
    for (int i = 0; i < N_BAD; i++) {
        exchange_t x;
        exchange(&S, NULL, bad_heads[i].raw, bad_heads[i].len, 2.0, &x);
        CHECK(!strncmp(x.data, "HTTP/1.1 400 ", 13), "%s: %.40s", bad_heads[i].what, x.data);
        CHECK(x.eof, "%s: the connection stayed open", bad_heads[i].what);
        CHECK(responses(&x) == 1, "%s: %d responses", bad_heads[i].what, responses(&x));
    }
    /* The request hidden behind the first Content-Length was never served: once the
     * line of a later request is in the access log, its line would be too. */
    resp_t r = http(&S, "GET", "/v1/after-framing");
    resp_free(&r);
    double end = now_s() + 10;
    char *log = NULL;
    do {
        free(log);
        log = srv_file(&S, "access.log");
        if (log && strstr(log, "/v1/after-framing 404")) break;
        usleep(10000);
    } while (now_s() < end);
    CHECK(log && strstr(log, "/v1/after-framing 404"), "the later request is logged");
    CHECK(log && !strstr(log, "/v1/smuggled"), "the hidden request was served");
    free(log);
    CHECK(metric_value(&S, "convscope_http_shed_total{reason=\"framing\"}") >= N_BAD - 1, "counted: %g",
          metric_value(&S, "convscope_http_shed_total{reason=\"framing\"}"));
}

static void test_well_formed_heads_still_work(void)
{
    static const struct {
        const char *what, *raw;
        size_t len;
        int answers;
    } good[] = {
        {"HTTP/1.0 without Host", RAW("GET /healthz HTTP/1.0\r\n\r\n"), 1},
        {"the same Content-Length twice",
         RAW("POST /v1/models/fmnist/predict?sample=test:0 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
             "Content-Length: 0\r\nConnection: close\r\n\r\n"), 1},
        {"two pipelined requests, tabs and no space after colons",
         RAW("GET /healthz HTTP/1.1\r\nHost:x\r\nX-A:\ta\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
         2},
        {"a chunked body",
         RAW("POST /v1/models/fmnist/predict?sample=test:0 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
             "Connection: close\r\n\r\n0\r\n\r\n"), 1},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        exchange_t x;
        exchange(&S, NULL, good[i].raw, good[i].len, 5.0, &x);
        CHECK(responses(&x) == good[i].answers && !strncmp(x.data, "HTTP/1.1 200 ", 13) && !strstr(x.data, " 400 "),
              "%s: %d answers: %.60s", good[i].what, responses(&x), x.data);
    }
}

static void test_flood_of_malformed_heads(void)
{
    srv_t F;
    const char *flags[] = {"--no-vgg16", NULL};
    attack_start(&F, flags, NULL);
    long rss0 = rss_kib(F.pid);
    CHECK(rss0 > 0, "the server's memory cannot be read");
    double base = normal_baseline(&F, "/v1/models/fmnist/predict?sample=test:18", NULL, 0, NULL);
    static normal_client nc;
    normal_start(&nc, &F, "/v1/models/fmnist/predict?sample=test:18", NULL, 0, NULL, 0);
    int sent = 0, refused = 0;
    long rss_max = rss0;
    double end = now_s() + 4;
    while (now_s() < end && sent < 5000) {
        exchange_t x;
        const char *raw = bad_heads[sent % N_BAD].raw;
        exchange(&F, "127.0.0.2", raw, bad_heads[sent % N_BAD].len, 2.0, &x);
        sent++;
        refused += !strncmp(x.data, "HTTP/1.1 400 ", 13) && x.eof;
        if (sent % 50 == 0) {
            long rss = rss_kib(F.pid);
            if (rss > rss_max) rss_max = rss;
        }
    }
    normal_stop(&nc, "a flood of malformed heads");
    fprintf(stderr, "  attacker: %d malformed heads, %d refused with 400 and closed; server memory +%ld KiB\n", sent,
            refused, rss_max - rss0);
    CHECK_NORMAL(&nc, normal_bound(base, 0));
    CHECK(refused == sent, "%d of %d refused", refused, sent);
    CHECK(rss_max - rss0 < MEMORY_BOUND_KIB, "memory grew by %ld KiB", rss_max - rss0);
    srv_stop(&F);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_ALL);
    const char *flags[] = {"--no-vgg16", NULL};
    attack_start(&S, flags, NULL);
    RUN(test_malformed_heads_refused_and_closed);
    RUN(test_well_formed_heads_still_work);
    srv_stop(&S);
    RUN(test_flood_of_malformed_heads);
    curl_global_cleanup();
    return test_summary("attack_framing");
}
