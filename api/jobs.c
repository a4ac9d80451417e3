/*
 * jobs.c - training jobs: POST /v1/models/{model}/train starts one, GET reports it,
 * DELETE cancels it.
 *
 * DESIGN
 * Training jobs and tasks (cs_job_start_task: an explanation evaluation) share the list,
 * the states, cancellation and forgetting; a task's thread runs its function, which
 * reports items done of a total and returns the result document.
 *
 * A training job is created `queued`, its own thread moves it to `running`, and it ends
 * `succeeded`, `failed` or `cancelled`. One job per model at a time (the registry's
 * training flag; a second gets 409). The thread trains a private model (fresh weights,
 * or a clone of the served version with "from": "current"), so requests keep using
 * the served version throughout; on success the model is saved atomically and
 * published as the next version. Cancellation is an atomic flag that cs_train polls
 * between batches; a cancelled or failed job publishes nothing.
 *
 * Who touches what: g_lock guards the job list and every field the status reports;
 * the job thread writes progress under it (from cs_train's callback), handlers read
 * under it. Finished jobs beyond cs_api.max_jobs_kept are forgotten, oldest first.
 */
#include "jobs.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api.h"
#include "data.h"
#include "handlers.h"
#include "registry.h"
#include "reply.h"
#include "train.h"
#include "job_snapshots.h"
#include "versions.h"

struct cs_job {
    char id[24];
    char kind[24];   /* "train", or the task's */
    char model[32];
    cs_served_model *served;
    cs_train_config cfg;
    int from_current;
    int from_version; /* the version a job "from": "current" started from */
    int snapshots;          /* keep the filters after every epoch (job_snapshots.c) */
    const cs_model *trained; /* the job thread's model while it trains, for them */
    cs_job_state state;
    int epoch, epochs, batch, batches;
    double loss, accuracy;
    double t_start, t_end; /* monotonic; 0 until started / ended */
    char created_at[32];
    int n_history;
    cs_epoch_record *history;
    double test_accuracy;
    int version;
    char error[400];
    atomic_int cancel;
    pthread_t thread;
    int has_thread;
    /* A task (run set): its work, its parameters and result as shown, its progress. */
    cs_job_fn run;
    void *ctx;
    void (*free_ctx)(void *);
    json_t *params, *result;
    long done, total;
};

#define MAX_JOBS 1024
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static cs_job *g_jobs[MAX_JOBS];
static int g_n_jobs;
static unsigned g_next_id = 1;
static int g_stopping; /* set at shutdown: no new jobs */

static const char *const k_state_names[CS_JOB_STATES] = {"queued", "running", "succeeded", "failed",
                                                         "cancelled"};

const char *cs_job_state_name(int state)
{
    return state >= 0 && state < CS_JOB_STATES ? k_state_names[state] : "unknown";
}

static int job_finished(const cs_job *j)
{
    return j->state >= CS_JOB_SUCCEEDED;
}

void cs_jobs_count(int counts[CS_JOB_STATES])
{
    memset(counts, 0, sizeof(int) * CS_JOB_STATES);
    pthread_mutex_lock(&g_lock);
    for (int i = 0; i < g_n_jobs; i++) counts[g_jobs[i]->state]++;
    pthread_mutex_unlock(&g_lock);
}

/* A task's status: its progress in items done of total. Call with g_lock held. */
static json_t *task_json(const cs_job *j)
{
    double now = cs_now();
    double elapsed = j->t_start > 0 ? (j->t_end > 0 ? j->t_end : now) - j->t_start : 0;
    double progress = j->state == CS_JOB_SUCCEEDED ? 1.0 : j->total > 0 ? (double)j->done / j->total : 0;
    json_t *eta = json_null();
    if (j->state == CS_JOB_RUNNING && progress > 0.001) eta = json_real(elapsed / progress * (1 - progress));
    else if (job_finished(j)) eta = json_real(0);
    json_t *doc = json_pack("{s:s,s:s,s:s,s:s,s:I,s:I,s:f,s:f,s:o,s:O,s:O,s:s}", "id", j->id, "kind", j->kind,
                            "model", j->model, "state", k_state_names[j->state], "done", (json_int_t)j->done,
                            "total", (json_int_t)j->total, "progress", progress, "elapsed_s", elapsed, "eta_s", eta,
                            "params", j->params ? j->params : json_null(), "result",
                            j->result ? j->result : json_null(), "created_at", j->created_at);
    if (j->error[0]) json_object_set_new(doc, "error", json_string(j->error));
    return doc;
}

