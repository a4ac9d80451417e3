/*
 * test_eval.c - evaluation against plain counts: the bundled model's confusion matrix,
 * per-class precision, recall and F1 and top-k accuracy on the whole test set equal
 * what a loop written out here counts image by image; the expected calibration error
 * of a hand-made case worked out on paper; the most confident images of a cell; the
 * confusion-matrix picture's cells and colours.
 */
#include "draw_matrix.h"
#include "eval.h"
#include "exec.h"
#include "model_file.h"
#include "test.h"

static cs_model *g_model;
static cs_dataset g_test;

/* Eight predictions in four bins of width 1/4 (the upper edge belongs to the bin below):
 *   bin 3 (0.75, 1]:  0.9 right, 0.8 wrong, 1.0 right  mean 0.9,  accuracy 2/3
 *   bin 2 (0.5, 0.75]: 0.6 right, 0.7 right            mean 0.65, accuracy 1
 *   bin 1 (0.25, 0.5]: 0.5 wrong, 0.3 right            mean 0.4,  accuracy 1/2
 *   bin 0 [0, 0.25]:   0.25 wrong                      mean 0.25, accuracy 0
 * ECE = 3/8 |2/3 - 0.9| + 2/8 |1 - 0.65| + 2/8 |0.5 - 0.4| + 1/8 |0 - 0.25|
 *     = 0.0875 + 0.0875 + 0.025 + 0.03125 = 0.23125 */
static void test_ece_hand_made(void)
{
    const float conf[8] = {0.9f, 0.8f, 1.0f, 0.6f, 0.7f, 0.5f, 0.3f, 0.25f};
    const uint8_t right[8] = {1, 0, 1, 1, 1, 0, 1, 0};
    cs_calibration c;
    cs_calibrate(conf, right, 8, 4, &c);
    CHECK(c.n_bins == 4, "bins %d", c.n_bins);
    const long count[4] = {1, 2, 2, 3};
    const double mean[4] = {0.25, 0.4, 0.65, 0.9}, acc[4] = {0, 0.5, 1, 2.0 / 3};
    for (int b = 0; b < 4; b++) {
        CHECK(c.count[b] == count[b], "bin %d holds %ld, expected %ld", b, c.count[b], count[b]);
        CHECK_NEAR(c.confidence[b], mean[b], 1e-7, "mean confidence");
        CHECK_NEAR(c.accuracy[b], acc[b], 1e-12, "accuracy");
    }
    CHECK_NEAR(c.ece, 0.23125, 1e-7, "ECE");
    /* Perfectly calibrated: each bin's accuracy is its confidence. */
    const float half[4] = {0.5f, 0.5f, 1.0f, 1.0f};
    const uint8_t r2[4] = {1, 0, 1, 1};
    cs_calibrate(half, r2, 4, 10, &c);
    CHECK_NEAR(c.ece, 0, 1e-12, "calibrated ECE");
    cs_calibrate(half, r2, 0, 10, &c);
    CHECK(c.ece == 0, "no images, no error");
}

static int stop_at_once(void *user, long done, long total)
{
    (void)done, (void)total;
    ++*(int *)user;
    return 1;
}

