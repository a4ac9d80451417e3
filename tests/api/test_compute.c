/*
 * test_compute.c - the compute queue on its own, with jobs the test controls: a gate
 * job holds the only worker until the test opens it, so every check looks at a state
 * (who waits, in which order, what was refused), never at a duration.
 */
#include <pthread.h>

#include "clock.h"
#include "compute.h"
#include "test.h"

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cond = PTHREAD_COND_INITIALIZER;
static int g_gate_open;

typedef struct {
    cs_compute_job job;
    char name[8];
    int verdict; /* -1 until called back */
    int order;   /* position among the jobs called back */
    int gone;    /* what abandoned() says */
} tjob;

static int g_calls;

static void on_job(cs_compute_job *j, cs_compute_verdict v)
{
    tjob *t = (tjob *)j;
    pthread_mutex_lock(&g_lock);
    t->verdict = (int)v;
    t->order = g_calls++;
    pthread_cond_broadcast(&g_cond);
    pthread_mutex_unlock(&g_lock);
}

static void on_gate(cs_compute_job *j, cs_compute_verdict v)
{
    pthread_mutex_lock(&g_lock);
    while (v == CS_COMPUTE_RUN && !g_gate_open) pthread_cond_wait(&g_cond, &g_lock);
    pthread_mutex_unlock(&g_lock);
    on_job(j, v);
}

static int is_gone(cs_compute_job *j)
{
    return ((tjob *)j)->gone;
}

static void job_init(tjob *t, const char *name, uint64_t client)
{
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->job.fn = on_job;
    t->job.abandoned = is_gone;
    t->job.client = client;
    t->verdict = -1;
}

static void reset(void)
{
    pthread_mutex_lock(&g_lock);
    g_gate_open = 0;
    g_calls = 0;
    pthread_mutex_unlock(&g_lock);
}

static void open_gate(void)
{
    pthread_mutex_lock(&g_lock);
    g_gate_open = 1;
    pthread_cond_broadcast(&g_cond);
    pthread_mutex_unlock(&g_lock);
}

/* Waits until n jobs were called back (bounded, so a broken pool fails instead of hanging). */
static int wait_calls(int n)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 20;
    pthread_mutex_lock(&g_lock);
    int rc = 0;
    while (g_calls < n && rc == 0) rc = pthread_cond_timedwait(&g_cond, &g_lock, &until);
    int ok = g_calls >= n;
    pthread_mutex_unlock(&g_lock);
    return ok;
}

/* Puts the gate job on the only worker and waits until it runs there. */
static void hold_worker(cs_compute *p, tjob *gate)
{
    job_init(gate, "gate", 99);
    gate->job.fn = on_gate;
    CHECK(cs_compute_reserve(p, 99) == 0, "gate reserved");
    cs_compute_submit(p, &gate->job);
    cs_compute_stats s;
    double end = cs_now() + 20;
    do {
        cs_compute_stats_get(p, &s);
    } while (s.running != 1 && cs_now() < end);
    CHECK(s.running == 1 && s.queued == 0, "the gate runs: running %ld queued %ld", s.running, s.queued);
}

static void test_full_queue_pushes_out_the_longest_lane(void)
{
    reset();
    cs_compute *p = cs_compute_start(1, 4);
    tjob gate;
    hold_worker(p, &gate);
    /* Alone, client 1 may take every place. */
    tjob a[4];
    for (int i = 0; i < 4; i++) {
        job_init(&a[i], "a", 1);
        CHECK(cs_compute_reserve(p, 1) == 0, "client 1, place %d", i);
        cs_compute_submit(p, &a[i].job);
    }
    CHECK(cs_compute_reserve(p, 1) != 0, "a fifth: the queue is full and client 1 has the most");
    /* Client 2 gets places: client 1's newest jobs are pushed out and answered at once. */
    tjob b[2];
    for (int i = 0; i < 2; i++) {
        job_init(&b[i], "b", 2);
        CHECK(cs_compute_reserve(p, 2) == 0, "client 2, place %d", i);
        cs_compute_submit(p, &b[i].job);
    }
    CHECK(a[3].verdict == CS_COMPUTE_PUSHED && a[2].verdict == CS_COMPUTE_PUSHED, "pushed out: %d %d", a[3].verdict,
          a[2].verdict);
    CHECK(a[3].order == 0 && a[2].order == 1, "newest first");
    CHECK(cs_compute_reserve(p, 2) != 0, "two each: nobody is pushed out for a third");
    cs_compute_stats s;
    cs_compute_stats_get(p, &s);
    CHECK(s.queued == 4 && s.capacity == 4 && s.pushed == 2 && s.refused_full == 2, "queued %ld pushed %lu refused %lu",
          s.queued, s.pushed, s.refused_full);
    open_gate();
    CHECK(wait_calls(7), "every job called back");
    CHECK(a[0].verdict == CS_COMPUTE_RUN && a[1].verdict == CS_COMPUTE_RUN, "client 1's first two ran");
    CHECK(b[0].verdict == CS_COMPUTE_RUN && b[1].verdict == CS_COMPUTE_RUN, "client 2's ran");
    CHECK(cs_compute_reserve(p, 3) == 0, "places free again");
    tjob c;
    job_init(&c, "c", 3);
    cs_compute_submit(p, &c.job);
    CHECK(wait_calls(8), "ran");
    cs_compute_free(p);
}

