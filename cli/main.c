/*
 * main.c - the `convscope` command line: serve, train, eval, predict, export, import,
 * run (run.c), explain (explain.c).
 *
 * Every command is a thin shell over core/ (and server/ for `serve`): it parses
 * flags, calls the library, and turns a library error into one line on stderr and
 * exit status 1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bf16_plan.h"
#include "blas.h"
#include "commands.h"
#include "dataset.h"
#include "exec.h"
#include "image.h"
#include "keras_h5.h"
#include "keras_model.h"
#include "model_file.h"
#include "onnx_export.h"
#include "preprocess.h"
#include "sidecar.h"
#include "model_load.h"
#include "serve.h"
#include "train.h"

static const char *USAGE =
    "usage: convscope COMMAND [options]\n"
    "  serve   [--listen 127.0.0.1:8080] [--models DIR] [--data DIR] [--threads N]\n"
    "          [--max-upload BYTES] [--token TOKEN] [--vgg16-weights FILE]\n"
    "  train   [--epochs 20] [--batch 128] [--lr 0.001] [--seed N] [--limit N] [--data DIR] [--out FILE]\n"
    "  eval    --model FILE [--data DIR] [--precision fp32|bf16]\n"
    "  predict --model FILE [--top K] [--precision fp32|bf16] IMAGE\n"
    "  export  --model FILE --out MODEL.onnx|WEIGHTS.h5\n"
    "  import  --in WEIGHTS.h5|MODEL.h5|MODEL.keras|MODEL.onnx --out FILE\n"
    "  run     --model FILE [--input NAME=FILE.pb|FILE.npy]... [--output-dir DIR] [--node NAME]...\n"
    "          [--format pb|npy] [--precision fp32|bf16]\n" CS_EXPLAIN_USAGE;

int cs_cmd_run(int argc, char **argv); /* run.c */

/* Looks up "--name value" in argv; returns the value or the fallback. */
static const char *flag(int argc, char **argv, const char *name, const char *fallback)
{
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0) return argv[i + 1];
    return fallback;
}

/* The first argument that is neither a flag nor a flag's value. */
static const char *positional(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strncmp(argv[i], "--", 2) == 0) {
            i++;
            continue;
        }
        return argv[i];
    }
    return NULL;
}

/* The data folder: --data, else CONVSCOPE_DATA (as `serve` reads it), else Debian's. */
static const char *data_dir_default(void)
{
    const char *env = getenv("CONVSCOPE_DATA");
    return env && *env ? env : CS_DEFAULT_DATA_DIR;
}

static int fail(const char *what, const char *err)
{
    fprintf(stderr, "convscope: %s%s%s\n", what, *err ? ": " : "", err);
    return 1;
}

static void print_progress(const cs_progress *p, const cs_epoch_record *done, void *user)
{
    (void)user;
    if (done) {
        fprintf(stderr, "\repoch %d/%d  loss %.4f  accuracy %.4f  test loss %.4f  test accuracy %.4f  %.1fs\n",
                done->epoch, p->epochs, done->loss, done->accuracy, done->test_loss, done->test_accuracy,
                done->seconds);
    } else if (isatty(STDERR_FILENO) && (p->batch % 20 == 0 || p->batch == p->batches)) {
        fprintf(stderr, "\repoch %d/%d  batch %d/%d  loss %.4f  accuracy %.4f", p->epoch, p->epochs, p->batch,
                p->batches, p->loss, p->accuracy);
    }
}

static int cmd_train(int argc, char **argv)
{
    cs_train_config cfg;
    cs_train_config_default(&cfg);
    cfg.epochs = atoi(flag(argc, argv, "--epochs", "20"));
    cfg.batch_size = atoi(flag(argc, argv, "--batch", "128"));
    cfg.learning_rate = (float)atof(flag(argc, argv, "--lr", "0.001"));
    cfg.seed = strtoull(flag(argc, argv, "--seed", "1"), NULL, 10);
    cfg.train_limit = atoi(flag(argc, argv, "--limit", "0"));
    const char *dir = flag(argc, argv, "--data", data_dir_default());
    const char *out = flag(argc, argv, "--out", "models/fmnist.csm");
    char err[512] = "";
    cs_dataset train = {0}, test = {0};
    if (cs_dataset_load(dir, "train", &train, err, sizeof err) != 0) return fail("cannot read the training set", err);
    if (cs_dataset_load(dir, "test", &test, err, sizeof err) != 0) {
        cs_dataset_free(&train);
        return fail("cannot read the test set", err);
    }
    cs_model *m = cs_model_build_fmnist();
    int rc = 1;
    if (!m) {
        fail("out of memory", "");
        goto done;
    }
    fprintf(stderr, "training %s: %d epochs, batch %d, learning rate %g, seed %llu, %d images, OpenBLAS %s\n",
            m->arch, cfg.epochs, cfg.batch_size, cfg.learning_rate, (unsigned long long)cfg.seed,
            cfg.train_limit > 0 && cfg.train_limit < train.n ? cfg.train_limit : train.n, cs_blas_core());
    if (cs_train(m, &train, &test, &cfg, print_progress, NULL, NULL, err, sizeof err) != 0) {
        fail("training failed", err);
        goto done;
    }
    if (cs_model_save(m, out, err, sizeof err) != 0) {
        fail("cannot save the model", err);
        goto done;
    }
    printf("accuracy %.4f\nsaved %s\n", m->meta.test_accuracy, out);
    rc = 0;
done:
    cs_model_free(m);
    cs_dataset_free(&train);
    cs_dataset_free(&test);
    return rc;
}

