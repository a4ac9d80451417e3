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
void cs_metrics_in_flight(int delta);
int cs_metrics_in_flight_now(void);
/* The whole exposition, malloc'd (the API's metrics_text hook). */
char *cs_metrics_text(size_t *len);

#endif
