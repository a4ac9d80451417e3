/*
 * test_model_file.c - the .csm model file: exact round trips of the notebook's
 * network and of a custom architecture, every kind of damaged file, and saving
 * that replaces files atomically and leaves nothing behind when it fails.
 */
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "model.h"
#include "model_file.h"
#include "test.h"

static const char *tmp_root;

static void write_all(const char *path, const unsigned char *buf, size_t len)
{
    FILE *f = fopen(path, "wb");
    fwrite(buf, 1, len, f);
    fclose(f);
}

/* Rewrites the trailing CRC so a deliberately edited file passes the checksum and
 * reaches the checks behind it. */
static void fix_crc(unsigned char *buf, size_t len)
{
    uLong crc = crc32(0L, buf, (uInt)(len - 4));
    for (int i = 0; i < 4; i++)
        buf[len - 4 + i] = (unsigned char)(crc >> (8 * i));
}

/* Number of entries in dir whose name contains `part`. */
static int count_entries(const char *dir, const char *part)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += strstr(e->d_name, part) != NULL;
    closedir(d);
    return n;
}

static void set_meta(cs_model *m)
{
    m->meta.test_accuracy = 0.9123;
    snprintf(m->meta.trained_at, sizeof m->meta.trained_at, "2024-05-01T12:34:56Z");
    m->meta.epochs = 2;
    m->meta.batch_size = 128;
    m->meta.learning_rate = 1e-3f;
    m->meta.seed = 42;
    m->meta.train_images = 60000;
    m->meta.test_images = 2500;
    m->meta.n_history = 2;
    m->meta.history = calloc(2, sizeof *m->meta.history);
    m->meta.history[0] = (cs_epoch_record){1, 0.5213f, 0.8312f, 0.8601f, 7.9, 0.4012f};
    m->meta.history[1] = (cs_epoch_record){2, 0.3401f, 0.8822f, -1.0f, 8.25, -1.0f};
}

/* Everything that defines a model, compared field by field; floats bit for bit. */
static void compare_models(const cs_model *a, const cs_model *b)
{
    CHECK(strcmp(a->arch, b->arch) == 0, "arch '%s' vs '%s'", a->arch, b->arch);
    CHECK(a->input.h == b->input.h && a->input.w == b->input.w && a->input.c == b->input.c,
          "input shape");
    CHECK(a->n_layers == b->n_layers, "layers %d vs %d", a->n_layers, b->n_layers);
    for (int i = 0; i < a->n_layers && i < b->n_layers; i++) {
        const cs_layer *x = &a->layers[i], *y = &b->layers[i];
        CHECK(strcmp(x->name, y->name) == 0, "layer %d name '%s' vs '%s'", i, x->name, y->name);
        CHECK(x->kind == y->kind, "layer %d kind", i);
        CHECK(memcmp(&x->cfg, &y->cfg, sizeof x->cfg) == 0, "layer %d (%s) config differs", i,
              x->name);
        CHECK(x->in.h == y->in.h && x->in.w == y->in.w && x->in.c == y->in.c, "layer %d input", i);
        CHECK(x->out.h == y->out.h && x->out.w == y->out.w && x->out.c == y->out.c,
              "layer %d output", i);
        CHECK(x->n_params == y->n_params, "layer %d params", i);
        for (int j = 0; j < x->n_params && j < y->n_params; j++) {
            const cs_param *p = &x->params[j], *q = &y->params[j];
            CHECK(strcmp(p->name, q->name) == 0 && p->size == q->size && p->ndim == q->ndim &&
                      memcmp(p->dims, q->dims, sizeof p->dims) == 0 && p->trainable == q->trainable,
                  "layer %d param %d (%s)", i, j, p->name);
            CHECK(p->l1 == q->l1 && p->l2 == q->l2, "layer %d param %s regulariser", i, p->name);
            CHECK(p->data - a->param_block == q->data - b->param_block, "layer %d param %s offset",
                  i, p->name);
        }
    }
    CHECK(a->n_param_floats == b->n_param_floats, "floats %zu vs %zu", a->n_param_floats,
          b->n_param_floats);
    if (a->n_param_floats == b->n_param_floats)
        CHECK(memcmp(a->param_block, b->param_block, a->n_param_floats * sizeof(float)) == 0,
              "parameters differ");
    CHECK(a->n_classes == b->n_classes, "classes %d vs %d", a->n_classes, b->n_classes);
    for (int i = 0; i < a->n_classes && i < b->n_classes; i++)
        CHECK(strcmp(a->class_names[i], b->class_names[i]) == 0, "class %d '%s' vs '%s'", i,
              a->class_names[i], b->class_names[i]);
    CHECK(!a->class_ids == !b->class_ids, "class ids present in one only");
    for (int i = 0; a->class_ids && b->class_ids && i < a->n_classes; i++)
        CHECK(strcmp(a->class_ids[i], b->class_ids[i]) == 0, "class id %d", i);

    const cs_model_meta *s = &a->meta, *t = &b->meta;
    CHECK(s->test_accuracy == t->test_accuracy, "test accuracy %.17g vs %.17g", s->test_accuracy,
          t->test_accuracy);
    CHECK(strcmp(s->trained_at, t->trained_at) == 0, "trained_at '%s' vs '%s'", s->trained_at,
          t->trained_at);
    CHECK(s->epochs == t->epochs && s->batch_size == t->batch_size &&
              s->train_images == t->train_images && s->test_images == t->test_images && s->seed == t->seed &&
              s->learning_rate == t->learning_rate,
          "hyper-parameters");
    CHECK(s->n_history == t->n_history, "history %d vs %d", s->n_history, t->n_history);
    for (int i = 0; i < s->n_history && i < t->n_history; i++) {
        const cs_epoch_record *r = &s->history[i], *q = &t->history[i];
        CHECK(r->epoch == q->epoch, "epoch %d", i);
        CHECK(r->loss == q->loss || (isnan(r->loss) && isnan(q->loss)), "loss %d: %.9g vs %.9g", i,
              r->loss, q->loss);
        CHECK(r->accuracy == q->accuracy, "accuracy %d", i);
        CHECK(r->test_accuracy == q->test_accuracy, "test accuracy %d: %g vs %g", i,
              r->test_accuracy, q->test_accuracy);
        CHECK(r->seconds == q->seconds, "seconds %d: %.17g vs %.17g", i, r->seconds, q->seconds);
        CHECK(r->test_loss == q->test_loss, "test loss %d: %.9g vs %.9g", i, r->test_loss, q->test_loss);
    }
}

