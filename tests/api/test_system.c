/*
 * test_system.c - the routes around the models and the process itself: health,
 * readiness, metrics, the contract, static files (no way out of static/), 404, 405
 * with Allow, 429 when too many requests are in flight (and bodies still arriving do
 * not count), the access log (control bytes escaped), a burst past the connection
 * limit, and a clean SIGTERM.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "harness.h"

static srv_t S;

static void test_healthz(void)
{
    resp_t r = http(&S, "GET", "/healthz");
    CHECK(r.status == 200, "status %ld", r.status);
    CHECK(strstr(r.body, "\"ok\""), "body %s", r.body);
    resp_free(&r);
}

static void test_readyz_says_why_per_model(void)
{
    resp_t r = http(&S, "GET", "/readyz");
    CHECK(r.status == 200, "status %ld", r.status);
    json_t *j = resp_json(&r);
    json_t *m = json_object_get(j, "models");
    CHECK(json_is_true(json_object_get(json_object_get(m, "fmnist"), "ready")), "fmnist ready: %s", r.body);
    json_t *vgg = json_object_get(m, "vgg16");
    CHECK(vgg && !json_is_true(json_object_get(vgg, "ready")), "vgg16 not ready without weights");
    const char *why = json_string_value(json_object_get(vgg, "reason"));
    CHECK(why && strstr(why, "vgg16_weights_tf_dim_ordering_tf_kernels.h5"), "reason names the file: %s", why);
    json_decref(j);
    resp_free(&r);
}

static void test_metrics_prometheus(void)
{
    resp_t a = http_ex(&S, "POST", "/v1/models/fmnist/predict?sample=test:1", "", 0, NULL);
    CHECK(a.status == 200, "predict %ld", a.status);
    resp_free(&a);
    /* The request is counted when its connection work completes, just after the reply. */
    resp_t r = {0};
    for (int i = 0; i < 50; i++) {
        resp_free(&r);
        r = http(&S, "GET", "/metrics");
        if (strstr(r.body, "route=\"/v1/models/{model}/predict\",status=\"200\"")) break;
        usleep(20000);
    }
    char ct[128];
    CHECK(r.status == 200, "status %ld", r.status);
    CHECK(resp_header(&r, "Content-Type", ct, sizeof ct) && strstr(ct, "text/plain"), "type %s", ct);
    CHECK(strstr(r.body, "# TYPE convscope_http_requests_total counter"), "counter type");
    CHECK(strstr(r.body, "convscope_http_requests_total{method=\"POST\",route=\"/v1/models/{model}/predict\",status=\"200\"}"),
          "predict counted by template");
    CHECK(strstr(r.body, "convscope_http_request_duration_seconds_bucket{"), "histogram");
    CHECK(strstr(r.body, "convscope_stage_seconds_total{stage=\"forward\"}"), "stages");
    CHECK(strstr(r.body, "convscope_training_jobs{state=\"running\"}"), "jobs");
    CHECK(strstr(r.body, "convscope_model_version{model=\"fmnist\"} "), "versions");
    resp_free(&r);
}

static void test_openapi_served(void)
{
    resp_t r = http(&S, "GET", "/openapi.yaml");
    char ct[128];
    CHECK(r.status == 200, "status %ld", r.status);
    CHECK(strstr(r.body, "openapi: 3"), "an OpenAPI document");
    CHECK(resp_header(&r, "Content-Type", ct, sizeof ct) && strstr(ct, "yaml"), "type %s", ct);
    resp_free(&r);
}

static void test_index_and_static(void)
{
    resp_t r = http(&S, "GET", "/");
    char ct[128];
    CHECK(r.status == 200, "index %ld", r.status);
    CHECK(resp_header(&r, "Content-Type", ct, sizeof ct) && strstr(ct, "text/html"), "type %s", ct);
    resp_free(&r);
    /* A file of our own in a static folder of our own. */
    r = http(&S, "GET", "/static/app.css");
    CHECK(r.status == 200 && strstr(r.body, "body {"), "css %ld", r.status);
    CHECK(resp_header(&r, "Content-Type", ct, sizeof ct) && strstr(ct, "text/css"), "type %s", ct);
    char etag[128];
    CHECK(resp_header(&r, "ETag", etag, sizeof etag) != NULL, "static ETag");
    resp_free(&r);
    r = http_if_none_match(&S, "/static/app.css", etag);
    CHECK(r.status == 304 && r.len == 0, "304 %ld", r.status);
    resp_free(&r);
}

