/*
 * guard.c - per-connection deadlines, body rates and upload limits (see guard.h).
 *
 * The records form one list under one lock. The per-address shares are counted by
 * walking that list when a body starts and the uploads together hold more than half
 * of the places or of the budget (at most --max-connections records), which keeps no
 * second structure in step with it.
 *
 * Cutting is shutdown(SHUT_RDWR) under the lock: libmicrohttpd then sees the end of
 * the stream and closes the connection itself. It tells us (cs_guard_close, also
 * under the lock) before it closes the socket, so the descriptor we shut down is
 * never one that was closed and reused for another connection.
 */
#include "guard.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "clock.h"
#include "compute.h"

typedef enum { ST_WAIT, ST_BUSY, ST_BODY } conn_state;

struct cs_guard_conn {
    cs_guard *g;
    cs_guard_conn *prev, *next;
    int fd;
    uint64_t client;
    conn_state state;
    cs_guard_cut_reason cut;
    double deadline;            /* ST_WAIT: the headers must be complete by then */
    double window_start;        /* ST_BODY: the current rate window */
    size_t window_bytes, body;  /* body bytes at the window's start, and now */
    size_t held;                /* budget bytes this request holds */
    size_t allowance;           /* body bytes it may still take without charge */
};

struct cs_guard {
    cs_guard_limits lim;
    pthread_mutex_t lock;
    pthread_cond_t stop_cond;
    int stopping, has_thread;
    pthread_t thread;
    cs_guard_conn *head;
    long connections, uploads;
    size_t held;
    unsigned long cut_headers, cut_slow_body, refused_slot, refused_budget;
};

static void *sweeper(void *arg)
{
    cs_guard *g = arg;
    pthread_mutex_lock(&g->lock);
    while (!g->stopping) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        long ns = until.tv_nsec + (long)g->lim.sweep_ms * 1000000L;
        until.tv_sec += ns / 1000000000L;
        until.tv_nsec = ns % 1000000000L;
        pthread_cond_timedwait(&g->stop_cond, &g->lock, &until);
        if (g->stopping) break;
        pthread_mutex_unlock(&g->lock);
        cs_guard_sweep(g, cs_now());
        pthread_mutex_lock(&g->lock);
    }
    pthread_mutex_unlock(&g->lock);
    return NULL;
}

cs_guard *cs_guard_new(const cs_guard_limits *l)
{
    cs_guard *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    g->lim = *l;
    pthread_mutex_init(&g->lock, NULL);
    pthread_cond_init(&g->stop_cond, NULL);
    if (l->sweep_ms > 0) {
        if (pthread_create(&g->thread, NULL, sweeper, g) != 0) {
            cs_guard_free(g);
            return NULL;
        }
        g->has_thread = 1;
    }
    return g;
}

void cs_guard_free(cs_guard *g)
{
    if (!g) return;
    if (g->has_thread) {
        pthread_mutex_lock(&g->lock);
        g->stopping = 1;
        pthread_cond_signal(&g->stop_cond);
        pthread_mutex_unlock(&g->lock);
        pthread_join(g->thread, NULL);
    }
    /* Records still open belong to connections the caller closed without telling us. */
    while (g->head) {
        cs_guard_conn *c = g->head;
        g->head = c->next;
        free(c);
    }
    pthread_cond_destroy(&g->stop_cond);
    pthread_mutex_destroy(&g->lock);
    free(g);
}

cs_guard_conn *cs_guard_open(cs_guard *g, int fd, const void *addr, unsigned addr_len)
{
    cs_guard_conn *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->g = g;
    c->fd = fd;
    c->client = cs_compute_client_key(addr, addr_len);
    c->state = ST_WAIT;
    c->deadline = cs_now() + g->lim.header_timeout;
    pthread_mutex_lock(&g->lock);
    c->next = g->head;
    if (g->head) g->head->prev = c;
    g->head = c;
    g->connections++;
    pthread_mutex_unlock(&g->lock);
    return c;
}

/* Gives back what the current request holds (under the lock). */
static void release(cs_guard_conn *c)
{
    cs_guard *g = c->g;
    if (c->state == ST_BODY) g->uploads--;
    g->held -= c->held;
    c->held = 0;
    c->body = c->window_bytes = 0;
}

void cs_guard_close(cs_guard_conn *c)
{
    if (!c) return;
    cs_guard *g = c->g;
    pthread_mutex_lock(&g->lock);
    release(c);
    if (c->prev) c->prev->next = c->next;
    else g->head = c->next;
    if (c->next) c->next->prev = c->prev;
    g->connections--;
    pthread_mutex_unlock(&g->lock);
    free(c);
}

uint64_t cs_guard_client(const cs_guard_conn *c)
{
    return c ? c->client : 0;
}

cs_guard_result cs_guard_request(cs_guard_conn *c)
{
    if (!c) return CS_GUARD_OK;
    cs_guard_result r = CS_GUARD_OK;
    pthread_mutex_lock(&c->g->lock);
    if (c->cut) r = CS_GUARD_CUT;
    else c->state = ST_BUSY;
    pthread_mutex_unlock(&c->g->lock);
    return r;
}

