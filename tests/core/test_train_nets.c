/*
 * test_train_nets.c - the networks bench/train_models.c times are what it names: each
 * builds with the node kinds, strides, joins and shapes of its architecture, has the
 * number of trainable parameters counted here by hand (the PyTorch twins of
 * bench/train_models_torch.py have the same, which the benchmark checks), and trains:
 * Adam steps on one fixed batch lower its loss. The kinds' gradients themselves are
 * checked by test_gradcheck*.c.
 */
#include <stdlib.h>

#include "../../bench/train_nets.h"
#include "rng.h"
#include "square_data.h"
#include "test.h"
#include "train.h"

enum { N = 32 };

static cs_dataset data;

static cs_model *build(const char *name)
{
    char err[200] = "";
    for (int k = 0; k < TN_N_NETS; k++)
        if (!strcmp(TN_NETS[k].name, name)) {
            cs_model *m = TN_NETS[k].build(err, sizeof err);
            if (!m) {
                fprintf(stderr, "setup: %s: %s\n", name, err);
                exit(99);
            }
            return m;
        }
    fprintf(stderr, "setup: no net %s\n", name);
    exit(99);
}

static size_t trainable(const cs_model *m)
{
    size_t n = 0;
    for (int i = 0; i < m->n_layers; i++) n += cs_layer_trainable_count(&m->layers[i]);
    return n;
}

static int count_kind(const cs_model *m, cs_layer_kind kind)
{
    int n = 0;
    for (int i = 0; i < m->n_layers; i++) n += m->layers[i].kind == kind;
    return n;
}

static const cs_layer *node(const cs_model *m, const char *name)
{
    int i = cs_model_find_layer(m, name);
    if (i < 0) {
        fprintf(stderr, "no node %s\n", name);
        exit(1);
    }
    return &m->layers[i];
}

static int same_shape(cs_shape s, int h, int w, int c) { return s.h == h && s.w == w && s.c == c; }

/* Batch norms have 2 trainable floats per channel (gamma, beta); a conv k*k*in*out + out. */
#define CONV(k, in, out) ((k) * (k) * (in) * (out) + (out))
#define BN(c) (2 * (c))
#define CBN(k, in, out) (CONV(k, in, out) + BN(out))
#define DW(c) (9 * (c) + (c) + BN(c)) /* depthwise 3x3 with its bias and batch norm */

static void test_notebook(void)
{
    cs_model *m = build("notebook"), *ref = cs_model_build_fmnist();
    CHECK(m->n_layers == ref->n_layers, "the notebook's network");
    for (int i = 0; i < m->n_layers && i < ref->n_layers; i++)
        CHECK(m->layers[i].kind == ref->layers[i].kind && !strcmp(m->layers[i].name, ref->layers[i].name),
              "node %d", i);
    size_t want = CONV(3, 1, 32) + BN(32) + CONV(3, 32, 64) + BN(64) + 1600 * 64 + 64 + BN(64) + 64 * 10 + 10;
    CHECK(trainable(m) == want && want == 122250, "trainable parameters %zu, by hand %zu", trainable(m), want);
    CHECK_NEAR(tn_forward_flops(m), 2.0 * (26 * 26 * 32 * 9 + 11 * 11 * 64 * 288 + 1600 * 64 + 640), 0.5, "FLOPs");
    cs_model_free(m);
    cs_model_free(ref);
}

static void test_resnet(void)
{
    cs_model *m = build("resnet");
    CHECK(count_kind(m, CS_CONV2D) == 9 && count_kind(m, CS_BATCHNORM) == 9 && count_kind(m, CS_ADD) == 3,
          "9 convs, 9 batch norms, 3 Add joins");
    const cs_layer *a1 = node(m, "block1_add"), *a2 = node(m, "block2_add");
    CHECK(a1->n_inputs == 2 && a1->inputs[1] == cs_model_find_layer(m, "stem_relu"), "block 1's skip is the identity");
    CHECK(a2->n_inputs == 2 && a2->inputs[1] == cs_model_find_layer(m, "block2_short_bn"),
          "block 2's skip is the 1x1 strided conv");
    CHECK(node(m, "block2_conv1")->cfg.stride == 2 && node(m, "block2_short")->cfg.stride == 2 &&
              node(m, "block3_conv1")->cfg.stride == 2,
          "strided convs");
    CHECK(same_shape(node(m, "block1_relu")->out, 28, 28, 16) && same_shape(node(m, "block2_relu")->out, 14, 14, 32) &&
              same_shape(node(m, "block3_relu")->out, 7, 7, 64) && same_shape(node(m, "gap")->out, 1, 1, 64),
          "28x28x16 -> 14x14x32 -> 7x7x64 -> 64");
    size_t want = CBN(3, 1, 16) + 2 * CBN(3, 16, 16) + CBN(3, 16, 32) + CBN(3, 32, 32) + CBN(1, 16, 32) +
                  CBN(3, 32, 64) + CBN(3, 64, 64) + CBN(1, 32, 64) + 64 * 10 + 10;
    CHECK(trainable(m) == want && want == 78090, "trainable parameters %zu, by hand %zu", trainable(m), want);
    double f = 2.0 * (784 * 16 * 9 + 2 * 784 * 16 * 144 + 196 * 32 * 144 + 196 * 32 * 288 + 196 * 32 * 16 +
                      49 * 64 * 288 + 49 * 64 * 576 + 49 * 64 * 32 + 640);
    CHECK_NEAR(tn_forward_flops(m), f, 0.5, "FLOPs");
    cs_model_free(m);
}

