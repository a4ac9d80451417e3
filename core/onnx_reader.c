/*
 * onnx_reader.c - decodes an ONNX ModelProto into the plain structs of onnx_reader.h,
 * refusing what the engine cannot honour, and checks and sorts the graph.
 *
 * Decoding is protobuf-c's, with the code generated from ONNX's onnx.proto at build
 * time; this file only walks the decoded messages. Every size is checked before
 * anything is allocated from it: a tensor's declared element count against an
 * absolute cap and against the file's length, so a few bytes declaring ten gigabytes
 * of weights give one error and no allocation. Folding lives in onnx_fold.c.
 */
#include "onnx_reader.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "error.h"
#include "onnx.pb-c.h"
#include "onnx_reader_priv.h"

/* Deepest message nesting accepted. A CNN's model is four or five levels deep
 * (model, graph, node, attribute, tensor); types and subgraphs add a few. */
#define MAX_NESTING 64

/* ---- name map ------------------------------------------------------------------ */

static uint64_t hash_name(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

int onnx_map_init(onnx_map *m, size_t expected)
{
    size_t cap = 16;
    while (cap < 2 * expected + 2) cap *= 2;
    m->keys = calloc(cap, sizeof *m->keys);
    m->vals = calloc(cap, sizeof *m->vals);
    m->cap = cap;
    m->n = 0;
    if (!m->keys || !m->vals) {
        onnx_map_free(m);
        return -1;
    }
    return 0;
}

void onnx_map_free(onnx_map *m)
{
    free(m->keys);
    free(m->vals);
    m->keys = NULL;
    m->vals = NULL;
    m->cap = m->n = 0;
}

static size_t map_slot(const onnx_map *m, const char *key)
{
    size_t i = (size_t)hash_name(key) & (m->cap - 1);
    while (m->keys[i] && strcmp(m->keys[i], key) != 0) i = (i + 1) & (m->cap - 1);
    return i;
}

int onnx_map_get(const onnx_map *m, const char *key)
{
    if (!m->cap) return -1;
    size_t i = map_slot(m, key);
    return m->keys[i] ? m->vals[i] : -1;
}

int onnx_map_put(onnx_map *m, const char *key, int val)
{
    if (2 * (m->n + 1) > m->cap) {
        onnx_map bigger;
        if (onnx_map_init(&bigger, m->n + 1) < 0) return -1;
        for (size_t i = 0; i < m->cap; i++)
            if (m->keys[i]) {
                size_t j = map_slot(&bigger, m->keys[i]);
                bigger.keys[j] = m->keys[i];
                bigger.vals[j] = m->vals[i];
                bigger.n++;
            }
        onnx_map_free(m);
        *m = bigger;
    }
    size_t i = map_slot(m, key);
    if (!m->keys[i]) {
        m->keys[i] = key;
        m->n++;
    }
    m->vals[i] = val;
    return 0;
}

/* ---- small helpers ------------------------------------------------------------- */

char *onnx_strdup(const char *s)
{
    size_t n = strlen(s ? s : "") + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s ? s : "", n);
    return d;
}

const char *onnx_dims_str(char *buf, size_t len, const int64_t *dims, int ndim)
{
    if (ndim <= 0) {
        snprintf(buf, len, "scalar");
        return buf;
    }
    size_t at = 0;
    buf[0] = 0;
    for (int k = 0; k < ndim && at < len; k++) {
        int w = snprintf(buf + at, len - at, k ? "x%lld" : "%lld", (long long)dims[k]);
        if (w < 0) break;
        at += (size_t)w;
    }
    return buf;
}

const char *cs_onnx_type_name(int t)
{
    static const char *const names[] = {"UNDEFINED", "FLOAT",  "UINT8",     "INT8",       "UINT16",
                                        "INT16",     "INT32",  "INT64",     "STRING",     "BOOL",
                                        "FLOAT16",   "DOUBLE", "UINT32",    "UINT64",     "COMPLEX64",
                                        "COMPLEX128", "BFLOAT16", "FLOAT8E4M3FN", "FLOAT8E4M3FNUZ",
                                        "FLOAT8E5M2", "FLOAT8E5M2FNUZ", "UINT4", "INT4"};
    return t >= 0 && t < (int)(sizeof names / sizeof names[0]) ? names[t] : "UNKNOWN";
}

void onnx_tensor_clear(cs_onnx_tensor *t)
{
    if (!t) return;
    free(t->name);
    free(t->f);
    free(t->i);
    memset(t, 0, sizeof *t);
}

static void attr_clear(cs_onnx_attr *a)
{
    free(a->name);
    free(a->s);
    free(a->floats);
    free(a->ints);
    if (a->t) {
        onnx_tensor_clear(a->t);
        free(a->t);
    }
    memset(a, 0, sizeof *a);
}

void onnx_node_clear(cs_onnx_node *n)
{
    if (!n) return;
    free(n->name);
    free(n->op_type);
    for (int k = 0; k < n->n_inputs; k++) free(n->inputs[k]);
    free(n->inputs);
    for (int k = 0; k < n->n_outputs; k++) free(n->outputs[k]);
    free(n->outputs);
    for (int k = 0; k < n->n_attrs; k++) attr_clear(&n->attrs[k]);
    free(n->attrs);
    memset(n, 0, sizeof *n);
}

static void value_clear(cs_onnx_value *v)
{
    free(v->name);
    memset(v, 0, sizeof *v);
}

void cs_onnx_graph_free(cs_onnx_graph *g)
{
    if (!g) return;
    free(g->producer);
    for (int k = 0; k < g->n_inputs; k++) value_clear(&g->inputs[k]);
    free(g->inputs);
    for (int k = 0; k < g->n_outputs; k++) value_clear(&g->outputs[k]);
    free(g->outputs);
    for (int k = 0; k < g->n_inits; k++) onnx_tensor_clear(&g->inits[k]);
    free(g->inits);
    for (int k = 0; k < g->n_nodes; k++) onnx_node_clear(&g->nodes[k]);
    free(g->nodes);
    free(g);
}

