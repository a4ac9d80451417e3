/*
 * dataset.c - reading Fashion-MNIST (and MNIST-style) IDX files.
 *
 * An IDX file is a big-endian header (magic 0x000008NN where 08 says "unsigned
 * bytes" and NN is the number of dimensions, then one u32 per dimension) followed
 * by exactly the product of the dimensions in bytes. The files ship gzip'd; zlib's
 * gz* functions read gzip and plain files alike, so both work without a flag.
 *
 * Everything is checked before it is trusted: magic, dimensions, that the payload
 * is complete and that nothing follows it, and that labels fit the ten classes. The
 * payload's buffer grows with the data that actually arrives, so a header that asks
 * for gigabytes costs what the file holds, not what it claims.
 */
#include "dataset.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

/* Largest dimension and payload accepted: far above any MNIST-style set, low enough
 * that a corrupt header cannot ask for gigabytes. */
#define CS_IDX_MAX_DIM (1 << 24)
#define CS_IDX_MAX_BYTES ((size_t)1 << 31)
/* The first piece of the payload read before the buffer grows (the Fashion-MNIST
 * label files fit in it). */
#define IDX_FIRST_PIECE ((size_t)1 << 20)

/* Reads up to len bytes; gzread takes an unsigned int, so large payloads go in
 * pieces. Returns the bytes read; *failed is set on a read or decompression error
 * (a gzip stream cut short is one), after which the count says how far it got. */
static long long gz_read_full(gzFile f, uint8_t *buf, size_t len, int *failed)
{
    size_t done = 0;
    *failed = 0;
    while (done < len) {
        size_t chunk = len - done;
        if (chunk > (1u << 30))
            chunk = 1u << 30;
        int r = gzread(f, buf + done, (unsigned)chunk);
        if (r < 0) {
            *failed = 1;
            break;
        }
        if (r == 0)
            break;
        done += (size_t)r;
    }
    return (long long)done;
}

/* The reason zlib gives for the last failure, for messages. */
static const char *gz_reason(gzFile f)
{
    int zerr = 0;
    const char *msg = gzerror(f, &zerr);
    if (zerr == Z_ERRNO)
        return strerror(errno);
    return msg && *msg ? msg : "read error";
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

uint8_t *cs_idx_read(const char *path, int want_ndim, int dims[3], char *err, size_t errlen)
{
    if (want_ndim < 1 || want_ndim > 3) {
        snprintf(err, errlen, "%s: cannot read IDX files of %d dimensions", path, want_ndim);
        return NULL;
    }
    errno = 0;
    gzFile f = gzopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, errno ? strerror(errno) : "out of memory");
        return NULL;
    }
    gzbuffer(f, 1 << 17);

    uint8_t *data = NULL;
    uint8_t head[4 + 4 * 3];
    size_t head_len = 4 + 4 * (size_t)want_ndim;
    int failed;
    long long got = gz_read_full(f, head, head_len, &failed);
    if (failed && got < 4) {
        snprintf(err, errlen, "%s: %s", path, gz_reason(f));
        goto fail;
    }
    if (got < 4) {
        snprintf(err, errlen, "%s: not an IDX file (only %lld bytes)", path, got);
        goto fail;
    }
    uint32_t magic = be32(head);
    uint32_t want_magic = 0x00000800u | (uint32_t)want_ndim;
    if (magic != want_magic) {
        if ((magic & 0xffffff00u) == 0x00000800u)
            snprintf(err, errlen, "%s: IDX file of %u dimensions, expected %d (magic 0x%08x)", path,
                     magic & 0xffu, want_ndim, magic);
        else
            snprintf(err, errlen, "%s: not an unsigned-byte IDX file (magic 0x%08x, expected 0x%08x)",
                     path, magic, want_magic);
        goto fail;
    }
    if ((size_t)got < head_len) {
        snprintf(err, errlen, "%s: truncated header: expected %zu bytes, found %lld", path, head_len,
                 got);
        goto fail;
    }

    size_t total = 1;
    for (int i = 0; i < want_ndim; i++) {
        uint32_t d = be32(head + 4 + 4 * i);
        if (d == 0 || d > CS_IDX_MAX_DIM) {
            snprintf(err, errlen, "%s: dimension %d is %u, which is not plausible", path, i, d);
            goto fail;
        }
        dims[i] = (int)d;
        if (total > CS_IDX_MAX_BYTES / d) {
            snprintf(err, errlen, "%s: dimensions ask for more than %zu bytes", path,
                     CS_IDX_MAX_BYTES);
            goto fail;
        }
        total *= d;
    }
    for (int i = want_ndim; i < 3; i++)
        dims[i] = 1;

    /* Read in pieces into a buffer that doubles as data arrives (one final realloc to
     * the exact size at worst): a file announcing 2 GiB and holding 16 bytes never
     * gets more than the first piece. */
    size_t cap = 0;
    got = 0;
    failed = 0;
    while ((size_t)got < total && !failed) {
        size_t want = cap ? (cap > total / 2 ? total : cap * 2) : (total < IDX_FIRST_PIECE ? total : IDX_FIRST_PIECE);
        uint8_t *grown = realloc(data, want);
        if (!grown) {
            snprintf(err, errlen, "%s: out of memory for %zu bytes", path, want);
            goto fail;
        }
        data = grown;
        cap = want;
        long long piece = gz_read_full(f, data + got, cap - (size_t)got, &failed);
        got += piece;
        if ((size_t)got < cap)
            break; /* the file ended (or failed) before the buffer filled */
    }
    if ((size_t)got < total) {
        snprintf(err, errlen, "%s: truncated: expected %zu data bytes after the header, found %lld%s%s",
                 path, total, got, failed ? ": " : "", failed ? gz_reason(f) : "");
        goto fail;
    }
    if (failed) {
        snprintf(err, errlen, "%s: %s", path, gz_reason(f));
        goto fail;
    }
    /* Trailing bytes mean the header and the payload disagree: refuse rather than
     * guess which one is right. */
    uint8_t extra;
    got = gz_read_full(f, &extra, 1, &failed);
    if (got != 0 || failed) {
        if (failed)
            snprintf(err, errlen, "%s: %s", path, gz_reason(f));
        else
            snprintf(err, errlen, "%s: more data than the header announces (%zu bytes)", path,
                     total);
        goto fail;
    }
    gzclose(f);
    return data;

