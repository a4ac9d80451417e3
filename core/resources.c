/*
 * resources.c - CPUs and memory from the affinity mask and the cgroup limits
 * (resources.h).
 */
#include "resources.h"

#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The first line of a small file, or "" when it cannot be read. */
static void read_line(const char *path, char *buf, size_t n)
{
    buf[0] = 0;
    FILE *f = fopen(path, "r");
    if (!f) return;
    if (!fgets(buf, (int)n, f)) buf[0] = 0;
    fclose(f);
    buf[strcspn(buf, "\n")] = 0;
}

/* Calls fn(dir) for the cgroup directory and each of its ancestors up to the mount. */
static void each_level(const char *mount, const char *path, void (*fn)(const char *dir, void *ctx), void *ctx)
{
    char p[1024];
    snprintf(p, sizeof p, "%s", path);
    for (;;) {
        char dir[2300];
        snprintf(dir, sizeof dir, "%s%s", mount, strcmp(p, "/") ? p : "");
        fn(dir, ctx);
        char *slash = strrchr(p, '/');
        if (!slash || slash == p) {
            if (strcmp(p, "/") == 0 || !p[0]) break;
            strcpy(p, "/");
            continue;
        }
        *slash = 0;
    }
}

typedef struct {
    double quota;   /* tightest CPU quota found, 0: none */
    uint64_t mem;   /* tightest memory limit found, 0: none */
    int v1;         /* reading v1 files */
} limits;

static void take_quota(limits *l, double q)
{
    if (q > 0 && (l->quota == 0 || q < l->quota)) l->quota = q;
}

static void take_mem(limits *l, uint64_t m)
{
    if (m > 0 && (l->mem == 0 || m < l->mem)) l->mem = m;
}

static void v2_level(const char *dir, void *ctx)
{
    limits *l = ctx;
    char path[2400], line[128];
    snprintf(path, sizeof path, "%s/cpu.max", dir);
    read_line(path, line, sizeof line);
    long long quota, period;
    if (sscanf(line, "%lld %lld", &quota, &period) == 2 && quota > 0 && period > 0) take_quota(l, (double)quota / period);
    snprintf(path, sizeof path, "%s/memory.max", dir);
    read_line(path, line, sizeof line);
    unsigned long long m;
    if (sscanf(line, "%llu", &m) == 1) take_mem(l, m);
}

static void v1_cpu_level(const char *dir, void *ctx)
{
    limits *l = ctx;
    char path[2400], line[64];
    long long quota = -1, period = 0;
    snprintf(path, sizeof path, "%s/cpu.cfs_quota_us", dir);
    read_line(path, line, sizeof line);
    sscanf(line, "%lld", &quota);
    snprintf(path, sizeof path, "%s/cpu.cfs_period_us", dir);
    read_line(path, line, sizeof line);
    sscanf(line, "%lld", &period);
    if (quota > 0 && period > 0) take_quota(l, (double)quota / period);
}

static void v1_mem_level(const char *dir, void *ctx)
{
    limits *l = ctx;
    char path[2400], line[64];
    snprintf(path, sizeof path, "%s/memory.limit_in_bytes", dir);
    read_line(path, line, sizeof line);
    unsigned long long m;
    /* "No limit" reads as a huge number (the largest page-aligned value). */
    if (sscanf(line, "%llu", &m) == 1 && m < (1ULL << 60)) take_mem(l, m);
}

/* The line's controller list contains `name` (v1 lines: "4:cpu,cpuacct:/path"). */
static int has_controller(const char *list, size_t len, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = list; p < list + len;) {
        const char *comma = memchr(p, ',', (size_t)(list + len - p));
        size_t k = comma ? (size_t)(comma - p) : (size_t)(list + len - p);
        if (k == n && strncmp(p, name, n) == 0) return 1;
        if (!comma) break;
        p = comma + 1;
    }
    return 0;
}

