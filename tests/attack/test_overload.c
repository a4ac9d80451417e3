/*
 * test_overload.c - more requests than the service can compute, from twice the
 * connection limit of clients. Before the compute workers, model work ran on the
 * threads that poll connections: a slow request (a large Grad-CAM) held up every
 * connection its thread served, so under load every client waited for everyone's
 * work and requests timed out instead of being refused.
 *
 * Now model work waits in a bounded queue with a lane per client address: a client
 * waits for the requests being computed and its own, not for everyone's, and when the
 * queue is full the answer is 503 with Retry-After at once. Two other addresses each
 * open the connection limit's worth of connections and ask for large Grad-CAMs back
 * to back, in two ways:
 *   - as clients that honour Retry-After (more of them than the service can serve):
 *     the normal client's small predictions keep their latency;
 *   - as a flood that asks again the moment it is refused: the flood's own refusals
 *     then take the test machine's cores (the flooding client runs on them too), so
 *     the normal client's latency says more about the machine than the service; what
 *     must hold is that it is still answered, every time.
 * Either way every attacking request is answered (or its connection refused) quickly,
 * none times out, the refusals carry Retry-After, and the server's memory stays under
 * a stated bound.
 */
#include "attack.h"

#define MAX_CONNECTIONS 64
#define SECONDS 6.0
#define ANSWER_BOUND_S 5.0           /* an overloaded service answers, even if only 503 */
/* Queued requests hold no bodies, and the workers were warmed up before: what may grow
 * is the replies waiting to be sent and the connections' buffers. */
#define MEMORY_BOUND_KIB (32 << 10)

typedef struct {
    CURL *h;
    double t0;
    int retry_after; /* the reply had Retry-After */
    double not_before;
} att_req;

typedef struct {
    int total, ok, shed, other, refused, timeouts, shed_without_retry;
    double max_answer_s;
} att_stats;

static size_t on_att_header(char *p, size_t size, size_t n, void *user)
{
    att_req *a = user;
    if (size * n >= 12 && !strncasecmp(p, "Retry-After:", 12)) a->retry_after = 1;
    return size * n;
}

static void att_setup(att_req *a, const srv_t *s, const char *path, const char *from)
{
    char url[512], iface[64];
    snprintf(url, sizeof url, "%s%s", s->base, path);
    snprintf(iface, sizeof iface, "host!%s", from);
    a->h = curl_easy_init();
    curl_easy_setopt(a->h, CURLOPT_URL, url);
    curl_easy_setopt(a->h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(a->h, CURLOPT_TIMEOUT, 10L);
    curl_easy_setopt(a->h, CURLOPT_INTERFACE, iface);
    curl_easy_setopt(a->h, CURLOPT_POST, 1L);
    curl_easy_setopt(a->h, CURLOPT_POSTFIELDS, "");
    curl_easy_setopt(a->h, CURLOPT_POSTFIELDSIZE, 0L);
    curl_easy_setopt(a->h, CURLOPT_WRITEFUNCTION, discard_body);
    curl_easy_setopt(a->h, CURLOPT_HEADERFUNCTION, on_att_header);
    curl_easy_setopt(a->h, CURLOPT_HEADERDATA, a);
    curl_easy_setopt(a->h, CURLOPT_PRIVATE, a);
}

/* Records one answer; returns the seconds its client should wait before the next
 * request when it honours Retry-After (0 when it may ask at once). */
static double att_record(att_stats *st, att_req *a, CURLcode rc)
{
    double dt = now_s() - a->t0;
    long status = 0;
    curl_easy_getinfo(a->h, CURLINFO_RESPONSE_CODE, &status);
    st->total++;
    if (rc == CURLE_OPERATION_TIMEDOUT) st->timeouts++;
    else if (rc != CURLE_OK) st->refused++; /* the connection was refused or reset */
    else if (status == 200) st->ok++;
    else if (status == 503 || status == 429) {
        st->shed++;
        st->shed_without_retry += !a->retry_after;
    } else st->other++;
    if (rc != CURLE_OPERATION_TIMEDOUT && dt > st->max_answer_s) st->max_answer_s = dt;
    return rc == CURLE_OK && (status == 503 || status == 429) && a->retry_after ? 1.0 : 0.0;
}

/* n clients (half from each address) send `path` back to back on kept-alive
 * connections for `seconds`; polite ones wait as Retry-After says after a refusal. A
 * client whose connection was refused tries again after 100 ms (not at once: a connect
 * storm would measure the test machine, not the service). Then the requests still out
 * are waited for. */
static void overload(const srv_t *s, int n, const char *path, double seconds, int polite, att_stats *st)
{
    CURLM *m = curl_multi_init();
    curl_multi_setopt(m, CURLMOPT_MAX_HOST_CONNECTIONS, 0L);
    curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, (long)n);
    att_req *a = calloc((size_t)n, sizeof *a);
    if (!a) exit(99);
    int *waiting = calloc((size_t)n, sizeof *waiting);
    for (int i = 0; i < n; i++) {
        att_setup(&a[i], s, path, i % 2 ? "127.0.0.2" : "127.0.0.3");
        a[i].t0 = now_s();
        curl_multi_add_handle(m, a[i].h);
    }
    double end = now_s() + seconds;
    int running = n;
    while (running > 0 || now_s() < end) {
        curl_multi_perform(m, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m, &left))) {
            if (msg->msg != CURLMSG_DONE) continue;
            att_req *r;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
            double wait = att_record(st, r, msg->data.result);
            curl_multi_remove_handle(m, r->h);
            int i = (int)(r - a);
            waiting[i] = 1;
            r->not_before = now_s() + (msg->data.result != CURLE_OK ? 0.1 : polite ? wait : 0);
        }
        for (int i = 0; i < n && now_s() < end; i++) {
            if (!waiting[i] || now_s() < a[i].not_before) continue;
            waiting[i] = 0;
            a[i].t0 = now_s();
            a[i].retry_after = 0;
            curl_multi_add_handle(m, a[i].h);
            running++;
        }
        if (now_s() >= end && running == 0) break;
        curl_multi_poll(m, NULL, 0, 20, NULL);
    }
    for (int i = 0; i < n; i++) {
        if (!waiting[i]) curl_multi_remove_handle(m, a[i].h);
        curl_easy_cleanup(a[i].h);
    }
    curl_multi_cleanup(m);
    free(a);
    free(waiting);
}

