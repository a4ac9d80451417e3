/*
 * test_concurrency.c - many clients at once, and a model swap under load: while a
 * training job runs and publishes its version, four threads keep predicting the same
 * image. Every answer must be 200 and must be exactly the answer of the version it
 * names (a request finishes on the model it started with, never on half of each).
 */
#include <pthread.h>
#include <stdatomic.h>

#include "harness.h"

static srv_t S;
static atomic_int g_stop; /* the workers poll it while main sets it */

typedef struct {
    int n, failed, mismatched, versions_seen[8];
    double p8_by_version[8]; /* probability of class 8 for test:18, per version */
    pthread_mutex_t *lock;
} worker_stats;

static void *worker(void *arg)
{
    worker_stats *w = arg;
    static const char *const paths[] = {
        "/v1/models/fmnist/predict?sample=test:18",
        "/v1/models/fmnist/gradcam?sample=test:18&format=json",
        "/v1/models/fmnist/layers/leaky_re_lu_1/feature-maps.png?sample=test:4&count=4",
    };
    for (int i = 0; !g_stop; i++) {
        const char *path = paths[i % 3];
        resp_t r = http_ex(&S, "POST", path, "", 0, NULL);
        pthread_mutex_lock(w->lock);
        w->n++;
        pthread_mutex_unlock(w->lock);
        if (r.status != 200) {
            pthread_mutex_lock(w->lock);
            w->failed++;
            pthread_mutex_unlock(w->lock);
            fprintf(stderr, "  %s -> %ld\n", path, r.status);
        } else if (i % 3 == 0) {
            json_t *j = resp_json(&r);
            int v = (int)json_integer_value(json_object_get(j, "version"));
            json_t *probs = json_object_get(json_array_get(json_object_get(j, "predictions"), 0), "probabilities");
            double p8 = json_number_value(json_array_get(probs, 8));
            if (v > 0 && v < 8) {
                pthread_mutex_lock(w->lock);
                w->versions_seen[v]++;
                if (w->p8_by_version[v] < 0) w->p8_by_version[v] = p8;
                else if (fabs(w->p8_by_version[v] - p8) > 1e-6) w->mismatched++;
                pthread_mutex_unlock(w->lock);
            }
            json_decref(j);
        }
        resp_free(&r);
    }
    return NULL;
}

static void test_parallel_clients_during_swap(void)
{
    pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    worker_stats w = {.lock = &lock}; /* shared by the four threads, under lock */
    pthread_t t[4];
    for (int v = 0; v < 8; v++) w.p8_by_version[v] = -1;
    for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, worker, &w);
    usleep(300000);
    resp_t r = http_ex(&S, "POST", "/v1/models/fmnist/train", "{\"epochs\":1,\"train_limit\":1024,\"test_limit\":200}",
                       48, NULL);
    CHECK(r.status == 202, "train %ld", r.status);
    resp_free(&r);
    int done = 0;
    for (double end = now_s() + 90; now_s() < end && !done; usleep(100000)) {
        r = http(&S, "GET", "/v1/jobs");
        done = strstr(r.body, "\"succeeded\"") || strstr(r.body, "\"failed\"");
        resp_free(&r);
    }
    usleep(500000); /* a little traffic on the new version */
    g_stop = 1;
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    CHECK(done, "the job ended");
    CHECK(w.n > 20, "%d requests", w.n);
    CHECK(w.failed == 0, "%d failed of %d", w.failed, w.n);
    CHECK(w.mismatched == 0, "%d answers differ from their version's", w.mismatched);
    int versions = 0;
    for (int v = 1; v < 8; v++) versions += w.versions_seen[v] > 0;
    CHECK(versions == 2, "answers from the old and the new version (%d versions)", versions);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_ALL);
    const char *flags[] = {"--no-vgg16", "--threads", "3", NULL};
    srv_start(&S, flags);
    RUN(test_parallel_clients_during_swap);
    srv_stop(&S);
    CHECK(S.exit_status == 0, "server exit %d", S.exit_status);
    curl_global_cleanup();
    return test_summary("api_concurrency");
}
