/*
 * keras_h5.c - Keras 2 HDF5 weight files (model.save_weights()) in and out, via libhdf5.
 *
 * The layout, as Keras 2 and h5py write it:
 *   /                      attributes layer_names (every layer, in order), backend,
 *                          keras_version
 *   /<layer>               a group per layer; attribute weight_names lists its weights,
 *                          empty for layers without any
 *   /<layer>/<weight name> a float32 dataset. The name is a path relative to the layer
 *                          group: Keras 2 writes "conv2d_1/kernel:0" (a dataset inside a
 *                          subgroup), Keras 1 files such as the VGG16 ImageNet weights
 *                          write "block1_conv1_W_1:0" (a dataset in the group itself).
 * A file written by model.save() keeps the same tree under /model_weights.
 *
 * Matching, as Keras' load_weights() does it: within a layer, weights are taken in the
 * order weight_names lists them (kernel, bias; gamma, beta, moving_mean,
 * moving_variance). Layers are matched by name; when some names differ but the file
 * has exactly as many layers with weights as the model, they are matched by position,
 * which is Keras' own default and lets a notebook model whose layers came out as
 * conv2d_3, dense_5, ... (a second build in one Keras session) load too. Every shape is
 * checked before the first byte is read, so a refused file leaves the model untouched.
 *
 * Reads go straight from the file into the model's parameter block (H5Dread converts
 * float64 files in small strips), so the 528 MiB VGG16 file is never held twice.
 *
 * libhdf5's serial build is not thread-safe: every call into it happens under one lock.
 * Its automatic error printing is turned off; failures come back as one line in err.
 */
#include "keras_h5.h"

#include "error.h"
#include "keras_h5_priv.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* What a saved file claims to be. Keras reads keras_version to decide whether to
 * convert legacy (Keras 1) kernels, and backend to decide whether to flip conv
 * kernels; 2.x and tensorflow mean "use as stored", which is the truth here. */
#define KERAS_VERSION "2.2.4"
#define KERAS_BACKEND "tensorflow"

static pthread_mutex_t h5_lock = PTHREAD_MUTEX_INITIALIZER;

/* ---- HDF5 error text ---------------------------------------------------------- */

static herr_t first_error_cb(unsigned n, const H5E_error2_t *e, void *data)
{
    (void)n;
    char *buf = data;
    if (!buf[0] && e && e->desc && e->desc[0])
        snprintf(buf, 160, "%s", e->desc);
    return 0;
}

/* The innermost HDF5 error (the most specific one), or "HDF5 error". */
static const char *h5_reason(char buf[160])
{
    buf[0] = 0;
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, first_error_cb, buf);
    if (!buf[0])
        snprintf(buf, 160, "HDF5 error");
    return buf;
}

/* Closes any HDF5 handle this file opens; a negative one (never opened, or a failed
 * open) is skipped, so every cleanup path can close all of its handles alike. */
static void h5_close(hid_t id)
{
    if (id < 0)
        return;
    switch (H5Iget_type(id)) {
    case H5I_DATATYPE: H5Tclose(id); break;
    case H5I_DATASPACE: H5Sclose(id); break;
    case H5I_DATASET: H5Dclose(id); break;
    case H5I_ATTR: H5Aclose(id); break;
    case H5I_GROUP: H5Gclose(id); break;
    case H5I_GENPROP_LST: H5Pclose(id); break;
    default: break;
    }
}

/* ---- string lists ------------------------------------------------------------- */

typedef struct {
    int n;
    char **s; /* n owned strings */
} str_list;

static void str_list_free(str_list *l)
{
    for (int i = 0; i < l->n; i++)
        free(l->s[i]);
    free(l->s);
    l->n = 0;
    l->s = NULL;
}

static int str_list_push(str_list *l, const char *s, size_t len)
{
    char **grown = realloc(l->s, (size_t)(l->n + 1) * sizeof *grown);
    if (!grown)
        return -1;
    l->s = grown;
    char *copy = strndup(s, len);
    if (!copy)
        return -1;
    l->s[l->n++] = copy;
    return 0;
}

