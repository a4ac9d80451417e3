/*
 * onnx_models.c - convscope's forward and Grad-CAM time on model files (ONNX, .csm),
 * printed the way bench/ort_bench.mjs prints ONNX Runtime's so the two sit side by
 * side (bench/ort_compare.mjs runs both in turns and prints the ratios):
 *   convscope <model> <threads> threads: X ms (best Y ms), grad-cam Z ms, G GFLOP/s
 * with "batch B" before the threads for batches other than 1 (and images/s after).
 * The forward pass is a prediction's (cs_exec_predict: only the output is kept, as
 * ONNX Runtime keeps it). Inputs are filled as ort_bench.mjs fills them; for each
 * thread count, warm-up passes and then the median of --runs timed ones (the best beside it: other work on a shared
 * machine only ever slows a run down). GFLOP/s count 2 per multiply-add of the conv and
 * dense layers. --modes runs each fast-path mode in turns (fast_plan.h: plain is the
 * training kernels, direct oneDNN's direct convolutions, auto what inference runs).
 * Where the exporter left PyTorch's logits beside a model (NAME.input.npy and
 * NAME.logits.npy, bench/export_torchvision.py), the logits are compared first:
 *   convscope <model>: logits within X of PyTorch's
 * --peak prints the machine's FMA peak first (bench/fma_peak.h); --json prints one JSON
 * object per measurement instead of the lines; --layers adds where the time goes, per
 * kind of node. --precision bf16 runs the models' inference in bf16 (bf16_plan.h), or
 * stops when this CPU cannot.
 * Usage: build/bench/onnx_models [--threads 1,2] [--batch N] [--runs N] [--warmup N]
 *        [--modes auto] [--no-gradcam] [--layers] [--peak] [--json] [--precision bf16] MODEL...
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bf16_plan.h"
#include "blas.h"
#include "clock.h"
#include "exec.h"
#include "fast_plan.h"
#include "fma_peak.h"
#include "gradcam.h"
#include "model_load.h"
#include "npy.h"
#include "parallel.h"

enum { MAX_RUNS = 1000, MAX_THREADS = 16 };

static struct {
    int threads[MAX_THREADS], n_threads;
    int batch, runs, warmup, gradcam, json, layers;
    cs_precision precision;
    cs_fast_mode modes[3];
    int n_modes;
} opt = {.threads = {1, 2}, .n_threads = 2, .batch = 1, .runs = 20, .warmup = 3, .gradcam = 1,
         .modes = {CS_FAST_AUTO}, .n_modes = 1};

static const char *const MODE_NAME[] = {[CS_FAST_OFF] = "plain", [CS_FAST_DIRECT] = "direct", [CS_FAST_AUTO] = "auto"};

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Multiply-adds x 2 of one image: every kernel weight of a conv or dense node meets
 * each of the node's output positions once. */
static double model_flops(const cs_model *m)
{
    double f = 0;
    for (int i = 0; i < m->n_layers; i++) {
        const cs_layer *l = &m->layers[i];
        if (l->kind != CS_CONV2D && l->kind != CS_DEPTHWISE_CONV2D && l->kind != CS_SEPARABLE_CONV2D &&
            l->kind != CS_DENSE)
            continue;
        for (int p = 0; p < l->n_params; p++)
            if (l->params[p].ndim >= 2) f += 2.0 * (double)l->params[p].size * l->out.h * l->out.w;
    }
    return f;
}

static cs_model *load_or_die(const char *path)
{
    char err[512];
    cs_model *m = cs_model_load_any(path, err, sizeof err);
    if (!m) {
        fprintf(stderr, "onnx_models: %s\n", err);
        exit(1);
    }
    return m;
}

/* Where a forward pass's time goes, per kind of node, in each mode: the exec's
 * profile over --runs more passes (the modes in turns), as a share of the whole. */
