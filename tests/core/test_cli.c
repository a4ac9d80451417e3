/*
 * test_cli.c - the convscope command on bad input: a truncated or wrong-magic IDX
 * file, a corrupt model file, a missing data folder, a missing image each give one
 * clear error line on stderr and a non-zero exit, never a crash; and the good paths
 * print what scripts read ("accuracy 0.8961", the top classes). `convscope run` on
 * ONNX operator tests (Debian's libonnx-testdata) gives ONNX's expected outputs through
 * .pb and .npy files, a convscope model's outputs match a forward pass, and an input
 * of the wrong shape, type or name gets one clear line.
 */
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "exec.h"
#include "model_file.h"
#include "npy.h"
#include "onnx_tensor.h"
#include "test.h"

#define ONNX_NODE_TESTS "/usr/share/libonnx-testdata/data/node"

/* The binary under test: the Makefile passes its build's (build/check for make check). */
#ifndef CS_TEST_BIN
#define CS_TEST_BIN "build/convscope"
#endif

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
    snprintf(cmd, sizeof cmd, CS_TEST_BIN " train --epochs 1 --data %s/trunc --out %s/m.csm", dir, dir);
    int rc = run(cmd, out, sizeof out, err, sizeof err);
    CHECK(rc == 1, "truncated IDX: exit 1, got %d", rc);
    CHECK(lines(err) == 1 && strstr(err, "truncated"), "one line naming the problem: %s", err);
    unsigned char magic[16] = {0, 0, 8, 7, 0, 0, 0, 1, 0, 0, 0, 28, 0, 0, 0, 28};
    make_data_dir("magic", magic, sizeof magic);
    snprintf(cmd, sizeof cmd, CS_TEST_BIN " train --epochs 1 --data %s/magic --out %s/m.csm", dir, dir);
    rc = run(cmd, out, sizeof out, err, sizeof err);
    CHECK(rc == 1 && lines(err) == 1 && strstr(err, "magic"), "wrong magic: exit %d, %s", rc, err);
    snprintf(cmd, sizeof cmd, CS_TEST_BIN " eval --model models/fmnist.csm --data %s/nowhere", dir);
    rc = run(cmd, out, sizeof out, err, sizeof err);
    CHECK(rc == 1 && lines(err) == 1 && strstr(err, "nowhere"), "missing folder: exit %d, %s", rc, err);
}

static void test_bad_model_files(void)
{
    char out[4096], err[4096], cmd[512];
    snprintf(cmd, sizeof cmd, "cp models/fmnist.csm %s/bad.csm && printf 'XXXX' | dd of=%s/bad.csm bs=1 seek=5000 "
             "conv=notrunc 2>/dev/null", dir, dir);
    CHECK(system(cmd) == 0, "make a corrupt copy");
    snprintf(cmd, sizeof cmd, CS_TEST_BIN " eval --model %s/bad.csm", dir);
    int rc = run(cmd, out, sizeof out, err, sizeof err);
    CHECK(rc == 1 && lines(err) == 1 && strstr(err, "checksum"), "corrupt model: exit %d, %s", rc, err);
    snprintf(cmd, sizeof cmd, "head -c 3000 models/fmnist.csm > %s/short.csm", dir);
    CHECK(system(cmd) == 0, "make a truncated copy");
    snprintf(cmd, sizeof cmd, CS_TEST_BIN " eval --model %s/short.csm", dir);
    rc = run(cmd, out, sizeof out, err, sizeof err);
    CHECK(rc == 1 && lines(err) == 1 && strstr(err, "truncated"), "truncated model: exit %d, %s", rc, err);
    rc = run(CS_TEST_BIN " eval --model README.md", out, sizeof out, err, sizeof err);
    CHECK(rc == 1 && lines(err) == 1, "not a model file: exit %d, %s", rc, err);
    rc = run(CS_TEST_BIN " predict --model models/fmnist.csm tests/data/photos/truncated.jpg", out, sizeof out,
             err, sizeof err);
    CHECK(rc == 1 && lines(err) == 1, "truncated JPEG: exit %d, %s", rc, err);
    rc = run(CS_TEST_BIN " predict --model models/fmnist.csm /nonexistent.png", out, sizeof out, err, sizeof err);
    CHECK(rc == 1 && lines(err) == 1, "missing image: exit %d, %s", rc, err);
    rc = run(CS_TEST_BIN " frobnicate", out, sizeof out, err, sizeof err);
    CHECK(rc == 2 && strstr(err, "unknown command"), "unknown command: exit %d", rc);
}

