/*
 * test_folder.c - every model file of the models folder served under its name: ONNX,
 * Keras 2 HDF5, Keras 3 archives and convscope's own .csm beside the notebook's
 * network, each listed with its format, input shape, classes, parameter count and
 * status. Sidecars give labels and preprocessing, which the answers name; 1000
 * numbered classes become ImageNet's; a model with an unsupported layer or a file of
 * weights only is unavailable with the reason while every other model works; VGG16's
 * weights file is no model. On every ready model: predictions, filters, feature maps
 * of every spatial node and Grad-CAM on every spatial node. The watcher serves a file
 * added, drops one removed and re-reads a changed sidecar. A model of the folder that
 * fits Fashion-MNIST trains (from its weights and from scratch) and is saved as
 * NAME.csm beside its ONNX file.
 */
#include "harness.h"
#include "h5_attr.h"
#include "onnx_build.h"
#include "onnx_export.h"

static srv_t S;

static json_t *listing(void)
{
    resp_t r = http(&S, "GET", "/v1/models");
    json_t *j = resp_json(&r);
    resp_free(&r);
    return j;
}

static json_t *entry(json_t *list, const char *name)
{
    json_t *a = json_object_get(list, "models");
    for (size_t i = 0; i < json_array_size(a); i++)
        if (!strcmp(json_string_value(json_object_get(json_array_get(a, i), "name")), name))
            return json_array_get(a, i);
    return NULL;
}

static const char *str(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

static long num(json_t *o, const char *key) { return (long)json_integer_value(json_object_get(o, key)); }

static long shape_at(json_t *o, int k) { return (long)json_integer_value(json_array_get(json_object_get(o, "input_shape"), k)); }

/* ---- files the test writes itself ---- */

static char work[256];

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f || fputs(text, f) < 0) exit(99);
    fclose(f);
}

/* A .csm of 1000 numbered classes: ImageNet's labels are the default. */
static void write_thousand(const char *path)
{
    cs_model *m = cs_model_new("thousand", (cs_shape){8, 8, 3});
    char err[200];
    cs_layer_config conv = {.filters = 4, .kernel = 3, .stride = 1, .activation = CS_ACT_RELU};
    cs_layer_config d = {.units = 1000, .activation = CS_ACT_SOFTMAX};
    if (cs_model_add(m, "conv", CS_CONV2D, &conv, err, sizeof err) < 0 ||
        cs_model_add(m, "flat", CS_FLATTEN, &(cs_layer_config){0}, err, sizeof err) < 0 ||
        cs_model_add(m, "out", CS_DENSE, &d, err, sizeof err) < 0 || cs_model_finish(m) != 0)
        exit(99);
    cs_model_init_weights(m, 4);
    char **names = malloc(1000 * sizeof *names);
    for (int i = 0; i < 1000; i++) {
        names[i] = malloc(8);
        snprintf(names[i], 8, "%d", i);
    }
    if (cs_model_set_classes(m, 1000, (const char *const *)names) != 0 || cs_model_save(m, path, err, sizeof err) != 0)
        exit(99);
    for (int i = 0; i < 1000; i++) free(names[i]);
    free(names);
    cs_model_free(m);
}

/* 28x28 gray -> conv relu -> pool -> flatten -> dense 10: trainable on Fashion-MNIST. */
static void write_trainable(const char *path)
{
    cs_model *m = cs_model_new("small", (cs_shape){28, 28, 1});
    char err[200];
    cs_layer_config conv = {.filters = 4, .kernel = 3, .stride = 1, .activation = CS_ACT_RELU, .he_normal = 1};
    cs_layer_config pool = {.pool = 2}, d = {.units = 10, .activation = CS_ACT_SOFTMAX};
    if (cs_model_add(m, "conv", CS_CONV2D, &conv, err, sizeof err) < 0 ||
        cs_model_add(m, "pool", CS_MAXPOOL, &pool, err, sizeof err) < 0 ||
        cs_model_add(m, "flat", CS_FLATTEN, &(cs_layer_config){0}, err, sizeof err) < 0 ||
        cs_model_add(m, "out", CS_DENSE, &d, err, sizeof err) < 0 || cs_model_finish(m) != 0)
        exit(99);
    cs_model_init_weights(m, 9);
    if (cs_onnx_export(m, path, err, sizeof err) != 0) {
        fprintf(stderr, "setup: %s\n", err);
        exit(99);
    }
    cs_model_free(m);
}

