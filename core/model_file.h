/*
 * model_file.h - the convscope model file (.csm), documented in docs/model-format.md.
 *
 *   magic "CSMODEL\0" (8 bytes), u32 format version, u32 metadata length L,
 *   L bytes of JSON metadata (architecture, layers, class names, training history),
 *   u64 float count N, N little-endian float32 (the parameter block, layer order),
 *   u32 CRC-32 (zlib) of everything before it.
 *
 * Saving writes a temporary file beside the target, fsyncs it and renames it over
 * the target, so readers see the old file or the new one, never half of one.
 */
#ifndef CS_MODEL_FILE_H
#define CS_MODEL_FILE_H

#include <stddef.h>

#include "model.h"

#define CS_MODEL_FORMAT_VERSION 2 /* 2: nodes name their inputs (graphs); 1 still loads */

int cs_model_save(const cs_model *m, const char *path, char *err, size_t errlen);
/* Returns NULL with a one-line reason in err for a missing, truncated, corrupt or
 * mismatched file. */
cs_model *cs_model_load(const char *path, char *err, size_t errlen);

/* A temporary file of a save is stale when nothing has written it for this long: a
 * live save keeps writing its file and renames it within seconds. */
#define CS_STALE_SAVE_SECONDS 900

/*
 * Removes the temporary files that killed saves left in dir: regular files named
 * "<name>.tmp.<pid>.<n>" (what cs_model_save and the Keras HDF5 export write) whose
 * <name> ends in ".csm" or ".h5", unchanged for min_age_s seconds. Nothing else is
 * touched: other names, symbolic links, younger files (a save in progress, perhaps of
 * another process sharing the folder). Returns how many were removed (their names,
 * cut short, in msg), or -1 when dir cannot be read.
 */
int cs_model_remove_stale_saves(const char *dir, double min_age_s, char *msg, size_t msglen);

#endif
