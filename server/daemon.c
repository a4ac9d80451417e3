/*
 * daemon.c - libmicrohttpd glue: with framing.c and api/upload.c, the only code that
 * knows it.
 *
 * Life of a connection: accepted (the guard opens a record: its headers have
 * --header-timeout seconds), requests one after the other, closed (the record goes).
 *
 * Life of a request (libmicrohttpd calls the handler several times):
 *   request line  on_uri: the request's state, and the raw target for the framing check;
 *   1st call      the head is checked (framing.c), routed, the token checked; a
 *                 404/405/401/429, a Content-Length above the limit (413), or no upload
 *                 place or budget left (503) is answered at once, before any of the
 *                 body is read; else the body takes an upload place;
 *   next calls    append the body chunks to the upload, counting bytes as they stream
 *                 (a chunked body past the limit is dropped unread and answered 413 at
 *                 its end, or loses its connection if it goes on past twice the limit);
 *   last call     the body is complete: the request now counts as in flight
 *                 (--max-in-flight, 429 beyond). Model work goes to the compute queue
 *                 (503 with Retry-After at once when it is full) and the connection is
 *                 suspended until a worker has the reply; anything else is answered here;
 *   after resume  the reply is queued;
 *   completed     one access-log line, the metrics, the request's bytes released.
 *
 * Threading (measured with wrk, see the README's HTTP API section): by default a pool of
 * --threads threads polling with poll(): they only move bytes, parse and answer cheap
 * routes, so no request computing holds up the connections that share its thread. In
 * "thread" mode (one thread per connection) a connection's thread waits for its worker
 * instead of suspending. "epoll" and "thread" stay selectable with --http-mode.
 */
#include "daemon.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <semaphore.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "api.h"
#include "compute.h"
#include "framing.h"
#include "guard.h"
#include "log.h"
#include "metrics.h"
#include "reply.h"
#include "upload.h"

struct cs_daemon {
    struct MHD_Daemon *mhd;
    MHD_socket quiesced;
    int port;
    size_t max_upload;
    int max_in_flight;
    int thread_mode;
    double request_deadline;
    cs_guard *guard;
    cs_compute *compute;
};

typedef enum {
    PH_NEW,    /* the request line is in; the handler has not seen it yet */
    PH_HEAD,   /* routed; the body (if any) streams in */
    PH_QUEUED, /* waiting for a compute worker (the connection is suspended) */
    PH_DONE,   /* reply queued */
} phase;

typedef struct {
    int kind; /* MHD_HEADER_KIND or MHD_GET_ARGUMENT_KIND */
    const char *key, *value;
    size_t key_len, value_len;
} kv;

typedef struct {
    cs_compute_job job; /* first: a request is its own compute job */
    cs_daemon *d;
    struct MHD_Connection *conn;
    cs_guard_conn *gc;
    int fd;
    sem_t answered; /* "thread" mode: the connection's thread waits on it */
    double t0;
    cs_framing_target target;
    phase ph;
    const cs_route *route;
    int counted;   /* in the in-flight count */
    int uploading; /* holds an upload place */
    int chunked, stores;
    int status_early; /* an error decided while the body streamed in */
    size_t discarded;
    size_t limit; /* the largest body the route takes */
    cs_upload *upload;
    /* Headers and query arguments, taken once: a worker reads them while the
     * connection's thread may be serving other connections. They point into the
     * connection's memory, which lives until the request completes. */
    kv *kvs;
    int n_kv, cap_kv;
    cs_req req;
    cs_reply reply; /* what a worker computed */
    int close;      /* close the connection after the reply */
    char method[16];
    char path[1024];
    int status;
    size_t bytes;
} request_state;

static const char *kv_lookup(const request_state *st, int kind, const char *key)
{
    /* As libmicrohttpd looks them up: the first of that name, any case. */
    for (int i = 0; i < st->n_kv; i++)
        if (st->kvs[i].kind == kind && st->kvs[i].key && !strcasecmp(st->kvs[i].key, key)) return st->kvs[i].value;
    return NULL;
}

static const char *query_lookup(void *transport, const char *key)
{
    return kv_lookup(transport, MHD_GET_ARGUMENT_KIND, key);
}

/* Every query argument with its decoded length, from the snapshot: a %00 decodes to a
 * NUL byte that the C string alone would hide. */