/* Writes a hand-built ONNX graph to path. */
static void write_spec(const spec *s, const char *path)
{
    size_t len;
    uint8_t *buf = pack(s, &len);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(buf, 1, len, f) != len) exit(99);
    fclose(f);
    pool_free();
}

/* An ONNX graph with an LRN node, which the importer does not take. */
static void write_unsupported(const char *path)
{
    spec s;
    spec_init(&s);
    const int64_t in[] = {-1, 3, 8, 8};
    s.inputs[s.n_inputs++] = vinfo("x", 4, in);
    s.outputs[s.n_outputs++] = vinfo("y", 4, in);
    s.nodes[s.n_nodes++] = node("LRN", "norm", "x", "y", attr_int("size", 3), NULL);
    write_spec(&s, path);
}

/* An ONNX graph of two image inputs: Add(x, y) -> Conv 2x3x3 -> Relu -> Flatten -> Gemm 10. */
static void write_two_inputs(const char *path)
{
    spec s;
    spec_init(&s);
    const int64_t in[] = {-1, 1, 8, 8}, out[] = {-1, 10}, wd[] = {2, 1, 3, 3}, bd[] = {2}, gd[] = {72, 10}, gb[] = {10};
    float w[18], b[2] = {0.1f, -0.1f}, g[720], gbias[10] = {0};
    for (int i = 0; i < 18; i++) w[i] = (float)((i % 5) - 2) / 8;
    for (int i = 0; i < 720; i++) g[i] = (float)((i * 7 % 11) - 5) / 50;
    s.inputs[s.n_inputs++] = vinfo("x", 4, in);
    s.inputs[s.n_inputs++] = vinfo("y", 4, in);
    s.outputs[s.n_outputs++] = vinfo("out", 2, out);
    s.inits[s.n_inits++] = tensor_f("w", 4, wd, w, 18, 1);
    s.inits[s.n_inits++] = tensor_f("b", 1, bd, b, 2, 1);
    s.inits[s.n_inits++] = tensor_f("g", 2, gd, g, 720, 1);
    s.inits[s.n_inits++] = tensor_f("gb", 1, gb, gbias, 10, 1);
    s.nodes[s.n_nodes++] = node("Add", "sum", "x,y", "s", NULL);
    s.nodes[s.n_nodes++] = node("Conv", "conv", "s,w,b", "c", NULL);
    s.nodes[s.n_nodes++] = node("Relu", "relu", "c", "r", NULL);
    s.nodes[s.n_nodes++] = node("Flatten", "flat", "r", "f", NULL);
    s.nodes[s.n_nodes++] = node("Gemm", "dense", "f,g,gb", "out", NULL);
    write_spec(&s, path);
}

/* An HDF5 file of weights only, as model.save_weights() writes it. */
static void write_weights_only(const char *path)
{
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) exit(99);
    const char *names[] = {"dense"};
    test_h5_str_attr(f, "layer_names", names, 1, 0);
    H5Fclose(f);
}

/* ---- the checks ---- */