/* The job as DESIGN §3 shows it. Call with g_lock held. */
static json_t *job_json(const cs_job *j)
{
    if (j->run) return task_json(j);
    double now = cs_now();
    double elapsed = j->t_start > 0 ? (j->t_end > 0 ? j->t_end : now) - j->t_start : 0;
    double total = (double)j->epochs * (j->batches > 0 ? j->batches : 1);
    double done = j->epoch > 0 ? (double)(j->epoch - 1) * j->batches + j->batch : 0;
    double progress = j->state == CS_JOB_SUCCEEDED ? 1.0 : (total > 0 ? done / total : 0);
    if (progress > 1) progress = 1;
    json_t *eta = json_null();
    if (j->state == CS_JOB_RUNNING && progress > 0.001) eta = json_real(elapsed / progress * (1 - progress));
    else if (job_finished(j)) eta = json_real(0);
    json_t *history = cs_history_json(j->history, j->n_history);
    json_t *result = json_null();
    if (j->state == CS_JOB_SUCCEEDED)
        result = json_pack("{s:o,s:i}", "test_accuracy",
                           j->test_accuracy >= 0 ? cs_json_number(j->test_accuracy) : json_null(), "version",
                           j->version);
    json_t *doc = json_pack(
        "{s:s,s:s,s:s,s:i,s:i,s:i,s:i,s:f,s:f,s:o,s:o,s:o,s:s,s:{s:i,s:i,s:f,s:I,s:i,s:i,s:s}}", "id", j->id,
        "model", j->model, "state", k_state_names[j->state], "epoch", j->epoch, "epochs", j->epochs, "batch",
        j->batch, "batches", j->batches, "progress", progress, "elapsed_s", elapsed, "eta_s", eta, "history",
        history, "result", result, "created_at", j->created_at, "params", "epochs", j->cfg.epochs, "batch_size",
        j->cfg.batch_size, "learning_rate", (double)j->cfg.learning_rate, "seed", (json_int_t)j->cfg.seed,
        "train_limit", j->cfg.train_limit, "test_limit", j->cfg.test_limit, "from",
        j->from_current ? "current" : "scratch");
    if (j->snapshots) {
        char url[64];
        cs_fmt(url, sizeof url, "/v1/jobs/%s/snapshots", j->id);
        json_object_set_new(doc, "snapshots", json_string(url));
    }
    if (j->state == CS_JOB_RUNNING) {
        json_object_set_new(doc, "loss", cs_json_number(j->loss));
        json_object_set_new(doc, "accuracy", cs_json_number(j->accuracy));
    }
    json_object_set_new(doc, "kind", json_string(j->kind));
    if (j->error[0]) json_object_set_new(doc, "error", json_string(j->error));
    return doc;
}

json_t *cs_history_json(const cs_epoch_record *h, int n)
{
    json_t *history = json_array();
    for (int i = 0; i < n; i++) {
        const cs_epoch_record *r = &h[i];
        /* A diverged epoch (NaN loss) stays in the list, with null where its numbers
         * are not numbers, as the model file writes it. */
        json_array_append_new(
            history, json_pack("{s:i,s:o,s:o,s:o,s:o,s:o}", "epoch", r->epoch, "loss", cs_json_number(r->loss),
                               "accuracy", cs_json_number(r->accuracy), "test_accuracy",
                               r->test_accuracy >= 0 ? cs_json_number(r->test_accuracy) : json_null(), "test_loss",
                               r->test_loss >= 0 ? cs_json_number(r->test_loss) : json_null(), "seconds",
                               cs_json_number(r->seconds)));
    }
    return history;
}

