/*
 * test_dataset.c - IDX reading: small files written here (plain and gzip), every
 * kind of broken file, and the real Fashion-MNIST folder when it is installed.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "dataset.h"
#include "test.h"

static const char *tmp_root;

/* A fresh empty folder under the test's temporary root. */
static const char *fresh_dir(const char *name)
{
    static char path[256];
    snprintf(path, sizeof path, "%s/%s", tmp_root, name);
    mkdir(path, 0700);
    return path;
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Writes an IDX file: magic, dims, then `payload` bytes of data (which may be fewer
 * or more than the dims announce, to make broken files). */
static void write_idx(const char *path, int gzip, uint32_t magic, int ndim, const uint32_t *dims,
                      const uint8_t *data, size_t payload)
{
    uint8_t head[16];
    put_be32(head, magic);
    for (int i = 0; i < ndim; i++)
        put_be32(head + 4 + 4 * i, dims[i]);
    size_t hlen = 4 + 4 * (size_t)ndim;
    if (gzip) {
        gzFile f = gzopen(path, "wb");
        gzwrite(f, head, (unsigned)hlen);
        if (payload)
            gzwrite(f, data, (unsigned)payload);
        gzclose(f);
    } else {
        FILE *f = fopen(path, "wb");
        fwrite(head, 1, hlen, f);
        if (payload)
            fwrite(data, 1, payload, f);
        fclose(f);
    }
}

/* A split of n images of 3x2 pixels: pixel k of image i is i*10+k, label i%10. */
static void write_split(const char *dir, const char *prefix, int gzip, int n_images, int n_labels,
                        int bad_label)
{
    char path[512];
    uint8_t img[64 * 6], lbl[64];
    for (int i = 0; i < n_images; i++)
        for (int k = 0; k < 6; k++)
            img[i * 6 + k] = (uint8_t)(i * 10 + k);
    for (int i = 0; i < n_labels; i++)
        lbl[i] = (uint8_t)(i % 10);
    if (bad_label && n_labels > 1)
        lbl[1] = 12;
    uint32_t idims[3] = {(uint32_t)n_images, 3, 2}, ldims[1] = {(uint32_t)n_labels};
    snprintf(path, sizeof path, "%s/%s-images-idx3-ubyte%s", dir, prefix, gzip ? ".gz" : "");
    write_idx(path, gzip, 0x803, 3, idims, img, (size_t)n_images * 6);
    snprintf(path, sizeof path, "%s/%s-labels-idx1-ubyte%s", dir, prefix, gzip ? ".gz" : "");
    write_idx(path, gzip, 0x801, 1, ldims, lbl, (size_t)n_labels);
}

static void check_split(const cs_dataset *d, int n)
{
    CHECK(d->n == n && d->h == 3 && d->w == 2, "shape %d x %d x %d", d->n, d->h, d->w);
    int bad = 0;
    for (int i = 0; i < d->n && i < n; i++) {
        for (int k = 0; k < 6; k++)
            bad += d->images[i * 6 + k] != (uint8_t)(i * 10 + k);
        bad += d->labels[i] != i % 10;
    }
    CHECK(bad == 0, "%d wrong values", bad);
}

static void test_plain_and_gzip(void)
{
    char err[512];
    for (int gz = 0; gz < 2; gz++) {
        const char *dir = fresh_dir(gz ? "gz" : "plain");
        write_split(dir, "train", gz, 12, 12, 0);
        write_split(dir, "t10k", gz, 5, 5, 0);
        cs_dataset tr, te;
        err[0] = 0;
        int rc = cs_dataset_load(dir, "train", &tr, err, sizeof err);
        CHECK(rc == 0, "train (%s): %s", gz ? "gzip" : "plain", err);
        if (rc == 0)
            check_split(&tr, 12);
        rc = cs_dataset_load(dir, "test", &te, err, sizeof err);
        CHECK(rc == 0, "test (%s): %s", gz ? "gzip" : "plain", err);
        if (rc == 0) {
            check_split(&te, 5);
            float px[6];
            cs_dataset_image_float(&te, 4, px);
            CHECK_NEAR(px[0], 40.0 / 255.0, 1e-7, "pixel 0 of image 4");
            CHECK_NEAR(px[5], 45.0 / 255.0, 1e-7, "pixel 5 of image 4");
        }
        cs_dataset_free(&tr);
        cs_dataset_free(&te);
        CHECK(tr.images == NULL && tr.n == 0, "free clears the struct");
    }
}

static void test_idx_read_direct(void)
{
    char path[512], err[512];
    snprintf(path, sizeof path, "%s/one.idx", fresh_dir("direct"));
    uint8_t data[7] = {1, 2, 3, 4, 5, 6, 7};
    uint32_t dims[1] = {7};
    write_idx(path, 0, 0x801, 1, dims, data, 7);
    int d[3] = {0, 0, 0};
    uint8_t *got = cs_idx_read(path, 1, d, err, sizeof err);
    CHECK(got != NULL, "read: %s", err);
    if (got) {
        CHECK(d[0] == 7 && d[1] == 1 && d[2] == 1, "dims %d %d %d", d[0], d[1], d[2]);
        CHECK(memcmp(got, data, 7) == 0, "values");
    }
    free(got);
    /* Asking for images from a label file is a dimension mismatch, not a crash. */
    err[0] = 0;
    got = cs_idx_read(path, 3, d, err, sizeof err);
    CHECK(got == NULL && strstr(err, "dimensions"), "ndim mismatch: %s", err);
    free(got);
}

/* Loads a split that must fail; the message must mention `want`. */
static void expect_fail(const char *dir, const char *split, const char *want)
{
    char err[512] = "";
    cs_dataset d;
    int rc = cs_dataset_load(dir, split, &d, err, sizeof err);
    CHECK(rc == -1, "%s/%s loaded but should not", dir, split);
    CHECK(err[0] != 0, "%s/%s: empty message", dir, split);
    CHECK(strstr(err, want) != NULL, "message '%s' lacks '%s'", err, want);
    CHECK(d.images == NULL && d.labels == NULL, "no data left behind");
    if (rc == 0)
        cs_dataset_free(&d);
}


/* This process's peak virtual size (VmPeak) in bytes, -1 when unknown. */
static long long vm_peak(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmPeak:", 7))
            kb = atoll(line + 7);
    if (f)
        fclose(f);
    return kb < 0 ? -1 : kb * 1024;
}

/* A header announcing 32768 x 256 x 256 bytes (2 GiB, the most a header may ask)
 * followed by 16 bytes: refused as truncated, having taken memory for what arrived,
 * not for the claim (before: a 2 GiB allocation per such file). Runs first, so no
 * earlier test's peak hides the allocation. */
static void test_huge_header_small_file(void)
{
    const char *dir = fresh_dir("huge");
    char path[512];
    uint8_t data[16] = {0};
    uint32_t dims[3] = {32768, 256, 256};
    for (int gz = 0; gz < 2; gz++) {
        snprintf(path, sizeof path, "%s/big-images%s", dir, gz ? ".gz" : "");
        write_idx(path, gz, 0x803, 3, dims, data, sizeof data);
        long long before = vm_peak();
        char err[512] = "";
        int d[3];
        uint8_t *got = cs_idx_read(path, 3, d, err, sizeof err);
        long long after = vm_peak();
        CHECK(got == NULL && strstr(err, "truncated") && strstr(err, "2147483648"), "%s: %s", gz ? "gzip" : "plain",
              err);
        free(got);
        /* Far below the claim's 2048 MiB; above what a sanitizer's allocator reserves
         * for its own bookkeeping when the file is read (about 130 MiB). */
        CHECK(before > 0 && after - before < (512ll << 20), "%s: peak virtual size grew by %lld MiB",
              gz ? "gzip" : "plain", (after - before) >> 20);
    }
}

static void test_truncated(void)
{
    const char *dir = fresh_dir("trunc");
    write_split(dir, "train", 0, 10, 10, 0);
    /* Announce 10 images of 3x2 but write only 50 of the 60 pixel bytes. */
    char path[512];
    uint8_t img[60] = {0};
    uint32_t dims[3] = {10, 3, 2};
    snprintf(path, sizeof path, "%s/train-images-idx3-ubyte", dir);
    write_idx(path, 0, 0x803, 3, dims, img, 50);
    char err[512] = "";
    int d[3];
    uint8_t *got = cs_idx_read(path, 3, d, err, sizeof err);
    CHECK(got == NULL, "truncated file read");
    CHECK(strstr(err, path) && strstr(err, "60") && strstr(err, "50"),
          "message names file, expected and found: %s", err);
    free(got);
    expect_fail(dir, "train", "truncated");

    /* The same in gzip: the stream is complete but short. */
    const char *gdir = fresh_dir("trunc_gz");
    write_split(gdir, "train", 1, 10, 10, 0);
    snprintf(path, sizeof path, "%s/train-images-idx3-ubyte.gz", gdir);
    write_idx(path, 1, 0x803, 3, dims, img, 50);
    expect_fail(gdir, "train", "truncated");

    /* A gzip file cut in the middle of its compressed stream. */
    const char *cdir = fresh_dir("cut_gz");
    write_split(cdir, "train", 1, 60, 60, 0);
    snprintf(path, sizeof path, "%s/train-images-idx3-ubyte.gz", cdir);
    struct stat st;
    stat(path, &st);
    CHECK(truncate(path, st.st_size / 2) == 0, "truncate");
    expect_fail(cdir, "train", "train-images-idx3-ubyte.gz");

    /* Only a header fragment. */
    const char *hdir = fresh_dir("trunc_head");
    write_split(hdir, "train", 0, 4, 4, 0);
    snprintf(path, sizeof path, "%s/train-labels-idx1-ubyte", hdir);
    FILE *f = fopen(path, "wb");
    fwrite("\0\0\x08\x01\0", 1, 5, f);
    fclose(f);
    expect_fail(hdir, "train", "truncated");

    /* More bytes than the header announces. */
    const char *xdir = fresh_dir("extra");
    write_split(xdir, "train", 0, 4, 4, 0);
    uint8_t lbl[6] = {0, 1, 2, 3, 4, 5};
    uint32_t ld[1] = {4};
    snprintf(path, sizeof path, "%s/train-labels-idx1-ubyte", xdir);
    write_idx(path, 0, 0x801, 1, ld, lbl, 6);
    expect_fail(xdir, "train", "more data");
}

static void test_wrong_magic(void)
{
    const char *dir = fresh_dir("magic");
    write_split(dir, "train", 0, 4, 4, 0);
    char path[512];
    uint8_t img[24] = {0};
    uint32_t dims[3] = {4, 3, 2};
    snprintf(path, sizeof path, "%s/train-images-idx3-ubyte", dir);
    write_idx(path, 0, 0x0c03, 3, dims, img, 24); /* 0x0c: int32 elements */
    expect_fail(dir, "train", "magic");

    const char *tdir = fresh_dir("text");
    write_split(tdir, "train", 0, 4, 4, 0);
    snprintf(path, sizeof path, "%s/train-labels-idx1-ubyte", tdir);
    FILE *f = fopen(path, "w");
    fputs("this is not an idx file at all\n", f);
    fclose(f);
    expect_fail(tdir, "train", "train-labels-idx1-ubyte");

    const char *zdir = fresh_dir("zerodim");
    write_split(zdir, "train", 0, 4, 4, 0);
    uint32_t zd[3] = {4, 0, 2};
    snprintf(path, sizeof path, "%s/train-images-idx3-ubyte", zdir);
    write_idx(path, 0, 0x803, 3, zd, img, 0);
    expect_fail(zdir, "train", "dimension");

    /* A header asking for 2^32 - 1 images must not make it allocate. */
    const char *bdir = fresh_dir("huge");
    write_split(bdir, "train", 0, 4, 4, 0);
    uint32_t hd[3] = {0xffffffffu, 28, 28};
    snprintf(path, sizeof path, "%s/train-images-idx3-ubyte", bdir);
    write_idx(path, 0, 0x803, 3, hd, img, 24);
    expect_fail(bdir, "train", "plausible");
}

static void test_missing(void)
{
    char missing[256];
    snprintf(missing, sizeof missing, "%s/no-such-folder", tmp_root);
    expect_fail(missing, "train", "no-such-folder");
    expect_fail(missing, "train", "train-images-idx3-ubyte");

    const char *dir = fresh_dir("half");
    write_split(dir, "train", 1, 4, 4, 0);
    char path[512];
    snprintf(path, sizeof path, "%s/train-labels-idx1-ubyte.gz", dir);
    unlink(path);
    expect_fail(dir, "train", "train-labels-idx1-ubyte");
    expect_fail(dir, "test", "t10k-images-idx3-ubyte");
    expect_fail(dir, "validation", "split");
}

static void test_mismatch_and_labels(void)
{
    const char *dir = fresh_dir("mismatch");
    write_split(dir, "train", 0, 6, 5, 0);
    expect_fail(dir, "train", "labels");

    const char *ldir = fresh_dir("badlabel");
    write_split(ldir, "train", 0, 6, 6, 1);
    expect_fail(ldir, "train", "label 12");
}

static void test_real_fashion_mnist(void)
{
    struct stat st;
    if (stat(CS_DEFAULT_DATA_DIR, &st) != 0) {
        fprintf(stderr, "  (no %s: real data not checked)\n", CS_DEFAULT_DATA_DIR);
        return;
    }
    char err[512] = "";
    cs_dataset tr, te;
    int rc = cs_dataset_load(CS_DEFAULT_DATA_DIR, "train", &tr, err, sizeof err);
    CHECK(rc == 0, "train: %s", err);
    if (rc == 0) {
        CHECK(tr.n == 60000 && tr.h == 28 && tr.w == 28, "train %d x %d x %d", tr.n, tr.h, tr.w);
        CHECK(tr.labels[0] == 9, "first training label %d, expected 9 (Ankle boot)", tr.labels[0]);
        int count[10] = {0};
        for (int i = 0; i < tr.n; i++)
            count[tr.labels[i]]++;
        for (int c = 0; c < 10; c++)
            CHECK(count[c] == 6000, "class %d has %d training images", c, count[c]);
    }
    rc = cs_dataset_load(CS_DEFAULT_DATA_DIR, "test", &te, err, sizeof err);
    CHECK(rc == 0, "test: %s", err);
    if (rc == 0) {
        CHECK(te.n == 10000 && te.h == 28 && te.w == 28, "test %d x %d x %d", te.n, te.h, te.w);
        CHECK(te.labels[0] == 9, "first test label %d, expected 9", te.labels[0]);
        CHECK(te.labels[18] == 8, "test image 18 is a Bag (the notebook's Grad-CAM image): %d",
              te.labels[18]);
    }
    cs_dataset_free(&tr);
    cs_dataset_free(&te);
}

int main(void)
{
    tmp_root = test_scratch_dir("dataset");
    RUN(test_huge_header_small_file);
    RUN(test_plain_and_gzip);
    RUN(test_idx_read_direct);
    RUN(test_truncated);
    RUN(test_wrong_magic);
    RUN(test_missing);
    RUN(test_mismatch_and_labels);
    RUN(test_real_fashion_mnist);
    return test_summary("dataset");
}
