/*
 * test_class_index.c - data/imagenet_class_index.json against what the 1000
 * ILSVRC-2012 classes must be, so a damaged or mistranslated label file is caught.
 *
 * The independent source is WordNet 3.0 itself (Debian's wordnet-base): an ImageNet
 * id n######## is "n" and the synset's byte offset in data.noun, and every label in
 * the file is the first word of that synset. Beside it, the shape that needs no
 * outside data: keys "0".."999", ASCII names of [A-Za-z0-9_'.-], and 1000 ids in
 * strictly increasing order, which is how the ILSVRC-2012 synsets are numbered.
 *
 * Usage: test_class_index [index.json]   (default: the repository's copy, run from
 * the repository root like every test binary).
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"

#define CLASS_INDEX "data/imagenet_class_index.json"
#define N_CLASSES 1000
/* Mismatches printed one by one before the rest are only counted. */
#define MAX_REPORTED 8

static const char *index_path = CLASS_INDEX;
static json_t *root;
static json_error_t load_error;

/* Entry i as its WordNet id and name, or 0 when it is missing or not [string, string]. */
static int entry(int i, const char **wnid, const char **name)
{
    char key[16];
    snprintf(key, sizeof key, "%d", i);
    json_t *e = json_object_get(root, key);
    json_t *w = json_array_get(e, 0), *n = json_array_get(e, 1);
    if (!json_is_array(e) || json_array_size(e) != 2 || !json_is_string(w) || !json_is_string(n)) return 0;
    *wnid = json_string_value(w);
    *name = json_string_value(n);
    return 1;
}

static int is_wnid(const char *s)
{
    if (s[0] != 'n') return 0;
    for (int k = 1; k <= 8; k++)
        if (s[k] < '0' || s[k] > '9') return 0;
    return s[9] == 0;
}

/* [A-Za-z0-9_'.-]+, tested byte by byte so no locale can widen it. */
static int is_label(const char *s)
{
    if (!*s) return 0;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '_' || c == '\'' || c == '.' || c == '-';
        if (!ok) return 0;
    }
    return 1;
}

static void test_load(void)
{
    CHECK(root != NULL, "%s: %s", index_path, load_error.text);
}

static void test_keys(void)
{
    CHECK(json_is_object(root), "%s is not a JSON object", index_path);
    CHECK(json_object_size(root) == N_CLASSES, "%zu entries, expected %d", json_object_size(root), N_CLASSES);
    /* With exactly 1000 entries, finding each of "0".."999" means there is no other key. */
    int missing = 0;
    for (int i = 0; i < N_CLASSES; i++) {
        const char *wnid, *name;
        if (!entry(i, &wnid, &name) && ++missing <= MAX_REPORTED) CHECK(0, "class %d is missing or not [wnid, name]", i);
    }
    CHECK(missing <= MAX_REPORTED, "and %d more classes missing or malformed", missing - MAX_REPORTED);
}

static void test_names(void)
{
    int bad = 0;
    for (int i = 0; i < N_CLASSES; i++) {
        const char *wnid, *name;
        if (entry(i, &wnid, &name) && !is_label(name) && ++bad <= MAX_REPORTED)
            CHECK(0, "class %d (%s): name \"%s\" is not [A-Za-z0-9_'.-]+", i, wnid, name);
    }
    CHECK(bad <= MAX_REPORTED, "and %d more bad names", bad - MAX_REPORTED);
}

/* Strictly increasing also makes them 1000 distinct ids. */
static void test_wnids(void)
{
    const char *prev = NULL;
    int n = 0;
    for (int i = 0; i < N_CLASSES; i++) {
        const char *wnid, *name;
        if (!entry(i, &wnid, &name)) continue;
        CHECK(is_wnid(wnid), "class %d: id \"%s\" is not n########", i, wnid);
        if (!is_wnid(wnid)) continue;
        /* Same length and all digits after the n: byte order is numeric order. */
        CHECK(!prev || strcmp(prev, wnid) < 0, "class %d: id %s does not come after %s", i, wnid, prev);
        prev = wnid;
        n++;
    }
    CHECK(n == N_CLASSES, "%d well-formed ids, expected %d", n, N_CLASSES);
}

/* The four that a translated copy of the file once got wrong. */
static void test_corrected_entries(void)
{
    static const struct {
        int i;
        const char *wnid, *name;
    } want[] = {
        {619, "n03637318", "lampshade"},
        {765, "n04099969", "rocking_chair"},
        {831, "n04344873", "studio_couch"},
        {846, "n04380533", "table_lamp"},
    };
    for (size_t k = 0; k < sizeof want / sizeof want[0]; k++) {
        const char *wnid = "", *name = "";
        entry(want[k].i, &wnid, &name);
        CHECK(!strcmp(wnid, want[k].wnid) && !strcmp(name, want[k].name), "class %d: [%s, %s], expected [%s, %s]",
              want[k].i, wnid, name, want[k].wnid, want[k].name);
    }
}

static void test_wordnet(void)
{
    const char *dir = getenv("WNSEARCHDIR") && *getenv("WNSEARCHDIR") ? getenv("WNSEARCHDIR") : "/usr/share/wordnet";
    char path[512];
    snprintf(path, sizeof path, "%s/data.noun", dir);
    FILE *f = fopen(path, "r");
    CHECK(f != NULL, "cannot open %s (WordNet 3.0: Debian's wordnet-base, which scripts/deps.sh test installs)",
          path);
    if (!f) return;
    int bad = 0;
    for (int i = 0; i < N_CLASSES; i++) {
        const char *wnid, *name;
        if (!entry(i, &wnid, &name) || !is_wnid(wnid)) continue;
        /* A data.noun line: offset lex_filenum ss_type w_cnt word lex_id ...; the
         * offset is where the line starts in the file. */
        char line[512] = "", off[16] = "", word[256] = "";
        char type = 0;
        int ok = fseek(f, atol(wnid + 1), SEEK_SET) == 0 && fgets(line, sizeof line, f) &&
                 sscanf(line, "%15s %*s %c %*x %255s", off, &type, word) == 3 && !strcmp(off, wnid + 1) && type == 'n';
        if (!ok) {
            if (++bad <= MAX_REPORTED) CHECK(0, "class %d: %s is not a WordNet 3.0 noun synset", i, wnid);
        } else if (strcmp(word, name) != 0) {
            if (++bad <= MAX_REPORTED) CHECK(0, "class %d (%s): name \"%s\", WordNet says \"%s\"", i, wnid, name, word);
        }
    }
    CHECK(bad <= MAX_REPORTED, "and %d more classes that WordNet disagrees with", bad - MAX_REPORTED);
    fclose(f);
}

int main(int argc, char **argv)
{
    if (argc > 1) index_path = argv[1];
    root = json_load_file(index_path, 0, &load_error);
    RUN(test_load);
    if (!root) return test_summary("class_index");
    RUN(test_keys);
    RUN(test_names);
    RUN(test_wnids);
    RUN(test_corrected_entries);
    RUN(test_wordnet);
    json_decref(root);
    return test_summary("class_index");
}