static int query_each(void *transport,
                      int (*fn)(void *arg, const char *key, size_t key_len, const char *value, size_t value_len),
                      void *arg)
{
    const request_state *st = transport;
    for (int i = 0; i < st->n_kv; i++) {
        const kv *e = &st->kvs[i];
        if (e->kind != MHD_GET_ARGUMENT_KIND || !e->key) continue;
        int stop = fn(arg, e->key, e->key_len, e->value, e->value_len);
        if (stop) return stop;
    }
    return 0;
}

static const char *header_lookup(void *transport, const char *key)
{
    return kv_lookup(transport, MHD_HEADER_KIND, key);
}

static enum MHD_Result collect_kv(void *cls, enum MHD_ValueKind kind, const char *key, size_t key_size,
                                  const char *value, size_t value_size)
{
    request_state *st = cls;
    if (st->n_kv == st->cap_kv) {
        int cap = st->cap_kv ? 2 * st->cap_kv : 16;
        kv *p = realloc(st->kvs, (size_t)cap * sizeof *p);
        if (!p) return MHD_NO;
        st->kvs = p;
        st->cap_kv = cap;
    }
    st->kvs[st->n_kv++] = (kv){(int)kind, key, value, key_size, value_size};
    return MHD_YES;
}

/* Hands the reply to libmicrohttpd (the body's ownership goes with it). */
static enum MHD_Result send_reply(struct MHD_Connection *c, request_state *st, cs_reply *rep)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(rep->len, rep->body ? rep->body : (void *)"", rep->body ? MHD_RESPMEM_MUST_FREE
                                                                                                 : MHD_RESPMEM_PERSISTENT);
    if (!r) {
        cs_reply_clear(rep);
        return MHD_NO;
    }
    rep->body = NULL; /* libmicrohttpd frees it */
    if (rep->content_type) MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, rep->content_type);
    for (int i = 0; i < rep->n_headers; i++) MHD_add_response_header(r, rep->header_names[i], rep->header_values[i]);
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    if (st->close) MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    st->status = rep->status;
    st->bytes = rep->len;
    st->ph = PH_DONE;
    enum MHD_Result ok = MHD_queue_response(c, (unsigned)rep->status, r);
    MHD_destroy_response(r);
    return ok;
}

