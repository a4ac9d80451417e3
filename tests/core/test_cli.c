/*
 * test_cli.c - the convscope command on bad input: a truncated or wrong-magic IDX
 * file, a corrupt model file, a missing data folder, a missing image each give one
 * clear error line on stderr and a non-zero exit, never a crash; and the good paths
 * print what scripts read ("accuracy 0.8961", the top classes).
 */
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"

static const char *dir;

/* Runs a shell command; returns its exit status (-1 when killed by a signal) and
 * its stdout and stderr in the given buffers. */
static int run(const char *cmd, char *out, size_t outlen, char *err, size_t errlen)
{
    char full[2048];
    snprintf(full, sizeof full, "%s >%s/out 2>%s/err", cmd, dir, dir);
    int st = system(full);
    char path[256];
    for (int k = 0; k < 2; k++) {
        snprintf(path, sizeof path, "%s/%s", dir, k ? "err" : "out");
        FILE *f = fopen(path, "r");
        char *buf = k ? err : out;
        size_t len = k ? errlen : outlen, n = f ? fread(buf, 1, len - 1, f) : 0;
        buf[n] = 0;
        if (f) fclose(f);
    }
    if (WIFSIGNALED(st) || (WIFEXITED(st) && WEXITSTATUS(st) >= 128)) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int lines(const char *s)
{
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

static void write_file(const char *name, const void *data, size_t len)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    fwrite(data, 1, len, f);
    fclose(f);
}

/* A data folder holding the real test labels/images but a damaged training file. */
static void make_data_dir(const char *sub, const void *train_images, size_t len)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "mkdir -p %s/%s && cp /usr/share/datasets/fashion-mnist/t10k-* "
             "/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz %s/%s/",
             dir, sub, dir, sub);
    CHECK(system(cmd) == 0, "copy the test set");
    char name[128];
    snprintf(name, sizeof name, "%s/train-images-idx3-ubyte", sub);
    write_file(name, train_images, len);
}

static void test_bad_dataset_files(void)
{
    char out[4096], err[4096], cmd[512];
    /* Truncated: a valid header for 60000 28x28 images and only 100 bytes of pixels. */
    unsigned char trunc[116] = {0, 0, 8, 3, 0, 0, 0xea, 0x60, 0, 0, 0, 28, 0, 0, 0, 28};
    make_data_dir("trunc", trunc, sizeof trunc);
    snprintf(cmd, sizeof cmd, "build/convscope train --epochs 1 --data %s/trunc --out %s/m.csm", dir, dir);
    int rc = run(cmd, out, sizeof out, err, sizeof err);
    CHECK(rc == 1, "truncated IDX: exit 1, got %d", rc);
    CHECK(lines(err) == 1 && strstr(err, "truncated"), "one line naming the problem: %s", err);
    unsigned char magic[16] = {0, 0, 8, 7, 0, 0, 0, 1, 0, 0, 0, 28, 0, 0, 0, 28};
    make_data_dir("magic", magic, sizeof magic);
    snprintf(cmd, sizeof cmd, "build/convscope train --epochs 1 --data %s/magic --out %s/m.csm", dir, dir);
    rc = run(cmd, out, sizeof out, err, sizeof err);
    CHECK(rc == 1 && lines(err) == 1 && strstr(err, "magic"), "wrong magic: exit %d, %s", rc, err);
    snprintf(cmd, sizeof cmd, "build/convscope eval --model models/fmnist.csm --data %s/nowhere", dir);
    rc = run(cmd, out, sizeof out, err, sizeof err);
    CHECK(rc == 1 && lines(err) == 1 && strstr(err, "nowhere"), "missing folder: exit %d, %s", rc, err);
}

static void test_bad_model_files(void)
{
    char out[4096], err[4096], cmd[512];
    snprintf(cmd, sizeof cmd, "cp models/fmnist.csm %s/bad.csm && printf 'XXXX' | dd of=%s/bad.csm bs=1 seek=5000 "
             "conv=notrunc 2>/dev/null", dir, dir);
    CHECK(system(cmd) == 0, "make a corrupt copy");
    snprintf(cmd, sizeof cmd, "build/convscope eval --model %s/bad.csm", dir);
    int rc = run(cmd, out, sizeof out, err, sizeof err);
    CHECK(rc == 1 && lines(err) == 1 && strstr(err, "checksum"), "corrupt model: exit %d, %s", rc, err);
    snprintf(cmd, sizeof cmd, "head -c 3000 models/fmnist.csm > %s/short.csm", dir);
    CHECK(system(cmd) == 0, "make a truncated copy");
    snprintf(cmd, sizeof cmd, "build/convscope eval --model %s/short.csm", dir);
    rc = run(cmd, out, sizeof out, err, sizeof err);
    CHECK(rc == 1 && lines(err) == 1 && strstr(err, "truncated"), "truncated model: exit %d, %s", rc, err);
    rc = run("build/convscope eval --model README.md", out, sizeof out, err, sizeof err);
    CHECK(rc == 1 && lines(err) == 1, "not a model file: exit %d, %s", rc, err);
    rc = run("build/convscope predict --model models/fmnist.csm tests/data/photos/truncated.jpg", out, sizeof out,
             err, sizeof err);
    CHECK(rc == 1 && lines(err) == 1, "truncated JPEG: exit %d, %s", rc, err);
    rc = run("build/convscope predict --model models/fmnist.csm /nonexistent.png", out, sizeof out, err, sizeof err);
    CHECK(rc == 1 && lines(err) == 1, "missing image: exit %d, %s", rc, err);
    rc = run("build/convscope frobnicate", out, sizeof out, err, sizeof err);
    CHECK(rc == 2 && strstr(err, "unknown command"), "unknown command: exit %d", rc);
}

static void test_good_paths(void)
{
    char out[4096], err[4096];
    int rc = run("build/convscope eval --model models/fmnist.csm", out, sizeof out, err, sizeof err);
    double acc = 0;
    CHECK(rc == 0 && sscanf(out, "accuracy %lf", &acc) == 1 && acc >= 0.895, "eval: %d %s", rc, out);
    rc = run("build/convscope predict --model models/fmnist.csm --top 3 tests/data/photos/chelsea.png", out,
             sizeof out, err, sizeof err);
    CHECK(rc == 0 && lines(out) == 3, "predict prints three classes: %s%s", out, err);
}

int main(void)
{
    dir = test_scratch_dir("cli");
    RUN(test_bad_dataset_files);
    RUN(test_bad_model_files);
    RUN(test_good_paths);
    return test_summary("cli");
}
