/*
 * test_gradcheck.c - every layer's backward pass against central finite differences.
 *
 * Each check builds a small network, takes a scalar S of its output (a random
 * projection, the cross-entropy loss plus penalties, or one class score), computes
 * dS/dparams by back-propagation, and compares a sample of them with
 * (S(w + h) - S(w - h)) / 2h. Parameter gradients of the first layer pass through
 * every layer above it, so every kernel's input gradient is checked too.
 * The error measure is ||analytic - numeric|| / ||analytic + numeric|| over the
 * sampled entries; float32 arithmetic with h = 1e-2 keeps it well under 1e-3 for
 * smooth layers. The full 28x28 network is checked against a double-precision
 * reference in test_gradcheck_double.c, where float noise does not limit the check.
 */
#include <stdlib.h>

#include "exec.h"
#include "gradcam.h"
#include "rng.h"
#include "test.h"

enum { SCALAR_PROJECTION, SCALAR_XENT, SCALAR_LOGIT, SCALAR_PROBABILITY };

typedef struct {
    cs_model *m;
    cs_exec *e;
    float *x;
    float *proj;
    uint8_t *labels;
    int n, kind, training;
} gc_case;

/* S for the current parameters (double accumulation over the outputs). */
static double scalar(gc_case *c)
{
    cs_exec_seed_dropout(c->e, 99); /* the same dropout mask every time */
    cs_exec_forward(c->e, c->x, c->n, c->training, NULL);
    const cs_model *m = c->m;
    int top = m->n_layers - 1;
    size_t k = cs_shape_size(m->layers[top].out), total = (size_t)c->n * k;
    double s = 0;
    switch (c->kind) {
    case SCALAR_PROJECTION:
        for (size_t i = 0; i < total; i++) s += (double)c->proj[i] * c->e->act[top][i];
        break;
    case SCALAR_XENT: s = cs_exec_xent(c->e, c->labels, NULL) + cs_model_penalty(m, NULL); break;
    case SCALAR_LOGIT:
        for (int i = 0; i < c->n; i++) s += c->e->logits[i * k + c->labels[i]];
        break;
    case SCALAR_PROBABILITY:
        for (int i = 0; i < c->n; i++) s += c->e->act[top][i * k + c->labels[i]];
        break;
    }
    return s;
}

static void analytic(gc_case *c)
{
    scalar(c);
    int top = c->m->n_layers - 1, classes[64];
    for (int i = 0; i < c->n; i++) classes[i] = c->labels[i];
    if (c->kind == SCALAR_PROJECTION) {
        cs_exec_seed_class(c->e, classes, 0); /* allocates grad[top] */
        memcpy(c->e->grad[top], c->proj, (size_t)c->n * cs_shape_size(c->m->layers[top].out) * sizeof(float));
        c->e->top_is_dz = 0;
    } else if (c->kind == SCALAR_LOGIT || c->kind == SCALAR_PROBABILITY) {
        cs_exec_seed_class(c->e, classes, c->kind == SCALAR_PROBABILITY);
    }
    cs_exec_backward(c->e, -1);
    if (c->kind == SCALAR_XENT) cs_model_penalty(c->m, c->e->param_grad);
}

static double central(gc_case *c, cs_param *p, size_t k, double h)
{
    float keep = p->data[k];
    p->data[k] = keep + (float)h;
    double up = scalar(c);
    p->data[k] = keep - (float)h;
    double down = scalar(c);
    p->data[k] = keep;
    /* The step actually taken in float, not the one asked for. */
    return (up - down) / ((double)(keep + (float)h) - (double)(keep - (float)h));
}

