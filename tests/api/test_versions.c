/*
 * test_versions.c - kept versions and evaluation over HTTP: train twice, roll back,
 * and the served version and its answers follow; the versions' records (parameters,
 * history, accuracy on the whole test set, the subset the epochs counted); the
 * comparison of two versions; the evaluation job, its cached answer and its picture;
 * and a server killed during a job leaves every kept version loadable, as does a save
 * killed half-way (its leftovers are swept).
 */
#include <utime.h>

#include "harness.h"
#include "model_file.h"

static srv_t S;

static json_t *get_json(srv_t *s, const char *path, long *status)
{
    resp_t r = http(s, "GET", path);
    json_t *j = resp_json(&r);
    if (status) *status = r.status;
    resp_free(&r);
    return j;
}

static const char *state_of(json_t *j)
{
    const char *s = json_string_value(json_object_get(j, "state"));
    return s ? s : "";
}

/* Waits for a job to end; returns its final document. */
static json_t *wait_job(srv_t *s, const char *id, double seconds)
{
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    json_t *j = NULL;
    for (double end = now_s() + seconds; now_s() < end; usleep(50000)) {
        json_decref(j);
        j = get_json(s, path, NULL);
        if (strcmp(state_of(j), "queued") && strcmp(state_of(j), "running")) break;
    }
    return j;
}

/* Predicts test:18: the version that answered and its probability of class 8. */
static long predict(srv_t *s, double *p8)
{
    resp_t r = http_ex(s, "POST", "/v1/models/fmnist/predict?sample=test:18", "", 0, NULL);
    json_t *j = resp_json(&r);
    long v = r.status == 200 ? (long)json_integer_value(json_object_get(j, "version")) : -r.status;
    json_t *probs = json_object_get(json_array_get(json_object_get(j, "predictions"), 0), "probabilities");
    if (p8) *p8 = json_number_value(json_array_get(probs, 8));
    json_decref(j);
    resp_free(&r);
    return v;
}

/* Trains a short job to its end; returns the version it published (0 on failure). */
static long train(srv_t *s, const char *body)
{
    req_opts o = {.content_type = "application/json"};
    resp_t r = http_ex(s, "POST", "/v1/models/fmnist/train", body, strlen(body), &o);
    json_t *j = resp_json(&r);
    char id[64];
    snprintf(id, sizeof id, "%s", r.status == 202 ? json_string_value(json_object_get(j, "id")) : "");
    CHECK(r.status == 202, "train: %ld %s", r.status, r.body);
    json_decref(j);
    resp_free(&r);
    if (!id[0]) return 0;
    j = wait_job(s, id, 120);
    long v = (long)json_integer_value(json_object_get(json_object_get(j, "result"), "version"));
    CHECK(!strcmp(state_of(j), "succeeded"), "job %s", state_of(j));
    json_decref(j);
    return v;
}

static json_t *version_record(json_t *list, long v)
{
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(list, "versions"), i, r) if (json_integer_value(json_object_get(r, "version")) == v) return r;
    return NULL;
}

