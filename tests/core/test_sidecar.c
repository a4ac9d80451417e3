/*
 * test_sidecar.c - a model's NAME.json: labels as a list, [wnid, label] pairs, a class
 * index or a labels file of lines (WordNet ids kept); the preprocessing it sets; and
 * every mistake refused by name with the model left as it was.
 */
#include <stdio.h>
#include <stdlib.h>

#include "sidecar.h"
#include "test.h"

/* A 3-class colour model with numbered classes, as importers leave them. */
static cs_model *three_classes(void)
{
    cs_model *m = cs_model_new("three", (cs_shape){4, 4, 3});
    char err[200];
    cs_layer_config d = {.units = 3, .activation = CS_ACT_SOFTMAX};
    if (cs_model_add(m, "flat", CS_FLATTEN, &(cs_layer_config){0}, err, sizeof err) < 0 ||
        cs_model_add(m, "out", CS_DENSE, &d, err, sizeof err) < 0 || cs_model_finish(m) != 0)
        exit(99);
    const char *names[] = {"0", "1", "2"};
    if (cs_model_set_classes(m, 3, names) != 0) exit(99);
    return m;
}

static int apply(cs_model *m, const char *json, const char *dir, cs_sidecar_info *info, char *err, size_t len)
{
    return cs_sidecar_apply(m, json, strlen(json), dir, info, err, len);
}

static void test_labels_forms(void)
{
    cs_model *m = three_classes();
    cs_sidecar_info info;
    char err[300] = "";
    CHECK(apply(m, "{\"labels\": [\"cat\", \"dog\", \"fox\"], \"description\": \"pets\"}", NULL, &info, err,
                sizeof err) == 0,
          "a list: %s", err);
    CHECK(info.labels && !info.preprocessing && !strcmp(info.description, "pets"), "info");
    CHECK(!strcmp(m->class_names[2], "fox") && !m->class_ids, "names, no ids");
    CHECK(apply(m, "{\"labels\": [[\"n01\", \"a\"], [\"n02\", \"b\"], [\"n03\", \"c\"]]}", NULL, &info, err,
                sizeof err) == 0,
          "pairs: %s", err);
    CHECK(m->class_ids && !strcmp(m->class_ids[1], "n02") && !strcmp(m->class_names[1], "b"), "pairs give ids");
    char **names, **ids;
    int n;
    const char *lines = "n01440764 tench, Tinca tinca\r\nn01443537 goldfish\nn01484850 great white shark\n\n";
    CHECK(cs_sidecar_parse_labels(lines, strlen(lines), &names, &ids, &n, err, sizeof err) == 0 && n == 3,
          "lines with WordNet ids: %d %s", n, err);
    CHECK(!strcmp(ids[0], "n01440764") && !strcmp(names[0], "tench, Tinca tinca") &&
              !strcmp(names[2], "great white shark"),
          "id and label split at the first space");
    cs_sidecar_free_labels(names, ids, n);
    const char *plain = "T-shirt\nTrouser\n";
    CHECK(cs_sidecar_parse_labels(plain, strlen(plain), &names, &ids, &n, err, sizeof err) == 0 && n == 2 && !ids[0] &&
              !strcmp(names[1], "Trouser"),
          "plain lines");
    cs_sidecar_free_labels(names, ids, n);
    const char *index = "{\"1\": [\"n2\", \"two\"], \"0\": [\"n1\", \"one\"]}";
    CHECK(cs_sidecar_parse_labels(index, strlen(index), &names, &ids, &n, err, sizeof err) == 0 && n == 2 &&
              !strcmp(names[0], "one") && !strcmp(ids[1], "n2"),
          "a class index in any order");
    cs_sidecar_free_labels(names, ids, n);
    const char *gap = "a\n\nb\n";
    CHECK(cs_sidecar_parse_labels(gap, strlen(gap), &names, &ids, &n, err, sizeof err) == -1 && strstr(err, "line 2"),
          "an empty line inside: %s", err);
    const char *missing = "{\"0\": \"a\", \"2\": \"c\"}";
    CHECK(cs_sidecar_parse_labels(missing, strlen(missing), &names, &ids, &n, err, sizeof err) == -1 &&
              strstr(err, "class 1 is missing"),
          "%s", err);
    cs_model_free(m);
}

