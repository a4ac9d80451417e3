/*
 * fuzz_query.c - libFuzzer entry for query arguments, through the whole service: the
 * first byte picks a route, the rest is its query string (bytes a URL cannot carry
 * are %-escaped, so every byte value reaches the server decoded). Every request must
 * get an answer other than 500: a bad value is 400, whatever the route.
 * Run from the repository root (it serves models/fmnist.csm). Built by `make fuzz`.
 */
#include <stddef.h>
#include <stdint.h>

#include "inproc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct {
    const char *method, *path;
} routes[] = {
    {"GET", "/v1/models/fmnist/layers/conv2d_1/filters.png"},
    {"POST", "/v1/models/fmnist/layers/leaky_re_lu_1/feature-maps.png"},
    {"POST", "/v1/models/fmnist/gradcam"},
    {"POST", "/v1/models/fmnist/predict"},
    {"GET", "/v1/datasets/fashion-mnist"},
    {"GET", "/v1/datasets/fashion-mnist/test/3.png"},
    {"GET", "/v1/models/fmnist"},
    {"GET", "/v1/jobs"},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    inproc_start();
    if (size < 1 || size > 1500) return 0;
    int r = data[0] % (int)(sizeof routes / sizeof routes[0]);
    char head[6000];
    int n = snprintf(head, sizeof head, "%s %s?", routes[r].method, routes[r].path);
    for (size_t i = 1; i < size; i++) {
        uint8_t c = data[i];
        if (c > ' ' && c < 0x7f && c != '#' && c != '%')
            head[n++] = (char)c;
        else
            n += snprintf(head + n, sizeof head - (size_t)n, "%%%02X", c);
    }
    snprintf(head + n, sizeof head - (size_t)n, " HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
    char *answer = NULL;
    int st = inproc_request(head, NULL, 0, &answer, NULL);
    if (st == 0) { /* no answer: once more, so a busy loopback is not taken for a hang */
        free(answer);
        st = inproc_request(head, NULL, 0, &answer, NULL);
    }
    /* 503 only when the data set is not installed */
    if (st == 0 || (st >= 500 && !(st == 503 && answer && strstr(answer, "data_unavailable")))) {
        fprintf(stderr, "fuzz_query: status %d (%s) for %.200s: %.300s\n", st, st ? "" : inproc_why, head,
                answer ? answer : "");
        abort();
    }
    free(answer);
    return 0;
}