static void test_mobilenet(void)
{
    cs_model *m = build("mobilenet");
    CHECK(count_kind(m, CS_DEPTHWISE_CONV2D) == 5 && count_kind(m, CS_CONV2D) == 6 &&
              count_kind(m, CS_BATCHNORM) == 11 && count_kind(m, CS_GLOBAL_AVGPOOL) == 1,
          "5 depthwise, 6 convs, 11 batch norms, a global average pool");
    int relu6 = 0;
    for (int i = 0; i < m->n_layers; i++) {
        const cs_layer *l = &m->layers[i];
        relu6 += l->kind == CS_ACTIVATION && l->cfg.actf == CS_ACTF_CLIP && l->cfg.act_a == 0 && l->cfg.act_b == 6;
        if (l->kind == CS_CONV2D && i > 0) CHECK(l->cfg.kernel == 1, "%s is pointwise", l->name);
    }
    CHECK(relu6 == 11, "11 ReLU6 (%d)", relu6);
    CHECK(node(m, "block2_dw")->cfg.stride == 2 && node(m, "block4_dw")->cfg.stride == 2, "strided depthwise");
    CHECK(same_shape(node(m, "block1_pw_relu6")->out, 28, 28, 32) &&
              same_shape(node(m, "block3_pw_relu6")->out, 14, 14, 64) &&
              same_shape(node(m, "block5_pw_relu6")->out, 7, 7, 128) && same_shape(node(m, "gap")->out, 1, 1, 128),
          "28x28x32 -> 14x14x64 -> 7x7x128 -> 128");
    size_t want = CBN(3, 1, 16) + DW(16) + CBN(1, 16, 32) + DW(32) + CBN(1, 32, 64) + DW(64) + CBN(1, 64, 64) +
                  DW(64) + CBN(1, 64, 128) + DW(128) + CBN(1, 128, 128) + 128 * 10 + 10;
    CHECK(trainable(m) == want && want == 37610, "trainable parameters %zu, by hand %zu", trainable(m), want);
    cs_model_free(m);
}

static void test_inception(void)
{
    cs_model *m = build("inception");
    const cs_layer *c1 = node(m, "mixed1_concat"), *c2 = node(m, "mixed2_concat");
    CHECK(count_kind(m, CS_CONCATENATE) == 2 && c1->n_inputs == 4 && c2->n_inputs == 4, "two 4-way Concatenates");
    CHECK(same_shape(c1->out, 14, 14, 16 + 24 + 8 + 8) && same_shape(c2->out, 7, 7, 32 + 48 + 16 + 16),
          "14x14x56, 7x7x112");
    const cs_layer *p = node(m, "mixed1_pool");
    CHECK(p->kind == CS_MAXPOOL && p->cfg.kernel == 3 && p->cfg.stride == 1 && same_shape(p->out, 14, 14, 32),
          "3x3 stride-1 'same' pool branch");
    CHECK(node(m, "mixed2_5x5")->cfg.kernel == 5, "a 5x5 branch");
    size_t want = CBN(3, 1, 32) + CBN(1, 32, 16) + CBN(1, 32, 16) + CBN(3, 16, 24) + CBN(1, 32, 8) + CBN(5, 8, 8) +
                  CBN(1, 32, 8) + CBN(1, 56, 32) + CBN(1, 56, 32) + CBN(3, 32, 48) + CBN(1, 56, 8) + CBN(5, 8, 16) +
                  CBN(1, 56, 16) + 112 * 10 + 10;
    CHECK(trainable(m) == want && want == 30754, "trainable parameters %zu, by hand %zu", trainable(m), want);
    cs_model_free(m);
}

/* STEPS Adam steps on the one batch of N images (cs_train: one batch per epoch). */
static void test_each_trains(void)
{
    enum { STEPS = 8 };
    for (int k = 0; k < TN_N_NETS; k++) {
        cs_model *m = build(TN_NETS[k].name);
        char err[200] = "";
        CHECK(cs_train_check(m, &data, err, sizeof err) == 0, "%s trains: %s", TN_NETS[k].name, err);
        cs_train_config cfg;
        cs_train_config_default(&cfg);
        cfg.epochs = STEPS;
        cfg.batch_size = N;
        cfg.seed = 5;
        int rc = cs_train(m, &data, NULL, &cfg, NULL, NULL, NULL, err, sizeof err);
        CHECK(rc == 0 && m->meta.n_history == STEPS, "%s: %s", TN_NETS[k].name, err);
        if (rc == 0 && m->meta.n_history == STEPS) {
            float first = m->meta.history[0].loss, last = m->meta.history[STEPS - 1].loss;
            for (int s = 0; s < STEPS; s++) CHECK(isfinite(m->meta.history[s].loss), "finite loss");
            CHECK(last < 0.9f * first, "%s: the loss on the batch falls, %g -> %g", TN_NETS[k].name, first, last);
        }
        cs_model_free(m);
    }
}

int main(void)
{
    data = square_data(N, 7);
    RUN(test_notebook);
    RUN(test_resnet);
    RUN(test_mobilenet);
    RUN(test_inception);
    RUN(test_each_trains);
    cs_dataset_free(&data);
    return test_summary("train_nets");
}
