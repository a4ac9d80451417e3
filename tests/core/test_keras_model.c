/*
 * test_keras_model.c - Keras full-model files in (core/keras_model.h).
 *
 * tests/data/keras holds files written the way Keras 2's model.save("m.h5") and
 * Keras 3's model.save("m.keras") write them (tests/models/make_keras.py: h5py and
 * zipfile in Keras' layouts), with outputs computed by a PyTorch port of each network
 * in float64. Each is loaded through cs_model_load_any, run on the same images, and
 * the node of the Keras output layer compared within 1e-4; the model's own top must
 * be probabilities. Then the refusals: weights-only files, unknown layers, fields
 * that change the result, missing and misshapen weights, damaged archives - each with
 * a message naming the layer and the field, and no crash.
 */
#include <hdf5.h>
#include <jansson.h>
#include <zip.h>

#include "exec.h"
#include "keras_h5.h"
#include "keras_model.h"
#include "model_load.h"
#include "npy.h"
#include "test.h"

#define DIR "tests/data/keras/"

static const char *scratch;

static cs_npy load_npy(const char *name, const char *suffix)
{
    char path[256], err[256] = "";
    snprintf(path, sizeof path, DIR "%s.%s.npy", name, suffix);
    cs_npy a = {0};
    CHECK(cs_npy_read(path, &a, err, sizeof err) == 0, "%s", err);
    return a;
}

static void check_fixture(const char *name)
{
    char path[256], err[512] = "";
    snprintf(path, sizeof path, DIR "%s.json", name);
    json_t *spec = json_load_file(path, 0, NULL);
    CHECK(spec != NULL, "%s: no %s", name, path);
    if (!spec) return;
    snprintf(path, sizeof path, DIR "%s", json_string_value(json_object_get(spec, "file")));
    cs_model *m = cs_model_load_any(path, err, sizeof err);
    CHECK(m != NULL, "%s: %s", name, err);
    cs_npy in = load_npy(name, "input"), out = load_npy(name, "output");
    if (!m || !in.data || !out.data) goto done;
    CHECK(strcmp(m->arch, name) == 0, "%s: architecture named %s", name, m->arch);
    json_t *shape = json_object_get(spec, "input");
    CHECK(m->input.h == json_integer_value(json_array_get(shape, 0)) &&
              m->input.w == json_integer_value(json_array_get(shape, 1)) &&
              m->input.c == json_integer_value(json_array_get(shape, 2)),
          "%s: input %dx%dx%d", name, m->input.h, m->input.w, m->input.c);
    const int n = (int)in.dims[0], k = (int)out.dims[1];
    const char *node_name = json_string_value(json_object_get(spec, "output_node"));
    int node = cs_model_find_layer(m, node_name);
    /* The Keras output layer may be followed by its unfused activation's node. */
    if (node >= 0 && node + 1 < m->n_layers && !strncmp(m->layers[node + 1].name, node_name, strlen(node_name)) &&
        m->layers[node + 1].name[strlen(node_name)] == '.')
        node++;
    CHECK(node >= 0, "%s: no node %s", name, node_name);
    const int added = json_is_true(json_object_get(spec, "softmax_added"));
    CHECK(m->n_layers - 1 == node + added, "%s: %d nodes, output node %d, softmax added %d", name, m->n_layers, node,
          added);
    CHECK(m->n_classes == k, "%s: %d classes, %d expected", name, m->n_classes, k);
    cs_exec *e = cs_exec_new(m, n);
    CHECK(e && cs_exec_forward(e, in.data, n, 0, NULL) == 0, "%s: forward", name);
    if (!e || node < 0) {
        cs_exec_free(e);
        goto done;
    }
    double worst = 0, tol = json_number_value(json_object_get(spec, "tolerance"));
    const float *y = e->act[node];
    for (size_t i = 0; i < out.count; i++)
        if (!(fabs(y[i] - out.data[i]) <= worst)) worst = fabs(y[i] - out.data[i]);
    CHECK(worst <= tol, "%s: output differs from the PyTorch port by %.2e (tolerance %.0e)", name, worst, tol);
    /* The model's top holds probabilities. */
    const float *p = e->act[m->n_layers - 1];
    for (int b = 0; b < n; b++) {
        double sum = 0;
        for (int c = 0; c < k; c++) sum += p[b * k + c];
        CHECK_NEAR(sum, 1.0, 1e-5, "probabilities sum to 1");
    }
    fprintf(stderr, "    %s: %d nodes, within %.1e of the PyTorch port\n", name, m->n_layers, worst);
    cs_exec_free(e);
done:
    cs_npy_free(&in);
    cs_npy_free(&out);
    cs_model_free(m);
    json_decref(spec);
}

