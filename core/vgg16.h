/*
 * vgg16.h - Keras applications.VGG16 (with the top) and its ImageNet class index.
 */
#ifndef CS_VGG16_H
#define CS_VGG16_H

#include <stddef.h>

#include "model.h"

#define CS_VGG16_WEIGHTS_FILE "vgg16_weights_tf_dim_ordering_tf_kernels.h5"

/* Builds VGG16, reads the weights from the Keras HDF5 file and the 1000-class
 * index (imagenet_class_index.json) into class_names / class_ids.
 * NULL with a one-line reason (which path, what was wrong). */
cs_model *cs_vgg16_load(const char *weights_path, const char *class_index_path, char *err, size_t errlen);
/* Reads imagenet_class_index.json ({"0": ["n01440764", "tench"], ...}) into m:
 * class_names (labels as Keras' decode_predictions gives them) and class_ids (wnids).
 * 0, or -1 with err naming the file and the entry at fault; m is unchanged then. */
int cs_imagenet_load_classes(cs_model *m, const char *path, char *err, size_t errlen);

/* Where the weights are: flag_path (a file, or a folder holding CS_VGG16_WEIGHTS_FILE),
 * then models_dir/CS_VGG16_WEIGHTS_FILE, then $HOME/.keras/models/CS_VGG16_WEIGHTS_FILE.
 * Either path may be NULL or "". 0 with the first existing file in `found`, or -1;
 * either way `tried` lists the paths looked at, comma separated, for the message. */
int cs_vgg16_find_weights(const char *flag_path, const char *models_dir, char *found, size_t len, char *tried,
                          size_t tried_len);

/* The notebook's feature-map layers (its Keras indices 2, 5, 9, 13, 17, counted with
 * input_1 as layer 0; our layer list has no input layer, so look them up by name). */
extern const char *const CS_VGG16_NOTEBOOK_LAYERS[5];

#endif