static void test_listing(void)
{
    json_t *j = listing();
    static const struct {
        const char *name, *format, *file;
        long h, w, c, classes, params;
    } want[] = {
        {"resnet", "onnx", "resnet.onnx", 36, 36, 3, 10, 56538 - 288},
        {"k2_functional", "h5", "k2_functional.h5", 10, 10, 3, 4, -1},
        {"k3_sequential", "keras", "k3_sequential.keras", -1, -1, -1, -1, -1},
        {"thousand", "csm", "thousand.csm", 8, 8, 3, 1000, 3 * 3 * 3 * 4 + 4 + 6 * 6 * 4 * 1000 + 1000},
        {"small", "onnx", "small.onnx", 28, 28, 1, 10, 3 * 3 * 4 + 4 + 13 * 13 * 4 * 10 + 10},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        json_t *m = entry(j, want[i].name);
        CHECK(m && !strcmp(str(m, "status"), "ready"), "%s ready: %s", want[i].name, m ? str(m, "reason") : "missing");
        if (!m) continue;
        CHECK(!strcmp(str(m, "format"), want[i].format) && !strcmp(str(m, "file"), want[i].file), "%s: %s %s",
              want[i].name, str(m, "format"), str(m, "file"));
        if (want[i].h > 0)
            CHECK(shape_at(m, 0) == want[i].h && shape_at(m, 1) == want[i].w && shape_at(m, 2) == want[i].c,
                  "%s input shape", want[i].name);
        if (want[i].classes > 0)
            CHECK(num(m, "n_classes") == want[i].classes && (long)json_array_size(json_object_get(m, "classes")) ==
                                                                want[i].classes,
                  "%s classes: %ld", want[i].name, num(m, "n_classes"));
        if (want[i].params > 0)
            CHECK(num(m, "params") == want[i].params, "%s parameters: %ld, want %ld", want[i].name, num(m, "params"),
                  want[i].params);
        CHECK(json_is_object(json_object_get(m, "preprocessing")) && json_is_integer(json_object_get(m, "version")),
              "%s: preprocessing and version", want[i].name);
    }
    json_t *k2 = entry(j, "k2_functional"), *th = entry(j, "thousand"), *sm = entry(j, "small");
    CHECK(!strcmp(str(k2, "labels"), "sidecar") && !strcmp(json_string_value(json_array_get(json_object_get(k2, "classes"), 3)),
                                                            "delta"),
          "k2: labels from its sidecar");
    CHECK(!strcmp(str(k2, "description"), "a Keras 2 functional test model"), "k2: the sidecar's description");
    json_t *pre = json_object_get(k2, "preprocessing");
    CHECK(!strcmp(str(pre, "mode"), "tf") && !strcmp(str(pre, "resize"), "bilinear") && !strcmp(str(pre, "source"),
                                                                                                 "sidecar"),
          "k2: preprocessing from its sidecar");
    CHECK(!strcmp(str(th, "labels"), "imagenet") &&
              !strcmp(json_string_value(json_array_get(json_object_get(th, "classes"), 0)), "tench"),
          "1000 numbered classes: ImageNet's labels");
    CHECK(!strcmp(str(entry(j, "k3_sequential"), "labels"), "numbered"), "k3: numbered classes");
    CHECK(json_is_true(json_object_get(sm, "trainable")) && json_is_false(json_object_get(entry(j, "resnet"), "trainable")) &&
              strstr(str(entry(j, "resnet"), "not_trainable_reason"), "36x36x3 does not fit"),
          "trainable only when it fits Fashion-MNIST: %s", str(entry(j, "resnet"), "not_trainable_reason"));
    json_t *bad = entry(j, "unsupported"), *w = entry(j, "weights");
    CHECK(bad && !strcmp(str(bad, "status"), "unavailable") && strstr(str(bad, "reason"), "LRN") &&
              !strcmp(str(bad, "file"), "unsupported.onnx"),
          "an unsupported layer: unavailable with the reason: %s", bad ? str(bad, "reason") : "missing");
    CHECK(w && !strcmp(str(w, "status"), "unavailable") && strstr(str(w, "reason"), "weights only"),
          "a weights-only file: unavailable, says so: %s", w ? str(w, "reason") : "missing");
    json_t *a = json_object_get(j, "models");
    int vggs = 0;
    for (size_t i = 0; i < json_array_size(a); i++) vggs += strstr(str(json_array_get(a, i), "name"), "vgg16") != NULL;
    CHECK(vggs == 1, "VGG16's weights file is not listed as a model of its own (%d vgg16 entries)", vggs);
    CHECK(!strcmp(str(entry(j, "fmnist"), "status"), "ready") && !strcmp(str(entry(j, "fmnist"), "format"), "csm"),
          "fmnist ready");
    json_decref(j);
}

/* The names of a model's spatial nodes and its first conv, from its summary. */
static int spatial_nodes(const char *model, char names[][64], int max, char *conv)
{
    char path[128];
    snprintf(path, sizeof path, "/v1/models/%s", model);
    resp_t r = http(&S, "GET", path);
    json_t *j = resp_json(&r), *layers = json_object_get(j, "layers");
    int n = 0;
    conv[0] = 0;
    for (size_t i = 0; i < json_array_size(layers); i++) {
        json_t *l = json_array_get(layers, i);
        if (!conv[0] && json_object_get(l, "filters")) snprintf(conv, 64, "%s", str(l, "name"));
        if (json_is_true(json_object_get(l, "spatial")) && n < max) snprintf(names[n++], 64, "%s", str(l, "name"));
    }
    CHECK(r.status == 200 && json_array_size(layers) > 0 && json_is_object(json_object_get(j, "preprocessing")),
          "%s summary", model);
    json_decref(j);
    resp_free(&r);
    return n;
}