/* Appends the strings of one attribute: fixed-length (Keras 2 writes numpy byte
 * strings) or variable-length (h5py's choice for Python str), scalar or array.
 * An empty array of any type (Keras writes np.asarray([]) for no weights) is fine. */
static int read_str_attr(hid_t obj, const char *name, str_list *out, char *msg, size_t msglen)
{
    char h5[160];
    int rc = -1;
    hid_t a = -1, ft = -1, sp = -1, mt = -1;
    char *buf = NULL;
    char **vbuf = NULL;

    if ((a = H5Aopen(obj, name, H5P_DEFAULT)) < 0 || (ft = H5Aget_type(a)) < 0 ||
        (sp = H5Aget_space(a)) < 0) {
        cs_set_err(msg, msglen, "cannot read attribute %s: %s", name, h5_reason(h5));
        goto done;
    }
    hssize_t n = H5Sget_simple_extent_npoints(sp);
    if (n < 0) {
        cs_set_err(msg, msglen, "cannot read attribute %s: %s", name, h5_reason(h5));
        goto done;
    }
    if (n == 0) {
        rc = 0;
        goto done;
    }
    if (H5Tget_class(ft) != H5T_STRING) {
        cs_set_err(msg, msglen, "attribute %s is not a list of strings", name);
        goto done;
    }
    mt = H5Tcopy(H5T_C_S1);
    H5Tset_cset(mt, H5Tget_cset(ft));
    if (H5Tis_variable_str(ft) > 0) {
        H5Tset_size(mt, H5T_VARIABLE);
        vbuf = calloc((size_t)n, sizeof *vbuf);
        if (!vbuf) {
            cs_set_err(msg, msglen, "out of memory reading attribute %s", name);
            goto done;
        }
        if (H5Aread(a, mt, vbuf) < 0) {
            cs_set_err(msg, msglen, "cannot read attribute %s: %s", name, h5_reason(h5));
            free(vbuf);
            vbuf = NULL;
            goto done;
        }
        rc = 0;
        for (hssize_t i = 0; i < n && rc == 0; i++)
            rc = str_list_push(out, vbuf[i] ? vbuf[i] : "", vbuf[i] ? strlen(vbuf[i]) : 0);
        H5Dvlen_reclaim(mt, sp, H5P_DEFAULT, vbuf);
        if (rc)
            cs_set_err(msg, msglen, "out of memory reading attribute %s", name);
    } else {
        size_t size = H5Tget_size(ft);
        /* The memory type asks for NUL padding; HDF5 converts space-padded files. */
        H5Tset_size(mt, size);
        H5Tset_strpad(mt, H5T_STR_NULLPAD);
        buf = malloc((size_t)n * size);
        if (!buf) {
            cs_set_err(msg, msglen, "out of memory reading attribute %s", name);
            goto done;
        }
        if (H5Aread(a, mt, buf) < 0) {
            cs_set_err(msg, msglen, "cannot read attribute %s: %s", name, h5_reason(h5));
            goto done;
        }
        rc = 0;
        for (hssize_t i = 0; i < n && rc == 0; i++)
            rc = str_list_push(out, buf + (size_t)i * size, strnlen(buf + (size_t)i * size, size));
        if (rc)
            cs_set_err(msg, msglen, "out of memory reading attribute %s", name);
    }
done:
    free(buf);
    free(vbuf);
    h5_close(mt);
    h5_close(sp);
    h5_close(ft);
    h5_close(a);
    return rc;
}

/* Reads attribute `name`, or its pieces name0, name1, ... which Keras writes when the
 * list would not fit in HDF5's 64 KiB object header. 1 when absent, -1 on error. */
static int read_names(hid_t obj, const char *name, str_list *out, char *msg, size_t msglen)
{
    if (H5Aexists(obj, name) > 0)
        return read_str_attr(obj, name, out, msg, msglen);
    int found = 0;
    for (int k = 0;; k++) {
        char piece[CS_NAME_MAX + 16];
        snprintf(piece, sizeof piece, "%s%d", name, k);
        if (H5Aexists(obj, piece) <= 0)
            break;
        if (read_str_attr(obj, piece, out, msg, msglen))
            return -1;
        found = 1;
    }
    return found ? 0 : 1;
}

