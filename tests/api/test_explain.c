/*
 * test_explain.c - the explanation routes: one method as a picture or as JSON that
 * holds the very map the core computes for the same image (checked against the core
 * run here on the served model file), the faithfulness numbers and the randomisation
 * check on request, the comparison grid and its JSON, the evaluation job over
 * dataset images (to its result, and cancelled), and 400s that name the parameter.
 */
#include "dataset.h"
#include "explain/explain.h"
#include "harness.h"

static srv_t S;
static cs_model *g_m;
static float g_x[784];

static json_t *post_json(const char *path, long *status)
{
    resp_t r = http_ex(&S, "POST", path, "", 0, NULL);
    json_t *j = resp_json(&r);
    if (status) *status = r.status;
    if (r.status != 200 && r.status != 202) fprintf(stderr, "    %s: %ld %s\n", path, r.status, r.body);
    resp_free(&r);
    return j;
}

static double number(json_t *o, const char *key) { return json_number_value(json_object_get(o, key)); }

/* The PNG the route draws: the notebook's 540x540 overlay, a heatmap at any size, an
 * uploaded photo. */
static void test_pictures(void)
{
    resp_t r = http_ex(&S, "POST", "/v1/models/fmnist/explain?method=scorecam&sample=test:18", "", 0, NULL);
    cs_image img;
    char hdr[64];
    CHECK(r.status == 200 && resp_png(&r, &img), "%ld", r.status);
    CHECK(img.w == 540 && img.h == 540 && img.c == 3 && image_levels(&img) > 16, "540x540 RGB overlay");
    CHECK(resp_header(&r, "X-Method", hdr, sizeof hdr) && !strcmp(hdr, "scorecam"), "X-Method");
    CHECK(resp_header(&r, "X-Class-Label", hdr, sizeof hdr) && !strcmp(hdr, "Bag"), "X-Class-Label %s", hdr);
    CHECK(resp_header(&r, "X-Flat", hdr, sizeof hdr) && !strcmp(hdr, "false"), "X-Flat %s", hdr);
    CHECK(resp_header(&r, "X-Logit", hdr, sizeof hdr) && atof(hdr) > 1, "X-Logit %s", hdr);
    cs_image_free(&img);
    resp_free(&r);
    r = http_ex(&S, "POST", "/v1/models/fmnist/explain?method=occlusion&sample=test:18&format=heatmap&size=100", "", 0,
                NULL);
    CHECK(r.status == 200 && resp_png(&r, &img) && img.w == 100 && img.h == 100, "heatmap 100x100");
    cs_image_free(&img);
    resp_free(&r);
    r = http_post_file(&S, "/v1/models/fmnist/explain?method=integrated_gradients&steps=16", PHOTO("coffee.png"),
                       "image/png");
    CHECK(r.status == 200 && resp_png(&r, &img) && img.w == 540, "photo: %ld", r.status);
    cs_image_free(&img);
    resp_free(&r);
}

