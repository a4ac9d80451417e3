/*
 * dataset.h - Fashion-MNIST (and MNIST-style) IDX files, gzip or plain.
 */
#ifndef CS_DATASET_H
#define CS_DATASET_H

#include <stddef.h>
#include <stdint.h>

#define CS_DEFAULT_DATA_DIR "/usr/share/datasets/fashion-mnist"

typedef struct {
    int n, h, w;
    uint8_t *images; /* n * h * w, row-major, 0..255 */
    uint8_t *labels; /* n, 0..9 */
} cs_dataset;

/* Reads one IDX file (gzip or plain, detected by content) and checks its magic
 * number, the number of dimensions and that the payload is complete.
 * dims receives up to 3 sizes; returns the data (malloc'd) or NULL with err set. */
uint8_t *cs_idx_read(const char *path, int want_ndim, int dims[3], char *err, size_t errlen);

/* split: "train" or "test". Looks for {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]
 * in dir. Checks that images and labels agree in count and labels are 0..9. */
int cs_dataset_load(const char *dir, const char *split, cs_dataset *out, char *err, size_t errlen);
void cs_dataset_free(cs_dataset *d);

/* Image i as floats in 0..1 (pixels / 255), h*w values. */
void cs_dataset_image_float(const cs_dataset *d, int i, float *out);

#endif