static cs_model *fmnist_with_meta(uint64_t seed)
{
    cs_model *m = cs_model_build_fmnist();
    if (!m)
        return NULL;
    cs_model_init_weights(m, seed);
    /* Batch-norm moving statistics are not touched by initialisation; give them
     * values so that they are checked too. */
    for (size_t i = 0; i < m->n_param_floats; i += 97)
        m->param_block[i] += 1e-3f * (float)(i % 13);
    set_meta(m);
    return m;
}

static void test_fmnist_round_trip(void)
{
    cs_model *m = fmnist_with_meta(42);
    CHECK(m != NULL, "fmnist model");
    if (!m)
        return;
    char err[512] = "";
    const char *path = test_scratch_path("fmnist.csm");
    int rc = cs_model_save(m, path, err, sizeof err);
    CHECK(rc == 0, "save: %s", err);
    cs_model *back = cs_model_load(path, err, sizeof err);
    CHECK(back != NULL, "load: %s", err);
    if (back) {
        compare_models(m, back);
        CHECK(cs_model_param_count(back) == cs_model_param_count(m), "param count");
    }
    struct stat st;
    stat(path, &st);
    CHECK((size_t)st.st_size > 4 * m->n_param_floats + 28, "file size %lld",
          (long long)st.st_size);
    CHECK(count_entries(tmp_root, ".tmp.") == 0, "temporary file left behind");
    cs_model_free(back);
    cs_model_free(m);
}

/* An architecture unlike the notebook's: every layer kind, 'same' padding, stride 2,
 * fused ReLU, odd sizes, three input channels, classes with ids. */
