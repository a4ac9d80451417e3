/*
 * test_onnx_export.c - models out as ONNX (core/onnx_export.h), read back by
 * convscope's own ONNX importer.
 *
 * The models: the notebook's network as trained (models/fmnist.csm) and freshly drawn
 * with batch-norm statistics far from (0, 1), every committed ONNX test model
 * (tests/data/models), the Keras test models (tests/data/keras), and two graphs of
 * every kind in the layer table with every activation and window the export handles.
 * Each is exported, imported again and run on the same images: the class
 * probabilities and the logits under them agree within 1e-5.
 *
 * With --write DIR it also leaves, for tests/models/export_check.mjs, each exported
 * NAME.onnx with the images (NAME.input.npy, NCHW) and convscope's outputs
 * (NAME.output.npy, NAME.logits.npy and NAME.json naming the ONNX value of the
 * logits), so ONNX Runtime can be checked against the same numbers.
 */
#include <dirent.h>
#include <jansson.h>

#include "exec.h"
#include "layer_ops.h"
#include "layers/kernels.h"
#include "model_load.h"
#include "npy.h"
#include "onnx_export.h"
#include "onnx_import.h"
#include "rng.h"
#include "test.h"

#define TOL 1e-5
#define BATCH 2

static const char *write_dir; /* --write DIR, or NULL */

/* The images, NHWC, from a seeded generator: values in 0..1. */
static float *images(const cs_model *m, uint64_t seed)
{
    size_t n = BATCH * cs_shape_size(m->input);
    float *x = malloc(n * sizeof *x);
    cs_rng r;
    cs_rng_seed(&r, seed);
    for (size_t i = 0; x && i < n; i++) x[i] = (float)cs_rng_uniform(&r);
    return x;
}

/* Batch-norm and normalisation statistics far from a fresh layer's (0, 1). */
static void shake_statistics(cs_model *m, uint64_t seed)
{
    cs_rng r;
    cs_rng_seed(&r, seed);
    for (int i = 0; i < m->n_layers; i++) {
        cs_layer *l = &m->layers[i];
        if (l->kind != CS_BATCHNORM && l->kind != CS_NORMALIZATION) continue;
        for (int k = 0; k < l->n_params; k++)
            for (size_t j = 0; j < l->params[k].size; j++) {
                int variance = !strcmp(l->params[k].name, "moving_variance") || !strcmp(l->params[k].name, "variance");
                int gamma = !strcmp(l->params[k].name, "gamma");
                double u = cs_rng_uniform(&r);
                l->params[k].data[j] = (float)(variance ? 0.2 + 2 * u : gamma ? 0.5 + u : u - 0.5);
            }
    }
}

static void write_npy(const char *name, const char *what, const float *data, int ndim, const int64_t *dims)
{
    char path[1024], err[256];
    snprintf(path, sizeof path, "%s/%s.%s.npy", write_dir, name, what);
    CHECK(cs_npy_write(path, data, ndim, dims, err, sizeof err) == 0, "%s", err);
}

/* The ONNX value of the logits: what the exported graph's last Softmax reads. */
static const char *logits_value(const cs_model *m)
{
    static char name[CS_NAME_MAX + 16];
    const cs_layer *top = &m->layers[m->n_layers - 1];
    if (top->kind == CS_SOFTMAX) {
        const cs_layer *below = &m->layers[top->inputs[0]];
        /* A dense layer's value is 2-D already; a 4-D (N, C, 1, 1) one is flattened ("/2d"). */
        snprintf(name, sizeof name, "%s", below->name);
        return name;
    }
    snprintf(name, sizeof name, "%s/preact", top->name);
    return name;
}

/* Exports m, imports it again and compares the two on the same images. ort_only: the
 * graph has ops convscope's importer does not read (checked by ONNX Runtime only). */
