/*
 * test_graph_kinds.c - the rows of the general layer kinds (pools, global pools,
 * Activation, Softmax, Add/Subtract/Multiply, Concatenate, ZeroPadding2D, Rescaling,
 * Normalization) inside graphs run by the executor.
 *
 * Each gradient check builds a small graph with the kind under test between convs and
 * a dense top, takes a scalar S of the top (a random projection of its output, the
 * cross-entropy loss, or a class logit or probability), back-propagates, and compares
 * dS/d(parameters) and dS/d(the outputs of the nodes the kind reads) with central
 * differences (S(v + h) - S(v - h)) / 2h. A node's output is nudged in place and the
 * nodes after it run again, so where it fans out every path counts. The error measure
 * is test_gradcheck.c's: ||analytic - numeric|| / ||analytic + numeric|| over sampled
 * entries. Every graph also goes through a .csm file and must give the same outputs
 * to the bit. Then: configurations that must be refused (with the field or node
 * named), the names in the table, and MaxPooling2D's plain and general paths.
 */
#include <stdlib.h>

#include "exec.h"
#include "layer_ops.h"
#include "layers/kernels.h"
#include "model_file.h"
#include "rng.h"
#include "test.h"

/* ---- building graphs ---------------------------------------------------------------- */

typedef struct {
    cs_model *m;
    int failed;
} graph;

static graph g_new(cs_shape in) { return (graph){cs_model_new("t", in), 0}; }

static int g_add(graph *g, const char *name, cs_layer_kind kind, cs_layer_config cfg, int n, const int *in)
{
    char err[256] = "";
    int i = cs_model_add_node(g->m, name, kind, &cfg, in, n, err, sizeof err);
    CHECK(i >= 0, "%s refused: %s", name, err);
    if (i < 0) g->failed = 1;
    return i;
}

static int g_one(graph *g, const char *name, cs_layer_kind kind, cs_layer_config cfg, int from)
{
    return g_add(g, name, kind, cfg, 1, &from);
}

static const cs_layer_config NONE = {0};

static cs_layer_config conv(int filters, int k)
{
    return (cs_layer_config){.filters = filters, .kernel = k, .pad_same = 1, .he_normal = 1};
}

/* flatten -> dense(units) on node `from`, then the model is allocated (NULL when a
 * node was refused). */
static cs_model *g_finish_dense(graph *g, int from, int units, cs_activation act)
{
    int f = g_one(g, "flat", CS_FLATTEN, NONE, from);
    g_one(g, "top", CS_DENSE, (cs_layer_config){.units = units, .activation = act}, f);
    if (g->failed || cs_model_finish(g->m) != 0) {
        cs_model_free(g->m);
        return NULL;
    }
    return g->m;
}

/* ---- the scalar, its gradient, and central differences -------------------------------- */

enum { S_PROJ, S_XENT, S_LOGIT, S_PROB };

typedef struct {
    cs_model *m;
    cs_exec *e;
    float *x, *proj;
    int n, kind;
    int labels[8];
    uint8_t ulabels[8];
} gc;

static double value(gc *c)
{
    const int top = c->m->n_layers - 1;
    const size_t k = cs_shape_size(c->m->layers[top].out), total = (size_t)c->n * k;
    const float *y = c->e->act[top];
    double s = 0;
    switch (c->kind) {
    case S_PROJ:
        for (size_t i = 0; i < total; i++) s += (double)c->proj[i] * y[i];
        break;
    case S_XENT: s = cs_exec_xent(c->e, c->ulabels, NULL); break;
    case S_LOGIT:
        for (int i = 0; i < c->n; i++) s += cs_exec_logits(c->e)[i * k + c->labels[i]];
        break;
    case S_PROB:
        for (int i = 0; i < c->n; i++) s += y[i * k + c->labels[i]];
        break;
    }
    return s;
}

static double scalar(gc *c)
{
    cs_exec_forward(c->e, c->x, c->n, 0, NULL);
    return value(c);
}

/* Runs the nodes after j again, as an inference forward does. */
static double rerun_from(gc *c, int j)
{
    cs_exec *e = c->e;
    for (int i = j + 1; i < c->m->n_layers; i++) {
        const cs_layer *l = &c->m->layers[i];
        cs_node_pass p = {.e = e, .node = i, .l = l, .n = c->n, .y = e->act[i], .work = e->work};
        for (int k = 0; k < l->n_inputs; k++) p.x[k] = l->inputs[k] < 0 ? c->x : e->act[l->inputs[k]];
        cs_layer_ops_of(l->kind)->forward(&p);
    }
    return value(c);
}

static void analytic(gc *c)
{
    scalar(c); /* the cross-entropy seeds its own gradient */
    const int top = c->m->n_layers - 1;
    if (c->kind == S_PROJ) {
        memcpy(c->e->grad[top], c->proj, (size_t)c->n * cs_shape_size(c->m->layers[top].out) * sizeof(float));
        c->e->top_is_dz = 0;
    } else if (c->kind == S_LOGIT || c->kind == S_PROB) {
        cs_exec_seed_class(c->e, c->labels, c->kind == S_PROB);
    }
    cs_exec_backward(c->e, -1);
}

typedef struct {
    double diff, sum;
    int used, skipped, count;
} acc;

/* Differences of one value at steps +h and -h: central, forward and backward. */
typedef struct {
    double central, fwd, bwd;
} diffs;

static diffs differences(double up, double mid, double down, float keep, float h)
{
    const double hu = (double)(keep + h) - keep, hd = keep - (double)(keep - h);
    return (diffs){(up - down) / (hu + hd), (up - mid) / hu, (mid - down) / hd};
}

/* One sample. Where the graph has kinks (ReLU, a max's ties) and the one-sided
 * differences disagree, a step crossed one and the central difference is no
 * derivative: the sample is set aside (the graphs with kinks are piecewise linear or
 * nearly, so elsewhere the two agree to rounding). */
static void acc_add(acc *a, diffs d, double ana, int kinks)
{
    a->count++;
    if (kinks && fabs(d.fwd - d.bwd) > 0.02 * (fabs(d.fwd) + fabs(d.bwd)) + 3e-4) {
        a->skipped++;
        return;
    }
    a->diff += (d.central - ana) * (d.central - ana);
    a->sum += (d.central + ana) * (d.central + ana);
    a->used++;
}

/* Relative error; where the gradient is zero by construction (Subtract(a, a)), the
 * RMS absolute error. */
static double acc_err(const acc *a)
{
    return sqrt(a->sum) > 1e-3 ? sqrt(a->diff) / sqrt(a->sum) : sqrt(a->diff / (a->used ? a->used : 1));
}

#define SAMPLES 24

static diffs central_param(gc *c, float *v, double mid, double h)
{
    const float keep = *v;
    *v = keep + (float)h;
    double up = scalar(c);
    *v = keep - (float)h;
    double down = scalar(c);
    *v = keep;
    return differences(up, mid, down, keep, (float)h);
}

static diffs central_node(gc *c, int j, size_t k, double mid, double h)
{
    float *v = &c->e->act[j][k];
    const float keep = *v;
    *v = keep + (float)h;
    double up = rerun_from(c, j);
    *v = keep - (float)h;
    double down = rerun_from(c, j);
    *v = keep;
    return differences(up, mid, down, keep, (float)h);
}

/* At most a quarter of the samples may be set aside. */
static double skipped_check(const acc *a, const char *what, const char *of)
{
    if (a->skipped * 4 <= a->count) return 0;
    fprintf(stderr, "    %s: %s: %d of %d samples straddle a kink\n", what, of, a->skipped, a->count);
    return 1;
}

