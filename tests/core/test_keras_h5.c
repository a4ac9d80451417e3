/*
 * test_keras_h5.c - Keras HDF5 weights in and out.
 *
 * The files read here are written by this test's own small writer, straight through
 * libhdf5 in the layouts Keras produces (Keras 2 nested weight names with fixed-length
 * byte strings, h5py variable-length strings, Keras 1 flat names, model.save()'s
 * /model_weights), never by cs_keras_h5_save, so the loader is checked against the
 * format and not against its own writer. Saved files are then read back both by the
 * loader and, for their layout, directly through libhdf5.
 */
#include <hdf5.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "exec.h"
#include "h5_attr.h"
#include "keras_h5.h"
#include "model.h"
#include "test.h"

static const char *tmpdir;

/* ---- deterministic weights ---------------------------------------------------- */

static uint64_t splitmix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* Element i of weight `tag`: uniform in [-0.5, 0.5), a pure function of (tag, i). */
static float weight_value(uint64_t tag, size_t i)
{
    return (float)((double)(splitmix(tag * 0x100000001b3ull + i) >> 40) / (double)(1ull << 24) - 0.5);
}

/* ---- an independent writer of the Keras layout -------------------------------- */

enum {
    TW_VLEN = 1,          /* strings as h5py writes Python str: variable-length */
    TW_FLAT_NAMES = 2,    /* Keras 1 names: "<layer>_W_1:0" in the group itself */
    TW_MODEL_WEIGHTS = 4, /* model.save(): the tree under /model_weights */
    TW_EMPTY_F64 = 8,     /* no weights: np.asarray([]) as Keras writes it, float64 (0,) */
};

typedef struct {
    char name[64];
    int n;
    char wname[4][160];
    int ndim[4];
    hsize_t dims[4][4];
    float *data[4];
} tw_layer;

typedef struct {
    int n;
    tw_layer l[32];
} tw_file;

static void tw_free(tw_file *f)
{
    for (int i = 0; i < f->n; i++)
        for (int k = 0; k < f->l[i].n; k++)
            free(f->l[i].data[k]);
}

/* The model's layers with generated weights; tag base `seed`. BN variances are made
 * positive so forward passes stay meaningful. */
static void tw_from_model(tw_file *f, const cs_model *m, uint64_t seed, int flags)
{
    memset(f, 0, sizeof *f);
    for (int i = 0; i < m->n_layers; i++) {
        const cs_layer *l = &m->layers[i];
        tw_layer *t = &f->l[f->n++];
        snprintf(t->name, sizeof t->name, "%s", l->name);
        t->n = l->n_params;
        for (int k = 0; k < l->n_params; k++) {
            const cs_param *p = &l->params[k];
            static const char *const keras1[] = {"W", "b", "gamma", "beta"};
            if (flags & TW_FLAT_NAMES)
                snprintf(t->wname[k], sizeof t->wname[k], "%s_%s_1:0", l->name, keras1[k]);
            else
                snprintf(t->wname[k], sizeof t->wname[k], "%s/%s:0", l->name, p->name);
            t->ndim[k] = p->ndim;
            for (int d = 0; d < p->ndim; d++)
                t->dims[k][d] = (hsize_t)p->dims[d];
            t->data[k] = malloc(p->size * sizeof(float));
            for (size_t j = 0; j < p->size; j++) {
                float v = weight_value(seed + (uint64_t)i * 8 + (uint64_t)k, j);
                if (!strcmp(p->name, "moving_variance") || !strcmp(p->name, "gamma"))
                    v = 0.75f + v;
                t->data[k][j] = v;
            }
        }
    }
}

static void tw_str_attr(hid_t obj, const char *name, char names[][160], int n, int flags)
{
    if (n == 0 && (flags & TW_EMPTY_F64)) { /* an empty list stored as numbers, as some writers do */
        hsize_t dim = 0;
        hid_t sp = H5Screate_simple(1, &dim, NULL);
        H5Aclose(H5Acreate2(obj, name, H5T_IEEE_F64LE, sp, H5P_DEFAULT, H5P_DEFAULT));
        H5Sclose(sp);
        return;
    }
    const char *ptr[64];
    for (int i = 0; i < n; i++)
        ptr[i] = names[i];
    test_h5_str_attr(obj, name, ptr, n, flags & TW_VLEN);
}

