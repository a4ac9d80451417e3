/*
 * test_gradcheck_double.c - the whole network's loss gradient against finite
 * differences of an independent double-precision implementation.
 *
 * Float32 finite differences through ~30,000 LeakyReLU and max-pool kinks stop being
 * informative at about 1e-2. So this test writes the training-mode loss of a
 * sequential model (conv2d, batch norm with batch statistics, LeakyReLU/ReLU,
 * max-pool, flatten, dense, dropout with the exec's own mask, softmax cross-entropy,
 * l1_l2 penalties) again, plainly and in double, and differentiates that with a step
 * of 1e-6, where rounding is ~1e-10 and a step rarely crosses a kink. The analytic
 * float gradients of the core must agree with it to 1e-3 relative, for every
 * parameter tensor of the notebook's full 28x28 network.
 */
#include <stdlib.h>

#include "exec.h"
#include "rng.h"
#include "test.h"

typedef struct {
    const cs_model *m;
    const cs_exec *e; /* for the dropout masks of its last training forward */
    const double *x;  /* n inputs */
    const uint8_t *labels;
    int n;
} ref_case;

/* Output of one layer in double, NHWC; `p` points at the layer's parameters in the
 * double copy of the parameter block. */
static double *ref_layer(const ref_case *rc, int li, const double *in, const double *pblock)
{
    const cs_layer *l = &rc->m->layers[li];
    const int n = rc->n;
    const size_t in_size = cs_shape_size(l->in), out_size = cs_shape_size(l->out);
    double *out = calloc((size_t)n * out_size, sizeof(double));
    const double *p0 = l->n_params ? pblock + (l->params[0].data - rc->m->param_block) : NULL;
    const double *p1 = l->n_params > 1 ? pblock + (l->params[1].data - rc->m->param_block) : NULL;
    switch (l->kind) {
    case CS_CONV2D: {
        const int k = l->cfg.kernel, s = l->cfg.stride, ic = l->in.c, oc = l->out.c;
        int pt = 0, pl = 0;
        if (l->cfg.pad_same) {
            int ph = (l->out.h - 1) * s + k - l->in.h, pw = (l->out.w - 1) * s + k - l->in.w;
            pt = ph > 0 ? ph / 2 : 0;
            pl = pw > 0 ? pw / 2 : 0;
        }
        for (int b = 0; b < n; b++)
            for (int oy = 0; oy < l->out.h; oy++)
                for (int ox = 0; ox < l->out.w; ox++)
                    for (int o = 0; o < oc; o++) {
                        double acc = p1[o];
                        for (int ky = 0; ky < k; ky++)
                            for (int kx = 0; kx < k; kx++) {
                                int iy = oy * s + ky - pt, ix = ox * s + kx - pl;
                                if (iy < 0 || iy >= l->in.h || ix < 0 || ix >= l->in.w) continue;
                                for (int c = 0; c < ic; c++)
                                    acc += in[(size_t)b * in_size + ((size_t)iy * l->in.w + ix) * ic + c] *
                                           p0[((size_t)(ky * k + kx) * ic + c) * oc + o];
                            }
                        out[(size_t)b * out_size + ((size_t)oy * l->out.w + ox) * oc + o] = acc;
                    }
        break;
    }
    case CS_DENSE:
        for (int b = 0; b < n; b++)
            for (int o = 0; o < l->out.c; o++) {
                double acc = p1[o];
                for (int i = 0; i < l->in.c; i++) acc += in[(size_t)b * in_size + i] * p0[(size_t)i * l->out.c + o];
                out[(size_t)b * out_size + o] = acc;
            }
        break;
    case CS_BATCHNORM: {
        const int c = l->in.c;
        const size_t rows = (size_t)n * l->in.h * l->in.w;
        for (int j = 0; j < c; j++) {
            double mean = 0, var = 0;
            for (size_t r = 0; r < rows; r++) mean += in[r * c + j];
            mean /= rows;
            for (size_t r = 0; r < rows; r++) var += (in[r * c + j] - mean) * (in[r * c + j] - mean);
            var /= rows; /* batch statistics, biased variance */
            for (size_t r = 0; r < rows; r++)
                out[r * c + j] = p0[j] * (in[r * c + j] - mean) / sqrt(var + l->cfg.epsilon) + p1[j];
        }
        break;
    }
    case CS_LEAKY_RELU:
        for (size_t i = 0; i < (size_t)n * in_size; i++) out[i] = in[i] > 0 ? in[i] : l->cfg.alpha * in[i];
        break;
    case CS_RELU:
        for (size_t i = 0; i < (size_t)n * in_size; i++) out[i] = in[i] > 0 ? in[i] : 0;
        break;
    case CS_MAXPOOL: {
        const int p = l->cfg.pool, c = l->in.c;
        for (int b = 0; b < n; b++)
            for (int oy = 0; oy < l->out.h; oy++)
                for (int ox = 0; ox < l->out.w; ox++)
                    for (int j = 0; j < c; j++) {
                        double mx = -INFINITY;
                        for (int wy = 0; wy < p; wy++)
                            for (int wx = 0; wx < p; wx++) {
                                double v = in[(size_t)b * in_size + ((size_t)(oy * p + wy) * l->in.w + ox * p + wx) * c + j];
                                if (v > mx) mx = v;
                            }
                        out[(size_t)b * out_size + ((size_t)oy * l->out.w + ox) * c + j] = mx;
                    }
        break;
    }
    case CS_FLATTEN: memcpy(out, in, (size_t)n * in_size * sizeof(double)); break;
    case CS_DROPOUT:
        for (size_t i = 0; i < (size_t)n * in_size; i++)
            out[i] = rc->e->mask[li][i] ? in[i] / (1.0 - l->cfg.rate) : 0;
        break;
    default: CHECK(0, "no reference for %s", cs_layer_kind_name(l->kind)); break;
    }
    if ((l->kind == CS_CONV2D || l->kind == CS_DENSE) && l->cfg.activation == CS_ACT_RELU)
        for (size_t i = 0; i < (size_t)n * out_size; i++) out[i] = out[i] > 0 ? out[i] : 0;
    return out;
}

