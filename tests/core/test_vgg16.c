/*
 * test_vgg16.c - the VGG16 architecture, a full-size weights file, the class index.
 *
 * The real ImageNet weights cannot be downloaded here, so the test writes a file of
 * the same layout and size itself (Keras 1 names as in
 * vgg16_weights_tf_dim_ordering_tf_kernels.h5, input_1 listed without weights),
 * with weights that are a pure function of (layer, weight, index), so any element
 * can be checked after loading without keeping a second 528 MiB copy around.
 */
#include <hdf5.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "blas.h"
#include "exec.h"
#include "h5_attr.h"
#include "keras_h5.h"
#include "model.h"
#include "test.h"
#include "vgg16.h"

#define CLASS_INDEX "data/imagenet_class_index.json"

static const char *tmpdir;

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static uint64_t splitmix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* Element i of weight k of layer `layer`: uniform in [-limit, limit) with He's limit
 * sqrt(6 / fan_in) for kernels, so activations keep their scale through 16 ReLU layers;
 * small biases. */
static float vgg_weight(const cs_layer *l, int layer, int k, size_t i)
{
    double u = (double)(splitmix(((uint64_t)layer << 40) ^ ((uint64_t)k << 36) ^ i) >> 40) / (double)(1ull << 24);
    int fan_in = l->params[0].size / (size_t)l->params[0].dims[l->params[0].ndim - 1];
    double limit = k == 0 ? sqrt(6.0 / fan_in) : 0.01;
    return (float)((2 * u - 1) * limit);
}

/* ---- architecture ------------------------------------------------------------- */

static void test_architecture(void)
{
    cs_model *m = cs_model_build_vgg16();
    CHECK(m != NULL, "build failed");
    if (!m)
        return;
    CHECK(m->n_layers == 22, "%d layers", m->n_layers);
    CHECK(cs_model_param_count(m) == 138357544u, "%zu parameters", cs_model_param_count(m));
    int b5 = cs_model_find_layer(m, "block5_conv3"), fc1 = cs_model_find_layer(m, "fc1");
    int pred = cs_model_find_layer(m, "predictions"), flat = cs_model_find_layer(m, "flatten");
    CHECK(b5 == 16 && m->layers[b5].out.h == 14 && m->layers[b5].out.w == 14 && m->layers[b5].out.c == 512,
          "block5_conv3 is not 14x14x512");
    CHECK(flat >= 0 && m->layers[flat].out.c == 25088, "flatten is not 25088");
    CHECK(fc1 >= 0 && m->layers[fc1].out.c == 4096 && m->layers[fc1].out.h == 1, "fc1 is not 4096");
    CHECK(pred == 21 && m->layers[pred].out.c == 1000 && m->layers[pred].cfg.activation == CS_ACT_SOFTMAX,
          "predictions is not 1000 softmax");
    const cs_param *k1 = &m->layers[0].params[0];
    CHECK(k1->ndim == 4 && k1->dims[0] == 3 && k1->dims[1] == 3 && k1->dims[2] == 3 && k1->dims[3] == 64,
          "block1_conv1 kernel is not (3, 3, 3, 64)");
    CHECK(m->layers[fc1].params[0].dims[0] == 25088 && m->layers[fc1].params[0].dims[1] == 4096,
          "fc1 kernel is not (25088, 4096)");
    /* The notebook's Keras indices 2, 5, 9, 13, 17 are ours minus one (no input layer). */
    static const int keras_ix[5] = {2, 5, 9, 13, 17};
    for (int i = 0; i < 5; i++)
        CHECK(cs_model_find_layer(m, CS_VGG16_NOTEBOOK_LAYERS[i]) == keras_ix[i] - 1, "%s",
              CS_VGG16_NOTEBOOK_LAYERS[i]);
    CHECK(cs_model_last_conv_activation(m) == b5, "default Grad-CAM layer is not block5_conv3");
    int pools = 0;
    for (int i = 0; i < m->n_layers; i++)
        if (m->layers[i].kind == CS_CONV2D) {
            CHECK(m->layers[i].cfg.pad_same && m->layers[i].cfg.kernel == 3 && m->layers[i].cfg.activation == CS_ACT_RELU,
                  "%s is not 3x3 same relu", m->layers[i].name);
            CHECK(m->layers[i].out.h == m->layers[i].in.h, "%s changes the size", m->layers[i].name);
        } else if (m->layers[i].kind == CS_MAXPOOL) {
            pools++;
        }
    CHECK(pools == 5, "%d pools", pools);
    cs_model_free(m);
}

