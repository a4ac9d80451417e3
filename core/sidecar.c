/*
 * sidecar.c - a model's labels and preprocessing from NAME.json (sidecar.h).
 */
#include "sidecar.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bf16_plan.h"
#include "error.h"

/* Labels files are small; one larger than this is not a labels file. */
#define LABELS_MAX_BYTES (4u << 20)
#define LABELS_MAX 100000

void cs_sidecar_free_labels(char **names, char **ids, int n)
{
    for (int i = 0; i < n; i++) {
        if (names) free(names[i]);
        if (ids) free(ids[i]);
    }
    free(names);
    free(ids);
}

/* A WordNet id: 'n' and eight digits. */
static int is_wnid(const char *s, size_t len)
{
    if (len != 9 || s[0] != 'n') return 0;
    for (size_t i = 1; i < 9; i++)
        if (!isdigit((unsigned char)s[i])) return 0;
    return 1;
}

static char *dup_n(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = 0;
    }
    return d;
}

/* Label i of a JSON list or class index entry: a string, or [wnid, label]. */
static int json_label(json_t *e, char **name, char **id)
{
    if (json_is_string(e)) {
        *name = strdup(json_string_value(e));
        return *name ? 0 : -2;
    }
    json_t *a = json_array_get(e, 0), *b = json_array_get(e, 1);
    if (json_array_size(e) != 2 || !json_is_string(a) || !json_is_string(b)) return -1;
    *id = strdup(json_string_value(a));
    *name = strdup(json_string_value(b));
    return *id && *name ? 0 : -2;
}

static int parse_json_labels(json_t *root, char **names, char **ids, int n, char *err, size_t errlen)
{
    for (int i = 0; i < n; i++) {
        json_t *e;
        if (json_is_array(root)) {
            e = json_array_get(root, (size_t)i);
        } else {
            char key[16];
            snprintf(key, sizeof key, "%d", i);
            if (!(e = json_object_get(root, key))) {
                cs_set_err(err, errlen, "labels: class %d is missing from the class index", i);
                return -1;
            }
        }
        int rc = json_label(e, &names[i], &ids[i]);
        if (rc == -2) return cs_set_err(err, errlen, "out of memory"), -1;
        if (rc != 0) {
            cs_set_err(err, errlen, "labels: entry %d is neither a string nor [wnid, label]", i);
            return -1;
        }
    }
    return 0;
}

/* One label a line; blank lines at the end are not classes. */
static int parse_lines(const char *text, size_t len, char ***names_out, char ***ids_out, int *n_out, char *err,
                       size_t errlen)
{
    while (len && (text[len - 1] == '\n' || text[len - 1] == '\r' || text[len - 1] == ' ')) len--;
    int n = len ? 1 : 0;
    for (size_t i = 0; i < len; i++) n += text[i] == '\n';
    if (n == 0) return cs_set_err(err, errlen, "labels: empty"), -1;
    if (n > LABELS_MAX) return cs_set_err(err, errlen, "labels: more than %d lines", LABELS_MAX), -1;
    char **names = calloc((size_t)n, sizeof *names), **ids = calloc((size_t)n, sizeof *ids);
    if (!names || !ids) {
        cs_sidecar_free_labels(names, ids, 0);
        return cs_set_err(err, errlen, "out of memory"), -1;
    }
    const char *p = text, *end = text + len;
    for (int i = 0; i < n; i++) {
        const char *e = memchr(p, '\n', (size_t)(end - p));
        if (!e) e = end;
        size_t k = (size_t)(e - p);
        if (k && p[k - 1] == '\r') k--;
        if (k > 9 && is_wnid(p, 9) && p[9] == ' ') { /* "n01440764 tench, Tinca tinca" */
            ids[i] = dup_n(p, 9);
            names[i] = dup_n(p + 10, k - 10);
            if (!ids[i]) goto nomem;
        } else {
            names[i] = dup_n(p, k);
        }
        if (!names[i]) goto nomem;
        if (!names[i][0]) {
            cs_set_err(err, errlen, "labels: line %d is empty", i + 1);
            cs_sidecar_free_labels(names, ids, n);
            return -1;
        }
        p = e + 1;
    }
    *names_out = names;
    *ids_out = ids;
    *n_out = n;
    return 0;
nomem:
    cs_sidecar_free_labels(names, ids, n);
    return cs_set_err(err, errlen, "out of memory"), -1;
}

