/*
 * test_train_graph.c - training models other than the notebook's, on a small made-up
 * data set of 28x28 gray images: a Softmax node on top trains exactly as a softmax
 * fused into the dense layer (the cross-entropy of the logits under it), a model
 * that rescales its pixels itself (Rescaling at the input) is fed 0..255 and trains
 * as the same network fed px / 255, and cs_train_check says why a model cannot train.
 */
#include <stdlib.h>

#include "rng.h"
#include "square_data.h"
#include "test.h"
#include "train.h"

enum { N = 192 };

static cs_dataset data;

/* conv 3x3 relu -> max pool -> flatten -> dense 10; the softmax fused into the dense
 * node, or a Softmax node after a linear one; optionally a Rescaling(1/255) first. */
static cs_model *build(int softmax_node, int rescale)
{
    cs_model *m = cs_model_new("small", (cs_shape){28, 28, 1});
    char err[200] = "";
    cs_layer_config r = {.scale = 1 / 255.f};
    cs_layer_config conv = {.filters = 4, .kernel = 3, .stride = 1, .activation = CS_ACT_RELU, .he_normal = 1};
    cs_layer_config pool = {.pool = 2};
    cs_layer_config dense = {.units = 10, .activation = softmax_node ? CS_ACT_LINEAR : CS_ACT_SOFTMAX};
    int ok = (!rescale || cs_model_add(m, "rescale", CS_RESCALING, &r, err, sizeof err) >= 0) &&
             cs_model_add(m, "conv", CS_CONV2D, &conv, err, sizeof err) >= 0 &&
             cs_model_add(m, "pool", CS_MAXPOOL, &pool, err, sizeof err) >= 0 &&
             cs_model_add(m, "flat", CS_FLATTEN, &(cs_layer_config){0}, err, sizeof err) >= 0 &&
             cs_model_add(m, "dense", CS_DENSE, &dense, err, sizeof err) >= 0 &&
             (!softmax_node || cs_model_add(m, "softmax", CS_SOFTMAX, &(cs_layer_config){0}, err, sizeof err) >= 0) &&
             cs_model_finish(m) == 0;
    if (!ok) {
        fprintf(stderr, "setup: %s\n", err);
        exit(99);
    }
    return m;
}

static float train_steps(cs_model *m)
{
    cs_train_config cfg;
    cs_train_config_default(&cfg);
    cfg.epochs = 2;
    cfg.batch_size = 32;
    cfg.init_weights = 0;
    cfg.seed = 3;
    char err[200] = "";
    int rc = cs_train(m, &data, NULL, &cfg, NULL, NULL, NULL, err, sizeof err);
    CHECK(rc == 0, "trains: %s", err);
    return m->meta.n_history ? m->meta.history[m->meta.n_history - 1].loss : -1;
}

static double max_diff(const cs_model *a, const cs_model *b)
{
    double d = 0;
    for (size_t i = 0; i < a->n_param_floats; i++) {
        double e = fabs((double)a->param_block[i] - b->param_block[i]);
        if (e > d) d = e;
    }
    return d;
}

static void test_softmax_node_top(void)
{
    cs_model *fused = build(0, 0), *node = build(1, 0);
    cs_model_init_weights(fused, 11);
    CHECK(fused->n_param_floats == node->n_param_floats, "same parameters");
    memcpy(node->param_block, fused->param_block, fused->n_param_floats * sizeof(float));
    char err[200] = "";
    CHECK(cs_train_check(node, &data, err, sizeof err) == 0, "a Softmax node on top trains: %s", err);
    float l1 = train_steps(fused), l2 = train_steps(node);
    double d = max_diff(fused, node);
    CHECK(d < 1e-6, "12 Adam steps agree: largest difference %g", d);
    CHECK(fabsf(l1 - l2) < 1e-6f && l2 < 2.2f, "the same loss, learning (%g, %g; ln 10 = 2.30)", l1, l2);
    cs_model_free(fused);
    cs_model_free(node);
}

static void test_rescaling_takes_raw_pixels(void)
{
    cs_model *plain = build(1, 0), *scaled = build(1, 1), *wrong = build(1, 1);
    cs_model_init_weights(plain, 12);
    memcpy(scaled->param_block, plain->param_block, plain->n_param_floats * sizeof(float));
    memcpy(wrong->param_block, plain->param_block, plain->n_param_floats * sizeof(float));
    CHECK(!strcmp(scaled->preprocess.mode, "raw"), "the scaled model takes raw pixels");
    /* The same pipeline as the plain model would feed it px / 255 twice. */
    wrong->preprocess = plain->preprocess;
    train_steps(plain);
    train_steps(scaled);
    train_steps(wrong);
    double d = max_diff(plain, scaled), w = max_diff(plain, wrong);
    CHECK(d < 1e-5, "fed 0..255 through its Rescaling it trains as the plain one fed px / 255: %g", d);
    CHECK(w > 1e-3, "fed px / 255 it would not (%g): the test tells them apart", w);
    double acc = cs_evaluate(scaled, &data, 0);
    CHECK(acc > 0.3, "evaluated through its own pipeline too: accuracy %g", acc);
    cs_model_free(plain);
    cs_model_free(scaled);
    cs_model_free(wrong);
}

static void test_check_reasons(void)
{
    char err[200] = "";
    cs_model *m = cs_model_new("colour", (cs_shape){28, 28, 3});
    cs_layer_config d10 = {.units = 10, .activation = CS_ACT_SOFTMAX};
    cs_model_add(m, "flat", CS_FLATTEN, &(cs_layer_config){0}, err, sizeof err);
    cs_model_add(m, "out", CS_DENSE, &d10, err, sizeof err);
    cs_model_finish(m);
    CHECK(cs_train_check(m, &data, err, sizeof err) == -1 && strstr(err, "28x28x3 does not fit"), "%s", err);
    cs_model_free(m);
    m = cs_model_new("linear", (cs_shape){28, 28, 1});
    cs_layer_config lin = {.units = 10};
    cs_model_add(m, "flat", CS_FLATTEN, &(cs_layer_config){0}, err, sizeof err);
    cs_model_add(m, "out", CS_DENSE, &lin, err, sizeof err);
    cs_model_finish(m);
    CHECK(cs_train_check(m, NULL, err, sizeof err) == -1 && strstr(err, "softmax over at least 10"), "%s", err);
    cs_model_free(m);
    m = cs_model_new("five", (cs_shape){28, 28, 1});
    cs_layer_config d5 = {.units = 5, .activation = CS_ACT_SOFTMAX};
    cs_model_add(m, "flat", CS_FLATTEN, &(cs_layer_config){0}, err, sizeof err);
    cs_model_add(m, "out", CS_DENSE, &d5, err, sizeof err);
    cs_model_finish(m);
    CHECK(cs_train_check(m, NULL, err, sizeof err) == -1 && strstr(err, "at least 10 classes"), "%s", err);
    cs_model_free(m);
}

int main(void)
{
    data = square_data(N, 5);
    RUN(test_softmax_node_top);
    RUN(test_rescaling_takes_raw_pixels);
    RUN(test_check_reasons);
    cs_dataset_free(&data);
    return test_summary("train_graph");
}
