/*
 * api.h - the API layer's entry points for the server: settings, routing, dispatch.
 *
 * The server sets cs_api once at startup (before the first request), matches each
 * request with cs_route_match, reads the body when the route takes one, and then calls
 * cs_api_dispatch. Everything here is safe to call from many threads at once.
 */
#ifndef CS_API_API_H
#define CS_API_API_H

#include <stddef.h>

#include "http.h"

typedef struct {
    const char *token;        /* bearer token for state-changing calls; NULL/"" = none */
    size_t max_upload;        /* bytes of one request body */
    size_t max_model_upload;  /* bytes of one model upload (POST /v1/models) */
    long max_pixels;          /* width * height of one decoded image */
    long max_request_pixels;  /* width * height summed over the images of one request */
    double decode_seconds;    /* decoding time of the images of one request */
    int insecure_open;        /* listening beyond loopback without a token, on purpose */
    const char *static_dir;   /* the front-end's files */
    const char *openapi_path; /* the contract served at /openapi.yaml */
    const char *data_dir;     /* Fashion-MNIST IDX files */
    int max_jobs_kept;        /* finished jobs remembered for GET /v1/jobs */
    int request_threads;      /* threads one request may split its layers over (1: none) */
    int http_threads;         /* HTTP worker threads */
    /* The server's Prometheus text (malloc'd), for GET /metrics. */
    char *(*metrics_text)(size_t *len);
} cs_api_settings;

extern cs_api_settings cs_api;

enum {
    CS_ROUTE_AUTH = 1,   /* changes state: needs the bearer token when one is set */
    CS_ROUTE_UPLOAD = 2, /* takes images: raw body or multipart `image` parts */
    CS_ROUTE_JSON = 4,   /* takes a JSON body (may be empty) */
    CS_ROUTE_PROBE = 8,  /* health, readiness, metrics: never refused for load */
    CS_ROUTE_COMPUTE = 16, /* model work: runs on the compute workers, not the connection threads */
    CS_ROUTE_MODEL = 32,   /* takes a model file: a multipart form whose every part is kept,
                              up to max_model_upload bytes */
};

typedef void (*cs_handler)(cs_req *req, cs_reply *rep);

typedef struct {
    const char *method;
    const char *pattern; /* "/v1/models/{model}", "{name}.png" inside a segment, "{path*}" */
    cs_handler handler;
    int flags;
} cs_route;

/* The route table (terminated by a NULL method); the openapi test walks it. */
extern const cs_route cs_routes[];

/* Finds the route for method and path and captures its parameters into req.
 * Returns NULL with *status 404, or 405 with `allow` listing the methods the path
 * takes ("GET, HEAD"). HEAD matches GET routes. */
const cs_route *cs_route_match(const char *method, const char *path, cs_req *req, int *status,
                               char *allow, size_t allow_len);

/* 1 when the request may call the route (a route that changes state needs the bearer
 * token when one is set); else 0 with the 401 reply in rep. The server asks before it
 * reads a body, so nobody without the token can make it read one. */
int cs_api_authorized(const cs_route *route, const cs_req *req, cs_reply *rep);

/* The largest body the route takes: max_model_upload for model uploads, else max_upload. */
size_t cs_api_body_limit(const cs_route *route);

/* Runs the route's handler after the generic checks (bearer token). rep starts zeroed. */
void cs_api_dispatch(const cs_route *route, cs_req *req, cs_reply *rep);

/* Starts and stops what the API keeps between requests (models, jobs, datasets). */
struct cs_registry_config;
int cs_api_start(const struct cs_registry_config *models, char *err, size_t errlen);
void cs_api_stop(void);

#endif
