/*
 * harness.h - starting the real `build/convscope serve` and talking to it with libcurl.
 *
 * srv_start() makes a temporary models folder holding a trained Fashion-MNIST model
 * (models/fmnist.csm, or one trained once into build/tests/ when the repository has
 * none), starts the server on a free loopback port (--listen 127.0.0.1:0; the port is
 * read back from its log), and waits for /readyz. srv_stop() sends SIGTERM, checks the
 * exit status and removes the folder. Run from the project root (make test does).
 *
 * http() runs one request with timeouts and returns status, headers and body.
 */
#ifndef CS_TEST_HARNESS_H
#define CS_TEST_HARNESS_H

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "image.h"
#include "model.h"
#include "model_file.h"
#include "test.h"

/* The binary under test: the Makefile passes its build's (build/check/convscope for
 * make check). */
#ifdef CS_TEST_BIN
#define SRV_BIN CS_TEST_BIN
#else
#define SRV_BIN "build/convscope"
#endif
#define SRV_FIXTURE "build/tests/api-fixture.csm"

typedef struct {
    pid_t pid;
    int port;
    char dir[256];
    char base[64];
    int exit_status; /* after srv_stop: the server's exit code, or -1 */
} srv_t;

typedef struct {
    long status;
    char *body;
    size_t len;
    char *headers;
    size_t hlen;
    double seconds;
    double uploaded; /* request body bytes curl sent */
    CURLcode curl;
} resp_t;

static inline void resp_free(resp_t *r)
{
    free(r->body);
    free(r->headers);
    memset(r, 0, sizeof *r);
}

static inline double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static inline int run_cmd(const char *cmd)
{
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static inline int file_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

/* snprintf for paths built from temporary folders (cut short rather than overflow). */
static inline void sfmt(char *dst, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static inline void sfmt(char *dst, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dst, n, fmt, ap);
    va_end(ap);
}

/* A mkdtemp() template under $TMPDIR (or /tmp): "<tmp>/convscope-<what>-XXXXXX". */
static inline char *tmp_template(char *buf, size_t n, const char *what)
{
    const char *t = getenv("TMPDIR");
    snprintf(buf, n, "%s/convscope-%s-XXXXXX", t && *t ? t : "/tmp", what);
    return buf;
}

/* The model every test serves: the committed one, else one trained once (1 epoch on
 * 2000 images, a few seconds) and kept under build/tests/. */
static inline const char *fixture_model(void)
{
    if (file_exists("models/fmnist.csm")) return "models/fmnist.csm";
    if (file_exists(SRV_FIXTURE)) {
        /* Kept from an earlier run: still readable by this build? */
        char err[200];
        cs_model *m = cs_model_load(SRV_FIXTURE, err, sizeof err);
        cs_model_free(m);
        if (m) return SRV_FIXTURE;
        unlink(SRV_FIXTURE);
    }
    run_cmd("mkdir -p build/tests");
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             SRV_BIN " train --epochs 1 --limit 2000 --seed 1 --out " SRV_FIXTURE ".%d >/dev/null 2>&1 && mv " SRV_FIXTURE
                     ".%d " SRV_FIXTURE,
             (int)getpid(), (int)getpid());
    if (run_cmd(cmd) != 0) {
        fprintf(stderr, "setup: cannot train the fixture model\n");
        exit(99);
    }
    return SRV_FIXTURE;
}

/* Appends k bytes to a NUL-terminated growing buffer; 0 (curl's "stop") when out of memory. */
static inline size_t append_bytes(char **buf, size_t *len, const char *p, size_t k)
{
    char *q = realloc(*buf, *len + k + 1);
    if (!q) return 0;
    *buf = q;
    memcpy(q + *len, p, k);
    *len += k;
    q[*len] = 0;
    return k;
}

static inline size_t on_body(char *p, size_t size, size_t n, void *user)
{
    resp_t *r = user;
    return append_bytes(&r->body, &r->len, p, size * n);
}