int cs_cli_precision(cs_model *m, const char *value)
{
    cs_precision p;
    char err[400];
    if (!value) return 0;
    if (cs_precision_parse(value, &p, err, sizeof err) != 0) {
        fprintf(stderr, "convscope: --precision: %s\n", err);
        return -1;
    }
    if (cs_model_set_precision(m, p, err, sizeof err) != 0) {
        fprintf(stderr, "convscope: --precision %s: %s\n", value, err);
        return -1;
    }
    return 0;
}

static cs_model *load_model_flag(int argc, char **argv, char *err, size_t errlen)
{
    const char *path = flag(argc, argv, "--model", NULL);
    if (!path) {
        snprintf(err, errlen, "--model FILE is required");
        return NULL;
    }
    return cs_model_load_any(path, err, errlen);
}

static int cmd_eval(int argc, char **argv)
{
    char err[512] = "";
    cs_model *m = load_model_flag(argc, argv, err, sizeof err);
    if (!m) return fail("cannot load the model", err);
    if (cs_cli_precision(m, flag(argc, argv, "--precision", NULL)) != 0) {
        cs_model_free(m);
        return 1;
    }
    cs_dataset test = {0};
    if (cs_dataset_load(flag(argc, argv, "--data", data_dir_default()), "test", &test, err, sizeof err) != 0) {
        cs_model_free(m);
        return fail("cannot read the test set", err);
    }
    double acc = cs_evaluate(m, &test, 0);
    if (acc < 0) {
        snprintf(err, sizeof err, "model input %dx%dx%d with %d classes: the test set has %dx%d gray images of 10 classes",
                 m->input.h, m->input.w, m->input.c, m->layers[m->n_layers - 1].out.c, test.h, test.w);
        cs_dataset_free(&test);
        cs_model_free(m);
        return fail("cannot evaluate", err);
    }
    printf("accuracy %.4f\n", acc);
    cs_dataset_free(&test);
    cs_model_free(m);
    return acc < 0;
}

static int read_file(const char *path, uint8_t **buf, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "cannot open %s", path);
        return -1;
    }
    size_t cap = 1 << 16, n = 0;
    uint8_t *b = malloc(cap);
    for (size_t got; b && (got = fread(b + n, 1, cap - n, f)) > 0;) {
        n += got;
        if (n == cap) {
            uint8_t *grown = realloc(b, cap *= 2);
            if (!grown) free(b);
            b = grown;
        }
    }
    fclose(f);
    if (!b) {
        snprintf(err, errlen, "out of memory reading %s", path);
        return -1;
    }
    *buf = b;
    *len = n;
    return 0;
}

static void print_top(const cs_model *m, const float *p, int top)
{
    int k = m->layers[m->n_layers - 1].out.c, shown[64] = {0};
    for (int r = 0; r < top && r < k && r < 64; r++) {
        int best = -1; /* repeated selection: top is small */
        for (int j = 0; j < k; j++) {
            int taken = 0;
            for (int q = 0; q < r; q++) taken |= shown[q] == j;
            if (!taken && (best < 0 || p[j] > p[best])) best = j;
        }
        shown[r] = best;
        printf("%d  %-12s  %.4f\n", best, m->class_names ? m->class_names[best] : "", p[best]);
    }
}

