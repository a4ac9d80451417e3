/*
 * test_onnx_reader.c - the ONNX reader: models packed here with the protobuf-c structs
 * generated from onnx.proto (so no test needs a file it did not write), read back from
 * a file; attribute and initializer values, topological order, every refusal, and
 * the constant folding of real PyTorch exports (tests/data/onnx/, written by
 * tests/onnx/make_reader_fixtures.py). Run from the project root.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx_build.h"
#include "onnx_reader.h"
#include "test.h"

#define FIXTURES "tests/data/onnx/"

/* Packs s, writes it to a file and reads it back with cs_onnx_read. */
static cs_onnx_graph *roundtrip(const spec *s, char *err, size_t errlen)
{
    size_t len;
    uint8_t *buf = pack(s, &len);
    return cs_onnx_read(write_model("model.onnx", buf, len), err, errlen);
}

static int count_op(const cs_onnx_graph *g, const char *op)
{
    int n = 0;
    for (int k = 0; k < g->n_nodes; k++) n += !strcmp(g->nodes[k].op_type, op);
    return n;
}

/* Every node's inputs are graph inputs, initializers or outputs of earlier nodes. */
static int is_topological(const cs_onnx_graph *g)
{
    for (int k = 0; k < g->n_nodes; k++)
        for (int i = 0; i < g->nodes[k].n_inputs; i++) {
            const char *v = g->nodes[k].inputs[i];
            if (!*v || cs_onnx_find_init(g, v)) continue;
            int p = cs_onnx_find_producer(g, v), is_input = 0;
            for (int j = 0; j < g->n_inputs; j++) is_input |= !strcmp(g->inputs[j].name, v);
            if (!is_input && (p < 0 || p >= k)) return 0;
        }
    return 1;
}

static const int64_t d_x[] = {-1, 1, 8, 8};

/* x [batch,1,8,8] -> Conv(W 2x1x3x3, B) -> Relu -> y, the base of several cases. */
static void conv_relu(spec *s)
{
    static const float w[18] = {0};
    static const float b[2] = {0.5f, -0.5f};
    spec_init(s);
    s->inputs[s->n_inputs++] = vinfo("x", 4, d_x);
    s->outputs[s->n_outputs++] = vinfo("y", -1, NULL);
    s->inits[s->n_inits++] = tensor_f("W", 4, (int64_t[]){2, 1, 3, 3}, w, 18, 1);
    s->inits[s->n_inits++] = tensor_f("B", 1, (int64_t[]){2}, b, 2, 0);
    s->nodes[s->n_nodes++] = node("Conv", "conv", "x,W,B", "c", attr_ints("kernel_shape", 2, (int64_t[]){3, 3}), NULL);
    s->nodes[s->n_nodes++] = node("Relu", "relu", "c", "y", NULL);
}

/* ---- reading -------------------------------------------------------------------- */

static void test_attributes(void)
{
    spec s;
    conv_relu(&s);
    static const float fl[3] = {0.25f, -1.5f, 3.0f};
    static const float tv[4] = {1, 2, 3, 4};
    s.nodes[0] = node("Conv", "conv", "x,W,B", "c", attr_int("group", 1), attr_ints("strides", 2, (int64_t[]){1, 1}),
                      attr_ints("pads", 4, (int64_t[]){1, 0, 1, 0}), attr_float("epsilon_like", 0.125f),
                      attr_floats("scales", 3, fl), attr_string("auto_pad", "NOTSET"),
                      attr_tensor("extra", tensor_f("", 2, (int64_t[]){2, 2}, tv, 4, 0)), NULL);
    char err[512] = "";
    cs_onnx_graph *g = roundtrip(&s, err, sizeof err);
    CHECK(g, "read: %s", err);
    if (!g) return;
    CHECK(g->opset == 13, "opset %d", g->opset);
    CHECK(!strcmp(g->producer, "test_onnx_reader"), "producer '%s'", g->producer);
    const cs_onnx_node *n = cs_onnx_find_node(g, "conv");
    CHECK(n && !strcmp(n->op_type, "Conv"), "conv node");
    if (!n) goto done;
    CHECK(n->n_inputs == 3 && !strcmp(n->inputs[1], "W") && n->n_outputs == 1 && !strcmp(n->outputs[0], "c"),
          "conv io");
    CHECK(cs_onnx_attr_int(n, "group", 7) == 1, "group");
    CHECK(cs_onnx_attr_int(n, "no_such", 7) == 7, "default int");
    CHECK(cs_onnx_attr_int(n, "auto_pad", 7) == 7, "a string asked as an int gives the default");
    CHECK(cs_onnx_attr_float(n, "epsilon_like", 0) == 0.125f, "float");
    CHECK(cs_onnx_attr_float(n, "group", -2.0f) == -2.0f, "an int asked as a float gives the default");
    CHECK(!strcmp(cs_onnx_attr_string(n, "auto_pad", "?"), "NOTSET"), "string");
    CHECK(!strcmp(cs_onnx_attr_string(n, "missing", "dflt"), "dflt"), "default string");
    const int64_t *iv;
    int ni = cs_onnx_attr_ints(n, "pads", &iv);
    CHECK(ni == 4 && iv[0] == 1 && iv[1] == 0 && iv[2] == 1 && iv[3] == 0, "pads");
    CHECK(cs_onnx_attr_ints(n, "missing", &iv) == -1 && iv == NULL, "missing ints");
    const float *fv;
    int nf = cs_onnx_attr_floats(n, "scales", &fv);
    CHECK(nf == 3 && fv[0] == 0.25f && fv[1] == -1.5f && fv[2] == 3.0f, "floats");
    const cs_onnx_tensor *t = cs_onnx_attr_tensor(n, "extra");
    CHECK(t && t->elem_type == CS_ONNX_FLOAT && t->ndim == 2 && t->dims[0] == 2 && t->dims[1] == 2 && t->count == 4 &&
              t->f[0] == 1 && t->f[3] == 4,
          "tensor attribute");
    const cs_onnx_attr *a = cs_onnx_attr_find(n, "auto_pad");
    CHECK(a && a->type == CS_ONNX_ATTR_STRING && a->s_len == 6, "attr_find");
    /* The graph's interface: batch is -1. */
    CHECK(g->n_inputs == 1 && !strcmp(g->inputs[0].name, "x") && g->inputs[0].ndim == 4 && g->inputs[0].dims[0] == -1 &&
              g->inputs[0].dims[1] == 1 && g->inputs[0].dims[3] == 8 && g->inputs[0].elem_type == CS_ONNX_FLOAT,
          "input x");
    CHECK(g->n_outputs == 1 && !strcmp(g->outputs[0].name, "y") && g->outputs[0].ndim == -1, "output y");
done:
    cs_onnx_graph_free(g);
    pool_free();
}