static void test_static_no_traversal(void)
{
    const char *bad[] = {"/static/../Makefile", "/static/%2e%2e/Makefile", "/static/..%2fMakefile",
                         "/static/.hidden", "/static//etc/passwd", "/static/sub/../../Makefile",
                         "/static/missing.js", "/static/escape.txt"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        resp_t r = http(&S, "GET", bad[i]);
        CHECK(r.status == 404 && is_error(&r, NULL), "%s -> %ld %s", bad[i], r.status, r.body);
        CHECK(!strstr(r.body, "root:") && !strstr(r.body, "CFLAGS"), "%s leaked a file", bad[i]);
        resp_free(&r);
    }
}

static void test_unknown_path_404(void)
{
    resp_t r = http(&S, "GET", "/v1/nothing");
    CHECK(r.status == 404 && is_error(&r, "not_found"), "%ld %s", r.status, r.body);
    resp_free(&r);
}

static void test_wrong_method_405_with_allow(void)
{
    resp_t r = http_ex(&S, "PUT", "/v1/models/fmnist", "x", 1, NULL);
    char allow[128];
    CHECK(r.status == 405 && is_error(&r, "method_not_allowed"), "%ld %s", r.status, r.body);
    CHECK(resp_header(&r, "Allow", allow, sizeof allow) && strstr(allow, "GET"), "Allow %s", allow);
    resp_free(&r);
    r = http(&S, "GET", "/v1/models/fmnist/predict");
    CHECK(r.status == 405 && resp_header(&r, "Allow", allow, sizeof allow) && !strcmp(allow, "POST"), "Allow %s",
          allow);
    resp_free(&r);
    r = http(&S, "POST", "/v1/jobs/anything");
    CHECK(r.status == 405 && resp_header(&r, "Allow", allow, sizeof allow) && strstr(allow, "DELETE"), "Allow %s",
          allow);
    resp_free(&r);
}

static void test_head_like_get(void)
{
    resp_t r = http(&S, "HEAD", "/v1/models");
    CHECK(r.status == 200 && r.len == 0, "HEAD %ld len %zu", r.status, r.len);
    resp_free(&r);
}

/* The access log once it holds `text` (a line is written when its request completes,
 * just after the reply), or what it holds after a few seconds. */
static char *access_log_with(const char *text)
{
    double end = now_s() + 10;
    for (;;) {
        char *log = srv_file(&S, "access.log");
        if ((log && strstr(log, text)) || now_s() > end) return log;
        free(log);
        usleep(10000);
    }
}

static void test_access_log_lines(void)
{
    resp_t r = http(&S, "GET", "/healthz?probe=access-log");
    resp_free(&r);
    char *log = access_log_with(" GET /healthz 200 ");
    CHECK(log && strstr(log, " GET /healthz 200 "), "a line with method path status");
    CHECK(log && strstr(log, " GET /v1/nothing 404 "), "errors logged too");
    if (log) {
        /* "<time> GET /healthz 200 <bytes> <ms>ms" */
        char *line = strstr(log, " GET /healthz 200 ");
        unsigned long bytes = 0;
        double ms = -1;
        CHECK(line && sscanf(line, " GET /healthz 200 %lu %lfms", &bytes, &ms) == 2 && bytes > 0 && ms >= 0,
              "bytes and milliseconds");
    }
    free(log);
}

/* A path that decodes to CR LF and ESC cannot forge a line or drive a terminal: the
 * log shows those bytes as %XX. */