static void on_progress(const cs_progress *p, const cs_epoch_record *finished, void *user)
{
    cs_job *j = user;
    pthread_mutex_lock(&g_lock);
    j->epoch = p->epoch;
    j->epochs = p->epochs;
    j->batch = p->batch;
    j->batches = p->batches;
    j->loss = p->loss;
    j->accuracy = p->accuracy;
    /* Between two epochs: the job's own thread, its model still. */
    if (finished && j->snapshots) cs_snapshots_take(j->id, j->trained, finished);
    if (finished) {
        cs_epoch_record *h = realloc(j->history, sizeof *h * (size_t)(j->n_history + 1));
        if (h) {
            j->history = h;
            h[j->n_history++] = *finished;
        }
    }
    pthread_mutex_unlock(&g_lock);
}

static void finish(cs_job *j, cs_job_state st, const char *error)
{
    /* Free the model first: whoever sees the job ended may start the next one. */
    if (j->served) cs_served_set_training(j->served, 0);
    pthread_mutex_lock(&g_lock);
    j->state = st;
    j->t_end = cs_now();
    if (error) cs_fmt(j->error, sizeof j->error, "%s", error);
    pthread_mutex_unlock(&g_lock);
}

/* What the kept version remembers of the run: the job, its parameters, and the
 * accuracy on the whole test set (the epochs' figures may count a test_limit subset,
 * which the record says). */
static json_t *run_record(const cs_job *j, const cs_model *m, const cs_dataset *test)
{
    json_t *rec = cs_versions_record(m, cs_model_crc(m), "training job");
    int sub = j->cfg.test_limit > 0 && j->cfg.test_limit < test->n;
    double acc = sub ? cs_evaluate(m, test, 0) : m->meta.test_accuracy;
    json_object_set_new(rec, "job", json_string(j->id));
    json_object_set_new(rec, "params", json_pack("{s:i,s:i,s:f,s:I,s:i,s:i,s:s}", "epochs", j->cfg.epochs,
                                                 "batch_size", j->cfg.batch_size, "learning_rate",
                                                 (double)j->cfg.learning_rate, "seed", (json_int_t)j->cfg.seed,
                                                 "train_limit", j->cfg.train_limit, "test_limit", j->cfg.test_limit,
                                                 "from", j->from_current ? "current" : "scratch"));
    json_object_set_new(rec, "test_accuracy", acc >= 0 ? json_real(acc) : json_null());
    json_object_set_new(rec, "test_images", acc >= 0 ? json_integer(test->n) : json_null());
    json_object_set_new(rec, "test_subset", acc >= 0 ? json_false() : json_null());
    /* The epochs' test accuracies count this many images: a subset when fewer. */
    json_object_set_new(rec, "history_test_images", json_integer(sub ? j->cfg.test_limit : test->n));
    json_object_set_new(rec, "history_subset", json_boolean(sub));
    if (j->from_current && j->from_version) json_object_set_new(rec, "from_version", json_integer(j->from_version));
    return rec;
}

/* A fresh start forgets how the weights it replaces came to be. */
static void meta_reset(cs_model *m)
{
    free(m->meta.history);
    memset(&m->meta, 0, sizeof m->meta);
    m->meta.test_accuracy = -1;
}

static int numbered_classes(const cs_model *m)
{
    for (int i = 0; i < m->n_classes; i++) {
        char k[16];
        snprintf(k, sizeof k, "%d", i);
        if (strcmp(m->class_names[i], k) != 0) return 0;
    }
    return 1;
}