static cs_model *custom_model(void)
{
    cs_model *m = cs_model_new("tiny-test", (cs_shape){9, 7, 3});
    char err[256];
    cs_layer_config conv = {.filters = 5, .kernel = 3, .stride = 2, .pad_same = 1,
                            .activation = CS_ACT_RELU, .l2 = 0.5f};
    cs_layer_config conv2 = {.filters = 4, .kernel = 2, .stride = 1, .he_normal = 1};
    cs_layer_config relu = {0}, flat = {0};
    cs_layer_config bn = {.momentum = 0.9f, .epsilon = 1e-5f};
    cs_layer_config leaky = {.alpha = 0.125f};
    cs_layer_config pool = {.pool = 2};
    cs_layer_config drop = {.rate = 0.25f};
    cs_layer_config dense = {.units = 3, .activation = CS_ACT_SOFTMAX, .l1 = 0.01f};
    int ok = cs_model_add(m, "c1", CS_CONV2D, &conv, err, sizeof err) >= 0 &&
             cs_model_add(m, "bn", CS_BATCHNORM, &bn, err, sizeof err) >= 0 &&
             cs_model_add(m, "lk", CS_LEAKY_RELU, &leaky, err, sizeof err) >= 0 &&
             cs_model_add(m, "c2", CS_CONV2D, &conv2, err, sizeof err) >= 0 &&
             cs_model_add(m, "r", CS_RELU, &relu, err, sizeof err) >= 0 &&
             cs_model_add(m, "p", CS_MAXPOOL, &pool, err, sizeof err) >= 0 &&
             cs_model_add(m, "f", CS_FLATTEN, &flat, err, sizeof err) >= 0 &&
             cs_model_add(m, "d", CS_DROPOUT, &drop, err, sizeof err) >= 0 &&
             cs_model_add(m, "out", CS_DENSE, &dense, err, sizeof err) >= 0 &&
             cs_model_finish(m) == 0;
    if (!ok) {
        fprintf(stderr, "custom model: %s\n", err);
        cs_model_free(m);
        return NULL;
    }
    static const char *const names[3] = {"cat", "dog", "\xc3\xa9l\xc3\xa9phant"};
    cs_model_set_classes(m, 3, names);
    m->class_ids = calloc(3, sizeof *m->class_ids);
    for (int i = 0; i < 3; i++) {
        m->class_ids[i] = malloc(16);
        snprintf(m->class_ids[i], 16, "n%08d", i + 1);
    }
    for (size_t i = 0; i < m->n_param_floats; i++)
        m->param_block[i] = (float)((double)i * 0.37 - 3.0) * (i % 2 ? 1.0f : -1e-20f);
    m->param_block[0] = -0.0f;
    m->param_block[1] = 1e-42f; /* subnormal */
    m->param_block[2] = 3.4e38f;
    m->meta.seed = UINT64_MAX - 5; /* beyond JSON's signed integers */
    m->meta.n_history = 1;
    m->meta.history = calloc(1, sizeof *m->meta.history);
    m->meta.history[0] = (cs_epoch_record){1, NAN, 0.1f, 0.3f, 1e-3, 2.25f};
    return m;
}

static void test_custom_round_trip(void)
{
    cs_model *m = custom_model();
    CHECK(m != NULL, "custom model");
    if (!m)
        return;
    char err[512] = "";
    const char *path = test_scratch_path("custom.csm");
    CHECK(cs_model_save(m, path, err, sizeof err) == 0, "save: %s", err);
    cs_model *back = cs_model_load(path, err, sizeof err);
    CHECK(back != NULL, "load: %s", err);
    if (back) {
        compare_models(m, back);
        CHECK(signbit(back->param_block[0]), "negative zero kept");
    }
    cs_model_free(back);

    /* A model without classes or history round-trips too. */
    cs_model *bare = cs_model_new("bare", (cs_shape){4, 4, 1});
    cs_layer_config flat = {0}, dense = {.units = 2};
    cs_model_add(bare, "f", CS_FLATTEN, &flat, err, sizeof err);
    cs_model_add(bare, "d", CS_DENSE, &dense, err, sizeof err);
    cs_model_finish(bare);
    CHECK(cs_model_save(bare, path, err, sizeof err) == 0, "save bare: %s", err);
    back = cs_model_load(path, err, sizeof err);
    CHECK(back != NULL, "load bare: %s", err);
    if (back) {
        compare_models(bare, back);
        CHECK(back->meta.test_accuracy < 0, "unknown accuracy stays unknown");
    }
    cs_model_free(back);
    cs_model_free(bare);
    cs_model_free(m);
}

