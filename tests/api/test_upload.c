/*
 * test_upload.c - bringing models over HTTP: POST /v1/models uploads an ONNX
 * ResNet-style model and a Keras model with labels and preprocessing, each then
 * predicts, draws feature maps and Grad-CAM; a corrupt file, a model with an
 * unsupported layer, a wrong label count, an unknown format, a bad or taken name are
 * refused with nothing written to the models folder; without the token 401 before the
 * body is read; past --max-model-upload 413; DELETE /v1/models/{name} removes a model
 * and its files, never the notebook's.
 */
#include <dirent.h>

#include "harness.h"
#include "onnx_build.h"

#define TOKEN "upload-secret"
#define MAX_MODEL 2000000

static srv_t S;

typedef struct {
    const char *name;
    const char *path;     /* a file part, or NULL */
    const char *data;     /* inline data, or NULL */
    size_t len;           /* of data (0: a string) */
    const char *filename; /* for inline data */
} field;

#define PART_FILE(n, p) {.name = n, .path = p}
#define PART_TEXT(n, t) {.name = n, .data = t}
#define PART_BYTES(n, d, l, fn) {.name = n, .data = d, .len = l, .filename = fn}

static resp_t post_form(const field *f, int n, const char *token)
{
    resp_t r = {0};
    CURL *c = curl_easy_init();
    char url[512], auth[200];
    snprintf(url, sizeof url, "%s/v1/models", S.base);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
    curl_mime *mime = curl_mime_init(c);
    for (int i = 0; i < n; i++) {
        curl_mimepart *p = curl_mime_addpart(mime);
        curl_mime_name(p, f[i].name);
        if (f[i].path) curl_mime_filedata(p, f[i].path);
        else curl_mime_data(p, f[i].data, f[i].len ? f[i].len : CURL_ZERO_TERMINATED);
        if (f[i].filename) curl_mime_filename(p, f[i].filename);
    }
    curl_easy_setopt(c, CURLOPT_MIMEPOST, mime);
    struct curl_slist *h = NULL;
    if (token) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
        h = curl_slist_append(h, auth);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    }
    r.curl = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    curl_off_t up = 0;
    curl_easy_getinfo(c, CURLINFO_SIZE_UPLOAD_T, &up);
    r.uploaded = (double)up;
    curl_slist_free_all(h);
    curl_mime_free(mime);
    curl_easy_cleanup(c);
    if (!r.body) r.body = calloc(1, 1);
    return r;
}

static resp_t delete_model(const char *name, const char *token)
{
    char path[128], auth[200];
    snprintf(path, sizeof path, "/v1/models/%s", name);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", token ? token : "");
    const char *hs[] = {auth, NULL};
    req_opts o = {.headers = token ? hs : NULL};
    return http_ex(&S, "DELETE", path, NULL, 0, &o);
}

/* The models folder's file names, space-separated and sorted. */
static void folder(char *out, size_t len)
{
    char dir[400];
    sfmt(dir, sizeof dir, "%s/models", S.dir);
    struct dirent **list;
    int n = scandir(dir, &list, NULL, alphasort);
    out[0] = 0;
    for (int i = 0; i < n; i++) {
        if (strcmp(list[i]->d_name, ".") && strcmp(list[i]->d_name, ".."))
            sfmt(out + strlen(out), len - strlen(out), "%s ", list[i]->d_name);
        free(list[i]);
    }
    if (n >= 0) free(list);
}

static json_t *entry(const char *name)
{
    resp_t r = http(&S, "GET", "/v1/models");
    json_t *j = resp_json(&r), *a = json_object_get(j, "models"), *found = NULL;
    for (size_t i = 0; i < json_array_size(a); i++)
        if (!strcmp(json_string_value(json_object_get(json_array_get(a, i), "name")), name))
            found = json_incref(json_array_get(a, i));
    json_decref(j);
    resp_free(&r);
    return found;
}

