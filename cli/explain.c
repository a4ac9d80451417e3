/*
 * explain.c (cli) - `convscope explain`: explanations of many images offline, for
 * batch work and for a Kubernetes indexed Job that fans a data set out over pods.
 *
 *   convscope explain --model FILE --method M[,M...] [--out DIR] [method options]
 *                     [--no-metrics] [--shards N [--shard I]] IMAGE... | --sample test:0-999
 *
 * For each image and method it writes DIR/NAME.METHOD.png (the overlay, as the explain
 * route draws it) and DIR/NAME.METHOD.npy (the raw map, height x width), and at the end
 * DIR/scores.csv and DIR/scores.json: a row per image and method with the class, the
 * scores and the faithfulness numbers. With --shards N the images are cut into N
 * contiguous parts and this run does part I (--shard, else $JOB_COMPLETION_INDEX, which
 * Kubernetes sets in an indexed Job's pods), writing under DIR/shard-I/.
 */
#include "commands.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dataset.h"
#include "draw.h"
#include "explain/explain.h"
#include "explain/faith.h"
#include "image.h"
#include "model_load.h"
#include "npy.h"
#include "preprocess.h"

#define MAX_METHODS 32

typedef struct {
    const char *model, *methods, *out, *data, *sample, *layer, *cls;
    cs_explain_params p;
    int metrics, shards, shard;
    const char **files;
    int n_files;
} options;

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "convscope explain: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n%s", CS_EXPLAIN_USAGE);
    return 2;
}

/* A whole number in [lo, hi], or -1 with a message naming the flag. */
static int parse_int(const char *flag, const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < lo || v > hi) {
        fprintf(stderr, "convscope explain: %s must be an integer from %ld to %ld, got '%s'\n", flag, lo, hi, s);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_float(const char *flag, const char *s, double lo, double hi, float *out)
{
    char *end;
    double v = strtod(s, &end);
    if (!*s || *end || !(v >= lo && v <= hi)) {
        fprintf(stderr, "convscope explain: %s must be a number from %g to %g, got '%s'\n", flag, lo, hi, s);
        return -1;
    }
    *out = (float)v;
    return 0;
}

static int parse_args(int argc, char **argv, options *o)
{
    memset(o, 0, sizeof *o);
    cs_explain_params_default(&o->p);
    o->out = "explain-out";
    o->metrics = 1;
    o->shards = 1;
    const char *env = getenv("CONVSCOPE_DATA"), *index = getenv("JOB_COMPLETION_INDEX");
    o->data = env && *env ? env : CS_DEFAULT_DATA_DIR;
    if (!(o->files = calloc((size_t)argc, sizeof *o->files))) return 1;
    int shard_given = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--no-metrics")) {
            o->metrics = 0;
            continue;
        }
        if (strncmp(a, "--", 2)) {
            o->files[o->n_files++] = a;
            continue;
        }
        if (i + 1 >= argc) return usage_error("%s needs a value", a);
        const char *v = argv[++i];
        long n;
        int bad = 0;
        if (!strcmp(a, "--model")) o->model = v;
        else if (!strcmp(a, "--method")) o->methods = v;
        else if (!strcmp(a, "--out")) o->out = v;
        else if (!strcmp(a, "--data")) o->data = v;
        else if (!strcmp(a, "--sample")) o->sample = v;
        else if (!strcmp(a, "--layer")) o->layer = v;
        else if (!strcmp(a, "--class")) o->cls = v;
        else if (!strcmp(a, "--score")) {
            if (strcmp(v, "logit") && strcmp(v, "probability")) return usage_error("--score is logit or probability, got '%s'", v);
            o->p.score_kind = !strcmp(v, "probability");
        } else if (!strcmp(a, "--baseline")) {
            static const char *const names[] = {"black", "blur", "noise"};
            o->p.baseline = -1;
            for (int b = 0; b < 3; b++)
                if (!strcmp(v, names[b])) o->p.baseline = b;
            if (o->p.baseline < 0) return usage_error("--baseline is black, blur or noise, got '%s'", v);
        } else if (!strcmp(a, "--samples")) {
            bad = parse_int(a, v, 1, CS_EXPLAIN_MAX_SAMPLES, &n);
            o->p.samples = (int)n;
        } else if (!strcmp(a, "--steps")) {
            bad = parse_int(a, v, 1, CS_EXPLAIN_MAX_STEPS, &n);
            o->p.steps = (int)n;
        } else if (!strcmp(a, "--patch")) {
            bad = parse_int(a, v, 1, 4096, &n);
            o->p.patch = (int)n;
        } else if (!strcmp(a, "--stride")) {
            bad = parse_int(a, v, 1, 4096, &n);
            o->p.stride = (int)n;
        } else if (!strcmp(a, "--batch")) {
            bad = parse_int(a, v, 1, CS_EXPLAIN_MAX_BATCH, &n);
            o->p.batch = (int)n;
        } else if (!strcmp(a, "--seed")) {
            bad = parse_int(a, v, 0, 9007199254740991L, &n);
            o->p.seed = (uint64_t)n;
        } else if (!strcmp(a, "--noise")) bad = parse_float(a, v, 0, CS_EXPLAIN_MAX_NOISE, &o->p.noise);
        else if (!strcmp(a, "--blur-sigma")) bad = parse_float(a, v, 0, CS_EXPLAIN_MAX_BLUR, &o->p.blur_sigma);
        else if (!strcmp(a, "--shards")) {
            bad = parse_int(a, v, 1, 100000, &n);
            o->shards = (int)n;
        } else if (!strcmp(a, "--shard")) {
            bad = parse_int(a, v, 0, 99999, &n);
            o->shard = (int)n;
            shard_given = 1;
        } else return usage_error("unknown option %s", a);
        if (bad) return 2;
    }
    if (!o->model) return usage_error("%s", "--model FILE is required");
    if (!o->methods) return usage_error("%s", "--method M[,M...] is required");
    if (!o->sample == !o->n_files) return usage_error("%s", "give IMAGE files or --sample SPLIT:FIRST-LAST, not both");
    if (!shard_given && o->shards > 1 && index && *index) {
        long n;
        if (parse_int("JOB_COMPLETION_INDEX", index, 0, 99999, &n)) return 2;
        o->shard = (int)n;
    }
    if (o->shard >= o->shards) {
        fprintf(stderr, "convscope explain: shard %d of %d does not exist (0 .. %d)\n", o->shard, o->shards,
                o->shards - 1);
        return 2;
    }
    return 0;
}