static void tw_write(const char *path, const tw_file *f, int flags)
{
    hid_t file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hid_t root = (flags & TW_MODEL_WEIGHTS) ? H5Gcreate2(file, "model_weights", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)
                                            : H5Gopen2(file, "/", H5P_DEFAULT);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    static char names[64][160];
    for (int i = 0; i < f->n; i++)
        snprintf(names[i], sizeof names[i], "%s", f->l[i].name);
    tw_str_attr(root, "layer_names", names, f->n, flags);
    for (int i = 0; i < f->n; i++) {
        const tw_layer *t = &f->l[i];
        hid_t g = H5Gcreate2(root, t->name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        char wn[4][160];
        for (int k = 0; k < t->n; k++)
            snprintf(wn[k], sizeof wn[k], "%s", t->wname[k]);
        tw_str_attr(g, "weight_names", wn, t->n, flags);
        for (int k = 0; k < t->n; k++) {
            hid_t sp = H5Screate_simple(t->ndim[k], t->dims[k], NULL);
            hid_t ds = H5Dcreate2(g, t->wname[k], H5T_IEEE_F32LE, sp, lcpl, H5P_DEFAULT, H5P_DEFAULT);
            H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, t->data[k]);
            H5Dclose(ds);
            H5Sclose(sp);
        }
        H5Gclose(g);
    }
    H5Pclose(lcpl);
    H5Gclose(root);
    H5Fclose(file);
}

/* ---- models ------------------------------------------------------------------- */

/* The layer kinds of VGG16 at toy size: conv same relu, max pool, flatten, dense relu,
 * dense softmax. */
static cs_model *build_small(void)
{
    char err[160];
    cs_model *m = cs_model_new("small", (cs_shape){8, 8, 2});
    cs_layer_config conv = {.filters = 4, .kernel = 3, .stride = 1, .pad_same = 1, .activation = CS_ACT_RELU};
    cs_layer_config pool = {.pool = 2}, none = {0};
    cs_layer_config d1 = {.units = 6, .activation = CS_ACT_RELU}, d2 = {.units = 3, .activation = CS_ACT_SOFTMAX};
    int ok = cs_model_add(m, "conv2d_1", CS_CONV2D, &conv, err, sizeof err) >= 0 &&
             cs_model_add(m, "max_pooling2d_1", CS_MAXPOOL, &pool, err, sizeof err) >= 0 &&
             cs_model_add(m, "flatten_1", CS_FLATTEN, &none, err, sizeof err) >= 0 &&
             cs_model_add(m, "dense_1", CS_DENSE, &d1, err, sizeof err) >= 0 &&
             cs_model_add(m, "dense_2", CS_DENSE, &d2, err, sizeof err) >= 0 && cs_model_finish(m) == 0;
    if (!ok) {
        fprintf(stderr, "build_small: %s\n", err);
        exit(99);
    }
    return m;
}

static int params_equal_file(const cs_model *m, const tw_file *f)
{
    for (int i = 0; i < m->n_layers; i++)
        for (int k = 0; k < m->layers[i].n_params; k++)
            if (memcmp(m->layers[i].params[k].data, f->l[i].data[k], m->layers[i].params[k].size * sizeof(float)))
                return 0;
    return 1;
}

/* Forward n generated images; returns the final layer's outputs (malloc'd). */
static float *forward(const cs_model *m, int n)
{
    size_t in = cs_shape_size(m->input), out = cs_shape_size(m->layers[m->n_layers - 1].out);
    float *x = malloc((size_t)n * in * sizeof(float)), *y = malloc((size_t)n * out * sizeof(float));
    for (size_t i = 0; i < (size_t)n * in; i++)
        x[i] = weight_value(777, i) + 0.5f;
    cs_exec *e = cs_exec_new(m, n);
    cs_exec_forward(e, x, n, 0, NULL);
    memcpy(y, e->act[m->n_layers - 1], (size_t)n * out * sizeof(float));
    cs_exec_free(e);
    free(x);
    return y;
}

