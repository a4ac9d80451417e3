/*
 * train_nets.h - the networks bench/train_models.c trains, built with the core's graph
 * builder: the notebook's network, a small ResNet, a small MobileNet and a small
 * Inception net, all for Fashion-MNIST (28x28x1, 10 classes).
 *
 * bench/train_models_torch.py builds the same architectures in PyTorch and
 * tests/core/test_train_nets.c checks these builders (node kinds, parameter counts,
 * that each trains), so the benchmark measures what it names. Every conv here has a
 * bias (the core's convs always do) and 'same' padding as Keras pads it (an odd padded
 * pixel at the bottom and right); the PyTorch twins pad symmetrically, which changes
 * which pixels a strided window sees but not the arithmetic.
 */
#ifndef CS_BENCH_TRAIN_NETS_H
#define CS_BENCH_TRAIN_NETS_H

#include <stdio.h>

#include "layers/kernels.h"
#include "model.h"

/* A builder that stops at the first error: every helper returns -1 after one. */
typedef struct {
    cs_model *m;
    int failed;
    char err[200];
} tn_builder;

static int tn_node(tn_builder *b, const char *name, cs_layer_kind kind, const cs_layer_config *cfg, const int *in,
                   int n_in)
{
    if (b->failed) return -1;
    int i = cs_model_add_node(b->m, name, kind, cfg, in, n_in, b->err, sizeof b->err);
    if (i < 0) b->failed = 1;
    return i;
}

/* conv (filters, k x k, stride, 'same') -> batch norm -> act, act: "relu", "relu6" or
 * NULL; the conv's name is prefix, the others prefix_bn and prefix_act. Returns the
 * last node. */
static int tn_conv_bn(tn_builder *b, const char *prefix, int in, int filters, int k, int stride, const char *act,
                      int depthwise)
{
    char name[CS_NAME_MAX];
    cs_layer_config conv = {.filters = filters, .kernel = k, .stride = stride, .pad_same = 1, .he_normal = 1};
    int x = tn_node(b, prefix, depthwise ? CS_DEPTHWISE_CONV2D : CS_CONV2D, &conv, &in, 1);
    snprintf(name, sizeof name, "%s_bn", prefix);
    cs_layer_config bn = {.momentum = 0.99f, .epsilon = 1e-3f};
    x = tn_node(b, name, CS_BATCHNORM, &bn, &x, 1);
    if (!act) return x;
    snprintf(name, sizeof name, "%s_%s", prefix, act);
    if (act[4] == '6') {
        cs_layer_config r6 = {.actf = CS_ACTF_CLIP, .act_a = 0, .act_b = 6};
        return tn_node(b, name, CS_ACTIVATION, &r6, &x, 1);
    }
    return tn_node(b, name, CS_RELU, &(cs_layer_config){0}, &x, 1);
}

/* Global average pool -> dense 10 with the softmax, then the model is finished. */
static cs_model *tn_finish(tn_builder *b, int x)
{
    x = tn_node(b, "gap", CS_GLOBAL_AVGPOOL, &(cs_layer_config){0}, &x, 1);
    cs_layer_config out = {.units = 10, .activation = CS_ACT_SOFTMAX};
    tn_node(b, "predictions", CS_DENSE, &out, &x, 1);
    if (b->failed || cs_model_finish(b->m) != 0 || cs_model_set_classes(b->m, 10, CS_FMNIST_CLASSES) != 0) {
        if (!b->failed) snprintf(b->err, sizeof b->err, "out of memory");
        cs_model_free(b->m);
        return NULL;
    }
    return b->m;
}

/* A basic residual block: conv3x3(stride) BN ReLU, conv3x3 BN, plus the input (or its
 * 1x1 strided conv + BN when the shape changes), ReLU. */