static void round_trip(const char *name, cs_model *m, int ort_only)
{
    char err[512] = "";
    uint8_t *buf = NULL;
    size_t len = 0;
    CHECK(cs_onnx_export_buffer(m, &buf, &len, err, sizeof err) == 0, "%s: %s", name, err);
    float *x = images(m, 7);
    cs_exec *e = cs_exec_new(m, BATCH);
    CHECK(x && e && cs_exec_forward(e, x, BATCH, 0, NULL) == 0, "%s: forward", name);
    const int k = m->layers[m->n_layers - 1].out.c;
    const float *p = e ? e->act[m->n_layers - 1] : NULL, *z = e ? cs_exec_logits(e) : NULL;
    if (buf && !ort_only && p) {
        cs_model *back = cs_onnx_import_buffer(buf, len, name, err, sizeof err);
        CHECK(back != NULL, "%s: the exported file does not import: %s", name, err);
        cs_exec *e2 = back ? cs_exec_new(back, BATCH) : NULL;
        if (e2 && cs_exec_forward(e2, x, BATCH, 0, NULL) == 0) {
            const float *p2 = e2->act[back->n_layers - 1], *z2 = cs_exec_logits(e2);
            double dp = 0, dz = 0;
            CHECK(back->layers[back->n_layers - 1].out.c == k, "%s: classes", name);
            for (int i = 0; i < BATCH * k; i++) {
                if (!(fabs(p[i] - p2[i]) <= dp)) dp = fabs(p[i] - p2[i]);
                if (z && z2 && !(fabs(z[i] - z2[i]) <= dz)) dz = fabs(z[i] - z2[i]);
            }
            CHECK(dp <= TOL && dz <= TOL, "%s: probabilities differ by %.2e, logits by %.2e", name, dp, dz);
            CHECK(!z || z2, "%s: the logits are still under a softmax", name);
            fprintf(stderr, "    %s: %d nodes -> %zu bytes -> %d nodes, probabilities within %.1e, logits %.1e\n",
                    name, m->n_layers, len, back->n_layers, dp, dz);
        } else {
            CHECK(back == NULL, "%s: the imported model does not run", name);
        }
        cs_exec_free(e2);
        cs_model_free(back);
    }
    if (write_dir && buf && p) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s.onnx", write_dir, name);
        FILE *f = fopen(path, "wb");
        CHECK(f && fwrite(buf, 1, len, f) == len, "cannot write %s", path);
        if (f) fclose(f);
        /* ONNX takes NCHW. */
        const cs_shape s = m->input;
        float *nchw = malloc(BATCH * cs_shape_size(s) * sizeof *nchw);
        for (int b = 0; nchw && b < BATCH; b++)
            for (int c = 0; c < s.c; c++)
                for (int i = 0; i < s.h * s.w; i++)
                    nchw[((size_t)b * s.c + c) * s.h * s.w + i] = x[((size_t)b * s.h * s.w + i) * s.c + c];
        int64_t in_dims[4] = {BATCH, s.c, s.h, s.w}, out_dims[2] = {BATCH, k};
        if (nchw) write_npy(name, "input", nchw, 4, in_dims);
        write_npy(name, "output", p, 2, out_dims);
        if (z) write_npy(name, "logits", z, 2, out_dims);
        json_t *meta = json_pack("{sssssb}", "name", name, "logits_value", z ? logits_value(m) : "", "ort_only",
                                 ort_only);
        snprintf(path, sizeof path, "%s/%s.json", write_dir, name);
        CHECK(meta && json_dump_file(meta, path, JSON_INDENT(2)) == 0, "cannot write %s", path);
        json_decref(meta);
        free(nchw);
    }
    cs_exec_free(e);
    free(x);
    free(buf);
}

static void round_trip_file(const char *name, const char *path)
{
    char err[512] = "";
    cs_model *m = cs_model_load_any(path, err, sizeof err);
    CHECK(m != NULL, "%s: %s", path, err);
    if (m) round_trip(name, m, 0);
    cs_model_free(m);
}

static void test_notebook_network(void)
{
    round_trip_file("fmnist", "models/fmnist.csm");
    cs_model *m = cs_model_build_fmnist();
    CHECK(m != NULL, "build");
    if (!m) return;
    cs_model_init_weights(m, 11);
    shake_statistics(m, 12);
    round_trip("fmnist_fresh", m, 0);
    cs_model_free(m);
}

/* Every committed ONNX test model, out and in again. */
static void test_onnx_models(void)
{
    const char *names[] = {"resnet", "mobilenetv2", "squeezenet", "efficientnet", "avgpool"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char path[256], name[64];
        snprintf(path, sizeof path, "tests/data/models/%s.onnx", names[i]);
        snprintf(name, sizeof name, "onnx_%s", names[i]);
        round_trip_file(name, path);
    }
    DIR *d = opendir("tests/data/models");
    int n = 0;
    for (struct dirent *de; d && (de = readdir(d));) n += strstr(de->d_name, ".onnx") != NULL;
    if (d) closedir(d);
    CHECK(n == (int)(sizeof names / sizeof names[0]), "%d ONNX models committed; the list here names %zu", n,
          sizeof names / sizeof names[0]);
}