static void test_initializer_values(void)
{
    static const float wf[6] = {1.5f, -2.25f, 0.0f, 3.0e-8f, -1e30f, 42.0f};
    static const int64_t wi[3] = {-1, 5000000000LL, 7};
    spec s;
    spec_init(&s);
    s.inputs[s.n_inputs++] = vinfo("x", 2, (int64_t[]){-1, 3});
    s.outputs[s.n_outputs++] = vinfo("y", -1, NULL);
    s.inits[s.n_inits++] = tensor_f("raw_f", 2, (int64_t[]){2, 3}, wf, 6, 1);
    s.inits[s.n_inits++] = tensor_f("typed_f", 2, (int64_t[]){3, 2}, wf, 6, 0);
    s.inits[s.n_inits++] = tensor_i64("raw_i", 1, (int64_t[]){3}, wi, 3, 1);
    s.inits[s.n_inits++] = tensor_i64("typed_i", 1, (int64_t[]){3}, wi, 3, 0);
    Onnx__TensorProto *i32 = tensor_base("typed_i32", ONNX__TENSOR_PROTO__DATA_TYPE__INT32, 1, (int64_t[]){2});
    i32->n_int32_data = 2;
    i32->int32_data = palloc(2 * sizeof(int32_t));
    i32->int32_data[0] = -7;
    i32->int32_data[1] = 2147483647;
    s.inits[s.n_inits++] = i32;
    Onnx__TensorProto *raw32 = tensor_base("raw_i32", ONNX__TENSOR_PROTO__DATA_TYPE__INT32, 0, NULL);
    raw32->has_raw_data = 1;
    raw32->raw_data.len = 4;
    raw32->raw_data.data = palloc(4);
    memcpy(raw32->raw_data.data, (uint8_t[]){0xfe, 0xff, 0xff, 0xff}, 4); /* -2, a scalar */
    s.inits[s.n_inits++] = raw32;
    s.inits[s.n_inits++] = tensor_f("empty", 2, (int64_t[]){0, 5}, NULL, 0, 0);
    /* One node reads them all, so folding keeps them. */
    s.nodes[s.n_nodes++] = node("Sum", "use", "x,raw_f,typed_f,raw_i,typed_i,typed_i32,raw_i32,empty", "y", NULL);
    char err[512] = "";
    cs_onnx_graph *g = roundtrip(&s, err, sizeof err);
    CHECK(g, "read: %s", err);
    if (!g) return;
    CHECK(g->n_inits == 7, "%d initializers", g->n_inits);
    const cs_onnx_tensor *t;
    t = cs_onnx_find_init(g, "raw_f");
    CHECK(t && t->elem_type == CS_ONNX_FLOAT && t->ndim == 2 && t->dims[0] == 2 && t->dims[1] == 3 && t->count == 6,
          "raw_f header");
    for (int k = 0; t && k < 6; k++) CHECK(t->f[k] == wf[k], "raw_f[%d] = %g, want %g", k, t->f[k], wf[k]);
    t = cs_onnx_find_init(g, "typed_f");
    CHECK(t && t->dims[0] == 3 && t->dims[1] == 2 && t->i == NULL, "typed_f header");
    for (int k = 0; t && k < 6; k++) CHECK(t->f[k] == wf[k], "typed_f[%d]", k);
    t = cs_onnx_find_init(g, "raw_i");
    CHECK(t && t->elem_type == CS_ONNX_INT64 && t->f == NULL && t->i[0] == -1 && t->i[1] == 5000000000LL &&
              t->i[2] == 7,
          "raw_i");
    t = cs_onnx_find_init(g, "typed_i");
    CHECK(t && t->i[0] == -1 && t->i[1] == 5000000000LL && t->i[2] == 7, "typed_i");
    t = cs_onnx_find_init(g, "typed_i32");
    CHECK(t && t->elem_type == CS_ONNX_INT64 && t->count == 2 && t->i[0] == -7 && t->i[1] == 2147483647,
          "int32 widened");
    t = cs_onnx_find_init(g, "raw_i32");
    CHECK(t && t->ndim == 0 && t->count == 1 && t->i[0] == -2, "raw int32 scalar");
    t = cs_onnx_find_init(g, "empty");
    CHECK(t && t->count == 0 && t->dims[0] == 0 && t->dims[1] == 5, "empty tensor");
    cs_onnx_graph_free(g);
    pool_free();
}

static void test_topological_sort(void)
{
    /* x -> a -> b -> {c, d} -> e(c, d) -> y, written in the file shuffled; two
     * nodes without names get "Relu_0" and "Relu_2" ("Relu_1" is taken). */
    spec s;
    spec_init(&s);
    s.inputs[s.n_inputs++] = vinfo("x", 2, (int64_t[]){-1, 4});
    s.outputs[s.n_outputs++] = vinfo("y", -1, NULL);
    Onnx__NodeProto *a = node("Relu", "", "x", "va", NULL), *b = node("Sigmoid", "b", "va", "vb", NULL),
                    *c = node("Relu", "Relu_1", "vb", "vc", NULL), *d = node("Tanh", "d", "vb", "vd", NULL),
                    *e = node("Add", "e", "vc,vd", "ve", NULL), *f = node("Relu", "", "ve", "y", NULL);
    Onnx__NodeProto *order[] = {e, f, d, b, c, a};
    for (int k = 0; k < 6; k++) s.nodes[s.n_nodes++] = order[k];
    char err[512] = "";
    cs_onnx_graph *g = roundtrip(&s, err, sizeof err);
    CHECK(g, "read: %s", err);
    if (!g) return;
    CHECK(g->n_nodes == 6, "%d nodes", g->n_nodes);
    CHECK(is_topological(g), "not in topological order");
    /* Ties between ready nodes keep file order: d (file position 2) before c (4). */
    const char *want[] = {"Relu_2", "b", "d", "Relu_1", "e", "Relu_0"};
    for (int k = 0; k < 6 && k < g->n_nodes; k++)
        CHECK(!strcmp(g->nodes[k].name, want[k]), "node %d is '%s', want '%s'", k, g->nodes[k].name, want[k]);
    cs_onnx_graph_free(g);
    pool_free();
}

