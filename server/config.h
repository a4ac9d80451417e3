/*
 * config.h - the service's settings, from defaults, CONVSCOPE_* environment variables
 * and command-line flags (in that order, later wins), described by one table.
 */
#ifndef CS_SERVER_CONFIG_H
#define CS_SERVER_CONFIG_H

#include <stdio.h>

typedef struct cs_config {
    char listen[128];         /* host:port; port 0 picks a free one */
    char models[1024];        /* folder of fmnist.csm (and maybe the VGG16 weights) */
    char data[1024];          /* Fashion-MNIST IDX files */
    long threads;             /* HTTP worker threads; 0 = number of cores */
    long max_upload;          /* bytes of one request body */
    long max_model_upload;    /* bytes of one model upload */
    long max_pixels;          /* width * height of one decoded image */
    char token[256];          /* bearer token for state-changing calls; "" = none */
    char vgg16_weights[1024]; /* explicit weights file */
    char class_index[1024];   /* imagenet_class_index.json */
    char static_dir[1024];    /* the front-end */
    char openapi[1024];       /* the contract served at /openapi.yaml */
    char access_log[1024];    /* "-" = stdout, "off", or a file */
    char http_mode[16];       /* pool | epoll | thread */
    long blas_threads;        /* OpenBLAS threads for request and training work */
    long compute_threads;     /* the core's layer-splitting pool; 0 = number of cores */
    long max_connections;     /* open connections; more are refused at once */
    long timeout;             /* seconds an idle connection is kept */
    long vgg16;               /* 0: do not load VGG16 */
    long max_jobs;            /* finished jobs remembered */
    long max_in_flight;       /* requests answered at once; more get 429 */

    /* What one client may cost: connections, uploads, compute (issue 12; see guard.h
     * and compute.h). */
    long workers;             /* compute workers running model work; 0 = number of cores */
    long queue;               /* requests waiting for a worker; more get 503 */
    long request_deadline;    /* seconds a request may wait for a worker */
    long header_timeout;      /* seconds from connecting to the end of the first request's headers */
    long min_body_rate;       /* bytes/s a request body must keep up; 0 = none */
    long max_uploads;         /* request bodies arriving at once; more get 503 */
    long upload_budget;       /* bytes held by request bodies at once; more get 503 */
    long max_per_ip;          /* connections from one address; 0 = no limit */
    long keep_versions;       /* versions of a trainable model kept in the models folder */

    /* What one request may make the service decode, and who may reach it. */
    long max_request_pixels;  /* width * height summed over the images of one request */
    long decode_seconds;      /* decoding time of the images of one request */
    long insecure_open;       /* serve beyond loopback without a token, on purpose */
} cs_config;

/* Fills cfg. Returns 0, 1 when --help was printed (exit 0), or -1 after printing the
 * problem to stderr (exit 2). argv[0] is the subcommand name ("serve"). */
int cs_config_load(cs_config *cfg, int argc, char **argv);
/* 1 when the host of a --listen value ("host:port", "[v6]:port") is a loopback
 * address (127.0.0.0/8, ::1, localhost), 0 otherwise (an empty host or 0.0.0.0 is
 * every interface). */
int cs_listen_is_loopback(const char *listen);
/* One line per setting (the token is masked). */
void cs_config_print(const cs_config *cfg, FILE *f);

#endif