/* Compares up to `samples` entries of every trainable tensor; returns the worst error. */
static double check_params(gc_case *c, int samples, double h, int skip_kinks)
{
    analytic(c);
    float *g = malloc(c->m->n_param_floats * sizeof(float));
    memcpy(g, c->e->param_grad, c->m->n_param_floats * sizeof(float));
    cs_rng r;
    cs_rng_seed(&r, 5);
    double worst = 0;
    for (int li = 0; li < c->m->n_layers; li++)
        for (int pj = 0; pj < c->m->layers[li].n_params; pj++) {
            cs_param *p = &c->m->layers[li].params[pj];
            if (!p->trainable) continue;
            double diff = 0, sum = 0;
            int used = 0, skipped = 0;
            const int count = p->size < (size_t)samples ? (int)p->size : samples;
            for (int s = 0; s < count; s++) {
                size_t k = p->size <= (size_t)samples ? (size_t)s : cs_rng_below(&r, (uint32_t)p->size);
                double num = central(c, p, k, h), half = central(c, p, k, h / 2);
                double ana = g[p->data - c->m->param_block + k];
                int zero = fabs(ana) < 1e-6 && fabs(num) < 1e-3; /* zero by construction, noise */
                /* Where a step crosses a kink of LeakyReLU/ReLU or a max-pool tie the two
                 * estimates disagree and neither is a derivative: that sample is set
                 * aside (at most a quarter may be). */
                if (skip_kinks && !zero && fabs(num - half) > 0.01 * (fabs(num) + fabs(half)) + 1e-4) {
                    skipped++;
                    continue;
                }
                diff += (num - ana) * (num - ana);
                sum += (num + ana) * (num + ana);
                used++;
            }
            /* A gradient that is zero by construction (a bias feeding a batch norm) has
             * no scale to be relative to: there the RMS absolute error counts. */
            double err = sqrt(sum) > 1e-3 ? sqrt(diff) / sqrt(sum) : sqrt(diff / (used ? used : 1));
            if (skipped * 4 > count) {
                fprintf(stderr, "    %s/%s: %d of %d samples straddle a kink\n", c->m->layers[li].name, p->name,
                        skipped, count);
                err = 1;
            }
            if (err > worst) worst = err;
            if (err > 1e-3)
                fprintf(stderr, "    %s/%s: relative error %.2e\n", c->m->layers[li].name, p->name, err);
        }
    free(g);
    return worst;
}

static gc_case make_case(cs_model *m, int n, int kind, int training, uint64_t seed)
{
    gc_case c = {.m = m, .n = n, .kind = kind, .training = training};
    cs_model_init_weights(m, seed);
    cs_rng r;
    cs_rng_seed(&r, seed + 1);
    /* Non-trivial batch-norm parameters, so their gradients are tested away from 1 and 0. */
    for (int i = 0; i < m->n_layers; i++)
        if (m->layers[i].kind == CS_BATCHNORM)
            for (int j = 0; j < m->layers[i].out.c; j++) {
                m->layers[i].params[0].data[j] = (float)(0.5 + cs_rng_uniform(&r));
                m->layers[i].params[1].data[j] = (float)(cs_rng_uniform(&r) - 0.5);
                m->layers[i].params[2].data[j] = (float)(cs_rng_uniform(&r) - 0.5);
                m->layers[i].params[3].data[j] = (float)(0.5 + cs_rng_uniform(&r));
            }
    size_t in = (size_t)n * cs_shape_size(m->input), out = (size_t)n * cs_shape_size(m->layers[m->n_layers - 1].out);
    c.x = malloc(in * sizeof(float));
    c.proj = malloc(out * sizeof(float));
    c.labels = malloc((size_t)n);
    for (size_t i = 0; i < in; i++) c.x[i] = (float)(2 * cs_rng_uniform(&r) - 1);
    for (size_t i = 0; i < out; i++) c.proj[i] = (float)(2 * cs_rng_uniform(&r) - 1);
    int classes = m->layers[m->n_layers - 1].out.c;
    for (int i = 0; i < n; i++) c.labels[i] = (uint8_t)cs_rng_below(&r, (uint32_t)classes);
    c.e = cs_exec_new(m, n);
    cs_exec_enable_param_grads(c.e);
    return c;
}

