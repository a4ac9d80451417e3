/*
 * run.c - `convscope run`: any model convscope loads, run on tensors from files.
 *
 *   convscope run --model FILE [--input NAME=FILE]... [--output-dir DIR] [--node NAME]...
 *                 [--format pb|npy]
 *
 * Inputs are ONNX TensorProto files (.pb) or NumPy files (.npy). An ONNX model takes
 * them as its graph declares them (NCHW), and an input that only a weight, a bias or a
 * shape reads may be given too (ONNX's operator tests do): it becomes a constant. A
 * convscope model takes its one input, "input", as (N, H, W, C). Every graph output is
 * written to DIR (default .) as NAME.pb or NAME.npy (the inputs' format unless
 * --format says), and each --node NAME's output beside it, (N, C, H, W) for an ONNX
 * model, else (N, H, W, C). Shapes and types are checked against the model's inputs:
 * one error line and exit status 1 for anything that does not fit.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "model_load.h"
#include "npy.h"
#include "onnx_import.h"
#include "onnx_run.h"
#include "onnx_tensor.h"

#define MAX_FILES 32

static int fail(const char *what, const char *err)
{
    fprintf(stderr, "convscope: %s%s%s\n", what, *err ? ": " : "", err);
    return 1;
}

static int has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* DIR/NAME.EXT with the characters of NAME a file name should not hold as '_'. */
static void out_path(char *buf, size_t len, const char *dir, const char *name, const char *ext)
{
    int at = snprintf(buf, len, "%s/", dir);
    for (const char *c = name; *c && at + 1 < (int)len; c++)
        buf[at++] = (strchr("/\\:*?\"<>| ", *c) || *c < 32) ? '_' : *c;
    buf[at < (int)len ? at : (int)len - 1] = 0;
    snprintf(buf + strlen(buf), len - strlen(buf), ".%s", ext);
}

static int write_tensor(const char *dir, const cs_onnx_tensor *t, int npy, char *err, size_t errlen)
{
    char path[1024];
    out_path(path, sizeof path, dir, t->name, npy ? "npy" : "pb");
    int rc = npy ? cs_npy_write(path, t->f, t->ndim, t->dims, err, errlen)
                 : cs_onnx_tensor_write(path, t->name, t->f, t->ndim, t->dims, err, errlen);
    if (rc == 0) {
        printf("%s", path);
        for (int d = 0; d < t->ndim; d++) printf(d ? "x%lld" : " %lld", (long long)t->dims[d]);
        printf("\n");
    }
    return rc;
}

int cs_cmd_run(int argc, char **argv)
{
    const char *model = NULL, *dir = ".", *format = NULL, *precision = NULL;
    const char *names[MAX_FILES], *files[MAX_FILES], *node_names[MAX_FILES];
    int n_files = 0, n_nodes = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) return fail("run: a value is missing after", a);
        i++;
        if (!strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--output-dir")) dir = v;
        else if (!strcmp(a, "--format")) format = v;
        else if (!strcmp(a, "--precision")) precision = v;
        else if (!strcmp(a, "--node")) {
            if (n_nodes == MAX_FILES) return fail("run: too many --node flags", "");
            node_names[n_nodes++] = v;
        } else if (!strcmp(a, "--input")) {
            const char *eq = strchr(v, '=');
            if (!eq || eq == v || !eq[1]) return fail("run: --input takes NAME=FILE, not", v);
            if (n_files == MAX_FILES) return fail("run: too many --input flags", "");
            names[n_files] = v;
            files[n_files++] = eq + 1;
        } else {
            return fail("run: unknown flag", a);
        }
    }
    if (!model) return fail("run needs --model FILE", "");
    if (format && strcmp(format, "pb") && strcmp(format, "npy")) return fail("run: --format is pb or npy, not", format);
    int npy = format ? !strcmp(format, "npy") : n_files > 0 && has_suffix(files[0], ".npy");

    char err[768] = "";
    int rc = 1, n_read = 0;
    cs_onnx_tensor in[MAX_FILES], out[2 * MAX_FILES + 16];
    cs_onnx_binding bind[MAX_FILES];
    cs_onnx_signature sig = {0};
    cs_model *m = NULL;
    int nodes[MAX_FILES], n_out = 0;
    memset(out, 0, sizeof out);
    for (; n_read < n_files; n_read++) {
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)(files[n_read] - 1 - names[n_read]), names[n_read]);
        if (cs_onnx_tensor_read_any(files[n_read], name, &in[n_read], err, sizeof err) != 0) {
            fail("cannot read an input", err);
            goto done;
        }
        bind[n_read] = (cs_onnx_binding){in[n_read].name, &in[n_read]};
    }
    if (cs_model_is_import(model)) {
        m = cs_onnx_import_run(model, bind, n_files, &sig, err, sizeof err);
        if (!m) {
            char why[768];
            snprintf(why, sizeof why, "%s: %s", model, err);
            fail("cannot load the model", why);
            goto done;
        }
    } else {
        if (!(m = cs_model_load_any(model, err, sizeof err))) {
            fail("cannot load the model", err);
            goto done;
        }
        if (cs_model_signature(m, &sig) != 0) {
            fail("cannot run the model", "it takes several inputs, or has no node");
            goto done;
        }
    }
    if (cs_cli_precision(m, precision) != 0) goto done;
    for (int j = 0; j < n_nodes; j++)
        if ((nodes[j] = cs_model_find_layer(m, node_names[j])) < 0) {
            fail("run: the model has no node", node_names[j]);
            goto done;
        }
    if (sig.n_outputs + n_nodes > (int)(sizeof out / sizeof out[0])) {
        fail("run: the model has too many outputs", "");
        goto done;
    }
    /* Inputs that became constants are not fed again. */
    cs_onnx_tensor fed[MAX_FILES];
    int n_fed = 0;
    for (int k = 0; k < n_files; k++) {
        int bound = cs_model_is_import(model);
        for (int j = 0; j < sig.n_inputs; j++) bound &= strcmp(sig.inputs[j].name, in[k].name) != 0;
        if (!bound) fed[n_fed++] = in[k];
    }
    if (cs_onnx_run(m, &sig, fed, n_fed, nodes, n_nodes, out, err, sizeof err) != 0) {
        fail("cannot run the model", err);
        goto done;
    }
    n_out = sig.n_outputs + n_nodes;
    for (int k = 0; k < n_out; k++)
        if (write_tensor(dir, &out[k], npy, err, sizeof err) != 0) {
            fail("cannot write an output", err);
            goto done;
        }
    rc = 0;
done:
    for (int k = 0; k < (int)(sizeof out / sizeof out[0]); k++) cs_onnx_tensor_clear(&out[k]);
    for (int k = 0; k < n_read; k++) cs_onnx_tensor_clear(&in[k]);
    cs_onnx_signature_free(&sig);
    cs_model_free(m);
    return rc;
}