static inline size_t on_header(char *p, size_t size, size_t n, void *user)
{
    resp_t *r = user;
    return append_bytes(&r->headers, &r->hlen, p, size * n);
}

/* The value of a response header (of the last response), copied into buf, or NULL. */
static inline const char *resp_header(const resp_t *r, const char *name, char *buf, size_t n)
{
    if (!r->headers) return NULL;
    size_t nl = strlen(name);
    const char *found = NULL;
    for (const char *line = r->headers; line && *line;) {
        if (!strncasecmp(line, name, nl) && line[nl] == ':') found = line + nl + 1;
        line = strchr(line, '\n');
        if (line) line++;
    }
    if (!found) return NULL;
    while (*found == ' ') found++;
    size_t k = strcspn(found, "\r\n");
    if (k >= n) k = n - 1;
    memcpy(buf, found, k);
    buf[k] = 0;
    return buf;
}

typedef struct {
    const char *content_type; /* raw body's Content-Type */
    const char *const *headers; /* extra "Name: value", NULL-terminated */
    const char *const *files;   /* multipart `image` parts from these paths, NULL-terminated */
    long timeout_s;             /* default 30 */
    int chunked;                /* send the raw body chunked */
    int no_expect;              /* no "Expect: 100-continue" */
} req_opts;

static inline resp_t http_ex(const srv_t *s, const char *method, const char *path, const void *body, size_t len,
                      const req_opts *o)
{
    resp_t r = {0};
    req_opts none = {0};
    if (!o) o = &none;
    CURL *c = curl_easy_init();
    char url[2048];
    snprintf(url, sizeof url, "%s%s", s->base, path);
    struct curl_slist *h = NULL;
    curl_mime *mime = NULL;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, o->timeout_s ? o->timeout_s : 30L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 5L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
    if (!strcmp(method, "HEAD")) curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    else curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (o->files) {
        mime = curl_mime_init(c);
        for (int i = 0; o->files[i]; i++) {
            curl_mimepart *part = curl_mime_addpart(mime);
            curl_mime_name(part, "image");
            curl_mime_filedata(part, o->files[i]);
        }
        curl_easy_setopt(c, CURLOPT_MIMEPOST, mime);
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    } else if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        if (!o->chunked) curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
        else {
            curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
            h = curl_slist_append(h, "Transfer-Encoding: chunked");
        }
        char ct[128];
        snprintf(ct, sizeof ct, "Content-Type: %s", o->content_type ? o->content_type : "application/octet-stream");
        h = curl_slist_append(h, ct);
    }
    if (o->no_expect) h = curl_slist_append(h, "Expect:");
    for (int i = 0; o->headers && o->headers[i]; i++) h = curl_slist_append(h, o->headers[i]);
    if (h) curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    double t0 = now_s();
    r.curl = curl_easy_perform(c);
    r.seconds = now_s() - t0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    curl_off_t up = 0;
    curl_easy_getinfo(c, CURLINFO_SIZE_UPLOAD_T, &up);
    r.uploaded = (double)up;
    curl_slist_free_all(h);
    curl_mime_free(mime);
    curl_easy_cleanup(c);
    if (!r.body) r.body = calloc(1, 1);
    return r;
}

static inline resp_t http(const srv_t *s, const char *method, const char *path)
{
    return http_ex(s, method, path, NULL, 0, NULL);
}

/* GET with If-None-Match: etag, as a browser revalidates what it cached. */
static inline resp_t http_if_none_match(const srv_t *s, const char *path, const char *etag)
{
    char hdr[300];
    snprintf(hdr, sizeof hdr, "If-None-Match: %s", etag);
    const char *hs[] = {hdr, NULL};
    req_opts o = {.headers = hs};
    return http_ex(s, "GET", path, NULL, 0, &o);
}