int onnx_graph_add_init(cs_onnx_graph *g, cs_onnx_tensor *t)
{
    cs_onnx_tensor *grown = realloc(g->inits, ((size_t)g->n_inits + 1) * sizeof *grown);
    if (!grown) return -1;
    g->inits = grown;
    g->inits[g->n_inits++] = *t;
    memset(t, 0, sizeof *t);
    return 0;
}

/* ---- nesting guard ------------------------------------------------------------- */

static int read_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    uint64_t x = 0;
    for (int shift = 0; shift < 64 && *p < end; shift += 7) {
        uint8_t b = *(*p)++;
        x |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return 0;
        }
    }
    return -1;
}

/* protobuf-c decodes nested messages by recursion with no depth limit, so a file of
 * a few hundred kilobytes nesting types inside types would exhaust the stack. This
 * walks only the tags and lengths of the wire format, with the generated descriptors
 * telling which fields hold messages, and refuses nesting deeper than MAX_NESTING or
 * a structure protobuf-c would refuse anyway. 0 when the data may be decoded. */
static int nesting_ok(const uint8_t *p, size_t len, const ProtobufCMessageDescriptor *d, int depth)
{
    if (depth > MAX_NESTING) return -1;
    const uint8_t *end = p + len;
    while (p < end) {
        uint64_t tag, n;
        if (read_varint(&p, end, &tag) < 0 || (tag >> 3) == 0 || (tag >> 3) > 0x1fffffff) return -1;
        switch (tag & 7) {
        case 0:
            if (read_varint(&p, end, &n) < 0) return -1;
            break;
        case 1:
            if ((size_t)(end - p) < 8) return -1;
            p += 8;
            break;
        case 5:
            if ((size_t)(end - p) < 4) return -1;
            p += 4;
            break;
        case 2: {
            if (read_varint(&p, end, &n) < 0 || n > (uint64_t)(end - p)) return -1;
            const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field(d, (unsigned)(tag >> 3));
            if (f && f->type == PROTOBUF_C_TYPE_MESSAGE &&
                nesting_ok(p, (size_t)n, (const ProtobufCMessageDescriptor *)f->descriptor, depth + 1) < 0)
                return -1;
            p += n;
            break;
        }
        default: /* groups: not in ONNX, and protobuf-c does not read them */
            return -1;
        }
    }
    return 0;
}

/* ---- tensors ------------------------------------------------------------------- */

static int is_little_endian(void)
{
    const uint16_t one = 1;
    return *(const uint8_t *)&one == 1;
}

static uint64_t load_le(const uint8_t *p, int width)
{
    uint64_t v = 0;
    for (int b = width - 1; b >= 0; b--) v = (v << 8) | p[b];
    return v;
}