static void test_class_index(void)
{
    char err[256] = "";
    cs_model *m = cs_model_build_vgg16();
    int rc = cs_imagenet_load_classes(m, CLASS_INDEX, err, sizeof err);
    CHECK(rc == 0, "load failed: %s", err);
    CHECK(m->n_classes == 1000, "%d classes", m->n_classes);
    if (rc == 0 && m->n_classes == 1000) {
        CHECK(!strcmp(m->class_ids[0], "n01440764") && !strcmp(m->class_names[0], "tench"), "class 0: %s %s",
              m->class_ids[0], m->class_names[0]);
        CHECK(!strcmp(m->class_ids[999], "n15075141") && !strcmp(m->class_names[999], "toilet_tissue"),
              "class 999: %s %s", m->class_ids[999], m->class_names[999]);
    }
    /* A broken index is refused with the file and the entry named; the model keeps its classes. */
    char path[512];
    snprintf(path, sizeof path, "%s/bad_index.json", tmpdir);
    FILE *f = fopen(path, "w");
    fputs("{\"0\": [\"n01440764\", \"tench\"], \"2\": [\"n01484850\", \"great_white_shark\"]}", f);
    fclose(f);
    rc = cs_imagenet_load_classes(m, path, err, sizeof err);
    CHECK(rc == -1 && strstr(err, "bad_index.json") && strstr(err, "class 1"), "gap: %s", err);
    CHECK(m->n_classes == 1000, "a refused index changed the model");
    f = fopen(path, "w");
    fputs("{\"0\": [\"n01440764\", ", f);
    fclose(f);
    rc = cs_imagenet_load_classes(m, path, err, sizeof err);
    CHECK(rc == -1 && strstr(err, "bad_index.json"), "truncated: %s", err);
    cs_model_free(m);
}

/* ---- a full-size weights file ------------------------------------------------- */

/* Writes one weight tensor in slabs of rows along its first axis, so the writer's
 * buffer stays at a few MiB even for fc1's 392 MiB kernel. */
