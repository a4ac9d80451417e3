/*
 * job_snapshots.h - a training job's first-convolution filters and test accuracy after
 * every epoch (job_snapshots.c). The job's thread calls these; the routes read them.
 */
#ifndef CS_API_JOB_SNAPSHOTS_H
#define CS_API_JOB_SNAPSHOTS_H

#include "model.h"

/* Starts keeping snapshots for the job (the first node with a 4-D kernel); -1 when the
 * model has none. */
int cs_snapshots_begin(const char *job_id, const cs_model *m);
/* Keeps m's filters and the epoch's test accuracy, after epoch r. */
void cs_snapshots_take(const char *job_id, const cs_model *m, const cs_epoch_record *r);

#endif
