/*
 * serve.c - the service process: configuration, start-up order, signals, shutdown.
 *
 * Start-up: settings -> OpenBLAS threads -> access log -> models (VGG16 loads in the
 * background) -> listener. SIGINT and SIGTERM are blocked in every thread and taken
 * by sigwait() here, so no handler runs in signal context.
 *
 * Shutdown: stop accepting; cancel training (a job saves only after it finished,
 * atomically, so nothing is left half-written); let requests in flight and uploads
 * finish (up to 10 s); answer what still waits for a compute worker with 503; stop
 * the threads; free the models.
 *
 * OpenBLAS threads and the layers of one request default to 1 thread: every request
 * runs on one compute worker (--workers, one per core), so parallelism comes from the
 * requests; splitting each pass over the cores as well only oversubscribes them
 * (measured: see the README's HTTP API section). A training job, one long pass on its
 * own thread, splits its layers over every core.
 */
#include "serve.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "api.h"
#include "blas.h"
#include "config.h"
#include "daemon.h"
#include "data.h"
#include "jobs.h"
#include "log.h"
#include "metrics.h"
#include "model_file.h"
#include "parallel.h"
#include "registry.h"
#include "resources.h"

/* Reads both splits in the background so the first ?sample= or training job does not
 * wait for gunzip. A missing folder is reported by the requests that need it. */
static void *preload_data(void *arg)
{
    (void)arg;
    char err[400];
    cs_data_get("test", err, sizeof err);
    cs_data_get("train", err, sizeof err);
    return NULL;
}

/* The models folder may be shared by several replicas (and a one-off `convscope
 * train`): once a second, a model file that changed on disk is re-read and, when
 * valid, served as the next version; a corrupt one is refused and logged. */
static pthread_mutex_t watch_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t watch_stop = PTHREAD_COND_INITIALIZER;
static int watch_stopping;

static void *watch_models(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&watch_lock);
    while (!watch_stopping) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 1;
        pthread_cond_timedwait(&watch_stop, &watch_lock, &until);
        if (watch_stopping) break;
        pthread_mutex_unlock(&watch_lock);
        char msg[800];
        if (cs_registry_reload_changed(msg, sizeof msg) != 0) cs_log_info("%s", msg);
        pthread_mutex_lock(&watch_lock);
    }
    pthread_mutex_unlock(&watch_lock);
    return NULL;
}

static void stop_watching(pthread_t *watcher)
{
    if (!watcher) return;
    pthread_mutex_lock(&watch_lock);
    watch_stopping = 1;
    pthread_cond_signal(&watch_stop);
    pthread_mutex_unlock(&watch_lock);
    pthread_join(*watcher, NULL);
}

