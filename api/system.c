/*
 * system.c - the routes around the model: the browser front-end, the contract,
 * liveness, readiness and metrics.
 *
 * Static files are served only from the configured folder: the requested path must be
 * plain (letters, digits, '.', '-', '_', '/', no component starting with '.', so no
 * "..") and its real path must still lie inside the folder, so neither a crafted path
 * nor a symbolic link can reach anything else.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "api.h"
#include "handlers.h"
#include "registry.h"
#include "reply.h"
#include "resources.h"

#define MAX_STATIC_FILE (32L << 20)

static const char *content_type_of(const char *path)
{
    static const char *const types[][2] = {
        {".html", "text/html; charset=utf-8"}, {".js", "text/javascript; charset=utf-8"},
        {".mjs", "text/javascript; charset=utf-8"}, {".css", "text/css; charset=utf-8"},
        {".json", "application/json"}, {".png", "image/png"}, {".jpg", "image/jpeg"},
        {".jpeg", "image/jpeg"}, {".svg", "image/svg+xml"}, {".ico", "image/x-icon"},
        {".txt", "text/plain; charset=utf-8"}, {".yaml", "application/yaml"},
        {".woff2", "font/woff2"}, {".map", "application/json"}, {".webp", "image/webp"},
    };
    const char *dot = strrchr(path, '.');
    if (dot && !strchr(dot, '/'))
        for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
            if (strcmp(dot, types[i][0]) == 0) return types[i][1];
    return "application/octet-stream";
}

static int plain_path(const char *p)
{
    if (!*p || *p == '/') return 0;
    int at_start = 1;
    for (const char *c = p; *c; c++) {
        int ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
                 *c == '.' || *c == '-' || *c == '_' || *c == '/';
        if (!ok || (at_start && (*c == '.' || *c == '/'))) return 0;
        at_start = *c == '/';
    }
    return !at_start; /* no trailing slash */
}

/* Reads the file into the reply, with an ETag from its size and time. */
static void send_file(const cs_req *req, cs_reply *rep, const char *root, const char *rel, const char *type)
{
    char full[PATH_MAX], real_root[PATH_MAX], real_file[PATH_MAX];
    if ((size_t)snprintf(full, sizeof full, "%s/%s", root, rel) >= sizeof full || !realpath(root, real_root) ||
        !realpath(full, real_file)) {
        cs_reply_not_found(rep, "file", rel);
        return;
    }
    size_t rl = strlen(real_root);
    if (strncmp(real_file, real_root, rl) != 0 || real_file[rl] != '/') {
        cs_reply_not_found(rep, "file", rel);
        return;
    }
    struct stat st;
    FILE *f = fopen(real_file, "rb");
    if (!f || fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > MAX_STATIC_FILE) {
        if (f) fclose(f);
        cs_reply_not_found(rep, "file", rel);
        return;
    }
    char etag[64];
    snprintf(etag, sizeof etag, "\"f%lx-%lx\"", (unsigned long)st.st_size, (unsigned long)st.st_mtime);
    if (cs_reply_etag(req, rep, etag)) {
        fclose(f);
        return;
    }
    size_t n = (size_t)st.st_size;
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf || fread(buf, 1, n, f) != n) {
        free(buf);
        fclose(f);
        cs_reply_internal(rep, "cannot read the file");
        return;
    }
    fclose(f);
    cs_reply_clear(rep);
    rep->status = 200;
    rep->content_type = type;
    rep->body = buf;
    rep->len = n;
}

/* GET /  the browser front-end (static/index.html) */
void cs_h_index(cs_req *req, cs_reply *rep)
{
    struct stat st;
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/index.html", cs_api.static_dir);
    if (stat(path, &st) == 0) {
        send_file(req, rep, cs_api.static_dir, "index.html", "text/html; charset=utf-8");
        return;
    }
    static const char page[] =
        "<!doctype html><meta charset=utf-8><title>convscope</title>"
        "<h1>convscope</h1><p>The front-end is not installed. The API is described in "
        "<a href=\"/openapi.yaml\">/openapi.yaml</a>; the models are at <a href=\"/v1/models\">/v1/models</a>.</p>\n";
    cs_reply_bytes(rep, 200, "text/html; charset=utf-8", page, sizeof page - 1);
}

