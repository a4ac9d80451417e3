/*
 * keras_h5.h - Keras 2 HDF5 weight files (the layout of model.save_weights()).
 *
 * Root attribute `layer_names` lists the layers; each layer's group has an attribute
 * `weight_names` ("conv2d_1/kernel:0", ...) naming its datasets, kernel first then
 * bias (batch norm: gamma, beta, moving_mean, moving_variance). Layers without
 * weights are listed with an empty weight_names.
 */
#ifndef CS_KERAS_H5_H
#define CS_KERAS_H5_H

#include <stddef.h>

#include "model.h"

/* Reads every weight of m from the file, straight into the model's own buffers,
 * checking each shape against the architecture. -1 with err naming the layer and
 * what was wrong (missing layer, wrong shape, unreadable file). */
int cs_keras_h5_load(cs_model *m, const char *path, char *err, size_t errlen);
/* Writes m's weights in the same layout (atomically: temp file + rename). */
int cs_keras_h5_save(const cs_model *m, const char *path, char *err, size_t errlen);

#endif