static void print_layers(cs_exec *e, const float *x, int n)
{
    const cs_model *m = e->model;
    double *prof = calloc((size_t)2 * m->n_layers * opt.n_modes, sizeof(double));
    if (!prof) return;
    for (int r = 0; r < opt.runs; r++)
        for (int md = 0; md < opt.n_modes; md++) {
            cs_fast_set_mode(opt.modes[md]);
            e->profile = prof + (size_t)md * 2 * m->n_layers;
            cs_exec_predict(e, x, n);
        }
    e->profile = NULL;
    for (int md = 0; md < opt.n_modes; md++) {
        const double *p = prof + (size_t)md * 2 * m->n_layers;
        double total = 0, kind_time[CS_KIND_COUNT] = {0};
        int kind_nodes[CS_KIND_COUNT] = {0};
        for (int i = 0; i < m->n_layers; i++) {
            total += p[i];
            kind_time[m->layers[i].kind] += p[i];
            kind_nodes[m->layers[i].kind]++;
        }
        printf("  %s [%s], per pass: %.3f ms\n", m->arch, MODE_NAME[opt.modes[md]], 1e3 * total / opt.runs);
        for (int k = 0; k < CS_KIND_COUNT; k++)
            if (kind_nodes[k])
                printf("    %-24s %4d nodes %9.3f ms %5.1f%%\n", cs_layer_kind_name((cs_layer_kind)k), kind_nodes[k],
                       1e3 * kind_time[k] / opt.runs, 100 * kind_time[k] / (total > 0 ? total : 1));
    }
    free(prof);
}

static void time_model(const char *path)
{
    char err[512];
    cs_model *m = load_or_die(path);
    if (cs_model_set_precision(m, opt.precision, err, sizeof err) != 0) {
        fprintf(stderr, "onnx_models: %s\n", err);
        exit(1);
    }
    const int n = opt.batch;
    size_t in = cs_shape_size(m->input);
    float *x = malloc((size_t)n * in * sizeof(float));
    if (!x) {
        fprintf(stderr, "onnx_models: out of memory\n");
        exit(1);
    }
    /* ort_bench.mjs's input, in NCHW order there: the same values, transposed. */
    unsigned state = 12345;
    const int h = m->input.h, w = m->input.w, c = m->input.c;
    for (int b = 0; b < n; b++)
        for (int ch = 0; ch < c; ch++)
            for (int y = 0; y < h; y++)
                for (int xx = 0; xx < w; xx++) {
                    state = state * 1103515245u + 12345u;
                    x[(size_t)b * in + ((size_t)y * w + xx) * c + ch] = (float)((state / 4294967296.0 - 0.5) * 3.46);
                }
    const double flops = model_flops(m) * n;
    const int layer = cs_model_last_conv_activation(m), gradcam = opt.gradcam && n == 1 && layer >= 0;
    for (int ti = 0; ti < opt.n_threads; ti++) {
        const int threads = opt.threads[ti];
        cs_parallel_set_threads(threads);
        cs_exec *e = cs_exec_new(m, n);
        if (!e) {
            fprintf(stderr, "onnx_models: out of memory\n");
            exit(1);
        }
        static double t[3][MAX_RUNS], g[3][MAX_RUNS];
        for (int md = 0; md < opt.n_modes; md++) { /* warm-up: primitives, buffers, page faults */
            cs_fast_set_mode(opt.modes[md]);
            for (int r = 0; r < opt.warmup; r++) cs_exec_predict(e, x, n);
        }
        /* The modes in turns, so that each sees the same share of a shared machine. */
        for (int r = 0; r < opt.runs; r++)
            for (int md = 0; md < opt.n_modes; md++) {
                cs_fast_set_mode(opt.modes[md]);
                double t0 = cs_now();
                if (cs_exec_predict(e, x, n) != 0) {
                    fprintf(stderr, "onnx_models: forward failed\n");
                    exit(1);
                }
                t[md][r] = cs_now() - t0;
                if (!gradcam) continue;
                cs_gradcam_result res;
                t0 = cs_now();
                if (cs_gradcam(e, x, layer, -1, CS_SCORE_LOGIT, &res, err, sizeof err) != 0) {
                    fprintf(stderr, "onnx_models: grad-cam: %s\n", err);
                    exit(1);
                }
                g[md][r] = cs_now() - t0;
                free(res.heatmap);
            }
        if (opt.layers) print_layers(e, x, n);
        for (int md = 0; md < opt.n_modes; md++) {
            const double med = median(t[md], opt.runs), best = t[md][0];
            const double gc = gradcam ? median(g[md], opt.runs) : 0;
            const char *mode = MODE_NAME[opt.modes[md]];
            if (opt.json) {
                printf("{\"engine\": \"convscope\", \"model\": \"%s\", \"mode\": \"%s\", \"batch\": %d, \"threads\": %d, "
                       "\"ms\": %.4f, \"best_ms\": %.4f, \"gradcam_ms\": %.4f, \"gflop\": %.6f, \"precision\": \"%s\"}\n",
                       m->arch, mode, n, threads, 1e3 * med, 1e3 * best, 1e3 * gc, flops / 1e9,
                       cs_precision_name(opt.precision));
                continue;
            }
            char what[64] = "", tail[96] = "";
            if (n > 1) snprintf(what, sizeof what, "batch %d ", n);
            if (opt.precision != CS_PRECISION_FP32) snprintf(what + strlen(what), sizeof what - strlen(what), "bf16 ");
            if (opt.n_modes > 1 || opt.modes[md] != CS_FAST_AUTO) snprintf(what + strlen(what), sizeof what - strlen(what), "[%s] ", mode);
            if (gradcam) snprintf(tail, sizeof tail, ", grad-cam %.2f ms", 1e3 * gc);
            if (n > 1) snprintf(tail + strlen(tail), sizeof tail - strlen(tail), ", %.0f images/s", n / med);
            printf("convscope %s %s%d threads: %.2f ms (best %.2f ms)%s, %.1f GFLOP/s\n", m->arch, what, threads,
                   1e3 * med, 1e3 * best, tail, flops / med / 1e9);
        }
        fflush(stdout);
        cs_exec_free(e);
    }
    cs_fast_set_mode(CS_FAST_AUTO);
    free(x);
    cs_model_free(m);
}