/* ---- loading ------------------------------------------------------------------ */

typedef struct {
    const char *name; /* borrowed from the layer_names list */
    str_list weights;
} file_layer;

static void fmt_shape(char *buf, size_t len, int ndim, const long long *dims)
{
    size_t o = 0;
    o += (size_t)snprintf(buf + o, len - o, "(");
    for (int i = 0; i < ndim && o < len; i++)
        o += (size_t)snprintf(buf + o, len - o, "%s%lld", i ? ", " : "", dims[i]);
    if (o < len)
        snprintf(buf + o, len - o, ndim == 1 ? ",)" : ")");
}

static void param_names(char *buf, size_t len, const cs_layer *l)
{
    size_t o = 0;
    buf[0] = 0;
    for (int k = 0; k < l->n_params && o < len; k++)
        o += (size_t)snprintf(buf + o, len - o, "%s%s", k ? ", " : "", l->params[k].name);
}

/* The Keras weight name inside a dataset path: "conv2d_1/kernel:0" -> "kernel".
 * Only names Keras itself uses are compared, so Keras 1 names ("block1_conv1_W_1:0")
 * are matched by order alone, as Keras matches them. */
static int weight_name_conflicts(const char *path, const char *expected)
{
    static const char *const known[] = {"kernel", "bias", "gamma", "beta", "moving_mean",
                                        "moving_variance"};
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t len = strcspn(base, ":");
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strlen(known[i]) == len && !strncmp(base, known[i], len))
            return strlen(expected) != len || strncmp(base, expected, len);
    return 0;
}

/* Checks (read = 0) or reads (read = 1) the weights of model layer l from file layer fl. */
static int layer_weights(hid_t root, const file_layer *fl, cs_layer *l, int read, char *err,
                         size_t errlen)
{
    char h5[160];
    int rc = -1;
    hid_t g = H5Gopen2(root, fl->name, H5P_DEFAULT);
    if (g < 0) {
        cs_set_err(err, errlen, "layer %s: cannot open group %s: %s", l->name, fl->name, h5_reason(h5));
        return -1;
    }
    for (int k = 0; k < l->n_params; k++) {
        cs_param *p = &l->params[k];
        const char *wname = fl->weights.s[k];
        hid_t ds = -1, sp = -1, ft = -1;
        int ok = 0;
        if (weight_name_conflicts(wname, p->name)) {
            cs_set_err(err, errlen, "layer %s: weight %d is %s in the file, the model expects %s there",
                    l->name, k + 1, wname, p->name);
            goto next;
        }
        if ((ds = H5Dopen2(g, wname, H5P_DEFAULT)) < 0) {
            cs_set_err(err, errlen, "layer %s: weight %s is listed in weight_names but missing",
                    l->name, wname);
            goto next;
        }
        if ((sp = H5Dget_space(ds)) < 0 || (ft = H5Dget_type(ds)) < 0) {
            cs_set_err(err, errlen, "layer %s: weight %s: %s", l->name, wname, h5_reason(h5));
            goto next;
        }
        H5T_class_t cls = H5Tget_class(ft);
        if (cls != H5T_FLOAT && cls != H5T_INTEGER) {
            cs_set_err(err, errlen, "layer %s: weight %s is not numeric", l->name, wname);
            goto next;
        }
        int ndim = H5Sget_simple_extent_ndims(sp);
        hsize_t fdims[H5S_MAX_RANK];
        if (ndim < 0 || H5Sget_simple_extent_dims(sp, fdims, NULL) < 0) {
            cs_set_err(err, errlen, "layer %s: weight %s: %s", l->name, wname, h5_reason(h5));
            goto next;
        }
        int same = ndim == p->ndim;
        for (int d = 0; same && d < ndim; d++)
            same = fdims[d] == (hsize_t)p->dims[d];
        if (!same) {
            long long fd[H5S_MAX_RANK], md[4];
            char fs[128], ms[128];
            for (int d = 0; d < ndim; d++)
                fd[d] = (long long)fdims[d];
            for (int d = 0; d < p->ndim; d++)
                md[d] = p->dims[d];
            fmt_shape(fs, sizeof fs, ndim, fd);
            fmt_shape(ms, sizeof ms, p->ndim, md);
            cs_set_err(err, errlen, "layer %s: weight %s (%s) has shape %s in the file, the model expects %s",
                    l->name, p->name, wname, fs, ms);
            goto next;
        }
        if (read && H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, p->data) < 0) {
            cs_set_err(err, errlen, "layer %s: cannot read weight %s: %s", l->name, wname, h5_reason(h5));
            goto next;
        }
        ok = 1;
    next:
        h5_close(ft);
        h5_close(sp);
        h5_close(ds);
        if (!ok)
            goto done;
    }
    rc = 0;
