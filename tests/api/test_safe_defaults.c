/*
 * test_safe_defaults.c - who may reach a service that can train: listening beyond
 * loopback without a token is refused at start-up (exit 2, saying what to do) unless
 * --insecure-open asks for it; which addresses count as loopback; /readyz says how
 * state-changing calls are guarded.
 */
#include "config.h"
#include "harness.h"

static const char *str_or_empty(const char *s)
{
    return s ? s : "";
}

/* cs_config_load on argv, with no CONVSCOPE_* variable set behind its back. */
static int load(const char *const *args, cs_config *cfg)
{
    unsetenv("CONVSCOPE_TOKEN");
    unsetenv("CONVSCOPE_LISTEN");
    unsetenv("CONVSCOPE_INSECURE_OPEN");
    int n = 0;
    while (args[n]) n++;
    FILE *saved = stderr;
    stderr = fopen("/dev/null", "w"); /* the refusals print their reason */
    int rc = cs_config_load(cfg, n, (char **)args);
    fclose(stderr);
    stderr = saved;
    return rc;
}

static void test_loopback_addresses(void)
{
    const char *loop[] = {"127.0.0.1:8080", "127.1.2.3:1", "localhost:80", "[::1]:8080"};
    const char *open[] = {"0.0.0.0:8080", ":8080", "[::]:8080", "10.0.0.5:8080", "128.0.0.1:80", "[::2]:80",
                          "localhostx:80"};
    for (int i = 0; i < 4; i++) CHECK(cs_listen_is_loopback(loop[i]), "%s is loopback", loop[i]);
    for (int i = 0; i < 7; i++) CHECK(!cs_listen_is_loopback(open[i]), "%s is not loopback", open[i]);
}

static void test_open_listen_needs_token_or_flag(void)
{
    cs_config cfg;
    const char *open[] = {"serve", "--listen", "0.0.0.0:8080", NULL};
    CHECK(load(open, &cfg) == -1, "0.0.0.0 without a token refused");
    const char *with_token[] = {"serve", "--listen", "0.0.0.0:8080", "--token", "t0ken", NULL};
    CHECK(load(with_token, &cfg) == 0 && !strcmp(cfg.token, "t0ken"), "with a token");
    const char *insecure[] = {"serve", "--listen", "0.0.0.0:8080", "--insecure-open", NULL};
    CHECK(load(insecure, &cfg) == 0 && cfg.insecure_open == 1, "with --insecure-open");
    const char *loopback[] = {"serve", NULL};
    CHECK(load(loopback, &cfg) == 0 && !strcmp(cfg.listen, "127.0.0.1:8080"), "the default is loopback, no token");
    setenv("CONVSCOPE_INSECURE_OPEN", "1", 1);
    const char *env_open[] = {"serve", "--listen", "[::]:8080", NULL};
    int n = 0;
    while (env_open[n]) n++;
    CHECK(cs_config_load(&cfg, n, (char **)env_open) == 0, "CONVSCOPE_INSECURE_OPEN=1");
    unsetenv("CONVSCOPE_INSECURE_OPEN");
}

/* The real binary: exit 2 before listening, and the message says what to do. */
static void test_serve_refuses_at_start(void)
{
    const char *dir = test_scratch_dir("open");
    char cmd[600], log[400];
    sfmt(log, sizeof log, "%s/serve.log", dir);
    sfmt(cmd, sizeof cmd,
         "env -u CONVSCOPE_TOKEN -u CONVSCOPE_INSECURE_OPEN " SRV_BIN
         " serve --listen 0.0.0.0:0 --models %s --no-vgg16 >%s 2>&1",
         dir, log);
    CHECK(run_cmd(cmd) == 2, "exit 2");
    char *text = test_read_file(log, NULL);
    CHECK(text && strstr(text, "--token") && strstr(text, "--insecure-open") && !strstr(text, "listening on"),
          "says why: %s", text ? text : "");
    free(text);
}

static void test_readyz_says_how_calls_are_guarded(void)
{
    srv_t S;
    const char *plain[] = {"--no-vgg16", NULL};
    srv_start(&S, plain);
    resp_t r = http(&S, "GET", "/readyz");
    json_t *j = resp_json(&r);
    CHECK(r.status == 200 && !strcmp(str_or_empty(json_string_value(json_object_get(j, "auth"))), "none") &&
              !json_object_get(j, "insecure_open") && !json_object_get(j, "warning"),
          "loopback, no token: %s", r.body);
    json_decref(j);
    resp_free(&r);
    srv_stop(&S);
    const char *token[] = {"--no-vgg16", "--token", "t0ken", NULL};
    srv_start(&S, token);
    r = http(&S, "GET", "/readyz");
    j = resp_json(&r);
    CHECK(r.status == 200 && !strcmp(str_or_empty(json_string_value(json_object_get(j, "auth"))), "token"), "token: %s",
          r.body);
    json_decref(j);
    resp_free(&r);
    srv_stop(&S);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_ALL);
    RUN(test_loopback_addresses);
    RUN(test_open_listen_needs_token_or_flag);
    RUN(test_serve_refuses_at_start);
    RUN(test_readyz_says_how_calls_are_guarded);
    curl_global_cleanup();
    return test_summary("api_safe_defaults");
}
