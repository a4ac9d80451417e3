/*
 * test_resources.c - CPUs and memory from cgroup trees written here: cgroup v2 with
 * a quota and a memory limit at the root (a container with its own cgroup namespace),
 * limits on ancestors of a nested cgroup (the tightest wins), cgroup v1, no cgroup at
 * all, and an affinity mask smaller than the quota.
 */
#include <sys/stat.h>

#include "resources.h"
#include "test.h"

static char root[256];

/* Writes text to root/rel, making the folders on the way. */
static void put(const char *rel, const char *text)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    for (char *p = path + strlen(root) + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            mkdir(path, 0755);
            *p = '/';
        }
    FILE *f = fopen(path, "w");
    if (!f) exit(99);
    fputs(text, f);
    fclose(f);
}

static void fresh_root(const char *name)
{
    snprintf(root, sizeof root, "%s", test_scratch_path(name));
    mkdir(root, 0755);
}

#define GIB ((uint64_t)1 << 30)

static void test_v2_container(void)
{
    fresh_root("v2");
    put("cpu.max", "150000 100000\n");
    put("memory.max", "734003200\n");
    cs_resources r;
    cs_resources_detect(&r, "0::/\n", root, 4, 16 * GIB);
    CHECK(r.cpus == 2 && !strcmp(r.cpu_source, "cgroup cpu.max"), "1.5 CPUs round up to 2: %d (%s)", r.cpus,
          r.cpu_source);
    CHECK(fabs(r.cpu_quota - 1.5) < 1e-9 && r.affinity_cpus == 4, "quota %g, affinity %d", r.cpu_quota, r.affinity_cpus);
    CHECK(r.memory == 734003200 && !strcmp(r.memory_source, "cgroup memory.max"), "700 MiB: %llu (%s)",
          (unsigned long long)r.memory, r.memory_source);
}

static void test_v2_nested_tightest_wins(void)
{
    fresh_root("nested");
    put("kubepods/pod1/ctr/cpu.max", "max 100000\n");
    put("kubepods/pod1/cpu.max", "50000 100000\n");
    put("kubepods/cpu.max", "400000 100000\n");
    put("kubepods/pod1/ctr/memory.max", "max\n");
    put("kubepods/pod1/memory.max", "1073741824\n");
    put("kubepods/memory.max", "8589934592\n");
    cs_resources r;
    cs_resources_detect(&r, "0::/kubepods/pod1/ctr\n", root, 64, 256 * GIB);
    CHECK(r.cpus == 1 && fabs(r.cpu_quota - 0.5) < 1e-9, "half a CPU is one: %d (%g)", r.cpus, r.cpu_quota);
    CHECK(r.memory == GIB, "the pod's 1 GiB, not the node's: %llu", (unsigned long long)r.memory);
}

static void test_v1(void)
{
    fresh_root("v1");
    put("cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "200000\n");
    put("cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000\n");
    put("memory/docker/abc/memory.limit_in_bytes", "9223372036854771712\n"); /* no limit */
    cs_resources r;
    cs_resources_detect(&r, "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n1:name=systemd:/docker/abc\n", root, 8,
                        16 * GIB);
    CHECK(r.cpus == 2 && !strcmp(r.cpu_source, "cgroup cpu.cfs_quota_us"), "v1 quota of 2: %d (%s)", r.cpus,
          r.cpu_source);
    CHECK(r.memory == 16 * GIB && !strcmp(r.memory_source, "machine's RAM"), "no v1 memory limit: %llu (%s)",
          (unsigned long long)r.memory, r.memory_source);
    put("memory/docker/abc/memory.limit_in_bytes", "536870912\n");
    cs_resources_detect(&r, "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n", root, 8, 16 * GIB);
    CHECK(r.memory == 512u << 20 && !strcmp(r.memory_source, "cgroup memory.limit_in_bytes"), "v1 limit: %llu",
          (unsigned long long)r.memory);
}

static void test_no_cgroup_and_affinity(void)
{
    fresh_root("none");
    cs_resources r;
    cs_resources_detect(&r, "", root, 3, 8 * GIB);
    CHECK(r.cpus == 3 && !strcmp(r.cpu_source, "affinity mask") && r.memory == 8 * GIB, "no limits: %d CPUs", r.cpus);
    put("cpu.max", "400000 100000\n");
    cs_resources_detect(&r, "0::/\n", root, 1, 8 * GIB);
    CHECK(r.cpus == 1 && !strcmp(r.cpu_source, "affinity mask"), "a mask of 1 under a quota of 4: %d (%s)", r.cpus,
          r.cpu_source);
    put("cpu.max", "garbage\n");
    put("memory.max", "-5\n");
    cs_resources_detect(&r, "0::/\n", root, 2, 8 * GIB);
    CHECK(r.cpus == 2 && r.memory == 8 * GIB, "unreadable limits are no limits");
}

static void test_this_process(void)
{
    const cs_resources *r = cs_resources_get();
    CHECK(r->cpus >= 1 && r->cpus <= r->affinity_cpus && r->memory > 0 && r->memory <= r->physical,
          "this process: %d CPUs, %llu bytes", r->cpus, (unsigned long long)r->memory);
    CHECK(cs_resources_rss() > 0, "resident memory is known");
}

int main(void)
{
    RUN(test_v2_container);
    RUN(test_v2_nested_tightest_wins);
    RUN(test_v1);
    RUN(test_no_cgroup_and_affinity);
    RUN(test_this_process);
    return test_summary("resources");
}
