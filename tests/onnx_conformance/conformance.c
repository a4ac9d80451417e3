/*
 * conformance.c - ONNX's own operator tests (Debian's libonnx-testdata) run through
 * the importer and the executor.
 *
 * Each test is a folder with a model.onnx of one node (or a few, for the PyTorch
 * ones) and test_data_set_N folders holding input_K.pb and output_K.pb TensorProto files.
 * A test whose op types the importer does not know is out of scope; one in scope
 * that the importer refuses (an attribute, a shape, an element type or an opset it
 * does not support) is skipped with the importer's reason; the others must give
 * every expected output, dims equal and values within ONNX's own backend tolerance
 * (|got - want| <= 1e-7 + 1e-3 |want|), or fail naming the test.
 *
 * Prints "FAIL suite/test: why" lines and the "[onnx-conformance] N ok, M failed"
 * summary on stdout, every skipped test with its reason on stderr; with --report FILE
 * also writes every test's result as a Markdown table.
 * Usage: onnx_conformance [--data DIR] [--only SUBSTRING] [--report FILE]
 */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "onnx.pb-c.h"
#include "onnx_import.h"
#include "onnx_run.h"
#include "onnx_tensor.h"

#define RTOL 1e-3
#define ATOL 1e-7
#define MAX_IO 16

static const char *const SUITES[] = {"node", "pytorch-converted", "pytorch-operator"};

enum { PASS, FAIL, SKIP, OUT_OF_SCOPE };
static const char *const RESULT[] = {"pass", "FAIL", "skipped", "op not supported"};

typedef struct {
    int n_ops;
    char ops[256];                /* the op types, comma separated, for the report */
    int n_in, n_out;
    char *in[MAX_IO], *out[MAX_IO]; /* graph inputs (not initializers) and outputs */
} model_info;

static void info_free(model_info *mi)
{
    for (int k = 0; k < mi->n_in; k++) free(mi->in[k]);
    for (int k = 0; k < mi->n_out; k++) free(mi->out[k]);
}

static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    struct stat st;
    unsigned char *buf = NULL;
    if (fstat(fileno(f), &st) == 0 && (buf = malloc((size_t)st.st_size + 1)))
        *len = fread(buf, 1, (size_t)st.st_size, f);
    fclose(f);
    return buf;
}

/* The model's op types and its inputs and outputs; an op the importer does not know
 * in *why. 0 in scope, 1 out of scope, -1 unreadable. */
static int model_scope(const char *path, model_info *mi, char *why, size_t whylen)
{
    memset(mi, 0, sizeof *mi);
    size_t len = 0;
    unsigned char *buf = slurp(path, &len);
    Onnx__ModelProto *m = buf ? onnx__model_proto__unpack(NULL, len, buf) : NULL;
    free(buf);
    if (!m || !m->graph) {
        snprintf(why, whylen, "model.onnx cannot be decoded");
        if (m) onnx__model_proto__free_unpacked(m, NULL);
        return -1;
    }
    const Onnx__GraphProto *g = m->graph;
    int rc = 0;
    for (size_t k = 0; k < g->n_node; k++) {
        const char *op = g->node[k]->op_type ? g->node[k]->op_type : "";
        const char *dom = g->node[k]->domain ? g->node[k]->domain : "";
        if (!strstr(mi->ops, op)) /* a short list; a repeated op is said once */
            snprintf(mi->ops + strlen(mi->ops), sizeof mi->ops - strlen(mi->ops), "%s%s", mi->ops[0] ? ", " : "", op);
        mi->n_ops++;
        /* Constant nodes are folded into initializers by the reader. */
        int known = (!*dom || !strcmp(dom, "ai.onnx")) && (cs_onnx_op_supported(op) || !strcmp(op, "Constant"));
        if (!known && rc == 0) {
            snprintf(why, whylen, "op %s%s%s is not supported", *dom ? dom : "", *dom ? "." : "", op);
            rc = 1;
        }
    }
    for (size_t k = 0; k < g->n_input && mi->n_in < MAX_IO; k++) {
        int init = 0;
        for (size_t j = 0; j < g->n_initializer; j++)
            init |= g->initializer[j]->name && !strcmp(g->initializer[j]->name, g->input[k]->name);
        if (!init) mi->in[mi->n_in++] = strdup(g->input[k]->name);
    }
    for (size_t k = 0; k < g->n_output && mi->n_out < MAX_IO; k++) mi->out[mi->n_out++] = strdup(g->output[k]->name);
    onnx__model_proto__free_unpacked(m, NULL);
    return rc;
}

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Expected against computed: dims equal, values within tolerance (NaN matches NaN). */
static int compare(const cs_onnx_tensor *want, const cs_onnx_tensor *got, const char *name, char *why, size_t whylen)
{
    int same = want->ndim == got->ndim;
    for (int d = 0; same && d < want->ndim; d++) same = want->dims[d] == got->dims[d];
    if (!same || want->count != got->count) {
        snprintf(why, whylen, "output '%s': %d dims, %lld values expected; got %d dims, %lld values", name, want->ndim,
                 (long long)want->count, got->ndim, (long long)got->count);
        return -1;
    }
    for (int64_t k = 0; k < want->count; k++) {
        double w = want->f[k], g = got->f[k];
        if ((isnan(w) && isnan(g)) || (w == g)) continue;
        if (!(fabs(g - w) <= ATOL + RTOL * fabs(w))) {
            snprintf(why, whylen, "output '%s' value %lld: expected %.8g, got %.8g", name, (long long)k, w, g);
            return -1;
        }
    }
    return 0;
}