/* ---- tests -------------------------------------------------------------------- */

static void test_load_keras2_layout(void)
{
    char err[256] = "";
    cs_model *m = build_small();
    tw_file f;
    tw_from_model(&f, m, 1000, 0);
    /* Marked values: kernel[ky=2][kx=1][cin=1][cout=3] and dense_1 kernel[in=7][out=5]. */
    f.l[0].data[0][((2 * 3 + 1) * 2 + 1) * 4 + 3] = 42.5f;
    f.l[3].data[0][7 * 6 + 5] = -17.25f;
    f.l[4].data[1][2] = 3.125f; /* dense_2 bias[2] */
    tw_write(test_scratch_path("k2.h5"), &f, 0);

    int rc = cs_keras_h5_load(m, test_scratch_path("k2.h5"), err, sizeof err);
    CHECK(rc == 0, "load failed: %s", err);
    CHECK(params_equal_file(m, &f), "parameters differ from the file");
    const cs_layer *conv = &m->layers[cs_model_find_layer(m, "conv2d_1")];
    CHECK(conv->params[0].data[((2 * 3 + 1) * 2 + 1) * 4 + 3] == 42.5f, "conv kernel[2][1][1][3] misplaced");
    const cs_layer *d1 = &m->layers[cs_model_find_layer(m, "dense_1")];
    CHECK(d1->params[0].data[7 * 6 + 5] == -17.25f, "dense kernel[7][5] misplaced");
    CHECK(m->layers[4].params[1].data[2] == 3.125f, "dense_2 bias[2] misplaced");
    tw_free(&f);
    cs_model_free(m);
}

/* h5py-style variable-length strings, Keras 1 flat names, float64 empty weight_names,
 * and a model.save() file whose weights sit under /model_weights. */
static void test_load_other_layouts(void)
{
    static const int variants[] = {TW_VLEN, TW_FLAT_NAMES | TW_EMPTY_F64, TW_VLEN | TW_FLAT_NAMES | TW_EMPTY_F64,
                                   TW_MODEL_WEIGHTS, TW_MODEL_WEIGHTS | TW_VLEN};
    for (size_t v = 0; v < sizeof variants / sizeof variants[0]; v++) {
        char err[256] = "";
        cs_model *m = build_small();
        tw_file f;
        tw_from_model(&f, m, 2000 + v * 100, variants[v]);
        tw_write(test_scratch_path("variant.h5"), &f, variants[v]);
        int rc = cs_keras_h5_load(m, test_scratch_path("variant.h5"), err, sizeof err);
        CHECK(rc == 0, "variant %d: load failed: %s", variants[v], err);
        CHECK(params_equal_file(m, &f), "variant %d: parameters differ from the file", variants[v]);
        tw_free(&f);
        cs_model_free(m);
    }
}

static void test_wrong_shape_refused(void)
{
    char err[256] = "";
    cs_model *m = build_small();
    cs_model_init_weights(m, 5);
    float *before = malloc(m->n_param_floats * sizeof(float));
    memcpy(before, m->param_block, m->n_param_floats * sizeof(float));
    tw_file f;
    tw_from_model(&f, m, 3000, 0);
    /* dense_1 kernel (64, 6) written as (64, 7): the data is big enough either way. */
    free(f.l[3].data[0]);
    f.l[3].data[0] = calloc(64 * 7, sizeof(float));
    f.l[3].dims[0][1] = 7;
    tw_write(test_scratch_path("shape.h5"), &f, 0);
    int rc = cs_keras_h5_load(m, test_scratch_path("shape.h5"), err, sizeof err);
    CHECK(rc == -1, "a wrong shape was accepted");
    CHECK(strstr(err, "dense_1") && strstr(err, "kernel"), "message does not name the weight: %s", err);
    CHECK(strstr(err, "(64, 7)") && strstr(err, "(64, 6)"), "message does not give both shapes: %s", err);
    /* Shapes are all checked before anything is read, so conv2d_1 was not touched. */
    CHECK(!memcmp(before, m->param_block, m->n_param_floats * sizeof(float)), "a refused file changed the model");

    /* Wrong rank: a conv bias written as (4, 1). */
    tw_free(&f);
    tw_from_model(&f, m, 3100, 0);
    f.l[0].ndim[1] = 2;
    f.l[0].dims[1][1] = 1;
    tw_write(test_scratch_path("rank.h5"), &f, 0);
    rc = cs_keras_h5_load(m, test_scratch_path("rank.h5"), err, sizeof err);
    CHECK(rc == -1 && strstr(err, "conv2d_1") && strstr(err, "bias") && strstr(err, "(4, 1)") &&
              strstr(err, "(4,)"),
          "wrong rank: %s", err);
    tw_free(&f);
    free(before);
    cs_model_free(m);
}

