/*
 * bench/conv_shapes.c - every conv layer shape of some models, through convscope's own
 * kernels and through oneDNN's, taken in turns: the measurement behind the choices of
 * core/fast_plan.c (which layers run oneDNN, which of them Winograd).
 *
 * For each distinct conv node (kind, input shape, window) of the models given, a model
 * of that one node (random weights) runs forward passes of --batch images in three
 * modes: plain (convscope's kernels, as training runs them), direct (oneDNN's direct
 * convolution) and auto (what inference runs: Winograd where fast_plan.c chooses it).
 * Each round runs each mode once, so that all three see the same share of a machine
 * that other work is using; a line gives each mode's best time over the rounds, its
 * GFLOP/s, the implementation oneDNN chose and plain / auto (above 1: the fast path is
 * faster). The totals at the end are the models' conv time in each mode.
 *
 * Usage: build/bench/conv_shapes [--batch N] [--threads N] [--rounds N] [MODEL...]
 *   MODEL: a model file (.csm, .onnx, Keras .h5), or "vgg16" / "fmnist" for the
 *   built-in architectures (both when none is given).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "clock.h"
#include "exec.h"
#include "fast_plan.h"
#include "layer_ops.h"
#include "model_load.h"
#include "parallel.h"
#include "vgg16.h"

enum { MODES = 3 };
static const cs_fast_mode MODE[MODES] = {CS_FAST_OFF, CS_FAST_DIRECT, CS_FAST_AUTO};
static const char *const MODE_NAME[MODES] = {"plain", "direct", "auto"};

static cs_model *load_model(const char *what)
{
    char err[512];
    cs_model *m = NULL;
    if (!strcmp(what, "vgg16")) m = cs_model_build_vgg16();
    else if (!strcmp(what, "fmnist")) m = cs_model_build_fmnist();
    else if (!(m = cs_model_load_any(what, err, sizeof err))) fprintf(stderr, "conv_shapes: %s\n", err);
    else return m;
    if (m) cs_model_init_weights(m, 1);
    return m;
}

/* Multiply-adds x 2 of the node for one image. */
static double node_flops(const cs_layer *l)
{
    double taps = 0;
    for (int p = 0; p < l->n_params; p++)
        if (l->params[p].ndim == 4) taps += (double)l->params[p].size;
    /* Each kernel weight meets every output position once (a separable conv's
     * depthwise part at the output size too, stride aside). */
    return 2.0 * taps * l->out.h * l->out.w;
}

static int same_node(const cs_layer *a, const cs_layer *b)
{
    return a->kind == b->kind && !memcmp(&a->in, &b->in, sizeof a->in) && !memcmp(&a->out, &b->out, sizeof a->out) &&
           !memcmp(&a->cfg, &b->cfg, sizeof a->cfg);
}

/* A model of node l alone, reading an input of its input shape. */
static cs_model *single(const cs_layer *l)
{
    char err[256];
    cs_model *m = cs_model_new("shape", l->in);
    if (!m || cs_model_add(m, l->name, l->kind, &l->cfg, err, sizeof err) < 0 || cs_model_finish(m) != 0) {
        cs_model_free(m);
        return NULL;
    }
    cs_model_init_weights(m, 7);
    return m;
}