static void free_case(gc_case *c)
{
    cs_exec_free(c->e);
    free(c->x), free(c->proj), free(c->labels);
    cs_model_free(c->m);
}

static cs_model *build(cs_shape in, int n, const cs_layer_kind *kinds, const cs_layer_config *cfgs)
{
    cs_model *m = cs_model_new("t", in);
    char err[160], name[16];
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof name, "l%d", i);
        if (cs_model_add(m, name, kinds[i], &cfgs[i], err, sizeof err) < 0) {
            fprintf(stderr, "%s\n", err);
            cs_model_free(m);
            return NULL;
        }
    }
    cs_model_finish(m);
    return m;
}

static void test_conv_valid_and_dense(void)
{
    cs_layer_kind k[] = {CS_CONV2D, CS_FLATTEN, CS_DENSE};
    cs_layer_config c[] = {{.filters = 3, .kernel = 3, .he_normal = 1}, {0}, {.units = 4}};
    gc_case g = make_case(build((cs_shape){6, 5, 2}, 3, k, c), 3, SCALAR_PROJECTION, 0, 1);
    double err = check_params(&g, 40, 1e-2, 1);
    CHECK(err < 1e-3, "conv valid + dense: %.2e", err);
    free_case(&g);
}

static void test_conv_same_stride_relu(void)
{
    cs_layer_kind k[] = {CS_CONV2D, CS_CONV2D, CS_FLATTEN, CS_DENSE};
    cs_layer_config c[] = {{.filters = 4, .kernel = 3, .pad_same = 1, .activation = CS_ACT_RELU, .he_normal = 1},
                           {.filters = 3, .kernel = 3, .stride = 2, .pad_same = 1, .he_normal = 1},
                           {0},
                           {.units = 5, .activation = CS_ACT_RELU, .he_normal = 1}};
    gc_case g = make_case(build((cs_shape){7, 6, 2}, 4, k, c), 2, SCALAR_PROJECTION, 0, 2);
    double err = check_params(&g, 40, 1e-3, 1);
    CHECK(err < 1e-3, "same padding, stride 2, fused relu: %.2e", err);
    free_case(&g);
}

static void test_batchnorm_training(void)
{
    cs_layer_kind k[] = {CS_CONV2D, CS_BATCHNORM, CS_LEAKY_RELU, CS_FLATTEN, CS_DENSE, CS_BATCHNORM};
    cs_layer_config c[] = {{.filters = 3, .kernel = 3, .he_normal = 1}, {0}, {.alpha = 0.3f}, {0}, {.units = 4}, {0}};
    gc_case g = make_case(build((cs_shape){5, 5, 1}, 6, k, c), 4, SCALAR_PROJECTION, 1, 3);
    double err = check_params(&g, 30, 1e-2, 1);
    CHECK(err < 1e-3, "batch norm (batch statistics) + leaky relu: %.2e", err);
    free_case(&g);
}

static void test_batchnorm_inference_pool(void)
{
    cs_layer_kind k[] = {CS_CONV2D, CS_BATCHNORM, CS_LEAKY_RELU, CS_MAXPOOL, CS_FLATTEN, CS_DENSE};
    cs_layer_config c[] = {{.filters = 3, .kernel = 3, .he_normal = 1}, {0}, {.alpha = 0.3f}, {.pool = 2}, {0},
                           {.units = 3}};
    gc_case g = make_case(build((cs_shape){7, 7, 2}, 6, k, c), 2, SCALAR_PROJECTION, 0, 4);
    double err = check_params(&g, 40, 1e-3, 1);
    CHECK(err < 1e-3, "batch norm (moving statistics) + max pool: %.2e", err);
    free_case(&g);
}

/* The notebook's fourteen layers with the same kinds and settings (penalties,
 * batch norm, LeakyReLU, pooling, dropout, softmax), on a 12x12 input with fewer
 * filters: small enough that few activations sit near a kink of LeakyReLU or a tie of
 * max-pool, where float32 finite differences stop being informative. */
