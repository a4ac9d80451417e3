/*
 * jobs.h - background jobs: training (one at a time per model), and tasks of other
 * kinds (an explanation evaluation over dataset images) that run through the same
 * list, status, progress and cancellation.
 */
#ifndef CS_API_JOBS_H
#define CS_API_JOBS_H

#include <jansson.h>
#include <stddef.h>

#include "http.h"
#include "model.h"
#include "train.h"

/* Ceilings on one job (400 job_too_large / bad_parameter beyond): the notebook's
 * recipe is 20 epochs of 469 steps (60000 images, batch 128), 9380 steps. */
#define CS_JOB_MAX_EPOCHS 100
#define CS_JOB_MAX_STEPS 100000

typedef enum {
    CS_JOB_QUEUED,
    CS_JOB_RUNNING,
    CS_JOB_SUCCEEDED,
    CS_JOB_FAILED,
    CS_JOB_CANCELLED,
    CS_JOB_STATES
} cs_job_state;

const char *cs_job_state_name(int state);
/* A training request's body: the configuration, where it starts, whether epochs are
 * kept as snapshots. */
typedef struct {
    cs_train_config cfg;
    int from_current;
    int snapshots;
} cs_train_request;
/* Reads a training request's JSON body into *out (defaults for what it leaves out) and
 * checks every field and the ceilings, counting train_images training images. 1, or 0
 * after a 400 reply (bad_json, bad_parameter, job_too_large). */
int cs_train_request_or_reply(const cs_req *req, cs_reply *rep, int train_images, cs_train_request *out);
/* The per-epoch history as the job and model routes show it: one object per epoch,
 * null for numbers that are not finite (a diverged epoch keeps its place). */
json_t *cs_history_json(const cs_epoch_record *h, int n);
/* counts[state] = number of known jobs in that state. */
void cs_jobs_count(int counts[CS_JOB_STATES]);
/* Cancels every queued or running job and waits for their threads: nothing is left
 * half-written (a job saves only after training finished, atomically). */
void cs_jobs_stop(void);

/* A task's work, on the job's own thread: reports progress with cs_job_progress, stops
 * early (returning NULL) when cs_job_cancelled says so, and returns its result
 * document, or NULL with err when it failed. */
typedef struct cs_job cs_job;
typedef json_t *(*cs_job_fn)(cs_job *job, void *ctx, char *err, size_t errlen);

/* Starts a task of `kind` for `model` and replies 202 with the job (Location: its URL),
 * or with the error. The job takes ctx (free_ctx(ctx) when the task has run, also when
 * it could not start) and params (the JSON object its status shows). */
void cs_job_start_task(cs_reply *rep, const char *kind, const char *model, json_t *params, cs_job_fn run,
                       void *ctx, void (*free_ctx)(void *));
void cs_job_progress(cs_job *job, long done, long total);
int cs_job_cancelled(cs_job *job);

#endif
