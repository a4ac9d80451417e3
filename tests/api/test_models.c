/*
 * test_models.c - GET /v1/models and GET /v1/models/{model}: statuses with reasons,
 * the Keras-like summary (layers, output shapes, parameter counts), a missing model
 * file (503 with the reason, then served once a job trains one), and VGG16 weights
 * found where users keep them but unreadable (unavailable with the reason), a diverged
 * epoch in the history (null, not dropped), and the temporary files of killed saves
 * removed at start-up (only ours, only old ones).
 */
#include <sys/time.h>

#include "harness.h"

static srv_t S;

static void test_list(void)
{
    resp_t r = http(&S, "GET", "/v1/models");
    json_t *j = resp_json(&r);
    CHECK(r.status == 200, "status %ld", r.status);
    json_t *models = json_object_get(j, "models");
    CHECK(json_array_size(models) == 2, "two models");
    json_t *f = json_array_get(models, 0), *v = json_array_get(models, 1);
    CHECK(!strcmp(json_string_value(json_object_get(f, "name")), "fmnist"), "fmnist first");
    CHECK(!strcmp(json_string_value(json_object_get(f, "status")), "ready"), "ready");
    CHECK(json_integer_value(json_object_get(f, "version")) >= 1, "version");
    json_t *shape = json_object_get(f, "input_shape");
    CHECK(json_integer_value(json_array_get(shape, 0)) == 28 && json_integer_value(json_array_get(shape, 2)) == 1,
          "28x28x1");
    CHECK(json_array_size(json_object_get(f, "classes")) == 10 &&
              !strcmp(json_string_value(json_array_get(json_object_get(f, "classes"), 8)), "Bag"),
          "classes");
    CHECK(!strcmp(json_string_value(json_object_get(v, "status")), "unavailable") &&
              json_is_string(json_object_get(v, "reason")),
          "vgg16 unavailable with a reason");
    json_decref(j);
    resp_free(&r);
}

/* The seed's model.summary(): 14 layers, 122,570 parameters (BN moving statistics:
 * 2 * (32 + 64 + 64) = 320 of them not trainable). */
static void test_summary_like_keras(void)
{
    resp_t r = http(&S, "GET", "/v1/models/fmnist");
    json_t *j = resp_json(&r);
    CHECK(r.status == 200, "status %ld", r.status);
    json_t *layers = json_object_get(j, "layers");
    CHECK(json_array_size(layers) == 14, "%zu layers", json_array_size(layers));
    struct {
        int i;
        const char *name, *type;
        int shape[3], rank;
        long params;
    } want[] = {
        {0, "conv2d_1", "Conv2D", {26, 26, 32}, 3, 320},        {1, "batch_normalization_1", "BatchNormalization", {26, 26, 32}, 3, 128},
        {3, "max_pooling2d_1", "MaxPooling2D", {13, 13, 32}, 3, 0}, {4, "conv2d_2", "Conv2D", {11, 11, 64}, 3, 18496},
        {6, "leaky_re_lu_2", "LeakyReLU", {11, 11, 64}, 3, 0},   {8, "flatten_1", "Flatten", {1600}, 1, 0},
        {9, "dense_1", "Dense", {64}, 1, 102464},                {13, "dense_2", "Dense", {10}, 1, 650},
    };
    for (size_t k = 0; k < sizeof want / sizeof want[0]; k++) {
        json_t *l = json_array_get(layers, (size_t)want[k].i);
        const char *name = json_string_value(json_object_get(l, "name"));
        const char *type = json_string_value(json_object_get(l, "type"));
        CHECK(name && !strcmp(name, want[k].name), "layer %d name %s", want[k].i, name);
        CHECK(type && !strcmp(type, want[k].type), "layer %d type %s", want[k].i, type);
        CHECK(json_integer_value(json_object_get(l, "params")) == want[k].params, "layer %d params %lld", want[k].i,
              (long long)json_integer_value(json_object_get(l, "params")));
        json_t *shape = json_object_get(l, "output_shape");
        CHECK(json_array_size(shape) == (size_t)want[k].rank + 1 && json_is_null(json_array_get(shape, 0)),
              "layer %d shape (None, ...)", want[k].i);
        for (int d = 0; d < want[k].rank; d++)
            CHECK(json_integer_value(json_array_get(shape, (size_t)d + 1)) == want[k].shape[d], "layer %d dim %d",
                  want[k].i, d);
    }
    /* Each node names what it reads: the first the model's input, the rest the node before. */
    for (size_t i = 0; i < json_array_size(layers); i++) {
        json_t *in = json_object_get(json_array_get(layers, i), "inputs");
        const char *want_in = i ? json_string_value(json_object_get(json_array_get(layers, i - 1), "name")) : "input";
        const char *got = json_string_value(json_array_get(in, 0));
        CHECK(json_array_size(in) == 1 && got && want_in && !strcmp(got, want_in), "layer %zu reads %s", i, got);
    }
    CHECK(json_integer_value(json_object_get(j, "total_params")) == 122570, "total params");
    CHECK(json_integer_value(json_object_get(j, "non_trainable_params")) == 320, "non-trainable");
    CHECK(json_is_number(json_object_get(j, "test_accuracy")), "test accuracy");
    CHECK(json_is_string(json_object_get(j, "trained_at")), "trained_at");
    CHECK(json_is_array(json_object_get(j, "history")), "history");
    CHECK(!strcmp(json_string_value(json_object_get(j, "gradcam_layer")), "leaky_re_lu_2"), "gradcam layer");
    json_decref(j);
    resp_free(&r);
}