done:
    H5Gclose(g);
    return rc;
}

/* Pairs every model layer with weights to a file layer: map[i] is an index into fl. */
static int match_layers(const cs_model *m, const file_layer *fl, int n_fl, int *map, const char *path,
                        char *err, size_t errlen)
{
    int n_model = 0, n_file = 0, missing = -1;
    for (int j = 0; j < n_fl; j++)
        n_file += fl[j].weights.n > 0;
    for (int i = 0; i < m->n_layers; i++) {
        map[i] = -1;
        if (!m->layers[i].n_params)
            continue;
        n_model++;
        for (int j = 0; j < n_fl && map[i] < 0; j++)
            if (!strcmp(fl[j].name, m->layers[i].name))
                map[i] = j;
        if (map[i] < 0 && missing < 0)
            missing = i;
    }
    if (missing < 0)
        return 0;
    if (n_model != n_file) {
        cs_set_err(err, errlen,
                "layer %s not found in %s (the file has %d layers with weights, the model %d)",
                m->layers[missing].name, path, n_file, n_model);
        return -1;
    }
    /* Keras' default: the k-th layer with weights in the file feeds the k-th in the model. */
    int j = 0;
    for (int i = 0; i < m->n_layers; i++) {
        if (!m->layers[i].n_params)
            continue;
        while (fl[j].weights.n == 0)
            j++;
        map[i] = j++;
    }
    return 0;
}

/* A version 0 or 1 superblock (what h5py, and so Keras, writes) may point to a "driver
 * information block", whose 4-byte size libhdf5 takes as it is and allocates before it
 * reads anything else: a damaged file made it ask for 3 GB. Files of the default
 * driver have no such block (its address is "undefined", all ones), so one that has it
 * is refused, as is a superblock cut short, before libhdf5 reads the file. Later
 * superblock versions keep that information elsewhere and are left to libhdf5. The
 * superblock is at 0 or after a user block of 512 bytes times a power of two.
 * 0, or -1 with err set. */
