/*
 * model_file.c - saving and loading the convscope model file (.csm).
 *
 * Layout (docs/model-format.md has it byte by byte):
 *   "CSMODEL\0" | u32 version | u32 L | L bytes JSON | u64 N | N x f32 | u32 CRC-32
 * All integers and floats little-endian; the CRC covers every byte before it.
 *
 * The JSON describes the architecture completely (every layer's kind and the
 * configuration that matters for it), so loading rebuilds any sequential model with
 * the ordinary builder, then checks that the rebuilt shapes and parameter layout are
 * the ones the file describes before it copies a single float.
 *
 * Loading reads the file twice: once to verify the checksum, so that a damaged file
 * is reported as damaged rather than as whatever its broken bytes happen to say, and
 * once to fill the parameters straight into the model's block, so a large model is
 * never held twice in memory.
 *
 * Saving writes "<path>.tmp.<pid>.<n>" beside the target, syncs it, renames it over
 * the target and syncs the folder: readers see the old file or the new one.
 */
#include "model_file.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "layer_ops.h"

static const unsigned char CS_MAGIC[8] = {'C', 'S', 'M', 'O', 'D', 'E', 'L', 0};

#define HEADER_BYTES 16u        /* magic, version, metadata length */
#define COUNT_BYTES 8u          /* the float count after the metadata */
#define CRC_BYTES 4u
#define MAX_META (64u << 20)    /* far above any real architecture's description */
#define MAX_LAYERS 4096
#define MAX_CLASSES 1000000
#define MAX_HISTORY 1000000
#define MAX_DIM (1 << 24)       /* any single size in the configuration */
#define CHUNK_FLOATS 16384

/* ---- little-endian integers and floats, whatever the host's byte order ---- */

static void put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_u64(const unsigned char *p)
{
    return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
}

