/*
 * parallel.c - a small fork-join pool: workers sleep on a condition variable,
 * are woken for a job, each runs its range, and the caller waits for all of them.
 */
#include "parallel.h"

#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>
#if defined(__SSE__)
#include <pmmintrin.h>
#include <xmmintrin.h>
#endif

static pthread_mutex_t owner = PTHREAD_MUTEX_INITIALIZER; /* one job at a time */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER, done = PTHREAD_COND_INITIALIZER;
static int n_threads = 0, n_started = 1; /* the caller is worker 0 */
static pthread_once_t default_once = PTHREAD_ONCE_INIT;
static _Thread_local int thread_limit; /* 0: none */
static long generation;
static int pending;
static struct {
    cs_range_fn fn;
    void *ctx;
    long n, grain;
    int parts;
} job;

static void range_of(int part, long *begin, long *end)
{
    long units = (job.n + job.grain - 1) / job.grain;
    long b = units * part / job.parts, e = units * (part + 1) / job.parts;
    *begin = b * job.grain;
    *end = e * job.grain < job.n ? e * job.grain : job.n;
}

void cs_flush_denormals(void)
{
#if defined(__SSE__)
    _MM_SET_FLUSH_ZERO_MODE(_MM_FLUSH_ZERO_ON);
    _MM_SET_DENORMALS_ZERO_MODE(_MM_DENORMALS_ZERO_ON);
#endif
}

static void *worker_main(void *arg)
{
    int me = (int)(long)arg;
    cs_flush_denormals();
    long seen = 0;
    pthread_mutex_lock(&lock);
    for (;;) {
        while (generation == seen) pthread_cond_wait(&wake, &lock);
        seen = generation;
        if (me >= job.parts) continue;
        pthread_mutex_unlock(&lock);
        long b, e;
        range_of(me, &b, &e);
        if (b < e) job.fn(job.ctx, b, e, me);
        pthread_mutex_lock(&lock);
        if (--pending == 0) pthread_cond_signal(&done);
    }
    return NULL;
}

void cs_parallel_limit_this_thread(int n) { thread_limit = n > 0 ? n : 0; }

void cs_parallel_set_threads(int n)
{
    if (n < 1) n = 1;
    if (n > CS_MAX_WORKERS) n = CS_MAX_WORKERS;
    pthread_mutex_lock(&owner);
    pthread_mutex_lock(&lock);
    /* Workers are started lazily and never stopped; fewer parts just leave some idle. */
    while (n_started < n) {
        pthread_t t;
        if (pthread_create(&t, NULL, worker_main, (void *)(long)n_started) != 0) break;
        pthread_detach(t);
        n_started++;
    }
    n_threads = n_started < n ? n_started : n;
    pthread_mutex_unlock(&lock);
    pthread_mutex_unlock(&owner);
}

static void set_default_threads(void)
{
    if (n_threads == 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        cs_parallel_set_threads(cores > 0 ? (int)cores : 1);
    }
}

int cs_parallel_threads(void)
{
    pthread_once(&default_once, set_default_threads);
    pthread_mutex_lock(&lock);
    int n = n_threads;
    pthread_mutex_unlock(&lock);
    return n;
}

long cs_parallel_grain(long work_per_unit, long align)
{
    if (work_per_unit < 1) work_per_unit = 1;
    if (align < 1) align = 1;
    long units = (CS_PARALLEL_MIN_WORK + work_per_unit - 1) / work_per_unit;
    return (units + align - 1) / align * align;
}

void cs_parallel_run(long n, long grain, int max_parts, cs_range_fn fn, void *ctx)
{
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    int threads = cs_parallel_threads();
    if (max_parts > 0 && max_parts < threads) threads = max_parts;
    if (thread_limit > 0 && thread_limit < threads) threads = thread_limit;
    long units = (n + grain - 1) / grain;
    if (threads == 1 || units < 2 || pthread_mutex_trylock(&owner) != 0) {
        fn(ctx, 0, n, 0);
        return;
    }
    pthread_mutex_lock(&lock);
    job.fn = fn;
    job.ctx = ctx;
    job.n = n;
    job.grain = grain;
    job.parts = units < threads ? (int)units : threads;
    pending = job.parts - 1;
    generation++;
    pthread_cond_broadcast(&wake);
    pthread_mutex_unlock(&lock);
    long b, e;
    range_of(0, &b, &e);
    fn(ctx, b, e, 0);
    pthread_mutex_lock(&lock);
    while (pending > 0) pthread_cond_wait(&done, &lock);
    pthread_mutex_unlock(&lock);
    pthread_mutex_unlock(&owner);
}
