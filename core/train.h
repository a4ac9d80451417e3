/*
 * train.h - Adam and the training loop of the seed notebook.
 */
#ifndef CS_TRAIN_H
#define CS_TRAIN_H

#include <stdatomic.h>

#include "dataset.h"
#include "model.h"

typedef struct {
    int epochs;       /* 20 */
    int batch_size;   /* 128 */
    float learning_rate, beta1, beta2, epsilon; /* Keras Adam: 1e-3, 0.9, 0.999, 1e-7 */
    uint64_t seed;    /* weights, shuffling and dropout */
    int train_limit;  /* use the first N training images (0 = all) */
    int test_limit;   /* evaluate on the first N test images (0 = all) */
    int init_weights; /* 1: fresh initialisation from seed; 0: continue from the model's weights */
    double *profile;  /* NULL, or 2 * n_layers + 1 seconds added up over every batch: each
                         layer's forward and backward (cs_exec.profile), then the loss,
                         penalties and Adam (make bench) */
} cs_train_config;

void cs_train_config_default(cs_train_config *c);

/* Reported after every batch (finished == NULL) and after every epoch. */
typedef struct {
    int epoch, epochs;   /* 1-based epoch in progress */
    int batch, batches;  /* batches done in this epoch */
    float loss, accuracy; /* running means over this epoch so far */
    double elapsed_s;
} cs_progress;

typedef void (*cs_progress_fn)(const cs_progress *p, const cs_epoch_record *finished, void *user);

/* Trains m in place. cancel (may be NULL) is checked between batches; when set the
 * function returns 1 and the model holds the weights of the last finished batch.
 * Returns 0 on success, 1 cancelled, -1 error (err set). Fills m->meta (history with
 * each epoch's test accuracy and test loss, test accuracy, trained_at,
 * hyper-parameters). */
int cs_train(cs_model *m, const cs_dataset *train, const cs_dataset *test, const cs_train_config *cfg,
             cs_progress_fn progress, void *user, atomic_int *cancel, char *err, size_t errlen);

/* 0 when cs_train can train m on d (NULL: Fashion-MNIST's 28x28): one input of the
 * images' size and one gray channel, a softmax over at least 10 classes on top (fused
 * into the last node or a Softmax node: the loss is the cross-entropy of the logits
 * under it), a backward pass for every node and parameters to train. -1 with the
 * reason in err. The images are fed through the model's own pipeline's values
 * (cs_preprocess_pixels). */
int cs_train_check(const cs_model *m, const cs_dataset *d, char *err, size_t errlen);

/* Accuracy on the first `limit` images (0: all); -1 when out of memory or when the
 * model does not take the data set's images or has fewer classes than it. */
double cs_evaluate(const cs_model *m, const cs_dataset *d, int limit);
/* The same pass, with the loss as training counts it (Keras' val_loss): the mean
 * cross-entropy of the last layer's probabilities (clipped below at 1e-7) plus the
 * model's l1_l2 penalty. Fills *accuracy and *loss (either may be NULL); 0, or -1
 * as cs_evaluate (nothing filled). Reads m only: safe beside other readers. */
int cs_evaluate_loss(const cs_model *m, const cs_dataset *d, int limit, double *accuracy, double *loss);

/* Adam state over a model's trainable parameters (Keras update rule). */
typedef struct {
    float lr, beta1, beta2, epsilon;
    long step;
    float *m, *v; /* same layout as the model's parameter block */
} cs_adam;

int cs_adam_init(cs_adam *a, const cs_model *model, float lr, float beta1, float beta2, float epsilon);
void cs_adam_step(cs_adam *a, cs_model *model, const float *param_grad);
void cs_adam_free(cs_adam *a);

#endif
