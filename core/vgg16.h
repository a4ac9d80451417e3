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
/* Reads imagenet_class_index.json ({"0": ["n01440764", "tench"], ...}) into m. */
int cs_imagenet_load_classes(cs_model *m, const char *path, char *err, size_t errlen);

#endif
