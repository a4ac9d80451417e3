/*
 * router.c - the route table and path matching.
 *
 * The table is data and mirrors openapi.yaml (tests/api/test_openapi.c checks both
 * ways). Matching is per path segment: a literal, a {param} that may sit between a
 * literal prefix and suffix inside the segment ("{index}.png"), or a final {name*}
 * that takes the rest of the path. Parameters never contain '/'.
 */
#include <stdio.h>
#include <string.h>

#include "api.h"
#include "parallel.h"
#include "handlers.h"
#include "params.h"
#include "reply.h"

cs_api_settings cs_api;

const cs_route cs_routes[] = {
    {"GET", "/", cs_h_index, 0},
    {"GET", "/static/{path*}", cs_h_static, 0},
    {"GET", "/openapi.yaml", cs_h_openapi, 0},
    {"GET", "/healthz", cs_h_healthz, CS_ROUTE_PROBE},
    {"GET", "/readyz", cs_h_readyz, CS_ROUTE_PROBE},
    {"GET", "/metrics", cs_h_metrics, CS_ROUTE_PROBE},
    {"GET", "/v1/models", cs_h_models_list, 0},
    {"POST", "/v1/models", cs_h_model_upload, CS_ROUTE_AUTH | CS_ROUTE_MODEL | CS_ROUTE_COMPUTE},
    {"GET", "/v1/models/{model}", cs_h_model_summary, 0},
    {"DELETE", "/v1/models/{model}", cs_h_model_delete, CS_ROUTE_AUTH},
    {"POST", "/v1/models/{model}/predict", cs_h_predict, CS_ROUTE_UPLOAD | CS_ROUTE_COMPUTE},
    {"GET", "/v1/models/{model}/layers/{layer}/filters.png", cs_h_filters, CS_ROUTE_COMPUTE},
    {"POST", "/v1/models/{model}/layers/{layer}/feature-maps.png", cs_h_feature_maps,
     CS_ROUTE_UPLOAD | CS_ROUTE_COMPUTE},
    {"POST", "/v1/models/{model}/layers/{layer}/activations", cs_h_activations, CS_ROUTE_UPLOAD | CS_ROUTE_COMPUTE},
    {"GET", "/v1/models/{model}/layers/{layer}/weights", cs_h_weights, CS_ROUTE_COMPUTE},
    {"POST", "/v1/models/{model}/gradcam", cs_h_gradcam, CS_ROUTE_UPLOAD | CS_ROUTE_COMPUTE},
    {"POST", "/v1/models/{model}/explain", cs_h_explain, CS_ROUTE_UPLOAD | CS_ROUTE_COMPUTE},
    {"POST", "/v1/models/{model}/explain/compare", cs_h_explain_compare, CS_ROUTE_UPLOAD | CS_ROUTE_COMPUTE},
    {"POST", "/v1/models/{model}/explain/evaluate", cs_h_explain_evaluate, 0},
    {"POST", "/v1/models/{model}/train", cs_h_train, CS_ROUTE_AUTH | CS_ROUTE_JSON},
    {"GET", "/v1/models/{model}/versions", cs_h_versions, 0},
    {"GET", "/v1/models/{model}/versions/compare", cs_h_versions_compare, CS_ROUTE_COMPUTE},
    {"POST", "/v1/models/{model}/versions/{version}/serve", cs_h_version_serve, CS_ROUTE_AUTH},
    {"POST", "/v1/models/{model}/evaluation", cs_h_evaluation_start, 0},
    {"GET", "/v1/models/{model}/evaluation", cs_h_evaluation, 0},
    {"GET", "/v1/models/{model}/evaluation/confusion.png", cs_h_evaluation_png, CS_ROUTE_COMPUTE},
    {"POST", "/v1/models/{model}/projector", cs_h_projector_start, 0},
    {"GET", "/v1/models/{model}/projector", cs_h_projector, 0},
    {"POST", "/v1/models/{model}/layers/{layer}/atlas", cs_h_atlas_start, 0},
    {"GET", "/v1/models/{model}/layers/{layer}/atlas", cs_h_atlas, 0},
    {"GET", "/v1/models/{model}/layers/{layer}/atlas/{channel}.png", cs_h_atlas_png, CS_ROUTE_COMPUTE},
    {"GET", "/v1/datasets/fashion-mnist", cs_h_dataset_info, 0},
    {"GET", "/v1/datasets/fashion-mnist/{split}/{index}.png", cs_h_dataset_image, 0},
    {"GET", "/v1/jobs", cs_h_jobs_list, 0},
    {"GET", "/v1/jobs/{id}", cs_h_job_status, 0},
    {"DELETE", "/v1/jobs/{id}", cs_h_job_cancel, CS_ROUTE_AUTH},
    {"GET", "/v1/jobs/{id}/snapshots", cs_h_job_snapshots, 0},
    {"GET", "/v1/jobs/{id}/snapshots/{epoch}/filters.png", cs_h_job_snapshot_png, CS_ROUTE_COMPUTE},
    {NULL, NULL, NULL, 0},
};

/* Length of the path segment starting at s (up to '/' or the end). */
static size_t seg_len(const char *s)
{
    const char *e = strchr(s, '/');
    return e ? (size_t)(e - s) : strlen(s);
}

