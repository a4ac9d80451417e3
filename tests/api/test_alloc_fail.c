/*
 * test_alloc_fail.c - a failed allocation while answering a request costs that request
 * only: it is answered 503 out_of_memory (or, when the code could do without that
 * memory, with the very answer it gives normally), and the next request is served as
 * if nothing happened.
 *
 * The service runs in this process, linked with wrappers of malloc, calloc, realloc,
 * strdup and strndup (-Wl,--wrap, see the Makefile); jansson allocates through the
 * API's own function, which calls the wrapped malloc. While a thread is inside cs_api_dispatch (also wrapped), the
 * injector counts its allocations and fails the Nth. Each route is swept: N = 1, 2, ...
 * until a request makes fewer than N allocations, so every allocation a request makes
 * fails once.
 */
#include <stdatomic.h>
#include <jansson.h>

#include "harness.h"
#include "inproc.h"

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
char *__real_strndup(const char *s, size_t n);
void __real_cs_api_dispatch(const cs_route *route, cs_req *req, cs_reply *rep);

static atomic_long g_countdown; /* > 0: the allocation that brings it to 0 fails */
static atomic_int g_fired;
static _Thread_local int t_in_request;

static int fail_now(void)
{
    if (!t_in_request || atomic_load(&g_countdown) <= 0) return 0;
    if (atomic_fetch_sub(&g_countdown, 1) != 1) return 0;
    atomic_store(&g_fired, 1);
    return 1;
}

void *__wrap_malloc(size_t n);
void *__wrap_malloc(size_t n)
{
    return fail_now() ? NULL : __real_malloc(n);
}
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_calloc(size_t n, size_t size)
{
    return fail_now() ? NULL : __real_calloc(n, size);
}
void *__wrap_realloc(void *p, size_t n);
void *__wrap_realloc(void *p, size_t n)
{
    return fail_now() ? NULL : __real_realloc(p, n);
}
char *__wrap_strdup(const char *s);
char *__wrap_strdup(const char *s)
{
    return fail_now() ? NULL : __real_strdup(s);
}
char *__wrap_strndup(const char *s, size_t n);
char *__wrap_strndup(const char *s, size_t n)
{
    return fail_now() ? NULL : __real_strndup(s, n);
}
void __wrap_cs_api_dispatch(const cs_route *route, cs_req *req, cs_reply *rep);
void __wrap_cs_api_dispatch(const cs_route *route, cs_req *req, cs_reply *rep)
{
    t_in_request = 1;
    __real_cs_api_dispatch(route, req, rep);
    t_in_request = 0;
}


typedef struct {
    const char *name, *method, *path;
    const char *file; /* raw PNG body, or NULL */
} route_case;

static char *g_png;
static size_t g_png_len;

static int send_case(const route_case *c, char **body, size_t *len)
{
    char head[512];
    size_t n = c->file ? g_png_len : 0;
    snprintf(head, sizeof head, "%s %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: %zu\r\n%s\r\n",
             c->method, c->path, n, c->file ? "Content-Type: image/png\r\n" : "");
    return inproc_request(head, c->file ? g_png : NULL, n, body, len);
}

/* The body is the error shape with code out_of_memory. */
static int is_nomem(const char *body, size_t len)
{
    json_t *j = body ? json_loadb(body, len, 0, NULL) : NULL;
    const char *code = json_string_value(json_object_get(json_object_get(j, "error"), "code"));
    int ok = code && !strcmp(code, "out_of_memory");
    json_decref(j);
    return ok;
}

static void sweep(const route_case *c)
{
    char *ref = NULL;
    size_t ref_len = 0;
    atomic_store(&g_countdown, 0);
    int ref_status = send_case(c, &ref, &ref_len);
    CHECK(ref_status == 200 && ref, "%s: reference answer %d", c->name, ref_status);
    if (ref_status != 200 || !ref) return;
    int points = 0, wrong = 0;
    for (long n = 1; n <= 20000; n++) {
        atomic_store(&g_fired, 0);
        atomic_store(&g_countdown, n);
        char *body = NULL;
        size_t len = 0;
        int st = send_case(c, &body, &len);
        atomic_store(&g_countdown, 0);
        if (!atomic_load(&g_fired)) { /* the request made fewer than n allocations */
            CHECK(st == 200 && len == ref_len && !memcmp(body, ref, len), "%s: unchanged answer after the sweep",
                  c->name);
            free(body);
            break;
        }
        points++;
        int same = st == 200 && body && len == ref_len && !memcmp(body, ref, len);
        int nomem = st == 503 && is_nomem(body, len);
        /* With no memory left even for the error document, the status alone says it. */
        if (st == 503 && !nomem && len == 0) nomem = 1;
        if (!same && !nomem && wrong++ < 5)
            CHECK(0, "%s: allocation %ld failed: status %d, %.160s", c->name, n, st, body ? body : "(no body)");
        free(body);
        /* The service goes on: the next request gets the normal answer. */
        body = NULL;
        st = send_case(c, &body, &len);
        if (!(st == 200 && len == ref_len && !memcmp(body, ref, len)) && wrong++ < 5)
            CHECK(0, "%s: after allocation %ld failed, the next answer is %d", c->name, n, st);
        free(body);
    }
    CHECK(points > 0, "%s: no allocation was made in the request", c->name);
    fprintf(stderr, "    %s: %d allocations failed one at a time\n", c->name, points);
    free(ref);
}

static void test_every_allocation_fails_once(void)
{
    static const route_case cases[] = {
        {"predict (PNG upload)", "POST", "/v1/models/fmnist/predict", PHOTO("chelsea.png")},
        {"predict (sample)", "POST", "/v1/models/fmnist/predict?sample=test:18", NULL},
        {"Grad-CAM overlay", "POST", "/v1/models/fmnist/gradcam", PHOTO("chelsea.png")},
        {"Grad-CAM JSON", "POST", "/v1/models/fmnist/gradcam?sample=test:18&format=json", NULL},
        {"feature maps", "POST", "/v1/models/fmnist/layers/leaky_re_lu_1/feature-maps.png?sample=test:4", NULL},
        {"filters", "GET", "/v1/models/fmnist/layers/conv2d_1/filters.png", NULL},
        {"model summary", "GET", "/v1/models/fmnist", NULL},
        {"models", "GET", "/v1/models", NULL},
        {"dataset image", "GET", "/v1/datasets/fashion-mnist/test/3.png?scale=2", NULL},
        {"dataset labels", "GET", "/v1/datasets/fashion-mnist?split=test&limit=5", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) sweep(&cases[i]);
}

int main(void)
{
    g_png = test_read_file(PHOTO("chelsea.png"), &g_png_len);
    if (!g_png) return 99;
    inproc_start();
    RUN(test_every_allocation_fails_once);
    free(g_png);
    return test_summary("api_alloc_fail");
}
