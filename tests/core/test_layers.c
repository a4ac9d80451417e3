/*
 * test_layers.c - forward values of the layer kernels against hand-computed cases,
 * the Keras initialisers, Adam's first step, and the notebook network's summary.
 */
#include <stdlib.h>

#include "exec.h"
#include "layers.h"
#include "rng.h"
#include "test.h"
#include "train.h"

static cs_layer conv_layer(int ih, int iw, int ic, int filters, int k, int same, int stride)
{
    cs_model *m = cs_model_new("t", (cs_shape){ih, iw, ic});
    cs_layer_config c = {.filters = filters, .kernel = k, .stride = stride, .pad_same = same};
    char err[100];
    cs_model_add(m, "c", CS_CONV2D, &c, err, sizeof err);
    cs_layer l = m->layers[0];
    cs_model_free(m);
    return l;
}

/* One worker, col_floats of scratch. */
static cs_scratch one_worker(float *col, size_t col_floats)
{
    cs_scratch s = {.workers = 1, .col_floats = col_floats};
    s.col[0] = col;
    return s;
}

static void test_conv_valid_hand(void)
{
    /* 3x3 input 1..9, 2x2 kernel [[1,2],[3,4]], bias 1. */
    float x[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, w[4] = {1, 2, 3, 4}, b[1] = {1}, y[4], col[16];
    cs_layer l = conv_layer(3, 3, 1, 1, 2, 0, 1);
    cs_conv_geom g = cs_conv_geometry(&l, 1);
    cs_scratch s = one_worker(col, 16);
    cs_conv_forward(&g, x, w, b, y, &s);
    float want[4] = {38, 48, 68, 78};
    for (int i = 0; i < 4; i++) CHECK_NEAR(y[i], want[i], 1e-5, "conv valid");
    /* A scratch of only 4 floats forces one row per chunk: same answer. */
    s = one_worker(col, 4);
    cs_conv_forward(&g, x, w, b, y, &s);
    for (int i = 0; i < 4; i++) CHECK_NEAR(y[i], want[i], 1e-5, "conv valid chunked");
}

static void test_conv_same_hand(void)
{
    /* 3x3 kernel of ones with 'same' padding: each output sums its neighbourhood. */
    float x[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, w[9], b[1] = {0}, y[9], col[81];
    for (int i = 0; i < 9; i++) w[i] = 1;
    cs_layer l = conv_layer(3, 3, 1, 1, 3, 1, 1);
    CHECK(l.out.h == 3 && l.out.w == 3, "same keeps the size");
    cs_conv_geom g = cs_conv_geometry(&l, 1);
    cs_scratch s = one_worker(col, 81);
    cs_conv_forward(&g, x, w, b, y, &s);
    float want[9] = {12, 21, 16, 27, 45, 33, 24, 39, 28};
    for (int i = 0; i < 9; i++) CHECK_NEAR(y[i], want[i], 1e-5, "conv same");
}

static void test_conv_two_channels(void)
{
    /* 1x1 conv mixes channels: out[o] = sum_c x[c] * w[c][o] + b[o]. */
    float x[4] = {1, 2, 3, 4}; /* 1x2 image, 2 channels: (1,2) and (3,4) */
    float w[6] = {1, 0, 2, 0, 1, 3}; /* (1,1,2,3): c0 -> (1,0,2), c1 -> (0,1,3) */
    float b[3] = {0, 0, 0.5f}, y[6], col[4];
    cs_layer l = conv_layer(1, 2, 2, 3, 1, 0, 1);
    cs_conv_geom g = cs_conv_geometry(&l, 1);
    cs_scratch s = one_worker(col, 4);
    cs_conv_forward(&g, x, w, b, y, &s);
    float want[6] = {1, 2, 8.5f, 3, 4, 18.5f};
    for (int i = 0; i < 6; i++) CHECK_NEAR(y[i], want[i], 1e-5, "conv channels");
}

static void test_maxpool_hand(void)
{
    float x[25], y[4];
    for (int i = 0; i < 25; i++) x[i] = (float)((i * 7) % 11);
    /* 5x5 with a 2x2 pool: the last row and column are dropped, as Keras 'valid'. */
    cs_maxpool_forward(1, 5, 5, 1, 2, x, y);
    /* rows 0-1: 0 7 3 10 6 / 2 9 5 1 8 ; rows 2-3: 4 0 7 3 10 / 6 2 9 5 1 */
    float want[4] = {9, 10, 6, 9};
    for (int i = 0; i < 4; i++) CHECK_NEAR(y[i], want[i], 0, "maxpool");
}

static void test_batchnorm_hand(void)
{
    float x[4] = {1, 2, 3, 4}, g[1] = {2}, b[1] = {0.5f}, y[4], mean[1], inv[1];
    float mm[1] = {0}, mv[1] = {1};
    double sums[CS_BN_SUMS(1)];
    cs_bn_forward_train(4, 1, x, g, b, 1e-3f, y, mean, inv, mm, mv, 0.99f, sums);
    CHECK_NEAR(mean[0], 2.5, 1e-6, "batch mean");
    CHECK_NEAR(inv[0], 1 / sqrt(1.251), 1e-6, "inverse standard deviation (biased variance + eps)");
    CHECK_NEAR(y[0], 2 * -1.5 / sqrt(1.251) + 0.5, 1e-5, "y");
    CHECK_NEAR(y[3], 2 * 1.5 / sqrt(1.251) + 0.5, 1e-5, "y");
    CHECK_NEAR(mm[0], 0.025, 1e-6, "moving mean");
    CHECK_NEAR(mv[0], 0.99 + 0.01 * (1.25 * 4 / 3), 1e-6, "moving variance (unbiased)");
    float mvi[1] = {3}, mmi[1] = {1}, xi[1] = {2}, yi[1];
    cs_bn_forward_infer(1, 1, xi, g, b, mmi, mvi, 1e-3f, yi);
    CHECK_NEAR(yi[0], 1.654508, 1e-5, "inference batch norm");
}

static void test_batchnorm_many_rows(void)
{
    /* 1000 rows over several blocks and workers, with a large mean and a small spread:
     * the merged statistics must match a plain two-pass computation in double. */
    enum { R = 1000, C = 3 };
    float *x = malloc(sizeof(float) * R * C), *y = malloc(sizeof(float) * R * C);
    float g[C] = {1, 1, 1}, b[C] = {0, 0, 0}, mean[C], inv[C];
    for (int r = 0; r < R; r++)
        for (int k = 0; k < C; k++) x[r * C + k] = 1000.0f * (k + 1) + 0.01f * (float)((r * 37 + k * 11) % 101);
    double sums[CS_BN_SUMS(C)];
    cs_bn_forward_train(R, C, x, g, b, 1e-3f, y, mean, inv, NULL, NULL, 0.99f, sums);
    for (int k = 0; k < C; k++) {
        double s = 0, q = 0;
        for (int r = 0; r < R; r++) s += x[r * C + k];
        s /= R;
        for (int r = 0; r < R; r++) q += (x[r * C + k] - s) * (x[r * C + k] - s);
        CHECK_NEAR(mean[k], s, 1e-3, "mean over blocks");
        CHECK_NEAR(1 / ((double)inv[k] * inv[k]) - 1e-3, q / R, 1e-3 * q / R + 1e-6, "variance over blocks");
    }
    free(x), free(y);
}

static void test_softmax_xent_hand(void)
{
    float z[3] = {1, 2, 3}, p[3];
    cs_softmax_forward(1, 3, z, p);
    CHECK_NEAR(p[0], 0.0900306, 1e-6, "softmax 0");
    CHECK_NEAR(p[1], 0.2447285, 1e-6, "softmax 1");
    CHECK_NEAR(p[2], 0.6652410, 1e-6, "softmax 2");
    float big[3] = {1000, 1001, 1002};
    cs_softmax_forward(1, 3, big, p);
    CHECK_NEAR(p[2], 0.6652410, 1e-6, "softmax is shift-invariant and finite");
    float a[4] = {-2, 0.5f, 0, 3}, out[4];
    cs_leaky_forward(4, 0.3f, a, out);
    CHECK_NEAR(out[0], -0.6, 1e-7, "leaky");
    CHECK_NEAR(out[1], 0.5, 0, "leaky positive");
    cs_relu_forward(4, a, out);
    CHECK(out[0] == 0 && out[3] == 3, "relu");
}

static void test_dropout_inverted(void)
{
    enum { N = 100000 };
    float *x = malloc(N * sizeof(float)), *y = malloc(N * sizeof(float));
    uint8_t *mask = malloc(N);
    uint64_t state = 7;
    for (int i = 0; i < N; i++) x[i] = 1;
    cs_dropout_forward(N, 0.4f, x, y, mask, &state);
    long kept = 0;
    double sum = 0;
    for (int i = 0; i < N; i++) {
        kept += mask[i];
        sum += y[i];
        CHECK(y[i] == 0 || fabsf(y[i] - 1 / 0.6f) < 1e-6, "kept values are scaled by 1/(1-rate)");
    }
    CHECK_NEAR(kept / (double)N, 0.6, 0.01, "keep fraction");
    CHECK_NEAR(sum / N, 1.0, 0.02, "expected value preserved");
    free(x), free(y), free(mask);
}

static void test_fmnist_summary(void)
{
    cs_model *m = cs_model_build_fmnist();
    CHECK(m && m->n_layers == 14, "14 layers");
    if (!m) return;
    const char *names[14] = {"conv2d_1", "batch_normalization_1", "leaky_re_lu_1", "max_pooling2d_1", "conv2d_2",
                             "batch_normalization_2", "leaky_re_lu_2", "max_pooling2d_2", "flatten_1", "dense_1",
                             "batch_normalization_3", "leaky_re_lu_3", "dropout_1", "dense_2"};
    int h[14] = {26, 26, 26, 13, 11, 11, 11, 5, 1, 1, 1, 1, 1, 1}, c[14] = {32, 32, 32, 32, 64, 64, 64, 64, 1600, 64, 64, 64, 64, 10};
    size_t params[14] = {320, 128, 0, 0, 18496, 256, 0, 0, 0, 102464, 256, 0, 0, 650};
    for (int i = 0; i < 14; i++) {
        CHECK(strcmp(m->layers[i].name, names[i]) == 0, "name %d: %s", i, m->layers[i].name);
        CHECK(m->layers[i].out.h == h[i] && m->layers[i].out.c == c[i], "shape of %s", names[i]);
        CHECK(cs_layer_param_count(&m->layers[i]) == params[i], "params of %s: %zu", names[i],
              cs_layer_param_count(&m->layers[i]));
    }
    CHECK(cs_model_param_count(m) == 122570, "total params %zu", cs_model_param_count(m));
    size_t trainable = 0;
    for (int i = 0; i < 14; i++) trainable += cs_layer_trainable_count(&m->layers[i]);
    CHECK(trainable == 122250, "trainable %zu", trainable);
    CHECK(cs_model_last_conv_activation(m) == 6, "Grad-CAM layer is leaky_re_lu_2");
    CHECK(cs_model_find_layer(m, "dense_1") == 9 && cs_model_find_layer(m, "nope") == -1, "find layer");
    cs_model_free(m);
}

static void test_initialisers(void)
{
    cs_model *a = cs_model_build_fmnist(), *b = cs_model_build_fmnist();
    cs_model_init_weights(a, 42);
    cs_model_init_weights(b, 42);
    CHECK(memcmp(a->param_block, b->param_block, a->n_param_floats * sizeof(float)) == 0, "same seed, same bits");
    cs_model_init_weights(b, 43);
    CHECK(memcmp(a->param_block, b->param_block, a->n_param_floats * sizeof(float)) != 0, "other seed differs");
    /* he_normal on conv2d_2: fan_in 288, stddev sqrt(2/288), truncated at 2 sd of the underlying normal */
    const cs_param *k = &a->layers[4].params[0];
    double s = 0, s2 = 0, bound = 2 * sqrt(2.0 / 288) / 0.87962566103423978, mx = 0;
    for (size_t i = 0; i < k->size; i++) {
        s += k->data[i], s2 += k->data[i] * k->data[i];
        if (fabs(k->data[i]) > mx) mx = fabs(k->data[i]);
    }
    double sd = sqrt(s2 / k->size - (s / k->size) * (s / k->size));
    CHECK_NEAR(sd, sqrt(2.0 / 288), 0.03 * sqrt(2.0 / 288), "he_normal stddev");
    CHECK(mx <= bound + 1e-6, "truncated at two standard deviations");
    /* glorot_uniform on dense_2: limit sqrt(6 / (64 + 10)) */
    const cs_param *d = &a->layers[13].params[0];
    double lim = sqrt(6.0 / 74), dm = 0;
    for (size_t i = 0; i < d->size; i++)
        if (fabs(d->data[i]) > dm) dm = fabs(d->data[i]);
    CHECK(dm <= lim && dm > 0.8 * lim, "glorot_uniform range %g of %g", dm, lim);
    CHECK(a->layers[1].params[0].data[0] == 1 && a->layers[1].params[3].data[5] == 1, "BN gamma and variance 1");
    cs_model_free(a);
    cs_model_free(b);
}

static void test_adam_first_step(void)
{
    cs_model *m = cs_model_new("t", (cs_shape){1, 1, 1});
    cs_layer_config c = {.units = 1};
    char err[100];
    cs_model_add(m, "d", CS_DENSE, &c, err, sizeof err);
    cs_model_finish(m);
    m->param_block[0] = 1.0f;
    cs_adam a;
    cs_adam_init(&a, m, 1e-3f, 0.9f, 0.999f, 1e-7f);
    float g[2] = {0.5f, -2.0f};
    cs_adam_step(&a, m, g);
    /* Step one of Adam moves every weight by about lr, against the gradient's sign. */
    double lr_t = 1e-3 * sqrt(1 - 0.999) / (1 - 0.9);
    CHECK_NEAR(m->param_block[0], 1.0 - lr_t * 0.05 / (sqrt(0.00025) + 1e-7), 1e-7, "kernel step");
    CHECK_NEAR(m->param_block[1], 0.0 + lr_t * 0.2 / (sqrt(0.004) + 1e-7), 1e-7, "bias step");
    cs_adam_step(&a, m, g);
    CHECK_NEAR(m->param_block[0], 1.0 - 2e-3, 2e-6, "second step");
    cs_adam_free(&a);
    cs_model_free(m);
}

static void test_rng(void)
{
    cs_rng r;
    cs_rng_seed(&r, 1);
    int v[10];
    for (int i = 0; i < 10; i++) v[i] = i;
    cs_rng_shuffle(&r, v, 10);
    int seen = 0, moved = 0;
    for (int i = 0; i < 10; i++) seen |= 1 << v[i], moved += v[i] != i;
    CHECK(seen == 1023 && moved > 3, "shuffle is a permutation");
    double s = 0, s2 = 0;
    for (int i = 0; i < 100000; i++) {
        double z = cs_rng_normal(&r);
        s += z, s2 += z * z;
    }
    CHECK_NEAR(s / 1e5, 0, 0.02, "normal mean");
    CHECK_NEAR(s2 / 1e5, 1, 0.02, "normal variance");
}

int main(void)
{
    RUN(test_conv_valid_hand);
    RUN(test_conv_same_hand);
    RUN(test_conv_two_channels);
    RUN(test_maxpool_hand);
    RUN(test_batchnorm_hand);
    RUN(test_batchnorm_many_rows);
    RUN(test_softmax_xent_hand);
    RUN(test_dropout_inverted);
    RUN(test_fmnist_summary);
    RUN(test_initialisers);
    RUN(test_adam_first_step);
    RUN(test_rng);
    return test_summary("layers");
}
