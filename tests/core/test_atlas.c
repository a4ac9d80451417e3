/*
 * test_atlas.c - the channel atlas: a node's gradient seeded by hand (a channel's mean)
 * taken to the input agrees with finite differences; the patch behind a value is its
 * receptive field (3x3 for the first conv, within 8x8 after conv-pool-conv); the top
 * images per channel are those a plain loop finds; and the feature visualisation of
 * several channels excites each more than every test image does, for the bundled
 * model (the whole test set) and for VGG16's architecture (blocks 1 to 3, random
 * weights written here, 32x32 inputs, the first 300 test images as VGG16 would read
 * them), both in the Fourier parametrisation with jitter, scale and rotation.
 */
#include "atlas.h"
#include "model_file.h"
#include "preprocess.h"
#include "rng.h"
#include "test.h"

static cs_model *g_fm;
static cs_dataset g_test;

/* Differences of the channel mean at h = 1e-3, central or, where the pixel sits at a
 * kink (a LeakyReLU's, a change of a max pool's winner), one-sided: the gradient must
 * be one of them, for every pixel above the first pool and for most below it (where
 * near-ties of a pool's window leave a few pixels whose differences straddle several
 * kinks at once). */
static void check_node_gradient(const char *name, int c, double need)
{
    const int node = cs_model_find_layer(g_fm, name);
    cs_exec *e = cs_exec_new(g_fm, 1);
    CHECK(cs_exec_enable_input_grad(e) == 0, "input gradient");
    float x[784];
    cs_dataset_image_float(&g_test, 4, x);
    /* Noise breaks the exact ties of the dark background, where a max pool's winner is
     * only a convention and no difference agrees with it. */
    cs_rng r;
    cs_rng_seed(&r, 3);
    for (int i = 0; i < 784; i++) x[i] += 0.05f * (float)cs_rng_uniform(&r);
    cs_exec_forward_upto(e, x, 1, node);
    const cs_shape s = g_fm->layers[node].out;
    float *g = cs_exec_node_grad(e, node);
    memset(g, 0, cs_shape_size(s) * sizeof *g);
    for (int p = 0; p < s.h * s.w; p++) g[p * s.c + c] = 1.0f / (s.h * s.w);
    CHECK(cs_exec_backward_from(e, node, -1) == 0, "backward from the node");
    float grad[784];
    memcpy(grad, e->input_grad, sizeof grad);
    CHECK(cs_exec_backward_from(e, node, node) == -1, "stop must lie below the node");
    int checked = 0, agree = 0;
    for (int i = 100; i < 700 && checked < 40; i += 7) {
        if (fabsf(grad[i]) < 1e-4f) continue;
        float save = x[i], up, down;
        x[i] = save + 1e-3f;
        cs_channel_means(e, x, 1, node, c, &up);
        x[i] = save - 1e-3f;
        cs_channel_means(e, x, 1, node, c, &down);
        x[i] = save;
        float mid;
        cs_channel_means(e, x, 1, node, c, &mid);
        /* At a kink or a tie the two one-sided derivatives differ; the gradient is one. */
        double fd = (up - down) / 2e-3, right = (up - mid) / 1e-3, left = (mid - down) / 1e-3, tol = 0.02 * fabs(grad[i]) + 2e-5;
        agree += fabs(fd - grad[i]) < tol || fabs(right - grad[i]) < tol || fabs(left - grad[i]) < tol;
        checked++;
    }
    CHECK(checked >= 20 && agree >= need * checked, "%s: %d of %d pixels agree", name, agree, checked);
    cs_exec_free(e);
}

static void test_seeded_gradient_matches_finite_differences(void)
{
    check_node_gradient("leaky_re_lu_1", 7, 1.0);
    check_node_gradient("leaky_re_lu_2", 7, 0.85);
}

static void test_patches_are_receptive_fields(void)
{
    cs_exec *e = cs_exec_new(g_fm, 1);
    cs_exec_enable_input_grad(e);
    float x[784];
    cs_dataset_image_float(&g_test, 0, x);
    int box[4];
    const int l1 = cs_model_find_layer(g_fm, "leaky_re_lu_1"), l2 = cs_model_find_layer(g_fm, "leaky_re_lu_2");
    CHECK(cs_atlas_patch(e, x, l1, 10, 4, 3, box) == 0, "patch");
    CHECK(box[0] == 10 && box[1] == 4 && box[2] == 13 && box[3] == 7, "3x3 at (10, 4): %d %d %d %d", box[0], box[1],
          box[2], box[3]);
    CHECK(cs_atlas_patch(e, x, l2, 5, 2, 9, box) == 0, "patch 2");
    CHECK(box[0] >= 10 && box[1] >= 4 && box[2] <= 18 && box[3] <= 12 && box[2] > box[0] && box[3] > box[1],
          "within the 8x8 field at (10, 4): %d %d %d %d", box[0], box[1], box[2], box[3]);
    CHECK(cs_atlas_patch(e, x, l2, 11, 0, 0, box) == -1, "outside the map");
    cs_exec_free(e);
}

