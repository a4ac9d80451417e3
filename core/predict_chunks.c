/*
 * predict_chunks.c - a prediction over a batch as chunks of images (predict_chunks.h).
 */
#include "predict_chunks.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "fast_plan.h"
#include "parallel.h"

/* A chunk's largest step should stay within a core's L2 cache (1-2 MB on the CPUs
 * this runs on); the notebook network's chunks come to 6 images (4 to 32 ran within
 * 3 % of each other on it, bench/onnx_models). */
#define STEP_BYTES (1024 * 1024)
/* Fewer images than this per chunk leave too little work per call into a node. */
#define MIN_CHUNK 4
#define MAX_CHUNK 32

/* Floats one image's largest step touches: a node's inputs and its output. */
static size_t step_floats(const cs_model *m)
{
    size_t most = 0;
    for (int i = 0; i < m->n_layers; i++) {
        const cs_layer *l = &m->layers[i];
        size_t f = cs_shape_size(l->out);
        for (int k = 0; k < l->n_inputs; k++)
            f += l->inputs[k] >= 0 ? cs_shape_size(m->layers[l->inputs[k]].out) : cs_shape_size(m->input);
        if (f > most) most = f;
    }
    return most;
}

int cs_predict_chunk_size(const cs_model *m)
{
    if (m->n_extra_inputs) return 0;
    const size_t step = step_floats(m) * sizeof(float);
    const size_t chunk = step ? STEP_BYTES / step : MAX_CHUNK;
    if (chunk < MIN_CHUNK) return 0;
    return chunk > MAX_CHUNK ? MAX_CHUNK : (int)chunk;
}

void cs_predict_chunks_free(cs_exec *e)
{
    for (int w = 0; w < CS_MAX_WORKERS; w++) {
        cs_exec_free(e->chunk_exec[w]);
        e->chunk_exec[w] = NULL;
    }
    free(e->chunk_profile);
    e->chunk_profile = NULL;
}

typedef struct {
    cs_exec *e;
    const float *input;
    int n, chunk, chunks;
    atomic_int next; /* the next chunk to take */
    atomic_int failed;
} job;

static void run_chunks(void *ctx, long begin, long end, int worker)
{
    job *j = ctx;
    cs_exec *e = j->e, *sub = e->chunk_exec[worker];
    const cs_model *m = e->model;
    const int top = m->n_layers - 1;
    const size_t in_image = cs_shape_size(m->input), out_image = cs_shape_size(m->layers[top].out);
    /* The chunk's nodes run on this thread alone: the other workers run chunks too. */
    const int was = cs_parallel_limit_this_thread(1);
    (void)begin, (void)end;
    for (int t; !atomic_load(&j->failed) && (t = atomic_fetch_add(&j->next, 1)) < j->chunks;) {
        const int i0 = t * j->chunk, count = j->n - i0 < j->chunk ? j->n - i0 : j->chunk;
        if (cs_exec_predict(sub, j->input + (size_t)i0 * in_image, count) != 0) {
            atomic_store(&j->failed, 1);
            break;
        }
        const size_t at = (size_t)i0 * out_image, floats = (size_t)count * out_image;
        memcpy(e->act[top] + at, sub->act[top], floats * sizeof(float));
        /* The logits: the exec's own, or the softmax node's input (cs_exec_logits). */
        float *logits = (float *)cs_exec_logits(e);
        const float *from = cs_exec_logits(sub);
        if (logits && from) memcpy(logits + at, from, floats * sizeof(float));
    }
    cs_parallel_limit_this_thread(was);
}

int cs_predict_chunks(cs_exec *e, const float *input, int n)
{
    const cs_model *m = e->model;
    /* A fast path like the others of inference (fast_plan.h): the plain mode runs the
     * batch as training's kernels see it. */
    if (e->in_chunk || e->chunks_off || e->param_grad || m->n_extra_inputs || cs_fast_get_mode() == CS_FAST_OFF)
        return 1;
    const int size = cs_predict_chunk_size(m);
    int parts = cs_parallel_parts();
    if (parts > CS_MAX_WORKERS) parts = CS_MAX_WORKERS;
    if (parts > n) parts = n;
    if (!size || (parts <= 1 && n <= size)) return 1;
    /* Chunks of equal size, at least one per worker. Each worker takes the next chunk
     * when done with one, so a core that other work slows down takes fewer. */
    const int rounds = (n + parts * size - 1) / (parts * size);
    const int chunk = (n + parts * rounds - 1) / (parts * rounds);
    for (int w = 0; w < parts; w++) {
        if (e->chunk_exec[w]) continue;
        if (!(e->chunk_exec[w] = cs_exec_new(m, size))) return -1;
        e->chunk_exec[w]->in_chunk = 1;
    }
    const int L = m->n_layers;
    if (e->profile) {
        if (!e->chunk_profile && !(e->chunk_profile = calloc((size_t)2 * L * CS_MAX_WORKERS, sizeof(double))))
            return -1;
        for (int w = 0; w < parts; w++) {
            e->chunk_exec[w]->profile = e->chunk_profile + (size_t)2 * L * w;
            memset(e->chunk_exec[w]->profile, 0, (size_t)2 * L * sizeof(double));
        }
    }
    job j = {.e = e, .input = input, .n = n, .chunk = chunk, .chunks = (n + chunk - 1) / chunk};
    cs_parallel_run(parts, 1, parts, run_chunks, &j);
    if (e->profile) /* each node's time as the workers' mean: they ran side by side */
        for (int w = 0; w < parts; w++) {
            for (int i = 0; i < 2 * L; i++) e->profile[i] += e->chunk_exec[w]->profile[i] / parts;
            e->chunk_exec[w]->profile = NULL;
        }
    if (atomic_load(&j.failed)) return -1;
    memcpy(e->chained, e->chunk_exec[0]->chained, (size_t)L); /* the chunks' nodes ran as the first's did */
    e->batch = n;
    e->training = 0;
    e->partial = 1;
    e->input = input;
    e->top_is_dz = 0;
    return 0;
}
