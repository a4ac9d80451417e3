/*
 * onnx_reader.h - ONNX model files in, a plain validated graph description out.
 *
 * The reader decodes a ModelProto (with the protobuf-c code generated from ONNX's own
 * onnx.proto), refuses what a CNN engine cannot honour (other opsets and domains,
 * external data, tensors larger than the file, unsupported element types), checks
 * that the graph is well formed, puts its nodes in topological order, and then folds
 * the shape arithmetic that exporters leave around Flatten and Reshape (Shape,
 * Gather, Unsqueeze, Concat, Cast, ... on int64 constants) into constants, so that a
 * typical PyTorch export of a CNN reads as Conv/BatchNormalization/Relu/.../Reshape
 * (with a constant shape)/Gemm. It knows nothing of the engine's own graph: an
 * importer translates this description.
 *
 * Everything returned is owned by the cs_onnx_graph and freed by cs_onnx_graph_free;
 * pointers from the lookup functions are borrowed from it. A graph is plain data:
 * reading it from several threads at once is safe, changing it is not.
 */
#ifndef CS_ONNX_READER_H
#define CS_ONNX_READER_H

#include <stddef.h>
#include <stdint.h>

/* Limits on what the reader accepts. A larger file, a tensor of more dims, a tensor
 * or a file larger than these is refused with an error naming it. */
#define CS_ONNX_MAX_FILE_BYTES   ((size_t)2 << 30) /* 2 GiB, the protobuf limit as well */
#define CS_ONNX_MAX_TENSOR_BYTES ((int64_t)2 << 30)
#define CS_ONNX_MAX_DIMS         8
/* Default-domain opsets the reader accepts (the ops' semantics it assumes). From 6 on
 * no op carries the legacy consumed_inputs attribute and Concat names its axis; where
 * an op changed after 6 (Clip's and Pad's attributes becoming inputs in 11, training
 * flags, broadcasting before 7) the importer reads the form the graph's opset uses or
 * refuses it. */
#define CS_ONNX_OPSET_MIN 6
#define CS_ONNX_OPSET_MAX 21

/* Element types, numbered as ONNX's TensorProto.DataType. Tensors handed out by the
 * reader are FLOAT or INT64 only; graph inputs may declare any ONNX type. */
enum {
    CS_ONNX_FLOAT = 1,
    CS_ONNX_INT32 = 6,
    CS_ONNX_INT64 = 7,
};

/* A constant tensor: an initializer, a folded value or a TENSOR attribute.
 * Row-major, dims[0] outermost. */
typedef struct {
    char *name;                    /* "" for an attribute's tensor without a name */
    int elem_type;                 /* CS_ONNX_FLOAT or CS_ONNX_INT64 (INT32 is widened) */
    int ndim;                      /* 0 for a scalar */
    int64_t dims[CS_ONNX_MAX_DIMS];/* each >= 0 */
    int64_t count;                 /* product of dims (1 for a scalar, 0 when a dim is 0) */
    float *f;                      /* [count] when FLOAT, else NULL */
    int64_t *i;                    /* [count] when INT64, else NULL */
} cs_onnx_tensor;

/* A graph input or output as the file declares it. */
typedef struct {
    char *name;
    int elem_type;                 /* TensorProto.DataType, 0 when the file gives none */
    int ndim;                      /* -1 when the file gives no shape */
    int64_t dims[CS_ONNX_MAX_DIMS];/* -1 for a symbolic or unknown dim (e.g. "batch") */
} cs_onnx_value;

/* Attribute types, numbered as ONNX's AttributeProto.AttributeType. Other types
 * (graphs, sparse tensors, lists of strings or tensors) are refused when read. */
enum {
    CS_ONNX_ATTR_FLOAT = 1,
    CS_ONNX_ATTR_INT = 2,
    CS_ONNX_ATTR_STRING = 3,
    CS_ONNX_ATTR_TENSOR = 4,
    CS_ONNX_ATTR_FLOATS = 6,
    CS_ONNX_ATTR_INTS = 7,
};

typedef struct {
    char *name;
    int type;                      /* CS_ONNX_ATTR_* */
    float f;                       /* FLOAT */
    int64_t i;                     /* INT */
    char *s;                       /* STRING: s_len bytes, then a NUL */
    size_t s_len;
    int n;                         /* FLOATS / INTS: number of values */
    float *floats;                 /* FLOATS [n] */
    int64_t *ints;                 /* INTS [n] */
    cs_onnx_tensor *t;             /* TENSOR */
} cs_onnx_attr;

typedef struct {
    char *name;                    /* the file's, or "<op_type>_<k>" when it gave none; unique */
    char *op_type;                 /* "Conv", "Relu", ... (default domain only) */
    int n_inputs;
    char **inputs;                 /* value names; "" marks an absent optional input */
    int n_outputs;
    char **outputs;                /* value names; "" marks an unused optional output */
    int n_attrs;
    cs_onnx_attr *attrs;
} cs_onnx_node;

