/*
 * fuzz_keras_h5.c - libFuzzer entry for the Keras HDF5 weights loader: any bytes, as a
 * weights file for the Fashion-MNIST network, must load or give an error line, never
 * a crash or a leak in convscope's code. The bytes are a file in memory (memfd).
 * HDF5 itself parses the container; what it reports broken must come back as an
 * error. Built and run by `make fuzz`.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "keras_h5.h"
#include "model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static cs_model *m;
    if (!m && !(m = cs_model_build_fmnist())) abort();
    int fd = memfd_create("fuzz.h5", 0);
    if (fd < 0 || write(fd, data, size) != (ssize_t)size) abort();
    char path[64], err[512] = "";
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    int rc = cs_keras_h5_load(m, path, err, sizeof err);
    close(fd);
    if (rc != 0 && !err[0]) abort();
    return 0;
}
