/*
 * onnx_models.c - convscope's forward and Grad-CAM time on ONNX models, printed the
 * way bench/ort_bench.mjs prints ONNX Runtime's so the two sit side by side in
 * `make bench-ort`:
 *   convscope <model> <threads> threads: X ms (best Y ms), grad-cam Z ms
 * One image of the model's input size, filled as ort_bench.mjs fills it; for each
 * thread count, warm-up passes and then the median of RUNS timed ones (the best
 * beside it: other work on a shared machine only ever slows a run down).
 * Where the exporter left PyTorch's logits beside a model (NAME.input.npy and
 * NAME.logits.npy, bench/export_torchvision.py), the logits are compared first:
 *   convscope <model>: logits within X of PyTorch's
 * Usage: build/bench/onnx_models MODEL.onnx...  (no models: nothing to time)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "clock.h"
#include "exec.h"
#include "gradcam.h"
#include "model_load.h"
#include "npy.h"
#include "parallel.h"

enum { RUNS = 20, WARMUP = 3 };

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void time_model(const char *path, int threads)
{
    char err[512];
    cs_model *m = cs_model_load_any(path, err, sizeof err);
    if (!m) {
        fprintf(stderr, "onnx_models: %s\n", err);
        exit(1);
    }
    cs_parallel_set_threads(threads);
    cs_exec *e = cs_exec_new(m, 1);
    size_t in = cs_shape_size(m->input);
    float *x = malloc(in * sizeof(float));
    if (!e || !x) {
        fprintf(stderr, "onnx_models: out of memory\n");
        exit(1);
    }
    /* ort_bench.mjs's image, in NCHW order there: the same values, transposed. */
    unsigned state = 12345;
    const int h = m->input.h, w = m->input.w, c = m->input.c;
    for (int ch = 0; ch < c; ch++)
        for (int y = 0; y < h; y++)
            for (int xx = 0; xx < w; xx++) {
                state = state * 1103515245u + 12345u;
                x[((size_t)y * w + xx) * c + ch] = (float)((state / 4294967296.0 - 0.5) * 3.46);
            }
    double t[RUNS], g[RUNS];
    int layer = cs_model_last_conv_activation(m);
    for (int r = 0; r < WARMUP; r++) cs_exec_forward(e, x, 1, 0, NULL);
    for (int r = 0; r < RUNS; r++) {
        double t0 = cs_now();
        cs_exec_forward(e, x, 1, 0, NULL);
        t[r] = cs_now() - t0;
        cs_gradcam_result res;
        t0 = cs_now();
        if (cs_gradcam(e, x, layer, -1, CS_SCORE_LOGIT, &res, err, sizeof err) != 0) {
            fprintf(stderr, "onnx_models: grad-cam: %s\n", err);
            exit(1);
        }
        g[r] = cs_now() - t0;
        free(res.heatmap);
    }
    qsort(t, RUNS, sizeof t[0], cmp);
    qsort(g, RUNS, sizeof g[0], cmp);
    printf("convscope %s %d threads: %.2f ms (best %.2f ms), grad-cam %.2f ms\n", m->arch, threads,
           1e3 * (t[RUNS / 2 - 1] + t[RUNS / 2]) / 2, 1e3 * t[0], 1e3 * (g[RUNS / 2 - 1] + g[RUNS / 2]) / 2);
    free(x);
    cs_exec_free(e);
    cs_model_free(m);
}

/* The model's logits on PyTorch's input against PyTorch's; 0 when they agree to 1e-3
 * (a deep net in float32) or when there is nothing to compare with. */
static int check_parity(const char *path)
{
    char base[1024], file[1100], err[512];
    snprintf(base, sizeof base, "%.*s", (int)(strlen(path) - strlen(".onnx")), path);
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
        const float *z = cs_exec_forward(e, x, n, 0, NULL) == 0 ? cs_exec_logits(e) : NULL;
        double worst = 0;
        for (size_t i = 0; z && i < want.count; i++)
            if (fabs(z[i] - want.data[i]) > worst) worst = fabs(z[i] - want.data[i]);
        printf("convscope %s: logits within %.1e of PyTorch's\n", m->arch, worst);
        rc = !z || worst > 1e-3;
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

int main(int argc, char **argv)
{
    if (cs_blas_init(argc, argv) != 0) return 1;
    if (argc < 2) {
        printf("onnx_models: no models given (make bench-ort exports and times them)\n");
        return 0;
    }
    int bad = 0;
    for (int i = 1; i < argc; i++) {
        bad |= check_parity(argv[i]);
        for (int threads = 1; threads <= 2; threads++) time_model(argv[i], threads);
    }
    return bad;
}