static void test_missing_layer_refused(void)
{
    char err[256] = "";
    cs_model *m = build_small();
    tw_file f;
    tw_from_model(&f, m, 4000, 0);
    /* Drop dense_1 from the file. */
    tw_layer gone = f.l[3];
    memmove(&f.l[3], &f.l[4], sizeof f.l[0]);
    f.n--;
    tw_write(test_scratch_path("missing.h5"), &f, 0);
    int rc = cs_keras_h5_load(m, test_scratch_path("missing.h5"), err, sizeof err);
    CHECK(rc == -1, "a file without dense_1 was accepted");
    CHECK(strstr(err, "dense_1") != NULL, "message does not name the missing layer: %s", err);
    f.l[f.n++] = gone;

    /* A layer with one weight where the model has two. */
    tw_free(&f);
    tw_from_model(&f, m, 4100, 0);
    f.l[4].n = 1;
    tw_write(test_scratch_path("count.h5"), &f, 0);
    f.l[4].n = 2;
    rc = cs_keras_h5_load(m, test_scratch_path("count.h5"), err, sizeof err);
    CHECK(rc == -1 && strstr(err, "dense_2") && strstr(err, "1 weights"), "weight count: %s", err);

    tw_free(&f);
    cs_model_free(m);

    /* weight_names in the wrong order: beta listed before gamma. The shapes agree, so
     * only the names can tell. */
    m = cs_model_build_fmnist();
    tw_from_model(&f, m, 4200, 0);
    tw_layer *bn = &f.l[cs_model_find_layer(m, "batch_normalization_1")];
    char name0[160];
    float *data0 = bn->data[0];
    memcpy(name0, bn->wname[0], sizeof name0);
    memcpy(bn->wname[0], bn->wname[1], sizeof name0);
    memcpy(bn->wname[1], name0, sizeof name0);
    bn->data[0] = bn->data[1];
    bn->data[1] = data0;
    tw_write(test_scratch_path("order.h5"), &f, 0);
    rc = cs_keras_h5_load(m, test_scratch_path("order.h5"), err, sizeof err);
    CHECK(rc == -1 && strstr(err, "batch_normalization_1") && strstr(err, "beta") && strstr(err, "gamma"),
          "order: %s", err);
    tw_free(&f);
    cs_model_free(m);
}

/* A notebook model built twice in one Keras session has conv2d_3, dense_5, ...:
 * Keras matches such files by position, and so do we. */
static void test_positional_match(void)
{
    char err[256] = "";
    cs_model *m = build_small();
    tw_file f;
    tw_from_model(&f, m, 5000, 0);
    const char *renamed[] = {"conv2d_7", "max_pooling2d_4", "flatten_4", "dense_9", "dense_10"};
    for (int i = 0; i < f.n; i++) {
        snprintf(f.l[i].name, sizeof f.l[i].name, "%s", renamed[i]);
        for (int k = 0; k < f.l[i].n; k++) {
            char w[160];
            snprintf(w, sizeof w, "%s/%s", renamed[i], strchr(f.l[i].wname[k], '/') + 1);
            memcpy(f.l[i].wname[k], w, sizeof w);
        }
    }
    tw_write(test_scratch_path("renamed.h5"), &f, 0);
    int rc = cs_keras_h5_load(m, test_scratch_path("renamed.h5"), err, sizeof err);
    CHECK(rc == 0, "positional load failed: %s", err);
    CHECK(params_equal_file(m, &f), "positional load put weights in the wrong place");
    tw_free(&f);
    cs_model_free(m);
}

