/*
 * parallel.c - a small fork-join pool: workers wait for a job, each runs its range,
 * and the caller waits for all of them.
 *
 * Waiting first spins for a short while, then yields the CPU in a loop for a longer
 * while, then sleeps on a condition variable. A training step hands the pool some
 * thirty jobs, a few hundred microseconds apart; sleeping and being woken through the
 * kernel took 17-19 us per job here, and the woken worker started its half that much
 * late. Under a hypervisor a sleeping thread's CPU halts, and waking it took up to
 * hundreds of microseconds: a wait that outlasts the spin (the caller's serial work
 * between jobs, a part that ran long) cost a prediction more than the wait itself.
 * Yielding keeps the CPU awake without keeping other threads off it.
 */
#include "parallel.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <unistd.h>

#include "clock.h"
#include "resources.h"
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
static atomic_long generation; /* jobs published; changed under `lock` */
static atomic_long pending;    /* workers still running the current job */

/* How long a waiting thread spins, then yields, before it sleeps. */
#define SPIN_SECONDS 100e-6
#define YIELD_SECONDS 5e-3

/* Spins (then yields) while (*v == value) != until_equal, or until the time is up;
 * returns *v. */
static long spin(atomic_long *v, long value, int until_equal)
{
    const double t0 = cs_now();
    for (unsigned i = 1;; i++) {
        long now = atomic_load_explicit(v, memory_order_acquire);
        if ((now == value) == until_equal) return now;
#if defined(__SSE__)
        _mm_pause();
#endif
        if (i % 64 == 0) {
            const double waited = cs_now() - t0;
            if (waited > YIELD_SECONDS) return now;
            if (waited > SPIN_SECONDS) sched_yield();
        }
    }
}

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

/* Worker k > 0 keeps to the k-th CPU the process may use, so that no two workers share a
 * core while another idles; the caller (worker 0) keeps off the CPUs of the workers of
 * its job while it runs. A worker the scheduler left on its caller's CPU ran only while
 * the caller waited: the pool ran at half speed for as long as they stayed together
 * (seen as a whole run of passes at twice their time, one run out of three). */
static atomic_int worker_cpu[CS_MAX_WORKERS]; /* its CPU + 1; 0: not pinned (or not yet) */

static void keep_to_cpu(int me)
{
#if defined(__linux__)
    cpu_set_t allowed, one;
    if (sched_getaffinity(0, sizeof allowed, &allowed) != 0 || CPU_COUNT(&allowed) <= me) return;
    for (int cpu = 0, k = 0; cpu < CPU_SETSIZE; cpu++) {
        if (!CPU_ISSET(cpu, &allowed) || k++ < me) continue;
        CPU_ZERO(&one);
        CPU_SET(cpu, &one);
        if (pthread_setaffinity_np(pthread_self(), sizeof one, &one) == 0) atomic_store(&worker_cpu[me], cpu + 1);
        return;
    }
#endif
}

/* When the caller runs on the CPU of a worker of its job, it moves off the workers'
 * CPUs until the job is done. Returns 1 when it did (was: its CPUs before). */
static int keep_off_workers(int parts, cpu_set_t *was)
{
#if defined(__linux__)
    const int here = sched_getcpu();
    int shared = 0;
    for (int k = 1; k < parts; k++) shared |= atomic_load(&worker_cpu[k]) == here + 1;
    if (!shared || pthread_getaffinity_np(pthread_self(), sizeof *was, was) != 0) return 0;
    cpu_set_t mine = *was;
    for (int k = 1; k < parts; k++)
        if (atomic_load(&worker_cpu[k]) > 0) CPU_CLR(atomic_load(&worker_cpu[k]) - 1, &mine);
    if (CPU_COUNT(&mine) == 0) return 0;
    return pthread_setaffinity_np(pthread_self(), sizeof mine, &mine) == 0;
#else
    (void)parts, (void)was;
    return 0;
#endif
}

static void *worker_main(void *arg)
{
    int me = (int)(long)arg;
    cs_flush_denormals();
    keep_to_cpu(me);
    long seen = 0;
    for (;;) {
        spin(&generation, seen, 0);
        /* The job is read under the lock: the caller writes it under the lock too. */
        pthread_mutex_lock(&lock);
        while (atomic_load(&generation) == seen) pthread_cond_wait(&wake, &lock);
        seen = atomic_load(&generation);
        const int part = me < job.parts;
        cs_range_fn fn = job.fn;
        void *ctx = job.ctx;
        long b = 0, e = 0;
        if (part) range_of(me, &b, &e);
        pthread_mutex_unlock(&lock);
        if (!part) continue;
        if (b < e) fn(ctx, b, e, me);
        if (atomic_fetch_sub_explicit(&pending, 1, memory_order_acq_rel) == 1) { /* the last: wake the caller */
            pthread_mutex_lock(&lock);
            pthread_cond_signal(&done);
            pthread_mutex_unlock(&lock);
        }
    }
    return NULL;
}

int cs_parallel_limit_this_thread(int n)
{
    const int was = thread_limit;
    thread_limit = n > 0 ? n : 0;
    return was;
}

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

/* One thread per CPU the process may use (a container's quota, the affinity mask),
 * not per core of the host. */
static void set_default_threads(void)
{
    if (n_threads == 0) cs_parallel_set_threads(cs_resources_get()->cpus);
}

int cs_parallel_threads(void)
{
    pthread_once(&default_once, set_default_threads);
    pthread_mutex_lock(&lock);
    int n = n_threads;
    pthread_mutex_unlock(&lock);
    return n;
}

int cs_parallel_parts(void)
{
    int threads = cs_parallel_threads();
    return thread_limit > 0 && thread_limit < threads ? thread_limit : threads;
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
    atomic_store(&pending, job.parts - 1);
    atomic_fetch_add_explicit(&generation, 1, memory_order_release);
    pthread_cond_broadcast(&wake);
    long b, e;
    range_of(0, &b, &e);
    pthread_mutex_unlock(&lock);
    cpu_set_t was;
    const int moved = keep_off_workers(job.parts, &was);
    fn(ctx, b, e, 0);
    if (spin(&pending, 0, 1) != 0) {
        pthread_mutex_lock(&lock);
        while (atomic_load(&pending) > 0) pthread_cond_wait(&done, &lock);
        pthread_mutex_unlock(&lock);
    }
    if (moved) pthread_setaffinity_np(pthread_self(), sizeof was, &was);
    pthread_mutex_unlock(&owner);
}
