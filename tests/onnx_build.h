/*
 * onnx_build.h - ONNX models packed in a test with the protobuf-c structs generated
 * from onnx.proto, so a test of the reader or the importer needs no file it did not
 * write: tensors, attributes, nodes, value infos, a graph spec, pack() and
 * write_model(). Everything is allocated from one pool freed by pool_free().
 */
#ifndef CS_TEST_ONNX_BUILD_H
#define CS_TEST_ONNX_BUILD_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx.pb-c.h"
#include "test.h"

/* ---- building models ------------------------------------------------------------ */

/* Everything a model is built from is allocated here and freed by pool_free(). */
static void **pool;
static size_t pool_n, pool_cap;

static inline void *palloc(size_t n)
{
    if (pool_n == pool_cap) {
        pool_cap = pool_cap ? 2 * pool_cap : 256;
        pool = realloc(pool, pool_cap * sizeof *pool);
        if (!pool) exit(99);
    }
    void *p = calloc(1, n ? n : 1);
    if (!p) exit(99);
    return pool[pool_n++] = p;
}

static inline void pool_free(void)
{
    for (size_t k = 0; k < pool_n; k++) free(pool[k]);
    pool_n = 0;
}

static inline char *pstr(const char *s)
{
    return strcpy(palloc(strlen(s) + 1), s);
}

/* "a,b,,c" -> {"a", "b", "", "c"}; "" -> none. */
static inline size_t split_names(const char *list, char ***out)
{
    size_t n = *list ? 1 : 0;
    for (const char *p = list; *p; p++) n += *p == ',';
    *out = palloc(n * sizeof **out + 1);
    const char *start = list;
    for (size_t k = 0; k < n; k++) {
        const char *end = strchr(start, ',');
        size_t len = end ? (size_t)(end - start) : strlen(start);
        (*out)[k] = palloc(len + 1);
        memcpy((*out)[k], start, len);
        start += len + 1;
    }
    return n;
}

static inline Onnx__TensorProto *tensor_base(const char *name, int type, int ndim, const int64_t *dims)
{
    Onnx__TensorProto *t = palloc(sizeof *t);
    onnx__tensor_proto__init(t);
    t->name = pstr(name);
    t->has_data_type = 1;
    t->data_type = type;
    t->n_dims = (size_t)ndim;
    t->dims = palloc((size_t)ndim * sizeof *t->dims);
    if (ndim) memcpy(t->dims, dims, (size_t)ndim * sizeof *dims);
    return t;
}

/* raw: little-endian raw_data, else float_data. */
static inline Onnx__TensorProto *tensor_f(const char *name, int ndim, const int64_t *dims, const float *v, size_t n, int raw)
{
    Onnx__TensorProto *t = tensor_base(name, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, ndim, dims);
    if (raw) {
        t->has_raw_data = 1;
        t->raw_data.len = 4 * n;
        t->raw_data.data = palloc(4 * n);
        for (size_t k = 0; k < n; k++) {
            uint32_t bits;
            memcpy(&bits, &v[k], 4);
            for (int b = 0; b < 4; b++) t->raw_data.data[4 * k + b] = (uint8_t)(bits >> (8 * b));
        }
    } else {
        t->n_float_data = n;
        t->float_data = palloc(n * sizeof(float));
        if (n) memcpy(t->float_data, v, n * sizeof(float));
    }
    return t;
}

static inline Onnx__TensorProto *tensor_i64(const char *name, int ndim, const int64_t *dims, const int64_t *v, size_t n,
                                     int raw)
{
    Onnx__TensorProto *t = tensor_base(name, ONNX__TENSOR_PROTO__DATA_TYPE__INT64, ndim, dims);
    if (raw) {
        t->has_raw_data = 1;
        t->raw_data.len = 8 * n;
        t->raw_data.data = palloc(8 * n);
        for (size_t k = 0; k < n; k++)
            for (int b = 0; b < 8; b++) t->raw_data.data[8 * k + b] = (uint8_t)((uint64_t)v[k] >> (8 * b));
    } else {
        t->n_int64_data = n;
        t->int64_data = palloc(n * sizeof(int64_t));
        memcpy(t->int64_data, v, n * sizeof(int64_t));
    }
    return t;
}

static inline Onnx__AttributeProto *attr(const char *name, int type)
{
    Onnx__AttributeProto *a = palloc(sizeof *a);
    onnx__attribute_proto__init(a);
    a->name = pstr(name);
    a->has_type = 1;
    a->type = type;
    return a;
}

