/*
 * log.c - access log and service messages.
 */
#include "log.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static int g_fd = -1;
static int g_own_fd;

static void stamp(char *buf, size_t n)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    size_t k = strftime(buf, n, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + k, n - k, ".%03dZ", (int)(tv.tv_usec / 1000));
}

int cs_log_open(const char *where)
{
    if (!strcmp(where, "off")) return 0;
    if (!strcmp(where, "-")) {
        g_fd = STDOUT_FILENO;
        return 0;
    }
    g_fd = open(where, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    g_own_fd = g_fd >= 0;
    return g_fd >= 0 ? 0 : -1;
}

void cs_log_close(void)
{
    if (g_own_fd) close(g_fd);
    g_fd = -1;
    g_own_fd = 0;
}

/* The client's bytes as one field: control characters (a CR LF would forge a line, an
 * ESC drive the terminal that shows the log), spaces (the field separator) and '%'
 * itself are written %XX, so the line can be read back unambiguously. */
static void escape_field(char *dst, size_t n, const char *src)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t k = 0;
    for (const unsigned char *p = (const unsigned char *)src; *p && k + 4 <= n; p++) {
        if (*p <= 0x20 || *p == 0x7f || *p == '%') {
            dst[k++] = '%';
            dst[k++] = hex[*p >> 4];
            dst[k++] = hex[*p & 15];
        } else {
            dst[k++] = (char)*p;
        }
    }
    dst[k] = 0;
}

void cs_log_access(const char *method, const char *path, int status, size_t bytes, double ms)
{
    if (g_fd < 0) return;
    char line[1200], ts[40], m[40], pa[901];
    stamp(ts, sizeof ts);
    escape_field(m, sizeof m, method);
    escape_field(pa, sizeof pa, path);
    int n = snprintf(line, sizeof line, "%s %s %s %d %zu %.2fms\n", ts, m, pa, status, bytes, ms);
    if (n <= 0) return;
    if ((size_t)n >= sizeof line) {
        n = sizeof line - 1;
        line[n - 1] = '\n';
    }
    /* One write per line: O_APPEND and pipes keep it whole. */
    ssize_t w = write(g_fd, line, (size_t)n);
    (void)w;
}

void cs_log_info(const char *fmt, ...)
{
    char msg[1024], ts[40];
    stamp(ts, sizeof ts);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s convscope: %s\n", ts, msg);
}
