/*
 * test_cli_explain.c - `convscope explain` over a range of test images and over files:
 * the maps it writes are the core's maps, its scores the core's numbers, a shard does
 * its part of the range (from --shard or $JOB_COMPLETION_INDEX), and bad options end
 * with one line naming them and exit status 2.
 */
#include <jansson.h>
#include <sys/wait.h>

#include "dataset.h"
#include "explain/explain.h"
#include "explain/faith.h"
#include "model_file.h"
#include "npy.h"
#include "test.h"

/* The binary of the build under test (build/check/convscope for make check). */
#ifdef CS_TEST_BIN
#define BIN CS_TEST_BIN
#else
#define BIN "build/convscope"
#endif
static const char *dir;

static int run(const char *args, char *err, size_t errlen)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, BIN " explain %s >%s/out 2>%s/err", args, dir, dir);
    int st = system(cmd);
    char path[600];
    snprintf(path, sizeof path, "%s/err", dir);
    char *text = test_read_file(path, NULL);
    snprintf(err, errlen, "%s", text ? text : "");
    free(text);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int count_lines(const char *path)
{
    char *text = test_read_file(path, NULL);
    int n = 0;
    for (char *p = text; p && *p; p++) n += *p == '\n';
    free(text);
    return n;
}

static void test_maps_and_scores_are_the_cores(void)
{
    char args[1024], err[4096];
    snprintf(args, sizeof args, "--model models/fmnist.csm --method gradcam,integrated_gradients --steps 32 --out %s/a "
                                "--sample test:18-19",
             dir);
    CHECK(run(args, err, sizeof err) == 0, "runs: %s", err);
    CHECK(count_lines(test_scratch_path("a/scores.csv")) == 5, "a header and 2 x 2 rows");
    cs_model *m = cs_model_load("models/fmnist.csm", err, sizeof err);
    cs_dataset d;
    CHECK(m && cs_dataset_load(CS_DEFAULT_DATA_DIR, "test", &d, err, sizeof err) == 0, "%s", err);
    if (!m) return;
    float x[784];
    cs_dataset_image_float(&d, 19, x);
    cs_explainer ex;
    CHECK(cs_explainer_init(&ex, m, x, NULL, err, sizeof err) == 0, "%s", err);
    cs_explain_params p;
    cs_explain_params_default(&p);
    p.steps = 32;
    cs_explain_map map;
    CHECK(cs_explain_run(&ex, &cs_explain_integrated_gradients, &p, &map, err, sizeof err) == 0, "%s", err);
    cs_npy a;
    CHECK(cs_npy_read(test_scratch_path("a/test-19.integrated_gradients.npy"), &a, err, sizeof err) == 0, "%s", err);
    CHECK(a.ndim == 2 && a.dims[0] == 28 && a.dims[1] == 28, "a 28x28 map");
    double worst = 0, scale = 0;
    for (int i = 0; i < 784 && a.count == 784; i++) {
        worst = fmax(worst, fabs(a.data[i] - map.map[i]));
        scale = fmax(scale, fabs(map.map[i]));
    }
    CHECK(scale > 0 && worst <= 1e-5 * scale, "the written map is the core's (%g of %g)", worst, scale);
    cs_npy_free(&a);
    cs_faith_params fp;
    cs_faith_params_default(&fp);
    cs_faith_result fr;
    CHECK(cs_faith_evaluate(&ex, &map, &fp, CS_FAITH_ALL, &fr, err, sizeof err) == 0, "%s", err);
    json_t *doc = json_load_file(test_scratch_path("a/scores.json"), 0, NULL);
    json_t *rows = json_object_get(doc, "rows"), *row = json_array_get(rows, 3);
    CHECK(json_array_size(rows) == 4, "4 rows");
    CHECK(!strcmp(json_string_value(json_object_get(row, "image")), "test-19") &&
              !strcmp(json_string_value(json_object_get(row, "method")), "integrated_gradients") &&
              json_integer_value(json_object_get(row, "truth")) == d.labels[19],
          "rows in image then method order");
    CHECK_NEAR(json_number_value(json_object_get(row, "deletion_auc")), fr.deletion_auc, 1e-5, "deletion area");
    CHECK_NEAR(json_number_value(json_object_get(row, "road")), fr.road, 1e-5, "ROAD");
    struct stat st;
    CHECK(stat(test_scratch_path("a/test-18.gradcam.png"), &st) == 0 && st.st_size > 1000, "the overlay");
    json_decref(doc);
    cs_faith_free(&fr);
    cs_explain_map_free(&map);
    cs_explainer_free(&ex);
    cs_dataset_free(&d);
    cs_model_free(m);
}

static void test_shards(void)
{
    char args[1024], err[4096];
    snprintf(args, sizeof args, "--model models/fmnist.csm --method gradcam --out %s/s --shards 2 --shard 1 "
                                "--no-metrics --sample test:0-4",
             dir);
    CHECK(run(args, err, sizeof err) == 0, "runs: %s", err);
    char *csv = test_read_file(test_scratch_path("s/shard-1/scores.csv"), NULL);
    CHECK(csv && strstr(csv, "\ntest-3,") && strstr(csv, "\ntest-4,") && !strstr(csv, "\ntest-2,"),
          "shard 1 of 2 over 5 images: 3 and 4");
    free(csv);
    setenv("JOB_COMPLETION_INDEX", "0", 1);
    snprintf(args, sizeof args, "--model models/fmnist.csm --method gradcam --out %s/s --shards 2 --no-metrics "
                                "--sample test:0-4",
             dir);
    CHECK(run(args, err, sizeof err) == 0, "runs: %s", err);
    unsetenv("JOB_COMPLETION_INDEX");
    CHECK(count_lines(test_scratch_path("s/shard-0/scores.csv")) == 4, "the index from the environment: 0, 1, 2");
}

static void test_files_and_errors(void)
{
    char args[1024], err[4096];
    snprintf(args, sizeof args, "--model models/fmnist.csm --method occlusion,eigencam --out %s/f "
                                "tests/data/photos/coffee.png tests/data/photos/nothing.png",
             dir);
    CHECK(run(args, err, sizeof err) == 1 && strstr(err, "nothing.png"), "a missing image fails the run: %s", err);
    CHECK(count_lines(test_scratch_path("f/scores.csv")) == 3, "the other image is explained");
    static const struct {
        const char *args, *named;
    } bad[] = {
        {"--model models/fmnist.csm --method nope --sample test:0", "nope"},
        {"--model models/fmnist.csm --method occlusion --patch 29 --sample test:0", "patch"},
        {"--model models/fmnist.csm --method integrated_gradients --steps 0 --sample test:0", "--steps"},
        {"--model models/fmnist.csm --method smoothgrad --noise nan --sample test:0", "--noise"},
        {"--model models/fmnist.csm --method gradcam --sample test:5-2", "--sample"},
        {"--model models/fmnist.csm --method gradcam --sample test:0 x.png", "not both"},
        {"--method gradcam --sample test:0", "--model"},
        {"--model models/fmnist.csm --method gradcam --layer dense_1 --sample test:0", "spatial"},
        {"--model models/fmnist.csm --method gradcam --shards 2 --shard 2 --sample test:0", "shard"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = run(bad[i].args, err, sizeof err);
        CHECK(rc == 2 && strstr(err, bad[i].named), "%s: exit %d, %s", bad[i].args, rc, err);
    }
}

int main(void)
{
    dir = test_scratch_dir("cli-explain");
    RUN(test_maps_and_scores_are_the_cores);
    RUN(test_shards);
    RUN(test_files_and_errors);
    return test_summary("cli_explain");
}