/* The worst error over the trainable tensors. */
static double param_err(gc *c, double h, int kinks, const char *what)
{
    analytic(c);
    float *g = malloc(c->m->n_param_floats * sizeof(float));
    memcpy(g, c->e->param_grad, c->m->n_param_floats * sizeof(float));
    const double mid = scalar(c);
    cs_rng r;
    cs_rng_seed(&r, 11);
    double worst = 0;
    acc all = {0};
    for (int li = 0; li < c->m->n_layers; li++)
        for (int pj = 0; pj < c->m->layers[li].n_params; pj++) {
            cs_param *p = &c->m->layers[li].params[pj];
            if (!p->trainable) continue;
            acc a = {0};
            const int count = p->size < SAMPLES ? (int)p->size : SAMPLES;
            for (int s = 0; s < count; s++) {
                size_t k = p->size <= SAMPLES ? (size_t)s : cs_rng_below(&r, (uint32_t)p->size);
                acc_add(&a, central_param(c, &p->data[k], mid, h), g[p->data - c->m->param_block + k], kinks);
            }
            double err = acc_err(&a);
            if (err > 1e-3)
                fprintf(stderr, "    %s: %s/%s relative error %.2e (%d of %d set aside)\n", what,
                        c->m->layers[li].name, p->name, err, a.skipped, a.count);
            if (err > worst) worst = err;
            all.skipped += a.skipped, all.count += a.count;
        }
    free(g);
    return worst > skipped_check(&all, what, "parameters") ? worst : skipped_check(&all, what, "parameters");
}

/* dS/d(output of node j) against nudging that output. */
static double node_err(gc *c, int j, double h, int kinks, const char *what)
{
    analytic(c);
    const size_t size = (size_t)c->n * cs_shape_size(c->m->layers[j].out);
    float *g = malloc(size * sizeof(float));
    memcpy(g, c->e->grad[j], size * sizeof(float));
    const double mid = scalar(c);
    cs_rng r;
    cs_rng_seed(&r, 12);
    acc a = {0};
    const int count = size < 2 * SAMPLES ? (int)size : 2 * SAMPLES;
    for (int s = 0; s < count; s++) {
        size_t k = size <= 2 * SAMPLES ? (size_t)s : cs_rng_below(&r, (uint32_t)size);
        acc_add(&a, central_node(c, j, k, mid, h), g[k], kinks);
    }
    scalar(c);
    free(g);
    double err = acc_err(&a);
    if (err > 1e-3)
        fprintf(stderr, "    %s: d/d %s relative error %.2e (%d of %d set aside)\n", what, c->m->layers[j].name, err,
                a.skipped, a.count);
    double sk = skipped_check(&a, what, c->m->layers[j].name);
    return err > sk ? err : sk;
}

/* Random weights; biases and non-trainable statistics (Normalization's) away from 0 and 1. */
static void randomise(cs_model *m, uint64_t seed)
{
    cs_model_init_weights(m, seed);
    cs_rng r;
    cs_rng_seed(&r, seed + 100);
    for (int i = 0; i < m->n_layers; i++)
        for (int j = 0; j < m->layers[i].n_params; j++) {
            cs_param *p = &m->layers[i].params[j];
            for (size_t k = 0; k < p->size; k++) {
                if (!strcmp(p->name, "bias") || !strcmp(p->name, "mean"))
                    p->data[k] = (float)(0.4 * cs_rng_uniform(&r) - 0.2);
                else if (!strcmp(p->name, "variance"))
                    p->data[k] = (float)(0.3 + 2 * cs_rng_uniform(&r));
            }
        }
}

/* Saved and loaded back, the model gives the same parameters and every node the same
 * output, to the bit. */
static void check_roundtrip(const char *what, cs_model *m, const float *x, int n)
{
    char err[256] = "";
    const char *path = test_scratch_path("g.csm");
    CHECK(cs_model_save(m, path, err, sizeof err) == 0, "%s: save: %s", what, err);
    cs_model *b = cs_model_load(path, err, sizeof err);
    CHECK(b != NULL, "%s: load: %s", what, err);
    if (!b) return;
    CHECK(b->n_layers == m->n_layers && b->n_param_floats == m->n_param_floats, "%s: same architecture", what);
    if (b->n_layers == m->n_layers && b->n_param_floats == m->n_param_floats) {
        CHECK(!memcmp(b->param_block, m->param_block, m->n_param_floats * sizeof(float)), "%s: same parameters",
              what);
        cs_exec *ea = cs_exec_new(m, n), *eb = cs_exec_new(b, n);
        cs_exec_forward(ea, x, n, 0, NULL);
        cs_exec_forward(eb, x, n, 0, NULL);
        for (int i = 0; i < m->n_layers; i++) {
            CHECK(b->layers[i].kind == m->layers[i].kind && b->layers[i].n_inputs == m->layers[i].n_inputs &&
                      !memcmp(b->layers[i].inputs, m->layers[i].inputs, sizeof m->layers[i].inputs),
                  "%s: node %d reads the same nodes", what, i);
            size_t count = (size_t)n * cs_shape_size(m->layers[i].out);
            CHECK(!memcmp(ea->act[i], eb->act[i], count * sizeof(float)), "%s: node %s gives the same output",
                  what, m->layers[i].name);
        }
        cs_exec_free(ea);
        cs_exec_free(eb);
    }
    cs_model_free(b);
}

typedef struct {
    int kind;    /* S_PROJ, ... */
    int kinks;   /* the graph has kinks: set straddling samples aside */
    double h;    /* 0: the default step */
    double tol;  /* 0: the default tolerance */
} gc_opts;

/* The full check of one graph: parameter gradients, the gradients at `nodes`, and a
 * round trip through a file. Takes the model. */
static void check_graph(const char *what, cs_model *m, const int *nodes, int n_nodes, gc_opts o)
{
    CHECK(m != NULL, "%s: built", what);
    if (!m) return;
    /* Graphs with kinks take smaller steps, so fewer cross one; their error then
     * carries more float rounding (a wrong backward is off by 1e-2 and more). */
    const double h = o.h > 0 ? o.h : o.kinks ? 1e-3 : 1e-2, tol = o.tol > 0 ? o.tol : o.kinks ? 3e-3 : 1e-3;
    gc c = {.m = m, .n = 3, .kind = o.kind};
    randomise(m, 1 + (uint64_t)strlen(what));
    cs_rng r;
    cs_rng_seed(&r, 7 + (uint64_t)strlen(what));
    const cs_shape top = m->layers[m->n_layers - 1].out;
    const size_t in = (size_t)c.n * cs_shape_size(m->input), out = (size_t)c.n * cs_shape_size(top);
    c.x = malloc(in * sizeof(float));
    c.proj = malloc(out * sizeof(float));
    for (size_t i = 0; i < in; i++) c.x[i] = (float)(2 * cs_rng_uniform(&r) - 1);
    for (size_t i = 0; i < out; i++) c.proj[i] = (float)(2 * cs_rng_uniform(&r) - 1);
    for (int i = 0; i < c.n; i++) {
        c.labels[i] = (int)cs_rng_below(&r, (uint32_t)top.c);
        c.ulabels[i] = (uint8_t)c.labels[i];
    }
    c.e = cs_exec_new(m, c.n);
    CHECK(c.e && cs_exec_enable_param_grads(c.e) == 0, "%s: exec", what);
    if (c.e) {
        double e = param_err(&c, h, o.kinks, what);
        CHECK(e < tol, "%s: parameter gradients, error %.2e", what, e);
        for (int k = 0; k < n_nodes; k++) {
            e = node_err(&c, nodes[k], h, o.kinks, what);
            CHECK(e < tol, "%s: gradient at %s, error %.2e", what, m->layers[nodes[k]].name, e);
        }
        check_roundtrip(what, m, c.x, c.n);
    }
    cs_exec_free(c.e);
    free(c.x);
    free(c.proj);
    cs_model_free(m);
}

