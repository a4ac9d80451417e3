/*
 * bench/explain.c - how long each explanation method takes on one image of the
 * notebook's network and on one VGG16 image, and what batching Score-CAM's masked
 * forwards buys over one forward per channel.
 *
 *   Fashion-MNIST: models/fmnist.csm when there is one (else random weights), test
 *   image 18 when the data set is installed (else a synthetic image); every method at
 *   its defaults, median of several runs.
 *   VGG16: random weights (speed does not depend on them, as bench/vgg16.c), a
 *   synthetic 224x224 image; every method once, at the defaults except the sampling
 *   methods, which run fewer passes (printed) to keep the run in minutes: their time
 *   grows linearly with samples, steps and occlusion positions.
 *   Score-CAM batched (the default batch) against batch 1, on fmnist's leaky_re_lu_2 and
 *   VGG16's block1_conv2 (64 channels each), with the maps checked to agree.
 *
 * `--fmnist` skips VGG16 (seconds instead of minutes). Exit status 0 unless something
 * could not run at all.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blas.h"
#include "clock.h"
#include "dataset.h"
#include "explain/explain.h"
#include "model_file.h"
#include "parallel.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median seconds of `runs` runs of the method, each with the image's forward pass that
 * every method starts from (the explainer's exec runs it again first); the map of the
 * last run in *keep when asked. -1 when it fails. */
static double time_method(cs_explainer *x, const cs_explain_method *meth, const cs_explain_params *p, int runs,
                          cs_explain_map *keep, long *passes)
{
    double t[16];
    char err[300];
    for (int r = 0; r < runs; r++) {
        cs_explain_map m;
        double t0 = cs_now();
        if (cs_exec_forward(x->e, x->x, 1, 0, NULL) != 0 || cs_explain_run(x, meth, p, &m, err, sizeof err) != 0) {
            fprintf(stderr, "explain bench: %s: %s\n", meth->name, err);
            return -1;
        }
        t[r] = cs_now() - t0;
        *passes = m.forwards + m.backwards;
        if (keep && r == runs - 1) *keep = m;
        else cs_explain_map_free(&m);
    }
    qsort(t, (size_t)runs, sizeof t[0], cmp_double);
    return t[runs / 2];
}

static void table(const char *name, cs_explainer *x, const cs_explain_params *base, int runs, int quick)
{
    printf("%s: %-22s %10s %8s  %s\n", name, "method", "ms", "passes", "parameters (ms: median, with the forward)");
    for (int i = 0; i < cs_explain_count(); i++) {
        const cs_explain_method *meth = cs_explain_method_at(i);
        cs_explain_params p = *base;
        char note[96] = "defaults";
        if (quick && meth == &cs_explain_smoothgrad) p.samples = 8, snprintf(note, sizeof note, "samples 8 (default 25)");
        if (quick && meth == &cs_explain_integrated_gradients)
            p.steps = 16, snprintf(note, sizeof note, "steps 16 (default 64)");
        if (quick && meth == &cs_explain_occlusion)
            p.patch = 56, p.stride = 28, snprintf(note, sizeof note, "patch 56, stride 28: 49 positions (default 169)");
        long passes = 0;
        double t = time_method(x, meth, &p, runs, NULL, &passes);
        if (t < 0) continue;
        printf("%s: %-22s %10.2f %8ld  %s\n", name, meth->name, 1e3 * t, passes, note);
        fflush(stdout);
    }
}