static void test_every_model_works(void)
{
    static const char *models[] = {"resnet", "k2_functional", "k3_sequential", "thousand", "small"};
    for (size_t m = 0; m < sizeof models / sizeof models[0]; m++) {
        char path[300], hdr[300];
        snprintf(path, sizeof path, "/v1/models/%s/predict?top_k=2", models[m]);
        resp_t r = http_post_file(&S, path, PHOTO("chelsea.png"), "image/png");
        json_t *j = resp_json(&r), *p = json_array_get(json_object_get(j, "predictions"), 0);
        double sum = 0;
        json_t *probs = json_object_get(p, "probabilities");
        for (size_t i = 0; i < json_array_size(probs); i++) sum += json_number_value(json_array_get(probs, i));
        CHECK(r.status == 200 && fabs(sum - 1) < 1e-4 && json_array_size(json_object_get(p, "top")) == 2,
              "%s predicts: %ld, sum %g", models[m], r.status, sum);
        CHECK(resp_header(&r, "X-Preprocessing", hdr, sizeof hdr) && strstr(hdr, "mode=") &&
                  json_is_object(json_object_get(j, "preprocessing")),
              "%s: the answer names its preprocessing", models[m]);
        if (!strcmp(models[m], "k2_functional")) {
            CHECK(strstr(hdr, "mode=tf") && strstr(hdr, "resize=bilinear") && strstr(hdr, "source=sidecar"),
                  "k2: %s", hdr);
            const char *label = str(json_array_get(json_object_get(p, "top"), 0), "label");
            CHECK(strlen(label) > 1, "k2 answers with its sidecar's labels: %s", label);
        }
        if (!strcmp(models[m], "thousand"))
            CHECK(strlen(str(json_array_get(json_object_get(p, "top"), 0), "wnid")) == 9, "ImageNet answers carry wnids");
        json_decref(j);
        resp_free(&r);

        char nodes[200][64], conv[64];
        int n = spatial_nodes(models[m], nodes, 200, conv);
        CHECK(n > 0 && conv[0], "%s has spatial nodes (%d) and a conv", models[m], n);
        snprintf(path, sizeof path, "/v1/models/%s/layers/%s/filters.png", models[m], conv);
        r = http(&S, "GET", path);
        cs_image img;
        CHECK(r.status == 200 && resp_png(&r, &img), "%s filters of %s: %ld", models[m], conv, r.status);
        if (r.status == 200) cs_image_free(&img);
        resp_free(&r);
        int maps_ok = 0, cams_ok = 0;
        for (int k = 0; k < n; k++) {
            sfmt(path, sizeof path, "/v1/models/%s/layers/%s/feature-maps.png", models[m], nodes[k]);
            r = http_post_file(&S, path, PHOTO("coffee.png"), "image/png");
            if (r.status == 200 && resp_png(&r, &img)) {
                maps_ok++;
                cs_image_free(&img);
            } else {
                fprintf(stderr, "FAILED feature maps %s %s: %ld %s\n", models[m], nodes[k], r.status, r.body);
            }
            resp_free(&r);
            sfmt(path, sizeof path, "/v1/models/%s/gradcam?format=json&layer=%s", models[m], nodes[k]);
            r = http_post_file(&S, path, PHOTO("coffee.png"), "image/png");
            json_t *g = resp_json(&r), *res = json_array_get(json_object_get(g, "results"), 0);
            if (r.status == 200 && json_array_size(json_object_get(res, "heatmap")) == (size_t)num(res, "height") &&
                num(res, "height") >= 2)
                cams_ok++;
            else
                fprintf(stderr, "FAILED Grad-CAM %s %s: %ld %s\n", models[m], nodes[k], r.status, r.body);
            json_decref(g);
            resp_free(&r);
        }
        CHECK(maps_ok == n && cams_ok == n, "%s: feature maps of %d and Grad-CAM on %d of %d spatial nodes", models[m],
              maps_ok, cams_ok, n);
        snprintf(path, sizeof path, "/v1/models/%s/gradcam", models[m]);
        r = http_post_file(&S, path, PHOTO("rocket.jpg"), "image/jpeg");
        CHECK(r.status == 200 && resp_png(&r, &img) && resp_header(&r, "X-Preprocessing", hdr, sizeof hdr),
              "%s: Grad-CAM overlay: %ld", models[m], r.status);
        if (img.px) cs_image_free(&img);
        resp_free(&r);
    }
    resp_t r = http_post_file(&S, "/v1/models/unsupported/predict", PHOTO("chelsea.png"), "image/png");
    CHECK(r.status == 503 && strstr(r.body, "LRN"), "the unsupported model answers 503 with its reason: %ld", r.status);
    resp_free(&r);
}