static void test_keras_models(void)
{
    round_trip_file("keras_k2_sequential", "tests/data/keras/k2_sequential.h5");
    round_trip_file("keras_k2_functional", "tests/data/keras/k2_functional.h5");
    round_trip_file("keras_k3_functional", "tests/data/keras/k3_functional.keras");
    round_trip_file("keras_k3_sequential", "tests/data/keras/k3_sequential.keras");
}

static int add(cs_model *m, const char *name, cs_layer_kind kind, cs_layer_config c, int a, int b)
{
    char err[256];
    int in[2] = {a, b};
    int i = cs_model_add_node(m, name, kind, &c, in, b == -2 ? 1 : 2, err, sizeof err);
    CHECK(i >= 0, "%s", err);
    return i;
}
#define ONE (-2) /* one input */

/* Every kind the layer table has, and the activations and windows around them. */
static cs_model *zoo(void)
{
    cs_model *m = cs_model_new("zoo", (cs_shape){9, 9, 3});
    int conv = add(m, "conv_a", CS_CONV2D, (cs_layer_config){.filters = 6, .kernel = 3, .pad_same = 1,
                                                              .activation = CS_ACT_RELU}, CS_MODEL_INPUT, ONE);
    int dw = add(m, "dw", CS_DEPTHWISE_CONV2D, (cs_layer_config){.kernel = 3, .stride = 2, .pad_same = 1,
                                                                  .depth_multiplier = 2}, conv, ONE);
    int gelu = add(m, "gelu", CS_ACTIVATION, (cs_layer_config){.actf = CS_ACTF_GELU}, dw, ONE);
    int bn = add(m, "bn", CS_BATCHNORM, (cs_layer_config){0}, gelu, ONE);
    int sep = add(m, "sep", CS_SEPARABLE_CONV2D, (cs_layer_config){.filters = 8, .kernel = 3, .depth_multiplier = 1,
                                                                    .pad_same = 1}, bn, ONE);
    int hsw = add(m, "hswish", CS_ACTIVATION, (cs_layer_config){.actf = CS_ACTF_HARD_SWISH}, sep, ONE);
    int pad = add(m, "pad", CS_ZERO_PADDING2D, (cs_layer_config){.pads = {1, 0, 0, 2}, .pad_value = 0.5f}, hsw, ONE);
    int avg = add(m, "avg", CS_AVGPOOL, (cs_layer_config){.kernel = 3, .stride = 1, .pad_same = 1}, pad, ONE);
    int norm = add(m, "norm", CS_NORMALIZATION, (cs_layer_config){0}, avg, ONE);
    int gconv = add(m, "gconv", CS_CONV2D, (cs_layer_config){.filters = 4, .kernel = 2, .kernel_w = 3, .stride = 1,
                                                              .stride_w = 2, .groups = 2, .pad_explicit = 1,
                                                              .pads = {0, 1, 1, 0}}, norm, ONE);
    int mp = add(m, "mp", CS_MAXPOOL, (cs_layer_config){.kernel = 2, .stride = 1, .ceil_mode = 0}, gconv, ONE);
    int gmp = add(m, "gmp", CS_GLOBAL_MAXPOOL, (cs_layer_config){0}, mp, ONE);
    int gap = add(m, "gap", CS_GLOBAL_AVGPOOL, (cs_layer_config){0}, avg, ONE);
    int cat = add(m, "cat", CS_CONCATENATE, (cs_layer_config){0}, gmp, gap);
    int flat = add(m, "flat", CS_FLATTEN, (cs_layer_config){0}, gconv, ONE);
    int drop = add(m, "drop", CS_DROPOUT, (cs_layer_config){.rate = 0.3f}, flat, ONE);
    int elu = add(m, "elu", CS_ACTIVATION, (cs_layer_config){.actf = CS_ACTF_ELU, .act_a = 0.7f}, drop, ONE);
    int fc1 = add(m, "fc1", CS_DENSE, (cs_layer_config){.units = 12}, elu, ONE);
    int resc = add(m, "resc", CS_RESCALING, (cs_layer_config){.scale = 0.5f, .offset = 0.1f}, fc1, ONE);
    int sum = add(m, "sum", CS_ADD, (cs_layer_config){0}, resc, cat);
    int leaky = add(m, "leaky", CS_LEAKY_RELU, (cs_layer_config){.alpha = 0.1f}, sum, ONE);
    int clip = add(m, "clip", CS_ACTIVATION, (cs_layer_config){.actf = CS_ACTF_CLIP, .act_a = -0.5f, .act_b = 2},
                   sum, ONE);
    int mul = add(m, "mul", CS_MULTIPLY, (cs_layer_config){0}, leaky, clip);
    int sub = add(m, "sub", CS_SUBTRACT, (cs_layer_config){0}, mul, cat);
    int soft = add(m, "softplus", CS_ACTIVATION, (cs_layer_config){.actf = CS_ACTF_SOFTPLUS}, sub, ONE);
    int hsig = add(m, "hsig", CS_ACTIVATION, (cs_layer_config){.actf = CS_ACTF_HARD_SIGMOID, .act_a = 0.2f,
                                                                .act_b = 0.5f}, soft, ONE);
    int swish = add(m, "swish", CS_ACTIVATION, (cs_layer_config){.actf = CS_ACTF_SWISH}, hsig, ONE);
    int tanh_ = add(m, "tanh", CS_ACTIVATION, (cs_layer_config){.actf = CS_ACTF_TANH}, swish, ONE);
    int fc = add(m, "fc_out", CS_DENSE, (cs_layer_config){.units = 5, .activation = CS_ACT_SOFTMAX}, tanh_, ONE);
    CHECK(fc >= 0, "zoo");
    if (cs_model_finish(m) != 0) {
        cs_model_free(m);
        return NULL;
    }
    cs_model_init_weights(m, 21);
    shake_statistics(m, 22);
    return m;
}