static void test_top_images_equal_a_plain_loop(void)
{
    const int node = cs_model_find_layer(g_fm, "leaky_re_lu_2"), top = 4, n = 1500;
    const cs_shape s = g_fm->layers[node].out;
    cs_atlas_hit *hits = malloc(sizeof *hits * s.c * top);
    char err[200];
    CHECK(cs_atlas_top(g_fm, &g_test, n, node, top, hits, NULL, NULL, err, sizeof err) == 0, "%s", err);
    cs_exec *e = cs_exec_new(g_fm, 1);
    float x[784], *best = malloc(sizeof(float) * s.c);
    int *arg = malloc(sizeof(int) * s.c);
    for (int c = 0; c < s.c; c++) best[c] = -1e30f;
    for (int i = 0; i < n; i++) {
        cs_dataset_image_float(&g_test, i, x);
        cs_exec_forward_upto(e, x, 1, node);
        for (int c = 0; c < s.c; c++)
            for (int p = 0; p < s.h * s.w; p++)
                if (e->act[node][p * s.c + c] > best[c]) best[c] = e->act[node][p * s.c + c], arg[c] = i;
    }
    int same = 1, sorted = 1;
    for (int c = 0; c < s.c; c++) {
        same &= hits[c * top].image == arg[c] && hits[c * top].value == best[c];
        for (int r = 1; r < top; r++) sorted &= hits[c * top + r].value <= hits[c * top + r - 1].value;
    }
    CHECK(same, "the best image of every channel is the plain loop's");
    CHECK(sorted, "best first");
    const cs_atlas_hit *h = &hits[9 * top];
    CHECK(h->box[2] - h->box[0] <= 8 && h->box[2] > h->box[0], "each with its patch");
    cs_exec_free(e);
    free(best);
    free(arg);
    free(hits);
}

/* The largest excitation of channel c over n inputs. */
static float most_over(const cs_model *m, const float *inputs, int n, int node, int c)
{
    cs_exec *e = cs_exec_new(m, 100);
    float *v = malloc(sizeof(float) * n), most = -1e30f;
    cs_channel_means(e, inputs, n, node, c, v);
    for (int i = 0; i < n; i++)
        if (v[i] > most) most = v[i];
    free(v);
    cs_exec_free(e);
    return most;
}

static void test_feature_visualisation_fmnist(void)
{
    const int n = g_test.n;
    float *all = malloc(sizeof(float) * 784 * n), img[784];
    for (int i = 0; i < n; i++) cs_dataset_image_float(&g_test, i, all + (size_t)i * 784);
    /* The first layer's features are a few pixels wide: the Fourier prior (1/f) holds
     * them back (on 4 of its first 16 channels it stays below the best test image),
     * pixels reach them; deeper channels are drawn in the Fourier parametrisation. */
    const struct {
        const char *node;
        int c, fourier;
    } ch[] = {{"leaky_re_lu_1", 0, 0}, {"leaky_re_lu_1", 8, 0}, {"leaky_re_lu_1", 19, 0},
              {"leaky_re_lu_2", 3, 1}, {"leaky_re_lu_2", 40, 1}, {"leaky_re_lu_2", 63, 1}};
    cs_featvis_config cfg;
    cs_featvis_config_default(&cfg, g_fm);
    for (int k = 0; k < 6; k++) {
        int node = cs_model_find_layer(g_fm, ch[k].node);
        float ex;
        char err[200];
        cfg.fourier = ch[k].fourier;
        CHECK(cs_featvis(g_fm, node, ch[k].c, &cfg, NULL, NULL, img, &ex, err, sizeof err) == 0, "%s", err);
        float most = most_over(g_fm, all, n, node, ch[k].c);
        fprintf(stderr, "  %s:%d  optimised %.4f, best test image %.4f\n", ch[k].node, ch[k].c, ex, most);
        CHECK(ex > most, "%s channel %d: %g vs the best of %d test images %g", ch[k].node, ch[k].c, ex, n, most);
        float lo = 1, hi = 0;
        for (int i = 0; i < 784; i++) lo = img[i] < lo ? img[i] : lo, hi = img[i] > hi ? img[i] : hi;
        CHECK(lo >= 0 && hi <= 1 && hi - lo > 0.1f, "an image in 0..1: %g..%g", lo, hi);
    }
    cfg.fourier = 1;
    /* Seeded: the same image again. */
    float again[784], ex;
    char err[200];
    cfg.steps = 16;
    cs_featvis(g_fm, cs_model_find_layer(g_fm, "leaky_re_lu_1"), 5, &cfg, NULL, NULL, img, &ex, err, sizeof err);
    cs_featvis(g_fm, cs_model_find_layer(g_fm, "leaky_re_lu_1"), 5, &cfg, NULL, NULL, again, &ex, err, sizeof err);
    CHECK(!memcmp(img, again, sizeof img), "seeded");
    CHECK(cs_featvis(g_fm, 0, 99, &cfg, NULL, NULL, img, &ex, err, sizeof err) == -1, "no channel 99: %s", err);
    free(all);
}

