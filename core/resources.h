/*
 * resources.h - what the process may really use: CPUs and memory.
 *
 * In a container the host's core count and RAM are not the process's: a CPU quota
 * (cgroup cpu.max) or an affinity mask gives it fewer cores, and a memory limit
 * (cgroup memory.max) less memory; the kernel throttles or kills a process that
 * sizes itself from the host. Both cgroup v2 (the unified hierarchy) and v1 are
 * read; every ancestor of the process's cgroup counts (the tightest limit wins).
 */
#ifndef CS_RESOURCES_H
#define CS_RESOURCES_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int cpus;              /* whole CPUs to use: the quota rounded up, at most the affinity mask's */
    int affinity_cpus;     /* CPUs in the affinity mask */
    double cpu_quota;      /* CPUs the quota allows (may be fractional), 0 when none */
    const char *cpu_source;    /* "cgroup cpu.max", "cgroup cpu.cfs_quota_us", "affinity mask" */
    uint64_t memory;       /* bytes the process may use */
    uint64_t physical;     /* RAM of the machine */
    const char *memory_source; /* "cgroup memory.max", "cgroup memory.limit_in_bytes", "machine's RAM" */
} cs_resources;

/* Reads them for this process (cached after the first call; thread-safe). */
const cs_resources *cs_resources_get(void);
/* The same from another root, for tests: proc_cgroup is the text of /proc/self/cgroup,
 * sys_cgroup the directory the cgroup file systems are mounted under (/sys/fs/cgroup),
 * affinity and physical what the system would say. */
void cs_resources_detect(cs_resources *r, const char *proc_cgroup, const char *sys_cgroup, int affinity,
                         uint64_t physical);
/* The process's resident memory now, in bytes (0 when unknown). */
uint64_t cs_resources_rss(void);

#endif