static void *job_thread(void *arg)
{
    cs_job *j = arg;
    char err[400];
    pthread_mutex_lock(&g_lock);
    j->state = CS_JOB_RUNNING;
    j->t_start = cs_now();
    pthread_mutex_unlock(&g_lock);

    const cs_dataset *train = cs_data_get("train", err, sizeof err);
    const cs_dataset *test = train ? cs_data_get("test", err, sizeof err) : NULL;
    if (!test) {
        finish(j, CS_JOB_FAILED, err);
        return NULL;
    }
    cs_model *m = NULL;
    if (j->from_current) {
        cs_model_version *v = cs_served_acquire(j->served, err, sizeof err);
        if (v) {
            m = cs_model_clone(v->model);
            j->from_version = v->version;
            cs_version_release(v);
        }
        j->cfg.init_weights = 0;
    } else if (j->served->trainable) {
        m = cs_model_build_fmnist();
        j->cfg.init_weights = 1;
    } else { /* the served architecture with fresh weights */
        cs_model_version *v = cs_served_acquire(j->served, err, sizeof err);
        if (v) {
            m = cs_model_clone(v->model);
            cs_version_release(v);
            if (m) meta_reset(m);
        }
        j->cfg.init_weights = 1;
    }
    if (!m) {
        finish(j, CS_JOB_FAILED, j->from_current || !j->served->trainable ? err : "out of memory");
        return NULL;
    }
    j->trained = m;
    if (j->snapshots) cs_snapshots_begin(j->id, m);
    int rc = cs_train(m, train, test, &j->cfg, on_progress, j, &j->cancel, err, sizeof err);
    if (rc == 1) {
        cs_model_free(m);
        finish(j, CS_JOB_CANCELLED, NULL);
        return NULL;
    }
    if (rc != 0) {
        cs_model_free(m);
        finish(j, CS_JOB_FAILED, err);
        return NULL;
    }
    /* Trained on Fashion-MNIST: classes that had only numbers are its classes now. */
    if (numbered_classes(m) && m->n_classes == 10)
        cs_model_set_classes(m, 10, CS_FMNIST_CLASSES); /* out of memory: the numbers stay */
    json_t *record = run_record(j, m, test);
    double acc = json_number_value(json_object_get(record, "test_accuracy"));
    int rc_pub = cs_served_publish_run(j->served, m, record, err, sizeof err);
    json_decref(record);
    if (rc_pub != 0) {
        cs_model_free(m);
        finish(j, CS_JOB_FAILED, err);
        return NULL;
    }
    char reason[8];
    int version, training;
    cs_served_state(j->served, reason, sizeof reason, &version, &training);
    pthread_mutex_lock(&g_lock);
    j->test_accuracy = acc;
    j->version = version;
    pthread_mutex_unlock(&g_lock);
    finish(j, CS_JOB_SUCCEEDED, NULL);
    return NULL;
}

static void job_free(cs_job *j)
{
    free(j->history);
    json_decref(j->params);
    json_decref(j->result);
    free(j);
}

/* Drops the oldest finished jobs past the limit. Call with g_lock held; their threads
 * are joined here (they have returned, as the job is finished). */
static void forget_old(void)
{
    int limit = cs_api.max_jobs_kept > 0 ? cs_api.max_jobs_kept : 32;
    int finished = 0;
    for (int i = 0; i < g_n_jobs; i++) finished += job_finished(g_jobs[i]);
    for (int i = 0; i < g_n_jobs && finished > limit;) {
        cs_job *j = g_jobs[i];
        if (!job_finished(j)) {
            i++;
            continue;
        }
        if (j->has_thread) pthread_join(j->thread, NULL);
        job_free(j);
        memmove(&g_jobs[i], &g_jobs[i + 1], sizeof g_jobs[0] * (size_t)(g_n_jobs - i - 1));
        g_n_jobs--;
        finished--;
    }
}

/* Reads an optional number field into *out within [min, max]. 0 after a 400 reply. */
static int json_field(json_t *body, const char *key, double min, double max, int integer, double *out,
                      cs_reply *rep)
{
    json_t *v = json_object_get(body, key);
    if (!v) return 1;
    if (!json_is_number(v) || (integer && !json_is_integer(v))) {
        cs_reply_error(rep, 400, "bad_parameter", "%s must be %s", key, integer ? "an integer" : "a number");
        return 0;
    }
    double x = json_number_value(v);
    if (x < min || x > max) {
        cs_reply_error(rep, 400, "bad_parameter", "%s must be from %g to %g, got %g", key, min, max, x);
        return 0;
    }
    *out = x;
    return 1;
}

