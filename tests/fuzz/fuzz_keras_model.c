/*
 * fuzz_keras_model.c - libFuzzer entry for the Keras full-model reader: any bytes must
 * give a model or an error line naming what was wrong, never a crash, a leak or a read
 * out of bounds. Inputs that start with '{' are read as a model configuration (the
 * JSON of model_config or config.json, where most of the translation's branches are),
 * anything else as a whole file (a .keras archive or an HDF5 image). An accepted model
 * of modest size is also run once on a zero image, so the shapes it accepted are shapes
 * the kernels can compute. Bare HDF5 images are left out: libhdf5 itself can loop on
 * some damaged files (a corrupt global heap under a variable-length attribute), which
 * says nothing of this reader; inside a .keras archive the entry's CRC refuses damaged
 * weights before libhdf5 sees them.
 * Built and run by `make fuzz-keras` (clang, -fsanitize=fuzzer,address,undefined).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "exec.h"
#include "keras_model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512];
    err[0] = 0;
    if (size >= 4 && data[0] == 0x89 && data[1] == 'H' && data[2] == 'D' && data[3] == 'F') return 0;
    cs_model *m = size > 0 && data[0] == '{'
                      ? cs_keras_model_from_json((const char *)data, size, 3, "fuzz", err, sizeof err)
                      : cs_keras_model_load_buffer(data, size, "fuzz", err, sizeof err);
    if (!m) {
        if (!err[0]) abort(); /* every refusal says why */
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