/* Loads a file that must fail; the one-line message must name the file and say `want`. */
static void expect_load_fail(const char *path, const char *want)
{
    char err[512] = "";
    cs_model *m = cs_model_load(path, err, sizeof err);
    if (getenv("CS_PRINT_ERRORS"))
        fprintf(stderr, "    %s\n", err);
    CHECK(m == NULL, "%s loaded but should not", path);
    CHECK(strstr(err, path) != NULL, "message '%s' does not name the file", err);
    CHECK(strstr(err, want) != NULL, "message '%s' lacks '%s'", err, want);
    CHECK(strchr(err, '\n') == NULL, "message has more than one line: '%s'", err);
    cs_model_free(m);
}

static void test_damaged_files(void)
{
    cs_model *m = fmnist_with_meta(7);
    if (!m)
        return;
    char err[512] = "";
    const char *good = test_scratch_path("good.csm");
    CHECK(cs_model_save(m, good, err, sizeof err) == 0, "save: %s", err);
    size_t len;
    unsigned char *orig = test_read_file(good, &len);
    CHECK(orig != NULL, "read back");
    if (!orig) {
        cs_model_free(m);
        return;
    }
    unsigned char *buf = malloc(len + 16);
    const char *bad = test_scratch_path("bad.csm");

    /* One byte in the middle of the parameters, and one in the metadata. */
    memcpy(buf, orig, len);
    buf[len / 2] ^= 0x10;
    write_all(bad, buf, len);
    expect_load_fail(bad, "checksum mismatch (file is corrupt)");
    memcpy(buf, orig, len);
    buf[40] ^= 0x01;
    write_all(bad, buf, len);
    expect_load_fail(bad, "checksum mismatch");
    memcpy(buf, orig, len);
    buf[len - 1] ^= 0x80; /* the checksum itself */
    write_all(bad, buf, len);
    expect_load_fail(bad, "checksum mismatch");

    /* Truncated at several places: the message gives expected and found sizes. */
    size_t cuts[] = {len - 1, len / 2, 200, 20, 10, 5, 0};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        write_all(bad, orig, cuts[i]);
        char found[32];
        snprintf(found, sizeof found, "found %zu", cuts[i]);
        expect_load_fail(bad, cuts[i] ? "truncated" : "not a convscope model file");
        if (cuts[i] >= 16)
            expect_load_fail(bad, found);
    }
    write_all(bad, orig, len / 2);
    char want[64];
    snprintf(want, sizeof want, "expected %zu bytes, found %zu", len, len / 2);
    expect_load_fail(bad, want);

    /* Extra bytes after the checksum. */
    memcpy(buf, orig, len);
    memcpy(buf + len, "garbage!", 8);
    write_all(bad, buf, len + 8);
    expect_load_fail(bad, "corrupt");

    /* Wrong magic, another format, a future version. */
    memcpy(buf, orig, len);
    buf[0] = 'X';
    write_all(bad, buf, len);
    expect_load_fail(bad, "not a convscope model file");
    write_all(bad, (const unsigned char *)"\x89PNG\r\n\x1a\n and more", 18);
    expect_load_fail(bad, "not a convscope model file");
    memcpy(buf, orig, len);
    buf[8] = 7;
    write_all(bad, buf, len);
    expect_load_fail(bad, "format version 7 not supported");

    /* Metadata that is wrong although the checksum is right: the architecture no
     * longer matches the parameters, or the JSON is broken. */
    memcpy(buf, orig, len);
    unsigned char *hit = memmem(buf, len, "\"filters\":32", 12);
    CHECK(hit != NULL, "metadata has \"filters\":32");
    if (hit) {
        hit[11] = '3'; /* 33 filters */
        fix_crc(buf, len);
        write_all(bad, buf, len);
        expect_load_fail(bad, "metadata");
    }
    memcpy(buf, orig, len);
    hit = memmem(buf, len, "\"layers\":[", 10);
    if (hit) {
        hit[9] = '{';
        fix_crc(buf, len);
        write_all(bad, buf, len);
        expect_load_fail(bad, "not valid JSON");
    }
    memcpy(buf, orig, len);
    hit = memmem(buf, len, "\"Conv2D\"", 8);
    if (hit) {
        memcpy(hit, "\"Conv3D\"", 8);
        fix_crc(buf, len);
        write_all(bad, buf, len);
        expect_load_fail(bad, "Conv3D");
    }
    /* A float count that disagrees with the architecture, sizes kept consistent:
     * drop the last float and patch the count. */
    memcpy(buf, orig, len);
    uint32_t meta_len = (uint32_t)buf[12] | (uint32_t)buf[13] << 8 | (uint32_t)buf[14] << 16 |
                        (uint32_t)buf[15] << 24;
    size_t count_at = 16 + meta_len;
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = n << 8 | buf[count_at + (size_t)i];
    CHECK(n == m->n_param_floats, "count in file %llu", (unsigned long long)n);
    n -= 1;
    for (int i = 0; i < 8; i++)
        buf[count_at + (size_t)i] = (unsigned char)(n >> (8 * i));
    memmove(buf + len - 8, buf + len - 4, 4);
    fix_crc(buf, len - 4);
    write_all(bad, buf, len - 4);
    expect_load_fail(bad, "parameters");
    /* An absurd count must not be taken as a size to allocate. */
    memcpy(buf, orig, len);
    for (int i = 0; i < 8; i++)
        buf[count_at + (size_t)i] = 0xff;
    write_all(bad, buf, len);
    expect_load_fail(bad, "corrupt");

    /* Missing files and folders. */
    expect_load_fail(test_scratch_path("no-such-model.csm"), "No such file");
    expect_load_fail(tmp_root, "folder");

    /* The undamaged file still loads. */
    cs_model *ok = cs_model_load(good, err, sizeof err);
    CHECK(ok != NULL, "good file: %s", err);
    cs_model_free(ok);
    free(buf);
    free(orig);
    cs_model_free(m);
}