static void test_keras2_sequential(void) { check_fixture("k2_sequential"); }
static void test_keras2_functional(void) { check_fixture("k2_functional"); }
static void test_keras3_functional(void) { check_fixture("k3_functional"); }
static void test_keras3_sequential(void) { check_fixture("k3_sequential"); }

/* Layers and names as Keras wrote them: unfused activations follow their layer, a
 * Dense over a feature map is a 1x1 conv, ReLU(max_value) a clip. */
static void test_structure(void)
{
    char err[512] = "";
    cs_model *m = cs_model_load_any(DIR "k2_sequential.h5", err, sizeof err);
    CHECK(m != NULL, "%s", err);
    if (!m) return;
    int i = cs_model_find_layer(m, "conv2d_1");
    CHECK(i >= 0 && m->layers[i].kind == CS_CONV2D && m->layers[i].cfg.pad_same, "conv2d_1 is a 'same' Conv2D");
    CHECK(i >= 0 && !strcmp(m->layers[i + 1].name, "conv2d_1.sigmoid") && m->layers[i + 1].kind == CS_ACTIVATION,
          "its sigmoid follows it");
    i = cs_model_find_layer(m, "re_lu");
    CHECK(i >= 0 && m->layers[i].kind == CS_ACTIVATION && m->layers[i].cfg.act_b == 0.75f, "ReLU(max_value) clips");
    i = cs_model_find_layer(m, "conv2d");
    CHECK(i >= 0 && m->layers[i].cfg.he_normal && fabsf(m->layers[i].cfg.l2 - 1e-4f) < 1e-9f,
          "the initialiser and regulariser are kept for training");
    CHECK(i >= 0 && cs_model_last_conv_activation(m) == cs_model_find_layer(m, "re_lu"), "Grad-CAM's default node");
    cs_model_free(m);
    m = cs_model_load_any(DIR "k3_sequential.keras", err, sizeof err);
    CHECK(m != NULL, "%s", err);
    if (!m) return;
    i = cs_model_find_layer(m, "per_pixel");
    CHECK(i >= 0 && m->layers[i].kind == CS_CONV2D && m->layers[i].out.c == 3, "Dense over a map is a 1x1 conv");
    CHECK(!strcmp(m->layers[m->n_layers - 1].name, "softmax"), "a softmax over the logits");
    cs_model_free(m);
}

/* From memory, as an upload arrives. */
static void test_buffer(void)
{
    FILE *f = fopen(DIR "k3_functional.keras", "rb");
    CHECK(f != NULL, "open");
    if (!f) return;
    static unsigned char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    char err[512] = "";
    cs_model *m = cs_keras_model_load_buffer(buf, n, "upload", err, sizeof err);
    CHECK(m && !strcmp(m->arch, "upload"), "%s", err);
    cs_model_free(m);
    /* Every truncation is refused with a message, never a crash. */
    for (size_t cut = 0; cut < n; cut += n / 37 + 1) {
        err[0] = 0;
        m = cs_keras_model_load_buffer(buf, cut, "cut", err, sizeof err);
        CHECK(!m && err[0], "a file cut at %zu bytes is refused (%s)", cut, err);
        cs_model_free(m);
    }
    f = fopen(DIR "k2_functional.h5", "rb");
    n = f ? fread(buf, 1, sizeof buf, f) : 0;
    if (f) fclose(f);
    m = cs_keras_model_load_buffer(buf, n, "h5", err, sizeof err);
    CHECK(m != NULL, "an HDF5 image from memory: %s", err);
    cs_model_free(m);
    m = cs_keras_model_load_buffer(buf, n / 2, "h5", err, sizeof err);
    CHECK(!m && err[0], "half an HDF5 file is refused");
}

/* ---- refusals ----------------------------------------------------------------------- */

