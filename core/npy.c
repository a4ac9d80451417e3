/*
 * npy.c - .npy files (npy.h). The header is a Python dict literal; only the three
 * keys NumPy writes are read, and every number in it is checked before anything is
 * allocated, so a damaged file is refused rather than trusted.
 */
#include "npy.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_HEADER 65536
#define MAX_BYTES ((size_t)1 << 34)

static const unsigned char MAGIC[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};

/* The value after 'key': in the header, or NULL. */
static const char *field(const char *h, const char *key)
{
    char quoted[32];
    snprintf(quoted, sizeof quoted, "'%s'", key);
    const char *p = strstr(h, quoted);
    if (!p) return NULL;
    p += strlen(quoted);
    while (*p == ' ') p++;
    if (*p != ':') return NULL;
    p++;
    while (*p == ' ') p++;
    return p;
}

static int parse_shape(const char *p, cs_npy *a)
{
    if (*p != '(') return -1;
    p++;
    a->ndim = 0;
    a->count = 1;
    for (;;) {
        while (*p == ' ') p++;
        if (*p == ')') break;
        char *end;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        if (end == p || errno || v < 0 || a->ndim == CS_NPY_MAX_DIMS) return -1;
        a->dims[a->ndim++] = v;
        if (v && a->count > MAX_BYTES / (size_t)v) return -1;
        a->count *= (size_t)v;
        p = end;
        while (*p == ' ') p++;
        if (*p == ',') p++;
        else if (*p != ')') return -1;
    }
    return 0;
}

int cs_npy_read(const char *path, cs_npy *a, char *err, size_t errlen)
{
    memset(a, 0, sizeof *a);
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    unsigned char head[10];
    char *h = NULL;
    int rc = -1;
    if (fread(head, 1, 10, f) != 10 || memcmp(head, MAGIC, 6) || head[6] < 1 || head[6] > 3) {
        snprintf(err, errlen, "%s: not a .npy file", path);
        goto out;
    }
    size_t hlen = head[8] | (size_t)head[9] << 8;
    if (head[6] >= 2) { /* versions 2 and 3: a 4-byte header length */
        unsigned char more[2];
        if (fread(more, 1, 2, f) != 2) goto truncated;
        hlen |= (size_t)more[0] << 16 | (size_t)more[1] << 24;
    }
    if (hlen > MAX_HEADER || !(h = calloc(hlen + 1, 1)) || fread(h, 1, hlen, f) != hlen) goto truncated;
    const char *descr = field(h, "descr"), *order = field(h, "fortran_order"), *shape = field(h, "shape");
    if (!descr || !order || !shape || parse_shape(shape, a) != 0) {
        snprintf(err, errlen, "%s: malformed .npy header", path);
        goto out;
    }
    if (strncmp(order, "False", 5) != 0) {
        snprintf(err, errlen, "%s: Fortran-order arrays are not supported", path);
        goto out;
    }
    int width = !strncmp(descr, "'<f4'", 5) ? 4 : !strncmp(descr, "'<f8'", 5) || !strncmp(descr, "'<i8'", 5) ? 8 : 0;
    if (!width) {
        snprintf(err, errlen, "%s: element type %.6s is not supported (float32, float64 or int64)", path, descr);
        goto out;
    }
    if (!(a->data = malloc((a->count ? a->count : 1) * sizeof(float)))) {
        snprintf(err, errlen, "%s: out of memory for %zu values", path, a->count);
        goto out;
    }
    for (size_t i = 0; i < a->count; i++) {
        unsigned char b[8];
        if (fread(b, 1, (size_t)width, f) != (size_t)width) goto truncated;
        uint64_t u = 0;
        for (int k = width - 1; k >= 0; k--) u = u << 8 | b[k];
        if (width == 4) {
            uint32_t u32 = (uint32_t)u;
            memcpy(&a->data[i], &u32, 4);
        } else if (descr[2] == 'f') {
            double d;
            memcpy(&d, &u, 8);
            a->data[i] = (float)d;
        } else {
            a->data[i] = (float)(int64_t)u;
        }
    }
    rc = 0;
    goto out;
truncated:
    snprintf(err, errlen, "%s: truncated .npy file", path);
out:
    if (rc != 0) cs_npy_free(a);
    free(h);
    fclose(f);
    return rc;
}

int cs_npy_write(const char *path, const float *data, int ndim, const int64_t *dims, char *err, size_t errlen)
{
    char shape[256] = "(", num[32];
    size_t count = 1;
    for (int d = 0; d < ndim; d++) {
        snprintf(num, sizeof num, "%lld%s", (long long)dims[d], ndim == 1 ? "," : d + 1 < ndim ? ", " : "");
        strncat(shape, num, sizeof shape - strlen(shape) - 1);
        count *= (size_t)dims[d];
    }
    strncat(shape, ")", sizeof shape - strlen(shape) - 1);
    char h[512];
    int n = snprintf(h, sizeof h, "{'descr': '<f4', 'fortran_order': False, 'shape': %s, }", shape);
    /* Padded with spaces to a multiple of 64 bytes with the 10 before it, ending in a newline. */
    int total = (10 + n + 1 + 63) / 64 * 64;
    while (10 + n + 1 < total) h[n++] = ' ';
    h[n++] = '\n';
    unsigned char head[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(n & 0xff), (unsigned char)(n >> 8)};
    FILE *f = fopen(path, "wb");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    int ok = fwrite(head, 1, 10, f) == 10 && fwrite(h, 1, (size_t)n, f) == (size_t)n;
    for (size_t i = 0; ok && i < count; i++) {
        uint32_t u;
        memcpy(&u, &data[i], 4);
        unsigned char b[4] = {(unsigned char)u, (unsigned char)(u >> 8), (unsigned char)(u >> 16), (unsigned char)(u >> 24)};
        ok = fwrite(b, 1, 4, f) == 4;
    }
    if (fclose(f) != 0) ok = 0;
    if (!ok) snprintf(err, errlen, "%s: write error", path);
    return ok ? 0 : -1;
}

void cs_npy_free(cs_npy *a)
{
    free(a->data);
    a->data = NULL;
    a->count = 0;
}