static void test_good_paths(void)
{
    char out[4096], err[4096];
    int rc = run(CS_TEST_BIN " eval --model models/fmnist.csm", out, sizeof out, err, sizeof err);
    double acc = 0;
    CHECK(rc == 0 && sscanf(out, "accuracy %lf", &acc) == 1 && acc >= 0.895, "eval: %d %s", rc, out);
    rc = run(CS_TEST_BIN " predict --model models/fmnist.csm --top 3 tests/data/photos/chelsea.png", out,
             sizeof out, err, sizeof err);
    CHECK(rc == 0 && lines(out) == 3, "predict prints three classes: %s%s", out, err);
}

/* predict reads NAME.json beside the model as the service does: its labels answer. */
static void test_predict_sidecar(void)
{
    char out[4096], err[4096], cmd[1024];
    snprintf(cmd, sizeof cmd, "cp tests/data/keras/k2_functional.h5 %s/k2.h5", dir);
    CHECK(system(cmd) == 0, "copy a Keras model");
    const char *side = "{\"labels\": [\"north\", \"east\", \"south\", \"west\"]}";
    write_file("k2.json", side, strlen(side));
    snprintf(cmd, sizeof cmd, CS_TEST_BIN " predict --model %s/k2.h5 --top 4 tests/data/photos/chelsea.png", dir);
    int rc = run(cmd, out, sizeof out, err, sizeof err);
    CHECK(rc == 0 && lines(out) == 4 && strstr(out, "north") && strstr(out, "west"), "its labels: %s%s", out, err);
    const char *wrong = "{\"labels\": [\"one\"]}";
    write_file("k2.json", wrong, strlen(wrong));
    rc = run(cmd, out, sizeof out, err, sizeof err);
    CHECK(rc != 0 && strstr(err, "k2.json") && strstr(err, "1 labels for a model of 4 classes"), "a wrong sidecar: %d %s",
          rc, err);
}

/* ---- convscope run ---- */

