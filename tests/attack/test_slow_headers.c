/*
 * test_slow_headers.c - slowloris: connections that send their headers a byte at a
 * time and never finish them. libmicrohttpd's timeout only closes idle connections,
 * so before the guard such a connection was kept for as long as it kept dripping, and
 * twice the connection limit of them left nobody else a connection.
 *
 * Each connection must now be closed --header-timeout seconds after it opened, however
 * busy it keeps itself, and one address may hold at most --max-per-ip of them, so the
 * normal client keeps its latency while twice the connection limit drip from another
 * address, and the server's memory stays under a stated bound.
 */
#include "attack.h"

#define HEADER_TIMEOUT 2
#define MAX_CONNECTIONS 100
#define MAX_PER_IP 40
#define MEMORY_BOUND_KIB (32 << 10) /* connections waiting for headers cost kilobytes each */

static void test_dripping_headers_are_cut_at_the_deadline(void)
{
    srv_t S;
    const char *flags[] = {"--no-vgg16", "--timeout", "30", NULL};
    const char *env[] = {"CONVSCOPE_HEADER_TIMEOUT=2", NULL};
    attack_start(&S, flags, env);
    /* Never idle for more than 0.2 s, never complete. */
    const char *head = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ";
    slow_conn c;
    slow_open(&c, &S, NULL, head, strlen(head));
    CHECK(c.fd >= 0, "connect");
    double end = now_s() + 3 * HEADER_TIMEOUT + 4;
    while (!c.ended && now_s() < end) {
        slow_drip(&c, 1, 'a');
        usleep(200000);
        slow_poll(&c, 1);
    }
    double held = (c.ended ? c.ended : now_s()) - c.opened;
    fprintf(stderr, "  a connection dripping its headers was held %.2f s (header timeout %d s)\n", held,
            HEADER_TIMEOUT);
    CHECK(c.ended, "still open after %.1f s although its headers never ended", held);
    CHECK(held >= HEADER_TIMEOUT - 0.1 && held < 2 * HEADER_TIMEOUT + 2, "held %.2f s", held);
    slow_close_all(&c, 1);
    CHECK(wait_metric(&S, "convscope_http_connections_cut_total{reason=\"header_timeout\"}", 1, 10), "counted");
    srv_stop(&S);
}

static void test_slowloris_twice_the_connection_limit(void)
{
    srv_t S;
    char conns[16], per_ip[64];
    snprintf(conns, sizeof conns, "%d", MAX_CONNECTIONS);
    snprintf(per_ip, sizeof per_ip, "CONVSCOPE_MAX_PER_IP=%d", MAX_PER_IP);
    const char *flags[] = {"--no-vgg16", "--max-connections", conns, NULL};
    const char *env[] = {"CONVSCOPE_HEADER_TIMEOUT=2", per_ip, NULL};
    attack_start(&S, flags, env);
    long rss0 = rss_kib(S.pid);
    CHECK(rss0 > 0, "the server's memory cannot be read");
    double base = normal_baseline(&S, "/v1/models/fmnist/predict?sample=test:18", NULL, 0, NULL);
    static normal_client nc;
    normal_start(&nc, &S, "/v1/models/fmnist/predict?sample=test:18", NULL, 0, NULL, 1);

    enum { N = 2 * MAX_CONNECTIONS };
    static slow_conn att[N];
    const char *head = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ";
    for (int i = 0; i < N; i++) slow_open(&att[i], &S, "127.0.0.2", head, strlen(head));
    long rss_max = rss0;
    int open_max = 0;
    double end = now_s() + 3 * HEADER_TIMEOUT;
    while (now_s() < end) {
        usleep(250000);
        slow_drip(att, N, 'a');
        slow_poll(att, N);
        int open = 0;
        for (int i = 0; i < N; i++) open += att[i].fd >= 0 && !att[i].ended;
        /* Refused connections end at once; count what is held once that settled. */
        if (now_s() - att[N - 1].opened > 0.5 && open > open_max) open_max = open;
        long rss = rss_kib(S.pid);
        if (rss > rss_max) rss_max = rss;
    }
    normal_stop(&nc, "a slowloris of twice the connection limit");
    CHECK_NORMAL(&nc, normal_bound(base, 0));
    int held_long = 0, ended = 0;
    for (int i = 0; i < N; i++) {
        ended += att[i].ended > 0;
        if (att[i].ended && att[i].ended - att[i].opened > 2 * HEADER_TIMEOUT + 2) held_long++;
    }
    fprintf(stderr, "  attacker: %d connections, at most %d held at once, %d ended, server memory +%ld KiB\n", N,
            open_max, ended, rss_max - rss0);
    CHECK(open_max <= MAX_PER_IP, "one address held %d connections (limit %d)", open_max, MAX_PER_IP);
    CHECK(ended == N && held_long == 0, "%d of %d ended, %d held past the header deadline", ended, N, held_long);
    CHECK(rss_max - rss0 < MEMORY_BOUND_KIB, "memory grew by %ld KiB (bound %d KiB)", rss_max - rss0,
          MEMORY_BOUND_KIB);
    slow_close_all(att, N);
    srv_stop(&S);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_ALL);
    RUN(test_dripping_headers_are_cut_at_the_deadline);
    RUN(test_slowloris_twice_the_connection_limit);
    curl_global_cleanup();
    return test_summary("attack_slow_headers");
}
