/*
 * test_watch.c - the models folder as a shared volume: a valid model file renamed into
 * place by another writer is served within seconds, without a restart; a corrupt or
 * truncated one is refused (logged) and the current version keeps serving.
 */
#include "harness.h"
#include "model_file.h"

static srv_t S;

static char checksum[16];

static long served_version(double *accuracy)
{
    resp_t r = http(&S, "GET", "/v1/models/fmnist");
    json_t *j = resp_json(&r);
    long v = r.status == 200 ? (long)json_integer_value(json_object_get(j, "version")) : -1;
    if (accuracy) *accuracy = json_real_value(json_object_get(j, "test_accuracy"));
    const char *c = json_string_value(json_object_get(j, "checksum"));
    snprintf(checksum, sizeof checksum, "%s", c ? c : "");
    json_decref(j);
    resp_free(&r);
    return v;
}

/* Writes m as another process would: a temporary name in the folder, then rename. */
static void drop_model(const cs_model *m, const char *name)
{
    char path[400], err[300];
    sfmt(path, sizeof path, "%s/models/%s", S.dir, name);
    CHECK(cs_model_save(m, path, err, sizeof err) == 0, "save %s: %s", path, err);
}

static void test_new_file_is_served(void)
{
    long before = served_version(NULL);
    CHECK(before >= 1, "a version is served");
    char old_sum[16];
    snprintf(old_sum, sizeof old_sum, "%s", checksum);
    CHECK(strlen(old_sum) == 8, "an 8-digit checksum: %s", old_sum);
    cs_model *m = cs_model_build_fmnist();
    cs_model_init_weights(m, 77);
    m->meta.test_accuracy = 0.1234; /* a mark to recognise it by */
    drop_model(m, "fmnist.csm");
    double acc = 0, end = now_s() + 6;
    long after = before;
    while (now_s() < end && (after = served_version(&acc)) == before) usleep(100000);
    CHECK(after > before, "new version served within 6 s (%ld -> %ld)", before, after);
    CHECK(fabs(acc - 0.1234) < 1e-6, "it is the file that was written (accuracy %g)", acc);
    CHECK(strlen(checksum) == 8 && strcmp(checksum, old_sum) != 0, "the checksum follows the parameters: %s -> %s",
          old_sum, checksum);
    cs_model_free(m);
}

static void test_corrupt_file_is_refused(void)
{
    double acc0;
    long before = served_version(&acc0);
    char cmd[1200];
    /* A copy with damaged parameters, renamed into place. */
    sfmt(cmd, sizeof cmd,
         "cp %s/models/fmnist.csm %s/bad.tmp && printf 'garbage!' | dd of=%s/bad.tmp bs=1 seek=20000 conv=notrunc "
         "2>/dev/null && mv %s/bad.tmp %s/models/fmnist.csm",
         S.dir, S.dir, S.dir, S.dir, S.dir);
    CHECK(run_cmd(cmd) == 0, "write a corrupt model file");
    usleep(2500000); /* more than two watch intervals */
    double acc1;
    CHECK(served_version(&acc1) == before && acc1 == acc0, "the served version is unchanged");
    resp_t r = http(&S, "GET", "/readyz");
    CHECK(r.status == 200, "still ready: %ld", r.status);
    resp_free(&r);
    r = http(&S, "POST", "/v1/models/fmnist/predict?sample=test:18");
    CHECK(r.status == 200, "still predicting: %ld", r.status);
    resp_free(&r);
    char *log = srv_file(&S, "server.log");
    CHECK(log && strstr(log, "refused the changed file") && strstr(log, "checksum"), "refusal logged");
    free(log);
    /* Then a truncated one. */
    sfmt(cmd, sizeof cmd, "head -c 1000 %s/models/fmnist.csm > %s/short.tmp && mv %s/short.tmp %s/models/fmnist.csm",
         S.dir, S.dir, S.dir, S.dir);
    CHECK(run_cmd(cmd) == 0, "write a truncated model file");
    usleep(2500000);
    CHECK(served_version(NULL) == before, "still the same version after a truncated file");
}

int main(void)
{
    srv_start(&S, NULL);
    RUN(test_new_file_is_served);
    RUN(test_corrupt_file_is_refused);
    srv_stop(&S);
    return test_summary("api_watch");
}