static void write_weight(hid_t g, const char *name, const cs_layer *l, int layer, int k, float *buf, size_t buf_floats)
{
    const cs_param *p = &l->params[k];
    hsize_t dims[4];
    for (int d = 0; d < p->ndim; d++)
        dims[d] = (hsize_t)p->dims[d];
    hid_t fsp = H5Screate_simple(p->ndim, dims, NULL);
    hid_t ds = H5Dcreate2(g, name, H5T_IEEE_F32LE, fsp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    size_t row = p->size / (size_t)p->dims[0], rows_per = buf_floats / row;
    if (rows_per < 1)
        rows_per = 1;
    for (size_t r0 = 0; r0 < (size_t)p->dims[0]; r0 += rows_per) {
        size_t rows = (size_t)p->dims[0] - r0 < rows_per ? (size_t)p->dims[0] - r0 : rows_per;
        for (size_t i = 0; i < rows * row; i++)
            buf[i] = vgg_weight(l, layer, k, r0 * row + i);
        hsize_t start[4] = {r0, 0, 0, 0}, count[4];
        for (int d = 0; d < p->ndim; d++)
            count[d] = dims[d];
        count[0] = rows;
        hid_t msp = H5Screate_simple(p->ndim, count, NULL);
        H5Sselect_hyperslab(fsp, H5S_SELECT_SET, start, NULL, count, NULL);
        H5Dwrite(ds, H5T_NATIVE_FLOAT, msp, fsp, H5P_DEFAULT, buf);
        H5Sclose(msp);
    }
    H5Dclose(ds);
    H5Sclose(fsp);
}

/* The layout of Keras' own file: layer_names starting with input_1, Keras 1 weight
 * names (block1_conv1_W_1:0, block1_conv1_b_1:0) directly in each layer group. */
static int write_vgg16_file(const char *path, const cs_model *m)
{
    size_t buf_floats = 4u << 20;
    float *buf = malloc(buf_floats * sizeof(float));
    const char *names[32];
    names[0] = "input_1";
    for (int i = 0; i < m->n_layers; i++)
        names[i + 1] = m->layers[i].name;
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0 || !buf) {
        free(buf);
        return -1;
    }
    test_h5_str_attr(f, "layer_names", names, m->n_layers + 1, 0);
    hid_t g = H5Gcreate2(f, "input_1", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    test_h5_str_attr(g, "weight_names", NULL, 0, 0);
    H5Gclose(g);
    for (int i = 0; i < m->n_layers; i++) {
        const cs_layer *l = &m->layers[i];
        char wn[2][96];
        const char *wp[2] = {wn[0], wn[1]};
        snprintf(wn[0], sizeof wn[0], "%s_W_1:0", l->name);
        snprintf(wn[1], sizeof wn[1], "%s_b_1:0", l->name);
        g = H5Gcreate2(f, l->name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        test_h5_str_attr(g, "weight_names", wp, l->n_params, 0);
        for (int k = 0; k < l->n_params; k++)
            write_weight(g, wn[k], l, i, k, buf, buf_floats);
        H5Gclose(g);
    }
    free(buf);
    return H5Fclose(f) < 0 ? -1 : 0;
}

/* block1_conv1's output at one position, by direct loops over the generated weights
 * ('same' padding: one pixel of zeros all round; then ReLU). */
static float conv1_ref(const cs_model *m, const float *x, int oy, int ox, int oc)
{
    const cs_layer *l = &m->layers[0];
    double s = vgg_weight(l, 0, 1, (size_t)oc);
    for (int ky = 0; ky < 3; ky++)
        for (int kx = 0; kx < 3; kx++) {
            int iy = oy + ky - 1, ix = ox + kx - 1;
            if (iy < 0 || iy >= 224 || ix < 0 || ix >= 224)
                continue;
            for (int c = 0; c < 3; c++)
                s += (double)x[(iy * 224 + ix) * 3 + c] * vgg_weight(l, 0, 0, (size_t)((ky * 3 + kx) * 3 + c) * 64 + oc);
        }
    return s > 0 ? (float)s : 0.0f;
}

static void test_full_weights_file(void)
{
    char err[512] = "", path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, CS_VGG16_WEIGHTS_FILE);
    cs_model *arch = cs_model_build_vgg16();
    double t0 = now();
    int rc = write_vgg16_file(path, arch);
    double t1 = now();
    CHECK(rc == 0, "could not write the test file");
    struct stat st;
    CHECK(stat(path, &st) == 0 && st.st_size > 138357544LL * 4, "file is %lld bytes", (long long)st.st_size);

    cs_model *m = cs_vgg16_load(path, CLASS_INDEX, err, sizeof err);
    double t2 = now();
    CHECK(m != NULL, "load failed: %s", err);
    if (!m) {
        cs_model_free(arch);
        return;
    }
    CHECK(m->n_classes == 1000 && !strcmp(m->class_ids[0], "n01440764") && !strcmp(m->class_names[0], "tench"),
          "classes not loaded");
    /* Elements spread over every tensor, the first and last of each included. */
    int bad = 0;
    for (int i = 0; i < m->n_layers; i++)
        for (int k = 0; k < m->layers[i].n_params; k++) {
            const cs_param *p = &m->layers[i].params[k];
            for (size_t j = 0; j < p->size; j += 1 + p->size / 97)
                bad += p->data[j] != vgg_weight(&m->layers[i], i, k, j);
            bad += p->data[p->size - 1] != vgg_weight(&m->layers[i], i, k, p->size - 1);
        }
    CHECK(bad == 0, "%d sampled weights differ from the file", bad);
    int fc1 = cs_model_find_layer(m, "fc1");
    CHECK(m->layers[fc1].params[0].data[(size_t)25087 * 4096 + 4095] ==
              vgg_weight(&m->layers[fc1], fc1, 0, (size_t)25087 * 4096 + 4095),
          "fc1 kernel[25087][4095] misplaced");

    /* One forward pass on a 224x224 image in the caffe-preprocessed range. */
    float *x = malloc(224 * 224 * 3 * sizeof(float));
    for (int i = 0; i < 224 * 224 * 3; i++)
        x[i] = (float)((double)(splitmix(0xabcdef + (uint64_t)i) >> 40) / (double)(1ull << 24) * 255.0 - 120.0);
    cs_exec *e = cs_exec_new(m, 1);
    CHECK(e != NULL, "no exec");
    if (e) {
        double t3 = now();
        cs_exec_forward(e, x, 1, 0, NULL);
        double t4 = now();
        const float *c1 = e->act[0], *prob = e->act[m->n_layers - 1];
        static const int pos[][3] = {{0, 0, 0}, {0, 5, 7}, {100, 223, 63}, {223, 223, 31}, {57, 131, 12}};
        for (size_t i = 0; i < sizeof pos / sizeof pos[0]; i++) {
            float ref = conv1_ref(m, x, pos[i][0], pos[i][1], pos[i][2]);
            float got = c1[(pos[i][0] * 224 + pos[i][1]) * 64 + pos[i][2]];
            CHECK_NEAR(got, ref, 1e-3 * (1 + fabs(ref)), "block1_conv1 output");
        }
        double sum = 0;
        int finite = 1, nonneg = 1;
        for (int i = 0; i < 1000; i++) {
            sum += prob[i];
            finite &= isfinite(prob[i]);
            nonneg &= prob[i] >= 0;
        }
        CHECK(finite && nonneg, "probabilities not finite and non-negative");
        CHECK_NEAR(sum, 1.0, 1e-4, "probabilities sum");
        fprintf(stderr, "    write %.1fs, load %.1fs, forward %.2fs\n", t1 - t0, t2 - t1, t4 - t3);
        cs_exec_free(e);
    }
    free(x);

    /* The file in the models folder is found; a wrong flag path is reported as tried. */
    char found[600], tried[2048], flag[600];
    snprintf(flag, sizeof flag, "%s/elsewhere.h5", tmpdir);
    rc = cs_vgg16_find_weights(flag, tmpdir, found, sizeof found, tried, sizeof tried);
    CHECK(rc == 0 && !strcmp(found, path), "find: %s", found);
    CHECK(strstr(tried, "elsewhere.h5") != NULL, "tried: %s", tried);
    rc = cs_vgg16_find_weights(tmpdir, NULL, found, sizeof found, tried, sizeof tried);
    CHECK(rc == 0 && !strcmp(found, path), "a folder as the flag: %s", found);
    cs_model_free(m);

    /* The HOME fallback: $HOME/.keras/models. */
    char home[600], keras[700], moved[800];
    snprintf(home, sizeof home, "%s/home", tmpdir);
    snprintf(keras, sizeof keras, "%s/.keras", home);
    mkdir(home, 0700);
    mkdir(keras, 0700);
    snprintf(keras, sizeof keras, "%s/.keras/models", home);
    mkdir(keras, 0700);
    snprintf(moved, sizeof moved, "%s/%s", keras, CS_VGG16_WEIGHTS_FILE);
    CHECK(rename(path, moved) == 0, "rename");
    const char *old_home = getenv("HOME");
    char saved_home[600] = "";
    if (old_home)
        snprintf(saved_home, sizeof saved_home, "%s", old_home);
    setenv("HOME", home, 1);
    rc = cs_vgg16_find_weights(NULL, tmpdir, found, sizeof found, tried, sizeof tried);
    CHECK(rc == 0 && !strcmp(found, moved), "HOME fallback: %s (tried %s)", found, tried);
    unlink(moved);
    rc = cs_vgg16_find_weights(flag, tmpdir, found, sizeof found, tried, sizeof tried);
    CHECK(rc == -1 && strstr(tried, "elsewhere.h5") && strstr(tried, ".keras/models"), "nothing found: %s", tried);
    if (saved_home[0])
        setenv("HOME", saved_home, 1);
    else
        unsetenv("HOME");
    cs_model_free(arch);
}

static void test_load_errors(void)
{
    char err[512] = "", path[512];
    snprintf(path, sizeof path, "%s/absent.h5", tmpdir);
    cs_model *m = cs_vgg16_load(path, CLASS_INDEX, err, sizeof err);
    CHECK(!m && strstr(err, "VGG16 weights not found at") && strstr(err, "absent.h5"), "missing: %s", err);

    /* A Keras file of another model: the first VGG16 layer is named as missing. */
    cs_model *fm = cs_model_build_fmnist();
    cs_model_init_weights(fm, 1);
    snprintf(path, sizeof path, "%s/fmnist.h5", tmpdir);
    int rc = cs_keras_h5_save(fm, path, err, sizeof err);
    CHECK(rc == 0, "save: %s", err);
    m = cs_vgg16_load(path, CLASS_INDEX, err, sizeof err);
    CHECK(!m && strstr(err, "fmnist.h5") && strstr(err, "block1_conv1"), "other model: %s", err);
    cs_model_free(fm);

    char missing_index[512];
    snprintf(missing_index, sizeof missing_index, "%s/no_index.json", tmpdir);
    m = cs_vgg16_load(path, missing_index, err, sizeof err);
    CHECK(!m && strstr(err, "no_index.json"), "missing class index: %s", err);
    cs_model_free(m);
}

int main(int argc, char **argv)
{
    if (cs_blas_init(argc, argv) != 0) {
        fprintf(stderr, "OpenBLAS computes wrong results\n");
        return 99;
    }
    tmpdir = test_scratch_dir("vgg16");
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    RUN(test_architecture);
    RUN(test_class_index);
    RUN(test_load_errors);
    RUN(test_full_weights_file);
    return test_summary("vgg16");
}
