/*
 * test_forward_above.c - the inference forward for what lies above one node
 * (cs_exec_forward_above), which class-activation maps run: the fused runs of a
 * prediction that end at or below the node, every other node written.
 *
 * On graph_net_mobile (a stem chain, an inverted residual block run in bands with a
 * residual add, a second block with a stride-2 depthwise conv) against the full
 * forward that writes every node (cs_exec_forward) on another exec: outputs from the
 * node up and the gradient down to it agree within the fused batch norms' rounding,
 * nodes inside the fused runs below it stay unwritten (so the fused path ran), and
 * what would read below it is refused. Then Grad-CAM (cs_gradcam) against the map of
 * an explainer whose forward wrote every node.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "exec.h"
#include "explain/explain.h"
#include "fast_plan.h"
#include "gradcam.h"
#include "graph_net.h"
#include "parallel.h"
#include "test.h"

static int expand_at, strided_at;

static cs_model *mobile_net(void) { return graph_net_mobile(64, 16, 96, 96, 24, 8, &expand_at, &strided_at); }

static int node(const cs_model *m, const char *name)
{
    for (int i = 0; i < m->n_layers; i++)
        if (!strcmp(m->layers[i].name, name)) return i;
    fprintf(stderr, "setup: no node %s\n", name);
    exit(99);
}

static float *image(const cs_model *m, uint64_t seed)
{
    const size_t n = cs_shape_size(m->input);
    float *x = malloc(n * sizeof *x);
    if (!x) exit(99);
    cs_rng g;
    cs_rng_seed(&g, seed);
    for (size_t i = 0; i < n; i++) x[i] = (float)(2 * cs_rng_uniform(&g) - 1);
    return x;
}

/* The largest |a - b| over node i's output, relative to the largest |b| (NaN when a
 * holds one). */
static double gap(const cs_model *m, int i, const float *a, const float *b)
{
    const int count = (int)cs_shape_size(m->layers[i].out);
    double big = 0;
    for (int k = 0; k < count; k++) big = fmax(big, fabs(b[k]));
    return graph_net_gap(a, b, count) / (big > 0 ? big : 1);
}

static int any_nan(const float *a, size_t n)
{
    for (size_t k = 0; k < n; k++)
        if (isnan(a[k])) return 1;
    return 0;
}

/* Forward above `keep` (e poisoned first) against ref (a full forward of x, its
 * backward seeded with class cls down to keep): outputs from keep up, the inputs of
 * the nodes above, the logits, the gradient at keep. `unwritten` is a node below keep
 * inside a fused run, which must hold the poison still. */
static void check_keep(cs_exec *e, cs_exec *ref, const cs_model *m, const float *x, int keep, int unwritten, int cls,
                       int threads)
{
    const char *name = m->layers[keep].name;
    graph_net_poison(e, m, 1);
    CHECK(cs_exec_forward_above(e, x, 1, keep) == 0, "%s: forward above failed", name);
    CHECK(e->kept == keep, "%s: kept %d", name, e->kept);
    for (int i = 0; i < m->n_layers; i++) {
        int read_above = i >= keep;
        for (int j = keep + 1; j < m->n_layers; j++)
            for (int k = 0; k < m->layers[j].n_inputs; k++) read_above |= m->layers[j].inputs[k] == i;
        if (!read_above) continue;
        const double d = gap(m, i, e->act[i], ref->act[i]);
        CHECK(!isnan(d) && d <= 1e-4, "%s, %d threads: node %s differs by %.3g of its largest value", name, threads,
              m->layers[i].name, d);
    }
    CHECK(any_nan(e->act[unwritten], cs_shape_size(m->layers[unwritten].out)),
          "%s, %d threads: node %s inside a fused run was written (the fused path did not run)", name, threads,
          m->layers[unwritten].name);
    const int top = m->n_layers - 1;
    CHECK(graph_net_gap(cs_exec_logits(e), cs_exec_logits(ref), m->layers[top].out.c) <= 1e-4, "%s: logits differ",
          name);
    cs_exec_seed_class(e, &cls, CS_SCORE_LOGIT);
    CHECK(cs_exec_backward(e, keep) == 0, "%s: backward to the node refused", name);
    const double g = gap(m, keep, e->grad[keep], ref->grad[keep]);
    CHECK(!isnan(g) && g <= 1e-4, "%s, %d threads: gradient differs by %.3g of its largest value", name, threads, g);
    /* Below keep, the outputs a pass would read were not all written. */
    CHECK(cs_exec_backward(e, keep - 1) == -1, "%s: a backward below the node ran", name);
    CHECK(cs_exec_forward_from(e, x, 1, keep) == -1, "%s: a forward from the node ran", name);
    CHECK(cs_exec_forward_from(e, x, 1, keep + 1) == 0, "%s: a forward from above the node refused", name);
    CHECK(graph_net_gap(cs_exec_logits(e), cs_exec_logits(ref), m->layers[top].out.c) <= 1e-4,
          "%s: logits differ after the forward from above", name);
}

