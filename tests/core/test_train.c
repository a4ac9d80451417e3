/*
 * test_train.c - training on the real Fashion-MNIST files: a short deterministic
 * run reaches a sane accuracy, the same seed gives the same weights bit for bit, the
 * test loss is ln 10 for a network of zeros and what the run's weights score,
 * cancelling stops between batches, and the bundled model scores what the README says.
 */
#include <stdlib.h>

#include "blas.h"
#include "exec.h"
#include "model_file.h"
#include "test.h"
#include "train.h"

static cs_dataset train_set, test_set;
static int have_data;

typedef struct {
    int batches, epochs_done, last_batch;
    float last_loss;
    atomic_int *cancel;
    int cancel_after;
} progress_log;

static void on_progress(const cs_progress *p, const cs_epoch_record *done, void *user)
{
    progress_log *log = user;
    if (done) {
        log->epochs_done++;
        return;
    }
    log->batches++;
    log->last_batch = p->batch;
    log->last_loss = p->loss;
    if (log->cancel && log->batches == log->cancel_after) atomic_store(log->cancel, 1);
}

static cs_model *train_short(uint64_t seed, progress_log *log, int *rc)
{
    cs_model *m = cs_model_build_fmnist();
    cs_train_config cfg;
    cs_train_config_default(&cfg);
    cfg.epochs = 1;
    cfg.seed = seed;
    cfg.train_limit = 4000;
    cfg.test_limit = 2000;
    char err[256] = "";
    *rc = cs_train(m, &train_set, &test_set, &cfg, log ? on_progress : NULL, log, log ? log->cancel : NULL, err,
                   sizeof err);
    return m;
}

static void test_short_run_learns(void)
{
    progress_log log = {0};
    int rc;
    cs_model *m = train_short(7, &log, &rc);
    CHECK(rc == 0, "training returns 0");
    CHECK(log.batches == 32 && log.last_batch == 32, "4000 images in batches of 128: 32 batches, got %d",
          log.batches);
    CHECK(log.epochs_done == 1 && m->meta.n_history == 1, "one epoch recorded");
    double acc = m->meta.test_accuracy;
    /* Chance is 0.10; one epoch on 4,000 images of this network reaches about 0.75. */
    CHECK(acc > 0.65 && acc <= 1, "test accuracy after a short run: %.4f", acc);
    CHECK_NEAR(cs_evaluate(m, &test_set, 2000), acc, 1e-6, "recorded accuracy is the evaluated one");
    CHECK(m->meta.test_images == 2000, "the accuracy is recorded as measured on 2,000 test images, got %d",
          m->meta.test_images);
    CHECK(m->meta.history[0].loss > 0 && m->meta.history[0].loss < 1.5, "loss %.3f", m->meta.history[0].loss);
    CHECK(strlen(m->meta.trained_at) == 20, "trained_at is an ISO time");
    cs_model_free(m);
}

static void test_same_seed_same_weights(void)
{
    int rc1, rc2, rc3;
    cs_model *a = train_short(11, NULL, &rc1), *b = train_short(11, NULL, &rc2), *c = train_short(12, NULL, &rc3);
    CHECK(rc1 == 0 && rc2 == 0 && rc3 == 0, "runs succeed");
    CHECK(memcmp(a->param_block, b->param_block, a->n_param_floats * sizeof(float)) == 0,
          "same seed: identical weights, bit for bit");
    CHECK(memcmp(a->param_block, c->param_block, a->n_param_floats * sizeof(float)) != 0, "another seed differs");
    cs_model_free(a), cs_model_free(b), cs_model_free(c);
}

/* A network whose weights are all zero answers 1/10 for every class: the test loss
 * is ln 10 exactly, plus the l1_l2 penalty of the one weight set by hand, and every
 * answer is class 0 (the first of ten equal scores). */
static void test_evaluate_loss_by_hand(void)
{
    cs_model *m = cs_model_build_fmnist();
    CHECK(m != NULL, "model");
    if (!m) return;
    int d1 = cs_model_find_layer(m, "dense_1");
    /* dense_1 reads zeros here (every conv kernel is zero), so this weight changes the
     * penalty only: 1e-5 * |0.5| + 1e-4 * 0.5^2 = 3e-5. */
    m->layers[d1].params[0].data[0] = 0.5f;
    double acc = -1, loss = -1;
    CHECK(cs_evaluate_loss(m, &test_set, 1000, &acc, &loss) == 0, "evaluates");
    CHECK_NEAR(loss, log(10.0) + 3e-5, 1e-6, "ln 10 plus the penalty");
    int zeros = 0;
    for (int i = 0; i < 1000; i++) zeros += test_set.labels[i] == 0;
    CHECK_NEAR(acc, zeros / 1000.0, 1e-12, "the share of T-shirts among the first 1000");
    CHECK_NEAR(cs_evaluate(m, &test_set, 1000), acc, 1e-12, "cs_evaluate gives the same accuracy");
    cs_model_free(m);
}

