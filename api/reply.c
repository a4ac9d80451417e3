/*
 * reply.c - building reply bodies (JSON errors, JSON documents, PNG, bytes).
 *
 * One function builds every error, so the shape {"error":{"code","message"}} cannot
 * drift between handlers; it also strips control characters from the message.
 */
#include "reply.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Set when jansson could not allocate while this thread built a reply: a document
 * with a member silently missing (json_array_append_new of a NULL) must not go out
 * as if whole. Cleared when a request starts and when a reply is set. */
static _Thread_local int t_json_nomem;

static void *json_malloc_marking(size_t n)
{
    void *p = malloc(n);
    if (!p) t_json_nomem = 1;
    return p;
}

void cs_reply_track_json_allocations(void)
{
    json_set_alloc_funcs(json_malloc_marking, free);
}

void cs_reply_begin(void)
{
    t_json_nomem = 0;
}

void cs_fmt(char *dst, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dst, n, fmt, ap);
    va_end(ap);
}

const char *cs_req_query(const cs_req *r, const char *key)
{
    return r->query_fn ? r->query_fn(r->transport, key) : NULL;
}

const char *cs_req_header(const cs_req *r, const char *key)
{
    return r->header_fn ? r->header_fn(r->transport, key) : NULL;
}

const char *cs_req_param(const cs_req *r, const char *name)
{
    for (int i = 0; i < r->n_params; i++)
        if (strcmp(r->param_names[i], name) == 0) return r->param_values[i];
    return NULL;
}

void cs_req_stage_add(cs_req *r, cs_stage s, double t0)
{
    r->stage_s[s] += cs_now() - t0;
}

void cs_reply_header(cs_reply *rep, const char *name, const char *value)
{
    if (rep->n_headers >= CS_MAX_REPLY_HEADERS) return;
    snprintf(rep->header_names[rep->n_headers], sizeof rep->header_names[0], "%s", name);
    snprintf(rep->header_values[rep->n_headers], sizeof rep->header_values[0], "%s", value);
    rep->n_headers++;
}

void cs_reply_clear(cs_reply *rep)
{
    free(rep->body);
    rep->body = NULL;
    rep->len = 0;
}

/* Every reply ends here: whatever jansson failed to allocate for it has been judged
 * (cs_reply_json), so the note is cleared for the thread's next request. */
static void set_body(cs_reply *rep, int status, const char *type, uint8_t *body, size_t len)
{
    t_json_nomem = 0;
    cs_reply_clear(rep);
    rep->status = status;
    rep->content_type = type;
    rep->body = body;
    rep->len = len;
}

/* A fixed error body for when jansson cannot be used (its allocation failed, or the
 * document could not be built), or an empty body when even this copy cannot be made. */
static void fixed_error(cs_reply *rep, int status, const char *text)
{
    size_t n = strlen(text);
    char *body = malloc(n + 1);
    if (body) memcpy(body, text, n + 1);
    set_body(rep, status, body ? "application/json" : "text/plain", (uint8_t *)body, body ? n : 0);
}

/* The out_of_memory error without jansson (whose allocation just failed), or an
 * empty body when even this copy cannot be made. */
static void nomem_fallback(cs_reply *rep)
{
    fixed_error(rep, 503, "{\"error\":{\"code\":\"out_of_memory\",\"message\":\"out of memory while writing "
                          "the answer; try again\"}}\n");
    cs_reply_header(rep, "Retry-After", "1");
}

void cs_reply_json(cs_reply *rep, int status, json_t *doc)
{
    /* A document that could not be built (NULL) or written means jansson ran out of
     * memory: the same 503 as any other allocation, with no body to spare. */
    char *text = doc && !t_json_nomem ? json_dumps(doc, JSON_COMPACT | JSON_REAL_PRECISION(7)) : NULL;
    json_decref(doc);
    if (!doc && !t_json_nomem) { /* not memory: a value jansson refuses, a bug here */
        fixed_error(rep, 500, "{\"error\":{\"code\":\"internal\",\"message\":\"the answer could not be "
                              "written\"}}\n");
        return;
    }
    if (!text || t_json_nomem) {
        free(text);
        nomem_fallback(rep);
        return;
    }
    size_t n = strlen(text);
    /* A trailing newline makes curl output readable in a terminal. */
    char *body = realloc(text, n + 2);
    if (!body) {
        free(text);
        nomem_fallback(rep);
        return;
    }
    body[n] = '\n';
    body[n + 1] = 0;
    set_body(rep, status, "application/json", (uint8_t *)body, n + 1);
}

