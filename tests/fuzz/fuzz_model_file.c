/*
 * fuzz_model_file.c - libFuzzer entry for the model file (.csm): any bytes must give a
 * model or an error line, never a crash, a leak or a read out of bounds. The bytes are
 * loaded from a file in memory (memfd), as the server loads its models folder; an
 * accepted model of modest size is run once on a zero image.
 * Built and run by `make fuzz`.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "exec.h"
#include "model_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd = memfd_create("fuzz.csm", 0);
    if (fd < 0 || write(fd, data, size) != (ssize_t)size) abort();
    char path[64], err[512] = "";
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    cs_model *m = cs_model_load(path, err, sizeof err);
    close(fd);
    if (!m) {
        if (!err[0]) abort();
        return 0;
    }
    size_t acts = 0;
    for (int i = 0; i < m->n_layers; i++) acts += cs_shape_size(m->layers[i].out);
    if (acts < ((size_t)1 << 22) && cs_model_param_count(m) < ((size_t)1 << 22)) {
        cs_exec *e = cs_exec_new(m, 1);
        float *x = calloc(cs_shape_size(m->input), sizeof(float));
        if (e && x && cs_exec_forward(e, x, 1, 0, NULL) != 0) abort();
        free(x);
        cs_exec_free(e);
    }
    cs_model_free(m);
    return 0;
}