/* Matches one pattern segment against one path segment, capturing a parameter. */
static int match_segment(const char *pat, size_t plen, const char *seg, size_t slen, cs_req *req)
{
    const char *open = memchr(pat, '{', plen);
    if (!open) return plen == slen && memcmp(pat, seg, slen) == 0;
    const char *close = memchr(open, '}', plen - (size_t)(open - pat));
    if (!close) return 0;
    size_t pre = (size_t)(open - pat), suf = plen - (size_t)(close + 1 - pat);
    if (slen < pre + suf + 1) return 0; /* parameters are never empty */
    if (memcmp(pat, seg, pre) != 0 || memcmp(close + 1, seg + slen - suf, suf) != 0) return 0;
    size_t vlen = slen - pre - suf;
    if (req->n_params >= CS_MAX_PATH_PARAMS || vlen >= sizeof req->param_values[0]) return 0;
    size_t nlen = (size_t)(close - open - 1);
    if (nlen >= sizeof req->param_names[0]) return 0;
    memcpy(req->param_names[req->n_params], open + 1, nlen);
    req->param_names[req->n_params][nlen] = 0;
    memcpy(req->param_values[req->n_params], seg + pre, vlen);
    req->param_values[req->n_params][vlen] = 0;
    req->n_params++;
    return 1;
}

static int match_path(const char *pattern, const char *path, cs_req *req)
{
    req->n_params = 0;
    if (*pattern != '/' || *path != '/') return 0;
    if (strcmp(pattern, "/") == 0) return strcmp(path, "/") == 0;
    const char *p = pattern + 1, *s = path + 1;
    for (;;) {
        size_t pl = seg_len(p), sl = seg_len(s);
        if (pl > 3 && p[0] == '{' && memcmp(p + pl - 2, "*}", 2) == 0) {
            /* Catch-all: the rest of the path, at least one character. */
            size_t rest = strlen(s);
            if (!rest || rest >= sizeof req->param_values[0] || req->n_params >= CS_MAX_PATH_PARAMS)
                return 0;
            snprintf(req->param_names[req->n_params], sizeof req->param_names[0], "%.*s",
                     (int)(pl - 3), p + 1);
            memcpy(req->param_values[req->n_params], s, rest + 1);
            req->n_params++;
            return 1;
        }
        if (!match_segment(p, pl, s, sl, req)) return 0;
        p += pl;
        s += sl;
        if (!*p || !*s) return !*p && !*s;
        p++, s++;
    }
}

const cs_route *cs_route_match(const char *method, const char *path, cs_req *req, int *status,
                               char *allow, size_t allow_len)
{
    const char *m = strcmp(method, "HEAD") == 0 ? "GET" : method;
    allow[0] = 0;
    /* Parameters are captured straight into req; a failed match leaves junk that the
     * next attempt resets. */
    for (const cs_route *r = cs_routes; r->method; r++) {
        if (strcmp(r->method, m) == 0 && match_path(r->pattern, path, req)) {
            req->route = r->pattern;
            *status = 200;
            return r;
        }
    }
    /* No route for this method: which methods does the path take? */
    for (const cs_route *r = cs_routes; r->method; r++) {
        if (!match_path(r->pattern, path, req) || strstr(allow, r->method)) continue;
        size_t n = strlen(allow);
        snprintf(allow + n, allow_len - n, "%s%s%s", n ? ", " : "", r->method,
                 strcmp(r->method, "GET") == 0 ? ", HEAD" : "");
    }
    req->n_params = 0;
    *status = allow[0] ? 405 : 404;
    return NULL;
}

/* Compares without an early exit, so the time taken does not reveal the token. */
static int token_equal(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned diff = (unsigned)(la ^ lb);
    for (size_t i = 0; i < la; i++) diff |= (unsigned)(a[i] ^ b[i % (lb ? lb : 1)]);
    return diff == 0;
}

int cs_api_authorized(const cs_route *route, const cs_req *req, cs_reply *rep)
{
    if (!(route->flags & CS_ROUTE_AUTH) || !cs_api.token || !cs_api.token[0]) return 1;
    const char *auth = cs_req_header(req, "Authorization");
    if (auth && strncmp(auth, "Bearer ", 7) == 0 && token_equal(auth + 7, cs_api.token)) return 1;
    cs_reply_error(rep, 401, "unauthorized", "this call changes state and needs 'Authorization: Bearer <token>'");
    cs_reply_header(rep, "WWW-Authenticate", "Bearer realm=\"convscope\"");
    return 0;
}

size_t cs_api_body_limit(const cs_route *route)
{
    return (route->flags & CS_ROUTE_MODEL) ? cs_api.max_model_upload : cs_api.max_upload;
}

void cs_api_dispatch(const cs_route *route, cs_req *req, cs_reply *rep)
{
    /* Set on every request: the server's threads are not ours to initialise. */
    cs_parallel_limit_this_thread(cs_api.request_threads);
    cs_reply_begin();
    if (!cs_api_authorized(route, req, rep)) return;
    if (!cs_query_check(req, rep)) return;
    route->handler(req, rep);
}
