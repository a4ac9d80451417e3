/*
 * test_guard.c - the connection guard on its own: deadlines and body rates checked by
 * calling its sweep with chosen times (no thread, no waiting), cuts seen as the end of
 * the stream on the other end of a socket pair, and the upload places and byte budget
 * shared between client addresses.
 */
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "guard.h"
#include "test.h"

static const unsigned char ADDR_A[4] = {10, 0, 0, 1}, ADDR_B[4] = {10, 0, 0, 2}, ADDR_C[4] = {10, 0, 0, 3};

typedef struct {
    int fd[2];
    cs_guard_conn *c;
} pair;

static void pair_open(cs_guard *g, pair *p, const unsigned char *addr)
{
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, p->fd) != 0) exit(99);
    p->c = cs_guard_open(g, p->fd[0], addr, 4);
    if (!p->c) exit(99);
}

static void pair_close(pair *p)
{
    cs_guard_close(p->c);
    close(p->fd[0]);
    close(p->fd[1]);
}

/* The peer sees the end of the stream: the guard cut the connection. */
static int peer_sees_end(const pair *p)
{
    char b;
    return recv(p->fd[1], &b, 1, MSG_DONTWAIT) == 0;
}

static cs_guard *guard(double header_timeout, long rate, int uploads, size_t budget)
{
    cs_guard_limits l = {header_timeout, 30, rate, uploads, budget, 0, 0};
    cs_guard *g = cs_guard_new(&l);
    if (!g) exit(99);
    return g;
}

static void test_header_deadline(void)
{
    cs_guard *g = guard(5, 0, 8, 1 << 20);
    double t0 = cs_now();
    pair p;
    pair_open(g, &p, ADDR_A);
    cs_guard_sweep(g, t0 + 4);
    CHECK(cs_guard_cut(p.c) == CS_GUARD_CUT_NONE && !peer_sees_end(&p), "4 s in: still waiting for its headers");
    cs_guard_sweep(g, t0 + 6);
    CHECK(cs_guard_cut(p.c) == CS_GUARD_CUT_HEADERS, "6 s in: cut (%d)", cs_guard_cut(p.c));
    CHECK(peer_sees_end(&p), "the client sees the connection end");
    CHECK(cs_guard_request(p.c) == CS_GUARD_CUT, "headers completing after the cut are refused");
    cs_guard_stats s;
    cs_guard_stats_get(g, &s);
    CHECK(s.cut_headers == 1 && s.connections == 1, "cut %lu open %ld", s.cut_headers, s.connections);
    pair_close(&p);
    cs_guard_stats_get(g, &s);
    CHECK(s.connections == 0, "closed");
    cs_guard_free(g);
}

static void test_busy_then_kept_alive(void)
{
    cs_guard *g = guard(5, 0, 8, 1 << 20);
    pair p;
    pair_open(g, &p, ADDR_A);
    CHECK(cs_guard_request(p.c) == CS_GUARD_OK, "headers in time");
    double t0 = cs_now();
    cs_guard_sweep(g, t0 + 1000);
    CHECK(cs_guard_cut(p.c) == CS_GUARD_CUT_NONE, "a request being answered has no header deadline");
    cs_guard_request_end(p.c);
    t0 = cs_now();
    cs_guard_sweep(g, t0 + 29);
    CHECK(cs_guard_cut(p.c) == CS_GUARD_CUT_NONE, "kept alive: the next request may come within the idle timeout");
    cs_guard_sweep(g, t0 + 31);
    CHECK(cs_guard_cut(p.c) == CS_GUARD_CUT_HEADERS && peer_sees_end(&p), "then it is cut");
    pair_close(&p);
    cs_guard_free(g);
}

