/*
 * test_conv_kinds.c - the conv kinds as nodes of a graph: Conv2D with any window
 * (rectangular, strided and dilated per axis, asymmetric padding, channel groups),
 * DepthwiseConv2D and SeparableConv2D. Each is checked through the executor: its
 * output against a naive double-precision convolution, its parameter gradients (and,
 * through a conv below it, its input gradient) against central finite differences of
 * a random projection of the model's output, and a save and load of the model file
 * giving the same outputs bit for bit.
 */
#include <stdlib.h>
#include <unistd.h>

#include "exec.h"
#include "layer_ops.h"
#include "model_file.h"
#include "rng.h"
#include "test.h"

typedef struct {
    cs_model *m;
    cs_exec *e;
    float *x, *proj;
    int n;
} fd_case;

static double scalar(fd_case *c)
{
    cs_exec_forward(c->e, c->x, c->n, 0, NULL);
    int top = c->m->n_layers - 1;
    size_t total = (size_t)c->n * cs_shape_size(c->m->layers[top].out);
    double s = 0;
    for (size_t i = 0; i < total; i++) s += (double)c->proj[i] * c->e->act[top][i];
    return s;
}

/* Relative error ||analytic - numeric|| / ||analytic + numeric|| over up to 24
 * entries of every parameter tensor. */
static double check_grads(fd_case *c)
{
    int top = c->m->n_layers - 1;
    scalar(c);
    memcpy(c->e->grad[top], c->proj, (size_t)c->n * cs_shape_size(c->m->layers[top].out) * sizeof(float));
    c->e->top_is_dz = 0;
    CHECK(cs_exec_backward(c->e, -1) == 0, "backward");
    float *g = malloc(c->m->n_param_floats * sizeof(float));
    memcpy(g, c->e->param_grad, c->m->n_param_floats * sizeof(float));
    cs_rng r;
    cs_rng_seed(&r, 3);
    double worst = 0;
    for (int li = 0; li < c->m->n_layers; li++)
        for (int pj = 0; pj < c->m->layers[li].n_params; pj++) {
            cs_param *p = &c->m->layers[li].params[pj];
            double diff = 0, sum = 0;
            for (int s = 0; s < 24; s++) {
                size_t k = p->size <= 24 ? (size_t)s % p->size : cs_rng_below(&r, (uint32_t)p->size);
                float keep = p->data[k];
                const float h = 1e-2f;
                p->data[k] = keep + h;
                double up = scalar(c);
                p->data[k] = keep - h;
                double down = scalar(c);
                p->data[k] = keep;
                double num = (up - down) / ((double)(keep + h) - (double)(keep - h));
                double ana = g[p->data - c->m->param_block + k];
                diff += (num - ana) * (num - ana);
                sum += (num + ana) * (num + ana);
            }
            double err = sum > 1e-12 ? sqrt(diff / sum) : sqrt(diff);
            if (err > 2e-3) fprintf(stderr, "    %s/%s: %.2e\n", c->m->layers[li].name, p->name, err);
            if (err > worst) worst = err;
        }
    free(g);
    return worst;
}

static fd_case make_case(cs_model *m, int n, uint64_t seed)
{
    fd_case c = {.m = m, .n = n};
    cs_model_init_weights(m, seed);
    cs_rng r;
    cs_rng_seed(&r, seed + 7);
    for (size_t i = 0; i < m->n_param_floats; i++) m->param_block[i] += 0.05f * (float)cs_rng_normal(&r);
    size_t in = (size_t)n * cs_shape_size(m->input), out = (size_t)n * cs_shape_size(m->layers[m->n_layers - 1].out);
    c.x = malloc(in * sizeof(float));
    c.proj = malloc(out * sizeof(float));
    for (size_t i = 0; i < in; i++) c.x[i] = (float)cs_rng_normal(&r);
    for (size_t i = 0; i < out; i++) c.proj[i] = (float)cs_rng_normal(&r);
    c.e = cs_exec_new(m, n);
    if (c.e) cs_exec_enable_param_grads(c.e);
    return c;
}

static void free_case(fd_case *c)
{
    cs_exec_free(c->e);
    cs_model_free(c->m);
    free(c->x);
    free(c->proj);
}