int cs_train_request_or_reply(const cs_req *req, cs_reply *rep, int train_images, cs_train_request *out)
{
    cs_train_config *cfg = &out->cfg;
    json_t *body;
    if (req->body_len == 0) {
        body = json_object();
        if (!body) {
            cs_reply_nomem(rep, "cannot read the body");
            return 0;
        }
    } else {
        json_error_t jerr;
        body = json_loadb((const char *)req->body, req->body_len, 0, &jerr);
        if (!body) {
            cs_reply_error(rep, 400, "bad_json", "malformed JSON at line %d column %d: %s", jerr.line, jerr.column,
                           jerr.text);
            return 0;
        }
        if (!json_is_object(body)) {
            json_decref(body);
            cs_reply_error(rep, 400, "bad_json", "the body must be a JSON object");
            return 0;
        }
    }
    static const char *const known[] = {"epochs", "batch_size", "learning_rate", "seed", "train_limit",
                                        "test_limit", "from", "snapshots", NULL};
    const char *key;
    json_t *val;
    json_object_foreach(body, key, val) {
        int ok = 0;
        for (int i = 0; known[i]; i++) ok |= !strcmp(key, known[i]);
        if (!ok) {
            cs_reply_error(rep, 400, "bad_parameter", "unknown field '%.64s' (known: epochs, batch_size, "
                           "learning_rate, seed, train_limit, test_limit, from, snapshots)", key);
            json_decref(body);
            return 0;
        }
    }
    cs_train_config_default(cfg);
    double epochs = cfg->epochs, batch = cfg->batch_size, lr = cfg->learning_rate, seed = 1, tl = 0, vl = 0;
    int ok = json_field(body, "epochs", 1, CS_JOB_MAX_EPOCHS, 1, &epochs, rep) &&
             json_field(body, "batch_size", 1, 60000, 1, &batch, rep) &&
             json_field(body, "learning_rate", 1e-7, 10, 0, &lr, rep) &&
             json_field(body, "seed", 0, 9007199254740991.0, 1, &seed, rep) &&
             json_field(body, "train_limit", 0, 60000, 1, &tl, rep) &&
             json_field(body, "test_limit", 0, 10000, 1, &vl, rep);
    int from_current = 0;
    json_t *from = json_object_get(body, "from");
    if (ok && from) {
        const char *f = json_string_value(from);
        if (!f || (strcmp(f, "scratch") && strcmp(f, "current"))) {
            cs_reply_error(rep, 400, "bad_parameter", "from must be \"scratch\" or \"current\"");
            ok = 0;
        } else {
            from_current = !strcmp(f, "current");
        }
    }
    json_t *snap = json_object_get(body, "snapshots");
    if (ok && snap && !json_is_boolean(snap)) {
        cs_reply_error(rep, 400, "bad_parameter", "snapshots must be true or false");
        ok = 0;
    }
    const int snapshots = json_is_true(snap);
    json_decref(body);
    if (!ok) return 0;
    if (lr <= 0) {
        cs_reply_error(rep, 400, "bad_parameter", "learning_rate must be positive");
        return 0;
    }
    cfg->epochs = (int)epochs;
    cfg->batch_size = (int)batch;
    cfg->learning_rate = (float)lr;
    cfg->seed = (uint64_t)seed;
    cfg->train_limit = (int)tl;
    cfg->test_limit = (int)vl;
    /* Work is what a job costs: a batch of 1 makes each of 60000 images an optimizer
     * step of its own. */
    long images = cfg->train_limit > 0 && cfg->train_limit < train_images ? cfg->train_limit : train_images;
    long long steps = (long long)cfg->epochs * ((images + cfg->batch_size - 1) / cfg->batch_size);
    if (steps > CS_JOB_MAX_STEPS) {
        cs_reply_error(rep, 400, "job_too_large",
                       "%d epochs of %ld images in batches of %d are %lld optimizer steps, above the limit of %d: "
                       "use a larger batch_size, fewer epochs or a train_limit",
                       cfg->epochs, images, cfg->batch_size, steps, CS_JOB_MAX_STEPS);
        return 0;
    }
    out->from_current = from_current;
    out->snapshots = snapshots;
    return 1;
}