/* Predictions, the feature maps of `node` and Grad-CAM (JSON and overlay) answer. */
static void works(const char *model, const char *node, const char *want_label)
{
    char path[300], hdr[300];
    sfmt(path, sizeof path, "/v1/models/%s/predict", model);
    resp_t r = http_post_file(&S, path, PHOTO("chelsea.png"), "image/png");
    json_t *j = resp_json(&r), *top = json_array_get(json_object_get(json_array_get(json_object_get(j, "predictions"), 0), "top"), 0);
    CHECK(r.status == 200 && top, "%s predicts: %ld %s", model, r.status, r.body);
    if (want_label) {
        const char *label = json_string_value(json_object_get(top, "label"));
        CHECK(label && strstr(want_label, label), "%s answers in its labels: %s", model, label ? label : "(none)");
    }
    CHECK(resp_header(&r, "X-Preprocessing", hdr, sizeof hdr) != NULL, "%s names its preprocessing", model);
    json_decref(j);
    resp_free(&r);
    sfmt(path, sizeof path, "/v1/models/%s/layers/%s/feature-maps.png", model, node);
    r = http_post_file(&S, path, PHOTO("coffee.png"), "image/png");
    cs_image img;
    CHECK(r.status == 200 && resp_png(&r, &img), "%s feature maps of %s: %ld %s", model, node, r.status, r.body);
    if (r.status == 200) cs_image_free(&img);
    resp_free(&r);
    sfmt(path, sizeof path, "/v1/models/%s/gradcam?format=json", model);
    r = http_post_file(&S, path, PHOTO("coffee.png"), "image/png");
    j = resp_json(&r);
    json_t *res = json_array_get(json_object_get(j, "results"), 0);
    CHECK(r.status == 200 && json_array_size(json_object_get(res, "heatmap")) >= 2, "%s Grad-CAM JSON: %ld", model,
          r.status);
    json_decref(j);
    resp_free(&r);
    sfmt(path, sizeof path, "/v1/models/%s/gradcam", model);
    r = http_post_file(&S, path, PHOTO("rocket.jpg"), "image/jpeg");
    CHECK(r.status == 200 && resp_png(&r, &img), "%s Grad-CAM overlay: %ld", model, r.status);
    if (r.status == 200) cs_image_free(&img);
    resp_free(&r);
}

static void test_upload_onnx(void)
{
    char labels[200] = "";
    for (int i = 0; i < 10; i++) sfmt(labels + strlen(labels), sizeof labels - strlen(labels), "n0%07d thing %d\n", i, i);
    field f[] = {PART_FILE("file", "tests/data/models/resnet.onnx"),
                 PART_TEXT("name", "myresnet"),
                 PART_BYTES("labels", labels, 0, "labels.txt")};
    resp_t r = post_form(f, 3, TOKEN);
    char loc[128];
    CHECK(r.status == 201 && resp_header(&r, "Location", loc, sizeof loc) && !strcmp(loc, "/v1/models/myresnet"),
          "201 with its Location: %ld %s", r.status, r.body);
    json_t *j = resp_json(&r);
    CHECK(!strcmp(json_string_value(json_object_get(j, "status")), "ready") &&
              !strcmp(json_string_value(json_object_get(j, "format")), "onnx") &&
              !strcmp(json_string_value(json_object_get(j, "labels")), "sidecar"),
          "answered with its entry: ready, onnx, labels from the form");
    json_decref(j);
    resp_free(&r);
    json_t *e = entry("myresnet");
    CHECK(e && json_integer_value(json_object_get(e, "n_classes")) == 10, "listed");
    json_decref(e);
    char files[2000];
    folder(files, sizeof files);
    CHECK(strstr(files, "myresnet.onnx ") && strstr(files, "myresnet.json ") && !strstr(files, ".tmp."),
          "the file and its sidecar in the folder, no temporary left: %s", files);
    works("myresnet", "layer2.relu2.Relu", "thing 0 thing 1 thing 2 thing 3 thing 4 thing 5 thing 6 thing 7 thing 8 thing 9");
    r = http_post_file(&S, "/v1/models/myresnet/predict", PHOTO("chelsea.png"), "image/png");
    CHECK(strstr(r.body, "\"wnid\": \"n0000000") || strstr(r.body, "\"wnid\":\"n0000000"), "WordNet ids kept from the labels file");
    resp_free(&r);
}

static void test_upload_keras(void)
{
    field f[] = {PART_FILE("file", "tests/data/keras/k2_functional.h5"),
                 PART_TEXT("labels", "[\"north\", \"east\", \"south\", \"west\"]"),
                 PART_TEXT("preprocessing", "{\"mode\": \"raw\", \"resize\": \"bilinear\", \"fit\": \"crop\"}"),
                 PART_TEXT("description", "a Keras 2 model with labels")};
    resp_t r = post_form(f, 4, TOKEN);
    CHECK(r.status == 201, "a Keras file named after itself: %ld %s", r.status, r.body);
    resp_free(&r);
    json_t *e = entry("k2_functional");
    json_t *pre = json_object_get(e, "preprocessing");
    CHECK(e && !strcmp(json_string_value(json_object_get(e, "format")), "h5") &&
              !strcmp(json_string_value(json_object_get(pre, "fit")), "crop") &&
              !strcmp(json_string_value(json_object_get(e, "description")), "a Keras 2 model with labels"),
          "listed with its preprocessing and description");
    json_decref(e);
    works("k2_functional", "down.elu", "north east south west");
}