static void test_slow_body(void)
{
    /* 100 bytes/s over 5 s windows: at least 500 bytes per window. */
    cs_guard *g = guard(5, 100, 8, 1 << 20);
    pair p, q;
    pair_open(g, &p, ADDR_A);
    pair_open(g, &q, ADDR_B);
    cs_guard_request(p.c);
    cs_guard_request(q.c);
    double t0 = cs_now();
    CHECK(cs_guard_upload(p.c, 10000) == CS_GUARD_OK && cs_guard_upload(q.c, 10000) == CS_GUARD_OK, "uploads start");
    cs_guard_body(p.c, 600, 0);
    cs_guard_body(q.c, 600, 0);
    cs_guard_sweep(g, t0 + 6);
    CHECK(!cs_guard_cut(p.c) && !cs_guard_cut(q.c), "600 bytes in the first window are enough");
    cs_guard_body(p.c, 499, 0);
    cs_guard_body(q.c, 500, 0);
    cs_guard_sweep(g, t0 + 12);
    CHECK(cs_guard_cut(p.c) == CS_GUARD_CUT_SLOW_BODY && peer_sees_end(&p), "499 bytes in the next: cut");
    CHECK(!cs_guard_cut(q.c) && !peer_sees_end(&q), "500: not cut");
    CHECK(cs_guard_body(p.c, 1, 0) == CS_GUARD_CUT, "bytes after the cut are refused");
    cs_guard_stats s;
    cs_guard_stats_get(g, &s);
    CHECK(s.cut_slow_body == 1 && s.uploads == 2, "cut %lu uploads %ld", s.cut_slow_body, s.uploads);
    pair_close(&p);
    cs_guard_body_end(q.c);
    cs_guard_stats_get(g, &s);
    CHECK(s.uploads == 0 && s.bytes_held == 10000, "a closed connection gives its place and bytes back: %ld %zu",
          s.uploads, s.bytes_held);
    cs_guard_sweep(g, t0 + 1000);
    CHECK(!cs_guard_cut(q.c), "a complete body is not held to the rate");
    pair_close(&q);
    cs_guard_free(g);
}

static void test_upload_places(void)
{
    cs_guard *g = guard(5, 0, 4, 1 << 20);
    pair a[3], b[2], c;
    for (int i = 0; i < 3; i++) pair_open(g, &a[i], ADDR_A), cs_guard_request(a[i].c);
    for (int i = 0; i < 2; i++) pair_open(g, &b[i], ADDR_B), cs_guard_request(b[i].c);
    pair_open(g, &c, ADDR_C);
    cs_guard_request(c.c);
    CHECK(cs_guard_upload(a[0].c, 1) == CS_GUARD_OK && cs_guard_upload(a[1].c, 1) == CS_GUARD_OK, "A: two");
    CHECK(cs_guard_upload(a[2].c, 1) == CS_GUARD_NO_SLOT, "A: not three of four places");
    CHECK(cs_guard_upload(b[0].c, 1) == CS_GUARD_OK && cs_guard_upload(b[1].c, 1) == CS_GUARD_OK, "B: two");
    CHECK(cs_guard_upload(c.c, 1) == CS_GUARD_NO_SLOT, "C: all four taken");
    cs_guard_body_end(b[0].c);
    CHECK(cs_guard_upload(c.c, 1) == CS_GUARD_OK, "C: a place came free");
    cs_guard_stats s;
    cs_guard_stats_get(g, &s);
    CHECK(s.uploads == 4 && s.refused_slot == 2 && s.bytes_held == 5, "uploads %ld refused %lu held %zu", s.uploads,
          s.refused_slot, s.bytes_held);
    for (int i = 0; i < 3; i++) pair_close(&a[i]);
    for (int i = 0; i < 2; i++) pair_close(&b[i]);
    pair_close(&c);
    cs_guard_stats_get(g, &s);
    CHECK(s.uploads == 0 && s.bytes_held == 0, "all given back");
    cs_guard_free(g);
}

