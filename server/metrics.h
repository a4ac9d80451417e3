/*
 * metrics.h - counters for GET /metrics in the Prometheus text format.
 *
 * Recording is lock-free (atomics), so every request thread counts itself.
 */
#ifndef CS_SERVER_METRICS_H
#define CS_SERVER_METRICS_H

#include <stddef.h>

#include "http.h"

/* route_index: position in cs_routes, or -1 for a path no route matched. */
void cs_metrics_request(int route_index, const char *method, int status, double seconds,
                        const double stage_s[CS_STAGE_COUNT]);
/* Requests past their body and being answered (probes not counted); returns the count
 * after adding delta. */
int cs_metrics_in_flight(int delta);
int cs_metrics_in_flight_now(void);

/* Why a request was refused for load or cut (the convscope_http_shed_total series). */
typedef enum {
    CS_SHED_IN_FLIGHT,     /* 429: --max-in-flight */
    CS_SHED_QUEUE_FULL,    /* 503: no place in the compute queue */
    CS_SHED_LATE,          /* 503: waited past --request-deadline */
    CS_SHED_UPLOAD_SLOTS,  /* 503: --max-uploads bodies arriving */
    CS_SHED_UPLOAD_BUDGET, /* 503: --upload-budget bytes held */
    CS_SHED_FRAMING,       /* 400: a malformed request head */
    CS_SHED_COUNT
} cs_shed_reason;
void cs_metrics_shed(cs_shed_reason why);
/* A request ran on a compute worker after waiting wait_s for one. */
void cs_metrics_compute(int route_index, double wait_s, double run_s);

/* The connection guard and compute pool whose gauges /metrics shows (NULL: none). */
struct cs_guard;
struct cs_compute;
void cs_metrics_attach(struct cs_guard *g, struct cs_compute *p);
/* The whole exposition, malloc'd (the API's metrics_text hook). */
char *cs_metrics_text(size_t *len);

#endif