static int superblock_sane(const char *path, char *err, size_t errlen)
{
    static const unsigned char sig[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0; /* HDF5 says why it cannot open it */
    unsigned char b[160];
    int rc = 0;
    for (long off = 0; off <= (1L << 30); off = off ? off * 2 : 512) {
        size_t got;
        if (fseek(f, off, SEEK_SET) != 0 || (got = fread(b, 1, sizeof b, f)) < 9)
            break;
        if (memcmp(b, sig, 8) != 0)
            continue;
        if (b[8] > 1)
            break;
        /* sizes of addresses and lengths, then the four addresses after the fixed part */
        size_t sa = got > 13 ? b[13] : 0, at = b[8] == 0 ? 24 : 28;
        size_t end = at + 4 * sa + 2 * sa + 24; /* and the root group's symbol table entry */
        if ((sa != 2 && sa != 4 && sa != 8) || got < end) {
            cs_set_err(err, errlen, "%s: damaged HDF5 superblock (cut short, or addresses of %zu bytes)", path, sa);
            rc = -1;
            break;
        }
        int undefined = 1;
        for (size_t i = 0; i < sa; i++)
            undefined &= b[at + 3 * sa + i] == 0xff;
        if (!undefined) {
            cs_set_err(err, errlen, "%s: damaged HDF5 superblock (a driver information block, which Keras files "
                       "do not have)", path);
            rc = -1;
        }
        break;
    }
    fclose(f);
    return rc;
}

static int load_locked(cs_model *m, const char *path, char *err, size_t errlen)
{
    char h5[160], msg[256];
    int rc = -1, n_fl = 0;
    hid_t f = -1, root = -1;
    str_list names = {0, NULL};
    file_layer *fl = NULL;
    int *map = NULL;

    if (H5Fis_hdf5(path) <= 0) {
        cs_set_err(err, errlen, "%s is not an HDF5 file", path);
        return -1;
    }
    if (superblock_sane(path, err, errlen) != 0)
        return -1;
    if ((f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT)) < 0) {
        cs_set_err(err, errlen, "cannot open %s: %s", path, h5_reason(h5));
        return -1;
    }
    /* model.save() files keep the weights under /model_weights. */
    if (H5Aexists(f, "layer_names") <= 0 && H5Aexists(f, "layer_names0") <= 0 &&
        H5Lexists(f, "model_weights", H5P_DEFAULT) > 0)
        root = H5Gopen2(f, "model_weights", H5P_DEFAULT);
    else
        root = H5Gopen2(f, "/", H5P_DEFAULT);
    if (root < 0) {
        cs_set_err(err, errlen, "cannot open %s: %s", path, h5_reason(h5));
        goto done;
    }
    int r = read_names(root, "layer_names", &names, msg, sizeof msg);
    if (r) {
        if (r > 0 && H5Lexists(f, "layers", H5P_DEFAULT) > 0)
            cs_set_err(err, errlen,
                    "%s is a Keras 3 weights file (layers/.../vars); only the Keras 2 layout of "
                    "model.save_weights() is read", path);
        else if (r > 0)
            cs_set_err(err, errlen, "%s has no layer_names attribute: not a Keras weights file", path);
        else
            cs_set_err(err, errlen, "%s: %s", path, msg);
        goto done;
    }
    fl = calloc((size_t)names.n + 1, sizeof *fl);
    map = calloc((size_t)m->n_layers + 1, sizeof *map);
    if (!fl || !map) {
        cs_set_err(err, errlen, "out of memory reading %s", path);
        goto done;
    }
    for (; n_fl < names.n; n_fl++) {
        file_layer *x = &fl[n_fl];
        x->name = names.s[n_fl];
        if (H5Lexists(root, x->name, H5P_DEFAULT) <= 0) {
            cs_set_err(err, errlen, "%s: layer_names lists %s but the file has no such group", path, x->name);
            goto done;
        }
        hid_t g = H5Gopen2(root, x->name, H5P_DEFAULT);
        if (g < 0) {
            cs_set_err(err, errlen, "%s: cannot open layer %s: %s", path, x->name, h5_reason(h5));
            goto done;
        }
        r = read_names(g, "weight_names", &x->weights, msg, sizeof msg);
        H5Gclose(g);
        if (r < 0) {
            cs_set_err(err, errlen, "%s: layer %s: %s", path, x->name, msg);
            n_fl++;
            goto done;
        }
    }
    if (match_layers(m, fl, n_fl, map, path, err, errlen))
        goto done;
    for (int i = 0; i < m->n_layers; i++) {
        cs_layer *l = &m->layers[i];
        if (map[i] < 0)
            continue;
        const file_layer *x = &fl[map[i]];
        if (x->weights.n != l->n_params) {
            char want[128];
            param_names(want, sizeof want, l);
            cs_set_err(err, errlen, "layer %s: the file's layer %s has %d weights, the model expects %d (%s)",
                    l->name, x->name, x->weights.n, l->n_params, want);
            goto done;
        }
    }
    /* Every shape first, then every read: a refused file changes nothing. */
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < m->n_layers; i++)
            if (map[i] >= 0 && layer_weights(root, &fl[map[i]], &m->layers[i], pass, err, errlen))
                goto done;
    rc = 0;
done:
    for (int j = 0; j < n_fl; j++)
        str_list_free(&fl[j].weights);
    free(fl);
    free(map);
    str_list_free(&names);
    h5_close(root);
    if (H5Fclose(f) < 0 && rc == 0) {
        cs_set_err(err, errlen, "cannot close %s: %s", path, h5_reason(h5));
        rc = -1;
    }
    return rc;
}