int cs_sidecar_parse_labels(const char *text, size_t len, char ***names_out, char ***ids_out, int *n_out, char *err,
                            size_t errlen)
{
    size_t i = 0;
    while (i < len && isspace((unsigned char)text[i])) i++;
    if (i == len || (text[i] != '[' && text[i] != '{'))
        return parse_lines(text, len, names_out, ids_out, n_out, err, errlen);
    json_error_t je;
    json_t *root = json_loadb(text, len, 0, &je);
    if (!root) {
        cs_set_err(err, errlen, "labels: invalid JSON at line %d: %s", je.line, je.text);
        return -1;
    }
    size_t n = json_is_array(root) ? json_array_size(root) : json_object_size(root);
    if (n == 0 || n > LABELS_MAX) {
        json_decref(root);
        return cs_set_err(err, errlen, "labels: expected 1 to %d labels", LABELS_MAX), -1;
    }
    char **names = calloc(n, sizeof *names), **ids = calloc(n, sizeof *ids);
    int rc = names && ids ? parse_json_labels(root, names, ids, (int)n, err, errlen)
                          : (cs_set_err(err, errlen, "out of memory"), -1);
    json_decref(root);
    if (rc != 0) {
        cs_sidecar_free_labels(names, ids, names && ids ? (int)n : 0);
        return -1;
    }
    *names_out = names;
    *ids_out = ids;
    *n_out = (int)n;
    return 0;
}

int cs_sidecar_set_labels(cs_model *m, char **names, char **ids, int n, char *err, size_t errlen)
{
    if (n != m->n_classes) {
        cs_set_err(err, errlen, "labels: %d labels for a model of %d classes", n, m->n_classes);
        return -1;
    }
    int any_id = 0;
    for (int i = 0; ids && i < n; i++) any_id |= ids[i] != NULL;
    char **id_copy = NULL;
    if (any_id) {
        if (!(id_copy = calloc((size_t)n, sizeof *id_copy))) return cs_set_err(err, errlen, "out of memory"), -1;
        for (int i = 0; i < n; i++)
            if (ids[i] && !(id_copy[i] = strdup(ids[i]))) {
                cs_sidecar_free_labels(NULL, id_copy, n);
                return cs_set_err(err, errlen, "out of memory"), -1;
            }
    }
    if (cs_model_set_classes(m, n, (const char *const *)names) != 0) {
        cs_sidecar_free_labels(NULL, id_copy, n);
        return cs_set_err(err, errlen, "out of memory"), -1;
    }
    m->class_ids = id_copy;
    return 0;
}

/* A whole small file, NUL-terminated. NULL with err (errno ENOENT kept for "none"). */
static char *read_small(const char *path, size_t max, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        cs_set_err(err, errlen, "cannot open %s: %s", path, strerror(e));
        errno = e;
        return NULL;
    }
    struct stat st;
    char *buf = NULL;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) || (size_t)st.st_size > max) {
        cs_set_err(err, errlen, "%s is not a regular file of at most %zu bytes", path, max);
    } else if (!(buf = malloc((size_t)st.st_size + 1))) {
        cs_set_err(err, errlen, "out of memory");
    } else if (fread(buf, 1, (size_t)st.st_size, f) != (size_t)st.st_size) {
        cs_set_err(err, errlen, "cannot read %s", path);
        free(buf);
        buf = NULL;
    } else {
        buf[st.st_size] = 0;
        *len = (size_t)st.st_size;
    }
    fclose(f);
    errno = 0;
    return buf;
}

/* A labels file: a plain name in the sidecar's folder, nothing that climbs out of it. */
static int labels_from_file(const char *dir, const char *file, char ***names, char ***ids, int *n, char *err,
                            size_t errlen)
{
    if (!dir) return cs_set_err(err, errlen, "labels_file: not allowed here; give the labels themselves"), -1;
    if (!file[0] || file[0] == '.' || strchr(file, '/') || strlen(file) > 200)
        return cs_set_err(err, errlen, "labels_file: '%.64s' must be a file name in the models folder", file), -1;
    char path[1400], why[300];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    size_t len = 0;
    char *text = read_small(path, LABELS_MAX_BYTES, &len, why, sizeof why);
    if (!text) return cs_set_err(err, errlen, "labels_file: %s", why), -1;
    int rc = cs_sidecar_parse_labels(text, len, names, ids, n, why, sizeof why);
    free(text);
    if (rc != 0) cs_set_err(err, errlen, "labels_file %s: %s", file, why);
    return rc;
}