static void test_refused_uploads_write_nothing(void)
{
    char before[2000], after[2000];
    folder(before, sizeof before);
    /* A truncated copy of the ONNX file. */
    size_t len = 0;
    char *bytes = test_read_file("tests/data/models/resnet.onnx", &len);
    if (!bytes) exit(99);
    field cut[] = {PART_BYTES("file", bytes, len / 2, "cut.onnx")};
    resp_t r = post_form(cut, 1, TOKEN);
    CHECK(r.status == 422 && is_error(&r, "bad_model") && strstr(r.body, "cut.onnx"), "a corrupt file: 422 %ld %s",
          r.status, r.body);
    resp_free(&r);
    free(bytes);
    /* A graph with a layer the importer does not take. */
    spec s;
    spec_init(&s);
    const int64_t in[] = {-1, 3, 8, 8};
    s.inputs[s.n_inputs++] = vinfo("x", 4, in);
    s.outputs[s.n_outputs++] = vinfo("y", 4, in);
    s.nodes[s.n_nodes++] = node("LRN", "norm", "x", "y", attr_int("size", 3), NULL);
    size_t n;
    uint8_t *buf = pack(&s, &n);
    field lrn[] = {PART_BYTES("file", (const char *)buf, n, "lrn.onnx")};
    r = post_form(lrn, 1, TOKEN);
    CHECK(r.status == 422 && strstr(r.body, "LRN"), "an unsupported layer: 422 naming it: %ld %s", r.status, r.body);
    resp_free(&r);
    pool_free();
    field labels[] = {PART_FILE("file", "tests/data/keras/k3_sequential.keras"), PART_TEXT("labels", "one\ntwo\nthree\n")};
    r = post_form(labels, 2, TOKEN);
    CHECK(r.status == 422 && strstr(r.body, "3 labels"), "a wrong label count: %ld %s", r.status, r.body);
    resp_free(&r);
    field pre[] = {PART_FILE("file", "tests/data/keras/k3_sequential.keras"), PART_TEXT("preprocessing", "{\"colour\": \"rgb\"}")};
    r = post_form(pre, 2, TOKEN);
    CHECK(r.status == 422 && strstr(r.body, "colour"), "a wrong preprocessing field: %ld %s", r.status, r.body);
    resp_free(&r);
    field txt[] = {PART_BYTES("file", "hello", 0, "notes.txt")};
    r = post_form(txt, 1, TOKEN);
    CHECK(r.status == 415, "not a model format: %ld %s", r.status, r.body);
    resp_free(&r);
    field bad_name[] = {PART_FILE("file", "tests/data/models/resnet.onnx"), PART_TEXT("name", "../evil")};
    r = post_form(bad_name, 2, TOKEN);
    CHECK(r.status == 400 && is_error(&r, "bad_name"), "a name with a slash: %ld", r.status);
    resp_free(&r);
    field taken[] = {PART_FILE("file", "tests/data/models/resnet.onnx"), PART_TEXT("name", "myresnet")};
    r = post_form(taken, 2, TOKEN);
    CHECK(r.status == 409, "a name taken: %ld", r.status);
    resp_free(&r);
    field fm[] = {PART_FILE("file", "tests/data/models/resnet.onnx"), PART_TEXT("name", "fmnist")};
    r = post_form(fm, 2, TOKEN);
    CHECK(r.status == 409, "the notebook's name: %ld", r.status);
    resp_free(&r);
    /* Its sidecar would be the class index the service reads ImageNet's labels from. */
    field ci[] = {PART_FILE("file", "tests/data/models/resnet.onnx"), PART_TEXT("name", "imagenet_class_index")};
    r = post_form(ci, 2, TOKEN);
    CHECK(r.status == 409, "the class index's name: %ld", r.status);
    resp_free(&r);
    field none[] = {PART_TEXT("name", "nothing")};
    r = post_form(none, 1, TOKEN);
    CHECK(r.status == 400 && is_error(&r, "no_file"), "no file: %ld", r.status);
    resp_free(&r);
    folder(after, sizeof after);
    CHECK(!strcmp(before, after), "nothing written: before '%s', after '%s'", before, after);
    json_t *e = entry("cut");
    CHECK(!e, "nothing listed");
    json_decref(e);
}