/* The k2_sequential file with its model_config changed by edit(), saved as name. */
static char *with_config(const char *name, void (*edit)(json_t *root))
{
    static char path[512];
    char cmd[1024];
    snprintf(path, sizeof path, "%s/%s", scratch, name);
    snprintf(cmd, sizeof cmd, "cp " DIR "k2_sequential.h5 %s", path);
    if (system(cmd) != 0) return NULL;
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    /* h5py 3 writes Python bytes as a variable-length string. */
    hid_t a = H5Aopen(f, "model_config", H5P_DEFAULT), t = H5Aget_type(a);
    char *text = NULL;
    CHECK(H5Tis_variable_str(t) > 0 && H5Aread(a, t, &text) >= 0, "model_config is a variable-length string");
    json_t *root = text ? json_loads(text, 0, NULL) : NULL;
    free(text);
    H5Tclose(t);
    H5Aclose(a);
    if (!root) {
        H5Fclose(f);
        return NULL;
    }
    edit(root);
    char *out = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    H5Adelete(f, "model_config");
    hid_t st = H5Tcopy(H5T_C_S1), sp = H5Screate(H5S_SCALAR);
    H5Tset_size(st, strlen(out));
    a = H5Acreate2(f, "model_config", st, sp, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, st, out);
    H5Aclose(a), H5Sclose(sp), H5Tclose(st), H5Fclose(f);
    free(out);
    return path;
}

static json_t *layer(json_t *root, int i) { return json_array_get(json_object_get(json_object_get(root, "config"), "layers"), (size_t)i); }
static json_t *layer_cfg(json_t *root, int i) { return json_object_get(layer(root, i), "config"); }

static void unknown_layer(json_t *r) { json_object_set_new(layer(r, 3), "class_name", json_string("Lambda")); }
static void channels_first(json_t *r) { json_object_set_new(layer_cfg(r, 1), "data_format", json_string("channels_first")); }
static void bad_activation(json_t *r) { json_object_set_new(layer_cfg(r, 8), "activation", json_string("selu")); }
static void relu_threshold(json_t *r) { json_object_set_new(layer_cfg(r, 6), "threshold", json_real(0.5)); }
static void bias_flip(json_t *r) { json_object_set_new(layer_cfg(r, 1), "use_bias", json_false()); }
static void wider_dense(json_t *r) { json_object_set_new(layer_cfg(r, 8), "units", json_integer(9)); }
static void bad_reshape(json_t *r)
{
    json_object_set_new(layer(r, 7), "class_name", json_string("Reshape"));
    json_object_set_new(layer_cfg(r, 7), "target_shape", json_pack("[iii]", 3, 3, 6));
}
static void no_input_shape(json_t *r)
{
    json_array_remove(json_object_get(json_object_get(r, "config"), "layers"), 0);
    json_object_del(layer_cfg(r, 0), "batch_input_shape");
}
static void unknown_size(json_t *r) { json_array_set_new(json_object_get(layer_cfg(r, 0), "batch_input_shape"), 1, json_null()); }
static void nested(json_t *r) { json_object_set_new(layer(r, 2), "class_name", json_string("Functional")); }

static void expect_refusal(const char *file, void (*edit)(json_t *), const char *want1, const char *want2)
{
    char err[512] = "";
    char *path = with_config(file, edit);
    CHECK(path != NULL, "%s: cannot write", file);
    if (!path) return;
    cs_model *m = cs_model_load_any(path, err, sizeof err);
    CHECK(!m, "%s: loaded", file);
    CHECK(strstr(err, want1) && (!want2 || strstr(err, want2)), "%s: message '%s' lacks '%s' / '%s'", file, err, want1,
          want2 ? want2 : "");
    cs_model_free(m);
}

static void test_refused_configs(void)
{
    expect_refusal("lambda.h5", unknown_layer, "'leaky_re_lu' (Lambda)", "class 'Lambda' is not supported");
    expect_refusal("cf.h5", channels_first, "'conv2d' (Conv2D)", "field 'data_format' is 'channels_first'");
    expect_refusal("selu.h5", bad_activation, "'dense' (Dense)", "'selu'");
    expect_refusal("threshold.h5", relu_threshold, "'re_lu' (ReLU)", "field 'threshold'");
    expect_refusal("reshape.h5", bad_reshape, "'flatten' (Reshape)", "field 'target_shape'");
    expect_refusal("noinput.h5", no_input_shape, "declares no input shape", NULL);
    expect_refusal("nullsize.h5", unknown_size, "unknown size", NULL);
    expect_refusal("nested.h5", nested, "'batch_normalization' (Functional)", "a model inside the model");
    /* The configuration no longer matches the weights the file holds. */
    expect_refusal("nobias.h5", bias_flip, "'conv2d' (Conv2D)", "has 2 weights; the layer's configuration gives 1");
    expect_refusal("units.h5", wider_dense, "'dense' (Dense)", "has shape (150, 8) in the file; the layer's configuration gives (150, 9)");
}