static cs_model *build_mini_notebook(void)
{
    const float l1 = 1e-2f, l2 = 1e-2f; /* large enough that a wrong penalty gradient shows */
    cs_layer_kind k[] = {CS_CONV2D,    CS_BATCHNORM, CS_LEAKY_RELU, CS_MAXPOOL, CS_CONV2D,
                         CS_BATCHNORM, CS_LEAKY_RELU, CS_MAXPOOL,   CS_FLATTEN, CS_DENSE,
                         CS_BATCHNORM, CS_LEAKY_RELU, CS_DROPOUT,   CS_DENSE};
    cs_layer_config c[] = {{.filters = 4, .kernel = 3, .he_normal = 1, .l1 = l1, .l2 = l2},
                           {0}, {.alpha = 0.3f}, {.pool = 2},
                           {.filters = 5, .kernel = 3, .he_normal = 1, .l1 = l1, .l2 = l2},
                           {0}, {.alpha = 0.3f}, {.pool = 2}, {0},
                           {.units = 6, .he_normal = 1, .l1 = l1, .l2 = l2},
                           {0}, {.alpha = 0.3f}, {.rate = 0.4f},
                           {.units = 10, .activation = CS_ACT_SOFTMAX}};
    return build((cs_shape){12, 12, 1}, 14, k, c);
}

/* Training mode: the gradient of the full loss (cross-entropy + l1_l2) with respect to
 * every parameter tensor, through dropout and batch statistics; fuse: each batch norm
 * -> LeakyReLU -> max pool as one block, as training runs it (the second block's 3x3
 * input leaves a ragged edge to the pool). */
static void whole_network_loss(int fuse)
{
    gc_case g = make_case(build_mini_notebook(), 6, SCALAR_XENT, 1, 6);
    cs_exec_set_fusion(g.e, fuse);
    double err = check_params(&g, 30, 3e-3, 1);
    /* Through three float32 batch norms in training mode the differences themselves
     * carry rounding: the second batch norm sees 54 values per channel, and its small
     * beta gradient comes out 3e-3 to 1e-2 off depending on the CPU (fused
     * multiply-adds or not). A wrong backward pass is off by 0.1 to 1 (tried), and the
     * double-precision check of the full network (test_gradcheck_double.c) holds every
     * tensor to 1e-3. */
    CHECK(err < 3e-2, "notebook-shaped network%s, loss gradient: %.2e", fuse ? " with fused blocks" : "", err);
    free_case(&g);
}

static void test_whole_network_loss(void) { whole_network_loss(0); }
static void test_whole_network_loss_fused(void) { whole_network_loss(1); }

/* One training step of the layers one by one against the fused blocks: the same
 * float operations, but the batch statistics are summed in other groupings (a conv
 * gathers them chunk by chunk), so values agree to float rounding: the pooled outputs
 * and the loss to 1e-6, the gradients to 1e-5. */