/* 503 for load, with the hint to come back in a second. */
static void overloaded(cs_reply *rep, cs_shed_reason why, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void overloaded(cs_reply *rep, cs_shed_reason why, const char *fmt, ...)
{
    char msg[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cs_reply_clear(rep);
    cs_reply_error(rep, 503, "overloaded", "%s", msg);
    cs_reply_header(rep, "Retry-After", "1");
    cs_metrics_shed(why);
}

static enum MHD_Result send_error(struct MHD_Connection *c, request_state *st, int status, const char *allow)
{
    cs_reply rep = {0};
    switch (status) {
    case 404: cs_reply_error(&rep, 404, "not_found", "no such path: %.200s", st->path); break;
    case 405:
        cs_reply_error(&rep, 405, "method_not_allowed", "%s is not allowed on %.200s (allowed: %s)", st->method,
                       st->path, allow);
        cs_reply_header(&rep, "Allow", allow);
        break;
    case 413:
        cs_reply_error(&rep, 413, "payload_too_large", "the body is larger than the limit of %zu bytes",
                       st->limit ? st->limit : cs_api.max_upload);
        break;
    case 429:
        cs_reply_error(&rep, 429, "too_many_requests", "the service is answering %d requests already; try again",
                       st->d->max_in_flight);
        cs_reply_header(&rep, "Retry-After", "1");
        cs_metrics_shed(CS_SHED_IN_FLIGHT);
        break;
    case 503:
        overloaded(&rep, CS_SHED_UPLOAD_BUDGET, "request bodies hold the whole upload budget now; try again");
        break;
    case 500: cs_reply_internal(&rep, "out of memory"); break;
    default: cs_reply_error(&rep, 400, "bad_request", "malformed multipart/form-data body"); break;
    }
    return send_reply(c, st, &rep);
}

/* The request line is in: the request's state starts here (libmicrohttpd passes it to
 * every later call), with what the framing check needs of the raw target. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *c)
{
    request_state *st = calloc(1, sizeof *st);
    if (!st) return NULL;
    st->d = cls;
    st->conn = c;
    st->fd = -1;
    st->t0 = cs_now();
    cs_framing_target_scan(uri, &st->target);
    snprintf(st->method, sizeof st->method, "-");
    snprintf(st->path, sizeof st->path, "%s", uri); /* logged if the request goes no further */
    return st;
}

static cs_guard_conn *guard_of(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

/* First call: the head is complete. Everything that can refuse the request without
 * reading its body happens here. */
static enum MHD_Result on_head(cs_daemon *d, struct MHD_Connection *c, request_state *st, const char *url,
                               const char *method, const char *version)
{
    st->ph = PH_HEAD;
    st->gc = guard_of(c);
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    st->fd = ci ? ci->connect_fd : -1;
    if (cs_guard_request(st->gc) == CS_GUARD_CUT) return MHD_NO;
    snprintf(st->method, sizeof st->method, "%s", method);
    snprintf(st->path, sizeof st->path, "%s", url);
    st->req.method = st->method;
    st->req.path = st->path;
    st->req.query_fn = query_lookup;
    st->req.header_fn = header_lookup;
    st->req.query_each_fn = query_each;
    st->req.transport = st;
    if (MHD_get_connection_values_n(c, MHD_HEADER_KIND | MHD_GET_ARGUMENT_KIND, collect_kv, st) != st->n_kv) {
        st->close = 1;
        return send_error(c, st, 500, NULL);
    }
    char why[200];
    if (cs_framing_check(c, method, version, &st->target, why, sizeof why) != 0) {
        cs_reply rep = {0};
        cs_reply_error(&rep, 400, "bad_request", "malformed request: %s", why);
        cs_metrics_shed(CS_SHED_FRAMING);
        st->close = 1; /* what follows on the connection cannot be trusted to be a request */
        return send_reply(c, st, &rep);
    }
    int status;
    char allow[64];
    st->route = cs_route_match(method, st->path, &st->req, &status, allow, sizeof allow);
    if (!st->route) return send_error(c, st, status, allow);
    cs_reply rep = {0};
    if (!cs_api_authorized(st->route, &st->req, &rep)) return send_reply(c, st, &rep);
    /* Shed load before reading any body; probes and metrics always answer, so an
     * overloaded service still says so. */
    int probe = (st->route->flags & CS_ROUTE_PROBE) != 0;
    if (!probe && cs_metrics_in_flight_now() >= d->max_in_flight) return send_error(c, st, 429, NULL);
    const char *cl = header_lookup(st, MHD_HTTP_HEADER_CONTENT_LENGTH);
    unsigned long long length = cl ? strtoull(cl, NULL, 10) : 0;
    st->limit = cs_api_body_limit(st->route);
    if (length > st->limit) return send_error(c, st, 413, NULL);
    st->chunked = header_lookup(st, MHD_HTTP_HEADER_TRANSFER_ENCODING) != NULL;
    st->stores = (st->route->flags & (CS_ROUTE_UPLOAD | CS_ROUTE_JSON | CS_ROUTE_MODEL)) != 0;
    if (length || st->chunked) {
        /* A body is coming: it takes an upload place (and, when it is kept, its bytes
         * from the budget), so it is held to the minimum rate. */
        switch (cs_guard_upload(st->gc, st->stores && !st->chunked ? (size_t)length : 0)) {
        case CS_GUARD_OK: st->uploading = 1; break;
        case CS_GUARD_CUT: return MHD_NO;
        case CS_GUARD_NO_SLOT:
            overloaded(&rep, CS_SHED_UPLOAD_SLOTS, "%s", "too many request bodies are arriving now; try again");
            return send_reply(c, st, &rep);
        case CS_GUARD_NO_BUDGET:
            overloaded(&rep, CS_SHED_UPLOAD_BUDGET, "%s",
                       "request bodies hold the whole upload budget now; try again");
            return send_reply(c, st, &rep);
        }
    }
    if (st->stores) {
        const char *ct = header_lookup(st, MHD_HTTP_HEADER_CONTENT_TYPE);
        /* A model upload keeps every part of its form; an image route its images. */
        int forms = (st->route->flags & CS_ROUTE_MODEL) ? 2 : (st->route->flags & CS_ROUTE_UPLOAD) != 0;
        st->upload = cs_upload_new(c, ct, st->limit, forms, st->chunked ? 0 : (size_t)length);
        if (!st->upload) return MHD_NO;
    }
    return MHD_YES;
}

static enum MHD_Result on_chunk(request_state *st, const char *data, size_t n)
{
    int grow = st->chunked && st->upload && !st->status_early;
    cs_guard_result r = cs_guard_body(st->gc, n, grow);
    if (r == CS_GUARD_CUT) return MHD_NO;
    if (r == CS_GUARD_NO_BUDGET && !st->status_early) {
        st->status_early = 503;
        cs_upload_free(st->upload); /* nothing of it will be used */
        st->upload = NULL;
    }
    st->discarded += n;
    if (st->status_early) {
        /* A chunked body gives no length up front, and libmicrohttpd 0.9.75 cannot
         * queue a reply in the middle of a body: what is past the limit is dropped
         * unread into memory, and a body that goes on far beyond it loses its
         * connection rather than keep us reading. */
        return st->discarded > 2 * st->limit + (1u << 20) ? MHD_NO : MHD_YES;
    }
    if (st->upload) st->status_early = cs_upload_feed(st->upload, data, n);
    else if (st->discarded > st->limit) st->status_early = 413;
    return MHD_YES;
}

/* Runs on a compute worker (or is told why not), then wakes the connection. */
static void run_job(cs_compute_job *job, cs_compute_verdict v)
{
    request_state *st = (request_state *)job;
    switch (v) {
    case CS_COMPUTE_RUN: {
        double t0 = cs_now();
        cs_api_dispatch(st->route, &st->req, &st->reply);
        if (!st->reply.status) cs_reply_internal(&st->reply, "no reply");
        cs_metrics_compute((int)(st->route - cs_routes), t0 - job->queued_at, cs_now() - t0);
        break;
    }
    case CS_COMPUTE_LATE:
        overloaded(&st->reply, CS_SHED_LATE, "waited %.1f s for a compute worker (the limit is %g s); try again",
                   cs_now() - job->queued_at, st->d->request_deadline);
        break;
    case CS_COMPUTE_GONE:
        overloaded(&st->reply, CS_SHED_LATE, "%s", "the client left before a compute worker was free");
        break;
    case CS_COMPUTE_PUSHED:
        overloaded(&st->reply, CS_SHED_QUEUE_FULL, "%s",
                   "the compute queue is full and this client has the most requests waiting; try again");
        break;
    case CS_COMPUTE_STOPPING:
        cs_reply_error(&st->reply, 503, "shutting_down", "the service is stopping");
        break;
    }
    /* From here on the request belongs to its connection's thread again. */
    if (st->d->thread_mode) sem_post(&st->answered);
    else MHD_resume_connection(st->conn);
}

/* A client that closed its side (a timed-out client does) waits for nothing. */
static int client_gone(cs_compute_job *job)
{
    request_state *st = (request_state *)job;
    if (st->fd < 0) return 0;
    struct pollfd p = {.fd = st->fd, .events = POLLRDHUP};
    return poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

/* Last call: the body is complete. */
static enum MHD_Result on_complete_body(cs_daemon *d, struct MHD_Connection *c, request_state *st)
{
    if (st->uploading) {
        cs_guard_body_end(st->gc);
        st->uploading = 0;
    }
    if (st->status_early) return send_error(c, st, st->status_early, NULL);
    if (!(st->route->flags & CS_ROUTE_PROBE)) {
        if (cs_metrics_in_flight(1) > d->max_in_flight) {
            cs_metrics_in_flight(-1);
            return send_error(c, st, 429, NULL);
        }
        st->counted = 1;
    }
    if (st->upload) {
        int bad = cs_upload_finish(st->upload, &st->req);
        if (bad) return send_error(c, st, bad, NULL);
    }
    if (!(st->route->flags & CS_ROUTE_COMPUTE)) {
        cs_api_dispatch(st->route, &st->req, &st->reply);
        if (!st->reply.status) cs_reply_internal(&st->reply, "no reply");
        return send_reply(c, st, &st->reply);
    }
    st->job.fn = run_job;
    st->job.abandoned = client_gone;
    st->job.client = cs_guard_client(st->gc);
    st->job.deadline = cs_now() + d->request_deadline;
    if (cs_compute_reserve(d->compute, st->job.client) != 0) {
        cs_compute_stats cs;
        cs_compute_stats_get(d->compute, &cs);
        overloaded(&st->reply, CS_SHED_QUEUE_FULL,
                   "all %ld compute workers are busy and %ld requests are waiting for them; try again", cs.workers,
                   cs.queued);
        return send_reply(c, st, &st->reply);
    }
    if (d->thread_mode) {
        sem_init(&st->answered, 0, 0); /* cannot fail with these arguments */
        cs_compute_submit(d->compute, &st->job);
        while (sem_wait(&st->answered) != 0) {
        }
        sem_destroy(&st->answered);
        return send_reply(c, st, &st->reply);
    }
    st->ph = PH_QUEUED;
    MHD_suspend_connection(c); /* before a worker can resume it */
    cs_compute_submit(d->compute, &st->job);
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **req_cls)
{
    cs_daemon *d = cls;
    request_state *st = *req_cls;
    if (!st) return MHD_NO; /* out of memory when the request line came */
    if (st->ph == PH_NEW) return on_head(d, c, st, url, method, version);
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        return on_chunk(st, upload_data, n);
    }
    if (st->ph == PH_QUEUED) return send_reply(c, st, &st->reply); /* resumed by its worker */
    return on_complete_body(d, c, st);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **req_cls, enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    request_state *st = *req_cls;
    if (!st) return;
    cs_guard_conn *gc = guard_of(c);
    double s = cs_now() - st->t0;
    /* A request that ended without a reply of ours: cut by the guard (408), refused by
     * libmicrohttpd itself (its status), or client gone / timed out (0). */
    int status = toe == MHD_REQUEST_TERMINATED_COMPLETED_OK || st->status ? st->status : 0;
    if (!st->status && cs_guard_cut(gc) != CS_GUARD_CUT_NONE) status = 408;
    if (!st->status && st->ph == PH_NEW) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_HTTP_STATUS);
        if (ci) status = (int)ci->http_status;
    }
    cs_log_access(st->method, st->path, status, st->bytes, s * 1e3);
    int route_index = st->route ? (int)(st->route - cs_routes) : -1;
    cs_metrics_request(route_index, st->method, status, s, st->req.stage_s);
    if (st->counted) cs_metrics_in_flight(-1);
    if (st->uploading) cs_guard_body_end(gc);
    cs_guard_request_end(gc);
    cs_upload_free(st->upload);
    cs_reply_clear(&st->reply);
    free(st->kvs);
    free(st);
    *req_cls = NULL;
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    cs_daemon *d = cls;
    if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        cs_guard_close(*socket_context);
        *socket_context = NULL;
        return;
    }
    const union MHD_ConnectionInfo *fd = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    const union MHD_ConnectionInfo *ad = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const void *bytes = "";
    unsigned len = 0;
    if (ad && ad->client_addr && ad->client_addr->sa_family == AF_INET) {
        bytes = &((const struct sockaddr_in *)(const void *)ad->client_addr)->sin_addr;
        len = 4;
    } else if (ad && ad->client_addr && ad->client_addr->sa_family == AF_INET6) {
        bytes = &((const struct sockaddr_in6 *)(const void *)ad->client_addr)->sin6_addr;
        len = 16;
    }
    *socket_context = fd ? cs_guard_open(d->guard, fd->connect_fd, bytes, len) : NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r')) msg[--n] = 0;
    cs_log_info("http: %s", msg);
}