static void test_access_log_escapes_control_bytes(void)
{
    resp_t r = http(&S, "GET", "/v1/x%0d%0a2030-01-01T00:00:00.000Z%20GET%20/forged%20200%201%201.00ms%1b[31m");
    CHECK(r.status == 404, "status %ld", r.status);
    resp_free(&r);
    char *log = access_log_with("/v1/x%0D%0A2030");
    CHECK(log && strstr(log, " GET /v1/x%0D%0A2030-01-01T00:00:00.000Z%20GET%20/forged%20200%201%201.00ms%1B[31m 404 "),
          "escaped on one line: %s", log ? log : "(no log)");
    CHECK(log && !strchr(log, '\r') && !strchr(log, '\x1b'), "no CR or ESC in the log");
    CHECK(log && !strstr(log, "\n2030-01-01"), "no forged line");
    free(log);
}

/* Starts a request whose headers are sent and whose body (1000 bytes) is not: an
 * upload in progress. */
static int open_pending_upload(const srv_t *s)
{
    int fd = raw_connect(s, NULL, 0);
    const char *req = "POST /v1/models/fmnist/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                      "Content-Length: 1000\r\n\r\nabc";
    if (fd >= 0 && raw_send(fd, req, strlen(req)) != 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

/* Asks for a file larger than the socket buffers can hold and reads none of it: the
 * reply cannot finish, so the request stays in flight until the socket is closed. */
static int open_unread_download(const srv_t *s)
{
    int fd = raw_connect(s, NULL, 4096);
    const char *req = "GET /static/big.bin HTTP/1.1\r\nHost: x\r\n\r\n";
    if (fd >= 0 && raw_send(fd, req, strlen(req)) != 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

static char g_static_dir[128];

static void test_too_many_in_flight_429(void)
{
    srv_t L;
    const char *flags[] = {"--max-in-flight", "2", "--no-vgg16", "--static", g_static_dir, NULL};
    srv_start(&L, flags);
    int a = open_unread_download(&L), b = open_unread_download(&L);
    CHECK(a >= 0 && b >= 0, "connect");
    CHECK(wait_metric(&L, "convscope_http_requests_in_flight", 2, 20), "two requests in flight: %g",
          metric_value(&L, "convscope_http_requests_in_flight"));
    resp_t r = http_ex(&L, "POST", "/v1/models/fmnist/predict?sample=test:0", "", 0, NULL);
    char ra[16];
    CHECK(r.status == 429 && is_error(&r, "too_many_requests"), "%ld %s", r.status, r.body);
    CHECK(resp_header(&r, "Retry-After", ra, sizeof ra) != NULL, "Retry-After");
    resp_free(&r);
    r = http(&L, "GET", "/healthz");
    CHECK(r.status == 200, "probes still answer: %ld", r.status);
    resp_free(&r);
    close(a);
    close(b);
    CHECK(wait_metric(&L, "convscope_http_requests_in_flight", 0, 20), "none in flight after closing");
    r = http_ex(&L, "POST", "/v1/models/fmnist/predict?sample=test:0", "", 0, NULL);
    CHECK(r.status == 200, "after the burst: %ld", r.status);
    resp_free(&r);
    srv_stop(&L);
}

/* Bodies still arriving are not requests being answered: however many there are, they
 * do not make the service refuse everyone else with 429. */
static void test_uploads_in_progress_not_in_flight(void)
{
    srv_t L;
    const char *flags[] = {"--max-in-flight", "1", "--no-vgg16", NULL};
    srv_start(&L, flags);
    int fds[4];
    for (int i = 0; i < 4; i++) fds[i] = open_pending_upload(&L);
    CHECK(wait_metric(&L, "convscope_http_uploads", 4, 20), "four uploads arriving: %g",
          metric_value(&L, "convscope_http_uploads"));
    resp_t r = http_ex(&L, "POST", "/v1/models/fmnist/predict?sample=test:0", "", 0, NULL);
    CHECK(r.status == 200, "a request beside four slow uploads: %ld %s", r.status, r.body);
    resp_free(&r);
    for (int i = 0; i < 4; i++) close(fds[i]);
    CHECK(wait_metric(&L, "convscope_http_uploads", 0, 20), "the uploads end with their connections");
    srv_stop(&L);
}

/* Many connections at once past the limit; the next client must not wait for them. */
static void test_burst_past_connection_limit(void)
{
    srv_t L;
    const char *flags[] = {"--max-connections", "16", "--timeout", "10", "--no-vgg16", NULL};
    srv_start(&L, flags);
    enum { N = 80 };
    int fds[N];
    const char *req = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    for (int i = 0; i < N; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)L.port)};
        inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
        if (connect(fds[i], (struct sockaddr *)&a, sizeof a) == 0) {
            ssize_t w = write(fds[i], req, strlen(req));
            (void)w;
        }
    }
    usleep(300000);
    for (int i = 0; i < N; i++) close(fds[i]);
    req_opts o = {.timeout_s = 5};
    resp_t r = http_ex(&L, "GET", "/healthz", NULL, 0, &o);
    CHECK(r.status == 200 && r.seconds < 2.0, "next client: %ld after %.2fs", r.status, r.seconds);
    resp_free(&r);
    srv_stop(&L);
}

static void test_sigterm_clean_exit(void)
{
    srv_t L;
    const char *flags[] = {"--no-vgg16", NULL};
    srv_start(&L, flags);
    kill(L.pid, SIGTERM);
    int st = 0;
    double end = now_s() + 15;
    pid_t w = 0;
    while ((w = waitpid(L.pid, &st, WNOHANG)) == 0 && now_s() < end) usleep(20000);
    CHECK(w == L.pid && WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit status %d", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    char *log = srv_file(&L, "server.log");
    CHECK(log && strstr(log, "SIGTERM: shutting down") && strstr(log, "stopped"), "logged the shutdown");
    free(log);
    L.pid = 0;
    srv_stop(&L);
}

static void test_bad_flag_exit_2(void)
{
    int rc = run_cmd(SRV_BIN " serve --threads lots >/dev/null 2>&1");
    CHECK(rc == 2, "exit %d", rc);
    rc = run_cmd(SRV_BIN " serve --help >/dev/null 2>&1");
    CHECK(rc == 0, "help exit %d", rc);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_ALL);
    /* A static folder of our own, so the test does not depend on the front-end. */
    char dir[200];
    tmp_template(dir, sizeof dir, "static");
    if (!mkdtemp(dir)) return 99;
    char cmd[512];
    sfmt(cmd, sizeof cmd,
             "mkdir -p %s/static && printf 'body { margin: 0 }\\n' > %s/static/app.css && printf secret > "
             "%s/escape.txt && printf '<!doctype html>' > %s/static/index.html",
             dir, dir, dir, dir);
    if (run_cmd(cmd) != 0) return 99;
    /* big.bin: larger than a socket's buffers can hold (see open_unread_download). */
    sfmt(g_static_dir, sizeof g_static_dir, "%s/static", dir);
    sfmt(cmd, sizeof cmd, "truncate -s 24M %s/big.bin", g_static_dir);
    if (run_cmd(cmd) != 0) return 99;
    const char *flags[] = {"--static", g_static_dir, NULL};
    srv_start(&S, flags);
    RUN(test_healthz);
    RUN(test_readyz_says_why_per_model);
    RUN(test_metrics_prometheus);
    RUN(test_openapi_served);
    RUN(test_index_and_static);
    RUN(test_static_no_traversal);
    RUN(test_unknown_path_404);
    RUN(test_wrong_method_405_with_allow);
    RUN(test_head_like_get);
    RUN(test_access_log_lines);
    RUN(test_access_log_escapes_control_bytes);
    srv_stop(&S);
    CHECK(S.exit_status == 0, "server exit %d", S.exit_status);
    RUN(test_too_many_in_flight_429);
    RUN(test_uploads_in_progress_not_in_flight);
    RUN(test_burst_past_connection_limit);
    RUN(test_sigterm_clean_exit);
    RUN(test_bad_flag_exit_2);
    sfmt(cmd, sizeof cmd, "rm -rf %s", dir);
    run_cmd(cmd);
    curl_global_cleanup();
    return test_summary("api_system");
}
