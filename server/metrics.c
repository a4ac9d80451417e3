/*
 * metrics.c - request counts by route template and status, latency histograms,
 * time per stage (decode, forward, backward, draw, encode), requests in flight,
 * requests refused for load, the connection guard's and compute queue's gauges,
 * compute wait and run time per route, training jobs by state and the served model
 * versions.
 *
 * Path templates, not raw paths, label the series: a raw path would make one series
 * per image index or job id and grow without bound.
 */
#include "metrics.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "compute.h"
#include "guard.h"
#include "jobs.h"
#include "registry.h"

#define MAX_ROUTES 40
static const int k_status[] = {200, 202, 204, 206, 304, 400, 401, 403, 404, 405, 409,
                               413, 415, 422, 429, 500, 503};
#define N_STATUS (int)(sizeof k_status / sizeof k_status[0])
static const double k_buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                   0.1,    0.25,  0.5,    1,     2.5,  5,     10};
#define N_BUCKETS (int)(sizeof k_buckets / sizeof k_buckets[0])
static const char *const k_stage_names[CS_STAGE_COUNT] = {"decode", "forward", "backward", "draw",
                                                          "encode"};

/* Slot MAX_ROUTES counts the requests no route matched; the status slot N_STATUS
 * counts any status not listed. */
static atomic_ulong g_count[MAX_ROUTES + 1][N_STATUS + 1];
static atomic_ulong g_hist[MAX_ROUTES + 1][N_BUCKETS + 1];
static atomic_ulong g_sum_us[MAX_ROUTES + 1];
static atomic_ulong g_stage_us[CS_STAGE_COUNT], g_stage_n[CS_STAGE_COUNT];
static atomic_int g_in_flight;
static atomic_ulong g_shed[CS_SHED_COUNT];
static atomic_ulong g_compute_n[MAX_ROUTES + 1], g_compute_wait_us[MAX_ROUTES + 1], g_compute_run_us[MAX_ROUTES + 1];
static const char *const k_shed_names[CS_SHED_COUNT] = {"in_flight",     "queue_full",    "late",
                                                        "upload_places", "upload_budget", "framing"};
static struct cs_guard *g_guard;
static struct cs_compute *g_compute;

