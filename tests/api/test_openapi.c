/*
 * test_openapi.c - openapi.yaml and the router say the same thing: every route the
 * server answers is documented and every documented operation is routed. Every status
 * documented for an operation is listed below with the test that exercises it, and
 * the list holds nothing the contract does not document, so neither can drift.
 */
#include "api.h"
#include "harness.h"

typedef struct {
    char method[8];
    char path[160];
    int statuses[16];
    int n_statuses;
} doc_op;

static doc_op ops[64];
static int n_ops;

/* Which test exercises each documented (method, path, status). */
static const struct {
    const char *method, *path;
    int status;
    const char *test;
} covered[] = {
    {"GET", "/", 200, "test_system:test_index_and_static"},
    {"GET", "/static/{path}", 200, "test_system:test_index_and_static"},
    {"GET", "/static/{path}", 304, "test_system:test_index_and_static"},
    {"GET", "/static/{path}", 404, "test_system:test_static_no_traversal"},
    {"GET", "/openapi.yaml", 200, "test_system:test_openapi_served"},
    {"GET", "/healthz", 200, "test_system:test_healthz"},
    {"GET", "/readyz", 200, "test_system:test_readyz_says_why_per_model"},
    {"GET", "/readyz", 503, "test_models:test_no_model_file_then_trained"},
    {"GET", "/metrics", 200, "test_system:test_metrics_prometheus"},
    {"GET", "/v1/models", 200, "test_models:test_list"},
    {"POST", "/v1/models", 201, "test_upload:test_upload_onnx"},
    {"POST", "/v1/models", 400, "test_upload:test_refused_uploads_write_nothing"},
    {"POST", "/v1/models", 401, "test_upload:test_token_and_size"},
    {"POST", "/v1/models", 409, "test_upload:test_refused_uploads_write_nothing"},
    {"POST", "/v1/models", 413, "test_upload:test_token_and_size"},
    {"POST", "/v1/models", 415, "test_upload:test_refused_uploads_write_nothing"},
    {"POST", "/v1/models", 422, "test_upload:test_refused_uploads_write_nothing"},
    {"DELETE", "/v1/models/{model}", 200, "test_upload:test_delete"},
    {"DELETE", "/v1/models/{model}", 401, "test_upload:test_delete"},
    {"DELETE", "/v1/models/{model}", 403, "test_upload:test_delete"},
    {"DELETE", "/v1/models/{model}", 404, "test_upload:test_delete"},
    {"DELETE", "/v1/models/{model}", 409, "test_folder:test_training_a_folder_model"},
    {"GET", "/v1/models/{model}", 200, "test_models:test_summary_like_keras"},
    {"GET", "/v1/models/{model}", 404, "test_models:test_unknown_and_unavailable"},
    {"GET", "/v1/models/{model}", 503, "test_models:test_unknown_and_unavailable"},
    {"POST", "/v1/models/{model}/predict", 200, "test_predict:test_sample_shape"},
    {"POST", "/v1/models/{model}/predict", 400, "test_predict:test_no_image_400"},
    {"POST", "/v1/models/{model}/predict", 404, "test_predict:test_unknown_model_404_and_vgg16_503"},
    {"POST", "/v1/models/{model}/predict", 413, "test_predict:test_100mb_413_unread"},
    {"POST", "/v1/models/{model}/predict", 415, "test_predict:test_text_is_415"},
    {"POST", "/v1/models/{model}/predict", 422, "test_predict:test_truncated_jpeg_422"},
    {"POST", "/v1/models/{model}/predict", 429, "test_system:test_too_many_in_flight_429"},
    {"POST", "/v1/models/{model}/predict", 503, "test_predict:test_unknown_model_404_and_vgg16_503"},
    {"GET", "/v1/models/{model}/layers/{layer}/filters.png", 200, "test_visual:test_filters_default_grid"},
    {"GET", "/v1/models/{model}/layers/{layer}/filters.png", 304, "test_visual:test_filters_etag_304"},
    {"GET", "/v1/models/{model}/layers/{layer}/filters.png", 400, "test_visual:test_filters_params"},
    {"GET", "/v1/models/{model}/layers/{layer}/filters.png", 404, "test_visual:test_filters_errors"},
    {"GET", "/v1/models/{model}/layers/{layer}/filters.png", 503, "test_visual:test_filters_errors"},
    {"POST", "/v1/models/{model}/layers/{layer}/feature-maps.png", 200, "test_visual:test_feature_maps"},
    {"POST", "/v1/models/{model}/layers/{layer}/feature-maps.png", 400, "test_visual:test_feature_maps_errors"},
    {"POST", "/v1/models/{model}/layers/{layer}/feature-maps.png", 404, "test_visual:test_feature_maps_errors"},
    {"POST", "/v1/models/{model}/layers/{layer}/feature-maps.png", 413, "test_gradcam:test_too_large"},
    {"POST", "/v1/models/{model}/layers/{layer}/feature-maps.png", 415, "test_visual:test_feature_maps_errors"},
    {"POST", "/v1/models/{model}/layers/{layer}/feature-maps.png", 422, "test_visual:test_feature_maps_errors"},
    {"POST", "/v1/models/{model}/layers/{layer}/feature-maps.png", 503, "test_visual:test_feature_maps_errors"},
    {"POST", "/v1/models/{model}/layers/{layer}/activations", 200, "test_values:test_dense_values"},
    {"POST", "/v1/models/{model}/layers/{layer}/activations", 400, "test_values:test_activations_errors"},
    {"POST", "/v1/models/{model}/layers/{layer}/activations", 404, "test_values:test_activations_errors"},
    {"POST", "/v1/models/{model}/layers/{layer}/activations", 413, "test_values:test_activations_errors"},
    {"POST", "/v1/models/{model}/layers/{layer}/activations", 415, "test_values:test_activations_errors"},
    {"POST", "/v1/models/{model}/layers/{layer}/activations", 422, "test_values:test_activations_errors"},
    {"POST", "/v1/models/{model}/layers/{layer}/activations", 503, "test_values:test_activations_errors"},
    {"GET", "/v1/models/{model}/layers/{layer}/weights", 200, "test_values:test_weight_histograms"},
    {"GET", "/v1/models/{model}/layers/{layer}/weights", 304, "test_values:test_weight_histograms"},
    {"GET", "/v1/models/{model}/layers/{layer}/weights", 400, "test_values:test_weight_histograms"},
    {"GET", "/v1/models/{model}/layers/{layer}/weights", 404, "test_values:test_weight_histograms"},
    {"GET", "/v1/models/{model}/layers/{layer}/weights", 503, "test_values:test_weight_histograms"},
    {"POST", "/v1/models/{model}/gradcam", 200, "test_gradcam:test_overlay_of_test_18"},
    {"POST", "/v1/models/{model}/gradcam", 400, "test_gradcam:test_errors"},
    {"POST", "/v1/models/{model}/gradcam", 404, "test_gradcam:test_errors"},
    {"POST", "/v1/models/{model}/gradcam", 413, "test_gradcam:test_too_large"},
    {"POST", "/v1/models/{model}/gradcam", 415, "test_gradcam:test_errors"},
    {"POST", "/v1/models/{model}/gradcam", 422, "test_gradcam:test_errors"},
    {"POST", "/v1/models/{model}/gradcam", 503, "test_gradcam:test_errors"},
    {"POST", "/v1/models/{model}/explain", 200, "test_explain:test_pictures"},
    {"POST", "/v1/models/{model}/explain", 400, "test_explain:test_bad_parameters_named"},
    {"POST", "/v1/models/{model}/explain", 404, "test_explain:test_image_and_model_errors"},
    {"POST", "/v1/models/{model}/explain", 413, "test_explain:test_image_and_model_errors"},
    {"POST", "/v1/models/{model}/explain", 415, "test_explain:test_image_and_model_errors"},
    {"POST", "/v1/models/{model}/explain", 422, "test_explain:test_image_and_model_errors"},
    {"POST", "/v1/models/{model}/explain", 503, "test_explain:test_image_and_model_errors"},
    {"POST", "/v1/models/{model}/explain/compare", 200, "test_explain:test_compare_grid_and_json"},
    {"POST", "/v1/models/{model}/explain/compare", 400, "test_explain:test_bad_parameters_named"},
    {"POST", "/v1/models/{model}/explain/compare", 404, "test_explain:test_image_and_model_errors"},
    {"POST", "/v1/models/{model}/explain/compare", 413, "test_explain:test_image_and_model_errors"},
    {"POST", "/v1/models/{model}/explain/compare", 415, "test_explain:test_image_and_model_errors"},
    {"POST", "/v1/models/{model}/explain/compare", 422, "test_explain:test_image_and_model_errors"},
    {"POST", "/v1/models/{model}/explain/compare", 503, "test_explain:test_image_and_model_errors"},
    {"POST", "/v1/models/{model}/explain/evaluate", 202, "test_explain:test_evaluate_job_to_its_table"},
    {"POST", "/v1/models/{model}/explain/evaluate", 400, "test_explain:test_bad_parameters_named"},
    {"POST", "/v1/models/{model}/explain/evaluate", 404, "test_explain:test_image_and_model_errors"},
    {"POST", "/v1/models/{model}/explain/evaluate", 503, "test_explain:test_image_and_model_errors"},
    {"POST", "/v1/models/{model}/train", 202, "test_jobs:test_job_to_success"},
    {"POST", "/v1/models/{model}/train", 400, "test_jobs:test_bad_bodies_400"},
    {"POST", "/v1/models/{model}/train", 401, "test_jobs:test_token_401_and_sigterm_mid_job"},
    {"POST", "/v1/models/{model}/train", 404, "test_jobs:test_bad_bodies_400"},
    {"POST", "/v1/models/{model}/train", 409, "test_jobs:test_job_to_success"},
    {"POST", "/v1/models/{model}/train", 503, "test_visual:test_dataset_missing_503"},
    {"GET", "/v1/datasets/fashion-mnist", 200, "test_visual:test_dataset_info_and_labels"},
    {"GET", "/v1/datasets/fashion-mnist", 400, "test_visual:test_dataset_info_and_labels"},
    {"GET", "/v1/datasets/fashion-mnist", 503, "test_visual:test_dataset_missing_503"},
    {"GET", "/v1/datasets/fashion-mnist/{split}/{index}.png", 200, "test_visual:test_dataset_image"},
    {"GET", "/v1/datasets/fashion-mnist/{split}/{index}.png", 400, "test_visual:test_dataset_image"},
    {"GET", "/v1/datasets/fashion-mnist/{split}/{index}.png", 404, "test_visual:test_dataset_image"},
    {"GET", "/v1/datasets/fashion-mnist/{split}/{index}.png", 503, "test_visual:test_dataset_missing_503"},
    {"GET", "/v1/jobs", 200, "test_jobs:test_list_and_unknown"},
    {"GET", "/v1/jobs/{id}", 200, "test_jobs:test_job_to_success"},
    {"GET", "/v1/jobs/{id}", 404, "test_jobs:test_list_and_unknown"},
    {"DELETE", "/v1/jobs/{id}", 202, "test_jobs:test_cancel"},
    {"DELETE", "/v1/jobs/{id}", 401, "test_jobs:test_token_401_and_sigterm_mid_job"},
    {"DELETE", "/v1/jobs/{id}", 404, "test_jobs:test_list_and_unknown"},
    {"DELETE", "/v1/jobs/{id}", 409, "test_jobs:test_cancel"},
    {"GET", "/v1/jobs/{id}/snapshots", 200, "test_versions:test_epoch_snapshots"},
    {"GET", "/v1/jobs/{id}/snapshots", 404, "test_versions:test_epoch_snapshots"},
    {"GET", "/v1/jobs/{id}/snapshots/{epoch}/filters.png", 200, "test_versions:test_epoch_snapshots"},
    {"GET", "/v1/jobs/{id}/snapshots/{epoch}/filters.png", 400, "test_versions:test_epoch_snapshots"},
    {"GET", "/v1/jobs/{id}/snapshots/{epoch}/filters.png", 404, "test_versions:test_epoch_snapshots"},
    {"GET", "/v1/models/{model}/versions", 200, "test_versions:test_train_twice_roll_back"},
    {"GET", "/v1/models/{model}/versions", 404, "test_versions:test_train_twice_roll_back"},
    {"GET", "/v1/models/{model}/versions", 409, "test_versions:test_train_twice_roll_back"},
    {"GET", "/v1/models/{model}/versions/compare", 200, "test_versions:test_train_twice_roll_back"},
    {"GET", "/v1/models/{model}/versions/compare", 400, "test_versions:test_train_twice_roll_back"},
    {"GET", "/v1/models/{model}/versions/compare", 404, "test_versions:test_train_twice_roll_back"},
    {"GET", "/v1/models/{model}/versions/compare", 409, "test_versions:test_train_twice_roll_back"},
    {"POST", "/v1/models/{model}/versions/{version}/serve", 200, "test_versions:test_train_twice_roll_back"},
    {"POST", "/v1/models/{model}/versions/{version}/serve", 400, "test_versions:test_train_twice_roll_back"},
    {"POST", "/v1/models/{model}/versions/{version}/serve", 401, "test_versions:test_token_guards_serve"},
    {"POST", "/v1/models/{model}/versions/{version}/serve", 404, "test_versions:test_train_twice_roll_back"},
    {"POST", "/v1/models/{model}/versions/{version}/serve", 409, "test_versions:test_train_twice_roll_back"},
    {"POST", "/v1/models/{model}/evaluation", 200, "test_versions:test_evaluation_job"},
    {"POST", "/v1/models/{model}/evaluation", 202, "test_versions:test_evaluation_job"},
    {"POST", "/v1/models/{model}/evaluation", 400, "test_versions:test_evaluation_job"},
    {"POST", "/v1/models/{model}/evaluation", 404, "test_versions:test_evaluation_job"},
    {"POST", "/v1/models/{model}/evaluation", 422, "test_versions:test_evaluation_job"},
    {"POST", "/v1/models/{model}/evaluation", 503, "test_versions:test_evaluation_job"},
    {"GET", "/v1/models/{model}/evaluation", 200, "test_versions:test_evaluation_job"},
    {"GET", "/v1/models/{model}/evaluation", 400, "test_versions:test_evaluation_job"},
    {"GET", "/v1/models/{model}/evaluation", 404, "test_versions:test_evaluation_job"},
    {"GET", "/v1/models/{model}/evaluation", 503, "test_versions:test_evaluation_job"},
    {"GET", "/v1/models/{model}/evaluation/confusion.png", 200, "test_versions:test_evaluation_job"},
    {"GET", "/v1/models/{model}/evaluation/confusion.png", 400, "test_versions:test_evaluation_job"},
    {"GET", "/v1/models/{model}/evaluation/confusion.png", 404, "test_versions:test_evaluation_job"},
    {"POST", "/v1/models/{model}/projector", 200, "test_versions:test_projector_job"},
    {"POST", "/v1/models/{model}/projector", 202, "test_versions:test_projector_job"},
    {"POST", "/v1/models/{model}/projector", 400, "test_versions:test_projector_job"},
    {"POST", "/v1/models/{model}/projector", 404, "test_versions:test_projector_job"},
    {"POST", "/v1/models/{model}/projector", 422, "test_versions:test_projector_job"},
    {"GET", "/v1/models/{model}/projector", 200, "test_versions:test_projector_job"},
    {"GET", "/v1/models/{model}/projector", 400, "test_versions:test_projector_job"},
    {"GET", "/v1/models/{model}/projector", 404, "test_versions:test_projector_job"},
    {"POST", "/v1/models/{model}/layers/{layer}/atlas", 200, "test_versions:test_atlas_job"},
    {"POST", "/v1/models/{model}/layers/{layer}/atlas", 202, "test_versions:test_atlas_job"},
    {"POST", "/v1/models/{model}/layers/{layer}/atlas", 400, "test_versions:test_atlas_job"},
    {"POST", "/v1/models/{model}/layers/{layer}/atlas", 404, "test_versions:test_atlas_job"},
    {"GET", "/v1/models/{model}/layers/{layer}/atlas", 200, "test_versions:test_atlas_job"},
    {"GET", "/v1/models/{model}/layers/{layer}/atlas", 400, "test_versions:test_atlas_job"},
    {"GET", "/v1/models/{model}/layers/{layer}/atlas", 404, "test_versions:test_atlas_job"},
    {"GET", "/v1/models/{model}/layers/{layer}/atlas/{channel}.png", 200, "test_versions:test_atlas_job"},
    {"GET", "/v1/models/{model}/layers/{layer}/atlas/{channel}.png", 400, "test_versions:test_atlas_job"},
    {"GET", "/v1/models/{model}/layers/{layer}/atlas/{channel}.png", 404, "test_versions:test_atlas_job"},
};
#define N_COVERED (sizeof covered / sizeof covered[0])