static int tn_res_block(tn_builder *b, const char *prefix, int in, int filters, int stride)
{
    char name[CS_NAME_MAX];
    snprintf(name, sizeof name, "%s_conv1", prefix);
    int x = tn_conv_bn(b, name, in, filters, 3, stride, "relu", 0);
    snprintf(name, sizeof name, "%s_conv2", prefix);
    x = tn_conv_bn(b, name, x, filters, 3, 1, NULL, 0);
    int skip = in;
    if (stride != 1 || (b->failed ? 0 : cs_model_node_shape(b->m, in).c != filters)) {
        snprintf(name, sizeof name, "%s_short", prefix);
        skip = tn_conv_bn(b, name, in, filters, 1, stride, NULL, 0);
    }
    snprintf(name, sizeof name, "%s_add", prefix);
    int two[2] = {x, skip};
    x = tn_node(b, name, CS_ADD, &(cs_layer_config){0}, two, 2);
    snprintf(name, sizeof name, "%s_relu", prefix);
    return tn_node(b, name, CS_RELU, &(cs_layer_config){0}, &x, 1);
}

/* stem conv 16 @28x28; blocks 16 @28, 32 @14 (strided), 64 @7 (strided); GAP; dense. */
static cs_model *tn_build_resnet(char *err, size_t errlen)
{
    tn_builder b = {.m = cs_model_new("resnet_small", (cs_shape){28, 28, 1})};
    if (!b.m) return snprintf(err, errlen, "out of memory"), NULL;
    int x = tn_conv_bn(&b, "stem", CS_MODEL_INPUT, 16, 3, 1, "relu", 0);
    x = tn_res_block(&b, "block1", x, 16, 1);
    x = tn_res_block(&b, "block2", x, 32, 2);
    x = tn_res_block(&b, "block3", x, 64, 2);
    cs_model *m = tn_finish(&b, x);
    if (!m) snprintf(err, errlen, "%s", b.err);
    return m;
}

/* MobileNet (v1) blocks: depthwise 3x3 (stride) BN ReLU6, pointwise 1x1 BN ReLU6. */
static int tn_mobile_block(tn_builder *b, const char *prefix, int in, int filters, int stride)
{
    char name[CS_NAME_MAX];
    snprintf(name, sizeof name, "%s_dw", prefix);
    int x = tn_conv_bn(b, name, in, 0, 3, stride, "relu6", 1);
    snprintf(name, sizeof name, "%s_pw", prefix);
    return tn_conv_bn(b, name, x, filters, 1, 1, "relu6", 0);
}

/* stem conv 16 @28; blocks 32 @28, 64 @14 (strided), 64 @14, 128 @7 (strided),
 * 128 @7; GAP; dense. */
static cs_model *tn_build_mobilenet(char *err, size_t errlen)
{
    tn_builder b = {.m = cs_model_new("mobilenet_small", (cs_shape){28, 28, 1})};
    if (!b.m) return snprintf(err, errlen, "out of memory"), NULL;
    int x = tn_conv_bn(&b, "stem", CS_MODEL_INPUT, 16, 3, 1, "relu6", 0);
    x = tn_mobile_block(&b, "block1", x, 32, 1);
    x = tn_mobile_block(&b, "block2", x, 64, 2);
    x = tn_mobile_block(&b, "block3", x, 64, 1);
    x = tn_mobile_block(&b, "block4", x, 128, 2);
    x = tn_mobile_block(&b, "block5", x, 128, 1);
    cs_model *m = tn_finish(&b, x);
    if (!m) snprintf(err, errlen, "%s", b.err);
    return m;
}

/* An Inception module: 1x1 (c1); 1x1 (r3) -> 3x3 (c3); 1x1 (r5) -> 5x5 (c5); max pool
 * 3x3 stride 1 'same' -> 1x1 (cp); each conv with BN and ReLU; concatenated. */
