/*
 * train.c - the notebook's training loop: shuffle every epoch, mini-batches,
 * sparse categorical cross-entropy plus the l1_l2 penalties, Adam; then accuracy
 * and loss on the test set after every epoch.
 */
#include "train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "exec.h"
#include "layer_ops.h"
#include "parallel.h"
#include "rng.h"

void cs_train_config_default(cs_train_config *c)
{
    memset(c, 0, sizeof *c);
    c->epochs = 20;
    c->batch_size = 128;
    c->learning_rate = 1e-3f;
    c->beta1 = 0.9f;
    c->beta2 = 0.999f;
    c->epsilon = 1e-7f;
    c->seed = 1;
    c->init_weights = 1;
}

/* The images as the model takes them: its own pipeline's values (px / 255 for the
 * notebook's network; 0..255 for one that rescales the pixels itself). */
static void fill_batch(const cs_model *m, const cs_dataset *d, const int *idx, int n, float *x, uint8_t *y)
{
    const size_t px = (size_t)d->h * d->w;
    for (int i = 0; i < n; i++) {
        cs_preprocess_pixels(&m->preprocess, d->images + (size_t)idx[i] * px, px, x + i * px);
        if (y) y[i] = d->labels[idx[i]];
    }
}

int cs_evaluate_loss(const cs_model *m, const cs_dataset *d, int limit, double *accuracy, double *loss)
{
    int n = limit > 0 && limit < d->n ? limit : d->n, bs = 500, hits = 0, k = m->layers[m->n_layers - 1].out.c;
    const size_t px = (size_t)d->h * d->w;
    /* Only a model that takes the data set's images and knows its classes. */
    if (m->input.h != d->h || m->input.w != d->w || m->input.c != 1 || k < 10) return -1;
    cs_exec *e = cs_exec_new(m, bs);
    float *x = malloc((size_t)bs * px * sizeof(float));
    if (!e || !x || n == 0) {
        cs_exec_free(e);
        free(x);
        return -1;
    }
    double xent = 0;
    for (int s = 0; s < n; s += bs) {
        int b = n - s < bs ? n - s : bs;
        for (int i = 0; i < b; i++)
            cs_preprocess_pixels(&m->preprocess, d->images + (size_t)(s + i) * px, px, x + i * px);
        if (cs_exec_forward(e, x, b, 0, NULL) != 0) {
            cs_exec_free(e);
            free(x);
            return -1;
        }
        for (int i = 0; i < b; i++) {
            const float *p = e->act[m->n_layers - 1] + (size_t)i * k;
            int label = d->labels[s + i];
            hits += cs_argmax(p, k) == label;
            /* As cs_exec_xent counts it in training. */
            float pl = label < k ? p[label] : 0;
            xent -= log(pl < 1e-7f ? 1e-7f : pl);
        }
    }
    cs_exec_free(e);
    free(x);
    if (accuracy) *accuracy = (double)hits / n;
    if (loss) *loss = xent / n + cs_model_penalty(m, NULL);
    return 0;
}

double cs_evaluate(const cs_model *m, const cs_dataset *d, int limit)
{
    double acc;
    return cs_evaluate_loss(m, d, limit, &acc, NULL) == 0 ? acc : -1;
}

/* A softmax on top: fused into a conv or dense node, or a Softmax node of its own. */
static int softmax_top(const cs_model *m)
{
    const cs_layer *top = &m->layers[m->n_layers - 1];
    return top->kind == CS_SOFTMAX ||
           ((top->kind == CS_DENSE || top->kind == CS_CONV2D) && top->cfg.activation == CS_ACT_SOFTMAX);
}

int cs_train_check(const cs_model *m, const cs_dataset *d, char *err, size_t errlen)
{
    int h = d ? d->h : 28, w = d ? d->w : 28;
    const cs_layer *top = &m->layers[m->n_layers - 1];
    if (m->n_extra_inputs) {
        snprintf(err, errlen, "the model takes %d inputs; training feeds one image", m->n_extra_inputs + 1);
        return -1;
    }
    if (m->input.h != h || m->input.w != w || m->input.c != 1) {
        snprintf(err, errlen, "model input %dx%dx%d does not fit the %dx%d grayscale training images", m->input.h,
                 m->input.w, m->input.c, h, w);
        return -1;
    }
    if (!softmax_top(m) || top->out.h != 1 || top->out.w != 1 || top->out.c < 10) {
        snprintf(err, errlen, "the model must end in a softmax over at least 10 classes to train");
        return -1;
    }
    if (m->preprocess.color != CS_COLOR_GRAY) {
        snprintf(err, errlen, "the model's preprocessing is not gray");
        return -1;
    }
    for (int i = 0; i < m->n_layers; i++)
        if (!cs_layer_ops_of(m->layers[i].kind)->backward) {
            snprintf(err, errlen, "node '%s' (%s) has no backward pass", m->layers[i].name,
                     cs_layer_kind_name(m->layers[i].kind));
            return -1;
        }
    if (cs_model_param_count(m) == 0) {
        snprintf(err, errlen, "the model has no parameters to train");
        return -1;
    }
    return 0;
}

static int append_history(cs_model *m, const cs_epoch_record *r)
{
    cs_epoch_record *h = realloc(m->meta.history, (size_t)(m->meta.n_history + 1) * sizeof *h);
    if (!h) return -1;
    h[m->meta.n_history++] = *r;
    m->meta.history = h;
    return 0;
}