int onnx_tensor_from_proto(cs_onnx_tensor *t, const Onnx__TensorProto *p, const char *what, size_t file_len,
                           char *err, size_t errlen)
{
    char dims[160];
    memset(t, 0, sizeof *t);
    if ((p->has_data_location && p->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL) ||
        p->n_external_data) {
        cs_set_err(err, errlen,
                   "%s is stored as external data, which is not supported (save the model with its weights "
                   "inside the .onnx file)",
                   what);
        return -1;
    }
    if (p->segment) {
        cs_set_err(err, errlen, "%s is split into segments, which is not supported", what);
        return -1;
    }
    if (p->n_dims > CS_ONNX_MAX_DIMS) {
        cs_set_err(err, errlen, "%s has %zu dims; at most %d are supported", what, p->n_dims, CS_ONNX_MAX_DIMS);
        return -1;
    }
    t->ndim = (int)p->n_dims;
    int64_t count = 1;
    int overflow = 0;
    for (int k = 0; k < t->ndim; k++) {
        t->dims[k] = p->dims[k];
        if (p->dims[k] < 0) {
            cs_set_err(err, errlen, "%s has a negative dim (%lld)", what, (long long)p->dims[k]);
            return -1;
        }
        if (__builtin_mul_overflow(count, p->dims[k], &count)) overflow = 1;
    }
    /* A zero dim after an overflowing product still means no elements. */
    for (int k = 0; k < t->ndim; k++)
        if (t->dims[k] == 0) count = 0, overflow = 0;
    onnx_dims_str(dims, sizeof dims, t->dims, t->ndim);

    int type = p->has_data_type ? p->data_type : 0;
    int width;
    if (type == CS_ONNX_FLOAT)
        width = 4;
    else if (type == CS_ONNX_INT64)
        width = 8;
    else if (type == CS_ONNX_INT32)
        width = 4;
    else {
        cs_set_err(err, errlen, "%s has element type %s; only FLOAT, INT64 and INT32 tensors are supported", what,
                   cs_onnx_type_name(type));
        return -1;
    }
    if (overflow) {
        cs_set_err(err, errlen, "%s declares dims %s, whose element count does not fit in 64 bits", what, dims);
        return -1;
    }
    if (count > CS_ONNX_MAX_TENSOR_BYTES / width) {
        cs_set_err(err, errlen, "%s declares dims %s = %lld %s values (%.1f GB), more than the %.0f GiB limit", what,
                   dims, (long long)count, cs_onnx_type_name(type), (double)count * width / 1e9,
                   (double)CS_ONNX_MAX_TENSOR_BYTES / (1 << 30));
        return -1;
    }
    /* The fewest bytes the file can hold the values in: raw or packed fixed-width,
     * or one byte per varint. */
    int raw = p->has_raw_data && p->raw_data.len;
    int min_width = raw || type == CS_ONNX_FLOAT ? width : 1;
    if ((uint64_t)count * (uint64_t)min_width > file_len) {
        cs_set_err(err, errlen, "%s declares dims %s = %lld %s values, more than the whole file (%zu bytes) can hold",
                   what, dims, (long long)count, cs_onnx_type_name(type), file_len);
        return -1;
    }

    size_t have;
    const char *form;
    if (raw) {
        have = p->raw_data.len;
        form = "bytes of raw_data";
        if (have != (size_t)count * (size_t)width) {
            cs_set_err(err, errlen, "%s holds %zu %s, dims %s of %s need %lld", what, have, form, dims,
                       cs_onnx_type_name(type), (long long)count * width);
            return -1;
        }
    } else {
        have = type == CS_ONNX_FLOAT ? p->n_float_data : type == CS_ONNX_INT64 ? p->n_int64_data : p->n_int32_data;
        form = type == CS_ONNX_FLOAT ? "float_data values" : type == CS_ONNX_INT64 ? "int64_data values"
                                                                                  : "int32_data values";
        if (have != (size_t)count) {
            cs_set_err(err, errlen, "%s holds %zu %s, dims %s need %lld", what, have, form, dims, (long long)count);
            return -1;
        }
    }

    t->elem_type = type == CS_ONNX_FLOAT ? CS_ONNX_FLOAT : CS_ONNX_INT64;
    t->count = count;
    t->name = onnx_strdup(p->name);
    if (!t->name) goto oom;
    if (count == 0) return 0;
    if (t->elem_type == CS_ONNX_FLOAT) {
        t->f = malloc((size_t)count * sizeof *t->f);
        if (!t->f) goto oom;
        if (raw) {
            if (is_little_endian())
                memcpy(t->f, p->raw_data.data, (size_t)count * 4);
            else
                for (int64_t k = 0; k < count; k++) {
                    uint32_t bits = (uint32_t)load_le(p->raw_data.data + 4 * k, 4);
                    memcpy(&t->f[k], &bits, 4);
                }
        } else {
            memcpy(t->f, p->float_data, (size_t)count * 4);
        }
    } else {
        t->i = malloc((size_t)count * sizeof *t->i);
        if (!t->i) goto oom;
        for (int64_t k = 0; k < count; k++) {
            if (raw)
                t->i[k] = width == 8 ? (int64_t)load_le(p->raw_data.data + 8 * k, 8)
                                     : (int64_t)(int32_t)(uint32_t)load_le(p->raw_data.data + 4 * k, 4);
            else
                t->i[k] = type == CS_ONNX_INT64 ? p->int64_data[k] : p->int32_data[k];
        }
    }
    return 0;
oom:
    onnx_tensor_clear(t);
    cs_set_err(err, errlen, "out of memory reading %s (%lld values)", what, (long long)count);
    return -1;
}

/* ---- graph inputs and outputs -------------------------------------------------- */