/* The test loss a run records is the loss of its own weights on the test subset,
 * checked against images forwarded one at a time with the log taken in double. */
static void test_recorded_test_loss(void)
{
    int rc;
    cs_model *m = train_short(7, NULL, &rc);
    CHECK(rc == 0 && m->meta.n_history == 1, "trained one epoch");
    if (rc != 0 || m->meta.n_history != 1) {
        cs_model_free(m);
        return;
    }
    float recorded = m->meta.history[0].test_loss;
    /* After one short epoch the test loss sits near the training loss. */
    CHECK(recorded > 0.3f && recorded < 1.5f, "test loss %.4f", recorded);
    cs_exec *e = cs_exec_new(m, 1);
    float *x = malloc(28 * 28 * sizeof(float));
    double xent = 0;
    int top = m->n_layers - 1;
    for (int i = 0; e && x && i < 2000; i++) {
        cs_dataset_image_float(&test_set, i, x);
        cs_exec_forward(e, x, 1, 0, NULL);
        double p = e->act[top][test_set.labels[i]];
        xent -= log(p < 1e-7 ? 1e-7 : p);
    }
    double penalty = 0;
    for (int i = 0; i < m->n_layers; i++)
        for (int j = 0; j < m->layers[i].n_params; j++) {
            const cs_param *p = &m->layers[i].params[j];
            for (size_t k = 0; k < p->size; k++)
                penalty += p->l1 * fabs((double)p->data[k]) + p->l2 * (double)p->data[k] * p->data[k];
        }
    CHECK(e && x, "memory");
    CHECK_NEAR(recorded, xent / 2000 + penalty, 2e-5, "recorded test loss against a one-by-one reference");
    double again;
    CHECK(cs_evaluate_loss(m, &test_set, 2000, NULL, &again) == 0 && fabs(again - recorded) < 1e-6,
          "evaluated again: %.9g vs %.9g", again, recorded);
    cs_exec_free(e);
    free(x);
    cs_model_free(m);
}

static void test_cancel(void)
{
    atomic_int cancel = 0;
    progress_log log = {.cancel = &cancel, .cancel_after = 5};
    int rc;
    cs_model *m = train_short(3, &log, &rc);
    CHECK(rc == 1, "cancelled training returns 1, got %d", rc);
    CHECK(log.batches == 5, "stopped after the batch that asked: %d", log.batches);
    CHECK(m->meta.n_history == 0, "no epoch recorded");
    cs_model_free(m);
}

static void test_bundled_model(void)
{
    char err[256] = "";
    cs_model *m = cs_model_load("models/fmnist.csm", err, sizeof err);
    CHECK(m != NULL, "bundled model loads: %s", err);
    if (!m) return;
    double acc = cs_evaluate(m, &test_set, 0);
    CHECK(acc >= 0.895, "bundled model test accuracy %.4f >= 0.895", acc);
    CHECK_NEAR(acc, m->meta.test_accuracy, 1e-4, "accuracy recorded in the file");
    CHECK(m->meta.n_history == 20, "20 epochs of history kept: %d", m->meta.n_history);
    CHECK(m->meta.epochs == 20 && m->meta.batch_size == 128, "the notebook's recipe");
    cs_model_free(m);
}

int main(int argc, char **argv)
{
    if (cs_blas_init(argc, argv) != 0) return 1;
    char err[256] = "";
    have_data = cs_dataset_load(CS_DEFAULT_DATA_DIR, "train", &train_set, err, sizeof err) == 0 &&
                cs_dataset_load(CS_DEFAULT_DATA_DIR, "test", &test_set, err, sizeof err) == 0;
    CHECK(have_data, "Fashion-MNIST in " CS_DEFAULT_DATA_DIR " (package dataset-fashion-mnist): %s", err);
    if (!have_data) {
        t_cases_failed++;
        return test_summary("train");
    }
    RUN(test_short_run_learns);
    RUN(test_same_seed_same_weights);
    RUN(test_evaluate_loss_by_hand);
    RUN(test_recorded_test_loss);
    RUN(test_cancel);
    RUN(test_bundled_model);
    cs_dataset_free(&train_set);
    cs_dataset_free(&test_set);
    return test_summary("train");
}
