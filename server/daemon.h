/*
 * daemon.h - the HTTP listener: libmicrohttpd, its threads, the compute workers and
 * the connection guard, and the per-request life cycle (framing check, route, bounded
 * body, dispatch, reply, access log, metrics).
 */
#ifndef CS_SERVER_DAEMON_H
#define CS_SERVER_DAEMON_H

#include <stddef.h>

#include "config.h"

typedef struct cs_daemon cs_daemon;

/* Binds cfg->listen and starts the worker threads. NULL with err on failure. */
cs_daemon *cs_daemon_start(const cs_config *cfg, char *err, size_t errlen);
/* The port actually bound (useful with port 0). */
int cs_daemon_port(const cs_daemon *d);
/* Stops accepting connections; requests in flight go on. */
void cs_daemon_quiesce(cs_daemon *d);
/* Waits until no request is being answered and no body arriving, or `seconds`
 * passed; 1 when idle. */
int cs_daemon_drain(cs_daemon *d, double seconds);
/* Answers what still waits for a compute worker (503), stops the threads and frees
 * everything. */
void cs_daemon_stop(cs_daemon *d);

#endif