static void test_labels_file(void)
{
    const char *dir = test_scratch_dir("sidecar");
    char path[700];
    snprintf(path, sizeof path, "%s/classes.txt", dir);
    FILE *f = fopen(path, "w");
    if (!f) exit(99);
    fputs("red\ngreen\nblue\n", f);
    fclose(f);
    cs_model *m = three_classes();
    char err[300] = "";
    CHECK(apply(m, "{\"labels_file\": \"classes.txt\"}", dir, NULL, err, sizeof err) == 0 &&
              !strcmp(m->class_names[1], "green"),
          "labels from a file in the folder: %s", err);
    CHECK(apply(m, "{\"labels_file\": \"../classes.txt\"}", dir, NULL, err, sizeof err) == -1 &&
              strstr(err, "file name in the models folder"),
          "no climbing out: %s", err);
    CHECK(apply(m, "{\"labels_file\": \"classes.txt\"}", NULL, NULL, err, sizeof err) == -1 &&
              strstr(err, "not allowed"),
          "no folder, no file: %s", err);
    CHECK(apply(m, "{\"labels_file\": \"none.txt\"}", dir, NULL, err, sizeof err) == -1 && strstr(err, "none.txt"),
          "a missing file named: %s", err);
    /* The sidecar file itself: none is fine, a wrong one names its path. */
    snprintf(path, sizeof path, "%s/model.json", dir);
    cs_sidecar_info info;
    CHECK(cs_sidecar_apply_file(m, path, &info, err, sizeof err) == 0 && !info.labels, "no sidecar, nothing changes");
    f = fopen(path, "w");
    if (!f) exit(99);
    fputs("{\"labels_file\": \"classes.txt\", \"preprocessing\": {\"mode\": \"torch\"}}", f);
    fclose(f);
    CHECK(cs_sidecar_apply_file(m, path, &info, err, sizeof err) == 0 && info.labels && info.preprocessing &&
              !strcmp(m->preprocess.mode, "torch"),
          "a sidecar file with a labels file beside it: %s", err);
    f = fopen(path, "w");
    if (!f) exit(99);
    fputs("{\"labels\": [\"x\"]", f);
    fclose(f);
    CHECK(cs_sidecar_apply_file(m, path, &info, err, sizeof err) == -1 && strstr(err, "model.json") &&
              strstr(err, "invalid JSON"),
          "a broken file names itself: %s", err);
    cs_model_free(m);
}

/* A mistake leaves the model as it was: labels and pipeline. */
static void test_refused(void)
{
    static const struct {
        const char *json, *says;
    } bad[] = {
        {"{\"labels\": [\"a\", \"b\"]}", "2 labels for a model of 3 classes"},
        {"{\"label\": [\"a\", \"b\", \"c\"]}", "unknown key 'label'"},
        {"{\"labels\": [\"a\", \"b\", \"c\"], \"preprocessing\": {\"color\": \"gray\"}}", "does not fit"},
        {"{\"labels\": [\"a\", \"b\", \"c\"], \"labels_file\": \"x.txt\"}", "not both"},
        {"{\"labels\": [\"a\", 2, \"c\"]}", "entry 1"},
        {"{\"labels\": \"a b c\"}", "expected a list"},
        {"[]", "expected an object"},
        {"{\"labels\": ", "invalid JSON"},
    };
    cs_model *m = three_classes();
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char err[300] = "";
        int rc = apply(m, bad[i].json, NULL, NULL, err, sizeof err);
        CHECK(rc == -1 && strstr(err, bad[i].says), "%s refused: %s", bad[i].json, err);
        CHECK(!strcmp(m->class_names[0], "0") && !strcmp(m->preprocess.mode, "unit"), "the model is unchanged");
    }
    cs_model_free(m);
}

int main(void)
{
    RUN(test_labels_forms);
    RUN(test_labels_file);
    RUN(test_refused);
    return test_summary("sidecar");
}