/* y[b, oy, ox, o] of a grouped, dilated, padded conv in double, kernel (kh, kw, ic/g, oc). */
static double ref_conv(const cs_layer *l, int oc, const float *x, int b, int oy, int ox, int o, int kh, int kw,
                       int sh, int sw, int dh, int dw, int pt, int pl, int groups, const float *w, const float *bias)
{
    const int icg = l->in.c / groups, g = o / (oc / groups);
    double acc = bias ? bias[o] : 0;
    for (int ky = 0; ky < kh; ky++)
        for (int kx = 0; kx < kw; kx++) {
            int iy = oy * sh + ky * dh - pt, ix = ox * sw + kx * dw - pl;
            if (iy < 0 || iy >= l->in.h || ix < 0 || ix >= l->in.w) continue;
            for (int c = 0; c < icg; c++)
                acc += (double)x[(((size_t)b * l->in.h + iy) * l->in.w + ix) * l->in.c + g * icg + c] *
                       w[(((size_t)ky * kw + kx) * icg + c) * oc + o];
        }
    return acc;
}

/* A general Conv2D between two plain ones, so its input gradient is used too. */
static cs_model *general_conv_model(void)
{
    char err[200];
    cs_model *m = cs_model_new("test", (cs_shape){9, 8, 4});
    cs_layer_config c0 = {.filters = 4, .kernel = 1};
    cs_layer_config c1 = {.filters = 6, .kernel = 3, .kernel_w = 2, .stride = 2, .stride_w = 1, .dilation = 1,
                          .dilation_w = 2, .pad_explicit = 1, .pads = {0, 1, 1, 0}, .groups = 2};
    cs_layer_config flat = {0}, dense = {.units = 5};
    int ok = cs_model_add(m, "c0", CS_CONV2D, &c0, err, sizeof err) >= 0 &&
             cs_model_add(m, "grouped", CS_CONV2D, &c1, err, sizeof err) >= 0 &&
             cs_model_add(m, "flat", CS_FLATTEN, &flat, err, sizeof err) >= 0 &&
             cs_model_add(m, "out", CS_DENSE, &dense, err, sizeof err) >= 0 && cs_model_finish(m) == 0;
    CHECK(ok, "general conv model: %s", err);
    return ok ? m : NULL;
}

static void test_general_conv_values_and_gradients(void)
{
    cs_model *m = general_conv_model();
    if (!m) return;
    const cs_layer *l = &m->layers[1];
    /* (9 + 0 + 1 - 3) / 2 + 1 = 4 rows; (8 + 1 + 0 - 3) + 1 = 7 columns (dilated width 3). */
    CHECK(l->out.h == 4 && l->out.w == 7 && l->out.c == 6, "output %dx%dx%d", l->out.h, l->out.w, l->out.c);
    CHECK(l->params[0].dims[0] == 3 && l->params[0].dims[1] == 2 && l->params[0].dims[2] == 2, "kernel (3, 2, 2, 6)");
    fd_case c = make_case(m, 2, 11);
    scalar(&c);
    double worst = 0;
    for (int b = 0; b < 2; b++)
        for (int oy = 0; oy < 4; oy++)
            for (int ox = 0; ox < 7; ox++)
                for (int o = 0; o < 6; o++) {
                    double want = ref_conv(l, 6, c.e->act[0], b, oy, ox, o, 3, 2, 2, 1, 1, 2, 0, 1, 2,
                                           l->params[0].data, l->params[1].data);
                    double got = c.e->act[1][(((size_t)b * 4 + oy) * 7 + ox) * 6 + o];
                    if (fabs(got - want) > worst) worst = fabs(got - want);
                }
    CHECK(worst < 1e-4, "grouped dilated conv against double: %.2e", worst);
    double err = check_grads(&c);
    CHECK(err < 2e-3, "gradients: %.2e", err);
    free_case(&c);
}

static cs_model *depthwise_model(int separable)
{
    char err[200];
    cs_model *m = cs_model_new("test", (cs_shape){7, 7, 3});
    cs_layer_config c0 = {.filters = 3, .kernel = 1};
    /* No activation: finite differences stay away from kinks. */
    cs_layer_config dw = {.filters = separable ? 5 : 0, .kernel = 3, .stride = 2, .pad_same = 1,
                          .depth_multiplier = 2};
    cs_layer_config flat = {0}, dense = {.units = 4};
    int ok = cs_model_add(m, "c0", CS_CONV2D, &c0, err, sizeof err) >= 0 &&
             cs_model_add(m, "dw", separable ? CS_SEPARABLE_CONV2D : CS_DEPTHWISE_CONV2D, &dw, err, sizeof err) >= 0 &&
             cs_model_add(m, "flat", CS_FLATTEN, &flat, err, sizeof err) >= 0 &&
             cs_model_add(m, "out", CS_DENSE, &dense, err, sizeof err) >= 0 && cs_model_finish(m) == 0;
    CHECK(ok, "model: %s", err);
    return ok ? m : NULL;
}