/* POST /v1/models/{model}/train  application/json {epochs, batch_size, learning_rate, seed,
 * train_limit, test_limit, from}  -> 202 + Location /v1/jobs/{id} */
void cs_h_train(cs_req *req, cs_reply *rep)
{
    const char *name = cs_req_param(req, "model");
    cs_served_model *s = cs_registry_find(name);
    if (!s) {
        cs_reply_not_found(rep, "model", name);
        return;
    }
    if (!s->trainable && !s->folder) {
        cs_reply_error(rep, 400, "not_trainable", "model '%s' cannot be trained by this service", name);
        return;
    }
    if (!s->trainable) { /* a model of the folder: trainable when its layers and input allow */
        char why[512];
        cs_model_version *v = cs_served_acquire(s, why, sizeof why);
        if (!v) {
            cs_reply_error(rep, 409, "no_current_model", "model '%s' is unavailable: %s", name, why);
            return;
        }
        int can = v->trainable;
        cs_fmt(why, sizeof why, "%s", v->train_why);
        cs_version_release(v);
        if (!can) {
            cs_reply_error(rep, 400, "not_trainable", "model '%s' cannot be trained on Fashion-MNIST: %s", name, why);
            return;
        }
    }
    /* The body is judged first (400), then whether the data are there (503); the step
     * ceiling counts Fashion-MNIST's 60000 training images until they are. */
    char err[400];
    const cs_dataset *train = cs_data_get("train", err, sizeof err);
    cs_train_request tr;
    if (!cs_train_request_or_reply(req, rep, train ? train->n : 60000, &tr)) return;
    const cs_train_config cfg = tr.cfg;
    const int from_current = tr.from_current, snapshots = tr.snapshots;
    if (!train || !cs_data_get("test", err, sizeof err)) {
        cs_reply_error(rep, 503, "data_unavailable", "%s", err);
        return;
    }
    if (from_current) {
        cs_model_version *v = cs_served_acquire(s, err, sizeof err);
        if (!v) {
            cs_reply_error(rep, 409, "no_current_model", "from \"current\" needs a served model: %s", err);
            return;
        }
        cs_version_release(v);
    }
    if (cs_served_set_training(s, 1) != 0) {
        cs_reply_error(rep, 409, "job_running", "a training job for '%s' is already queued or running", name);
        return;
    }
    cs_job *j = calloc(1, sizeof *j);
    if (!j) {
        cs_served_set_training(s, 0);
        cs_reply_nomem(rep, "cannot start the job");
        return;
    }
    j->served = s;
    cs_fmt(j->kind, sizeof j->kind, "train");
    j->cfg = cfg;
    j->from_current = from_current;
    j->snapshots = snapshots;
    j->epochs = cfg.epochs;
    j->test_accuracy = -1;
    cs_fmt(j->model, sizeof j->model, "%s", name);
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(j->created_at, sizeof j->created_at, "%Y-%m-%dT%H:%M:%SZ", &tm);
    atomic_init(&j->cancel, 0);

    pthread_mutex_lock(&g_lock);
    if (g_stopping) {
        pthread_mutex_unlock(&g_lock);
        free(j);
        cs_served_set_training(s, 0);
        cs_reply_error(rep, 503, "shutting_down", "the service is shutting down");
        return;
    }
    forget_old();
    if (g_n_jobs >= MAX_JOBS) {
        pthread_mutex_unlock(&g_lock);
        free(j);
        cs_served_set_training(s, 0);
        cs_reply_error(rep, 429, "too_many_jobs", "too many jobs are kept; try again later");
        return;
    }
    /* Ids are short and unique in this process; the suffix tells apart ids of
     * different runs of the service. */
    cs_fmt(j->id, sizeof j->id, "j%u-%04x", g_next_id++, (unsigned)((uint64_t)cs_now() * 1000003u) & 0xffffu);
    g_jobs[g_n_jobs++] = j;
    if (pthread_create(&j->thread, NULL, job_thread, j) != 0) {
        j->state = CS_JOB_FAILED;
        cs_fmt(j->error, sizeof j->error, "cannot start the training thread");
        pthread_mutex_unlock(&g_lock);
        cs_served_set_training(s, 0);
        cs_reply_internal(rep, "cannot start the training thread");
        return;
    }
    j->has_thread = 1;
    json_t *doc = job_json(j);
    /* Under the lock: once it is released the job may end and be forgotten (freed)
     * by another request before this one replies. */
    char loc[64];
    cs_fmt(loc, sizeof loc, "/v1/jobs/%s", j->id);
    pthread_mutex_unlock(&g_lock);
    cs_reply_json(rep, 202, doc);
    cs_reply_header(rep, "Location", loc);
}

