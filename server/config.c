/*
 * config.c - one table describes every setting: its flag, its environment variable,
 * type, default, range and help. Defaults are applied first, then the environment,
 * then argv; --help is generated from the same table.
 */
#include "config.h"

#include "resources.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dataset.h"

typedef enum { OPT_STR, OPT_INT, OPT_BOOL } opt_type;

typedef struct {
    const char *flag; /* without the leading "--" */
    const char *env;
    opt_type type;
    const char *def;
    long min, max;
    size_t offset, size;
    const char *help;
} opt_spec;

#define S(field) offsetof(cs_config, field), sizeof(((cs_config *)0)->field)

static const opt_spec specs[] = {
    {"listen", "CONVSCOPE_LISTEN", OPT_STR, "127.0.0.1:8080", 0, 0, S(listen),
     "address and port to listen on (port 0: any free port)"},
    {"models", "CONVSCOPE_MODELS", OPT_STR, "models", 0, 0, S(models),
     "folder of the served model file fmnist.csm (and the VGG16 weights)"},
    {"data", "CONVSCOPE_DATA", OPT_STR, CS_DEFAULT_DATA_DIR, 0, 0, S(data),
     "folder of the Fashion-MNIST IDX files"},
    {"threads", "CONVSCOPE_THREADS", OPT_INT, "0", 0, 1024, S(threads),
     "HTTP worker threads (0: one per CPU the process may use: quota, affinity)"},
    {"max-upload", "CONVSCOPE_MAX_UPLOAD", OPT_INT, "16777216", 1024, 1L << 34, S(max_upload),
     "largest request body in bytes (413 beyond)"},
    {"max-model-upload", "CONVSCOPE_MAX_MODEL_UPLOAD", OPT_INT, "134217728", 1024, 1L << 34, S(max_model_upload),
     "largest model file uploaded to POST /v1/models, in bytes (413 beyond; at most --upload-budget)"},
    {"max-pixels", "CONVSCOPE_MAX_PIXELS", OPT_INT, "16777216", 1, 1L << 32, S(max_pixels),
     "largest image (width x height) accepted (422 beyond)"},
    {"token", "CONVSCOPE_TOKEN", OPT_STR, "", 0, 0, S(token),
     "bearer token required by training and cancelling (none: open)"},
    {"vgg16-weights", "CONVSCOPE_VGG16_WEIGHTS", OPT_STR, "", 0, 0, S(vgg16_weights),
     "Keras VGG16 weights file (else looked for in --models, then ~/.keras/models)"},
    {"imagenet-classes", "CONVSCOPE_IMAGENET_CLASSES", OPT_STR, "", 0, 0, S(class_index),
     "VGG16's imagenet_class_index.json (else looked for in --models, then data/)"},
    {"static", "CONVSCOPE_STATIC", OPT_STR, "static", 0, 0, S(static_dir),
     "folder of the browser front-end"},
    {"openapi", "CONVSCOPE_OPENAPI", OPT_STR, "openapi.yaml", 0, 0, S(openapi),
     "the API contract served at /openapi.yaml"},
    {"access-log", "CONVSCOPE_ACCESS_LOG", OPT_STR, "-", 0, 0, S(access_log),
     "access log: - (standard output), off, or a file"},
    {"http-mode", "CONVSCOPE_HTTP_MODE", OPT_STR, "pool", 0, 0, S(http_mode),
     "pool (poll thread pool), epoll (epoll thread pool) or thread (one per connection)"},
    {"blas-threads", "CONVSCOPE_BLAS_THREADS", OPT_INT, "1", 1, 256, S(blas_threads),
     "OpenBLAS threads (1 is fastest when many requests run at once)"},
    {"compute-threads", "CONVSCOPE_COMPUTE_THREADS", OPT_INT, "1", 0, 16, S(compute_threads),
     "threads one request may split its layers over (1: requests run side by side instead; 0: one per CPU the process may use); training jobs use every such CPU"},
    {"max-connections", "CONVSCOPE_MAX_CONNECTIONS", OPT_INT, "1000", 1, 100000, S(max_connections),
     "open connections; more are refused at once"},
    {"timeout", "CONVSCOPE_TIMEOUT", OPT_INT, "30", 1, 3600, S(timeout),
     "seconds an idle connection is kept open"},
    {"vgg16", "CONVSCOPE_VGG16", OPT_BOOL, "1", 0, 1, S(vgg16),
     "load VGG16 when its weights are found (--no-vgg16 to skip)"},
    {"max-jobs", "CONVSCOPE_MAX_JOBS", OPT_INT, "32", 1, 10000, S(max_jobs),
     "finished training jobs remembered by GET /v1/jobs"},
    {"max-in-flight", "CONVSCOPE_MAX_IN_FLIGHT", OPT_INT, "256", 1, 100000, S(max_in_flight),
     "requests being answered at once (bodies still arriving do not count); more get 429 at once (health and metrics exempt)"},

    /* What one client may cost: connections, uploads, compute. */
    {"workers", "CONVSCOPE_WORKERS", OPT_INT, "0", 0, 256, S(workers),
     "compute workers: threads that run model work (predict, feature maps, Grad-CAM, filters); 0: one per CPU the process may use"},
    {"queue", "CONVSCOPE_QUEUE", OPT_INT, "128", 1, 4096, S(queue),
     "requests waiting for a compute worker; more get 503 at once (when it is full, the client address with the most waiting gives up its newest)"},
    {"request-deadline", "CONVSCOPE_REQUEST_DEADLINE", OPT_INT, "10", 1, 3600, S(request_deadline),
     "seconds a request may wait for a compute worker; then it gets 503"},
    {"header-timeout", "CONVSCOPE_HEADER_TIMEOUT", OPT_INT, "10", 1, 3600, S(header_timeout),
     "seconds from connecting to the end of the first request's headers (later requests: --timeout from the last reply); then the connection is closed"},
    {"min-body-rate", "CONVSCOPE_MIN_BODY_RATE", OPT_INT, "4096", 0, 1L << 30, S(min_body_rate),
     "bytes per second a request body must keep up over each --header-timeout window, or its connection is closed (0: no minimum)"},
    {"max-uploads", "CONVSCOPE_MAX_UPLOADS", OPT_INT, "64", 1, 100000, S(max_uploads),
     "request bodies arriving at once; more get 503 at once (one client address holds at most half)"},
    {"upload-budget", "CONVSCOPE_UPLOAD_BUDGET", OPT_INT, "268435456", 1024, 1L << 40, S(upload_budget),
     "bytes request bodies may hold at once, reserved from Content-Length before reading; more get 503 at once"},
    {"max-per-ip", "CONVSCOPE_MAX_PER_IP", OPT_INT, "128", 0, 100000, S(max_per_ip),
     "open connections from one client address; more are refused at once (0: no limit)"},
    {"keep-versions", "CONVSCOPE_KEEP_VERSIONS", OPT_INT, "5", 1, 1000, S(keep_versions),
     "versions of a trainable model kept in the models folder (fmnist.versions/) to roll back to"},

    /* What one request may make the service decode, and who may reach it. The models
     * take at most 224x224 inputs: a 4096x4096 photo is plenty, and a request holds one
     * decoded image at a time (about 10 bytes a pixel with its preprocessing). */
    {"max-request-pixels", "CONVSCOPE_MAX_REQUEST_PIXELS", OPT_INT, "33554432", 1, 1L << 36,
     S(max_request_pixels), "pixels (width x height) of all the images of one request together (422 beyond)"},
    {"decode-seconds", "CONVSCOPE_DECODE_SECONDS", OPT_INT, "5", 1, 600, S(decode_seconds),
     "seconds one request may spend decoding its images (422 beyond)"},
    {"insecure-open", "CONVSCOPE_INSECURE_OPEN", OPT_BOOL, "0", 0, 1, S(insecure_open),
     "listen beyond loopback without --token (anyone who reaches it may train); refused otherwise"},
};
#define N_SPECS (sizeof specs / sizeof specs[0])