static void test_depthwise_values_and_gradients(void)
{
    cs_model *m = depthwise_model(0);
    if (!m) return;
    const cs_layer *l = &m->layers[1];
    CHECK(l->out.h == 4 && l->out.w == 4 && l->out.c == 6, "output %dx%dx%d", l->out.h, l->out.w, l->out.c);
    fd_case c = make_case(m, 2, 12);
    scalar(&c);
    /* 'same' with stride 2 over 7: 3 pixels of padding in all, 1 before and 2 after. */
    double worst = 0;
    for (int b = 0; b < 2; b++)
        for (int oy = 0; oy < 4; oy++)
            for (int ox = 0; ox < 4; ox++)
                for (int o = 0; o < 6; o++) {
                    double want = ref_conv(l, 6, c.e->act[0], b, oy, ox, o, 3, 3, 2, 2, 1, 1, 1, 1, 3,
                                           l->params[0].data, l->params[1].data);
                    double got = c.e->act[1][(((size_t)b * 4 + oy) * 4 + ox) * 6 + o];
                    if (fabs(got - want) > worst) worst = fabs(got - want);
                }
    CHECK(worst < 1e-4, "depthwise against double: %.2e", worst);
    double err = check_grads(&c);
    CHECK(err < 2e-3, "gradients: %.2e", err);
    free_case(&c);
}

static void test_separable_values_and_gradients(void)
{
    cs_model *m = depthwise_model(1);
    if (!m) return;
    const cs_layer *l = &m->layers[1];
    CHECK(l->out.h == 4 && l->out.w == 4 && l->out.c == 5 && l->n_params == 3, "output %dx%dx%d, 3 tensors",
          l->out.h, l->out.w, l->out.c);
    fd_case c = make_case(m, 2, 13);
    scalar(&c);
    double worst = 0;
    const float *pw = l->params[1].data, *bias = l->params[2].data;
    for (int b = 0; b < 2; b++)
        for (int oy = 0; oy < 4; oy++)
            for (int ox = 0; ox < 4; ox++)
                for (int f = 0; f < 5; f++) {
                    double want = bias[f];
                    for (int mid = 0; mid < 6; mid++)
                        want += ref_conv(l, 6, c.e->act[0], b, oy, ox, mid, 3, 3, 2, 2, 1, 1, 1, 1, 3,
                                         l->params[0].data, NULL) /* a (3,3,3,2) kernel read as (3,3,1,6) */ *
                                pw[mid * 5 + f];
                    double got = c.e->act[1][(((size_t)b * 4 + oy) * 4 + ox) * 5 + f];
                    if (fabs(got - want) > worst) worst = fabs(got - want);
                }
    CHECK(worst < 1e-4, "separable against double: %.2e", worst);
    double err = check_grads(&c);
    CHECK(err < 2e-3, "gradients: %.2e", err);
    free_case(&c);
}

/* Each kind's configuration survives the model file: the same outputs bit for bit. */
static void round_trip(cs_model *m, const char *what)
{
    if (!m) return;
    fd_case c = make_case(m, 2, 21);
    int top = m->n_layers - 1;
    size_t out = (size_t)2 * cs_shape_size(m->layers[top].out);
    float *before = malloc(out * sizeof(float));
    /* An inference exec like the one below (c.e keeps parameter gradients, so it runs
     * the plain kernels where these may take the fast path: fast_plan.h). */
    cs_exec *e0 = cs_exec_new(m, 2);
    CHECK(e0 && cs_exec_forward(e0, c.x, 2, 0, NULL) == 0, "%s: forward", what);
    if (e0) memcpy(before, e0->act[top], out * sizeof(float));
    cs_exec_free(e0);
    char path[] = "/tmp/convscope-kinds-XXXXXX", err[256];
    int fd = mkstemp(path);
    if (fd >= 0) close(fd);
    CHECK(cs_model_save(m, path, err, sizeof err) == 0, "%s: save: %s", what, err);
    cs_model *back = cs_model_load(path, err, sizeof err);
    unlink(path);
    CHECK(back != NULL, "%s: load: %s", what, err);
    if (back) {
        cs_exec *e = cs_exec_new(back, 2);
        cs_exec_forward(e, c.x, 2, 0, NULL);
        CHECK(!memcmp(before, e->act[top], out * sizeof(float)), "%s: outputs differ after a round trip", what);
        for (int i = 0; i < back->n_layers; i++)
            CHECK(!memcmp(&back->layers[i].cfg, &m->layers[i].cfg, sizeof back->layers[i].cfg),
                  "%s: node %s configuration differs after a round trip", what, back->layers[i].name);
        cs_exec_free(e);
        cs_model_free(back);
    }
    free(before);
    free_case(&c);
}

