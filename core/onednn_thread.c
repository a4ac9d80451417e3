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
#include <string.h>

#include "onednn_common.h"

#define PER_SLOT 512

typedef struct {
    const dnnl_memory_desc_t *key;
    dnnl_memory_t memory;
} held;

/* The table is allocated on the thread's first use; without it (no memory), each slot
 * keeps its last object alone, which still runs every pass, just with more objects
 * made. */
typedef struct {
    int registered; /* for the destructor */
    dnnl_stream_t stream;
    held (*table)[PER_SLOT];
    held last[CS_ONEDNN_SLOTS];
} thread_objects;

static _Thread_local thread_objects mine;
static pthread_key_t key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;

static void objects_free(void *p)
{
    thread_objects *t = p;
    for (int s = 0; s < CS_ONEDNN_SLOTS; s++) {
        for (int i = 0; t->table && i < PER_SLOT; i++)
            if (t->table[s][i].memory) dnnl_memory_destroy(t->table[s][i].memory);
        if (t->last[s].memory) dnnl_memory_destroy(t->last[s].memory);
    }
    free(t->table);
    if (t->stream) dnnl_stream_destroy(t->stream);
    memset(t, 0, sizeof *t);
}

static void make_key(void)
{
    if (pthread_key_create(&key, objects_free) != 0) abort();
}

/* The calling thread's objects, freed when it ends. */
static thread_objects *objects(void)
{
    thread_objects *t = &mine;
    if (!t->registered) {
        pthread_once(&key_once, make_key);
        if (pthread_setspecific(key, t) != 0) return NULL;
        t->registered = 1;
        t->table = calloc(CS_ONEDNN_SLOTS, sizeof *t->table);
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
    held *h = t->table ? &t->table[slot][((uintptr_t)md >> 4) * 0x9E3779B97F4A7C15u >> 55] : &t->last[slot];
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