/* A model of two image inputs: an upload is one image, so the folder lists it as
 * unavailable with the reason, and every image route answers 503 with it. */
static void test_two_input_model(void)
{
    json_t *j = listing(), *m = entry(j, "twoin");
    CHECK(m && !strcmp(str(m, "status"), "unavailable") && strstr(str(m, "reason"), "2 graph inputs"),
          "listed unavailable with the reason: %s", m ? str(m, "reason") : "missing");
    json_decref(j);
    resp_t r;
    static const char *routes[] = {"predict", "gradcam", "gradcam?format=json", "layers/conv/feature-maps.png",
                                   "layers/conv/activations", "explain?method=gradient"};
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        char path[200];
        sfmt(path, sizeof path, "/v1/models/twoin/%s", routes[i]);
        r = http_post_file(&S, path, PHOTO("chelsea.png"), "image/png");
        j = resp_json(&r);
        json_t *e = json_object_get(j, "error");
        CHECK(r.status == 503 && !strcmp(str(e, "code"), "model_unavailable") && strstr(str(e, "message"), "2 graph inputs"),
              "%s: %ld %s", routes[i], r.status, r.body ? r.body : "");
        json_decref(j);
        resp_free(&r);
    }
}

/* Waits (polling, 10 s at most) until the listing meets cond. */
static int wait_listing(int (*cond)(json_t *))
{
    double end = now_s() + 10;
    while (now_s() < end) {
        json_t *j = listing();
        int ok = cond(j);
        json_decref(j);
        if (ok) return 1;
        usleep(100000);
    }
    return 0;
}

static int has_mobilenet(json_t *j) { return entry(j, "mobilenetv2") && !strcmp(str(entry(j, "mobilenetv2"), "status"), "ready"); }
static int no_k3(json_t *j) { return entry(j, "k3_sequential") == NULL; }
static int k3_relabelled(json_t *j)
{
    json_t *k3 = entry(j, "k3_sequential");
    return k3 && !strcmp(str(k3, "labels"), "sidecar");
}

static int resnet_unavailable(json_t *j)
{
    json_t *m = entry(j, "resnet");
    return m && !strcmp(str(m, "status"), "unavailable") && !strcmp(str(m, "file"), "resnet.keras");
}
static int resnet_onnx_ready(json_t *j)
{
    json_t *m = entry(j, "resnet");
    return m && !strcmp(str(m, "status"), "ready") && !strcmp(str(m, "file"), "resnet.onnx");
}