/* "test:0-999" or "test:18". */
static int parse_sample(const char *spec, char *split, long *first, long *last)
{
    const char *colon = strchr(spec, ':');
    if (!colon || colon - spec > 5) return -1;
    snprintf(split, 8, "%.*s", (int)(colon - spec), spec);
    if (strcmp(split, "test") && strcmp(split, "train")) return -1;
    char *end;
    *first = strtol(colon + 1, &end, 10);
    if (end == colon + 1) return -1;
    *last = *first;
    if (*end == '-') {
        const char *s = end + 1;
        *last = strtol(s, &end, 10);
        if (end == s) return -1;
    }
    return *end || *first < 0 || *last < *first ? -1 : 0;
}

static int make_dir(const char *path)
{
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(buf, 0777) != 0 && errno != EEXIST) return -1;
            *p = '/';
        }
    return mkdir(buf, 0777) != 0 && errno != EEXIST ? -1 : 0;
}

static int read_all(const char *path, uint8_t **buf, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    size_t cap = 1 << 16, n = 0;
    uint8_t *b = malloc(cap);
    for (size_t got; b && (got = fread(b + n, 1, cap - n, f)) > 0;) {
        n += got;
        if (n == cap) {
            uint8_t *grown = realloc(b, cap *= 2);
            if (!grown) free(b);
            b = grown;
        }
    }
    fclose(f);
    if (!b) return -1;
    *buf = b;
    *len = n;
    return 0;
}

