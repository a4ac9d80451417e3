/*
 * test_jobs.c - training jobs: one from start to success with progress rising while
 * predictions keep being served (then on the new version), a second job refused with
 * 409, a cancelled job, malformed and out-of-range bodies, ceilings on a job's size,
 * the history of a diverged epoch, the bearer token, and a SIGTERM during training
 * that leaves no half-written file.
 */
#include <dirent.h>

#include "harness.h"
#include "jobs.h"

static srv_t S;

static json_t *job_get(srv_t *s, const char *id, long *status)
{
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
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

static long predict_version(srv_t *s)
{
    resp_t r = http_ex(s, "POST", "/v1/models/fmnist/predict?sample=test:18", "", 0, NULL);
    json_t *j = resp_json(&r);
    long v = r.status == 200 ? (long)json_integer_value(json_object_get(j, "version")) : -r.status;
    json_decref(j);
    resp_free(&r);
    return v;
}

/* Starts a job; returns its id (static buffer) or "" . */
static const char *start_job(srv_t *s, const char *body, const char *const *headers, long *status)
{
    static char id[64];
    req_opts o = {.content_type = "application/json", .headers = headers};
    resp_t r = http_ex(s, "POST", "/v1/models/fmnist/train", body, strlen(body), &o);
    *status = r.status;
    id[0] = 0;
    json_t *j = resp_json(&r);
    char loc[128];
    if (r.status == 202) {
        snprintf(id, sizeof id, "%s", json_string_value(json_object_get(j, "id")));
        CHECK(resp_header(&r, "Location", loc, sizeof loc) && strstr(loc, id) && !strncmp(loc, "/v1/jobs/", 9),
              "Location %s", loc);
        CHECK(!strcmp(state_of(j), "queued") || !strcmp(state_of(j), "running"), "state %s", state_of(j));
    }
    json_decref(j);
    resp_free(&r);
    return id;
}

static void test_job_to_success(void)
{
    long st, v0 = predict_version(&S);
    CHECK(v0 >= 1, "served before: %ld", v0);
    char id[64];
    snprintf(id, sizeof id, "%s",
             start_job(&S, "{\"epochs\": 2, \"train_limit\": 2000, \"test_limit\": 500, \"seed\": 7}", NULL, &st));
    CHECK(st == 202, "202, got %ld", st);
    if (st != 202) return;
    long st2;
    start_job(&S, "{\"epochs\": 1}", NULL, &st2);
    CHECK(st2 == 409, "second job: %ld", st2);

    double last = -1, end = now_s() + 120;
    int rising_ok = 1, seen_running = 0, served_during = 0, samples = 0;
    json_t *j = NULL;
    while (now_s() < end) {
        json_decref(j);
        j = job_get(&S, id, &st);
        const char *state = state_of(j);
        double p = json_number_value(json_object_get(j, "progress"));
        if (p < last) rising_ok = 0;
        last = p;
        samples++;
        if (!strcmp(state, "running")) {
            seen_running = 1;
            CHECK(p >= 0 && p <= 1, "progress %g", p);
            CHECK(json_integer_value(json_object_get(j, "epochs")) == 2, "epochs");
            if (predict_version(&S) == v0) served_during++;
        }
        if (strcmp(state, "queued") && strcmp(state, "running")) break;
        usleep(50000);
    }
    CHECK(!strcmp(state_of(j), "succeeded"), "ended %s (%s)", state_of(j),
          json_string_value(json_object_get(j, "error")) ? json_string_value(json_object_get(j, "error")) : "");
    CHECK(rising_ok && samples > 2, "progress never went down (%d samples)", samples);
    CHECK(seen_running && served_during > 0, "predictions served during training (%d)", served_during);
    CHECK_NEAR(json_number_value(json_object_get(j, "progress")), 1.0, 1e-9, "progress 1 at the end");
    json_t *res = json_object_get(j, "result");
    long v1 = (long)json_integer_value(json_object_get(res, "version"));
    double acc = json_number_value(json_object_get(res, "test_accuracy"));
    CHECK(v1 == v0 + 1, "result version %ld after %ld", v1, v0);
    CHECK(acc > 0.3 && acc <= 1, "test accuracy %g", acc);
    CHECK(json_array_size(json_object_get(j, "history")) == 2, "two epochs of history");
    json_t *h0 = json_array_get(json_object_get(j, "history"), 0);
    CHECK(json_integer_value(json_object_get(h0, "epoch")) == 1 && json_is_number(json_object_get(h0, "loss")) &&
              json_is_number(json_object_get(h0, "accuracy")) && json_is_number(json_object_get(h0, "seconds")),
          "history entry");
    /* The test loss of a short run: above zero, near its training loss (not ln 10 = 2.3,
     * chance). */
    double test_loss = json_number_value(json_object_get(h0, "test_loss"));
    CHECK(json_is_number(json_object_get(h0, "test_loss")) && test_loss > 0.1 && test_loss < 2,
          "the epoch's test loss: %g", test_loss);
    json_decref(j);
    CHECK(predict_version(&S) == v1, "predictions switch to the new version");
    resp_t r = http(&S, "GET", "/v1/models/fmnist");
    j = resp_json(&r);
    CHECK(json_integer_value(json_object_get(j, "version")) == v1, "summary version");
    CHECK(json_array_size(json_object_get(j, "history")) == 2, "summary history");
    CHECK_NEAR(json_number_value(json_object_get(json_array_get(json_object_get(j, "history"), 0), "test_loss")),
               test_loss, 1e-6, "the summary's history keeps the test loss");
    json_t *tr = json_object_get(j, "training");
    CHECK(json_integer_value(json_object_get(tr, "test_images")) == 500 &&
              json_integer_value(json_object_get(tr, "train_images")) == 2000,
          "the training block records the subsets (500 test images, 2000 training images)");
    json_decref(j);
    resp_free(&r);
    /* The file was replaced whole: nothing else in the folder. */
    char dir[300];
    snprintf(dir, sizeof dir, "%s/models", S.dir);
    DIR *d = opendir(dir);
    int others = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        if (e->d_name[0] != '.' && strcmp(e->d_name, "fmnist.csm") && strcmp(e->d_name, "fmnist.versions")) others++;
    if (d) closedir(d);
    CHECK(others == 0, "no temporary files left (%d)", others);
    /* The next job may start now. */
    start_job(&S, "{\"epochs\": 1, \"train_limit\": 256, \"test_limit\": 100}", NULL, &st);
    CHECK(st == 202, "a new job after the first ended: %ld", st);
    for (double e2 = now_s() + 60; now_s() < e2; usleep(50000)) {
        r = http(&S, "GET", "/v1/jobs");
        int busy = strstr(r.body, "\"running\"") || strstr(r.body, "\"queued\"");
        resp_free(&r);
        if (!busy) break;
    }
}

static void test_cancel(void)
{
    long st;
    char id[64];
    snprintf(id, sizeof id, "%s", start_job(&S, "{\"epochs\": 50, \"train_limit\": 3000, \"test_limit\": 200}", NULL, &st));
    CHECK(st == 202, "202: %ld", st);
    json_t *j = NULL;
    for (double end = now_s() + 30; now_s() < end; usleep(30000)) {
        json_decref(j);
        j = job_get(&S, id, NULL);
        if (json_integer_value(json_object_get(j, "batch")) > 0) break;
    }
    json_decref(j);
    long v_before = predict_version(&S);
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    resp_t r = http(&S, "DELETE", path);
    CHECK(r.status == 202, "cancel: %ld %s", r.status, r.body);
    resp_free(&r);
    j = NULL;
    for (double end = now_s() + 30; now_s() < end; usleep(30000)) {
        json_decref(j);
        j = job_get(&S, id, NULL);
        if (strcmp(state_of(j), "running") && strcmp(state_of(j), "queued")) break;
    }
    CHECK(!strcmp(state_of(j), "cancelled"), "state %s", state_of(j));
    CHECK(json_is_null(json_object_get(j, "result")), "no result");
    json_decref(j);
    CHECK(predict_version(&S) == v_before, "the served version did not change");
    r = http(&S, "DELETE", path);
    CHECK(r.status == 409 && is_error(&r, "job_finished"), "cancel again: %ld", r.status);
    resp_free(&r);
}

static void test_list_and_unknown(void)
{
    resp_t r = http(&S, "GET", "/v1/jobs");
    json_t *j = resp_json(&r);
    CHECK(r.status == 200 && json_array_size(json_object_get(j, "jobs")) >= 2, "listed: %s", r.body);
    json_decref(j);
    resp_free(&r);
    r = http(&S, "GET", "/v1/jobs/j999-0000");
    CHECK(r.status == 404 && is_error(&r, "not_found"), "get unknown %ld", r.status);
    resp_free(&r);
    r = http(&S, "DELETE", "/v1/jobs/j999-0000");
    CHECK(r.status == 404 && is_error(&r, "not_found"), "delete unknown %ld", r.status);
    resp_free(&r);
}

static void test_bad_bodies_400(void)
{
    const char *bad[] = {"{\"epochs\": 1", "[1, 2]", "{\"epochs\": 0}", "{\"epochs\": 1.5}", "{\"batch_size\": \"x\"}",
                         "{\"learning_rate\": 0}", "{\"learning_rate\": -1}", "{\"lr\": 0.1}", "{\"train_limit\": 70000}",
                         "{\"from\": \"yesterday\"}", "not json at all"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        long st;
        req_opts o = {.content_type = "application/json"};
        resp_t r = http_ex(&S, "POST", "/v1/models/fmnist/train", bad[i], strlen(bad[i]), &o);
        st = r.status;
        CHECK(st == 400 && is_error(&r, NULL), "%s: %ld %s", bad[i], st, r.body);
        resp_free(&r);
    }
    /* A form is not a JSON body, even an empty-looking one. */
    const char *files[] = {PHOTO("rocket.jpg"), NULL};
    req_opts form = {.files = files};
    resp_t r = http_ex(&S, "POST", "/v1/models/fmnist/train", NULL, 0, &form);
    CHECK(r.status == 400 && is_error(&r, "bad_json"), "multipart: %ld", r.status);
    resp_free(&r);
    r = http_ex(&S, "POST", "/v1/models/vgg16/train", "{}", 2, NULL);
    CHECK(r.status == 400 && is_error(&r, "not_trainable"), "vgg16: %ld", r.status);
    resp_free(&r);
    r = http_ex(&S, "POST", "/v1/models/nope/train", "{}", 2, NULL);
    CHECK(r.status == 404 && is_error(&r, "not_found"), "unknown model: %ld", r.status);
    resp_free(&r);
}


/* A job's work is bounded: 1000 epochs, or 2 epochs at batch 1 (120000 optimizer
 * steps), are refused with the reason before anything runs (before: accepted, hours
 * of training). A batch of 1 over a small train_limit is still fine. */
static void test_job_ceilings_400(void)
{
    const char *too_big[] = {"{\"epochs\": 1000, \"batch_size\": 1}", "{\"epochs\": 101}",
                             "{\"epochs\": 2, \"batch_size\": 1}", "{\"epochs\": 100, \"batch_size\": 32}"};
    const char *codes[] = {"bad_parameter", "bad_parameter", "job_too_large", "job_too_large"};
    for (int i = 0; i < 4; i++) {
        req_opts o = {.content_type = "application/json"};
        resp_t r = http_ex(&S, "POST", "/v1/models/fmnist/train", too_big[i], strlen(too_big[i]), &o);
        CHECK(r.status == 400 && is_error(&r, codes[i]), "%s: %ld %s", too_big[i], r.status, r.body);
        if (i >= 2) CHECK(strstr(r.body, "optimizer steps") != NULL, "says why: %s", r.body);
        resp_free(&r);
    }
    long st;
    char id[64];
    snprintf(id, sizeof id, "%s",
             start_job(&S, "{\"epochs\": 3, \"batch_size\": 1, \"train_limit\": 500, \"test_limit\": 100}", NULL, &st));
    CHECK(st == 202, "3 epochs of 500 images at batch 1 (1500 steps): %ld", st);
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    resp_t r = http(&S, "DELETE", path);
    resp_free(&r);
    for (double end = now_s() + 60; now_s() < end; usleep(50000)) {
        json_t *j = job_get(&S, id, NULL);
        int done = !strcmp(state_of(j), "cancelled") || !strcmp(state_of(j), "succeeded") ||
                   !strcmp(state_of(j), "failed");
        json_decref(j);
        if (done) break;
    }
}

/* The history JSON of jobs and model summaries keeps a diverged epoch: NaN and
 * infinities become null, every epoch stays in order. */
static void test_history_json_keeps_nan_epochs(void)
{
    cs_epoch_record h[3] = {{1, 0.7f, 0.6f, 0.65f, 3.0, 0.4f}, {2, NAN, 0.1f, -1, 3.5, -1}, {3, INFINITY, NAN, NAN, 4.0, NAN}};
    json_t *a = cs_history_json(h, 3);
    CHECK(json_array_size(a) == 3, "%zu epochs", json_array_size(a));
    json_t *e1 = json_array_get(a, 0), *e2 = json_array_get(a, 1), *e3 = json_array_get(a, 2);
    CHECK(fabs(json_number_value(json_object_get(e1, "loss")) - 0.7) < 1e-6 &&
              fabs(json_number_value(json_object_get(e1, "test_accuracy")) - 0.65) < 1e-6,
          "epoch 1 numbers");
    CHECK(json_integer_value(json_object_get(e2, "epoch")) == 2 && json_is_null(json_object_get(e2, "loss")) &&
              json_is_null(json_object_get(e2, "test_accuracy")) &&
              fabs(json_number_value(json_object_get(e2, "seconds")) - 3.5) < 1e-9,
          "epoch 2: loss null");
    CHECK(json_is_null(json_object_get(e3, "loss")) && json_is_null(json_object_get(e3, "accuracy")) &&
              json_is_null(json_object_get(e3, "test_accuracy")) && json_is_null(json_object_get(e3, "test_loss")),
          "epoch 3: all null");
    CHECK(fabs(json_number_value(json_object_get(e1, "test_loss")) - 0.4) < 1e-6 &&
              json_is_null(json_object_get(e2, "test_loss")),
          "test_loss: 0.4, then null when not measured");
    json_decref(a);
}

static void test_metrics_count_jobs(void)
{
    resp_t r = http(&S, "GET", "/metrics");
    CHECK(strstr(r.body, "convscope_training_jobs{state=\"succeeded\"} ") &&
              !strstr(r.body, "convscope_training_jobs{state=\"succeeded\"} 0\n"),
          "succeeded jobs counted");
    CHECK(strstr(r.body, "convscope_training_jobs{state=\"cancelled\"} 1"), "cancelled counted");
    resp_free(&r);
}

static void test_token_401_and_sigterm_mid_job(void)
{
    srv_t T;
    const char *flags[] = {"--token", "s3cret", "--no-vgg16", NULL};
    srv_start(&T, flags);
    long st;
    start_job(&T, "{\"epochs\": 1}", NULL, &st);
    CHECK(st == 401, "no token: %ld", st);
    const char *wrong[] = {"Authorization: Bearer nope", NULL};
    start_job(&T, "{\"epochs\": 1}", wrong, &st);
    CHECK(st == 401, "wrong token: %ld", st);
    req_opts o = {.content_type = "application/json"};
    resp_t r = http_ex(&T, "POST", "/v1/models/fmnist/train", "{}", 2, &o);
    char www[64];
    CHECK(r.status == 401 && is_error(&r, "unauthorized") && resp_header(&r, "WWW-Authenticate", www, sizeof www),
          "401 body and WWW-Authenticate");
    resp_free(&r);
    CHECK(predict_version(&T) >= 1, "reading needs no token");
    const char *right[] = {"Authorization: Bearer s3cret", NULL};
    char id[64];
    snprintf(id, sizeof id, "%s", start_job(&T, "{\"epochs\": 50, \"train_limit\": 3000}", right, &st));
    CHECK(st == 202, "right token: %ld", st);
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    r = http(&T, "DELETE", path);
    CHECK(r.status == 401, "cancel without token: %ld", r.status);
    resp_free(&r);
    usleep(300000);
    /* SIGTERM while training: the job is cancelled, the process exits 0, the model file
     * is the old one, whole, and nothing half-written lies beside it. */
    char model[300];
    snprintf(model, sizeof model, "%s/models/fmnist.csm", T.dir);
    size_t before = 0, after = 0;
    free(test_read_file(model, &before));
    setenv("CONVSCOPE_KEEP_TEST_DIR", "1", 1);
    srv_stop(&T);
    unsetenv("CONVSCOPE_KEEP_TEST_DIR");
    CHECK(T.exit_status == 0, "exit %d", T.exit_status);
    free(test_read_file(model, &after));
    CHECK(before > 0 && before == after, "model file unchanged (%zu vs %zu)", before, after);
    char cmd[800];
    snprintf(cmd, sizeof cmd, "test $(ls -A %s/models | grep -v '^fmnist.versions$' | wc -l) -eq 1 && "
                              "test $(ls -A %s/models/fmnist.versions | grep -v -E '^[0-9]+[.](csm|json)$' | wc -l) -eq 0",
             T.dir, T.dir);
    CHECK(run_cmd(cmd) == 0, "no temporary files");
    snprintf(cmd, sizeof cmd, "rm -rf %s", T.dir);
    run_cmd(cmd);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_ALL);
    const char *flags[] = {"--no-vgg16", NULL};
    srv_start(&S, flags);
    RUN(test_job_to_success);
    RUN(test_cancel);
    RUN(test_list_and_unknown);
    RUN(test_bad_bodies_400);
    RUN(test_metrics_count_jobs);
    RUN(test_job_ceilings_400);
    RUN(test_history_json_keeps_nan_epochs);
    srv_stop(&S);
    CHECK(S.exit_status == 0, "server exit %d", S.exit_status);
    RUN(test_token_401_and_sigterm_mid_job);
    curl_global_cleanup();
    return test_summary("api_jobs");
}