int cs_keras_h5_load(cs_model *m, const char *path, char *err, size_t errlen)
{
    struct stat st;
    if (!m || !path || !path[0]) {
        cs_set_err(err, errlen, "no model or no path given");
        return -1;
    }
    if (stat(path, &st) != 0) {
        cs_set_err(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    if (S_ISDIR(st.st_mode)) {
        cs_set_err(err, errlen, "%s is a directory, not a weights file", path);
        return -1;
    }
    pthread_mutex_lock(&h5_lock);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    int rc = load_locked(m, path, err, errlen);
    pthread_mutex_unlock(&h5_lock);
    return rc;
}

/* ---- saving ------------------------------------------------------------------- */

/* Fixed-length NUL-padded byte strings, as numpy writes a list of bytes. n may be 0
 * (a layer without weights): an empty array, which h5py reads back as []. */
static int write_str_attr(hid_t obj, const char *name, const char *const *s, int n)
{
    size_t size = 1;
    for (int i = 0; i < n; i++)
        if (strlen(s[i]) > size)
            size = strlen(s[i]);
    char *buf = calloc(n > 0 ? (size_t)n : 1, size);
    if (!buf)
        return -1;
    for (int i = 0; i < n; i++)
        memcpy(buf + (size_t)i * size, s[i], strlen(s[i]));
    int rc = -1;
    hsize_t dim = (hsize_t)n;
    hid_t t = H5Tcopy(H5T_C_S1), sp = -1, a = -1;
    if (t < 0 || H5Tset_size(t, size) < 0 || H5Tset_strpad(t, H5T_STR_NULLPAD) < 0)
        goto done;
    if ((sp = H5Screate_simple(1, &dim, NULL)) < 0)
        goto done;
    if ((a = H5Acreate2(obj, name, t, sp, H5P_DEFAULT, H5P_DEFAULT)) < 0)
        goto done;
    if (n > 0 && H5Awrite(a, t, buf) < 0)
        goto done;
    rc = 0;
done:
    h5_close(a);
    h5_close(sp);
    h5_close(t);
    free(buf);
    return rc;
}

/* A scalar fixed-length byte string, as Keras writes backend and keras_version. */
static int write_str_scalar(hid_t obj, const char *name, const char *value)
{
    int rc = -1;
    hid_t t = H5Tcopy(H5T_C_S1), sp = H5Screate(H5S_SCALAR), a = -1;
    if (t < 0 || sp < 0 || H5Tset_size(t, strlen(value)) < 0 || H5Tset_strpad(t, H5T_STR_NULLPAD) < 0)
        goto done;
    if ((a = H5Acreate2(obj, name, t, sp, H5P_DEFAULT, H5P_DEFAULT)) < 0)
        goto done;
    rc = H5Awrite(a, t, value) < 0 ? -1 : 0;
done:
    h5_close(a);
    h5_close(sp);
    h5_close(t);
    return rc;
}

static int save_layer(hid_t f, hid_t lcpl, const cs_layer *l)
{
    char wn[CS_MAX_PARAMS][2 * CS_NAME_MAX + 8];
    const char *wp[CS_MAX_PARAMS];
    for (int k = 0; k < l->n_params; k++) {
        snprintf(wn[k], sizeof wn[k], "%s/%s:0", l->name, l->params[k].name);
        wp[k] = wn[k];
    }
    hid_t g = H5Gcreate2(f, l->name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0)
        return -1;
    int rc = write_str_attr(g, "weight_names", wp, l->n_params);
    for (int k = 0; k < l->n_params && rc == 0; k++) {
        const cs_param *p = &l->params[k];
        hsize_t dims[4];
        for (int d = 0; d < p->ndim; d++)
            dims[d] = (hsize_t)p->dims[d];
        rc = -1;
        hid_t sp = H5Screate_simple(p->ndim, dims, NULL);
        /* lcpl creates the "<layer>/" subgroup of a Keras 2 weight name on the way. */
        hid_t ds = sp < 0 ? -1 : H5Dcreate2(g, wn[k], H5T_IEEE_F32LE, sp, lcpl, H5P_DEFAULT, H5P_DEFAULT);
        if (ds >= 0 && H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, p->data) >= 0)
            rc = 0;
        h5_close(ds);
        h5_close(sp);
    }
    if (H5Gclose(g) < 0)
        rc = -1;
    return rc;
}

static int save_locked(const cs_model *m, const char *tmp, char *err, size_t errlen)
{
    char h5[160];
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) {
        cs_set_err(err, errlen, "cannot create %s: %s", tmp, h5_reason(h5));
        return -1;
    }
    int rc = -1;
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    const char **names = calloc((size_t)m->n_layers + 1, sizeof *names);
    if (!names || lcpl < 0 || H5Pset_create_intermediate_group(lcpl, 1) < 0) {
        cs_set_err(err, errlen, "cannot write %s: out of memory", tmp);
        goto done;
    }
    for (int i = 0; i < m->n_layers; i++)
        names[i] = m->layers[i].name;
    if (write_str_attr(f, "layer_names", names, m->n_layers) ||
        write_str_scalar(f, "backend", KERAS_BACKEND) ||
        write_str_scalar(f, "keras_version", KERAS_VERSION)) {
        cs_set_err(err, errlen, "cannot write %s: %s", tmp, h5_reason(h5));
        goto done;
    }
    for (int i = 0; i < m->n_layers; i++)
        if (save_layer(f, lcpl, &m->layers[i])) {
            cs_set_err(err, errlen, "cannot write layer %s to %s: %s", m->layers[i].name, tmp,
                    h5_reason(h5));
            goto done;
        }
    rc = 0;
done:
    free(names);
    h5_close(lcpl);
    if (H5Fclose(f) < 0 && rc == 0) {
        cs_set_err(err, errlen, "cannot write %s: %s", tmp, h5_reason(h5));
        rc = -1;
    }
    return rc;
}

