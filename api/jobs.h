/*
 * jobs.h - background training jobs, one at a time per model.
 */
#ifndef CS_API_JOBS_H
#define CS_API_JOBS_H

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

#endif