static void test_optional_inputs_and_legacy_inputs(void)
{
    spec s;
    conv_relu(&s);
    s.nodes[0] = node("Conv", "conv", "x,W,", "c", NULL);
    /* Before IR 4, initializers were listed as inputs too; they are not inputs here. */
    s.inputs[s.n_inputs++] = vinfo("W", 4, (int64_t[]){2, 1, 3, 3});
    char err[512] = "";
    cs_onnx_graph *g = roundtrip(&s, err, sizeof err);
    CHECK(g, "read: %s", err);
    if (!g) return;
    const cs_onnx_node *n = cs_onnx_find_node(g, "conv");
    CHECK(n && n->n_inputs == 3 && !strcmp(n->inputs[2], ""), "absent optional input reads as \"\"");
    CHECK(g->n_inputs == 1 && !strcmp(g->inputs[0].name, "x"), "initializers are not inputs (%d)", g->n_inputs);
    CHECK(!cs_onnx_find_init(g, "B"), "unused initializer B was not removed");
    cs_onnx_graph_free(g);
    pool_free();
}

/* ---- refusals ------------------------------------------------------------------- */

/* Reads s and expects a refusal whose text contains every given fragment. */
static void expect_error(const spec *s, const char *what, ...)
{
    char err[512] = "";
    cs_onnx_graph *g = roundtrip(s, err, sizeof err);
    CHECK(!g, "%s: accepted", what);
    cs_onnx_graph_free(g);
    va_list ap;
    va_start(ap, what);
    const char *frag;
    while ((frag = va_arg(ap, const char *))) CHECK(strstr(err, frag), "%s: error '%s' lacks '%s'", what, err, frag);
    va_end(ap);
}

static void test_truncated(void)
{
    spec s;
    conv_relu(&s);
    size_t len;
    uint8_t *buf = pack(&s, &len);
    char err[512];
    cs_onnx_graph *whole = cs_onnx_read_buffer(buf, len, err, sizeof err);
    CHECK(whole, "the whole model: %s", err);
    cs_onnx_graph_free(whole);
    int accepted = 0, silent = 0;
    for (size_t cut = 0; cut < len; cut++) {
        /* A copy of exactly `cut` bytes, so AddressSanitizer sees any read past it. */
        uint8_t *part = malloc(cut ? cut : 1);
        if (!part) exit(99);
        memcpy(part, buf, cut);
        err[0] = 0;
        cs_onnx_graph *g = cs_onnx_read_buffer(part, cut, err, sizeof err);
        accepted += g != NULL;
        silent += !g && !err[0];
        cs_onnx_graph_free(g);
        free(part);
    }
    CHECK(!accepted, "%d of %zu truncated copies were accepted", accepted, len);
    CHECK(!silent, "%d refusals without a message", silent);
    /* Through a file as well, at a few lengths. */
    size_t cuts[] = {0, 1, len / 3, len / 2, len - 1};
    for (int k = 0; k < 5; k++) {
        err[0] = 0;
        cs_onnx_graph *g = cs_onnx_read(write_model("cut.onnx", buf, cuts[k]), err, sizeof err);
        CHECK(!g && strstr(err, "cut.onnx"), "cut at %zu: '%s'", cuts[k], err);
        cs_onnx_graph_free(g);
    }
    pool_free();
}

static void test_unknown_domain(void)
{
    spec s;
    conv_relu(&s);
    s.nodes[1]->domain = pstr("com.microsoft");
    s.nodes[1]->op_type = pstr("FusedRelu");
    expect_error(&s, "custom domain", "com.microsoft", "FusedRelu", "'relu'", NULL);
    pool_free();
}

static void test_opsets(void)
{
    spec s;
    char err[512];
    int64_t ok[] = {6, 21};
    for (int k = 0; k < 2; k++) {
        conv_relu(&s);
        s.opset = ok[k];
        s.opset_domain = k ? "ai.onnx" : "";
        cs_onnx_graph *g = roundtrip(&s, err, sizeof err);
        CHECK(g && g->opset == ok[k], "opset %lld refused: %s", (long long)ok[k], err);
        cs_onnx_graph_free(g);
        pool_free();
    }
    conv_relu(&s);
    s.opset = 5;
    expect_error(&s, "opset 5", "opset 5", NULL);
    pool_free();
    conv_relu(&s);
    s.opset = 22;
    expect_error(&s, "opset 22", "opset 22", NULL);
    pool_free();
    conv_relu(&s);
    s.opset_domain = "ai.onnx.ml";
    expect_error(&s, "no default opset", "no opset", NULL);
    pool_free();
}

static void test_cycle(void)
{
    spec s;
    spec_init(&s);
    s.inputs[s.n_inputs++] = vinfo("x", 2, (int64_t[]){-1, 4});
    s.outputs[s.n_outputs++] = vinfo("y", -1, NULL);
    s.nodes[s.n_nodes++] = node("Add", "n1", "x,v3", "v1", NULL);
    s.nodes[s.n_nodes++] = node("Relu", "n2", "v1", "v2", NULL);
    s.nodes[s.n_nodes++] = node("Relu", "n3", "v2", "v3", NULL);
    s.nodes[s.n_nodes++] = node("Relu", "out", "v3", "y", NULL);
    char err[512] = "";
    cs_onnx_graph *g = roundtrip(&s, err, sizeof err);
    CHECK(!g && strstr(err, "cycle"), "cycle: '%s'", err);
    CHECK(strstr(err, "'n1'") || strstr(err, "'n2'") || strstr(err, "'n3'"), "the cycle's node is named: '%s'", err);
    CHECK(!strstr(err, "'out'"), "names a node outside the cycle: '%s'", err);
    cs_onnx_graph_free(g);
    pool_free();
    /* A node reading its own output. */
    spec_init(&s);
    s.inputs[s.n_inputs++] = vinfo("x", 2, (int64_t[]){-1, 4});
    s.outputs[s.n_outputs++] = vinfo("y", -1, NULL);
    s.nodes[s.n_nodes++] = node("Add", "self", "x,y", "y", NULL);
    expect_error(&s, "self loop", "cycle", "'self'", NULL);
    pool_free();
}