static void test_train_twice_roll_back(void)
{
    double p_start, p1, p2, p;
    long v0 = predict(&S, &p_start);
    CHECK(v0 == 1, "the bundled model is kept as version 1: %ld", v0);
    long v1 = train(&S, "{\"epochs\": 2, \"train_limit\": 1000, \"test_limit\": 300, \"seed\": 3, \"snapshots\": true}");
    CHECK(v1 == 2 && predict(&S, &p1) == 2, "first job serves version 2 (%ld)", v1);
    long v2 = train(&S, "{\"epochs\": 1, \"train_limit\": 1500, \"seed\": 4, \"from\": \"current\"}");
    CHECK(v2 == 3 && predict(&S, &p2) == 3, "second job serves version 3 (%ld)", v2);
    CHECK(p1 != p2 && p2 != p_start, "three different models: %g %g %g", p_start, p1, p2);

    long st;
    json_t *list = get_json(&S, "/v1/models/fmnist/versions", &st);
    CHECK(st == 200 && json_array_size(json_object_get(list, "versions")) == 3, "three kept: %ld", st);
    CHECK(json_integer_value(json_object_get(list, "served")) == 3, "served 3");
    json_t *r2 = version_record(list, 2), *r3 = version_record(list, 3), *r1 = version_record(list, 1);
    CHECK(r1 && r2 && r3, "each listed");
    CHECK(json_is_true(json_object_get(r3, "served")) && json_is_false(json_object_get(r2, "served")), "served flag");
    json_t *params = json_object_get(r2, "params");
    CHECK(json_integer_value(json_object_get(params, "train_limit")) == 1000 &&
              json_integer_value(json_object_get(params, "seed")) == 3,
          "the first run's parameters");
    CHECK(json_integer_value(json_object_get(r2, "test_images")) == 10000 && json_is_false(json_object_get(r2, "test_subset")),
          "accuracy on the whole test set");
    CHECK(json_integer_value(json_object_get(r2, "history_test_images")) == 300 &&
              json_is_true(json_object_get(r2, "history_subset")),
          "its epochs counted a subset, marked as such");
    CHECK(json_array_size(json_object_get(r2, "history")) == 2, "history");
    CHECK(json_integer_value(json_object_get(r3, "from_version")) == 2 &&
              !strcmp(json_string_value(json_object_get(json_object_get(r3, "params"), "from")), "current"),
          "the second run continued version 2");
    CHECK(!strcmp(json_string_value(json_object_get(r1, "source")), "file"), "version 1 came from the file");
    double acc2 = json_number_value(json_object_get(r2, "test_accuracy"));
    json_decref(list);

    /* Roll back to version 1: served, answering as before training, and the file too. */
    resp_t r = http(&S, "POST", "/v1/models/fmnist/versions/1/serve");
    json_t *j = resp_json(&r);
    CHECK(r.status == 200 && json_integer_value(json_object_get(j, "served")) == 1, "rollback: %ld %s", r.status, r.body);
    json_decref(j);
    resp_free(&r);
    CHECK(predict(&S, &p) == 1 && p == p_start, "answers of version 1 again: %g vs %g", p, p_start);
    char path[400], err[200];
    sfmt(path, sizeof path, "%s/models/fmnist.csm", S.dir);
    cs_model *m = cs_model_load(path, err, sizeof err);
    cs_model *k1 = NULL;
    sfmt(path, sizeof path, "%s/models/fmnist.versions/1.csm", S.dir);
    k1 = cs_model_load(path, err, sizeof err);
    CHECK(m && k1 && m->n_param_floats == k1->n_param_floats &&
              !memcmp(m->param_block, k1->param_block, m->n_param_floats * sizeof(float)),
          "the served file is version 1's");
    cs_model_free(m);
    cs_model_free(k1);
    /* And forward again to 2. */
    r = http(&S, "POST", "/v1/models/fmnist/versions/2/serve");
    CHECK(r.status == 200, "serve 2: %ld", r.status);
    resp_free(&r);
    CHECK(predict(&S, &p) == 2 && p == p1, "answers of version 2 again");
    j = get_json(&S, "/v1/models/fmnist", NULL);
    CHECK(json_integer_value(json_object_get(j, "version")) == 2, "the summary follows");
    json_decref(j);

    /* Compare 1 and 2 on the test set: two passes over 10,000 images, which a sanitizer
     * build takes minutes for. */
    req_opts slow = {.timeout_s = 600};
    r = http_ex(&S, "GET", "/v1/models/fmnist/versions/compare?a=1&b=2", NULL, 0, &slow);
    j = resp_json(&r);
    st = r.status;
    resp_free(&r);
    CHECK(st == 200, "compare: %ld", st);
    double a = json_number_value(json_object_get(json_object_get(j, "a"), "accuracy"));
    double b = json_number_value(json_object_get(json_object_get(j, "b"), "accuracy"));
    CHECK(fabs(b - acc2) < 1e-6, "version 2's accuracy as its record says: %g vs %g", b, acc2);
    CHECK(a > 0.85 && fabs(json_number_value(json_object_get(j, "accuracy_delta")) - (b - a)) < 1e-9, "delta");
    long changed = (long)json_integer_value(json_object_get(j, "changed_count"));
    long fixed = (long)json_integer_value(json_object_get(j, "fixed")), broken = (long)json_integer_value(json_object_get(j, "broken"));
    /* Right answers gained minus lost is the accuracy difference, image for image. */
    CHECK(changed > 0 && llabs(lround((b - a) * 10000) - (fixed - broken)) == 0, "fixed %ld broken %ld delta %g", fixed,
          broken, b - a);
    json_t *c0 = json_array_get(json_object_get(j, "changed"), 0);
    CHECK(json_integer_value(json_object_get(c0, "a")) != json_integer_value(json_object_get(c0, "b")), "a changed image");
    CHECK(json_array_size(json_object_get(j, "per_class")) == 10, "per-class deltas");
    json_decref(j);

    r = http(&S, "POST", "/v1/models/fmnist/versions/9/serve");
    CHECK(r.status == 404 && is_error(&r, "not_found"), "unknown version: %ld", r.status);
    resp_free(&r);
    r = http(&S, "POST", "/v1/models/fmnist/versions/x/serve");
    CHECK(r.status == 400 && is_error(&r, "bad_parameter"), "bad version: %ld", r.status);
    resp_free(&r);
    r = http(&S, "GET", "/v1/models/vgg16/versions");
    CHECK(r.status == 409 && is_error(&r, "no_versions"), "vgg16 keeps none: %ld", r.status);
    resp_free(&r);
    r = http(&S, "POST", "/v1/models/vgg16/versions/1/serve");
    CHECK(r.status == 409 && is_error(&r, "no_versions"), "serve on vgg16: %ld", r.status);
    resp_free(&r);
    r = http(&S, "GET", "/v1/models/vgg16/versions/compare?a=1&b=2");
    CHECK(r.status == 409, "compare on vgg16: %ld", r.status);
    resp_free(&r);
    r = http(&S, "GET", "/v1/models/nope/versions");
    CHECK(r.status == 404, "unknown model: %ld", r.status);
    resp_free(&r);
    r = http(&S, "GET", "/v1/models/fmnist/versions/compare?a=1");
    CHECK(r.status == 400, "one version: %ld", r.status);
    resp_free(&r);
    r = http(&S, "GET", "/v1/models/fmnist/versions/compare?a=1&b=77");
    CHECK(r.status == 404, "compare with an unknown version: %ld", r.status);
    resp_free(&r);
}