static void *task_thread(void *arg)
{
    cs_job *j = arg;
    char err[400] = "";
    pthread_mutex_lock(&g_lock);
    j->state = CS_JOB_RUNNING;
    j->t_start = cs_now();
    pthread_mutex_unlock(&g_lock);
    json_t *result = j->run(j, j->ctx, err, sizeof err);
    if (j->free_ctx) j->free_ctx(j->ctx);
    j->ctx = NULL;
    if (result) {
        pthread_mutex_lock(&g_lock);
        j->result = result;
        pthread_mutex_unlock(&g_lock);
        finish(j, CS_JOB_SUCCEEDED, NULL);
    } else {
        finish(j, atomic_load(&j->cancel) ? CS_JOB_CANCELLED : CS_JOB_FAILED, err[0] ? err : NULL);
    }
    return NULL;
}

void cs_job_progress(cs_job *job, long done, long total)
{
    pthread_mutex_lock(&g_lock);
    job->done = done;
    job->total = total;
    pthread_mutex_unlock(&g_lock);
}

int cs_job_cancelled(cs_job *job) { return atomic_load(&job->cancel); }

void cs_job_start_task(cs_reply *rep, const char *kind, const char *model, json_t *params, cs_job_fn run,
                       void *ctx, void (*free_ctx)(void *))
{
    cs_job *j = calloc(1, sizeof *j);
    if (!j) {
        if (free_ctx) free_ctx(ctx);
        json_decref(params);
        cs_reply_nomem(rep, "cannot answer");
        return;
    }
    cs_fmt(j->kind, sizeof j->kind, "%s", kind);
    cs_fmt(j->model, sizeof j->model, "%s", model);
    j->run = run;
    j->ctx = ctx;
    j->free_ctx = free_ctx;
    j->params = params;
    j->test_accuracy = -1;
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(j->created_at, sizeof j->created_at, "%Y-%m-%dT%H:%M:%SZ", &tm);
    atomic_init(&j->cancel, 0);
    pthread_mutex_lock(&g_lock);
    const int stopping = g_stopping;
    const char *refused = stopping ? "the service is shutting down" : NULL;
    if (!refused) forget_old();
    if (!refused && g_n_jobs >= MAX_JOBS) refused = "too many jobs are kept; try again later";
    if (refused) {
        pthread_mutex_unlock(&g_lock);
        if (free_ctx) free_ctx(ctx);
        job_free(j);
        cs_reply_error(rep, stopping ? 503 : 429, stopping ? "shutting_down" : "too_many_jobs", "%s", refused);
        return;
    }
    cs_fmt(j->id, sizeof j->id, "j%u-%04x", g_next_id++, (unsigned)((uint64_t)cs_now() * 1000003u) & 0xffffu);
    g_jobs[g_n_jobs++] = j;
    if (pthread_create(&j->thread, NULL, task_thread, j) != 0) {
        j->state = CS_JOB_FAILED;
        cs_fmt(j->error, sizeof j->error, "cannot start the job's thread");
        if (free_ctx) free_ctx(ctx);
        j->ctx = NULL;
        pthread_mutex_unlock(&g_lock);
        cs_reply_internal(rep, "cannot start the job's thread");
        return;
    }
    j->has_thread = 1;
    json_t *doc = job_json(j);
    pthread_mutex_unlock(&g_lock);
    char loc[64];
    cs_fmt(loc, sizeof loc, "/v1/jobs/%s", j->id);
    cs_reply_json(rep, 202, doc);
    cs_reply_header(rep, "Location", loc);
}