static void compare_fused(cs_model *m, const char *what)
{
    gc_case a = make_case(m, 6, SCALAR_XENT, 1, 8);
    cs_exec *f = cs_exec_new(m, 6);
    cs_exec_enable_param_grads(f);
    cs_exec_set_fusion(f, 1);
    double loss_a = scalar(&a);
    cs_exec_backward(a.e, -1);
    cs_exec_seed_dropout(f, 99);
    cs_exec_forward(f, a.x, a.n, 1, NULL);
    double loss_f = cs_exec_xent(f, a.labels, NULL) + cs_model_penalty(m, NULL);
    cs_exec_backward(f, -1);
    CHECK(fabs(loss_a - loss_f) <= 1e-6 * fabs(loss_a), "%s: the same loss (%.9g vs %.9g)", what, loss_a, loss_f);
    for (int i = 0; i < m->n_layers; i++)
        if (m->layers[i].kind == CS_MAXPOOL) {
            size_t count = (size_t)a.n * cs_shape_size(m->layers[i].out), same = 0;
            for (size_t k = 0; k < count; k++)
                same += fabsf(a.e->act[i][k] - f->act[i][k]) <= 1e-6f * (1 + fabsf(a.e->act[i][k]));
            CHECK(same == count, "%s: layer %d pooled the same (%zu of %zu)", what, i, same, count);
        }
    /* Every activation gradient the fused passes wrote (not those inside a block, nor a
     * conv's that its block handed over chunk by chunk). */
    int compared = 0;
    for (int i = 0; i < m->n_layers - 1; i++) {
        if (!f->grad[i]) continue;
        double diff = 0, norm = 0;
        for (size_t k = 0; k < (size_t)a.n * cs_shape_size(m->layers[i].out); k++) {
            double d = a.e->grad[i][k] - f->grad[i][k];
            diff += d * d, norm += (double)a.e->grad[i][k] * a.e->grad[i][k];
        }
        CHECK(norm > 0 && sqrt(diff / norm) < 1e-5, "%s: gradient at layer %d: %.2e", what, i, sqrt(diff / norm));
        compared++;
    }
    CHECK(compared >= 2, "%s: %d activation gradients compared", what, compared);
    double diff = 0, norm = 0;
    for (size_t k = 0; k < m->n_param_floats; k++) {
        double d = a.e->param_grad[k] - f->param_grad[k];
        diff += d * d, norm += (double)a.e->param_grad[k] * a.e->param_grad[k];
    }
    CHECK(norm > 0 && sqrt(diff / norm) < 1e-5, "%s: parameter gradients: %.2e", what, sqrt(diff / norm));
    cs_exec_free(f);
    free_case(&a);
}

static void test_fused_blocks_match_layers(void)
{
    compare_fused(build_mini_notebook(), "LeakyReLU");
    /* ReLU: many values tie at 0 in a window, where the first one takes the gradient.
     * A conv with its own ReLU below the block: the block writes its whole input
     * gradient instead of handing it to the conv chunk by chunk. */
    cs_layer_kind k[] = {CS_CONV2D, CS_BATCHNORM, CS_RELU, CS_MAXPOOL, CS_FLATTEN, CS_DENSE};
    cs_layer_config c[] = {{.filters = 6, .kernel = 3, .he_normal = 1, .activation = CS_ACT_RELU}, {0}, {0},
                           {.pool = 2}, {0}, {.units = 10, .activation = CS_ACT_SOFTMAX}};
    compare_fused(build((cs_shape){9, 9, 2}, 6, k, c), "ReLU, ragged edge");
}

static void test_class_scores(void)
{
    /* Grad-CAM differentiates a class logit or probability in inference mode. */
    for (int kind = SCALAR_LOGIT; kind <= SCALAR_PROBABILITY; kind++) {
        gc_case g = make_case(build_mini_notebook(), 2, kind, 0, 7);
        double err = check_params(&g, 30, 1e-2, 1);
        CHECK(err < 5e-3, "%s gradient: %.2e", kind == SCALAR_LOGIT ? "logit" : "probability", err);
        free_case(&g);
    }
}