/* The JSON map is the core's map for the same image and parameters. */
static void check_same_as_core(const char *method, const char *query, const cs_explain_params *p)
{
    char path[300], err[300];
    snprintf(path, sizeof path, "/v1/models/fmnist/explain?method=%s&sample=test:18&format=json%s", method, query);
    long st;
    json_t *j = post_json(path, &st);
    CHECK(st == 200, "%s: %ld", method, st);
    cs_explainer ex;
    cs_explain_map m;
    /* The forward the server runs for this method (its CAM node and above written). */
    const cs_explain_method *meth_core = cs_explain_find(method);
    CHECK(cs_explainer_init_above(&ex, g_m, g_x, NULL, cs_explain_keep(g_m, &meth_core, 1, p), err, sizeof err) == 0,
          "%s", err);
    if (cs_explain_run(&ex, meth_core, p, &m, err, sizeof err) != 0) {
        CHECK(0, "%s: %s", method, err);
        cs_explainer_free(&ex);
        json_decref(j);
        return;
    }
    json_t *rows = json_object_get(j, "map"), *heat = json_object_get(j, "heatmap");
    CHECK((int)json_array_size(rows) == m.h && (int)json_integer_value(json_object_get(j, "height")) == m.h &&
              (int)json_integer_value(json_object_get(j, "width")) == m.w,
          "%s: %dx%d", method, m.h, m.w);
    /* The server splits its work over other threads than this process: sums may round
     * differently, by a few units in the last place. */
    double worst = 0, scale = 0;
    for (int i = 0; i < m.h * m.w; i++) scale = fmax(scale, fabs(m.map[i]));
    for (int y = 0; y < m.h && y < (int)json_array_size(rows); y++)
        for (int x = 0; x < m.w; x++) {
            double a = json_number_value(json_array_get(json_array_get(rows, y), x)) - m.map[y * m.w + x];
            double b = json_number_value(json_array_get(json_array_get(heat, y), x)) - m.heat[y * m.w + x];
            worst = fmax(worst, fmax(fabs(a) / scale, fabs(b)));
        }
    CHECK(scale > 0 && worst <= 1e-5, "%s: the served map is the core's (largest difference %g)", method, worst);
    json_t *meth = json_object_get(j, "method");
    CHECK(!strcmp(json_string_value(json_object_get(meth, "name")), method) &&
              strlen(json_string_value(json_object_get(meth, "paper"))) > 20,
          "%s: the method and its paper", method);
    CHECK(json_integer_value(json_object_get(j, "class_index")) == (p->class_index >= 0 ? p->class_index : 8),
          "%s: the bag, or the class asked for", method);
    cs_explain_map_free(&m);
    cs_explainer_free(&ex);
    json_decref(j);
}

static void test_json_is_the_core_map(void)
{
    cs_explain_params p;
    cs_explain_params_default(&p);
    check_same_as_core("gradcampp", "", &p);
    check_same_as_core("scorecam", "&batch=5", &p);
    check_same_as_core("eigencam", "", &p);
    check_same_as_core("guided_backprop", "", &p);
    p.layer = cs_model_find_layer(g_m, "leaky_re_lu_1");
    p.class_index = 3;
    p.score_kind = CS_SCORE_PROBABILITY;
    check_same_as_core("layercam", "&layer=leaky_re_lu_1&class=Dress&score=probability", &p);
    cs_explain_params_default(&p);
    p.samples = 9;
    p.noise = 0.3f;
    p.seed = 5;
    check_same_as_core("smoothgrad", "&samples=9&noise=0.3&seed=5", &p);
    cs_explain_params_default(&p);
    p.patch = 5;
    p.stride = 3;
    check_same_as_core("occlusion", "&patch=5&stride=3", &p);
    cs_explain_params_default(&p);
    p.steps = 128;
    p.baseline = CS_BASELINE_BLUR;
    p.blur_sigma = 2;
    check_same_as_core("integrated_gradients", "&steps=128&baseline=blur&blur_sigma=2", &p);
}

/* Integrated Gradients reports its completeness; the parameters come back as run. */
static void test_completeness_and_params(void)
{
    long st;
    json_t *j = post_json("/v1/models/fmnist/explain?method=integrated_gradients&sample=test:18&format=json&steps=128",
                          &st);
    json_t *c = json_object_get(j, "completeness"), *p = json_object_get(j, "params");
    double sum = number(c, "attribution_sum"), want = number(c, "score_minus_baseline");
    CHECK(st == 200 && fabs(sum - want) <= 0.01 * fabs(want) && fabs(want) > 1, "sum %g, S(x) - S(b) %g", sum, want);
    CHECK(json_integer_value(json_object_get(p, "steps")) == 128 &&
              !strcmp(json_string_value(json_object_get(p, "baseline")), "black") &&
              !json_object_get(p, "patch"),
          "the parameters IG read");
    json_t *pa = json_object_get(j, "passes");
    CHECK(json_integer_value(json_object_get(pa, "backwards")) == 128, "128 gradient passes");
    json_decref(j);
}

