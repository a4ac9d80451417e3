/*
 * jobs.h - background training jobs, one at a time per model.
 */
#ifndef CS_API_JOBS_H
#define CS_API_JOBS_H

#include <jansson.h>

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
/* Reads a training request's JSON body into cfg (defaults for what it leaves out) and
 * checks every field and the ceilings, counting train_images training images. 1, or 0
 * after a 400 reply (bad_json, bad_parameter, job_too_large). */
int cs_train_request_or_reply(const cs_req *req, cs_reply *rep, int train_images, cs_train_config *cfg,
                              int *from_current);
/* The per-epoch history as the job and model routes show it: one object per epoch,
 * null for numbers that are not finite (a diverged epoch keeps its place). */
json_t *cs_history_json(const cs_epoch_record *h, int n);
/* counts[state] = number of known jobs in that state. */
void cs_jobs_count(int counts[CS_JOB_STATES]);
/* Cancels every queued or running job and waits for their threads: nothing is left
 * half-written (a job saves only after training finished, atomically). */
void cs_jobs_stop(void);

#endif