/* The first job kept its filters after each of its two epochs. */
static void test_epoch_snapshots(void)
{
    resp_t r = http(&S, "GET", "/v1/jobs");
    json_t *jobs = resp_json(&r), *job = NULL;
    resp_free(&r);
    size_t i;
    json_t *x;
    json_array_foreach(json_object_get(jobs, "jobs"), i, x) if (json_is_string(json_object_get(x, "snapshots"))) job = x;
    CHECK(job != NULL, "a job that kept snapshots");
    char path[300];
    snprintf(path, sizeof path, "%s", job ? json_string_value(json_object_get(job, "snapshots")) : "/none");
    long st;
    json_t *s = get_json(&S, path, &st);
    json_t *ep = json_object_get(s, "epochs");
    CHECK(st == 200 && json_array_size(ep) == 2 && !strcmp(json_string_value(json_object_get(s, "layer")), "conv2d_1"),
          "two epochs of conv2d_1: %ld", st);
    const double acc1 = json_number_value(json_object_get(json_array_get(ep, 0), "test_accuracy"));
    const double hist1 = json_number_value(json_object_get(json_array_get(json_object_get(job, "history"), 0), "test_accuracy"));
    CHECK(fabs(acc1 - hist1) < 1e-6, "each with its epoch's test accuracy: %g vs %g", acc1, hist1);
    char png[2][200];
    cs_image img[2];
    for (int e = 0; e < 2; e++) {
        snprintf(png[e], sizeof png[e], "%s", json_string_value(json_object_get(json_array_get(ep, e), "filters")));
        r = http(&S, "GET", png[e]);
        CHECK(r.status == 200 && resp_png(&r, &img[e]) && image_levels(&img[e]) > 8, "epoch %d filters: %ld", e + 1,
              r.status);
        resp_free(&r);
    }
    CHECK(img[0].w == img[1].w && memcmp(img[0].px, img[1].px, (size_t)img[0].w * img[0].h * img[0].c),
          "the filters changed between the epochs");
    cs_image_free(&img[0]);
    cs_image_free(&img[1]);
    json_decref(s);
    json_decref(jobs);
    r = http(&S, "GET", "/v1/jobs/j999-0000/snapshots");
    CHECK(r.status == 404, "unknown job: %ld", r.status);
    resp_free(&r);
    snprintf(path, sizeof path, "%.*s9/filters.png", (int)(strstr(png[0], "snapshots/") - png[0]) + 10, png[0]);
    r = http(&S, "GET", path);
    CHECK(r.status == 404, "no epoch 9: %ld", r.status);
    resp_free(&r);
    snprintf(path, sizeof path, "%s?count=99", png[0]);
    r = http(&S, "GET", path);
    CHECK(r.status == 400, "99 filters of 32: %ld", r.status);
    resp_free(&r);
    req_opts o = {.content_type = "application/json"};
    r = http_ex(&S, "POST", "/v1/models/fmnist/train", "{\"snapshots\": 1}", 16, &o);
    CHECK(r.status == 400, "snapshots must be a boolean: %ld", r.status);
    resp_free(&r);
}