static void test_feature_visualisation_vgg16_blocks(void)
{
    static const struct {
        const char *name;
        int filters;
    } spec[] = {{"block1_conv1", 64}, {"block1_conv2", 64}, {"pool1", 0}, {"block2_conv1", 128},
                {"block2_conv2", 128}, {"pool2", 0}, {"block3_conv1", 256}};
    cs_model *m = cs_model_new("vgg16", (cs_shape){32, 32, 3});
    char err[200];
    for (int i = 0; i < 7; i++) {
        cs_layer_config c = {.filters = spec[i].filters, .kernel = 3, .stride = 1, .pad_same = 1,
                             .activation = CS_ACT_RELU, .he_normal = 1};
        cs_layer_config p = {.pool = 2};
        CHECK(cs_model_add(m, spec[i].name, spec[i].filters ? CS_CONV2D : CS_MAXPOOL, spec[i].filters ? &c : &p, err,
                           sizeof err) >= 0, "%s", err);
    }
    CHECK(cs_model_finish(m) == 0, "finish");
    cs_model_init_weights(m, 16);
    const int n = 300;
    float *all = malloc(sizeof(float) * 32 * 32 * 3 * n);
    for (int i = 0; i < n; i++) {
        cs_image im = {28, 28, 1, g_test.images + (size_t)i * 784};
        CHECK(cs_preprocess_caffe(&im, 32, 32, all + (size_t)i * 3072, err, sizeof err) == 0, "%s", err);
    }
    cs_featvis_config cfg;
    cs_featvis_config_default(&cfg, m);
    cfg.steps = 96;
    CHECK(cfg.lo[0] < -100 && cfg.hi[2] > 130, "caffe range for a vgg16");
    const struct {
        const char *node;
        int c;
    } ch[] = {{"block1_conv2", 5}, {"block2_conv2", 10}, {"block3_conv1", 20}};
    float *img = malloc(sizeof(float) * 3072);
    for (int k = 0; k < 3; k++) {
        int node = cs_model_find_layer(m, ch[k].node);
        float ex;
        CHECK(cs_featvis(m, node, ch[k].c, &cfg, NULL, NULL, img, &ex, err, sizeof err) == 0, "%s", err);
        float most = most_over(m, all, n, node, ch[k].c);
        fprintf(stderr, "  vgg16 %s:%d  optimised %.3f, best test image %.3f\n", ch[k].node, ch[k].c, ex, most);
        CHECK(ex > most, "vgg16 %s channel %d: %g vs %g", ch[k].node, ch[k].c, ex, most);
    }
    free(img);
    free(all);
    cs_model_free(m);
}

int main(void)
{
    char err[300];
    g_fm = cs_model_load("models/fmnist.csm", err, sizeof err);
    if (!g_fm || cs_dataset_load(CS_DEFAULT_DATA_DIR, "test", &g_test, err, sizeof err) != 0) {
        fprintf(stderr, "setup: %s\n", err);
        return 99;
    }
    RUN(test_seeded_gradient_matches_finite_differences);
    RUN(test_patches_are_receptive_fields);
    RUN(test_top_images_equal_a_plain_loop);
    RUN(test_feature_visualisation_fmnist);
    RUN(test_feature_visualisation_vgg16_blocks);
    cs_model_free(g_fm);
    cs_dataset_free(&g_test);
    return test_summary("atlas");
}