static int set_value(cs_config *cfg, const opt_spec *o, const char *val, const char *from)
{
    char *field = (char *)cfg + o->offset;
    if (o->type == OPT_STR) {
        if (strlen(val) >= o->size) {
            fprintf(stderr, "convscope serve: %s is too long (%s)\n", o->flag, from);
            return -1;
        }
        memcpy(field, val, strlen(val) + 1);
        return 0;
    }
    long v;
    if (o->type == OPT_BOOL && (!strcmp(val, "true") || !strcmp(val, "yes") || !strcmp(val, "on"))) {
        v = 1;
    } else if (o->type == OPT_BOOL &&
               (!strcmp(val, "false") || !strcmp(val, "no") || !strcmp(val, "off"))) {
        v = 0;
    } else {
        char *end;
        errno = 0;
        v = strtol(val, &end, 10);
        if (errno || !*val || *end || v < o->min || v > o->max) {
            fprintf(stderr, "convscope serve: %s must be an integer from %ld to %ld, got '%s' (%s)\n",
                    o->flag, o->min, o->max, val, from);
            return -1;
        }
    }
    *(long *)field = v;
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: convscope serve [options]\n\n");
    for (size_t i = 0; i < N_SPECS; i++) {
        const opt_spec *o = &specs[i];
        char left[64];
        snprintf(left, sizeof left, "--%s%s", o->flag, o->type == OPT_BOOL ? "" : " VALUE");
        fprintf(f, "  %-26s %s\n  %-26s [%s, default %s]\n", left, o->help, "", o->env,
                *o->def ? o->def : "none");
    }
}