static void test_missing_and_duplicates(void)
{
    spec s;
    conv_relu(&s);
    s.n_inits = 1; /* drop B */
    expect_error(&s, "missing initializer", "'conv'", "'B'", "missing", NULL);
    pool_free();

    conv_relu(&s);
    s.nodes[s.n_nodes++] = node("Relu", "again", "c", "y", NULL);
    expect_error(&s, "duplicate output", "'y'", "'again'", "'relu'", NULL);
    pool_free();

    conv_relu(&s);
    s.nodes[1]->output[0] = pstr("W");
    expect_error(&s, "output named like an initializer", "'W'", "initializer", NULL);
    pool_free();

    conv_relu(&s);
    s.nodes[1]->name = pstr("conv");
    expect_error(&s, "duplicate node name", "'conv'", NULL);
    pool_free();

    conv_relu(&s);
    s.outputs[0] = vinfo("nowhere", -1, NULL);
    expect_error(&s, "unproduced output", "'nowhere'", NULL);
    pool_free();

    conv_relu(&s);
    s.inits[s.n_inits++] = tensor_f("B", 1, (int64_t[]){2}, (float[]){0, 0}, 2, 0);
    expect_error(&s, "duplicate initializer", "'B'", NULL);
    pool_free();
}

static void test_huge_declared_tensor(void)
{
    spec s;
    conv_relu(&s);
    /* 50000 x 50000 floats is 10 GB; the file holds 16 bytes of it. */
    s.inits[1] = tensor_f("B", 2, (int64_t[]){50000, 50000}, (float[]){1, 2, 3, 4}, 4, 1);
    expect_error(&s, "10 GB tensor", "'B'", "50000x50000", "limit", NULL);
    pool_free();

    /* Under the absolute cap but far more than the file holds. */
    conv_relu(&s);
    s.inits[1] = tensor_f("B", 2, (int64_t[]){4000, 4000}, (float[]){1, 2, 3, 4}, 4, 0);
    expect_error(&s, "64 MB tensor in a small file", "'B'", "4000x4000", "file", NULL);
    pool_free();

    /* Dims whose product overflows 64 bits. */
    conv_relu(&s);
    s.inits[1] = tensor_f("B", 3, (int64_t[]){INT64_MAX / 2, 4, 4}, (float[]){1}, 1, 0);
    expect_error(&s, "overflowing dims", "'B'", "64 bits", NULL);
    pool_free();

    conv_relu(&s);
    s.inits[1] = tensor_f("B", 2, (int64_t[]){-2, 1}, (float[]){1, 2}, 2, 0);
    expect_error(&s, "negative dim", "'B'", "negative", NULL);
    pool_free();

    /* A count that does not match the data. */
    conv_relu(&s);
    s.inits[1] = tensor_f("B", 1, (int64_t[]){3}, (float[]){1, 2}, 2, 1);
    expect_error(&s, "short raw data", "'B'", "raw_data", NULL);
    pool_free();
}

static void test_external_data_and_types(void)
{
    spec s;
    conv_relu(&s);
    Onnx__TensorProto *t = tensor_base("W", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 4, (int64_t[]){2, 1, 3, 3});
    t->has_data_location = 1;
    t->data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
    Onnx__StringStringEntryProto *loc = palloc(sizeof *loc);
    onnx__string_string_entry_proto__init(loc);
    loc->key = pstr("location");
    loc->value = pstr("weights.bin");
    t->n_external_data = 1;
    t->external_data = palloc(sizeof *t->external_data);
    t->external_data[0] = loc;
    s.inits[0] = t;
    expect_error(&s, "external data", "'W'", "external", NULL);
    pool_free();

    conv_relu(&s);
    Onnx__TensorProto *d = tensor_base("W", ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE, 1, (int64_t[]){1});
    d->n_double_data = 1;
    d->double_data = palloc(sizeof(double));
    s.inits[0] = d;
    expect_error(&s, "double weights", "'W'", "DOUBLE", NULL);
    pool_free();

    conv_relu(&s);
    Onnx__AttributeProto *ga = attr("then_branch", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH);
    ga->g = palloc(sizeof *ga->g);
    onnx__graph_proto__init(ga->g);
    s.nodes[1] = node("Relu", "relu", "c", "y", ga, NULL);
    expect_error(&s, "graph attribute", "'relu'", "'then_branch'", "subgraph", NULL);
    pool_free();
}

/* Bytes of a model whose first graph input's type nests `depth` sequence types. */
static uint8_t *nested_types(int depth, size_t *len)
{
    size_t cap = (size_t)depth * 12 + 64, at = cap;
    uint8_t *buf = palloc(cap);
    /* Built from the innermost level outwards: each wrap prepends a tag and a length. */
#define WRAP(field)                                                                                     \
    do {                                                                                                \
        size_t inner = cap - at;                                                                        \
        uint8_t v[10];                                                                                  \
        int nv = 0;                                                                                     \
        for (size_t x = inner; nv == 0 || x; x >>= 7) v[nv++] = (uint8_t)((x & 0x7f) | (x >> 7 ? 0x80 : 0)); \
        at -= (size_t)nv;                                                                               \
        memcpy(buf + at, v, (size_t)nv);                                                                \
        buf[--at] = (uint8_t)((field) << 3 | 2);                                                        \
    } while (0)
    for (int k = 0; k < depth; k++) {
        WRAP(1); /* TypeProto.Sequence.elem_type */
        WRAP(4); /* TypeProto.sequence_type */
    }
    WRAP(2);  /* ValueInfoProto.type */
    WRAP(11); /* GraphProto.input */
    WRAP(7);  /* ModelProto.graph */
#undef WRAP
    *len = cap - at;
    return buf + at;
}