static void test_metrics_and_sanity(void)
{
    long st;
    json_t *j = post_json("/v1/models/fmnist/explain?method=gradcam&sample=test:18&format=json&metrics=true", &st);
    json_t *m = json_object_get(j, "metrics");
    CHECK(st == 200 && json_array_size(json_object_get(m, "deletion")) == 29 &&
              json_array_size(json_object_get(m, "insertion")) == 29,
          "28 steps of a row each, and the start");
    double del = number(m, "deletion_auc"), ins = number(m, "insertion_auc");
    CHECK(del > 0 && del < 1 && ins > 0 && ins <= 1, "areas %g %g", del, ins);
    CHECK(json_array_size(json_object_get(m, "road_morf")) == 9 && json_is_number(json_object_get(m, "road")) &&
              json_is_number(json_object_get(m, "drop")) && json_is_boolean(json_object_get(m, "increase")),
          "ROAD and confidence");
    json_decref(j);
    j = post_json("/v1/models/fmnist/explain?method=gradcam&sample=test:18&format=json&metrics=true&curve_steps=7",
                  &st);
    CHECK(json_array_size(json_object_get(json_object_get(j, "metrics"), "deletion")) == 8, "curve_steps=7");
    json_decref(j);
    const char *methods[] = {"guided_backprop", "gradcam"};
    double last[2] = {0, 0};
    for (int k = 0; k < 2; k++) {
        char path[200];
        snprintf(path, sizeof path, "/v1/models/fmnist/explain?method=%s&sample=test:18&format=json&sanity=true",
                 methods[k]);
        j = post_json(path, &st);
        json_t *steps = json_object_get(json_object_get(j, "sanity"), "steps");
        CHECK(st == 200 && json_array_size(steps) == 8, "%s: 8 steps", methods[k]);
        CHECK(json_is_null(json_object_get(json_array_get(steps, 0), "randomised")) &&
                  !strcmp(json_string_value(json_object_get(json_array_get(steps, 1), "randomised")), "dense_2"),
              "from the trained model down");
        last[k] = number(json_array_get(steps, json_array_size(steps) - 1), "rank_correlation");
        json_decref(j);
    }
    CHECK(last[0] > 0.5 && last[1] < 0.3, "guided backprop survives randomisation (%.3f), Grad-CAM does not (%.3f)",
          last[0], last[1]);
}