/* A file of a test's data set: ONNX_NODE_TESTS/test/test_data_set_0/file. */
static const char *node_file(const char *test, const char *file)
{
    static char path[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(path[k], sizeof path[k], ONNX_NODE_TESTS "/%s/%s%s", test, strcmp(file, "model.onnx") ? "test_data_set_0/" : "",
             file);
    return path[k];
}

/* max |a - b| of two tensors of the same dims, or +inf when their dims differ. */
static double max_diff(const float *a, int na, const int64_t *da, const float *b, int nb, const int64_t *db)
{
    if (na != nb) return INFINITY;
    size_t count = 1;
    for (int d = 0; d < na; d++) {
        if (da[d] != db[d]) return INFINITY;
        count *= (size_t)da[d];
    }
    double m = 0;
    for (size_t i = 0; i < count; i++) m = fmax(m, fabs((double)a[i] - b[i]));
    return m;
}

/* A .pb input written as .npy in the scratch folder. */
static const char *as_npy(const char *pb, const char *name)
{
    static char path[2][512];
    static int k;
    k = (k + 1) % 2;
    cs_onnx_tensor t;
    char err[256];
    snprintf(path[k], sizeof path[k], "%s/%s.in.npy", dir, name);
    CHECK(cs_onnx_tensor_read(pb, &t, err, sizeof err) == 0, "read %s: %s", pb, err);
    CHECK(cs_npy_write(path[k], t.f, t.ndim, t.dims, err, sizeof err) == 0, "write %s: %s", path[k], err);
    cs_onnx_tensor_clear(&t);
    return path[k];
}

/* The expected output of a test against the file `run` wrote. */
static void check_output(const char *test, const char *written, double tol)
{
    cs_onnx_tensor want, got;
    char err[256];
    CHECK(cs_onnx_tensor_read(node_file(test, "output_0.pb"), &want, err, sizeof err) == 0, "expected: %s", err);
    int rc = cs_onnx_tensor_read_any(written, "y", &got, err, sizeof err);
    CHECK(rc == 0, "written %s: %s", written, err);
    if (rc == 0) {
        double d = max_diff(want.f, want.ndim, want.dims, got.f, got.ndim, got.dims);
        CHECK(d <= tol, "%s: %s differs from ONNX's output by %g", test, written, d);
    }
    cs_onnx_tensor_clear(&want);
    cs_onnx_tensor_clear(&got);
}

/* A conv whose weight is a graph input, with pads that differ between height and
 * width: TensorProto files in and out. */
static void test_run_pb(void)
{
    const char *t = "test_conv_with_strides_and_asymmetric_padding";
    char out[4096], err[4096], cmd[2048];
    snprintf(cmd, sizeof cmd, CS_TEST_BIN " run --model %s --input x=%s --input W=%s --output-dir %s",
             node_file(t, "model.onnx"), node_file(t, "input_0.pb"), node_file(t, "input_1.pb"), dir);
    int rc = run(cmd, out, sizeof out, err, sizeof err);
    CHECK(rc == 0 && strstr(out, "/y.pb 1x1x4x2"), "run: exit %d, %s%s", rc, out, err);
    char path[512];
    snprintf(path, sizeof path, "%s/y.pb", dir);
    check_output(t, path, 1e-5);
}

/* Three channels (NCHW in the files, NHWC inside) through .npy files; the pool's own
 * output again by --node, as (N, C, H, W). */
static void test_run_npy(void)
{
    const char *t = "test_averagepool_2d_default";
    char out[4096], err[4096], cmd[2048], path[512];
    snprintf(cmd, sizeof cmd, CS_TEST_BIN " run --model %s --input x=%s --output-dir %s --node AveragePool_0",
             node_file(t, "model.onnx"), as_npy(node_file(t, "input_0.pb"), "x"), dir);
    int rc = run(cmd, out, sizeof out, err, sizeof err);
    CHECK(rc == 0 && strstr(out, "/y.npy 1x3x31x31") && strstr(out, "/AveragePool_0.npy 1x3x31x31"),
          "run: exit %d, %s%s", rc, out, err);
    snprintf(path, sizeof path, "%s/y.npy", dir);
    check_output(t, path, 1e-5);
    snprintf(path, sizeof path, "%s/AveragePool_0.npy", dir);
    check_output(t, path, 1e-5);
}

/* Two graph inputs of rank 3 (N, C, L), joined along the channels. */
static void test_run_two_inputs(void)
{
    const char *t = "test_concat_3d_axis_1";
    char out[4096], err[4096], cmd[2048], path[512];
    snprintf(cmd, sizeof cmd, CS_TEST_BIN " run --model %s --input value1=%s --input value0=%s --output-dir %s",
             node_file(t, "model.onnx"), as_npy(node_file(t, "input_1.pb"), "v1"),
             as_npy(node_file(t, "input_0.pb"), "v0"), dir);
    int rc = run(cmd, out, sizeof out, err, sizeof err);
    CHECK(rc == 0 && strstr(out, "/output.npy 2x4x2"), "run: exit %d, %s%s", rc, out, err);
    snprintf(path, sizeof path, "%s/output.npy", dir);
    check_output(t, path, 0);
}

/* A convscope model takes (N, H, W, C) and gives what a forward pass gives. */
static void test_run_model_file(void)
{
    char out[4096], err[4096], cmd[1024], path[512], msg[256];
    float x[2 * 28 * 28];
    for (int i = 0; i < 2 * 28 * 28; i++) x[i] = (float)((i * 37) % 255) / 255.0f;
    snprintf(path, sizeof path, "%s/img.npy", dir);
    CHECK(cs_npy_write(path, x, 4, (int64_t[]){2, 28, 28, 1}, msg, sizeof msg) == 0, "write: %s", msg);
    snprintf(cmd, sizeof cmd, CS_TEST_BIN " run --model models/fmnist.csm --input input=%s --output-dir %s "
             "--node conv2d_1", path, dir);
    int rc = run(cmd, out, sizeof out, err, sizeof err);
    CHECK(rc == 0 && strstr(out, "/dense_2.npy 2x10") && strstr(out, "/conv2d_1.npy 2x26x26x32"), "run: %d %s%s", rc,
          out, err);
    cs_model *m = cs_model_load("models/fmnist.csm", msg, sizeof msg);
    cs_exec *e = m ? cs_exec_new(m, 2) : NULL;
    CHECK(e && cs_exec_forward(e, x, 2, 0, NULL) == 0, "forward: %s", msg);
    cs_npy got;
    snprintf(path, sizeof path, "%s/dense_2.npy", dir);
    if (e && cs_npy_read(path, &got, msg, sizeof msg) == 0) {
        double d = max_diff(got.data, got.ndim, got.dims, e->act[m->n_layers - 1], 2, (int64_t[]){2, 10});
        CHECK(d <= 1e-6, "probabilities differ from the forward pass by %g", d);
        cs_npy_free(&got);
    } else {
        CHECK(0, "read %s: %s", path, msg);
    }
    cs_exec_free(e);
    cs_model_free(m);
}

/* One line and exit 1 for an input of the wrong shape, type or name. */
static void test_run_errors(void)
{
    const char *t = "test_conv_with_strides_padding", *model = node_file(t, "model.onnx");
    const char *x = node_file(t, "input_0.pb"), *w = node_file(t, "input_1.pb");
    char out[4096], err[4096], cmd[2048];
    struct {
        const char *inputs, *says;
    } cases[] = {
        {"--input x=%s --input W=%s", "input 'x' is 1x1x3x3; the model takes 1x1x7x5"},         /* x and W swapped */
        {"--input x=%s --input W=%s", "input 'x' is INT64; the model takes FLOAT"},             /* pads as x */
        {"--input z=%s --input W=%s", "the model has no input 'z' (its inputs: 'x', 'W')"},
        {"--input W=%s%.0s", "no value for input 'x' (1x1x7x5 FLOAT)"},
        {"--input x%s%.0s", "--input takes NAME=FILE"},
        {"--input x=%s.missing --input W=%s", "No such file"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        char inputs[1400];
        const char *a = k == 0 ? w : k == 1 ? node_file("test_constant_pad", "input_1.pb") : x, *b = k == 0 ? w : w;
        snprintf(inputs, sizeof inputs, cases[k].inputs, k == 3 ? w : a, b);
        snprintf(cmd, sizeof cmd, CS_TEST_BIN " run --model %s %s --output-dir %s", model, inputs, dir);
        int rc = run(cmd, out, sizeof out, err, sizeof err);
        CHECK(rc == 1 && lines(err) == 1 && strstr(err, cases[k].says), "case %zu: exit %d, '%s' (wanted '%s')", k,
              rc, err, cases[k].says);
    }
    /* A model input of the wrong shape for a convscope model too. */
    snprintf(cmd, sizeof cmd, CS_TEST_BIN " run --model models/fmnist.csm --input input=%s", x);
    int rc = run(cmd, out, sizeof out, err, sizeof err);
    CHECK(rc == 1 && lines(err) == 1 && strstr(err, "the model takes Nx28x28x1"), "model file: %d %s", rc, err);
}

int main(void)
{
    dir = test_scratch_dir("cli");
    RUN(test_bad_dataset_files);
    RUN(test_bad_model_files);
    RUN(test_good_paths);
    RUN(test_predict_sidecar);
    RUN(test_run_pb);
    RUN(test_run_npy);
    RUN(test_run_two_inputs);
    RUN(test_run_model_file);
    RUN(test_run_errors);
    return test_summary("cli");
}