static void test_byte_budget(void)
{
    cs_guard *g = guard(5, 0, 16, 1000);
    pair a1, a2, b, c;
    pair_open(g, &a1, ADDR_A);
    pair_open(g, &a2, ADDR_A);
    pair_open(g, &b, ADDR_B);
    pair_open(g, &c, ADDR_C);
    cs_guard_request(a1.c), cs_guard_request(a2.c), cs_guard_request(b.c), cs_guard_request(c.c);
    CHECK(cs_guard_upload(a1.c, 400) == CS_GUARD_OK, "A: 400 of 1000");
    CHECK(cs_guard_upload(a2.c, 200) == CS_GUARD_NO_BUDGET, "A: a second body past half the budget");
    CHECK(cs_guard_upload(b.c, 600) == CS_GUARD_OK, "B: its first body may take more than half");
    CHECK(cs_guard_upload(c.c, 1) == CS_GUARD_NO_BUDGET, "C: the budget is spent");
    cs_guard_body_end(a1.c);
    cs_guard_stats s;
    cs_guard_stats_get(g, &s);
    CHECK(s.bytes_held == 1000, "a complete body keeps its bytes until its request ends: %zu", s.bytes_held);
    cs_guard_request_end(a1.c);
    CHECK(cs_guard_upload(c.c, 0) == CS_GUARD_OK, "C: a chunked body starts with nothing reserved");
    CHECK(cs_guard_body(c.c, 300, 1) == CS_GUARD_OK, "and grows");
    CHECK(cs_guard_body(c.c, 101, 1) == CS_GUARD_NO_BUDGET, "until the budget is spent");
    cs_guard_stats_get(g, &s);
    CHECK(s.bytes_held == 900 && s.refused_budget == 3, "held %zu refused %lu", s.bytes_held, s.refused_budget);
    pair_close(&a1), pair_close(&a2), pair_close(&b), pair_close(&c);
    cs_guard_free(g);
}

static void test_small_bodies_are_not_charged(void)
{
    /* A budget of 1000 bytes, the first 100 of every body free. */
    cs_guard_limits l = {5, 30, 0, 16, 1000, 100, 0};
    cs_guard *g = cs_guard_new(&l);
    pair a, b, c;
    pair_open(g, &a, ADDR_A);
    pair_open(g, &b, ADDR_B);
    pair_open(g, &c, ADDR_C);
    cs_guard_request(a.c), cs_guard_request(b.c), cs_guard_request(c.c);
    CHECK(cs_guard_upload(a.c, 1100) == CS_GUARD_OK, "A: 1100 bytes charge 1000");
    CHECK(cs_guard_upload(b.c, 101) == CS_GUARD_NO_BUDGET, "B: 101 would charge one byte more than there is");
    CHECK(cs_guard_upload(b.c, 100) == CS_GUARD_OK, "B: 100 are free");
    CHECK(cs_guard_upload(c.c, 0) == CS_GUARD_OK, "C: chunked");
    CHECK(cs_guard_body(c.c, 60, 1) == CS_GUARD_OK && cs_guard_body(c.c, 40, 1) == CS_GUARD_OK, "C: 100 free bytes");
    CHECK(cs_guard_body(c.c, 1, 1) == CS_GUARD_NO_BUDGET, "C: the 101st is charged, and there is none");
    cs_guard_stats s;
    cs_guard_stats_get(g, &s);
    CHECK(s.bytes_held == 1000, "held %zu", s.bytes_held);
    pair_close(&a), pair_close(&b), pair_close(&c);
    cs_guard_free(g);
}

static void test_sweeper_thread(void)
{
    /* With its thread, the guard cuts by itself: 1 s for the headers, swept every 10 ms. */
    cs_guard_limits l = {1, 30, 0, 8, 1 << 20, 0, 10};
    cs_guard *g = cs_guard_new(&l);
    pair p;
    pair_open(g, &p, ADDR_A);
    double end = cs_now() + 20;
    while (!cs_guard_cut(p.c) && cs_now() < end) usleep(10000);
    CHECK(cs_guard_cut(p.c) == CS_GUARD_CUT_HEADERS && peer_sees_end(&p), "cut by the sweeper");
    pair_close(&p);
    cs_guard_free(g);
    CHECK(cs_guard_upload(NULL, 5) == CS_GUARD_OK && cs_guard_request(NULL) == CS_GUARD_OK, "no record: no limits");
}

int main(void)
{
    RUN(test_header_deadline);
    RUN(test_busy_then_kept_alive);
    RUN(test_slow_body);
    RUN(test_upload_places);
    RUN(test_byte_budget);
    RUN(test_small_bodies_are_not_charged);
    RUN(test_sweeper_thread);
    return test_summary("api_guard");
}
