/*
 * fuzz_onnx_reader.c - libFuzzer entry for the ONNX reader: any bytes must give a
 * graph or an error line, never a crash, a leak or a read out of bounds. Each input is
 * read whole (decode, checks, topological sort, folding); an accepted graph is walked
 * and folded once more, which must succeed on an already folded graph.
 * Built and run by `make fuzz-onnx` (clang, -fsanitize=fuzzer,address,undefined).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "onnx_reader.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    err[0] = 0;
    cs_onnx_graph *g = cs_onnx_read_buffer(data, size, err, sizeof err);
    if (!g) {
        if (!err[0]) abort(); /* every refusal says why */
        return 0;
    }
    /* Touch everything the graph hands out, so a bad pointer or count shows. */
    volatile double sum = 0;
    for (int k = 0; k < g->n_inits; k++) {
        const cs_onnx_tensor *t = &g->inits[k];
        for (int64_t j = 0; j < t->count; j++) sum += t->f ? t->f[j] : (double)t->i[j];
    }
    for (int k = 0; k < g->n_nodes; k++) {
        const cs_onnx_node *n = &g->nodes[k];
        for (int i = 0; i < n->n_inputs; i++) sum += (double)strlen(n->inputs[i]);
        for (int a = 0; a < n->n_attrs; a++) {
            const int64_t *iv;
            sum += (double)cs_onnx_attr_ints(n, n->attrs[a].name, &iv);
            if (n->attrs[a].type == CS_ONNX_ATTR_STRING) sum += (double)strlen(n->attrs[a].s);
        }
    }
    if (cs_onnx_fold(g, err, sizeof err) < 0) abort(); /* folding is idempotent */
    cs_onnx_graph_free(g);
    return 0;
}