/* Length of the valid UTF-8 sequence at p (RFC 3629: no overlong forms, no
 * surrogates, nothing above U+10FFFF), or 0. */
static size_t utf8_len(const unsigned char *p)
{
    if (p[0] < 0x80) return 1;
    int n = p[0] >= 0xc2 && p[0] <= 0xdf ? 2 : p[0] >= 0xe0 && p[0] <= 0xef ? 3 : p[0] >= 0xf0 && p[0] <= 0xf4 ? 4 : 0;
    for (int i = 1; i < n; i++)
        if ((p[i] & 0xc0) != 0x80) return 0;
    if ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] >= 0xa0) || (p[0] == 0xf0 && p[1] < 0x90) ||
        (p[0] == 0xf4 && p[1] >= 0x90))
        return 0;
    return (size_t)n;
}

void cs_reply_error(cs_reply *rep, int status, const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* Messages echo what clients sent (file names, values): JSON takes only valid
     * UTF-8, and control characters have no place in a log or a terminal. */
    for (unsigned char *p = (unsigned char *)msg; *p;) {
        size_t n = utf8_len(p);
        if (n == 0) {
            *p++ = '?';
            continue;
        }
        if (*p < 0x20 || *p == 0x7f) *p = ' ';
        p += n;
    }
    json_t *doc = json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg);
    cs_reply_json(rep, status, doc); /* 503 out_of_memory when it cannot be built */
}

void cs_reply_png(cs_reply *rep, uint8_t *png, size_t len)
{
    set_body(rep, 200, "image/png", png, len);
}

void cs_reply_bytes(cs_reply *rep, int status, const char *content_type, const void *data, size_t len)
{
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy) {
        cs_reply_nomem(rep, "cannot copy the reply");
        return;
    }
    if (len) memcpy(copy, data, len);
    set_body(rep, status, content_type, copy, len);
}

int cs_reply_etag(const cs_req *req, cs_reply *rep, const char *etag)
{
    cs_reply_header(rep, "ETag", etag);
    cs_reply_header(rep, "Cache-Control", "no-cache");
    const char *inm = cs_req_header(req, "If-None-Match");
    if (!inm) return 0;
    /* A list of tags, or "*"; weak tags compare equal to strong ones for GET. */
    if (strcmp(inm, "*") == 0 || strstr(inm, etag)) {
        set_body(rep, 304, NULL, NULL, 0);
        return 1;
    }
    return 0;
}

void cs_reply_not_found(cs_reply *rep, const char *what, const char *name)
{
    cs_reply_error(rep, 404, "not_found", "no %s named '%s'", what, name ? name : "");
}

void cs_reply_internal(cs_reply *rep, const char *what)
{
    cs_reply_error(rep, 500, "internal", "%s", what);
}

void cs_reply_nomem(cs_reply *rep, const char *what)
{
    cs_reply_error(rep, 503, "out_of_memory", "%s: out of memory; try again", what);
    cs_reply_header(rep, "Retry-After", "1");
}

json_t *cs_json_number(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

int cs_reply_image(cs_req *req, cs_reply *rep, cs_image *img, const char *what)
{
    double t0 = cs_now();
    uint8_t *png = NULL;
    size_t len = 0;
    int rc = img ? cs_image_encode_png(img, &png, &len) : CS_IMG_NOMEM;
    cs_image_destroy(img);
    cs_req_stage_add(req, CS_STAGE_ENCODE, t0);
    if (rc != CS_IMG_OK) {
        /* Handlers check sizes before drawing, so a missing image is a failed allocation. */
        cs_reply_nomem(rep, what);
        return -1;
    }
    cs_reply_png(rep, png, len); /* headers set before (ETag, Cache-Control) are kept */
    return 0;
}
