/*
 * test_precision.c - a model's inference precision in the service: `--precision bf16`
 * for every model, a sidecar's "precision" over it, GET /v1/models naming the
 * precision in use, who asked for it and what runs it, and the same server on a CPU
 * without bf16 (oneDNN held back to plain AVX-512 by ONEDNN_MAX_CPU_ISA, which is how
 * oneDNN sees such a CPU) refusing bf16 in the listing and the log while it serves the
 * models in fp32.
 */
#include "harness.h"

#include "bf16_plan.h"

static srv_t S;
static char work[256];

static json_t *entry(const char *name)
{
    resp_t r = http(&S, "GET", "/v1/models");
    json_t *list = resp_json(&r), *found = NULL;
    resp_free(&r);
    json_t *a = json_object_get(list, "models");
    for (size_t i = 0; i < json_array_size(a); i++)
        if (!strcmp(json_string_value(json_object_get(json_array_get(a, i), "name")), name))
            found = json_incref(json_array_get(a, i));
    json_decref(list);
    return found;
}

static const char *str(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

/* The top class of test image 18 (a Bag) by the model. */
static long predicted(const char *model)
{
    char path[128];
    snprintf(path, sizeof path, "/v1/models/%s/predict?sample=test:18", model);
    resp_t r = http_ex(&S, "POST", path, "", 0, NULL);
    json_t *j = resp_json(&r);
    long st = r.status, k = -1;
    resp_free(&r);
    json_t *top = json_object_get(json_array_get(json_object_get(j, "predictions"), 0), "top");
    if (st == 200) k = (long)json_integer_value(json_object_get(json_array_get(top, 0), "index"));
    json_decref(j);
    return k;
}

static int log_has(const char *text)
{
    char path[400];
    snprintf(path, sizeof path, "%s/server.log", S.dir);
    char *log = test_read_file(path, NULL);
    int found = log && strstr(log, text);
    free(log);
    return found;
}

/* fmnist (no sidecar) takes --precision bf16; other.csm's sidecar asks for fp32. */
static void start_with_flag(void)
{
    static const char *const flags[] = {"--precision", "bf16", "--no-vgg16", NULL};
    srv_start(&S, flags);
}

static void test_flag_and_sidecar(void)
{
    char unit_why[300];
    const char *unit = cs_bf16_unit(unit_why, sizeof unit_why);
    start_with_flag();
    json_t *f = entry("fmnist"), *o = entry("other");
    CHECK(f && o, "both models listed");
    if (f && o) {
        CHECK(!strcmp(str(f, "precision_source"), "--precision"), "fmnist asked by '%s'", str(f, "precision_source"));
        if (unit) {
            CHECK(!strcmp(str(f, "precision"), "bf16"), "fmnist runs '%s'", str(f, "precision"));
            CHECK(strstr(str(f, "precision_note"), unit) != NULL, "the note: '%s'", str(f, "precision_note"));
            CHECK(log_has("model fmnist: precision bf16 (--precision)"), "the log names fmnist's precision");
        } else {
            fprintf(stderr, "    (no bf16 on this CPU: %s; the flag is refused)\n", unit_why);
            CHECK(!strcmp(str(f, "precision"), "fp32"), "fmnist runs '%s'", str(f, "precision"));
            CHECK(strstr(str(f, "precision_note"), "refused") != NULL, "the note: '%s'", str(f, "precision_note"));
        }
        CHECK(!strcmp(str(o, "precision"), "fp32"), "other runs '%s'", str(o, "precision"));
        CHECK(!strcmp(str(o, "precision_source"), "sidecar"), "other asked by '%s'", str(o, "precision_source"));
        CHECK(predicted("fmnist") == 8 && predicted("other") == 8, "test image 18 is a Bag in both precisions");
    }
    json_decref(f);
    json_decref(o);
    srv_stop(&S);
}

static void test_refused_without_bf16(void)
{
    setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE", 1);
    start_with_flag();
    unsetenv("ONEDNN_MAX_CPU_ISA");
    json_t *f = entry("fmnist");
    CHECK(f != NULL, "fmnist listed");
    if (f) {
        CHECK(!strcmp(str(f, "status"), "ready"), "fmnist is '%s'", str(f, "status"));
        CHECK(!strcmp(str(f, "precision"), "fp32"), "fmnist runs '%s'", str(f, "precision"));
        CHECK(!strcmp(str(f, "precision_source"), "--precision"), "asked by '%s'", str(f, "precision_source"));
        CHECK(strstr(str(f, "precision_note"), "bf16 refused") &&
                  strstr(str(f, "precision_note"), "neither AVX512-BF16 nor AMX-BF16"),
              "the note: '%s'", str(f, "precision_note"));
        CHECK(predicted("fmnist") == 8, "test image 18 is a Bag");
    }
    CHECK(log_has("--precision bf16 refused: this CPU has neither AVX512-BF16 nor AMX-BF16"), "the log says why");
    json_decref(f);
    srv_stop(&S);
}

/* Without the flag every model runs fp32 by default, and a bad flag stops the server. */
static void test_default_and_bad_flag(void)
{
    srv_start(&S, (const char *const[]){"--no-vgg16", NULL});
    json_t *f = entry("fmnist");
    CHECK(f && !strcmp(str(f, "precision"), "fp32") && !strcmp(str(f, "precision_source"), "default") &&
              !json_object_get(f, "precision_note"),
          "fmnist by default: '%s' from '%s'", str(f, "precision"), str(f, "precision_source"));
    json_decref(f);
    srv_stop(&S);
    CHECK(run_cmd(SRV_BIN " serve --precision fp16 --listen 127.0.0.1:0 > /dev/null 2>&1") == 2,
          "--precision fp16 accepted");
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    tmp_template(work, sizeof work, "precision");
    if (!mkdtemp(work)) exit(99);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "cp %s %s/other.csm && printf '{\"precision\": \"fp32\"}' > %s/other.json",
             fixture_model(), work, work);
    if (run_cmd(cmd) != 0) exit(99);
    static char extra[700];
    snprintf(extra, sizeof extra, "%s/other.csm %s/other.json", work, work);
    srv_extra_models = extra;
    RUN(test_flag_and_sidecar);
    RUN(test_refused_without_bf16);
    srv_extra_models = NULL;
    RUN(test_default_and_bad_flag);
    snprintf(cmd, sizeof cmd, "rm -rf %s", work);
    run_cmd(cmd);
    curl_global_cleanup();
    return test_summary("api_precision");
}
