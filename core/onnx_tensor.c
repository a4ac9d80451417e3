/*
 * onnx_tensor.c - TensorProto files in and out (onnx_tensor.h).
 *
 * Decoding is protobuf-c's with the code generated from onnx.proto, and the values go
 * through the reader's own TensorProto conversion, so a tensor file is checked exactly
 * as a model's initializers are (declared sizes against the bytes there, element types).
 */
#include "onnx_tensor.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "error.h"
#include "npy.h"
#include "onnx.pb-c.h"
#include "onnx_reader_priv.h"

void cs_onnx_tensor_clear(cs_onnx_tensor *t) { onnx_tensor_clear(t); }

int cs_onnx_tensor_read_buffer(const void *buf, size_t len, cs_onnx_tensor *t, char *err, size_t errlen)
{
    memset(t, 0, sizeof *t);
    if (!buf || !len) {
        cs_set_err(err, errlen, "not a TensorProto: no data");
        return -1;
    }
    if (len > CS_ONNX_MAX_FILE_BYTES) {
        cs_set_err(err, errlen, "the tensor is %zu bytes, more than the %.0f GiB limit", len,
                   (double)CS_ONNX_MAX_FILE_BYTES / (1 << 30));
        return -1;
    }
    Onnx__TensorProto *p = onnx__tensor_proto__unpack(NULL, len, buf);
    if (!p) {
        cs_set_err(err, errlen, "not a TensorProto: the protobuf data is malformed or truncated");
        return -1;
    }
    char what[160];
    snprintf(what, sizeof what, "tensor '%.100s'", p->name ? p->name : "");
    int rc = onnx_tensor_from_proto(t, p, what, len, err, errlen);
    onnx__tensor_proto__free_unpacked(p, NULL);
    return rc;
}

int cs_onnx_tensor_read(const char *path, cs_onnx_tensor *t, char *err, size_t errlen)
{
    memset(t, 0, sizeof *t);
    FILE *f = fopen(path, "rb");
    if (!f) {
        cs_set_err(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fileno(f), &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > CS_ONNX_MAX_FILE_BYTES) {
        fclose(f);
        cs_set_err(err, errlen, "%s: not a regular file of at most %.0f GiB", path,
                   (double)CS_ONNX_MAX_FILE_BYTES / (1 << 30));
        return -1;
    }
    size_t len = (size_t)st.st_size;
    unsigned char *buf = malloc(len ? len : 1);
    if (!buf) {
        fclose(f);
        cs_set_err(err, errlen, "%s: out of memory (%zu bytes)", path, len);
        return -1;
    }
    size_t got = fread(buf, 1, len, f);
    int bad = ferror(f);
    fclose(f);
    char why[512] = "";
    int rc = -1;
    if (got != len || bad) snprintf(why, sizeof why, "read error");
    else rc = cs_onnx_tensor_read_buffer(buf, len, t, why, sizeof why);
    free(buf);
    if (rc < 0) cs_set_err(err, errlen, "%s: %s", path, why);
    return rc;
}

int cs_onnx_tensor_write(const char *path, const char *name, const float *data, int ndim, const int64_t *dims,
                         char *err, size_t errlen)
{
    Onnx__TensorProto p = ONNX__TENSOR_PROTO__INIT;
    size_t count = 1;
    for (int k = 0; k < ndim; k++) count *= (size_t)dims[k];
    p.n_dims = (size_t)ndim;
    p.dims = (int64_t *)dims;
    p.has_data_type = 1;
    p.data_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    p.name = (char *)name;
    /* raw_data is little-endian, as the file format says; the machines the core
     * builds on are. */
    p.has_raw_data = 1;
    p.raw_data.len = count * sizeof(float);
    p.raw_data.data = (uint8_t *)data;
    size_t len = onnx__tensor_proto__get_packed_size(&p);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf) {
        cs_set_err(err, errlen, "%s: out of memory (%zu bytes)", path, len);
        return -1;
    }
    onnx__tensor_proto__pack(&p, buf);
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(buf, 1, len, f) == len;
    if (f && fclose(f) != 0) ok = 0;
    free(buf);
    if (!ok) {
        cs_set_err(err, errlen, "%s: %s", path, strerror(errno ? errno : EIO));
        return -1;
    }
    return 0;
}

int cs_onnx_tensor_read_npy(const char *path, const char *name, cs_onnx_tensor *t, char *err, size_t errlen)
{
    memset(t, 0, sizeof *t);
    cs_npy a;
    if (cs_npy_read(path, &a, err, errlen) != 0) return -1;
    if (a.ndim > CS_ONNX_MAX_DIMS) {
        cs_npy_free(&a);
        cs_set_err(err, errlen, "%s: %d dims; at most %d are supported", path, a.ndim, CS_ONNX_MAX_DIMS);
        return -1;
    }
    t->name = onnx_strdup(name);
    if (!t->name) {
        cs_npy_free(&a);
        cs_set_err(err, errlen, "%s: out of memory", path);
        return -1;
    }
    t->elem_type = CS_ONNX_FLOAT;
    t->ndim = a.ndim;
    for (int k = 0; k < a.ndim; k++) t->dims[k] = a.dims[k];
    t->count = (int64_t)a.count;
    t->f = a.data; /* taken over */
    return 0;
}

static int has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

int cs_onnx_tensor_read_any(const char *path, const char *name, cs_onnx_tensor *t, char *err, size_t errlen)
{
    if (has_suffix(path, ".npy")) return cs_onnx_tensor_read_npy(path, name, t, err, errlen);
    if (cs_onnx_tensor_read(path, t, err, errlen) != 0) return -1;
    char *copy = onnx_strdup(name);
    if (!copy) {
        cs_onnx_tensor_clear(t);
        cs_set_err(err, errlen, "%s: out of memory", path);
        return -1;
    }
    free(t->name);
    t->name = copy;
    return 0;
}
