/*
 * versions.c - a trainable model's kept versions, one model file and one record each
 * (see versions.h for the folder's layout and what survives a crash).
 *
 * Keeping a version: the model is saved atomically under a name of this process's
 * own ("incoming.<pid>.<k>.csm"), then linked to "<n>.csm" for the first free n
 * (link fails rather than replace a file another writer claimed first), then its
 * record is written beside it (temporary file, fsync, rename) and the incoming name
 * removed. Pruning removes the record first and the model file last, so a version is
 * either listed whole or not at all.
 */
#include "versions.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "http.h"
#include "model_file.h"

static pthread_mutex_t g_store_lock = PTHREAD_MUTEX_INITIALIZER;

uint32_t cs_model_crc(const cs_model *m)
{
    uLong crc = crc32(0L, Z_NULL, 0);
    const unsigned char *p = (const unsigned char *)m->param_block;
    size_t left = m->n_param_floats * sizeof(float);
    while (left) { /* crc32 takes a uInt length */
        uInt n = left > (1u << 30) ? (1u << 30) : (uInt)left;
        crc = crc32(crc, p, n);
        p += n;
        left -= n;
    }
    return (uint32_t)crc;
}

static void iso_now(char *buf, size_t n)
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static json_t *number_or_null(double x, int known)
{
    return known && x == x ? json_real(x) : json_null();
}

json_t *cs_versions_record(const cs_model *m, uint32_t crc, const char *source)
{
    char sum[16];
    snprintf(sum, sizeof sum, "%08x", (unsigned)crc);
    const cs_model_meta *mt = &m->meta;
    json_t *hist = json_array();
    for (int i = 0; i < mt->n_history; i++) {
        const cs_epoch_record *r = &mt->history[i];
        json_array_append_new(hist, json_pack("{s:i,s:o,s:o,s:o,s:o,s:o}", "epoch", r->epoch, "loss",
                                              number_or_null(r->loss, 1), "accuracy", number_or_null(r->accuracy, 1),
                                              "test_accuracy", number_or_null(r->test_accuracy, r->test_accuracy >= 0),
                                              "test_loss", number_or_null(r->test_loss, r->test_loss >= 0),
                                              "seconds", number_or_null(r->seconds, 1)));
    }
    json_t *rec = json_pack("{s:s,s:s,s:s,s:o,s:o,s:o}", "arch", m->arch, "checksum", sum, "source",
                            source ? source : "file", "trained_at",
                            mt->trained_at[0] ? json_string(mt->trained_at) : json_null(), "test_accuracy",
                            number_or_null(mt->test_accuracy, mt->test_accuracy >= 0), "history", hist);
    /* How many test images the file's accuracy counts, when the file says (files written
     * before it did leave it unknown). */
    json_object_set_new(rec, "test_images", mt->test_images > 0 ? json_integer(mt->test_images) : json_null());
    json_object_set_new(rec, "test_subset", mt->test_images > 0 ? json_boolean(mt->test_images < 10000) : json_null());
    if (mt->epochs > 0)
        json_object_set_new(rec, "training",
                            json_pack("{s:i,s:i,s:i,s:f,s:I}", "epochs", mt->epochs, "batch_size", mt->batch_size,
                                      "train_images", mt->train_images, "learning_rate", (double)mt->learning_rate,
                                      "seed", (json_int_t)mt->seed));
    return rec;
}

static void path_of(char *out, size_t n, const char *store, int v, const char *ext)
{
    cs_fmt(out, n, "%s/%d.%s", store, v, ext);
}

/* "<digits>.csm" -> the number, else 0. */
static int kept_number(const char *name)
{
    char *end;
    if (name[0] < '1' || name[0] > '9') return 0;
    long v = strtol(name, &end, 10);
    return strcmp(end, ".csm") == 0 && v > 0 && v < 100000000 ? (int)v : 0;
}

static int cmp_desc(const void *a, const void *b)
{
    return *(const int *)b - *(const int *)a;
}

/* The kept numbers, newest first (malloc'd), in *n; NULL with *n 0 when none. */
static int *kept_numbers(const char *store, int *n)
{
    *n = 0;
    DIR *d = opendir(store);
    if (!d) return NULL;
    int *v = NULL, cap = 0;
    for (struct dirent *e; (e = readdir(d));) {
        int k = kept_number(e->d_name);
        if (!k) continue;
        if (*n == cap) {
            int *w = realloc(v, sizeof *v * (size_t)(cap = cap ? 2 * cap : 16));
            if (!w) break;
            v = w;
        }
        v[(*n)++] = k;
    }
    closedir(d);
    if (v) qsort(v, (size_t)*n, sizeof *v, cmp_desc);
    return v;
}

static int sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    if (rc != 0 && (errno == EINVAL || errno == ENOTSUP || errno == EROFS)) rc = 0;
    close(fd);
    return rc;
}

