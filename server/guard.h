/*
 * guard.h - what one connection may cost: time to send its headers, the rate of its
 * body, and its share of the uploads in progress and of the bytes they hold.
 *
 * libmicrohttpd's timeout is an idle timeout: a client that sends one byte every few
 * seconds keeps its connection (and, while its body arrives, its request and buffers)
 * for ever. The guard keeps one record per connection and a sweeper thread that cuts
 * (shutdown(2)) a connection whose headers are not complete by their deadline, or
 * whose body falls below the minimum rate. Uploads have their own limits, apart from
 * the requests being answered: a number of bodies arriving at once and a budget of
 * bytes held by bodies (reserved from Content-Length before any of it is read, or as
 * a chunked body grows, and released when the request ends). The first small_body
 * bytes of every body are not charged to the budget (the places bound them), so
 * uploads of small images go on while big ones have spent it. One client address may
 * take at most half of the upload places, and beyond its first body at most half of
 * the budget, so a single address cannot lock everyone else out.
 *
 * A connection moves WAIT (headers expected by a deadline) -> BUSY (request being
 * answered) -> BODY (body arriving; optional) -> BUSY -> WAIT (kept alive) ... Every
 * call takes the guard's lock; none blocks otherwise. A NULL connection (its record
 * could not be allocated) is accepted everywhere and guarded by nothing.
 */
#ifndef CS_SERVER_GUARD_H
#define CS_SERVER_GUARD_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    double header_timeout; /* s from a connection's start to the end of its first request's headers */
    double idle_timeout;   /* s from a reply to the end of the next request's headers */
    long min_body_rate;    /* bytes/s a body must keep up over each header_timeout window; 0: none */
    int max_uploads;       /* bodies arriving at once */
    size_t upload_budget;  /* bytes held by bodies at once */
    size_t small_body;     /* bytes of each body not charged to the budget */
    int sweep_ms;          /* sweeper period; 0: no thread (cs_guard_sweep is called by hand) */
} cs_guard_limits;

typedef enum {
    CS_GUARD_OK = 0,
    CS_GUARD_NO_SLOT,   /* max_uploads bodies arriving (or this address's half of them) */
    CS_GUARD_NO_BUDGET, /* the bytes would pass the budget (or this address's half) */
    CS_GUARD_CUT,       /* the connection was cut by the sweeper */
} cs_guard_result;

typedef enum { CS_GUARD_CUT_NONE = 0, CS_GUARD_CUT_HEADERS, CS_GUARD_CUT_SLOW_BODY } cs_guard_cut_reason;

typedef struct {
    long connections, uploads;
    size_t bytes_held;
    unsigned long cut_headers, cut_slow_body, refused_slot, refused_budget;
} cs_guard_stats;

typedef struct cs_guard cs_guard;
typedef struct cs_guard_conn cs_guard_conn;

cs_guard *cs_guard_new(const cs_guard_limits *l);
void cs_guard_free(cs_guard *g);

/* A connection was accepted on fd from this address (bytes of the IP, no port). */
cs_guard_conn *cs_guard_open(cs_guard *g, int fd, const void *addr, unsigned addr_len);
/* Its socket is about to be closed; the record is freed. */
void cs_guard_close(cs_guard_conn *c);
/* The lane key of its address (see compute.h). */
uint64_t cs_guard_client(const cs_guard_conn *c);

/* A request's headers are complete: WAIT -> BUSY. CS_GUARD_CUT when too late. */
cs_guard_result cs_guard_request(cs_guard_conn *c);
/* Its body starts: takes an upload place and reserves `bytes` (Content-Length, or 0
 * for a chunked body) beyond the small_body allowance. BUSY -> BODY on CS_GUARD_OK. */
cs_guard_result cs_guard_upload(cs_guard_conn *c, size_t bytes);
/* n more body bytes arrived; `grow` reserves what of them is past the allowance (a
 * chunked body). */
cs_guard_result cs_guard_body(cs_guard_conn *c, size_t n, int grow);
/* The body is complete: gives the place back, keeps the bytes. BODY -> BUSY. */
void cs_guard_body_end(cs_guard_conn *c);
/* The request ended (reply sent or connection lost): releases its bytes. -> WAIT. */
void cs_guard_request_end(cs_guard_conn *c);
/* Why the sweeper cut this connection (CS_GUARD_CUT_NONE: it did not). */
cs_guard_cut_reason cs_guard_cut(const cs_guard_conn *c);

/* One pass of the sweeper at time `now` (cs_now() seconds). */
void cs_guard_sweep(cs_guard *g, double now);
void cs_guard_stats_get(cs_guard *g, cs_guard_stats *s);

#endif