typedef struct {
    int opset;                     /* default-domain opset, CS_ONNX_OPSET_MIN..MAX */
    int64_t ir_version;
    char *producer;                /* producer_name (and version), "" when absent */
    int n_inputs;                  /* graph inputs that are not initializers */
    cs_onnx_value *inputs;
    int n_outputs;
    cs_onnx_value *outputs;
    int n_inits;                   /* initializers, in file order then folded constants */
    cs_onnx_tensor *inits;
    int n_nodes;                   /* in topological order: every input of a node is a
                                      graph input, an initializer or an earlier output */
    cs_onnx_node *nodes;
} cs_onnx_graph;

/* Reads, validates, sorts and folds the model in `path` (cs_onnx_parse_buffer, then
 * cs_onnx_fold). NULL with err on any refusal (one line naming the tensor, node or
 * number that was wrong). Thread-safe. */
cs_onnx_graph *cs_onnx_read(const char *path, char *err, size_t errlen);
/* The same on len bytes in memory (the buffer stays the caller's). */
cs_onnx_graph *cs_onnx_read_buffer(const void *buf, size_t len, char *err, size_t errlen);
/* Decodes, validates and sorts without folding: Constant nodes and the shape
 * arithmetic are left as the file has them. */
cs_onnx_graph *cs_onnx_parse_buffer(const void *buf, size_t len, char *err, size_t errlen);
/* The same from the file at path. */
cs_onnx_graph *cs_onnx_parse(const char *path, char *err, size_t errlen);
void cs_onnx_graph_free(cs_onnx_graph *g);

/* Folds constants in place. Shapes flow from the graph inputs' declared dims (a -1
 * dim stays symbolic: `x.view(x.size(0), -1)` still folds, into a Reshape to
 * [0, N]); a caller may set unknown input dims first and fold again. Constant nodes
 * become initializers; Shape/Size/Gather/Unsqueeze/Squeeze/Concat/Slice/Cast/Identity/
 * Reshape/Flatten/Add/Sub/Mul/Div/ConstantOfShape nodes whose inputs are constant (or
 * come from the Shape of a tensor whose shape is known) are evaluated, up to 2^20
 * values each (larger results are left to the engine); where a shape is
 * unknown the nodes stay. Then nodes that no graph output depends on, and
 * initializers nothing uses, are removed. Refuses a graph whose Clip bounds are not
 * constant after folding, or whose constant arithmetic is invalid (an index out of
 * range). Folding a folded graph changes nothing. 0, or -1 with err; after -1 the
 * graph may be partly folded and is only fit for cs_onnx_graph_free. */
int cs_onnx_fold(cs_onnx_graph *g, char *err, size_t errlen);

/* Turns graph input `name` into an initializer holding a copy of value (its type and
 * dims checked against the input's declared ones), as if the file had it as a weight;
 * cs_onnx_fold then folds what it feeds. 0, or -1 with err (no such input, a type or
 * shape that differs, no memory). */
int cs_onnx_bind_input(cs_onnx_graph *g, const char *name, const cs_onnx_tensor *value, char *err, size_t errlen);

/* Lookups by name; NULL or -1 when absent. Borrowed pointers. */
const cs_onnx_tensor *cs_onnx_find_init(const cs_onnx_graph *g, const char *name);
/* Index in g->nodes of the node that outputs `value`, or -1. */
int cs_onnx_find_producer(const cs_onnx_graph *g, const char *value);
const cs_onnx_node *cs_onnx_find_node(const cs_onnx_graph *g, const char *node_name);

/* Attribute accessors. Each returns `def` (or -1 / NULL) when the node has no
 * attribute of that name or it has another type; cs_onnx_attr_find tells these apart. */
const cs_onnx_attr *cs_onnx_attr_find(const cs_onnx_node *n, const char *name);
int64_t cs_onnx_attr_int(const cs_onnx_node *n, const char *name, int64_t def);
float cs_onnx_attr_float(const cs_onnx_node *n, const char *name, float def);
const char *cs_onnx_attr_string(const cs_onnx_node *n, const char *name, const char *def);
/* Number of values with *v pointing at them (borrowed), or -1 with *v = NULL. */
int cs_onnx_attr_ints(const cs_onnx_node *n, const char *name, const int64_t **v);
int cs_onnx_attr_floats(const cs_onnx_node *n, const char *name, const float **v);
const cs_onnx_tensor *cs_onnx_attr_tensor(const cs_onnx_node *n, const char *name);

/* "FLOAT", "INT64", "FLOAT16", ... for an ONNX element type number; "UNKNOWN" for
 * numbers ONNX does not define. A static string. */
const char *cs_onnx_type_name(int elem_type);

#endif
