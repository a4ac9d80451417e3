/*
 * eval.c - evaluation of a model over a data set split (see eval.h for the figures
 * and the calibration binning).
 */
#include "eval.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exec.h"

void cs_calibrate(const float *conf, const uint8_t *correct, int n, int n_bins, cs_calibration *out)
{
    memset(out, 0, sizeof *out);
    if (n_bins < 1) n_bins = 1;
    if (n_bins > CS_EVAL_MAX_BINS) n_bins = CS_EVAL_MAX_BINS;
    out->n_bins = n_bins;
    double sum_conf[CS_EVAL_MAX_BINS] = {0};
    long right[CS_EVAL_MAX_BINS] = {0};
    for (int i = 0; i < n; i++) {
        double c = conf[i];
        /* (b/B, (b+1)/B]: the upper edge belongs to the bin below it. */
        int b = (int)ceil(c * n_bins) - 1;
        if (b < 0) b = 0;
        if (b >= n_bins) b = n_bins - 1;
        out->count[b]++;
        sum_conf[b] += c;
        right[b] += correct[i] != 0;
    }
    double ece = 0;
    for (int b = 0; b < n_bins; b++) {
        if (!out->count[b]) continue;
        out->confidence[b] = sum_conf[b] / out->count[b];
        out->accuracy[b] = (double)right[b] / out->count[b];
        ece += (double)out->count[b] / n * fabs(out->accuracy[b] - out->confidence[b]);
    }
    out->ece = n ? ece : 0;
}

void cs_eval_free(cs_eval *e)
{
    free(e->confusion);
    free(e->pred);
    free(e->conf);
    free(e->p_true);
    memset(e, 0, sizeof *e);
}

/* How many of the k scores beat the true class's (ties count for the true class). */
static int rank_of(const float *p, int k, int t)
{
    int r = 0;
    for (int j = 0; j < k; j++) r += p[j] > p[t];
    return r;
}

int cs_eval_check(const cs_model *m, const cs_dataset *d, char *err, size_t errlen)
{
    const int k = m->layers[m->n_layers - 1].out.c;
    if (m->input.h != d->h || m->input.w != d->w || m->input.c != 1 || m->n_extra_inputs) {
        snprintf(err, errlen, "the model takes %dx%dx%d inputs, not the data set's %dx%d grayscale images",
                 m->input.h, m->input.w, m->input.c, d->h, d->w);
        return -1;
    }
    if (k < 10 || k > 65535) {
        snprintf(err, errlen, "the model has %d outputs; evaluating on the data set's 10 classes needs at least 10", k);
        return -1;
    }
    return 0;
}

int cs_eval_run(const cs_model *m, const cs_dataset *d, int limit, int n_bins, cs_eval_progress_fn progress,
                void *user, cs_eval *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (cs_eval_check(m, d, err, errlen) != 0) return -1;
    const int k = m->layers[m->n_layers - 1].out.c;
    const int n = limit > 0 && limit < d->n ? limit : d->n, bs = n < 256 ? n : 256;
    const size_t px = (size_t)d->h * d->w;
    cs_exec *e = n > 0 ? cs_exec_new(m, bs) : NULL;
    float *x = malloc((size_t)bs * px * sizeof(float));
    uint8_t *right = malloc((size_t)n + 1);
    out->k = k;
    out->n = n;
    out->confusion = calloc((size_t)k * k, sizeof *out->confusion);
    out->pred = malloc(((size_t)n + 1) * sizeof *out->pred);
    out->conf = malloc(((size_t)n + 1) * sizeof *out->conf);
    out->p_true = malloc(((size_t)n + 1) * sizeof *out->p_true);
    int rc = -1;
    if (!e || !x || !right || !out->confusion || !out->pred || !out->conf || !out->p_true) {
        snprintf(err, errlen, n > 0 ? "out of memory" : "no images to evaluate");
        goto done;
    }
    const int top = m->n_layers - 1;
    for (int s = 0; s < n; s += bs) {
        const int b = n - s < bs ? n - s : bs;
        /* The images as the model takes them (its own pipeline's values). */
        for (int i = 0; i < b; i++)
            cs_preprocess_pixels(&m->preprocess, d->images + (size_t)(s + i) * px, px, x + (size_t)i * px);
        if (cs_exec_forward(e, x, b, 0, NULL) != 0) {
            snprintf(err, errlen, "out of memory");
            goto done;
        }
        for (int i = 0; i < b; i++) {
            const float *p = e->act[top] + (size_t)i * k;
            const int t = d->labels[s + i], pr = cs_argmax(p, k), r = rank_of(p, k, t);
            out->pred[s + i] = (uint16_t)pr;
            out->conf[s + i] = p[pr];
            out->p_true[s + i] = p[t];
            right[s + i] = pr == t;
            out->confusion[(size_t)t * k + pr]++;
            for (int j = r; j < CS_EVAL_TOPK; j++) out->topk[j]++;
        }
        if (progress && progress(user, s + b, n)) {
            rc = 1;
            goto done;
        }
    }
    cs_calibrate(out->conf, right, n, n_bins, &out->cal);
    rc = 0;
done:
    cs_exec_free(e);
    free(x);
    free(right);
    if (rc != 0) cs_eval_free(out);
    return rc;
}

void cs_eval_class(const cs_eval *e, int c, double *precision, double *recall, double *f1, long *support)
{
    long tp = e->confusion[(size_t)c * e->k + c], row = 0, col = 0;
    for (int j = 0; j < e->k; j++) {
        row += e->confusion[(size_t)c * e->k + j];
        col += e->confusion[(size_t)j * e->k + c];
    }
    *precision = col ? (double)tp / col : 0;
    *recall = row ? (double)tp / row : 0;
    *f1 = *precision + *recall > 0 ? 2 * *precision * *recall / (*precision + *recall) : 0;
    *support = row;
}

long cs_eval_cell(const cs_eval *e, const uint8_t *labels, int t, int p, int *idx, int max)
{
    long count = 0;
    int have = 0;
    for (int i = 0; i < e->n; i++) {
        if (labels[i] != t || e->pred[i] != p) continue;
        count++;
        /* Insertion into the best `max` so far, by confidence, then by index. */
        int at = have < max ? have : max - 1;
        if (have == max && !(max > 0 && e->conf[i] > e->conf[idx[max - 1]])) continue;
        while (at > 0 && e->conf[idx[at - 1]] < e->conf[i]) {
            idx[at] = idx[at - 1];
            at--;
        }
        idx[at] = i;
        if (have < max) have++;
    }
    return count;
}
