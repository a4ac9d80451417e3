/*
 * predict_chunks.h - a prediction over a batch of small images, depth first.
 *
 * Layer by layer, a batch writes each node's output for every image before the next
 * node reads it back: for 128 Fashion-MNIST images the first conv alone writes 11 MB,
 * far more than a core's cache, so every node after it reads from memory. When one
 * image's largest step (a node's inputs and output) is small, the batch runs instead
 * as chunks of a few images, each chunk through the whole network on one worker, so
 * that what a node writes the next one reads from the core's own cache (the chunks of
 * the workers run side by side; nothing is shared but the model).
 *
 * Like the other fast paths, chunks are for inference in an exec without parameter
 * gradients, and not in the plain mode (fast_plan.h).
 *
 * Each worker runs its chunks in an exec of its own for chunks of at most
 * cs_predict_chunk_size images, made on first need and kept with the batch's exec.
 */
#ifndef CS_PREDICT_CHUNKS_H
#define CS_PREDICT_CHUNKS_H

#include "exec.h"

/* The images per chunk for this model: 0 when an image is too large to gain from it. */
int cs_predict_chunk_size(const cs_model *m);

/* Runs cs_exec_predict's work on e as chunks: 0 done, -1 failed (out of memory), or 1
 * when chunks are not the way for this batch (the caller runs it layer by layer). On
 * success e holds what a prediction leaves: the top's output and the logits for the
 * n images. */
int cs_predict_chunks(cs_exec *e, const float *input, int n);

/* Frees the execs of the chunks (cs_exec_free calls it). */
void cs_predict_chunks_free(cs_exec *e);

#endif
