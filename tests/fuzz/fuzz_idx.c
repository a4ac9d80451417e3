/*
 * fuzz_idx.c - libFuzzer entry for the IDX reader (Fashion-MNIST's files, gzip or
 * plain): the first byte says how many dimensions to expect, the rest is the file.
 * Any bytes must give the payload or an error line, never a crash, a leak or an
 * allocation the file's own size does not justify. Built and run by `make fuzz`.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "dataset.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    int ndim = 1 + data[0] % 3;
    int fd = memfd_create("fuzz.idx", 0);
    if (fd < 0 || write(fd, data + 1, size - 1) != (ssize_t)(size - 1)) abort();
    char path[64], err[512] = "";
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    int dims[3];
    uint8_t *p = cs_idx_read(path, ndim, dims, err, sizeof err);
    close(fd);
    if (!p) {
        if (!err[0]) abort();
        return 0;
    }
    volatile uint8_t last = p[(size_t)dims[0] * dims[1] * dims[2] - 1]; /* the whole payload is there */
    (void)last;
    free(p);
    return 0;
}