/* GET /static/{path*}  files of the front-end */
void cs_h_static(cs_req *req, cs_reply *rep)
{
    const char *rel = cs_req_param(req, "path");
    if (!plain_path(rel)) {
        cs_reply_not_found(rep, "file", rel);
        return;
    }
    send_file(req, rep, cs_api.static_dir, rel, content_type_of(rel));
}

/* GET /openapi.yaml */
void cs_h_openapi(cs_req *req, cs_reply *rep)
{
    char dir[PATH_MAX], *slash;
    snprintf(dir, sizeof dir, "%s", cs_api.openapi_path);
    slash = strrchr(dir, '/');
    const char *base = cs_api.openapi_path;
    if (slash) {
        *slash = 0;
        base = slash + 1;
    } else {
        snprintf(dir, sizeof dir, ".");
    }
    send_file(req, rep, dir, base, "application/yaml");
}

/* GET /healthz  liveness: the process answers */
void cs_h_healthz(cs_req *req, cs_reply *rep)
{
    (void)req;
    cs_reply_json(rep, 200, json_pack("{s:s}", "status", "ok"));
}

/* GET /readyz  readiness: 200 when every required model serves and none is still
 * loading; otherwise 503. Says per model why it is not ready, whether state-changing
 * calls need a token, and when the service is open beyond loopback without one. */
void cs_h_readyz(cs_req *req, cs_reply *rep)
{
    (void)req;
    json_t *models = json_object();
    int ready = 1;
    for (int i = 0; i < cs_registry_count(); i++) {
        cs_served_model *s = cs_registry_at(i);
        if (!s) continue; /* removed */
        char reason[512];
        int version, training;
        cs_model_state st = cs_served_state(s, reason, sizeof reason, &version, &training);
        if (st == CS_MODEL_LOADING || (s->required && st != CS_MODEL_READY)) ready = 0;
        json_t *m = json_pack("{s:s,s:b,s:b}", "status", cs_model_state_word(st, training), "ready", st == CS_MODEL_READY,
                              "required", s->required);
        if (version) json_object_set_new(m, "version", json_integer(version));
        if (reason[0]) json_object_set_new(m, "reason", json_string(reason));
        json_object_set_new(models, s->name, m);
    }
    const cs_resources *r = cs_resources_get();
    json_t *res = json_pack("{s:i,s:s,s:i,s:I,s:f,s:s,s:I,s:i,s:i}", "cpus", r->cpus, "cpu_source", r->cpu_source,
                            "affinity_cpus", r->affinity_cpus, "memory_bytes", (json_int_t)r->memory, "memory_mib",
                            r->memory / 1048576.0, "memory_source", r->memory_source, "rss_bytes",
                            (json_int_t)cs_resources_rss(), "http_threads", cs_api.http_threads, "compute_threads",
                            cs_api.request_threads);
    if (r->cpu_quota > 0) json_object_set_new(res, "cpu_quota", json_real(r->cpu_quota));
    json_t *doc = json_pack("{s:s,s:b,s:o,s:o,s:s}", "status", ready ? "ready" : "not_ready", "ready", ready, "models",
                            models, "resources", res, "auth", cs_api.token && cs_api.token[0] ? "token" : "none");
    /* Serving beyond loopback with nobody's token asked for is allowed (--insecure-open)
     * but never silent. */
    if (cs_api.insecure_open) {
        json_object_set_new(doc, "insecure_open", json_true());
        json_object_set_new(doc, "warning", json_string("listening beyond loopback without a token "
                                                        "(--insecure-open): anyone who can connect may "
                                                        "train and cancel jobs"));
    }
    cs_reply_json(rep, ready ? 200 : 503, doc);
}

/* GET /metrics  Prometheus text format */
void cs_h_metrics(cs_req *req, cs_reply *rep)
{
    (void)req;
    size_t len = 0;
    char *text = cs_api.metrics_text ? cs_api.metrics_text(&len) : NULL;
    if (!text) {
        cs_reply_internal(rep, "metrics unavailable");
        return;
    }
    cs_reply_clear(rep);
    rep->status = 200;
    rep->content_type = "text/plain; version=0.0.4; charset=utf-8";
    rep->body = (uint8_t *)text;
    rep->len = len;
}