static void test_lanes_take_turns(void)
{
    reset();
    cs_compute *p = cs_compute_start(1, 16);
    tjob gate, a[4], b;
    hold_worker(p, &gate);
    for (int i = 0; i < 4; i++) {
        job_init(&a[i], "a", 1);
        CHECK(cs_compute_reserve(p, 1) == 0, "a%d", i);
        cs_compute_submit(p, &a[i].job);
    }
    job_init(&b, "b", 2);
    CHECK(cs_compute_reserve(p, 2) == 0, "b");
    cs_compute_submit(p, &b.job);
    open_gate();
    CHECK(wait_calls(6), "every job ran");
    /* b came after four of a's, yet a client waits behind its own requests only: at
     * most one of a's runs before it. */
    CHECK(b.order <= 2, "b ran at position %d (gate at 0)", b.order);
    for (int i = 1; i < 4; i++) CHECK(a[i].order > a[i - 1].order, "a's in their order");
    cs_compute_free(p);
}

static void test_deadline_and_abandoned(void)
{
    reset();
    cs_compute *p = cs_compute_start(1, 8);
    tjob gate, late, gone, fine;
    hold_worker(p, &gate);
    job_init(&late, "late", 1);
    late.job.deadline = cs_now() - 1; /* already past when a worker gets to it */
    job_init(&gone, "gone", 2);
    gone.gone = 1;
    job_init(&fine, "fine", 3);
    fine.job.deadline = cs_now() + 3600;
    tjob *all[] = {&late, &gone, &fine};
    for (int i = 0; i < 3; i++) {
        CHECK(cs_compute_reserve(p, all[i]->job.client) == 0, "reserve %d", i);
        cs_compute_submit(p, &all[i]->job);
    }
    open_gate();
    CHECK(wait_calls(4), "all called back");
    CHECK(late.verdict == CS_COMPUTE_LATE, "late: %d", late.verdict);
    CHECK(gone.verdict == CS_COMPUTE_GONE, "gone: %d", gone.verdict);
    CHECK(fine.verdict == CS_COMPUTE_RUN, "fine: %d", fine.verdict);
    cs_compute_stats s;
    cs_compute_stats_get(p, &s);
    CHECK(s.late == 1 && s.gone == 1 && s.done == 2, "late %lu gone %lu done %lu", s.late, s.gone, s.done);
    cs_compute_free(p);
}

static void *stopper(void *arg)
{
    cs_compute_stop(arg);
    return NULL;
}

static void test_stop_answers_the_waiting(void)
{
    reset();
    cs_compute *p = cs_compute_start(1, 8);
    tjob gate, w;
    hold_worker(p, &gate);
    job_init(&w, "w", 1);
    CHECK(cs_compute_reserve(p, 1) == 0, "reserve");
    cs_compute_submit(p, &w.job);
    CHECK(cs_compute_reserve(p, 2) == 0, "a place reserved, its job not yet handed over");
    pthread_t t;
    pthread_create(&t, NULL, stopper, p);
    CHECK(wait_calls(1), "the waiting job is answered while the running one still runs");
    CHECK(w.verdict == CS_COMPUTE_STOPPING && gate.verdict == -1, "w %d gate %d", w.verdict, gate.verdict);
    open_gate();
    pthread_join(t, NULL);
    CHECK(gate.verdict == CS_COMPUTE_RUN, "the running job finished: %d", gate.verdict);
    tjob after;
    job_init(&after, "after", 2);
    cs_compute_submit(p, &after.job); /* the place reserved before the stop */
    CHECK(after.verdict == CS_COMPUTE_STOPPING, "handed over after the stop: %d", after.verdict);
    CHECK(cs_compute_reserve(p, 3) != 0, "no place after the stop");
    cs_compute_free(p);
}

static void test_client_keys(void)
{
    unsigned char a[4] = {127, 0, 0, 1}, b[4] = {127, 0, 0, 2};
    CHECK(cs_compute_client_key(a, 4) == cs_compute_client_key(a, 4), "stable");
    CHECK(cs_compute_client_key(a, 4) != cs_compute_client_key(b, 4), "distinct");
    CHECK(cs_compute_start(0, 4) == NULL && cs_compute_start(1, 0) == NULL, "bad sizes refused");
}

int main(void)
{
    RUN(test_full_queue_pushes_out_the_longest_lane);
    RUN(test_lanes_take_turns);
    RUN(test_deadline_and_abandoned);
    RUN(test_stop_answers_the_waiting);
    RUN(test_client_keys);
    return test_summary("api_compute");
}