/* One data set: inputs bound or fed, outputs compared. */
static int run_set(const char *test, const char *set, const model_info *mi, char *why, size_t whylen)
{
    cs_onnx_tensor in[MAX_IO], want[MAX_IO], got[MAX_IO];
    memset(in, 0, sizeof in);
    memset(want, 0, sizeof want);
    memset(got, 0, sizeof got);
    cs_onnx_binding bind[MAX_IO];
    int n_in = 0, n_want = 0, result = SKIP;
    char path[2048], err[512];
    for (; n_in < MAX_IO; n_in++) {
        snprintf(path, sizeof path, "%s/%s/input_%d.pb", test, set, n_in);
        if (!exists(path)) break;
        if (n_in >= mi->n_in) {
            snprintf(why, whylen, "input_%d.pb is more inputs than the model has (%d)", n_in, mi->n_in);
            goto done;
        }
        if (cs_onnx_tensor_read_any(path, mi->in[n_in], &in[n_in], err, sizeof err) != 0) {
            snprintf(why, whylen, "input %d: %s", n_in, strstr(err, ": ") ? strstr(err, ": ") + 2 : err);
            goto done;
        }
        bind[n_in] = (cs_onnx_binding){mi->in[n_in], &in[n_in]};
    }
    snprintf(path, sizeof path, "%s/model.onnx", test);
    cs_onnx_signature sig;
    cs_model *m = cs_onnx_import_run(path, bind, n_in, &sig, err, sizeof err);
    if (!m) { /* the reason without the file's path */
        size_t pl = strlen(path);
        snprintf(why, whylen, "%s", strncmp(err, path, pl) || strncmp(err + pl, ": ", 2) ? err : err + pl + 2);
        goto done;
    }
    /* What stays an input is fed; what became a constant is not. */
    cs_onnx_tensor fed[MAX_IO];
    int n_fed = 0;
    for (int k = 0; k < n_in; k++)
        for (int j = 0; j < sig.n_inputs; j++)
            if (!strcmp(sig.inputs[j].name, in[k].name)) fed[n_fed++] = in[k];
    result = FAIL;
    if (cs_onnx_run(m, &sig, fed, n_fed, NULL, 0, got, err, sizeof err) != 0) {
        snprintf(why, whylen, "run: %s", err);
    } else {
        result = PASS;
        for (; n_want < sig.n_outputs && result == PASS; n_want++) {
            snprintf(path, sizeof path, "%s/%s/output_%d.pb", test, set, n_want);
            if (cs_onnx_tensor_read(path, &want[n_want], err, sizeof err) != 0 || want[n_want].elem_type != CS_ONNX_FLOAT) {
                snprintf(why, whylen, "expected output %d: %s", n_want, *err ? err : "not FLOAT");
                result = FAIL;
            } else if (compare(&want[n_want], &got[n_want], sig.outputs[n_want].name, why, whylen) != 0) {
                result = FAIL;
            }
        }
    }
    for (int k = 0; k < sig.n_outputs; k++) cs_onnx_tensor_clear(&got[k]);
    cs_onnx_signature_free(&sig);
    cs_model_free(m);
done:
    for (int k = 0; k < MAX_IO; k++) {
        cs_onnx_tensor_clear(&in[k]);
        cs_onnx_tensor_clear(&want[k]);
    }
    return result;
}