static void test_activation_gradient(void)
{
    /* d logit / d act[layer] read after a backward that stops at the layer equals the
     * finite difference of the logit when one activation value is nudged and the rest
     * of the network is recomputed from there. */
    cs_model *m = cs_model_build_fmnist();
    gc_case g = make_case(m, 1, SCALAR_LOGIT, 0, 8);
    const int layer = 6, cls = 3;
    cs_exec_forward(g.e, g.x, 1, 0, NULL);
    cs_exec_seed_class(g.e, &cls, 0);
    cs_exec_backward(g.e, layer);
    size_t size = cs_shape_size(m->layers[layer].out);
    float *grad = malloc(size * sizeof(float)), *saved = malloc(size * sizeof(float));
    memcpy(grad, g.e->grad[layer], size * sizeof(float));
    memcpy(saved, g.e->act[layer], size * sizeof(float));
    /* A second exec runs the layers above `layer` on a nudged copy of its output. */
    cs_model *upper = cs_model_new("upper", m->layers[layer].out);
    char err[100];
    for (int i = layer + 1; i < m->n_layers; i++)
        cs_model_add(upper, m->layers[i].name, m->layers[i].kind, &m->layers[i].cfg, err, sizeof err);
    cs_model_finish(upper);
    /* Parameters are laid out in layer order, so the upper block is the tail of the
     * model's, from dense_1 (the first layer above with parameters). */
    const float *tail = m->layers[cs_model_find_layer(m, "dense_1")].params[0].data;
    CHECK(tail + upper->n_param_floats == m->param_block + m->n_param_floats, "upper block is the tail");
    memcpy(upper->param_block, tail, upper->n_param_floats * sizeof(float));
    cs_exec *ue = cs_exec_new(upper, 1);
    double diff = 0, sum = 0;
    cs_rng r;
    cs_rng_seed(&r, 9);
    for (int s = 0; s < 60; s++) {
        size_t k = cs_rng_below(&r, (uint32_t)size);
        double v[2];
        for (int d = 0; d < 2; d++) {
            memcpy(g.e->act[layer], saved, size * sizeof(float));
            g.e->act[layer][k] += d ? -1e-2f : 1e-2f;
            cs_exec_forward(ue, g.e->act[layer], 1, 0, NULL);
            v[d] = ue->logits[cls];
        }
        double num = (v[0] - v[1]) / 2e-2;
        diff += (num - grad[k]) * (num - grad[k]);
        sum += (num + grad[k]) * (num + grad[k]);
    }
    double e = sqrt(diff / sum);
    CHECK(e < 1e-3, "d logit / d leaky_re_lu_2: %.2e", e);
    cs_exec_free(ue);
    cs_model_free(upper);
    free(grad), free(saved);
    free_case(&g);
}

static void test_gradcam_values(void)
{
    cs_model *m = cs_model_build_fmnist();
    gc_case g = make_case(m, 1, SCALAR_LOGIT, 0, 10);
    cs_gradcam_result r;
    char err[200];
    CHECK(cs_gradcam(g.e, g.x, 6, -1, CS_SCORE_LOGIT, &r, err, sizeof err) == 0, "gradcam runs: %s", err);
    CHECK(r.h == 11 && r.w == 11, "heatmap at the layer's resolution");
    float mx = 0;
    int finite = 1;
    for (int i = 0; i < r.h * r.w; i++) {
        finite &= r.heatmap[i] >= 0 && r.heatmap[i] <= 1;
        if (r.heatmap[i] > mx) mx = r.heatmap[i];
    }
    CHECK(finite, "values in 0..1");
    CHECK(r.all_zero ? mx == 0 : mx == 1, "normalised to a maximum of 1 (or flagged all zero)");
    CHECK(r.class_index == cs_argmax(g.e->act[m->n_layers - 1], 10), "default class is the predicted one");
    CHECK(r.probability > 0 && r.probability <= 1, "probability");
    free(r.heatmap);
    CHECK(cs_gradcam(g.e, g.x, 9, -1, 0, &r, err, sizeof err) == -1 && strstr(err, "spatial"),
          "dense layer refused: %s", err);
    free_case(&g);
}

int main(void)
{
    RUN(test_conv_valid_and_dense);
    RUN(test_conv_same_stride_relu);
    RUN(test_batchnorm_training);
    RUN(test_batchnorm_inference_pool);
    RUN(test_whole_network_loss);
    RUN(test_whole_network_loss_fused);
    RUN(test_fused_blocks_match_layers);
    RUN(test_class_scores);
    RUN(test_activation_gradient);
    RUN(test_gradcam_values);
    return test_summary("gradcheck");
}