static void test_model_file_round_trip(void)
{
    round_trip(general_conv_model(), "grouped conv");
    round_trip(depthwise_model(0), "depthwise");
    round_trip(depthwise_model(1), "separable");
}

static void test_bad_windows_refused(void)
{
    char err[200] = "";
    cs_model *m = cs_model_new("test", (cs_shape){5, 5, 6});
    cs_layer_config groups = {.filters = 4, .kernel = 3, .groups = 4};
    CHECK(cs_model_add(m, "g", CS_CONV2D, &groups, err, sizeof err) < 0 && strstr(err, "g:") && strstr(err, "groups"),
          "groups that do not divide the channels: %s", err);
    cs_layer_config big = {.filters = 4, .kernel = 3, .dilation = 3, .pad_explicit = 1};
    CHECK(cs_model_add(m, "d", CS_CONV2D, &big, err, sizeof err) < 0 && strstr(err, "d:"),
          "a dilated window larger than the input: %s", err);
    cs_model_free(m);
}

/* d(scalar)/d(input) through a graph whose input feeds two convs that an Add joins:
 * both paths' gradients must add up in the input gradient. */
static void test_input_gradient(void)
{
    char err[200];
    cs_model *m = cs_model_new("test", (cs_shape){6, 5, 2});
    cs_layer_config a = {.filters = 3, .kernel = 3, .pad_same = 1}, b = a, none = {0}, dense = {.units = 4};
    b.kernel = 1;
    int in = CS_MODEL_INPUT, ia = -1, ib = -1, sum[2], ok;
    ok = (ia = cs_model_add_node(m, "a", CS_CONV2D, &a, &in, 1, err, sizeof err)) >= 0 &&
         (ib = cs_model_add_node(m, "b", CS_CONV2D, &b, &in, 1, err, sizeof err)) >= 0;
    sum[0] = ia, sum[1] = ib;
    int is = -1;
    ok = ok && (is = cs_model_add_node(m, "sum", CS_ADD, &none, sum, 2, err, sizeof err)) >= 0 &&
         cs_model_add_node(m, "flat", CS_FLATTEN, &none, &is, 1, err, sizeof err) >= 0 &&
         cs_model_add(m, "out", CS_DENSE, &dense, err, sizeof err) >= 0 && cs_model_finish(m) == 0;
    CHECK(ok, "model: %s", err);
    if (!ok) {
        cs_model_free(m);
        return;
    }
    fd_case c = make_case(m, 2, 31);
    CHECK(cs_exec_enable_input_grad(c.e) == 0, "input gradient");
    int top = m->n_layers - 1;
    scalar(&c);
    memcpy(c.e->grad[top], c.proj, (size_t)2 * cs_shape_size(m->layers[top].out) * sizeof(float));
    c.e->top_is_dz = 0;
    CHECK(cs_exec_backward(c.e, -1) == 0, "backward");
    size_t n = (size_t)2 * cs_shape_size(m->input);
    float *g = malloc(n * sizeof(float));
    memcpy(g, c.e->input_grad, n * sizeof(float));
    double diff = 0, sum2 = 0;
    for (size_t k = 0; k < n; k += 3) {
        float keep = c.x[k];
        c.x[k] = keep + 1e-2f;
        double up = scalar(&c);
        c.x[k] = keep - 1e-2f;
        double down = scalar(&c);
        c.x[k] = keep;
        double num = (up - down) / ((double)(keep + 1e-2f) - (double)(keep - 1e-2f));
        diff += (num - g[k]) * (num - g[k]);
        sum2 += (num + g[k]) * (num + g[k]);
    }
    CHECK(sqrt(diff / sum2) < 1e-3, "input gradient against finite differences: %.2e", sqrt(diff / sum2));
    /* A pass that stops at a node leaves the input alone. */
    memset(c.e->input_grad, 0, n * sizeof(float));
    cs_exec_backward(c.e, is);
    int untouched = 1;
    for (size_t k = 0; k < n; k++) untouched &= c.e->input_grad[k] == 0;
    CHECK(untouched, "a backward down to node 'sum' wrote the input gradient");
    free(g);
    free_case(&c);
}

int main(void)
{
    RUN(test_input_gradient);
    RUN(test_general_conv_values_and_gradients);
    RUN(test_depthwise_values_and_gradients);
    RUN(test_separable_values_and_gradients);
    RUN(test_model_file_round_trip);
    RUN(test_bad_windows_refused);
    return test_summary("conv_kinds");
}
