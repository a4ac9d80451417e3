/*
 * inproc.h - the whole service inside the test's (or fuzzer's) own process, for tests
 * that must see into it (link-time wrappers, libFuzzer's coverage): the default
 * settings, as `convscope serve` makes them, on a free loopback port, the models
 * folder of the repository (run from its root), no VGG16.
 *
 * inproc_request() sends one request on a fresh connection and returns the status
 * (0 when no answer came), with the body in *body (malloc'd, NUL-terminated) when
 * body is not NULL.
 */
#ifndef CS_TEST_INPROC_H
#define CS_TEST_INPROC_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "config.h"
#include "daemon.h"
#include "log.h"
#include "metrics.h"
#include "registry.h"

static int inproc_port;
/* Why the last inproc_request got no answer, for the caller's report. */
static char inproc_why[160];

static void inproc_start(void)
{
    if (inproc_port) return;
    char *argv[] = {"serve", "--listen", "127.0.0.1:0", "--models", "models", "--no-vgg16", "--access-log", "off",
                    "--threads", "2", NULL};
    static cs_config cfg; /* cs_api keeps pointers into it */
    unsetenv("CONVSCOPE_TOKEN");
    if (cs_config_load(&cfg, 10, argv) != 0) abort();
    cs_log_open(cfg.access_log);
    cs_api.token = cfg.token;
    cs_api.max_upload = (size_t)cfg.max_upload;
    cs_api.max_pixels = cfg.max_pixels;
    cs_api.max_request_pixels = cfg.max_request_pixels;
    cs_api.decode_seconds = (double)cfg.decode_seconds;
    cs_api.static_dir = cfg.static_dir;
    cs_api.openapi_path = cfg.openapi;
    cs_api.data_dir = cfg.data;
    cs_api.max_jobs_kept = (int)cfg.max_jobs;
    cs_api.request_threads = 1;
    cs_api.metrics_text = cs_metrics_text;
    cs_api.http_threads = (int)cfg.threads;
    cs_registry_config models = {cfg.models, cfg.vgg16_weights, cfg.class_index, 0, (int)cfg.workers,
                                 (int)cfg.keep_versions, 0 /* fp32 */};
    char err[600];
    if (cs_api_start(&models, err, sizeof err) != 0) {
        fprintf(stderr, "cannot start the API (run from the repository root): %s\n", err);
        abort();
    }
    cs_daemon *d = cs_daemon_start(&cfg, err, sizeof err);
    if (!d) {
        fprintf(stderr, "%s\n", err);
        abort();
    }
    inproc_port = cs_daemon_port(d);
}

static double inproc_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int inproc_request(const char *head, const void *data, size_t len, char **body, size_t *body_len)
{
    if (body) *body = NULL;
    if (body_len) *body_len = 0;
    inproc_why[0] = 0;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        snprintf(inproc_why, sizeof inproc_why, "socket: %s", strerror(errno));
        return 0;
    }
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)inproc_port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {30, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int status = 0;
    char *resp = NULL;
    size_t got = 0, cap = 0;
    double t0 = inproc_now();
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0)
        snprintf(inproc_why, sizeof inproc_why, "connect: %s", strerror(errno));
    else {
        size_t hl = strlen(head), off = 0;
        while (off < hl + len) {
            const char *p = off < hl ? head + off : (const char *)data + (off - hl);
            size_t n = off < hl ? hl - off : len - (off - hl);
            ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
            if (w <= 0) break; /* the server may answer (413) and close before reading all */
            off += (size_t)w;
        }
        /* No shutdown(SHUT_WR): a half-closed connection reads as a client that left, and
         * its request is dropped; "Connection: close" ends the answer instead. */
        for (;;) {
            if (got + 4096 + 1 > cap) {
                size_t nc = cap ? cap * 2 : 65536;
                char *grown = realloc(resp, nc);
                if (!grown) break;
                resp = grown;
                cap = nc;
            }
            ssize_t r = recv(fd, resp + got, cap - got - 1, 0);
            if (r < 0)
                snprintf(inproc_why, sizeof inproc_why, "recv after %zu bytes, %.1f s: %s", got,
                         inproc_now() - t0, strerror(errno));
            else if (r == 0)
                snprintf(inproc_why, sizeof inproc_why, "closed after %zu bytes, %.1f s", got, inproc_now() - t0);
            if (r <= 0) break;
            got += (size_t)r;
        }
        if (resp) resp[got] = 0;
        if (resp && got >= 12 && !strncmp(resp, "HTTP/1.", 7)) status = atoi(resp + 9);
    }
    close(fd);
    if (body && resp) {
        const char *sep = strstr(resp, "\r\n\r\n");
        size_t start = sep ? (size_t)(sep + 4 - resp) : got;
        *body = malloc(got - start + 1);
        if (*body) {
            memcpy(*body, resp + start, got - start);
            (*body)[got - start] = 0;
            if (body_len) *body_len = got - start;
        }
    }
    free(resp);
    return status;
}

#endif