int cs_serve_main(int argc, char **argv)
{
    cs_config cfg;
    int rc = cs_config_load(&cfg, argc, argv);
    if (rc) return rc > 0 ? 0 : 2;

    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL); /* inherited by every thread made from here */
    signal(SIGPIPE, SIG_IGN);

    cs_blas_set_threads((int)cfg.blas_threads);
    /* The pool has a thread per core for training jobs; a request splits its layers
     * over at most --compute-threads of them. */
    cs_parallel_set_threads(cs_parallel_threads());
    cs_api.request_threads = cfg.compute_threads > 0 ? (int)cfg.compute_threads : cs_parallel_threads();
    if (cs_log_open(cfg.access_log) != 0) {
        fprintf(stderr, "convscope serve: cannot open the access log %s\n", cfg.access_log);
        return 1;
    }
    cs_log_info("starting with:");
    cs_config_print(&cfg, stderr);
    const cs_resources *res = cs_resources_get();
    char quota[64] = "";
    if (res->cpu_quota > 0) snprintf(quota, sizeof quota, "a quota of %.2f, ", res->cpu_quota);
    cs_log_info("resources: %d CPUs from the %s (%s%d in the affinity mask), memory %.0f MiB from the %s (the "
                "machine has %.0f MiB)",
                res->cpus, res->cpu_source, quota, res->affinity_cpus, res->memory / 1048576.0, res->memory_source,
                res->physical / 1048576.0);

    cs_api.token = cfg.token;
    cs_api.max_upload = (size_t)cfg.max_upload;
    cs_api.max_model_upload = (size_t)cfg.max_model_upload;
    cs_api.max_pixels = cfg.max_pixels;
    cs_api.max_request_pixels = cfg.max_request_pixels;
    cs_api.decode_seconds = (double)cfg.decode_seconds;
    cs_api.insecure_open = !cfg.token[0] && !cs_listen_is_loopback(cfg.listen);
    if (cs_api.insecure_open)
        cs_log_info("WARNING: --insecure-open: listening on %s without a token; anyone who can connect may train "
                    "and cancel jobs (GET /readyz says so too)", cfg.listen);
    cs_api.static_dir = cfg.static_dir;
    cs_api.openapi_path = cfg.openapi;
    cs_api.data_dir = cfg.data;
    cs_api.max_jobs_kept = (int)cfg.max_jobs;
    cs_api.metrics_text = cs_metrics_text;
    cs_api.http_threads = (int)cfg.threads;

    /* A save killed between writing its temporary file and renaming it leaves the file
     * behind; remove those of earlier runs (only our own pattern, only old ones). */
    char swept[400];
    int n_swept = cs_model_remove_stale_saves(cfg.models, CS_STALE_SAVE_SECONDS, swept, sizeof swept);
    if (n_swept > 0)
        cs_log_info("removed %d temporary file%s of interrupted saves from %s: %s", n_swept, n_swept == 1 ? "" : "s",
                    cfg.models, swept);

    /* Passes run only on the compute workers: one execution context each is enough. */
    cs_registry_config models = {cfg.models, cfg.vgg16_weights, cfg.class_index, (int)cfg.vgg16,
                                 (int)cfg.workers, (int)cfg.keep_versions};
    char err[600];
    if (cs_api_start(&models, err, sizeof err) != 0) {
        cs_log_info("cannot start: %s", err);
        return 1;
    }
    for (int i = 0; i < cs_registry_count(); i++) {
        cs_served_model *s = cs_registry_at(i);
        if (!s) continue; /* removed */
        char reason[512];
        int version, training;
        cs_model_state st = cs_served_state(s, reason, sizeof reason, &version, &training);
        cs_log_info("model %s: %s%s%s", s->name, cs_model_state_word(st, training), reason[0] ? ": " : "", reason);
    }
    pthread_t preload, watcher;
    int preloading = pthread_create(&preload, NULL, preload_data, NULL) == 0;
    int watching = pthread_create(&watcher, NULL, watch_models, NULL) == 0;

    cs_daemon *d = cs_daemon_start(&cfg, err, sizeof err);
    if (!d) {
        cs_log_info("%s", err);
        if (preloading) pthread_join(preload, NULL);
        stop_watching(watching ? &watcher : NULL);
        cs_api_stop();
        return 1;
    }
    char host[128];
    snprintf(host, sizeof host, "%s", cfg.listen);
    char *colon = strrchr(host, ':');
    if (colon) *colon = 0;
    cs_log_info("listening on http://%s:%d (%s, %ld threads, %ld compute workers x%d, OpenBLAS %s x%d)", host,
                cs_daemon_port(d), cfg.http_mode, cfg.threads, cfg.workers, cs_api.request_threads, cs_blas_core(),
                cs_blas_threads());

    int sig = 0;
    sigwait(&stop, &sig);
    cs_log_info("%s: shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
    cs_daemon_quiesce(d);
    cs_jobs_stop();
    if (!cs_daemon_drain(d, 10.0)) cs_log_info("requests still running after 10 s; closing them");
    cs_daemon_stop(d);
    if (preloading) pthread_join(preload, NULL);
    stop_watching(watching ? &watcher : NULL);
    cs_api_stop();
    cs_log_info("stopped");
    cs_log_close();
    return 0;
}