static void test_atomic_save(void)
{
    char err[512] = "";
    cs_model *a = fmnist_with_meta(1), *b = fmnist_with_meta(2);
    if (!a || !b) {
        cs_model_free(a);
        cs_model_free(b);
        return;
    }
    b->meta.epochs = 5;

    /* Into a folder that does not exist: an error, and no temporary file anywhere. */
    const char *missing = test_scratch_path("missing/dir/model.csm");
    err[0] = 0;
    CHECK(cs_model_save(a, missing, err, sizeof err) == -1, "saved into a missing folder");
    CHECK(strstr(err, "missing/dir/model.csm") != NULL, "message names the target: %s", err);
    CHECK(count_entries(tmp_root, ".tmp.") == 0, "temporary file left behind");

    /* Over an existing file: the new content replaces it. */
    const char *path = test_scratch_path("replace.csm");
    CHECK(cs_model_save(a, path, err, sizeof err) == 0, "first save: %s", err);
    CHECK(cs_model_save(b, path, err, sizeof err) == 0, "second save: %s", err);
    cs_model *got = cs_model_load(path, err, sizeof err);
    CHECK(got != NULL, "load: %s", err);
    if (got) {
        CHECK(got->meta.epochs == 5, "the second model is on disk");
        CHECK(memcmp(got->param_block, b->param_block, b->n_param_floats * sizeof(float)) == 0,
              "its parameters");
    }
    cs_model_free(got);

    /* When the rename fails (the target is a folder), the target is untouched and
     * the temporary file is gone. */
    const char *dir_target = test_scratch_path("taken.csm");
    mkdir(dir_target, 0700);
    char inner[300];
    snprintf(inner, sizeof inner, "%s/keep.txt", dir_target);
    write_all(inner, (const unsigned char *)"keep", 4);
    err[0] = 0;
    CHECK(cs_model_save(a, dir_target, err, sizeof err) == -1, "saved over a folder");
    CHECK(err[0] != 0 && strstr(err, "taken.csm"), "message: %s", err);
    size_t len = 0;
    unsigned char *kept = test_read_file(inner, &len);
    CHECK(kept && len == 4 && memcmp(kept, "keep", 4) == 0, "folder content intact");
    free(kept);
    CHECK(count_entries(tmp_root, ".tmp.") == 0, "temporary file left behind");
    unlink(inner);
    rmdir(dir_target);

    /* A read-only folder: creating the temporary file fails, the old file stays. */
    if (geteuid() != 0) {
        char ro[300];
        snprintf(ro, sizeof ro, "%s/ro", tmp_root);
        mkdir(ro, 0700);
        char target[320];
        snprintf(target, sizeof target, "%s/m.csm", ro);
        CHECK(cs_model_save(a, target, err, sizeof err) == 0, "save: %s", err);
        chmod(ro, 0500);
        CHECK(cs_model_save(b, target, err, sizeof err) == -1, "saved into a read-only folder");
        chmod(ro, 0700);
        got = cs_model_load(target, err, sizeof err);
        CHECK(got && got->meta.epochs == 2, "old model intact: %s", err);
        cs_model_free(got);
        CHECK(count_entries(ro, ".tmp.") == 0, "temporary file left behind");
        unlink(target);
        rmdir(ro);
    }
    cs_model_free(a);
    cs_model_free(b);
}