static void test_unknown_and_unavailable(void)
{
    resp_t r = http(&S, "GET", "/v1/models/resnet50");
    CHECK(r.status == 404 && is_error(&r, "not_found"), "unknown: %ld", r.status);
    resp_free(&r);
    r = http(&S, "GET", "/v1/models/vgg16");
    CHECK(r.status == 503 && is_error(&r, "model_unavailable") && strstr(r.body, "weights"), "vgg16: %ld %s", r.status,
          r.body);
    resp_free(&r);
}

/* A fresh machine: no model file yet. The service starts, says why fmnist is not
 * ready, and serves it once a training job has made one. */
static void test_no_model_file_then_trained(void)
{
    srv_t L;
    memset(&L, 0, sizeof L);
    tmp_template(L.dir, sizeof L.dir, "api");
    if (!mkdtemp(L.dir)) return;
    char cmd[600], log[300], models[300];
    sfmt(models, sizeof models, "%s/models", L.dir);
    sfmt(log, sizeof log, "%s/server.log", L.dir);
    sfmt(cmd, sizeof cmd, "mkdir -p %s", models);
    run_cmd(cmd);
    L.pid = fork();
    if (L.pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 2);
        dup2(fd, 1);
        execl(SRV_BIN, SRV_BIN, "serve", "--listen", "127.0.0.1:0", "--models", models, "--no-vgg16", "--access-log",
              "off", (char *)NULL);
        _exit(127);
    }
    for (double end = now_s() + 20; !L.port && now_s() < end; usleep(20000)) {
        char *text = test_read_file(log, NULL);
        const char *p = text ? strstr(text, "listening on http://127.0.0.1:") : NULL;
        if (p) L.port = atoi(p + strlen("listening on http://127.0.0.1:"));
        free(text);
    }
    CHECK(L.port > 0, "started without a model");
    sfmt(L.base, sizeof L.base, "http://127.0.0.1:%d", L.port);
    resp_t r = http(&L, "GET", "/readyz");
    CHECK(r.status == 503 && strstr(r.body, "no model file"), "readyz says why: %ld %s", r.status, r.body);
    resp_free(&r);
    r = http_ex(&L, "POST", "/v1/models/fmnist/predict?sample=test:1", "", 0, NULL);
    CHECK(r.status == 503 && is_error(&r, "model_unavailable") && strstr(r.body, "train"), "predict: %ld", r.status);
    resp_free(&r);
    r = http_ex(&L, "POST", "/v1/models/fmnist/train", "{\"epochs\":1,\"train_limit\":512,\"test_limit\":200}", 47, NULL);
    CHECK(r.status == 202, "train: %ld %s", r.status, r.body);
    resp_free(&r);
    long st = 0;
    for (double end = now_s() + 60; now_s() < end; usleep(100000)) {
        r = http(&L, "GET", "/readyz");
        st = r.status;
        resp_free(&r);
        if (st == 200) break;
    }
    CHECK(st == 200, "ready after training");
    r = http_ex(&L, "POST", "/v1/models/fmnist/predict?sample=test:1", "", 0, NULL);
    CHECK(r.status == 200, "served: %ld", r.status);
    resp_free(&r);
    srv_stop(&L);
    CHECK(L.exit_status == 0, "exit %d", L.exit_status);
}

/* A weights file where Keras keeps it, but not an HDF5 file: found, then unavailable
 * with the loader's reason rather than "not found". */
static void test_vgg16_bad_weights_reason(void)
{
    srv_t L;
    char home[200];
    tmp_template(home, sizeof home, "home");
    if (!mkdtemp(home)) return;
    char cmd[400];
    sfmt(cmd, sizeof cmd, "mkdir -p %s/.keras/models && echo junk > %s/.keras/models/%s", home, home,
             "vgg16_weights_tf_dim_ordering_tf_kernels.h5");
    run_cmd(cmd);
    char *old = getenv("HOME") ? strdup(getenv("HOME")) : NULL;
    setenv("HOME", home, 1);
    srv_start(&L, NULL);
    if (old) setenv("HOME", old, 1);
    free(old);
    resp_t r = {0};
    for (double end = now_s() + 20; now_s() < end; usleep(50000)) {
        resp_free(&r);
        r = http(&L, "GET", "/v1/models/vgg16");
        if (!strstr(r.body, "loading")) break;
    }
    CHECK(r.status == 503 && strstr(r.body, ".keras/models") && !strstr(r.body, "not found"), "%ld %s", r.status, r.body);
    resp_free(&r);
    srv_stop(&L);
    sfmt(cmd, sizeof cmd, "rm -rf %s", home);
    run_cmd(cmd);
}