static uint32_t float_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float bits_float(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* zlib's crc32 takes an unsigned int length. */
static uLong crc_update(uLong crc, const void *buf, size_t len)
{
    const Bytef *p = buf;
    while (len > 0) {
        unsigned n = len > (1u << 30) ? (1u << 30) : (unsigned)len;
        crc = crc32(crc, p, n);
        p += n;
        len -= n;
    }
    return crc;
}

/* ---- metadata: building the JSON ---- */

#define jfloat cs_json_float

static json_t *jshape(cs_shape s)
{
    return json_pack("[iii]", s.h, s.w, s.c);
}

/* The configuration fields that mean something for the node's kind (its row of the
 * layer table writes them). */
/* The names of the nodes a node reads; null for the model's input. */
static json_t *inputs_json(const cs_model *m, const cs_layer *l)
{
    json_t *a = json_array();
    for (int k = 0; a && k < l->n_inputs; k++) {
        int j = l->inputs[k];
        if (json_array_append_new(a, j == CS_MODEL_INPUT ? json_null() : json_string(m->layers[j].name)) != 0) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

static json_t *layer_json(const cs_model *m, const cs_layer *l)
{
    json_t *params = json_array();
    if (!params)
        return NULL;
    for (int j = 0; j < l->n_params; j++) {
        const cs_param *p = &l->params[j];
        json_t *dims = json_array();
        for (int d = 0; dims && d < p->ndim; d++)
            if (json_array_append_new(dims, json_integer(p->dims[d])) != 0) {
                json_decref(dims);
                dims = NULL;
            }
        json_t *pj = json_pack("{s:s, s:o, s:I, s:b}", "name", p->name, "dims", dims, "offset",
                               (json_int_t)(p->data - m->param_block), "trainable", p->trainable);
        /* The regulariser follows from the layer's configuration; it is repeated on
         * the tensor it applies to for readers, and left out where there is none. */
        if (pj && (p->l1 != 0 || p->l2 != 0) &&
            (json_object_set_new(pj, "l1", jfloat(p->l1)) != 0 ||
             json_object_set_new(pj, "l2", jfloat(p->l2)) != 0)) {
            json_decref(pj);
            pj = NULL;
        }
        if (!pj || json_array_append_new(params, pj) != 0) {
            json_decref(params);
            return NULL;
        }
    }
    return json_pack("{s:s, s:s, s:o, s:o, s:o, s:o}", "name", l->name, "kind",
                     cs_layer_kind_name(l->kind), "inputs", inputs_json(m, l), "config",
                     cs_layer_config_json(l), "output", jshape(l->out), "params", params);
}

static json_t *meta_json(const cs_model_meta *mt)
{
    json_t *hist = json_array();
    if (!hist)
        return NULL;
    for (int i = 0; i < mt->n_history; i++) {
        const cs_epoch_record *r = &mt->history[i];
        json_t *e = json_pack("{s:i, s:o, s:o, s:o, s:o, s:f}", "epoch", r->epoch, "loss",
                              jfloat(r->loss), "accuracy", jfloat(r->accuracy), "test_accuracy",
                              r->test_accuracy >= 0 ? jfloat(r->test_accuracy) : json_null(),
                              "test_loss", r->test_loss >= 0 ? jfloat(r->test_loss) : json_null(),
                              "seconds", isfinite(r->seconds) ? r->seconds : 0.0);
        if (!e || json_array_append_new(hist, e) != 0) {
            json_decref(hist);
            return NULL;
        }
    }
    /* JSON integers are signed 64-bit: a seed above that range is kept exactly as a
     * decimal string. */
    json_t *seed = mt->seed <= (uint64_t)INT64_MAX ? json_integer((json_int_t)mt->seed) : NULL;
    if (!seed) {
        char buf[32];
        snprintf(buf, sizeof buf, "%llu", (unsigned long long)mt->seed);
        seed = json_string(buf);
    }
    return json_pack("{s:o, s:o, s:i, s:i, s:o, s:o, s:i, s:i, s:o}", "test_accuracy",
                     mt->test_accuracy >= 0 && isfinite(mt->test_accuracy)
                         ? json_real(mt->test_accuracy)
                         : json_null(),
                     "trained_at", mt->trained_at[0] ? json_string(mt->trained_at) : json_null(),
                     "epochs", mt->epochs, "batch_size", mt->batch_size, "learning_rate",
                     jfloat(mt->learning_rate), "seed", seed, "train_images", mt->train_images,
                     "test_images", mt->test_images, "history", hist);
}

/* The whole metadata document, or NULL (a name that is not UTF-8, or no memory). */
static json_t *model_json(const cs_model *m)
{
    json_t *layers = json_array(), *classes = json_array();
    if (!layers || !classes)
        goto fail;
    for (int i = 0; i < m->n_layers; i++)
        if (json_array_append_new(layers, layer_json(m, &m->layers[i])) != 0)
            goto fail;
    for (int i = 0; i < m->n_classes; i++)
        if (json_array_append_new(classes, json_string(m->class_names[i])) != 0)
            goto fail;
    json_t *doc = json_pack("{s:s, s:s, s:o, s:o, s:o}", "format", "convscope-model", "arch",
                            m->arch, "input", jshape(m->input), "layers", layers, "classes", classes);
    if (!doc)
        return NULL;
    /* WordNet ids only where the model has them (VGG16), beside the names. */
    if (m->class_ids) {
        json_t *ids = json_array();
        for (int i = 0; ids && i < m->n_classes; i++)
            if (json_array_append_new(ids, json_string(m->class_ids[i] ? m->class_ids[i] : "")) != 0) {
                json_decref(ids);
                ids = NULL;
            }
        if (json_object_set_new(doc, "class_ids", ids) != 0) {
            json_decref(doc);
            return NULL;
        }
    }
    if (json_object_set_new(doc, "meta", meta_json(&m->meta)) != 0) {
        json_decref(doc);
        return NULL;
    }
    return doc;
fail:
    json_decref(layers);
    json_decref(classes);
    return NULL;
}

/* ---- saving ---- */

/* Writes the file body to f, computing the CRC on the way. */
static int write_body(FILE *f, const cs_model *m, const char *meta, size_t meta_len)
{
    unsigned char head[HEADER_BYTES];
    memcpy(head, CS_MAGIC, 8);
    put_u32(head + 8, CS_MODEL_FORMAT_VERSION);
    put_u32(head + 12, (uint32_t)meta_len);
    uLong crc = crc32(0L, Z_NULL, 0);
    if (fwrite(head, 1, sizeof head, f) != sizeof head)
        return -1;
    crc = crc_update(crc, head, sizeof head);
    if (fwrite(meta, 1, meta_len, f) != meta_len)
        return -1;
    crc = crc_update(crc, meta, meta_len);
    unsigned char count[COUNT_BYTES];
    put_u64(count, (uint64_t)m->n_param_floats);
    if (fwrite(count, 1, sizeof count, f) != sizeof count)
        return -1;
    crc = crc_update(crc, count, sizeof count);

    unsigned char *buf = malloc(CHUNK_FLOATS * 4);
    if (!buf)
        return -1;
    for (size_t done = 0; done < m->n_param_floats;) {
        size_t n = m->n_param_floats - done;
        if (n > CHUNK_FLOATS)
            n = CHUNK_FLOATS;
        for (size_t i = 0; i < n; i++)
            put_u32(buf + 4 * i, float_bits(m->param_block[done + i]));
        if (fwrite(buf, 4, n, f) != n) {
            free(buf);
            return -1;
        }
        crc = crc_update(crc, buf, 4 * n);
        done += n;
    }
    free(buf);
    unsigned char tail[CRC_BYTES];
    put_u32(tail, (uint32_t)crc);
    if (fwrite(tail, 1, sizeof tail, f) != sizeof tail)
        return -1;
    return 0;
}

/* fsync of the folder holding path, so the rename itself survives a crash. */
static int sync_parent(const char *path)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == dir)
        dir[1] = 0;
    else
        *slash = 0;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    /* Some file systems cannot sync a folder; the data itself is synced already. */
    if (rc != 0 && (errno == EINVAL || errno == ENOTSUP || errno == EROFS))
        rc = 0;
    int saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

int cs_model_save(const cs_model *m, const char *path, char *err, size_t errlen)
{
    if (m->n_extra_inputs) {
        snprintf(err, errlen, "saving model file %s: the model takes %d inputs; model files hold models of one", path,
                 m->n_extra_inputs + 1);
        return -1;
    }
    json_t *doc = model_json(m);
    if (!doc) {
        snprintf(err, errlen, "saving model file %s: cannot describe the model in JSON "
                              "(out of memory, or a name that is not UTF-8)", path);
        return -1;
    }
    char *meta = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));
    json_decref(doc);
    if (!meta) {
        snprintf(err, errlen, "saving model file %s: out of memory", path);
        return -1;
    }
    size_t meta_len = strlen(meta);
    if (meta_len > MAX_META) {
        snprintf(err, errlen, "saving model file %s: metadata of %zu bytes is too large", path,
                 meta_len);
        free(meta);
        return -1;
    }

    /* The pid keeps processes apart, the counter keeps threads of one process apart;
     * a stale file from a killed process is removed by the next start of the service
     * (cs_model_remove_stale_saves). */
    static atomic_uint counter;
    char tmp[4096];
    int n = snprintf(tmp, sizeof tmp, "%s.tmp.%ld.%u", path, (long)getpid(),
                     atomic_fetch_add(&counter, 1));
    if (n < 0 || (size_t)n >= sizeof tmp) {
        snprintf(err, errlen, "saving model file %s: path too long", path);
        free(meta);
        return -1;
    }

    FILE *f = fopen(tmp, "wb");
    if (!f) {
        snprintf(err, errlen, "saving model file %s: cannot create %s: %s", path, tmp,
                 strerror(errno));
        free(meta);
        return -1;
    }
    const char *step = "writing";
    int rc = write_body(f, m, meta, meta_len);
    free(meta);
    if (rc == 0) {
        step = "flushing";
        rc = fflush(f);
    }
    if (rc == 0) {
        step = "syncing";
        rc = fsync(fileno(f));
    }
    int saved = errno;
    if (fclose(f) != 0 && rc == 0) {
        step = "closing";
        rc = -1;
        saved = errno;
    }
    if (rc != 0) {
        snprintf(err, errlen, "saving model file %s: %s %s failed: %s", path, step, tmp,
                 strerror(saved));
        unlink(tmp);
        return -1;
    }
    if (rename(tmp, path) != 0) {
        saved = errno;
        snprintf(err, errlen, "saving model file %s: cannot replace it: %s", path, strerror(saved));
        unlink(tmp);
        return -1;
    }
    if (sync_parent(path) != 0) {
        snprintf(err, errlen, "saving model file %s: written, but its folder could not be synced: %s",
                 path, strerror(errno));
        return -1;
    }
    return 0;
}