static void test_watcher(void)
{
    char cmd[1200], path[400];
    sfmt(cmd, sizeof cmd, "cp tests/data/models/mobilenetv2.onnx %s/new.tmp && mv %s/new.tmp %s/models/mobilenetv2.onnx",
         S.dir, S.dir, S.dir);
    CHECK(run_cmd(cmd) == 0, "copy a model in");
    CHECK(wait_listing(has_mobilenet), "a file added is served");
    resp_t r = http_post_file(&S, "/v1/models/mobilenetv2/predict", PHOTO("chelsea.png"), "image/png");
    CHECK(r.status == 200, "and predicts: %ld", r.status);
    resp_free(&r);
    /* A sidecar written for a served model: its next version has the labels. */
    json_t *j = listing();
    long before = num(entry(j, "k3_sequential"), "version"), n = num(entry(j, "k3_sequential"), "n_classes");
    json_decref(j);
    char side[2000] = "{\"labels\": [";
    for (long i = 0; i < n; i++) sfmt(side + strlen(side), sizeof side - strlen(side), "%s\"class %ld\"", i ? "," : "", i);
    strcat(side, "]}");
    sfmt(path, sizeof path, "%s/models/k3_sequential.json", S.dir);
    write_text(path, side);
    CHECK(n > 0 && wait_listing(k3_relabelled), "a new sidecar is read");
    j = listing();
    CHECK(num(entry(j, "k3_sequential"), "version") > before, "as a new version");
    json_decref(j);
    /* A broken sidecar is refused; the version served stays. */
    write_text(path, "{\"labels\": [\"just one\"]}");
    double end = now_s() + 10;
    char *log = NULL;
    while (now_s() < end) {
        free(log);
        log = srv_file(&S, "server.log");
        if (log && strstr(log, "k3_sequential.json")) break;
        usleep(100000);
    }
    CHECK(log && strstr(log, "refused the changed file") && strstr(log, "labels for a model of"), "refusal logged");
    free(log);
    r = http_post_file(&S, "/v1/models/k3_sequential/predict", PHOTO("chelsea.png"), "image/png");
    CHECK(r.status == 200 && strstr(r.body, "class "), "still served with the labels it had: %ld", r.status);
    resp_free(&r);
    sfmt(cmd, sizeof cmd, "rm %s/models/k3_sequential.keras", S.dir);
    CHECK(run_cmd(cmd) == 0, "remove a model file");
    CHECK(wait_listing(no_k3), "a file removed is dropped");
    r = http_post_file(&S, "/v1/models/k3_sequential/predict", PHOTO("chelsea.png"), "image/png");
    CHECK(r.status == 404, "and is not found: %ld", r.status);
    resp_free(&r);
    r = http_post_file(&S, "/v1/models/resnet/predict", PHOTO("chelsea.png"), "image/png");
    CHECK(r.status == 200, "the others keep serving: %ld", r.status);
    resp_free(&r);
    /* A damaged .keras beside resnet.onnx is served first (it comes first in the order);
     * refused, resnet is unavailable and answers so; gone, the ONNX file serves again. */
    sfmt(path, sizeof path, "%s/models/resnet.keras", S.dir);
    write_text(path, "not a zip");
    CHECK(wait_listing(resnet_unavailable), "the damaged file takes the name's place, unavailable");
    r = http_post_file(&S, "/v1/models/resnet/predict", PHOTO("chelsea.png"), "image/png");
    CHECK(r.status == 503 && strstr(r.body, "resnet.keras"), "and answers 503 with the reason: %ld %s", r.status, r.body);
    resp_free(&r);
    unlink(path);
    CHECK(wait_listing(resnet_onnx_ready), "removed, the ONNX file serves again");
}

static json_t *run_job(const char *body)
{
    req_opts o = {.content_type = "application/json"};
    resp_t r = http_ex(&S, "POST", "/v1/models/small/train", body, strlen(body), &o);
    CHECK(r.status == 202, "job started: %ld %s", r.status, r.body);
    json_t *j = resp_json(&r);
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s", str(j, "id"));
    json_decref(j);
    resp_free(&r);
    double end = now_s() + 120;
    j = NULL;
    while (now_s() < end) {
        json_decref(j);
        r = http(&S, "GET", path);
        j = resp_json(&r);
        resp_free(&r);
        const char *st = str(j, "state");
        if (!strcmp(st, "succeeded") || !strcmp(st, "failed") || !strcmp(st, "cancelled")) break;
        usleep(100000);
    }
    return j;
}