static void test_evaluation_job(void)
{
    long st;
    json_t *j = get_json(&S, "/v1/models/fmnist/evaluation?version=1&limit=2000", &st);
    CHECK(st == 404, "not evaluated yet: %ld", st);
    json_decref(j);
    resp_t r = http(&S, "POST", "/v1/models/fmnist/evaluation?version=1&limit=2000");
    j = resp_json(&r);
    CHECK(r.status == 202 && !strcmp(json_string_value(json_object_get(j, "kind")), "evaluate"), "202: %ld %s", r.status,
          r.body);
    char id[64];
    snprintf(id, sizeof id, "%s", json_string_value(json_object_get(j, "id")) ? json_string_value(json_object_get(j, "id")) : "");
    json_decref(j);
    resp_free(&r);
    j = wait_job(&S, id, 60);
    CHECK(!strcmp(state_of(j), "succeeded"), "evaluation %s", state_of(j));
    CHECK(json_number_value(json_object_get(j, "progress")) == 1.0, "progress 1");
    const char *url = json_string_value(json_object_get(json_object_get(j, "result"), "url"));
    char path[300];
    snprintf(path, sizeof path, "%s", url ? url : "/none");
    json_decref(j);
    json_t *e = get_json(&S, path, &st);
    CHECK(st == 200, "the result at its url: %ld", st);
    CHECK(json_integer_value(json_object_get(e, "images")) == 2000 && json_is_true(json_object_get(e, "subset")),
          "2000 images, a subset");
    long total = 0, diag = 0;
    for (int t = 0; t < 10; t++)
        for (int p = 0; p < 10; p++) {
            long c = (long)json_integer_value(json_array_get(json_array_get(json_object_get(e, "confusion"), t), p));
            total += c;
            diag += t == p ? c : 0;
        }
    CHECK(total == 2000 && fabs(json_number_value(json_object_get(e, "accuracy")) - diag / 2000.0) < 1e-9,
          "confusion adds up to the accuracy");
    json_t *bins = json_object_get(json_object_get(e, "calibration"), "bins");
    CHECK(json_array_size(bins) == 10 && json_is_number(json_object_get(json_object_get(e, "calibration"), "ece")), "bins");
    json_t *cell = json_array_get(json_object_get(e, "cells"), 0);
    CHECK(json_array_size(json_object_get(cell, "images")) > 0, "a cell lists its images");
    json_decref(e);
    /* Asked again: answered at once from the cache, the same document. */
    r = http(&S, "POST", "/v1/models/fmnist/evaluation?version=1&limit=2000");
    CHECK(r.status == 200 && strstr(r.body, "\"confusion\""), "cached: %ld", r.status);
    resp_free(&r);
    r = http(&S, "GET", "/v1/models/fmnist/evaluation/confusion.png?version=1&limit=2000&cell=30");
    cs_image img;
    CHECK(r.status == 200 && resp_png(&r, &img) && img.w == 311 && img.h == 311, "confusion PNG: %ld", r.status);
    cs_image_free(&img);
    resp_free(&r);
    r = http(&S, "GET", "/v1/models/fmnist/evaluation/confusion.png?version=2&limit=123");
    CHECK(r.status == 404 && is_error(&r, "not_evaluated"), "picture before evaluation: %ld", r.status);
    resp_free(&r);
    r = http(&S, "POST", "/v1/models/fmnist/evaluation?split=validation");
    CHECK(r.status == 400, "bad split: %ld", r.status);
    resp_free(&r);
    r = http(&S, "POST", "/v1/models/fmnist/evaluation?version=55");
    CHECK(r.status == 404, "unknown version: %ld", r.status);
    resp_free(&r);
    r = http(&S, "GET", "/v1/models/vgg16/evaluation");
    CHECK(r.status == 503, "unavailable model: %ld", r.status);
    resp_free(&r);
    r = http(&S, "POST", "/v1/models/vgg16/evaluation");
    CHECK(r.status == 503, "unavailable model: %ld", r.status);
    resp_free(&r);
    r = http(&S, "GET", "/v1/models/fmnist/evaluation?split=x");
    CHECK(r.status == 400, "bad split: %ld", r.status);
    resp_free(&r);
    r = http(&S, "GET", "/v1/models/fmnist/evaluation/confusion.png?version=1&limit=2000&cell=2");
    CHECK(r.status == 400, "bad cell: %ld", r.status);
    resp_free(&r);
    /* A model of other inputs (3x30x30 RGB) cannot be evaluated on Fashion-MNIST. */
    r = http(&S, "POST", "/v1/models/avgpool/evaluation");
    CHECK(r.status == 422 && is_error(&r, "not_evaluable"), "422: %ld %s", r.status, r.body);
    resp_free(&r);
}