int main(int argc, char **argv)
{
    if (cs_blas_init(argc, argv) != 0) return 1;
    int batch = 1, threads = 0, rounds = 7, first = 1;
    for (; first < argc && !strncmp(argv[first], "--", 2) && first + 1 < argc; first += 2) {
        if (!strcmp(argv[first], "--batch")) batch = atoi(argv[first + 1]);
        else if (!strcmp(argv[first], "--threads")) threads = atoi(argv[first + 1]);
        else if (!strcmp(argv[first], "--rounds")) rounds = atoi(argv[first + 1]);
        else break;
    }
    if (batch < 1 || rounds < 1) {
        fprintf(stderr, "usage: conv_shapes [--batch N] [--threads N] [--rounds N] [MODEL...]\n");
        return 2;
    }
    char *builtin[] = {"vgg16", "fmnist"};
    if (first >= argc) { /* `make bench` runs it without arguments */
        argv = builtin;
        argc = 2;
        first = 0;
    }
    if (threads > 0) cs_parallel_set_threads(threads);
    double load[1] = {0};
    getloadavg(load, 1);
    printf("conv_shapes: batch %d, %d threads, best of %d rounds, load average %.2f\n", batch, cs_parallel_threads(),
           rounds, load[0]);
    printf("%-28s %-22s %7s | %8s %8s %8s | %6s %6s %6s | %-28s %s\n", "node", "in -> out", "GFLOP", "plain ms",
           "direct", "auto", "GF/s", "", "", "oneDNN (auto)", "plain/auto");
    for (int a = first; a < argc; a++) {
        cs_model *src = load_model(argv[a]);
        if (!src) return 1;
        double total[MODES] = {0};
        for (int i = 0; i < src->n_layers; i++) {
            const cs_layer *l = &src->layers[i];
            if (!cs_layer_ops_of(l->kind)->fast) continue;
            int seen = 0;
            for (int j = 0; j < i && !seen; j++) seen = same_node(&src->layers[j], l);
            int repeats = 0;
            for (int j = i; j < src->n_layers; j++) repeats += same_node(&src->layers[j], l);
            if (seen) continue;
            cs_model *m = single(l);
            cs_exec *e = m ? cs_exec_new(m, batch) : NULL;
            float *x = e ? malloc((size_t)batch * cs_shape_size(l->in) * sizeof(float)) : NULL;
            if (!x) {
                fprintf(stderr, "conv_shapes: %s: cannot build it alone\n", l->name);
                return 1;
            }
            for (size_t k = 0; k < (size_t)batch * cs_shape_size(l->in); k++)
                x[k] = (float)((k * 2654435761u) % 1000) / 500.0f - 1.0f;
            double best[MODES];
            const char *impl = "-";
            for (int md = 0; md < MODES; md++) best[md] = 1e30;
            for (int r = 0; r <= rounds; r++) /* round 0 warms up (and makes the primitives) */
                for (int md = 0; md < MODES; md++) {
                    cs_fast_set_mode(MODE[md]);
                    double t0 = cs_now();
                    cs_exec_forward(e, x, batch, 0, NULL);
                    double t = cs_now() - t0;
                    if (r > 0 && t < best[md]) best[md] = t;
                    const cs_fast_node *f = cs_fast_plan_node(cs_fast_plan_get(m), 0);
                    if (MODE[md] == CS_FAST_AUTO && f) {
                        const cs_onednn_conv *c = f->conv[0] ? f->conv[0] : f->conv[1];
                        impl = cs_onednn_conv_impl(c);
                    }
                }
            const double fl = node_flops(l) * batch;
            char shape[64];
            snprintf(shape, sizeof shape, "%dx%dx%d -> %dx%dx%d", l->in.h, l->in.w, l->in.c, l->out.h, l->out.w,
                     l->out.c);
            char name[40];
            if (repeats > 1) snprintf(name, sizeof name, "%.22s (x%d)", l->name, repeats);
            else snprintf(name, sizeof name, "%.28s", l->name);
            printf("%-28s %-22s %7.3f | %8.3f %8.3f %8.3f | %6.1f %6.1f %6.1f | %-28s %.2f\n", name, shape, fl / 1e9,
                   1e3 * best[0], 1e3 * best[1], 1e3 * best[2], fl / best[0] / 1e9, fl / best[1] / 1e9,
                   fl / best[2] / 1e9, impl, best[0] / best[2]);
            for (int md = 0; md < MODES; md++) total[md] += repeats * best[md];
            cs_fast_set_mode(CS_FAST_AUTO);
            free(x);
            cs_exec_free(e);
            cs_model_free(m);
        }
        printf("%s: conv layers in total: ", src->arch);
        for (int md = 0; md < MODES; md++) printf("%s %.2f ms%s", MODE_NAME[md], 1e3 * total[md], md < MODES - 1 ? ", " : "");
        printf(" (plain / auto %.2fx)\n", total[0] / total[2]);
        cs_model_free(src);
    }
    return 0;
}
