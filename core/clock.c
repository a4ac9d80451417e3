/*
 * clock.c - monotonic seconds, for durations (epochs, requests, benchmarks).
 */
#include "clock.h"

#include <time.h>

double cs_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
