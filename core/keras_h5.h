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
 * checking each shape against the architecture. Layers are matched by name, or by
 * position when the names differ but the counts of layers with weights agree (Keras'
 * own rule); weights within a layer in weight_names order. Also reads model.save()
 * files (weights under /model_weights) and Keras 1 files (flat weight names, such as
 * the VGG16 ImageNet weights). Every shape is checked before anything is read, so a
 * refused file leaves m as it was. 0, or -1 with err naming the layer and what was
 * wrong (missing layer, wrong shape with both shapes, unreadable file).
 * Thread-safe (calls into libhdf5 are serialised). */
int cs_keras_h5_load(cs_model *m, const char *path, char *err, size_t errlen);
/* Writes m's weights in the same layout, as Keras 2.2's model.save_weights() does:
 * fixed-length byte-string attributes, every layer listed, datasets named
 * "<layer>/<weight>:0" inside each layer's group, float32. Atomic: a temp file beside
 * `path`, fsync, rename. 0, or -1 with err. Thread-safe. */
int cs_keras_h5_save(const cs_model *m, const char *path, char *err, size_t errlen);

#endif
