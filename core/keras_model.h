/*
 * keras_model.h - Keras full-model files as convscope models.
 *
 * Two containers, one reader:
 *   - Keras 2 HDF5, as model.save("m.h5") writes it: the root attribute model_config
 *     holds the architecture as JSON, the group model_weights the weights in the
 *     layout of save_weights() (keras_h5.h: layer groups, weight_names).
 *   - Keras 3 archives, as model.save("m.keras") writes them: a zip of config.json
 *     (the architecture) and model.weights.h5, whose layer groups are named after the
 *     layer's class (layers/conv2d, layers/conv2d_1, ...) and hold vars/0..n in the
 *     order Keras creates the variables.
 * Sequential and Functional models are read, their layer configurations as Keras
 * writes them (class_name, config, inbound_nodes in the Keras 2 and the Keras 3
 * shapes). Each Keras layer becomes a node of the layer table's kinds under the layer's
 * name; an activation a conv or dense layer cannot fuse becomes a second node after
 * it. A model whose output is not a softmax gets a Softmax node on top (as ONNX
 * imports do), so it serves probabilities. Anything that would change the outputs and
 * is not supported (a layer class, a field such as data_format channels_first, a
 * shared layer, a missing or misshapen weight) is refused with an error naming the
 * layer and the field; nothing is approximated.
 */
#ifndef CS_KERAS_MODEL_H
#define CS_KERAS_MODEL_H

#include <stddef.h>

#include "model.h"

/* The model in a .h5 or .keras file (told apart by their content, not the name), its
 * architecture called `arch`. NULL with a one-line err. Thread-safe. */
cs_model *cs_keras_model_load(const char *path, const char *arch, char *err, size_t errlen);
/* The same from len bytes in memory (a .keras archive or an HDF5 file image); the
 * buffer stays the caller's. */
cs_model *cs_keras_model_load_buffer(const void *buf, size_t len, const char *arch, char *err, size_t errlen);
/* The architecture alone from the JSON of model_config or config.json, parameters
 * allocated as cs_model_finish leaves them; keras_major (2 or 3) says whose defaults
 * apply where the two differ (hard_sigmoid). NULL with err. */
cs_model *cs_keras_model_from_json(const char *json, size_t len, int keras_major, const char *arch, char *err,
                                   size_t errlen);
/* 1 when path is an HDF5 file with a model_config attribute (model.save()), 0 when it
 * is not (save_weights(), or no HDF5 file at all). */
int cs_keras_h5_is_model(const char *path);

#endif