cs_guard_result cs_guard_upload(cs_guard_conn *c, size_t length)
{
    if (!c) return CS_GUARD_OK;
    cs_guard *g = c->g;
    cs_guard_result r = CS_GUARD_OK;
    size_t small = g->lim.small_body, bytes = length > small ? length - small : 0;
    pthread_mutex_lock(&g->lock);
    long mine_uploads = 0;
    size_t mine_held = 0;
    long half_places = g->lim.max_uploads > 1 ? g->lim.max_uploads / 2 : 1;
    /* This address's shares matter only when all addresses together are past half. */
    if (g->uploads >= half_places || g->held + bytes > g->lim.upload_budget / 2) {
        for (cs_guard_conn *o = g->head; o; o = o->next) {
            if (o->client != c->client) continue;
            mine_uploads += o->state == ST_BODY;
            mine_held += o->held;
        }
    }
    if (c->cut) r = CS_GUARD_CUT;
    else if (g->uploads >= g->lim.max_uploads || mine_uploads >= half_places) r = CS_GUARD_NO_SLOT;
    else if (bytes > g->lim.upload_budget - g->held || (mine_held && mine_held + bytes > g->lim.upload_budget / 2))
        r = CS_GUARD_NO_BUDGET;
    if (r == CS_GUARD_OK) {
        c->state = ST_BODY;
        g->uploads++;
        g->held += bytes;
        c->held += bytes;
        c->allowance = length < small ? small - length : 0;
        c->body = c->window_bytes = 0;
        c->window_start = cs_now();
    } else if (r == CS_GUARD_NO_SLOT) {
        g->refused_slot++;
    } else if (r == CS_GUARD_NO_BUDGET) {
        g->refused_budget++;
    }
    pthread_mutex_unlock(&g->lock);
    return r;
}

cs_guard_result cs_guard_body(cs_guard_conn *c, size_t n, int grow)
{
    if (!c) return CS_GUARD_OK;
    cs_guard *g = c->g;
    cs_guard_result r = CS_GUARD_OK;
    pthread_mutex_lock(&g->lock);
    c->body += n;
    if (c->cut) {
        r = CS_GUARD_CUT;
    } else if (grow) {
        size_t free_part = n < c->allowance ? n : c->allowance, charge = n - free_part;
        c->allowance -= free_part;
        if (charge > g->lim.upload_budget - g->held) {
            r = CS_GUARD_NO_BUDGET;
            g->refused_budget++;
        } else {
            g->held += charge;
            c->held += charge;
        }
    }
    pthread_mutex_unlock(&g->lock);
    return r;
}

void cs_guard_body_end(cs_guard_conn *c)
{
    if (!c) return;
    pthread_mutex_lock(&c->g->lock);
    if (c->state == ST_BODY) {
        c->g->uploads--;
        c->state = ST_BUSY;
    }
    pthread_mutex_unlock(&c->g->lock);
}

void cs_guard_request_end(cs_guard_conn *c)
{
    if (!c) return;
    pthread_mutex_lock(&c->g->lock);
    release(c);
    c->state = ST_WAIT;
    c->deadline = cs_now() + c->g->lim.idle_timeout;
    pthread_mutex_unlock(&c->g->lock);
}

cs_guard_cut_reason cs_guard_cut(const cs_guard_conn *c)
{
    if (!c) return CS_GUARD_CUT_NONE;
    pthread_mutex_lock(&c->g->lock);
    cs_guard_cut_reason r = c->cut;
    pthread_mutex_unlock(&c->g->lock);
    return r;
}

void cs_guard_sweep(cs_guard *g, double now)
{
    double window = g->lim.header_timeout;
    pthread_mutex_lock(&g->lock);
    for (cs_guard_conn *c = g->head; c; c = c->next) {
        if (c->cut) continue;
        if (c->state == ST_WAIT && now > c->deadline) {
            c->cut = CS_GUARD_CUT_HEADERS;
            g->cut_headers++;
        } else if (c->state == ST_BODY && g->lim.min_body_rate > 0 && now - c->window_start >= window) {
            if ((double)(c->body - c->window_bytes) < (double)g->lim.min_body_rate * window) {
                c->cut = CS_GUARD_CUT_SLOW_BODY;
                g->cut_slow_body++;
            } else {
                c->window_start = now;
                c->window_bytes = c->body;
            }
        }
        if (c->cut) shutdown(c->fd, SHUT_RDWR);
    }
    pthread_mutex_unlock(&g->lock);
}

void cs_guard_stats_get(cs_guard *g, cs_guard_stats *s)
{
    pthread_mutex_lock(&g->lock);
    s->connections = g->connections;
    s->uploads = g->uploads;
    s->bytes_held = g->held;
    s->cut_headers = g->cut_headers;
    s->cut_slow_body = g->cut_slow_body;
    s->refused_slot = g->refused_slot;
    s->refused_budget = g->refused_budget;
    pthread_mutex_unlock(&g->lock);
}