static void test_projector_job(void)
{
    resp_t r = http(&S, "GET", "/v1/models/fmnist/projector?limit=300&method=tsne&iterations=200");
    CHECK(r.status == 404 && is_error(&r, "not_projected"), "not made yet: %ld", r.status);
    resp_free(&r);
    r = http(&S, "POST", "/v1/models/fmnist/projector?limit=300&method=tsne&iterations=200&dims=3&seed=5");
    json_t *j = resp_json(&r);
    CHECK(r.status == 202 && !strcmp(json_string_value(json_object_get(j, "kind")), "project"), "202: %ld %s", r.status,
          r.body);
    char id[64];
    snprintf(id, sizeof id, "%s", json_string_value(json_object_get(j, "id")) ? json_string_value(json_object_get(j, "id")) : "");
    json_decref(j);
    resp_free(&r);
    j = wait_job(&S, id, 120);
    CHECK(!strcmp(state_of(j), "succeeded"), "projector job %s", state_of(j));
    const char *url = json_string_value(json_object_get(json_object_get(j, "result"), "url"));
    char path[400];
    snprintf(path, sizeof path, "%s", url ? url : "/none");
    json_decref(j);
    long st;
    json_t *p = get_json(&S, path, &st);
    CHECK(st == 200 && json_array_size(json_object_get(p, "points")) == 300, "300 points: %ld", st);
    CHECK(json_array_size(json_array_get(json_object_get(p, "points"), 0)) == 3, "in 3-D");
    CHECK(!strcmp(json_string_value(json_object_get(p, "node")), "dense_1"), "the last hidden dense layer");
    CHECK(json_integer_value(json_array_get(json_object_get(p, "labels"), 0)) == 9 &&
              json_array_size(json_object_get(p, "predictions")) == 300,
          "labels (test image 0 is an ankle boot) and predictions");
    json_decref(p);
    /* Made again: answered from the cache. */
    r = http(&S, "POST", "/v1/models/fmnist/projector?limit=300&method=tsne&iterations=200&dims=3&seed=5");
    CHECK(r.status == 200 && strstr(r.body, "\"points\""), "cached: %ld", r.status);
    resp_free(&r);
    /* PCA of another node, then cancelling a long t-SNE. */
    r = http(&S, "POST", "/v1/models/fmnist/projector?limit=500&node=leaky_re_lu_3");
    j = resp_json(&r);
    snprintf(id, sizeof id, "%s", json_string_value(json_object_get(j, "id")) ? json_string_value(json_object_get(j, "id")) : "");
    json_decref(j);
    resp_free(&r);
    j = wait_job(&S, id, 60);
    CHECK(!strcmp(state_of(j), "succeeded"), "pca %s", state_of(j));
    json_decref(j);
    p = get_json(&S, "/v1/models/fmnist/projector?limit=500&node=leaky_re_lu_3", &st);
    CHECK(st == 200 && json_array_size(json_object_get(p, "variance")) == 3 &&
              json_number_value(json_array_get(json_object_get(p, "variance"), 0)) >=
                  json_number_value(json_array_get(json_object_get(p, "variance"), 1)),
          "PCA variances, largest first");
    json_decref(p);
    r = http(&S, "POST", "/v1/models/fmnist/projector?limit=3000&method=tsne&iterations=5000");
    j = resp_json(&r);
    snprintf(id, sizeof id, "%s", json_string_value(json_object_get(j, "id")) ? json_string_value(json_object_get(j, "id")) : "");
    json_decref(j);
    resp_free(&r);
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    r = http(&S, "DELETE", path);
    CHECK(r.status == 202, "cancel: %ld", r.status);
    resp_free(&r);
    j = wait_job(&S, id, 60);
    CHECK(!strcmp(state_of(j), "cancelled"), "cancelled: %s", state_of(j));
    json_decref(j);
    const char *bad[] = {"method=umap", "dims=4", "perplexity=1", "limit=50&method=tsne"};
    for (int i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "/v1/models/fmnist/projector?%s", bad[i]);
        r = http(&S, "POST", path);
        CHECK(r.status == 400, "%s: %ld", bad[i], r.status);
        resp_free(&r);
    }
    r = http(&S, "GET", "/v1/models/fmnist/projector?dims=9");
    CHECK(r.status == 400, "GET bad dims: %ld", r.status);
    resp_free(&r);
    r = http(&S, "POST", "/v1/models/fmnist/projector?node=nope");
    CHECK(r.status == 404, "unknown node: %ld", r.status);
    resp_free(&r);
    r = http(&S, "POST", "/v1/models/avgpool/projector");
    CHECK(r.status == 422 && is_error(&r, "not_projectable"), "other inputs: %ld", r.status);
    resp_free(&r);
}