static void test_deep_nesting(void)
{
    char err[512] = "";
    size_t len;
    /* Deep enough to exhaust the stack of a decoder that recurses without a limit. */
    uint8_t *buf = nested_types(300000, &len);
    cs_onnx_graph *g = cs_onnx_read_buffer(buf, len, err, sizeof err);
    CHECK(!g && strstr(err, "deeply"), "300000 nested types: '%s'", err);
    cs_onnx_graph_free(g);
    buf = nested_types(10, &len);
    err[0] = 0;
    g = cs_onnx_read_buffer(buf, len, err, sizeof err);
    CHECK(!g && err[0] && !strstr(err, "deeply"), "10 nested types are not too deep: '%s'", err);
    cs_onnx_graph_free(g);
    pool_free();
}

static void test_file_errors(void)
{
    char err[512] = "";
    cs_onnx_graph *g = cs_onnx_read(test_scratch_path("absent.onnx"), err, sizeof err);
    CHECK(!g && strstr(err, "absent.onnx"), "absent file: '%s'", err);
    g = cs_onnx_read(t_scratch, err, sizeof err);
    CHECK(!g && strstr(err, "not a regular file"), "directory: '%s'", err);
    /* ir_version 7, then a graph field that claims 127 bytes and has 5. */
    const char junk[] = "\x08\x07\x3a\x7fshort";
    g = cs_onnx_read(write_model("junk.onnx", (const uint8_t *)junk, sizeof junk - 1), err, sizeof err);
    CHECK(!g && strstr(err, "junk.onnx") && strstr(err, "not an ONNX model"), "junk: '%s'", err);
    cs_onnx_graph_free(g);
}

/* ---- folding -------------------------------------------------------------------- */

/* The shape input of the graph's one Reshape, as a constant. */
static const cs_onnx_tensor *reshape_target(const cs_onnx_graph *g)
{
    for (int k = 0; k < g->n_nodes; k++)
        if (!strcmp(g->nodes[k].op_type, "Reshape") && g->nodes[k].n_inputs == 2)
            return cs_onnx_find_init(g, g->nodes[k].inputs[1]);
    return NULL;
}

static int ops_are(const cs_onnx_graph *g, const char *const *ops, int n)
{
    if (g->n_nodes != n) return 0;
    for (int k = 0; k < n; k++)
        if (strcmp(g->nodes[k].op_type, ops[k])) return 0;
    return 1;
}

static void print_ops(const cs_onnx_graph *g)
{
    fprintf(stderr, "    nodes:");
    for (int k = 0; k < g->n_nodes; k++) fprintf(stderr, " %s", g->nodes[k].op_type);
    fprintf(stderr, "\n");
}

/* A fixture read whole and folded, after checking that unfolded it has shape
 * arithmetic to fold (so the test cannot pass on an export that had none). */
static cs_onnx_graph *read_fixture(const char *name, int want_shape_ops)
{
    char path[256], err[512] = "";
    snprintf(path, sizeof path, FIXTURES "%s", name);
    size_t len;
    void *buf = test_read_file(path, &len);
    CHECK(buf, "cannot read %s", path);
    if (!buf) return NULL;
    cs_onnx_graph *raw = cs_onnx_parse_buffer(buf, len, err, sizeof err);
    free(buf);
    CHECK(raw, "%s unfolded: %s", name, err);
    if (!raw) return NULL;
    if (want_shape_ops)
        CHECK(count_op(raw, "Shape") && count_op(raw, "Gather") && count_op(raw, "Concat"),
              "%s has no shape arithmetic to fold", name);
    cs_onnx_graph_free(raw);
    cs_onnx_graph *g = cs_onnx_read(path, err, sizeof err);
    CHECK(g, "%s: %s", name, err);
    return g;
}

static void no_shape_arithmetic(const cs_onnx_graph *g, const char *name)
{
    const char *gone[] = {"Shape", "Gather", "Unsqueeze", "Concat", "Constant", "Cast", "Mul"};
    for (int k = 0; k < 7; k++) CHECK(!count_op(g, gone[k]), "%s: %d %s nodes left", name, count_op(g, gone[k]), gone[k]);
    CHECK(is_topological(g), "%s not in order", name);
}

static void test_fold_view_export(void)
{
    /* conv 3x3 (1->3) on 12x12 -> 10x10, relu, maxpool 2 -> 3x5x5, view(N, -1) -> 75, linear 4. */
    cs_onnx_graph *g = read_fixture("view_cnn.onnx", 1);
    if (!g) return;
    no_shape_arithmetic(g, "view_cnn");
    static const char *const want[] = {"Conv", "Relu", "MaxPool", "Reshape", "Gemm"};
    CHECK(ops_are(g, want, 5), "view_cnn folds to Conv Relu MaxPool Reshape Gemm");
    if (!ops_are(g, want, 5)) print_ops(g);
    const cs_onnx_tensor *t = reshape_target(g);
    CHECK(t && t->elem_type == CS_ONNX_INT64 && t->count == 2 && (t->i[0] == 0 || t->i[0] == -1) && t->i[1] == 75,
          "view_cnn: reshape target [%lld, %lld]", t ? (long long)t->i[0] : 0LL,
          t && t->count > 1 ? (long long)t->i[1] : 0LL);
    CHECK(g->n_inputs == 1 && g->inputs[0].ndim == 4 && g->inputs[0].dims[0] == -1 && g->inputs[0].dims[2] == 12,
          "view_cnn input [batch,1,12,12]");
    const cs_onnx_tensor *fc = cs_onnx_find_init(g, "fc.weight");
    CHECK(fc && fc->ndim == 2 && fc->dims[0] == 4 && fc->dims[1] == 75, "fc.weight 4x75");
    /* Only the weights and the folded target remain. */
    CHECK(g->n_inits == 5, "view_cnn: %d initializers", g->n_inits);
    cs_onnx_graph_free(g);
}