/* "host:port" or "[v6]:port" into a socket address. */
static int parse_listen(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
    char host[128];
    const char *colon = strrchr(s, ':');
    if (!colon) return -1;
    long port = strtol(colon + 1, NULL, 10);
    if (port < 0 || port > 65535) return -1;
    size_t hl = (size_t)(colon - s);
    if (hl >= sizeof host) return -1;
    memcpy(host, s, hl);
    host[hl] = 0;
    memset(ss, 0, sizeof *ss);
    if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
        host[hl - 1] = 0;
        if (inet_pton(AF_INET6, host + 1, &a->sin6_addr) != 1) return -1;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        *len = sizeof *a;
        return 6;
    }
    struct sockaddr_in *a = (struct sockaddr_in *)ss;
    if (!strcmp(host, "localhost")) snprintf(host, sizeof host, "127.0.0.1");
    if (!host[0]) snprintf(host, sizeof host, "0.0.0.0");
    if (inet_pton(AF_INET, host, &a->sin_addr) != 1) return -1;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    *len = sizeof *a;
    return 4;
}

static void free_daemon(cs_daemon *d)
{
    /* The workers first: every request still waiting is answered and its connection
     * resumed, as libmicrohttpd must not stop with connections suspended. */
    cs_compute_stop(d->compute);
    if (d->mhd) MHD_stop_daemon(d->mhd);
    cs_metrics_attach(NULL, NULL);
    cs_compute_free(d->compute);
    cs_guard_free(d->guard);
    if (d->quiesced != MHD_INVALID_SOCKET) close(d->quiesced);
    free(d);
}