static inline Onnx__AttributeProto *attr_int(const char *name, int64_t v)
{
    Onnx__AttributeProto *a = attr(name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    a->has_i = 1;
    a->i = v;
    return a;
}

static inline Onnx__AttributeProto *attr_float(const char *name, float v)
{
    Onnx__AttributeProto *a = attr(name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
    a->has_f = 1;
    a->f = v;
    return a;
}

static inline Onnx__AttributeProto *attr_ints(const char *name, size_t n, const int64_t *v)
{
    Onnx__AttributeProto *a = attr(name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    a->n_ints = n;
    a->ints = palloc(n * sizeof *v);
    memcpy(a->ints, v, n * sizeof *v);
    return a;
}

static inline Onnx__AttributeProto *attr_floats(const char *name, size_t n, const float *v)
{
    Onnx__AttributeProto *a = attr(name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS);
    a->n_floats = n;
    a->floats = palloc(n * sizeof *v);
    memcpy(a->floats, v, n * sizeof *v);
    return a;
}

static inline Onnx__AttributeProto *attr_string(const char *name, const char *s)
{
    Onnx__AttributeProto *a = attr(name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING);
    a->has_s = 1;
    a->s.len = strlen(s);
    a->s.data = (uint8_t *)pstr(s);
    return a;
}

static inline Onnx__AttributeProto *attr_tensor(const char *name, Onnx__TensorProto *t)
{
    Onnx__AttributeProto *a = attr(name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR);
    a->t = t;
    return a;
}

/* node("Conv", "conv1", "x,W,B", "y", attr..., NULL) */
static inline Onnx__NodeProto *node(const char *op, const char *name, const char *ins, const char *outs, ...)
{
    Onnx__NodeProto *n = palloc(sizeof *n);
    onnx__node_proto__init(n);
    n->op_type = pstr(op);
    n->name = pstr(name);
    n->n_input = split_names(ins, &n->input);
    n->n_output = split_names(outs, &n->output);
    n->attribute = palloc(16 * sizeof *n->attribute);
    va_list ap;
    va_start(ap, outs);
    Onnx__AttributeProto *a;
    while ((a = va_arg(ap, Onnx__AttributeProto *))) n->attribute[n->n_attribute++] = a;
    va_end(ap);
    return n;
}

/* A tensor value; a dim of -1 is the symbolic "batch". */
static inline Onnx__ValueInfoProto *vinfo(const char *name, int ndim, const int64_t *dims)
{
    Onnx__ValueInfoProto *v = palloc(sizeof *v);
    onnx__value_info_proto__init(v);
    v->name = pstr(name);
    Onnx__TypeProto *tp = palloc(sizeof *tp);
    onnx__type_proto__init(tp);
    Onnx__TypeProto__Tensor *tt = palloc(sizeof *tt);
    onnx__type_proto__tensor__init(tt);
    tt->has_elem_type = 1;
    tt->elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    if (ndim >= 0) {
        Onnx__TensorShapeProto *sh = palloc(sizeof *sh);
        onnx__tensor_shape_proto__init(sh);
        sh->n_dim = (size_t)ndim;
        sh->dim = palloc((size_t)ndim * sizeof *sh->dim);
        for (int k = 0; k < ndim; k++) {
            Onnx__TensorShapeProto__Dimension *d = palloc(sizeof *d);
            onnx__tensor_shape_proto__dimension__init(d);
            if (dims[k] >= 0) {
                d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
                d->dim_value = dims[k];
            } else {
                d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
                d->dim_param = pstr("batch");
            }
            sh->dim[k] = d;
        }
        tt->shape = sh;
    }
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    tp->tensor_type = tt;
    v->type = tp;
    return v;
}

typedef struct {
    Onnx__NodeProto *nodes[64];
    int n_nodes;
    Onnx__TensorProto *inits[32];
    int n_inits;
    Onnx__ValueInfoProto *inputs[8], *outputs[8];
    int n_inputs, n_outputs;
    int64_t opset;
    const char *opset_domain;
} spec;

static inline void spec_init(spec *s)
{
    memset(s, 0, sizeof *s);
    s->opset = 13;
    s->opset_domain = "";
}

/* Packs the model; the bytes are the pool's. */
static inline uint8_t *pack(const spec *s, size_t *len)
{
    Onnx__GraphProto *g = palloc(sizeof *g);
    onnx__graph_proto__init(g);
    g->name = pstr("test");
    g->n_node = (size_t)s->n_nodes;
    g->node = (Onnx__NodeProto **)s->nodes;
    g->n_initializer = (size_t)s->n_inits;
    g->initializer = (Onnx__TensorProto **)s->inits;
    g->n_input = (size_t)s->n_inputs;
    g->input = (Onnx__ValueInfoProto **)s->inputs;
    g->n_output = (size_t)s->n_outputs;
    g->output = (Onnx__ValueInfoProto **)s->outputs;
    Onnx__OperatorSetIdProto *op = palloc(sizeof *op);
    onnx__operator_set_id_proto__init(op);
    op->domain = pstr(s->opset_domain);
    op->has_version = 1;
    op->version = s->opset;
    Onnx__OperatorSetIdProto **ops = palloc(sizeof *ops);
    ops[0] = op;
    Onnx__ModelProto m;
    onnx__model_proto__init(&m);
    m.has_ir_version = 1;
    m.ir_version = 7;
    m.producer_name = pstr("test_onnx_reader");
    m.n_opset_import = 1;
    m.opset_import = ops;
    m.graph = g;
    *len = onnx__model_proto__get_packed_size(&m);
    uint8_t *buf = palloc(*len);
    onnx__model_proto__pack(&m, buf);
    return buf;
}

static inline const char *write_model(const char *name, const uint8_t *buf, size_t len)
{
    const char *path = test_scratch_path(name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(buf, 1, len, f) != len) exit(99);
    fclose(f);
    return path;
}

#endif