static void test_fold_reshape_product_export(void)
{
    /* conv 3x3 (1->2) on 6x6 -> 2x4x4, reshape(N, C*H*W): the product is int64 Mul. */
    cs_onnx_graph *g = read_fixture("reshape_cnn.onnx", 1);
    if (!g) return;
    no_shape_arithmetic(g, "reshape_cnn");
    static const char *const want[] = {"Conv", "Relu", "Reshape", "Gemm"};
    CHECK(ops_are(g, want, 4), "reshape_cnn folds to Conv Relu Reshape Gemm");
    if (!ops_are(g, want, 4)) print_ops(g);
    const cs_onnx_tensor *t = reshape_target(g);
    CHECK(t && t->count == 2 && t->i[0] == 0 && t->i[1] == 32, "reshape_cnn: reshape target [%lld, %lld]",
          t ? (long long)t->i[0] : 0LL, t && t->count > 1 ? (long long)t->i[1] : 0LL);
    cs_onnx_graph_free(g);
}

static void test_fold_flatten_export(void)
{
    /* Exported without PyTorch's own folding: relu6 is Clip(x, Cast(Constant 0),
     * Cast(Constant 6)); avg_pool2d comes with a Pad of constant zeros. */
    cs_onnx_graph *g = read_fixture("flatten_cnn.onnx", 0);
    if (!g) return;
    no_shape_arithmetic(g, "flatten_cnn");
    static const char *const want[] = {"Conv", "Relu", "Clip", "Pad", "AveragePool", "Flatten", "Gemm"};
    CHECK(ops_are(g, want, 7), "flatten_cnn folds to Conv Relu Clip Pad AveragePool Flatten Gemm");
    if (!ops_are(g, want, 7)) print_ops(g);
    const cs_onnx_node *clip = NULL, *pad = NULL;
    for (int k = 0; k < g->n_nodes; k++) {
        if (!strcmp(g->nodes[k].op_type, "Clip")) clip = &g->nodes[k];
        if (!strcmp(g->nodes[k].op_type, "Pad")) pad = &g->nodes[k];
    }
    if (clip && clip->n_inputs == 3) {
        const cs_onnx_tensor *lo = cs_onnx_find_init(g, clip->inputs[1]), *hi = cs_onnx_find_init(g, clip->inputs[2]);
        CHECK(lo && lo->elem_type == CS_ONNX_FLOAT && lo->count == 1 && lo->f[0] == 0.0f, "Clip min 0");
        CHECK(hi && hi->elem_type == CS_ONNX_FLOAT && hi->count == 1 && hi->f[0] == 6.0f, "Clip max 6");
    } else {
        CHECK(0, "no Clip with three inputs");
    }
    const cs_onnx_tensor *pads = pad && pad->n_inputs >= 2 ? cs_onnx_find_init(g, pad->inputs[1]) : NULL;
    CHECK(pads && pads->elem_type == CS_ONNX_INT64 && pads->count == 8, "Pad's pads are a constant of 8");
    for (int k = 0; pads && k < 8; k++) CHECK(pads->i[k] == 0, "pads[%d] = %lld", k, (long long)pads->i[k]);
    cs_onnx_graph_free(g);
}

static void test_fold_mixed_export(void)
{
    /* Branches joined by a Concat, Resize, ConvTranspose (6x4x4 -> 2x8x8), global pooling,
     * reshape(N, C) -> [0, 2], torch.chunk (a Slice whose end, (3 + 2) / 3 * 1 = 1, is
     * computed from the Gemm's shape with Add/Div/Mul), clamp(min=0), a Slice and a
     * ReduceSum. */
    cs_onnx_graph *g = read_fixture("mixed_cnn.onnx", 1);
    if (!g) return;
    const char *gone[] = {"Shape", "Gather", "Unsqueeze", "Constant", "Div", "Mul"};
    for (int k = 0; k < 6; k++) CHECK(!count_op(g, gone[k]), "mixed_cnn: %d %s nodes left", count_op(g, gone[k]), gone[k]);
    static const char *const want[] = {"Conv", "Relu", "MaxPool", "Conv", "Resize", "Concat", "ConvTranspose",
                                       "GlobalAveragePool", "Reshape", "Gemm", "Slice", "Clip", "Slice", "ReduceSum",
                                       "Add"};
    CHECK(ops_are(g, want, 15), "mixed_cnn folds to the network's own 15 nodes");
    if (!ops_are(g, want, 15)) print_ops(g);
    CHECK(is_topological(g), "order");
    const cs_onnx_tensor *t = reshape_target(g);
    CHECK(t && t->count == 2 && t->i[0] == 0 && t->i[1] == 2, "reshape target [%lld, %lld], want [0, 2]",
          t ? (long long)t->i[0] : 0LL, t && t->count > 1 ? (long long)t->i[1] : 0LL);
    int chunk_slice = 1; /* the first Slice is the chunk's */
    for (int k = 0; k < g->n_nodes; k++) {
        const cs_onnx_node *n = &g->nodes[k];
        if (!strcmp(n->op_type, "Slice") && chunk_slice) {
            chunk_slice = 0;
            const cs_onnx_tensor *st = n->n_inputs > 2 ? cs_onnx_find_init(g, n->inputs[1]) : NULL;
            const cs_onnx_tensor *en = n->n_inputs > 2 ? cs_onnx_find_init(g, n->inputs[2]) : NULL;
            CHECK(st && en && st->count == 1 && en->count == 1 && st->i[0] == 0 && en->i[0] == 1,
                  "chunk's Slice is [0, 1)");
        }
        if (!strcmp(n->op_type, "Resize")) {
            const cs_onnx_tensor *sc = n->n_inputs > 2 ? cs_onnx_find_init(g, n->inputs[2]) : NULL;
            CHECK(n->n_inputs > 1 && !strcmp(n->inputs[1], ""), "Resize has no roi");
            CHECK(sc && sc->elem_type == CS_ONNX_FLOAT && sc->count == 4 && sc->f[0] == 1 && sc->f[1] == 1 &&
                      sc->f[2] == 2 && sc->f[3] == 2,
                  "Resize scales [1, 1, 2, 2]");
        }
        if (!strcmp(n->op_type, "Clip")) {
            const cs_onnx_tensor *lo = n->n_inputs > 1 ? cs_onnx_find_init(g, n->inputs[1]) : NULL;
            CHECK(lo && lo->count == 1 && lo->f[0] == 0.0f && n->n_inputs == 3 && !strcmp(n->inputs[2], ""),
                  "clamp(min=0): min 0, no max");
        }
    }
    cs_onnx_graph_free(g);
}