/* Mean cross-entropy of the softmax output plus the l1_l2 penalties, in double. */
static double ref_loss(const ref_case *rc, const double *pblock)
{
    const cs_model *m = rc->m;
    double *a = malloc((size_t)rc->n * cs_shape_size(m->input) * sizeof(double));
    memcpy(a, rc->x, (size_t)rc->n * cs_shape_size(m->input) * sizeof(double));
    for (int i = 0; i < m->n_layers; i++) {
        double *next = ref_layer(rc, i, a, pblock);
        free(a);
        a = next;
    }
    const int k = m->layers[m->n_layers - 1].out.c;
    double loss = 0;
    /* a holds the last layer's logits (the reference applies no softmax in the layer:
     * it is part of the loss here). */
    for (int b = 0; b < rc->n; b++) {
        const double *z = a + (size_t)b * k;
        double mx = z[0], sum = 0;
        for (int j = 1; j < k; j++) mx = z[j] > mx ? z[j] : mx;
        for (int j = 0; j < k; j++) sum += exp(z[j] - mx);
        loss += -(z[rc->labels[b]] - mx - log(sum));
    }
    free(a);
    loss /= rc->n;
    for (int i = 0; i < m->n_layers; i++)
        for (int j = 0; j < m->layers[i].n_params; j++) {
            const cs_param *p = &m->layers[i].params[j];
            const double *w = pblock + (p->data - m->param_block);
            for (size_t q = 0; q < p->size; q++) loss += p->l1 * fabs(w[q]) + p->l2 * w[q] * w[q];
        }
    return loss;
}