cs_daemon *cs_daemon_start(const cs_config *cfg, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    int family = parse_listen(cfg->listen, &ss, &sl);
    if (family < 0) {
        snprintf(err, errlen, "--listen must be host:port (e.g. 127.0.0.1:8080), got '%s'", cfg->listen);
        return NULL;
    }
    cs_daemon *d = calloc(1, sizeof *d);
    if (!d) return NULL;
    d->quiesced = MHD_INVALID_SOCKET;
    d->max_upload = (size_t)cfg->max_upload;
    d->max_in_flight = (int)cfg->max_in_flight;
    d->request_deadline = (double)cfg->request_deadline;
    d->thread_mode = !strcmp(cfg->http_mode, "thread");
    /* Bodies of up to 64 KiB (a small image) are not charged to the budget; sweep every
     * 100 ms. */
    cs_guard_limits gl = {(double)cfg->header_timeout, (double)cfg->timeout, cfg->min_body_rate,
                          (int)cfg->max_uploads, (size_t)cfg->upload_budget, 64 << 10, 100};
    d->guard = cs_guard_new(&gl);
    d->compute = cs_compute_start((int)cfg->workers, (int)cfg->queue);
    if (!d->guard || !d->compute) {
        snprintf(err, errlen, "cannot start the compute workers or the connection guard (out of memory?)");
        free_daemon(d);
        return NULL;
    }
    cs_metrics_attach(d->guard, d->compute);
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG;
    unsigned pool = 0;
    if (d->thread_mode) {
        flags |= MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL;
    } else {
        flags |= MHD_ALLOW_SUSPEND_RESUME;
        flags |= !strcmp(cfg->http_mode, "epoll") ? MHD_USE_EPOLL : MHD_USE_POLL;
        pool = cfg->threads > 1 ? (unsigned)cfg->threads : 0;
    }
    if (family == 6) flags |= MHD_USE_IPv6;
    struct MHD_OptionItem opts[] = {
        {MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)mhd_log, NULL}, /* first, or it is ignored */
        {MHD_OPTION_SOCK_ADDR, 0, &ss},
        {MHD_OPTION_CONNECTION_LIMIT, (intptr_t)cfg->max_connections, NULL},
        {MHD_OPTION_PER_IP_CONNECTION_LIMIT, (intptr_t)cfg->max_per_ip, NULL},
        {MHD_OPTION_CONNECTION_TIMEOUT, (intptr_t)cfg->timeout, NULL},
        {MHD_OPTION_URI_LOG_CALLBACK, (intptr_t)on_uri, d},
        {MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)on_connection, d},
        {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, NULL},
        {MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024, NULL},
        {MHD_OPTION_LISTENING_ADDRESS_REUSE, 1, NULL},
