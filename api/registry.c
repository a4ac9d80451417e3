/*
 * registry.c - served models, their versions, reference counts and exec pools.
 *
 * Locking: each served model's `lock` guards its state, reason, training flag and the
 * `current` pointer. Taking a reference is "lock, refs++, unlock", so a version cannot
 * be freed between reading `current` and counting the reference. Versions own their
 * model and their pooled execs, which die with them.
 *
 * g_reg_lock orders what changes the set of models or the file a model is read from:
 * the folder scan, a publish, an upload and a delete. Slots are filled before g_count
 * counts them, and a slot's name never changes after, so lookups take no lock.
 *
 * VGG16's half-gigabyte weights load on a background thread so the service answers
 * (and says "loading") at once; the file is looked for at the configured path, then in
 * the models folder, then where Keras keeps it (~/.keras/models/).
 */
#include "registry.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bf16_plan.h"
#include "cam_sums.h"
#include "fast_plan.h"
#include "http.h"
#include "keras_model.h"
#include "model_file.h"
#include "onnx_import.h"
#include "resources.h"
#include "sidecar.h"
#include "train.h"
#include "versions.h"
#include "vgg16.h"

/* The notebook's two models first, then one per model file of the models folder, in
 * the order they were found. */
enum { REG_FMNIST, REG_VGG16, REG_FIXED };

static cs_served_model g_models[CS_REGISTRY_MAX];
static atomic_int g_count = REG_FIXED;
static pthread_mutex_t g_reg_lock = PTHREAD_MUTEX_INITIALIZER;
static char g_dir[1024];
static char g_class_index[1024];
static pthread_t g_vgg_thread;
static int g_vgg_thread_started;
static atomic_int g_next_version = 1;
static int g_max_running;
static int g_precision; /* cs_registry_config.precision */