static cs_job *find_job(const char *id)
{
    for (int i = 0; i < g_n_jobs; i++)
        if (!strcmp(g_jobs[i]->id, id)) return g_jobs[i];
    return NULL;
}

/* GET /v1/jobs */
void cs_h_jobs_list(cs_req *req, cs_reply *rep)
{
    (void)req;
    json_t *arr = json_array();
    pthread_mutex_lock(&g_lock);
    for (int i = g_n_jobs - 1; i >= 0; i--) json_array_append_new(arr, job_json(g_jobs[i]));
    pthread_mutex_unlock(&g_lock);
    cs_reply_json(rep, 200, json_pack("{s:o}", "jobs", arr));
}

/* GET /v1/jobs/{id} */
void cs_h_job_status(cs_req *req, cs_reply *rep)
{
    const char *id = cs_req_param(req, "id");
    pthread_mutex_lock(&g_lock);
    cs_job *j = find_job(id);
    json_t *doc = j ? job_json(j) : NULL;
    pthread_mutex_unlock(&g_lock);
    if (!doc) {
        cs_reply_not_found(rep, "job", id);
        return;
    }
    cs_reply_json(rep, 200, doc);
}

/* DELETE /v1/jobs/{id}  -> 202 while the job stops; 409 when it already ended */
void cs_h_job_cancel(cs_req *req, cs_reply *rep)
{
    const char *id = cs_req_param(req, "id");
    pthread_mutex_lock(&g_lock);
    cs_job *j = find_job(id);
    if (!j) {
        pthread_mutex_unlock(&g_lock);
        cs_reply_not_found(rep, "job", id);
        return;
    }
    if (job_finished(j)) {
        char state[16];
        cs_fmt(state, sizeof state, "%s", k_state_names[j->state]);
        pthread_mutex_unlock(&g_lock);
        cs_reply_error(rep, 409, "job_finished", "job %s already %s", id, state);
        return;
    }
    atomic_store(&j->cancel, 1);
    json_t *doc = job_json(j);
    json_object_set_new(doc, "cancel_requested", json_true());
    pthread_mutex_unlock(&g_lock);
    cs_reply_json(rep, 202, doc);
}

void cs_jobs_stop(void)
{
    pthread_mutex_lock(&g_lock);
    g_stopping = 1;
    for (int i = 0; i < g_n_jobs; i++) atomic_store(&g_jobs[i]->cancel, 1);
    pthread_mutex_unlock(&g_lock);
    /* Join without the lock: the threads take it to report progress. */
    for (;;) {
        pthread_t t;
        int found = 0;
        pthread_mutex_lock(&g_lock);
        for (int i = 0; i < g_n_jobs && !found; i++)
            if (g_jobs[i]->has_thread) {
                t = g_jobs[i]->thread;
                g_jobs[i]->has_thread = 0;
                found = 1;
            }
        pthread_mutex_unlock(&g_lock);
        if (!found) break;
        pthread_join(t, NULL);
    }
    pthread_mutex_lock(&g_lock);
    for (int i = 0; i < g_n_jobs; i++) job_free(g_jobs[i]);
    g_n_jobs = 0;
    pthread_mutex_unlock(&g_lock);
}