static void test_outputs_and_gradients_above(void)
{
    if (!cs_onednn_usable()) {
        printf("[forward_above] skipped: oneDNN has no vector kernels for this CPU\n");
        return;
    }
    cs_fast_set_mode(CS_FAST_AUTO);
    cs_model *m = mobile_net();
    float *x = image(m, 5);
    const int cls = 3;
    const int a_dw_relu6 = node(m, "a_dw_relu6"), a_add = node(m, "a_add"), b_project = node(m, "b_project");
    CHECK(cs_fast_plan_bands(cs_fast_plan_get(m), expand_at) != NULL, "the first block does not run in bands");
    for (int threads = 1; threads <= 2; threads++) {
        cs_parallel_set_threads(threads);
        cs_exec *e = cs_exec_new(m, 1), *ref = cs_exec_new(m, 1);
        if (!e || !ref || cs_exec_forward(ref, x, 1, 0, NULL) != 0) exit(99);
        const int keeps[3] = {b_project, a_add, a_dw_relu6};
        /* Above the blocks, both run fused; at the first block's end, it does; inside
         * it, its expand and depthwise chains do, its project conv and add do not. */
        const int unwritten[3] = {expand_at, expand_at + 1, expand_at};
        for (int k = 0; k < 3; k++) {
            cs_exec_seed_class(ref, &cls, CS_SCORE_LOGIT);
            if (cs_exec_backward(ref, keeps[k]) != 0) exit(99);
            check_keep(e, ref, m, x, keeps[k], unwritten[k], cls, threads);
        }
        /* A full forward lifts the limit. */
        CHECK(cs_exec_forward(e, x, 1, 0, NULL) == 0 && e->kept == -1, "full forward");
        cs_exec_seed_class(e, &cls, CS_SCORE_LOGIT);
        CHECK(cs_exec_backward(e, -1) == 0, "a backward through every node after a full forward refused");
        cs_exec_free(e);
        cs_exec_free(ref);
    }
    cs_parallel_set_threads(2);
    free(x);
    cs_model_free(m);
}

/* cs_gradcam (which forwards above its node) against Grad-CAM from an explainer whose
 * forward wrote every node; an explainer made for one node refuses a CAM below it. */
static void test_gradcam_above(void)
{
    if (!cs_onednn_usable()) return;
    cs_fast_set_mode(CS_FAST_AUTO);
    cs_model *m = mobile_net();
    float *x = image(m, 6);
    char err[256];
    const int layers[2] = {node(m, "b_project"), node(m, "a_add")};
    for (int k = 0; k < 2; k++) {
        cs_exec *e = cs_exec_new(m, 1);
        cs_gradcam_result r;
        if (!e || cs_gradcam(e, x, layers[k], 2, CS_SCORE_LOGIT, &r, err, sizeof err) != 0) {
            fprintf(stderr, "setup: %s\n", err);
            exit(99);
        }
        CHECK(e->kept == layers[k], "cs_gradcam's forward kept %d", e->kept);
        cs_explainer ex;
        cs_explain_params p;
        cs_explain_params_default(&p);
        p.layer = layers[k];
        p.class_index = 2;
        cs_explain_map map;
        if (cs_explainer_init(&ex, m, x, NULL, err, sizeof err) != 0 ||
            cs_explain_run(&ex, &cs_explain_gradcam, &p, &map, err, sizeof err) != 0) {
            fprintf(stderr, "setup: %s\n", err);
            exit(99);
        }
        CHECK(ex.e->kept == -1, "the explainer's forward kept %d", ex.e->kept);
        CHECK(r.h == map.h && r.w == map.w, "sizes %dx%d and %dx%d", r.h, r.w, map.h, map.w);
        double worst = graph_net_gap(r.heatmap, map.heat, map.h * map.w), mx = 0;
        for (int i = 0; i < map.h * map.w; i++) mx = fmax(mx, map.heat[i]);
        CHECK(mx == 1.0 && !isnan(worst) && worst <= 1e-4, "%s: heat differs by %.3g", m->layers[layers[k]].name, worst);
        cs_explain_map_free(&map);
        cs_explainer_free(&ex);
        free(r.heatmap);
        cs_exec_free(e);
    }
    /* What an explainer keeps: the CAM node for a method that reads one (also among
     * others), else the top, where an input attribution is as with every node written. */
    cs_explain_params q;
    cs_explain_params_default(&q);
    q.layer = layers[0];
    const cs_explain_method *cam_and_pixel[2] = {&cs_explain_gradient, &cs_explain_gradcampp};
    CHECK(cs_explain_keep(m, cam_and_pixel, 2, &q) == layers[0], "keep for a CAM among others: %d",
          cs_explain_keep(m, cam_and_pixel, 2, &q));
    const int top = cs_explain_keep(m, cam_and_pixel, 1, &q);
    CHECK(top == m->n_layers - 1, "keep for an input attribution: %d", top);
    cs_explain_map attr[2];
    for (int full = 0; full < 2; full++) {
        cs_explainer ex;
        if (cs_explainer_init_above(&ex, m, x, NULL, full ? -1 : top, err, sizeof err) != 0 ||
            cs_explain_run(&ex, &cs_explain_gradient, &q, &attr[full], err, sizeof err) != 0) {
            fprintf(stderr, "setup: %s\n", err);
            exit(99);
        }
        cs_explainer_free(&ex);
    }
    const double d = graph_net_gap(attr[0].attr, attr[1].attr, (int)cs_shape_size(m->input));
    CHECK(!isnan(d) && d <= 1e-6, "input gradients differ by %.3g", d);
    cs_explain_map_free(&attr[0]);
    cs_explain_map_free(&attr[1]);

    /* Made for b_project, asked for a_add below it. */
    cs_explainer ex;
    cs_explain_params p;
    cs_explain_params_default(&p);
    p.layer = layers[1];
    cs_explain_map map;
    if (cs_explainer_init_above(&ex, m, x, NULL, layers[0], err, sizeof err) != 0) exit(99);
    err[0] = 0;
    CHECK(cs_explain_run(&ex, &cs_explain_gradcam, &p, &map, err, sizeof err) != 0 && strstr(err, "below"),
          "a CAM below the explainer's node ran (%s)", err);
    cs_explainer_free(&ex);
    free(x);
    cs_model_free(m);
}

int main(void)
{
    RUN(test_outputs_and_gradients_above);
    RUN(test_gradcam_above);
    return test_summary("forward_above");
}