/* A file in dir with the given mtime age in seconds (0: now); symlink: a link to it. */
static void make_file(const char *dir, const char *name, double age, int symlink_to_model)
{
    char path[400];
    sfmt(path, sizeof path, "%s/%s", dir, name);
    if (symlink_to_model) {
        char target[400];
        sfmt(target, sizeof target, "%s/fmnist.csm", dir);
        CHECK(symlink(target, path) == 0, "symlink %s", name);
    } else {
        FILE *f = fopen(path, "wb");
        CHECK(f && fputs("half a model", f) >= 0 && fclose(f) == 0, "write %s", name);
    }
    struct timeval tv[2];
    gettimeofday(&tv[0], NULL);
    tv[0].tv_sec -= (time_t)age;
    tv[1] = tv[0];
    lutimes(path, tv);
}

/* The served model's history has an epoch whose loss is NaN (it diverged; the model
 * file writes null): GET /v1/models/{model} lists all three epochs, that one with
 * null (before: json_pack("f") refused the NaN and the epoch vanished). At start-up
 * the folder's old temporary files of killed saves are removed; fresh ones, other
 * names and links stay. */
static void test_nan_epoch_and_stale_saves(void)
{
    const char *dir = test_scratch_dir("models");
    char err[300], path[400];
    cs_model *m = cs_model_load(fixture_model(), err, sizeof err);
    CHECK(m != NULL, "fixture: %s", err);
    if (!m) return;
    free(m->meta.history);
    m->meta.history = calloc(3, sizeof *m->meta.history);
    m->meta.n_history = 3;
    for (int i = 0; i < 3; i++)
        m->meta.history[i] = (cs_epoch_record){i + 1, 0.5f - 0.1f * (float)i, 0.8f, -1, 2.0, -1};
    m->meta.history[1].loss = NAN;
    sfmt(path, sizeof path, "%s/fmnist.csm", dir);
    CHECK(cs_model_save(m, path, err, sizeof err) == 0, "save: %s", err);
    cs_model_free(m);

    const char *stale[] = {"fmnist.csm.tmp.4242.0", "vgg16.h5.tmp.17.3"};
    const char *kept[] = {"fmnist.csm.tmp.4243.1", "notes.txt.tmp.1.2", "fmnist.csm.tmp.x.1", "fmnist.csm.tmp.5.6.bak",
                          "link.csm.tmp.7.8"};
    make_file(dir, stale[0], 3600, 0);
    make_file(dir, stale[1], 86400, 0);
    make_file(dir, kept[0], 0, 0);        /* a save in progress */
    make_file(dir, kept[1], 3600, 0);     /* not a model's */
    make_file(dir, kept[2], 3600, 0);     /* not our pattern */
    make_file(dir, kept[3], 3600, 0);
    make_file(dir, kept[4], 3600, 1);     /* a link, whatever it points to */

    srv_t M;
    const char *flags[] = {"--models", dir, "--no-vgg16", NULL};
    srv_start(&M, flags);
    for (int i = 0; i < 2; i++) {
        sfmt(path, sizeof path, "%s/%s", dir, stale[i]);
        CHECK(!file_exists(path), "%s removed", stale[i]);
    }
    for (int i = 0; i < 5; i++) {
        sfmt(path, sizeof path, "%s/%s", dir, kept[i]);
        struct stat st;
        CHECK(lstat(path, &st) == 0, "%s kept", kept[i]);
    }
    char *log = srv_file(&M, "server.log");
    CHECK(log && strstr(log, "removed 2 temporary files of interrupted saves"), "logged: %s", log ? log : "");
    free(log);

    resp_t r = http(&M, "GET", "/v1/models/fmnist");
    json_t *j = resp_json(&r);
    json_t *h = json_object_get(j, "history");
    CHECK(r.status == 200 && json_array_size(h) == 3, "three epochs: %ld %s", r.status, r.body);
    json_t *e2 = json_array_get(h, 1);
    CHECK(json_integer_value(json_object_get(e2, "epoch")) == 2 && json_is_null(json_object_get(e2, "loss")) &&
              fabs(json_number_value(json_object_get(e2, "accuracy")) - 0.8) < 1e-6,
          "epoch 2: loss null, accuracy kept");
    CHECK(fabs(json_number_value(json_object_get(json_array_get(h, 2), "loss")) - 0.3) < 1e-6, "epoch 3 loss");
    json_decref(j);
    resp_free(&r);
    srv_stop(&M);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_ALL);
    const char *flags[] = {"--vgg16-weights", "/nonexistent/weights.h5", NULL};
    srv_start(&S, flags);
    RUN(test_list);
    RUN(test_summary_like_keras);
    RUN(test_unknown_and_unavailable);
    srv_stop(&S);
    CHECK(S.exit_status == 0, "server exit %d", S.exit_status);
    RUN(test_no_model_file_then_trained);
    RUN(test_vgg16_bad_weights_reason);
    RUN(test_nan_epoch_and_stale_saves);
    curl_global_cleanup();
    return test_summary("api_models");
}
