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

typedef enum {
    CS_JOB_QUEUED,
    CS_JOB_RUNNING,
    CS_JOB_SUCCEEDED,
    CS_JOB_FAILED,
    CS_JOB_CANCELLED,
    CS_JOB_STATES
} cs_job_state;

const char *cs_job_state_name(int state);
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