int cs_sidecar_apply(cs_model *m, const char *text, size_t len, const char *dir, cs_sidecar_info *info, char *err,
                     size_t errlen)
{
    cs_sidecar_info none = {0};
    if (!info) info = &none;
    memset(info, 0, sizeof *info);
    json_error_t je;
    json_t *root = json_loadb(text, len, 0, &je);
    if (!root) return cs_set_err(err, errlen, "invalid JSON at line %d: %s", je.line, je.text), -1;
    int rc = -1;
    char **names = NULL, **ids = NULL;
    int n = 0;
    cs_preprocess pre = m->preprocess;
    const char *key;
    json_t *v;
    if (!json_is_object(root)) {
        cs_set_err(err, errlen, "expected an object with labels, labels_file, preprocessing, description or precision");
        goto done;
    }
    if (json_object_get(root, "labels") && json_object_get(root, "labels_file")) {
        cs_set_err(err, errlen, "give either labels or labels_file, not both");
        goto done;
    }
    json_object_foreach(root, key, v) {
        if (!strcmp(key, "labels")) {
            if (!json_is_array(v)) {
                cs_set_err(err, errlen, "labels: expected a list of strings or [wnid, label] pairs");
                goto done;
            }
            char *dump = json_dumps(v, 0);
            if (!dump) {
                cs_set_err(err, errlen, "out of memory");
                goto done;
            }
            int r = cs_sidecar_parse_labels(dump, strlen(dump), &names, &ids, &n, err, errlen);
            free(dump);
            if (r != 0) goto done;
        } else if (!strcmp(key, "labels_file")) {
            if (!json_is_string(v)) {
                cs_set_err(err, errlen, "labels_file: expected a file name");
                goto done;
            }
            if (labels_from_file(dir, json_string_value(v), &names, &ids, &n, err, errlen) != 0) goto done;
        } else if (!strcmp(key, "preprocessing")) {
            if (cs_preprocess_from_json(v, m->input.c, m->input.h, m->input.w, &pre, err, errlen) != 0) goto done;
            info->preprocessing = 1;
        } else if (!strcmp(key, "description")) {
            if (!json_is_string(v)) {
                cs_set_err(err, errlen, "description: expected a string");
                goto done;
            }
            snprintf(info->description, sizeof info->description, "%s", json_string_value(v));
        } else if (!strcmp(key, "precision")) {
            cs_precision p;
            char why[100];
            if (cs_precision_parse(json_string_value(v), &p, why, sizeof why) != 0) {
                cs_set_err(err, errlen, "precision: expected \"fp32\" or \"bf16\"");
                goto done;
            }
            snprintf(info->precision, sizeof info->precision, "%s", cs_precision_name(p));
        } else {
            cs_set_err(err, errlen, "unknown key '%.40s' (labels, labels_file, preprocessing, description, precision)",
                       key);
            goto done;
        }
    }
    if (names) {
        if (n != m->n_classes) {
            cs_set_err(err, errlen, "%d labels for a model of %d classes", n, m->n_classes);
            goto done;
        }
        if (cs_sidecar_set_labels(m, names, ids, n, err, errlen) != 0) goto done;
        info->labels = 1;
    }
    m->preprocess = pre;
    rc = 0;
done:
    cs_sidecar_free_labels(names, ids, n);
    json_decref(root);
    return rc;
}

int cs_sidecar_apply_file(cs_model *m, const char *path, cs_sidecar_info *info, char *err, size_t errlen)
{
    if (info) memset(info, 0, sizeof *info);
    size_t len = 0;
    char why[400];
    char *text = read_small(path, LABELS_MAX_BYTES, &len, why, sizeof why);
    if (!text) {
        if (errno == ENOENT) return 0;
        cs_set_err(err, errlen, "%s", why);
        return -1;
    }
    char dir[1024];
    const char *slash = strrchr(path, '/');
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - path) : 1, slash ? path : ".");
    int rc = cs_sidecar_apply(m, text, len, dir, info, why, sizeof why);
    free(text);
    if (rc != 0) cs_set_err(err, errlen, "%s: %s", path, why);
    return rc;
}
