/*
 * http.h - one HTTP request and its reply, as the api/ layer sees them.
 *
 * The server fills a cs_req from the wire (libmicrohttpd lives in server/daemon.c and
 * api/upload.c only) and hands it to cs_api_dispatch; a handler reads the request,
 * writes one cs_reply and returns. The server then sends the reply, logs it and counts
 * it in the metrics. Handlers never see sockets or threads.
 *
 * Ownership: everything in a cs_req is borrowed for the duration of the call; a
 * cs_reply owns its body (malloc'd, freed by the server after sending).
 */
#ifndef CS_API_HTTP_H
#define CS_API_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "clock.h" /* cs_now(), for the stage times */

#define CS_MAX_PATH_PARAMS 4
#define CS_MAX_REPLY_HEADERS 10

/* Stages whose time the metrics report separately (seconds, summed per request). */
typedef enum {
    CS_STAGE_DECODE,
    CS_STAGE_FORWARD,
    CS_STAGE_BACKWARD,
    CS_STAGE_DRAW,
    CS_STAGE_ENCODE,
    CS_STAGE_COUNT
} cs_stage;

struct cs_upload;

/* One uploaded file: a raw body, or one part of a multipart form (`image` parts on the
 * image routes; every part of a model upload). */
typedef struct {
    const uint8_t *data;
    size_t len;
    const char *filename;     /* "" for a raw body */
    const char *content_type; /* as the client declared it, "" when none */
    const char *field;        /* the form field's name ("image"), "" for a raw body */
} cs_upload_file;

typedef struct cs_req {
    const char *method; /* "GET", "POST", ... ("HEAD" is routed as "GET") */
    const char *path;   /* decoded path without the query */
    const char *route;  /* the matched route template, for metrics and logs */
    /* path parameters captured by the router, e.g. {model} */
    int n_params;
    char param_names[CS_MAX_PATH_PARAMS][32];
    char param_values[CS_MAX_PATH_PARAMS][256];

    /* Query arguments and headers, looked up through the transport. */
    const char *(*query_fn)(void *transport, const char *key);
    const char *(*header_fn)(void *transport, const char *key);
    /* Every query argument with its decoded length (a %00 decodes to a NUL byte that
     * a C string would hide); stops at the first fn that returns nonzero and returns
     * that. May be NULL. */
    int (*query_each_fn)(void *transport, int (*fn)(void *arg, const char *key, size_t key_len, const char *value,
                                                    size_t value_len),
                         void *arg);
    void *transport;

    /* The body: uploaded files (images) or the raw bytes (JSON). */
    const cs_upload_file *files;
    int n_files;
    int n_files_over; /* `image` parts past CS_UPLOAD_MAX_FILES: counted, not kept */
    const uint8_t *body;
    size_t body_len;

    double stage_s[CS_STAGE_COUNT]; /* filled by handlers */
} cs_req;

typedef struct {
    int status;
    const char *content_type; /* static string */
    uint8_t *body;            /* owned, malloc'd; may be NULL with len 0 */
    size_t len;
    int n_headers;
    char header_names[CS_MAX_REPLY_HEADERS][32];
    char header_values[CS_MAX_REPLY_HEADERS][256];
} cs_reply;

/* The query argument `key`, or NULL. */
const char *cs_req_query(const cs_req *r, const char *key);
/* The request header `key` (case-insensitive), or NULL. */
const char *cs_req_header(const cs_req *r, const char *key);
/* The path parameter captured as {name}, or NULL. */
const char *cs_req_param(const cs_req *r, const char *name);
/* Adds the stage's time since t0 (cs_now() value) to the request. */
void cs_req_stage_add(cs_req *r, cs_stage s, double t0);
/* snprintf that may cut the text short on purpose (reasons, paths in messages). */
void cs_fmt(char *dst, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Adds a header to the reply (silently dropped past CS_MAX_REPLY_HEADERS). */
void cs_reply_header(cs_reply *rep, const char *name, const char *value);
/* Releases the body. */
void cs_reply_clear(cs_reply *rep);

#endif