fail:
    free(data);
    gzclose(f);
    return NULL;
}

/* Finds "<dir>/<base>.gz" or "<dir>/<base>" into path; 0 when one exists. */
static int find_file(const char *dir, const char *base, char *path, size_t len)
{
    struct stat st;
    snprintf(path, len, "%s/%s.gz", dir, base);
    if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
        return 0;
    snprintf(path, len, "%s/%s", dir, base);
    if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
        return 0;
    return -1;
}

int cs_dataset_load(const char *dir, const char *split, cs_dataset *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    const char *prefix;
    if (split && strcmp(split, "train") == 0)
        prefix = "train";
    else if (split && strcmp(split, "test") == 0)
        prefix = "t10k";
    else {
        snprintf(err, errlen, "unknown dataset split '%s' (expected train or test)",
                 split ? split : "(null)");
        return -1;
    }
    if (!dir || !*dir)
        dir = CS_DEFAULT_DATA_DIR;

    char img_base[64], lbl_base[64];
    snprintf(img_base, sizeof img_base, "%s-images-idx3-ubyte", prefix);
    snprintf(lbl_base, sizeof lbl_base, "%s-labels-idx1-ubyte", prefix);

    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "dataset folder %s %s (looking for %s.gz)", dir,
                 stat(dir, &st) != 0 ? "does not exist" : "is not a folder", img_base);
        return -1;
    }
    char img_path[4096], lbl_path[4096];
    if (find_file(dir, img_base, img_path, sizeof img_path) != 0) {
        snprintf(err, errlen, "dataset folder %s has no %s.gz (or %s)", dir, img_base, img_base);
        return -1;
    }
    if (find_file(dir, lbl_base, lbl_path, sizeof lbl_path) != 0) {
        snprintf(err, errlen, "dataset folder %s has no %s.gz (or %s)", dir, lbl_base, lbl_base);
        return -1;
    }

    int idims[3], ldims[3];
    uint8_t *images = cs_idx_read(img_path, 3, idims, err, errlen);
    if (!images)
        return -1;
    uint8_t *labels = cs_idx_read(lbl_path, 1, ldims, err, errlen);
    if (!labels) {
        free(images);
        return -1;
    }
    if (idims[0] != ldims[0]) {
        snprintf(err, errlen, "%s holds %d images but %s holds %d labels", img_path, idims[0],
                 lbl_path, ldims[0]);
        goto fail;
    }
    for (int i = 0; i < ldims[0]; i++) {
        if (labels[i] > 9) {
            snprintf(err, errlen, "%s: label %d of image %d is not a class 0..9", lbl_path,
                     labels[i], i);
            goto fail;
        }
    }
    out->n = idims[0];
    out->h = idims[1];
    out->w = idims[2];
    out->images = images;
    out->labels = labels;
    return 0;

fail:
    free(images);
    free(labels);
    return -1;
}

void cs_dataset_free(cs_dataset *d)
{
    if (!d)
        return;
    free(d->images);
    free(d->labels);
    memset(d, 0, sizeof *d);
}

void cs_dataset_image_float(const cs_dataset *d, int i, float *out)
{
    size_t px = (size_t)d->h * (size_t)d->w;
    const uint8_t *src = d->images + (size_t)i * px;
    for (size_t k = 0; k < px; k++)
        out[k] = (float)src[k] / 255.0f;
}