static void test_training_a_folder_model(void)
{
    json_t *j = listing();
    long v0 = num(entry(j, "small"), "version");
    json_decref(j);
    json_t *job = run_job("{\"epochs\": 1, \"train_limit\": 2000, \"test_limit\": 500, \"from\": \"current\"}");
    CHECK(!strcmp(str(job, "state"), "succeeded"), "fine-tuning from the served weights: %s %s", str(job, "state"),
          str(job, "error"));
    double acc = json_number_value(json_object_get(json_object_get(job, "result"), "test_accuracy"));
    CHECK(acc > 0.3, "it learned Fashion-MNIST: %g", acc);
    json_decref(job);
    j = listing();
    json_t *m = entry(j, "small");
    CHECK(num(m, "version") > v0 && !strcmp(str(m, "format"), "csm") && !strcmp(str(m, "file"), "small.csm"),
          "served as the next version from small.csm: %s", str(m, "file"));
    CHECK(!strcmp(json_string_value(json_array_get(json_object_get(m, "classes"), 8)), "Bag"),
          "its numbered classes became Fashion-MNIST's");
    json_decref(j);
    char path[400];
    sfmt(path, sizeof path, "%s/models/small.onnx", S.dir);
    CHECK(file_exists(path), "the ONNX file it came from is left as it was");
    job = run_job("{\"epochs\": 1, \"train_limit\": 1000, \"test_limit\": 200, \"from\": \"scratch\"}");
    CHECK(!strcmp(str(job, "state"), "succeeded"), "from scratch: %s %s", str(job, "state"), str(job, "error"));
    json_decref(job);
    /* A model a job holds is not deleted under it. */
    req_opts o = {.content_type = "application/json"};
    const char *body = "{\"epochs\": 50}";
    resp_t r = http_ex(&S, "POST", "/v1/models/small/train", body, strlen(body), &o);
    json_t *started = resp_json(&r);
    char job_path[128];
    snprintf(job_path, sizeof job_path, "/v1/jobs/%s", str(started, "id"));
    json_decref(started);
    CHECK(r.status == 202, "a long job: %ld", r.status);
    resp_free(&r);
    r = http(&S, "DELETE", "/v1/models/small");
    CHECK(r.status == 409 && is_error(&r, "job_running"), "no deleting a model in training: %ld %s", r.status, r.body);
    resp_free(&r);
    r = http(&S, "DELETE", job_path);
    CHECK(r.status == 202, "cancelled: %ld", r.status);
    resp_free(&r);
    double end = now_s() + 60;
    int done = 0;
    while (!done && now_s() < end) {
        r = http(&S, "GET", job_path);
        json_t *j = resp_json(&r);
        done = !strcmp(str(j, "state"), "cancelled");
        json_decref(j);
        resp_free(&r);
        if (!done) usleep(100000);
    }
    CHECK(done, "the job ended cancelled");
    r = http_ex(&S, "POST", "/v1/models/resnet/train", "{}", 2, &o);
    CHECK(r.status == 400 && is_error(&r, "not_trainable") && strstr(r.body, "does not fit"),
          "a colour model is refused with the reason: %ld %s", r.status, r.body);
    resp_free(&r);
}

int main(void)
{
    if (!mkdtemp(tmp_template(work, sizeof work, "folder"))) return 99;
    char p[8][400], list[4000];
    sfmt(p[0], sizeof p[0], "%s/thousand.csm", work);
    sfmt(p[1], sizeof p[1], "%s/small.onnx", work);
    sfmt(p[2], sizeof p[2], "%s/unsupported.onnx", work);
    sfmt(p[3], sizeof p[3], "%s/weights.h5", work);
    sfmt(p[4], sizeof p[4], "%s/vgg16_weights_tf_dim_ordering_tf_kernels.h5", work);
    sfmt(p[5], sizeof p[5], "%s/k2_functional.json", work);
    sfmt(p[6], sizeof p[6], "%s/twoin.onnx", work);
    write_thousand(p[0]);
    write_trainable(p[1]);
    write_unsupported(p[2]);
    write_two_inputs(p[6]);
    write_weights_only(p[3]);
    write_text(p[4], "not the real weights");
    write_text(p[5], "{\"labels\": [\"alpha\", \"beta\", \"gamma\", \"delta\"], \"description\": \"a Keras 2 functional "
                     "test model\", \"preprocessing\": {\"mode\": \"tf\", \"resize\": \"bilinear\"}}");
    sfmt(list, sizeof list,
         "tests/data/models/resnet.onnx tests/data/keras/k2_functional.h5 tests/data/keras/k3_sequential.keras "
         "%s %s %s %s %s %s %s",
         p[0], p[1], p[2], p[3], p[4], p[5], p[6]);
    srv_extra_models = list;
    const char *flags[] = {"--no-vgg16", NULL};
    srv_start(&S, flags);
    RUN(test_listing);
    RUN(test_every_model_works);
    RUN(test_two_input_model);
    RUN(test_watcher);
    RUN(test_training_a_folder_model);
    srv_stop(&S);
    char cmd[400];
    sfmt(cmd, sizeof cmd, "rm -rf %s", work);
    run_cmd(cmd);
    return test_summary("api_folder");
}