static void test_atlas_job(void)
{
    const char *q = "/v1/models/fmnist/layers/leaky_re_lu_2/atlas?channels=3&top=4&limit=1000&steps=64";
    resp_t r = http(&S, "GET", q);
    CHECK(r.status == 404 && is_error(&r, "not_made"), "not made yet: %ld", r.status);
    resp_free(&r);
    r = http(&S, "POST", q);
    json_t *j = resp_json(&r);
    CHECK(r.status == 202 && !strcmp(json_string_value(json_object_get(j, "kind")), "atlas"), "202: %ld %s", r.status,
          r.body);
    char id[64];
    snprintf(id, sizeof id, "%s", json_string_value(json_object_get(j, "id")) ? json_string_value(json_object_get(j, "id")) : "");
    json_decref(j);
    resp_free(&r);
    j = wait_job(&S, id, 120);
    CHECK(!strcmp(state_of(j), "succeeded"), "atlas job %s", state_of(j));
    json_decref(j);
    long st;
    json_t *a = get_json(&S, q, &st);
    json_t *chans = json_object_get(a, "channels");
    CHECK(st == 200 && json_array_size(chans) == 3, "three channels: %ld", st);
    json_t *c1 = json_array_get(chans, 1), *top = json_object_get(c1, "top");
    CHECK(json_array_size(top) == 4, "four top images");
    double v0 = json_number_value(json_object_get(json_array_get(top, 0), "value")),
           v3 = json_number_value(json_object_get(json_array_get(top, 3), "value"));
    long idx = (long)json_integer_value(json_object_get(json_array_get(top, 0), "index"));
    json_t *patch = json_object_get(json_array_get(top, 0), "patch");
    CHECK(v0 >= v3 && idx >= 0 && idx < 1000, "best first, among the first 1000 (%ld)", idx);
    CHECK(json_array_size(patch) == 4 &&
              json_integer_value(json_array_get(patch, 2)) - json_integer_value(json_array_get(patch, 0)) <= 8,
          "a patch within the 8x8 field");
    char png[400];
    snprintf(png, sizeof png, "%s&scale=4", json_string_value(json_object_get(c1, "image")));
    json_decref(a);
    r = http(&S, "GET", png);
    cs_image img;
    CHECK(r.status == 200 && resp_png(&r, &img) && img.w == 112 && img.c == 1 && image_levels(&img) > 8,
          "the feature visualisation: %ld", r.status);
    cs_image_free(&img);
    resp_free(&r);
    r = http(&S, "POST", q);
    CHECK(r.status == 200, "cached: %ld", r.status);
    resp_free(&r);
    r = http(&S, "GET", "/v1/models/fmnist/layers/leaky_re_lu_2/atlas/7.png?channels=3&top=4&limit=1000&steps=64");
    CHECK(r.status == 404, "channel beyond the atlas: %ld", r.status);
    resp_free(&r);
    r = http(&S, "GET", "/v1/models/fmnist/layers/leaky_re_lu_2/atlas/1.png?channels=3&top=4&limit=1000&steps=65");
    CHECK(r.status == 404 && is_error(&r, "not_made"), "another atlas: %ld", r.status);
    resp_free(&r);
    r = http(&S, "POST", "/v1/models/fmnist/layers/leaky_re_lu_2/atlas?channels=65");
    CHECK(r.status == 400, "65 channels of 64: %ld", r.status);
    resp_free(&r);
    r = http(&S, "GET", "/v1/models/fmnist/layers/leaky_re_lu_2/atlas?top=0");
    CHECK(r.status == 400, "top 0: %ld", r.status);
    resp_free(&r);
    r = http(&S, "GET", "/v1/models/fmnist/layers/leaky_re_lu_2/atlas/1.png?scale=99");
    CHECK(r.status == 400, "scale 99: %ld", r.status);
    resp_free(&r);
    r = http(&S, "POST", "/v1/models/fmnist/layers/nope/atlas");
    CHECK(r.status == 404, "unknown layer: %ld", r.status);
    resp_free(&r);
    /* A model of other inputs: feature visualisation only, the top images unavailable. */
    r = http(&S, "POST", "/v1/models/avgpool/layers/0/atlas?channels=2&steps=8");
    j = resp_json(&r);
    snprintf(id, sizeof id, "%s", json_string_value(json_object_get(j, "id")) ? json_string_value(json_object_get(j, "id")) : "");
    json_decref(j);
    resp_free(&r);
    j = wait_job(&S, id, 60);
    CHECK(!strcmp(state_of(j), "succeeded"), "avgpool atlas %s %s", state_of(j),
          json_string_value(json_object_get(j, "error")) ? json_string_value(json_object_get(j, "error")) : "");
    json_decref(j);
    a = get_json(&S, "/v1/models/avgpool/layers/0/atlas?channels=2&steps=8", &st);
    CHECK(st == 200 && json_is_string(json_object_get(a, "top_unavailable")) &&
              !json_object_get(json_array_get(json_object_get(a, "channels"), 0), "top"),
          "no top images for a model of RGB inputs: %ld", st);
    json_decref(a);
    r = http(&S, "GET", "/v1/models/avgpool/layers/0/atlas/1.png?channels=2&steps=8");
    CHECK(r.status == 200 && resp_png(&r, &img) && img.c == 3 && img.w == 30, "an RGB picture: %ld", r.status);
    cs_image_free(&img);
    resp_free(&r);
}