int cs_train(cs_model *m, const cs_dataset *train, const cs_dataset *test, const cs_train_config *cfg,
             cs_progress_fn progress, void *user, atomic_int *cancel, char *err, size_t errlen)
{
    if (cs_train_check(m, train, err, errlen) != 0) return -1;
    cs_flush_denormals();
    if (cfg->epochs < 1 || cfg->batch_size < 1 || !(cfg->learning_rate > 0)) {
        snprintf(err, errlen, "epochs, batch size and learning rate must be positive");
        return -1;
    }
    const int n = cfg->train_limit > 0 && cfg->train_limit < train->n ? cfg->train_limit : train->n;
    const int bs = cfg->batch_size < n ? cfg->batch_size : n, batches = (n + bs - 1) / bs;
    const size_t px = (size_t)train->h * train->w;
    if (cfg->init_weights) cs_model_init_weights(m, cfg->seed);

    cs_exec *e = cs_exec_new(m, bs);
    cs_adam adam = {0};
    int *idx = malloc((size_t)n * sizeof *idx);
    float *x = malloc((size_t)bs * px * sizeof(float));
    uint8_t *y = malloc((size_t)bs);
    int rc = -1;
    if (!e || !idx || !x || !y || cs_exec_enable_param_grads(e) != 0 ||
        cs_adam_init(&adam, m, cfg->learning_rate, cfg->beta1, cfg->beta2, cfg->epsilon) != 0) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    /* Weights, shuffles and dropout draw from separate streams of the one seed. */
    cs_rng shuffle;
    cs_rng_seed(&shuffle, cfg->seed ^ 0x5348554646ULL);
    cs_exec_seed_dropout(e, cfg->seed ^ 0x44524f50ULL);
    if (cs_exec_set_fusion(e, 1) != 0) { /* training never reads the nodes inside a fused block */
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    e->profile = cfg->profile;
    for (int i = 0; i < n; i++) idx[i] = i;

    free(m->meta.history);
    m->meta.history = NULL;
    m->meta.n_history = 0;
    m->meta.test_accuracy = -1;
    const double start = cs_now();
    for (int epoch = 1; epoch <= cfg->epochs; epoch++) {
        const double epoch_start = cs_now();
        cs_rng_shuffle(&shuffle, idx, n);
        double loss_sum = 0;
        long hits = 0, seen = 0;
        for (int b = 0; b < batches; b++) {
            if (cancel && atomic_load(cancel)) {
                rc = 1;
                goto done;
            }
            int s = b * bs, cnt = n - s < bs ? n - s : bs, correct = 0;
            fill_batch(m, train, idx + s, cnt, x, y);
            if (cs_exec_forward(e, x, cnt, 1, m) != 0) {
                snprintf(err, errlen, "out of memory");
                goto done;
            }
            float loss = cs_exec_xent(e, y, &correct);
            if (cs_exec_backward(e, -1) != 0) {
                snprintf(err, errlen, "out of memory");
                goto done;
            }
            double t_update = cs_now();
            loss += cs_model_penalty(m, e->param_grad);
            cs_adam_step(&adam, m, e->param_grad);
            if (cfg->profile) cfg->profile[2 * m->n_layers] += cs_now() - t_update;
            loss_sum += (double)loss * cnt;
            hits += correct;
            seen += cnt;
            if (progress) {
                cs_progress p = {epoch, cfg->epochs, b + 1, batches, (float)(loss_sum / seen),
                                 (float)hits / seen, cs_now() - start};
                progress(&p, NULL, user);
            }
        }
        /* seconds is the training time of the epoch; the test pass is not in it. */
        cs_epoch_record r = {.epoch = epoch, .loss = (float)(loss_sum / seen), .accuracy = (float)hits / seen,
                             .test_accuracy = -1, .seconds = cs_now() - epoch_start, .test_loss = -1};
        double tacc, tloss;
        if (test && cs_evaluate_loss(m, test, cfg->test_limit, &tacc, &tloss) == 0) {
            r.test_accuracy = (float)tacc;
            r.test_loss = isfinite(tloss) ? (float)tloss : -1;
        }
        if (append_history(m, &r) != 0) {
            snprintf(err, errlen, "out of memory");
            goto done;
        }
        if (progress) {
            cs_progress p = {epoch, cfg->epochs, batches, batches, r.loss, r.accuracy, cs_now() - start};
            progress(&p, &r, user);
        }
    }
    m->meta.test_accuracy = m->meta.n_history ? m->meta.history[m->meta.n_history - 1].test_accuracy : -1;
    m->meta.epochs = cfg->epochs;
    m->meta.batch_size = bs;
    m->meta.learning_rate = cfg->learning_rate;
    m->meta.seed = cfg->seed;
    m->meta.train_images = n;
    /* A subset's accuracy (test_limit) must not pass for the whole test set's. */
    m->meta.test_images = test && m->meta.test_accuracy >= 0
                              ? (cfg->test_limit > 0 && cfg->test_limit < test->n ? cfg->test_limit : test->n)
                              : 0;
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(m->meta.trained_at, sizeof m->meta.trained_at, "%Y-%m-%dT%H:%M:%SZ", &tm);
    rc = 0;
done:
    cs_adam_free(&adam);
    cs_exec_free(e);
    free(idx);
    free(x);
    free(y);
    return rc;
}