/* The model's logits on PyTorch's input against PyTorch's; 0 when they agree to 1e-3
 * (a deep net in float32) or when there is nothing to compare with. The files are
 * NAME.input.npy and NAME.logits.npy beside NAME.onnx (or NAME.csm). */
static int check_parity(const char *path)
{
    char base[1024], file[1100], err[512];
    const char *dot = strrchr(path, '.');
    snprintf(base, sizeof base, "%.*s", (int)(dot ? dot - path : (long)strlen(path)), path);
    cs_npy in, want;
    snprintf(file, sizeof file, "%s.input.npy", base);
    if (cs_npy_read(file, &in, err, sizeof err) != 0) return 0;
    snprintf(file, sizeof file, "%s.logits.npy", base);
    if (cs_npy_read(file, &want, err, sizeof err) != 0) {
        cs_npy_free(&in);
        return 0;
    }
    cs_model *m = cs_model_load_any(path, err, sizeof err);
    int n = in.ndim == 4 ? (int)in.dims[0] : 0, rc = 1;
    cs_exec *e = m && n > 0 ? cs_exec_new(m, n) : NULL;
    float *x = e ? malloc(in.count * sizeof(float)) : NULL;
    if (x && in.dims[1] == m->input.c && in.dims[2] == m->input.h && in.dims[3] == m->input.w) {
        const int c = m->input.c, h = m->input.h, w = m->input.w;
        for (int b = 0; b < n; b++) /* NCHW to NHWC */
            for (int ch = 0; ch < c; ch++)
                for (int p = 0; p < h * w; p++) x[((size_t)b * h * w + p) * c + ch] = in.data[((size_t)b * c + ch) * h * w + p];
        const float *z = cs_exec_predict(e, x, n) == 0 ? cs_exec_logits(e) : NULL;
        double worst = 0;
        for (size_t i = 0; z && i < want.count; i++)
            if (fabs(z[i] - want.data[i]) > worst) worst = fabs(z[i] - want.data[i]);
        if (!opt.json) printf("convscope %s: logits within %.1e of PyTorch's\n", m->arch, worst);
        rc = !z || worst > 1e-3;
        if (rc) fprintf(stderr, "onnx_models: %s: logits off by %.1e from PyTorch's\n", path, worst);
    } else {
        fprintf(stderr, "onnx_models: %s: %s\n", path, m ? "the reference input does not fit the model" : err);
    }
    free(x);
    cs_exec_free(e);
    cs_model_free(m);
    cs_npy_free(&in);
    cs_npy_free(&want);
    return rc;
}