/* ---- the kinds ---------------------------------------------------------------------- */

/* input -> conv -> the kind (given by cfg) -> flatten -> dense; checks the conv's gradient too. */
static void check_unary(const char *what, cs_shape in, cs_layer_kind kind, cs_layer_config cfg, gc_opts o)
{
    graph g = g_new(in);
    int a = g_one(&g, "conv", CS_CONV2D, conv(3, 3), CS_MODEL_INPUT);
    int k = g_one(&g, "kind", kind, cfg, a);
    check_graph(what, g_finish_dense(&g, k, 3, CS_ACT_LINEAR), &a, 1, o);
}

static void test_avgpool(void)
{
    const cs_shape in = {7, 6, 2};
    check_unary("avg 2x2", in, CS_AVGPOOL, (cs_layer_config){.kernel = 2}, (gc_opts){0});
    check_unary("avg 3x3 stride 2 same", in, CS_AVGPOOL, (cs_layer_config){.kernel = 3, .stride = 2, .pad_same = 1},
                (gc_opts){0});
    check_unary("avg 3x2 explicit pads, ceil, count pads", in, CS_AVGPOOL,
                (cs_layer_config){.kernel = 3, .kernel_w = 2, .stride = 2, .pad_explicit = 1, .pads = {1, 0, 1, 1},
                                  .ceil_mode = 1, .count_include_pad = 1},
                (gc_opts){0});
    check_unary("avg dilated", in, CS_AVGPOOL, (cs_layer_config){.kernel = 2, .stride = 1, .dilation = 2},
                (gc_opts){0});
}

static void test_maxpool_general(void)
{
    const cs_shape in = {7, 6, 2};
    check_unary("max 3x3 stride 2 same", in, CS_MAXPOOL, (cs_layer_config){.kernel = 3, .stride = 2, .pad_same = 1},
                (gc_opts){.kinks = 1});
    check_unary("max 2x3 stride 1 pads ceil", in, CS_MAXPOOL,
                (cs_layer_config){.kernel = 2, .kernel_w = 3, .stride = 1, .stride_w = 2, .pad_explicit = 1,
                                  .pads = {0, 1, 1, 0}, .ceil_mode = 1},
                (gc_opts){.kinks = 1});
    check_unary("max plain 2x2", in, CS_MAXPOOL, (cs_layer_config){.pool = 2}, (gc_opts){.kinks = 1});
}

static void test_global_pools(void)
{
    const cs_shape in = {5, 4, 3};
    graph g = g_new(in);
    int a = g_one(&g, "conv", CS_CONV2D, conv(4, 3), CS_MODEL_INPUT);
    int p = g_one(&g, "gap", CS_GLOBAL_AVGPOOL, NONE, a);
    g_one(&g, "top", CS_DENSE, (cs_layer_config){.units = 3}, p);
    CHECK(!g.failed && cs_model_finish(g.m) == 0 && g.m->layers[p].out.h == 1 && g.m->layers[p].out.c == 4,
          "GAP is 1x1x4");
    check_graph("global average pool", g.m, &a, 1, (gc_opts){0});
    g = g_new(in);
    a = g_one(&g, "conv", CS_CONV2D, conv(4, 3), CS_MODEL_INPUT);
    p = g_one(&g, "gmp", CS_GLOBAL_MAXPOOL, NONE, a);
    g_one(&g, "top", CS_DENSE, (cs_layer_config){.units = 3}, p);
    cs_model_finish(g.m);
    check_graph("global max pool", g.m, &a, 1, (gc_opts){.kinks = 1});
}