/* ---- metadata: reading the JSON back ---- */

typedef struct {
    const char *path;
    char *err;
    size_t errlen;
} load_ctx;

#define LOAD_FAIL(c, ...)                                                                    \
    do {                                                                                     \
        int n_ = snprintf((c)->err, (c)->errlen, "model file %s: ", (c)->path);              \
        if (n_ >= 0 && (size_t)n_ < (c)->errlen)                                             \
            snprintf((c)->err + n_, (c)->errlen - (size_t)n_, __VA_ARGS__);                  \
    } while (0)

static int get_int(load_ctx *c, json_t *o, const char *key, const char *where, int lo, int hi,
                   int *out)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_integer(v)) {
        LOAD_FAIL(c, "metadata: %s has no integer '%s'", where, key);
        return -1;
    }
    json_int_t x = json_integer_value(v);
    if (x < lo || x > hi) {
        LOAD_FAIL(c, "metadata: %s '%s' is %lld, outside %d..%d", where, key, (long long)x, lo, hi);
        return -1;
    }
    *out = (int)x;
    return 0;
}

/* A number (integer or real); null reads as `if_null` when null_ok. */
static int get_num(load_ctx *c, json_t *o, const char *key, const char *where, int null_ok,
                   double if_null, double *out)
{
    json_t *v = json_object_get(o, key);
    if (null_ok && json_is_null(v)) {
        *out = if_null;
        return 0;
    }
    if (!json_is_number(v)) {
        LOAD_FAIL(c, "metadata: %s has no number '%s'", where, key);
        return -1;
    }
    *out = json_number_value(v);
    return 0;
}

