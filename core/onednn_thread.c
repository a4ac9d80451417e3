/*
 * onednn_thread.c - each thread's oneDNN stream and memory objects, kept from one pass
 * to the next (onednn_common.h).
 *
 * A primitive reads and writes its tensors through memory objects. Made and destroyed
 * around every execution, they were hundreds of small allocations per forward pass of
 * a net like MobileNetV2: enough that the heap's top, trimmed back to the system after
 * each pass, had to be faulted in again by the next. Each thread keeps its objects
 * instead and points them at the pass's tensors.
 *
 * An object is found by the address of the layout it was made for, in the table of
 * its argument slot: the arguments of one execution take distinct slots, so looking one
 * up never evicts another still in use. A layout may be freed and another made at its
 * address, so a hit also compares the layouts.
 */
#include <omp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#include "onednn_common.h"

#define PER_SLOT 512

typedef struct {
    const dnnl_memory_desc_t *key;
    dnnl_memory_t memory;
} held;

typedef struct {
    dnnl_stream_t stream;
    held at[CS_ONEDNN_SLOTS][PER_SLOT];
} thread_objects;

static pthread_key_t key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;

static void objects_free(void *p)
{
    thread_objects *t = p;
    for (int s = 0; s < CS_ONEDNN_SLOTS; s++)
        for (int i = 0; i < PER_SLOT; i++)
            if (t->at[s][i].memory) dnnl_memory_destroy(t->at[s][i].memory);
    if (t->stream) dnnl_stream_destroy(t->stream);
    free(t);
}

static void make_key(void)
{
    if (pthread_key_create(&key, objects_free) != 0) abort();
}

static thread_objects *objects(void)
{
    pthread_once(&key_once, make_key);
    thread_objects *t = pthread_getspecific(key);
    if (t) return t;
    if (!(t = calloc(1, sizeof *t))) return NULL;
    if (pthread_setspecific(key, t) != 0) {
        free(t);
        return NULL;
    }
    return t;
}

dnnl_stream_t cs_onednn_worker_stream(void)
{
    omp_set_num_threads(1);
    thread_objects *t = objects();
    if (!t) return NULL;
    if (!t->stream && dnnl_stream_create(&t->stream, cs_onednn_engine(), dnnl_stream_default_flags) != dnnl_success)
        t->stream = NULL;
    return t->stream;
}

dnnl_memory_t cs_onednn_memory(int slot, const dnnl_memory_desc_t *md, const void *data, dnnl_stream_t st)
{
    thread_objects *t = objects();
    if (!t || slot < 0 || slot >= CS_ONEDNN_SLOTS) return NULL;
    held *h = &t->at[slot][((uintptr_t)md >> 4) * 0x9E3779B97F4A7C15u >> 55];
    if (h->memory) {
        const dnnl_memory_desc_t *had = NULL;
        if (h->key != md || dnnl_memory_get_memory_desc(h->memory, &had) != dnnl_success ||
            !dnnl_memory_desc_equal(had, md)) {
            dnnl_memory_destroy(h->memory);
            h->memory = NULL;
        }
    }
    if (!h->memory) {
        if (dnnl_memory_create(&h->memory, md, cs_onednn_engine(), DNNL_MEMORY_NONE) != dnnl_success) {
            h->memory = NULL;
            return NULL;
        }
        h->key = md;
    }
    return dnnl_memory_set_data_handle_v2(h->memory, (void *)data, st) == dnnl_success ? h->memory : NULL;
}