static void test_token_guards_serve(void)
{
    srv_t T;
    const char *flags[] = {"--token", "s3cret", "--no-vgg16", "--keep-versions", "2", NULL};
    srv_start(&T, flags);
    resp_t r = http(&T, "POST", "/v1/models/fmnist/versions/1/serve");
    CHECK(r.status == 401, "no token: %ld", r.status);
    resp_free(&r);
    const char *right[] = {"Authorization: Bearer s3cret", NULL};
    req_opts o = {.headers = right};
    r = http_ex(&T, "POST", "/v1/models/fmnist/versions/1/serve", NULL, 0, &o);
    CHECK(r.status == 200, "with the token: %ld", r.status);
    resp_free(&r);
    json_t *j = get_json(&T, "/v1/models/fmnist/versions", NULL);
    CHECK(json_integer_value(json_object_get(j, "keep")) == 2, "keeps 2");
    json_decref(j);
    srv_stop(&T);
}

/* Every model file in the store and the served file load. */
static int all_loadable(const char *dir, int *count)
{
    char cmd[600], err[300];
    int ok = 1;
    *count = 0;
    for (int v = 1; v < 20; v++) {
        char p[500];
        sfmt(p, sizeof p, "%s/models/fmnist.versions/%d.csm", dir, v);
        if (!file_exists(p)) continue;
        cs_model *m = cs_model_load(p, err, sizeof err);
        CHECK(m, "kept version %d loads: %s", v, err);
        ok &= m != NULL;
        (*count)++;
        cs_model_free(m);
    }
    sfmt(cmd, sizeof cmd, "%s/models/fmnist.csm", dir);
    cs_model *m = cs_model_load(cmd, err, sizeof err);
    CHECK(m, "the served file loads: %s", err);
    ok &= m != NULL;
    cs_model_free(m);
    return ok;
}

