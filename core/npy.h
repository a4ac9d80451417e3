/*
 * npy.h - NumPy's .npy files of float32 arrays: the documented format (a magic
 * string, a version, a Python-literal header with 'descr', 'fortran_order' and
 * 'shape', then the raw values), read and written for little-endian float32 in C
 * order, which is what models take and give.
 */
#ifndef CS_NPY_H
#define CS_NPY_H

#include <stddef.h>
#include <stdint.h>

#define CS_NPY_MAX_DIMS 8

typedef struct {
    int ndim;
    int64_t dims[CS_NPY_MAX_DIMS];
    size_t count; /* product of dims */
    float *data;  /* count floats, owned */
} cs_npy;

/* Reads a float32 array (also '<f8' and '<i8', converted to float); -1 with err on
 * anything else (a malformed or truncated file, big-endian or Fortran order). */
int cs_npy_read(const char *path, cs_npy *out, char *err, size_t errlen);
int cs_npy_write(const char *path, const float *data, int ndim, const int64_t *dims, char *err, size_t errlen);
void cs_npy_free(cs_npy *a);

#endif