static void test_activations(void)
{
    const struct {
        const char *what;
        cs_actf f;
        float a, b;
        int kinks;
    } cases[] = {
        {"relu", CS_ACTF_RELU, 0, 0, 1},          {"relu6 (clip 0..6)", CS_ACTF_CLIP, 0, 6, 1},
        {"clip -0.5..0.5", CS_ACTF_CLIP, -0.5f, 0.5f, 1}, {"leaky 0.2", CS_ACTF_LEAKY, 0, 0, 1},
        {"elu", CS_ACTF_ELU, 0, 0, 1},            {"sigmoid", CS_ACTF_SIGMOID, 0, 0, 0},
        {"tanh", CS_ACTF_TANH, 0, 0, 0},          {"swish", CS_ACTF_SWISH, 0, 0, 0},
        {"hard sigmoid", CS_ACTF_HARD_SIGMOID, 0, 0, 1}, {"hard swish", CS_ACTF_HARD_SWISH, 0, 0, 1},
        {"gelu", CS_ACTF_GELU, 0, 0, 0},          {"gelu tanh", CS_ACTF_GELU_TANH, 0, 0, 0},
        {"softplus", CS_ACTF_SOFTPLUS, 0, 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_unary(cases[i].what, (cs_shape){5, 5, 2}, CS_ACTIVATION,
                    (cs_layer_config){.actf = cases[i].f, .act_a = cases[i].a, .act_b = cases[i].b},
                    (gc_opts){.kinks = cases[i].kinks});
    /* The default Grad-CAM target is the last spatial activation. */
    graph g = g_new((cs_shape){6, 6, 1});
    int a = g_one(&g, "conv", CS_CONV2D, conv(2, 3), CS_MODEL_INPUT);
    int s = g_one(&g, "act", CS_ACTIVATION, (cs_layer_config){.actf = CS_ACTF_SWISH}, a);
    int p = g_one(&g, "gap", CS_GLOBAL_AVGPOOL, NONE, s);
    g_one(&g, "top", CS_DENSE, (cs_layer_config){.units = 2}, p);
    cs_model_finish(g.m);
    CHECK(cs_model_last_conv_activation(g.m) == s, "Grad-CAM's default node is the Activation (%d)",
          cs_model_last_conv_activation(g.m));
    cs_model_free(g.m);
}

static void test_softmax(void)
{
    /* Within the graph, over the channels of every position. */
    check_unary("spatial softmax", (cs_shape){4, 5, 2}, CS_SOFTMAX, NONE, (gc_opts){0});
    /* As the top: the loss and class scores are seeded with respect to its input. */
    const int kinds[3] = {S_XENT, S_LOGIT, S_PROB};
    const char *names[3] = {"softmax top, cross-entropy", "softmax top, logit", "softmax top, probability"};
    for (int k = 0; k < 3; k++) {
        graph g = g_new((cs_shape){5, 5, 2});
        int a = g_one(&g, "conv", CS_CONV2D, conv(3, 3), CS_MODEL_INPUT);
        int f = g_one(&g, "flat", CS_FLATTEN, NONE, a);
        int d = g_one(&g, "logits", CS_DENSE, (cs_layer_config){.units = 4}, f);
        g_one(&g, "softmax", CS_SOFTMAX, NONE, d);
        cs_model_finish(g.m);
        check_graph(names[k], g.m, &d, 1, (gc_opts){.kind = kinds[k]});
    }
}

/* x -> conv a, x -> conv b: two branches of one input that meet again in the kind. */
static void two_branches(graph *g, int *a, int *b)
{
    *a = g_one(g, "a", CS_CONV2D, conv(3, 3), CS_MODEL_INPUT);
    *b = g_one(g, "b", CS_CONV2D, conv(3, 1), CS_MODEL_INPUT);
}

static void check_merge(cs_layer_kind kind)
{
    const cs_shape in = {5, 4, 2};
    const char *kn = cs_layer_kind_name(kind);
    char name[96];
    int a, b, c, m;
    graph g = g_new(in);
    two_branches(&g, &a, &b);
    m = g_add(&g, "merge", kind, NONE, 2, (int[]){a, b});
    snprintf(name, sizeof name, "%s(a, b)", kn);
    check_graph(name, g_finish_dense(&g, m, 3, CS_ACT_LINEAR), (int[]){a, b}, 2, (gc_opts){0});

    g = g_new(in);
    a = g_one(&g, "a", CS_CONV2D, conv(3, 3), CS_MODEL_INPUT);
    m = g_add(&g, "merge", kind, NONE, 2, (int[]){a, a});
    snprintf(name, sizeof name, "%s(a, a)", kn);
    check_graph(name, g_finish_dense(&g, m, 3, CS_ACT_LINEAR), &a, 1, (gc_opts){0});

    /* Broadcasting: a (h, w, c) against a per-channel (1, 1, c) vector. */
    g = g_new(in);
    two_branches(&g, &a, &b);
    c = g_one(&g, "gap", CS_GLOBAL_AVGPOOL, NONE, b);
    m = g_add(&g, "merge", kind, NONE, 2, (int[]){c, a});
    snprintf(name, sizeof name, "%s((1,1,c), a)", kn);
    check_graph(name, g_finish_dense(&g, m, 3, CS_ACT_LINEAR), (int[]){a, c}, 2, (gc_opts){0});

    /* The model's input itself (whose gradient no one keeps) as one side. */
    g = g_new((cs_shape){5, 4, 3});
    a = g_one(&g, "a", CS_CONV2D, conv(3, 3), CS_MODEL_INPUT);
    m = g_add(&g, "merge", kind, NONE, 2, (int[]){CS_MODEL_INPUT, a});
    snprintf(name, sizeof name, "%s(input, a)", kn);
    check_graph(name, g_finish_dense(&g, m, 3, CS_ACT_LINEAR), &a, 1, (gc_opts){0});
}

static void check_merge3(cs_layer_kind kind)
{
    /* Three inputs, two of them broadcast: (h, w, c), (1, 1, c) and (h, w, 1), one of
     * them twice, and the model's input. */
    const char *kn = cs_layer_kind_name(kind);
    char name[96];
    graph g = g_new((cs_shape){5, 4, 3});
    int a = g_one(&g, "a", CS_CONV2D, conv(3, 3), CS_MODEL_INPUT);
    int b = g_one(&g, "b", CS_CONV2D, conv(1, 1), CS_MODEL_INPUT);
    int s = g_one(&g, "gap", CS_GLOBAL_AVGPOOL, NONE, a);
    int m = g_add(&g, "merge", kind, NONE, 5, (int[]){a, s, b, a, CS_MODEL_INPUT});
    snprintf(name, sizeof name, "%s(a, (1,1,c), (h,w,1), a, input)", kn);
    check_graph(name, g_finish_dense(&g, m, 3, CS_ACT_LINEAR), (int[]){a, b, s}, 3, (gc_opts){0});
}

static void test_add(void)
{
    check_merge(CS_ADD);
    check_merge3(CS_ADD);
}

static void test_subtract(void) { check_merge(CS_SUBTRACT); }

static void test_multiply(void)
{
    check_merge(CS_MULTIPLY);
    check_merge3(CS_MULTIPLY);
    /* Squeeze-and-excitation: x * sigmoid(dense(GAP(x))), the (1, 1, c) gate
     * broadcast over the map. */
    graph g = g_new((cs_shape){5, 5, 2});
    int a = g_one(&g, "conv", CS_CONV2D, conv(4, 3), CS_MODEL_INPUT);
    int p = g_one(&g, "squeeze", CS_GLOBAL_AVGPOOL, NONE, a);
    int d = g_one(&g, "excite", CS_DENSE, (cs_layer_config){.units = 4}, p);
    int s = g_one(&g, "gate", CS_ACTIVATION, (cs_layer_config){.actf = CS_ACTF_SIGMOID}, d);
    int m = g_add(&g, "scale", CS_MULTIPLY, NONE, 2, (int[]){a, s});
    check_graph("squeeze-and-excitation", g_finish_dense(&g, m, 3, CS_ACT_LINEAR), (int[]){a, s}, 2, (gc_opts){0});
}

static void test_concatenate(void)
{
    const cs_shape in = {5, 4, 2};
    int a, b, m;
    graph g = g_new(in);
    two_branches(&g, &a, &b);
    b = g_one(&g, "b2", CS_CONV2D, conv(2, 1), b); /* unequal channel counts */
    m = g_add(&g, "cat", CS_CONCATENATE, NONE, 2, (int[]){a, b});
    check_graph("Concatenate(a, b)", g_finish_dense(&g, m, 3, CS_ACT_LINEAR), (int[]){a, b}, 2, (gc_opts){0});
    g = g_new(in);
    two_branches(&g, &a, &b);
    m = g_add(&g, "cat", CS_CONCATENATE, NONE, 4, (int[]){a, b, a, CS_MODEL_INPUT});
    CHECK(g.m->layers[m].out.c == 3 + 3 + 3 + 2, "channels add up");
    check_graph("Concatenate(a, b, a, input)", g_finish_dense(&g, m, 3, CS_ACT_LINEAR), (int[]){a, b}, 2,
                (gc_opts){0});
}

static void test_zero_padding(void)
{
    const cs_shape in = {4, 5, 2};
    graph g = g_new(in);
    int a = g_one(&g, "a", CS_CONV2D, conv(3, 3), CS_MODEL_INPUT);
    int p = g_one(&g, "pad", CS_ZERO_PADDING2D, (cs_layer_config){.pads = {1, 0, 2, 1}}, a);
    int c = g_one(&g, "c", CS_CONV2D, (cs_layer_config){.filters = 2, .kernel = 3, .he_normal = 1}, p);
    CHECK(!g.failed && g.m->layers[p].out.h == 7 && g.m->layers[p].out.w == 6 && g.m->layers[c].out.h == 5,
          "padded 7x6");
    check_graph("ZeroPadding2D", g_finish_dense(&g, c, 3, CS_ACT_LINEAR), &a, 1, (gc_opts){0});
    /* A fill value and negative pads (crops), as an ONNX Pad gives them. */
    g = g_new(in);
    a = g_one(&g, "a", CS_CONV2D, conv(3, 3), CS_MODEL_INPUT);
    p = g_one(&g, "pad", CS_ZERO_PADDING2D, (cs_layer_config){.pads = {-1, 2, 0, -2}, .pad_value = 0.5f}, a);
    CHECK(!g.failed && g.m->layers[p].out.h == 3 && g.m->layers[p].out.w == 5, "cropped and padded 3x5");
    check_graph("padding with a value and crops", g_finish_dense(&g, p, 3, CS_ACT_LINEAR), &a, 1, (gc_opts){0});
}

static void test_rescaling_normalization(void)
{
    check_unary("Rescaling", (cs_shape){4, 4, 2}, CS_RESCALING, (cs_layer_config){.scale = 0.5f, .offset = 0.25f},
                (gc_opts){0});
    check_unary("Normalization", (cs_shape){4, 4, 2}, CS_NORMALIZATION, NONE, (gc_opts){0});
    /* On the model's input, as preprocessing: nothing below wants its gradient. */
    graph g = g_new((cs_shape){4, 4, 3});
    int r = g_one(&g, "rescale", CS_RESCALING, (cs_layer_config){.scale = 1.0f / 255}, CS_MODEL_INPUT);
    int nz = g_one(&g, "norm", CS_NORMALIZATION, NONE, r);
    int a = g_one(&g, "a", CS_CONV2D, conv(2, 3), nz);
    check_graph("Rescaling -> Normalization on the input", g_finish_dense(&g, a, 3, CS_ACT_LINEAR), &nz, 1,
                (gc_opts){0});

    /* The values: Keras' (x - mean) / max(sqrt(variance), 1e-7), and x * scale + offset. */
    g = g_new((cs_shape){1, 2, 3});
    r = g_one(&g, "rescale", CS_RESCALING, (cs_layer_config){.scale = 0.5f, .offset = -1}, CS_MODEL_INPUT);
    nz = g_one(&g, "norm", CS_NORMALIZATION, NONE, r);
    CHECK(!g.failed && cs_model_finish(g.m) == 0, "built");
    const float mean[3] = {1, -2, 0.5f}, var[3] = {4, 0.25f, 0};
    memcpy(g.m->layers[nz].params[0].data, mean, sizeof mean);
    memcpy(g.m->layers[nz].params[1].data, var, sizeof var);
    CHECK(!strcmp(g.m->layers[nz].params[0].name, "mean") && !strcmp(g.m->layers[nz].params[1].name, "variance") &&
              !g.m->layers[nz].params[0].trainable && !g.m->layers[nz].params[1].trainable,
          "Keras' non-trainable weights mean and variance");
    const float x[6] = {2, 4, 6, -2, 0, 1};
    cs_exec *e = cs_exec_new(g.m, 1);
    cs_exec_forward(e, x, 1, 0, NULL);
    /* rescaled: 0, 1, 2, -2, -1, -0.5; then (v - mean) / max(sqrt(var), 1e-7). */
    const float want[6] = {(0 - 1) / 2.0f, (1 + 2) / 0.5f, (2 - 0.5f) / 1e-7f, (-2 - 1) / 2.0f, (-1 + 2) / 0.5f,
                           (-0.5f - 0.5f) / 1e-7f};
    for (int i = 0; i < 6; i++)
        CHECK(e->act[nz][i] == want[i], "normalised %d: %g, want %g", i, e->act[nz][i], want[i]);
    cs_exec_free(e);
    cs_model_free(g.m);
}

/* ---- configurations refused ------------------------------------------------------------ */

/* Adding the node fails with a message containing each of the words. */
static void refused(const char *what, cs_shape in, cs_layer_kind kind, cs_layer_config cfg, int n, const int *inputs,
                    const char *word1, const char *word2)
{
    cs_model *m = cs_model_new("t", in);
    char err[256] = "";
    cs_layer_config c3 = conv(3, 3);
    int a = cs_model_add_node(m, "a", CS_CONV2D, &c3, (int[]){CS_MODEL_INPUT}, 1, err, sizeof err);
    cs_layer_config c4 = {.filters = 3, .kernel = 3, .he_normal = 1};
    int b = cs_model_add_node(m, "b", CS_CONV2D, &c4, (int[]){CS_MODEL_INPUT}, 1, err, sizeof err);
    (void)a, (void)b;
    int r = cs_model_add_node(m, "bad_node", kind, &cfg, inputs, n, err, sizeof err);
    CHECK(r < 0, "%s: accepted", what);
    CHECK(strstr(err, "bad_node") && (!word1 || strstr(err, word1)) && (!word2 || strstr(err, word2)),
          "%s: message '%s'", what, err);
    cs_model_free(m);
}

static void test_refused_configs(void)
{
    const cs_shape in = {6, 6, 2}; /* node 0: a, 6x6x3; node 1: b, 4x4x3 */
    const int a = 0, b = 1;
    refused("Concatenate of mismatched heights", in, CS_CONCATENATE, NONE, 2, (int[]){a, b}, "4x4x3", "6x6x3");
    refused("Add of shapes that do not broadcast", in, CS_ADD, NONE, 2, (int[]){a, b}, "6x6x3", "4x4x3");
    refused("Multiply with one input", in, CS_MULTIPLY, NONE, 1, (int[]){a}, "2 to", NULL);
    refused("Subtract with three inputs", in, CS_SUBTRACT, NONE, 3, (int[]){a, a, a}, "2 inputs", NULL);
    refused("pool larger than the input", in, CS_MAXPOOL, (cs_layer_config){.kernel = 5}, 1, (int[]){b}, "smaller",
            "5x5");
    refused("average pool larger than the input", in, CS_AVGPOOL, (cs_layer_config){.kernel = 7, .kernel_w = 2}, 1,
            (int[]){a}, "smaller", "7x2");
    refused("pool padding larger than a window reaches", in, CS_AVGPOOL,
            (cs_layer_config){.kernel = 2, .pad_explicit = 1, .pads = {3, 0, 3, 0}}, 1, (int[]){a}, "window",
            NULL);
    refused("negative pool pads", in, CS_MAXPOOL, (cs_layer_config){.kernel = 2, .pad_explicit = 1, .pads = {-1}}, 1,
            (int[]){a}, "pads", NULL);
    refused("negative stride", in, CS_MAXPOOL, (cs_layer_config){.kernel = 2, .stride = -1}, 1, (int[]){a},
            "strides", NULL);
    refused("same padding with ceil mode", in, CS_AVGPOOL,
            (cs_layer_config){.kernel = 2, .pad_same = 1, .ceil_mode = 1}, 1, (int[]){a}, "ceil_mode", NULL);
    refused("count_include_pad on a max pool", in, CS_MAXPOOL, (cs_layer_config){.kernel = 2, .count_include_pad = 1},
            1, (int[]){a}, "count_include_pad", NULL);
    refused("unknown activation function", in, CS_ACTIVATION, (cs_layer_config){.actf = 99}, 1, (int[]){a}, "99",
            NULL);
    refused("clip with min above max", in, CS_ACTIVATION,
            (cs_layer_config){.actf = CS_ACTF_CLIP, .act_a = 2, .act_b = 1}, 1, (int[]){a}, "min", NULL);
    refused("padding that crops everything", in, CS_ZERO_PADDING2D, (cs_layer_config){.pads = {-3, 0, -3, 0}}, 1,
            (int[]){a}, "pad", NULL);
    refused("Rescaling by infinity", in, CS_RESCALING, (cs_layer_config){.scale = INFINITY}, 1, (int[]){a}, "scale",
            NULL);
}

/* config_from_json of kind on the JSON text fails with a message containing word. */
static void json_refused(cs_layer_kind kind, const char *text, const char *word)
{
    json_error_t je;
    json_t *o = json_loads(text, 0, &je);
    char err[256] = "";
    cs_layer_config cfg = {0};
    const cs_layer_ops *ops = cs_layer_ops_of(kind);
    CHECK(o && ops->config_from_json, "%s: %s", cs_layer_kind_name(kind), text);
    if (o && ops->config_from_json) {
        CHECK(ops->config_from_json(o, &cfg, err, sizeof err) != 0, "%s %s: accepted", cs_layer_kind_name(kind),
              text);
        CHECK(strstr(err, word) != NULL, "%s %s: message '%s' names %s", cs_layer_kind_name(kind), text, err, word);
    }
    json_decref(o);
}

static void test_refused_json(void)
{
    json_refused(CS_ACTIVATION, "{\"activation\": \"swizzle\"}", "swizzle");
    json_refused(CS_ACTIVATION, "{\"activation\": \"softmax\"}", "Softmax");
    json_refused(CS_ACTIVATION, "{}", "activation");
    json_refused(CS_ACTIVATION, "{\"activation\": \"elu\", \"alpha\": \"big\"}", "alpha");
    json_refused(CS_ACTIVATION, "{\"activation\": \"clip\", \"min\": 0}", "max");
    json_refused(CS_ACTIVATION, "{\"activation\": \"leaky_relu\", \"negative_slope\": 1e300}", "negative_slope");
    json_refused(CS_ACTIVATION, "{\"activation\": \"gelu\", \"approximate\": 1}", "approximate");
    json_refused(CS_CONCATENATE, "{\"axis\": 1}", "axis");
    json_refused(CS_SOFTMAX, "{\"axis\": 2}", "axis");
    json_refused(CS_NORMALIZATION, "{\"axis\": 0}", "axis");
    json_refused(CS_NORMALIZATION, "{\"axis\": -1, \"invert\": true}", "invert");
    json_refused(CS_NORMALIZATION, "{\"axis\": -1, \"mean\": [1, 2]}", "mean");
    json_refused(CS_MAXPOOL, "{}", "pool_size");
    json_refused(CS_MAXPOOL, "{\"pool_size\": 0}", "pool_size");
    json_refused(CS_MAXPOOL, "{\"pool_size\": [2, 2, 2]}", "pool_size");
    json_refused(CS_AVGPOOL, "{\"pool_size\": 2, \"strides\": 0}", "strides");
    json_refused(CS_AVGPOOL, "{\"pool_size\": 2, \"padding\": \"full\"}", "padding");
    json_refused(CS_AVGPOOL, "{\"pool_size\": 2, \"pads\": [1, 1, 1]}", "pads");
    json_refused(CS_AVGPOOL, "{\"pool_size\": 2, \"pads\": [1, 1, 1, 1], \"padding\": \"same\"}", "pads");
    json_refused(CS_AVGPOOL, "{\"pool_size\": 2, \"ceil_mode\": \"yes\"}", "ceil_mode");
    json_refused(CS_MAXPOOL, "{\"pool_size\": 2, \"dilation\": [1, -1]}", "dilation");
    json_refused(CS_ZERO_PADDING2D, "{\"padding\": [[1, 1], [1]]}", "padding");
    json_refused(CS_ZERO_PADDING2D, "{\"padding\": \"same\"}", "padding");
    json_refused(CS_ZERO_PADDING2D, "{\"padding\": 1, \"value\": \"x\"}", "value");
    json_refused(CS_RESCALING, "{\"offset\": 1}", "scale");
    json_refused(CS_RESCALING, "{\"scale\": [1, 2], \"offset\": 0}", "scale");
    json_refused(CS_RESCALING, "{\"scale\": 0, \"offset\": 0}", "scale");
}

/* What JSON configurations read as: Keras' forms in, and a file's out. */
static void test_json_forms(void)
{
    const struct {
        cs_layer_kind kind;
        const char *in, *out; /* out: the JSON the node writes back (sorted keys) */
    } cases[] = {
        {CS_MAXPOOL, "{\"pool_size\": 2}", "{\"pool_size\":2}"},
        {CS_MAXPOOL, "{\"pool_size\": [2, 2], \"strides\": [2, 2], \"padding\": \"valid\", \"data_format\": "
                     "\"channels_last\"}",
         "{\"pool_size\":2}"},
        {CS_MAXPOOL, "{\"pool_size\": [3, 2], \"strides\": null, \"padding\": \"same\"}",
         "{\"padding\":\"same\",\"pool_size\":[3,2]}"},
        {CS_AVGPOOL, "{\"pool_size\": 3, \"strides\": 1, \"pads\": [1, 0, 1, 2], \"ceil_mode\": true, "
                     "\"count_include_pad\": true, \"dilation\": [1, 2]}",
         "{\"ceil_mode\":true,\"count_include_pad\":true,\"dilation\":[1,2],\"pads\":[1,0,1,2],\"pool_size\":3,"
         "\"strides\":1}"},
        {CS_ACTIVATION, "{\"activation\": \"relu6\"}", "{\"activation\":\"relu6\"}"},
        {CS_ACTIVATION, "{\"activation\": \"silu\"}", "{\"activation\":\"swish\"}"},
        {CS_ACTIVATION, "{\"activation\": \"hard_silu\"}", "{\"activation\":\"hard_swish\"}"},
        {CS_ACTIVATION, "{\"activation\": \"leaky_relu\"}", "{\"activation\":\"leaky_relu\"}"},
        {CS_ACTIVATION, "{\"activation\": \"leaky_relu\", \"negative_slope\": 0.1}",
         "{\"activation\":\"leaky_relu\",\"negative_slope\":0.1}"},
        {CS_ACTIVATION, "{\"activation\": \"leaky_relu\", \"negative_slope\": 0}", "{\"activation\":\"relu\"}"},
        {CS_ACTIVATION, "{\"activation\": \"elu\", \"alpha\": 1}", "{\"activation\":\"elu\"}"},
        {CS_ACTIVATION, "{\"activation\": \"clip\", \"min\": -1, \"max\": 1.5}",
         "{\"activation\":\"clip\",\"max\":1.5,\"min\":-1.0}"},
        {CS_ACTIVATION, "{\"activation\": \"hard_sigmoid\", \"alpha\": 0.2, \"beta\": 0.5}",
         "{\"activation\":\"hard_sigmoid\",\"alpha\":0.2,\"beta\":0.5}"},
        {CS_ACTIVATION, "{\"activation\": \"hard_sigmoid\"}", "{\"activation\":\"hard_sigmoid\"}"},
        {CS_ACTIVATION, "{\"activation\": \"gelu\", \"approximate\": true}",
         "{\"activation\":\"gelu\",\"approximate\":true}"},
        {CS_ZERO_PADDING2D, "{\"padding\": 1}", "{\"padding\":[[1,1],[1,1]]}"},
        {CS_ZERO_PADDING2D, "{\"padding\": [1, 2]}", "{\"padding\":[[1,1],[2,2]]}"},
        {CS_ZERO_PADDING2D, "{\"padding\": [[0, 1], [2, 3]], \"value\": -1.5}",
         "{\"padding\":[[0,1],[2,3]],\"value\":-1.5}"},
        {CS_RESCALING, "{\"scale\": 0.00392156862745098}", "{\"offset\":0.0,\"scale\":0.003921569}"},
        {CS_CONCATENATE, "{\"axis\": 3}", "{\"axis\":-1}"},
        {CS_SOFTMAX, "{}", "{\"axis\":-1}"},
        {CS_NORMALIZATION, "{\"axis\": -1, \"invert\": false, \"mean\": null, \"variance\": null}", "{\"axis\":-1}"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const cs_layer_ops *ops = cs_layer_ops_of(cases[i].kind);
        json_error_t je;
        json_t *o = json_loads(cases[i].in, 0, &je);
        char err[256] = "";
        cs_layer_config cfg = {0};
        CHECK(o && ops->config_from_json(o, &cfg, err, sizeof err) == 0, "%s reads: %s", cases[i].in, err);
        json_decref(o);
        cs_model *m = cs_model_new("t", (cs_shape){8, 8, 2});
        int n = cs_model_add_node(m, "n", cases[i].kind, &cfg, (int[]){CS_MODEL_INPUT}, 1, err, sizeof err);
        CHECK(n == 0, "%s builds: %s", cases[i].in, err);
        if (n == 0) {
            json_t *w = json_object();
            CHECK(ops->config_to_json(&m->layers[0], w) == 0, "%s writes", cases[i].in);
            char *s = json_dumps(w, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(9)); /* as files */
            CHECK(s && !strcmp(s, cases[i].out), "%s writes %s, want %s", cases[i].in, s ? s : "(null)",
                  cases[i].out);
            free(s);
            json_decref(w);
        }
        cs_model_free(m);
    }
}

static void test_names(void)
{
    const struct {
        cs_layer_kind kind;
        const char *keras, *onnx;
    } rows[] = {
        {CS_AVGPOOL, "AveragePooling2D", "AveragePool"},
        {CS_GLOBAL_AVGPOOL, "GlobalAveragePooling2D", "GlobalAveragePool"},
        {CS_GLOBAL_MAXPOOL, "GlobalMaxPooling2D", "GlobalMaxPool"},
        {CS_ACTIVATION, "Activation", NULL},
        {CS_SOFTMAX, "Softmax", "Softmax"},
        {CS_ADD, "Add", "Add"},
        {CS_SUBTRACT, "Subtract", "Sub"},
        {CS_MULTIPLY, "Multiply", "Mul"},
        {CS_CONCATENATE, "Concatenate", "Concat"},
        {CS_ZERO_PADDING2D, "ZeroPadding2D", "Pad"},
        {CS_RESCALING, "Rescaling", NULL},
        {CS_NORMALIZATION, "Normalization", NULL},
        {CS_MAXPOOL, "MaxPooling2D", "MaxPool"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        const cs_layer_ops *ops = cs_layer_ops_of(rows[i].kind);
        cs_layer_kind k = CS_KIND_COUNT;
        CHECK(ops && !strcmp(ops->keras, rows[i].keras), "%s in the table", rows[i].keras);
        CHECK(cs_layer_kind_from_name(rows[i].keras, &k) == 0 && k == rows[i].kind, "%s found by name",
              rows[i].keras);
        CHECK(ops && (rows[i].onnx ? ops->onnx && !strcmp(ops->onnx, rows[i].onnx) : !ops->onnx), "%s's ONNX op",
              rows[i].keras);
        CHECK(ops && ops->infer && ops->forward && ops->backward, "%s has its passes", rows[i].keras);
    }
}

/* ---- MaxPooling2D: the plain case and the general one ------------------------------------ */

/* The notebook's network still runs pool.c's kernels on its pools (the outputs equal
 * cs_maxpool_forward's to the bit), its pools still write {"pool_size": 2}, and its
 * bundled file loads. */
static void test_notebook_pools(void)
{
    char err[256] = "";
    cs_model *built = cs_model_build_fmnist();
    cs_model *m = cs_model_load("models/fmnist.csm", err, sizeof err);
    CHECK(built && m, "notebook network: %s", err);
    if (!built || !m) {
        cs_model_free(built);
        cs_model_free(m);
        return;
    }
    int pools = 0;
    for (int i = 0; i < m->n_layers; i++) {
        if (m->layers[i].kind != CS_MAXPOOL) continue;
        pools++;
        CHECK(built->layers[i].cfg.pool == 2 && m->layers[i].cfg.pool == 2, "%s takes the plain path",
              m->layers[i].name);
        json_t *o = json_object();
        cs_layer_ops_of(CS_MAXPOOL)->config_to_json(&m->layers[i], o);
        char *s = json_dumps(o, JSON_COMPACT);
        CHECK(s && !strcmp(s, "{\"pool_size\":2}"), "%s writes %s", m->layers[i].name, s ? s : "(null)");
        free(s);
        json_decref(o);
    }
    CHECK(pools == 2, "two pools");
    const int n = 4;
    float *x = malloc((size_t)n * 784 * sizeof(float));
    cs_rng r;
    cs_rng_seed(&r, 3);
    for (int i = 0; i < n * 784; i++) x[i] = (float)cs_rng_uniform(&r);
    cs_exec *e = cs_exec_new(m, n);
    cs_exec_forward(e, x, n, 0, NULL);
    for (int i = 0; i < m->n_layers; i++) {
        const cs_layer *l = &m->layers[i];
        if (l->kind != CS_MAXPOOL) continue;
        size_t count = (size_t)n * cs_shape_size(l->out);
        float *plain = malloc(count * sizeof(float)), *general = malloc(count * sizeof(float));
        cs_maxpool_forward(n, l->in.h, l->in.w, l->in.c, 2, e->act[l->inputs[0]], plain);
        cs_pool2d_geom g = {.n = n, .ih = l->in.h, .iw = l->in.w, .c = l->in.c, .oh = l->in.h / 2,
                            .ow = l->in.w / 2, .kh = 2, .kw = 2, .sh = 2, .sw = 2};
        cs_maxpool2d_forward(&g, e->act[l->inputs[0]], general);
        CHECK(!memcmp(e->act[i], plain, count * sizeof(float)), "%s: the plain kernel's output", l->name);
        CHECK(!memcmp(plain, general, count * sizeof(float)), "%s: the general kernel agrees", l->name);
        free(plain);
        free(general);
    }
    cs_exec_free(e);
    free(x);
    cs_model_free(built);
    cs_model_free(m);
}

/* max (or mean, excluding padding unless include_pad) of a window, directly. */
static float naive_pool(const float *x, int ih, int iw, int c, int b, int ch, int oy, int ox, int kh, int kw, int sh,
                        int sw, int dh, int dw, int pt, int pl, int avg, int include_pad)
{
    double best = -INFINITY, sum = 0;
    int count = 0;
    for (int j = 0; j < kh; j++)
        for (int i = 0; i < kw; i++) {
            int y = oy * sh - pt + j * dh, xx = ox * sw - pl + i * dw;
            if (y < 0 || y >= ih || xx < 0 || xx >= iw) {
                count += include_pad;
                continue;
            }
            float v = x[(((size_t)b * ih + y) * iw + xx) * c + ch];
            if (v > best) best = v;
            sum += v;
            count++;
        }
    return avg ? (float)(sum / count) : (float)best;
}

/* One pool node on the model's input: its output shape is the one worked out by hand
 * and its values the naive windows' with the pads worked out by hand. */
static void check_pool_values(const char *what, cs_layer_kind kind, cs_layer_config cfg, cs_shape in, int oh, int ow,
                              const int pads[4])
{
    const int pt = pads[0], pl = pads[1];
    cs_model *m = cs_model_new("t", in);
    char err[256] = "";
    int node = cs_model_add_node(m, "p", kind, &cfg, (int[]){CS_MODEL_INPUT}, 1, err, sizeof err);
    CHECK(node == 0 && cs_model_finish(m) == 0, "%s: %s", what, err);
    if (node != 0) {
        cs_model_free(m);
        return;
    }
    const cs_layer *l = &m->layers[0];
    CHECK(l->out.h == oh && l->out.w == ow && l->out.c == in.c, "%s: output %dx%d, want %dx%d", what, l->out.h,
          l->out.w, oh, ow);
    CHECK(kind != CS_MAXPOOL || l->cfg.pool == 0, "%s: not the plain path", what);
    const int n = 2;
    size_t count = (size_t)n * cs_shape_size(in);
    float *x = malloc(count * sizeof(float));
    cs_rng r;
    cs_rng_seed(&r, 5);
    for (size_t i = 0; i < count; i++) x[i] = (float)(2 * cs_rng_uniform(&r) - 1);
    cs_exec *e = cs_exec_new(m, n);
    cs_exec_forward(e, x, n, 0, NULL);
    const cs_layer_config *c = &l->cfg;
    int bad = 0;
    for (int b = 0; b < n; b++)
        for (int oy = 0; oy < l->out.h; oy++)
            for (int ox = 0; ox < l->out.w; ox++)
                for (int ch = 0; ch < in.c; ch++) {
                    float want = naive_pool(x, in.h, in.w, in.c, b, ch, oy, ox, c->kernel, c->kernel_w, c->stride,
                                            c->stride_w, c->dilation, c->dilation_w, pt, pl, kind == CS_AVGPOOL,
                                            c->count_include_pad);
                    float got = e->act[0][(((size_t)b * l->out.h + oy) * l->out.w + ox) * in.c + ch];
                    bad += fabsf(got - want) > 1e-6f;
                }
    CHECK(bad == 0, "%s: %d values differ from the naive windows", what, bad);
    /* And the kernel itself, on the geometry written out by hand: the same floats. */
    cs_pool2d_geom g = {.n = n, .ih = in.h, .iw = in.w, .c = in.c, .oh = oh, .ow = ow, .kh = c->kernel,
                        .kw = c->kernel_w, .sh = c->stride, .sw = c->stride_w, .pt = pt, .pl = pl, .pb = pads[2],
                        .pr = pads[3], .count_include_pad = c->count_include_pad, .dh = c->dilation,
                        .dw = c->dilation_w};
    float *y = malloc((size_t)n * oh * ow * in.c * sizeof(float));
    CHECK(cs_pool2d_check(&g) == NULL, "%s: geometry", what);
    if (kind == CS_MAXPOOL) cs_maxpool2d_forward(&g, x, y);
    else cs_avgpool2d_forward(&g, x, y);
    CHECK(!memcmp(y, e->act[0], (size_t)n * oh * ow * in.c * sizeof(float)), "%s: the kernel's output", what);
    free(y);
    cs_exec_free(e);
    free(x);
    cs_model_free(m);
}

static void test_pool_values(void)
{
    const cs_shape in = {7, 9, 3};
    /* rows: 7 + 1 - 3 = 5, ceil(5 / 2) + 1 = 4; columns: 9 + 1 - 2 = 8 at stride 1: 9. */
    check_pool_values("max 3x2 stride 2x1 pads (1,0,0,1) ceil", CS_MAXPOOL,
                      (cs_layer_config){.kernel = 3, .kernel_w = 2, .stride = 2, .stride_w = 1, .pad_explicit = 1,
                                        .pads = {1, 0, 0, 1}, .ceil_mode = 1},
                      in, 4, 9, (const int[]){1, 0, 0, 1});
    /* 'same' at stride 2: ceil(7/2) = 4 rows with (4-1)*2 + 3 - 7 = 2 padded (1 on top);
     * ceil(9/2) = 5 columns with 4*2 + 3 - 9 = 2 (1 on the left). */
    check_pool_values("max 3x3 stride 2 same", CS_MAXPOOL, (cs_layer_config){.kernel = 3, .stride = 2, .pad_same = 1},
                      in, 4, 5, (const int[]){1, 1, 1, 1});
    /* 'same' with an odd total: 6 rows at stride 2 with a 3 window pad 1, at the bottom. */
    check_pool_values("avg 3x3 stride 2 same, odd padding", CS_AVGPOOL,
                      (cs_layer_config){.kernel = 3, .stride = 2, .pad_same = 1}, (cs_shape){6, 6, 2}, 3, 3,
                      (const int[]){0, 0, 1, 1});
    check_pool_values("max 2x2 stride 1 dilation 2", CS_MAXPOOL,
                      (cs_layer_config){.kernel = 2, .stride = 1, .dilation = 2}, in, 5, 7, (const int[]){0, 0, 0, 0});
    check_pool_values("max 2x2 valid on a ragged 7x9, stride 3", CS_MAXPOOL,
                      (cs_layer_config){.kernel = 2, .stride = 3}, in, 2, 3, (const int[]){0, 0, 0, 0});
    check_pool_values("avg 3x3 stride 3 pads 1 counting them", CS_AVGPOOL,
                      (cs_layer_config){.kernel = 3, .stride = 3, .pad_explicit = 1, .pads = {1, 1, 1, 1},
                                        .count_include_pad = 1},
                      (cs_shape){7, 7, 2}, 3, 3, (const int[]){1, 1, 1, 1});
}

/* A batch norm -> LeakyReLU -> max pool run is fused in training only over a plain
 * pool; over a general one each node runs alone and gives the unfused gradients. */
static void test_fusion_only_plain(void)
{
    for (int plain = 0; plain < 2; plain++) {
        graph g = g_new((cs_shape){8, 8, 1});
        int a = g_one(&g, "conv", CS_CONV2D, (cs_layer_config){.filters = 3, .kernel = 3, .he_normal = 1},
                      CS_MODEL_INPUT);
        int bn = g_one(&g, "bn", CS_BATCHNORM, NONE, a);
        int act = g_one(&g, "act", CS_LEAKY_RELU, NONE, bn);
        cs_layer_config pool = plain ? (cs_layer_config){.pool = 2}
                                     : (cs_layer_config){.kernel = 3, .stride = 2, .pad_same = 1};
        int p = g_one(&g, "pool", CS_MAXPOOL, pool, act);
        cs_model *m = g_finish_dense(&g, p, 4, CS_ACT_SOFTMAX);
        CHECK(m != NULL, "built");
        if (!m) continue;
        randomise(m, 3);
        const int n = 4;
        float x[4 * 64];
        uint8_t labels[4] = {0, 1, 2, 3};
        cs_rng r;
        cs_rng_seed(&r, 9);
        for (int i = 0; i < n * 64; i++) x[i] = (float)cs_rng_uniform(&r);
        cs_exec *e[2];
        float loss[2];
        for (int f = 0; f < 2; f++) {
            e[f] = cs_exec_new(m, n);
            cs_exec_enable_param_grads(e[f]);
            cs_exec_set_fusion(e[f], f);
            cs_exec_forward(e[f], x, n, 1, NULL);
            loss[f] = cs_exec_xent(e[f], labels, NULL);
            cs_exec_backward(e[f], -1);
        }
        CHECK(plain ? e[1]->train_plan.n < m->n_layers : e[1]->train_plan.n == m->n_layers,
              "%s pool: %d steps for %d nodes", plain ? "plain" : "general", e[1]->train_plan.n, m->n_layers);
        double diff = 0, norm = 0;
        for (size_t k = 0; k < m->n_param_floats; k++) {
            double d = e[0]->param_grad[k] - e[1]->param_grad[k];
            diff += d * d, norm += (double)e[0]->param_grad[k] * e[0]->param_grad[k];
        }
        CHECK(fabsf(loss[0] - loss[1]) <= 1e-6f * fabsf(loss[0]) && norm > 0 && sqrt(diff / norm) < 1e-5,
              "%s pool: fused and unfused agree (loss %g vs %g, gradients %.2e)", plain ? "plain" : "general",
              loss[0], loss[1], sqrt(diff / norm));
        cs_exec_free(e[0]);
        cs_exec_free(e[1]);
        cs_model_free(m);
    }
}

int main(void)
{
    test_scratch_dir("graph-kinds");
    RUN(test_names);
    RUN(test_avgpool);
    RUN(test_maxpool_general);
    RUN(test_global_pools);
    RUN(test_activations);
    RUN(test_softmax);
    RUN(test_add);
    RUN(test_subtract);
    RUN(test_multiply);
    RUN(test_concatenate);
    RUN(test_zero_padding);
    RUN(test_rescaling_normalization);
    RUN(test_refused_configs);
    RUN(test_refused_json);
    RUN(test_json_forms);
    RUN(test_notebook_pools);
    RUN(test_pool_values);
    RUN(test_fusion_only_plain);
    return test_summary("graph_kinds");
}