static int tn_inception(tn_builder *b, const char *prefix, int in, int c1, int r3, int c3, int r5, int c5, int cp)
{
    char name[CS_NAME_MAX];
    int br[4];
    snprintf(name, sizeof name, "%s_1x1", prefix);
    br[0] = tn_conv_bn(b, name, in, c1, 1, 1, "relu", 0);
    snprintf(name, sizeof name, "%s_3x3r", prefix);
    br[1] = tn_conv_bn(b, name, in, r3, 1, 1, "relu", 0);
    snprintf(name, sizeof name, "%s_3x3", prefix);
    br[1] = tn_conv_bn(b, name, br[1], c3, 3, 1, "relu", 0);
    snprintf(name, sizeof name, "%s_5x5r", prefix);
    br[2] = tn_conv_bn(b, name, in, r5, 1, 1, "relu", 0);
    snprintf(name, sizeof name, "%s_5x5", prefix);
    br[2] = tn_conv_bn(b, name, br[2], c5, 5, 1, "relu", 0);
    snprintf(name, sizeof name, "%s_pool", prefix);
    cs_layer_config pool = {.kernel = 3, .stride = 1, .pad_same = 1};
    br[3] = tn_node(b, name, CS_MAXPOOL, &pool, &in, 1);
    snprintf(name, sizeof name, "%s_poolproj", prefix);
    br[3] = tn_conv_bn(b, name, br[3], cp, 1, 1, "relu", 0);
    snprintf(name, sizeof name, "%s_concat", prefix);
    return tn_node(b, name, CS_CONCATENATE, &(cs_layer_config){0}, br, 4);
}

/* stem conv 32 @28, max pool -> 14; module (16, 16->24, 8->8, 8) = 56 channels @14;
 * max pool -> 7; module (32, 32->48, 8->16, 16) = 112 @7; GAP; dense. */
static cs_model *tn_build_inception(char *err, size_t errlen)
{
    tn_builder b = {.m = cs_model_new("inception_small", (cs_shape){28, 28, 1})};
    if (!b.m) return snprintf(err, errlen, "out of memory"), NULL;
    cs_layer_config pool2 = {.pool = 2};
    int x = tn_conv_bn(&b, "stem", CS_MODEL_INPUT, 32, 3, 1, "relu", 0);
    x = tn_node(&b, "pool1", CS_MAXPOOL, &pool2, &x, 1);
    x = tn_inception(&b, "mixed1", x, 16, 16, 24, 8, 8, 8);
    x = tn_node(&b, "pool2", CS_MAXPOOL, &pool2, &x, 1);
    x = tn_inception(&b, "mixed2", x, 32, 32, 48, 8, 16, 16);
    cs_model *m = tn_finish(&b, x);
    if (!m) snprintf(err, errlen, "%s", b.err);
    return m;
}

static cs_model *tn_build_notebook(char *err, size_t errlen)
{
    cs_model *m = cs_model_build_fmnist();
    if (!m) snprintf(err, errlen, "out of memory");
    return m;
}

typedef struct {
    const char *name; /* as bench/train_models_torch.py names it */
    const char *what;
    cs_model *(*build)(char *err, size_t errlen);
} tn_net;

static const tn_net TN_NETS[] = {
    {"notebook", "the notebook's CNN", tn_build_notebook},
    {"resnet", "ResNet: conv-BN-ReLU, Add skips, strided", tn_build_resnet},
    {"mobilenet", "MobileNet: depthwise + 1x1, ReLU6, GAP", tn_build_mobilenet},
    {"inception", "Inception: 4 branches, Concatenate", tn_build_inception},
};
#define TN_N_NETS ((int)(sizeof TN_NETS / sizeof TN_NETS[0]))

/* Multiply-adds x2 of one image's forward pass (conv, depthwise and dense products). */
static inline double tn_forward_flops(const cs_model *m)
{
    double f = 0;
    for (int i = 0; i < m->n_layers; i++) {
        const cs_layer *l = &m->layers[i];
        double out = (double)l->out.h * l->out.w * l->out.c;
        if (l->kind == CS_CONV2D || l->kind == CS_DEPTHWISE_CONV2D) {
            const cs_param *k = &l->params[0]; /* (kh, kw, in per group, out) or (kh, kw, in, multiplier) */
            f += 2.0 * out * k->dims[0] * k->dims[1] * (l->kind == CS_CONV2D ? k->dims[2] : 1);
        } else if (l->kind == CS_DENSE) {
            f += 2.0 * l->in.c * l->out.c;
        }
    }
    return f;
}

#endif