/* The plain count: one image at a time through its own exec. */
static void test_bundled_model_equals_plain_count(void)
{
    if (!g_model || !g_test.n) return;
    const int k = 10, n = g_test.n;
    long confusion[10][10] = {{0}}, topk[5] = {0};
    cs_exec *e = cs_exec_new(g_model, 1);
    float x[28 * 28];
    const int top = g_model->n_layers - 1;
    for (int i = 0; i < n; i++) {
        cs_dataset_image_float(&g_test, i, x);
        cs_exec_forward(e, x, 1, 0, NULL);
        const float *p = e->act[top];
        int best = 0;
        for (int j = 1; j < k; j++)
            if (p[j] > p[best]) best = j;
        int t = g_test.labels[i], above = 0;
        for (int j = 0; j < k; j++) above += p[j] > p[t];
        confusion[t][best]++;
        for (int j = above; j < 5; j++) topk[j]++;
    }
    cs_exec_free(e);

    cs_eval ev;
    char err[200];
    CHECK(cs_eval_run(g_model, &g_test, 0, 10, NULL, NULL, &ev, err, sizeof err) == 0, "evaluate: %s", err);
    CHECK(ev.n == n && ev.k == k, "n %d k %d", ev.n, ev.k);
    int same = 1;
    for (int t = 0; t < k; t++)
        for (int p = 0; p < k; p++) same &= ev.confusion[t * k + p] == confusion[t][p];
    CHECK(same, "confusion matrix equals the plain count");
    for (int j = 0; j < 5; j++) CHECK(ev.topk[j] == topk[j], "top-%d: %ld vs %ld", j + 1, ev.topk[j], topk[j]);
    long diag = 0;
    for (int c = 0; c < k; c++) {
        long tp = confusion[c][c], row = 0, col = 0;
        for (int j = 0; j < k; j++) row += confusion[c][j], col += confusion[j][c];
        double p = col ? (double)tp / col : 0, r = row ? (double)tp / row : 0, f1 = p + r > 0 ? 2 * p * r / (p + r) : 0;
        double pp, rr, ff;
        long support;
        cs_eval_class(&ev, c, &pp, &rr, &ff, &support);
        CHECK_NEAR(pp, p, 1e-12, "precision");
        CHECK_NEAR(rr, r, 1e-12, "recall");
        CHECK_NEAR(ff, f1, 1e-12, "F1");
        CHECK(support == row && row == 1000, "support of class %d: %ld", c, support);
        diag += tp;
    }
    /* The accuracy the model file records for the whole test set. */
    CHECK_NEAR((double)diag / n, g_model->meta.test_accuracy, 1e-6, "accuracy as recorded in the model file");
    CHECK(ev.cal.ece > 0 && ev.cal.ece < 0.1, "ECE of a trained model: %g", ev.cal.ece);
    long binned = 0;
    for (int b = 0; b < ev.cal.n_bins; b++) binned += ev.cal.count[b];
    CHECK(binned == n, "every image in a bin");

    /* The most confident mistakes of the commonest confusion (shirts taken for T-shirts). */
    int idx[5];
    long cnt = cs_eval_cell(&ev, g_test.labels, 6, 0, idx, 5);
    CHECK(cnt == confusion[6][0], "cell count %ld", cnt);
    for (int i = 0; i < 5 && i < cnt; i++) {
        CHECK(g_test.labels[idx[i]] == 6 && ev.pred[idx[i]] == 0, "image %d is in the cell", idx[i]);
        if (i) CHECK(ev.conf[idx[i]] <= ev.conf[idx[i - 1]], "most confident first");
    }
    float most = 0;
    for (int i = 0; i < n; i++)
        if (g_test.labels[i] == 6 && ev.pred[i] == 0 && ev.conf[i] > most) most = ev.conf[i];
    CHECK(cnt == 0 || ev.conf[idx[0]] == most, "the first is the most confident of all");

    /* Stopped by its progress function after the first batch. */
    cs_eval ev2;
    int calls = 0;
    CHECK(cs_eval_run(g_model, &g_test, 1000, 10, stop_at_once, &calls, &ev2, err, sizeof err) == 1 && calls == 1,
          "cancelled");
    cs_eval_free(&ev);
}

static void test_refuses_what_does_not_fit(void)
{
    cs_model *m = cs_model_new("tiny", (cs_shape){4, 4, 3});
    cs_layer_config c = {.units = 10, .activation = CS_ACT_SOFTMAX};
    char err[200];
    cs_model_add(m, "f", CS_FLATTEN, &(cs_layer_config){0}, err, sizeof err);
    cs_model_add(m, "d", CS_DENSE, &c, err, sizeof err);
    cs_model_finish(m);
    cs_eval ev;
    uint8_t img[16] = {0}, lab[1] = {0};
    cs_dataset d = {1, 4, 4, img, lab};
    CHECK(cs_eval_run(m, &d, 0, 10, NULL, NULL, &ev, err, sizeof err) == -1 && strstr(err, "4x4x3"), "%s", err);
    cs_model_free(m);
}

static void test_confusion_picture(void)
{
    const long counts[4] = {3, 1, 0, 0}; /* row 1 empty */
    cs_image *img = cs_draw_count_matrix(counts, 2, 2, 20);
    CHECK(img && img->w == 43 && img->h == 43 && img->c == 3, "size");
    if (!img) return;
    uint8_t c75[3], c0[3];
    cs_colormap_blues(0.75, c75);
    cs_colormap_blues(0, c0);
    /* A corner pixel of each cell (the digits sit in the middle). */
    CHECK(!memcmp(img->px + (1 * 43 + 1) * 3, c75, 3), "cell (0,0) is 3/4 of its row");
    CHECK(!memcmp(img->px + (22 * 43 + 22) * 3, c0, 3), "an empty row is white");
    CHECK(img->px[0] == 48, "gap colour");
    CHECK(c0[0] == 247 && c0[2] == 255 && c75[0] == 68, "Blues ends: %d %d", c0[0], c75[0]);
    int dark = 0;
    for (int y = 1; y < 21; y++)
        for (int x = 1; x < 21; x++) dark += img->px[(y * 43 + x) * 3] == 255;
    CHECK(dark > 0, "the count is written in the dark cell");
    cs_image_destroy(img);
    CHECK(!cs_draw_count_matrix(counts, 1000, 1000, 40), "too large is refused");
}

int main(void)
{
    char err[300];
    g_model = cs_model_load("models/fmnist.csm", err, sizeof err);
    CHECK(g_model, "the bundled model: %s", err);
    CHECK(cs_dataset_load(CS_DEFAULT_DATA_DIR, "test", &g_test, err, sizeof err) == 0, "test set: %s", err);
    RUN(test_ece_hand_made);
    RUN(test_bundled_model_equals_plain_count);
    RUN(test_refuses_what_does_not_fit);
    RUN(test_confusion_picture);
    cs_model_free(g_model);
    cs_dataset_free(&g_test);
    return test_summary("eval");
}