static int indent_of(const char *line)
{
    int n = 0;
    while (line[n] == ' ') n++;
    return n;
}

/* Reads the `paths:` section: "  /path:" then "    method:" then "        "NNN":". */
static void load_openapi(void)
{
    FILE *f = fopen("openapi.yaml", "r");
    if (!f) {
        fprintf(stderr, "setup: no openapi.yaml (run from the project root)\n");
        exit(99);
    }
    char line[512], path[160] = "";
    int in_paths = 0, in_responses = 0;
    doc_op *op = NULL;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        if (!line[0] || line[indent_of(line)] == '#') continue;
        int ind = indent_of(line);
        if (ind == 0) {
            in_paths = !strcmp(line, "paths:");
            continue;
        }
        if (!in_paths) continue;
        const char *t = line + ind;
        if (ind == 2 && t[0] == '/') {
            snprintf(path, sizeof path, "%.*s", (int)(strlen(t) - 1), t);
            op = NULL;
        } else if (ind == 4) {
            static const char *const methods[] = {"get:", "post:", "put:", "delete:", "patch:", "head:"};
            op = NULL;
            in_responses = 0;
            for (int i = 0; i < 6; i++)
                if (!strcmp(t, methods[i]) && n_ops < 64) {
                    op = &ops[n_ops++];
                    snprintf(op->method, sizeof op->method, "%.*s", (int)strlen(t) - 1, t);
                    for (char *c = op->method; *c; c++) *c = (char)(*c - 32);
                    snprintf(op->path, sizeof op->path, "%s", path);
                }
        } else if (ind == 6 && op) {
            in_responses = !strcmp(t, "responses:");
        } else if (ind == 8 && op && in_responses && t[0] == '"' && op->n_statuses < 16) {
            op->statuses[op->n_statuses++] = atoi(t + 1);
        }
    }
    fclose(f);
}