/* 400 with the parameter named in the message. */
static void test_bad_parameters_named(void)
{
    static const struct {
        const char *route, *query, *name;
    } cases[] = {
        {"explain", "method=nope", "method"},
        {"explain", "", "method"},
        {"explain", "method=integrated_gradients&steps=0", "steps"},
        {"explain", "method=integrated_gradients&steps=1e9", "steps"},
        {"explain", "method=integrated_gradients&steps=1000000000", "steps"},
        {"explain", "method=smoothgrad&noise=NaN", "noise"},
        {"explain", "method=smoothgrad&samples=0", "samples"},
        {"explain", "method=occlusion&patch=29", "patch"},
        {"explain", "method=occlusion&stride=0", "stride"},
        {"explain", "method=integrated_gradients&baseline=grey", "baseline"},
        {"explain", "method=integrated_gradients&blur_sigma=-1", "blur_sigma"},
        {"explain", "method=gradcam&layer=flatten_1", "layer"},
        {"explain", "method=gradcam&class=11", "class"},
        {"explain", "method=gradcam&score=softmax", "score"},
        {"explain", "method=scorecam&batch=0", "batch"},
        {"explain", "method=gradcam&format=json&metrics=maybe", "metrics"},
        {"explain", "method=gradcam&format=json&metrics=true&curve_steps=0", "curve_steps"},
        {"explain", "method=gradcam&metrics=true", "metrics"},
        {"explain/compare", "methods=gradcam,nope", "methods"},
        {"explain/compare", "methods=occlusion&patch=100", "patch"},
        {"explain/compare", "format=gif", "format"},
        {"explain/evaluate", "methods=gradcam&count=0", "count"},
        {"explain/evaluate", "methods=gradcam&offset=10000", "offset"},
        {"explain/evaluate", "methods=gradcam&split=val", "split"},
        {"explain/evaluate", "methods=integrated_gradients&steps=0", "steps"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[300];
        snprintf(path, sizeof path, "/v1/models/fmnist/%s?sample=test:18&%s", cases[i].route, cases[i].query);
        if (!strcmp(cases[i].route, "explain/evaluate"))
            snprintf(path, sizeof path, "/v1/models/fmnist/%s?%s", cases[i].route, cases[i].query);
        resp_t r = http_ex(&S, "POST", path, "", 0, NULL);
        json_t *j = resp_json(&r);
        const char *msg = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
        CHECK(r.status == 400 && msg && strstr(msg, cases[i].name), "%s?%s: %ld %s", cases[i].route, cases[i].query,
              r.status, r.body);
        json_decref(j);
        resp_free(&r);
    }
    resp_t r = http_ex(&S, "POST", "/v1/models/fmnist/explain?method=gradcam&layer=nope&sample=test:18", "", 0, NULL);
    CHECK(r.status == 404 && is_error(&r, "not_found"), "unknown layer: %ld", r.status);
    resp_free(&r);
}

/* Uploads and models fail as on every image route. */
static void test_image_and_model_errors(void)
{
    const char *routes[] = {"explain?method=gradcam", "explain/compare?methods=gradcam"};
    for (int k = 0; k < 2; k++) {
        char path[200];
        snprintf(path, sizeof path, "/v1/models/fmnist/%s", routes[k]);
        resp_t r = http_post_file(&S, path, PHOTO("truncated.jpg"), "image/jpeg");
        CHECK(r.status == 422 && is_error(&r, "corrupt_image"), "%s truncated: %ld", routes[k], r.status);
        resp_free(&r);
        req_opts t = {.content_type = "image/png"};
        r = http_ex(&S, "POST", path, "GIF89a", 6, &t);
        CHECK(r.status == 415 && is_error(&r, "unsupported_media_type"), "%s gif: %ld", routes[k], r.status);
        resp_free(&r);
        r = http_ex(&S, "POST", path, "", 0, NULL);
        CHECK(r.status == 400 && is_error(&r, "no_image"), "%s none: %ld", routes[k], r.status);
        resp_free(&r);
        size_t n = 3u << 20;
        char *big = calloc(1, n);
        r = http_ex(&S, "POST", path, big, n, &t);
        CHECK(r.status == 413 && is_error(&r, "payload_too_large"), "%s big: %ld", routes[k], r.status);
        resp_free(&r);
        free(big);
        snprintf(path, sizeof path, "/v1/models/vgg16/%s&sample=test:1", routes[k]);
        r = http_ex(&S, "POST", path, "", 0, NULL);
        CHECK(r.status == 503 && is_error(&r, "model_unavailable"), "%s vgg16: %ld", routes[k], r.status);
        resp_free(&r);
        snprintf(path, sizeof path, "/v1/models/nope/%s&sample=test:1", routes[k]);
        r = http_ex(&S, "POST", path, "", 0, NULL);
        CHECK(r.status == 404, "%s unknown model: %ld", routes[k], r.status);
        resp_free(&r);
    }
    resp_t r = http_ex(&S, "POST", "/v1/models/nope/explain/evaluate", "", 0, NULL);
    CHECK(r.status == 404 && is_error(&r, "not_found"), "evaluate, unknown model: %ld", r.status);
    resp_free(&r);
    r = http_ex(&S, "POST", "/v1/models/vgg16/explain/evaluate", "", 0, NULL);
    CHECK(r.status == 503 && is_error(&r, "model_unavailable"), "evaluate, vgg16: %ld", r.status);
    resp_free(&r);
}

/* The grid: a row per method (image, heatmap, overlay), a colour scale under it. */
static void test_compare_grid_and_json(void)
{
    resp_t r = http_ex(&S, "POST", "/v1/models/fmnist/explain/compare?sample=test:18&methods=gradcam,occlusion", "", 0,
                       NULL);
    cs_image img;
    char hdr[256];
    CHECK(r.status == 200 && resp_png(&r, &img), "%ld", r.status);
    CHECK(img.w == 3 * 140 + 4 * 4 && img.h == 2 * 140 + 3 * 4 + 12 + 4, "grid %dx%d", img.w, img.h);
    CHECK(resp_header(&r, "X-Methods", hdr, sizeof hdr) && !strcmp(hdr, "gradcam,occlusion"), "X-Methods %s", hdr);
    CHECK(resp_header(&r, "X-Deletion-AUC", hdr, sizeof hdr) && strchr(hdr, ','), "X-Deletion-AUC %s", hdr);
    /* The colour scale runs from JET's dark blue at the left to its dark red at the right. */
    const uint8_t *left = img.px + ((size_t)(img.h - 10) * img.w + 4) * 3,
                  *right = img.px + ((size_t)(img.h - 10) * img.w + img.w - 5) * 3;
    CHECK(left[2] > 100 && left[0] < 10 && right[0] > 100 && right[2] < 10, "colour scale");
    cs_image_free(&img);
    resp_free(&r);
    long st;
    json_t *j = post_json("/v1/models/fmnist/explain/compare?sample=test:18&methods=scorecam,gradcam&format=json", &st);
    json_t *list = json_object_get(j, "methods");
    CHECK(st == 200 && json_array_size(list) == 2, "two methods");
    json_t *first = json_array_get(list, 0), *scores = json_object_get(first, "scores");
    CHECK(!strcmp(json_string_value(json_object_get(json_object_get(first, "method"), "name")), "scorecam"),
          "in the order asked");
    CHECK(json_object_get(first, "heatmap") && !json_object_get(first, "map"), "heatmaps only");
    json_t *single =
        post_json("/v1/models/fmnist/explain?method=scorecam&sample=test:18&format=json&metrics=true", &st);
    CHECK_NEAR(number(scores, "deletion_auc"), number(json_object_get(single, "metrics"), "deletion_auc"), 1e-9,
               "the same deletion area as the single route");
    CHECK_NEAR(number(scores, "road"), number(json_object_get(single, "metrics"), "road"), 1e-9, "the same ROAD");
    json_decref(single);
    json_decref(j);
    j = post_json("/v1/models/fmnist/explain/compare?sample=test:18&format=json", &st);
    CHECK(st == 200 && (int)json_array_size(json_object_get(j, "methods")) == cs_explain_count(), "every method");
    json_decref(j);
}

/* The contract lists every method of the table with its paper, and in the enum. */
static void test_every_method_documented(void)
{
    char *text = test_read_file("openapi.yaml", NULL);
    CHECK(text != NULL, "openapi.yaml");
    if (!text) return;
    const char *enum_line = strstr(text, "enum: [gradcam, ");
    for (int i = 0; i < cs_explain_count(); i++) {
        const cs_explain_method *m = cs_explain_method_at(i);
        char row[128];
        snprintf(row, sizeof row, "| %s | ", m->name);
        const char *at = strstr(text, row);
        const char *eol = at ? strchr(at, '\n') : NULL;
        const char *paper = at ? strstr(at, m->paper) : NULL;
        CHECK(at && paper && paper < eol, "%s: a row of the explain route's table with its paper", m->name);
        /* The enum's items: "[a, b, c]". */
        int in_enum = 0;
        const char *q = enum_line ? strchr(enum_line, '[') + 1 : NULL, *end = q ? strchr(q, ']') : NULL;
        while (q && end && q < end) {
            while (*q == ' ') q++;
            size_t len = strcspn(q, ",]");
            in_enum |= len == strlen(m->name) && !strncmp(q, m->name, len);
            q += len + 1;
        }
        CHECK(in_enum, "%s in the method enum", m->name);
    }
    free(text);
}

static json_t *job_get(const char *id)
{
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    resp_t r = http(&S, "GET", path);
    json_t *j = resp_json(&r);
    resp_free(&r);
    return j;
}

static const char *state_of(json_t *j)
{
    const char *s = json_string_value(json_object_get(j, "state"));
    return s ? s : "";
}

static void test_evaluate_job_to_its_table(void)
{
    long st;
    json_t *j = post_json("/v1/models/fmnist/explain/evaluate?methods=gradcam,gradient&count=30&offset=5", &st);
    CHECK(st == 202 && !strcmp(json_string_value(json_object_get(j, "kind")), "explain-evaluate"), "202: %ld", st);
    char id[64];
    snprintf(id, sizeof id, "%s", json_string_value(json_object_get(j, "id")) ? json_string_value(json_object_get(j, "id")) : "");
    json_decref(j);
    double last = -1;
    int rising = 1;
    j = NULL;
    for (double end = now_s() + 600; now_s() < end; usleep(20000)) {
        json_decref(j);
        j = job_get(id);
        double p = number(j, "progress");
        rising &= p >= last;
        last = p;
        if (strcmp(state_of(j), "queued") && strcmp(state_of(j), "running")) break;
    }
    CHECK(!strcmp(state_of(j), "succeeded"), "ended %s", state_of(j));
    CHECK(rising && last == 1, "progress rose to 1");
    CHECK(json_integer_value(json_object_get(j, "done")) == 60 && json_integer_value(json_object_get(j, "total")) == 60,
          "30 images x 2 methods");
    json_t *res = json_object_get(j, "result"), *table = json_object_get(res, "table");
    CHECK(json_array_size(table) == 2 && json_integer_value(json_object_get(res, "images")) == 30, "a row per method");
    for (size_t k = 0; k < json_array_size(table); k++) {
        json_t *row = json_array_get(table, k);
        double d = number(row, "deletion_auc"), i = number(row, "insertion_auc"), drop = number(row, "average_drop_pct");
        CHECK(d > 0 && d < 1 && i > 0 && i <= 1 && drop >= 0 && drop <= 100 &&
                  json_integer_value(json_object_get(row, "images")) == 30,
              "row %zu: %g %g %g", k, d, i, drop);
    }
    double acc = number(res, "accuracy");
    CHECK(acc > 0.6 && acc <= 1, "the model's accuracy on those images %g", acc);
    json_decref(j);
}

static void test_evaluate_cancelled(void)
{
    long st;
    json_t *j = post_json("/v1/models/fmnist/explain/evaluate?count=10000", &st);
    char id[64];
    snprintf(id, sizeof id, "%s", json_string_value(json_object_get(j, "id")) ? json_string_value(json_object_get(j, "id")) : "");
    json_decref(j);
    CHECK(st == 202, "202: %ld", st);
    j = NULL;
    for (double end = now_s() + 300; now_s() < end; usleep(20000)) {
        json_decref(j);
        j = job_get(id);
        if (json_integer_value(json_object_get(j, "done")) > 0) break;
    }
    json_decref(j);
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    resp_t r = http(&S, "DELETE", path);
    CHECK(r.status == 202, "cancel: %ld", r.status);
    resp_free(&r);
    j = NULL;
    for (double end = now_s() + 300; now_s() < end; usleep(20000)) {
        json_decref(j);
        j = job_get(id);
        if (strcmp(state_of(j), "queued") && strcmp(state_of(j), "running")) break;
    }
    CHECK(!strcmp(state_of(j), "cancelled") && json_is_null(json_object_get(j, "result")), "cancelled: %s",
          state_of(j));
    CHECK(number(j, "progress") < 0.5, "stopped early (%g)", number(j, "progress"));
    json_decref(j);
}

int main(void)
{
    char err[300];
    curl_global_init(CURL_GLOBAL_ALL);
    const char *flags[] = {"--no-vgg16", "--max-upload", "2000000", NULL};
    srv_start(&S, flags);
    cs_dataset d;
    if (!(g_m = cs_model_load(fixture_model(), err, sizeof err)) ||
        cs_dataset_load(CS_DEFAULT_DATA_DIR, "test", &d, err, sizeof err) != 0) {
        fprintf(stderr, "setup: %s\n", err);
        srv_stop(&S);
        return 99;
    }
    cs_dataset_image_float(&d, 18, g_x);
    cs_dataset_free(&d);
    RUN(test_pictures);
    RUN(test_json_is_the_core_map);
    RUN(test_completeness_and_params);
    RUN(test_metrics_and_sanity);
    RUN(test_bad_parameters_named);
    RUN(test_image_and_model_errors);
    RUN(test_compare_grid_and_json);
    RUN(test_every_method_documented);
    RUN(test_evaluate_job_to_its_table);
    RUN(test_evaluate_cancelled);
    srv_stop(&S);
    CHECK(S.exit_status == 0, "server exit %d", S.exit_status);
    cs_model_free(g_m);
    curl_global_cleanup();
    return test_summary("api_explain");
}