#if MHD_VERSION >= 0x01000000
        /* 1.0 checks the head's syntax itself (framing.c keeps the checks of meaning). */
        {MHD_OPTION_CLIENT_DISCIPLINE_LVL, 1, NULL},
#endif
        {pool ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END, (intptr_t)pool, NULL},
        {MHD_OPTION_END, 0, NULL},
    };
    d->mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_request, d, MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
    if (!d->mhd) {
        snprintf(err, errlen, "cannot listen on %s (in use, or not an address of this machine)", cfg->listen);
        free_daemon(d);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d->mhd, MHD_DAEMON_INFO_BIND_PORT);
    d->port = info ? info->port : 0;
    return d;
}

int cs_daemon_port(const cs_daemon *d)
{
    return d->port;
}

void cs_daemon_quiesce(cs_daemon *d)
{
    if (d->quiesced == MHD_INVALID_SOCKET) d->quiesced = MHD_quiesce_daemon(d->mhd);
}

int cs_daemon_drain(cs_daemon *d, double seconds)
{
    double end = cs_now() + seconds;
    for (;;) {
        cs_guard_stats gs;
        cs_guard_stats_get(d->guard, &gs);
        if (cs_metrics_in_flight_now() == 0 && gs.uploads == 0) return 1;
        if (cs_now() > end) return 0;
        usleep(20000);
    }
}

void cs_daemon_stop(cs_daemon *d)
{
    if (d) free_daemon(d);
}
