/*
 * compute.c - the compute workers and their queue of per-client lanes.
 *
 * One mutex guards the lanes; a job is taken off under it and run outside it. The
 * lanes are a plain array as long as the queue: at most that many clients can be
 * waiting at once, and a linear scan of a hundred entries costs less than a hash.
 * Pushing out the longest lane's newest job when the queue is full is "longest queue
 * drop", the buffer policy that makes a shared queue fair without fixed shares.
 */
#include "compute.h"

#include <pthread.h>
#include <stdlib.h>

#include "clock.h"

typedef struct {
    uint64_t key;
    int reserved; /* places taken: waiting jobs plus reservations not yet submitted */
    cs_compute_job *head, *tail;
} lane;

struct cs_compute {
    pthread_mutex_t lock;
    pthread_cond_t work;
    int capacity, reserved, running, stopping;
    int n_lanes, cursor;
    lane *lanes;
    int n_threads;
    pthread_t *threads;
    unsigned long done, refused_full, pushed, late, gone;
};

uint64_t cs_compute_client_key(const void *addr_bytes, unsigned len)
{
    const unsigned char *b = addr_bytes;
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (unsigned i = 0; i < len; i++) h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

/* The lane of `key`, or a free one for it when `make` (NULL when none is free). */
static lane *find_lane(cs_compute *p, uint64_t key, int make)
{
    lane *free_lane = NULL;
    for (int i = 0; i < p->n_lanes; i++) {
        lane *l = &p->lanes[i];
        if (l->reserved && l->key == key) return l;
        if (!l->reserved && !free_lane) free_lane = l;
    }
    if (!make || !free_lane) return NULL;
    free_lane->key = key;
    free_lane->head = free_lane->tail = NULL;
    return free_lane;
}

/* Takes the newest job off the longest lane if that lane is longer than `mine` by more
 * than one (under the lock); NULL when none is. */
static cs_compute_job *push_out(cs_compute *p, int mine)
{
    lane *longest = NULL;
    for (int i = 0; i < p->n_lanes; i++)
        if (p->lanes[i].head && (!longest || p->lanes[i].reserved > longest->reserved)) longest = &p->lanes[i];
    if (!longest || longest->reserved <= mine + 1) return NULL;
    cs_compute_job *job = longest->head, *before = NULL;
    while (job->next) before = job, job = job->next;
    if (before) before->next = NULL;
    else longest->head = NULL;
    longest->tail = before;
    longest->reserved--;
    p->reserved--;
    p->pushed++;
    return job;
}

int cs_compute_reserve(cs_compute *p, uint64_t client)
{
    int ok = 0;
    cs_compute_job *pushed = NULL;
    pthread_mutex_lock(&p->lock);
    if (!p->stopping) {
        if (p->reserved >= p->capacity) {
            lane *mine = find_lane(p, client, 0);
            pushed = push_out(p, mine ? mine->reserved : 0);
        }
        lane *l = p->reserved < p->capacity ? find_lane(p, client, 1) : NULL;
        if (l) {
            l->reserved++;
            p->reserved++;
            ok = 1;
        }
    }
    if (!ok) p->refused_full++;
    pthread_mutex_unlock(&p->lock);
    if (pushed) pushed->fn(pushed, CS_COMPUTE_PUSHED);
    return ok ? 0 : -1;
}

void cs_compute_submit(cs_compute *p, cs_compute_job *job)
{
    job->next = NULL;
    job->queued_at = cs_now();
    pthread_mutex_lock(&p->lock);
    lane *l = find_lane(p, job->client, 0);
    if (p->stopping || !l) {
        /* Stopping between the reservation and now: answer without queueing. */
        if (l) l->reserved--, p->reserved--;
        pthread_mutex_unlock(&p->lock);
        job->fn(job, CS_COMPUTE_STOPPING);
        return;
    }
    if (l->tail) l->tail->next = job;
    else l->head = job;
    l->tail = job;
    pthread_cond_signal(&p->work);
    pthread_mutex_unlock(&p->lock);
}

/* The next lane after the last one served that has a job waiting (under the lock). */
static cs_compute_job *take_job(cs_compute *p)
{
    for (int k = 0; k < p->n_lanes; k++) {
        int i = (p->cursor + k) % p->n_lanes;
        lane *l = &p->lanes[i];
        if (!l->head) continue;
        cs_compute_job *job = l->head;
        l->head = job->next;
        if (!l->head) l->tail = NULL;
        l->reserved--;
        p->reserved--;
        p->cursor = (i + 1) % p->n_lanes;
        return job;
    }
    return NULL;
}

static void *worker_main(void *arg)
{
    cs_compute *p = arg;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        cs_compute_job *job = NULL;
        while (!p->stopping && !(job = take_job(p))) pthread_cond_wait(&p->work, &p->lock);
        if (!job) break;
        p->running++;
        pthread_mutex_unlock(&p->lock);
        cs_compute_verdict v = CS_COMPUTE_RUN;
        if (job->deadline > 0 && cs_now() > job->deadline) v = CS_COMPUTE_LATE;
        else if (job->abandoned && job->abandoned(job)) v = CS_COMPUTE_GONE;
        /* Counted before the call, so whoever the job answers sees it in the stats. */
        pthread_mutex_lock(&p->lock);
        if (v == CS_COMPUTE_RUN) p->done++;
        else if (v == CS_COMPUTE_LATE) p->late++;
        else p->gone++;
        pthread_mutex_unlock(&p->lock);
        job->fn(job, v); /* may free the job */
        pthread_mutex_lock(&p->lock);
        p->running--;
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

cs_compute *cs_compute_start(int workers, int capacity)
{
    if (workers < 1 || capacity < 1) return NULL;
    cs_compute *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->lanes = calloc((size_t)capacity, sizeof *p->lanes);
    p->threads = calloc((size_t)workers, sizeof *p->threads);
    if (!p->lanes || !p->threads) {
        free(p->lanes);
        free(p->threads);
        free(p);
        return NULL;
    }
    p->capacity = p->n_lanes = capacity;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->work, NULL);
    for (int i = 0; i < workers; i++) {
        if (pthread_create(&p->threads[i], NULL, worker_main, p) != 0) break;
        p->n_threads++;
    }
    if (p->n_threads < workers) {
        cs_compute_free(p);
        return NULL;
    }
    return p;
}

void cs_compute_stats_get(cs_compute *p, cs_compute_stats *s)
{
    pthread_mutex_lock(&p->lock);
    s->running = p->running;
    s->queued = p->reserved;
    s->workers = p->n_threads;
    s->capacity = p->capacity;
    s->done = p->done;
    s->refused_full = p->refused_full;
    s->pushed = p->pushed;
    s->late = p->late;
    s->gone = p->gone;
    pthread_mutex_unlock(&p->lock);
}

void cs_compute_stop(cs_compute *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->lock);
    if (p->stopping) {
        pthread_mutex_unlock(&p->lock);
        return;
    }
    p->stopping = 1;
    cs_compute_job *waiting = NULL, *last = NULL;
    for (int i = 0; i < p->n_lanes; i++) {
        lane *l = &p->lanes[i];
        if (!l->head) continue;
        if (last) last->next = l->head;
        else waiting = l->head;
        last = l->tail;
        p->reserved -= l->reserved;
        l->reserved = 0;
        l->head = l->tail = NULL;
    }
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->lock);
    while (waiting) {
        cs_compute_job *next = waiting->next;
        waiting->fn(waiting, CS_COMPUTE_STOPPING);
        waiting = next;
    }
    for (int i = 0; i < p->n_threads; i++) pthread_join(p->threads[i], NULL);
    p->n_threads = 0;
}

void cs_compute_free(cs_compute *p)
{
    if (!p) return;
    cs_compute_stop(p);
    pthread_cond_destroy(&p->work);
    pthread_mutex_destroy(&p->lock);
    free(p->lanes);
    free(p->threads);
    free(p);
}