/* The file's name without folders and extension. */
static void stem(const char *path, char *out, size_t n)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    snprintf(out, n, "%s", base);
    char *dot = strrchr(out, '.');
    if (dot && dot != out) *dot = 0;
}

typedef struct {
    FILE *csv;
    json_t *rows;
} sink;

static int explain_image(const cs_model *m, const cs_explain_method *const *meths, int n_meths, const options *o,
                         const char *dir, const char *name, const cs_image *img, int truth, const float *range,
                         sink *out)
{
    char err[400], path[1600];
    float *x = malloc(cs_shape_size(m->input) * sizeof(float));
    if (!x) return -1;
    if (cs_preprocess_model(m, img, x, err, sizeof err) != 0) {
        fprintf(stderr, "convscope explain: %s: %s\n", name, err);
        free(x);
        return -1;
    }
    cs_explainer ex;
    if (cs_explainer_init(&ex, m, x, NULL, err, sizeof err) != 0) {
        fprintf(stderr, "convscope explain: %s\n", err);
        free(x);
        return -1;
    }
    ex.black = range;
    ex.white = range + m->input.c;
    int rc = 0;
    for (int k = 0; k < n_meths && rc == 0; k++) {
        cs_explain_map map;
        cs_faith_result fr = {0};
        if (cs_explain_run(&ex, meths[k], &o->p, &map, err, sizeof err) != 0) {
            fprintf(stderr, "convscope explain: %s, %s: %s\n", name, meths[k]->name, err);
            rc = -1;
            break;
        }
        cs_faith_params fp;
        cs_faith_params_default(&fp);
        fp.seed = o->p.seed;
        fp.batch = o->p.batch;
        fp.blur_sigma = o->p.blur_sigma;
        if (o->metrics && cs_faith_evaluate(&ex, &map, &fp, CS_FAITH_ALL, &fr, err, sizeof err) != 0) {
            fprintf(stderr, "convscope explain: %s\n", err);
            rc = -1;
        }
        /* The overlay as the explain route draws it, and the raw map. */
        cs_image base = {0}, *pic = NULL;
        const int gray = m->input.c == 1, w = gray ? 540 : img->w, h = gray ? 540 : img->h;
        if (rc == 0 && gray) {
            if (cs_image_alloc(&base, m->input.w, m->input.h, 1) == CS_IMG_OK)
                for (int i = 0; i < m->input.w * m->input.h; i++) {
                    float v = x[i] * 255.0f + 0.5f;
                    base.px[i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
                }
        } else if (rc == 0) {
            cs_image_to_rgb(img, &base);
        }
        if (rc == 0 && base.px)
            pic = cs_draw_gradcam_overlay(&base, map.heat, map.h, map.w, gray ? 0.7f : 0.4f, w, h);
        uint8_t *png = NULL;
        size_t len = 0;
        snprintf(path, sizeof path, "%s/%s.%s.png", dir, name, meths[k]->name);
        FILE *f = NULL;
        if (rc == 0 && (!pic || cs_image_encode_png(pic, &png, &len) != CS_IMG_OK || !(f = fopen(path, "wb")) ||
                        fwrite(png, 1, len, f) != len)) {
            fprintf(stderr, "convscope explain: cannot write %s\n", path);
            rc = -1;
        }
        if (f && fclose(f) != 0) rc = -1;
        free(png);
        cs_image_destroy(pic);
        cs_image_free(&base);
        int64_t dims[2] = {map.h, map.w};
        snprintf(path, sizeof path, "%s/%s.%s.npy", dir, name, meths[k]->name);
        if (rc == 0 && cs_npy_write(path, map.map, 2, dims, err, sizeof err) != 0) {
            fprintf(stderr, "convscope explain: %s\n", err);
            rc = -1;
        }
        if (rc == 0) {
            const char *label = m->class_names ? m->class_names[map.class_index] : "";
            fprintf(out->csv, "%s,%d,%d,%d,\"%s\",%s,%.6g,%.6g,%d", name, truth, ex.predicted, map.class_index, label,
                    meths[k]->name, map.score, map.probability, map.all_zero);
            if (o->metrics)
                fprintf(out->csv, ",%.6f,%.6f,%.6f,%d,%.6f", fr.deletion_auc, fr.insertion_auc, fr.drop, fr.increase,
                        fr.road);
            else
                fprintf(out->csv, ",,,,,");
            fprintf(out->csv, ",%.6f\n", map.seconds);
            json_t *row = json_pack("{s:s,s:o,s:i,s:i,s:s,s:s,s:f,s:f,s:b,s:f}", "image", name, "truth",
                                    truth >= 0 ? json_integer(truth) : json_null(), "predicted", ex.predicted, "class",
                                    map.class_index, "label", label, "method", meths[k]->name, "score",
                                    (double)map.score, "probability", (double)map.probability, "all_zero",
                                    map.all_zero, "seconds", map.seconds);
            if (o->metrics) {
                json_object_set_new(row, "deletion_auc", json_real(fr.deletion_auc));
                json_object_set_new(row, "insertion_auc", json_real(fr.insertion_auc));
                json_object_set_new(row, "drop", json_real(fr.drop));
                json_object_set_new(row, "increase", json_boolean(fr.increase));
                json_object_set_new(row, "road", json_real(fr.road));
            }
            json_array_append_new(out->rows, row);
        }
        cs_faith_free(&fr);
        cs_explain_map_free(&map);
    }
    cs_explainer_free(&ex);
    free(x);
    return rc;
}

int cs_cmd_explain(int argc, char **argv)
{
    options o;
    int rc = parse_args(argc, argv, &o);
    if (rc) {
        free(o.files);
        return rc;
    }
    char err[600], dir[1024];
    const cs_explain_method *meths[MAX_METHODS];
    int n_meths = 0;
    for (const char *s = o.methods; *s && rc == 0;) {
        size_t len = strcspn(s, ",");
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)(len < sizeof name ? len : sizeof name - 1), s);
        const cs_explain_method *m = !strcmp(name, "all") ? NULL : cs_explain_find(name);
        if (!strcmp(name, "all"))
            for (int i = 0; i < cs_explain_count() && n_meths < MAX_METHODS; i++) meths[n_meths++] = cs_explain_method_at(i);
        else if (!m) rc = usage_error("unknown method '%s'", name);
        else if (n_meths < MAX_METHODS) meths[n_meths++] = m;
        s += len + (s[len] == ',');
    }
    cs_model *m = rc ? NULL : cs_model_load_any(o.model, err, sizeof err);
    cs_dataset d = {0};
    float *range = NULL;
    sink out = {0};
    if (rc) goto done;
    rc = 1;
    if (!m) {
        fprintf(stderr, "convscope explain: cannot load the model: %s\n", err);
        goto done;
    }
    if (o.layer) {
        o.p.layer = cs_model_find_layer(m, o.layer);
        if (o.p.layer < 0) {
            fprintf(stderr, "convscope explain: the model has no layer '%s'\n", o.layer);
            goto done;
        }
    }
    if (o.cls) {
        o.p.class_index = -1;
        for (int i = 0; i < m->n_classes; i++)
            if (m->class_names && !strcasecmp(o.cls, m->class_names[i])) o.p.class_index = i;
        long n;
        if (o.p.class_index < 0 && parse_int("--class", o.cls, 0, m->n_classes - 1, &n) != 0) goto done;
        if (o.p.class_index < 0) o.p.class_index = (int)n;
    }
    for (int k = 0; k < n_meths; k++) {
        const char *bad = cs_explain_params_check(m, meths[k], &o.p, err, sizeof err);
        if (bad) {
            fprintf(stderr, "convscope explain: %s: %s\n", meths[k]->name, err);
            rc = 2;
            goto done;
        }
    }
    /* The images: a range of the data set, or files; this shard's part of them. */
    char split[8] = "";
    long first = 0, last = o.n_files - 1;
    if (o.sample) {
        if (parse_sample(o.sample, split, &first, &last) != 0) {
            fprintf(stderr, "convscope explain: --sample is SPLIT:FIRST-LAST or SPLIT:INDEX (test:0-999), got '%s'\n",
                    o.sample);
            rc = 2;
            goto done;
        }
        if (cs_dataset_load(o.data, split, &d, err, sizeof err) != 0) {
            fprintf(stderr, "convscope explain: cannot read the %s set: %s\n", split, err);
            goto done;
        }
        if (last >= d.n) {
            fprintf(stderr, "convscope explain: the %s set has images 0 to %d\n", split, d.n - 1);
            rc = 2;
            goto done;
        }
    }
    const long total = last - first + 1, per = (total + o.shards - 1) / o.shards;
    const long from = first + o.shard * per, to = from + per - 1 < last ? from + per - 1 : last;
    if (o.shards > 1) snprintf(dir, sizeof dir, "%s/shard-%d", o.out, o.shard);
    else snprintf(dir, sizeof dir, "%s", o.out);
    char path[1200];
    snprintf(path, sizeof path, "%s/scores.csv", dir);
    if (make_dir(dir) != 0 || !(out.csv = fopen(path, "w"))) {
        fprintf(stderr, "convscope explain: cannot write into %s\n", dir);
        goto done;
    }
    if (!(range = malloc(2 * (size_t)m->input.c * sizeof(float))) ||
        cs_explain_input_range(m, range, range + m->input.c) != 0 || !(out.rows = json_array())) {
        fprintf(stderr, "convscope explain: out of memory\n");
        goto done;
    }
    fprintf(out.csv, "image,truth,predicted,class,label,method,score,probability,all_zero,deletion_auc,insertion_auc,"
                     "drop,increase,road,seconds\n");
    int failed = 0;
    for (long i = from; i <= to; i++) {
        char name[256];
        cs_image img = {0};
        int truth = -1;
        if (o.sample) {
            snprintf(name, sizeof name, "%s-%ld", split, i);
            if (cs_image_alloc(&img, d.w, d.h, 1) != CS_IMG_OK) goto done;
            memcpy(img.px, d.images + (size_t)i * d.w * d.h, (size_t)d.w * d.h);
            truth = d.labels[i];
        } else {
            uint8_t *bytes = NULL;
            size_t len = 0;
            stem(o.files[i], name, sizeof name);
            if (read_all(o.files[i], &bytes, &len) != 0 ||
                cs_image_decode(bytes, len, (size_t)1 << 28, &img, err, sizeof err) != CS_IMG_OK) {
                fprintf(stderr, "convscope explain: cannot read the image %s%s%s\n", o.files[i], bytes ? ": " : "",
                        bytes ? err : "");
                free(bytes);
                failed++;
                continue;
            }
            free(bytes);
        }
        if (explain_image(m, meths, n_meths, &o, dir, name, &img, truth, range, &out) != 0) failed++;
        cs_image_free(&img);
        if (isatty(STDERR_FILENO)) fprintf(stderr, "\rexplained %ld of %ld", i - from + 1, to - from + 1);
    }
    if (isatty(STDERR_FILENO)) fprintf(stderr, "\n");
    snprintf(path, sizeof path, "%s/scores.json", dir);
    json_t *doc = json_pack("{s:s,s:s,s:i,s:i,s:o}", "model", o.model, "arch", m->arch, "shard", o.shard, "shards",
                            o.shards, "rows", out.rows);
    out.rows = NULL;
    if (json_dump_file(doc, path, JSON_INDENT(1)) != 0) {
        fprintf(stderr, "convscope explain: cannot write %s\n", path);
        failed++;
    }
    json_decref(doc);
    printf("wrote %s/scores.csv and %s/scores.json: %ld images x %d methods%s\n", dir, dir, to - from + 1, n_meths,
           failed ? " (some failed)" : "");
    rc = failed ? 1 : 0;
done:
    if (out.csv && fclose(out.csv) != 0) rc = 1;
    json_decref(out.rows);
    free(range);
    cs_dataset_free(&d);
    cs_model_free(m);
    free(o.files);
    return rc;
}