/* "/static/{path*}" is documented as "/static/{path}". */
static void route_doc_path(const char *pattern, char *out, size_t n)
{
    snprintf(out, n, "%s", pattern);
    char *star = strstr(out, "*}");
    if (star) memmove(star, star + 1, strlen(star + 1) + 1);
}

static void test_every_route_documented(void)
{
    for (const cs_route *r = cs_routes; r->method; r++) {
        char p[200];
        route_doc_path(r->pattern, p, sizeof p);
        int found = 0;
        for (int i = 0; i < n_ops; i++) found |= !strcmp(ops[i].method, r->method) && !strcmp(ops[i].path, p);
        CHECK(found, "%s %s is routed but not in openapi.yaml", r->method, p);
    }
}

static void test_every_documented_op_routed(void)
{
    CHECK(n_ops >= 18, "parsed %d operations", n_ops);
    for (int i = 0; i < n_ops; i++) {
        int found = 0;
        for (const cs_route *r = cs_routes; r->method; r++) {
            char p[200];
            route_doc_path(r->pattern, p, sizeof p);
            found |= !strcmp(ops[i].method, r->method) && !strcmp(ops[i].path, p);
        }
        CHECK(found, "%s %s is in openapi.yaml but not routed", ops[i].method, ops[i].path);
    }
}