/* POSTs a file as a raw body with the given Content-Type. */
static inline resp_t http_post_file(const srv_t *s, const char *path, const char *file, const char *type)
{
    size_t len = 0;
    char *data = test_read_file(file, &len);
    if (!data) {
        fprintf(stderr, "setup: cannot read %s\n", file);
        exit(99);
    }
    req_opts o = {.content_type = type};
    resp_t r = http_ex(s, "POST", path, data, len, &o);
    free(data);
    return r;
}

/* The body as JSON (decref it), or NULL. */
static inline json_t *resp_json(const resp_t *r)
{
    return json_loadb(r->body, r->len, 0, NULL);
}

/* The body is the error shape with this code. */
static inline int is_error(const resp_t *r, const char *code)
{
    json_t *j = resp_json(r);
    const char *c = json_string_value(json_object_get(json_object_get(j, "error"), "code"));
    const char *m = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
    int ok = c && m && *m && (!code || !strcmp(c, code));
    json_decref(j);
    return ok;
}

/* Decodes a PNG body; 1 when it is a PNG. */
static inline int resp_png(const resp_t *r, cs_image *img)
{
    memset(img, 0, sizeof *img);
    if (r->len < 8 || memcmp(r->body, "\x89PNG\r\n\x1a\n", 8)) return 0;
    char err[200];
    return cs_image_decode(r->body, r->len, 0, img, err, sizeof err) == CS_IMG_OK;
}

/* Number of distinct pixel values: 1 means a blank image. */
static inline int image_levels(const cs_image *img)
{
    int seen[256] = {0}, n = 0;
    size_t total = (size_t)img->w * img->h * img->c;
    for (size_t i = 0; i < total; i++)
        if (!seen[img->px[i]]++) n++;
    return n;
}

/* Files a test wants in the models folder besides fmnist.csm (a shell word list of
 * paths, copied before the server starts), or NULL. */
static const char *srv_extra_models;

/* Starts the server with extra flags (NULL-terminated). Exits 99 when it cannot. */
static inline void srv_start(srv_t *s, const char *const *extra)
{
    memset(s, 0, sizeof *s);
    const char *model = fixture_model();
    tmp_template(s->dir, sizeof s->dir, "api");
    if (!mkdtemp(s->dir)) {
        perror("setup: mkdtemp");
        exit(99);
    }
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "mkdir -p %s/models && cp %s %s/models/fmnist.csm", s->dir, model, s->dir);
    if (run_cmd(cmd) != 0) exit(99);
    if (srv_extra_models) {
        snprintf(cmd, sizeof cmd, "cp %s %s/models/", srv_extra_models, s->dir);
        if (run_cmd(cmd) != 0) exit(99);
    }
    const char *argv[64];
    int n = 0;
    char models[300], log[300], access[300];
    snprintf(models, sizeof models, "%s/models", s->dir);
    snprintf(log, sizeof log, "%s/server.log", s->dir);
    snprintf(access, sizeof access, "%s/access.log", s->dir);
    argv[n++] = SRV_BIN;
    argv[n++] = "serve";
    argv[n++] = "--listen";
    argv[n++] = "127.0.0.1:0";
    argv[n++] = "--models";
    argv[n++] = models;
    argv[n++] = "--access-log";
    argv[n++] = access;
    for (int i = 0; extra && extra[i] && n < 60; i++) argv[n++] = extra[i];
    argv[n] = NULL;
    s->pid = fork();
    if (s->pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 2);
        dup2(fd, 1);
        /* The tests' environment must not configure the server behind their back. */
        unsetenv("CONVSCOPE_TOKEN");
        unsetenv("CONVSCOPE_LISTEN");
        execv(SRV_BIN, (char *const *)argv);
        _exit(127);
    }
    double end = now_s() + 30;
    while (!s->port && now_s() < end) {
        char *text = test_read_file(log, NULL);
        const char *p = text ? strstr(text, "listening on http://127.0.0.1:") : NULL;
        if (p) s->port = atoi(p + strlen("listening on http://127.0.0.1:"));
        free(text);
        int st;
        if (!s->port && waitpid(s->pid, &st, WNOHANG) == s->pid) break;
        if (!s->port) usleep(20000);
    }
    if (!s->port) {
        fprintf(stderr, "setup: the server did not start; its log:\n");
        char *text = test_read_file(log, NULL);
        fprintf(stderr, "%s\n", text ? text : "(none)");
        exit(99);
    }
    snprintf(s->base, sizeof s->base, "http://127.0.0.1:%d", s->port);
    end = now_s() + 120; /* VGG16's weights take a while to load */
    while (now_s() < end) {
        resp_t r = http(s, "GET", "/readyz");
        long st = r.status;
        resp_free(&r);
        if (st == 200) return;
        usleep(50000);
    }
    fprintf(stderr, "setup: /readyz never answered 200\n");
    kill(s->pid, SIGKILL);
    exit(99);
}

