/*
 * keras_h5_priv.h - the parts of keras_h5.c that the full-model reader (keras_model.c)
 * shares: the one lock every libhdf5 call runs under, HDF5's own error text, and
 * Keras' string-list attributes (layer_names, weight_names, split into pieces when long).
 */
#ifndef CS_KERAS_H5_PRIV_H
#define CS_KERAS_H5_PRIV_H

#include <hdf5.h>
#include <stddef.h>

typedef struct {
    int n;
    char **s; /* n owned strings */
} cs_h5_strs;

/* libhdf5's serial build is not thread-safe: hold this around every call into it.
 * Locking also turns off libhdf5's printing of errors. */
void cs_h5_lock(void);
void cs_h5_unlock(void);
/* The innermost HDF5 error of the failed call (buf of 160 bytes), or "HDF5 error". */
const char *cs_h5_reason(char buf[160]);
/* Appends the strings of attribute `name` of obj, or of its pieces name0, name1, ...
 * Fixed- or variable-length, scalar or array. 0, 1 when absent, -1 with msg. */
int cs_h5_read_names(hid_t obj, const char *name, cs_h5_strs *out, char *msg, size_t msglen);
void cs_h5_strs_free(cs_h5_strs *l);

#endif