/* Flushes the finished temp file to disk before the rename makes it visible. */
static int sync_file(const char *path)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* Makes the rename durable: the directory entry lives in the parent folder. */
static void sync_parent(const char *path)
{
    char *dir = strdup(path);
    if (!dir)
        return;
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        slash[1] = 0;
    else if (slash)
        *slash = 0;
    int fd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    free(dir);
}

int cs_keras_h5_save(const cs_model *m, const char *path, char *err, size_t errlen)
{
    static atomic_uint counter;
    if (!m || !path || !path[0]) {
        cs_set_err(err, errlen, "no model or no path given");
        return -1;
    }
    size_t len = strlen(path) + 48;
    char *tmp = malloc(len);
    if (!tmp) {
        cs_set_err(err, errlen, "out of memory");
        return -1;
    }
    snprintf(tmp, len, "%s.tmp.%ld.%u", path, (long)getpid(), atomic_fetch_add(&counter, 1));

    pthread_mutex_lock(&h5_lock);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    int rc = save_locked(m, tmp, err, errlen);
    pthread_mutex_unlock(&h5_lock);

    if (rc == 0 && sync_file(tmp) != 0) {
        cs_set_err(err, errlen, "cannot sync %s: %s", tmp, strerror(errno));
        rc = -1;
    }
    if (rc == 0 && rename(tmp, path) != 0) {
        cs_set_err(err, errlen, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
        rc = -1;
    }
    if (rc == 0)
        sync_parent(path); /* best effort: the rename itself is already visible */
    if (rc != 0)
        unlink(tmp);
    free(tmp);
    return rc;
}

/* ---- shared with keras_model.c (keras_h5_priv.h) ------------------------------ */

void cs_h5_lock(void)
{
    pthread_mutex_lock(&h5_lock);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

void cs_h5_unlock(void) { pthread_mutex_unlock(&h5_lock); }

const char *cs_h5_reason(char buf[160]) { return h5_reason(buf); }

int cs_h5_read_names(hid_t obj, const char *name, cs_h5_strs *out, char *msg, size_t msglen)
{
    str_list l = {out->n, out->s};
    int rc = read_names(obj, name, &l, msg, msglen);
    out->n = l.n;
    out->s = l.s;
    return rc;
}

void cs_h5_strs_free(cs_h5_strs *l)
{
    str_list x = {l->n, l->s};
    str_list_free(&x);
    l->n = 0;
    l->s = NULL;
}