int cs_config_load(cs_config *cfg, int argc, char **argv)
{
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < N_SPECS; i++)
        if (set_value(cfg, &specs[i], specs[i].def, "default") != 0) return -1;
    for (size_t i = 0; i < N_SPECS; i++) {
        const char *v = getenv(specs[i].env);
        if (v && set_value(cfg, &specs[i], v, specs[i].env) != 0) return -1;
    }
    for (int a = 1; a < argc; a++) {
        const char *arg = argv[a];
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
            usage(stdout);
            return 1;
        }
        if (strncmp(arg, "--", 2) != 0) {
            fprintf(stderr, "convscope serve: unexpected argument '%s' (see --help)\n", arg);
            return -1;
        }
        const char *name = arg + 2, *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        int negated = 0;
        const opt_spec *o = NULL;
        for (size_t i = 0; i < N_SPECS && !o; i++) {
            if (strlen(specs[i].flag) == nlen && !strncmp(specs[i].flag, name, nlen)) o = &specs[i];
            else if (specs[i].type == OPT_BOOL && nlen == strlen(specs[i].flag) + 3 &&
                     !strncmp(name, "no-", 3) && !strncmp(name + 3, specs[i].flag, nlen - 3)) {
                o = &specs[i];
                negated = 1;
            }
        }
        if (!o) {
            fprintf(stderr, "convscope serve: unknown option '%s' (see --help)\n", arg);
            return -1;
        }
        const char *val;
        if (o->type == OPT_BOOL && !eq) {
            val = negated ? "0" : "1";
        } else if (eq) {
            val = eq + 1;
        } else if (a + 1 < argc) {
            val = argv[++a];
        } else {
            fprintf(stderr, "convscope serve: %s needs a value\n", arg);
            return -1;
        }
        if (set_value(cfg, o, val, arg) != 0) return -1;
    }
    if (strcmp(cfg->http_mode, "pool") && strcmp(cfg->http_mode, "epoll") && strcmp(cfg->http_mode, "thread")) {
        fprintf(stderr, "convscope serve: --http-mode must be pool, epoll or thread\n");
        return -1;
    }
    if (!cfg->token[0] && !cfg->insecure_open && !cs_listen_is_loopback(cfg->listen)) {
        fprintf(stderr,
                "convscope serve: --listen %s reaches beyond this machine, and without --token anyone who can "
                "connect may train and cancel jobs: set --token (CONVSCOPE_TOKEN), listen on 127.0.0.1, or pass "
                "--insecure-open (CONVSCOPE_INSECURE_OPEN=1) to serve it open on purpose\n",
                cfg->listen);
        return -1;
    }
    if (cfg->threads == 0) cfg->threads = cs_resources_get()->cpus;
    if (cfg->workers == 0) cfg->workers = cs_resources_get()->cpus;
    if (cfg->upload_budget < cfg->max_upload) {
        fprintf(stderr, "convscope serve: --upload-budget (%ld) must be at least --max-upload (%ld), or the "
                        "largest bodies could never be taken\n", cfg->upload_budget, cfg->max_upload);
        return -1;
    }
    /* A model file is a body like any other: never more than the budget can take. */
    if (cfg->max_model_upload > cfg->upload_budget) cfg->max_model_upload = cfg->upload_budget;
    return 0;
}

int cs_listen_is_loopback(const char *listen)
{
    char host[128];
    const char *colon = strrchr(listen, ':');
    size_t n = colon ? (size_t)(colon - listen) : strlen(listen);
    if (n >= sizeof host) return 0;
    memcpy(host, listen, n);
    host[n] = 0;
    if (!strcmp(host, "localhost")) return 1;
    struct in_addr a4;
    if (inet_pton(AF_INET, host, &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
    struct in6_addr a6;
    if (n > 2 && host[0] == '[' && host[n - 1] == ']') {
        host[n - 1] = 0;
        return inet_pton(AF_INET6, host + 1, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
    }
    return 0;
}

void cs_config_print(const cs_config *cfg, FILE *f)
{
    for (size_t i = 0; i < N_SPECS; i++) {
        const opt_spec *o = &specs[i];
        const char *field = (const char *)cfg + o->offset;
        if (o->type == OPT_STR)
            fprintf(f, "  %-16s %s\n", o->flag,
                    !strcmp(o->flag, "token") && *field ? "(set)" : (*field ? field : "(none)"));
        else
            fprintf(f, "  %-16s %ld\n", o->flag, *(const long *)field);
    }
}