static int by_name(const struct dirent **a, const struct dirent **b) { return strcmp((*a)->d_name, (*b)->d_name); }

static int run_test(const char *test, model_info *mi, char *why, size_t whylen)
{
    char path[2048];
    snprintf(path, sizeof path, "%s/model.onnx", test);
    int scope = model_scope(path, mi, why, whylen);
    if (scope != 0) return scope > 0 ? OUT_OF_SCOPE : FAIL;
    struct dirent **sets;
    int n = scandir(test, &sets, NULL, by_name), result = PASS, any = 0;
    for (int k = 0; k < n; k++) {
        if (result == PASS && !strncmp(sets[k]->d_name, "test_data_set_", 14)) {
            any = 1;
            result = run_set(test, sets[k]->d_name, mi, why, whylen);
        }
        free(sets[k]);
    }
    if (n >= 0) free(sets);
    if (!any && result == PASS) {
        snprintf(why, whylen, "no test_data_set_* folder");
        result = FAIL;
    }
    return result;
}

int main(int argc, char **argv)
{
    const char *root = getenv("CONVSCOPE_ONNX_TESTDATA"), *only = NULL, *report = NULL;
    if (!root || !*root) root = "/usr/share/libonnx-testdata/data";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--data")) root = argv[i + 1];
        else if (!strcmp(argv[i], "--only")) only = argv[i + 1];
        else if (!strcmp(argv[i], "--report")) report = argv[i + 1];
    }
    FILE *rep = report ? fopen(report, "w") : NULL;
    if (report && !rep) {
        fprintf(stderr, "onnx_conformance: cannot write %s\n", report);
        return 99;
    }
    if (rep)
        fprintf(rep, "| test | ops | result | why |\n|---|---|---|---|\n");
    int count[4] = {0}, suites = 0;
    for (size_t s = 0; s < sizeof SUITES / sizeof SUITES[0]; s++) {
        char dir[1024];
        snprintf(dir, sizeof dir, "%s/%s", root, SUITES[s]);
        struct dirent **tests;
        int n = scandir(dir, &tests, NULL, by_name);
        if (n < 0) continue;
        suites++;
        for (int k = 0; k < n; k++) {
            const char *name = tests[k]->d_name;
            char test[1400], why[768] = "";
            snprintf(test, sizeof test, "%s/%s", dir, name);
            if (name[0] != '.' && (!only || strstr(name, only))) {
                model_info mi;
                int r = run_test(test, &mi, why, sizeof why);
                count[r]++;
                if (r == FAIL) printf("FAIL %s/%s: %s\n", SUITES[s], name, why);
                if (r == SKIP) fprintf(stderr, "skipped %s/%s: %s\n", SUITES[s], name, why);
                if (rep)
                    fprintf(rep, "| %s/%s | %s | %s | %s |\n", SUITES[s], name, mi.ops, RESULT[r],
                            r == PASS ? "" : why);
                info_free(&mi);
            }
            free(tests[k]);
        }
        free(tests);
    }
    if (rep) fclose(rep);
    if (!suites) {
        fprintf(stderr, "onnx_conformance: no test suites under %s (Debian's libonnx-testdata)\n", root);
        return 99;
    }
    int in_scope = count[PASS] + count[FAIL] + count[SKIP];
    fprintf(stderr, "ONNX conformance: %d of %d operator tests for supported ops pass, %d skipped; %d tests use an op "
                    "that is not supported\n", count[PASS], in_scope, count[SKIP], count[OUT_OF_SCOPE]);
    printf("[onnx-conformance] %d skipped (an attribute, shape, type or opset not supported), %d need an op that "
           "is not supported\n", count[SKIP], count[OUT_OF_SCOPE]);
    printf("[onnx-conformance] %d ok, %d failed\n", count[PASS], count[FAIL]);
    return count[FAIL] ? 1 : 0;
}