static void test_token_and_size(void)
{
    char before[2000], after[2000];
    folder(before, sizeof before);
    field f[] = {PART_FILE("file", "tests/data/models/resnet.onnx"), PART_TEXT("name", "sneaky")};
    resp_t r = post_form(f, 2, NULL);
    CHECK(r.status == 401 && is_error(&r, "unauthorized"), "no token: %ld", r.status);
    resp_free(&r);
    r = post_form(f, 2, "wrong");
    CHECK(r.status == 401, "a wrong token: %ld", r.status);
    resp_free(&r);
    /* The token is checked before the body is read: 20 MB are not taken. */
    size_t big = 20u << 20;
    char *zeros = calloc(1, big);
    if (!zeros) exit(99);
    field huge[] = {PART_BYTES("file", zeros, big, "huge.onnx")};
    r = post_form(huge, 1, NULL);
    CHECK(r.status == 401 && r.uploaded < 8e6, "401 before the body (%.0f bytes sent)", r.uploaded);
    resp_free(&r);
    /* Past --max-model-upload with the token: 413, unread. */
    r = post_form(huge, 1, TOKEN);
    CHECK(r.status == 413 && is_error(&r, "payload_too_large") && r.uploaded < 8e6, "413 past the limit: %ld (%.0f sent)",
          r.status, r.uploaded);
    resp_free(&r);
    free(zeros);
    folder(after, sizeof after);
    CHECK(!strcmp(before, after), "nothing written: %s", after);
}

static void test_delete(void)
{
    resp_t r = delete_model("myresnet", NULL);
    CHECK(r.status == 401, "delete without the token: %ld", r.status);
    resp_free(&r);
    r = delete_model("myresnet", TOKEN);
    json_t *j = resp_json(&r);
    CHECK(r.status == 200 && json_array_size(json_object_get(j, "deleted")) == 2, "deleted with its sidecar: %ld %s",
          r.status, r.body);
    json_decref(j);
    resp_free(&r);
    char files[2000];
    folder(files, sizeof files);
    CHECK(!strstr(files, "myresnet"), "its files are gone: %s", files);
    r = http_post_file(&S, "/v1/models/myresnet/predict", PHOTO("chelsea.png"), "image/png");
    CHECK(r.status == 404, "no longer served: %ld", r.status);
    resp_free(&r);
    r = delete_model("myresnet", TOKEN);
    CHECK(r.status == 404, "twice: 404 (%ld)", r.status);
    resp_free(&r);
    r = delete_model("fmnist", TOKEN);
    CHECK(r.status == 403 && is_error(&r, "protected_model"), "the notebook's model stays: %ld", r.status);
    resp_free(&r);
    works("k2_functional", "down.elu", NULL);
    r = http_ex(&S, "POST", "/v1/models/fmnist/predict?sample=test:18", "", 0, NULL);
    CHECK(r.status == 200, "fmnist still answers: %ld", r.status);
    resp_free(&r);
    /* The name is free again. */
    field f[] = {PART_FILE("file", "tests/data/models/resnet.onnx"), PART_TEXT("name", "myresnet")};
    r = post_form(f, 2, TOKEN);
    CHECK(r.status == 201, "uploaded again under the same name: %ld %s", r.status, r.body);
    resp_free(&r);
    json_t *e = entry("myresnet");
    CHECK(e && !strcmp(json_string_value(json_object_get(e, "labels")), "numbered"), "without the old labels");
    json_decref(e);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    char limit[32];
    snprintf(limit, sizeof limit, "%d", MAX_MODEL);
    const char *flags[] = {"--token", TOKEN, "--no-vgg16", "--max-model-upload", limit, NULL};
    srv_start(&S, flags);
    RUN(test_upload_onnx);
    RUN(test_upload_keras);
    RUN(test_refused_uploads_write_nothing);
    RUN(test_token_and_size);
    RUN(test_delete);
    srv_stop(&S);
    CHECK(S.exit_status == 0, "server exit %d", S.exit_status);
    curl_global_cleanup();
    return test_summary("api_upload");
}
