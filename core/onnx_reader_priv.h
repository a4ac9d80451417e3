/*
 * onnx_reader_priv.h - what onnx_reader.c shares with onnx_fold.c and onnx_tensor.c
 * and nothing else includes: a name -> index hash map, the helpers that grow and
 * shrink a graph, and the TensorProto conversion.
 */
#ifndef CS_ONNX_READER_PRIV_H
#define CS_ONNX_READER_PRIV_H

#include <stddef.h>
#include <stdint.h>

#include "onnx_reader.h"

/* Open-addressing map from a borrowed NUL-terminated name to an int. The keys must
 * outlive the map. */
typedef struct {
    const char **keys;
    int *vals;
    size_t cap; /* a power of two, at least twice the number of keys */
    size_t n;
} onnx_map;

/* 0, or -1 when out of memory. `expected` sizes the table (it still grows). */
int onnx_map_init(onnx_map *m, size_t expected);
void onnx_map_free(onnx_map *m);
/* The value stored for key, or -1 when absent. */
int onnx_map_get(const onnx_map *m, const char *key);
/* Stores key -> val, replacing an earlier value. 0, or -1 when out of memory. */
int onnx_map_put(onnx_map *m, const char *key, int val);

char *onnx_strdup(const char *s);
void onnx_tensor_clear(cs_onnx_tensor *t);
void onnx_node_clear(cs_onnx_node *n);
/* "3x4x5" ("scalar" for no dims) into buf. */
const char *onnx_dims_str(char *buf, size_t len, const int64_t *dims, int ndim);
/* Appends *t to g->inits, taking its contents (t is left empty). 0, or -1 on OOM. */
int onnx_graph_add_init(cs_onnx_graph *g, cs_onnx_tensor *t);

/* Converts a decoded TensorProto into t (FLOAT, or INT64/INT32 as int64). `what` names
 * it in errors ("initializer 'conv.weight'"); file_len bounds the declared size. 0, or
 * -1 with err and t cleared. */
struct Onnx__TensorProto;
int onnx_tensor_from_proto(cs_onnx_tensor *t, const struct Onnx__TensorProto *p, const char *what, size_t file_len,
                           char *err, size_t errlen);

#endif
