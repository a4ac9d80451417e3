/*
 * square_data.h - the made-up data set the training tests learn: 28x28 gray images,
 * each a bright 5x5 square over noise, with the square's place saying the class
 * (i % 10), so a small network can learn it in a few steps.
 */
#ifndef CS_TEST_SQUARE_DATA_H
#define CS_TEST_SQUARE_DATA_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "dataset.h"
#include "rng.h"

/* n images, their noise drawn from seed; free with cs_dataset_free. */
static cs_dataset square_data(int n, uint64_t seed)
{
    cs_dataset d = {.n = n, .h = 28, .w = 28};
    d.images = malloc((size_t)n * 28 * 28);
    d.labels = malloc((size_t)n);
    if (!d.images || !d.labels) {
        fprintf(stderr, "setup: out of memory\n");
        exit(99);
    }
    cs_rng r;
    cs_rng_seed(&r, seed);
    for (int i = 0; i < n; i++) {
        d.labels[i] = (uint8_t)(i % 10);
        for (int p = 0; p < 28 * 28; p++) d.images[(size_t)i * 784 + p] = (uint8_t)cs_rng_below(&r, 60);
        int y0 = 2 + 2 * (i % 10), x0 = 4 + (i % 10);
        for (int y = y0; y < y0 + 5; y++)
            for (int x = x0; x < x0 + 5; x++) d.images[(size_t)i * 784 + y * 28 + x] = 250;
    }
    return d;
}

#endif
