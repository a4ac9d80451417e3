/*
 * adam.c - Adam with Keras' update rule (bias correction folded into the step size):
 *   lr_t = lr * sqrt(1 - beta2^t) / (1 - beta1^t)
 *   m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2
 *   w -= lr_t * m / (sqrt(v) + epsilon)
 * Only trainable tensors move; batch-norm moving statistics are left alone.
 */
#include <math.h>
#include <stdlib.h>

#include "parallel.h"
#include "simd.h"
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

typedef struct {
    const cs_adam *a;
    cs_model *model;
    const float *g;
    float lr_t;
} adam_job;

/* The update of the trainable floats among [begin, end) of the parameter block. */
CS_CLONES static void adam_range(void *ctx, long begin, long end, int worker)
{
    (void)worker;
    const adam_job *j = ctx;
    const float b1 = j->a->beta1, b2 = j->a->beta2, eps = j->a->epsilon, lr_t = j->lr_t;
    const cs_model *model = j->model;
    for (int i = 0; i < model->n_layers; i++)
        for (int t = 0; t < model->layers[i].n_params; t++) {
            const cs_param *p = &model->layers[i].params[t];
            long lo = (long)(p->data - model->param_block), hi = lo + (long)p->size;
            if (!p->trainable || hi <= begin || lo >= end) continue;
            lo = lo > begin ? lo : begin;
            hi = hi < end ? hi : end;
            float *w = model->param_block, *m = j->a->m, *v = j->a->v;
            const float *g = j->g;
            for (long k = lo; k < hi; k++) {
                m[k] = b1 * m[k] + (1 - b1) * g[k];
                v[k] = b2 * v[k] + (1 - b2) * g[k] * g[k];
                w[k] -= lr_t * m[k] / (sqrtf(v[k]) + eps);
            }
        }
}

void cs_adam_step(cs_adam *a, cs_model *model, const float *param_grad)
{
    a->step++;
    const double t = (double)a->step;
    adam_job j = {.a = a, .model = model, .g = param_grad,
                  .lr_t = (float)(a->lr * sqrt(1.0 - pow(a->beta2, t)) / (1.0 - pow(a->beta1, t)))};
    /* About 20 operations per float, spread over the cores like a layer. */
    cs_parallel_run((long)model->n_param_floats, cs_parallel_grain(20, 16), 0, adam_range, &j);
    cs_model_params_changed(model);
}

void cs_adam_free(cs_adam *a)
{
    free(a->m);
    free(a->v);
    a->m = a->v = NULL;
}