void cs_metrics_request(int route_index, const char *method, int status, double seconds,
                        const double stage_s[CS_STAGE_COUNT])
{
    (void)method; /* a route is one method and one template */
    int r = route_index >= 0 && route_index < MAX_ROUTES ? route_index : MAX_ROUTES;
    int s = N_STATUS;
    for (int i = 0; i < N_STATUS; i++)
        if (k_status[i] == status) s = i;
    atomic_fetch_add_explicit(&g_count[r][s], 1, memory_order_relaxed);
    int b = N_BUCKETS;
    for (int i = 0; i < N_BUCKETS; i++)
        if (seconds <= k_buckets[i]) {
            b = i;
            break;
        }
    atomic_fetch_add_explicit(&g_hist[r][b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&g_sum_us[r], (unsigned long)(seconds * 1e6), memory_order_relaxed);
    for (int i = 0; stage_s && i < CS_STAGE_COUNT; i++) {
        if (stage_s[i] <= 0) continue;
        atomic_fetch_add_explicit(&g_stage_us[i], (unsigned long)(stage_s[i] * 1e6), memory_order_relaxed);
        atomic_fetch_add_explicit(&g_stage_n[i], 1, memory_order_relaxed);
    }
}

int cs_metrics_in_flight(int delta)
{
    return atomic_fetch_add(&g_in_flight, delta) + delta;
}

void cs_metrics_shed(cs_shed_reason why)
{
    if ((int)why >= 0 && why < CS_SHED_COUNT) atomic_fetch_add_explicit(&g_shed[why], 1, memory_order_relaxed);
}

void cs_metrics_compute(int route_index, double wait_s, double run_s)
{
    int r = route_index >= 0 && route_index < MAX_ROUTES ? route_index : MAX_ROUTES;
    atomic_fetch_add_explicit(&g_compute_n[r], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&g_compute_wait_us[r], (unsigned long)(wait_s * 1e6), memory_order_relaxed);
    atomic_fetch_add_explicit(&g_compute_run_us[r], (unsigned long)(run_s * 1e6), memory_order_relaxed);
}

void cs_metrics_attach(struct cs_guard *g, struct cs_compute *p)
{
    g_guard = g;
    g_compute = p;
}

int cs_metrics_in_flight_now(void)
{
    return atomic_load(&g_in_flight);
}

typedef struct {
    char *p;
    size_t len, cap;
    int failed;
} text_buf;

static void out(text_buf *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out(text_buf *t, const char *fmt, ...)
{
    if (t->failed) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->p + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->failed = 1;
            return;
        }
        if ((size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap * 2 + (size_t)n + 1;
        char *q = realloc(t->p, cap);
        if (!q) {
            t->failed = 1;
            return;
        }
        t->p = q;
        t->cap = cap;
    }
}

static void route_labels(int r, const char **method, const char **route)
{
    if (r < MAX_ROUTES && cs_routes[r].method) {
        *method = cs_routes[r].method;
        *route = cs_routes[r].pattern;
    } else {
        *method = "";
        *route = "unmatched";
    }
}

char *cs_metrics_text(size_t *len)
{
    text_buf t = {malloc(16384), 0, 16384, 0};
    if (!t.p) return NULL;
    int n_routes = 0;
    while (cs_routes[n_routes].method && n_routes < MAX_ROUTES) n_routes++;

    out(&t, "# HELP convscope_http_requests_total HTTP requests by route template, method and status.\n"
            "# TYPE convscope_http_requests_total counter\n");
    for (int r = 0; r <= MAX_ROUTES; r++) {
        if (r >= n_routes && r != MAX_ROUTES) continue;
        const char *m, *route;
        route_labels(r, &m, &route);
        for (int s = 0; s <= N_STATUS; s++) {
            unsigned long c = atomic_load(&g_count[r][s]);
            if (!c) continue;
            if (s < N_STATUS)
                out(&t, "convscope_http_requests_total{method=\"%s\",route=\"%s\",status=\"%d\"} %lu\n", m,
                    route, k_status[s], c);
            else
                out(&t, "convscope_http_requests_total{method=\"%s\",route=\"%s\",status=\"other\"} %lu\n",
                    m, route, c);
        }
    }
    out(&t, "# HELP convscope_http_request_duration_seconds Time from the request's first byte to the reply.\n"
            "# TYPE convscope_http_request_duration_seconds histogram\n");
    for (int r = 0; r <= MAX_ROUTES; r++) {
        if (r >= n_routes && r != MAX_ROUTES) continue;
        const char *m, *route;
        route_labels(r, &m, &route);
        unsigned long cum = 0;
        for (int b = 0; b <= N_BUCKETS; b++) cum += atomic_load(&g_hist[r][b]);
        if (!cum) continue;
        cum = 0;
        for (int b = 0; b < N_BUCKETS; b++) {
            cum += atomic_load(&g_hist[r][b]);
            out(&t, "convscope_http_request_duration_seconds_bucket{method=\"%s\",route=\"%s\",le=\"%g\"} %lu\n",
                m, route, k_buckets[b], cum);
        }
        cum += atomic_load(&g_hist[r][N_BUCKETS]);
        out(&t, "convscope_http_request_duration_seconds_bucket{method=\"%s\",route=\"%s\",le=\"+Inf\"} %lu\n",
            m, route, cum);
        out(&t, "convscope_http_request_duration_seconds_sum{method=\"%s\",route=\"%s\"} %.6f\n", m, route,
            (double)atomic_load(&g_sum_us[r]) * 1e-6);
        out(&t, "convscope_http_request_duration_seconds_count{method=\"%s\",route=\"%s\"} %lu\n", m, route, cum);
    }
    out(&t, "# HELP convscope_stage_seconds_total Time spent per stage of image requests.\n"
            "# TYPE convscope_stage_seconds_total counter\n");
    for (int i = 0; i < CS_STAGE_COUNT; i++)
        out(&t, "convscope_stage_seconds_total{stage=\"%s\"} %.6f\n", k_stage_names[i],
            (double)atomic_load(&g_stage_us[i]) * 1e-6);
    out(&t, "# HELP convscope_stage_requests_total Requests that went through each stage.\n"
            "# TYPE convscope_stage_requests_total counter\n");
    for (int i = 0; i < CS_STAGE_COUNT; i++)
        out(&t, "convscope_stage_requests_total{stage=\"%s\"} %lu\n", k_stage_names[i],
            atomic_load(&g_stage_n[i]));
    out(&t, "# HELP convscope_http_requests_in_flight Requests past their body and being answered now (probes not counted).\n"
            "# TYPE convscope_http_requests_in_flight gauge\nconvscope_http_requests_in_flight %d\n",
        atomic_load(&g_in_flight));
    out(&t, "# HELP convscope_http_shed_total Requests refused for load, or for a malformed head, by reason.\n"
            "# TYPE convscope_http_shed_total counter\n");
    for (int i = 0; i < CS_SHED_COUNT; i++)
        out(&t, "convscope_http_shed_total{reason=\"%s\"} %lu\n", k_shed_names[i], atomic_load(&g_shed[i]));
    if (g_guard) {
        cs_guard_stats gs;
        cs_guard_stats_get(g_guard, &gs);
        out(&t, "# HELP convscope_http_connections Connections open now.\n"
                "# TYPE convscope_http_connections gauge\nconvscope_http_connections %ld\n", gs.connections);
        out(&t, "# HELP convscope_http_uploads Request bodies arriving now.\n"
                "# TYPE convscope_http_uploads gauge\nconvscope_http_uploads %ld\n", gs.uploads);
        out(&t, "# HELP convscope_http_upload_bytes Bytes reserved by request bodies now (arriving or held until the reply).\n"
                "# TYPE convscope_http_upload_bytes gauge\nconvscope_http_upload_bytes %zu\n", gs.bytes_held);
        out(&t, "# HELP convscope_http_connections_cut_total Connections cut: headers past their deadline, or a body below the minimum rate.\n"
                "# TYPE convscope_http_connections_cut_total counter\n"
                "convscope_http_connections_cut_total{reason=\"header_timeout\"} %lu\n"
                "convscope_http_connections_cut_total{reason=\"slow_body\"} %lu\n", gs.cut_headers, gs.cut_slow_body);
    }
    if (g_compute) {
        cs_compute_stats cs;
        cs_compute_stats_get(g_compute, &cs);
        out(&t, "# HELP convscope_compute_workers Compute workers, and how many are running a request now.\n"
                "# TYPE convscope_compute_workers gauge\n"
                "convscope_compute_workers{state=\"all\"} %ld\nconvscope_compute_workers{state=\"busy\"} %ld\n",
            cs.workers, cs.running);
        out(&t, "# HELP convscope_compute_queue Requests waiting for a compute worker now, and the places.\n"
                "# TYPE convscope_compute_queue gauge\n"
                "convscope_compute_queue{state=\"waiting\"} %ld\nconvscope_compute_queue{state=\"places\"} %ld\n",
            cs.queued, cs.capacity);
        out(&t, "# HELP convscope_compute_requests_total Requests run on a compute worker, by route.\n"
                "# TYPE convscope_compute_requests_total counter\n"
                "# HELP convscope_compute_wait_seconds_total Time those requests waited for a worker.\n"
                "# TYPE convscope_compute_wait_seconds_total counter\n"
                "# HELP convscope_compute_run_seconds_total Time workers spent on them.\n"
                "# TYPE convscope_compute_run_seconds_total counter\n");
        for (int r = 0; r < n_routes; r++) {
            unsigned long n = atomic_load(&g_compute_n[r]);
            if (!n) continue;
            const char *m, *route;
            route_labels(r, &m, &route);
            out(&t, "convscope_compute_requests_total{method=\"%s\",route=\"%s\"} %lu\n", m, route, n);
            out(&t, "convscope_compute_wait_seconds_total{method=\"%s\",route=\"%s\"} %.6f\n", m, route,
                (double)atomic_load(&g_compute_wait_us[r]) * 1e-6);
            out(&t, "convscope_compute_run_seconds_total{method=\"%s\",route=\"%s\"} %.6f\n", m, route,
                (double)atomic_load(&g_compute_run_us[r]) * 1e-6);
        }
    }

    int counts[CS_JOB_STATES];
    cs_jobs_count(counts);
    out(&t, "# HELP convscope_training_jobs Training jobs known, by state.\n"
            "# TYPE convscope_training_jobs gauge\n");
    for (int i = 0; i < CS_JOB_STATES; i++)
        out(&t, "convscope_training_jobs{state=\"%s\"} %d\n", cs_job_state_name(i), counts[i]);

    out(&t, "# HELP convscope_model_version Version of each served model (0: none loaded).\n"
            "# TYPE convscope_model_version gauge\n");
    for (int i = 0; i < cs_registry_count(); i++) {
        cs_served_model *s = cs_registry_at(i);
        if (!s) continue; /* removed */
        char reason[8];
        int version, training;
        cs_served_state(s, reason, sizeof reason, &version, &training);
        out(&t, "convscope_model_version{model=\"%s\"} %d\n", s->name, version);
    }
    out(&t, "# HELP convscope_model_ready Whether each model answers requests (1) or not (0).\n"
            "# TYPE convscope_model_ready gauge\n");
    for (int i = 0; i < cs_registry_count(); i++) {
        cs_served_model *s = cs_registry_at(i);
        if (!s) continue; /* removed */
        char reason[8];
        int version, training;
        cs_model_state st = cs_served_state(s, reason, sizeof reason, &version, &training);
        out(&t, "convscope_model_ready{model=\"%s\"} %d\n", s->name, st == CS_MODEL_READY);
    }
    if (t.failed) {
        free(t.p);
        return NULL;
    }
    *len = t.len;
    return t.p;
}