/* A string that fits a buffer of `size` bytes. */
static const char *get_str(load_ctx *c, json_t *o, const char *key, const char *where, size_t size)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_string(v)) {
        LOAD_FAIL(c, "metadata: %s has no string '%s'", where, key);
        return NULL;
    }
    if (size && json_string_length(v) >= size) {
        LOAD_FAIL(c, "metadata: %s '%s' is longer than %zu bytes", where, key, size - 1);
        return NULL;
    }
    return json_string_value(v);
}

static int get_shape(load_ctx *c, json_t *o, const char *key, const char *where, cs_shape *out)
{
    json_t *v = json_object_get(o, key);
    int d[3];
    for (int i = 0; i < 3; i++) {
        json_t *x = json_array_get(v, (size_t)i);
        if (!json_is_integer(x) || json_integer_value(x) < 1 || json_integer_value(x) > MAX_DIM) {
            LOAD_FAIL(c, "metadata: %s '%s' is not a shape [h, w, c]", where, key);
            return -1;
        }
        d[i] = (int)json_integer_value(x);
    }
    if (json_array_size(v) != 3) {
        LOAD_FAIL(c, "metadata: %s '%s' is not a shape [h, w, c]", where, key);
        return -1;
    }
    out->h = d[0];
    out->w = d[1];
    out->c = d[2];
    return 0;
}

/* The builder configuration of one node, from its "config" object. */
static int read_config(load_ctx *c, json_t *lj, cs_layer_kind kind, const char *where,
                       cs_layer_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    json_t *o = json_object_get(lj, "config");
    if (!json_is_object(o)) {
        LOAD_FAIL(c, "metadata: %s has no 'config' object", where);
        return -1;
    }
    const cs_layer_ops *ops = cs_layer_ops_of(kind);
    char msg[160];
    if (ops->config_from_json && ops->config_from_json(o, cfg, msg, sizeof msg) != 0) {
        LOAD_FAIL(c, "metadata: %s %s", where, msg);
        return -1;
    }
    return 0;
}

/* The nodes a node reads, by name among those before it (null: the model's input).
 * A file without "inputs" (format version 1) is a sequence: each node reads the one
 * before it. */
static int read_inputs(load_ctx *c, const cs_model *m, json_t *lj, const char *where, int *inputs, int *n)
{
    json_t *a = json_object_get(lj, "inputs");
    if (!a) {
        inputs[0] = m->n_layers - 1;
        *n = 1;
        return 0;
    }
    if (!json_is_array(a) || json_array_size(a) < 1 || json_array_size(a) > CS_MAX_INPUTS) {
        LOAD_FAIL(c, "metadata: %s 'inputs' is not a list of 1 to %d names", where, CS_MAX_INPUTS);
        return -1;
    }
    *n = (int)json_array_size(a);
    for (int k = 0; k < *n; k++) {
        json_t *v = json_array_get(a, (size_t)k);
        if (json_is_null(v)) {
            inputs[k] = CS_MODEL_INPUT;
            continue;
        }
        int j = json_is_string(v) ? cs_model_find_layer(m, json_string_value(v)) : -1;
        if (j < 0) {
            LOAD_FAIL(c, "metadata: %s reads '%s', which is not a node before it", where,
                      json_is_string(v) ? json_string_value(v) : "(not a name)");
            return -1;
        }
        inputs[k] = j;
    }
    return 0;
}

/* The parameters the builder made for layer l must be those the file lists:
 * same names, shapes and places in the block. */
static int check_params(load_ctx *c, const cs_model *m, const cs_layer *l, json_t *lj,
                        const char *where)
{
    json_t *params = json_object_get(lj, "params");
    if (!json_is_array(params) || json_array_size(params) != (size_t)l->n_params) {
        LOAD_FAIL(c, "metadata: %s lists %zu parameter tensors, its kind has %d", where,
                  json_is_array(params) ? json_array_size(params) : 0, l->n_params);
        return -1;
    }
    for (int j = 0; j < l->n_params; j++) {
        const cs_param *p = &l->params[j];
        json_t *pj = json_array_get(params, (size_t)j);
        const char *name = get_str(c, pj, "name", where, CS_NAME_MAX);
        if (!name)
            return -1;
        if (strcmp(name, p->name) != 0) {
            LOAD_FAIL(c, "metadata: %s parameter %d is '%s', expected '%s'", where, j, name,
                      p->name);
            return -1;
        }
        json_t *dims = json_object_get(pj, "dims");
        int same = json_is_array(dims) && json_array_size(dims) == (size_t)p->ndim;
        for (int d = 0; same && d < p->ndim; d++) {
            json_t *x = json_array_get(dims, (size_t)d);
            same = json_is_integer(x) && json_integer_value(x) == p->dims[d];
        }
        if (!same) {
            LOAD_FAIL(c, "metadata: %s %s has other dimensions than the architecture gives it",
                      where, p->name);
            return -1;
        }
        json_t *off = json_object_get(pj, "offset");
        if (off && (!json_is_integer(off) || json_integer_value(off) != p->data - m->param_block)) {
            LOAD_FAIL(c, "metadata: %s %s is not where the architecture places it", where,
                      p->name);
            return -1;
        }
    }
    return 0;
}

