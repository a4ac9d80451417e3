/*
 * data.h - the Fashion-MNIST splits, read once and shared read-only by every request
 * and training job.
 */
#ifndef CS_API_DATA_H
#define CS_API_DATA_H

#include <stddef.h>

#include "dataset.h"
#include "http.h"
#include "image.h"

/* split: "train" or "test". The dataset (loaded on first use, kept until exit), or
 * NULL with the reason. */
const cs_dataset *cs_data_get(const char *split, char *err, size_t errlen);
/* Parses "test:18" / "train:0" into a copy of that image (28x28 gray, cs_image_free)
 * and its label. 0, the HTTP status of the problem (400 bad spec / range, 503 data
 * missing) with a message, or -1 when out of memory. */
int cs_data_sample(const char *spec, cs_image *img, int *label, char *err, size_t errlen);
void cs_data_free_all(void);

#endif