static void test_every_status_exercised(void)
{
    for (int i = 0; i < n_ops; i++) {
        CHECK(ops[i].n_statuses > 0, "%s %s documents no responses", ops[i].method, ops[i].path);
        for (int s = 0; s < ops[i].n_statuses; s++) {
            int found = 0;
            for (size_t k = 0; k < N_COVERED; k++)
                found |= !strcmp(covered[k].method, ops[i].method) && !strcmp(covered[k].path, ops[i].path) &&
                         covered[k].status == ops[i].statuses[s];
            CHECK(found, "%s %s %d is documented but no test is listed for it", ops[i].method, ops[i].path,
                  ops[i].statuses[s]);
        }
    }
    for (size_t k = 0; k < N_COVERED; k++) {
        int found = 0;
        for (int i = 0; i < n_ops; i++)
            if (!strcmp(covered[k].method, ops[i].method) && !strcmp(covered[k].path, ops[i].path))
                for (int s = 0; s < ops[i].n_statuses; s++) found |= ops[i].statuses[s] == covered[k].status;
        CHECK(found, "%s %s %d (%s) is tested but not documented", covered[k].method, covered[k].path,
              covered[k].status, covered[k].test);
    }
}

/* The listed test functions exist in the named files. */
static void test_listed_tests_exist(void)
{
    for (size_t k = 0; k < N_COVERED; k++) {
        char file[64], fn[96], path[128];
        const char *colon = strchr(covered[k].test, ':');
        snprintf(file, sizeof file, "%.*s", (int)(colon - covered[k].test), covered[k].test);
        snprintf(fn, sizeof fn, "static void %s(void)", colon + 1);
        snprintf(path, sizeof path, "tests/api/%s.c", file);
        char *text = test_read_file(path, NULL);
        CHECK(text && strstr(text, fn), "%s: no %s in %s", covered[k].test, fn, path);
        free(text);
    }
}

static void test_error_schema_documented(void)
{
    char *text = test_read_file("openapi.yaml", NULL);
    CHECK(text && strstr(text, "    Error:") && strstr(text, "required: [code, message]"), "Error schema");
    free(text);
}

int main(void)
{
    load_openapi();
    RUN(test_every_route_documented);
    RUN(test_every_documented_op_routed);
    RUN(test_every_status_exercised);
    RUN(test_listed_tests_exist);
    RUN(test_error_schema_documented);
    return test_summary("api_openapi");
}