/* The metadata is plain JSON with the documented top-level keys. */
static void test_metadata_readable(void)
{
    cs_model *m = fmnist_with_meta(3);
    if (!m)
        return;
    char err[512];
    const char *path = test_scratch_path("meta.csm");
    CHECK(cs_model_save(m, path, err, sizeof err) == 0, "save: %s", err);
    size_t len;
    unsigned char *buf = test_read_file(path, &len);
    if (buf) {
        CHECK(memcmp(buf, "CSMODEL\0", 8) == 0, "magic");
        CHECK(buf[8] == CS_MODEL_FORMAT_VERSION && !buf[9] && !buf[10] && !buf[11], "version");
        uint32_t L = (uint32_t)buf[12] | (uint32_t)buf[13] << 8 | (uint32_t)buf[14] << 16 |
                     (uint32_t)buf[15] << 24;
        CHECK(len == 16 + L + 8 + 4 * m->n_param_floats + 4, "size %zu", len);
        char *json = strndup((const char *)buf + 16, L);
        const char *keys[] = {"\"arch\":\"fmnist\"",
                              "\"input\":[28,28,1]",
                              "\"name\":\"conv2d_1\",\"kind\":\"Conv2D\"",
                              "\"padding\":\"valid\"",
                              "\"alpha\":0.3}",
                              "\"output\":[11,11,64]",
                              "\"name\":\"moving_variance\"",
                              "\"Ankle boot\"",
                              "\"learning_rate\":0.001",
                              "\"test_accuracy\":0.9123",
                              "\"trained_at\":\"2024-05-01T12:34:56Z\"",
                              "\"history\":[{\"epoch\":1,\"loss\":0.5213",
                              "\"test_loss\":0.4012,",
                              "\"test_accuracy\":null,\"test_loss\":null,"};
        for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
            CHECK(strstr(json, keys[i]) != NULL, "metadata lacks %s", keys[i]);
        if (getenv("CS_PRINT_METADATA"))
            printf("%s\n", json);
        free(json);
        free(buf);
    }
    cs_model_free(m);
}

/* A file written before the test loss was recorded (its history has no test_loss)
 * loads, and says the test loss is unknown. */
static void test_history_without_test_loss(void)
{
    cs_model *m = fmnist_with_meta(5);
    if (!m)
        return;
    m->meta.history[0].test_loss = 0.625f;
    char err[512] = "";
    const char *path = test_scratch_path("older.csm");
    CHECK(cs_model_save(m, path, err, sizeof err) == 0, "save: %s", err);
    size_t len;
    unsigned char *buf = test_read_file(path, &len);
    if (buf) {
        /* Blank the key out (JSON allows the spaces), keeping every length. */
        const char *key = "\"test_loss\":0.625,";
        unsigned char *at = memmem(buf, len, key, strlen(key));
        CHECK(at != NULL, "the file records the test loss");
        if (at) {
            memset(at, ' ', strlen(key));
            fix_crc(buf, len);
            write_all(path, buf, len);
            cs_model *back = cs_model_load(path, err, sizeof err);
            CHECK(back != NULL, "an older history loads: %s", err);
            if (back) {
                CHECK(back->meta.n_history == 2 && back->meta.history[0].test_loss < 0,
                      "its test loss is unknown: %g", back->meta.history[0].test_loss);
                CHECK(back->meta.history[0].test_accuracy == 0.8601f && back->meta.history[0].loss == 0.5213f,
                      "the rest is read as before");
            }
            cs_model_free(back);
        }
        free(buf);
    }
    cs_model_free(m);
}

int main(void)
{
    tmp_root = test_scratch_dir("model-file");
    RUN(test_fmnist_round_trip);
    RUN(test_custom_round_trip);
    RUN(test_damaged_files);
    RUN(test_atomic_save);
    RUN(test_metadata_readable);
    RUN(test_history_without_test_loss);
    return test_summary("model_file");
}