static void test_killed_during_a_job(void)
{
    srv_t T;
    const char *flags[] = {"--no-vgg16", "--keep-versions", "3", NULL};
    srv_start(&T, flags);
    long v = train(&T, "{\"epochs\": 1, \"train_limit\": 512, \"test_limit\": 100}");
    CHECK(v == 2, "one kept run: %ld", v);
    req_opts o = {.content_type = "application/json"};
    const char *body = "{\"epochs\": 40, \"train_limit\": 4000, \"test_limit\": 100}";
    resp_t r = http_ex(&T, "POST", "/v1/models/fmnist/train", body, strlen(body), &o);
    CHECK(r.status == 202, "long job: %ld", r.status);
    resp_free(&r);
    /* Mid-epoch, and with an evaluation running too. */
    usleep(1500000);
    r = http(&T, "POST", "/v1/models/fmnist/evaluation");
    resp_free(&r);
    kill(T.pid, SIGKILL);
    waitpid(T.pid, NULL, 0);
    T.pid = 0;
    int n;
    CHECK(all_loadable(T.dir, &n) && n == 2, "two kept versions, loadable (%d)", n);
    /* A save killed half-way: a partial incoming file, a record whose model never
     * arrived, a temporary served file; made old, as after a restart much later. */
    char cmd[1600];
    sfmt(cmd, sizeof cmd,
         "cd %s/models && head -c 5000 fmnist.versions/1.csm > fmnist.versions/incoming.999.0.csm && "
         "cp fmnist.versions/1.json fmnist.versions/7.json && head -c 3000 fmnist.csm > fmnist.csm.tmp.999.0 && "
         "touch -d '2 hours ago' fmnist.versions/incoming.999.0.csm fmnist.versions/7.json fmnist.csm.tmp.999.0",
         T.dir);
    CHECK(run_cmd(cmd) == 0, "leftovers made");
    /* The same folder served again (srv_start would copy the fixture over fmnist.csm). */
    srv_t W = {0};
    snprintf(W.dir, sizeof W.dir, "%s", T.dir);
    const char *argv[] = {SRV_BIN, "serve", "--listen", "127.0.0.1:0", "--models", NULL, "--no-vgg16", "--access-log",
                          "off", NULL};
    char m2[400], log[400];
    sfmt(m2, sizeof m2, "%s/models", W.dir);
    sfmt(log, sizeof log, "%s/server-again.log", W.dir);
    argv[5] = m2;
    W.pid = fork();
    if (W.pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 2);
        dup2(fd, 1);
        execv(SRV_BIN, (char *const *)argv);
        _exit(127);
    }
    for (double end = now_s() + 30; !W.port && now_s() < end; usleep(50000)) {
        char *text = test_read_file(log, NULL);
        const char *p = text ? strstr(text, "listening on http://127.0.0.1:") : NULL;
        if (p) W.port = atoi(p + strlen("listening on http://127.0.0.1:"));
        free(text);
    }
    snprintf(W.base, sizeof W.base, "http://127.0.0.1:%d", W.port);
    if (!W.port) {
        char *text = test_read_file(log, NULL);
        fprintf(stderr, "the server did not start: %s\n", text ? text : "(no log)");
        free(text);
    }
    double p8;
    CHECK(W.port && predict(&W, &p8) == 2, "serves the last version it served, under its number");
    json_t *j = get_json(&W, "/v1/models/fmnist/versions", NULL);
    CHECK(json_array_size(json_object_get(j, "versions")) == 2, "lists the two kept versions");
    json_decref(j);
    resp_t rr = http(&W, "POST", "/v1/models/fmnist/versions/1/serve");
    CHECK(rr.status == 200 && predict(&W, NULL) == 1, "and rolls back: %ld", rr.status);
    resp_free(&rr);
    sfmt(cmd, sizeof cmd, "test ! -e %s/models/fmnist.versions/incoming.999.0.csm && test ! -e %s/models/fmnist.versions/7.json",
         W.dir, W.dir);
    CHECK(run_cmd(cmd) == 0, "the leftovers in the store were swept");
    srv_stop(&W); /* removes the folder */
}

int main(void)
{
    const char *flags[] = {"--no-vgg16", NULL};
    srv_extra_models = "tests/data/models/avgpool.onnx";
    srv_start(&S, flags);
    srv_extra_models = NULL;
    RUN(test_train_twice_roll_back);
    RUN(test_epoch_snapshots);
    RUN(test_evaluation_job);
    RUN(test_projector_job);
    RUN(test_atlas_job);
    srv_stop(&S);
    RUN(test_token_guards_serve);
    RUN(test_killed_during_a_job);
    return test_summary("api_versions");
}