static int read_meta(load_ctx *c, json_t *mj, cs_model_meta *mt)
{
    if (!json_is_object(mj)) {
        LOAD_FAIL(c, "metadata has no 'meta' object");
        return -1;
    }
    double d;
    if (get_num(c, mj, "test_accuracy", "meta", 1, -1, &mt->test_accuracy) ||
        get_int(c, mj, "epochs", "meta", 0, INT32_MAX, &mt->epochs) ||
        get_int(c, mj, "batch_size", "meta", 0, INT32_MAX, &mt->batch_size) ||
        get_int(c, mj, "train_images", "meta", 0, INT32_MAX, &mt->train_images) ||
        get_num(c, mj, "learning_rate", "meta", 0, 0, &d))
        return -1;
    /* Files written before test_images was recorded leave it unknown (0). */
    if (json_object_get(mj, "test_images") &&
        get_int(c, mj, "test_images", "meta", 0, INT32_MAX, &mt->test_images))
        return -1;
    mt->learning_rate = (float)d;
    json_t *at = json_object_get(mj, "trained_at");
    if (json_is_null(at) || !at) {
        mt->trained_at[0] = 0;
    } else {
        const char *s = get_str(c, mj, "trained_at", "meta", sizeof mt->trained_at);
        if (!s)
            return -1;
        snprintf(mt->trained_at, sizeof mt->trained_at, "%s", s);
    }
    json_t *seed = json_object_get(mj, "seed");
    if (json_is_integer(seed) && json_integer_value(seed) >= 0) {
        mt->seed = (uint64_t)json_integer_value(seed);
    } else if (json_is_string(seed)) {
        char *end;
        errno = 0;
        mt->seed = strtoull(json_string_value(seed), &end, 10);
        if (errno || *end || end == json_string_value(seed)) {
            LOAD_FAIL(c, "metadata: meta 'seed' is not a number");
            return -1;
        }
    } else {
        LOAD_FAIL(c, "metadata: meta has no 'seed'");
        return -1;
    }

    json_t *hist = json_object_get(mj, "history");
    if (!json_is_array(hist) || json_array_size(hist) > MAX_HISTORY) {
        LOAD_FAIL(c, "metadata: meta has no 'history' list");
        return -1;
    }
    size_t n = json_array_size(hist);
    mt->n_history = 0;
    mt->history = n ? calloc(n, sizeof *mt->history) : NULL;
    if (n && !mt->history) {
        LOAD_FAIL(c, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(hist, i);
        cs_epoch_record *r = &mt->history[i];
        char where[48];
        snprintf(where, sizeof where, "history entry %zu", i);
        double loss, acc, tacc;
        if (get_int(c, e, "epoch", where, 0, INT32_MAX, &r->epoch) ||
            get_num(c, e, "loss", where, 1, NAN, &loss) ||
            get_num(c, e, "accuracy", where, 1, NAN, &acc) ||
            get_num(c, e, "test_accuracy", where, 1, -1, &tacc) ||
            get_num(c, e, "seconds", where, 0, 0, &r->seconds))
            return -1;
        /* Files written before the test loss was recorded leave it unknown. */
        double tloss = -1;
        if (json_object_get(e, "test_loss") && get_num(c, e, "test_loss", where, 1, -1, &tloss))
            return -1;
        r->loss = (float)loss;
        r->accuracy = (float)acc;
        r->test_accuracy = (float)tacc;
        r->test_loss = tloss >= 0 ? (float)tloss : -1;
        mt->n_history = (int)i + 1;
    }
    return 0;
}

static int read_classes(load_ctx *c, cs_model *m, json_t *parent)
{
    json_t *cj = json_object_get(parent, "classes");
    if (!json_is_array(cj) || json_array_size(cj) > MAX_CLASSES) {
        LOAD_FAIL(c, "metadata has no 'classes' list");
        return -1;
    }
    size_t n = json_array_size(cj);
    if (n == 0)
        return 0;
    const char **names = malloc(n * sizeof *names);
    if (!names) {
        LOAD_FAIL(c, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        names[i] = json_string_value(json_array_get(cj, i));
        if (!names[i]) {
            LOAD_FAIL(c, "metadata: class %zu is not a string", i);
            free(names);
            return -1;
        }
    }
    int rc = cs_model_set_classes(m, (int)n, names);
    free(names);
    if (rc != 0) {
        LOAD_FAIL(c, "out of memory");
        return -1;
    }
    json_t *ids = json_object_get(parent, "class_ids");
    if (!ids)
        return 0;
    if (!json_is_array(ids) || json_array_size(ids) != n) {
        LOAD_FAIL(c, "metadata: 'class_ids' does not list one id per class");
        return -1;
    }
    m->class_ids = calloc(n, sizeof *m->class_ids);
    if (!m->class_ids) {
        LOAD_FAIL(c, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        const char *id = json_string_value(json_array_get(ids, i));
        if (!id) {
            LOAD_FAIL(c, "metadata: class id %zu is not a string", i);
            return -1; /* the model frees what was copied so far */
        }
        if (!(m->class_ids[i] = strdup(id))) {
            LOAD_FAIL(c, "out of memory");
            return -1;
        }
    }
    return 0;
}

/* The architecture the metadata describes, built and allocated; n_floats is the
 * parameter count the file holds, checked before anything large is allocated. */
static cs_model *model_from_json(load_ctx *c, json_t *doc, uint64_t n_floats)
{
    char where[CS_NAME_MAX + 32];
    if (!json_is_object(doc)) {
        LOAD_FAIL(c, "metadata is not a JSON object");
        return NULL;
    }
    const char *arch = get_str(c, doc, "arch", "the model", CS_NAME_MAX);
    cs_shape input;
    if (!arch || get_shape(c, doc, "input", "the model", &input) != 0)
        return NULL;
    if ((uint64_t)input.h * (uint64_t)input.w * (uint64_t)input.c > INT32_MAX) {
        LOAD_FAIL(c, "metadata: input %dx%dx%d is not plausible", input.h, input.w, input.c);
        return NULL;
    }
    json_t *layers = json_object_get(doc, "layers");
    if (!json_is_array(layers) || json_array_size(layers) == 0 ||
        json_array_size(layers) > MAX_LAYERS) {
        LOAD_FAIL(c, "metadata has no 'layers' list");
        return NULL;
    }
    cs_model *m = cs_model_new(arch, input);
    if (!m) {
        LOAD_FAIL(c, "out of memory");
        return NULL;
    }
    uint64_t total = 0;
    for (size_t i = 0; i < json_array_size(layers); i++) {
        json_t *lj = json_array_get(layers, i);
        snprintf(where, sizeof where, "layer %zu", i);
        const char *name = get_str(c, lj, "name", where, CS_NAME_MAX);
        const char *kind_name = name ? get_str(c, lj, "kind", where, 0) : NULL;
        if (!kind_name)
            goto fail;
        snprintf(where, sizeof where, "layer %zu (%s)", i, name);
        cs_layer_kind kind;
        if (cs_layer_kind_from_name(kind_name, &kind) != 0) {
            LOAD_FAIL(c, "metadata: %s has kind '%s', which this build does not know", where,
                      kind_name);
            goto fail;
        }
        cs_layer_config cfg;
        if (read_config(c, lj, kind, where, &cfg) != 0)
            goto fail;
        int inputs[CS_MAX_INPUTS], n_inputs;
        if (read_inputs(c, m, lj, where, inputs, &n_inputs) != 0)
            goto fail;
        if (cs_model_find_layer(m, name) >= 0) {
            LOAD_FAIL(c, "metadata: %s repeats the name of an earlier node", where);
            goto fail;
        }
        char add_err[256] = "";
        if (cs_model_add_node(m, name, kind, &cfg, inputs, n_inputs, add_err, sizeof add_err) < 0) {
            LOAD_FAIL(c, "%s", add_err);
            goto fail;
        }
        const cs_layer *l = &m->layers[m->n_layers - 1];
        cs_shape out;
        if (get_shape(c, lj, "output", where, &out) != 0)
            goto fail;
        if (out.h != l->out.h || out.w != l->out.w || out.c != l->out.c) {
            LOAD_FAIL(c, "metadata: %s output is %dx%dx%d in the file but %dx%dx%d when built",
                      where, out.h, out.w, out.c, l->out.h, l->out.w, l->out.c);
            goto fail;
        }
        for (int j = 0; j < l->n_params; j++)
            total += l->params[j].size;
    }
    /* Checked before cs_model_finish allocates: a corrupt configuration cannot ask
     * for more memory than the file itself holds parameters for. */
    if (total != n_floats) {
        LOAD_FAIL(c, "holds %llu parameters but its architecture needs %llu",
                  (unsigned long long)n_floats, (unsigned long long)total);
        goto fail;
    }
    if (cs_model_finish(m) != 0) {
        LOAD_FAIL(c, "out of memory for %llu parameters", (unsigned long long)n_floats);
        goto fail;
    }
    for (int i = 0; i < m->n_layers; i++) {
        snprintf(where, sizeof where, "layer %d (%s)", i, m->layers[i].name);
        if (check_params(c, m, &m->layers[i], json_array_get(layers, (size_t)i), where) != 0)
            goto fail;
    }
    if (read_classes(c, m, doc) != 0)
        goto fail;
    free(m->meta.history);
    m->meta.history = NULL;
    m->meta.n_history = 0;
    if (read_meta(c, json_object_get(doc, "meta"), &m->meta) != 0)
        goto fail;
    return m;
fail:
    cs_model_free(m);
    return NULL;
}

/* ---- loading ---- */

/* Reads exactly len bytes; 0 on success. */
static int read_exact(FILE *f, void *buf, size_t len)
{
    return fread(buf, 1, len, f) == len ? 0 : -1;
}

/* Pass 1: everything up to and including the float count into *head (returned
 * through head/head_len), the CRC over all but the last 4 bytes checked. */
static int read_and_verify(load_ctx *c, FILE *f, uint64_t size, unsigned char **head_out,
                           size_t *head_len, uint64_t *n_floats)
{
    unsigned char fixed[HEADER_BYTES];
    size_t have = size < HEADER_BYTES ? (size_t)size : HEADER_BYTES;
    if (read_exact(f, fixed, have) != 0) {
        LOAD_FAIL(c, "read error: %s", strerror(errno));
        return -1;
    }
    size_t cmp = have < 8 ? have : 8;
    if (memcmp(fixed, CS_MAGIC, cmp) != 0 || size == 0) {
        LOAD_FAIL(c, "not a convscope model file");
        return -1;
    }
    if (have < HEADER_BYTES) {
        LOAD_FAIL(c, "truncated: expected at least %u bytes, found %llu",
                  HEADER_BYTES + COUNT_BYTES + CRC_BYTES, (unsigned long long)size);
        return -1;
    }
    uint32_t version = get_u32(fixed + 8);
    if (version < 1 || version > CS_MODEL_FORMAT_VERSION) {
        LOAD_FAIL(c, "format version %u not supported (this build reads version %d)", version,
                  CS_MODEL_FORMAT_VERSION);
        return -1;
    }
    uint32_t meta_len = get_u32(fixed + 12);
    if (meta_len > MAX_META) {
        LOAD_FAIL(c, "metadata length %u is not plausible (file is corrupt)", meta_len);
        return -1;
    }
    uint64_t head = (uint64_t)HEADER_BYTES + meta_len + COUNT_BYTES;
    if (size < head + CRC_BYTES) {
        LOAD_FAIL(c, "truncated: expected at least %llu bytes, found %llu",
                  (unsigned long long)(head + CRC_BYTES), (unsigned long long)size);
        return -1;
    }
    unsigned char *buf = malloc((size_t)head);
    if (!buf) {
        LOAD_FAIL(c, "out of memory");
        return -1;
    }
    memcpy(buf, fixed, HEADER_BYTES);
    if (read_exact(f, buf + HEADER_BYTES, (size_t)head - HEADER_BYTES) != 0) {
        LOAD_FAIL(c, "read error: %s", strerror(errno));
        goto fail;
    }
    uint64_t n = get_u64(buf + head - COUNT_BYTES);
    /* Expected size, without overflowing on a corrupt count. */
    uint64_t room = (size - head - CRC_BYTES) / 4;
    if (n > room || size - head - CRC_BYTES != 4 * n) {
        if (n > room) {
            if (n > (UINT64_MAX - head - CRC_BYTES) / 4)
                LOAD_FAIL(c, "parameter count %llu is not plausible (file is corrupt)",
                          (unsigned long long)n);
            else
                LOAD_FAIL(c, "truncated: expected %llu bytes, found %llu",
                          (unsigned long long)(head + 4 * n + CRC_BYTES), (unsigned long long)size);
        } else {
            LOAD_FAIL(c, "%llu bytes longer than its header announces (file is corrupt)",
                      (unsigned long long)(size - head - CRC_BYTES - 4 * n));
        }
        goto fail;
    }

    uLong crc = crc_update(crc32(0L, Z_NULL, 0), buf, (size_t)head);
    enum { CHUNK = 1 << 16 };
    unsigned char *chunk = malloc(CHUNK);
    if (!chunk) {
        LOAD_FAIL(c, "out of memory");
        goto fail;
    }
    for (uint64_t left = 4 * n; left > 0;) {
        size_t k = left > CHUNK ? CHUNK : (size_t)left;
        if (read_exact(f, chunk, k) != 0) {
            LOAD_FAIL(c, "read error: %s", ferror(f) ? strerror(errno) : "file shrank while read");
            free(chunk);
            goto fail;
        }
        crc = crc_update(crc, chunk, k);
        left -= k;
    }
    free(chunk);
    unsigned char tail[CRC_BYTES];
    if (read_exact(f, tail, sizeof tail) != 0) {
        LOAD_FAIL(c, "read error: %s", ferror(f) ? strerror(errno) : "file shrank while read");
        goto fail;
    }
    if (get_u32(tail) != (uint32_t)crc) {
        LOAD_FAIL(c, "checksum mismatch (file is corrupt)");
        goto fail;
    }
    *head_out = buf;
    *head_len = (size_t)head;
    *n_floats = n;
    return 0;
fail:
    free(buf);
    return -1;
}

/* Pass 2: the floats, straight into the model's block. */
static int read_floats(load_ctx *c, FILE *f, size_t offset, cs_model *m)
{
    if (fseeko(f, (off_t)offset, SEEK_SET) != 0) {
        LOAD_FAIL(c, "seek failed: %s", strerror(errno));
        return -1;
    }
    unsigned char *raw = (unsigned char *)m->param_block;
    for (size_t done = 0; done < m->n_param_floats;) {
        size_t n = m->n_param_floats - done;
        if (n > CHUNK_FLOATS)
            n = CHUNK_FLOATS;
        if (read_exact(f, raw + 4 * done, 4 * n) != 0) {
            LOAD_FAIL(c, "read error: %s", ferror(f) ? strerror(errno) : "file shrank while read");
            return -1;
        }
        /* In place: each float's four bytes become the host's float (a no-op on
         * little-endian hosts, which the compiler sees). */
        for (size_t i = done; i < done + n; i++)
            m->param_block[i] = bits_float(get_u32(raw + 4 * i));
        done += n;
    }
    return 0;
}

cs_model *cs_model_load(const char *path, char *err, size_t errlen)
{
    load_ctx c = {path, err, errlen};
    FILE *f = fopen(path, "rb");
    if (!f) {
        LOAD_FAIL(&c, "cannot open: %s", strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        LOAD_FAIL(&c, "cannot stat: %s", strerror(errno));
        fclose(f);
        return NULL;
    }
    if (!S_ISREG(st.st_mode)) {
        LOAD_FAIL(&c, "%s", S_ISDIR(st.st_mode) ? "is a folder, not a file" : "not a regular file");
        fclose(f);
        return NULL;
    }

    cs_model *m = NULL;
    json_t *doc = NULL;
    unsigned char *head = NULL;
    size_t head_len = 0;
    uint64_t n_floats = 0;
    if (read_and_verify(&c, f, (uint64_t)st.st_size, &head, &head_len, &n_floats) != 0)
        goto done;

    json_error_t jerr;
    doc = json_loadb((const char *)head + HEADER_BYTES, head_len - HEADER_BYTES - COUNT_BYTES,
                     JSON_REJECT_DUPLICATES, &jerr);
    if (!doc) {
        LOAD_FAIL(&c, "metadata is not valid JSON: %s (line %d)", jerr.text, jerr.line);
        goto done;
    }
    m = model_from_json(&c, doc, n_floats);
    if (m && read_floats(&c, f, head_len, m) != 0) {
        cs_model_free(m);
        m = NULL;
    }
done:
    json_decref(doc);
    free(head);
    fclose(f);
    return m;
}

/* ---- temporary files of interrupted saves ---- */

static int all_digits(const char *s, size_t n)
{
    if (n == 0 || n > 20)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

/* "<name>.tmp.<digits>.<digits>" with <name> ending in .csm or .h5. */
static int is_save_temp(const char *f)
{
    const char *tmp = NULL;
    for (const char *p = strstr(f, ".tmp."); p; p = strstr(p + 1, ".tmp."))
        tmp = p;
    if (!tmp)
        return 0;
    const char *pid = tmp + 5, *dot = strchr(pid, '.');
    if (!dot || !all_digits(pid, (size_t)(dot - pid)) || !all_digits(dot + 1, strlen(dot + 1)))
        return 0;
    size_t base = (size_t)(tmp - f);
    return (base > 4 && memcmp(tmp - 4, ".csm", 4) == 0) || (base > 3 && memcmp(tmp - 3, ".h5", 3) == 0);
}

int cs_model_remove_stale_saves(const char *dir, double min_age_s, char *msg, size_t msglen)
{
    if (msg && msglen)
        msg[0] = 0;
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int fd = dirfd(d), removed = 0;
    time_t now = time(NULL);
    struct dirent *e;
    while ((e = readdir(d))) {
        struct stat st;
        if (!is_save_temp(e->d_name) || fstatat(fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
            !S_ISREG(st.st_mode) || difftime(now, st.st_mtime) < min_age_s)
            continue;
        if (unlinkat(fd, e->d_name, 0) != 0)
            continue;
        if (msg && msglen) {
            size_t k = strlen(msg);
            snprintf(msg + k, msglen - k, "%s%s", removed ? ", " : "", e->d_name);
        }
        removed++;
    }
    closedir(d);
    return removed;
}