/* x [batch,2,7,7] -> Conv(4 out, 3x3, stride 2, pad 1) = [batch,4,4,4] -> MaxPool(2, stride 2,
 * ceil) = [batch,4,2,2] -> Reshape to [Gather(Shape, 0), Gather(Shape,1) * Gather(Shape,2) *
 * Gather(Shape,3)] = [0, 16]. The shape chain is written with Constant nodes, a Slice and
 * an Unsqueeze with axes as an input. */
static void shape_chain(spec *s, const char *pool_op)
{
    spec_init(s);
    static float w[4 * 2 * 9];
    s->inputs[s->n_inputs++] = vinfo("x", 4, (int64_t[]){-1, 2, 7, 7});
    s->outputs[s->n_outputs++] = vinfo("y", -1, NULL);
    s->inits[s->n_inits++] = tensor_f("W", 4, (int64_t[]){4, 2, 3, 3}, w, 72, 1);
    s->nodes[s->n_nodes++] = node("Conv", "conv", "x,W", "c", attr_ints("strides", 2, (int64_t[]){2, 2}),
                                  attr_ints("pads", 4, (int64_t[]){1, 1, 1, 1}), NULL);
    s->nodes[s->n_nodes++] = node(pool_op, "pool", "c", "p", attr_ints("kernel_shape", 2, (int64_t[]){2, 2}),
                                  attr_ints("strides", 2, (int64_t[]){2, 2}), attr_int("ceil_mode", 1), NULL);
    s->nodes[s->n_nodes++] = node("Shape", "shape", "p", "s", NULL);
    s->nodes[s->n_nodes++] = node("Constant", "k0", "", "i0", attr_tensor("value", tensor_i64("", 0, NULL, (int64_t[]){0}, 1, 0)), NULL);
    s->nodes[s->n_nodes++] = node("Gather", "g0", "s,i0", "n", attr_int("axis", 0), NULL);
    s->nodes[s->n_nodes++] = node("Constant", "k1", "", "st", attr_ints("value_ints", 1, (int64_t[]){1}), NULL);
    s->nodes[s->n_nodes++] = node("Constant", "k2", "", "en", attr_ints("value_ints", 1, (int64_t[]){INT64_MAX}), NULL);
    s->nodes[s->n_nodes++] = node("Slice", "sl", "s,st,en", "chw", NULL);
    s->nodes[s->n_nodes++] = node("Constant", "k3", "", "i1", attr_int("value_int", 1), NULL);
    s->nodes[s->n_nodes++] = node("Constant", "k4", "", "i2", attr_int("value_int", 2), NULL);
    s->nodes[s->n_nodes++] = node("Gather", "gc", "chw,i0", "c0", NULL);
    s->nodes[s->n_nodes++] = node("Gather", "gh", "chw,i1", "h0", NULL);
    s->nodes[s->n_nodes++] = node("Gather", "gw", "chw,i2", "w0", NULL);
    s->nodes[s->n_nodes++] = node("Mul", "m1", "c0,h0", "ch", NULL);
    s->nodes[s->n_nodes++] = node("Mul", "m2", "ch,w0", "chw_n", NULL);
    s->nodes[s->n_nodes++] = node("Constant", "ax", "", "axes", attr_ints("value_ints", 1, (int64_t[]){0}), NULL);
    s->nodes[s->n_nodes++] = node("Unsqueeze", "u0", "n,axes", "n1", NULL);
    s->nodes[s->n_nodes++] = node("Unsqueeze", "u1", "chw_n,axes", "f1", NULL);
    s->nodes[s->n_nodes++] = node("Concat", "cat", "n1,f1", "target", attr_int("axis", 0), NULL);
    s->nodes[s->n_nodes++] = node("Reshape", "flat", "p,target", "y", NULL);
}

static void test_fold_shape_chain(void)
{
    spec s;
    shape_chain(&s, "MaxPool");
    char err[512] = "";
    cs_onnx_graph *g = roundtrip(&s, err, sizeof err);
    CHECK(g, "read: %s", err);
    if (!g) return;
    static const char *const want[] = {"Conv", "MaxPool", "Reshape"};
    CHECK(ops_are(g, want, 3), "folds to Conv MaxPool Reshape");
    if (!ops_are(g, want, 3)) print_ops(g);
    const cs_onnx_tensor *t = reshape_target(g);
    CHECK(t && t->count == 2 && t->i[0] == 0 && t->i[1] == 16, "target [%lld, %lld], want [0, 16]",
          t ? (long long)t->i[0] : 0LL, t && t->count > 1 ? (long long)t->i[1] : 0LL);
    CHECK(g->n_inits == 2, "%d initializers (W and the target)", g->n_inits);
    cs_onnx_graph_free(g);
    pool_free();

    /* Global pooling gives [batch,4,1,1]: the target is [0, 4]. */
    shape_chain(&s, "MaxPool");
    s.nodes[1] = node("GlobalAveragePool", "pool", "c", "p", NULL);
    g = roundtrip(&s, err, sizeof err);
    CHECK(g, "read: %s", err);
    t = g ? reshape_target(g) : NULL;
    CHECK(t && t->count == 2 && t->i[0] == 0 && t->i[1] == 4, "global pool target [%lld, %lld]",
          t ? (long long)t->i[0] : 0LL, t && t->count > 1 ? (long long)t->i[1] : 0LL);
    cs_onnx_graph_free(g);
    pool_free();

    /* Parsing without folding keeps everything as written. */
    shape_chain(&s, "MaxPool");
    size_t len;
    uint8_t *buf = pack(&s, &len);
    g = cs_onnx_parse_buffer(buf, len, err, sizeof err);
    CHECK(g && g->n_nodes == s.n_nodes && count_op(g, "Constant") == 6, "unfolded parse");
    cs_onnx_graph_free(g);
    pool_free();
}