static void test_refused_weights(void)
{
    char path[512], err[512] = "";
    /* A weights-only file (save_weights) has no architecture. */
    cs_model *fm = cs_model_build_fmnist();
    snprintf(path, sizeof path, "%s/weights_only.h5", scratch);
    CHECK(fm && cs_keras_h5_save(fm, path, err, sizeof err) == 0, "%s", err);
    cs_model_free(fm);
    cs_model *m = cs_model_load_any(path, err, sizeof err);
    CHECK(!m && strstr(err, "weights only") && strstr(err, "model.save()"), "weights-only: %s", err);
    CHECK(!cs_keras_h5_is_model(path) && cs_keras_h5_is_model(DIR "k2_sequential.h5"), "is_model tells them apart");
    /* A layer's weights deleted from model_weights. */
    snprintf(path, sizeof path, "%s/missing.h5", scratch);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cp " DIR "k2_functional.h5 %s", path);
    CHECK(system(cmd) == 0, "cp");
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    CHECK(H5Ldelete(f, "model_weights/down/down/bias:0", H5P_DEFAULT) >= 0, "delete a dataset");
    H5Fclose(f);
    m = cs_model_load_any(path, err, sizeof err);
    CHECK(!m && strstr(err, "'down' (Conv2D)") && strstr(err, "down/bias:0 is missing"), "missing weight: %s", err);
    f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    CHECK(H5Ldelete(f, "model_weights/stem", H5P_DEFAULT) >= 0, "delete a layer");
    H5Fclose(f);
    m = cs_model_load_any(path, err, sizeof err);
    CHECK(!m && strstr(err, "'stem' (Conv2D)") && strstr(err, "no group"), "missing layer: %s", err);
}

/* Archives: no weights, no config, npz weights, a wrong shape in layers/.../vars. */
static void rewrite_archive(const char *path, const char *drop, const char *add_name, const void *add, size_t add_len)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cp " DIR "k3_sequential.keras %s", path);
    CHECK(system(cmd) == 0, "cp");
    int ze;
    zip_t *z = zip_open(path, 0, &ze);
    CHECK(z != NULL, "zip_open");
    if (!z) return;
    if (drop) zip_delete(z, zip_name_locate(z, drop, 0));
    if (add_name) {
        zip_source_t *s = zip_source_buffer(z, add, add_len, 0);
        zip_file_add(z, add_name, s, ZIP_FL_OVERWRITE);
    }
    CHECK(zip_close(z) == 0, "zip_close");
}

static void test_refused_archives(void)
{
    char path[512], err[512] = "";
    snprintf(path, sizeof path, "%s/a.keras", scratch);
    rewrite_archive(path, "model.weights.h5", NULL, NULL, 0);
    cs_model *m = cs_model_load_any(path, err, sizeof err);
    CHECK(!m && strstr(err, "no model.weights.h5"), "%s", err);
    rewrite_archive(path, "model.weights.h5", "model.weights.npz", "x", 1);
    m = cs_model_load_any(path, err, sizeof err);
    CHECK(!m && strstr(err, "model.weights.npz"), "%s", err);
    rewrite_archive(path, "config.json", NULL, NULL, 0);
    m = cs_model_load_any(path, err, sizeof err);
    CHECK(!m && strstr(err, "no config.json"), "%s", err);
    rewrite_archive(path, NULL, "config.json", "{\"class_name\": \"Sequential\", \"config\": [", 40);
    m = cs_model_load_any(path, err, sizeof err);
    CHECK(!m && strstr(err, "config.json is not valid JSON"), "%s", err);
    /* The weights of another Sequential of the same classes but other sizes. */
    FILE *fp = fopen(DIR "k3_functional.keras", "rb");
    static unsigned char other[1 << 20];
    size_t n = fp ? fread(other, 1, sizeof other, fp) : 0;
    if (fp) fclose(fp);
    int ze;
    zip_error_t zer;
    zip_error_init(&zer);
    zip_source_t *src = zip_source_buffer_create(other, n, 0, &zer);
    zip_t *oz = zip_open_from_source(src, ZIP_RDONLY, &zer);
    zip_stat_t st;
    CHECK(oz && zip_stat(oz, "model.weights.h5", 0, &st) == 0, "the other archive");
    char *w = oz ? malloc(st.size) : NULL;
    zip_file_t *zf = w ? zip_fopen(oz, "model.weights.h5", 0) : NULL;
    if (zf) {
        zip_fread(zf, w, st.size);
        zip_fclose(zf);
        rewrite_archive(path, NULL, "model.weights.h5", w, st.size);
        m = cs_model_load_any(path, err, sizeof err);
        CHECK(!m && strstr(err, "Keras layer 'stem' (Conv2D)") && strstr(err, "layers/conv2d/vars/0") &&
                  strstr(err, "has shape (3, 3, 2, 4) in the file; the layer's configuration gives (3, 3, 3, 5)"),
              "%s", err);
    }
    free(w);
    if (oz) zip_discard(oz);
    (void)ze;
    /* Not a zip at all, and an empty file. */
    snprintf(path, sizeof path, "%s/junk.keras", scratch);
    fp = fopen(path, "wb");
    if (fp) fputs("this is not a zip archive", fp), fclose(fp);
    m = cs_model_load_any(path, err, sizeof err);
    CHECK(!m && strstr(err, "neither a .keras archive"), "%s", err);
    fp = fopen(path, "wb");
    if (fp) fclose(fp);
    m = cs_model_load_any(path, err, sizeof err);
    CHECK(!m && err[0], "an empty file: %s", err);
}

