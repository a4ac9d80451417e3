/*
 * daemon.c - libmicrohttpd glue: the only file (with api/upload.c) that knows it.
 *
 * Life of a request (libmicrohttpd calls the handler several times):
 *   1st call   route it; a 404/405, or a Content-Length above the limit (413), is
 *              answered at once, before any of the body is read;
 *   next calls append the body chunks to the upload, counting bytes as they stream
 *              (a chunked body past the limit is dropped unread and answered 413 at its
 *              end, or loses its connection if it goes on past twice the limit);
 *   last call  dispatch to the API, queue its reply;
 *   completed  one access-log line, the metrics, free the request state.
 *
 * Threading (measured with wrk, see the README's HTTP API section): by default a pool of --threads
 * workers polling with poll(). It matches the other modes' throughput and bounds the
 * requests computed at once to the number of workers (one thread per connection would
 * run as many forward passes as there are connections), and it recovers at once after
 * a burst past the connection limit, which the epoll pool of libmicrohttpd 0.9.75 has
 * been seen not to do. "epoll" and "thread" stay selectable with --http-mode.
 */
#include "daemon.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "api.h"
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
};

typedef struct {
    double t0;
    const cs_route *route;
    int status_early; /* an error decided while the body streamed in */
    size_t discarded; /* body bytes of a route that takes none */
    cs_upload *upload;
    cs_req req;
    char method[16];
    char path[1024];
    int status;
    size_t bytes;
} request_state;

static const char *query_lookup(void *transport, const char *key)
{
    return MHD_lookup_connection_value(transport, MHD_GET_ARGUMENT_KIND, key);
}

static const char *header_lookup(void *transport, const char *key)
{
    return MHD_lookup_connection_value(transport, MHD_HEADER_KIND, key);
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
    st->status = rep->status;
    st->bytes = rep->len;
    enum MHD_Result ok = MHD_queue_response(c, (unsigned)rep->status, r);
    MHD_destroy_response(r);
    return ok;
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
                       cs_api.max_upload);
        break;
    case 429:
        cs_reply_error(&rep, 429, "too_many_requests", "the service is answering %d requests already; try again",
                       cs_metrics_in_flight_now() - 1);
        cs_reply_header(&rep, "Retry-After", "1");
        break;
    case 500: cs_reply_internal(&rep, "out of memory"); break;
    default: cs_reply_error(&rep, 400, "bad_request", "malformed multipart/form-data body"); break;
    }
    return send_reply(c, st, &rep);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **req_cls)
{
    (void)version;
    cs_daemon *d = cls;
    request_state *st = *req_cls;
    if (!st) {
        st = calloc(1, sizeof *st);
        if (!st) return MHD_NO;
        *req_cls = st;
        st->t0 = cs_now();
        cs_metrics_in_flight(1);
        snprintf(st->method, sizeof st->method, "%s", method);
        snprintf(st->path, sizeof st->path, "%s", url);
        st->req.method = st->method;
        st->req.path = st->path;
        st->req.query_fn = query_lookup;
        st->req.header_fn = header_lookup;
        st->req.transport = c;
        int status;
        char allow[64];
        st->route = cs_route_match(method, st->path, &st->req, &status, allow, sizeof allow);
        if (!st->route) return send_error(c, st, status, allow);
        /* Shed load before reading any body; probes and metrics always answer, so an
         * overloaded service still says so. */
        if (cs_metrics_in_flight_now() > d->max_in_flight && !(st->route->flags & CS_ROUTE_PROBE))
            return send_error(c, st, 429, NULL);
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > d->max_upload) return send_error(c, st, 413, NULL);
        if (st->route->flags & (CS_ROUTE_UPLOAD | CS_ROUTE_JSON)) {
            const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
            st->upload = cs_upload_new(c, ct, d->max_upload, (st->route->flags & CS_ROUTE_UPLOAD) != 0);
            if (!st->upload) return MHD_NO;
        }
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        st->discarded += n;
        if (st->status_early) {
            /* A chunked body gives no length up front, and libmicrohttpd 0.9.75 cannot
             * queue a reply in the middle of a body: what is past the limit is dropped
             * unread into memory, and a body that goes on far beyond it loses its
             * connection rather than keep us reading. */
            return st->discarded > 2 * d->max_upload + (1u << 20) ? MHD_NO : MHD_YES;
        }
        if (st->upload) st->status_early = cs_upload_feed(st->upload, upload_data, n);
        else if (st->discarded > d->max_upload) st->status_early = 413;
        return MHD_YES;
    }
    if (st->status_early) return send_error(c, st, st->status_early, NULL);
    if (st->upload) {
        int bad = cs_upload_finish(st->upload, &st->req);
        if (bad) return send_error(c, st, bad, NULL);
    }
    cs_reply rep = {0};
    cs_api_dispatch(st->route, &st->req, &rep);
    if (!rep.status) cs_reply_internal(&rep, "no reply");
    return send_reply(c, st, &rep);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **req_cls, enum MHD_RequestTerminationCode toe)
{
    (void)cls, (void)c;
    request_state *st = *req_cls;
    if (!st) return;
    double s = cs_now() - st->t0;
    /* A request that ended without a reply (client gone, timeout) logs status 0. */
    int status = toe == MHD_REQUEST_TERMINATED_COMPLETED_OK || st->status ? st->status : 0;
    cs_log_access(st->method, st->path, status, st->bytes, s * 1e3);
    int route_index = st->route ? (int)(st->route - cs_routes) : -1;
    cs_metrics_request(route_index, st->method, status, s, st->req.stage_s);
    cs_metrics_in_flight(-1);
    cs_upload_free(st->upload);
    free(st);
    *req_cls = NULL;
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
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG;
    unsigned pool = 0;
    if (!strcmp(cfg->http_mode, "thread")) {
        flags |= MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL;
    } else {
        flags |= !strcmp(cfg->http_mode, "epoll") ? MHD_USE_EPOLL : MHD_USE_POLL;
        pool = cfg->threads > 1 ? (unsigned)cfg->threads : 0;
    }
    if (family == 6) flags |= MHD_USE_IPv6;
    struct MHD_OptionItem opts[] = {
        {MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)mhd_log, NULL}, /* first, or it is ignored */
        {MHD_OPTION_SOCK_ADDR, 0, &ss},
        {MHD_OPTION_CONNECTION_LIMIT, (intptr_t)cfg->max_connections, NULL},
        {MHD_OPTION_CONNECTION_TIMEOUT, (intptr_t)cfg->timeout, NULL},
        {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, NULL},
        {MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024, NULL},
        {MHD_OPTION_LISTENING_ADDRESS_REUSE, 1, NULL},
        {pool ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END, (intptr_t)pool, NULL},
        {MHD_OPTION_END, 0, NULL},
    };
    d->mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_request, d, MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
    if (!d->mhd) {
        snprintf(err, errlen, "cannot listen on %s (in use, or not an address of this machine)", cfg->listen);
        free(d);
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
    (void)d;
    double end = cs_now() + seconds;
    while (cs_metrics_in_flight_now() > 0) {
        if (cs_now() > end) return 0;
        usleep(20000);
    }
    return 1;
}

void cs_daemon_stop(cs_daemon *d)
{
    if (!d) return;
    MHD_stop_daemon(d->mhd);
    if (d->quiesced != MHD_INVALID_SOCKET) close(d->quiesced);
    free(d);
}