static void attack(int polite)
{
    srv_t S;
    char conns[16];
    snprintf(conns, sizeof conns, "%d", MAX_CONNECTIONS);
    const char *flags[] = {"--no-vgg16", "--max-connections", conns, NULL};
    const char *env[] = {"CONVSCOPE_QUEUE=8", "CONVSCOPE_MAX_PER_IP=24", NULL};
    attack_start(&S, flags, env);
    long rss0 = rss_kib(S.pid);
    CHECK(rss0 > 0, "the server's memory cannot be read");
    double base = normal_baseline(&S, "/v1/models/fmnist/predict?sample=test:18", NULL, 0, NULL);
    static normal_client nc;
    normal_start(&nc, &S, "/v1/models/fmnist/predict?sample=test:18", NULL, 0, NULL, 0);
    att_stats st = {0};
    /* A Grad-CAM overlay of 1024x1024: tens of milliseconds of work each. */
    overload(&S, 2 * MAX_CONNECTIONS, "/v1/models/fmnist/gradcam?sample=test:18&size=540", SECONDS, polite, &st);
    long rss1 = rss_kib(S.pid);
    normal_stop(&nc, polite ? "twice the connection limit of Grad-CAMs" : "a flood of Grad-CAMs");
    const char *series = "{method=\"POST\",route=\"/v1/models/{model}/gradcam\"}";
    char name[200];
    snprintf(name, sizeof name, "convscope_compute_run_seconds_total%s", series);
    double run = metric_value(&S, name);
    snprintf(name, sizeof name, "convscope_compute_requests_total%s", series);
    double n = metric_value(&S, name);
    double job = n > 0 ? run / n : 0;
    fprintf(stderr, "  one Grad-CAM took %.1f ms of a worker on average\n", job * 1e3);
    fprintf(stderr, "  attacker: %d requests: %d answered 200, %d refused for load (503/429), %d other, %d connections "
            "refused, %d timed out; slowest answer %.2f s; server memory +%ld MiB\n", st.total, st.ok, st.shed,
            st.other, st.refused, st.timeouts, st.max_answer_s, (rss1 - rss0) >> 10);
    if (polite) {
        CHECK(n > 0, "the server's compute time per request cannot be read");
        CHECK_NORMAL(&nc, normal_bound(base, job));
    } else {
        CHECK(nc.n >= 10 && nc.failed == 0, "the normal client: %d answers, %d failures (first: %ld)", nc.n,
              nc.failed, nc.first_bad);
    }
    CHECK(st.timeouts == 0, "%d attacking requests timed out", st.timeouts);
    CHECK(st.max_answer_s < ANSWER_BOUND_S, "an attacking request waited %.2f s for its answer", st.max_answer_s);
    CHECK(st.ok > 0 && st.shed > 0, "work went on (%d) and the excess was refused (%d)", st.ok, st.shed);
    CHECK(st.shed_without_retry == 0, "%d refusals without Retry-After", st.shed_without_retry);
    CHECK(st.other == 0, "%d unexpected statuses", st.other);
    CHECK(rss1 - rss0 < MEMORY_BOUND_KIB, "memory grew by %ld MiB", (rss1 - rss0) >> 10);
    /* Once the attack is over, nothing is left waiting. */
    CHECK(wait_metric(&S, "convscope_compute_queue{state=\"waiting\"}", 0, 20), "the queue drains");
    srv_stop(&S);
}

static void test_twice_the_limits_of_slow_requests(void)
{
    attack(1);
}

static void test_flood_of_slow_requests(void)
{
    attack(0);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_ALL);
    RUN(test_twice_the_limits_of_slow_requests);
    RUN(test_flood_of_slow_requests);
    curl_global_cleanup();
    return test_summary("attack_overload");
}
