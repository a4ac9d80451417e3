/*
 * versions.h - the kept versions of a trainable model: the last N models it served,
 * each a model file of its own with the record of the run that made it.
 *
 * A store is a folder beside the served file (models/fmnist.versions/ for
 * models/fmnist.csm) holding <n>.csm (the model, saved atomically) and <n>.json (its
 * record: where it came from, the job's parameters, its history and its accuracy on
 * the whole test set, or on a subset marked as such). The model file is what counts:
 * a version is listed when its .csm is there, and a record lost to a crash is rebuilt
 * from the model file's own metadata. Numbers are claimed with link(2), which never
 * replaces a file, so two processes sharing the folder never write the same number,
 * and a kept file is never rewritten: a crash at any point leaves every kept version
 * as it was.
 *
 * Thread-safety: every function may be called from any thread; changes to one store
 * are serialised in this process.
 */
#ifndef CS_API_VERSIONS_H
#define CS_API_VERSIONS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "model.h"

#define CS_VERSIONS_KEEP_DEFAULT 5

/* CRC-32 of the parameters: names them across restarts and replicas. */
uint32_t cs_model_crc(const cs_model *m);

/* The record as it starts: the model's own metadata (architecture, checksum, training
 * parameters, history, test accuracy). A caller adds what only it knows, then passes it
 * to cs_versions_keep. */
json_t *cs_versions_record(const cs_model *m, uint32_t crc, const char *source);

/* Keeps m in the store (made when missing) as the next number, with record (borrowed;
 * its "version" and "kept_at" are set), then drops the oldest versions beyond `keep`,
 * never `protect` (the served one) nor the new one. Returns the number (>= 1), or -1
 * with err. */
int cs_versions_keep(const char *store, const cs_model *m, json_t *record, int keep, int protect, char *err,
                     size_t errlen);

/* The number of the kept version whose parameters have this checksum (the newest when
 * several do), or 0. */
int cs_versions_find(const char *store, uint32_t crc);

/* Kept version n, read and checked (size, checksum) like any model file; NULL with err
 * (err starts with "not kept" when there is no such version). */
cs_model *cs_versions_load(const char *store, int n, char *err, size_t errlen);

/* The records of the kept versions, newest first (a new reference), each with
 * "version"; a missing or unreadable record is rebuilt from the model file. */
json_t *cs_versions_list(const char *store);

/* One version's record (a new reference), or NULL when not kept. */
json_t *cs_versions_get(const char *store, int n);

/* Removes what interrupted saves left in the store (temporary files older than
 * max_age seconds; records whose model file never arrived). Returns how many. */
int cs_versions_sweep(const char *store, double max_age);

#endif