/* Score-CAM at `layer`: the default batch against one masked forward per channel. */
static void scorecam_batching(const char *name, cs_explainer *x, int layer, int runs)
{
    cs_explain_params p;
    cs_explain_params_default(&p);
    p.layer = layer;
    cs_explain_map a = {0}, b = {0};
    long passes = 0;
    double tb = time_method(x, &cs_explain_scorecam, &p, runs, &a, &passes);
    int batch = x->batch;
    p.batch = 1;
    double t1 = time_method(x, &cs_explain_scorecam, &p, runs, &b, &passes);
    if (tb < 0 || t1 < 0) return;
    double worst = 0;
    for (int i = 0; i < a.h * a.w; i++) worst = fmax(worst, fabs(a.heat[i] - b.heat[i]));
    printf("%s: scorecam at %s (%d channels): batch %d %.1f ms, one forward per channel %.1f ms: %.2fx faster; "
           "maps agree to %.1g\n",
           name, x->model->layers[layer].name, x->model->layers[layer].out.c, batch, 1e3 * tb, 1e3 * t1, t1 / tb, worst);
    cs_explain_map_free(&a);
    cs_explain_map_free(&b);
}

static int bench_fmnist(void)
{
    char err[300];
    cs_model *m = cs_model_load("models/fmnist.csm", err, sizeof err);
    const char *weights = "models/fmnist.csm";
    if (!m) {
        if (!(m = cs_model_build_fmnist())) return 1;
        cs_model_init_weights(m, 1);
        weights = "random weights";
    }
    float x[784];
    cs_dataset d;
    const char *image = "test image 18";
    if (cs_dataset_load(CS_DEFAULT_DATA_DIR, "test", &d, err, sizeof err) == 0) {
        cs_dataset_image_float(&d, 18, x);
        cs_dataset_free(&d);
    } else {
        for (int i = 0; i < 784; i++) x[i] = (float)((i * 37) % 255) / 255.0f;
        image = "a synthetic image";
    }
    printf("fmnist: %s, %s\n", weights, image);
    cs_explainer ex;
    if (cs_explainer_init(&ex, m, x, NULL, err, sizeof err) != 0) {
        cs_model_free(m);
        return 1;
    }
    cs_explain_params p;
    cs_explain_params_default(&p);
    table("fmnist", &ex, &p, 5, 0);
    scorecam_batching("fmnist", &ex, cs_model_find_layer(m, "leaky_re_lu_2"), 5);
    cs_explainer_free(&ex);
    cs_model_free(m);
    return 0;
}

static int bench_vgg16(void)
{
    char err[300];
    cs_model *m = cs_model_build_vgg16();
    if (!m) return 1;
    cs_model_init_weights(m, 1);
    size_t in = cs_shape_size(m->input);
    float *x = malloc(in * sizeof(float)), range[6];
    if (!x || cs_explain_input_range(m, range, range + 3) != 0) {
        free(x);
        cs_model_free(m);
        return 1;
    }
    for (size_t i = 0; i < in; i++) x[i] = (float)((i * 2654435761u) % 256) - 120.0f;
    cs_explainer ex;
    if (cs_explainer_init(&ex, m, x, NULL, err, sizeof err) != 0) {
        free(x);
        cs_model_free(m);
        return 1;
    }
    ex.black = range;
    ex.white = range + 3;
    printf("vgg16: random weights, a synthetic 224x224 image, CAMs at block5_conv3 (512 channels)\n");
    cs_explain_params p;
    cs_explain_params_default(&p);
    table("vgg16", &ex, &p, 1, 1);
    scorecam_batching("vgg16", &ex, cs_model_find_layer(m, "block1_conv2"), 1);
    cs_explainer_free(&ex);
    free(x);
    cs_model_free(m);
    return 0;
}

int main(int argc, char **argv)
{
    if (cs_blas_init(argc, argv) != 0) {
        fprintf(stderr, "explain bench: OpenBLAS computes wrong results\n");
        return 1;
    }
    double load[1] = {0};
    getloadavg(load, 1);
    printf("explain: OpenBLAS core %s, %ld cores, pool of %d threads, load average %.2f before the run\n",
           cs_blas_core(), sysconf(_SC_NPROCESSORS_ONLN), cs_parallel_threads(), load[0]);
    if (bench_fmnist() != 0) return 1;
    if (argc > 1 && !strcmp(argv[1], "--fmnist")) return 0;
    return bench_vgg16();
}