/* Writes text to path through a temporary file, fsync and rename. */
static int write_atomic(const char *path, const char *text, char *err, size_t errlen)
{
    char tmp[1200];
    cs_fmt(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    size_t len = strlen(text);
    int ok = f && fwrite(text, 1, len, f) == len && fflush(f) == 0 && fsync(fileno(f)) == 0;
    if (f && fclose(f) != 0) ok = 0;
    if (!ok || rename(tmp, path) != 0) {
        cs_fmt(err, errlen, "cannot write %s: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

static json_t *read_record(const char *store, int v)
{
    char p[1100];
    path_of(p, sizeof p, store, v, "json");
    json_t *r = json_load_file(p, 0, NULL);
    if (r && !json_is_object(r)) {
        json_decref(r);
        r = NULL;
    }
    return r;
}

/* Record of version v: its file, or one rebuilt from the model file; NULL when the
 * model file is not there. */
static json_t *record_of(const char *store, int v)
{
    char p[1100];
    path_of(p, sizeof p, store, v, "csm");
    struct stat st;
    if (stat(p, &st) != 0) return NULL;
    json_t *r = read_record(store, v);
    if (r) return r;
    char err[300];
    cs_model *m = cs_model_load(p, err, sizeof err);
    if (!m) return json_pack("{s:i,s:s}", "version", v, "error", err);
    r = cs_versions_record(m, cs_model_crc(m), "file");
    cs_model_free(m);
    json_object_set_new(r, "version", json_integer(v));
    json_object_set_new(r, "record", json_string("rebuilt from the model file (its record was lost)"));
    return r;
}

/* Removes the oldest versions past keep, except protect and newest. Store lock held. */
static void prune(const char *store, int keep, int protect, int newest)
{
    int n, *v = kept_numbers(store, &n);
    int kept = 0;
    for (int i = 0; i < n; i++) {
        if (kept < keep || v[i] == protect || v[i] == newest) {
            kept++;
            continue;
        }
        char p[1100];
        path_of(p, sizeof p, store, v[i], "json");
        unlink(p);
        path_of(p, sizeof p, store, v[i], "csm");
        unlink(p);
    }
    free(v);
}

int cs_versions_keep(const char *store, const cs_model *m, json_t *record, int keep, int protect, char *err,
                     size_t errlen)
{
    static atomic_uint counter;
    if (mkdir(store, 0755) != 0 && errno != EEXIST) {
        cs_fmt(err, errlen, "cannot make the versions folder %s: %s", store, strerror(errno));
        return -1;
    }
    char incoming[1100];
    cs_fmt(incoming, sizeof incoming, "%s/incoming.%ld.%u.csm", store, (long)getpid(), atomic_fetch_add(&counter, 1));
    if (cs_model_save(m, incoming, err, errlen) != 0) return -1;
    pthread_mutex_lock(&g_store_lock);
    int n, *v = kept_numbers(store, &n);
    int next = n ? v[0] + 1 : 1;
    free(v);
    char p[1100];
    for (;; next++) { /* another process may claim a number first */
        path_of(p, sizeof p, store, next, "csm");
        if (link(incoming, p) == 0) break;
        if (errno != EEXIST) {
            cs_fmt(err, errlen, "cannot keep version %d in %s: %s", next, store, strerror(errno));
            pthread_mutex_unlock(&g_store_lock);
            unlink(incoming);
            return -1;
        }
    }
    unlink(incoming);
    char at[32];
    iso_now(at, sizeof at);
    json_object_set_new(record, "version", json_integer(next));
    json_object_set_new(record, "kept_at", json_string(at));
    char *text = json_dumps(record, JSON_INDENT(1) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));
    path_of(p, sizeof p, store, next, "json");
    /* Without its record the version is still kept: listings rebuild it from the file. */
    if (text) write_atomic(p, text, err, errlen);
    free(text);
    sync_dir(store);
    prune(store, keep > 0 ? keep : CS_VERSIONS_KEEP_DEFAULT, protect, next);
    pthread_mutex_unlock(&g_store_lock);
    return next;
}

int cs_versions_find(const char *store, uint32_t crc)
{
    char sum[16];
    snprintf(sum, sizeof sum, "%08x", (unsigned)crc);
    int n, *v = kept_numbers(store, &n), found = 0;
    for (int i = 0; i < n && !found; i++) {
        json_t *r = record_of(store, v[i]);
        const char *c = json_string_value(json_object_get(r, "checksum"));
        if (c && !strcmp(c, sum)) found = v[i];
        json_decref(r);
    }
    free(v);
    return found;
}

cs_model *cs_versions_load(const char *store, int n, char *err, size_t errlen)
{
    char p[1100];
    path_of(p, sizeof p, store, n, "csm");
    struct stat st;
    if (n < 1 || stat(p, &st) != 0) {
        cs_fmt(err, errlen, "not kept: there is no version %d", n);
        return NULL;
    }
    return cs_model_load(p, err, errlen);
}

json_t *cs_versions_list(const char *store)
{
    json_t *list = json_array();
    int n, *v = kept_numbers(store, &n);
    for (int i = 0; i < n; i++) {
        json_t *r = record_of(store, v[i]);
        if (r) json_array_append_new(list, r);
    }
    free(v);
    return list;
}

json_t *cs_versions_get(const char *store, int n)
{
    return n >= 1 ? record_of(store, n) : NULL;
}

int cs_versions_sweep(const char *store, double max_age)
{
    DIR *d = opendir(store);
    if (!d) return 0;
    int removed = 0;
    time_t now = time(NULL);
    for (struct dirent *e; (e = readdir(d));) {
        const char *f = e->d_name;
        char p[1100];
        struct stat st;
        cs_fmt(p, sizeof p, "%s/%s", store, f);
        if (stat(p, &st) != 0 || !S_ISREG(st.st_mode) || difftime(now, st.st_mtime) < max_age) continue;
        int stale = !strncmp(f, "incoming.", 9) || strstr(f, ".tmp.") != NULL;
        char *end;
        long k = strtol(f, &end, 10);
        if (!stale && k > 0 && !strcmp(end, ".json")) { /* a record whose model never arrived */
            char csm[1100];
            path_of(csm, sizeof csm, store, (int)k, "csm");
            stale = stat(csm, &st) != 0;
        }
        if (stale && unlink(p) == 0) removed++;
    }
    closedir(d);
    return removed;
}
