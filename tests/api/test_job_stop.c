/*
 * test_job_stop.c - the service stopped while training jobs start: a job is started
 * (202 with its Location) and the process is sent SIGTERM with nothing else in
 * between; it must cancel the job and exit 0. Quick enough for make check's
 * ThreadSanitizer run, which checks that the reply to the POST never reads a job that
 * shutdown (or another request) frees.
 */
#include "harness.h"

static void test_sigterm_right_after_post(void)
{
    for (int round = 0; round < 2; round++) {
        srv_t S;
        const char *flags[] = {"--no-vgg16", "--token", "s3cret", NULL};
        srv_start(&S, flags);
        const char *auth[] = {"Authorization: Bearer s3cret", NULL};
        req_opts o = {.content_type = "application/json", .headers = auth};
        const char *body = "{\"epochs\": 3, \"train_limit\": 1000, \"test_limit\": 100}";
        resp_t r = http_ex(&S, "POST", "/v1/models/fmnist/train", body, strlen(body), &o);
        char loc[128];
        CHECK(r.status == 202 && resp_header(&r, "Location", loc, sizeof loc) && !strncmp(loc, "/v1/jobs/j", 10),
              "round %d: %ld %s", round, r.status, r.body);
        resp_free(&r);
        srv_stop(&S);
        CHECK(S.exit_status == 0, "round %d: exit %d", round, S.exit_status);
    }
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_ALL);
    RUN(test_sigterm_right_after_post);
    curl_global_cleanup();
    return test_summary("api_job_stop");
}