static int file_exists(const char *p)
{
    struct stat st;
    return p && *p && stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

#define MIB (1024.0 * 1024.0)
/* Memory kept free for everything else a request holds (bodies, images, replies). */
#define HEADROOM ((uint64_t)64 << 20)

/* What the memory limit leaves now, headroom kept aside. */
static uint64_t memory_left(void)
{
    const cs_resources *r = cs_resources_get();
    uint64_t used = cs_resources_rss() + HEADROOM;
    return r->memory > used ? r->memory - used : 0;
}

/* 1 when `need` bytes fit what the memory limit leaves; else 0 with the reason. */
static int fits(const char *what, uint64_t need, char *why, size_t len)
{
    uint64_t left = memory_left();
    if (need <= left) return 1;
    const cs_resources *r = cs_resources_get();
    cs_fmt(why, len, "%s needs about %.0f MiB but the memory limit of %.0f MiB (%s) leaves %.0f MiB", what,
           need / MIB, r->memory / MIB, r->memory_source, left / MIB);
    return 0;
}

static uint64_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

/* What reading a model told besides the model. */
typedef struct {
    const char *format; /* "csm", "onnx", "h5", "keras" */
    const char *labels; /* where its class names come from (cs_model_version.labels) */
    char description[256];
    char precision[8]; /* the sidecar's, or "" */
} load_facts;

/* The precision of v's model: its sidecar's, else the service's (a CPU without bf16
 * keeps it fp32, and the note says why). */
static void set_precision(cs_model_version *v, const load_facts *f)
{
    const int sidecar = f && f->precision[0];
    cs_precision p = g_precision;
    char err[100];
    if (sidecar && cs_precision_parse(f->precision, &p, err, sizeof err) != 0) p = CS_PRECISION_FP32;
    cs_fmt(v->precision_source, sizeof v->precision_source, "%s",
           sidecar ? "sidecar" : g_precision != CS_PRECISION_FP32 ? "--precision" : "default");
    v->precision_note[0] = 0;
    char why[300];
    if (cs_model_set_precision(v->model, p, why, sizeof why) != 0)
        cs_fmt(v->precision_note, sizeof v->precision_note, "%s; the model runs fp32", why);
    else if (p == CS_PRECISION_BF16)
        cs_fmt(v->precision_note, sizeof v->precision_note, "Conv2D and Dense layers in bf16 on %s (oneDNN)",
               cs_bf16_unit(NULL, 0));
    cs_fmt(v->precision, sizeof v->precision, "%s", cs_precision_name(v->model->precision));
}

/* number 0: the next of this process's own. */
static cs_model_version *version_new(cs_model *m, int number, const load_facts *f)
{
    cs_model_version *v = calloc(1, sizeof *v);
    if (!v) return NULL;
    atomic_init(&v->refs, 1); /* the registry's own reference */
    v->model = m;
    cs_fmt(v->format, sizeof v->format, "%s", f ? f->format : "csm");
    cs_fmt(v->labels, sizeof v->labels, "%s", f ? f->labels : "model");
    cs_fmt(v->description, sizeof v->description, "%s", f ? f->description : "");
    v->trainable = cs_train_check(m, NULL, v->train_why, sizeof v->train_why) == 0;
    set_precision(v, f);
    /* As many execs at once as the memory left holds (at least one): a model's
     * requests then wait for each other instead of the process being killed. */
    uint64_t per = cs_exec_bytes_bound(m, 1), left = memory_left() / 2;
    v->max_out = per ? (int)(left / per < 1 ? 1 : left / per > CS_EXEC_POOL ? CS_EXEC_POOL : left / per) : 0;
    v->version = number > 0 ? number : atomic_fetch_add(&g_next_version, 1);
    v->crc = cs_model_crc(m);
    pthread_mutex_init(&v->pool_lock, NULL);
    pthread_cond_init(&v->pool_free, NULL);
    return v;
}

void cs_version_precision_text(const cs_model_version *v, char *out, size_t len)
{
    if (!strcmp(v->precision_source, "default")) out[0] = 0;
    else cs_fmt(out, len, "precision %s (%s)%s%s", v->precision, v->precision_source, v->precision_note[0] ? ": " : "",
                v->precision_note);
}

static void version_free(cs_model_version *v)
{
    for (int i = 0; i < v->n_pool; i++) cs_exec_free(v->pool[i]);
    pthread_mutex_destroy(&v->pool_lock);
    pthread_cond_destroy(&v->pool_free);
    cs_model_free(v->model);
    free(v);
}

void cs_version_release(cs_model_version *v)
{
    if (v && atomic_fetch_sub(&v->refs, 1) == 1) version_free(v);
}

/* Gives a lent slot back, keeping e for the next request when there is room. */
static void exec_return(cs_model_version *v, cs_exec *e)
{
    pthread_mutex_lock(&v->pool_lock);
    if (e && v->n_pool < CS_EXEC_POOL) {
        v->pool[v->n_pool++] = e;
        e = NULL;
    }
    v->n_out--;
    pthread_cond_signal(&v->pool_free);
    pthread_mutex_unlock(&v->pool_lock);
    cs_exec_free(e);
}

cs_exec *cs_version_exec_get(cs_model_version *v)
{
    cs_exec *e = NULL;
    pthread_mutex_lock(&v->pool_lock);
    while ((g_max_running > 0 && v->n_out >= g_max_running) || (v->max_out > 0 && v->n_out >= v->max_out))
        pthread_cond_wait(&v->pool_free, &v->pool_lock);
    if (v->n_pool) e = v->pool[--v->n_pool];
    v->n_out++;
    pthread_mutex_unlock(&v->pool_lock);
    if (!e) e = cs_exec_new(v->model, 1);
    if (!e) exec_return(v, NULL);
    return e;
}

void cs_version_exec_put(cs_model_version *v, cs_exec *e)
{
    if (e) exec_return(v, e); /* NULL: nothing was lent (the handler stopped early) */
}

/* Sets the state; v (when given) becomes the current version, and an unavailable
 * model serves none, so the list and the answers agree. */
static void set_state(cs_served_model *s, cs_model_state st, cs_model_version *v, const char *reason)
{
    pthread_mutex_lock(&s->lock);
    cs_model_version *old = NULL;
    if (v || st == CS_MODEL_UNAVAILABLE) {
        old = s->current;
        s->current = v;
    }
    s->state = st;
    cs_fmt(s->reason, sizeof s->reason, "%s", reason ? reason : "");
    pthread_mutex_unlock(&s->lock);
    cs_version_release(old);
}

/* ---- reading a model file with its sidecar ---- */

/* The format of a file name of the models folder by its extension, in the order a
 * name's files are preferred; NULL when it is not a model file. */
static const char *const FORMATS[][2] = {{".csm", "csm"}, {".keras", "keras"}, {".h5", "h5"},
                                         {".hdf5", "h5"}, {".onnx", "onnx"}};
enum { N_FORMATS = sizeof FORMATS / sizeof FORMATS[0] };

static int format_of(const char *file, size_t *base_len)
{
    size_t n = strlen(file);
    for (int i = 0; i < N_FORMATS; i++) {
        size_t k = strlen(FORMATS[i][0]);
        if (n > k && strcmp(file + n - k, FORMATS[i][0]) == 0) {
            if (base_len) *base_len = n - k;
            return i;
        }
    }
    return -1;
}

static void sidecar_path(const char *name, char *out, size_t len) { cs_fmt(out, len, "%s/%s.json", g_dir, name); }

/* 1 when every class is named by its number, as importers leave them. */
static int numbered(const cs_model *m)
{
    for (int i = 0; i < m->n_classes; i++) {
        char k[16];
        snprintf(k, sizeof k, "%d", i);
        if (strcmp(m->class_names[i], k) != 0) return 0;
    }
    return 1;
}

/* Labels where the file has none: ImageNet's for 1000 classes. */
static void default_labels(cs_model *m, load_facts *f)
{
    f->labels = "model";
    if (!numbered(m)) return;
    f->labels = "numbered";
    char err[300];
    if (m->n_classes == 1000 && cs_imagenet_load_classes(m, g_class_index, err, sizeof err) == 0) f->labels = "imagenet";
}

/* The model in the file at path, format by index into FORMATS; NULL with why. */
static cs_model *load_file(const char *name, const char *path, int format, char *why, size_t len)
{
    char err[600];
    const char *kind = FORMATS[format][1];
    cs_model *m;
    if (format == 0) m = cs_model_load(path, err, sizeof err);
    else if (!strcmp(kind, "onnx")) m = cs_onnx_import(path, name, err, sizeof err);
    else m = cs_keras_model_load(path, name, err, sizeof err);
    /* The importers' reasons often start with the path already. */
    size_t n = strlen(path);
    if (!m) cs_fmt(why, len, "cannot load %s%s%s", path, strncmp(err, path, n) ? ": " : "", strncmp(err, path, n) ? err : err + n);
    return m;
}

/* Applies a sidecar (text, or NAME.json in the folder when text is NULL) and the
 * default labels. 0, or -1 with why (m is then unchanged). */
static int apply_sidecar(cs_model *m, const char *name, const char *text, size_t text_len, load_facts *f, char *why,
                         size_t len)
{
    char err[600], side[1100];
    cs_sidecar_info info;
    int rc;
    if (text) {
        rc = cs_sidecar_apply(m, text, text_len, g_dir, &info, err, sizeof err);
        if (rc != 0) cs_fmt(why, len, "sidecar: %s", err);
    } else {
        sidecar_path(name, side, sizeof side);
        rc = cs_sidecar_apply_file(m, side, &info, err, sizeof err);
        if (rc != 0) cs_fmt(why, len, "sidecar %s", err);
    }
    if (rc != 0) return -1;
    if (info.labels) f->labels = "sidecar";
    else default_labels(m, f);
    cs_fmt(f->description, sizeof f->description, "%s", info.description);
    cs_fmt(f->precision, sizeof f->precision, "%s", info.precision);
    return 0;
}

/* Reads the model file at path (format by index into FORMATS) and applies the
 * sidecar of `name`; NULL with why. */
static cs_model *read_model(const char *name, const char *path, int format, load_facts *f, char *why, size_t len)
{
    memset(f, 0, sizeof *f);
    if (format < 0 || format >= N_FORMATS) {
        cs_fmt(why, len, "%s is not a model file", path);
        return NULL;
    }
    f->format = FORMATS[format][1];
    cs_model *m = load_file(name, path, format, why, len);
    if (m && apply_sidecar(m, name, NULL, 0, f, why, len) != 0) {
        cs_model_free(m);
        return NULL;
    }
    return m;
}

/* Remembers the files as they are now, so the watcher only reacts to other writers. */
static void note_file(cs_served_model *s)
{
    struct stat st, sc;
    char side[1100];
    sidecar_path(s->name, side, sizeof side);
    int has_side = s->folder || s->trainable ? stat(side, &sc) == 0 : 0;
    pthread_mutex_lock(&s->lock);
    if (stat(s->path, &st) == 0) s->seen = st;
    else memset(&s->seen, 0, sizeof s->seen);
    if (has_side) s->sidecar_seen = sc;
    else memset(&s->sidecar_seen, 0, sizeof s->sidecar_seen);
    pthread_mutex_unlock(&s->lock);
}

static int same_file(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* The served number of a model read from the served file: the kept version with its
 * parameters, else a new kept version (a file put there by hand or by another writer).
 * 0 (a number of this process's own) when the model keeps no versions or the store
 * cannot take it. */
static int kept_number(cs_served_model *s, const cs_model *m, const char *source)
{
    if (!s->store[0]) return 0;
    uint32_t crc = cs_model_crc(m);
    int n = cs_versions_find(s->store, crc);
    if (n) return n;
    char err[400];
    pthread_mutex_lock(&s->lock);
    int protect = s->current ? s->current->version : 0;
    pthread_mutex_unlock(&s->lock);
    json_t *rec = cs_versions_record(m, crc, source);
    n = cs_versions_keep(s->store, m, rec, s->keep, protect, err, sizeof err);
    json_decref(rec);
    return n > 0 ? n : 0;
}

static void load_fmnist(cs_served_model *s)
{
    note_file(s);
    if (!file_exists(s->path)) {
        char why[600];
        cs_fmt(why, sizeof why,
                 "no model file at %s: train one with POST /v1/models/fmnist/train or "
                 "'convscope train --out %s'",
                 s->path, s->path);
        set_state(s, CS_MODEL_UNAVAILABLE, NULL, why);
        return;
    }
    char why[800];
    load_facts f;
    cs_model *m = read_model(s->name, s->path, 0, &f, why, sizeof why);
    cs_model_version *v = m ? version_new(m, kept_number(s, m, "file"), &f) : NULL;
    if (!v) {
        if (m) cs_fmt(why, sizeof why, "cannot load %s: out of memory", s->path);
        cs_model_free(m);
        set_state(s, CS_MODEL_UNAVAILABLE, NULL, why);
        return;
    }
    set_state(s, CS_MODEL_READY, v, "");
}

/* A folder model from its file (s->path): ready, or unavailable with the reason. */
static void load_folder_model(cs_served_model *s)
{
    note_file(s);
    /* Reading an ONNX or Keras file holds it about three times over while it is decoded. */
    char why[800];
    if (!fits(s->name, 3 * file_size(s->path), why, sizeof why)) {
        set_state(s, CS_MODEL_UNAVAILABLE, NULL, why);
        return;
    }
    const char *file = strrchr(s->path, '/');
    load_facts f;
    cs_model *m = read_model(s->name, s->path, format_of(file ? file + 1 : s->path, NULL), &f, why, sizeof why);
    /* Inference keeps oneDNN's copies of the conv kernels beside the model (fast_plan.h),
     * Grad-CAM the channel sums of a dense kernel (cam_sums.h). */
    if (m && !fits(s->name, cs_fast_plan_bytes_bound(m) + cs_cam_sums_bytes_bound(m), why, sizeof why)) {
        cs_model_free(m);
        set_state(s, CS_MODEL_UNAVAILABLE, NULL, why);
        return;
    }
    cs_model_version *v = m ? version_new(m, 0, &f) : NULL;
    if (!v) {
        if (m) cs_fmt(why, sizeof why, "cannot load %s: out of memory", s->path);
        cs_model_free(m);
        set_state(s, CS_MODEL_UNAVAILABLE, NULL, why);
        return;
    }
    set_state(s, CS_MODEL_READY, v, "");
}

/* A served name: letters, digits, '_', '-' and '.', not starting with a dot. */
static int good_name(const char *s, size_t len)
{
    if (len == 0 || len >= sizeof g_models[0].name || s[0] == '.') return 0;
    for (size_t i = 0; i < len; i++)
        if (!(s[i] >= 'a' && s[i] <= 'z') && !(s[i] >= 'A' && s[i] <= 'Z') && !(s[i] >= '0' && s[i] <= '9') &&
            s[i] != '_' && s[i] != '-' && s[i] != '.')
            return 0;
    return 1;
}

/* The notebook's names, and the class index's, whose file a sidecar would be. */
static int reserved(const char *name)
{
    return !strcmp(name, "fmnist") || !strcmp(name, "vgg16") || !strcmp(name, "imagenet_class_index");
}

int cs_registry_name_ok(const char *name) { return name && good_name(name, strlen(name)); }

static int by_name(const struct dirent **a, const struct dirent **b) { return strcmp((*a)->d_name, (*b)->d_name); }

/* The slot of that name, removed ones included, or NULL. */
static cs_served_model *slot_named(const char *name)
{
    int n = atomic_load(&g_count);
    for (int i = 0; i < n; i++)
        if (strcmp(g_models[i].name, name) == 0) return &g_models[i];
    return NULL;
}

/* A slot for a new folder model (a removed one of that name comes back), or NULL when
 * every slot has a name. Call with g_reg_lock held. */
static cs_served_model *claim_slot(const char *name, const char *path)
{
    cs_served_model *s = slot_named(name);
    if (!s) {
        int n = atomic_load(&g_count);
        if (n >= CS_REGISTRY_MAX) return NULL;
        s = &g_models[n];
        cs_fmt(s->name, sizeof s->name, "%s", name);
        s->folder = 1;
        cs_fmt(s->path, sizeof s->path, "%s", path);
        s->state = CS_MODEL_LOADING;
        atomic_store(&g_count, n + 1); /* listed from here on, name and all */
        return s;
    }
    pthread_mutex_lock(&s->lock);
    cs_fmt(s->path, sizeof s->path, "%s", path);
    s->removed = 0;
    s->state = CS_MODEL_LOADING;
    s->reason[0] = 0;
    memset(&s->seen, 0, sizeof s->seen);
    memset(&s->sidecar_seen, 0, sizeof s->sidecar_seen);
    pthread_mutex_unlock(&s->lock);
    return s;
}

static void drop_slot(cs_served_model *s)
{
    pthread_mutex_lock(&s->lock);
    cs_model_version *old = s->current;
    s->current = NULL;
    s->removed = 1;
    s->state = CS_MODEL_UNAVAILABLE;
    cs_fmt(s->reason, sizeof s->reason, "removed");
    pthread_mutex_unlock(&s->lock);
    cs_version_release(old);
}

static int is_removed(cs_served_model *s)
{
    pthread_mutex_lock(&s->lock);
    int r = s->removed;
    pthread_mutex_unlock(&s->lock);
    return r;
}

/* Appends one event to msg ("; " between them). */
static void say(char *msg, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(char *msg, size_t len, const char *fmt, ...)
{
    size_t at = strlen(msg);
    if (at + 3 >= len) return;
    if (at) at += (size_t)snprintf(msg + at, len - at, "; ");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg + at, len - at, fmt, ap);
    va_end(ap);
}

/* The file each folder name is served from: one per name, by FORMATS' order. */
typedef struct {
    char name[32];
    int format;
    char path[1024];
} folder_entry;

/* Every model file of the models folder but the notebook's and VGG16's weights; n
 * entries in *out (malloc'd), -1 when the folder cannot be read. */
static int list_folder(folder_entry **out)
{
    struct dirent **list;
    *out = NULL;
    int n = scandir(g_dir, &list, NULL, by_name), count = 0;
    if (n < 0) return -1;
    folder_entry *e = calloc((size_t)n + 1, sizeof *e);
    char vgg[1024];
    pthread_mutex_lock(&g_models[REG_VGG16].lock);
    cs_fmt(vgg, sizeof vgg, "%s", g_models[REG_VGG16].path);
    pthread_mutex_unlock(&g_models[REG_VGG16].lock);
    for (int i = 0; i < n; i++) {
        const char *f = list[i]->d_name;
        size_t base;
        int fmt = format_of(f, &base);
        char path[1024], name[32];
        struct stat st;
        cs_fmt(path, sizeof path, "%s/%s", g_dir, f);
        if (e && fmt >= 0 && good_name(f, base) && strcmp(f, CS_VGG16_WEIGHTS_FILE) != 0 && strcmp(path, vgg) != 0 &&
            stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
            cs_fmt(name, sizeof name, "%.*s", (int)base, f);
            int k = 0;
            while (k < count && strcmp(e[k].name, name) != 0) k++;
            if (!reserved(name) && (k == count || fmt < e[k].format)) {
                cs_fmt(e[k].name, sizeof e[k].name, "%s", name);
                cs_fmt(e[k].path, sizeof e[k].path, "%s", path);
                e[k].format = fmt;
                if (k == count) count++;
            }
        }
        free(list[i]);
    }
    free(list);
    *out = e;
    return e ? count : -1;
}

/* Serves the folder's new files and drops the models whose files went. Call with
 * g_reg_lock held. 1 when something changed. */
static int scan_folder(char *msg, size_t len)
{
    folder_entry *e;
    int n = list_folder(&e), changed = 0;
    if (n < 0) return 0; /* an unreadable folder keeps what is served */
    for (int i = 0; i < n; i++) {
        cs_served_model *s = slot_named(e[i].name);
        int fresh = !s || is_removed(s);
        if (!fresh) {
            pthread_mutex_lock(&s->lock);
            int same = strcmp(s->path, e[i].path) == 0 || s->publishing;
            pthread_mutex_unlock(&s->lock);
            if (same) continue; /* changes within the file: cs_registry_reload_changed */
        }
        if (!(s = claim_slot(e[i].name, e[i].path))) {
            say(msg, len, "%s: not served, %d model names are the most one process serves", e[i].path,
                CS_REGISTRY_MAX);
            continue;
        }
        load_folder_model(s);
        char reason[512], precision[500] = "", none[64];
        int version, training;
        cs_model_state st = cs_served_state(s, reason, sizeof reason, &version, &training);
        cs_model_version *v = cs_served_acquire(s, none, sizeof none);
        if (v) cs_version_precision_text(v, precision, sizeof precision);
        cs_version_release(v);
        say(msg, len, "model %s: %s %s%s%s%s%s", s->name, fresh ? "serving" : "now serving", e[i].path,
            st == CS_MODEL_READY ? "" : ", unavailable: ", st == CS_MODEL_READY ? "" : reason, precision[0] ? ", " : "",
            precision);
        changed = 1;
    }
    int count = atomic_load(&g_count);
    for (int i = REG_FIXED; i < count; i++) {
        cs_served_model *s = &g_models[i];
        if (!s->folder || is_removed(s)) continue;
        int k = 0;
        while (k < n && strcmp(e[k].name, s->name) != 0) k++;
        pthread_mutex_lock(&s->lock);
        int keep = k < n || s->publishing || s->training;
        pthread_mutex_unlock(&s->lock);
        if (keep) continue; /* a job's model stays until it ends: its result brings the file back */
        drop_slot(s);
        say(msg, len, "model %s: dropped, its file was removed", s->name);
        changed = 1;
    }
    free(e);
    return changed;
}

static void *load_vgg16(void *arg)
{
    cs_served_model *s = arg;
    char err[400], why[600];
    cs_model *m = cs_vgg16_load(s->path, g_class_index, err, sizeof err);
    load_facts f = {.format = "h5", .labels = "imagenet"};
    cs_model_version *v = m ? version_new(m, 0, &f) : NULL;
    if (!v) {
        cs_fmt(why, sizeof why, "cannot load VGG16 weights from %s: %s", s->path,
                 m ? "out of memory" : err);
        cs_model_free(m);
        set_state(s, CS_MODEL_UNAVAILABLE, NULL, why);
        return NULL;
    }
    set_state(s, CS_MODEL_READY, v, "");
    return NULL;
}

/* Where the weights are: explicit path, the models folder, then Keras' own folder. */
static void find_vgg16(const cs_registry_config *cfg, cs_served_model *s)
{
    if (cfg->vgg16_weights && *cfg->vgg16_weights) {
        cs_fmt(s->path, sizeof s->path, "%s", cfg->vgg16_weights);
        if (!file_exists(s->path)) {
            char why[1200];
            cs_fmt(why, sizeof why, "VGG16 weights not found at %s (--vgg16-weights)", s->path);
            set_state(s, CS_MODEL_UNAVAILABLE, NULL, why);
            s->path[0] = 0;
        }
        return;
    }
    char cand[2][1024];
    const char *home = getenv("HOME");
    cs_fmt(cand[0], sizeof cand[0], "%s/%s", cfg->models_dir, CS_VGG16_WEIGHTS_FILE);
    cs_fmt(cand[1], sizeof cand[1], "%s/.keras/models/%s", home ? home : "", CS_VGG16_WEIGHTS_FILE);
    for (int i = 0; i < 2; i++) {
        if ((i == 1 && !home) || !file_exists(cand[i])) continue;
        cs_fmt(s->path, sizeof s->path, "%s", cand[i]);
        return;
    }
    char why[2600];
    cs_fmt(why, sizeof why,
             "VGG16 weights (%s, about 528 MiB) not found in %s, nor in ~/.keras/models; "
             "copy the Keras file there or pass --vgg16-weights FILE",
             CS_VGG16_WEIGHTS_FILE, cfg->models_dir);
    set_state(s, CS_MODEL_UNAVAILABLE, NULL, why);
    s->path[0] = 0;
}

static void find_class_index(const cs_registry_config *cfg)
{
    if (cfg->class_index && *cfg->class_index) {
        cs_fmt(g_class_index, sizeof g_class_index, "%s", cfg->class_index);
        return;
    }
    cs_fmt(g_class_index, sizeof g_class_index, "%s/imagenet_class_index.json", cfg->models_dir);
    if (!file_exists(g_class_index)) cs_fmt(g_class_index, sizeof g_class_index, "data/imagenet_class_index.json");
}

int cs_registry_start(const cs_registry_config *cfg, char *err, size_t errlen)
{
    (void)err, (void)errlen;
    g_max_running = cfg->max_running;
    g_precision = cfg->precision;
    atomic_store(&g_count, REG_FIXED);
    cs_fmt(g_dir, sizeof g_dir, "%s", cfg->models_dir);
    for (int i = 0; i < CS_REGISTRY_MAX; i++) {
        memset(&g_models[i], 0, sizeof g_models[i]);
        pthread_mutex_init(&g_models[i].lock, NULL);
    }
    cs_served_model *f = &g_models[REG_FMNIST], *v = &g_models[REG_VGG16];
    cs_fmt(f->name, sizeof f->name, "fmnist");
    cs_fmt(f->path, sizeof f->path, "%s/fmnist.csm", cfg->models_dir);
    f->trainable = 1;
    f->required = 1;
    cs_fmt(f->store, sizeof f->store, "%s/fmnist.versions", cfg->models_dir);
    f->keep = cfg->keep_versions > 0 ? cfg->keep_versions : CS_VERSIONS_KEEP_DEFAULT;
    /* Our own temporary files of saves killed a while ago (another replica's may be
     * under way now). */
    cs_versions_sweep(f->store, 900);
    cs_fmt(v->name, sizeof v->name, "vgg16");
    find_class_index(cfg);
    load_fmnist(f);
    /* VGG16's weights first, so the folder scan knows which file they are. */
    if (cfg->load_vgg16) find_vgg16(cfg, v);
    char msg[8];
    pthread_mutex_lock(&g_reg_lock);
    scan_folder(msg, sizeof msg);
    pthread_mutex_unlock(&g_reg_lock);

    if (!cfg->load_vgg16) {
        set_state(v, CS_MODEL_UNAVAILABLE, NULL, "VGG16 disabled (--no-vgg16)");
        return 0;
    }
    char why[600];
    /* The weights, what a pass over a 224x224 image holds besides them, and oneDNN's
     * Winograd copies of the conv kernels (4x their 56 MiB: fast_plan.h). */
    if (v->path[0] && !fits("VGG16", file_size(v->path) + ((uint64_t)(128 + 256) << 20), why, sizeof why)) {
        set_state(v, CS_MODEL_UNAVAILABLE, NULL, why);
        v->path[0] = 0;
    }
    if (v->path[0]) {
        set_state(v, CS_MODEL_LOADING, NULL, "loading the VGG16 weights");
        if (pthread_create(&g_vgg_thread, NULL, load_vgg16, v) == 0)
            g_vgg_thread_started = 1;
        else
            set_state(v, CS_MODEL_UNAVAILABLE, NULL, "cannot start the loader thread");
    }
    return 0;
}

void cs_registry_stop(void)
{
    if (g_vgg_thread_started) pthread_join(g_vgg_thread, NULL);
    g_vgg_thread_started = 0;
    int n = atomic_load(&g_count);
    for (int i = 0; i < n; i++) {
        cs_served_model *s = &g_models[i];
        pthread_mutex_lock(&s->lock);
        cs_model_version *v = s->current;
        s->current = NULL;
        pthread_mutex_unlock(&s->lock);
        cs_version_release(v);
    }
}

int cs_registry_count(void)
{
    return atomic_load(&g_count);
}

cs_served_model *cs_registry_at(int i)
{
    return i >= 0 && i < atomic_load(&g_count) && !is_removed(&g_models[i]) ? &g_models[i] : NULL;
}

cs_served_model *cs_registry_find(const char *name)
{
    cs_served_model *s = name ? slot_named(name) : NULL;
    return s && !is_removed(s) ? s : NULL;
}

cs_model_version *cs_served_acquire(cs_served_model *s, char *reason, size_t len)
{
    pthread_mutex_lock(&s->lock);
    cs_model_version *v = s->current;
    if (v) atomic_fetch_add(&v->refs, 1);
    else cs_fmt(reason, len, "%s", s->reason[0] ? s->reason : "model not loaded");
    pthread_mutex_unlock(&s->lock);
    return v;
}

cs_model_state cs_served_state(cs_served_model *s, char *reason, size_t len, int *version,
                               int *training)
{
    pthread_mutex_lock(&s->lock);
    cs_model_state st = s->state;
    cs_fmt(reason, len, "%s", s->reason);
    *version = s->current ? s->current->version : 0;
    *training = s->training;
    pthread_mutex_unlock(&s->lock);
    return st;
}

void cs_served_file(cs_served_model *s, char *file, size_t len)
{
    pthread_mutex_lock(&s->lock);
    const char *slash = strrchr(s->path, '/');
    cs_fmt(file, len, "%s", slash ? slash + 1 : s->path);
    pthread_mutex_unlock(&s->lock);
}

static void set_publishing(cs_served_model *s, int on)
{
    pthread_mutex_lock(&s->lock);
    s->publishing = on;
    pthread_mutex_unlock(&s->lock);
}

/* Serialises what writes the served file and switches the version, so the file on
 * disk and the version served stay the same model. */
static pthread_mutex_t g_publish_lock = PTHREAD_MUTEX_INITIALIZER;

/* Saves m as the served file (NAME.csm beside a file of another format) and serves it,
 * with the sidecar applied, as version `number`. Publish lock held. */
static int save_and_serve(cs_served_model *s, cs_model *m, int number, char *err, size_t errlen)
{
    pthread_mutex_lock(&g_reg_lock);
    if (is_removed(s)) {
        pthread_mutex_unlock(&g_reg_lock);
        cs_fmt(err, errlen, "model '%s' was removed while it trained", s->name);
        return -1;
    }
    char path[1024];
    pthread_mutex_lock(&s->lock);
    cs_fmt(path, sizeof path, "%s", s->path);
    pthread_mutex_unlock(&s->lock);
    /* A model read from another format is saved in convscope's own beside it: the
     * original file stays as it was, and NAME.csm is preferred from now on. */
    const char *slash = strrchr(path, '/');
    if (format_of(slash ? slash + 1 : path, NULL) > 0) cs_fmt(path, sizeof path, "%s/%s.csm", g_dir, s->name);
    /* The watcher leaves the file alone from the save until it is noted as this
     * process's own, or it would publish the same model as a version of its own. */
    set_publishing(s, 1);
    if (cs_model_save(m, path, err, errlen) != 0) {
        set_publishing(s, 0);
        pthread_mutex_unlock(&g_reg_lock);
        return -1;
    }
    pthread_mutex_lock(&s->lock);
    cs_fmt(s->path, sizeof s->path, "%s", path);
    pthread_mutex_unlock(&s->lock);
    note_file(s);
    set_publishing(s, 0);
    /* The sidecar as it is now (it names the classes the model was trained with). */
    char side[1100], why[400];
    sidecar_path(s->name, side, sizeof side);
    cs_sidecar_info info;
    load_facts f = {.format = "csm"};
    if (cs_sidecar_apply_file(m, side, &info, why, sizeof why) == 0 && info.labels) f.labels = "sidecar";
    else default_labels(m, &f);
    cs_fmt(f.description, sizeof f.description, "%s", info.description);
    cs_fmt(f.precision, sizeof f.precision, "%s", info.precision);
    cs_model_version *v = version_new(m, number, &f);
    pthread_mutex_unlock(&g_reg_lock);
    if (!v) {
        cs_fmt(err, errlen, "out of memory");
        return -1;
    }
    set_state(s, CS_MODEL_READY, v, "");
    return 0;
}

int cs_served_publish_run(cs_served_model *s, cs_model *m, json_t *record, char *err, size_t errlen)
{
    pthread_mutex_lock(&g_publish_lock);
    int number = 0;
    if (s->store[0]) {
        /* Kept first: from then on a crash anywhere leaves it loadable, and another
         * replica that sees the served file change finds its number. */
        uint32_t crc = cs_model_crc(m);
        json_t *rec = record ? json_incref(record) : cs_versions_record(m, crc, "file");
        pthread_mutex_lock(&s->lock);
        int protect = s->current ? s->current->version : 0;
        pthread_mutex_unlock(&s->lock);
        number = cs_versions_keep(s->store, m, rec, s->keep, protect, err, errlen);
        json_decref(rec);
        if (number < 0) {
            pthread_mutex_unlock(&g_publish_lock);
            return -1;
        }
    }
    int rc = save_and_serve(s, m, number, err, errlen);
    pthread_mutex_unlock(&g_publish_lock);
    return rc;
}

int cs_served_publish(cs_served_model *s, cs_model *m, char *err, size_t errlen)
{
    return cs_served_publish_run(s, m, NULL, err, errlen);
}

int cs_served_rollback(cs_served_model *s, int n, char *err, size_t errlen)
{
    if (!s->store[0]) {
        cs_fmt(err, errlen, "model '%s' keeps no versions", s->name);
        return 409;
    }
    cs_model *m = cs_versions_load(s->store, n, err, errlen);
    if (!m) return strncmp(err, "not kept", 8) == 0 ? 404 : 500;
    pthread_mutex_lock(&g_publish_lock);
    int rc = save_and_serve(s, m, n, err, errlen);
    pthread_mutex_unlock(&g_publish_lock);
    if (rc != 0) {
        cs_model_free(m);
        return 500;
    }
    return 0;
}

/* Re-reads a model whose file or sidecar changed. Call with g_reg_lock held. */
static int reload_one(cs_served_model *s, char *msg, size_t len)
{
    char path[1024], side[1100];
    struct stat now, side_now;
    pthread_mutex_lock(&s->lock);
    cs_fmt(path, sizeof path, "%s", s->path);
    int publishing = s->publishing;
    struct stat seen = s->seen, side_seen = s->sidecar_seen;
    pthread_mutex_unlock(&s->lock);
    if (publishing || stat(path, &now) != 0 || !S_ISREG(now.st_mode)) return 0; /* gone: the scan decides */
    sidecar_path(s->name, side, sizeof side);
    if (stat(side, &side_now) != 0) memset(&side_now, 0, sizeof side_now);
    int side_changed = side_now.st_ino != side_seen.st_ino || (side_now.st_ino && !same_file(&side_now, &side_seen));
    if (same_file(&now, &seen) && !side_changed) return 0;
    char why[800];
    load_facts f;
    const char *slash = strrchr(path, '/');
    int fmt = s == &g_models[REG_FMNIST] ? 0 : format_of(slash ? slash + 1 : path, NULL);
    cs_model *m = fmt >= 0 ? read_model(s->name, path, fmt, &f, why, sizeof why) : NULL;
    pthread_mutex_lock(&s->lock);
    s->seen = now; /* judged once; a later write changes it again */
    s->sidecar_seen = side_now;
    pthread_mutex_unlock(&s->lock);
    char reason[8];
    cs_model_version *cur = cs_served_acquire(s, reason, sizeof reason);
    if (!m) {
        /* A file cut short by a writer that does not rename into place fails its size
         * or checksum check here and is refused like a corrupt one; a model that
         * serves nothing says why. */
        say(msg, len, "%s: refused the changed file %s: %s", s->name, side_changed ? side : path, why);
        if (!cur) set_state(s, CS_MODEL_UNAVAILABLE, NULL, why);
        cs_version_release(cur);
        return -1;
    }
    int same = cur && !side_changed && cur->crc == cs_model_crc(m) && cur->model->n_param_floats == m->n_param_floats;
    cs_version_release(cur);
    if (same) { /* rewritten with the parameters already served (this replica's own job) */
        cs_model_free(m);
        return 0;
    }
    cs_model_version *v = version_new(m, s->trainable ? kept_number(s, m, "file") : 0, &f);
    if (!v) {
        cs_model_free(m);
        return 0;
    }
    set_state(s, CS_MODEL_READY, v, "");
    say(msg, len, "%s: now serving version %d from %s (%s changed on disk)", s->name, v->version, path,
        side_changed ? "its sidecar" : "the file");
    return 1;
}

int cs_registry_reload_changed(char *msg, size_t len)
{
    if (!len) return 0;
    msg[0] = 0;
    pthread_mutex_lock(&g_reg_lock);
    int result = scan_folder(msg, len);
    int n = atomic_load(&g_count);
    for (int i = 0; i < n; i++) {
        cs_served_model *s = &g_models[i];
        if ((!s->trainable && !s->folder) || is_removed(s)) continue;
        int rc = reload_one(s, msg, len);
        if (rc < 0) result = -1;
        else if (rc > 0 && result == 0) result = 1;
    }
    pthread_mutex_unlock(&g_reg_lock);
    return result;
}

int cs_served_set_training(cs_served_model *s, int on)
{
    int rc = 0;
    pthread_mutex_lock(&s->lock);
    if (on && s->training) rc = -1;
    else s->training = on;
    pthread_mutex_unlock(&s->lock);
    return rc;
}

const char *cs_model_state_word(cs_model_state st, int training)
{
    switch (st) {
    case CS_MODEL_READY: return training ? "training" : "ready";
    case CS_MODEL_LOADING: return "loading";
    default: return "unavailable";
    }
}

/* ---- uploads and deletions ---- */

/* Writes len bytes to a new file beside `final` ("<final>.tmp.<pid>.<n>", the pattern
 * model files are saved under), synced. 0 with the name in tmp, or -1 with why. */
static int write_temp(const char *final, const void *data, size_t len, char *tmp, size_t tmp_len, char *why,
                      size_t why_len)
{
    static atomic_uint seq;
    cs_fmt(tmp, tmp_len, "%s.tmp.%ld.%u", final, (long)getpid(), atomic_fetch_add(&seq, 1));
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        cs_fmt(why, why_len, "cannot create %s: %s", tmp, strerror(errno));
        return -1;
    }
    const char *p = data;
    size_t left = len;
    while (left) {
        ssize_t k = write(fd, p, left);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) break;
        p += k;
        left -= (size_t)k;
    }
    int ok = left == 0 && fsync(fd) == 0;
    int e = errno;
    if (close(fd) != 0) ok = 0;
    if (!ok) {
        cs_fmt(why, why_len, "cannot write %s: %s", tmp, strerror(e));
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* The folder's own entry synced, so renames into it survive a crash. */
static void sync_dir(void)
{
    int fd = open(g_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

int cs_registry_add(const cs_model_upload *u, cs_served_model **out, char *why, size_t len)
{
    size_t base;
    char probe[64];
    cs_fmt(probe, sizeof probe, "x%s", u->ext ? u->ext : "");
    int fmt = format_of(probe, &base);
    if (fmt < 0) {
        cs_fmt(why, len, "'%.16s' is not a model file convscope reads: .onnx, .h5, .hdf5, .keras or .csm",
               u->ext ? u->ext : "");
        return 415;
    }
    if (!cs_registry_name_ok(u->name)) {
        cs_fmt(why, len, "name '%.64s': letters, digits, '_', '-' and '.' (not first), at most %zu characters",
               u->name ? u->name : "", sizeof g_models[0].name - 1);
        return 400;
    }
    if (reserved(u->name)) {
        cs_fmt(why, len, "'%s' is a name the service keeps for itself; pick another", u->name);
        return 409;
    }
    pthread_mutex_lock(&g_reg_lock);
    int status = 0;
    cs_model *m = NULL;
    char final[1100], tmp[1200], side[1100], side_tmp[1200] = "";
    cs_fmt(final, sizeof final, "%s/%s%s", g_dir, u->name, FORMATS[fmt][0]);
    sidecar_path(u->name, side, sizeof side);
    tmp[0] = 0;
    cs_served_model *s = slot_named(u->name);
    if (s && !is_removed(s)) {
        cs_fmt(why, len, "a model named '%s' is served already; delete it first", u->name);
        status = 409;
        goto done;
    }
    if (!s && atomic_load(&g_count) >= CS_REGISTRY_MAX) {
        cs_fmt(why, len, "%d model names are the most one process serves", CS_REGISTRY_MAX);
        status = 409;
        goto done;
    }
    /* Reading a model file holds it about three times over while it is decoded. */
    if (!fits(u->name, 3 * (uint64_t)u->len, why, len)) {
        status = 503;
        goto done;
    }
    if (write_temp(final, u->data, u->len, tmp, sizeof tmp, why, len) != 0) {
        status = 500;
        goto done;
    }
    load_facts f = {.format = FORMATS[fmt][1]};
    char err[800];
    if (!(m = load_file(u->name, tmp, fmt, err, sizeof err))) {
        /* The reason names the temporary file: name the file that was sent instead. */
        char sent[300], msg[800] = "";
        cs_fmt(sent, sizeof sent, "%s%s", u->name, FORMATS[fmt][0]);
        for (const char *p = err, *at; *p; p = at + strlen(tmp)) {
            if (!(at = strstr(p, tmp))) {
                cs_fmt(msg + strlen(msg), sizeof msg - strlen(msg), "%s", p);
                break;
            }
            cs_fmt(msg + strlen(msg), sizeof msg - strlen(msg), "%.*s%s", (int)(at - p), p, sent);
        }
        cs_fmt(why, len, "%s", msg);
        status = 422;
        goto done;
    }
    if (apply_sidecar(m, u->name, u->sidecar, u->sidecar_len, &f, why, len) != 0) {
        status = 422;
        goto done;
    }
    if (u->sidecar && write_temp(side, u->sidecar, u->sidecar_len, side_tmp, sizeof side_tmp, why, len) != 0) {
        status = 500;
        goto done;
    }
    if (side_tmp[0] && rename(side_tmp, side) != 0) {
        cs_fmt(why, len, "cannot rename %s: %s", side_tmp, strerror(errno));
        status = 500;
        goto done;
    }
    side_tmp[0] = 0;
    if (rename(tmp, final) != 0) {
        cs_fmt(why, len, "cannot rename %s: %s", tmp, strerror(errno));
        if (u->sidecar) unlink(side);
        status = 500;
        goto done;
    }
    tmp[0] = 0;
    sync_dir();
    s = claim_slot(u->name, final);
    cs_model_version *v = version_new(m, 0, &f);
    if (!v) {
        /* Listed all the same: the watcher's next look reads it again. */
        set_state(s, CS_MODEL_UNAVAILABLE, NULL, "out of memory");
        cs_model_free(m);
    } else {
        set_state(s, CS_MODEL_READY, v, "");
    }
    m = NULL;
    note_file(s);
    *out = s;
done:
    if (tmp[0]) unlink(tmp);
    if (side_tmp[0]) unlink(side_tmp);
    cs_model_free(m);
    pthread_mutex_unlock(&g_reg_lock);
    return status;
}

int cs_registry_remove(const char *name, char *deleted, size_t deleted_len, char *why, size_t len)
{
    if (deleted_len) deleted[0] = 0;
    pthread_mutex_lock(&g_reg_lock);
    int status = 0;
    cs_served_model *s = name ? slot_named(name) : NULL;
    if (!s || is_removed(s)) {
        cs_fmt(why, len, "no model named '%.64s'", name ? name : "");
        status = 404;
        goto done;
    }
    if (!s->folder) {
        cs_fmt(why, len, "'%s' is the notebook's model and is not deleted over the API", name);
        status = 403;
        goto done;
    }
    pthread_mutex_lock(&s->lock);
    int busy = s->training || s->publishing;
    pthread_mutex_unlock(&s->lock);
    if (busy) {
        cs_fmt(why, len, "a training job holds '%s'; cancel it first", name);
        status = 409;
        goto done;
    }
    /* Every file of the name, or another would be served in its place. */
    char path[1100];
    for (int i = 0; i <= N_FORMATS; i++) {
        if (i < N_FORMATS) cs_fmt(path, sizeof path, "%s/%s%s", g_dir, name, FORMATS[i][0]);
        else sidecar_path(name, path, sizeof path);
        if (unlink(path) == 0) {
            const char *slash = strrchr(path, '/');
            size_t at = strlen(deleted);
            if (at + 2 < deleted_len) snprintf(deleted + at, deleted_len - at, "%s%s", at ? " " : "", slash + 1);
        } else if (errno != ENOENT) {
            cs_fmt(why, len, "cannot remove %s: %s", path, strerror(errno));
            status = 500;
        }
    }
    sync_dir();
    drop_slot(s);
done:
    pthread_mutex_unlock(&g_reg_lock);
    return status;
}