/* fuse: the layers one by one, or batch norm -> LeakyReLU -> max pool as one block
 * and the first conv with its block (as training runs them). */
static void check_against_reference(int fuse)
{
    enum { N = 4 };
    cs_model *m = cs_model_build_fmnist();
    cs_model_init_weights(m, 21);
    cs_rng r;
    cs_rng_seed(&r, 22);
    float x[N * 784];
    double xd[N * 784];
    uint8_t labels[N];
    for (int i = 0; i < N * 784; i++) xd[i] = x[i] = (float)cs_rng_uniform(&r);
    for (int i = 0; i < N; i++) labels[i] = (uint8_t)cs_rng_below(&r, 10);

    /* Analytic gradient of the same loss by the core, training mode. */
    cs_exec *e = cs_exec_new(m, N);
    cs_exec_enable_param_grads(e);
    cs_exec_seed_dropout(e, 5);
    cs_exec_set_fusion(e, fuse);
    cs_exec_forward(e, x, N, 1, NULL);
    /* Fused, the first conv trains with its block from its input patches' sums
     * (conv_block.c), which only that path keeps. */
    CHECK((e->bn[1].moments != NULL) == fuse, "first conv %s through its patches' sums", fuse ? "trained" : "not trained");
    float core_loss = cs_exec_xent(e, labels, NULL);
    cs_exec_backward(e, -1);
    core_loss += cs_model_penalty(m, e->param_grad);

    ref_case rc = {m, e, xd, labels, N};
    double *pd = malloc(m->n_param_floats * sizeof(double));
    for (size_t i = 0; i < m->n_param_floats; i++) pd[i] = m->param_block[i];
    double ref = ref_loss(&rc, pd);
    CHECK_NEAR(core_loss, ref, 1e-5 * fabs(ref), "the core's loss equals the reference's");

    double worst = 0;
    for (int li = 0; li < m->n_layers; li++)
        for (int pj = 0; pj < m->layers[li].n_params; pj++) {
            const cs_param *p = &m->layers[li].params[pj];
            if (!p->trainable) continue;
            double diff = 0, sum = 0;
            for (int s = 0; s < 10; s++) {
                size_t k = p->size <= 10 ? (size_t)s % p->size : cs_rng_below(&r, (uint32_t)p->size);
                size_t at = (size_t)(p->data - m->param_block) + k;
                const double keep = pd[at], h = 1e-6;
                pd[at] = keep + h;
                double up = ref_loss(&rc, pd);
                pd[at] = keep - h;
                double down = ref_loss(&rc, pd);
                pd[at] = keep;
                double num = (up - down) / (2 * h), ana = e->param_grad[at];
                diff += (num - ana) * (num - ana);
                sum += (num + ana) * (num + ana);
            }
            /* A bias that feeds a batch norm has no effect on the loss (the batch mean
             * takes it away): both gradients are zero up to rounding, and there the
             * error is absolute. */
            double err = sqrt(sum / 10) > 1e-5 ? sqrt(diff / sum) : sqrt(diff / 10);
            fprintf(stderr, "    %s/%s: %.2e (gradient scale %.1e)\n", m->layers[li].name, p->name, err, sqrt(sum / 40));
            if (err > worst) worst = err;
            CHECK(err < 1e-3, "%s/%s: relative error %.2e", m->layers[li].name, p->name, err);
        }
    fprintf(stderr, "    worst relative error over the parameter tensors: %.2e\n", worst);
    free(pd);
    cs_exec_free(e);
    cs_model_free(m);
}

static void test_fmnist_loss_against_double_reference(void) { check_against_reference(0); }
static void test_fused_blocks_against_double_reference(void) { check_against_reference(1); }

int main(void)
{
    RUN(test_fmnist_loss_against_double_reference);
    RUN(test_fused_blocks_against_double_reference);
    return test_summary("gradcheck_double");
}