/* SIGTERM, then SIGKILL after 20 s; records the exit status. */
static inline void srv_kill(srv_t *s)
{
    kill(s->pid, SIGTERM);
    double end = now_s() + 20;
    int st = 0;
    s->exit_status = -1;
    for (;;) {
        pid_t w = waitpid(s->pid, &st, WNOHANG);
        if (w == s->pid) {
            s->exit_status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
            break;
        }
        if (now_s() > end) {
            kill(s->pid, SIGKILL);
            waitpid(s->pid, &st, 0);
            break;
        }
        usleep(20000);
    }
    s->pid = 0;
}

/* Stops the server (a test that already stopped it itself sets pid to 0) and removes
 * its folder either way, unless CONVSCOPE_KEEP_TEST_DIR is set. */
static inline void srv_stop(srv_t *s)
{
    if (s->pid > 0) srv_kill(s);
    if (s->dir[0] && !getenv("CONVSCOPE_KEEP_TEST_DIR")) {
        char cmd[400];
        snprintf(cmd, sizeof cmd, "rm -rf %s", s->dir);
        run_cmd(cmd);
        s->dir[0] = 0;
    }
}

/* Server log text (malloc'd). */
static inline char *srv_file(const srv_t *s, const char *name)
{
    char p[400];
    snprintf(p, sizeof p, "%s/%s", s->dir, name);
    return test_read_file(p, NULL);
}

/* The value of a /metrics sample (the whole series name, with its labels), or -1. */
static inline double metric_value(const srv_t *s, const char *series)
{
    resp_t r = http(s, "GET", "/metrics");
    double v = -1;
    size_t n = strlen(series);
    for (const char *line = r.body; line && *line;) {
        if (!strncmp(line, series, n) && line[n] == ' ') v = atof(line + n + 1);
        line = strchr(line, '\n');
        if (line) line++;
    }
    resp_free(&r);
    return v;
}

/* Waits until the series has the value `want` (a state, not a duration: the bound is
 * only there so a broken server fails the test instead of hanging it). 1 when it did. */
static inline int wait_metric(const srv_t *s, const char *series, double want, double seconds)
{
    double end = now_s() + seconds;
    for (;;) {
        if (metric_value(s, series) == want) return 1;
        if (now_s() > end) return 0;
        usleep(10000);
    }
}

/* A TCP connection to the server from a chosen loopback address ("127.0.0.2": another
 * client as far as per-address limits go; NULL: any), with a small receive buffer when
 * rcvbuf > 0 (a client that reads slowly). -1 when it cannot connect. */
static inline int raw_connect(const srv_t *s, const char *from, int rcvbuf)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    if (rcvbuf > 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    if (from) {
        struct sockaddr_in me = {.sin_family = AF_INET};
        inet_pton(AF_INET, from, &me.sin_addr);
        if (bind(fd, (struct sockaddr *)&me, sizeof me) != 0) {
            close(fd);
            return -1;
        }
    }
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)s->port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static inline int raw_send(int fd, const void *p, size_t n)
{
    return send(fd, p, n, MSG_NOSIGNAL) == (ssize_t)n ? 0 : -1;
}

#define PHOTO(name) "tests/data/photos/" name

#endif