/* This process's peak virtual size (VmPeak) in bytes, -1 when unknown. */
static long long vm_peak(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmPeak:", 7)) kb = atoll(line + 7);
    if (f) fclose(f);
    return kb < 0 ? -1 : kb * 1024;
}

/* Bytes found by the fuzzer: version 0 superblocks that point a "driver information
 * block" into themselves, whose size field libhdf5 trusted: it asked for 3.2 GB and
 * 3.0 GB before noticing anything. Now they are refused before HDF5 reads them, and a
 * real file (written by libhdf5 here) still opens. Runs first, so no earlier test's
 * peak hides such an allocation. */
static void test_damaged_superblock(void)
{
    static const unsigned char found[2][50] = {
        {0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0, 0, 8, 8, 0, 0x04, 0xc3, 0x10, 0xfa, 0, 0, 0, 0,
         0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x60, 0x08, 0, 0xfa, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0a, 0},
        {0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0, 0, 8, 8, 0xbd, 0xbe, 0, 0x10, 0, 0, 0, 0, 0,
         0, 0, 0, 0, 0, 0, 0, 0, 0, 0xfa, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x08, 0},
    };
    cs_model *m = build_small();
    for (int k = 0; k < 2; k++) {
        FILE *fp = fopen(test_scratch_path("superblock.h5"), "wb");
        size_t n = k == 0 ? 50 : 49;
        CHECK(fp && fwrite(found[k], 1, n, fp) == n && fclose(fp) == 0, "write the file");
        char err[256] = "";
        long long before = vm_peak();
        int rc = cs_keras_h5_load(m, test_scratch_path("superblock.h5"), err, sizeof err);
        long long after = vm_peak();
        CHECK(rc == -1 && strstr(err, "superblock"), "file %d refused: %s", k, err);
        CHECK(before > 0 && after - before < (512ll << 20), "file %d: peak virtual size grew by %lld MiB", k,
              (after - before) >> 20);
    }
    /* what libhdf5 writes passes the check (and then lacks layer_names) */
    hid_t f = H5Fcreate(test_scratch_path("plain.h5"), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    H5Fclose(f);
    char err[256] = "";
    CHECK(cs_keras_h5_load(m, test_scratch_path("plain.h5"), err, sizeof err) == -1 && strstr(err, "layer_names"),
          "a plain HDF5 file: %s", err);
    cs_model_free(m);
}

static void test_bad_files(void)
{
    char err[256] = "";
    cs_model *m = build_small();
    int rc = cs_keras_h5_load(m, test_scratch_path("nope.h5"), err, sizeof err);
    CHECK(rc == -1 && strstr(err, "nope.h5") && strstr(err, "No such file"), "missing file: %s", err);
    FILE *fp = fopen(test_scratch_path("junk.h5"), "wb");
    fputs("this is not HDF5 at all\n", fp);
    fclose(fp);
    rc = cs_keras_h5_load(m, test_scratch_path("junk.h5"), err, sizeof err);
    CHECK(rc == -1 && strstr(err, "not an HDF5 file"), "junk file: %s", err);
    /* An HDF5 file without layer_names. */
    hid_t f = H5Fcreate(test_scratch_path("empty.h5"), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    H5Fclose(f);
    rc = cs_keras_h5_load(m, test_scratch_path("empty.h5"), err, sizeof err);
    CHECK(rc == -1 && strstr(err, "layer_names"), "no layer_names: %s", err);
    /* Keras 3's .weights.h5 keeps a different tree: say so rather than "not Keras". */
    f = H5Fcreate(test_scratch_path("keras3.h5"), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    H5Gclose(H5Gcreate2(f, "layers", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    H5Fclose(f);
    rc = cs_keras_h5_load(m, test_scratch_path("keras3.h5"), err, sizeof err);
    CHECK(rc == -1 && strstr(err, "Keras 3"), "keras 3 file: %s", err);
    cs_model_free(m);
}

/* Checks a saved file's layout directly with libhdf5. */
static void check_saved_layout(const char *path, const cs_model *m)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    CHECK(f >= 0, "cannot open the saved file");
    if (f < 0)
        return;
    hid_t a = H5Aopen(f, "layer_names", H5P_DEFAULT), t = H5Aget_type(a), sp = H5Aget_space(a);
    size_t size = H5Tget_size(t);
    int n = (int)H5Sget_simple_extent_npoints(sp);
    CHECK(H5Tget_class(t) == H5T_STRING && !H5Tis_variable_str(t), "layer_names is not fixed-length strings");
    CHECK(n == m->n_layers, "layer_names has %d entries, the model %d layers", n, m->n_layers);
    char *buf = calloc((size_t)n, size);
    H5Aread(a, t, buf);
    for (int i = 0; i < n && i < m->n_layers; i++)
        CHECK(!strncmp(buf + (size_t)i * size, m->layers[i].name, size), "layer_names[%d]", i);
    free(buf);
    H5Sclose(sp);
    H5Tclose(t);
    H5Aclose(a);
    CHECK(H5Aexists(f, "backend") > 0 && H5Aexists(f, "keras_version") > 0, "backend/keras_version missing");
    for (int i = 0; i < m->n_layers; i++) {
        const cs_layer *l = &m->layers[i];
        hid_t g = H5Gopen2(f, l->name, H5P_DEFAULT);
        CHECK(g >= 0, "no group for %s", l->name);
        if (g < 0)
            continue;
        a = H5Aopen(g, "weight_names", H5P_DEFAULT);
        sp = H5Aget_space(a);
        CHECK(H5Sget_simple_extent_npoints(sp) == l->n_params, "%s: weight_names count", l->name);
        H5Sclose(sp);
        H5Aclose(a);
        for (int k = 0; k < l->n_params; k++) {
            char path2[200];
            snprintf(path2, sizeof path2, "%s/%s:0", l->name, l->params[k].name); /* Keras 2 nesting */
            hid_t ds = H5Dopen2(g, path2, H5P_DEFAULT);
            CHECK(ds >= 0, "%s: no dataset %s", l->name, path2);
            if (ds < 0)
                continue;
            hid_t dt = H5Dget_type(ds);
            CHECK(H5Tequal(dt, H5T_IEEE_F32LE) > 0, "%s: not float32 little-endian", path2);
            H5Tclose(dt);
            hsize_t dims[8];
            hid_t dsp = H5Dget_space(ds);
            int nd = H5Sget_simple_extent_dims(dsp, dims, NULL);
            CHECK(nd == l->params[k].ndim, "%s: rank %d", path2, nd);
            for (int d = 0; d < nd && d < 4; d++)
                CHECK(dims[d] == (hsize_t)l->params[k].dims[d], "%s: dim %d", path2, d);
            H5Sclose(dsp);
            H5Dclose(ds);
        }
        H5Gclose(g);
    }
    H5Fclose(f);
}

static void roundtrip(cs_model *(*build)(void), uint64_t seed, const char *name)
{
    char err[256] = "";
    cs_model *a = build(), *b = build();
    cs_model_init_weights(a, seed);
    /* Make every tensor non-trivial, batch norm statistics included. */
    for (size_t i = 0; i < a->n_param_floats; i++)
        a->param_block[i] += 0.01f * weight_value(seed, i);
    for (int i = 0; i < a->n_layers; i++)
        if (a->layers[i].kind == CS_BATCHNORM)
            for (size_t c = 0; c < a->layers[i].params[3].size; c++)
                a->layers[i].params[3].data[c] = 0.5f + weight_value(seed + 1, c) + 0.5f;
    const char *path = test_scratch_path(name);
    int rc = cs_keras_h5_save(a, path, err, sizeof err);
    CHECK(rc == 0, "%s: save failed: %s", name, err);
    check_saved_layout(path, a);
    rc = cs_keras_h5_load(b, path, err, sizeof err);
    CHECK(rc == 0, "%s: load failed: %s", name, err);
    CHECK(a->n_param_floats == b->n_param_floats &&
              !memcmp(a->param_block, b->param_block, a->n_param_floats * sizeof(float)),
          "%s: parameters not bit-identical after save and load", name);
    float *ya = forward(a, 3), *yb = forward(b, 3);
    size_t out = cs_shape_size(a->layers[a->n_layers - 1].out);
    CHECK(!memcmp(ya, yb, 3 * out * sizeof(float)), "%s: forward outputs differ", name);
    free(ya);
    free(yb);
    /* Saving over an existing file replaces it and leaves no temp file behind. */
    rc = cs_keras_h5_save(b, path, err, sizeof err);
    CHECK(rc == 0, "%s: second save failed: %s", name, err);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "ls %s | grep -q tmp", tmpdir);
    CHECK(system(cmd) != 0, "%s: a temp file was left behind", name);
    cs_model_free(a);
    cs_model_free(b);
}

static void test_save_load_small(void) { roundtrip(build_small, 11, "small_rt.h5"); }
static void test_save_load_fmnist(void) { roundtrip(cs_model_build_fmnist, 12, "fmnist_rt.h5"); }

/* The notebook's model as Keras' model.save_weights() writes it. */
static void test_import_fmnist(void)
{
    char err[256] = "";
    cs_model *m = cs_model_build_fmnist();
    tw_file f;
    tw_from_model(&f, m, 6000, 0);
    int bn2 = cs_model_find_layer(m, "batch_normalization_2");
    f.l[bn2].data[2][17] = 0.375f;  /* moving_mean[17] */
    f.l[bn2].data[3][63] = 2.5f;    /* moving_variance[63] */
    f.l[bn2].data[0][0] = -1.75f;   /* gamma[0] */
    int c2 = cs_model_find_layer(m, "conv2d_2");
    f.l[c2].data[0][((1 * 3 + 2) * 32 + 31) * 64 + 10] = 9.5f; /* kernel[1][2][31][10] */
    tw_write(test_scratch_path("fmnist.h5"), &f, 0);
    int rc = cs_keras_h5_load(m, test_scratch_path("fmnist.h5"), err, sizeof err);
    CHECK(rc == 0, "load failed: %s", err);
    CHECK(params_equal_file(m, &f), "parameters differ from the file");
    const cs_layer *bn = &m->layers[bn2];
    CHECK(!strcmp(bn->params[2].name, "moving_mean") && bn->params[2].data[17] == 0.375f, "moving_mean misplaced");
    CHECK(!strcmp(bn->params[3].name, "moving_variance") && bn->params[3].data[63] == 2.5f,
          "moving_variance misplaced");
    CHECK(bn->params[0].data[0] == -1.75f, "gamma misplaced");
    CHECK(m->layers[c2].params[0].data[((1 * 3 + 2) * 32 + 31) * 64 + 10] == 9.5f, "conv2d_2 kernel misplaced");
    /* The imported model runs and gives probabilities. */
    float *y = forward(m, 2);
    double s = 0;
    for (int i = 0; i < 10; i++)
        s += y[i];
    CHECK_NEAR(s, 1.0, 1e-5, "softmax sum");
    free(y);
    tw_free(&f);
    cs_model_free(m);
}

int main(void)
{
    tmpdir = test_scratch_dir("keras-h5");
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    RUN(test_damaged_superblock);
    RUN(test_load_keras2_layout);
    RUN(test_load_other_layouts);
    RUN(test_wrong_shape_refused);
    RUN(test_missing_layer_refused);
    RUN(test_positional_match);
    RUN(test_bad_files);
    RUN(test_save_load_small);
    RUN(test_save_load_fmnist);
    RUN(test_import_fmnist);
    return test_summary("keras_h5");
}