static int parse_list(const char *s, int *out, int most)
{
    int n = 0;
    for (char *end; *s && n < most; s = *end == ',' ? end + 1 : end) {
        long v = strtol(s, &end, 10);
        if (end == s || v < 1 || v > 1024) return -1;
        out[n++] = (int)v;
        if (!*end) break;
    }
    return n;
}

static int parse_modes(const char *s)
{
    opt.n_modes = 0;
    char buf[64];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *tok = strtok(buf, ","); tok && opt.n_modes < 3; tok = strtok(NULL, ",")) {
        int found = 0;
        for (int k = 0; k < 3; k++)
            if (!strcmp(tok, MODE_NAME[k])) opt.modes[opt.n_modes++] = (cs_fast_mode)k, found = 1;
        if (!found) return -1;
    }
    return opt.n_modes ? 0 : -1;
}

int main(int argc, char **argv)
{
    if (cs_blas_init(argc, argv) != 0) return 1;
    int first = 1, peak = 0, bad_usage = 0;
    char err[200];
    for (; first < argc && !strncmp(argv[first], "--", 2); first++) {
        const char *a = argv[first], *v = first + 1 < argc ? argv[first + 1] : NULL;
        if (!strcmp(a, "--peak")) peak = 1;
        else if (!strcmp(a, "--json")) opt.json = 1;
        else if (!strcmp(a, "--no-gradcam")) opt.gradcam = 0;
        else if (!strcmp(a, "--layers")) opt.layers = 1;
        else if (v && !strcmp(a, "--threads") && (opt.n_threads = parse_list(v, opt.threads, MAX_THREADS)) > 0) first++;
        else if (v && !strcmp(a, "--batch") && (opt.batch = atoi(v)) >= 1) first++;
        else if (v && !strcmp(a, "--runs") && (opt.runs = atoi(v)) >= 1 && opt.runs <= MAX_RUNS) first++;
        else if (v && !strcmp(a, "--warmup") && (opt.warmup = atoi(v)) >= 0) first++;
        else if (v && !strcmp(a, "--modes") && parse_modes(v) == 0) first++;
        else if (v && !strcmp(a, "--precision") && cs_precision_parse(v, &opt.precision, err, sizeof err) == 0) first++;
        else bad_usage = 1;
        if (bad_usage) break;
    }
    if (bad_usage) {
        fprintf(stderr, "usage: onnx_models [--threads 1,2] [--batch N] [--runs N] [--warmup N] "
                        "[--modes plain,direct,auto] [--no-gradcam] [--layers] [--peak] [--json] [--precision bf16] "
                        "MODEL...\n");
        return 2;
    }
    if (peak) {
        const int cores = (int)sysconf(_SC_NPROCESSORS_ONLN);
        const double all = fma_peak(cores, 3), one = fma_peak(1, 3);
        if (opt.json)
            printf("{\"engine\": \"fma\", \"isa\": \"%s\", \"threads\": %d, \"gflops\": %.2f, \"gflops_1\": %.2f}\n",
                   fma_peak_isa(), cores, all, one);
        else
            printf("fma peak (%s): %.1f GFLOP/s on %d threads, %.1f on 1\n", fma_peak_isa(), all, cores, one);
    }
    if (first >= argc) {
        if (!peak) printf("onnx_models: no models given (make bench-ort exports and times them)\n");
        return 0;
    }
    int bad = 0;
    for (int i = first; i < argc; i++) {
        bad |= check_parity(argv[i]);
        time_model(argv[i]);
    }
    return bad;
}
