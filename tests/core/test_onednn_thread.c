/*
 * test_onednn_thread.c - each thread's oneDNN stream and memory objects
 * (core/onednn_thread.c): kept from one call to the next, pointed at each call's data,
 * never handed out for a layout other than the one asked for (a layout freed and
 * another made at its address), distinct per argument slot and per thread; and a
 * reorder run through them moves the right values.
 */
#include <pthread.h>
#include <string.h>

#include "onednn_common.h"
#include "onednn_conv.h"
#include "test.h"

static void plain_md(dnnl_memory_desc_t *md, int n, int c, int h, int w)
{
    const dnnl_dims_t dims = {n, c, h, w};
    if (dnnl_memory_desc_init_by_tag(md, 4, dims, dnnl_f32, dnnl_nhwc) != dnnl_success) abort();
}

static void *handle_of(dnnl_memory_t m)
{
    void *h = NULL;
    return m && dnnl_memory_get_data_handle(m, &h) == dnnl_success ? h : NULL;
}

static void test_kept_and_pointed(void)
{
    dnnl_stream_t st = cs_onednn_worker_stream();
    CHECK(st && st == cs_onednn_worker_stream(), "one stream per thread, kept");
    dnnl_memory_desc_t md;
    plain_md(&md, 1, 8, 4, 4);
    float a[128], b[128];
    dnnl_memory_t m1 = cs_onednn_memory(0, &md, a, st), m2 = cs_onednn_memory(0, &md, b, st);
    CHECK(m1 && m1 == m2, "the same layout in the same slot: the same object");
    CHECK(handle_of(m2) == b, "pointed at the latest call's data");
    dnnl_memory_t other = cs_onednn_memory(1, &md, a, st);
    CHECK(other && other != m2, "another slot: another object");
    CHECK(handle_of(m2) == b && handle_of(other) == a, "each slot keeps its own data");
}

/* A layout freed and another made at its address must not get the old object. */
static void test_layout_changed_at_same_address(void)
{
    dnnl_stream_t st = cs_onednn_worker_stream();
    dnnl_memory_desc_t md;
    plain_md(&md, 1, 8, 4, 4);
    static float data[2 * 16 * 9 * 9];
    CHECK(cs_onednn_memory(2, &md, data, st) != NULL, "first layout");
    plain_md(&md, 2, 16, 9, 9);
    dnnl_memory_t m = cs_onednn_memory(2, &md, data, st);
    const dnnl_memory_desc_t *got = NULL;
    CHECK(m && dnnl_memory_get_memory_desc(m, &got) == dnnl_success && dnnl_memory_desc_equal(got, &md),
          "the object describes the new layout");
    CHECK(dnnl_memory_desc_get_size(got) == sizeof data, "its size is the new layout's: %zu",
          dnnl_memory_desc_get_size(got));
}

/* NHWC -> NCHW through the kept objects, twice with the layouts swapped between calls
 * at the same addresses: the values land where each call's layouts say. */
static void test_reorder_through_kept_objects(void)
{
    dnnl_stream_t st = cs_onednn_worker_stream();
    enum { N = 1, C = 3, H = 2, W = 5 };
    float nhwc[N * C * H * W], nchw[N * C * H * W], back[N * C * H * W];
    for (int i = 0; i < N * C * H * W; i++) nhwc[i] = (float)i + 0.5f;
    const dnnl_dims_t dims = {N, C, H, W};
    dnnl_memory_desc_t from, to;
    dnnl_memory_desc_init_by_tag(&from, 4, dims, dnnl_f32, dnnl_nhwc);
    dnnl_memory_desc_init_by_tag(&to, 4, dims, dnnl_f32, dnnl_nchw);
    dnnl_primitive_t r = cs_onednn_reorder_new(&from, &to);
    CHECK(r && cs_onednn_reorder_run(r, &from, nhwc, &to, nchw, st) == 0, "reorder to NCHW");
    int bad = 0;
    for (int c = 0; c < C; c++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) bad += nchw[(c * H + y) * W + x] != nhwc[(y * W + x) * C + c];
    CHECK(bad == 0, "%d values misplaced", bad);
    if (r) dnnl_primitive_destroy(r);
    /* The same two descriptors, their layouts swapped. */
    dnnl_memory_desc_init_by_tag(&from, 4, dims, dnnl_f32, dnnl_nchw);
    dnnl_memory_desc_init_by_tag(&to, 4, dims, dnnl_f32, dnnl_nhwc);
    r = cs_onednn_reorder_new(&from, &to);
    CHECK(r && cs_onednn_reorder_run(r, &from, nchw, &to, back, st) == 0, "reorder back to NHWC");
    CHECK(memcmp(back, nhwc, sizeof back) == 0, "the round trip gives the input back");
    if (r) dnnl_primitive_destroy(r);
}

typedef struct {
    const dnnl_memory_desc_t *md;
    dnnl_stream_t stream;
    dnnl_memory_t memory;
} thread_result;

static void *other_thread(void *arg)
{
    thread_result *t = arg;
    static float data[128];
    t->stream = cs_onednn_worker_stream();
    t->memory = cs_onednn_memory(0, t->md, data, t->stream);
    return NULL;
}

/* Another thread gets its own stream and objects (and frees them when it ends). */
static void test_per_thread(void)
{
    dnnl_memory_desc_t md;
    plain_md(&md, 1, 8, 4, 4);
    float data[128];
    dnnl_stream_t st = cs_onednn_worker_stream();
    dnnl_memory_t mine = cs_onednn_memory(0, &md, data, st);
    thread_result t = {.md = &md};
    pthread_t th;
    CHECK(pthread_create(&th, NULL, other_thread, &t) == 0 && pthread_join(th, NULL) == 0, "thread ran");
    CHECK(t.stream && t.stream != st, "its own stream");
    CHECK(t.memory && t.memory != mine, "its own memory object");
    CHECK(handle_of(mine) == data, "this thread's object untouched");
}

int main(void)
{
    if (!cs_onednn_usable()) {
        printf("oneDNN has no vector kernels here: nothing to test\n");
        return test_summary("onednn_thread");
    }
    RUN(test_kept_and_pointed);
    RUN(test_layout_changed_at_same_address);
    RUN(test_reorder_through_kept_objects);
    RUN(test_per_thread);
    return test_summary("onednn_thread");
}
