/*
 * adam.c - Adam with Keras' update rule (bias correction folded into the step size):
 *   lr_t = lr * sqrt(1 - beta2^t) / (1 - beta1^t)
 *   m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2
 *   w -= lr_t * m / (sqrt(v) + epsilon)
 * Only trainable tensors move; batch-norm moving statistics are left alone.
 */
#include <math.h>
#include <stdlib.h>

#include "train.h"

int cs_adam_init(cs_adam *a, const cs_model *model, float lr, float beta1, float beta2, float epsilon)
{
    a->lr = lr;
    a->beta1 = beta1;
    a->beta2 = beta2;
    a->epsilon = epsilon;
    a->step = 0;
    size_t n = model->n_param_floats ? model->n_param_floats : 1;
    a->m = calloc(n, sizeof(float));
    a->v = calloc(n, sizeof(float));
    if (!a->m || !a->v) {
        cs_adam_free(a);
        return -1;
    }
    return 0;
}

void cs_adam_step(cs_adam *a, cs_model *model, const float *param_grad)
{
    a->step++;
    const double t = (double)a->step;
    const float lr_t = (float)(a->lr * sqrt(1.0 - pow(a->beta2, t)) / (1.0 - pow(a->beta1, t)));
    const float b1 = a->beta1, b2 = a->beta2, eps = a->epsilon;
    for (int i = 0; i < model->n_layers; i++)
        for (int j = 0; j < model->layers[i].n_params; j++) {
            cs_param *p = &model->layers[i].params[j];
            if (!p->trainable) continue;
            size_t off = (size_t)(p->data - model->param_block);
            float *w = p->data, *m = a->m + off, *v = a->v + off;
            const float *g = param_grad + off;
            for (size_t k = 0; k < p->size; k++) {
                m[k] = b1 * m[k] + (1 - b1) * g[k];
                v[k] = b2 * v[k] + (1 - b2) * g[k] * g[k];
                w[k] -= lr_t * m[k] / (sqrtf(v[k]) + eps);
            }
        }
}

void cs_adam_free(cs_adam *a)
{
    free(a->m);
    free(a->v);
    a->m = a->v = NULL;
}