static int cmd_predict(int argc, char **argv)
{
    char err[512] = "";
    const char *path = positional(argc, argv);
    if (!path) return fail("predict needs an IMAGE", "");
    int top = atoi(flag(argc, argv, "--top", "3"));
    cs_model *m = load_model_flag(argc, argv, err, sizeof err);
    if (!m) return fail("cannot load the model", err);
    /* Its labels and preprocessing, from NAME.json beside the file as the service reads it. */
    char side[1100];
    const char *model_path = flag(argc, argv, "--model", "");
    const char *slash = strrchr(model_path, '/'), *dot = strrchr(model_path, '.');
    int base = dot && (!slash || dot > slash) ? (int)(dot - model_path) : (int)strlen(model_path);
    snprintf(side, sizeof side, "%.*s.json", base, model_path);
    cs_sidecar_info info;
    if (cs_sidecar_apply_file(m, side, &info, err, sizeof err) != 0) {
        cs_model_free(m);
        return fail("cannot read the model's sidecar", err);
    }
    /* --precision, else the sidecar's. */
    if (cs_cli_precision(m, flag(argc, argv, "--precision", info.precision[0] ? info.precision : NULL)) != 0) {
        cs_model_free(m);
        return 1;
    }
    uint8_t *bytes = NULL;
    size_t len = 0;
    cs_image img = {0};
    float *x = malloc(cs_shape_size(m->input) * sizeof(float));
    cs_exec *e = cs_exec_new(m, 1);
    int rc = 1;
    if (!x || !e) {
        fail("out of memory", "");
        goto done;
    }
    if (read_file(path, &bytes, &len, err, sizeof err) != 0) {
        fail("cannot read the image", err);
        goto done;
    }
    if (cs_image_decode(bytes, len, (size_t)1 << 28, &img, err, sizeof err) != CS_IMG_OK) {
        fail("cannot decode the image", err);
        goto done;
    }
    if (cs_preprocess_model(m, &img, x, err, sizeof err) != 0) {
        fail("cannot prepare the image", err);
        goto done;
    }
    if (cs_exec_predict(e, x, 1) != 0) {
        fprintf(stderr, "out of memory\n");
        goto done;
    }
    print_top(m, e->act[m->n_layers - 1], top);
    rc = 0;
done:
    cs_image_free(&img);
    free(bytes);
    free(x);
    cs_exec_free(e);
    cs_model_free(m);
    return rc;
}

/* An ONNX model (.onnx) or Keras 2 weights (anything else), by the output's extension. */
static int cmd_export(int argc, char **argv)
{
    char err[512] = "";
    const char *out = flag(argc, argv, "--out", NULL);
    if (!out) return fail("export needs --out MODEL.onnx|WEIGHTS.h5", "");
    cs_model *m = load_model_flag(argc, argv, err, sizeof err);
    if (!m) return fail("cannot load the model", err);
    int onnx = cs_model_is_import(out);
    int rc = (onnx ? cs_onnx_export(m, out, err, sizeof err) : cs_keras_h5_save(m, out, err, sizeof err)) == 0
                 ? 0
                 : fail("cannot export", err);
    if (rc == 0) printf("exported %s\n", out);
    cs_model_free(m);
    return rc;
}

static int cmd_import(int argc, char **argv)
{
    char err[512] = "";
    const char *in = flag(argc, argv, "--in", NULL), *out = flag(argc, argv, "--out", NULL);
    if (!in || !out) return fail("import needs --in WEIGHTS.h5|MODEL.h5|MODEL.keras|MODEL.onnx --out FILE", "");
    /* ONNX files and Keras full models bring their architecture; Keras weights alone
     * (save_weights()) fill the notebook's network. */
    const char *ext = cs_model_import_ext(in);
    int h5 = ext && (!strcmp(ext, ".h5") || !strcmp(ext, ".hdf5"));
    int whole = ext && (!h5 || cs_keras_h5_is_model(in));
    cs_model *m = whole ? cs_model_load_any(in, err, sizeof err) : cs_model_build_fmnist();
    if (!m) return fail(whole ? "cannot import" : "out of memory", err);
    int rc = 1;
    if (!whole && cs_keras_h5_load(m, in, err, sizeof err) != 0) fail("cannot import", err);
    else if (cs_model_save(m, out, err, sizeof err) != 0) fail("cannot save the model", err);
    else {
        printf("imported %s -> %s\n", in, out);
        rc = 0;
    }
    cs_model_free(m);
    return rc;
}

int main(int argc, char **argv)
{
    if (cs_blas_init(argc, argv) != 0) {
        fprintf(stderr, "convscope: OpenBLAS (%s) computes wrong results on this machine; set OPENBLAS_CORETYPE\n",
                cs_blas_core());
        return 1;
    }
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0) {
        fputs(USAGE, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *cmd = argv[1];
    argc--, argv++; /* argv[0] is now the command */
    if (strcmp(cmd, "serve") == 0) return cs_serve_main(argc, argv);
    if (strcmp(cmd, "train") == 0) return cmd_train(argc, argv);
    if (strcmp(cmd, "eval") == 0) return cmd_eval(argc, argv);
    if (strcmp(cmd, "predict") == 0) return cmd_predict(argc, argv);
    if (strcmp(cmd, "export") == 0) return cmd_export(argc, argv);
    if (strcmp(cmd, "import") == 0) return cmd_import(argc, argv);
    if (strcmp(cmd, "run") == 0) return cs_cmd_run(argc, argv);
    if (strcmp(cmd, "explain") == 0) return cs_cmd_explain(argc, argv);
    fprintf(stderr, "convscope: unknown command '%s'\n%s", cmd, USAGE);
    return 2;
}