static void test_fold_leaves_unknowns(void)
{
    /* The batch of another input is a different symbol: Reshape(a, [b.size(0), -1])
     * cannot become [0, -1], so its shape chain stays. */
    spec s;
    spec_init(&s);
    s.inputs[s.n_inputs++] = vinfo("a", 2, (int64_t[]){-1, 4});
    s.inputs[s.n_inputs++] = vinfo("b", 2, (int64_t[]){-1, 4});
    s.outputs[s.n_outputs++] = vinfo("y", -1, NULL);
    s.nodes[s.n_nodes++] = node("Shape", "sb", "b", "s", NULL);
    s.nodes[s.n_nodes++] = node("Constant", "k0", "", "i0", attr_int("value_int", 0), NULL);
    s.nodes[s.n_nodes++] = node("Gather", "g", "s,i0", "n", NULL);
    s.nodes[s.n_nodes++] = node("Unsqueeze", "u", "n", "n1", attr_ints("axes", 1, (int64_t[]){0}), NULL);
    s.nodes[s.n_nodes++] = node("Constant", "k1", "", "m1", attr_ints("value_ints", 1, (int64_t[]){-1}), NULL);
    s.nodes[s.n_nodes++] = node("Concat", "cat", "n1,m1", "target", attr_int("axis", 0), NULL);
    s.nodes[s.n_nodes++] = node("Reshape", "r", "a,target", "y", NULL);
    /* A branch no output needs, and an initializer nothing reads. */
    s.nodes[s.n_nodes++] = node("Relu", "dead", "a", "unused", NULL);
    s.inits[s.n_inits++] = tensor_f("lonely", 1, (int64_t[]){1}, (float[]){1}, 1, 0);
    char err[512] = "";
    cs_onnx_graph *g = roundtrip(&s, err, sizeof err);
    CHECK(g, "read: %s", err);
    if (!g) return;
    CHECK(!reshape_target(g), "the target was folded although the batches differ");
    CHECK(count_op(g, "Shape") == 1 && count_op(g, "Concat") == 1 && count_op(g, "Reshape") == 1,
          "the shape chain stays");
    CHECK(!cs_onnx_find_node(g, "dead") && !cs_onnx_find_init(g, "lonely"), "dead node and initializer removed");
    CHECK(!count_op(g, "Constant"), "Constants became initializers");
    CHECK(is_topological(g), "order");
    cs_onnx_graph_free(g);
    pool_free();
}

static void test_fold_clip_and_errors(void)
{
    /* Clip bounds from Cast(Constant int) fold to float scalars. */
    spec s;
    conv_relu(&s);
    s.nodes[1] = node("Clip", "clip", "c,lo,hi", "y", NULL);
    s.nodes[s.n_nodes++] = node("Constant", "klo", "", "lo_i", attr_int("value_int", -1), NULL);
    s.nodes[s.n_nodes++] = node("Cast", "clo", "lo_i", "lo", attr_int("to", 1), NULL);
    s.nodes[s.n_nodes++] = node("Constant", "khi", "", "hi_i", attr_int("value_int", 3), NULL);
    s.nodes[s.n_nodes++] = node("Cast", "chi", "hi_i", "hi", attr_int("to", 1), NULL);
    char err[512] = "";
    cs_onnx_graph *g = roundtrip(&s, err, sizeof err);
    CHECK(g, "read: %s", err);
    if (g) {
        const cs_onnx_tensor *lo = cs_onnx_find_init(g, "lo"), *hi = cs_onnx_find_init(g, "hi");
        CHECK(lo && lo->elem_type == CS_ONNX_FLOAT && lo->f[0] == -1.0f, "min -1.0");
        CHECK(hi && hi->elem_type == CS_ONNX_FLOAT && hi->f[0] == 3.0f, "max 3.0");
        CHECK(g->n_nodes == 2, "%d nodes left", g->n_nodes);
    }
    cs_onnx_graph_free(g);
    pool_free();

    /* A bound that is an input of the graph cannot be folded. */
    conv_relu(&s);
    s.inputs[s.n_inputs++] = vinfo("lo", 0, NULL);
    s.nodes[1] = node("Clip", "clip", "c,lo", "y", NULL);
    expect_error(&s, "Clip bound from an input", "'clip'", "'lo'", "not a constant", NULL);
    pool_free();

    /* Gather out of range in constant arithmetic. */
    conv_relu(&s);
    s.nodes[s.n_nodes++] = node("Shape", "sh", "c", "s", NULL);
    s.nodes[s.n_nodes++] = node("Constant", "k", "", "i9", attr_int("value_int", 9), NULL);
    s.nodes[s.n_nodes++] = node("Gather", "bad", "s,i9", "z", NULL);
    s.outputs[s.n_outputs++] = vinfo("z", -1, NULL);
    expect_error(&s, "Gather out of range", "'bad'", "9", NULL);
    pool_free();
}

static void test_fold_keeps_plain_graph(void)
{
    spec s;
    conv_relu(&s);
    char err[512] = "";
    cs_onnx_graph *g = roundtrip(&s, err, sizeof err);
    CHECK(g && g->n_nodes == 2 && g->n_inits == 2 && !strcmp(g->nodes[0].name, "conv") &&
              !strcmp(g->nodes[1].name, "relu"),
          "a graph without constants to fold is unchanged");
    if (g) {
        CHECK(cs_onnx_fold(g, err, sizeof err) == 0 && g->n_nodes == 2 && g->n_inits == 2, "folding twice");
        const cs_onnx_tensor *b = cs_onnx_find_init(g, "B");
        CHECK(b && b->f[0] == 0.5f && b->f[1] == -0.5f, "B kept its values");
    }
    cs_onnx_graph_free(g);
    pool_free();
}

int main(void)
{
    test_scratch_dir("onnx_reader");
    RUN(test_attributes);
    RUN(test_initializer_values);
    RUN(test_topological_sort);
    RUN(test_optional_inputs_and_legacy_inputs);
    RUN(test_truncated);
    RUN(test_unknown_domain);
    RUN(test_opsets);
    RUN(test_cycle);
    RUN(test_missing_and_duplicates);
    RUN(test_huge_declared_tensor);
    RUN(test_external_data_and_types);
    RUN(test_deep_nesting);
    RUN(test_file_errors);
    RUN(test_fold_view_export);
    RUN(test_fold_reshape_product_export);
    RUN(test_fold_flatten_export);
    RUN(test_fold_mixed_export);
    RUN(test_fold_shape_chain);
    RUN(test_fold_leaves_unknowns);
    RUN(test_fold_clip_and_errors);
    RUN(test_fold_keeps_plain_graph);
    free(pool);
    return test_summary("onnx_reader");
}