/* A flattened map read by something other than a dense layer: the export keeps the
 * core's (h, w, c) order with a Transpose, which convscope's importer does not read. */
static cs_model *flatten_then_batchnorm(void)
{
    cs_model *m = cs_model_new("flat_bn", (cs_shape){6, 5, 2});
    int conv = add(m, "conv", CS_CONV2D, (cs_layer_config){.filters = 3, .kernel = 3, .pad_same = 1}, CS_MODEL_INPUT, ONE);
    int flat = add(m, "flat", CS_FLATTEN, (cs_layer_config){0}, conv, ONE);
    int bn = add(m, "bn", CS_BATCHNORM, (cs_layer_config){0}, flat, ONE);
    int fc = add(m, "fc", CS_DENSE, (cs_layer_config){.units = 4}, bn, ONE);
    add(m, "softmax", CS_SOFTMAX, (cs_layer_config){0}, fc, ONE);
    if (cs_model_finish(m) != 0) {
        cs_model_free(m);
        return NULL;
    }
    cs_model_init_weights(m, 31);
    shake_statistics(m, 32);
    return m;
}

static void test_every_kind(void)
{
    cs_model *m = zoo();
    CHECK(m != NULL, "zoo");
    if (m) round_trip("zoo", m, 0);
    cs_model_free(m);
    m = flatten_then_batchnorm();
    CHECK(m != NULL, "flat_bn");
    if (m) {
        char err[256];
        uint8_t *buf;
        size_t len;
        CHECK(cs_onnx_export_buffer(m, &buf, &len, err, sizeof err) == 0, "%s", err);
        cs_model *back = cs_onnx_import_buffer(buf, len, "flat_bn", err, sizeof err);
        CHECK(!back && strstr(err, "Transpose"), "the Transpose keeps the order: %s", err);
        cs_model_free(back);
        free(buf);
        round_trip("flat_bn", m, 1);
    }
    cs_model_free(m);
}

/* The file: written whole or not at all. */
static void test_file(void)
{
    const char *dir = test_scratch_dir("onnx_export");
    char path[1024], err[512] = "";
    snprintf(path, sizeof path, "%s/fmnist.onnx", dir);
    cs_model *m = cs_model_load_any("models/fmnist.csm", err, sizeof err);
    CHECK(m && cs_onnx_export(m, path, err, sizeof err) == 0, "%s", err);
    cs_model *back = cs_model_load_any(path, err, sizeof err);
    CHECK(back && !strcmp(back->arch, "fmnist") && back->input.h == 28 && back->input.c == 1, "read back: %s", err);
    cs_model_free(back);
    snprintf(path, sizeof path, "%s/no/such/folder/m.onnx", dir);
    CHECK(m && cs_onnx_export(m, path, err, sizeof err) != 0 && strstr(err, "cannot create"), "%s", err);
    cs_model_free(m);
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "--write")) write_dir = argv[2];
    RUN(test_notebook_network);
    RUN(test_onnx_models);
    RUN(test_keras_models);
    RUN(test_every_kind);
    RUN(test_file);
    return test_summary("onnx_export");
}
