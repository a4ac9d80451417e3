/*
 * compute.h - the compute workers: model work (forward and backward passes, drawing
 * what they give) runs here, never on the threads that poll connections.
 *
 * A bounded queue in front of a fixed set of worker threads. The queue is split into
 * one lane per client (its address): workers take the lanes in turn, so a client that
 * sends many requests waits behind its own, not in front of everyone else's. When the
 * queue is full, a client with fewer requests waiting than the longest lane still gets
 * a place: the longest lane's newest job is pushed out (and answered at once), so a
 * single client may use the whole queue while it is alone but cannot keep the others
 * out. A place is reserved first and the job handed over after, so the caller can
 * refuse at once (503) when there is none, and can get ready to be called back
 * (suspend its connection) before a worker may run the job.
 *
 * Every job is called back exactly once: on a worker thread with CS_COMPUTE_RUN to do
 * its work, or with a reason not to (its deadline passed while it waited, or its client
 * went away); a job pushed out is called back on the thread that reserved the place it
 * lost, and when the pool stops, the jobs still waiting are called back with
 * CS_COMPUTE_STOPPING on the stopping thread (or the submitting one).
 */
#ifndef CS_SERVER_COMPUTE_H
#define CS_SERVER_COMPUTE_H

#include <stdint.h>

typedef enum {
    CS_COMPUTE_RUN = 0,  /* do the work */
    CS_COMPUTE_LATE,     /* waited past its deadline */
    CS_COMPUTE_GONE,     /* the client went away while it waited */
    CS_COMPUTE_STOPPING, /* the pool is stopping */
    CS_COMPUTE_PUSHED,   /* the queue was full and its client had the most waiting */
} cs_compute_verdict;

typedef struct cs_compute_job cs_compute_job;
struct cs_compute_job {
    void (*fn)(cs_compute_job *job, cs_compute_verdict v);
    /* Optional: 1 when nobody waits for the answer any more (checked before running). */
    int (*abandoned)(cs_compute_job *job);
    uint64_t client;   /* the lane: a hash of the client's address */
    double deadline;   /* cs_now() seconds after which it is not started; 0: none */
    double queued_at;  /* set by cs_compute_submit */
    cs_compute_job *next; /* the pool's */
};

typedef struct cs_compute cs_compute;

typedef struct {
    long queued, running, workers, capacity; /* now */
    unsigned long done, refused_full, pushed, late, gone; /* since start */
} cs_compute_stats;

/* workers >= 1 threads, at most `capacity` jobs waiting. NULL when out of memory or
 * the threads cannot start. */
cs_compute *cs_compute_start(int workers, int capacity);
/* Takes a waiting place for `client` (pushing out the longest lane's newest job when the
 * queue is full and that lane is longer than this client's by more than one): 0, or -1
 * when there is none. A reserved place must be used by cs_compute_submit (with the same
 * client). */
int cs_compute_reserve(cs_compute *p, uint64_t client);
/* Queues the job in the place reserved for job->client. */
void cs_compute_submit(cs_compute *p, cs_compute_job *job);
void cs_compute_stats_get(cs_compute *p, cs_compute_stats *s);
/* Calls back every waiting job with CS_COMPUTE_STOPPING, lets the running ones finish
 * and joins the workers. Later reservations fail; the pool stays valid until freed. */
void cs_compute_stop(cs_compute *p);
void cs_compute_free(cs_compute *p);

/* A lane key from an address (bytes of the IP, without the port). */
uint64_t cs_compute_client_key(const void *addr_bytes, unsigned len);

#endif