void cs_resources_detect(cs_resources *r, const char *proc_cgroup, const char *sys_cgroup, int affinity,
                         uint64_t physical)
{
    memset(r, 0, sizeof *r);
    limits v2 = {0}, v1 = {0};
    int have_v2 = 0, have_v1_cpu = 0, have_v1_mem = 0;
    for (const char *line = proc_cgroup; line && *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        char l[1100];
        snprintf(l, sizeof l, "%.*s", (int)(len < sizeof l - 1 ? len : sizeof l - 1), line);
        char *c1 = strchr(l, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (c1 && c2) {
            const char *controllers = c1 + 1, *path = c2 + 1;
            size_t clen = (size_t)(c2 - c1 - 1);
            char mount[1200];
            if (strncmp(l, "0:", 2) == 0 && clen == 0) { /* v2: "0::/path" */
                have_v2 = 1;
                each_level(sys_cgroup, path, v2_level, &v2);
            } else if (has_controller(controllers, clen, "cpu")) {
                have_v1_cpu = 1;
                snprintf(mount, sizeof mount, "%s/%.*s", sys_cgroup, (int)clen, controllers);
                each_level(mount, path, v1_cpu_level, &v1);
            } else if (has_controller(controllers, clen, "memory")) {
                have_v1_mem = 1;
                snprintf(mount, sizeof mount, "%s/memory", sys_cgroup);
                each_level(mount, path, v1_mem_level, &v1);
            }
        }
        line = end ? end + 1 : NULL;
    }
    double quota = v2.quota && v1.quota ? fmin(v2.quota, v1.quota) : v2.quota ? v2.quota : v1.quota;
    r->affinity_cpus = affinity > 0 ? affinity : 1;
    r->cpu_quota = quota;
    r->cpus = r->affinity_cpus;
    r->cpu_source = "affinity mask";
    if (quota > 0 && (int)ceil(quota - 1e-9) < r->cpus) {
        r->cpus = (int)ceil(quota - 1e-9);
        if (r->cpus < 1) r->cpus = 1;
        r->cpu_source = v2.quota == quota && have_v2 ? "cgroup cpu.max" : "cgroup cpu.cfs_quota_us";
    }
    (void)have_v1_cpu, (void)have_v1_mem;
    r->physical = physical;
    r->memory = physical;
    r->memory_source = "machine's RAM";
    uint64_t mem = v2.mem && v1.mem ? (v2.mem < v1.mem ? v2.mem : v1.mem) : v2.mem ? v2.mem : v1.mem;
    if (mem && (physical == 0 || mem < physical)) {
        r->memory = mem;
        r->memory_source = v2.mem == mem ? "cgroup memory.max" : "cgroup memory.limit_in_bytes";
    }
}

static cs_resources g_res;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void detect_self(void)
{
    char *text = NULL;
    size_t cap = 0, len = 0;
    FILE *f = fopen("/proc/self/cgroup", "r");
    if (f) {
        char buf[4096];
        size_t got;
        while ((got = fread(buf, 1, sizeof buf, f)) > 0 && len < (1 << 20)) {
            char *grown = realloc(text, cap = len + got + 1);
            if (!grown) break;
            text = grown;
            memcpy(text + len, buf, got);
            len += got;
            text[len] = 0;
        }
        fclose(f);
    }
    cpu_set_t set;
    int affinity = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 0;
    if (affinity <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        affinity = n > 0 ? (int)n : 1;
    }
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    uint64_t physical = pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : 0;
    cs_resources_detect(&g_res, text ? text : "", "/sys/fs/cgroup", affinity, physical);
    free(text);
}

const cs_resources *cs_resources_get(void)
{
    pthread_once(&g_once, detect_self);
    return &g_res;
}

uint64_t cs_resources_rss(void)
{
    char line[128];
    read_line("/proc/self/statm", line, sizeof line);
    unsigned long long size, resident;
    long page = sysconf(_SC_PAGESIZE);
    if (sscanf(line, "%llu %llu", &size, &resident) != 2 || page <= 0) return 0;
    return (uint64_t)resident * (uint64_t)page;
}