static int value_from_proto(cs_onnx_value *v, const Onnx__ValueInfoProto *p, const char *role, char *err,
                            size_t errlen)
{
    memset(v, 0, sizeof *v);
    v->ndim = -1;
    if (!p->name || !*p->name) {
        cs_set_err(err, errlen, "a graph %s has no name", role);
        return -1;
    }
    const Onnx__TypeProto *tp = p->type;
    if (tp && tp->value_case != ONNX__TYPE_PROTO__VALUE__NOT_SET &&
        tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE) {
        cs_set_err(err, errlen, "graph %s '%s' is not a tensor (sequences, maps and sparse tensors are not supported)",
                   role, p->name);
        return -1;
    }
    const Onnx__TypeProto__Tensor *tt = tp && tp->value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE ? tp->tensor_type
                                                                                                     : NULL;
    if (tt && tt->has_elem_type) v->elem_type = tt->elem_type;
    if (tt && tt->shape) {
        if (tt->shape->n_dim > CS_ONNX_MAX_DIMS) {
            cs_set_err(err, errlen, "graph %s '%s' has %zu dims; at most %d are supported", role, p->name,
                       tt->shape->n_dim, CS_ONNX_MAX_DIMS);
            return -1;
        }
        v->ndim = (int)tt->shape->n_dim;
        for (int k = 0; k < v->ndim; k++) {
            const Onnx__TensorShapeProto__Dimension *d = tt->shape->dim[k];
            if (d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE) {
                if (d->dim_value < 0) {
                    cs_set_err(err, errlen, "graph %s '%s' has a negative dim (%lld)", role, p->name,
                               (long long)d->dim_value);
                    return -1;
                }
                v->dims[k] = d->dim_value;
            } else {
                v->dims[k] = -1;
            }
        }
    }
    v->name = onnx_strdup(p->name);
    if (!v->name) {
        cs_set_err(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

/* ---- nodes --------------------------------------------------------------------- */

static const char *attr_kind_name(int type)
{
    switch (type) {
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH: return "a graph (subgraphs are not supported)";
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPHS: return "a list of graphs (subgraphs are not supported)";
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__SPARSE_TENSOR: return "a sparse tensor, which is not supported";
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__SPARSE_TENSORS: return "a list of sparse tensors, which is not supported";
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS: return "a list of strings, which is not supported";
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSORS: return "a list of tensors, which is not supported";
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TYPE_PROTO:
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TYPE_PROTOS: return "a type, which is not supported";
    default: return "of no known type";
    }
}

/* Files written before attributes carried their type say it by the field they set. */
static int attr_type_of(const Onnx__AttributeProto *p)
{
    if (p->has_type && p->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__UNDEFINED) return (int)p->type;
    if (p->has_f) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT;
    if (p->has_i) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
    if (p->has_s) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING;
    if (p->t) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR;
    if (p->g) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH;
    if (p->n_floats) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS;
    if (p->n_ints) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
    if (p->n_strings) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS;
    if (p->n_tensors) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSORS;
    if (p->n_graphs) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPHS;
    return 0;
}

static int attr_from_proto(cs_onnx_attr *a, const Onnx__AttributeProto *p, const char *node, const char *op,
                           size_t file_len, char *err, size_t errlen)
{
    memset(a, 0, sizeof *a);
    if (!p->name || !*p->name) {
        cs_set_err(err, errlen, "node '%s' (%s) has an attribute without a name", node, op);
        return -1;
    }
    int type = attr_type_of(p);
    switch (type) {
    case CS_ONNX_ATTR_FLOAT: a->f = p->f; break;
    case CS_ONNX_ATTR_INT: a->i = p->i; break;
    case CS_ONNX_ATTR_STRING:
        a->s = malloc(p->s.len + 1);
        if (!a->s) goto oom;
        if (p->s.len) memcpy(a->s, p->s.data, p->s.len);
        a->s[p->s.len] = 0;
        a->s_len = p->s.len;
        break;
    case CS_ONNX_ATTR_TENSOR: {
        if (!p->t) {
            cs_set_err(err, errlen, "node '%s' (%s): attribute '%s' has no tensor", node, op, p->name);
            return -1;
        }
        char what[512];
        snprintf(what, sizeof what, "attribute '%s' of node '%s' (%s)", p->name, node, op);
        a->t = calloc(1, sizeof *a->t);
        if (!a->t) goto oom;
        if (onnx_tensor_from_proto(a->t, p->t, what, file_len, err, errlen) < 0) {
            free(a->t);
            a->t = NULL;
            return -1;
        }
        break;
    }
    case CS_ONNX_ATTR_FLOATS:
        if (p->n_floats > INT_MAX) goto too_many;
        a->n = (int)p->n_floats;
        if (a->n) {
            a->floats = malloc(p->n_floats * sizeof *a->floats);
            if (!a->floats) goto oom;
            memcpy(a->floats, p->floats, p->n_floats * sizeof *a->floats);
        }
        break;
    case CS_ONNX_ATTR_INTS:
        if (p->n_ints > INT_MAX) goto too_many;
        a->n = (int)p->n_ints;
        if (a->n) {
            a->ints = malloc(p->n_ints * sizeof *a->ints);
            if (!a->ints) goto oom;
            memcpy(a->ints, p->ints, p->n_ints * sizeof *a->ints);
        }
        break;
    default:
        cs_set_err(err, errlen, "node '%s' (%s): attribute '%s' is %s", node, op, p->name, attr_kind_name(type));
        return -1;
    }
    a->type = type;
    a->name = onnx_strdup(p->name);
    if (!a->name) goto oom;
    return 0;
too_many:
    cs_set_err(err, errlen, "node '%s' (%s): attribute '%s' has too many values", node, op, p->name);
    return -1;
oom:
    attr_clear(a);
    cs_set_err(err, errlen, "out of memory reading node '%s'", node);
    return -1;
}

static int is_default_domain(const char *d)
{
    return !d || !*d || strcmp(d, "ai.onnx") == 0;
}

static int copy_names(char ***out, int *n_out, char **names, size_t n)
{
    *out = NULL;
    *n_out = 0;
    if (n > INT_MAX) return -1;
    if (!n) return 0;
    *out = calloc(n, sizeof **out);
    if (!*out) return -1;
    *n_out = (int)n;
    for (size_t k = 0; k < n; k++)
        if (!((*out)[k] = onnx_strdup(names[k]))) return -1;
    return 0;
}

/* The node's name as the file gives it, for messages before names are settled. */
static const char *proto_node_label(const Onnx__NodeProto *p, size_t index, char *buf, size_t len)
{
    if (p->name && *p->name) return p->name;
    snprintf(buf, len, "#%zu", index);
    return buf;
}

static int node_from_proto(cs_onnx_node *n, const Onnx__NodeProto *p, size_t index, size_t file_len, char *err,
                           size_t errlen)
{
    char label_buf[32];
    const char *label = proto_node_label(p, index, label_buf, sizeof label_buf);
    const char *op = p->op_type ? p->op_type : "";
    memset(n, 0, sizeof *n);
    if (!*op) {
        cs_set_err(err, errlen, "node '%s' has no op_type", label);
        return -1;
    }
    if (!is_default_domain(p->domain)) {
        cs_set_err(err, errlen, "node '%s' (%s) is in domain '%s'; only the default ONNX domain is supported", label,
                   op, p->domain);
        return -1;
    }
    if (!(n->name = onnx_strdup(p->name ? p->name : "")) || !(n->op_type = onnx_strdup(op)) ||
        copy_names(&n->inputs, &n->n_inputs, p->input, p->n_input) < 0 ||
        copy_names(&n->outputs, &n->n_outputs, p->output, p->n_output) < 0)
        goto oom;
    if (p->n_attribute) {
        if (p->n_attribute > INT_MAX) goto oom;
        n->attrs = calloc(p->n_attribute, sizeof *n->attrs);
        if (!n->attrs) goto oom;
        for (size_t k = 0; k < p->n_attribute; k++) {
            if (attr_from_proto(&n->attrs[k], p->attribute[k], label, op, file_len, err, errlen) < 0) {
                n->n_attrs = (int)k;
                onnx_node_clear(n);
                return -1;
            }
            for (size_t j = 0; j < k; j++)
                if (strcmp(n->attrs[j].name, n->attrs[k].name) == 0) {
                    cs_set_err(err, errlen, "node '%s' (%s) has two attributes named '%s'", label, op,
                               n->attrs[k].name);
                    n->n_attrs = (int)k + 1;
                    onnx_node_clear(n);
                    return -1;
                }
        }
        n->n_attrs = (int)p->n_attribute;
    }
    return 0;
oom:
    onnx_node_clear(n);
    cs_set_err(err, errlen, "out of memory reading node '%s'", label);
    return -1;
}

/* ---- names, validation, order -------------------------------------------------- */

/* Gives every unnamed node "<op_type>_<k>", k counting that op type's nodes, skipping
 * names already taken; refuses two nodes with the same name. */
static int settle_node_names(cs_onnx_graph *g, char *err, size_t errlen)
{
    onnx_map names, counters;
    if (onnx_map_init(&names, (size_t)g->n_nodes) < 0) goto oom0;
    if (onnx_map_init(&counters, 16) < 0) {
        onnx_map_free(&names);
        goto oom0;
    }
    int rc = -1;
    for (int k = 0; k < g->n_nodes; k++) {
        const char *nm = g->nodes[k].name;
        if (!*nm) continue;
        if (onnx_map_get(&names, nm) >= 0) {
            cs_set_err(err, errlen, "two nodes are named '%s'", nm);
            goto out;
        }
        if (onnx_map_put(&names, nm, k) < 0) goto oom;
    }
    for (int k = 0; k < g->n_nodes; k++) {
        cs_onnx_node *n = &g->nodes[k];
        if (*n->name) continue;
        int next = onnx_map_get(&counters, n->op_type);
        if (next < 0) next = 0;
        size_t len = strlen(n->op_type) + 16;
        char *nm = malloc(len);
        if (!nm) goto oom;
        do snprintf(nm, len, "%s_%d", n->op_type, next++);
        while (onnx_map_get(&names, nm) >= 0);
        free(n->name);
        n->name = nm;
        if (onnx_map_put(&counters, n->op_type, next) < 0 || onnx_map_put(&names, nm, k) < 0) goto oom;
    }
    rc = 0;
    goto out;
oom:
    cs_set_err(err, errlen, "out of memory naming nodes");
out:
    onnx_map_free(&names);
    onnx_map_free(&counters);
    return rc;
oom0:
    cs_set_err(err, errlen, "out of memory naming nodes");
    return -1;
}

enum { SRC_INPUT = -2, SRC_INIT = -3 };

/* Binary min-heap of node indices: Kahn's algorithm takes the earliest ready node in
 * file order, so a file already in order keeps it. */
static void heap_push(int *h, int *n, int v)
{
    int i = (*n)++;
    while (i > 0 && h[(i - 1) / 2] > v) {
        h[i] = h[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h[i] = v;
}

static int heap_pop(int *h, int *n)
{
    int top = h[0], last = h[--*n], i = 0;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && h[c + 1] < h[c]) c++;
        if (h[c] >= last) break;
        h[i] = h[c];
        i = c;
    }
    if (*n) h[i] = last;
    return top;
}

/* Checks that names are unique and every input exists, then sorts the nodes
 * topologically (refusing a cycle). */
static int validate_and_sort(cs_onnx_graph *g, char *err, size_t errlen)
{
    int nn = g->n_nodes, rc = -1;
    onnx_map src;
    int *indeg = NULL, *first = NULL, *edges = NULL, *heap = NULL, *order = NULL;
    size_t n_edges = 0;
    if (onnx_map_init(&src, (size_t)g->n_inputs + (size_t)g->n_inits + (size_t)nn) < 0) goto oom;

    for (int k = 0; k < g->n_inits; k++) {
        if (!*g->inits[k].name) {
            cs_set_err(err, errlen, "initializer #%d has no name", k);
            goto out;
        }
        if (onnx_map_get(&src, g->inits[k].name) != -1) {
            cs_set_err(err, errlen, "two initializers are named '%s'", g->inits[k].name);
            goto out;
        }
        if (onnx_map_put(&src, g->inits[k].name, SRC_INIT) < 0) goto oom;
    }
    for (int k = 0; k < g->n_inputs; k++) {
        if (onnx_map_get(&src, g->inputs[k].name) != -1) {
            cs_set_err(err, errlen, "two graph inputs are named '%s'", g->inputs[k].name);
            goto out;
        }
        if (onnx_map_put(&src, g->inputs[k].name, SRC_INPUT) < 0) goto oom;
    }
    for (int k = 0; k < nn; k++) {
        const cs_onnx_node *n = &g->nodes[k];
        for (int o = 0; o < n->n_outputs; o++) {
            const char *v = n->outputs[o];
            if (!*v) continue;
            int s = onnx_map_get(&src, v);
            if (s != -1) {
                cs_set_err(err, errlen, "node '%s' (%s) outputs '%s', which is already %s%s%s", n->name, n->op_type,
                           v,
                           s == SRC_INIT    ? "an initializer"
                           : s == SRC_INPUT ? "a graph input"
                                            : "the output of node '",
                           s >= 0 ? g->nodes[s].name : "", s >= 0 ? "'" : "");
                goto out;
            }
            if (onnx_map_put(&src, v, k) < 0) goto oom;
        }
    }
    for (int k = 0; k < nn; k++) {
        const cs_onnx_node *n = &g->nodes[k];
        for (int i = 0; i < n->n_inputs; i++) {
            const char *v = n->inputs[i];
            if (!*v) continue;
            int s = onnx_map_get(&src, v);
            if (s == -1) {
                cs_set_err(err, errlen,
                           "node '%s' (%s): input '%s' is missing (not a graph input, an initializer or the output "
                           "of any node)",
                           n->name, n->op_type, v);
                goto out;
            }
            if (s >= 0) n_edges++;
        }
    }
    for (int k = 0; k < g->n_outputs; k++)
        if (onnx_map_get(&src, g->outputs[k].name) == -1) {
            cs_set_err(err, errlen, "graph output '%s' is not produced by any node", g->outputs[k].name);
            goto out;
        }

    /* Edges producer -> consumer, one per input occurrence, in CSR form. */
    indeg = calloc((size_t)nn + 1, sizeof *indeg);
    first = calloc((size_t)nn + 2, sizeof *first);
    edges = malloc((n_edges + 1) * sizeof *edges);
    heap = malloc(((size_t)nn + 1) * sizeof *heap);
    order = malloc(((size_t)nn + 1) * sizeof *order);
    if (!indeg || !first || !edges || !heap || !order) goto oom;
    for (int k = 0; k < nn; k++)
        for (int i = 0; i < g->nodes[k].n_inputs; i++) {
            const char *v = g->nodes[k].inputs[i];
            int s = *v ? onnx_map_get(&src, v) : -1;
            if (s >= 0) first[s + 2]++, indeg[k]++;
        }
    for (int k = 0; k < nn; k++) first[k + 2] += first[k + 1];
    for (int k = 0; k < nn; k++)
        for (int i = 0; i < g->nodes[k].n_inputs; i++) {
            const char *v = g->nodes[k].inputs[i];
            int s = *v ? onnx_map_get(&src, v) : -1;
            if (s >= 0) edges[first[s + 1]++] = k;
        }
    /* first[s] .. first[s+1] now delimit s's consumers. */
    int n_heap = 0, n_done = 0;
    for (int k = 0; k < nn; k++)
        if (!indeg[k]) heap_push(heap, &n_heap, k);
    while (n_heap) {
        int k = heap_pop(heap, &n_heap);
        order[n_done++] = k;
        for (int e = first[k]; e < first[k + 1]; e++)
            if (--indeg[edges[e]] == 0) heap_push(heap, &n_heap, edges[e]);
    }
    if (n_done < nn) {
        /* Walk back along inputs from a node that never became ready: after nn steps
         * the walk is inside a cycle. */
        int cur = 0;
        while (!indeg[cur]) cur++;
        for (int step = 0; step < nn; step++) {
            const cs_onnx_node *n = &g->nodes[cur];
            for (int i = 0; i < n->n_inputs; i++) {
                int s = *n->inputs[i] ? onnx_map_get(&src, n->inputs[i]) : -1;
                if (s >= 0 && indeg[s]) {
                    cur = s;
                    break;
                }
            }
        }
        cs_set_err(err, errlen, "the graph has a cycle through node '%s' (%s)", g->nodes[cur].name,
                   g->nodes[cur].op_type);
        goto out;
    }
    cs_onnx_node *sorted = malloc(((size_t)nn + 1) * sizeof *sorted);
    if (!sorted) goto oom;
    for (int k = 0; k < nn; k++) sorted[k] = g->nodes[order[k]];
    free(g->nodes);
    g->nodes = sorted;
    rc = 0;
    goto out;
oom:
    cs_set_err(err, errlen, "out of memory checking the graph");
out:
    onnx_map_free(&src);
    free(indeg);
    free(first);
    free(edges);
    free(heap);
    free(order);
    return rc;
}

/* ---- model --------------------------------------------------------------------- */

static int read_opset(const Onnx__ModelProto *m, int *opset, char *err, size_t errlen)
{
    int found = 0;
    int64_t v = 0;
    for (size_t k = 0; k < m->n_opset_import; k++) {
        const Onnx__OperatorSetIdProto *o = m->opset_import[k];
        if (!is_default_domain(o->domain)) continue;
        int64_t ver = o->has_version ? o->version : 0;
        if (found && ver != v) {
            cs_set_err(err, errlen, "the model imports two default-domain opsets (%lld and %lld)", (long long)v,
                       (long long)ver);
            return -1;
        }
        v = ver;
        found = 1;
    }
    if (!found) {
        cs_set_err(err, errlen, "the model declares no opset for the default ONNX domain");
        return -1;
    }
    if (v < CS_ONNX_OPSET_MIN || v > CS_ONNX_OPSET_MAX) {
        cs_set_err(err, errlen, "opset %lld is not supported (opsets %d to %d are)", (long long)v, CS_ONNX_OPSET_MIN,
                   CS_ONNX_OPSET_MAX);
        return -1;
    }
    *opset = (int)v;
    return 0;
}

static cs_onnx_graph *graph_from_model(const Onnx__ModelProto *m, size_t file_len, char *err, size_t errlen)
{
    cs_onnx_graph *g = calloc(1, sizeof *g);
    if (!g) goto oom;
    if (read_opset(m, &g->opset, err, errlen) < 0) goto fail;
    g->ir_version = m->has_ir_version ? m->ir_version : 0;
    {
        const char *pn = m->producer_name ? m->producer_name : "", *pv = m->producer_version ? m->producer_version : "";
        size_t len = strlen(pn) + strlen(pv) + 2;
        if (!(g->producer = malloc(len))) goto oom;
        snprintf(g->producer, len, "%s%s%s", pn, *pn && *pv ? " " : "", pv);
    }
    const Onnx__GraphProto *gp = m->graph;
    if (!gp) {
        cs_set_err(err, errlen, "the model has no graph");
        goto fail;
    }
    if (gp->n_sparse_initializer) {
        cs_set_err(err, errlen, "sparse initializer '%s' is not supported",
                   gp->sparse_initializer[0]->values && gp->sparse_initializer[0]->values->name
                       ? gp->sparse_initializer[0]->values->name
                       : "");
        goto fail;
    }
    if (gp->n_initializer > INT_MAX / 2 || gp->n_input > INT_MAX / 2 || gp->n_output > INT_MAX / 2 ||
        gp->n_node > INT_MAX / 2) {
        cs_set_err(err, errlen, "the graph is too large");
        goto fail;
    }

    if (gp->n_initializer) {
        g->inits = calloc(gp->n_initializer, sizeof *g->inits);
        if (!g->inits) goto oom;
    }
    for (size_t k = 0; k < gp->n_initializer; k++) {
        char what[512];
        const char *nm = gp->initializer[k]->name;
        snprintf(what, sizeof what, "initializer '%s'", nm ? nm : "");
        if (onnx_tensor_from_proto(&g->inits[k], gp->initializer[k], what, file_len, err, errlen) < 0) goto fail;
        g->n_inits++;
    }

    onnx_map inits;
    if (onnx_map_init(&inits, (size_t)g->n_inits) < 0) goto oom;
    for (int k = 0; k < g->n_inits; k++)
        if (onnx_map_put(&inits, g->inits[k].name, k) < 0) {
            onnx_map_free(&inits);
            goto oom;
        }
    /* Before IR version 4 every initializer was also listed as an input (a default
     * the caller could override); those are constants here, not inputs. */
    if (gp->n_input) {
        g->inputs = calloc(gp->n_input, sizeof *g->inputs);
        if (!g->inputs) {
            onnx_map_free(&inits);
            goto oom;
        }
    }
    for (size_t k = 0; k < gp->n_input; k++) {
        if (gp->input[k]->name && onnx_map_get(&inits, gp->input[k]->name) >= 0) continue;
        if (value_from_proto(&g->inputs[g->n_inputs], gp->input[k], "input", err, errlen) < 0) {
            onnx_map_free(&inits);
            goto fail;
        }
        g->n_inputs++;
    }
    onnx_map_free(&inits);

    if (gp->n_output) {
        g->outputs = calloc(gp->n_output, sizeof *g->outputs);
        if (!g->outputs) goto oom;
    }
    for (size_t k = 0; k < gp->n_output; k++) {
        if (value_from_proto(&g->outputs[k], gp->output[k], "output", err, errlen) < 0) goto fail;
        g->n_outputs++;
    }
    if (!g->n_outputs) {
        cs_set_err(err, errlen, "the graph has no outputs");
        goto fail;
    }

    if (gp->n_node) {
        g->nodes = calloc(gp->n_node, sizeof *g->nodes);
        if (!g->nodes) goto oom;
    }
    for (size_t k = 0; k < gp->n_node; k++) {
        if (node_from_proto(&g->nodes[k], gp->node[k], k, file_len, err, errlen) < 0) goto fail;
        g->n_nodes++;
    }
    if (settle_node_names(g, err, errlen) < 0 || validate_and_sort(g, err, errlen) < 0) goto fail;
    return g;
oom:
    cs_set_err(err, errlen, "out of memory reading the model");
fail:
    cs_onnx_graph_free(g);
    return NULL;
}

cs_onnx_graph *cs_onnx_parse_buffer(const void *buf, size_t len, char *err, size_t errlen)
{
    if (len > CS_ONNX_MAX_FILE_BYTES) {
        cs_set_err(err, errlen, "the model is %zu bytes, more than the %.0f GiB limit", len,
                   (double)CS_ONNX_MAX_FILE_BYTES / (1 << 30));
        return NULL;
    }
    if (!len || !buf) {
        cs_set_err(err, errlen, "not an ONNX model: no data");
        return NULL;
    }
    if (nesting_ok(buf, len, &onnx__model_proto__descriptor, 0) < 0) {
        cs_set_err(err, errlen, "not an ONNX model: the protobuf data is malformed, truncated or nested too deeply");
        return NULL;
    }
    Onnx__ModelProto *m = onnx__model_proto__unpack(NULL, len, buf);
    if (!m) {
        cs_set_err(err, errlen, "not an ONNX model: the protobuf data is malformed or truncated");
        return NULL;
    }
    cs_onnx_graph *g = graph_from_model(m, len, err, errlen);
    onnx__model_proto__free_unpacked(m, NULL);
    return g;
}

cs_onnx_graph *cs_onnx_read_buffer(const void *buf, size_t len, char *err, size_t errlen)
{
    cs_onnx_graph *g = cs_onnx_parse_buffer(buf, len, err, errlen);
    if (g && cs_onnx_fold(g, err, errlen) < 0) {
        cs_onnx_graph_free(g);
        return NULL;
    }
    return g;
}

static cs_onnx_graph *read_path(const char *path, int fold, char *err, size_t errlen)
{
    char why[512] = "";
    FILE *f = fopen(path, "rb");
    if (!f) {
        cs_set_err(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fileno(f), &st) < 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        cs_set_err(err, errlen, "%s: not a regular file", path);
        return NULL;
    }
    if ((uint64_t)st.st_size > CS_ONNX_MAX_FILE_BYTES) {
        fclose(f);
        cs_set_err(err, errlen, "%s: the file is %lld bytes, more than the %.0f GiB limit", path,
                   (long long)st.st_size, (double)CS_ONNX_MAX_FILE_BYTES / (1 << 30));
        return NULL;
    }
    size_t len = (size_t)st.st_size;
    unsigned char *buf = malloc(len ? len : 1);
    if (!buf) {
        fclose(f);
        cs_set_err(err, errlen, "%s: out of memory (%zu bytes)", path, len);
        return NULL;
    }
    size_t got = fread(buf, 1, len, f);
    int bad = ferror(f);
    fclose(f);
    if (got != len || bad) {
        free(buf);
        cs_set_err(err, errlen, "%s: read error", path);
        return NULL;
    }
    cs_onnx_graph *g = fold ? cs_onnx_read_buffer(buf, len, why, sizeof why) : cs_onnx_parse_buffer(buf, len, why, sizeof why);
    free(buf);
    if (!g) cs_set_err(err, errlen, "%s: %s", path, why);
    return g;
}

cs_onnx_graph *cs_onnx_read(const char *path, char *err, size_t errlen) { return read_path(path, 1, err, errlen); }

cs_onnx_graph *cs_onnx_parse(const char *path, char *err, size_t errlen) { return read_path(path, 0, err, errlen); }

/* ---- binding an input ------------------------------------------------------------ */

int cs_onnx_bind_input(cs_onnx_graph *g, const char *name, const cs_onnx_tensor *value, char *err, size_t errlen)
{
    int k = 0;
    while (k < g->n_inputs && strcmp(g->inputs[k].name, name)) k++;
    if (k == g->n_inputs) {
        cs_set_err(err, errlen, "the graph has no input '%s'", name);
        return -1;
    }
    const cs_onnx_value *v = &g->inputs[k];
    int want = v->elem_type == CS_ONNX_INT32 ? CS_ONNX_INT64 : v->elem_type;
    if (want && want != value->elem_type) {
        cs_set_err(err, errlen, "input '%s' is %s, the value given is %s", name, cs_onnx_type_name(v->elem_type),
                   cs_onnx_type_name(value->elem_type));
        return -1;
    }
    int same = v->ndim < 0 || v->ndim == value->ndim;
    for (int d = 0; same && v->ndim > 0 && d < v->ndim; d++) same = v->dims[d] < 0 || v->dims[d] == value->dims[d];
    if (!same) {
        char a[160], b[160];
        cs_set_err(err, errlen, "input '%s' is %s, the value given is %s", name,
                   onnx_dims_str(a, sizeof a, v->dims, v->ndim), onnx_dims_str(b, sizeof b, value->dims, value->ndim));
        return -1;
    }
    cs_onnx_tensor t = *value;
    t.name = onnx_strdup(name);
    t.f = value->f && value->count ? malloc((size_t)value->count * sizeof *t.f) : NULL;
    t.i = value->i && value->count ? malloc((size_t)value->count * sizeof *t.i) : NULL;
    if (!t.name || (value->f && value->count && !t.f) || (value->i && value->count && !t.i)) {
        onnx_tensor_clear(&t);
        cs_set_err(err, errlen, "out of memory binding input '%s'", name);
        return -1;
    }
    if (t.f) memcpy(t.f, value->f, (size_t)value->count * sizeof *t.f);
    if (t.i) memcpy(t.i, value->i, (size_t)value->count * sizeof *t.i);
    if (onnx_graph_add_init(g, &t) < 0) {
        onnx_tensor_clear(&t);
        cs_set_err(err, errlen, "out of memory binding input '%s'", name);
        return -1;
    }
    value_clear(&g->inputs[k]);
    memmove(&g->inputs[k], &g->inputs[k + 1], (size_t)(g->n_inputs - k - 1) * sizeof *g->inputs);
    g->n_inputs--;
    return 0;
}

/* ---- lookups ------------------------------------------------------------------- */

const cs_onnx_tensor *cs_onnx_find_init(const cs_onnx_graph *g, const char *name)
{
    for (int k = 0; k < g->n_inits; k++)
        if (strcmp(g->inits[k].name, name) == 0) return &g->inits[k];
    return NULL;
}

int cs_onnx_find_producer(const cs_onnx_graph *g, const char *value)
{
    if (!*value) return -1;
    for (int k = 0; k < g->n_nodes; k++)
        for (int o = 0; o < g->nodes[k].n_outputs; o++)
            if (strcmp(g->nodes[k].outputs[o], value) == 0) return k;
    return -1;
}

const cs_onnx_node *cs_onnx_find_node(const cs_onnx_graph *g, const char *node_name)
{
    for (int k = 0; k < g->n_nodes; k++)
        if (strcmp(g->nodes[k].name, node_name) == 0) return &g->nodes[k];
    return NULL;
}

const cs_onnx_attr *cs_onnx_attr_find(const cs_onnx_node *n, const char *name)
{
    for (int k = 0; k < n->n_attrs; k++)
        if (strcmp(n->attrs[k].name, name) == 0) return &n->attrs[k];
    return NULL;
}

int64_t cs_onnx_attr_int(const cs_onnx_node *n, const char *name, int64_t def)
{
    const cs_onnx_attr *a = cs_onnx_attr_find(n, name);
    return a && a->type == CS_ONNX_ATTR_INT ? a->i : def;
}

float cs_onnx_attr_float(const cs_onnx_node *n, const char *name, float def)
{
    const cs_onnx_attr *a = cs_onnx_attr_find(n, name);
    return a && a->type == CS_ONNX_ATTR_FLOAT ? a->f : def;
}

const char *cs_onnx_attr_string(const cs_onnx_node *n, const char *name, const char *def)
{
    const cs_onnx_attr *a = cs_onnx_attr_find(n, name);
    return a && a->type == CS_ONNX_ATTR_STRING ? a->s : def;
}

int cs_onnx_attr_ints(const cs_onnx_node *n, const char *name, const int64_t **v)
{
    const cs_onnx_attr *a = cs_onnx_attr_find(n, name);
    *v = a && a->type == CS_ONNX_ATTR_INTS ? a->ints : NULL;
    return a && a->type == CS_ONNX_ATTR_INTS ? a->n : -1;
}

int cs_onnx_attr_floats(const cs_onnx_node *n, const char *name, const float **v)
{
    const cs_onnx_attr *a = cs_onnx_attr_find(n, name);
    *v = a && a->type == CS_ONNX_ATTR_FLOATS ? a->floats : NULL;
    return a && a->type == CS_ONNX_ATTR_FLOATS ? a->n : -1;
}

const cs_onnx_tensor *cs_onnx_attr_tensor(const cs_onnx_node *n, const char *name)
{
    const cs_onnx_attr *a = cs_onnx_attr_find(n, name);
    return a && a->type == CS_ONNX_ATTR_TENSOR ? a->t : NULL;
}
