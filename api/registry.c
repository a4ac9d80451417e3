/*
 * registry.c - served models, their versions, reference counts and exec pools.
 *
 * Locking: each served model's `lock` guards its state, reason, training flag and the
 * `current` pointer. Taking a reference is "lock, refs++, unlock", so a version cannot
 * be freed between reading `current` and counting the reference. Versions own their
 * model and their pooled execs, which die with them.
 *
 * VGG16's half-gigabyte weights load on a background thread so the service answers
 * (and says "loading") at once; the file is looked for at the configured path, then in
 * the models folder, then where Keras keeps it (~/.keras/models/).
 */
#include "registry.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "http.h"
#include "model_file.h"
#include "model_load.h"
#include "resources.h"
#include "versions.h"
#include "vgg16.h"

/* The notebook's two models first, then one per model file imported from the models
 * folder (ONNX), in name order. */
enum { REG_FMNIST, REG_VGG16, REG_FIXED };
#define REG_MAX 64

static cs_served_model g_models[REG_MAX];
static int g_count = REG_FIXED;
static char g_class_index[1024];
static pthread_t g_vgg_thread;
static int g_vgg_thread_started;
static atomic_int g_next_version = 1;
static int g_max_running;

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

/* number 0: the next of this process's own. */
static cs_model_version *version_new(cs_model *m, int number)
{
    cs_model_version *v = calloc(1, sizeof *v);
    if (!v) return NULL;
    atomic_init(&v->refs, 1); /* the registry's own reference */
    v->model = m;
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

static void set_state(cs_served_model *s, cs_model_state st, cs_model_version *v, const char *reason)
{
    pthread_mutex_lock(&s->lock);
    cs_model_version *old = NULL;
    if (v) {
        old = s->current;
        s->current = v;
    }
    s->state = st;
    cs_fmt(s->reason, sizeof s->reason, "%s", reason ? reason : "");
    pthread_mutex_unlock(&s->lock);
    cs_version_release(old);
}

/* Remembers the file as it is now, so the watcher only reacts to other writers. */
static void note_file(cs_served_model *s)
{
    struct stat st;
    pthread_mutex_lock(&s->lock);
    if (stat(s->path, &st) == 0) s->seen = st;
    else memset(&s->seen, 0, sizeof s->seen);
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
    char err[400];
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
    cs_model *m = cs_model_load(s->path, err, sizeof err);
    cs_model_version *v = m ? version_new(m, kept_number(s, m, "file")) : NULL;
    if (!v) {
        char why[600];
        cs_fmt(why, sizeof why, "cannot load %s: %s", s->path, m ? "out of memory" : err);
        cs_model_free(m);
        set_state(s, CS_MODEL_UNAVAILABLE, NULL, why);
        return;
    }
    set_state(s, CS_MODEL_READY, v, "");
}

static void load_import(cs_served_model *s)
{
    char err[400];
    note_file(s);
    /* Reading an ONNX file holds it about three times over while it is decoded. */
    char why[600];
    if (!fits(s->name, 3 * file_size(s->path), why, sizeof why)) {
        set_state(s, CS_MODEL_UNAVAILABLE, NULL, why);
        return;
    }
    cs_model *m = cs_model_load_any(s->path, err, sizeof err);
    cs_model_version *v = m ? version_new(m, 0) : NULL;
    if (!v) {
        char why[600];
        cs_fmt(why, sizeof why, "cannot load %s: %s", s->path, m ? "out of memory" : err);
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

static int by_name(const struct dirent **a, const struct dirent **b) { return strcmp((*a)->d_name, (*b)->d_name); }

/* Every ONNX file in the models folder, served under its name without the extension. */
static void find_imports(const cs_registry_config *cfg)
{
    struct dirent **list;
    int n = scandir(cfg->models_dir, &list, NULL, by_name);
    for (int i = 0; i < n; i++) {
        const char *f = list[i]->d_name;
        size_t len = strlen(f);
        char path[1024];
        struct stat st;
        cs_fmt(path, sizeof path, "%s/%s", cfg->models_dir, f);
        if (cs_model_is_import(f) && good_name(f, len - 5) && stat(path, &st) == 0 && S_ISREG(st.st_mode) &&
            g_count < REG_MAX) {
            char name[sizeof g_models[0].name];
            cs_fmt(name, sizeof name, "%.*s", (int)(len - 5), f);
            if (!cs_registry_find(name)) {
                cs_served_model *s = &g_models[g_count++];
                cs_fmt(s->name, sizeof s->name, "%s", name);
                cs_fmt(s->path, sizeof s->path, "%s", path);
                s->imported = 1;
                load_import(s);
            }
        }
        free(list[i]);
    }
    if (n >= 0) free(list);
}

static void *load_vgg16(void *arg)
{
    cs_served_model *s = arg;
    char err[400], why[600];
    cs_model *m = cs_vgg16_load(s->path, g_class_index, err, sizeof err);
    cs_model_version *v = m ? version_new(m, 0) : NULL;
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
    g_count = REG_FIXED;
    for (int i = 0; i < REG_MAX; i++) {
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
    load_fmnist(f);
    cs_fmt(g_models[REG_VGG16].name, sizeof g_models[REG_VGG16].name, "vgg16");
    find_imports(cfg);

    cs_fmt(v->name, sizeof v->name, "vgg16");
    find_class_index(cfg);
    if (!cfg->load_vgg16) {
        set_state(v, CS_MODEL_UNAVAILABLE, NULL, "VGG16 disabled (--no-vgg16)");
        return 0;
    }
    find_vgg16(cfg, v);
    char why[600];
    /* The weights, and what a pass over a 224x224 image holds besides them. */
    if (v->path[0] && !fits("VGG16", file_size(v->path) + ((uint64_t)128 << 20), why, sizeof why)) {
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
    for (int i = 0; i < g_count; i++) {
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
    return g_count;
}

cs_served_model *cs_registry_at(int i)
{
    return i >= 0 && i < g_count ? &g_models[i] : NULL;
}

cs_served_model *cs_registry_find(const char *name)
{
    for (int i = 0; i < g_count; i++)
        if (name && strcmp(g_models[i].name, name) == 0) return &g_models[i];
    return NULL;
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

static void set_publishing(cs_served_model *s, int on)
{
    pthread_mutex_lock(&s->lock);
    s->publishing = on;
    pthread_mutex_unlock(&s->lock);
}

/* Serialises what writes the served file and switches the version, so the file on
 * disk and the version served stay the same model. */
static pthread_mutex_t g_publish_lock = PTHREAD_MUTEX_INITIALIZER;

/* Saves m as the served file and serves it as version `number`. Publish lock held. */
static int save_and_serve(cs_served_model *s, cs_model *m, int number, char *err, size_t errlen)
{
    /* The watcher leaves the file alone from the save until it is noted as this
     * process's own, or it would publish the same model as a version of its own. */
    set_publishing(s, 1);
    if (cs_model_save(m, s->path, err, errlen) != 0) {
        set_publishing(s, 0);
        return -1;
    }
    note_file(s);
    set_publishing(s, 0);
    cs_model_version *v = version_new(m, number);
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

int cs_registry_reload_changed(char *msg, size_t len)
{
    int result = 0;
    if (len) msg[0] = 0;
    for (int i = 0; i < g_count; i++) {
        cs_served_model *s = &g_models[i];
        if (!s->trainable && !s->imported) continue;
        struct stat now;
        if (stat(s->path, &now) != 0 || !S_ISREG(now.st_mode)) continue; /* gone: keep serving */
        pthread_mutex_lock(&s->lock);
        int changed = !same_file(&now, &s->seen) && !s->publishing;
        pthread_mutex_unlock(&s->lock);
        if (!changed) continue;
        char err[400];
        cs_model *m = cs_model_load_any(s->path, err, sizeof err);
        pthread_mutex_lock(&s->lock);
        s->seen = now; /* judged once; a later write changes it again */
        pthread_mutex_unlock(&s->lock);
        if (!m) {
            /* A file cut short by a writer that does not rename into place fails its size
             * or checksum check here and is refused like a corrupt one. */
            cs_fmt(msg, len, "%s: refused the changed file %s: %s", s->name, s->path, err);
            result = -1;
            continue;
        }
        char reason[8];
        cs_model_version *cur = cs_served_acquire(s, reason, sizeof reason);
        int same = cur && cur->crc == cs_model_crc(m) && cur->model->n_param_floats == m->n_param_floats;
        cs_version_release(cur);
        if (same) { /* rewritten with the parameters already served (this replica's own job) */
            cs_model_free(m);
            continue;
        }
        cs_model_version *v = version_new(m, s->trainable ? kept_number(s, m, "file") : 0);
        if (!v) {
            cs_model_free(m);
            continue;
        }
        set_state(s, CS_MODEL_READY, v, "");
        cs_fmt(msg, len, "%s: now serving version %d from %s (changed on disk)", s->name, v->version, s->path);
        if (result == 0) result = 1;
    }
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
