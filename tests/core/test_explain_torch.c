/*
 * test_explain_torch.c - Grad-CAM, Grad-CAM++ and Score-CAM of the notebook's network
 * (models/fmnist.csm, test image 18, leaky_re_lu_2, both score kinds) against PyTorch's
 * computation of the papers' formulas (tests/explain/make_reference.py wrote
 * tests/data/explain/fmnist_torch.json), to 1e-3 on the maps divided by their maximum;
 * Score-CAM in batches of several sizes and one forward per channel.
 */
#include <jansson.h>
#include <zlib.h>

#include "dataset.h"
#include "explain/explain.h"
#include "model_file.h"
#include "test.h"

#define FIXTURE "tests/data/explain/fmnist_torch.json"
#define MODEL "models/fmnist.csm"

static json_t *g_ref;
static cs_model *g_m;
static float g_x[784];

static void compare(const char *method, const char *kind, int batch)
{
    char key[64], err[300];
    snprintf(key, sizeof key, "%s_%s", method, kind);
    json_t *ref = json_object_get(json_object_get(g_ref, "maps"), key);
    CHECK(json_array_size(ref) == 121, "%s: 11x11 reference", key);
    if (json_array_size(ref) != 121) return;
    cs_explainer ex;
    CHECK(cs_explainer_init(&ex, g_m, g_x, NULL, err, sizeof err) == 0, "%s", err);
    cs_explain_params p;
    cs_explain_params_default(&p);
    p.layer = cs_model_find_layer(g_m, json_string_value(json_object_get(g_ref, "layer")));
    p.class_index = (int)json_integer_value(json_object_get(g_ref, "class"));
    p.score_kind = strcmp(kind, "logit") ? CS_SCORE_PROBABILITY : CS_SCORE_LOGIT;
    p.batch = batch;
    cs_explain_map m;
    if (cs_explain_run(&ex, cs_explain_find(method), &p, &m, err, sizeof err) != 0) {
        CHECK(0, "%s: %s", key, err);
        cs_explainer_free(&ex);
        return;
    }
    double worst = 0, top = 0;
    for (int i = 0; i < 121; i++) {
        double r = json_number_value(json_array_get(ref, i));
        worst = fmax(worst, fabs(m.heat[i] - r));
        top = fmax(top, r);
    }
    CHECK(top == 1, "%s: the reference is scaled to 1", key);
    CHECK(worst <= 1e-3, "%s batch %d: largest difference from PyTorch %.3g", key, batch, worst);
    fprintf(stderr, "    %-22s batch %2d: largest difference %.2g\n", key, batch, worst);
    cs_explain_map_free(&m);
    cs_explainer_free(&ex);
}

static void test_gradcam(void)
{
    compare("gradcam", "logit", 0);
    compare("gradcam", "probability", 0);
}

static void test_gradcampp(void)
{
    compare("gradcampp", "logit", 0);
    compare("gradcampp", "probability", 0);
}

static void test_scorecam_any_batch(void)
{
    compare("scorecam", "logit", 0);
    compare("scorecam", "logit", 1);
    compare("scorecam", "logit", 7);
    compare("scorecam", "probability", 0);
}

int main(void)
{
    json_error_t jerr;
    char err[300];
    if (!(g_ref = json_load_file(FIXTURE, 0, &jerr))) {
        fprintf(stderr, "setup: %s: %s (run from the repository's root)\n", FIXTURE, jerr.text);
        return 99;
    }
    size_t len;
    unsigned char *bytes = test_read_file(MODEL, &len);
    if (!bytes || len < 4) {
        fprintf(stderr, "setup: cannot read %s\n", MODEL);
        return 99;
    }
    /* The file ends in the CRC-32 of everything before it: the reference's model? */
    unsigned long crc = crc32(0L, bytes, (uInt)(len - 4));
    free(bytes);
    unsigned long want = (unsigned long)json_integer_value(json_object_get(g_ref, "model_crc32"));
    if (crc != want) {
        fprintf(stderr, "FAIL: %s changed since the reference was written (CRC %08lx, reference %08lx): run\n"
                        "  /usr/bin/python3 tests/explain/make_reference.py > " FIXTURE "\n",
                MODEL, crc, want);
        printf("[explain_torch] 0 ok, 1 failed\n");
        return 1;
    }
    if (!(g_m = cs_model_load(MODEL, err, sizeof err))) {
        fprintf(stderr, "setup: %s\n", err);
        return 99;
    }
    cs_dataset d;
    if (cs_dataset_load(CS_DEFAULT_DATA_DIR, "test", &d, err, sizeof err) != 0) {
        fprintf(stderr, "setup: %s\n", err);
        return 99;
    }
    cs_dataset_image_float(&d, (int)json_integer_value(json_object_get(g_ref, "sample")), g_x);
    cs_dataset_free(&d);
    RUN(test_gradcam);
    RUN(test_gradcampp);
    RUN(test_scorecam_any_batch);
    cs_model_free(g_m);
    json_decref(g_ref);
    return test_summary("explain_torch");
}