/* Keras 3's names of weight groups: its class in snake case, numbered per class. */
static void test_from_json(void)
{
    char err[512] = "";
    const char *cfg = "{\"class_name\": \"Sequential\", \"config\": {\"layers\": ["
                      "{\"class_name\": \"InputLayer\", \"config\": {\"batch_shape\": [null, 4, 4, 2], \"name\": \"in\"}},"
                      "{\"class_name\": \"Activation\", \"config\": {\"name\": \"hs\", \"activation\": \"hard_sigmoid\"}},"
                      "{\"class_name\": \"Flatten\", \"config\": {\"name\": \"f\"}}]}}";
    cs_model *m3 = cs_keras_model_from_json(cfg, strlen(cfg), 3, "t", err, sizeof err);
    cs_model *m2 = cs_keras_model_from_json(cfg, strlen(cfg), 2, "t", err, sizeof err);
    CHECK(m3 && m2, "%s", err);
    if (m3 && m2) {
        CHECK_NEAR(m3->layers[0].cfg.act_a, 1.0 / 6, 1e-7, "Keras 3's hard_sigmoid slope");
        CHECK_NEAR(m2->layers[0].cfg.act_a, 0.2, 1e-7, "Keras 2's hard_sigmoid slope");
        CHECK(m3->n_layers == 3 && m3->layers[2].kind == CS_SOFTMAX, "flatten then a softmax over the 32 scores");
    }
    cs_model_free(m3);
    cs_model_free(m2);
    const char *bad[] = {"", "[]", "{}", "{\"class_name\": \"Sequential\", \"config\": {\"layers\": []}}",
                         "{\"class_name\": \"Functional\", \"config\": {\"layers\": [{}], \"input_layers\": [], "
                         "\"output_layers\": []}}",
                         "{\"class_name\": \"Sequential\", \"config\": {\"layers\": [{\"class_name\": \"Dense\", "
                         "\"config\": {\"name\": \"d\", \"units\": -3, \"batch_input_shape\": [null, 4]}}]}}",
                         "{\"class_name\": \"Sequential\", \"config\": {\"layers\": [{\"class_name\": \"InputLayer\", "
                         "\"config\": {\"name\": \"i\", \"batch_input_shape\": [null, 8]}}]}}",
                         /* 2^48 weights, and a target shape whose product overflows 64 bits */
                         "{\"class_name\": \"Sequential\", \"config\": {\"layers\": [{\"class_name\": \"Dense\", "
                         "\"config\": {\"name\": \"d\", \"units\": 16777216, \"batch_input_shape\": [null, 16777216]}}]}}",
                         "{\"class_name\": \"Sequential\", \"config\": {\"layers\": [{\"class_name\": \"Reshape\", "
                         "\"config\": {\"name\": \"r\", \"target_shape\": [16777216, 16777216, 16777216], "
                         "\"batch_input_shape\": [null, 8]}}]}}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = 0;
        cs_model *m = cs_keras_model_from_json(bad[i], strlen(bad[i]), 3, "t", err, sizeof err);
        CHECK(!m && err[0], "config %zu refused: %s", i, err);
        cs_model_free(m);
    }
}

int main(void)
{
    scratch = test_scratch_dir("keras_model");
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    RUN(test_keras2_sequential);
    RUN(test_keras2_functional);
    RUN(test_keras3_functional);
    RUN(test_keras3_sequential);
    RUN(test_structure);
    RUN(test_buffer);
    RUN(test_refused_configs);
    RUN(test_refused_weights);
    RUN(test_refused_archives);
    RUN(test_from_json);
    return test_summary("keras_model");
}
